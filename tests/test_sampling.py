"""sample, randomSplit, takeSample, histogram, stats, zip, pipe and friends, on both executors."""

from __future__ import annotations

import math
import operator
import random
import statistics
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream import StorageLevel
from pystream.errors import IllegalArgumentError
from pystream.sampling import PoissonSampler, poisson
from pystream.statcounter import StatCounter


def test_sample_is_reproducible_and_close_to_its_fraction(sc):
    rdd = sc.parallelize(range(20_000), 4)
    a = rdd.sample(False, 0.1, seed=7).collect()
    assert a == rdd.sample(False, 0.1, seed=7).collect()  # the same seed, the same sample
    assert a != rdd.sample(False, 0.1, seed=8).collect()
    assert len(set(a)) == len(a) and set(a) <= set(range(20_000))
    assert 1700 < len(a) < 2300  # 2000 expected, standard deviation 42
    assert rdd.sample(False, 0.0, 1).count() == 0 and rdd.sample(False, 1.0, 1).count() == 20_000
    for bad in (-0.1, float("inf"), float("nan")):  # inf would never end the Poisson draw; NaN compares false
        for replace in (False, True):
            with pytest.raises(IllegalArgumentError, match="finite number of at least 0"):
                rdd.sample(replace, bad)
    with pytest.raises(IllegalArgumentError, match="must be a number"):
        rdd.sample(False, "0.5")
    for weights in ([float("inf"), 1], [float("nan"), 1], [1, -1]):
        with pytest.raises(IllegalArgumentError):
            rdd.randomSplit(weights)
    with pytest.raises(IllegalArgumentError, match="fraction of key 'a'"):
        rdd.map(lambda x: ("a", x)).sampleByKey(True, {"a": float("inf")})


def test_sample_with_replacement_repeats_elements(sc):
    rdd = sc.parallelize(range(5_000), 2)
    s = rdd.sample(True, 2.0, seed=3).collect()
    counts = Counter(s)
    assert 9_400 < len(s) < 10_600 and max(counts.values()) > 2
    assert s == sorted(s)  # each element's copies stay where it was, in order


def test_poisson_draws_have_the_right_mean_and_variance():
    rng = random.Random(1)
    for mean in (0.3, 4.0, 75.0):  # 75 takes several steps of at most 30
        draws = [poisson(rng, mean) for _ in range(20_000)]
        assert statistics.fmean(draws) == pytest.approx(mean, rel=0.05)
        assert statistics.pvariance(draws) == pytest.approx(mean, rel=0.1)
    assert list(PoissonSampler(0.0, 1)(0, iter(range(10)))) == []


def test_random_split_covers_every_element_once(sc):
    rdd = sc.parallelize(range(10_000), 3)
    parts = rdd.randomSplit([1, 2, 7], seed=11)
    got = [p.collect() for p in parts]
    assert sorted(x for g in got for x in g) == list(range(10_000))
    sizes = [len(g) for g in got]
    assert 800 < sizes[0] < 1200 and 1700 < sizes[1] < 2300 and 6600 < sizes[2] < 7400
    with pytest.raises(ValueError):
        rdd.randomSplit([1, -1])
    with pytest.raises(ValueError):
        rdd.randomSplit([0, 0])


def test_take_sample(sc):
    rdd = sc.parallelize(range(1000), 4)
    s = rdd.takeSample(False, 50, seed=5)
    assert len(s) == 50 == len(set(s)) and s == rdd.takeSample(False, 50, seed=5)
    every = rdd.takeSample(False, 2000, seed=5)  # more than there are: all of them, shuffled
    assert sorted(every) == list(range(1000)) and every != list(range(1000))
    many = rdd.takeSample(True, 3000, seed=5)
    assert len(many) == 3000 and len(set(many)) < 1000
    assert rdd.takeSample(False, 0) == [] and sc.parallelize([], 2).takeSample(True, 5) == []
    with pytest.raises(ValueError, match="negative"):
        rdd.takeSample(False, -1)
    with pytest.raises(ValueError, match="Sample size cannot be greater than"):
        rdd.takeSample(False, sys.maxsize)


@settings(max_examples=40)
@given(st.lists(st.floats(-1e6, 1e6) | st.integers(-10**6, 10**6), max_size=60), st.integers(1, 5))
def test_stat_counters_merged_in_any_split_equal_one_pass(values, cut):
    one = StatCounter(values)
    parts = [values[i::cut] for i in range(cut)]
    merged = StatCounter()
    for p in parts:
        merged.mergeStats(StatCounter(p))
    assert merged.count() == len(values)
    if values:
        assert merged.mean() == pytest.approx(statistics.fmean(values), rel=1e-9, abs=1e-6)
        assert merged.variance() == pytest.approx(statistics.pvariance(values), rel=1e-6, abs=1e-3)
        assert (merged.min(), merged.max()) == (min(values), max(values))
        assert one.mean() == pytest.approx(merged.mean(), rel=1e-9, abs=1e-6)
    else:
        assert math.isnan(merged.variance()) and merged.sum() == 0


def test_stats_and_its_shortcuts(sc):
    data = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    rdd = sc.parallelize(data, 3)
    s = rdd.stats()
    assert (s.count(), s.mean(), s.sum(), s.min(), s.max()) == (8, 5.0, 40.0, 2.0, 9.0)
    assert s.stdev() == rdd.stdev() == 2.0 and rdd.variance() == 4.0
    assert rdd.sampleVariance() == pytest.approx(statistics.variance(data))
    assert rdd.sampleStdev() == pytest.approx(statistics.stdev(data))
    # pyspark's asDict: the sample stdev and variance unless sample=True, which gives the population's.
    assert s.asDict()["variance"] == pytest.approx(statistics.variance(data)) and "stdev: 2.0" in repr(s)
    assert s.asDict(sample=True)["variance"] == 4.0 and s.asDict(True)["stdev"] == 2.0
    empty = sc.parallelize([], 2).stats()
    assert empty.count() == 0 and math.isnan(empty.variance())


def test_histogram(sc):
    rdd = sc.parallelize(list(range(51)) + [None, float("nan")], 4)
    assert rdd.histogram(5) == ([0, 10, 20, 30, 40, 50], [10, 10, 10, 10, 11])  # the last bucket is closed
    bounds, counts = sc.parallelize([0.0, 0.5, 1.0], 2).histogram(3)
    assert counts == [1, 1, 1] and bounds[0] == 0.0 and bounds[-1] == 1.0
    assert sc.parallelize([3, 3], 1).histogram(4) == ([3, 3], [2])
    assert rdd.histogram([0, 5, 25, 100]) == ([0, 5, 25, 100], [5, 20, 26])
    # Bounds come back as given (a tuple too); evenly spaced ones count as pyspark's int((x - min) / width) does.
    letters = sc.parallelize(["ab", "ac", "b", "bd", "ef"], 2)
    assert letters.histogram(("a", "b", "c")) == (("a", "b", "c"), [2, 2])
    tenths = [i / 10 for i in range(11)]
    assert sc.parallelize([0.3, 0.6, 0.7, 1.0], 2).histogram(tenths)[1] == [0, 0, 1, 0, 0, 1, 1, 0, 0, 1]
    assert sc.parallelize([1, 2, 3], 1).histogram(1) == ([1, 3], [3])
    with pytest.raises(TypeError, match="list or tuple"):
        rdd.histogram({0, 1})
    assert sc.parallelize([-1, 101], 1).histogram([0, 100]) == ([0, 100], [0])
    for bad in ([1], [3, 1], [1, 1, 2], [0, None]):
        with pytest.raises(ValueError):
            rdd.histogram(bad)
    with pytest.raises(ValueError, match="empty"):
        sc.parallelize([], 2).histogram(3)
    with pytest.raises(ValueError):
        rdd.histogram(0)


def test_zip(sc):
    a = sc.parallelize(range(6), 3)
    b = a.map(lambda x: x * x)
    assert a.zip(b).collect() == [(x, x * x) for x in range(6)]
    with pytest.raises(ValueError, match="same number of elements"):
        a.zip(a.filter(lambda x: x != 2)).collect()
    with pytest.raises(ValueError, match="numbers of partitions"):
        a.zip(sc.parallelize(range(6), 2))


def test_tree_reduce_and_aggregate(sc):
    rdd = sc.parallelize(range(100), 7)
    assert rdd.treeReduce(lambda a, b: a + b) == 4950 == rdd.treeReduce(lambda a, b: a + b, depth=4)
    assert rdd.treeAggregate(0, lambda acc, x: acc + x, lambda a, b: a + b) == 4950
    with pytest.raises(ValueError):
        rdd.treeReduce(lambda a, b: a + b, depth=0)
    # As pyspark's: the zero starts each partition, and is not merged in once more at the end (aggregate's is).
    three = sc.parallelize([1, 2, 3], 2)
    assert three.treeAggregate(10, operator.add, operator.add) == 26
    assert three.aggregate(10, operator.add, operator.add) == 36
    assert sc.emptyRDD().treeAggregate(7, operator.add, operator.add) == 7
    with pytest.raises(ValueError, match="Cannot reduce empty RDD"):
        sc.parallelize([], 2).treeReduce(operator.add)


def test_repartition_and_sort_within_partitions(sc):
    pairs = sc.parallelize([(k % 7, k) for k in range(40)], 3)
    parts = pairs.repartitionAndSortWithinPartitions(2, lambda k: k % 2, ascending=False).glom().collect()
    assert [sorted({k % 2 for k, _ in p}) for p in parts] == [[0], [1]]
    for p in parts:
        assert [k for k, _ in p] == sorted((k for k, _ in p), reverse=True)


def test_pipe(sc):
    rdd = sc.parallelize(["b", "a", "c", "a"], 2)
    assert rdd.pipe("sort").collect() == ["a", "b", "a", "c"]
    assert rdd.pipe("grep -c a", env={"PATH": "/usr/bin:/bin"}).collect() == ["1", "1"]
    with pytest.raises(RuntimeError, match="error code 3"):
        rdd.pipe("sh -c 'exit 3'", checkCode=True).collect()
    assert rdd.pipe("sh -c 'exit 3'").collect() == []
    # As pyspark's: no shell (so no $ expansion), an empty environment unless given one, an element's trailing
    # newline dropped, and an output line split at "\n" only.
    assert sc.parallelize([1], 1).pipe("echo $HOME 'a b'").collect() == ["$HOME a b"]
    assert sc.parallelize([1], 1).pipe("env").collect() == []
    assert sc.parallelize(["x\n", "y\rz"], 1).pipe("cat").collect() == ["x", "y\rz"]
    with pytest.raises(FileNotFoundError):
        rdd.pipe("no-such-command-here").collect()


def test_storage_level(sc):
    rdd = sc.parallelize([1], 1)
    assert rdd.getStorageLevel() is StorageLevel.NONE
    assert rdd.cache().getStorageLevel() is StorageLevel.MEMORY_ONLY
    assert rdd.persist(StorageLevel.MEMORY_AND_DISK).getStorageLevel() is StorageLevel.MEMORY_AND_DISK
    assert rdd.unpersist().getStorageLevel() is StorageLevel.NONE


def test_sample_by_key(sc):
    pairs = sc.parallelize([(k, i) for i in range(6000) for k in "ab"], 3)
    s = pairs.sampleByKey(False, {"a": 0.1, "b": 0.5}, seed=2).collect()
    counts = Counter(k for k, _ in s)
    assert 480 < counts["a"] < 720 and 2800 < counts["b"] < 3200
    assert s == pairs.sampleByKey(False, {"a": 0.1, "b": 0.5}, seed=2).collect()
    with_repl = pairs.sampleByKey(True, {"a": 2.0, "b": 0.0}, seed=2).collect()
    assert {k for k, _ in with_repl} == {"a"} and 11_000 < len(with_repl) < 13_000
    with pytest.raises(KeyError, match="no fraction for key 'b'"):
        pairs.sampleByKey(False, {"a": 0.5}).collect()
    with pytest.raises(ValueError):
        pairs.sampleByKey(False, {"a": -1.0})


def test_approximate_actions_are_exact(sc):
    rdd = sc.parallelize([1, 2, 2, 3, 3, 3], 2)
    assert rdd.countApprox(1000) == 6 and rdd.countApproxDistinct() == 3
    s, m = rdd.sumApprox(1000), rdd.meanApprox(1000, 0.9)
    assert s == 14.0 and (s.low, s.high, s.confidence) == (14.0, 14.0, 0.95)
    assert m == pytest.approx(14 / 6) and m.confidence == 0.9
    with pytest.raises(ValueError, match="relativeSD"):
        rdd.countApproxDistinct(0.0)


def test_zip_with_unique_id_and_debug_string(sc):
    rdd = sc.parallelize("abcde", 2)  # partitions [a, b] and [c, d, e]
    assert rdd.zipWithUniqueId().collect() == [("a", 0), ("b", 2), ("c", 1), ("d", 3), ("e", 5)]
    counted = rdd.map(lambda x: (x, 1)).reduceByKey(lambda a, b: a + b).cache()
    text = counted.toDebugString()
    assert isinstance(text, bytes) and text.count(b"\n") >= 2 and b"[cached]" in text.splitlines()[0]
    assert counted.getCheckpointFile() is None and not counted.isLocallyCheckpointed()
    counted.localCheckpoint()
    assert counted.isLocallyCheckpointed() and sorted(counted.collect()) == [(c, 1) for c in "abcde"]


def test_numpy_numbers_are_fractions_and_weights(sc):
    import numpy as np

    rdd = sc.parallelize(range(1000), 2)
    assert 300 < rdd.sample(False, np.float32(0.5), seed=1).count() < 700
    assert sum(r.count() for r in rdd.randomSplit([np.int64(1), np.int64(1)], seed=2)) == 1000


def test_storage_levels_are_pyspark_s():
    # What pyspark 3.5.3 prints for the same levels.
    assert repr(StorageLevel.MEMORY_ONLY) == "StorageLevel(False, True, False, False, 1)"
    assert str(StorageLevel.MEMORY_ONLY) == "Memory Serialized 1x Replicated"
    assert str(StorageLevel.MEMORY_AND_DISK_2) == "Disk Memory Serialized 2x Replicated"
    assert str(StorageLevel.DISK_ONLY_3) == "Disk Serialized 3x Replicated"
    assert str(StorageLevel.OFF_HEAP) == "Disk Memory OffHeap Serialized 1x Replicated"
    assert str(StorageLevel.MEMORY_AND_DISK_DESER) == "Disk Memory Deserialized 1x Replicated"
    assert str(StorageLevel.NONE) == "Serialized 1x Replicated"
    assert StorageLevel(False, True, False, False) == StorageLevel.MEMORY_ONLY
    assert StorageLevel.MEMORY_ONLY != StorageLevel.MEMORY_ONLY_2
    assert StorageLevel.MEMORY_ONLY_2.replication == StorageLevel.DISK_ONLY_2.replication == 2


def test_a_seed_gives_pyspark_s_sample(sc):
    # What pyspark 3.5.3 returned for the same calls: its samplers' generators, Poisson draws and takeSample's
    # seeds, drawn the same way.
    r = sc.parallelize(range(20), 2)
    assert r.sample(False, 0.5, 42).collect() == [0, 1, 3, 4, 7, 15, 16, 17, 18, 19]
    assert r.sample(True, 0.7, 7).collect() == [3, 4, 4, 5, 6, 8, 11, 11, 12, 14, 16, 16, 19, 19]
    assert r.sample(True, 25.0, 3).count() == 476
    assert r.takeSample(False, 5, 42) == [19, 5, 14, 4, 9]
    assert r.takeSample(True, 6, 1) == [12, 1, 5, 13, 18, 18]
    assert [x.collect() for x in r.randomSplit([1, 2], 3)] == [[5], [x for x in range(20) if x != 5]]
    p = sc.parallelize([(i % 3, i) for i in range(30)], 3)
    assert p.sampleByKey(False, {0: 0.5, 1: 0.2, 2: 1.0}, 11).collect() == [
        (0, 0), (2, 2), (2, 5), (0, 6), (2, 8), (2, 11), (0, 12), (2, 14), (0, 15), (2, 17), (0, 18), (2, 20),
        (1, 22), (2, 23), (2, 26), (0, 27), (2, 29)]
    assert sc.parallelize(list(range(100)), 4).sample(False, 0.1, 123).collect() == [
        5, 7, 9, 13, 16, 33, 43, 49, 55, 88, 99]
    for bad in (1.5, "7", True):
        with pytest.raises(IllegalArgumentError, match="seed must be a whole number"):
            r.sample(False, 0.5, bad)
