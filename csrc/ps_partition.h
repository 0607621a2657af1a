/* Hash partitioning: count, order and scatter records by their partition ids, on threads where asked. */
#ifndef PS_PARTITION_H
#define PS_PARTITION_H

#include "ps_common.h"

/* Validate caller-supplied partition ids (from a custom partition function) and count them.
 * Returns PS_ERR_ARG and the first bad index in *bad when an id is >= nparts. */
ps_status ps_partition_count(const uint32_t *ids, size_t n, uint32_t nparts, int64_t *counts, size_t *bad);

/* Stable counting-sort order: order lists record indices grouped by partition, in input order within a
 * partition, and starts (nparts + 1 slots) receives each partition's first position. The ids are cut into
 * nranges ranges as by ps_run_ranges, range_counts[r*nparts + p] counting range r's ids equal to p; each range
 * is placed by its own thread. PS_ERR_ARG when the counts do not add up to n. */
ps_status ps_partition_order(const uint32_t *ids, size_t n, uint32_t nparts, const int64_t *range_counts,
                             unsigned nranges, int64_t *starts, int64_t *order);

/* The same in compact form, for at most PS_COMPACT_PARTS partitions and INT32_MAX ids: a byte per id, an int32
 * per position (W1-sized inputs: a quarter of the ids' memory traffic and half of the order's). PS_ERR_ARG
 * beyond those bounds. */
#define PS_COMPACT_PARTS 255u /* 0xFF stays free: a caller may mark ids still to compute with it */
ps_status ps_partition_order_compact(const uint8_t *ids, size_t n, uint32_t nparts, const int64_t *range_counts,
                                     unsigned nranges, int64_t *starts, int32_t *order);

/* fn(ctx, r, lo, hi) over [0, n) cut into nranges ranges, range r being [n*r/nranges, n*(r+1)/nranges): range 0
 * on the calling thread, each other range on a thread of its own (or on the caller's when no thread can be
 * started). Returns once every range is done; PS_ERR_NOMEM (nothing run) when its bookkeeping cannot be had. */
typedef void (*ps_range_fn)(void *ctx, unsigned r, size_t lo, size_t hi);
ps_status ps_run_ranges(ps_range_fn fn, void *ctx, size_t n, unsigned nranges);

/* A run of pointers: the item array of one input list. */
typedef struct {
    void *const *items;
    size_t n;
} ps_ptr_span;

/* Scatter the pointers of spans (taken one after the other; ids has one entry per pointer, total in all) into
 * dst[p], the exact-size array of partition p, each partition in input order. The pointers are cut into nranges
 * ranges as by ps_run_ranges, whose counts per partition are range_counts[r*nparts + p]; each range is placed
 * by its own thread. Only pointers move: what they point to is never read. */
ps_status ps_partition_scatter(const ps_ptr_span *spans, size_t nspans, const uint32_t *ids, size_t total,
                               uint32_t nparts, void **const *dst, const int64_t *range_counts, unsigned nranges);

#endif
