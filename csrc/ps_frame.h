/* Record frame header: layout, parsing and validation (no Python).
 *
 * Layout, all integers little-endian, 40 bytes:
 *   0  magic "PSRF"          4 bytes
 *   4  version               u8   (1)
 *   5  flags                 u8   bit0 = payload is an lz4 block; every other bit must be 0
 *   6  reserved              u16  must be 0
 *   8  record count          u64
 *  16  stored payload length u64  bytes after the header (compressed size if bit0)
 *  24  raw payload length    u64  payload size before compression (== stored when not compressed)
 *  32  checksum              u64  XXH64(seed 0) of the stored payload bytes
 *  40  payload
 */
#ifndef PS_FRAME_H
#define PS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "ps_buf.h"
#include "ps_common.h"

#define PS_FRAME_MAGIC "PSRF"
/* Version 2 added PS_TAG_STRTAB_END; a version 1 frame is a version 2 frame without it, so both are read. */
#define PS_FRAME_VERSION 2
#define PS_FRAME_MIN_VERSION 1
#define PS_FRAME_HEADER_SIZE 40
#define PS_FRAME_FLAG_LZ4 0x01u
#define PS_FRAME_KNOWN_FLAGS PS_FRAME_FLAG_LZ4
/* lz4's best case is ~255:1, so a raw length beyond this bound is forged and must not be allocated. */
#define PS_LZ4_MAX_RATIO 255u
#define PS_LZ4_SLACK 64u

/* Value tags. Small tuples/lists, small ints and short strings carry their size in the tag byte:
 * these are the common record shapes and the saved length byte is ~7% of a typical frame. */
enum {
    PS_TAG_NONE = 0x00,
    PS_TAG_FALSE = 0x01,
    PS_TAG_TRUE = 0x02,
    PS_TAG_INT = 0x03,       /* zigzag varint, fits int64 */
    PS_TAG_BIGINT = 0x04,    /* varint n, n bytes two's complement little-endian */
    PS_TAG_FLOAT = 0x05,     /* 8 bytes IEEE-754 little-endian */
    PS_TAG_STR = 0x06,       /* varint n, n bytes UTF-8 */
    PS_TAG_BYTES = 0x07,     /* varint n, n bytes */
    PS_TAG_BYTEARRAY = 0x08, /* varint n, n bytes */
    PS_TAG_TUPLE = 0x09,     /* varint n, n values */
    PS_TAG_LIST = 0x0A,      /* varint n, n values */
    PS_TAG_DICT = 0x0B,      /* varint n, n key/value pairs */
    PS_TAG_PICKLE = 0x0C,    /* varint n, n bytes of pickle protocol 5 */
    PS_TAG_STRREF = 0x0D,    /* varint i: the i-th string stored with a PS_TAG_STR* tag in this frame */
    PS_TAG_STRTAB_END = 0x0E, /* prefix of a value, at most once per frame: no later literal is referenced */
    PS_TAG_TUPLE_SMALL = 0x20, /* 0x20 + n, n < 16 */
    PS_TAG_LIST_SMALL = 0x30,  /* 0x30 + n, n < 16 */
    PS_TAG_INT_SMALL = 0x40,   /* 0x40 + v, 0 <= v < 64 */
    PS_TAG_STR_SMALL = 0x80,   /* 0x80 + n, n < 64 UTF-8 bytes */
    PS_TAG_STR_SMALL_END = 0xC0,
};

typedef struct {
    uint8_t magic[4];
    uint8_t version;
    uint8_t flags;
    uint16_t reserved;
    uint64_t count;
    uint64_t stored_len;
    uint64_t raw_len;
    uint64_t checksum;
} ps_frame_header;

/* Encoder-side table of short strings already written to this frame, so a repeat is stored as a
 * PS_TAG_STRREF index: the decoder then hands out one shared str object instead of allocating a new one,
 * which is most of the decode cost for keyed records. Both sides number every literal short string
 * (tag PS_TAG_STR_SMALL, 1..63 bytes) in order of appearance; the encoder may stop remembering new ones
 * (PS_STRTAB_MAX_ENTRIES) but keeps counting, so indices always agree.
 *
 * An encoder that gives up on the table for the rest of the frame (its strings do not repeat: text lines)
 * writes PS_TAG_STRTAB_END before the next value. The decoder then stops keeping literals: a reader that
 * decodes a frame a chunk at a time can free each chunk's strings instead of holding every one to the end.
 *
 * Slots hold the literal's offset in the output buffer rather than a pointer: the buffer may move when it
 * grows, and the string objects being encoded may die (a pickled value's __reduce__ can run any code). */
#define PS_STRTAB_MAX_ENTRIES ((uint32_t)1 << 20)
#define PS_STR_SHORT_MAX 63
/* Containers nest at most this deep: decoding recurses on the C stack, so a forged frame must not. */
#define PS_MAX_DEPTH 200

typedef struct {
    uint64_t off1; /* offset of the literal's tag byte + 1; 0 marks an empty slot */
    uint32_t index;
    uint32_t hash;
} ps_strtab_slot;

typedef struct {
    ps_strtab_slot *slots;
    size_t mask;
    size_t used;
    uint64_t next_index; /* number of literal short strings written so far */
} ps_strtab;

void ps_strtab_init(ps_strtab *t);
void ps_strtab_free(ps_strtab *t);
ps_status ps_strtab_grow(ps_strtab *t);

static inline uint32_t ps_strhash(const uint8_t *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 29;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, s + i, n - i);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
        h ^= h >> 29;
    }
    h *= 0xFF51AFD7ED558CCDULL;
    return (uint32_t)(h >> 32);
}

/* Returns the slot holding s (its index is a valid back-reference) or the empty slot where s belongs
 * (NULL when the table is full and no longer accepting entries). */
static inline ps_strtab_slot *ps_strtab_probe(ps_strtab *t, const uint8_t *buf, const uint8_t *s, size_t n,
                                              uint32_t h) {
    if (PS_UNLIKELY(t->slots == NULL || (t->used + 1) * 2 > t->mask + 1)) {
        /* A failed grow is not an error: the table just stops accepting entries. */
        if (t->used < PS_STRTAB_MAX_ENTRIES) (void)ps_strtab_grow(t);
        if (t->slots == NULL) return NULL;
    }
    /* Load never exceeds 1/2 (inserts past it are refused), so this loop always meets an empty slot. */
    size_t i = h & t->mask;
    for (;;) {
        ps_strtab_slot *sl = &t->slots[i];
        if (sl->off1 == 0) {
            int accepting = t->used < PS_STRTAB_MAX_ENTRIES && (t->used + 1) * 2 <= t->mask + 1 &&
                            t->next_index <= UINT32_MAX;
            return accepting ? sl : NULL;
        }
        if (sl->hash == h) {
            const uint8_t *lit = buf + (sl->off1 - 1);
            if ((size_t)(lit[0] - PS_TAG_STR_SMALL) == n && memcmp(lit + 1, s, n) == 0) return sl;
        }
        i = (i + 1) & t->mask;
    }
}

/* Starts loading the slot a probe for s will begin at, so that the probe, a few records later, finds it in
 * cache: a big table's probes are cache misses, which the encoder would otherwise wait for one by one. */
PS_PREFETCHING void ps_strtab_prefetch(const ps_strtab *t, const uint8_t *s, size_t n) {
#if defined(__GNUC__)
    if (t->slots != NULL) __builtin_prefetch(&t->slots[ps_strhash(s, n) & t->mask]);
#else
    (void)t; (void)s; (void)n;
#endif
}

/* Records the literal just written at offset off (its tag byte) in the empty slot probe returned. */
static inline void ps_strtab_fill(ps_strtab *t, ps_strtab_slot *sl, size_t off, uint32_t h) {
    sl->off1 = (uint64_t)off + 1;
    sl->index = (uint32_t)t->next_index;
    sl->hash = h;
    t->used++;
}

void ps_frame_header_init(ps_frame_header *h, uint64_t count, uint64_t stored_len, uint64_t raw_len,
                          uint8_t flags, const uint8_t *payload);
void ps_frame_header_write(uint8_t *out, const ps_frame_header *h);

/* Reads the fields even when they are invalid (so the caller can say what was wrong), then checks
 * magic, version, flags, reserved, and that the lengths and count are mutually plausible. */
ps_status ps_frame_header_parse(const uint8_t *buf, size_t len, ps_frame_header *h);

/* Header checks plus: len is exactly header + stored payload, and the payload checksum matches
 * (*computed receives the payload's hash when the lengths are right). */
ps_status ps_frame_validate(const uint8_t *buf, size_t len, ps_frame_header *h, uint64_t *computed);

uint64_t ps_frame_checksum(const uint8_t *payload, size_t n);

#endif
