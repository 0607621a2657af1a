"""Keyed state across batches: updateStateByKey, and mapWithState with State and StateSpec (Scala's API).

State lives in RDDs hash-partitioned by key, one :class:`~pystream._core.state.KeyedState` per partition; each
batch's data is partitioned the same way and applied to the previous state partition by partition, in place
(the previous version stays readable as a view), so state never moves and is never copied. State RDDs are
kept in memory (and materialised every batch, so lineage never grows). The DStreams users see are views of
those: the (key, state) pairs, what mapWithState's function returned, and the snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pystream._core.deserialisation import FrameReader
from pystream._core.hashing import portable_hash
from pystream._core.state import KeyedState, State, map_with_state, update_state_by_key
from pystream.errors import StateLostError
from pystream.lineage import ZippedPartitionsRDD
from pystream.shuffle import Partitioner
from pystream.rdd import RDD
from pystream.streaming.dstream import DStream
from pystream.streaming.time import duration_ms

__all__ = ["State", "StateSpec", "StateDStream", "MapWithStateDStream"]


def _initial_state(ssc: Any, initial: RDD | Iterable[tuple[Any, Any]] | None, n: int) -> RDD | None:
    if initial is None:
        return None
    rdd = initial if isinstance(initial, RDD) else ssc.sparkContext.parallelize(list(initial))
    return rdd.partitionBy(n)


class _StateRDD(ZippedPartitionsRDD):
    """A keyed-state stream's state at one batch. The batch's function is run once: if it raises, that failure
    is kept and raised again to whatever reads this state later, never run a second time (the kernels have left
    the state partitions as the batch before left them)."""

    _failure: Exception | None = None

    def _do_compute(self) -> list[list]:
        if self._failure is not None:
            raise self._failure
        try:
            return super()._do_compute()
        except StateLostError:
            raise  # a dead worker: rebuilt and retried (_on_lost), not a failure of the function
        except Exception as exc:
            self._failure = exc
            raise


class _KeyedStateDStream(DStream):
    """What updateStateByKey and mapWithState share: state(t) = per-partition f(state(t - slide), batch(t)),
    and the rebuild of a previous state lost with a worker, from the newest state checkpoint plus the batches
    since (which the sources replay)."""

    _n: int
    _initial: RDD | None
    _parent: DStream

    def _task(self, t: int) -> Callable[..., list]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _empty_state(self) -> RDD:
        return self._sc.parallelize([], self._n)

    def _prev_state(self, t: int) -> RDD:
        prev_t = t - self._slide_ms
        if self._lost_at is not None and prev_t >= self._lost_at:
            # Each later state builds on the one that could not be rebuilt: made from what is left (the batches
            # whose data the sources still have), it would be silently wrong.
            raise StateLostError(
                f"state of {type(self).__name__} was lost at {self._lost_at} ms and could not be rebuilt; every "
                "later batch of this stream fails (restart from a checkpoint with sources that replay)")
        prev = self._get_or_compute(prev_t) if prev_t > (self._zero_ms or 0) else None
        if prev is not None and prev._lost:
            prev = self._rebuild(prev_t)
        if prev is None:
            prev = self._initial if self._initial is not None else self._empty_state()
        return prev

    def _rebuild(self, prev_t: int) -> RDD | None:
        """The state at ``prev_t`` again, after its partitions were lost: from a checkpoint, else an error."""
        # The job thread may rebuild while the timer thread generates the next batch of this stream.
        with self._ssc._graph.lock:
            try:
                return self._rebuild_locked(prev_t)
            except StateLostError:
                self._lost_at = prev_t if self._lost_at is None else min(self._lost_at, prev_t)
                raise

    #: The batch time whose state was lost for good (see _prev_state); None while the state is whole.
    _lost_at: int | None = None

    def __getstate__(self) -> dict:
        # A context recovered from a checkpoint rebuilds its state: what this driver lost is not its loss.
        state = super().__getstate__()
        state.pop("_lost_at", None)
        return state

    def _regenerated(self, t: int) -> RDD | None:
        return self._rebuild(t)

    def _rebuild_locked(self, prev_t: int) -> RDD | None:
        writer = self._ssc._checkpoint_writer
        stream = self._ssc._graph.stateful_streams.index(self)
        found = writer.load_state(stream, prev_t) if writer is not None else None
        if found is None:
            horizon = self._zero_ms or 0
            if writer is not None and all(inp._replayable_since(horizon) for inp in self._ssc._graph.input_streams):
                found = (horizon, None)  # no state written yet, but every batch since the start replays
            else:
                raise StateLostError(
                    f"state of {type(self).__name__} at {prev_t} ms was lost with a worker process and cannot be "
                    "rebuilt: " + ("no usable state checkpoint, and the sources cannot replay every batch since"
                                   if writer is not None else "checkpointing is off (StreamingContext.checkpoint)"))
        base_t, parts = found
        for k in [k for k in self._generated if base_t <= k <= prev_t]:
            del self._generated[k]
        if parts is not None:
            from pystream.checkpoint import _restored_rdd

            self._generated[base_t] = self._restored(_restored_rdd(self._sc, parts))
        return self._get_or_compute(prev_t) if prev_t > (self._zero_ms or 0) else None

    def _restored(self, rdd: RDD) -> RDD:
        return rdd

    def _compute(self, t: int) -> RDD | None:
        prev = self._prev_state(t)
        batch = self._parent._get_or_compute(t)
        if batch is None:
            batch = self._sc.emptyRDD()
        rdd = _StateRDD(self._sc, [prev, batch.partitionBy(self._n)], self._task(t))

        def rebuild() -> None:
            # A worker died while this batch ran: rebuild the previous state and retry with it.
            rebuilt = self._rebuild(t - self._slide_ms)
            rdd._rdds[0] = rebuilt if rebuilt is not None else (
                self._initial if self._initial is not None else self._empty_state())

        rdd._on_lost = rebuild
        return rdd

    def _materialize(self, t: int) -> None:
        """Compute the state of batch ``t`` if no output did, and cut its lineage. If the batch's function
        raised, the state stays as the batch before left it: that state stands for batch ``t`` too (the
        batch's records are dropped), so the stream goes on. Raises the failure if it is new here."""
        rdd = self._generated.get(t)
        if rdd is None:
            return
        reported = isinstance(rdd, _StateRDD) and rdd._failure is not None
        try:
            rdd._compute()
        except Exception:
            if not (isinstance(rdd, _StateRDD) and rdd._failure is not None):
                raise
            self._generated[t] = rdd._rdds[0]
            if not reported:
                raise
            return
        rdd._truncate_lineage()


class _InternalUpdateState(_KeyedStateDStream):
    def __init__(self, parent: DStream, update: Callable[[list, Any], Any], num_partitions: int,
                 initial: RDD | Iterable[tuple[Any, Any]] | None) -> None:
        super().__init__(parent._ssc, parent._slide_ms, [parent])
        if not callable(update):
            raise TypeError("updateFunc should be callable")
        self._parent = parent
        self._update = update
        self._n = int(num_partitions)
        self._initial = _initial_state(parent._ssc, initial, self._n)
        if self._initial is not None:
            # A key given twice starts from its first state, as in pyspark (mapWithState keeps the last, as Scala).
            self._initial = self._initial.mapPartitions(_first_per_key, True)
        self._persisted = True
        self._must_checkpoint = True
        self._ssc._graph.add_stateful_stream(self)

    def _task(self, t: int) -> Callable[..., list]:
        return _UpdateState(self._update)


def _first_per_key(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    first: dict[Any, Any] = {}
    for k, v in pairs:
        first.setdefault(k, v)
    return list(first.items())


class _StateView(DStream):
    """A DStream computed from a keyed-state stream's partitions; checkpoint() applies to the state."""

    def __init__(self, internal: _KeyedStateDStream, of: Callable[[KeyedState], list]) -> None:
        super().__init__(internal._ssc, internal._slide_ms, [internal])
        self._internal = internal
        self._of = of

    def _compute(self, t: int) -> RDD | None:
        rdd = self._internal._get_or_compute(t)
        if rdd is None:
            return None
        view = rdd.mapPartitions(_Parts(self._of))
        if self._of is _states_of:
            # (key, state) pairs where the batches were partitioned to: a join or reduceByKey with the same
            # partitioning after it needs no shuffle.
            view.partitioner = Partitioner(self._internal._n, portable_hash)
        return view

    def checkpoint(self, interval: float) -> DStream:
        """Checkpoint the state every ``interval`` seconds (a multiple of the slide); returns this DStream."""
        self._internal.checkpoint(interval)
        return self


class StateDStream(_StateView):
    """updateStateByKey: ``update(new_values, old_state_or_None)`` for every key with state or new values;
    each batch's RDD holds every key's (key, state)."""

    def __init__(self, parent: DStream, update: Callable[[list, Any], Any], num_partitions: int,
                 initial: RDD | Iterable[tuple[Any, Any]] | None) -> None:
        super().__init__(_InternalUpdateState(parent, update, num_partitions, initial), _states_of)


def _state_list(prev: Any) -> list:
    # The first state can arrive as the driver encoded it (an initial RDD split on the driver): the kernels
    # read the new records as they come, but keep the state as a list.
    return list(prev) if isinstance(prev, FrameReader) else prev


class _UpdateState:
    __slots__ = ("update",)
    # The kernel reads the batch's records once, in order: a worker may hand them over a chunk at a time.
    streams_input = True

    def __init__(self, update: Callable[[list, Any], Any]) -> None:
        self.update = update

    def __call__(self, split: int, prev: list, batch: list) -> list:
        return update_state_by_key(_state_list(prev), batch, self.update)


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


class _InternalMapWithState(_KeyedStateDStream):
    def __init__(self, parent: DStream, spec: StateSpec) -> None:
        super().__init__(parent._ssc, parent._slide_ms, [parent])
        self._parent = parent
        self._spec = spec
        self._n = spec._num_partitions or self._sc.defaultParallelism
        self._initial = _initial_state(parent._ssc, spec._initial, self._n)
        self._persisted = True
        self._must_checkpoint = True
        self._ssc._graph.add_stateful_stream(self)

    def _task(self, t: int) -> Callable[..., list]:
        return _MapWithState(self._spec._func, t, self._spec._timeout_ms)


class _MapWithState:
    __slots__ = ("func", "t", "timeout")
    streams_input = True

    def __init__(self, func: Callable[[Any, Any, State], Any], t: int, timeout: int | None) -> None:
        self.func, self.t, self.timeout = func, t, timeout

    def __call__(self, split: int, prev: list, batch: list) -> list:
        return map_with_state(_state_list(prev), batch, self.func, self.t, self.timeout)


class MapWithStateDStream(_StateView):
    """What the mapping function returned for each record of each batch; ``stateSnapshots()`` gives the state."""

    def __init__(self, parent: DStream, spec: StateSpec) -> None:
        super().__init__(_InternalMapWithState(parent, spec), _mapped_of)

    def stateSnapshots(self) -> DStream:
        """Return a pair DStream of every key's state after each batch."""
        return _StateView(self._internal, _states_of)


class _Parts:
    """A view's records of one state partition: ``of(part)`` for its KeyedState (a list, so counting the
    view needs no pass over the records)."""

    __slots__ = ("of",)

    def __init__(self, of: Callable[[KeyedState], list]) -> None:
        self.of = of

    def __call__(self, parts: Iterable[KeyedState]) -> list:
        out: list | None = None
        for part in parts:
            got = self.of(part)
            out = got if out is None else out + got
        return [] if out is None else out


def _mapped_of(part: KeyedState) -> list:
    return part.mapped


def _states_of(part: KeyedState) -> list:
    return part.items()
