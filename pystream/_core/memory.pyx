# cython: language_level=3
"""Process memory tuning: where CPython's object allocator gets its arenas.

See csrc/ps_arena.h for why. Worker processes install the arena cache once, for good: freed arenas stay
mapped for reuse (at most ``capacity_bytes`` of them), and fresh ones come from huge pages. Any other process
(the user's driver, whose allocator is the user's business) only borrows the huge-page allocator while one
bulk decode runs (``bulk_begin``/``bulk_end``), and gets its own allocator back when it is done.
"""
from pystream._core.ps_arena cimport (ps_arena_alloc, ps_arena_drop_pending, ps_arena_free, ps_arena_get_stats,
                                      ps_arena_set_capacity, ps_arena_stats)
from pystream._core.status cimport check_status

cdef extern from "Python.h":
    ctypedef struct PyObjectArenaAllocator:
        void *ctx
        void *(*alloc)(void *ctx, size_t size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil
    void PyObject_SetArenaAllocator(PyObjectArenaAllocator *allocator)
    void PyObject_GetArenaAllocator(PyObjectArenaAllocator *allocator)

# CPython 3.10+ on 64-bit platforms allocates 1 MiB arenas (256 KiB elsewhere); the cache counts blocks.
ARENA_SIZE = 1 << 20

cdef bint _installed = False
cdef int _bulk_depth = 0
cdef PyObjectArenaAllocator _saved


cdef inline void _set_ours() noexcept:
    cdef PyObjectArenaAllocator allocator
    allocator.ctx = NULL
    allocator.alloc = ps_arena_alloc
    allocator.free = ps_arena_free
    PyObject_SetArenaAllocator(&allocator)


cdef bint bulk_begin() noexcept:
    """Map the arenas of the objects about to be made from huge pages; returns whether to call ``bulk_end``.

    Called with the GIL held, which also serialises every arena request. The allocator in place is set
    aside, to be restored by ``bulk_end``; arenas it mapped and that are freed meanwhile are unmapped, as it
    would do (with no arena cache installed, the cache's capacity is 0). This assumes that allocator is
    CPython's own, which unmaps what it frees, so that each can free the other's arenas: pystream never
    installs another, and nor does CPython or any library we know of.
    """
    global _bulk_depth
    if _installed:
        return False
    if _bulk_depth == 0:
        PyObject_GetArenaAllocator(&_saved)
        _set_ours()
    _bulk_depth += 1
    return True


cdef void bulk_end() noexcept:
    global _bulk_depth
    _bulk_depth -= 1
    if _bulk_depth == 0 and not _installed:
        PyObject_SetArenaAllocator(&_saved)
        ps_arena_drop_pending()


def install_arena_cache(Py_ssize_t capacity_bytes):
    """Keep up to ``capacity_bytes`` of freed allocator arenas mapped (0 unmaps them at once, as CPython does).

    Safe to call again to change the capacity. CPython's own arena allocator maps anonymous memory of the
    arena's size, exactly as this one does, so arenas mapped before the call are freed correctly after it.
    """
    global _installed
    if capacity_bytes < 0:
        raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
    check_status(ps_arena_set_capacity(<size_t>(capacity_bytes // ARENA_SIZE)))
    if not _installed:
        _set_ours()
        _installed = True


def arena_cache_stats():
    """Return a dict: hits, misses, released (counts of arena requests and frees), cached and capacity (blocks),
    and installed (whether this process uses the cache)."""
    cdef ps_arena_stats s
    ps_arena_get_stats(&s)
    return {"hits": s.hits, "misses": s.misses, "released": s.released, "cached": s.cached,
            "capacity": s.capacity, "installed": _installed, "bulk": _bulk_depth > 0}
