# cython: language_level=3
"""Keyed-state kernels: the per-partition loops of updateStateByKey and mapWithState, and Scala's State.

The user's function is still called once per key (updateStateByKey) or per record (mapWithState), as the API
requires; everything around the call (grouping, dict lookups, State objects, output lists) runs in C.
"""
cimport cython
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem, PyDict_Next, PyDict_Copy
from cpython.list cimport PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport PyObject

from pystream.errors import IllegalArgumentError, NoSuchElementError

cdef extern from "Python.h":
    bint PyTuple_CheckExact(object o)
    int PyGC_Disable()
    int PyGC_Enable()
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


cdef inline tuple _pair(object rec):
    # An exact 2-tuple is used as it is; other pairs (lists, namedtuples) are unpacked once.
    if PyTuple_CheckExact(rec) and PyTuple_GET_SIZE(rec) == 2:
        return <tuple>rec
    try:
        k, v = rec
    except (TypeError, ValueError):
        raise TypeError(f"keyed state needs (key, value) pairs, got {type(rec).__name__}: {rec!r:.80}") from None
    return (k, v)


def update_state_by_key(list prev, list batch, object update):
    """One partition of updateStateByKey: ``update(new_values, old_state_or_None)`` for every key with state
    (in state order, [] when it got nothing) then every new key (in arrival order); None drops the key.
    Returns the new state as a list of (key, state) pairs."""
    with _GCPaused():
        return _update_state_by_key(prev, batch, update)


cdef list _update_state_by_key(list prev, list batch, object update):
    cdef dict grouped = {}
    cdef list out = []
    cdef list empty
    cdef PyObject *found
    cdef Py_ssize_t i, n
    cdef Py_ssize_t pos = 0
    cdef PyObject *kp
    cdef PyObject *vp
    cdef object k, v, s, r, values, pair
    cdef tuple rec
    n = PyList_GET_SIZE(batch)
    for i in range(n):
        rec = _pair(<object>PyList_GET_ITEM(batch, i))
        k = <object>PyTuple_GET_ITEM(rec, 0)
        v = <object>PyTuple_GET_ITEM(rec, 1)
        found = PyDict_GetItem(grouped, k)
        if found == NULL:
            PyDict_SetItem(grouped, k, [v])
        else:
            PyList_Append(<list>found, v)
    n = PyList_GET_SIZE(prev)
    for i in range(n):
        rec = _pair(<object>PyList_GET_ITEM(prev, i))
        k = <object>PyTuple_GET_ITEM(rec, 0)
        s = <object>PyTuple_GET_ITEM(rec, 1)
        found = PyDict_GetItem(grouped, k)
        if found == NULL:
            r = update([], s)
        else:
            values = <object>found
            PyDict_DelItem(grouped, k)
            r = update(values, s)
        if r is not None:
            pair = (k, r)
            _untrack_atomic(pair)
            PyList_Append(out, pair)
    while PyDict_Next(grouped, &pos, &kp, &vp):
        r = update(<object>vp, None)
        if r is not None:
            pair = (<object>kp, r)
            _untrack_atomic(pair)
            PyList_Append(out, pair)
    return out


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


cdef object _NO_STATE = object()


def map_with_state(dict prev_states, object prev_times, list batch, object func, long long t, object timeout):
    """One partition of mapWithState for batch time ``t`` (ms).

    ``prev_states`` maps key -> state; ``prev_times`` maps key -> last update ms (None without a timeout).
    Calls ``func(key, value, state)`` per record in order, then ``func(key, None, timing-out state)`` for keys
    idle longer than ``timeout`` ms. The previous maps are not modified (a failing batch leaves them intact).
    Returns (states, times, mapped).
    """
    with _GCPaused():
        return _map_with_state(prev_states, prev_times, batch, func, t, timeout)


cdef tuple _map_with_state(dict prev_states, object prev_times, list batch, object func, long long t,
                           object timeout):
    cdef dict states = PyDict_Copy(prev_states)
    cdef dict times = PyDict_Copy(prev_times) if prev_times is not None else None
    cdef set touched = set() if timeout is not None else None
    cdef list mapped = []
    cdef Py_ssize_t i, n = PyList_GET_SIZE(batch)
    cdef PyObject *found
    cdef State state
    cdef object k, v, r, tt = t
    cdef tuple rec
    cdef long long threshold
    for i in range(n):
        rec = _pair(<object>PyList_GET_ITEM(batch, i))
        k = <object>PyTuple_GET_ITEM(rec, 0)
        v = <object>PyTuple_GET_ITEM(rec, 1)
        found = PyDict_GetItem(states, k)
        state = State.__new__(State)
        if found != NULL:
            state._defined = True
            state._value = <object>found
        else:
            state._value = None
        r = func(k, v, state)
        _untrack_atomic(r)
        PyList_Append(mapped, r)
        if state._removed:
            if found != NULL:
                PyDict_DelItem(states, k)
                if times is not None and k in times:
                    del times[k]
        elif state._updated:
            _untrack_atomic(state._value)
            PyDict_SetItem(states, k, state._value)
            if times is not None:
                PyDict_SetItem(times, k, tt)
        elif found != NULL and times is not None:
            PyDict_SetItem(times, k, tt)
        if touched is not None:
            touched.add(k)
    if timeout is not None:
        threshold = t - <long long>timeout
        expired = [key for key, last in times.items() if last < threshold and key not in touched]
        for key in expired:
            state = State.__new__(State)
            state._defined = True
            state._value = states[key]
            state._timing_out = True
            PyList_Append(mapped, func(key, None, state))
            del states[key]
            del times[key]
    return states, times, mapped
