"""The concrete RDDs: one class for each kind of step in an RDD's lineage.

:mod:`pystream.rdd` holds the API every RDD shares (the :class:`~pystream.rdd.RDD` base class with pyspark's
transformations and actions); this module holds what each transformation makes, and how each computes its
partitions from its parents' on the context's executor: a source (parallelize, a batch's received blocks), a
fused narrow step, a shuffle, a union, a coalesce, a sort, a zip of equally partitioned RDDs. They live apart
from the base class so that each module holds one thing (the API, or how it is computed). They subclass RDD
while its methods construct them, so :mod:`pystream.rdd` imports this module at its end, as it does
:mod:`pystream.joins`; the methods look the classes up as ``lineage.<name>`` when called.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pystream._core.hashing import portable_hash
from pystream.executor.wire import Buckets
from pystream.rdd import RDD
from pystream.shuffle import (
    Aggregator,
    ConcatTask,
    CountingMapSideTask,
    MapSideTask,
    Partitioner,
    PipelineFn,
    ReduceSideTask,
    RangeSplitTask,
    RoundRobinTask,
    SampleKeysTask,
    SortRangeTask,
    is_add,
    is_plain_split,
    merge_buckets,
    pair_constant,
    range_bounds,
    run_pipeline,
)

if TYPE_CHECKING:
    from pystream.context import SparkContext

__all__ = [
    "ParallelCollectionRDD",
    "PipelinedRDD",
    "ShuffledRDD",
    "UnionRDD",
    "RepartitionedRDD",
    "CoalescedRDD",
    "SortedRDD",
    "ZippedPartitionsRDD",
]


class ParallelCollectionRDD(RDD):
    """Partitions given as lists (from parallelize, or a batch's received blocks)."""

    def __init__(self, ctx: SparkContext, partitions: list[list]) -> None:
        super().__init__(ctx, len(partitions))
        self._parts: list = list(partitions)
        self._held = [False] * len(partitions)

    def _do_compute(self) -> Sequence[Any]:
        # The first time tasks need them, the executor takes the partitions where its tasks read them (a
        # process executor encodes them into its shared memory) and this RDD keeps that instead of the lists:
        # the records then live once, as frames, not as Python objects plus a copy for each task. Each is
        # taken when the executor reads it, so a stage's first task starts once its own partition is encoded.
        if all(self._held):
            return self._parts
        return _HeldOnRead(self)

    def _compute_some(self, partitions: range) -> list:
        if self._cached is not None:
            return self._cached[partitions.start:partitions.stop]
        self._hold(partitions)  # only those: first() of a large collection encodes its first partition
        return self._parts[partitions.start:partitions.stop]

    def _hold(self, partitions: range) -> None:
        # One partition at a time, each list dropped as soon as its frame is written: the batch then lives
        # as objects plus frames for one partition at most, not for all of them at once.
        for i in partitions:
            self._hold_one(i)

    def _hold_one(self, i: int) -> list | None:
        """Hold partition i if it is not yet held; return the list it replaced (None if it was held)."""
        if self._held[i]:
            return None
        part = self._parts[i]
        (self._parts[i],) = self.ctx.executor.hold([part])
        self._held[i] = True
        return part

    def _driver_record_lists(self) -> list[list]:
        return [] if any(self._held) else [p for p in self._parts if type(p) is list and p]

    def _driver_lists(self) -> list[list] | None:
        """The partitions as lists, while the driver still holds them so (not yet taken by the executor)."""
        if any(self._held) or not all(type(p) is list for p in self._parts):
            return None
        if self._persisted and self._cached is None:
            self._cached = self._parts  # computed, as far as cache() is concerned
        return self._parts


class _HeldOnRead(Sequence):
    """A ParallelCollectionRDD's partitions, each held (see ``_hold``) when it is first read.

    An executor reads the inputs of a stage in order and sends each task before it reads the next input:
    partition i is encoded while the tasks before it run, not all before the first. The lists a partition
    replaces are freed on the next read, once partition i's task is on its way (freeing W1's 100K lines took
    the driver 2 ms): the driver still holds one partition as objects and frame at once, never all of them.
    The last list, with no partition to encode after it, goes to ``executor.discard``, which frees it when
    that takes a core from no task.
    """

    __slots__ = ("_rdd", "_done")

    def __init__(self, rdd: ParallelCollectionRDD) -> None:
        self._rdd = rdd
        self._done: list | None = None

    def __len__(self) -> int:
        return len(self._rdd._parts)

    def __getitem__(self, i: Any) -> Any:
        done, self._done = self._done, None
        if isinstance(i, slice):
            del done
            return [self[j] for j in range(*i.indices(len(self)))]
        if isinstance(i, int) and i >= len(self):
            # Past the end, IndexError ends an iteration. No partition is encoded after the last one: the
            # executor frees its list when that costs no task anything (a core is idle).
            if done is not None:
                self._rdd.ctx.executor.discard(done)
            raise IndexError(i)
        del done
        self._done = self._rdd._hold_one(i)
        return self._rdd._parts[i]


class PipelinedRDD(RDD):
    """A narrow transformation; consecutive ones fuse into one function per partition.

    The fusion happens when the RDD is computed (:meth:`_pipeline`), not when it is created, so a parent
    persisted after this RDD was made still serves this RDD from its cache.
    """

    def __init__(self, prev: RDD, func: PipelineFn, preserves_partitioning: bool = False) -> None:
        super().__init__(prev.ctx, prev.getNumPartitions())
        self._prev: RDD = prev
        self._func: PipelineFn = func
        if preserves_partitioning:
            self.partitioner = prev.partitioner

    def _pipeline(self) -> tuple[RDD, PipelineFn | None]:
        if self._persisted:
            return self, None
        src, fn = self._prev._pipeline()
        return src, self._func if fn is None else _Compose(self._func, fn)

    def _do_compute(self) -> list[list]:
        src, fn = self._prev._pipeline()
        func = self._func if fn is None else _Compose(self._func, fn)
        return self.ctx._run_stage(_PipelineTask(func), src._compute(), stage="narrow", keep=True, rdd=self,
                                   recompute=src._compute)


class _Compose:
    """inner then outer, as one partition function (picklable, unlike a nested closure over self)."""

    __slots__ = ("outer", "inner", "barrier")

    def __init__(self, outer: PipelineFn, inner: PipelineFn) -> None:
        self.outer = outer
        self.inner = inner
        # A barrier step anywhere in the fused pipeline makes its stage a barrier stage (pystream.barrier).
        self.barrier = getattr(outer, "barrier", False) or getattr(inner, "barrier", False)

    def __call__(self, split: int, iterator: Iterator[Any]) -> Iterable[Any]:
        return self.outer(split, iter(self.inner(split, iterator)))


class _PipelineTask:
    __slots__ = ("func",)
    # The fused function takes an iterator: the worker may hand it the input frame to decode as it goes.
    streams_input = True

    def __init__(self, func: PipelineFn) -> None:
        self.func = func

    def __call__(self, split: int, records: list) -> list:
        return run_pipeline(self.func, split, records)


class ShuffledRDD(RDD):
    """The result of a shuffle: map-side combine + hash split, then reduce-side merge."""

    def __init__(self, prev: RDD, num_partitions: int, aggregator: Aggregator | None,
                 partition_func: Callable[[Any], int]) -> None:
        super().__init__(prev.ctx, num_partitions)
        self._prev = prev
        self._aggregator = aggregator
        self._partition_func = partition_func
        self.partitioner = Partitioner(num_partitions, partition_func)

    def _pipeline(self) -> tuple[RDD, PipelineFn | None]:
        # Unless kept, the merge runs inside the next stage's tasks (an action, the next shuffle's map side, a
        # narrow step that is kept): a batch's reduceByKey then foreachRDD is two stages, not three, and the
        # merged partitions are never stored and freed.
        if self._persisted or self._cached is not None or self._lineage_cut or self._on_lost is not None:
            return self, None
        return _MapOutputs(self), _MergeBuckets(self._aggregator)

    def _do_compute(self) -> list[list]:
        buckets, merged = self._map_stage()
        if merged:
            return buckets
        # Map outputs a dead worker held are made again by running the map side again.
        return self.ctx._run_stage(ReduceSideTask(self._aggregator), buckets, stage="shuffle-reduce",
                                   keep=True, rdd=self, recompute=lambda: self._map_stage()[0])

    def _map_stage(self) -> tuple[list, bool]:
        """Run the map side: (one Buckets per reduce partition, False), or (the final partitions, True) when
        the driver could split the records itself."""
        executor = self.ctx.executor
        n = self._num_partitions
        counting = self._counting_weight()
        if counting is not None:
            words = self._prev._prev
            if (isinstance(words, PipelinedRDD) and not words._persisted and words._cached is None
                    and is_plain_split(getattr(words, "_flatmap_func", None))):
                src, fn = words._prev._pipeline()
                task: Callable[[int, list], list[list]] = CountingMapSideTask(
                    fn, counting, n, self._partition_func, split_words=True)
            else:
                src, fn = self._prev._prev._pipeline()
                task = CountingMapSideTask(fn, counting, n, self._partition_func)
        else:
            src, fn = self._prev._pipeline()
            if (fn is None and self._aggregator is None and type(self) is ShuffledRDD
                    and self._partition_func is portable_hash and isinstance(src, ParallelCollectionRDD)):
                parts = src._driver_lists()
                if parts is not None:
                    # Records the driver holds anyway (parallelize, a batch's received blocks): split here,
                    # in one C pass, instead of shipping them to map tasks that split them and ship them again.
                    return executor.partition_on_driver(parts, n), True
            task = self._map_task(fn, n)
        maps = self.ctx._run_stage(task, src._compute(), stage="shuffle-map", rdd=self, recompute=src._compute)
        return [Buckets(m[j] for m in maps) for j in range(n)], False

    def _map_task(self, fn: PipelineFn | None, n: int) -> Callable[[int, list], list[list]]:
        return MapSideTask(fn, self._aggregator, n, self._partition_func)

    def _counting_weight(self) -> int | None:
        """c when this is ``map(lambda x: (x, c)).reduceByKey(add)`` on an unpersisted map, else None."""
        prev, agg = self._prev, self._aggregator
        if agg is None or agg.reducer is None or not is_add(agg.reducer) or type(self) is not ShuffledRDD:
            return None
        if not isinstance(prev, PipelinedRDD) or prev._persisted or prev._cached is not None:
            return None
        return pair_constant(getattr(prev, "_map_func", None))


class _MapOutputs(RDD):
    """A shuffle's map outputs, one Buckets per reduce partition: the source of a fused merge step."""

    def __init__(self, shuffled: ShuffledRDD) -> None:
        super().__init__(shuffled.ctx, shuffled.getNumPartitions())
        self._shuffled = shuffled

    def _do_compute(self) -> list:
        buckets, merged = self._shuffled._map_stage()
        # Split on the driver, each partition is complete: one bucket, which the merge step passes through.
        return [Buckets([p]) for p in buckets] if merged else buckets


class _MergeBuckets:
    """A shuffle's reduce side as a pipeline step: its input is one partition's buckets."""

    __slots__ = ("aggregator",)

    def __init__(self, aggregator: Aggregator | None) -> None:
        self.aggregator = aggregator

    def __call__(self, split: int, buckets: Iterator[list]) -> Iterable[Any]:
        # The next step of the pipeline takes an iterator: W1's reduce partitions (41K pairs per worker) were
        # made as a list, all alive at once at the worker's peak, only to be read one at a time.
        return merge_buckets(self.aggregator, buckets, lazy=True)


def common_partitioner(rdds: Sequence[RDD]) -> Partitioner | None:
    """The partitioner every one of ``rdds`` has, or None if one has none or another."""
    first = rdds[0].partitioner
    return first if first is not None and all(r.partitioner == first for r in rdds[1:]) else None


def union(ctx: SparkContext, rdds: list[RDD]) -> RDD:
    """The union of ``rdds``, as Spark's SparkContext.union: when they all have the same partitioner, partition
    i holds partition i of each (the partitioner kept, so a reduceByKey or join after it needs no shuffle);
    else the partitions of each, one RDD after the other."""
    if common_partitioner(rdds) is not None:
        return ZippedPartitionsRDD(ctx, rdds, _concat_partitions, preserves_partitioning=True)
    return UnionRDD(ctx, rdds)


def _concat_partitions(split: int, *parts: list) -> Iterable[Any]:
    return parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts)


class UnionRDD(RDD):
    """The partitions of several RDDs, one after the other."""

    def __init__(self, ctx: SparkContext, rdds: list[RDD]) -> None:
        super().__init__(ctx, sum(r.getNumPartitions() for r in rdds))
        self._rdds = rdds

    def _do_compute(self) -> list[list]:
        out: list[list] = []
        for r in self._rdds:
            out.extend(r._compute())
        return out


class RepartitionedRDD(ShuffledRDD):
    """repartition(n): records dealt round-robin (from a per-partition offset) into n partitions, a shuffle
    that spreads records evenly whatever their keys or the input's skew."""

    def __init__(self, prev: RDD, num_partitions: int) -> None:
        super().__init__(prev, num_partitions, None, portable_hash)
        self.partitioner = None  # records are dealt, not placed by key

    def _map_task(self, fn: PipelineFn | None, n: int) -> Callable[[int, list], list[list]]:
        return RoundRobinTask(fn, n)


class CoalescedRDD(RDD):
    """Fewer partitions without a shuffle: adjacent partitions merged."""

    def __init__(self, prev: RDD, num_partitions: int) -> None:
        super().__init__(prev.ctx, num_partitions)
        self._prev = prev

    def _do_compute(self) -> list[list]:
        src, fn = self._prev._pipeline()

        def groups() -> list:
            parts = src._compute()
            n, m = self._num_partitions, len(parts)
            return [Buckets(parts[(i * m) // n:((i + 1) * m) // n]) for i in range(n)]

        return self.ctx._run_stage(ConcatTask(fn), groups(), stage="coalesce", keep=True, rdd=self,
                                   recompute=groups)


class SortedRDD(RDD):
    """Sorted records split into contiguous ranges."""

    def __init__(self, prev: RDD, keyfunc: Callable[[Any], Any], ascending: bool, num_partitions: int) -> None:
        super().__init__(prev.ctx, num_partitions)
        self._prev = prev
        self._keyfunc = keyfunc
        self._ascending = ascending

    def _do_compute(self) -> list[list]:
        # As Spark's sortBy: a job samples the keys, the driver draws range bounds from them, a shuffle sends
        # each record to its key's range and each range is sorted in its own task. Only the samples reach the
        # driver (it used to merge every record: 200K pairs went through it).
        n = self._num_partitions
        src, fn = self._prev._pipeline()
        bounds: list = []
        if n > 1:
            # As Spark's RangePartitioner: 20 keys per output partition, 3x over-sampled, split over the inputs.
            size = -(-min(20 * n, 1_000_000) * 3 // max(1, src.getNumPartitions()))
            with self.ctx._jobs.job():
                samples = self.ctx._run_stage(SampleKeysTask(fn, self._keyfunc, size), src._compute(),
                                              stage="action", rdd=self, recompute=src._compute)
            bounds = range_bounds(samples, n)

        def range_buckets() -> list:
            maps = self.ctx._run_stage(RangeSplitTask(fn, self._keyfunc, bounds, self._ascending, n),
                                       src._compute(), stage="shuffle-map", rdd=self, recompute=src._compute)
            return [Buckets(m[j] for m in maps) for j in range(n)]

        return self.ctx._run_stage(SortRangeTask(self._keyfunc, self._ascending), range_buckets(),
                                   stage="shuffle-reduce", keep=True, rdd=self, recompute=range_buckets)


class ZippedPartitionsRDD(RDD):
    """Partition i of several equally partitioned RDDs, combined by ``func(split, list_a, list_b, ...)``.

    The stateful stream operators use it to update state partition by partition, without a shuffle, because
    state and new data are hash-partitioned the same way.
    """

    def __init__(self, ctx: SparkContext, rdds: list[RDD], func: Callable[..., Iterable[Any]],
                 preserves_partitioning: bool = False) -> None:
        counts = {r.getNumPartitions() for r in rdds}
        if len(counts) != 1:
            raise ValueError(f"Can't zip RDDs with unequal numbers of partitions: {sorted(counts)}")
        super().__init__(ctx, counts.pop())
        self._rdds = rdds
        self._func = func
        if preserves_partitioning:
            self.partitioner = common_partitioner(rdds)

    def _pipeline(self) -> tuple[RDD, PipelineFn | None]:
        # Unless kept (state), the combining function runs inside the next stage's tasks, as a narrow step:
        # a join followed by map() and reduceByKey() is one task per partition, not two.
        if self._persisted or self._cached is not None or self._lineage_cut or self._on_lost is not None:
            return self, None
        return _ZipInputs(self), _ZipThen(self._func)

    def _inputs(self) -> list[tuple]:
        return list(zip(*(r._compute() for r in self._rdds)))

    def _do_compute(self) -> list[list]:
        return self.ctx._run_stage(_ZipTask(self._func), self._inputs(), stage="zip", keep=True, rdd=self,
                                   recompute=self._inputs)


class CartesianRDD(ZippedPartitionsRDD):
    """rdd.cartesian(other): a partition for each pair of their partitions, holding every pair of records."""

    def __init__(self, ctx: SparkContext, left: RDD, right: RDD) -> None:
        RDD.__init__(self, ctx, left.getNumPartitions() * right.getNumPartitions())
        self._rdds = [left, right]
        self._func = _cartesian_partition

    def _inputs(self) -> list[tuple]:
        lefts, rights = self._rdds[0]._compute(), self._rdds[1]._compute()
        return [(a, b) for a in lefts for b in rights]


def _cartesian_partition(split: int, left: Iterable[Any], right: Iterable[Any]) -> list[tuple[Any, Any]]:
    right = list(right)
    return [(a, b) for a in left for b in right]


class _ZipInputs(RDD):
    """The parents' partitions side by side (one tuple per partition): the source of a fused zip step."""

    def __init__(self, zipped: ZippedPartitionsRDD) -> None:
        super().__init__(zipped.ctx, zipped.getNumPartitions())
        self._zipped = zipped

    def _do_compute(self) -> list[tuple]:
        return self._zipped._inputs()


class _ZipThen:
    """A zip function as a pipeline step: its input is the one tuple of partitions."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[..., Iterable[Any]]) -> None:
        self.func = func

    def __call__(self, split: int, parts: Iterator[Any]) -> Iterable[Any]:
        return self.func(split, *parts)


class _ZipTask:
    __slots__ = ("func",)

    def __init__(self, func: Callable[..., Iterable[Any]]) -> None:
        self.func = func

    @property
    def streams_input(self) -> bool:
        """Whether the zip function takes its input frames as FrameReaders (see the worker)."""
        return getattr(self.func, "streams_input", False)

    def __call__(self, split: int, parts: tuple[list, ...]) -> list:
        out = self.func(split, *parts)
        return out if isinstance(out, list) else list(out)

