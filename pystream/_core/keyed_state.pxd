# What state.pyx cimports from keyed_state: the store's types and version plumbing, and inline what its
# kernels call per record (a cdef function called from another module is an indirect call the compiler
# cannot inline).
cimport cython
from cpython.ref cimport Py_INCREF, PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int8_t, uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport realloc
from libc.string cimport memcpy

cdef extern from "Python.h":
    bint PyTuple_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow)
    bint PyObject_IS_GC(object o)
    int PyObject_GC_IsTracked(object o)
    void PyObject_GC_UnTrack(void *o)


cdef inline void _untrack_atomic(object t):
    """Untrack a tuple (and the tuples it holds) whose items cannot be part of a reference cycle.

    CPython does this for such tuples at their first collection; doing it as state is built keeps the
    collector from ever walking a large state: (key, (count, total)) pairs are a few million objects.
    """
    cdef Py_ssize_t i
    cdef object item
    if not PyTuple_CheckExact(t) or not PyObject_GC_IsTracked(t):
        return
    for i in range(PyTuple_GET_SIZE(t)):
        item = <object>PyTuple_GET_ITEM(t, i)
        if PyTuple_CheckExact(item):
            _untrack_atomic(item)
            if PyObject_GC_IsTracked(item):
                return
        elif PyObject_IS_GC(item):
            # As CPython's own rule: any other container (even an untracked dict) may become tracked later.
            return
    PyObject_GC_UnTrack(<void *>t)


cdef inline tuple _pair(object rec):
    # An exact 2-tuple is used as it is; other pairs (lists, namedtuples) are unpacked once.
    if PyTuple_CheckExact(rec) and PyTuple_GET_SIZE(rec) == 2:
        return <tuple>rec
    try:
        k, v = rec
    except (TypeError, ValueError):
        raise TypeError(f"keyed state needs (key, value) pairs, got {type(rec).__name__}: {rec!r:.80}") from None
    return (k, v)


# An old state, as the undo log keeps it. A scalar (n == -1) or a tuple of up to 4 items (n items) whose ints
# (int64) and floats are stored by value; any other value, or item, is kept by reference (tag OBJ).
cdef enum:
    OLD_OBJ = 0
    OLD_I64 = 1
    OLD_F64 = 2
    OLD_NONE = 3
    OLD_MISSING = -2
    OLD_SCALAR = -1
    OLD_MAX_ITEMS = 4

cdef struct _Old:
    int8_t n
    uint8_t tag[4]
    uint64_t bits[4]            # an int64, a double's bits, or an owned PyObject *


cdef inline void _old_item(_Old *o, int j, PyObject *x):
    cdef int overflow = 0
    cdef long long v
    cdef double d
    if PyLong_CheckExact(<object>x):
        v = PyLong_AsLongLongAndOverflow(<object>x, &overflow)
        if not overflow:
            o.tag[j] = OLD_I64
            o.bits[j] = <uint64_t>v
            return
    elif PyFloat_CheckExact(<object>x):
        d = PyFloat_AS_DOUBLE(<object>x)
        o.tag[j] = OLD_F64
        memcpy(&o.bits[j], &d, 8)
        return
    elif x == <PyObject *>None:
        o.tag[j] = OLD_NONE
        return
    Py_INCREF(<object>x)
    o.tag[j] = OLD_OBJ
    o.bits[j] = <uint64_t><uintptr_t>x


@cython.final
cdef class _Olds:
    cdef _Old *items
    cdef Py_ssize_t n, cap

    # The appends are inline: the kernels log a state per changed key. A key that had no state is logged
    # with append_missing, since inline code here cannot test for _MISSING (a .pxd holds no module globals).
    cdef inline _Old *_grow(self) except NULL:
        cdef _Old *grown
        if self.n == self.cap:
            self.cap = max(64, self.cap * 2)
            grown = <_Old *>realloc(self.items, self.cap * sizeof(_Old))
            if grown == NULL:
                raise MemoryError()
            self.items = grown
        return &self.items[self.n]

    cdef inline int append(self, object old) except -1:
        """Logs the state a key had before a change."""
        cdef _Old *o = self._grow()
        cdef Py_ssize_t size, j
        if PyTuple_CheckExact(old) and PyTuple_GET_SIZE(old) <= OLD_MAX_ITEMS:
            size = PyTuple_GET_SIZE(old)
            o.n = <int8_t>size
            for j in range(size):
                _old_item(o, <int>j, PyTuple_GET_ITEM(old, j))
        else:
            o.n = OLD_SCALAR
            _old_item(o, 0, <PyObject *>old)
        self.n += 1
        return 0

    cdef inline int append_missing(self) except -1:
        """Logs that a key had no state before a change."""
        self._grow().n = OLD_MISSING
        self.n += 1
        return 0

    cdef object get(self, Py_ssize_t i)


@cython.final
cdef class _Slot:
    cdef object state
    # The batch's values for the key: none, one (``first``), or a list (``more``). The list handed to the
    # update function is made just before the call, so it comes hot from CPython's free list instead of
    # having waited, cold, through the pass over every key.
    cdef Py_ssize_t n_pending
    cdef object first
    cdef list more


@cython.final
cdef class KeyedState:
    cdef dict _states           # key -> state (key -> _Slot when slotted) while newest, else None
    cdef bint _slotted
    cdef dict _times            # key -> last update ms (with a timeout), else None
    cdef readonly bint timed
    cdef KeyedState newer
    cdef list undo_keys
    cdef _Olds undo_states
    cdef list undo_times
    cdef public object mapped

    cdef dict _version(self, bint times)


cdef object _missing_marker()   # _MISSING, which marks "no state" in undo logs and slots
cdef KeyedState _source(list prev)
cdef KeyedState _writable(KeyedState src, list prev, bint timed, bint slotted)
cdef void _untrack_internal(list items)
cdef KeyedState _advance(KeyedState src, KeyedState head, list keys, _Olds olds, list old_times)
cdef void _roll_back(dict states, dict times, list keys, _Olds olds, list old_times) except *
