"""The actions of an RDD: what computes a result in the driver (collect, count, reduce, stats, foreach, ...).

``RDD`` (pystream.rdd) inherits them from ``RDDActions``; each runs its tasks through ``RDD._run``.
"""

from __future__ import annotations

import copy
import functools
import heapq
import itertools
import math
import operator
import random
import sys
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from pystream import sampling
from pystream._core.deserialisation import FrameReaderIterator
from pystream.statcounter import StatCounter

# pyspark's words for a reduce (and what is built on one: stats, mean, top) over no elements.
_EMPTY_REDUCE = "Can not reduce() empty RDD"
# The largest takeSample size pyspark allows (room for 10 standard deviations of oversampling).
_MAX_SAMPLE_SIZE = sys.maxsize - int(10.0 * math.sqrt(sys.maxsize))


class RDDActions:
    """The actions of ``RDD`` (see the module's docstring)."""

    def collect(self) -> list:
        """Return every element, partition by partition, as a list."""
        out: list = []
        for part in self._run(_to_list):
            out.extend(part)
        return out

    def collectWithJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> list:
        """Return what collect() returns, run as a job of group ``groupId`` (the thread's own group is as it
        was afterwards): cancelJobGroup(groupId) cancels it."""
        keys = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")
        saved = [self.ctx.getLocalProperty(k) for k in keys]
        self.ctx.setJobGroup(groupId, description, interruptOnCancel)
        try:
            return self.collect()
        finally:
            for key, value in zip(keys, saved):
                self.ctx.setLocalProperty(key, value)

    def collectAsMap(self) -> dict:
        """Return the pairs of a pair RDD as a dict (later values win)."""
        return dict(self.collect())

    def toLocalIterator(self, prefetchPartitions: bool = False) -> Iterator[Any]:
        """Iterate over the elements, computing one partition at a time."""
        for i in range(self.getNumPartitions()):
            yield from self._run(_to_list, range(i, i + 1))[0]

    def count(self) -> int:
        """Return the number of elements."""
        return sum(self._run(_count_iter))

    def take(self, num: int) -> list:
        """Return the first ``num`` elements, computing as few partitions as it can."""
        out: list = []
        total = self.getNumPartitions()
        scanned, step = 0, 1
        while len(out) < num and scanned < total:
            stop = min(total, scanned + step)
            want = num - len(out)
            for part in self._run(lambda _, it: list(itertools.islice(it, want)), range(scanned, stop)):
                out.extend(part)
            scanned, step = stop, step * 4
        return out[:num]

    def first(self) -> Any:
        """Return the first element; ValueError if the RDD is empty."""
        taken = self.take(1)
        if not taken:
            raise ValueError("RDD is empty")
        return taken[0]

    def isEmpty(self) -> bool:
        """Return whether the RDD has no element."""
        return self.getNumPartitions() == 0 or not self.take(1)

    def reduce(self, f: Callable[[Any, Any], Any]) -> Any:
        """Reduce the elements with the associative, commutative ``f``; ValueError if the RDD is empty."""
        return self._reduce(f, _EMPTY_REDUCE)

    def _reduce(self, f: Callable[[Any, Any], Any], empty: str) -> Any:
        """reduce(f), raising ValueError(``empty``) for an RDD without elements."""

        def reduce_partition(_: int, it: Iterator[Any]) -> list:
            # A list (empty for an empty partition) rather than a sentinel object: the result may be pickled
            # back from another process, where a sentinel would lose its identity.
            acc = next(it, _EMPTY)
            if acc is _EMPTY:
                return []
            for x in it:
                acc = f(acc, x)
            return [acc]

        vals = [v for part in self._run(reduce_partition) for v in part]
        if not vals:
            raise ValueError(empty)
        acc = vals[0]
        for v in vals[1:]:
            acc = f(acc, v)
        return acc

    def fold(self, zeroValue: Any, op: Callable[[Any, Any], Any]) -> Any:
        """Fold each partition from ``zeroValue`` with ``op``, then fold the partition results."""
        return self.aggregate(zeroValue, op, op)

    def aggregate(self, zeroValue: Any, seqOp: Callable[[Any, Any], Any], combOp: Callable[[Any, Any], Any]) -> Any:
        """Aggregate each partition from ``zeroValue`` with ``seqOp`` and merge the results with ``combOp``."""
        acc = zeroValue
        for v in self._aggregated_partitions(zeroValue, seqOp):
            acc = combOp(acc, v)
        return acc

    def _aggregated_partitions(self, zeroValue: Any, seqOp: Callable[[Any, Any], Any]) -> list:
        """Each partition folded with ``seqOp`` from a copy of ``zeroValue``."""

        def agg_partition(_: int, it: Iterator[Any]) -> Any:
            acc = copy.deepcopy(zeroValue)
            for x in it:
                acc = seqOp(acc, x)
            return acc

        return self._run(agg_partition)

    def sum(self) -> Any:
        """Return the sum of the elements (0 for an empty RDD)."""
        return self.fold(0, operator.add)

    def max(self, key: Callable[[Any], Any] | None = None) -> Any:
        """Return the largest element (by ``key``); ValueError if empty."""
        return self.reduce(lambda a, b: max(a, b, key=key) if key else max(a, b))

    def min(self, key: Callable[[Any], Any] | None = None) -> Any:
        """Return the smallest element (by ``key``); ValueError if empty."""
        return self.reduce(lambda a, b: min(a, b, key=key) if key else min(a, b))

    def mean(self) -> float:
        """Return the mean of the elements. As pyspark's (its StatCounter's): 0.0 when there are none, and
        ValueError for an RDD of no partitions."""
        parts = self._run(lambda _, it: _sum_count(it))
        if not parts:
            raise ValueError(_EMPTY_REDUCE)
        total = sum(p[0] for p in parts)
        n = sum(p[1] for p in parts)
        return total / n if n else 0.0

    def stats(self) -> StatCounter:
        """Return a StatCounter of the elements (count, mean, variance, min, max) from one pass; ValueError
        for an RDD of no partitions, as pyspark's."""
        return self.mapPartitions(lambda it: [StatCounter(it)]).reduce(StatCounter.mergeStats)

    def variance(self) -> float:
        """Return the population variance of the elements."""
        return self.stats().variance()

    def stdev(self) -> float:
        """Return the population standard deviation of the elements."""
        return self.stats().stdev()

    def sampleVariance(self) -> float:
        """Return the sample variance of the elements (divided by n - 1)."""
        return self.stats().sampleVariance()

    def sampleStdev(self) -> float:
        """Return the sample standard deviation of the elements (divided by n - 1)."""
        return self.stats().sampleStdev()

    def histogram(self, buckets: int | list[Any]) -> tuple[list[Any], list[int]]:
        """Return (bucket bounds, counts). ``buckets`` is a sorted list of at least two bounds, or a number of
        equal buckets between the smallest and largest element. Each bucket holds its lower bound, the last one
        its upper bound too; None, NaN and elements outside the bounds are not counted."""
        if isinstance(buckets, int):
            if buckets < 1:
                raise ValueError("number of buckets must be >= 1")
            ends = self.filter(sampling.countable).mapPartitions(sampling.min_max).collect()
            if not ends:
                raise ValueError("can not generate buckets from empty RDD")
            lo, hi = min(e[0] for e in ends), max(e[1] for e in ends)
            if lo == hi or buckets == 1:
                return [lo, hi], [self.filter(sampling.countable).count()]
            bounds, width = sampling.even_buckets(lo, hi, buckets)
        else:
            bounds, width = buckets, sampling.check_buckets(buckets)  # given bounds come back as they were
        counts = self.mapPartitions(sampling.BucketCounter(list(bounds), width)).reduce(sampling.add_counts)
        return bounds, counts

    def takeSample(self, withReplacement: bool, num: int, seed: int | None = None) -> list:
        """Return ``num`` elements drawn at random (all of them, shuffled, if the RDD has fewer and
        ``withReplacement`` is false)."""
        if num < 0:
            raise ValueError("Sample size cannot be negative.")
        if num > _MAX_SAMPLE_SIZE:
            raise ValueError(f"Sample size cannot be greater than {_MAX_SAMPLE_SIZE}.")
        total = self.count() if num else 0
        if total == 0:
            return []
        rng = random.Random(seed)
        if not withReplacement and num >= total:
            out = self.collect()
            rng.shuffle(out)
            return out
        fraction = sampling.fraction_for_sample_size(num, total, withReplacement)
        # As pyspark draws it (the same seed gives pyspark's sample): the seed itself first, then new ones.
        out = self.sample(withReplacement, fraction, seed).collect()
        while len(out) < num:  # rare (1 in 20,000): draw again
            out = self.sample(withReplacement, fraction, rng.randint(0, sys.maxsize)).collect()
        rng.shuffle(out)
        return out[:num]

    def treeReduce(self, f: Callable[[Any, Any], Any], depth: int = 2) -> Any:
        """Return ``reduce(f)``: partition results are few here, so they merge in the driver at any depth.
        ValueError("Cannot reduce empty RDD.") if the RDD is empty."""
        if depth < 1:
            raise ValueError(f"Depth cannot be smaller than 1 but got {depth}.")
        return self._reduce(f, "Cannot reduce empty RDD.")  # pyspark's treeReduce words it so

    def treeAggregate(self, zeroValue: Any, seqOp: Callable[[Any, Any], Any], combOp: Callable[[Any, Any], Any],
                      depth: int = 2) -> Any:
        """Aggregate each partition from ``zeroValue`` with ``seqOp``, then merge the partition results with
        ``combOp`` (in the driver at any depth: they are few). Unlike aggregate, ``zeroValue`` is not merged in
        once more at the end (as pyspark's); an RDD of no partitions gives ``zeroValue``."""
        if depth < 1:
            raise ValueError(f"Depth cannot be smaller than 1 but got {depth}.")
        if self.getNumPartitions() == 0:
            return zeroValue
        return functools.reduce(combOp, self._aggregated_partitions(zeroValue, seqOp))

    def countApprox(self, timeout: int, confidence: float = 0.95) -> int:
        """Return the count: it is exact here, whatever the timeout (in ms) and confidence."""
        return int(self.count())

    def sumApprox(self, timeout: int, confidence: float = 0.95) -> BoundedFloat:
        """Return the sum as a BoundedFloat whose bounds are the exact sum."""
        total = float(self.sum())
        return BoundedFloat(total, confidence, total, total)

    def meanApprox(self, timeout: int, confidence: float = 0.95) -> BoundedFloat:
        """Return the mean as a BoundedFloat whose bounds are the exact mean."""
        mean = float(self.mean())
        return BoundedFloat(mean, confidence, mean, mean)

    def countApproxDistinct(self, relativeSD: float = 0.05) -> int:
        """Return the number of distinct elements (exact, so within any ``relativeSD``)."""
        if relativeSD < 0.000017:
            raise ValueError("relativeSD should be greater than 0.000017")
        return self.distinct().count()

    def top(self, num: int, key: Callable[[Any], Any] | None = None) -> list:
        """Return the ``num`` largest elements, largest first (ValueError for an RDD of no partitions, as
        pyspark's)."""
        parts = self._run(lambda _, it: heapq.nlargest(num, it, key=key))
        if not parts:
            raise ValueError(_EMPTY_REDUCE)
        return heapq.nlargest(num, itertools.chain.from_iterable(parts), key=key)

    def takeOrdered(self, num: int, key: Callable[[Any], Any] | None = None) -> list:
        """Return the ``num`` smallest elements, smallest first; ValueError if ``num`` is negative."""
        if num < 0:
            raise ValueError("top N cannot be negative.")
        if num == 0:
            return []
        parts = self._run(lambda _, it: heapq.nsmallest(num, it, key=key))
        return heapq.nsmallest(num, itertools.chain.from_iterable(parts), key=key)

    def lookup(self, key: Any) -> list:
        """Return every value of ``key`` in a pair RDD."""
        return self.filter(lambda kv: kv[0] == key).values().collect()

    def foreach(self, f: Callable[[Any], Any]) -> None:
        """Apply ``f`` to every element (for its side effects)."""
        self._run(lambda _, it: _consume(map(f, it)))

    def foreachPartition(self, f: Callable[[Iterator[Any]], Any]) -> None:
        """Apply ``f`` to the iterator of every partition. As in pyspark, an iterable ``f`` returns (a generator
        function's generator) is run to its end; nothing is sent back to the driver."""

        def run_partition(_: int, it: Iterator[Any]) -> None:
            out = f(it)
            if out is not None and hasattr(out, "__iter__"):
                _consume(iter(out))

        self._run(run_partition)

    def saveAsTextFile(self, path: str, compressionCodecClass: str | None = None) -> None:
        """Write one ``part-NNNNN`` text file per partition (``str()`` of each element per line) and an empty
        ``_SUCCESS`` last, into the new directory ``path``. FileExistsError if it exists.

        ``compressionCodecClass``: a Hadoop codec class (``"org.apache.hadoop.io.compress.GzipCodec"``,
        ``BZip2Codec``, ``DefaultCodec``, or Spark's short names gzip, bzip2, deflate): every part is written
        through it, named with its extension (``part-00000.gz``); ``textFile`` reads them back. Any other codec
        raises UnsupportedCodecError before the job runs."""
        from pystream.hadoop_files import codec_named
        from pystream.output import write_text_dir

        codec = None if compressionCodecClass is None else codec_named(compressionCodecClass)
        write_text_dir(path, self._run(str_lines), codec=codec)

    def saveAsPickleFile(self, path: str, batchSize: int = 10) -> None:
        """Write one ``part-NNNNN`` file per partition into the new directory ``path`` (FileExistsError if it
        exists), in Spark's layout, which pyspark's ``pickleFile`` reads too: a Hadoop SequenceFile whose
        records hold lists of up to ``batchSize`` elements pickled (0: pyspark's automatic batches, here 100).
        ``SparkContext.pickleFile`` reads them back."""
        from pystream.output import write_binary_dir
        from pystream.sequence_files import PartitionFile, write_pickle_batches

        if batchSize < 0:
            raise ValueError(f"batchSize must be 0 (automatic) or more, got {batchSize}")
        write_binary_dir(path, self._run(PartitionFile(write_pickle_batches, batchSize or 100)))

    def saveAsSequenceFile(self, path: str, compressionCodecClass: str | None = None) -> None:
        """Write the RDD's (key, value) pairs as Hadoop SequenceFiles, one ``part-NNNNN`` per partition and an
        empty ``_SUCCESS``, into the new directory ``path`` (FileExistsError if it exists). Keys and values
        become Writables as pyspark converts them (pystream.sequence_files); the first pair of a partition fixes
        its file's classes, and a pair of other classes, or a value of a type no Writable takes, raises
        IllegalArgumentError. With ``compressionCodecClass`` (DefaultCodec, GzipCodec, BZip2Codec) the file is
        BLOCK-compressed, as Spark writes it."""
        from pystream.hadoop_files import codec_named
        from pystream.output import write_binary_dir
        from pystream.sequence_files import PartitionFile, write_records

        codec = None if compressionCodecClass is None else codec_named(compressionCodecClass)
        write_binary_dir(path, self._run(PartitionFile(write_records, codec)))

    def saveAsHadoopFile(self, path: str, outputFormatClass: str, keyClass: str | None = None,
                         valueClass: str | None = None, keyConverter: str | None = None,
                         valueConverter: str | None = None, conf: dict[str, str] | None = None,
                         compressionCodecClass: str | None = None) -> None:
        """Write the (key, value) pairs into the new directory ``path`` through an old-API Hadoop output
        format: TextOutputFormat or SequenceFileOutputFormat (pystream.hadoop_formats; ``keyClass`` and
        ``valueClass`` choose a SequenceFile's Writables); others UnsupportedFormatError."""
        from pystream.hadoop_formats import save_hadoop

        save_hadoop(self, path, outputFormatClass, keyClass, valueClass, keyConverter, valueConverter, conf,
                    compressionCodecClass)

    def saveAsNewAPIHadoopFile(self, path: str, outputFormatClass: str, keyClass: str | None = None,
                               valueClass: str | None = None, keyConverter: str | None = None,
                               valueConverter: str | None = None, conf: dict[str, str] | None = None) -> None:
        """As saveAsHadoopFile, for the new API's output formats (``org.apache.hadoop.mapreduce.lib.output``)."""
        from pystream.hadoop_formats import save_hadoop

        save_hadoop(self, path, outputFormatClass, keyClass, valueClass, keyConverter, valueConverter, conf, None)

    def saveAsHadoopDataset(self, conf: dict[str, str], keyConverter: str | None = None,
                            valueConverter: str | None = None) -> None:
        """As saveAsHadoopFile, the format, directory and classes given by ``conf`` (``mapred.output.format.class``,
        ``mapreduce.output.fileoutputformat.outputdir``, ``mapreduce.job.output.key.class``, ...)."""
        from pystream.hadoop_formats import save_hadoop_dataset

        save_hadoop_dataset(self, conf, False, keyConverter, valueConverter)

    def saveAsNewAPIHadoopDataset(self, conf: dict[str, str], keyConverter: str | None = None,
                                  valueConverter: str | None = None) -> None:
        """As saveAsHadoopDataset, the format given by ``mapreduce.job.outputformat.class``."""
        from pystream.hadoop_formats import save_hadoop_dataset

        save_hadoop_dataset(self, conf, True, keyConverter, valueConverter)

    def toPandas(self, columns: list[str] | None = None):
        """Return a pandas DataFrame of records that are tuples (columns by position or ``columns``) or dicts."""
        import pandas as pd

        return pd.DataFrame.from_records(self.collect(), columns=columns)

    def toArrow(self, names: list[str] | None = None):
        """Return a pyarrow Table of records that are tuples (columns by position or ``names``) or dicts."""
        import pyarrow as pa

        rows = self.collect()
        if rows and isinstance(rows[0], dict):
            return pa.Table.from_pylist(rows)
        width = len(rows[0]) if rows else len(names or [])
        names = names or [f"_{i + 1}" for i in range(width)]
        cols = list(zip(*rows)) if rows else [[] for _ in names]
        return pa.table({n: list(c) for n, c in zip(names, cols)})


class BoundedFloat(float):
    """A float with a confidence and low and high bounds (what pyspark's approximate actions return)."""

    confidence: float
    low: float
    high: float

    def __new__(cls, mean: float, confidence: float, low: float, high: float) -> BoundedFloat:
        obj = super().__new__(cls, mean)
        obj.confidence, obj.low, obj.high = confidence, low, high
        return obj


# -- helpers of the actions (module-level so they pickle) -------------------------------------------------
_EMPTY = object()


def _to_list(_: int, it: Iterator[Any]) -> list:
    return list(it)


# Iterators whose length_hint is their exact length: counting them touches no element (each element is a
# cache miss when a partition is large and was made a while ago).
# Iterators whose length_hint is exact: a count reads it instead of walking the records (a FrameReader's is
# its frame's record count, so counting an input partition decodes nothing).
_SIZED_ITERATORS = (type(iter([])), type(iter(())), type(iter(range(0))), FrameReaderIterator)


def _count_iter(_: int, it: Iterator[Any]) -> int:
    if type(it) in _SIZED_ITERATORS:
        return operator.length_hint(it)
    # Counted in C: zip pulls one number per element, and a zero-length deque drains it without a Python
    # loop (a Python loop cost 40 ns per element, as much as producing it).
    numbers = itertools.count()
    deque(zip(it, numbers), maxlen=0)
    return next(numbers)


def _consume(it: Iterator[Any]) -> None:
    for _x in it:
        pass


def str_lines(_: int, it: Iterator[Any]) -> list[str]:
    return [str(x) for x in it]


def _sum_count(it: Iterator[Any]) -> tuple[Any, int]:
    total, n = 0, 0
    for x in it:
        total += x
        n += 1
    return total, n
