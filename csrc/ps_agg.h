/* Keyed aggregation tables for pystream's reduceByKey / combineByKey / countByValue.
 *
 * Two tables live here:
 *
 *  - ps_agg_table: an insertion-ordered open-addressing table over 64-bit hashes whose keys and
 *    object accumulators are opaque pointers owned by the binding layer.  The table never looks at
 *    a key: equality is decided by a callback, so Python's dict semantics (hash, then identity or
 *    __eq__) stay in Cython while probing, growth and ordering stay in C.
 *
 *  - ps_keysum: a one-shot group-by-sum over int64 keys for numpy batches, run without the GIL.
 *
 * No Python.h: every fallible function returns ps_status.
 */
#ifndef PS_AGG_H
#define PS_AGG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ps_common.h"

/* Accumulator kinds.  Numbers stay unboxed while they are exact int64 / double; anything else
 * (big ints, bools, strings, user objects) lives in `num.obj` as a reference owned by the binder. */
enum {
    PS_AGG_DEAD = 0, /* removed entry kept only to preserve the insertion order of the others */
    PS_AGG_I64 = 1,
    PS_AGG_F64 = 2,
    PS_AGG_OBJ = 3,
};

typedef union {
    int64_t i;
    double f;
    void *obj; /* PS_AGG_OBJ: a reference owned by the binder */
} ps_agg_num;

typedef struct {
    int64_t hash;
    void *key; /* NULL once dead */
    ps_agg_num num;
    /* Up to 8 bytes of a short key's content, so equality with a probe can be settled without
     * loading the stored key object (a cache miss per lookup in big tables).  The binder owns
     * the encoding; skey_tag == 0 means "not available". */
    uint64_t skey;
    uint8_t skey_tag;
    uint8_t kind;
} ps_agg_entry;

typedef struct {
    int32_t idx; /* entry index, or one of the empty / tombstone markers */
    uint32_t tag; /* high bits of the mixed hash: most misses are rejected without touching entries */
} ps_agg_slot;

typedef struct {
    ps_agg_slot *slots;
    size_t mask;       /* slot count - 1 (a power of two) */
    size_t used_slots; /* live + tombstone slots: decides when to rebuild */
    ps_agg_entry *entries;
    size_t n_entries; /* including dead ones */
    size_t cap_entries;
    size_t n_live;
} ps_agg_table;

/* 1 if the probe key equals e->key, 0 if not, -1 if comparing failed (the binder keeps the error). */
typedef int (*ps_agg_eq_fn)(void *ctx, const ps_agg_entry *e);

ps_status ps_agg_init(ps_agg_table *t, size_t hint);
/* Frees the arrays; the binder must have released the keys and objects first. */
void ps_agg_free(ps_agg_table *t);
/* Frees the index (slots) alone: the entries can then only be read in order, and freed by ps_agg_free. */
void ps_agg_drop_index(ps_agg_table *t);

/* Appends a fresh entry (kind PS_AGG_DEAD, key NULL: the binder fills it in) for a hash that
 * ps_agg_find just reported missing at `pos`.  Entry indices may change (compaction), so callers
 * must not keep indices across an insert.  On PS_ERR_NOMEM the table is unchanged. */
ps_status ps_agg_insert(ps_agg_table *t, int64_t hash, size_t pos, int64_t *idx);

/* Room for `extra` more entries without further reallocation. */
ps_status ps_agg_reserve(ps_agg_table *t, size_t extra);

/* Room for `extra` more entries, for ps_agg_append_unindexed (the index is left as it is). */
ps_status ps_agg_reserve_entries(ps_agg_table *t, size_t extra);

/* Appends a copy of `e`, whose key no entry of the table shares (an entry of another table being split),
 * without indexing it: ps_agg_reindex then indexes every entry in one pass, where an insert each would
 * probe the index first (W1's split built its local bucket at 110 ns an entry). Room must be reserved. */
static inline void ps_agg_append_unindexed(ps_agg_table *t, const ps_agg_entry *e) {
    t->entries[t->n_entries++] = *e;
    t->n_live++;
}

/* A new index over every live entry, after ps_agg_append_unindexed. On PS_ERR_NOMEM the old index is
 * left, which misses the appended entries: the table may then only be freed. */
ps_status ps_agg_reindex(ps_agg_table *t);

/* Marks entry `idx` dead; the binder releases its key and object first. */
void ps_agg_remove(ps_agg_table *t, int64_t idx);

/* Forgets every entry, keeping the allocation; the binder releases references first. */
void ps_agg_clear(ps_agg_table *t);

/* dst becomes a compacted copy of src (same pointers: the binder takes new references). */
ps_status ps_agg_copy(ps_agg_table *dst, const ps_agg_table *src);

/* Python's int hashes are the ints themselves, so consecutive keys would pile into consecutive
 * slots without a finaliser (murmur3 fmix64). */
static inline uint64_t ps_agg_mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

#if defined(__GNUC__) || defined(__clang__)
#define PS_AGG_PREFETCH(p) __builtin_prefetch(p)
#else
#define PS_AGG_PREFETCH(p) ((void)(p))
#endif

/* A lookup costs three dependent cache misses (slot, entry, key object).  Bulk loops issue these
 * a few records ahead, one level per stage, so the misses overlap instead of queueing. */
PS_PREFETCHING void ps_agg_prefetch_slot(const ps_agg_table *t, int64_t hash) {
    PS_AGG_PREFETCH(&t->slots[ps_agg_mix64((uint64_t)hash) & t->mask]);
}

/* An entry takes 40 bytes, so 3 in 8 straddle two cache lines: both are fetched. */
PS_PREFETCHING void ps_agg_prefetch_entry(const ps_agg_table *t, int64_t hash) {
    int32_t idx = t->slots[ps_agg_mix64((uint64_t)hash) & t->mask].idx;
    if (idx >= 0) {
        PS_AGG_PREFETCH(&t->entries[idx]);
        PS_AGG_PREFETCH((const char *)&t->entries[idx] + sizeof(ps_agg_entry) - 1);
    }
}

PS_PREFETCHING void ps_agg_prefetch_key(const ps_agg_table *t, int64_t hash) {
    int32_t idx = t->slots[ps_agg_mix64((uint64_t)hash) & t->mask].idx;
    /* Short keys compare from skey: fetching them would only take a line-fill buffer. */
    if (idx >= 0 && !t->entries[idx].skey_tag) {
        const char *k = (const char *)t->entries[idx].key;
        /* A short str's characters follow its 48-byte header; objects are only 16-aligned. */
        PS_AGG_PREFETCH(k);
        PS_AGG_PREFETCH(k + 63);
    }
}

/* A short key's skey: what a zeroed uint64_t holds after memcpy(&w, p, n), n <= 8. Built from fixed-size
 * loads: that memcpy is a store of variable width, and the load of the whole word right after it cannot be
 * forwarded from the store (on x86 a stall of a dozen cycles, paid by every probe that compared skeys). */
static inline uint64_t ps_agg_short_bytes(const void *src, size_t n) {
    const uint8_t *p = (const uint8_t *)src;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n >= 4) {
        /* The first and the last four bytes: where they overlap they hold the same bytes. */
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        return (uint64_t)lo | ((uint64_t)hi << (8 * (n - 4)));
    }
    if (n == 0) return 0;
    return (uint64_t)p[0] | ((uint64_t)p[n >> 1] << (8 * (n >> 1))) | ((uint64_t)p[n - 1] << (8 * (n - 1)));
#else
    uint64_t w = 0; /* the bytes in memory order, as the little-endian path gives them */
    memcpy(&w, p, n);
    return w;
#endif
}

#define PS_AGG_SLOT_EMPTY (-1)
#define PS_AGG_SLOT_TOMB (-2)

/* Looks `hash` up.  Found: *idx = entry index.  Not found: *idx = -1 and *pos is where
 * ps_agg_insert should put it, valid until the table is next modified.
 * Returns PS_ERR_ARG only when `eq` reported -1.  Inline so that a binder passing a constant
 * `eq` gets it inlined into the probe loop (this is the per-record hot path). */
static inline ps_status ps_agg_find(const ps_agg_table *t, int64_t hash, ps_agg_eq_fn eq, void *ctx,
                                    int64_t *idx, size_t *pos) {
    uint64_t m = ps_agg_mix64((uint64_t)hash);
    uint32_t tag = (uint32_t)(m >> 32);
    size_t i = (size_t)m & t->mask;
    size_t tomb = SIZE_MAX;
    for (;;) {
        ps_agg_slot s = t->slots[i];
        if (s.idx == PS_AGG_SLOT_EMPTY) {
            *idx = -1;
            *pos = tomb != SIZE_MAX ? tomb : i;
            return PS_OK;
        }
        if (s.idx == PS_AGG_SLOT_TOMB) {
            if (tomb == SIZE_MAX) tomb = i;
        } else if (s.tag == tag) {
            const ps_agg_entry *e = &t->entries[s.idx];
            if (e->hash == hash) {
                int r = eq(ctx, e);
                if (PS_UNLIKELY(r < 0)) return PS_ERR_ARG;
                if (r) {
                    *idx = s.idx;
                    *pos = i;
                    return PS_OK;
                }
            }
        }
        i = (i + 1) & t->mask;
    }
}

/* Overflow-checked int64 arithmetic: returns 1 on overflow (the binder then goes exact). */
static inline int ps_agg_add_i64(int64_t a, int64_t b, int64_t *out) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_add_overflow(a, b, out);
#else
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return 1;
    *out = a + b;
    return 0;
#endif
}

static inline int ps_agg_sub_i64(int64_t a, int64_t b, int64_t *out) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_sub_overflow(a, b, out);
#else
    if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b)) return 1;
    *out = a - b;
    return 0;
#endif
}

/* ---- numpy group-by-sum over int64 keys ------------------------------------------------------ */

typedef struct ps_keysum ps_keysum;

/* Sums vals per key in first-occurrence order.  Integer sums are exact (128-bit accumulators);
 * float sums add left to right starting from each key's first value, as Python would. */
ps_status ps_keysum_i64(const int64_t *keys, const int64_t *vals, size_t n, ps_keysum **out);
ps_status ps_keysum_f64(const int64_t *keys, const double *vals, size_t n, ps_keysum **out);

size_t ps_keysum_len(const ps_keysum *ks);
/* 1 when every integer sum fits in int64. */
int ps_keysum_fits_i64(const ps_keysum *ks);
void ps_keysum_export_keys(const ps_keysum *ks, int64_t *out);
void ps_keysum_export_i64(const ps_keysum *ks, int64_t *out); /* truncates sums that do not fit */
/* Each 128-bit sum as hi * 2**64 + lo. */
void ps_keysum_export_i128(const ps_keysum *ks, uint64_t *lo, int64_t *hi);
void ps_keysum_export_f64(const ps_keysum *ks, double *out);
void ps_keysum_free(ps_keysum *ks);

#endif
