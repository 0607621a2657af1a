"""Shuffle tasks: map-side combine and hash split, then reduce-side merge.

Map tasks run the parent's fused narrow pipeline, fold records into an aggregation table (built-in reducers in
C), and split the table's (key, combiner) pairs by the stable key hash into one bucket per reduce partition.
Reduce task j merges bucket j of every map output. The task objects are module-level classes so they pickle
(cloudpickle carries the user's functions) for executors in other processes.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pystream._core.aggregation import AggTable
from pystream._core.deserialisation import FrameReader
from pystream._core.hashing import portable_hash
from pystream._core.partitioning import partition, scatter
from pystream.errors import IllegalArgumentError

PipelineFn = Callable[[int, Iterator[Any]], Iterable[Any]]


class Partitioner:
    """Where a pair RDD keeps each key: (k, v) in partition ``partitionFunc(k) % numPartitions`` (pyspark's
    ``pyspark.rdd.Partitioner``, an RDD's ``partitioner``). Two are equal when their counts are equal and their
    functions are the same object: RDDs with equal partitioners hold each key in the same partition, so
    partitionBy to that partitioner returns the RDD itself, a reduceByKey (or any combineByKey) to it merges
    inside each partition without a shuffle, and a union of such RDDs keeps their partitions side by side."""

    __slots__ = ("numPartitions", "partitionFunc")

    def __init__(self, numPartitions: int, partitionFunc: Callable[[Any], int]) -> None:
        self.numPartitions = numPartitions
        self.partitionFunc = partitionFunc

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Partitioner) and self.numPartitions == other.numPartitions
                and self.partitionFunc == other.partitionFunc)

    def __hash__(self) -> int:
        return hash((self.numPartitions, self.partitionFunc))

    def __call__(self, k: Any) -> int:
        """Return the partition of key ``k``."""
        return self.partitionFunc(k) % self.numPartitions

    def __repr__(self) -> str:
        func = getattr(self.partitionFunc, "__qualname__", repr(self.partitionFunc))
        return f"Partitioner({self.numPartitions}, {func})"


class Aggregator:
    """combineByKey's three functions; ``reducer`` is set when all three are one binary function (reduceByKey),
    which lets the aggregation table recognise built-ins (``operator.add``, ``min``, ``max``) and run them in C."""

    __slots__ = ("create_combiner", "merge_value", "merge_combiners", "reducer", "group")

    def __init__(self, create_combiner: Callable[[Any], Any], merge_value: Callable[[Any, Any], Any],
                 merge_combiners: Callable[[Any, Any], Any], reducer: Callable[[Any, Any], Any] | None = None,
                 group: type[list] | None = None):
        self.create_combiner = create_combiner
        self.merge_value = merge_value
        self.merge_combiners = merge_combiners
        self.reducer = reducer
        # groupByKey's list type: its three functions build group([v]), append and extend, which the tables then
        # do in C (160K Python calls for 200K values into 20K keys took most of the operator's time).
        self.group = group

    @classmethod
    def from_reducer(cls, func: Callable[[Any, Any], Any]) -> Aggregator:
        return cls(_identity, func, func, reducer=func)

    def map_table(self) -> AggTable:
        if self.reducer is not None:
            return AggTable(self.reducer)
        return AggTable.combiner(self.create_combiner, self.merge_value, self.merge_combiners, group=self.group)

    def merge_table(self) -> AggTable:
        return AggTable(self.merge_combiners, group=self.group)


def _identity(x: Any) -> Any:
    return x


_ADD_CODE = (lambda a, b: a + b).__code__
_PAIR_CODE = (lambda x: (x, 1)).__code__
_SPLIT_CODE = (lambda x: x.split()).__code__


def _plain_lambda(f: Any, ref: Any) -> bool:
    code = getattr(f, "__code__", None)
    return (code is not None and code.co_code == ref.co_code and code.co_argcount == ref.co_argcount
            and not getattr(f, "__defaults__", None) and not getattr(f, "__closure__", None)
            and not code.co_kwonlyargcount)


def is_add(f: Any) -> bool:
    """Whether ``f`` is ``operator.add`` or a plain ``lambda a, b: a + b``."""
    return f is operator.add or _plain_lambda(f, _ADD_CODE)


def pair_constant(f: Any) -> int | None:
    """The int c if ``f`` is a plain ``lambda x: (x, c)``, else None."""
    if not _plain_lambda(f, _PAIR_CODE):
        return None
    c = f.__code__.co_consts[-1]
    return c if type(c) is int else None


def is_plain_split(f: Any) -> bool:
    """Whether ``f`` is a plain ``lambda x: x.split()`` (any argument name)."""
    return _plain_lambda(f, _SPLIT_CODE) and f.__code__.co_names == ("split",)


def piped(func: PipelineFn | None, split: int, records: Iterable[Any]) -> Iterable[Any]:
    """A fused narrow pipeline's output for one partition, as it comes (the records themselves without one)."""
    return records if func is None else func(split, iter(records))


def run_pipeline(func: PipelineFn | None, split: int, records: list) -> list:
    """Apply a fused narrow pipeline to one partition and materialise the result as a list."""
    if func is None:
        return records
    out = func(split, iter(records))
    return out if isinstance(out, list) else list(out)


class TableSplit:
    """A map task's buckets while they are still its aggregation table's entries.

    An executor that ships some buckets to other processes asks for those as frames (``split(frames)``):
    their pairs are encoded straight from the table, each tuple freed as soon as it is written, instead of
    lists of them that the task would make, the executor encode and the worker then free (2-3 ms for W1's),
    all on the stage's critical path. Every other bucket is a table of its own (the whole table when there is
    one bucket), which the reduce task merges entry by entry in C: W1's map tasks made a pair per key for it
    to fold back in, 18 ms per batch on one worker. Indexing or iterating gives every bucket so.
    """

    __slots__ = ("table", "num_partitions", "_buckets")

    def __init__(self, table: AggTable, num_partitions: int) -> None:
        self.table: AggTable | None = table
        self.num_partitions = num_partitions
        self._buckets: list | None = None

    def split(self, frames: Iterable[int] = ()) -> list:
        """One entry per bucket: an AggTable, or for each index in ``frames`` a FrameWriter of its pairs."""
        if self._buckets is not None:
            return self._buckets
        table, self.table = self.table, None  # the buckets hold what is needed from it
        assert table is not None
        frames = list(frames)
        if self.num_partitions == 1 and not frames:
            out: list = [table]
        else:
            # The table is this split's alone: its entries move to the buckets, and its index is freed
            # before theirs are built (W1: 2 MB less at each worker's peak, and no key touched twice).
            out = table.split_items(self.num_partitions, frames,
                                    [j for j in range(self.num_partitions) if j not in frames], consume=True)
        if not frames:
            self._buckets = out
        return out

    def __len__(self) -> int:
        return self.num_partitions

    def __getitem__(self, j: int) -> AggTable:
        return self.split()[j]

    def __iter__(self) -> Iterator[AggTable]:
        return iter(self.split())


def _table_buckets(table: AggTable, num_partitions: int,
                   partition_func: Callable[[Any], int]) -> TableSplit | list[list]:
    if partition_func is portable_hash:
        return TableSplit(table, num_partitions)
    return split_by_key(table.items(), num_partitions, partition_func)


def split_by_key(records: list, num_partitions: int, partition_func: Callable[[Any], int]) -> list[list]:
    """Split (key, value) pairs into ``num_partitions`` buckets by ``partition_func(key) % num_partitions``."""
    if partition_func is portable_hash:
        return partition(records, num_partitions)
    try:
        ids = [partition_func(kv[0]) % num_partitions for kv in records]
    except TypeError:
        bad = next((p for p in (partition_func(kv[0]) for kv in records) if not isinstance(p, int)), None)
        if bad is None:
            raise
        raise IllegalArgumentError(f"partitionFunc must return an int, got {type(bad).__name__} {bad!r:.40}") from None
    return scatter(records, ids, num_partitions)


# A task whose pipeline reads an iterator may be handed its input frame to decode as it goes (see the worker).
_HAS_PIPELINE = property(lambda task: task.pipeline is not None)

# Records a table folds in at a time from a streamed input frame: enough to amortise the call into C, few
# enough (W1: 2048 lines, about 200 KB of objects) that they are still in cache when they are folded and freed,
# and the next chunk reuses their memory. Decoding a whole partition first made a worker's peak a full copy of
# its input as objects (W1: 10 MB per worker on top of its table).
FOLD_CHUNK = 2048


def record_chunks(records: Iterable[Any]) -> Iterator[list]:
    """Records as lists to fold in order: a list whole, a streamed frame or any other iterable a chunk at a
    time (a pipeline's output is never materialised whole)."""
    if type(records) is list:
        yield records
    elif type(records) is FrameReader:
        while chunk := records.next_chunk(FOLD_CHUNK):
            yield chunk
    else:
        it = iter(records)
        while chunk := list(itertools.islice(it, FOLD_CHUNK)):
            yield chunk


class MapSideTask:
    """Map side of a shuffle: pipeline, optional combine, split into reduce buckets."""

    def __init__(self, pipeline: PipelineFn | None, aggregator: Aggregator | None, num_partitions: int,
                 partition_func: Callable[[Any], int]) -> None:
        self.pipeline = pipeline
        self.aggregator = aggregator
        self.num_partitions = num_partitions
        self.partition_func = partition_func

    # A combining task folds its records in order whatever its pipeline; without one, it needs them as a list.
    streams_input = property(lambda task: task.pipeline is not None or task.aggregator is not None)

    def __call__(self, split: int, records: list | FrameReader) -> TableSplit | list[list]:
        if self.aggregator is not None:
            table = self.aggregator.map_table()
            for chunk in record_chunks(piped(self.pipeline, split, records)):
                table.update(chunk)
            return _table_buckets(table, self.num_partitions, self.partition_func)
        records = run_pipeline(self.pipeline, split, records)
        return split_by_key(records, self.num_partitions, self.partition_func)


class CountingMapSideTask:
    """Map side of ``map(lambda x: (x, c)).reduceByKey(add)`` for an int c: count the elements in C (no pair
    tuples, no Python call per element) and scale by c, which gives exactly what summing the c's gives."""

    def __init__(self, pipeline: PipelineFn | None, weight: int, num_partitions: int,
                 partition_func: Callable[[Any], int], split_words: bool = False) -> None:
        self.pipeline = pipeline
        self.weight = weight
        self.num_partitions = num_partitions
        self.partition_func = partition_func
        # flatMap(lambda l: l.split()) before the map: split and count each line in one C pass.
        self.split_words = split_words
        # Keys each split counted the last time this task object ran it. A worker keeps a task object for
        # every batch of a stream: a split's next batch has about as many keys.
        self.counted: dict[int, int] = {}

    streams_input = True  # its records are only ever folded into the table, in order

    def __call__(self, split: int, records: list | FrameReader) -> TableSplit | list[list]:
        table = AggTable(operator.add)
        # Room for half the keys of the split's last batch: the index then starts at its final size (twice
        # that half, rounded up to a power of two, at load 1/4 to 1/2), not grown and rebuilt a dozen times on
        # the way (W1, 65K keys a worker: 29.3 -> 27.3 ms to count 100K lines); the entries still grow.
        table.reserve(self.counted.get(split, 0) // 2)
        if self.split_words and self.pipeline is None and type(records) is FrameReader:
            table.count_words(records)  # lines split where they lie in the frame: no str made for them
        else:
            fold = table.count_words if self.split_words else table.update_keys
            for chunk in record_chunks(piped(self.pipeline, split, records)):
                fold(chunk)
        self.counted[split] = len(table)
        if self.weight == 1:
            return _table_buckets(table, self.num_partitions, self.partition_func)
        w = self.weight
        return split_by_key([(k, n * w) for k, n in table.items()], self.num_partitions, self.partition_func)


class CombineInPartition:
    """combineByKey on an RDD already partitioned by its keys as the result will be: each partition holds
    every value of its keys, so combining them there is the whole result (no buckets, no merge)."""

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator

    def __call__(self, split: int, records: Iterator[Any]) -> list:
        table = self.aggregator.map_table()
        for chunk in record_chunks(records):
            table.update(chunk)
        return table.items()


class RoundRobinTask:
    """Map side of repartition(): deal records round-robin into the reduce buckets."""

    def __init__(self, pipeline: PipelineFn | None, num_partitions: int) -> None:
        self.pipeline = pipeline
        self.num_partitions = num_partitions

    streams_input = _HAS_PIPELINE

    def __call__(self, split: int, records: list) -> list[list]:
        records = run_pipeline(self.pipeline, split, records)
        n = self.num_partitions
        return scatter(records, [(split + i) % n for i in range(len(records))], n)


class SampleKeysTask:
    """A sortBy's first job: each partition's record count, and the sort keys of up to ``size`` of its records
    taken at an even stride (the driver draws the range bounds from them, see ``range_bounds``)."""

    def __init__(self, pipeline: PipelineFn | None, keyfunc: Callable[[Any], Any], size: int) -> None:
        self.pipeline = pipeline
        self.keyfunc = keyfunc
        self.size = size

    streams_input = _HAS_PIPELINE

    def __call__(self, split: int, records: list) -> tuple[int, list]:
        records = run_pipeline(self.pipeline, split, records)
        step = max(1, -(-len(records) // self.size))
        return len(records), [self.keyfunc(x) for x in records[::step]]


def range_bounds(samples: list[tuple[int, list]], num_partitions: int) -> list:
    """The ``num_partitions - 1`` keys that cut the sampled keys into ranges of about equal record counts: each
    sampled key stands for the records of its partition over its sample size (Spark's RangePartitioner weighs
    its candidates so). Fewer bounds when the keys have fewer distinct values."""
    weighted = sorted(((k, count / len(keys)) for count, keys in samples if keys for k in keys),
                      key=operator.itemgetter(0))
    total = sum(w for _, w in weighted)
    bounds: list = []
    acc = 0.0
    for key, weight in weighted:
        acc += weight
        if len(bounds) == num_partitions - 1:
            break
        if acc >= total * (len(bounds) + 1) / num_partitions and (not bounds or key > bounds[-1]):
            bounds.append(key)
    return bounds


class RangeSplitTask:
    """Map side of sortBy: each record to the range of its key (ascending, range j holds keys up to bounds[j];
    descending, the ranges in reverse order). Equal keys always share a range."""

    def __init__(self, pipeline: PipelineFn | None, keyfunc: Callable[[Any], Any], bounds: list,
                 ascending: bool, num_partitions: int) -> None:
        self.pipeline = pipeline
        self.keyfunc = keyfunc
        self.bounds = bounds
        self.ascending = ascending
        self.num_partitions = num_partitions

    streams_input = _HAS_PIPELINE

    def __call__(self, split: int, records: list) -> list[list]:
        records = run_pipeline(self.pipeline, split, records)
        keyfunc, bounds, n = self.keyfunc, self.bounds, self.num_partitions
        ids = [bisect.bisect_left(bounds, keyfunc(x)) for x in records]
        if not self.ascending:
            ids = [n - 1 - i for i in ids]
        return scatter(records, ids, n)


class SortRangeTask:
    """Reduce side of sortBy: one range's records from every map task, in map order, sorted by key (stable:
    equal keys keep the order of the partitions and records they came from, as a sort of them all would)."""

    def __init__(self, keyfunc: Callable[[Any], Any], ascending: bool) -> None:
        self.keyfunc = keyfunc
        self.ascending = ascending

    def __call__(self, split: int, buckets: Iterable[list]) -> list:
        return sorted(itertools.chain.from_iterable(buckets), key=self.keyfunc, reverse=not self.ascending)


class ConcatTask:
    """Run a pipeline over several partitions and concatenate them (coalesce without shuffle)."""

    def __init__(self, pipeline: PipelineFn | None) -> None:
        self.pipeline = pipeline

    def __call__(self, split: int, parts: list[list]) -> list:
        out: list = []
        for part in parts:
            out.extend(run_pipeline(self.pipeline, split, part))
        return out


class ReduceSideTask:
    """Reduce side of a shuffle: merge the combiners of one key range (or just concatenate)."""

    def __init__(self, aggregator: Aggregator | None) -> None:
        self.aggregator = aggregator

    # Other workers' buckets arrive as frames, folded from their bytes as they are read (W2's kept reduce
    # of 2 workers decoded a 32K-pair frame into tuples first: 5-6 ms of its 15).
    streams_input = True

    def __call__(self, split: int, buckets: list[list]) -> list:
        out = merge_buckets(self.aggregator, buckets)
        return out if isinstance(out, list) else list(out)


def merge_buckets(aggregator: Aggregator | None, buckets: Iterable[list | FrameReader | AggTable],
                  lazy: bool = False) -> Iterable[Any]:
    """One reduce partition from its buckets (lists, frames from other workers read as they are merged, or
    a map task's tables): their combiners merged per key, or (no aggregator) their records one bucket after
    the other. ``lazy`` gives the merged pairs as an iterator that makes each pair when it is reached, for
    a next step that consumes them one by one (then they are never all alive at once); else a list."""
    if aggregator is None:
        return itertools.chain.from_iterable(buckets)
    table = aggregator.merge_table()
    parts = buckets if isinstance(buckets, list) else list(buckets)
    if len(parts) == 1 and type(parts[0]) is AggTable and table.can_merge(parts[0]):
        # Merged into an empty table it would come out as it is: a bucket is never changed (a task that
        # runs again reads it again), so its pairs are read off it.
        return parts[0].iter_items() if lazy else parts[0].items()
    if len(parts) > 1 and not (type(parts[0]) is AggTable and table.can_merge(parts[0])):
        # A first bucket folded key by key would grow the table from nothing, re-indexing every key at each
        # step (W1's reduce task 1 of 2 workers, another worker's frame first: 3.7 ms, 2.2 ms with the room
        # made first). A bucket's keys are distinct (combined on the map side), so the partition holds at
        # least the largest bucket's and at most all of them; past twice the largest, growing is cheaper.
        sizes = [_bucket_size(b) for b in parts]
        table.reserve(min(sum(sizes), 2 * max(sizes)))
    for bucket in parts:
        if type(bucket) is AggTable:
            if table.can_merge(bucket):
                table.merge(bucket)
            else:
                table.update(bucket.items())
            continue
        if type(bucket) is FrameReader:
            table.update(bucket)  # (str, int) pairs folded from the frame's bytes: no tuple, no str but long new keys
            continue
        for chunk in record_chunks(bucket):
            table.update(chunk)
    return table.iter_items() if lazy else table.items()


def _bucket_size(bucket: Any) -> int:
    if type(bucket) is FrameReader:
        return bucket.remaining
    return len(bucket) if isinstance(bucket, (list, AggTable)) else 0


class ApplyTask:
    """Run a pipeline over a partition, then ``action(split, iterator)`` on its output (for RDD actions)."""

    def __init__(self, pipeline: PipelineFn | None, action: Callable[[int, Iterator[Any]], Any]) -> None:
        self.pipeline = pipeline
        self.action = action

    # The pipeline and the action both take iterators: the input frame may be decoded as they go.
    streams_input = True

    def __call__(self, split: int, records: list) -> Any:
        if self.pipeline is None:
            return self.action(split, iter(records))
        return self.action(split, iter(self.pipeline(split, iter(records))))


class OffsetTask:
    """Shift the partition index a task sees (when only a slice of partitions runs, e.g. for take())."""

    def __init__(self, task: Callable[[int, Any], Any], offset: int) -> None:
        self.task = task
        self.offset = offset

    def __call__(self, split: int, data: Any) -> Any:
        return self.task(split + self.offset, data)
