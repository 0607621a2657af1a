# cython: language_level=3
"""Split a batch of (key, value) records into partitions by the stable key hash, in one C pass.

The Python objects are visited once to hash their keys (``hashing.key_hash``); assigning and counting run in
C without the GIL, and the per-partition lists are allocated at their exact size and filled without appends.
"""
cimport cython
from cpython.list cimport PyList_New, PyList_SET_ITEM, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport Py_INCREF, Py_DECREF, PyObject
from libc.stdint cimport uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, calloc, realloc, free

from pystream._core.hashing cimport fast_key_hash
from pystream._core.ps_common cimport ps_status, PS_OK
from pystream._core.ps_partition cimport ps_partition_assign, ps_partition_count
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


cdef int _hash_keys(list recs, uint64_t *hashes) except -1:
    cdef Py_ssize_t i, n = PyList_GET_SIZE(recs)
    for i in range(n):
        hashes[i] = fast_key_hash(_record_key(<object>PyList_GET_ITEM(recs, i), i))
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
    static inline void ps_prefetch_record(PyObject *ahead, PyObject *nearer) {
    #if defined(__GNUC__)
        __builtin_prefetch(ahead);
        if (PyTuple_CheckExact(nearer) && PyTuple_GET_SIZE(nearer) >= 1)
            __builtin_prefetch(PyTuple_GET_ITEM(nearer, 0));
    #endif
    }
    """
    bint ps_ascii_pair_hash(PyObject *rec, uint64_t *out)
    void ps_prefetch_record(PyObject *ahead, PyObject *nearer)


cdef inline uint32_t _partition_at(list recs, Py_ssize_t i, Py_ssize_t n, uint32_t nparts,
                                   bint pow2) except? 0xFFFFFFFF:
    """The partition of record i of ``recs`` (n long), with the records a few places ahead prefetched."""
    cdef PyObject *item = PyList_GET_ITEM(recs, i)
    cdef uint64_t h
    if i + 16 < n:
        ps_prefetch_record(PyList_GET_ITEM(recs, i + 16), PyList_GET_ITEM(recs, i + 8))
    if not ps_ascii_pair_hash(item, &h):
        h = fast_key_hash(_record_key(<object>item, i))
    return <uint32_t>(h & (nparts - 1)) if pow2 else <uint32_t>(h % nparts)


cdef list _scatter(list recs, const uint32_t *ids, const int64_t *counts, uint32_t nparts, bint owned):
    return _scatter_many([recs], ids, counts, nparts, owned)


cdef void _drop_refs(list inputs) noexcept:
    cdef list recs
    cdef Py_ssize_t i
    for recs in inputs:
        for i in range(PyList_GET_SIZE(recs)):
            Py_DECREF(<object>PyList_GET_ITEM(recs, i))


cdef list _scatter_many(list inputs, const uint32_t *ids, const int64_t *counts, uint32_t nparts, bint owned):
    """Fill exact-size lists from the records of ``inputs`` (lists, one after the other; ``ids`` has one entry
    per record of all of them); ``owned`` means the caller already holds a reference per record for them."""
    cdef Py_ssize_t i, n, base = 0
    cdef uint32_t p
    cdef list recs
    # One write cursor per partition, straight into each output list's item array: the loop below touches
    # no Python object (beyond the increfs it is asked for) and needs no GIL-protected bookkeeping.
    cdef PyObject ***cursor = <PyObject ***>calloc(nparts, sizeof(PyObject **))
    cdef PyObject **src
    cdef PyObject *item
    if cursor == NULL:
        if owned:
            _drop_refs(inputs)
        raise MemoryError()
    parts = [None] * nparts
    try:
        try:
            for p in range(nparts):
                parts[p] = PyList_New(counts[p])
                cursor[p] = (<PyListObject *>parts[p]).ob_item
        except BaseException:
            if owned:
                _drop_refs(inputs)
            raise
        for recs in inputs:
            n = PyList_GET_SIZE(recs)
            src = (<PyListObject *>recs).ob_item
            if owned:
                for i in range(n):
                    p = ids[base + i]
                    cursor[p][0] = src[i]
                    cursor[p] += 1
            else:
                for i in range(n):
                    p = ids[base + i]
                    item = src[i]
                    Py_INCREF(<object>item)
                    cursor[p][0] = item
                    cursor[p] += 1
            base += n
    finally:
        free(cursor)
    return parts


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


cdef int _assign_and_ref(list recs, uint32_t nparts, uint32_t *ids, int64_t *counts) except -1:
    # One pass: each record's key hash, its partition, and the reference its output list will own, taken
    # while the record is in cache, so the scatter pass moves pointers without touching records again.
    cdef Py_ssize_t i = 0, j, n = PyList_GET_SIZE(recs)
    cdef PyObject *item
    cdef uint32_t p
    cdef bint pow2 = (nparts & (nparts - 1)) == 0
    try:
        while i < n:
            p = _partition_at(recs, i, n, nparts, pow2)
            ids[i] = p
            counts[p] += 1
            item = PyList_GET_ITEM(recs, i)
            Py_INCREF(<object>item)
            i += 1
    except BaseException:
        for j in range(i):
            Py_DECREF(<object>PyList_GET_ITEM(recs, j))
        raise
    return 0


cdef list _partition_lists(list inputs, uint32_t nparts):
    """The records of ``inputs`` (lists, one after the other) split into ``nparts`` lists: ids and references
    in one pass per list, then one scatter of pointers."""
    cdef list recs
    cdef Py_ssize_t total = 0, base = 0, k, done = 0
    for recs in inputs:
        total += PyList_GET_SIZE(recs)
    cdef int64_t *counts = <int64_t *>calloc(nparts, sizeof(int64_t))
    if counts == NULL:
        raise MemoryError()
    cdef uint32_t *ids = NULL
    try:
        ids = _take_scratch(<size_t>total)
        try:
            for k in range(len(inputs)):
                recs = inputs[k]
                _assign_and_ref(recs, nparts, ids + base, counts)
                base += PyList_GET_SIZE(recs)
                done = k + 1
        except BaseException:
            _drop_refs(inputs[:done])  # _assign_and_ref gave back its own list's references
            raise
        return _scatter_many(inputs, ids, counts, nparts, True)
    finally:
        if ids != NULL:
            _give_scratch(ids)
        free(counts)


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
                p = _partition_at(recs, i, n, nparts, pow2)
                (<FrameWriter>ws[p]).add(<object>PyList_GET_ITEM(recs, i))
    finally:
        free(ws)
    return writers


def partition_ids(records, long num_partitions):
    """Return a uint32 numpy array with the partition of each (key, value) record (same rule as ``partition``)."""
    import numpy as np
    check_num_partitions(num_partitions)
    cdef list recs = _as_list(records)
    cdef Py_ssize_t n = PyList_GET_SIZE(recs)
    out = np.empty(n, dtype=np.uint32)
    cdef uint32_t[::1] ids = out
    cdef uint64_t *hashes = <uint64_t *>malloc((n + 1) * sizeof(uint64_t))
    cdef int64_t *counts = <int64_t *>calloc(<size_t>num_partitions, sizeof(int64_t))
    cdef ps_status st
    try:
        if hashes == NULL or counts == NULL:
            raise MemoryError()
        _hash_keys(recs, hashes)
        with nogil:
            st = ps_partition_assign(hashes, <size_t>n, <uint32_t>num_partitions,
                                     &ids[0] if n > 0 else NULL, counts)
        check_status(st)
    finally:
        free(hashes)
        free(counts)
    return out


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
        return _scatter(recs, &idv[0] if n > 0 else NULL, counts, <uint32_t>num_partitions, False)
    finally:
        free(counts)
