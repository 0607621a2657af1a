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

#endif
