#include "ps_frame.h"

#include <stdlib.h>
#include <string.h>

#include "ps_xxhash.h"

#define PS_WRITER_MIN_CAP ((size_t)1 << 16)

void ps_writer_init(ps_writer *w, uint8_t *fixed_buf, size_t fixed_cap) {
    w->buf = fixed_buf;
    w->len = 0;
    w->cap = fixed_buf ? fixed_cap : 0;
    w->fixed = fixed_buf != NULL;
}

ps_status ps_writer_reserve_initial(ps_writer *w, size_t cap) {
    if (w->fixed || cap <= w->cap) return PS_OK;
    uint8_t *nb = (uint8_t *)realloc(w->buf, cap);
    if (!nb) return PS_ERR_NOMEM;
    w->buf = nb;
    w->cap = cap;
    return PS_OK;
}

ps_status ps_writer_grow(ps_writer *w, size_t need) {
    if (w->fixed) return PS_ERR_OVERFLOW;
    if (need > SIZE_MAX - w->len) return PS_ERR_NOMEM;
    size_t want = w->len + need;
    size_t cap = w->cap < PS_WRITER_MIN_CAP ? PS_WRITER_MIN_CAP : w->cap;
    /* Doubling keeps the amortised copy cost per byte constant for multi-megabyte frames. */
    while (cap < want) {
        if (cap > SIZE_MAX / 2) {
            cap = want;
            break;
        }
        cap *= 2;
    }
    uint8_t *nb = (uint8_t *)realloc(w->buf, cap);
    if (!nb) return PS_ERR_NOMEM;
    w->buf = nb;
    w->cap = cap;
    return PS_OK;
}

void ps_writer_free(ps_writer *w) {
    if (!w->fixed) free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

static void put_u64le(uint8_t *o, uint64_t v) {
    for (int i = 0; i < 8; i++) o[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint64_t ps_frame_checksum(const uint8_t *payload, size_t n) { return ps_xxh64(payload, n, 0); }

void ps_frame_header_init(ps_frame_header *h, uint64_t count, uint64_t stored_len, uint64_t raw_len,
                          uint8_t flags, const uint8_t *payload) {
    memcpy(h->magic, PS_FRAME_MAGIC, 4);
    h->version = PS_FRAME_VERSION;
    h->flags = flags;
    h->reserved = 0;
    h->count = count;
    h->stored_len = stored_len;
    h->raw_len = raw_len;
    h->checksum = ps_frame_checksum(payload, (size_t)stored_len);
}

void ps_frame_header_write(uint8_t *out, const ps_frame_header *h) {
    memcpy(out, h->magic, 4);
    out[4] = h->version;
    out[5] = h->flags;
    out[6] = (uint8_t)(h->reserved & 0xFF);
    out[7] = (uint8_t)(h->reserved >> 8);
    put_u64le(out + 8, h->count);
    put_u64le(out + 16, h->stored_len);
    put_u64le(out + 24, h->raw_len);
    put_u64le(out + 32, h->checksum);
}

ps_status ps_frame_header_parse(const uint8_t *buf, size_t len, ps_frame_header *h) {
    memset(h, 0, sizeof *h);
    if (len < 4) {
        memcpy(h->magic, buf, len);
        return PS_ERR_TRUNCATED;
    }
    memcpy(h->magic, buf, 4);
    if (memcmp(h->magic, PS_FRAME_MAGIC, 4) != 0) return PS_ERR_MAGIC;
    if (len < PS_FRAME_HEADER_SIZE) return PS_ERR_TRUNCATED;
    h->version = buf[4];
    h->flags = buf[5];
    h->reserved = (uint16_t)(buf[6] | (buf[7] << 8));
    h->count = get_u64le(buf + 8);
    h->stored_len = get_u64le(buf + 16);
    h->raw_len = get_u64le(buf + 24);
    h->checksum = get_u64le(buf + 32);
    if (h->version < PS_FRAME_MIN_VERSION || h->version > PS_FRAME_VERSION) return PS_ERR_VERSION;
    if ((h->flags & ~PS_FRAME_KNOWN_FLAGS) != 0 || h->reserved != 0) return PS_ERR_FLAGS;
    if (h->stored_len > (uint64_t)(SIZE_MAX / 2)) return PS_ERR_LENGTH;
    if (h->flags & PS_FRAME_FLAG_LZ4) {
        /* Divide rather than multiply: stored_len * 255 can overflow for a forged stored_len. */
        if (h->raw_len > PS_LZ4_SLACK && (h->raw_len - PS_LZ4_SLACK - 1) / PS_LZ4_MAX_RATIO >= h->stored_len)
            return PS_ERR_LENGTH;
    } else if (h->raw_len != h->stored_len) {
        return PS_ERR_LENGTH;
    }
    /* Every record takes at least one payload byte. */
    if (h->count > h->raw_len) return PS_ERR_COUNT;
    return PS_OK;
}

ps_status ps_frame_validate(const uint8_t *buf, size_t len, ps_frame_header *h, uint64_t *computed) {
    *computed = 0;
    ps_status st = ps_frame_header_parse(buf, len, h);
    if (st != PS_OK) return st;
    if (len - PS_FRAME_HEADER_SIZE < h->stored_len) return PS_ERR_TRUNCATED;
    if (len - PS_FRAME_HEADER_SIZE > h->stored_len) return PS_ERR_TRAILING;
    *computed = ps_frame_checksum(buf + PS_FRAME_HEADER_SIZE, (size_t)h->stored_len);
    if (*computed != h->checksum) return PS_ERR_CHECKSUM;
    return PS_OK;
}

void ps_strtab_init(ps_strtab *t) {
    t->slots = NULL;
    t->mask = 0;
    t->used = 0;
    t->next_index = 0;
}

void ps_strtab_free(ps_strtab *t) {
    free(t->slots);
    ps_strtab_init(t);
}

ps_status ps_strtab_grow(ps_strtab *t) {
    size_t ncap = t->slots ? (t->mask + 1) * 2 : 1024;
    ps_strtab_slot *ns = (ps_strtab_slot *)calloc(ncap, sizeof *ns);
    if (!ns) return PS_ERR_NOMEM;
    if (t->slots) {
        for (size_t i = 0; i <= t->mask; i++) {
            ps_strtab_slot *sl = &t->slots[i];
            if (!sl->off1) continue;
            size_t j = sl->hash & (ncap - 1);
            while (ns[j].off1) j = (j + 1) & (ncap - 1);
            ns[j] = *sl;
        }
        free(t->slots);
    }
    t->slots = ns;
    t->mask = ncap - 1;
    return PS_OK;
}
