# C declarations of csrc/ps_agg.h (keyed aggregation tables).
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

from pystream._core.ps_common cimport ps_status


cdef extern from "ps_agg.h":
    enum:
        PS_AGG_DEAD
        PS_AGG_I64
        PS_AGG_F64
        PS_AGG_OBJ

    ctypedef union ps_agg_num:
        int64_t i
        double f
        void *obj

    ctypedef struct ps_agg_entry:
        int64_t hash
        void *key
        ps_agg_num num
        uint64_t skey
        uint8_t skey_tag
        uint8_t kind

    ctypedef struct ps_agg_slot:
        int32_t idx
        uint32_t tag

    ctypedef struct ps_agg_table:
        ps_agg_slot *slots
        size_t mask
        size_t used_slots
        ps_agg_entry *entries
        size_t n_entries
        size_t cap_entries
        size_t n_live

    ctypedef int (*ps_agg_eq_fn)(void *ctx, const ps_agg_entry *e) noexcept

    ps_status ps_agg_init(ps_agg_table *t, size_t hint) nogil
    void ps_agg_free(ps_agg_table *t) nogil
    void ps_agg_drop_index(ps_agg_table *t) nogil
    ps_status ps_agg_find(const ps_agg_table *t, int64_t hash, ps_agg_eq_fn eq, void *ctx,
                          int64_t *idx, size_t *pos)
    ps_status ps_agg_insert(ps_agg_table *t, int64_t hash, size_t pos, int64_t *idx) nogil
    ps_status ps_agg_reserve(ps_agg_table *t, size_t extra) nogil
    ps_status ps_agg_reserve_entries(ps_agg_table *t, size_t extra) nogil
    void ps_agg_append_unindexed(ps_agg_table *t, const ps_agg_entry *e) nogil
    ps_status ps_agg_reindex(ps_agg_table *t) nogil
    void ps_agg_remove(ps_agg_table *t, int64_t idx) nogil
    void ps_agg_clear(ps_agg_table *t) nogil
    ps_status ps_agg_copy(ps_agg_table *dst, const ps_agg_table *src) nogil

    void ps_agg_prefetch_slot(const ps_agg_table *t, int64_t hash) nogil
    void ps_agg_prefetch_entry(const ps_agg_table *t, int64_t hash) nogil
    void ps_agg_prefetch_key(const ps_agg_table *t, int64_t hash) nogil
    uint64_t ps_agg_short_bytes(const void *p, size_t n) nogil

    int ps_agg_add_i64(int64_t a, int64_t b, int64_t *out) nogil
    int ps_agg_sub_i64(int64_t a, int64_t b, int64_t *out) nogil

    ctypedef struct ps_keysum:
        pass

    ps_status ps_keysum_i64(const int64_t *keys, const int64_t *vals, size_t n, ps_keysum **out) nogil
    ps_status ps_keysum_f64(const int64_t *keys, const double *vals, size_t n, ps_keysum **out) nogil
    size_t ps_keysum_len(const ps_keysum *ks) nogil
    int ps_keysum_fits_i64(const ps_keysum *ks) nogil
    void ps_keysum_export_keys(const ps_keysum *ks, int64_t *out) nogil
    void ps_keysum_export_i64(const ps_keysum *ks, int64_t *out) nogil
    void ps_keysum_export_i128(const ps_keysum *ks, uint64_t *lo, int64_t *hi) nogil
    void ps_keysum_export_f64(const ps_keysum *ks, double *out) nogil
    void ps_keysum_free(ps_keysum *ks) nogil
