# cython: language_level=3
"""Process memory tuning for worker processes: keep freed object-allocator arenas mapped for reuse.

See csrc/ps_arena.h for why. Installed once per worker process (never in the user's driver process, whose
allocator is the user's business); the cache holds at most ``capacity_bytes`` of freed arenas.
"""
from pystream._core.ps_arena cimport (ps_arena_alloc, ps_arena_free, ps_arena_get_stats, ps_arena_set_capacity,
                                      ps_arena_stats)
from pystream._core.status cimport check_status

cdef extern from "Python.h":
    ctypedef struct PyObjectArenaAllocator:
        void *ctx
        void *(*alloc)(void *ctx, size_t size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil
    void PyObject_SetArenaAllocator(PyObjectArenaAllocator *allocator)

# CPython 3.10+ on 64-bit platforms allocates 1 MiB arenas (256 KiB elsewhere); the cache counts blocks.
ARENA_SIZE = 1 << 20

cdef bint _installed = False


def install_arena_cache(Py_ssize_t capacity_bytes):
    """Keep up to ``capacity_bytes`` of freed allocator arenas mapped (0 unmaps them at once, as CPython does).

    Safe to call again to change the capacity. CPython's own arena allocator maps anonymous memory of the
    arena's size, exactly as this one does, so arenas mapped before the call are freed correctly after it.
    """
    global _installed
    if capacity_bytes < 0:
        raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
    check_status(ps_arena_set_capacity(<size_t>(capacity_bytes // ARENA_SIZE)))
    cdef PyObjectArenaAllocator allocator
    if not _installed:
        allocator.ctx = NULL
        allocator.alloc = ps_arena_alloc
        allocator.free = ps_arena_free
        PyObject_SetArenaAllocator(&allocator)
        _installed = True


def arena_cache_stats():
    """Return a dict: hits, misses, released (counts of arena requests and frees), cached and capacity (blocks),
    and installed (whether this process uses the cache)."""
    cdef ps_arena_stats s
    ps_arena_get_stats(&s)
    return {"hits": s.hits, "misses": s.misses, "released": s.released, "cached": s.cached,
            "capacity": s.capacity, "installed": _installed}
