from libc.stdint cimport uint64_t
from pystream._core.ps_common cimport ps_status

cdef extern from "ps_arena.h":
    ctypedef struct ps_arena_stats:
        uint64_t hits
        uint64_t misses
        uint64_t released
        size_t cached
        size_t capacity

    ps_status ps_arena_set_capacity(size_t blocks)
    void *ps_arena_alloc(void *ctx, size_t size) noexcept nogil
    void ps_arena_free(void *ctx, void *ptr, size_t size) noexcept nogil
    void ps_arena_get_stats(ps_arena_stats *out)
    void ps_arena_drop_pending()
