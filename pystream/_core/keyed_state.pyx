# cython: language_level=3
"""KeyedState, the store of one partition of a keyed state, and the undo log that keeps its older versions
readable; also the version plumbing the kernels in state.pyx run around their loops (which version a batch
may update in place, how a batch's changes are published or rolled back).
"""
cimport cython
from cpython.ref cimport Py_DECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdlib cimport free
from cpython.dict cimport PyDict_SetItem, PyDict_Next, PyDict_Copy
from cpython.list cimport PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE

cdef extern from "Python.h":
    object PyFloat_FromDouble(double v)
    object PyLong_FromLongLong(long long v)


# Marks "no state" in undo logs: the key was not there before the batch.
cdef object _MISSING = object()


cdef object _missing_marker():
    return _MISSING


cdef inline object _old_value(const _Old *o, int j):
    cdef double d
    cdef uint8_t tag = o.tag[j]
    if tag == OLD_I64:
        return PyLong_FromLongLong(<long long>o.bits[j])
    if tag == OLD_F64:
        memcpy(&d, &o.bits[j], 8)
        return PyFloat_FromDouble(d)
    if tag == OLD_NONE:
        return None
    return <object><PyObject *><uintptr_t>o.bits[j]


@cython.final
@cython.no_gc
cdef class _Olds:
    """The states an undo log restores, one per logged key, in a C array.

    Why not a list of the old objects: keeping each replaced state alive until the version is dropped stopped
    CPython from reusing its memory for the next state, and freed it a batch later, cold; together that was
    most of the cost of a mapWithState record (measured: 690 ns hot, 220 without). Ints and floats, alone or in
    a small tuple, are stored by value, so the old object is freed at once; an older version rebuilds an equal
    one when it is read. Other values are kept as they are.
    """

    def __dealloc__(self):
        cdef Py_ssize_t i
        cdef int j
        if self.items == NULL:
            return
        for i in range(self.n):
            if self.items[i].n == OLD_SCALAR:
                if self.items[i].tag[0] == OLD_OBJ:
                    Py_DECREF(<object><PyObject *><uintptr_t>self.items[i].bits[0])
            else:
                for j in range(max(self.items[i].n, 0)):
                    if self.items[i].tag[j] == OLD_OBJ:
                        Py_DECREF(<object><PyObject *><uintptr_t>self.items[i].bits[j])
        free(self.items)
        self.items = NULL

    def __len__(self):
        return self.n

    cdef object get(self, Py_ssize_t i):
        """The state logged at i (a new object equal to it for by-value entries), or _MISSING."""
        cdef const _Old *o = &self.items[i]
        cdef Py_ssize_t j
        cdef object t, item
        if o.n == OLD_MISSING:
            return _MISSING
        if o.n == OLD_SCALAR:
            return _old_value(o, 0)
        t = PyTuple_New(o.n)
        for j in range(o.n):
            item = _old_value(o, <int>j)
            Py_INCREF(item)
            PyTuple_SET_ITEM(t, j, item)
        _untrack_atomic(t)
        return t


@cython.final
@cython.no_gc
cdef class _Slot:
    """updateStateByKey's value for a key: its state, and the batch's values gathered next to it, so the pass
    over every key needs no second table. Never reachable from user code, so never part of a cycle."""


@cython.final
cdef class KeyedState:
    """One partition of a keyed state (updateStateByKey, mapWithState), updated in place batch after batch.

    A batch updates the newest version's key -> state dict (and key -> last update ms with a timeout) instead
    of copying it: copying a million-key state every batch cost more than updating it. The version it started
    from stays readable: it becomes a view that keeps an undo log (each changed key and its state and time
    before the change) on top of the newer version (``newer``). A failing batch applies its log at once, so
    the partition it started from is intact. ``mapped`` holds what a mapWithState function returned in the
    batch that made this version.
    """

    @staticmethod
    def from_items(object items, object times=None):
        """A newest version holding the (key, state) pairs of ``items``; ``times`` (a dict) makes it timed,
        keys missing from it last updated at 0."""
        cdef KeyedState ks = KeyedState.__new__(KeyedState)
        cdef dict states = {}
        cdef tuple rec
        for item in items:
            rec = _pair(item)
            PyDict_SetItem(states, <object>PyTuple_GET_ITEM(rec, 0), <object>PyTuple_GET_ITEM(rec, 1))
        ks._states = states
        if times is not None:
            ks.timed = True
            ks._times = {k: times.get(k, 0) for k in states}
        return ks

    cdef dict _version(self, bint times):
        # The newest version's dict, then each older version's undo log (newest entry first) back to this one.
        cdef list chain = []
        cdef KeyedState ks = self
        cdef dict out
        cdef list keys
        cdef object old
        cdef Py_ssize_t i, j
        while ks._states is None:
            chain.append(ks)
            ks = ks.newer
        if times and ks._times is None:
            return None
        out = PyDict_Copy(ks._times if times else ks._states)
        if ks._slotted and not times:
            for k, slot in out.items():
                out[k] = (<_Slot>slot).state
        for j in range(len(chain) - 1, -1, -1):
            ks = <KeyedState>chain[j]
            keys = ks.undo_keys
            for i in range(PyList_GET_SIZE(keys) - 1, -1, -1):
                old = <object>PyList_GET_ITEM(ks.undo_times, i) if times else ks.undo_states.get(i)
                if old is _MISSING:
                    out.pop(<object>PyList_GET_ITEM(keys, i), None)
                else:
                    PyDict_SetItem(out, <object>PyList_GET_ITEM(keys, i), old)
        return out

    def states(self):
        """Return a new dict: key -> state of this version."""
        return self._version(False)

    def times(self):
        """Return a new dict: key -> last update ms of this version (None without a timeout)."""
        return self._version(True) if self.timed else None

    def items(self):
        """Return a new list of this version's (key, state) pairs."""
        cdef list out = []
        cdef Py_ssize_t pos = 0
        cdef PyObject *kp
        cdef PyObject *vp
        cdef object pair
        cdef bint slotted = self._states is not None and self._slotted
        cdef dict states = self._states if self._states is not None else self._version(False)
        while PyDict_Next(states, &pos, &kp, &vp):
            pair = (<object>kp, (<_Slot>vp).state if slotted else <object>vp)
            _untrack_atomic(pair)
            PyList_Append(out, pair)
        return out

    @property
    def is_newest(self):
        """Whether no later batch has been applied to this version."""
        return self._states is not None

    def __len__(self):
        return len(self._states if self._states is not None else self._version(False))

    def __reduce__(self):
        # A copy elsewhere (a checkpoint, another worker) is a newest version of its own.
        return _restore_keyed_state, (self.states(), self.times())

    def __repr__(self):
        return f"KeyedState({len(self)} keys{'' if self._states is not None else ', older version'})"


def _restore_keyed_state(dict states, object times):
    cdef KeyedState ks = KeyedState.__new__(KeyedState)
    ks._states = states
    ks._times = times
    ks.timed = times is not None
    return ks



cdef KeyedState _source(list prev):
    if PyList_GET_SIZE(prev) == 1 and type(<object>PyList_GET_ITEM(prev, 0)) is KeyedState:
        return <KeyedState>PyList_GET_ITEM(prev, 0)
    return None


cdef KeyedState _writable(KeyedState src, list prev, bint timed, bint slotted):
    """The version a batch may update in place: ``src`` if it is the newest (of the right kind), else a copy."""
    cdef KeyedState ks
    cdef _Slot slot
    if src is not None and src._states is not None and src.timed == timed and src._slotted == slotted:
        return src
    if src is not None:
        ks = KeyedState.from_items(src._version(False).items(), (src._version(True) or {}) if timed else None)
    else:
        ks = KeyedState.from_items(prev, {} if timed else None)
    if slotted:
        for k, v in ks._states.items():
            slot = _Slot.__new__(_Slot)
            slot.state = v
            ks._states[k] = slot
        ks._slotted = True
    return ks


cdef void _untrack_internal(list items):
    """Untrack a list only the keyed-state modules ever hold (an undo log, the mapped results).

    Nothing outside refers to it, so no reference cycle can pass through it; yet a collection would walk
    every item of a tracked list of a million entries (measured: 18 ms per batch and worker).
    """
    if items is not None:
        PyObject_GC_UnTrack(<void *>items)


cdef KeyedState _advance(KeyedState src, KeyedState head, list keys, _Olds olds, list old_times):
    """After a successful batch: the new newest version, and ``src`` turned into the view of the old one."""
    cdef KeyedState out
    _untrack_internal(keys)
    _untrack_internal(old_times)
    if src is not head:
        return head  # a fresh copy: its source was not touched
    out = KeyedState.__new__(KeyedState)
    out._states = head._states
    out._times = head._times
    out.timed = head.timed
    out._slotted = head._slotted
    src._states = None
    src._times = None
    src.newer = out
    src.undo_keys = keys
    src.undo_states = olds
    src.undo_times = old_times
    return out


cdef void _roll_back(dict states, dict times, list keys, _Olds olds, list old_times) except *:
    cdef Py_ssize_t i
    cdef object k, old
    for i in range(PyList_GET_SIZE(keys) - 1, -1, -1):
        k = <object>PyList_GET_ITEM(keys, i)
        old = olds.get(i)
        if old is _MISSING:
            states.pop(k, None)
        else:
            PyDict_SetItem(states, k, old)
        if times is not None:
            old = <object>PyList_GET_ITEM(old_times, i)
            if old is _MISSING:
                times.pop(k, None)
            else:
                PyDict_SetItem(times, k, old)

