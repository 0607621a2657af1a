# cython: language_level=3
"""Split a batch of (key, value) records into partitions by the stable key hash, in one C pass.

The Python objects are visited once to hash their keys (``hashing.key_hash``); assigning and counting run in
C without the GIL, and the per-partition lists are allocated at their exact size and filled without appends.
"""
cimport cython
from cpython.list cimport PyList_New, PyList_SET_ITEM, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport Py_INCREF, Py_DECREF, PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free

from pystream._core.hashing cimport fast_key_hash
from pystream._core.ps_common cimport ps_status, PS_OK
from pystream._core.ps_partition cimport (
    PS_COMPACT_PARTS,
    ps_partition_count,
    ps_partition_order,
    ps_partition_order_compact,
    ps_partition_scatter,
    ps_ptr_span,
    ps_run_ranges,
)
from pystream._core.serialisation cimport FrameWriter
from pystream._core.status cimport check_status

# numpy only serves the array entry points, which import it when first called: processes that never use them
# (workers, most drivers) neither pay its import time nor its memory.

cdef extern from "Python.h":
    ctypedef struct PyListObject:
        PyObject **ob_item
    bint PyTuple_CheckExact(object o)
    bint PyList_CheckExact(object o)


cdef inline object _record_key(object rec, Py_ssize_t i):
    if PyTuple_CheckExact(rec) and PyTuple_GET_SIZE(rec) == 2:
        return <object>PyTuple_GET_ITEM(rec, 0)
    try:
        k, _ = rec
    except (TypeError, ValueError):
        raise TypeError(
            f"partitioning needs (key, value) pairs; record {i} is {type(rec).__name__}: {rec!r:.80}") from None
    return k


cdef list _as_list(records):
    return records if PyList_CheckExact(records) else list(records)


cdef int check_num_partitions(long n) except -1:
    if n < 1 or n > 0xFFFFFFFF:
        raise ValueError(f"number of partitions must be between 1 and 2**32 - 1, got {n}")
    return 0


cdef extern from *:
    """
    /* The commonest record, an exact (ASCII str, value) 2-tuple: its key's hash without creating a single
     * Python reference, and a prefetch of the records a few places ahead so their memory arrives in time. */
    static inline int ps_ascii_pair_hash(PyObject *rec, uint64_t *out) {
        if (!PyTuple_CheckExact(rec) || PyTuple_GET_SIZE(rec) != 2) return 0;
        PyObject *k = PyTuple_GET_ITEM(rec, 0);
        if (!PyUnicode_CheckExact(k) || !PyUnicode_IS_COMPACT_ASCII(k)) return 0;
        *out = ps_xxh64(PyUnicode_DATA(k), (size_t)PyUnicode_GET_LENGTH(k), 0x73747269ULL);
        return 1;
    }
    /* How far ahead a record and its key are prefetched. A record is two or three cache misses in a row (list
     * slot, tuple, str); at 16/8 ahead a million records took 9.3 ms to hash and reference against 6-7 ms at
     * 64/32 (2-core EPYC VM), the misses of more records overlapping; 128/64 measured no better. */
    #define PS_AHEAD_RECORD 64
    #define PS_AHEAD_KEY 32
    PS_PREFETCHING void ps_prefetch_record(PyObject *ahead, PyObject *nearer) {
    #if defined(__GNUC__)
        __builtin_prefetch(ahead);
        if (PyTuple_CheckExact(nearer) && PyTuple_GET_SIZE(nearer) >= 1) {
            /* Both lines a short str can straddle: its type, and its length, state and first characters
             * (pymalloc blocks sit 48 bytes past a line, so the characters are on the next one). */
            const char *k = (const char *)PyTuple_GET_ITEM(nearer, 0);
            __builtin_prefetch(k + offsetof(PyObject, ob_type));
            __builtin_prefetch(k + sizeof(PyASCIIObject));
        }
    #endif
    }
    """
    bint ps_ascii_pair_hash(PyObject *rec, uint64_t *out)
    void ps_prefetch_record(PyObject *ahead, PyObject *nearer)
    Py_ssize_t PS_AHEAD_RECORD
    Py_ssize_t PS_AHEAD_KEY


cdef extern from *:
    """
    /* Partition ids of records lo..hi whose key is an exact ASCII str (ps_ascii_pair_hash), PS_SLOW_ID for any
     * other record: one range of ps_run_ranges. It reads the records and writes only its own ids, so ranges
     * run side by side on threads while the caller holds the GIL (no other Python code runs, nothing
     * changes the records); the caller then hashes the PS_SLOW_ID records itself, in order, with the GIL. */
    #define PS_SLOW_ID 0xFFFFFFFFu
    #define PS_SLOW_ID8 0xFFu
    #define PS_OWN_COUNTS 256u
    typedef struct {
        PyObject *const *items;
        uint32_t nparts;
        uint32_t *ids;
        uint8_t *ids8;   /* instead of ids (at most PS_COMPACT_PARTS partitions), or NULL */
        int64_t *counts; /* nparts per range, or NULL */
        int any_slow;
    } ps_ids_ctx;

    static void ps_ids_range(void *arg, unsigned r, size_t lo, size_t hi) {
        ps_ids_ctx *c = (ps_ids_ctx *)arg;
        /* Read once into locals: a byte store may alias anything, and would make every later record read
         * the context again, from the caller's stack, a cache line the caller's thread keeps writing. */
        PyObject *const *items = c->items;
        uint32_t *ids = c->ids, nparts = c->nparts;
        uint8_t *ids8 = c->ids8;
        uint64_t h, mask = nparts - 1;
        int pow2 = (nparts & (nparts - 1)) == 0, slow = 0;
        /* Counted in a row of this thread's own when it fits, added to the caller's at the end: the ranges'
         * rows of the caller's array share cache lines, which two threads then keep taking from each other. */
        int64_t *shared = c->counts ? c->counts + (size_t)r * nparts : NULL, own[PS_OWN_COUNTS];
        int64_t *counts = shared && nparts <= PS_OWN_COUNTS ? own : shared;
        if (counts == own) memset(own, 0, nparts * sizeof(int64_t));
        for (size_t i = lo; i < hi; i++) {
            if (i + PS_AHEAD_RECORD < hi) ps_prefetch_record(items[i + PS_AHEAD_RECORD], items[i + PS_AHEAD_KEY]);
            uint32_t p;
            if (ps_ascii_pair_hash(items[i], &h)) {
                p = (uint32_t)(pow2 ? (h & mask) : (h % nparts));
                if (counts) counts[p]++;
            } else {
                p = PS_SLOW_ID;
                slow = 1;
            }
            if (ids8) ids8[i] = (uint8_t)p; else ids[i] = p;
        }
        if (counts == own)
            for (uint32_t p = 0; p < nparts; p++) shared[p] += own[p];
        if (slow) __atomic_store_n(&c->any_slow, 1, __ATOMIC_RELAXED);
    }
    """
    uint32_t PS_SLOW_ID
    uint8_t PS_SLOW_ID8
    ctypedef struct ps_ids_ctx:
        PyObject **items
        uint32_t nparts
        uint32_t *ids
        uint8_t *ids8
        int64_t *counts
        int any_slow
    void ps_ids_range(void *ctx, unsigned r, size_t lo, size_t hi) noexcept nogil


cdef inline uint32_t _partition_at(list recs, Py_ssize_t i, Py_ssize_t n, uint32_t nparts,
                                   bint pow2) except? 0xFFFFFFFF:
    """The partition of record i of ``recs`` (n long), with the records a few places ahead prefetched."""
    cdef PyObject *item = PyList_GET_ITEM(recs, i)
    cdef uint64_t h
    if i + PS_AHEAD_RECORD < n:
        ps_prefetch_record(PyList_GET_ITEM(recs, i + PS_AHEAD_RECORD), PyList_GET_ITEM(recs, i + PS_AHEAD_KEY))
    if not ps_ascii_pair_hash(item, &h):
        h = fast_key_hash(_record_key(<object>item, i))
    return <uint32_t>(h & (nparts - 1)) if pow2 else <uint32_t>(h % nparts)


cdef list _new_lists(const int64_t *counts, uint32_t nparts, PyObject ***items):
    """``nparts`` empty-slotted lists of ``counts[p]`` items; ``items[p]`` receives list p's item array."""
    cdef uint32_t p
    parts = [None] * nparts
    for p in range(nparts):
        parts[p] = PyList_New(counts[p])
        items[p] = (<PyListObject *>parts[p]).ob_item
    return parts


cdef list _scatter(list recs, const uint32_t *ids, const int64_t *counts, uint32_t nparts):
    """Exact-size lists of the records of ``recs`` (ids: one per record), each taking a new reference."""
    cdef Py_ssize_t i
    cdef uint32_t p
    cdef PyObject *item
    cdef PyObject **src = (<PyListObject *>recs).ob_item
    # One write cursor per partition, straight into each output list's item array.
    cdef PyObject ***cursor = <PyObject ***>calloc(nparts, sizeof(PyObject **))
    if cursor == NULL:
        raise MemoryError()
    try:
        parts = _new_lists(counts, nparts, cursor)
        for i in range(PyList_GET_SIZE(recs)):
            p = ids[i]
            item = src[i]
            Py_INCREF(<object>item)
            cursor[p][0] = item
            cursor[p] += 1
    finally:
        free(cursor)
    return parts


cdef void _drop_refs(list inputs, Py_ssize_t upto) noexcept:
    """Give back the references taken to the first ``upto`` records of ``inputs`` (one list after the other)."""
    cdef list recs
    cdef Py_ssize_t i
    for recs in inputs:
        for i in range(min(upto, PyList_GET_SIZE(recs))):
            Py_DECREF(<object>PyList_GET_ITEM(recs, i))
        upto -= PyList_GET_SIZE(recs)
        if upto <= 0:
            return


# Threads a large partitioning may use, each on a range of the records while the caller holds the GIL:
# partition_ids / partition_order hash ASCII str keys on them (reading the records only), partition() scatters
# pointers on them. partition() reads and references the records on the calling thread alone (a reference
# count is not safe to change from two threads); its scatter only moves pointers into the output lists, whose
# fresh pages are most of its cost (a kernel fault per 4 KiB: 3 of the 4.5 ms of scattering a million records
# here), and two threads take those faults side by side.
cdef enum:
    _RECORDS_PER_THREAD = 1 << 16


cdef unsigned _default_threads():
    # The cores this process may use (its affinity and its container's CPU quota), at most 4.
    from pystream.cores import usable_cores
    return <unsigned>max(1, min(4, usable_cores()))


cdef unsigned _max_threads = _default_threads()


def set_num_threads(int n) -> int:
    """Set how many threads a large partitioning may use (1: the calling thread only).

    Returns the previous setting. Worker processes, one per core already, use 1. Raises ValueError below 1.
    """
    global _max_threads
    if n < 1:
        raise ValueError(f"number of threads must be at least 1, got {n}")
    previous = _max_threads
    _max_threads = <unsigned>min(n, 64)
    return previous


def get_num_threads() -> int:
    """Return how many threads a large partitioning may use (``set_num_threads``)."""
    return _max_threads


cdef unsigned _ranges_for(Py_ssize_t total) noexcept:
    cdef Py_ssize_t r = total // _RECORDS_PER_THREAD
    if r < 1:
        return 1
    return <unsigned>min(r, <Py_ssize_t>_max_threads)


# Partition ids of the last batch, kept for the next call: a fresh multi-megabyte buffer per call costs a
# kernel page fault per 4 KiB, a quarter of the whole partitioning of a million records.
cdef uint32_t *_scratch = NULL
cdef size_t _scratch_cap = 0
cdef bint _scratch_busy = False


cdef uint32_t *_take_scratch(size_t n) except NULL:
    global _scratch, _scratch_cap, _scratch_busy
    cdef uint32_t *grown
    if _scratch_busy:  # a key's hashing ran Python code that partitions too: use a buffer of its own
        grown = <uint32_t *>malloc((n + 1) * sizeof(uint32_t))
        if grown == NULL:
            raise MemoryError()
        return grown
    if n + 1 > _scratch_cap:
        grown = <uint32_t *>realloc(_scratch, (n + 1) * sizeof(uint32_t))
        if grown == NULL:
            raise MemoryError()
        _scratch, _scratch_cap = grown, n + 1
    _scratch_busy = True
    return _scratch


cdef void _give_scratch(uint32_t *ids) noexcept:
    global _scratch_busy
    if ids == _scratch:
        _scratch_busy = False
    else:
        free(ids)


class _ListChanged(Exception):
    """A key's __hash__ changed the records list: which records were referenced can no longer be read back
    from it, so those references are kept (a leak) rather than given back to whatever the list now holds."""


cdef int _assign_and_ref(list recs, Py_ssize_t lo, Py_ssize_t hi, uint32_t nparts, uint32_t *ids,
                         int64_t *counts) except -1:
    # One pass over records lo..hi: each key hash, its partition, and the reference its output list will own,
    # taken while the record is in cache, so the scatter moves pointers without touching records again.
    cdef Py_ssize_t i = lo, j, n = PyList_GET_SIZE(recs)
    cdef PyObject *item
    cdef uint32_t p
    cdef bint pow2 = (nparts & (nparts - 1)) == 0
    try:
        while i < hi:
            p = _partition_at(recs, i, n, nparts, pow2)
            if PyList_GET_SIZE(recs) != n:
                i = lo
                raise _ListChanged()
            ids[i] = p
            counts[p] += 1
            item = PyList_GET_ITEM(recs, i)
            Py_INCREF(<object>item)
            i += 1
    except BaseException:
        for j in range(lo, i):
            Py_DECREF(<object>PyList_GET_ITEM(recs, j))
        raise
    return 0


cdef list _partition_lists(list inputs, uint32_t nparts):
    """The records of ``inputs`` (lists, one after the other) split into ``nparts`` lists: ids and references
    in one pass, then a scatter of pointers, cut into ranges that threads scatter side by side."""
    cdef list recs
    cdef Py_ssize_t total = 0, base = 0, lo, hi, cut, n, k, done = 0
    cdef unsigned r = 0, nranges
    cdef uint32_t p
    for recs in inputs:
        total += PyList_GET_SIZE(recs)
    nranges = _ranges_for(total)
    # counts[r * nparts + p]: records of range r for partition p; the totals per partition follow them.
    cdef int64_t *counts = <int64_t *>calloc(<size_t>(nranges + 1) * nparts, sizeof(int64_t))
    cdef int64_t *totals
    cdef uint32_t *ids = NULL
    cdef PyObject ***dst = NULL
    cdef ps_ptr_span *spans = NULL
    cdef ps_status st
    if counts == NULL:
        raise MemoryError()
    totals = counts + <size_t>nranges * nparts
    try:
        ids = _take_scratch(<size_t>total)
        try:
            for recs in inputs:
                n = PyList_GET_SIZE(recs)
                lo = 0
                while lo < n:
                    cut = total * (r + 1) // nranges - base  # where range r ends, in this list
                    hi = min(n, cut)
                    _assign_and_ref(recs, lo, hi, nparts, ids + base, counts + <size_t>r * nparts)
                    done = base + hi
                    if hi == cut:
                        r += 1
                    lo = hi
                base += n
            for r in range(nranges):
                for p in range(nparts):
                    totals[p] += counts[<size_t>r * nparts + p]
            dst = <PyObject ***>malloc(nparts * sizeof(PyObject **))
            spans = <ps_ptr_span *>malloc((len(inputs) + 1) * sizeof(ps_ptr_span))
            if dst == NULL or spans == NULL:
                raise MemoryError()
            parts = _new_lists(totals, nparts, dst)
        except _ListChanged:
            raise RuntimeError("records list changed size during partitioning") from None
        except BaseException:
            _drop_refs(inputs, done)
            raise
        for k in range(len(inputs)):
            recs = inputs[k]
            spans[k].items = <void **>(<PyListObject *>recs).ob_item
            spans[k].n = <size_t>PyList_GET_SIZE(recs)
        # The GIL stays held: the threads read the input lists' item arrays, which no other thread may resize.
        st = ps_partition_scatter(spans, len(inputs), ids, <size_t>total, nparts, <void ***>dst, counts, nranges)
        if st != PS_OK:  # nothing was placed (its bookkeeping could not be had): the references go back
            _drop_refs(inputs, total)
            check_status(st)
        return parts
    finally:
        if ids != NULL:
            _give_scratch(ids)
        free(counts)
        free(dst)
        free(spans)


def partition(records, long num_partitions) -> list:
    """Split (key, value) records into ``num_partitions`` lists by ``portable_hash(key) % num_partitions``.

    Returns a list of ``num_partitions`` lists holding the same record objects, each in input order.
    The assignment is identical in every process and every run. Raises TypeError for a record that is not a
    (key, value) pair and ValueError for a partition count below 1.
    """
    check_num_partitions(num_partitions)
    return _partition_lists([_as_list(records)], <uint32_t>num_partitions)


def partition_many(parts, long num_partitions) -> list:
    """``partition`` of the records of several lists taken one after the other, without joining them first.

    Partition j holds the first list's records for j, then the second's, and so on, each in input order.
    Same errors as ``partition``.
    """
    check_num_partitions(num_partitions)
    return _partition_lists([_as_list(p) for p in parts], <uint32_t>num_partitions)


def partition_frames(parts, long num_partitions) -> list:
    """``partition_many``, with each partition encoded as a frame rather than gathered in a list.

    Returns ``num_partitions`` FrameWriters (``serialisation.FrameWriter``): writer j holds the records of
    partition j, in the order ``partition_many`` gives them, encoded in the same single pass that assigns them,
    ready to be copied into shared memory for a task. Same errors as ``partition``.
    """
    check_num_partitions(num_partitions)
    cdef list inputs = [_as_list(part) for part in parts]
    cdef uint32_t nparts = <uint32_t>num_partitions
    cdef Py_ssize_t total = 0, i, n
    cdef list recs
    for recs in inputs:
        total += PyList_GET_SIZE(recs)
    cdef list writers = [FrameWriter(total // nparts + 1) for _ in range(nparts)]
    cdef PyObject **ws = <PyObject **>malloc(nparts * sizeof(PyObject *))
    cdef uint32_t p
    cdef bint pow2 = (nparts & (nparts - 1)) == 0
    if ws == NULL:
        raise MemoryError()
    try:
        for p in range(nparts):
            ws[p] = <PyObject *>writers[p]
        for recs in inputs:
            n = PyList_GET_SIZE(recs)
            for i in range(n):
                # A pickled record's __reduce__ can run any code, including code that shrinks this list.
                if PyList_GET_SIZE(recs) != n:
                    raise RuntimeError("records list changed size during partitioning")
                # Held before its key is hashed: a key's __hash__ can run any code too (and empty the list).
                rec = <object>PyList_GET_ITEM(recs, i)
                p = _partition_at(recs, i, n, nparts, pow2)
                if PyList_GET_SIZE(recs) != n:
                    raise RuntimeError("records list changed size during partitioning")
                (<FrameWriter>ws[p]).add(rec)
    finally:
        free(ws)
    return writers


cdef int _assign_ids(list recs, uint32_t nparts, uint32_t *ids, unsigned nranges, int64_t *counts,
                     uint8_t *ids8=NULL) except -1:
    """ids[i] = the partition of record i: ASCII str keys hashed on ``nranges`` threads (see ps_ids_range),
    the others then here, in order, so the first bad record raises as it would in a plain loop. ``counts``
    (nparts per range, zeroed, or NULL) receives how many of each range's records go to each partition.
    With ``ids8`` (at most PS_COMPACT_PARTS partitions), the ids are bytes written there instead."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(recs)
    cdef bint pow2 = (nparts & (nparts - 1)) == 0
    cdef unsigned r = 0
    cdef uint32_t p
    cdef ps_ids_ctx ctx
    ctx.items = (<PyListObject *>recs).ob_item
    ctx.nparts = nparts
    ctx.ids = ids
    ctx.ids8 = ids8
    ctx.counts = counts
    ctx.any_slow = 0
    # The GIL stays held: the threads read records that no other thread may change meanwhile.
    check_status(ps_run_ranges(ps_ids_range, &ctx, <size_t>n, nranges))
    if ctx.any_slow:
        for i in range(n):
            if (ids8[i] != PS_SLOW_ID8) if ids8 != NULL else (ids[i] != PS_SLOW_ID):
                continue
            p = _partition_at(recs, i, n, nparts, pow2)
            if ids8 != NULL:
                ids8[i] = <uint8_t>p
            else:
                ids[i] = p
            if PyList_GET_SIZE(recs) != n:  # a key's __hash__ changed the list
                raise RuntimeError("records list changed size during partitioning")
            if counts != NULL:
                while i >= n * (r + 1) // nranges:  # the range record i is in
                    r += 1
                counts[<size_t>r * nparts + p] += 1
    return 0


def partition_ids(records, long num_partitions):
    """Return a uint32 numpy array with the partition of each (key, value) record (same rule as ``partition``).

    Records are only read: a large input is hashed on up to ``get_num_threads()`` threads. Same errors as
    ``partition``.
    """
    import numpy as np
    check_num_partitions(num_partitions)
    cdef list recs = _as_list(records)
    cdef Py_ssize_t n = PyList_GET_SIZE(recs)
    out = np.empty(n, dtype=np.uint32)
    cdef uint32_t[::1] ids = out
    if n:
        _assign_ids(recs, <uint32_t>num_partitions, &ids[0], _ranges_for(n), NULL)
    return out


def partition_order(records, long num_partitions):
    """Split (key, value) records into ``num_partitions`` partitions as index arrays, reading them only.

    Returns ``(order, starts)``, two numpy arrays: ``order[starts[p]:starts[p + 1]]`` are the indices of the
    records of partition p (same rule as ``partition``), in input order; ``starts`` has ``num_partitions + 1``
    entries. ``starts`` is int64; ``order`` is int32 for at most 255 partitions and 2**31 - 1 records (half the
    memory to write, W1-sized inputs: 1M records, 8 partitions) and int64 otherwise. Nothing is referenced or
    copied: the arrays index ``records``, ready to gather or encode a partition from. Same errors as
    ``partition``.
    """
    import numpy as np
    check_num_partitions(num_partitions)
    cdef list recs = _as_list(records)
    cdef Py_ssize_t n = PyList_GET_SIZE(recs)
    cdef uint32_t nparts = <uint32_t>num_partitions
    cdef bint compact = nparts <= PS_COMPACT_PARTS and n <= 0x7FFFFFFF
    order = np.empty(n, dtype=np.int32 if compact else np.int64)
    starts = np.empty(<Py_ssize_t>nparts + 1, dtype=np.int64)
    cdef int64_t[::1] sv = starts
    cdef int64_t[::1] ov
    cdef int32_t[::1] ov32
    cdef unsigned nranges = _ranges_for(n)
    cdef int64_t *counts = <int64_t *>calloc(<size_t>nranges * nparts, sizeof(int64_t))
    cdef uint32_t *ids = NULL
    if counts == NULL:
        raise MemoryError()
    try:
        ids = _take_scratch(<size_t>n)
        if compact:  # a byte per id, in the scratch buffer
            ov32 = order
            _assign_ids(recs, nparts, NULL, nranges, counts, <uint8_t *>ids)
            check_status(ps_partition_order_compact(<uint8_t *>ids, <size_t>n, nparts, counts, nranges, &sv[0],
                                                    &ov32[0] if n > 0 else NULL))
        else:
            ov = order
            _assign_ids(recs, nparts, ids, nranges, counts)
            check_status(ps_partition_order(ids, <size_t>n, nparts, counts, nranges, &sv[0],
                                            &ov[0] if n > 0 else NULL))
    finally:
        if ids != NULL:
            _give_scratch(ids)
        free(counts)
    return order, starts


def scatter(records, ids, long num_partitions) -> list:
    """Split ``records`` into ``num_partitions`` lists given each record's partition id (any int sequence or
    array, e.g. from a custom partition function). Raises ValueError naming the first id out of range."""
    import numpy as np
    check_num_partitions(num_partitions)
    cdef list recs = _as_list(records)
    cdef Py_ssize_t n = PyList_GET_SIZE(recs)
    arr = np.ascontiguousarray(ids, dtype=np.int64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"scatter needs one partition id per record: {n} records, ids of shape {arr.shape}")
    if n and (arr.min() < 0 or arr.max() >= num_partitions):
        bad = int(np.flatnonzero((arr < 0) | (arr >= num_partitions))[0])
        raise ValueError(f"partition id {int(arr[bad])} of record {bad} is outside 0..{num_partitions - 1}")
    u32 = arr.astype(np.uint32)
    cdef uint32_t[::1] idv = u32
    cdef int64_t *counts = <int64_t *>calloc(<size_t>num_partitions, sizeof(int64_t))
    cdef size_t bad_at = 0
    cdef ps_status st
    if counts == NULL:
        raise MemoryError()
    try:
        with nogil:
            st = ps_partition_count(&idv[0] if n > 0 else NULL, <size_t>n, <uint32_t>num_partitions, counts,
                                    &bad_at)
        check_status(st)
        return _scatter(recs, &idv[0] if n > 0 else NULL, counts, <uint32_t>num_partitions)
    finally:
        free(counts)
