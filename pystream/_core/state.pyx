# cython: language_level=3
"""Keyed-state kernels: the per-partition loops of updateStateByKey and mapWithState, and Scala's State.

The user's function is still called once per key (updateStateByKey) or per record (mapWithState), as the API
requires; everything around the call (grouping, dict lookups, State objects, output lists) runs in C.
"""
cimport cython
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport int8_t, uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem, PyDict_Next, PyDict_Copy
from cpython.list cimport PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport PyObject

from pystream._core.lookahead cimport _Peek, _peek_ahead, _peek_start
from pystream._core.deserialisation import FrameReader
from pystream.errors import IllegalArgumentError, NoSuchElementError

cdef extern from "Python.h":
    bint PyTuple_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    object PyFloat_FromDouble(double v)
    object PyLong_FromLongLong(long long v)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow)
    int PyGC_Disable()
    int PyGC_Enable()
    bint PyObject_IS_GC(object o)
    int PyObject_GC_IsTracked(object o)
    void PyObject_GC_UnTrack(void *o)

cdef extern from *:
    void _prefetch "__builtin_prefetch"(const void *p)


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


cdef class _GCPaused:
    """Pause the cyclic GC while a kernel builds a partition's worth of objects.

    Those objects cannot form cycles by themselves; without the pause, CPython's collector would walk the
    whole (large, long-lived) state again and again while it grows, which costs more than the loop itself.
    The collector resumes, with everything still counted, when the kernel returns.
    """

    cdef int was_enabled

    def __enter__(self):
        self.was_enabled = PyGC_Disable()
        return self

    def __exit__(self, *exc):
        if self.was_enabled:
            PyGC_Enable()
        return False


cdef inline void _prefetch_items(_Slot slot) noexcept:
    # The pass over every key visits slots in order, but what they point to lies anywhere: load it early
    # (raw pointers: a reference count would touch the very object being prefetched).
    cdef PyObject *st = <PyObject *>slot.state
    cdef Py_ssize_t j
    if PyTuple_CheckExact(<object>st):
        for j in range(PyTuple_GET_SIZE(<object>st)):
            _prefetch(PyTuple_GET_ITEM(<object>st, j))
    if slot.n_pending == 1:
        _prefetch(<PyObject *>slot.first)


# Records decoded at a time from a FrameReader: few enough that a chunk's objects are still in cache when
# they are freed, and the next chunk's reuse their memory.
cdef Py_ssize_t _CHUNK = 512


cdef inline list _first_chunk(object batch):
    """A kernel's records come as a list, or as a FrameReader it reads a chunk at a time (see _next_chunk)."""
    if type(batch) is list:
        return <list>batch
    if type(batch) is not FrameReader:
        raise TypeError(f"keyed state needs a list of (key, value) pairs, got {type(batch).__name__}")
    return _next_chunk(batch)


cdef inline list _next_chunk(object batch):
    """The next chunk of a FrameReader, or None when done (a list is a single chunk)."""
    cdef list chunk
    if type(batch) is list:
        return None
    chunk = batch.next_chunk(_CHUNK)
    return chunk if PyList_GET_SIZE(chunk) else None


cdef inline bint _same_tuple(object a, object b):
    """Whether two exact tuples hold the very same objects (nested tuples compared alike): then either one
    can stand for the other, since a tuple cannot change."""
    cdef Py_ssize_t i, n
    cdef object x, y
    if not (PyTuple_CheckExact(a) and PyTuple_CheckExact(b)):
        return False
    n = PyTuple_GET_SIZE(a)
    if PyTuple_GET_SIZE(b) != n:
        return False
    for i in range(n):
        x = <object>PyTuple_GET_ITEM(a, i)
        y = <object>PyTuple_GET_ITEM(b, i)
        if x is not y and not _same_tuple(x, y):
            return False
    return True


cdef inline tuple _pair(object rec):
    # An exact 2-tuple is used as it is; other pairs (lists, namedtuples) are unpacked once.
    if PyTuple_CheckExact(rec) and PyTuple_GET_SIZE(rec) == 2:
        return <tuple>rec
    try:
        k, v = rec
    except (TypeError, ValueError):
        raise TypeError(f"keyed state needs (key, value) pairs, got {type(rec).__name__}: {rec!r:.80}") from None
    return (k, v)


# Marks "no state" in undo logs: the key was not there before the batch.
cdef object _MISSING = object()


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

    cdef _Old *items
    cdef Py_ssize_t n, cap

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

    cdef int append(self, object old) except -1:
        cdef _Old *o
        cdef _Old *grown
        cdef Py_ssize_t size, j
        if self.n == self.cap:
            self.cap = max(64, self.cap * 2)
            grown = <_Old *>realloc(self.items, self.cap * sizeof(_Old))
            if grown == NULL:
                raise MemoryError()
            self.items = grown
        o = &self.items[self.n]
        if old is _MISSING:
            o.n = OLD_MISSING
        elif PyTuple_CheckExact(old) and PyTuple_GET_SIZE(old) <= OLD_MAX_ITEMS:
            size = PyTuple_GET_SIZE(old)
            o.n = <int8_t>size
            for j in range(size):
                _old_item(o, <int>j, PyTuple_GET_ITEM(old, j))
        else:
            o.n = OLD_SCALAR
            _old_item(o, 0, <PyObject *>old)
        self.n += 1
        return 0

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

    cdef object state
    # The batch's values for the key: none, one (``first``), or a list (``more``). The list handed to the
    # update function is made just before the call, so it comes hot from CPython's free list instead of
    # having waited, cold, through the pass over every key.
    cdef Py_ssize_t n_pending
    cdef object first
    cdef list more


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

    cdef dict _states           # key -> state (key -> _Slot when slotted) while newest, else None
    cdef bint _slotted
    cdef dict _times            # key -> last update ms (with a timeout), else None
    cdef readonly bint timed
    cdef KeyedState newer
    cdef list undo_keys
    cdef _Olds undo_states
    cdef list undo_times
    cdef public object mapped

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


cdef inline void _untrack_internal(list items):
    """Untrack a list only this module ever holds (an undo log, the mapped results).

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


def update_state_by_key(list prev, object batch, object update):
    """One partition of updateStateByKey: ``update(new_values, old_state_or_None)`` for every key with state
    (in state order, [] when it got nothing) then every new key (in arrival order); None drops the key.

    ``prev`` is the previous partition: ``[KeyedState]``, or (key, state) pairs (an initial state).
    ``batch`` is a list of (key, value) pairs, or a FrameReader of them (read a chunk at a time).
    Returns ``[KeyedState]``: the new version (``prev``'s KeyedState becomes a view of the old one). When
    ``update`` raises, ``prev`` is left as it was.
    """
    with _GCPaused():
        return [_update_state_by_key(prev, batch, update)]


cdef KeyedState _update_state_by_key(list prev, object batch, object update):
    cdef KeyedState src = _source(prev)
    cdef KeyedState head = _writable(src, prev, False, True)
    cdef dict slots = head._states
    cdef dict fresh = {}
    cdef list keys = [], dead = []
    cdef _Olds olds = _Olds.__new__(_Olds)
    cdef PyObject *found
    cdef list chunk = _first_chunk(batch)
    cdef _Peek peek
    cdef Py_ssize_t i, n
    cdef Py_ssize_t pos = 0
    cdef PyObject *kp
    cdef PyObject *vp
    cdef _Slot slot
    cdef object k, v, old, r
    cdef list values
    cdef tuple rec
    # Read-ahead cursors over the slots, one dependent load each: 24 keys ahead the slot, 16 ahead its state,
    # 8 ahead what the state holds and the key's value.
    cdef Py_ssize_t pos_a = 0, pos_b = 0, pos_c = 0
    cdef PyObject *ka
    cdef PyObject *va
    try:
        while chunk is not None:
            n = PyList_GET_SIZE(chunk)
            _peek_start(&peek, chunk, n)
            for i in range(n):
                _peek_ahead(&peek, slots, chunk, i, n, 3)
                rec = _pair(<object>PyList_GET_ITEM(chunk, i))
                k = <object>PyTuple_GET_ITEM(rec, 0)
                v = <object>PyTuple_GET_ITEM(rec, 1)
                found = PyDict_GetItem(slots, k)
                if found == NULL:
                    found = PyDict_GetItem(fresh, k)
                    if found == NULL:
                        slot = _Slot.__new__(_Slot)
                        slot.state = _MISSING
                        slot.n_pending = 1
                        slot.first = v
                        PyDict_SetItem(fresh, k, slot)
                        continue
                _add_pending(<_Slot>found, v)
            rec = None
            chunk = _next_chunk(batch)
        for i in range(24):
            if PyDict_Next(slots, &pos_a, &ka, &va):
                _prefetch(va)
            if i >= 8 and PyDict_Next(slots, &pos_b, &ka, &va):
                _prefetch(<PyObject *>(<_Slot>va).state)
            if i >= 16 and PyDict_Next(slots, &pos_c, &ka, &va):
                _prefetch_items(<_Slot>va)
        while PyDict_Next(slots, &pos, &kp, &vp):
            if PyDict_Next(slots, &pos_a, &ka, &va):
                _prefetch(va)
            if PyDict_Next(slots, &pos_b, &ka, &va):
                _prefetch(<PyObject *>(<_Slot>va).state)
            if PyDict_Next(slots, &pos_c, &ka, &va):
                _prefetch_items(<_Slot>va)
            slot = <_Slot>vp
            old = slot.state
            values = _take_pending(slot)
            r = update(values, old)
            if r is old:
                continue
            if r is not None and _same_tuple(r, old):
                # Unchanged (a key without new values, typically): keep the old object, log nothing.
                continue
            PyList_Append(keys, <object>kp)
            olds.append(old)
            if r is None:
                PyList_Append(dead, <object>kp)
            else:
                _untrack_atomic(r)
                slot.state = r
        pos = 0
        while PyDict_Next(fresh, &pos, &kp, &vp):
            slot = <_Slot>vp
            r = update(_take_pending(slot), None)
            if r is not None:
                _untrack_atomic(r)
                slot.state = r
    except BaseException:
        for i in range(PyList_GET_SIZE(keys) - 1, -1, -1):
            (<_Slot>slots[<object>PyList_GET_ITEM(keys, i)]).state = olds.get(i)
        pos = 0
        while PyDict_Next(slots, &pos, &kp, &vp):
            _take_pending(<_Slot>vp)
        raise
    for k in dead:
        del slots[k]
    pos = 0
    while PyDict_Next(fresh, &pos, &kp, &vp):
        if (<_Slot>vp).state is not _MISSING:
            PyDict_SetItem(slots, <object>kp, <object>vp)
            PyList_Append(keys, <object>kp)
            olds.append(_MISSING)
    return _advance(src, head, keys, olds, None)


cdef inline void _add_pending(_Slot slot, object v) except *:
    if slot.n_pending == 0:
        slot.first = v
    elif slot.n_pending == 1:
        slot.more = [slot.first, v]
        slot.first = None
    else:
        PyList_Append(slot.more, v)
    slot.n_pending += 1


cdef inline list _take_pending(_Slot slot):
    """The key's values as a new list (the slot forgets them)."""
    cdef list values
    if slot.n_pending == 0:
        return []
    if slot.n_pending == 1:
        values = [slot.first]
        slot.first = None
    else:
        values = slot.more
        slot.more = None
    slot.n_pending = 0
    return values


@cython.freelist(8)
cdef class State:
    """The state of one key inside a mapWithState function (Scala's State)."""

    cdef public bint _defined
    cdef public object _value
    cdef public bint _updated
    cdef public bint _removed
    cdef public bint _timing_out

    def __init__(self, bint defined=False, object value=None, bint timing_out=False):
        self._defined = defined
        self._value = value
        self._updated = False
        self._removed = False
        self._timing_out = timing_out

    def exists(self):
        """Return whether the key has state."""
        return self._defined

    def get(self):
        """Return the state; NoSuchElementError if there is none."""
        if not self._defined:
            raise NoSuchElementError("State is not set")
        return self._value

    def getOption(self):
        """Return the state, or None if there is none."""
        return self._value if self._defined else None

    def update(self, newState):
        """Set the state; not allowed after remove() or while the key is timing out."""
        if self._removed:
            raise IllegalArgumentError("requirement failed: Cannot update the state after it has been removed")
        if self._timing_out:
            raise IllegalArgumentError("requirement failed: Cannot update the state that is timing out")
        self._defined = True
        self._value = newState
        self._updated = True

    def remove(self):
        """Remove the key's state; not allowed twice or while the key is timing out."""
        if self._timing_out:
            raise IllegalArgumentError("requirement failed: Cannot remove the state that is timing out")
        if self._removed:
            raise IllegalArgumentError("requirement failed: Cannot remove the state that has already been removed")
        self._defined = False
        self._value = None
        self._removed = True

    def isTimingOut(self):
        """Return whether the key is being called because its state timed out (value is None then)."""
        return self._timing_out

    def __repr__(self):
        return f"State({self._value!r})" if self._defined else "State(<not set>)"


def map_with_state(list prev, object batch, object func, long long t, object timeout):
    """One partition of mapWithState for batch time ``t`` (ms), ``timeout`` ms of idleness or None.

    ``prev`` is the previous partition: ``[KeyedState]``, or (key, state) pairs (an initial state); ``batch``
    is a list of (key, value) pairs, or a FrameReader of them (read a chunk at a time). Calls
    ``func(key, value, state)`` per record in order, then ``func(key, None, timing-out state)`` for keys idle
    longer than ``timeout``. Returns ``[KeyedState]``: the new version, with ``mapped`` set to the function's
    results; ``prev``'s KeyedState becomes a view of the old version. When ``func`` raises, ``prev`` is left
    as it was.
    """
    with _GCPaused():
        return [_map_with_state(prev, batch, func, t, timeout)]


cdef KeyedState _map_with_state(list prev, object batch, object func, long long t, object timeout):
    cdef bint timed = timeout is not None
    cdef KeyedState src = _source(prev)
    cdef KeyedState head = _writable(src, prev, timed, False)
    cdef dict states = head._states
    cdef dict times = head._times
    # Every change is logged (a key may be logged more than once: undo runs newest first).
    cdef list keys = []
    cdef _Olds olds = _Olds.__new__(_Olds)
    cdef list old_times = [] if timed else None
    cdef list mapped = []
    cdef list expired
    cdef list chunk = _first_chunk(batch)
    cdef _Peek peek
    cdef Py_ssize_t i, n
    cdef PyObject *found
    cdef State state
    cdef object k, v, r, old, tt = t
    cdef tuple rec
    cdef long long threshold
    try:
        while chunk is not None:
            n = PyList_GET_SIZE(chunk)
            _peek_start(&peek, chunk, n)
            for i in range(n):
                _peek_ahead(&peek, states, chunk, i, n, 4)
                rec = _pair(<object>PyList_GET_ITEM(chunk, i))
                k = <object>PyTuple_GET_ITEM(rec, 0)
                v = <object>PyTuple_GET_ITEM(rec, 1)
                found = PyDict_GetItem(states, k)
                state = State.__new__(State)
                if found != NULL:
                    old = <object>found
                    state._defined = True
                    state._value = old
                else:
                    old = _MISSING
                    state._value = None
                r = func(k, v, state)
                _untrack_atomic(r)
                PyList_Append(mapped, r)
                if state._removed:
                    if old is _MISSING:
                        continue
                    PyList_Append(keys, k)
                    olds.append(old)
                    if timed:
                        PyList_Append(old_times, times[k])
                        PyDict_DelItem(times, k)
                    PyDict_DelItem(states, k)
                elif state._updated or (timed and old is not _MISSING):
                    PyList_Append(keys, k)
                    olds.append(old)
                    if timed:
                        PyList_Append(old_times, _MISSING if old is _MISSING else times[k])
                        PyDict_SetItem(times, k, tt)
                    if state._updated:
                        _untrack_atomic(state._value)
                        PyDict_SetItem(states, k, state._value)
            rec = None
            chunk = _next_chunk(batch)
        if timed:
            # A key touched by this batch was stamped t, which is never below the threshold.
            threshold = t - <long long>timeout
            expired = [key for key, last in times.items() if last < threshold]
            for key in expired:
                old = states[key]
                state = State.__new__(State)
                state._defined = True
                state._value = old
                state._timing_out = True
                PyList_Append(mapped, func(key, None, state))
                PyList_Append(keys, key)
                olds.append(old)
                PyList_Append(old_times, times[key])
                del states[key]
                del times[key]
    except BaseException:
        _roll_back(states, times, keys, olds, old_times)
        raise
    out = _advance(src, head, keys, olds, old_times)
    _untrack_internal(mapped)
    out.mapped = mapped
    return out
