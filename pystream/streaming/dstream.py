"""DStream: a continuous sequence of RDDs, one per batch, with pyspark's API.

Each method says what it returns; transformations return new DStreams and are lazy, output operations
(foreachRDD, pprint, saveAsTextFiles) register jobs that run every batch. Consecutive transformations fuse
into one function per batch (as pyspark's TransformedDStream), and the RDDs they produce fuse their narrow
steps per partition, so a chain like ``flatMap().map().reduceByKey()`` is one pass plus one shuffle.
"""

from __future__ import annotations

import inspect
import operator
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pystream._core.hashing import portable_hash
from pystream.actions import str_lines
from pystream.errors import IllegalArgumentError
from pystream.output import write_text_dir
from pystream.jobs import user_line
from pystream.lineage import union
from pystream.rdd import RDD, ResultIterable, partition_count
from pystream.streaming.time import duration_ms, ms_to_datetime, to_ms

if TYPE_CHECKING:
    from pystream.streaming.context import StreamingContext
    from pystream.streaming.state import StateSpec

__all__ = ["DStream"]


def _arity(func: Callable[..., Any]) -> int:
    code = getattr(func, "__code__", None)
    if code is not None:
        return code.co_argcount - (1 if hasattr(func, "__self__") else 0)
    try:
        return len(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return 1


def _with_time(func: Callable[..., Any], extra: int) -> Callable[..., Any]:
    """Accept both ``f(rdd...)`` and ``f(time, rdd...)`` user functions, as pyspark does; a function that takes
    neither raises IllegalArgumentError here, where the stream is defined, not in a batch later (pyspark
    asserts the same)."""
    if not callable(func):
        raise TypeError(f"expected a function, got {type(func).__name__}")
    arity = _arity(func)
    if arity == extra:
        return lambda t, *rdds: func(*rdds)
    if arity != extra + 1 and not _takes_varargs(func):
        names = "rdd" if extra == 1 else ", ".join(f"rdd_{c}" for c in "ab"[:extra])
        raise IllegalArgumentError(
            f"func should take {extra} or {extra + 1} arguments ({names}, or time, {names}), not {arity}")
    return lambda t, *rdds: func(ms_to_datetime(t), *rdds)


def _takes_varargs(func: Callable[..., Any]) -> bool:
    code = getattr(func, "__code__", None)
    if code is not None:
        return bool(code.co_flags & inspect.CO_VARARGS)
    try:
        return any(p.kind is p.VAR_POSITIONAL for p in inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return True  # a builtin we cannot inspect: it is given the time, as pyspark would


class DStream:
    """A discretized stream: an RDD per batch interval, built from inputs by transformations."""

    def __init__(self, ssc: StreamingContext, slide_ms: int, parents: Iterable[DStream] = ()) -> None:
        ssc._graph.check_mutable()
        self._ssc = ssc
        self._sc = ssc.sparkContext
        self._slide_ms = int(slide_ms)
        self._parents: list[DStream] = list(parents)
        self._generated: dict[int, RDD | None] = {}
        self._zero_ms: int | None = None
        self._remember_ms: int | None = None
        self._persisted = False
        self._checkpoint_ms: int | None = None
        self._must_checkpoint = False
        # Where the user's program made this stream ("job.py:10"): its batches' RDDs are named for it.
        self._site = user_line()

    def __getstate__(self) -> dict:
        # A checkpoint keeps the stream's definition and position, not its generated RDDs (the state streams'
        # RDDs are written separately, as state checkpoints); the contexts are references (pystream.checkpoint).
        state = self.__dict__.copy()
        state["_generated"] = {}
        return state

    # -- identity -----------------------------------------------------------------------------------------
    @property
    def _slideDuration(self) -> float:
        """The slide (batch) duration in seconds, as pyspark's attribute."""
        return self._slide_ms / 1000.0

    def context(self) -> StreamingContext:
        """Return the StreamingContext of this DStream."""
        return self._ssc

    @property
    def is_cached(self) -> bool:
        return self._persisted

    @property
    def is_checkpointed(self) -> bool:
        return self._checkpoint_ms is not None

    # -- generation (used by the graph and by derived streams) --------------------------------------------
    def _initialize(self, zero_ms: int) -> None:
        if self._zero_ms is not None and self._zero_ms != zero_ms:
            raise ValueError(f"{type(self).__name__} was already initialised with zero time {self._zero_ms}")
        self._zero_ms = zero_ms
        if self._must_checkpoint and self._checkpoint_ms is None:
            # Spark's default: the smallest multiple of the slide that is at least 10 seconds.
            self._checkpoint_ms = self._slide_ms * max(1, -(-10_000 // self._slide_ms))
        if self._remember_ms is None:
            # Spark also keeps RDDs for two checkpoint intervals, because their lineage reaches back until the
            # next checkpoint; state RDDs here cut their lineage every batch, so the slide is enough.
            self._remember_ms = self._slide_ms
        for p in self._parents:
            p._initialize(zero_ms)
            p._remember(self._parent_remember_ms())

    def _parent_remember_ms(self) -> int:
        assert self._remember_ms is not None
        return self._remember_ms

    def _remember(self, ms: int | None) -> None:
        if ms is not None and (self._remember_ms is None or ms > self._remember_ms):
            self._remember_ms = ms
            for p in self._parents:
                p._remember(self._parent_remember_ms())

    def _is_time_valid(self, t: int) -> bool:
        if self._zero_ms is None:
            raise RuntimeError(f"{type(self).__name__} has not been initialized")
        return t > self._zero_ms and (t - self._zero_ms) % self._slide_ms == 0

    def _get_or_compute(self, t: int) -> RDD | None:
        """The RDD of batch time ``t`` (ms), computed once and remembered; None at invalid times."""
        if t in self._generated:
            return self._generated[t]
        if not self._is_time_valid(t):
            return None
        rdd = self._compute(t)
        site = getattr(self, "_site", None)  # (a stream from an older checkpoint has none)
        if rdd is not None and site is not None and " at " not in rdd._creation_site:
            # Made by the scheduler, not on a line of the user's: Spark names it where the stream was made.
            rdd._creation_site = f"{rdd._creation_site} at {site}"
        if rdd is not None and self._persisted:
            rdd.persist()
        self._generated[t] = rdd
        return rdd

    def _compute(self, t: int) -> RDD | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _regenerated(self, t: int) -> RDD | None:
        """Batch ``t``'s RDD made again, after the one kept lost its partitions with a worker."""
        self._generated.pop(t, None)
        return self._get_or_compute(t)

    def _materialize(self, t: int) -> None:
        """For a stream that keeps state from batch to batch: compute batch ``t``'s RDD if no output did, and
        cut its lineage, so the next batch builds on data, not on an ever longer lineage."""
        rdd = self._generated.get(t)
        if rdd is not None:
            rdd._compute()
            rdd._truncate_lineage()

    def _clear_metadata(self, t: int) -> None:
        """Forget RDDs generated at or before ``t - remember``."""
        assert self._remember_ms is not None
        horizon = t - self._remember_ms
        for old in [s for s in self._generated if s <= horizon]:
            rdd = self._generated.pop(old)
            # (A state stream's failed batch stands on the state before it: the same RDD, still needed.)
            if rdd is not None and self._persisted and not any(r is rdd for r in self._generated.values()):
                rdd.unpersist()
            if rdd is not None and rdd._holds_driver_records():
                # Its records are Python objects of the driver's: the executor frees them when that costs
                # no task any time. (An RDD holding shared memory is dropped now, so the next batch reuses it.)
                self._sc.executor.discard(rdd)
        for p in self._parents:
            p._clear_metadata(t)

    def _slice_ms(self, begin_ms: int, end_ms: int) -> list[RDD]:
        if self._zero_ms is None:
            raise RuntimeError(f"{type(self).__name__} has not been initialized")
        z, s = self._zero_ms, self._slide_ms
        begin = begin_ms if (begin_ms - z) % s == 0 else z + ((begin_ms - z) // s) * s
        end = end_ms if (end_ms - z) % s == 0 else z + ((end_ms - z) // s) * s
        out = []
        t = begin
        while t <= end:
            if t >= z:
                rdd = self._get_or_compute(t)
                if rdd is not None:
                    out.append(rdd)
            t += s
        return out

    # -- persistence --------------------------------------------------------------------------------------
    def cache(self) -> DStream:
        """Persist every RDD of this DStream in memory; returns this DStream."""
        return self.persist()

    def persist(self, storageLevel: Any = None) -> DStream:
        """Persist every RDD of this DStream in memory; returns this DStream."""
        self._ssc._graph.check_mutable()
        self._persisted = True
        return self

    def checkpoint(self, interval: float) -> DStream:
        """Checkpoint this DStream's RDDs every ``interval`` seconds (a multiple of the slide); returns self."""
        from pystream.streaming.time import duration_ms

        self._ssc._graph.check_mutable()
        ms = duration_ms(interval, "checkpoint interval")
        if ms % self._slide_ms != 0:
            raise ValueError(f"Checkpoint interval ({ms} ms) must be a multiple of the slide duration "
                             f"({self._slide_ms} ms)")
        self._checkpoint_ms = ms
        self._persisted = True
        return self

    # -- generic transformations --------------------------------------------------------------------------
    def transform(self, func: Callable[..., RDD]) -> DStream:
        """Return a new DStream of ``func(rdd)`` or ``func(time, rdd)`` applied to each RDD."""
        return TransformedDStream(self, _with_time(func, 1))

    def transformWith(self, func: Callable[..., RDD], other: DStream, keepSerializer: bool = False) -> DStream:
        """Return a new DStream of ``func(rdd_a, rdd_b)`` or ``func(time, rdd_a, rdd_b)`` per batch."""
        return TransformedDStream2(self, other, _with_time(func, 2))

    def _rdd_op(self, op: Callable[[RDD], RDD]) -> DStream:
        return TransformedDStream(self, lambda t, rdd: op(rdd))

    # -- element-wise -------------------------------------------------------------------------------------
    def map(self, f: Callable[[Any], Any], preservesPartitioning: bool = False) -> DStream:
        """Return a new DStream by applying ``f`` to each element."""
        return self._rdd_op(lambda rdd: rdd.map(f, preservesPartitioning))

    def flatMap(self, f: Callable[[Any], Iterable[Any]], preservesPartitioning: bool = False) -> DStream:
        """Return a new DStream by applying ``f`` to each element and flattening the results."""
        return self._rdd_op(lambda rdd: rdd.flatMap(f, preservesPartitioning))

    def filter(self, f: Callable[[Any], bool]) -> DStream:
        """Return a new DStream of the elements satisfying ``f``."""
        return self._rdd_op(lambda rdd: rdd.filter(f))

    def mapPartitions(self, f: Callable[[Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False) -> DStream:
        """Return a new DStream by applying ``f(iterator)`` to each partition of each RDD."""
        return self._rdd_op(lambda rdd: rdd.mapPartitions(f, preservesPartitioning))

    def mapPartitionsWithIndex(self, f: Callable[[int, Iterator[Any]], Iterable[Any]],
                               preservesPartitioning: bool = False) -> DStream:
        """Return a new DStream by applying ``f(index, iterator)`` to each partition of each RDD."""
        return self._rdd_op(lambda rdd: rdd.mapPartitionsWithIndex(f, preservesPartitioning))

    def mapValues(self, f: Callable[[Any], Any]) -> DStream:
        """Return a new pair DStream applying ``f`` to each value, keeping keys."""
        return self._rdd_op(lambda rdd: rdd.mapValues(f))

    def flatMapValues(self, f: Callable[[Any], Iterable[Any]]) -> DStream:
        """Return a new pair DStream with one (k, x) for every x in ``f(v)``."""
        return self._rdd_op(lambda rdd: rdd.flatMapValues(f))

    def glom(self) -> DStream:
        """Return a new DStream whose RDDs hold one list per partition."""
        return self._rdd_op(lambda rdd: rdd.glom())

    # -- aggregations per batch ---------------------------------------------------------------------------
    def count(self) -> DStream:
        """Return a DStream with one element per batch: the batch's count ([0] for an empty batch with
        partitions, nothing for a batch RDD without partitions, as pyspark)."""
        return self.mapPartitions(lambda it: [sum(1 for _ in it)]).reduce(operator.add)

    def reduce(self, func: Callable[[Any, Any], Any]) -> DStream:
        """Return a DStream with one element per batch: the batch's elements reduced by ``func`` (an empty
        batch gives nothing)."""
        return self.map(lambda x: (None, x)).reduceByKey(func, 1).map(operator.itemgetter(1))

    def countByValue(self) -> DStream:
        """Return a pair DStream of (element, count in the batch)."""
        return self.map(lambda x: (x, 1)).reduceByKey(operator.add)

    def reduceByKey(self, func: Callable[[Any, Any], Any], numPartitions: int | None = None) -> DStream:
        """Return a pair DStream merging each batch's values per key with ``func`` (C for built-in reducers)."""
        n = partition_count(numPartitions, self._sc.defaultParallelism)
        return self._rdd_op(lambda rdd: rdd.reduceByKey(func, n))

    def combineByKey(self, createCombiner: Callable[[Any], Any], mergeValue: Callable[[Any, Any], Any],
                     mergeCombiners: Callable[[Any, Any], Any], numPartitions: int | None = None) -> DStream:
        """Return a pair DStream combining each batch's values per key (RDD.combineByKey per batch)."""
        n = partition_count(numPartitions, self._sc.defaultParallelism)
        return self._rdd_op(lambda rdd: rdd.combineByKey(createCombiner, mergeValue, mergeCombiners, n))

    def groupByKey(self, numPartitions: int | None = None) -> DStream:
        """Return a pair DStream of (key, ResultIterable of the batch's values)."""
        n = partition_count(numPartitions, self._sc.defaultParallelism)
        return self._rdd_op(lambda rdd: rdd.groupByKey(n))

    def partitionBy(self, numPartitions: int, partitionFunc: Callable[[Any], int] = portable_hash) -> DStream:
        """Return a pair DStream whose RDDs are hash-partitioned into ``numPartitions``."""
        return self._rdd_op(lambda rdd: rdd.partitionBy(numPartitions, partitionFunc))

    def repartition(self, numPartitions: int) -> DStream:
        """Return a DStream whose RDDs have exactly ``numPartitions`` partitions."""
        return self._rdd_op(lambda rdd: rdd.repartition(numPartitions))

    # -- two streams --------------------------------------------------------------------------------------
    def union(self, other: DStream) -> DStream:
        """Return a DStream of the union of this and ``other`` per batch; same slide duration required."""
        if self._slide_ms != other._slide_ms:
            raise ValueError("the two DStream should have same slide duration")
        return TransformedDStream2(self, other, _union_pair)

    def _join_op(self, other: DStream, method: str, numPartitions: int | None) -> DStream:
        n = partition_count(numPartitions, self._sc.defaultParallelism)
        return TransformedDStream2(self, other, lambda t, a, b: getattr(_or_empty(self, a), method)(
            _or_empty(self, b), n))

    def cogroup(self, other: DStream, numPartitions: int | None = None) -> DStream:
        """Return (k, (values in this, values in other)) per batch."""
        return self._join_op(other, "cogroup", numPartitions)

    def join(self, other: DStream, numPartitions: int | None = None) -> DStream:
        """Return the inner join (k, (v, w)) of each batch of this and ``other``."""
        return self._join_op(other, "join", numPartitions)

    def leftOuterJoin(self, other: DStream, numPartitions: int | None = None) -> DStream:
        """Return the left outer join of each batch: (k, (v, w or None))."""
        return self._join_op(other, "leftOuterJoin", numPartitions)

    def rightOuterJoin(self, other: DStream, numPartitions: int | None = None) -> DStream:
        """Return the right outer join of each batch: (k, (v or None, w))."""
        return self._join_op(other, "rightOuterJoin", numPartitions)

    def fullOuterJoin(self, other: DStream, numPartitions: int | None = None) -> DStream:
        """Return the full outer join of each batch: (k, (v or None, w or None))."""
        return self._join_op(other, "fullOuterJoin", numPartitions)

    # -- output operations --------------------------------------------------------------------------------
    def foreachRDD(self, func: Callable[..., Any]) -> None:
        """Run ``func(rdd)`` or ``func(time, rdd)`` on every batch's RDD (an output operation)."""
        ForEachDStream(self, _with_time(func, 1)).register()

    def pprint(self, num: int = 10) -> None:
        """Print the first ``num`` elements of every batch under a ``Time: ...`` header (pyspark's format)."""

        def take_and_print(time: Any, rdd: RDD) -> None:
            print(format_batch(time, rdd.take(num + 1), num), flush=True)

        self.foreachRDD(take_and_print)

    def saveAsTextFiles(self, prefix: str, suffix: str | None = None) -> None:
        """Save every batch as the directory ``prefix-<batch ms>[.suffix]`` (atomic; a batch that runs again
        keeps its complete output instead of duplicating it)."""

        def save(t_ms: int, rdd: RDD) -> None:
            path = f"{prefix}-{t_ms}" + (f".{suffix}" if suffix is not None else "")  # pyspark's rddToFileName
            write_text_dir(path, rdd._run(str_lines), if_exists="skip")

        ForEachDStream(self, save).register()

    # -- windows and state (implemented in window.py / state.py) ------------------------------------------
    def slice(self, begin: Any, end: Any) -> list[RDD]:
        """Return the RDDs of the batches between ``begin`` and ``end`` (datetimes or seconds), inclusive."""
        return self._slice_ms(to_ms(begin), to_ms(end))

    def _validate_window_param(self, window: float, slide: float | None) -> None:
        d = self._slide_ms
        if duration_ms(window, "windowDuration") % d != 0:
            raise IllegalArgumentError("windowDuration must be multiple of the parent dstream's slide (batch) "
                                       "duration (%d ms)" % d)
        if slide is not None and duration_ms(slide, "slideDuration") % d != 0:
            raise IllegalArgumentError("slideDuration must be multiple of the parent dstream's slide (batch) "
                                       "duration (%d ms)" % d)

    def window(self, windowDuration: float, slideDuration: float | None = None) -> DStream:
        """Return a DStream whose RDD at time t is the union of this DStream's RDDs in (t - window, t];
        ``slideDuration`` (default: this DStream's) sets how often windows are computed."""
        from pystream.streaming.window import WindowedDStream

        self._validate_window_param(windowDuration, slideDuration)
        return WindowedDStream(self, windowDuration, slideDuration)

    def reduceByWindow(self, reduceFunc: Callable[[Any, Any], Any], invReduceFunc: Callable[[Any, Any], Any] | None,
                       windowDuration: float, slideDuration: float) -> DStream:
        """Return a DStream of one element per window: the window's elements reduced by ``reduceFunc``,
        incrementally with ``invReduceFunc`` when given."""
        keyed = self.map(lambda x: (1, x))
        reduced = keyed.reduceByKeyAndWindow(reduceFunc, invReduceFunc, windowDuration, slideDuration, 1)
        return reduced.map(operator.itemgetter(1))

    def countByWindow(self, windowDuration: float, slideDuration: float) -> DStream:
        """Return a DStream of one element per window: the number of elements in it."""
        return self.map(lambda x: 1).reduceByWindow(operator.add, operator.sub, windowDuration, slideDuration)

    def countByValueAndWindow(self, windowDuration: float, slideDuration: float,
                              numPartitions: int | None = None) -> DStream:
        """Return a pair DStream of (element, count in the window) for elements with a positive count."""
        keyed = self.map(lambda x: (x, 1))
        counted = keyed.reduceByKeyAndWindow(operator.add, operator.sub, windowDuration, slideDuration,
                                             numPartitions)
        return counted.filter(lambda kv: kv[1] > 0)

    def groupByKeyAndWindow(self, windowDuration: float, slideDuration: float,
                            numPartitions: int | None = None) -> DStream:
        """Return a pair DStream of (key, ResultIterable of the window's values)."""
        ls = self.mapValues(lambda x: [x])
        grouped = ls.reduceByKeyAndWindow(lambda a, b: a + b, lambda a, b: a[len(b):], windowDuration,
                                          slideDuration, numPartitions)
        return grouped.mapValues(ResultIterable)

    def reduceByKeyAndWindow(self, func: Callable[[Any, Any], Any], invFunc: Callable[[Any, Any], Any] | None,
                             windowDuration: float, slideDuration: float | None = None,
                             numPartitions: int | None = None,
                             filterFunc: Callable[[tuple[Any, Any]], bool] | None = None) -> DStream:
        """Return a pair DStream of each key's values over the window reduced by ``func``.

        With ``invFunc`` (the inverse of ``func``), windows of at least 5 slides are updated incrementally:
        the batches leaving the window are "subtracted" and the new ones added, as pyspark does; keys whose
        value returns to the inverse's zero stay unless ``filterFunc`` drops them. Smaller windows, or no
        ``invFunc``, are reduced in full. Without ``invFunc``, ``filterFunc`` is not used (as in pyspark).
        """
        from pystream.streaming.window import ReducedWindowedDStream

        self._validate_window_param(windowDuration, slideDuration)
        n = partition_count(numPartitions, self._sc.defaultParallelism)
        reduced = self.reduceByKey(func, n)
        if invFunc is None:
            return reduced.window(windowDuration, slideDuration).reduceByKey(func, n)
        return ReducedWindowedDStream(reduced, func, invFunc, windowDuration, slideDuration, n, filterFunc)

    def updateStateByKey(self, updateFunc: Callable[[list, Any], Any], numPartitions: int | None = None,
                         initialRDD: RDD | Iterable[tuple[Any, Any]] | None = None) -> DStream:
        """Return a pair DStream of every key's state, updated each batch by ``updateFunc(new_values,
        old_state_or_None)`` for keys with state or new values; a None result removes the key."""
        from pystream.streaming.state import StateDStream

        return StateDStream(self, updateFunc, partition_count(numPartitions, self._sc.defaultParallelism), initialRDD)

    def mapWithState(self, spec: StateSpec) -> DStream:
        """Return a DStream of what ``spec``'s function ``f(key, value, state)`` returns for each record (and
        for each key timing out, with value None); ``stateSnapshots()`` of the result gives all state."""
        from pystream.streaming.state import MapWithStateDStream

        return MapWithStateDStream(self, spec)


def format_batch(time: Any, taken: list, num: int) -> str:
    """pprint's text for one batch: the header, up to ``num`` records, "..." if ``taken`` has more."""
    lines = ["-------------------------------------------", f"Time: {time}",
             "-------------------------------------------"]
    lines.extend(str(record) for record in taken[:num])
    if len(taken) > num:
        lines.append("...")
    lines.append("")
    return "\n".join(lines)


def _or_empty(stream: DStream, rdd: RDD | None) -> RDD:
    return rdd if rdd is not None else stream._sc.emptyRDD()


def _union_pair(t: int, a: RDD | None, b: RDD | None) -> RDD | None:
    if a is None or b is None:
        return a if b is None else b
    return a.union(b)


class TransformedDStream(DStream):
    """``func(time_ms, rdd)`` applied to one parent's RDD; chains of these fuse (as pyspark's)."""

    def __init__(self, prev: DStream, func: Callable[[int, RDD], RDD | None]) -> None:
        if type(prev) is TransformedDStream and not prev._persisted and not prev.is_checkpointed:
            prev_func = prev._func
            self._func: Callable[[int, RDD], RDD | None] = (
                lambda t, rdd: None if (r := prev_func(t, rdd)) is None else func(t, r))
            prev = prev._prev
        else:
            self._func = func
        super().__init__(prev._ssc, prev._slide_ms, [prev])
        self._prev = prev

    def _compute(self, t: int) -> RDD | None:
        rdd = self._prev._get_or_compute(t)
        if rdd is None:
            return None
        return _check_rdd(self._func(t, rdd))


class TransformedDStream2(DStream):
    """``func(time_ms, rdd_a, rdd_b)`` over two parents with the same slide (None for a missing RDD)."""

    def __init__(self, a: DStream, b: DStream, func: Callable[[int, RDD | None, RDD | None], RDD | None]) -> None:
        if a._slide_ms != b._slide_ms:
            raise ValueError("the two DStream should have same slide duration")
        super().__init__(a._ssc, a._slide_ms, [a, b])
        self._func = func

    def _compute(self, t: int) -> RDD | None:
        a, b = (p._get_or_compute(t) for p in self._parents)
        return _check_rdd(self._func(t, a, b))


class MultiTransformedDStream(DStream):
    """StreamingContext.transform: ``func(time_ms, [rdd, ...])`` over several parents."""

    def __init__(self, parents: list[DStream], func: Callable[[int, list[RDD]], RDD | None]) -> None:
        super().__init__(parents[0]._ssc, parents[0]._slide_ms, parents)
        self._func = func

    def _compute(self, t: int) -> RDD | None:
        rdds = [p._get_or_compute(t) for p in self._parents]
        return _check_rdd(self._func(t, [r if r is not None else self._sc.emptyRDD() for r in rdds]))


class UnionDStream(DStream):
    """StreamingContext.union: the union of several streams' RDDs per batch."""

    def __init__(self, parents: list[DStream]) -> None:
        super().__init__(parents[0]._ssc, parents[0]._slide_ms, parents)

    def _compute(self, t: int) -> RDD | None:
        rdds = [r for p in self._parents if (r := p._get_or_compute(t)) is not None]
        if not rdds:
            return None
        return rdds[0] if len(rdds) == 1 else union(self._sc, rdds)


def _check_rdd(result: Any) -> RDD | None:
    if result is not None and not isinstance(result, RDD):
        raise TypeError(f"transform function must return an RDD, got {type(result).__name__}")
    return result


def _output_call() -> str:
    """The DStream method the user called to make an output stream (pprint, saveAsTextFiles, foreachRDD)."""
    frame, name = sys._getframe(1), "foreachRDD"
    while frame is not None and frame.f_globals.get("__name__", "").startswith("pystream."):
        if frame.f_globals["__name__"] == __name__ and not frame.f_code.co_name.startswith("_"):
            name = frame.f_code.co_name  # the outermost one is the user's call
        frame = frame.f_back
    return name


class ForEachDStream(DStream):
    """An output operation: runs ``func(time_ms, rdd)`` as the batch's job."""

    def __init__(self, parent: DStream, func: Callable[[int, RDD], Any]) -> None:
        super().__init__(parent._ssc, parent._slide_ms, [parent])
        self._func = func
        self._parent = parent
        # The batch's output operation is named, as Spark names it, by the call that made it and where.
        self._op_name = f"{_output_call()} at {self._site}" if self._site else _output_call()

    def register(self) -> None:
        self._ssc._graph.add_output_stream(self)

    def _compute(self, t: int) -> RDD | None:
        return None

    def _generate_job(self, t: int) -> Callable[[], None] | None:
        rdd = self._parent._get_or_compute(t)
        if rdd is None:
            return None
        func = self._func
        return lambda: func(t, rdd)
