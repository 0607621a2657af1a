/* Bounds-checked byte writer and reader for the frame codec.
 *
 * Header-only so the Cython per-value loops inline every bounds check: a call per byte written would cost
 * more than the work itself. The writer either grows (malloc'd, for encode) or is fixed over a caller's
 * buffer (encode_into), where running out of room is PS_ERR_OVERFLOW and nothing is ever written past cap.
 */
#ifndef PS_BUF_H
#define PS_BUF_H

#include <stdint.h>
#include <string.h>

#include "ps_common.h"

typedef struct {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int fixed; /* 1: buf belongs to the caller and must never be grown or freed */
} ps_writer;

typedef struct {
    const uint8_t *start;
    const uint8_t *p;
    const uint8_t *end;
} ps_reader;

/* Out of line: growth is rare (doubling), keeping it out of the inlined fast path keeps that small. */
ps_status ps_writer_grow(ps_writer *w, size_t need);
void ps_writer_init(ps_writer *w, uint8_t *fixed_buf, size_t fixed_cap);
ps_status ps_writer_reserve_initial(ps_writer *w, size_t cap);
void ps_writer_free(ps_writer *w);

static inline ps_status ps_w_reserve(ps_writer *w, size_t n) {
    if (PS_LIKELY(w->cap - w->len >= n)) return PS_OK;
    return ps_writer_grow(w, n);
}

/* The _unchecked writers assume ps_w_reserve already made room; callers reserve once per value. */
static inline void ps_w_u8(ps_writer *w, uint8_t v) { w->buf[w->len++] = v; }

static inline void ps_w_bytes(ps_writer *w, const void *p, size_t n) {
    if (n) memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static inline void ps_w_varint(ps_writer *w, uint64_t v) {
    uint8_t *o = w->buf + w->len;
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    w->len = (size_t)(o - w->buf);
}

static inline void ps_w_u64le(ps_writer *w, uint64_t v) {
    uint8_t *o = w->buf + w->len;
    for (int i = 0; i < 8; i++) o[i] = (uint8_t)(v >> (8 * i));
    w->len += 8;
}

/* Exact sizes matter: encode_into must succeed when the frame fits the caller's buffer to the byte. */
static inline size_t ps_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint64_t ps_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t ps_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

static inline size_t ps_r_left(const ps_reader *r) { return (size_t)(r->end - r->p); }
static inline size_t ps_r_offset(const ps_reader *r) { return (size_t)(r->p - r->start); }

static inline ps_status ps_r_u8(ps_reader *r, uint8_t *out) {
    if (PS_UNLIKELY(r->p >= r->end)) return PS_ERR_TRUNCATED;
    *out = *r->p++;
    return PS_OK;
}

/* LEB128, at most 10 bytes; the 10th byte may only carry the top bit of a uint64. */
static inline ps_status ps_r_varint(ps_reader *r, uint64_t *out) {
    const uint8_t *p = r->p;
    if (PS_LIKELY(p < r->end && *p < 0x80)) {
        *out = *p;
        r->p = p + 1;
        return PS_OK;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (PS_UNLIKELY(p >= r->end)) return PS_ERR_TRUNCATED;
        uint8_t b = *p++;
        if (shift == 63 && b > 1) return PS_ERR_VARINT;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *out = v;
            r->p = p;
            return PS_OK;
        }
    }
    return PS_ERR_VARINT;
}

static inline double ps_load_f64le(const uint8_t *p) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint64_t)p[i] << (8 * i);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static inline uint64_t ps_f64_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* Eight bytes at a time: strings are mostly ASCII and this runs once per decoded string. */
static inline int ps_is_ascii(const uint8_t *p, size_t n) {
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    uint8_t tail = 0;
    for (; i < n; i++) tail |= p[i];
    return ((acc & 0x8080808080808080ULL) | (tail & 0x80)) == 0;
}

#endif
