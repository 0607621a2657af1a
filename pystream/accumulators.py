"""Accumulators: variables that tasks only add to and the driver reads (pyspark's ``pyspark.accumulators``).

``sc.accumulator(0)`` gives an :class:`Accumulator`. A task function that refers to it gets its own copy,
starting at zero (``accum_param.zero``); what the task added goes back to the driver with the task's result and
is added into the driver's accumulator there. So, as in Spark:

- only the driver reads ``value``; reading it inside a task raises IllegalStateError;
- the updates of a task that fails are dropped: a task retried after an error or a lost worker counts once;
- a task that runs again because its output was needed again (an RDD recomputed, not cached) adds again.
  Updates made in actions (``foreach``, ``foreachPartition``) count exactly once per successful task.

Both executors keep to this: the in-process executor runs a task with its updates held aside, added to the
driver's accumulators when the task returns.

An accumulator travels in a task function as its id, zero and AccumulatorParam. A worker keeps one copy per id
for the life of the process (functions are shipped to a worker once and reused for every batch): each task
starts it from zero, and the task's reply carries the copies it added to.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import weakref
from typing import Any, Generic, TypeVar

from pystream.errors import IllegalStateError

T = TypeVar("T")

__all__ = ["Accumulator", "AccumulatorParam", "AddingAccumulatorParam", "INT_ACCUMULATOR_PARAM",
           "FLOAT_ACCUMULATOR_PARAM", "COMPLEX_ACCUMULATOR_PARAM"]


class AccumulatorParam(Generic[T]):
    """How values of an accumulator's type add up: subclass it for a type of your own (pyspark's)."""

    def zero(self, value: T) -> T:
        """Return the "zero" for the type of ``value`` (an empty vector of its length, say)."""
        raise NotImplementedError

    def addInPlace(self, value1: T, value2: T) -> T:
        """Add two values of the accumulator's type and return the sum; may change and return ``value1``."""
        raise NotImplementedError


class AddingAccumulatorParam(AccumulatorParam[T]):
    """An AccumulatorParam that adds with ``+=``, from a given zero."""

    def __init__(self, zero_value: T) -> None:
        self.zero_value = zero_value

    def zero(self, value: T) -> T:
        return self.zero_value

    def addInPlace(self, value1: T, value2: T) -> T:
        value1 += value2  # type: ignore[operator]
        return value1


INT_ACCUMULATOR_PARAM = AddingAccumulatorParam(0)
FLOAT_ACCUMULATOR_PARAM = AddingAccumulatorParam(0.0)
COMPLEX_ACCUMULATOR_PARAM = AddingAccumulatorParam(0.0j)

# Ids start at random: a graph recovered from a checkpoint, or a worker of another driver, never takes an id of
# this driver's for one of its own accumulators.
_ids = itertools.count(secrets.randbits(62))
# The driver's accumulators by id, to add the tasks' updates into (one nothing refers to any more is dropped).
_driver: weakref.WeakValueDictionary[int, Accumulator] = weakref.WeakValueDictionary()
# A worker's copies by id (see the module's docstring).
_copies: dict[int, Accumulator] = {}
# The updates of the task this thread runs in the driver (the in-process executor), else None.
_local = threading.local()


class Accumulator(Generic[T]):
    """A shared variable that tasks add to with ``add`` (or ``+=``) and only the driver reads (``value``)."""

    def __init__(self, aid: int, value: T, accum_param: AccumulatorParam[T]) -> None:
        self.aid = aid
        self.accum_param = accum_param
        self._value = value
        self._copy = False  # a task's copy, not the driver's accumulator
        self._zero: Any = None  # a copy's zero, each task's start
        self._added = False  # whether the task running has added to this copy
        self._lock = threading.Lock()

    def _in_driver(self) -> None:
        if self._copy or getattr(_local, "updates", None) is not None:
            raise IllegalStateError("Accumulator.value cannot be accessed inside tasks")

    @property
    def value(self) -> T:
        """The accumulated value; only the driver may read it."""
        self._in_driver()
        return self._value

    @value.setter
    def value(self, value: T) -> None:
        self._in_driver()
        with self._lock:
            self._value = value

    def add(self, term: T) -> None:
        """Add ``term`` to this accumulator's value (in a task: to the task's own update)."""
        if self._copy:
            self._value = self.accum_param.addInPlace(self._value, term)
            self._added = True
            return
        updates = getattr(_local, "updates", None)
        if updates is not None:  # a task of the in-process executor: held until the task returns
            held = updates.get(self.aid)
            if held is None:
                held = updates[self.aid] = [self.accum_param.zero(self._value)]
            held[0] = self.accum_param.addInPlace(held[0], term)
            return
        with self._lock:
            self._value = self.accum_param.addInPlace(self._value, term)

    def __iadd__(self, term: T) -> Accumulator[T]:
        self.add(term)
        return self

    def __reduce__(self) -> tuple:
        return (_task_copy, (self.aid, self.accum_param.zero(self._value), self.accum_param))

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return f"Accumulator<id={self.aid}, value={self._value}>"


def new_accumulator(value: T, accum_param: AccumulatorParam[T] | None = None) -> Accumulator[T]:
    """A driver accumulator starting at ``value`` (what ``SparkContext.accumulator`` returns)."""
    if accum_param is None:
        # bool is an int to Python; pyspark too gives it the int param.
        if isinstance(value, int):
            accum_param = INT_ACCUMULATOR_PARAM  # type: ignore[assignment]
        elif isinstance(value, float):
            accum_param = FLOAT_ACCUMULATOR_PARAM  # type: ignore[assignment]
        elif isinstance(value, complex):
            accum_param = COMPLEX_ACCUMULATOR_PARAM  # type: ignore[assignment]
        else:
            raise TypeError(f"No default accumulator param for type {type(value)}")
    acc = Accumulator(next(_ids), value, accum_param)  # type: ignore[arg-type]
    _driver[acc.aid] = acc
    return acc


def _task_copy(aid: int, zero: Any, accum_param: AccumulatorParam) -> Accumulator:
    """Unpickling an accumulator (in a worker): the process's one copy of it, made on first sight."""
    acc = _copies.get(aid)
    if acc is None:
        acc = Accumulator(aid, zero, accum_param)
        acc._copy, acc._zero = True, zero
        _copies[aid] = acc
    return acc


# -- the worker's side of a task ------------------------------------------------------------------------------
def start_task() -> None:
    """Start every copy in this process from zero, for the task about to run."""
    for acc in _copies.values():
        if acc._added:
            acc._value = acc.accum_param.zero(acc._zero)
            acc._added = False


def task_updates() -> dict[int, Any] | None:
    """What the task that just ran added, by accumulator id (None if nothing)."""
    return {aid: acc._value for aid, acc in _copies.items() if acc._added} or None


# -- the driver's side -----------------------------------------------------------------------------------------
def apply_updates(updates: dict[int, Any] | None) -> None:
    """Add a successful task's updates into the driver's accumulators."""
    if not updates:
        return
    for aid, value in updates.items():
        acc = _driver.get(aid)
        if acc is not None:
            with acc._lock:
                acc._value = acc.accum_param.addInPlace(acc._value, value)


class held_updates:
    """Runs a task in the driver with its accumulator updates held aside (``with held_updates() as h``), so that
    only a task that returns adds them (``h.apply()``)."""

    def __enter__(self) -> held_updates:
        self._outer = getattr(_local, "updates", None)
        self.updates: dict[int, list] = {}
        _local.updates = self.updates
        return self

    def __exit__(self, *exc: Any) -> None:
        _local.updates = self._outer

    def apply(self) -> None:
        apply_updates({aid: held[0] for aid, held in self.updates.items()})
