#include "ps_agg.h"
#include "ps_bigmem.h"

#include <stdlib.h>
#include <string.h>

#define SLOT_EMPTY PS_AGG_SLOT_EMPTY
#define SLOT_TOMB PS_AGG_SLOT_TOMB
#define MIN_SLOTS ((size_t)8)
/* Entry indices live in int32 slots. */
#define MAX_ENTRIES ((size_t)INT32_MAX)

#define mix64 ps_agg_mix64

static void free_slots(ps_agg_table *t) {
    if (t->slots) ps_big_free(t->slots, (t->mask + 1) * sizeof(ps_agg_slot));
    t->slots = NULL;
    t->mask = 0;
}

/* Slot count keeping the load at or under 1/4 right after a rebuild, so a rebuild buys
 * at least as many inserts as it cost. */
static size_t slots_for(size_t n) {
    size_t s = MIN_SLOTS;
    while (s < n * 4 && s < ((size_t)1 << 62)) s <<= 1;
    return s;
}

static ps_agg_slot *alloc_slots(size_t nslots) {
    ps_agg_slot *s = ps_big_alloc(nslots * sizeof(ps_agg_slot));
    if (s) memset(s, 0xff, nslots * sizeof(ps_agg_slot)); /* idx == -1 == SLOT_EMPTY */
    return s;
}

ps_status ps_agg_init(ps_agg_table *t, size_t hint) {
    memset(t, 0, sizeof(*t));
    size_t nslots = slots_for(hint);
    t->slots = alloc_slots(nslots);
    if (!t->slots) return PS_ERR_NOMEM;
    t->mask = nslots - 1;
    if (hint) {
        t->entries = ps_big_alloc(hint * sizeof(ps_agg_entry));
        if (!t->entries) {
            free_slots(t);
            return PS_ERR_NOMEM;
        }
        t->cap_entries = hint;
    }
    return PS_OK;
}

void ps_agg_free(ps_agg_table *t) {
    free_slots(t);
    ps_big_free(t->entries, t->cap_entries * sizeof(ps_agg_entry));
    memset(t, 0, sizeof(*t));
}

void ps_agg_drop_index(ps_agg_table *t) {
    free_slots(t);
    t->used_slots = 0;
}

static size_t probe_empty(const ps_agg_slot *slots, size_t mask, int64_t hash) {
    size_t i = (size_t)mix64((uint64_t)hash) & mask;
    while (slots[i].idx != SLOT_EMPTY) i = (i + 1) & mask;
    return i;
}

/* Indexes entry `idx` in a fresh index (no tombstones, no equal key): the first empty slot of its probe. */
static void index_entry(ps_agg_slot *slots, size_t mask, int64_t hash, size_t idx) {
    uint64_t m = mix64((uint64_t)hash);
    size_t i = (size_t)m & mask;
    while (slots[i].idx != SLOT_EMPTY) i = (i + 1) & mask;
    slots[i].idx = (int32_t)idx;
    slots[i].tag = (uint32_t)(m >> 32);
}

/* Compacts dead entries away and re-indexes into `nslots` slots.  Allocates before touching
 * anything so a failure leaves the table as it was. */
static ps_status rebuild(ps_agg_table *t, size_t nslots) {
    ps_agg_slot *slots = alloc_slots(nslots);
    if (!slots) return PS_ERR_NOMEM;
    size_t mask = nslots - 1, w = 0;
    for (size_t r = 0; r < t->n_entries; r++) {
        if (t->entries[r].kind == PS_AGG_DEAD) continue;
        if (w != r) t->entries[w] = t->entries[r];
        index_entry(slots, mask, t->entries[w].hash, w);
        w++;
    }
    free_slots(t);
    t->slots = slots;
    t->mask = mask;
    t->n_entries = w;
    t->n_live = w;
    t->used_slots = w;
    return PS_OK;
}

static ps_status grow_entries(ps_agg_table *t, size_t need) {
    if (need <= t->cap_entries) return PS_OK;
    if (need > MAX_ENTRIES) return PS_ERR_NOMEM;
    size_t cap = t->cap_entries ? t->cap_entries : 8;
    while (cap < need) cap = cap > MAX_ENTRIES / 2 ? MAX_ENTRIES : cap * 2;
    ps_agg_entry *e = ps_big_realloc(t->entries, t->cap_entries * sizeof(ps_agg_entry), cap * sizeof(ps_agg_entry));
    if (!e) return PS_ERR_NOMEM;
    t->entries = e;
    t->cap_entries = cap;
    return PS_OK;
}

ps_status ps_agg_insert(ps_agg_table *t, int64_t hash, size_t pos, int64_t *idx) {
    ps_status st;
    int rebuilt = 0;
    if (t->n_entries == t->cap_entries) {
        if (t->n_entries >= 16 && t->n_live * 2 <= t->n_entries) {
            /* Mostly dead (pops): reclaim instead of growing. */
            if ((st = rebuild(t, slots_for(t->n_live + 1))) != PS_OK) return st;
            rebuilt = 1;
        } else if ((st = grow_entries(t, t->n_entries + 1)) != PS_OK) {
            return st;
        }
    }
    if (!rebuilt && (t->used_slots + 1) * 2 > t->mask + 1) {
        if ((st = rebuild(t, slots_for(t->n_live + 1))) != PS_OK) return st;
        rebuilt = 1;
    }
    if (rebuilt) {
        pos = probe_empty(t->slots, t->mask, hash);
    } else if (t->slots[pos].idx == SLOT_EMPTY) {
        t->used_slots++;
    }
    if (rebuilt) t->used_slots++;
    size_t e = t->n_entries++;
    t->entries[e].hash = hash;
    t->entries[e].key = NULL;
    t->entries[e].num.i = 0;
    t->entries[e].skey = 0;
    t->entries[e].skey_tag = 0;
    t->entries[e].kind = PS_AGG_DEAD;
    t->slots[pos].idx = (int32_t)e;
    t->slots[pos].tag = (uint32_t)(mix64((uint64_t)hash) >> 32);
    t->n_live++;
    *idx = (int64_t)e;
    return PS_OK;
}

ps_status ps_agg_reserve(ps_agg_table *t, size_t extra) {
    ps_status st;
    if (extra > MAX_ENTRIES - t->n_entries) return PS_ERR_NOMEM; /* before an index sized for it */
    if ((t->used_slots + extra + 1) * 2 > t->mask + 1) {
        if ((st = rebuild(t, slots_for(t->n_live + extra + 1))) != PS_OK) return st;
    }
    return grow_entries(t, t->n_entries + extra);
}

ps_status ps_agg_reserve_entries(ps_agg_table *t, size_t extra) {
    return grow_entries(t, t->n_entries + extra);
}

ps_status ps_agg_reindex(ps_agg_table *t) {
    return rebuild(t, slots_for(t->n_live));
}

void ps_agg_remove(ps_agg_table *t, int64_t idx) {
    ps_agg_entry *e = &t->entries[idx];
    size_t i = (size_t)mix64((uint64_t)e->hash) & t->mask;
    while (t->slots[i].idx != (int32_t)idx) i = (i + 1) & t->mask;
    t->slots[i].idx = SLOT_TOMB;
    e->kind = PS_AGG_DEAD;
    e->key = NULL;
    t->n_live--;
    if (t->n_live == 0) ps_agg_clear(t);
}

void ps_agg_clear(ps_agg_table *t) {
    memset(t->slots, 0xff, (t->mask + 1) * sizeof(ps_agg_slot));
    t->n_entries = 0;
    t->n_live = 0;
    t->used_slots = 0;
}

ps_status ps_agg_copy(ps_agg_table *dst, const ps_agg_table *src) {
    ps_status st = ps_agg_init(dst, src->n_live);
    if (st != PS_OK) return st;
    for (size_t r = 0; r < src->n_entries; r++) {
        const ps_agg_entry *e = &src->entries[r];
        if (e->kind == PS_AGG_DEAD) continue;
        size_t w = dst->n_entries++;
        dst->entries[w] = *e;
        index_entry(dst->slots, dst->mask, e->hash, w);
    }
    dst->n_live = dst->used_slots = dst->n_entries;
    return PS_OK;
}

/* ---- numpy group-by-sum ------------------------------------------------------------------------ */

#if defined(__SIZEOF_INT128__)
typedef __int128 ps_i128;
#define I128_ADD(acc, v) ((acc) += (v))
#define I128_FROM(v) ((ps_i128)(v))
#define I128_LO(a) ((uint64_t)(a))
#define I128_HI(a) ((int64_t)((a) >> 64))
#else
/* Portable two-word accumulator for compilers without __int128. */
typedef struct {
    uint64_t lo;
    int64_t hi;
} ps_i128;
static inline ps_i128 i128_from(int64_t v) {
    ps_i128 r = {(uint64_t)v, v < 0 ? -1 : 0};
    return r;
}
static inline void i128_add(ps_i128 *a, int64_t v) {
    uint64_t lo = a->lo + (uint64_t)v;
    a->hi += (v < 0 ? -1 : 0) + (lo < a->lo);
    a->lo = lo;
}
#define I128_ADD(acc, v) i128_add(&(acc), (v))
#define I128_FROM(v) i128_from(v)
#define I128_LO(a) ((a).lo)
#define I128_HI(a) ((a).hi)
#endif

typedef struct {
    int64_t key;
    int64_t idx; /* -1: empty */
} ks_slot;

struct ps_keysum {
    ks_slot *slots;
    unsigned shift; /* 64 - log2(slot count): Fibonacci hashing keeps the product's high bits */
    size_t mask;
    size_t n, cap;
    int64_t *keys;
    ps_i128 *isum;
    double *fsum;
};

void ps_keysum_free(ps_keysum *ks) {
    if (!ks) return;
    free(ks->slots);
    free(ks->keys);
    free(ks->isum);
    free(ks->fsum);
    free(ks);
}

static inline size_t ks_home(const ps_keysum *ks, int64_t key) {
    return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> ks->shift);
}

static ps_status ks_alloc_slots(ps_keysum *ks, unsigned log2n) {
    size_t nslots = (size_t)1 << log2n;
    ks_slot *s = malloc(nslots * sizeof(ks_slot));
    if (!s) return PS_ERR_NOMEM;
    memset(s, 0xff, nslots * sizeof(ks_slot));
    free(ks->slots);
    ks->slots = s;
    ks->shift = 64 - log2n;
    ks->mask = nslots - 1;
    return PS_OK;
}

static ps_status ks_new(ps_keysum **out, int is_float) {
    ps_keysum *ks = calloc(1, sizeof(ps_keysum));
    if (!ks) return PS_ERR_NOMEM;
    ks->cap = 512;
    ks->keys = malloc(ks->cap * sizeof(int64_t));
    if (is_float)
        ks->fsum = malloc(ks->cap * sizeof(double));
    else
        ks->isum = malloc(ks->cap * sizeof(ps_i128));
    if (!ks->keys || (!ks->fsum && !ks->isum) || ks_alloc_slots(ks, 10) != PS_OK) {
        ps_keysum_free(ks);
        return PS_ERR_NOMEM;
    }
    *out = ks;
    return PS_OK;
}

/* Doubles the slots (load stays <= 1/2) and the dense arrays when they are full. */
static ps_status ks_grow(ps_keysum *ks) {
    if (ks->n == ks->cap) {
        size_t cap = ks->cap * 2;
        int64_t *k = realloc(ks->keys, cap * sizeof(int64_t));
        if (!k) return PS_ERR_NOMEM;
        ks->keys = k;
        if (ks->isum) {
            ps_i128 *s = realloc(ks->isum, cap * sizeof(ps_i128));
            if (!s) return PS_ERR_NOMEM;
            ks->isum = s;
        } else {
            double *s = realloc(ks->fsum, cap * sizeof(double));
            if (!s) return PS_ERR_NOMEM;
            ks->fsum = s;
        }
        ks->cap = cap;
    }
    if ((ks->n + 1) * 2 > ks->mask + 1) {
        ps_status st = ks_alloc_slots(ks, 64 - ks->shift + 1);
        if (st != PS_OK) return st;
        for (size_t j = 0; j < ks->n; j++) {
            size_t i = ks_home(ks, ks->keys[j]);
            while (ks->slots[i].idx >= 0) i = (i + 1) & ks->mask;
            ks->slots[i].key = ks->keys[j];
            ks->slots[i].idx = (int64_t)j;
        }
    }
    return PS_OK;
}

/* Returns the dense index of `key`, inserting it (idx == n on return) when new. */
static inline ps_status ks_slot_of(ps_keysum *ks, int64_t key, size_t *idx, int *fresh) {
    size_t i = ks_home(ks, key);
    for (;;) {
        ks_slot *s = &ks->slots[i];
        if (s->idx < 0) break;
        if (s->key == key) {
            *idx = (size_t)s->idx;
            *fresh = 0;
            return PS_OK;
        }
        i = (i + 1) & ks->mask;
    }
    if ((ks->n + 1) * 2 > ks->mask + 1 || ks->n == ks->cap) {
        ps_status st = ks_grow(ks);
        if (st != PS_OK) return st;
        i = ks_home(ks, key);
        while (ks->slots[i].idx >= 0) i = (i + 1) & ks->mask;
    }
    ks->slots[i].key = key;
    ks->slots[i].idx = (int64_t)ks->n;
    ks->keys[ks->n] = key;
    *idx = ks->n++;
    *fresh = 1;
    return PS_OK;
}

ps_status ps_keysum_i64(const int64_t *keys, const int64_t *vals, size_t n, ps_keysum **out) {
    ps_keysum *ks;
    ps_status st = ks_new(&ks, 0);
    if (st != PS_OK) return st;
    for (size_t r = 0; r < n; r++) {
        size_t idx;
        int fresh;
        if (PS_UNLIKELY((st = ks_slot_of(ks, keys[r], &idx, &fresh)) != PS_OK)) {
            ps_keysum_free(ks);
            return st;
        }
        if (fresh)
            ks->isum[idx] = I128_FROM(vals[r]);
        else
            I128_ADD(ks->isum[idx], vals[r]);
    }
    *out = ks;
    return PS_OK;
}

ps_status ps_keysum_f64(const int64_t *keys, const double *vals, size_t n, ps_keysum **out) {
    ps_keysum *ks;
    ps_status st = ks_new(&ks, 1);
    if (st != PS_OK) return st;
    for (size_t r = 0; r < n; r++) {
        size_t idx;
        int fresh;
        if (PS_UNLIKELY((st = ks_slot_of(ks, keys[r], &idx, &fresh)) != PS_OK)) {
            ps_keysum_free(ks);
            return st;
        }
        /* Start from the first value, not 0.0, so a lone -0.0 stays -0.0 as in Python. */
        if (fresh)
            ks->fsum[idx] = vals[r];
        else
            ks->fsum[idx] += vals[r];
    }
    *out = ks;
    return PS_OK;
}

size_t ps_keysum_len(const ps_keysum *ks) { return ks->n; }

int ps_keysum_fits_i64(const ps_keysum *ks) {
    if (!ks->isum) return 0;
    for (size_t i = 0; i < ks->n; i++) {
        int64_t lo = (int64_t)I128_LO(ks->isum[i]);
        if (I128_HI(ks->isum[i]) != (lo < 0 ? -1 : 0)) return 0;
    }
    return 1;
}

void ps_keysum_export_keys(const ps_keysum *ks, int64_t *out) {
    if (ks->n) memcpy(out, ks->keys, ks->n * sizeof(int64_t));
}

void ps_keysum_export_i64(const ps_keysum *ks, int64_t *out) {
    for (size_t i = 0; i < ks->n; i++) out[i] = (int64_t)I128_LO(ks->isum[i]);
}

void ps_keysum_export_i128(const ps_keysum *ks, uint64_t *lo, int64_t *hi) {
    for (size_t i = 0; i < ks->n; i++) {
        lo[i] = I128_LO(ks->isum[i]);
        hi[i] = I128_HI(ks->isum[i]);
    }
}

void ps_keysum_export_f64(const ps_keysum *ks, double *out) {
    if (ks->n) memcpy(out, ks->fsum, ks->n * sizeof(double));
}
