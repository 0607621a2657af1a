"""Keyed state across batches: updateStateByKey, and mapWithState with State and StateSpec (Scala's API).

State lives in RDDs hash-partitioned by key; each batch's data is partitioned the same way and merged into
the previous state partition by partition, so state never moves between partitions. State RDDs are kept in
memory (and materialised every batch, so lineage never grows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pystream.errors import IllegalArgumentError, NoSuchElementError
from pystream.rdd import RDD, ZippedPartitionsRDD
from pystream.streaming.dstream import DStream
from pystream.streaming.time import duration_ms

__all__ = ["State", "StateSpec", "StateDStream", "MapWithStateDStream"]


def _initial_state(ssc: Any, initial: RDD | Iterable[tuple[Any, Any]] | None, n: int) -> RDD | None:
    if initial is None:
        return None
    rdd = initial if isinstance(initial, RDD) else ssc.sparkContext.parallelize(list(initial))
    return rdd.partitionBy(n)


class StateDStream(DStream):
    """updateStateByKey: ``update(new_values, old_state_or_None)`` for every key with state or new values."""

    def __init__(self, parent: DStream, update: Callable[[list, Any], Any], num_partitions: int,
                 initial: RDD | Iterable[tuple[Any, Any]] | None) -> None:
        super().__init__(parent._ssc, parent._slide_ms, [parent])
        if not callable(update):
            raise TypeError("updateFunc should be callable")
        self._parent = parent
        self._update = update
        self._n = int(num_partitions)
        self._initial = _initial_state(parent._ssc, initial, self._n)
        self._persisted = True
        self._must_checkpoint = True
        self._ssc._graph.add_stateful_stream(self)

    def _compute(self, t: int) -> RDD | None:
        prev_t = t - self._slide_ms
        prev = self._get_or_compute(prev_t) if prev_t > (self._zero_ms or 0) else None
        if prev is None:
            prev = self._initial
        batch = self._parent._get_or_compute(t)
        if batch is None:
            batch = self._sc.emptyRDD()
        new = batch.partitionBy(self._n)
        if prev is None:
            prev = self._sc.parallelize([], self._n)
        return ZippedPartitionsRDD(self._sc, [prev, new], _UpdateState(self._update))


class _UpdateState:
    __slots__ = ("update",)

    def __init__(self, update: Callable[[list, Any], Any]) -> None:
        self.update = update

    def __call__(self, split: int, prev: list, batch: list) -> list:
        update = self.update
        grouped: dict[Any, list] = {}
        for k, v in batch:
            group = grouped.get(k)
            if group is None:
                grouped[k] = [v]
            else:
                group.append(v)
        out = []
        for k, s in prev:
            values = grouped.pop(k, None)
            r = update(values if values is not None else [], s)
            if r is not None:
                out.append((k, r))
        for k, values in grouped.items():
            r = update(values, None)
            if r is not None:
                out.append((k, r))
        return out


class State:
    """The state of one key inside a mapWithState function (Scala's State)."""

    __slots__ = ("_defined", "_value", "_updated", "_removed", "_timing_out")

    def __init__(self, defined: bool = False, value: Any = None, timing_out: bool = False) -> None:
        self._defined = defined
        self._value = value
        self._updated = False
        self._removed = False
        self._timing_out = timing_out

    def exists(self) -> bool:
        """Return whether the key has state."""
        return self._defined

    def get(self) -> Any:
        """Return the state; NoSuchElementError if there is none."""
        if not self._defined:
            raise NoSuchElementError("State is not set")
        return self._value

    def getOption(self) -> Any:
        """Return the state, or None if there is none."""
        return self._value if self._defined else None

    def update(self, newState: Any) -> None:
        """Set the state; not allowed after remove() or while the key is timing out."""
        if self._removed:
            raise IllegalArgumentError("requirement failed: Cannot update the state after it has been removed")
        if self._timing_out:
            raise IllegalArgumentError("requirement failed: Cannot update the state that is timing out")
        self._defined = True
        self._value = newState
        self._updated = True

    def remove(self) -> None:
        """Remove the key's state; not allowed twice or while the key is timing out."""
        if self._timing_out:
            raise IllegalArgumentError("requirement failed: Cannot remove the state that is timing out")
        if self._removed:
            raise IllegalArgumentError("requirement failed: Cannot remove the state that has already been removed")
        self._defined = False
        self._value = None
        self._removed = True

    def isTimingOut(self) -> bool:
        """Return whether the key is being called because its state timed out (value is None then)."""
        return self._timing_out

    def __repr__(self) -> str:
        return f"State({self._value!r})" if self._defined else "State(<not set>)"


class StateSpec:
    """What mapWithState needs: ``StateSpec.function(f).initialState(rdd).numPartitions(n).timeout(seconds)``."""

    def __init__(self, func: Callable[[Any, Any, State], Any]) -> None:
        if not callable(func):
            raise TypeError("the mapping function should be callable")
        self._func = func
        self._initial: RDD | Iterable[tuple[Any, Any]] | None = None
        self._num_partitions: int | None = None
        self._timeout_ms: int | None = None

    @staticmethod
    def function(mappingFunction: Callable[[Any, Any, State], Any]) -> StateSpec:
        """Return a StateSpec for ``mappingFunction(key, value, state)``."""
        return StateSpec(mappingFunction)

    def initialState(self, rdd: RDD | Iterable[tuple[Any, Any]]) -> StateSpec:
        """Start from the (key, state) pairs of ``rdd``; returns this StateSpec."""
        self._initial = rdd
        return self

    def numPartitions(self, numPartitions: int) -> StateSpec:
        """Hash-partition the state into ``numPartitions``; returns this StateSpec."""
        if int(numPartitions) < 1:
            raise ValueError(f"numPartitions must be positive, got {numPartitions}")
        self._num_partitions = int(numPartitions)
        return self

    def timeout(self, idleDuration: float) -> StateSpec:
        """Time out keys that received no data for ``idleDuration`` seconds; returns this StateSpec."""
        self._timeout_ms = duration_ms(idleDuration, "timeout")
        return self


class _StatePartition:
    """One partition of mapWithState's state: key -> [state, last update ms], plus the batch's outputs."""

    __slots__ = ("states", "mapped")

    def __init__(self, states: dict[Any, list], mapped: list) -> None:
        self.states = states
        self.mapped = mapped


class _InternalMapWithState(DStream):
    def __init__(self, parent: DStream, spec: StateSpec) -> None:
        super().__init__(parent._ssc, parent._slide_ms, [parent])
        self._parent = parent
        self._spec = spec
        self._n = spec._num_partitions or self._sc.defaultParallelism
        initial = _initial_state(parent._ssc, spec._initial, self._n)
        self._initial = None if initial is None else initial.mapPartitions(_to_state_partition)
        self._persisted = True
        self._must_checkpoint = True
        self._ssc._graph.add_stateful_stream(self)

    def _compute(self, t: int) -> RDD | None:
        prev_t = t - self._slide_ms
        prev = self._get_or_compute(prev_t) if prev_t > (self._zero_ms or 0) else None
        if prev is None:
            prev = self._initial
        batch = self._parent._get_or_compute(t)
        if batch is None:
            batch = self._sc.emptyRDD()
        new = batch.partitionBy(self._n)
        if prev is None:
            prev = self._sc.parallelize([], self._n)
        return ZippedPartitionsRDD(self._sc, [prev, new], _MapWithState(self._spec._func, t, self._spec._timeout_ms))


def _to_state_partition(it: Iterable[tuple[Any, Any]]) -> list:
    return [_StatePartition({k: [v, 0] for k, v in it}, [])]


class _MapWithState:
    __slots__ = ("func", "t", "timeout")

    def __init__(self, func: Callable[[Any, Any, State], Any], t: int, timeout: int | None) -> None:
        self.func, self.t, self.timeout = func, t, timeout

    def __call__(self, split: int, prev: list, batch: list) -> list:
        # A fresh map per batch: a batch that fails half-way must not leave its changes in the previous state.
        states: dict[Any, list] = dict(prev[0].states) if prev else {}
        mapped = []
        func, t, timeout = self.func, self.t, self.timeout
        touched = set() if timeout is not None else None
        for k, v in batch:
            entry = states.get(k)
            state = State(True, entry[0]) if entry is not None else State()
            mapped.append(func(k, v, state))
            if state._removed:
                states.pop(k, None)
            elif state._updated:
                states[k] = [state._value, t]
            elif entry is not None and timeout is not None:
                states[k] = [entry[0], t]  # a new list: the previous batch's state shares the old one
            if touched is not None:
                touched.add(k)
        if timeout is not None:
            threshold = t - timeout
            expired = [k for k, e in states.items() if e[1] < threshold and k not in touched]
            for k in expired:
                state = State(True, states[k][0], timing_out=True)
                mapped.append(func(k, None, state))
                del states[k]
        return [_StatePartition(states, mapped)]


class MapWithStateDStream(DStream):
    """What the mapping function returned for each record of each batch; ``stateSnapshots()`` gives the state."""

    def __init__(self, parent: DStream, spec: StateSpec) -> None:
        internal = _InternalMapWithState(parent, spec)
        super().__init__(parent._ssc, parent._slide_ms, [internal])
        self._internal = internal

    def _compute(self, t: int) -> RDD | None:
        rdd = self._internal._get_or_compute(t)
        return None if rdd is None else rdd.flatMap(_mapped_of)

    def stateSnapshots(self) -> DStream:
        """Return a pair DStream of every key's state after each batch."""
        return _SnapshotDStream(self._internal)


def _mapped_of(part: _StatePartition) -> list:
    return part.mapped


def _states_of(part: _StatePartition) -> list:
    return [(k, e[0]) for k, e in part.states.items()]


class _SnapshotDStream(DStream):
    def __init__(self, internal: _InternalMapWithState) -> None:
        super().__init__(internal._ssc, internal._slide_ms, [internal])
        self._internal = internal

    def _compute(self, t: int) -> RDD | None:
        rdd = self._internal._get_or_compute(t)
        return None if rdd is None else rdd.flatMap(_states_of)
