# cython: language_level=3
"""Keyed-state kernels: the per-partition loops of updateStateByKey and mapWithState, and Scala's State.

The user's function is still called once per key (updateStateByKey) or per record (mapWithState), as the API
requires; everything around the call (grouping, dict lookups, State objects, output lists) runs in C.

The store the kernels update, KeyedState, and its undo log are in keyed_state.pyx. State stays here, next to
the mapWithState loop, which makes one per record.
"""
cimport cython
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem, PyDict_Next
from cpython.list cimport PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.set cimport PySet_GET_SIZE
from cpython.ref cimport PyObject

# Cimported under another name so that the Python import of KeyedState below binds it: Cython drops a Python
# import of a name it has cimported.
from pystream._core.keyed_state cimport KeyedState as _KeyedState
from pystream._core.keyed_state cimport (
    _Olds,
    _Slot,
    _advance,
    _missing_marker,
    _pair,
    _roll_back,
    _source,
    _untrack_atomic,
    _untrack_internal,
    _writable,
)
from pystream._core.lookahead cimport _Peek, _peek_ahead, _peek_start
from pystream._core.serialisation cimport private_copy, unchangeable
from pystream._core.deserialisation import FrameReader
from pystream.errors import IllegalArgumentError, NoSuchElementError

# Still importable from here: pystream._core.state.KeyedState, and the reducer that checkpoints written while
# KeyedState lived in this module name.
from pystream._core.keyed_state import KeyedState, _restore_keyed_state

cdef extern from "Python.h":
    bint PyTuple_CheckExact(object o)
    Py_ssize_t Py_REFCNT(object o)
    int PyGC_Disable()
    int PyGC_Enable()

cdef extern from *:
    void _prefetch "__builtin_prefetch"(const void *p)

# keyed_state's "no state" marker, in a C global of this module's own: the loops test for it per record.
cdef object _MISSING = _missing_marker()


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


cdef _KeyedState _update_state_by_key(list prev, object batch, object update):
    cdef _KeyedState src = _source(prev)
    cdef _KeyedState head = _writable(src, prev, False, True)
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
            # A state that can change is handed over as a copy (as pyspark's workers unpickle it each batch):
            # changed in place, it would also change the versions before, and what a failed batch restores.
            r = update(values, old if unchangeable(old, 0) else private_copy(old))
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
            olds.append_missing()
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


cdef _KeyedState _map_with_state(list prev, object batch, object func, long long t, object timeout):
    cdef bint timed = timeout is not None
    cdef _KeyedState src = _source(prev)
    cdef _KeyedState head = _writable(src, prev, timed, False)
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
    cdef State state = None
    cdef object k, v, r, old, cp, tt = t
    cdef set private = set()  # keys whose state this batch already copied
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
                # The last record's State is reused unless the function kept it: one object fewer to make
                # and free per record.
                if state is None or Py_REFCNT(state) != 1:
                    state = State.__new__(State)
                else:
                    state._updated = False
                    state._removed = False
                if found != NULL:
                    old = <object>found
                    if PySet_GET_SIZE(private) == 0 or k not in private:
                        # A state that can change is copied the first time the batch reaches its key, and the
                        # original logged: the function may change it in place without changing the versions
                        # before, or what a failed batch restores.
                        cp = old if unchangeable(old, 0) else private_copy(old)
                        if cp is not old:
                            private.add(k)
                            PyList_Append(keys, k)
                            olds.append(old)
                            if timed:
                                PyList_Append(old_times, times[k])
                            PyDict_SetItem(states, k, cp)
                            old = cp
                    state._defined = True
                    state._value = old
                else:
                    old = _MISSING
                    state._defined = False
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
                    if old is _MISSING:
                        olds.append_missing()
                    else:
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
                state._value = old if key in private or unchangeable(old, 0) else private_copy(old)
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
