# What other _core modules cimport from serialisation: FrameWriter, so a kernel that makes frames (the
# partitioner's partition_frames, a table's split_items) encodes records straight into them, with no list in
# between; private_copy, so the state kernels hand a user function a state it may change in place (the
# copy parallelize makes too).
cimport cython
from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t

from pystream._core.ps_frame cimport ps_strtab, ps_writer


ctypedef struct _estate:
    ps_writer w
    ps_strtab strings
    uint64_t probes
    uint64_t hits
    uint64_t probed_bytes
    uint64_t trial
    bint table_off
    bint end_pending  # PS_TAG_STRTAB_END is written before the next record (a FrameWriter without a table)


@cython.final
cdef class FrameWriter:
    cdef _estate _e
    cdef readonly Py_ssize_t count
    cdef int add(self, object record) except -1
    cdef int add_str_int(self, const unsigned char *s, Py_ssize_t n, long long v) except -1
    cdef int _add(self, object record, const unsigned char *s, Py_ssize_t n, long long v) except -1
    cdef void _seal(self) noexcept


cpdef object private_copy(object o)


# Inline here, for the state kernels, which ask it of every state of every batch (type pointers compared, no
# call per tuple item: 15 ms of W3's 166 went to the plain version).
cdef extern from "Python.h":
    # On borrowed pointers: no reference counting per tuple item.
    bint _IsLong "PyLong_CheckExact" (PyObject *o)
    bint _IsFloat "PyFloat_CheckExact" (PyObject *o)
    bint _IsStr "PyUnicode_CheckExact" (PyObject *o)
    bint _IsBytes "PyBytes_CheckExact" (PyObject *o)
    bint _IsBool "PyBool_Check" (PyObject *o)
    bint _IsComplex "PyComplex_CheckExact" (PyObject *o)
    bint _IsTuple "PyTuple_CheckExact" (PyObject *o)
    Py_ssize_t _TupleSize "PyTuple_GET_SIZE" (PyObject *o)
    PyObject *_TupleItem "PyTuple_GET_ITEM" (PyObject *o, Py_ssize_t i)
    PyObject *_None "Py_None"


cdef inline bint _unchangeable_scalar(PyObject *o) noexcept:
    return (_IsLong(o) or _IsFloat(o) or _IsStr(o) or o == _None or _IsBytes(o) or _IsBool(o)
            or _IsComplex(o))


cdef inline bint _unchangeable_ptr(PyObject *o, int depth) noexcept:
    cdef Py_ssize_t i
    cdef PyObject *x
    if _unchangeable_scalar(o):
        return True
    if not _IsTuple(o) or depth >= 4:
        return False
    for i in range(_TupleSize(o)):
        x = _TupleItem(o, i)
        if not _unchangeable_scalar(x) and not _unchangeable_ptr(x, depth + 1):
            return False
    return True


cdef inline bint unchangeable(object o, int depth) noexcept:
    """Whether nothing can change ``o``: exactly str, bytes, int, float, bool, complex or None, or a tuple of
    those (at most 4 deep)."""
    return _unchangeable_ptr(<PyObject *>o, depth)
