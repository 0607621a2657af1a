from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from pystream._core.ps_common cimport ps_status

cdef extern from "ps_partition.h" nogil:
    ps_status ps_partition_count(const uint32_t *ids, size_t n, uint32_t nparts, int64_t *counts, size_t *bad)
    ps_status ps_partition_order(const uint32_t *ids, size_t n, uint32_t nparts, const int64_t *range_counts,
                                 unsigned nranges, int64_t *starts, int64_t *order)
    uint32_t PS_COMPACT_PARTS
    ps_status ps_partition_order_compact(const uint8_t *ids, size_t n, uint32_t nparts,
                                         const int64_t *range_counts, unsigned nranges, int64_t *starts,
                                         int32_t *order)
    ctypedef struct ps_ptr_span:
        void **items
        size_t n
    ps_status ps_partition_scatter(const ps_ptr_span *spans, size_t nspans, const uint32_t *ids, size_t total,
                                   uint32_t nparts, void ***dst, const int64_t *range_counts, unsigned nranges)
    ctypedef void (*ps_range_fn)(void *ctx, unsigned r, size_t lo, size_t hi) noexcept nogil
    ps_status ps_run_ranges(ps_range_fn fn, void *ctx, size_t n, unsigned nranges)
