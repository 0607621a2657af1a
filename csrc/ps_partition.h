/* Hash partitioning: assign records to partitions from their 64-bit key hashes. */
#ifndef PS_PARTITION_H
#define PS_PARTITION_H

#include "ps_common.h"

/* ids[i] = hashes[i] % nparts; counts[p] += records assigned to p. counts must hold nparts zeroed slots. */
ps_status ps_partition_assign(const uint64_t *hashes, size_t n, uint32_t nparts, uint32_t *ids, int64_t *counts);

/* Validate caller-supplied partition ids (from a custom partition function) and count them.
 * Returns PS_ERR_ARG and the first bad index in *bad when an id is >= nparts. */
ps_status ps_partition_count(const uint32_t *ids, size_t n, uint32_t nparts, int64_t *counts, size_t *bad);

/* Stable counting-sort order: order[k] lists record indices grouped by partition, in input order within a
 * partition; starts must hold nparts + 1 slots and receives each partition's first position. */
ps_status ps_partition_order(const uint32_t *ids, size_t n, uint32_t nparts, const int64_t *counts, int64_t *starts,
                             int64_t *order);

/* A run of pointers: the item array of one input list. */
typedef struct {
    void *const *items;
    size_t n;
} ps_ptr_span;

/* Scatter the pointers of spans (taken one after the other; ids has one entry per pointer, total in all) into
 * dst[p], the exact-size array of partition p, each partition in input order. The pointers are cut into nranges
 * ranges, range r being [total*r/nranges, total*(r+1)/nranges), whose counts per partition are
 * range_counts[r*nparts + p]; every range after the first runs on a thread of its own (or on the caller's when
 * no thread can be started). Only pointers move: what they point to is never read. */
ps_status ps_partition_scatter(const ps_ptr_span *spans, size_t nspans, const uint32_t *ids, size_t total,
                               uint32_t nparts, void **const *dst, const int64_t *range_counts, unsigned nranges);

#endif
