"""The per-batch dataset: an RDD with pyspark's API, computed lazily in partitions.

Narrow transformations (map, filter, flatMap, mapPartitions, ...) fuse into one function per partition
(pyspark's PipelinedRDD), so a chain of them is a single pass over each partition. Key-based operations
shuffle through :mod:`pystream.shuffle`, combining map-side with the C aggregation table. Every task runs on
the context's executor. The RDD each transformation returns (PipelinedRDD, ShuffledRDD, ...) is defined in
:mod:`pystream.lineage`; joins and cogroup are in :mod:`pystream.joins`, and the actions (collect, count,
reduce, stats, foreach, ...) in :mod:`pystream.actions`.
"""

from __future__ import annotations

import copy
import itertools
import logging
import numbers
import operator
import shlex
import subprocess
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pystream._core.hashing import portable_hash
from pystream import sampling
from pystream.actions import RDDActions
from pystream.errors import IllegalArgumentError, IllegalStateError, StateLostError
from pystream.jobs import call_site
from pystream.known_functions import stand_in
from pystream.shuffle import Aggregator, ApplyTask, CombineInPartition, OffsetTask, Partitioner, PipelineFn

if TYPE_CHECKING:
    from pystream.barrier import RDDBarrier
    from pystream.context import SparkContext

logger = logging.getLogger(__name__)

__all__ = ["RDD", "ResultIterable", "StorageLevel"]

_rdd_ids = itertools.count()


class ResultIterable(list):
    """The values of one key after groupByKey/cogroup: a list (iterable, sized, comparable)."""

    __slots__ = ()

    @property
    def data(self) -> list:
        return list(self)


class StorageLevel:
    """Where persisted partitions are to be kept, as pyspark's StorageLevel (memory, disk, off-heap,
    deserialized, replication). Accepted by persist() for API compatibility: pystream keeps persisted
    partitions in memory (the driver's, or the worker that made them), whatever the level."""

    def __init__(self, useDisk: bool = False, useMemory: bool = True, useOffHeap: bool = False,
                 deserialized: bool = False, replication: int = 1) -> None:
        self.useDisk, self.useMemory, self.useOffHeap = useDisk, useMemory, useOffHeap
        self.deserialized, self.replication = deserialized, replication

    def _flags(self) -> tuple:
        return (self.useDisk, self.useMemory, self.useOffHeap, self.deserialized, self.replication)

    def __repr__(self) -> str:
        return "StorageLevel(%s, %s, %s, %s, %s)" % self._flags()

    def __str__(self) -> str:
        """As pyspark words it: ``Memory Serialized 1x Replicated``."""
        words = [w for on, w in ((self.useDisk, "Disk"), (self.useMemory, "Memory"), (self.useOffHeap, "OffHeap"))
                 if on]
        words.append("Deserialized" if self.deserialized else "Serialized")
        return " ".join(words) + f" {self.replication}x Replicated"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorageLevel) and self._flags() == other._flags()

    def __hash__(self) -> int:
        return hash(self._flags())


for _name, _args in {
    "NONE": (False, False, False, False), "DISK_ONLY": (True, False, False, False),
    "DISK_ONLY_2": (True, False, False, False, 2), "DISK_ONLY_3": (True, False, False, False, 3),
    "MEMORY_ONLY": (False, True, False, False), "MEMORY_ONLY_2": (False, True, False, False, 2),
    "MEMORY_AND_DISK": (True, True, False, False), "MEMORY_AND_DISK_2": (True, True, False, False, 2),
    "OFF_HEAP": (True, True, True, False, 1), "MEMORY_AND_DISK_DESER": (True, True, False, True),
}.items():
    setattr(StorageLevel, _name, StorageLevel(*_args))


def partition_count(numPartitions: Any, default: int, what: str = "numPartitions") -> int:
    """``numPartitions`` (a whole number of at least 1, else IllegalArgumentError), or ``default`` for None."""
    if numPartitions is None:
        return default
    if isinstance(numPartitions, bool) or not isinstance(numPartitions, numbers.Integral):
        raise IllegalArgumentError(f"{what} must be a whole number, got {numPartitions!r}")
    if numPartitions < 1:
        raise IllegalArgumentError(f"Number of partitions ({numPartitions}) must be positive.")
    return int(numPartitions)


def _default_partitions(rdd: RDD, numPartitions: int | None) -> int:
    """``numPartitions``, or pyspark's default for a shuffle of ``rdd`` (its _defaultReducePartitions):
    spark.default.parallelism when it is set, else as many partitions as ``rdd`` has (at least one)."""
    if numPartitions is None:
        return default_reduce_partitions(rdd)
    return partition_count(numPartitions, 1)


def default_reduce_partitions(rdd: RDD) -> int:
    """The partitions of a shuffle of ``rdd`` given no count, as pyspark's: spark.default.parallelism when set,
    else ``rdd``'s own count (at least one)."""
    if rdd.ctx._parallelism_set:
        return rdd.ctx.defaultParallelism
    return max(1, rdd.getNumPartitions())


class RDD(RDDActions):
    """A dataset split into partitions; transformations return new RDDs, actions compute results."""

    #: How this RDD's keys are placed in its partitions (a Partitioner), or None when that is not known. A class
    #: default: an RDD pickled before there was one (a checkpoint) reads None.
    partitioner: Partitioner | None = None

    def __init__(self, ctx: SparkContext, num_partitions: int) -> None:
        self.ctx = ctx
        self._num_partitions = num_partitions
        self._persisted = False
        self._cached: list[list] | None = None
        self._id = next(_rdd_ids)
        # Spark's creation site ("reduceByKey at job.py:10"): the name of the stages that compute this RDD.
        self._creation_site = call_site()
        self._name: str | None = None
        self._lineage_cut = False
        self._on_lost: Callable[[], None] | None = None

    # -- plumbing -----------------------------------------------------------------------------------------
    @property
    def context(self) -> SparkContext:
        """The SparkContext this RDD was created on."""
        return self.ctx

    def id(self) -> int:
        """A unique id of this RDD within the process."""
        return self._id

    def name(self) -> str | None:
        return self._name

    def setName(self, name: str) -> RDD:
        self._name = name
        return self

    def getNumPartitions(self) -> int:
        """Return the number of partitions."""
        return self._num_partitions

    def _pipeline(self) -> tuple[RDD, PipelineFn | None]:
        """The RDD whose materialised partitions feed this one, and the fused function to apply (or None)."""
        return self, None

    def _compute(self) -> list[list]:
        """Materialise every partition (cached when persisted). Kept partitions lost with a worker that died are
        computed again, as Spark recomputes lost cached blocks: from the lineage, or for state (``_on_lost``)
        from its checkpoint; an RDD without either keeps them, and its reader raises StateLostError."""
        if self._cached is not None:
            if self._lineage_cut or not self._lost:
                return self._cached
            logger.warning("%r lost partitions with a worker process; computing them again", self)
            self._cached = None
            if self._on_lost is not None:
                self._on_lost()
        if self._lineage_cut:
            raise StateLostError(f"{self!r} dropped its partitions after its lineage was truncated; "
                                 "it cannot be recomputed")
        try:
            parts = self._do_compute()
        except StateLostError:
            # State kept by a worker that died: the stream that made this RDD may rebuild its input from a
            # checkpoint (and raises StateLostError itself when it cannot).
            if self._on_lost is None:
                raise
            self._on_lost()
            parts = self._do_compute()
        if self._persisted:
            self._cached = parts
        return parts

    @property
    def _lost(self) -> bool:
        """Whether partitions this RDD holds were lost with a worker."""
        return self._cached is not None and self.ctx.executor.has_lost(self._cached)

    def _do_compute(self) -> list[list]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _holds_driver_records(self) -> bool:
        """Whether this RDD keeps records as Python objects of the driver (not in shared memory or a worker)."""
        return bool(self._driver_record_lists())

    def _driver_record_lists(self) -> list[list]:
        """The lists of records, Python objects of the driver, that this RDD keeps (they go with it)."""
        return []

    def _run(self, action: Callable[[int, Iterator[Any]], Any], partitions: range | None = None) -> list[Any]:
        """Run ``action(split, iterator)`` on (some of) the partitions through the executor."""
        with self.ctx._jobs.job():
            src, fn = self._pipeline()
            if partitions is not None and (partitions.start, partitions.stop) != (0, src.getNumPartitions()):
                task = OffsetTask(ApplyTask(fn, action), partitions.start)
                return self.ctx._run_stage(task, src._compute_some(partitions), stage="action", rdd=self,
                                           recompute=lambda: src._compute_some(partitions))
            return self.ctx._run_stage(ApplyTask(fn, action), src._compute(), stage="action", rdd=self,
                                       recompute=src._compute)

    def _compute_some(self, partitions: range) -> list:
        """The partitions in ``partitions`` (take() and first() need only the first few)."""
        return self._compute()[partitions.start:partitions.stop]

    # -- persistence --------------------------------------------------------------------------------------
    def cache(self) -> RDD:
        """Keep this RDD's partitions in memory once computed; returns this RDD."""
        return self.persist()

    def persist(self, storageLevel: StorageLevel | None = None) -> RDD:
        """Keep this RDD's partitions in memory once computed; returns this RDD."""
        self._persisted = True
        self._storage_level = storageLevel or StorageLevel.MEMORY_ONLY
        return self

    def unpersist(self, blocking: bool = False) -> RDD:
        """Drop the kept partitions; returns this RDD."""
        self._persisted = False
        self._cached = None
        return self

    def getStorageLevel(self) -> StorageLevel:
        """Return the storage level given to persist() (MEMORY_ONLY for cache(); NONE if not persisted)."""
        return self._storage_level if self._persisted else StorageLevel.NONE

    @property
    def is_cached(self) -> bool:
        return self._persisted

    def _truncate_lineage(self) -> None:
        """Forget the parents of a persisted RDD that holds its partitions, as a checkpoint would.

        State streams call this every batch: otherwise each state RDD would keep the previous one, and with
        it every batch ever received, alive.
        """
        if self._cached is None:
            return
        self._lineage_cut = True
        for attr in ("_prev", "_rdds", "_func", "_aggregator"):
            if attr in self.__dict__:
                setattr(self, attr, None)

    def checkpoint(self) -> None:
        """Materialise and keep this RDD, cutting its lineage."""
        self.persist()
        self._compute()

    def isCheckpointed(self) -> bool:
        return self._cached is not None

    def localCheckpoint(self) -> None:
        """Materialise and keep this RDD in memory, cutting its lineage (checkpoint() keeps it in memory too)."""
        self.checkpoint()

    def isLocallyCheckpointed(self) -> bool:
        return self.isCheckpointed()

    def getCheckpointFile(self) -> str | None:
        """None: RDD checkpoints stay in memory (a stream's checkpoints go to its checkpoint directory)."""
        return None

    def toDebugString(self) -> bytes:
        """Return a description of this RDD and its parents, one per line, as pyspark's (bytes)."""
        lines, seen, todo = [], set(), [(self, 0)]
        while todo:
            rdd, depth = todo.pop()
            lines.append(f"{'  ' * depth}{rdd!r}{' [cached]' if rdd._persisted else ''}")
            if id(rdd) in seen:
                continue
            seen.add(id(rdd))
            todo.extend((parent, depth + 1) for parent in reversed(rdd._parents()))
        return "\n".join(lines).encode("utf-8")

    def _parents(self) -> list[RDD]:
        """The RDDs this one is computed from (for toDebugString)."""
        found = []
        for value in vars(self).values():
            for v in (value if isinstance(value, (list, tuple)) else (value,)):
                if isinstance(v, RDD) and v is not self:
                    found.append(v)
        return found

    # -- narrow transformations ---------------------------------------------------------------------------
    def mapPartitionsWithIndex(self, f: Callable[[int, Iterator[Any]], Iterable[Any]],
                               preservesPartitioning: bool = False) -> RDD:
        """Return a new RDD by applying ``f(index, iterator)`` to each partition. With
        ``preservesPartitioning``, ``f`` promises to keep each record's key (and so its partition): the new RDD
        keeps this one's partitioner."""
        return lineage.PipelinedRDD(self, f, preservesPartitioning)

    def barrier(self) -> RDDBarrier:
        """Return an RDDBarrier: its mapPartitions / mapPartitionsWithIndex run in a barrier stage, every task at
        once, where ``BarrierTaskContext.get()`` syncs the tasks (see pystream.barrier)."""
        from pystream.barrier import RDDBarrier

        return RDDBarrier(self)

    def mapPartitionsWithSplit(self, f: Callable[[int, Iterator[Any]], Iterable[Any]],
                               preservesPartitioning: bool = False) -> RDD:
        """Deprecated: return mapPartitionsWithIndex(f) (with a FutureWarning, as pyspark)."""
        warnings.warn("mapPartitionsWithSplit is deprecated; use mapPartitionsWithIndex instead", FutureWarning,
                      stacklevel=2)
        return self.mapPartitionsWithIndex(f, preservesPartitioning)

    def mapPartitions(self, f: Callable[[Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False) -> RDD:
        """Return a new RDD by applying ``f(iterator)`` to each partition."""
        return self.mapPartitionsWithIndex(lambda _, it: f(it), preservesPartitioning)

    def map(self, f: Callable[[Any], Any], preservesPartitioning: bool = False) -> RDD:
        """Return a new RDD by applying ``f`` to each element."""
        g = stand_in(f)  # json.loads and the like: the same answers, sooner (pystream/known_functions.py)
        rdd = self.mapPartitionsWithIndex(lambda _, it: map(g, it), preservesPartitioning)
        rdd._map_func = f  # lets a following reduceByKey recognise map(lambda x: (x, 1)) and count in C
        return rdd

    def flatMap(self, f: Callable[[Any], Iterable[Any]], preservesPartitioning: bool = False) -> RDD:
        """Return a new RDD by applying ``f`` to each element and flattening the results."""
        chain = itertools.chain.from_iterable
        rdd = self.mapPartitionsWithIndex(lambda _, it: chain(map(f, it)), preservesPartitioning)
        rdd._flatmap_func = f  # lets a word count recognise flatMap(lambda l: l.split()) and split in C
        return rdd

    def filter(self, f: Callable[[Any], bool]) -> RDD:
        """Return a new RDD of the elements for which ``f`` is true."""
        return self.mapPartitionsWithIndex(lambda _, it: filter(f, it), True)

    def mapValues(self, f: Callable[[Any], Any]) -> RDD:
        """Return a new pair RDD applying ``f`` to each value, keeping the keys. As pyspark, a record is read as
        ``(kv[0], kv[1])``: a longer tuple gives a pair of its first two items."""
        return self.mapPartitionsWithIndex(lambda _, it: ((kv[0], f(kv[1])) for kv in it), True)

    def flatMapValues(self, f: Callable[[Any], Iterable[Any]]) -> RDD:
        """Return a new pair RDD with one (k, x) per x in ``f(v)`` of each (k, v) (read as ``mapValues`` reads
        it)."""
        return self.mapPartitionsWithIndex(lambda _, it: ((kv[0], x) for kv in it for x in f(kv[1])), True)

    def keys(self) -> RDD:
        """Return an RDD of the keys of a pair RDD."""
        return self.map(operator.itemgetter(0))

    def values(self) -> RDD:
        """Return an RDD of the values of a pair RDD."""
        return self.map(operator.itemgetter(1))

    def keyBy(self, f: Callable[[Any], Any]) -> RDD:
        """Return an RDD of (f(x), x)."""
        return self.map(lambda x: (f(x), x))

    def glom(self) -> RDD:
        """Return an RDD whose elements are the lists of each partition."""
        return self.mapPartitionsWithIndex(lambda _, it: [list(it)])

    def zipWithIndex(self) -> RDD:
        """Return (element, index) pairs, indexes counting across partitions in order."""
        sizes = self._run(lambda _, it: sum(1 for _ in it))
        starts = list(itertools.accumulate([0] + sizes[:-1]))
        return self.mapPartitionsWithIndex(lambda i, it: ((x, starts[i] + j) for j, x in enumerate(it)))

    def zipWithUniqueId(self) -> RDD:
        """Return (element, id) pairs: in partition k of n, the ids k, n + k, 2n + k, ... (no job is run)."""
        n = self.getNumPartitions()
        return self.mapPartitionsWithIndex(lambda k, it: ((x, j * n + k) for j, x in enumerate(it)))

    def sampleByKey(self, withReplacement: bool, fractions: dict[Any, float], seed: int | None = None) -> RDD:
        """Return a sample of a pair RDD, keeping each pair with the probability its key has in ``fractions``
        (or repeating it that many times on average, with replacement). Every key needs a fraction."""
        fractions = {k: sampling.check_fraction(f, f"the fraction of key {k!r}") for k, f in fractions.items()}
        seed = sampling.seed_or_new(seed)
        return self.mapPartitionsWithIndex(sampling.KeySampler(withReplacement, dict(fractions), seed), True)

    # -- wide transformations -----------------------------------------------------------------------------
    def partitionBy(self, numPartitions: int | None, partitionFunc: Callable[[Any], int] = portable_hash) -> RDD:
        """Return a pair RDD with each (k, v) in partition ``partitionFunc(k) % numPartitions``: this RDD itself
        when its partitioner is already that one (no shuffle)."""
        n = _default_partitions(self, numPartitions)
        if self.partitioner == Partitioner(n, partitionFunc):
            return self
        return lineage.ShuffledRDD(self, n, None, partitionFunc)

    def _combined(self, agg: Aggregator, numPartitions: int | None, partitionFunc: Callable[[Any], int]) -> RDD:
        """This RDD's values combined per key into ``numPartitions`` partitions by ``partitionFunc``: in each
        partition, without a shuffle, when the keys are already placed so."""
        n = _default_partitions(self, numPartitions)
        if self.partitioner == Partitioner(n, partitionFunc):
            return lineage.PipelinedRDD(self, CombineInPartition(agg), True)
        return lineage.ShuffledRDD(self, n, agg, partitionFunc)

    def combineByKey(self, createCombiner: Callable[[Any], Any], mergeValue: Callable[[Any, Any], Any],
                     mergeCombiners: Callable[[Any, Any], Any], numPartitions: int | None = None,
                     partitionFunc: Callable[[Any], int] = portable_hash) -> RDD:
        """Return (k, combined) pairs: ``createCombiner`` starts a key's combiner, ``mergeValue`` adds a value,
        ``mergeCombiners`` merges combiners from different partitions."""
        agg = Aggregator(createCombiner, mergeValue, mergeCombiners)
        return self._combined(agg, numPartitions, partitionFunc)

    def reduceByKey(self, func: Callable[[Any, Any], Any], numPartitions: int | None = None,
                    partitionFunc: Callable[[Any], int] = portable_hash) -> RDD:
        """Merge the values of each key with the associative, commutative ``func``; combines map-side first.
        Built-in reducers (``operator.add``, ``lambda a, b: a + b``, ``min``, ``max``) run in C."""
        agg = Aggregator.from_reducer(func)
        return self._combined(agg, numPartitions, partitionFunc)

    def reduceByKeyLocally(self, func: Callable[[Any, Any], Any]) -> dict:
        """Merge the values of each key with ``func`` and return the result to the driver as a dict."""
        return dict(self.reduceByKey(func).collect())

    def foldByKey(self, zeroValue: Any, func: Callable[[Any, Any], Any], numPartitions: int | None = None,
                  partitionFunc: Callable[[Any], int] = portable_hash) -> RDD:
        """Merge the values of each key with ``func``, starting each partition's fold from ``zeroValue``."""
        return self.combineByKey(lambda v: func(copy.deepcopy(zeroValue), v), func, func, numPartitions,
                                 partitionFunc)

    def aggregateByKey(self, zeroValue: Any, seqFunc: Callable[[Any, Any], Any], combFunc: Callable[[Any, Any], Any],
                       numPartitions: int | None = None,
                       partitionFunc: Callable[[Any], int] = portable_hash) -> RDD:
        """Aggregate the values of each key from ``zeroValue`` with ``seqFunc``, merging with ``combFunc``."""
        return self.combineByKey(lambda v: seqFunc(copy.deepcopy(zeroValue), v), seqFunc, combFunc, numPartitions,
                                 partitionFunc)

    def groupByKey(self, numPartitions: int | None = None,
                   partitionFunc: Callable[[Any], int] = portable_hash) -> RDD:
        """Group the values of each key into one ResultIterable (a list)."""
        agg = Aggregator(_new_group, _group_append, _group_extend, group=ResultIterable)
        return self._combined(agg, numPartitions, partitionFunc)

    def groupBy(self, f: Callable[[Any], Any], numPartitions: int | None = None,
                partitionFunc: Callable[[Any], int] = portable_hash) -> RDD:
        """Group the elements by ``f(element)``: (key, ResultIterable of elements)."""
        return self.map(lambda x: (f(x), x)).groupByKey(numPartitions, partitionFunc)

    def countByKey(self) -> dict:
        """Return a dict (defaultdict(int)) of the number of elements of each key."""
        return self.map(operator.itemgetter(0)).countByValue()

    def countByValue(self) -> dict:
        """Return a dict (defaultdict(int)) of the number of times each element occurs."""
        from pystream._core.aggregation import AggTable

        def count_partition(_: int, it: Iterator[Any]) -> list:
            table = AggTable.counter()
            table.update_keys(list(it))
            return table.items()

        merged = AggTable(operator.add)
        for items in self._run(count_partition):
            merged.update(items)
        out: defaultdict = defaultdict(int)
        out.update(merged.items())
        return out

    def distinct(self, numPartitions: int | None = None) -> RDD:
        """Return the distinct elements."""
        # Counted, then the counts dropped: map(lambda x: (x, 1)).reduceByKey(add) counts in C with no pair made
        # (see CountingMapSideTask); reduceByKey(keep the first) called Python once per repeated element. The key
        # kept of equal ones (1, 1.0, True) is the first met either way.
        return self.map(lambda x: (x, 1)).reduceByKey(operator.add, numPartitions).map(operator.itemgetter(0))

    def cogroup(self, other: RDD, numPartitions: int | None = None) -> RDD:
        """Return (k, (ResultIterable of self's values, ResultIterable of other's values)) for every key."""
        return self.groupWith(other) if numPartitions is None else joins.cogroup([self, other], numPartitions)

    def groupWith(self, other: RDD, *others: RDD) -> RDD:
        """cogroup with several RDDs: (k, (values of self, values of other, ...))."""
        return joins.cogroup([self, other, *others], None)

    def join(self, other: RDD, numPartitions: int | None = None) -> RDD:
        """Inner join: (k, (v, w)) for every pair of values of a key present in both."""
        return joins.join(self, other, numPartitions, "inner")

    def leftOuterJoin(self, other: RDD, numPartitions: int | None = None) -> RDD:
        """Left outer join: (k, (v, w)), or (k, (v, None)) for keys missing from ``other``."""
        return joins.join(self, other, numPartitions, "left")

    def rightOuterJoin(self, other: RDD, numPartitions: int | None = None) -> RDD:
        """Right outer join: (k, (v, w)), or (k, (None, w)) for keys missing from this RDD."""
        return joins.join(self, other, numPartitions, "right")

    def fullOuterJoin(self, other: RDD, numPartitions: int | None = None) -> RDD:
        """Full outer join: (k, (v, w)) with None for the side a key is missing from."""
        return joins.join(self, other, numPartitions, "full")

    def subtractByKey(self, other: RDD, numPartitions: int | None = None) -> RDD:
        """Return the pairs of this RDD whose key is not in ``other``."""
        return joins.cogroup([self, other], numPartitions).filter(lambda kv: kv[1][0] and not kv[1][1]) \
            .flatMapValues(operator.itemgetter(0))

    def union(self, other: RDD) -> RDD:
        """Return the union of this RDD and ``other`` (duplicates kept): the partitions of one, then the other's;
        or, when both have the same partitioner, partition i of each together (that partitioner kept)."""
        return lineage.union(self.ctx, [self, other])

    def __add__(self, other: RDD) -> RDD:
        if not isinstance(other, RDD):
            raise TypeError(f"can only add an RDD to an RDD, not {type(other).__name__}")
        return self.union(other)

    def repartition(self, numPartitions: int) -> RDD:
        """Return an RDD with exactly ``numPartitions`` partitions, records spread evenly (a shuffle)."""
        return self.coalesce(numPartitions, shuffle=True)

    def coalesce(self, numPartitions: int, shuffle: bool = False) -> RDD:
        """Return an RDD with ``numPartitions`` partitions; without shuffle, adjacent partitions are merged and
        the count can only go down."""
        n = _default_partitions(self, numPartitions)
        if shuffle:
            return lineage.RepartitionedRDD(self, n)
        return lineage.CoalescedRDD(self, min(n, self.getNumPartitions()))

    def sortBy(self, keyfunc: Callable[[Any], Any], ascending: bool = True, numPartitions: int | None = None) -> RDD:
        """Return the elements sorted by ``keyfunc``, in ``numPartitions`` range partitions."""
        return lineage.SortedRDD(self, keyfunc, ascending, _default_partitions(self, numPartitions))

    def sortByKey(self, ascending: bool = True, numPartitions: int | None = None,
                  keyfunc: Callable[[Any], Any] = lambda x: x) -> RDD:
        """Return the pairs sorted by ``keyfunc(key)``."""
        return self.sortBy(lambda kv: keyfunc(kv[0]), ascending, numPartitions)

    def cartesian(self, other: RDD) -> RDD:
        """Return every (a, b) with a in this RDD and b in ``other``: partition i * n + j (n: ``other``'s
        partitions) pairs this RDD's partition i with ``other``'s partition j, as Spark's CartesianRDD."""
        return lineage.CartesianRDD(self.ctx, self, other)

    def subtract(self, other: RDD, numPartitions: int | None = None) -> RDD:
        """Return the elements of this RDD not in ``other``."""
        return self.map(lambda x: (x, True)).subtractByKey(other.map(lambda x: (x, True)), numPartitions).keys()

    def intersection(self, other: RDD) -> RDD:
        """Return the distinct elements present in both RDDs."""
        return (self.map(lambda x: (x, None)).cogroup(other.map(lambda x: (x, None)))
                .filter(lambda kv: kv[1][0] and kv[1][1]).keys())

    def sample(self, withReplacement: bool, fraction: float, seed: int | None = None) -> RDD:
        """Return a random sample: each element kept with probability ``fraction`` (without replacement), or
        repeated a Poisson(``fraction``) number of times (with replacement). The same seed gives the same
        sample on every executor."""
        fraction = sampling.check_fraction(fraction)
        seed = sampling.seed_or_new(seed)
        sampler = sampling.PoissonSampler if withReplacement else sampling.BernoulliSampler
        return self.mapPartitionsWithIndex(sampler(fraction, seed), preservesPartitioning=True)

    def randomSplit(self, weights: list[float], seed: int | None = None) -> list[RDD]:
        """Return this RDD split at random into RDDs sized in proportion to ``weights``: every element is in
        exactly one of them (if this RDD gives the same elements each time it is computed)."""
        weights = [sampling.check_fraction(w, "a weight") for w in weights]
        total = float(sum(weights))
        if not total > 0:
            raise IllegalArgumentError(f"Sum of weights must be positive: {weights}")
        seed = sampling.seed_or_new(seed)
        bounds = list(itertools.accumulate(w / total for w in weights))
        return [self.mapPartitionsWithIndex(sampling.RangeSampler(lo, hi if i < len(bounds) - 1 else 1.0, seed),
                                            preservesPartitioning=True)
                for i, (lo, hi) in enumerate(zip([0.0] + bounds, bounds))]

    def zip(self, other: RDD) -> RDD:
        """Return the pairs (a, b) of the n-th elements of this RDD and ``other``, partition by partition: both
        need as many partitions, and as many elements in each (ValueError otherwise)."""
        return lineage.ZippedPartitionsRDD(self.ctx, [self, other], _zip_partition)

    def repartitionAndSortWithinPartitions(self, numPartitions: int | None = None,
                                           partitionFunc: Callable[[Any], int] = portable_hash,
                                           ascending: bool = True,
                                           keyfunc: Callable[[Any], Any] = lambda x: x) -> RDD:
        """Return the pairs partitioned by ``partitionFunc`` and sorted by ``keyfunc(key)`` inside each
        partition."""
        return self.partitionBy(numPartitions, partitionFunc).mapPartitions(
            lambda it: sorted(it, key=lambda kv: keyfunc(kv[0]), reverse=not ascending), True)

    def pipe(self, command: str, env: dict[str, str] | None = None, checkCode: bool = False) -> RDD:
        """Return the lines ``command`` prints when each partition's elements are written to its standard
        input, one per line (str(element)). As pyspark's: the command is split as a shell would but run without
        one, in the environment ``env`` alone (an empty one by default); with ``checkCode``, a non-zero exit
        fails the task."""
        return self.mapPartitions(_Pipe(command, env, checkCode))

    def __repr__(self) -> str:
        return f"{type(self).__name__}[{self._id}] ({self.getNumPartitions()} partitions)"

    def __reduce__(self):
        raise IllegalStateError(
            "It appears that you are attempting to broadcast an RDD or reference an RDD from an action or "
            "transformation. RDD transformations and actions can only be invoked by the driver, not inside of "
            "other transformations; for example, rdd1.map(lambda x: rdd2.values().count() * x) is invalid.")


# -- helpers used by the RDD methods (module-level so they pickle) ---------------------------------------
def _new_group(v: Any) -> ResultIterable:
    return ResultIterable([v])


def _group_append(group: ResultIterable, v: Any) -> ResultIterable:
    group.append(v)
    return group


def _group_extend(a: ResultIterable, b: ResultIterable) -> ResultIterable:
    a.extend(b)
    return a


def _zip_partition(_: int, a: Iterable[Any], b: Iterable[Any]) -> list[tuple[Any, Any]]:
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError("Can only zip RDDs with same number of elements in each partition")
    return list(zip(a, b))


class _Pipe:
    """One partition through a shell command (RDD.pipe)."""

    def __init__(self, command: str, env: dict[str, str] | None, check: bool) -> None:
        self.command, self.env, self.check = command, env, check

    def __call__(self, it: Iterator[Any]) -> list[str]:
        # As pyspark's: the command split as a shell would (no shell runs it), in ``env`` alone (empty unless
        # given), each element one line of str(element) without its trailing newlines, each output line
        # without its newline only (a "\r" stays).
        text = "".join(str(x).rstrip("\n") + "\n" for x in it).encode("utf-8")
        done = subprocess.run(shlex.split(self.command), input=text, stdout=subprocess.PIPE,
                              env={} if self.env is None else self.env)
        if self.check and done.returncode != 0:
            raise RuntimeError(f"Pipe function `{self.command}' exited with error code {done.returncode}")
        lines = done.stdout.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        return [line.decode("utf-8") for line in lines]


from pystream import joins, lineage  # noqa: E402 - both build on the RDD classes above
