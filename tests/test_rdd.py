"""RDD behaviour: every transformation and action against a plain-Python reference computed in the test.

Uses the module-scoped ``sc`` fixture (local[2], parametrised over executor kinds). Side effects go through files
in ``tmp_path`` so the tests hold on executors that run tasks in other processes too; tests that look at driver
objects directly run only on the in-process executor.
"""

from __future__ import annotations

import math
import operator
import os
from collections import Counter, defaultdict
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream import RDD, portable_hash
from pystream.context import EXECUTOR_KEY
from pystream.errors import TaskFailedError
from pystream.rdd import ResultIterable

PAIRS = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5), ("a", 6), ("d", 7), (1, 8), (2, 9), (1, 10)]


def slices(data, n):
    """pyspark's parallelize layout of a list: batches of min(len // n, 1024) records (at least 1), partition i
    taking batches i*B//n to (i+1)*B//n of the B batches."""
    size = len(data)
    batch = max(1, min(size // n, 1024))
    batches = -(-size // batch)
    ends = [min(size, (i * batches // n) * batch) for i in range(n + 1)]
    return [data[ends[i]:ends[i + 1]] for i in range(n)]


def range_slices(data, n):
    """pyspark's parallelize layout of a range: partition i holds data[i*len//n : (i+1)*len//n]."""
    size = len(data)
    return [data[(i * size) // n:((i + 1) * size) // n] for i in range(n)]


def grouped(pairs):
    out = defaultdict(list)
    for k, v in pairs:
        out[k].append(v)
    return dict(out)


def reduced(pairs, func):
    return {k: reduce(func, vs) for k, vs in grouped(pairs).items()}


def ref_join(left, right, how="inner"):
    lg, rg = grouped(left), grouped(right)
    out = []
    keys = list(dict.fromkeys([k for k, _ in left] + [k for k, _ in right]))
    for k in keys:
        ls, rs = lg.get(k, []), rg.get(k, [])
        if how in ("left", "full") and not rs:
            rs_ = [None]
        else:
            rs_ = rs
        if how in ("right", "full") and not ls:
            ls_ = [None]
        else:
            ls_ = ls
        if how == "inner" or (how == "left" and ls) or (how == "right" and rs) or how == "full":
            out.extend((k, (v, w)) for v in ls_ for w in rs_)
    return out


def in_process(sc) -> bool:
    return sc.getConf().get(EXECUTOR_KEY) == "inprocess"


def read_calls(path) -> int:
    if not os.path.exists(path):
        return 0
    with open(path) as fh:
        return len(fh.read().splitlines())


class Recorder:
    """Appends one line per call to a file (works from worker processes too), returning its argument."""

    def __init__(self, path, fn=lambda x: x):
        self.path = str(path)
        self.fn = fn

    def __call__(self, x):
        with open(self.path, "a") as fh:
            fh.write(f"{x!r}\n")
        return self.fn(x)




# -- basics -----------------------------------------------------------------------------------------------
def test_parallelize_collect_and_partitioning(sc):
    data = list(range(17))
    for n in (1, 2, 3, 5, 17, 20):
        rdd = sc.parallelize(data, n)
        assert isinstance(rdd, RDD)
        assert rdd.getNumPartitions() == n
        assert rdd.collect() == data
        assert rdd.glom().collect() == slices(data, n)
        assert rdd.count() == len(data)
    assert sc.parallelize(data).getNumPartitions() == sc.defaultParallelism == 2


def test_parallelize_lays_out_partitions_as_pyspark(sc):
    # What pyspark 3.5.3 gives for [len(p) for p in sc.parallelize(list(range(n)), k).glom().collect()].
    spark = {(10, 4): [2, 2, 2, 4], (100, 8): [12] * 7 + [16], (3, 4): [0, 1, 1, 1], (0, 3): [0, 0, 0],
             (5000, 3): [1024, 2048, 1928], (2048, 2): [1024, 1024], (1025, 2): [512, 513], (9, 2): [4, 5]}
    for (n, k), sizes in spark.items():
        assert [len(p) for p in sc.parallelize(list(range(n)), k).glom().collect()] == sizes
    assert sc.parallelize("abcdefghij", 3).glom().collect() == [list("abc"), list("def"), list("ghij")]
    assert sc.parallelize(list(range(10)), 4).zipWithUniqueId().collect() == [
        (0, 0), (1, 4), (2, 1), (3, 5), (4, 2), (5, 6), (6, 3), (7, 7), (8, 11), (9, 15)]


def test_parallelize_takes_the_collection_as_it_is_when_called(sc):
    # As pyspark, which pickles it then: objects changed afterwards keep their old value in the RDD.
    row, rdds = {"n": 0}, []
    for i in range(3):
        row["n"] = i
        rdds.append(sc.parallelize([row]))
    assert [r.collect() for r in rdds] == [[{"n": 0}], [{"n": 1}], [{"n": 2}]]
    data = [[1], ("t", [2])] + [[i] for i in range(200)]  # large enough to be encoded into shared memory
    rdd = sc.parallelize(data, 2)
    data[0].append(5)
    data[1][1].append(6)
    assert rdd.take(2) == [[1], ("t", [2])]
    assert rdd.count() == 202


def test_a_range_is_sliced_in_its_tasks(sc):
    # Never made into a list in the driver (as pyspark): a trillion ints, three of them taken.
    assert sc.range(10**12).take(3) == [0, 1, 2]
    assert sc.range(10**12, numSlices=4).getNumPartitions() == 4
    for r in (range(0, 250_000, 3), range(10, -500_000, -7), range(5, 200_005)):
        for n in (1, 3, 7):
            assert [list(p) for p in sc.parallelize(r, n).glom().collect()] == range_slices(list(r), n)
    assert sc.range(3, 300_003).map(lambda x: x % 7).sum() == sum(x % 7 for x in range(3, 300_003))


def test_empty_rdds(sc):
    empty = sc.emptyRDD()
    assert empty.getNumPartitions() == 0
    assert empty.collect() == []
    assert empty.count() == 0
    assert empty.isEmpty()
    assert sc.parallelize([], 3).isEmpty()
    assert sc.parallelize([], 3).glom().collect() == [[], [], []]
    assert sc.parallelize(range(10), 3).filter(lambda x: x > 100).isEmpty()
    assert not sc.parallelize([0], 4).isEmpty()
    assert empty.sum() == 0
    # pyspark's: an RDD of no partitions has no StatCounter to reduce; one of empty partitions has mean 0.0.
    for no_stats in (empty.mean, empty.stats, lambda: empty.top(2)):
        with pytest.raises(ValueError, match="empty RDD"):
            no_stats()
    assert sc.parallelize([], 2).mean() == 0.0 and sc.parallelize([], 2).top(2) == []
    assert sc.parallelize([], 2).stats().count() == 0
    assert empty.take(5) == []
    assert empty.reduceByKey(operator.add).collect() == []
    assert empty.distinct().collect() == []


def test_map_filter_flatmap(sc):
    data = list(range(-10, 30))
    rdd = sc.parallelize(data, 3)
    assert rdd.map(lambda x: x * x).collect() == [x * x for x in data]
    assert rdd.filter(lambda x: x % 3 == 0).collect() == [x for x in data if x % 3 == 0]
    assert rdd.flatMap(lambda x: [x] * (x % 3)).collect() == [y for x in data for y in [x] * (x % 3)]
    assert rdd.flatMap(lambda x: range(x % 4)).collect() == [y for x in data for y in range(x % 4)]
    assert rdd.map(str).collect() == [str(x) for x in data]


def test_map_partitions_and_with_index(sc):
    data = list(range(23))
    rdd = sc.parallelize(data, 4)
    assert rdd.mapPartitions(lambda it: [sum(it)]).collect() == [sum(p) for p in slices(data, 4)]
    assert rdd.mapPartitions(lambda it: (x + 1 for x in it)).collect() == [x + 1 for x in data]
    indexed = rdd.mapPartitionsWithIndex(lambda i, it: [(i, x) for x in it]).collect()
    assert indexed == [(i, x) for i, part in enumerate(slices(data, 4)) for x in part]
    # After a shuffle the index is the reduce partition's.
    pairs = rdd.map(lambda x: (x, x)).partitionBy(3)
    for i, k in pairs.mapPartitionsWithIndex(lambda i, it: [(i, k) for k, _ in it]).collect():
        assert portable_hash(k) % 3 == i


def test_pair_narrow_transformations(sc):
    rdd = sc.parallelize(PAIRS, 3)
    assert rdd.mapValues(lambda v: v * 10).collect() == [(k, v * 10) for k, v in PAIRS]
    assert rdd.flatMapValues(lambda v: range(v % 3)).collect() == [(k, x) for k, v in PAIRS for x in range(v % 3)]
    assert rdd.keys().collect() == [k for k, _ in PAIRS]
    assert rdd.values().collect() == [v for _, v in PAIRS]
    # As pyspark (which reads kv[0] and kv[1]): a longer record gives a pair of its first two items.
    triples = sc.parallelize([(1, "ab", "x"), (2, "c", "y")], 2)
    assert triples.mapValues(str.upper).collect() == [(1, "AB"), (2, "C")]
    assert triples.flatMapValues(list).collect() == [(1, "a"), (1, "b"), (2, "c")]
    assert triples.keys().collect() == [1, 2] and triples.values().collect() == ["ab", "c"]
    words = ["apple", "bob", "cat", "dolphin"]
    assert sc.parallelize(words, 2).keyBy(len).collect() == [(len(w), w) for w in words]


def test_lineage_fusion_long_chain(sc):
    data = list(range(50))
    rdd = sc.parallelize(data, 3)
    expected = list(data)
    for i in range(40):
        rdd = rdd.map(lambda x, i=i: x + i)
        expected = [x + i for x in expected]
        if i % 10 == 0:
            rdd = rdd.filter(lambda x, i=i: x % 7 != i % 7)
            expected = [x for x in expected if x % 7 != i % 7]
    assert rdd.getNumPartitions() == 3
    assert rdd.collect() == expected
    assert rdd.count() == len(expected)
    assert rdd.take(5) == expected[:5]
    # Every intermediate RDD of the chain stays usable on its own.
    base = sc.parallelize(data, 2)
    a = base.map(lambda x: x + 1)
    b = a.map(lambda x: x * 2)
    c = a.map(lambda x: -x)
    assert b.collect() == [(x + 1) * 2 for x in data]
    assert c.collect() == [-(x + 1) for x in data]
    assert a.collect() == [x + 1 for x in data]


def test_user_exception_propagates(sc):
    rdd = sc.parallelize(range(10), 2).map(lambda x: 1 // (x - 7))
    with pytest.raises(Exception) as info:
        rdd.collect()
    err = info.value
    if isinstance(err, TaskFailedError):
        assert isinstance(err.__cause__, ZeroDivisionError) or "ZeroDivisionError" in str(err)
    else:
        assert isinstance(err, ZeroDivisionError)
    # The context still works afterwards.
    assert sc.parallelize([1, 2, 3]).map(lambda x: x + 1).collect() == [2, 3, 4]


def test_user_exception_in_shuffle_propagates(sc):
    def bad(a, b):
        raise KeyError("boom")

    with pytest.raises((KeyError, TaskFailedError)):
        sc.parallelize([(1, 1), (1, 2)], 1).reduceByKey(bad).collect()


# -- reduceByKey ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", [operator.add, lambda a, b: a + b, min, max, lambda a, b: a * b,
                                  lambda a, b: a - b if a > b else b - a],
                         ids=["operator.add", "lambda-add", "min", "max", "lambda-mul", "generic"])
@pytest.mark.parametrize("slices_n", [1, 2, 5])
def test_reduce_by_key_ints(sc, func, slices_n):
    data = [(k % 7, (k * 37) % 11 - 5) for k in range(200)]
    got = sc.parallelize(data, slices_n).reduceByKey(func).collect()
    assert len(got) == len({k for k, _ in data})
    if func in (operator.add, min, max):
        assert dict(got) == reduced(data, func)
    else:
        # Not necessarily commutative/associative: compare to the same per-partition-then-merge order.
        parts = [reduced(p, func) for p in slices(data, slices_n)]
        expected: dict = {}
        for p in parts:
            for k, v in p.items():
                expected[k] = func(expected[k], v) if k in expected else v
        assert dict(got) == expected


def test_reduce_by_key_lambda_add_matches_operator_add(sc):
    data = [(k % 5, k) for k in range(100)]
    rdd = sc.parallelize(data, 4)
    assert dict(rdd.reduceByKey(lambda a, b: a + b).collect()) == reduced(data, operator.add)
    assert dict(rdd.reduceByKey(lambda x, y: x + y).collect()) == reduced(data, operator.add)


def test_reduce_by_key_string_concatenation_keeps_order(sc):
    words = [("k", c) for c in "abcdefghij"] + [("j", c) for c in "xyz"]
    for n in (1, 3):
        rdd = sc.parallelize(words, n)
        assert dict(rdd.reduceByKey(operator.add).collect()) == {"k": "abcdefghij", "j": "xyz"}
        assert dict(rdd.reduceByKey(lambda a, b: a + b).collect()) == {"k": "abcdefghij", "j": "xyz"}
    # A lambda that only looks like addition must not be mistaken for it.
    rdd = sc.parallelize(words, 1)
    assert dict(rdd.reduceByKey(lambda a, b: b + a).collect()) == {"k": "jihgfedcba", "j": "zyx"}


def test_reduce_by_key_int64_overflow_gives_exact_ints(sc):
    big = 2 ** 62
    data = [("x", big)] * 9 + [("y", -big)] * 9 + [("z", 2 ** 63 - 1), ("z", 1), ("z", -5)]
    for func in (operator.add, lambda a, b: a + b):
        for n in (1, 2, 4):
            got = dict(sc.parallelize(data, n).reduceByKey(func).collect())
            assert got == {"x": 9 * big, "y": -9 * big, "z": 2 ** 63 - 5}
            assert all(type(v) is int for v in got.values())
    huge = [("h", 10 ** 30), ("h", 1), ("h", -(10 ** 30))]
    assert sc.parallelize(huge, 2).reduceByKey(operator.add).collect() == [("h", 1)]
    assert dict(sc.parallelize(huge + [("m", -(2 ** 64)), ("m", 3)], 2).reduceByKey(min).collect()) == {
        "h": -(10 ** 30), "m": -(2 ** 64)}


def test_reduce_by_key_floats_and_mixed(sc):
    data = [("a", 0.5), ("a", 1), ("a", 2.25), ("b", 3), ("b", 4), ("c", True), ("c", True)]
    got = dict(sc.parallelize(data, 1).reduceByKey(operator.add).collect())
    assert got == {"a": 3.75, "b": 7, "c": 2}
    assert type(got["a"]) is float and type(got["b"]) is int
    assert dict(sc.parallelize([("k", 1), ("k", 1.0)], 1).reduceByKey(min).collect()) == {"k": 1}
    assert type(dict(sc.parallelize([("k", 1), ("k", 1.0)], 1).reduceByKey(min).collect())["k"]) is int
    assert dict(sc.parallelize([("k", 2), ("k", 2.5), ("k", -1)], 2).reduceByKey(max).collect()) == {"k": 2.5}


def test_reduce_by_key_other_value_types(sc):
    data = [(i % 3, (i,)) for i in range(9)]
    assert dict(sc.parallelize(data, 1).reduceByKey(operator.add).collect()) == reduced(data, operator.add)
    lists = [(i % 2, [i]) for i in range(6)]
    assert dict(sc.parallelize(lists, 1).reduceByKey(lambda a, b: a + b).collect()) == {0: [0, 2, 4], 1: [1, 3, 5]}
    strs = [("s", "b"), ("s", "a"), ("s", "c")]
    assert dict(sc.parallelize(strs, 2).reduceByKey(min).collect()) == {"s": "a"}
    assert dict(sc.parallelize(strs, 2).reduceByKey(max).collect()) == {"s": "c"}


def test_reduce_by_key_num_partitions(sc):
    data = [(k, 1) for k in range(100)] + [(str(k), 2) for k in range(50)]
    for n in (1, 3, 7):
        out = sc.parallelize(data, 4).reduceByKey(operator.add, n)
        assert out.getNumPartitions() == n
        parts = out.glom().collect()
        assert len(parts) == n
        for i, part in enumerate(parts):
            for k, _ in part:
                assert portable_hash(k) % n == i
        assert dict(out.collect()) == reduced(data, operator.add)
    with pytest.raises(ValueError):
        sc.parallelize(data).reduceByKey(operator.add, 0)
    # pyspark's default for a shuffle given no count: the parent's partitions (spark.default.parallelism unset).
    five = sc.parallelize(data, 5)
    for default in (five.reduceByKey(operator.add), five.groupByKey(), five.partitionBy(None), five.distinct(),
                    five.sortByKey(), five.combineByKey(str, operator.add, operator.add),
                    five.repartitionAndSortWithinPartitions()):
        assert default.getNumPartitions() == 5
    # A join's: both sides' partitions added up, as pyspark groups their union.
    assert five.join(sc.parallelize(data, 3)).getNumPartitions() == 8
    assert five.cogroup(sc.parallelize(data, 3)).getNumPartitions() == 8
    assert sc.emptyRDD().reduceByKey(operator.add).getNumPartitions() == 1


def test_reduce_by_key_locally_and_collect_as_map(sc):
    rdd = sc.parallelize(PAIRS, 3)
    assert rdd.reduceByKeyLocally(operator.add) == reduced(PAIRS, operator.add)
    assert sc.parallelize([(1, 2), (3, 4), (1, 5)]).collectAsMap() == {1: 5, 3: 4}


# -- groupByKey / combineByKey / aggregateByKey / foldByKey -----------------------------------------------
def test_group_by_key(sc):
    for n in (1, 2, 4):
        out = sc.parallelize(PAIRS, n).groupByKey().collect()
        assert len(out) == len(grouped(PAIRS))
        for _, vs in out:
            assert isinstance(vs, ResultIterable)
            assert isinstance(vs, list)
            assert len(vs) == len(list(iter(vs)))
        assert {k: sorted(vs) for k, vs in out} == {k: sorted(vs) for k, vs in grouped(PAIRS).items()}
    out = sc.parallelize(PAIRS, 3).groupByKey(5)
    assert out.getNumPartitions() == 5
    assert {k: sorted(vs) for k, vs in out.mapValues(list).collect()} == grouped(PAIRS)
    assert dict(sc.parallelize(PAIRS, 1).groupByKey().collect())["a"] == [1, 3, 6]


def test_group_by(sc):
    data = list(range(20))
    out = sc.parallelize(data, 3).groupBy(lambda x: x % 4).collect()
    assert {k: sorted(v) for k, v in out} == {r: [x for x in data if x % 4 == r] for r in range(4)}


def test_combine_by_key(sc):
    for n in (1, 3):
        rdd = sc.parallelize(PAIRS, n)
        sums = rdd.combineByKey(lambda v: (v, 1), lambda c, v: (c[0] + v, c[1] + 1),
                                lambda a, b: (a[0] + b[0], a[1] + b[1]))
        expected = {k: (sum(vs), len(vs)) for k, vs in grouped(PAIRS).items()}
        assert dict(sums.collect()) == expected
        lists = rdd.combineByKey(lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b, 4)
        assert lists.getNumPartitions() == 4
        assert {k: sorted(v) for k, v in lists.collect()} == grouped(PAIRS)


def test_aggregate_by_key_zero_not_shared(sc):
    zero: list = []

    def seq(acc, v):
        acc.append(v)
        return acc

    def comb(a, b):
        a.extend(b)
        return a

    for n in (1, 2, 4):
        out = dict(sc.parallelize(PAIRS, n).aggregateByKey(zero, seq, comb).collect())
        assert {k: sorted(v) for k, v in out.items()} == grouped(PAIRS)
        # Every key has its own list.
        assert len({id(v) for v in out.values()}) == len(out)
        assert zero == []
    out = dict(sc.parallelize(PAIRS, 2).aggregateByKey((0, 0), lambda acc, v: (acc[0] + v, acc[1] + 1),
                                                       lambda a, b: (a[0] + b[0], a[1] + b[1]), 3).collect())
    assert out == {k: (sum(vs), len(vs)) for k, vs in grouped(PAIRS).items()}


def test_fold_by_key(sc):
    for n in (1, 3):
        rdd = sc.parallelize(PAIRS, n)
        assert dict(rdd.foldByKey(0, operator.add).collect()) == reduced(PAIRS, operator.add)
        zero: list = []

        def extend(acc, v):
            acc.extend(v)
            return acc

        lists = rdd.mapValues(lambda v: [v]).foldByKey(zero, extend)
        assert {k: sorted(v) for k, v in lists.collect()} == grouped(PAIRS)
        assert zero == []
        assert dict(rdd.mapValues(lambda v: [v]).foldByKey([], operator.add, 2).collect()).keys() == \
            grouped(PAIRS).keys()


def test_count_by_key_and_value(sc):
    rdd = sc.parallelize(PAIRS, 3)
    by_key = rdd.countByKey()
    assert isinstance(by_key, dict)
    assert by_key == Counter(k for k, _ in PAIRS)
    words = "the quick brown fox jumps over the lazy dog the end".split()
    by_value = sc.parallelize(words, 4).countByValue()
    assert isinstance(by_value, dict)
    assert dict(by_value) == dict(Counter(words))
    assert by_value["missing"] == 0  # a defaultdict(int), as pyspark's
    assert sc.emptyRDD().countByValue() == {}
    # dict semantics for keys: 1, 1.0 and True are one key.
    assert dict(sc.parallelize([1, 1.0, True, 2], 2).countByValue()) == {1: 3, 2: 1}


# -- joins and cogroup ------------------------------------------------------------------------------------
LEFT = [(1, "a"), (1, "b"), (2, "c"), (3, "d"), ("x", "e"), (1, "f")]
RIGHT = [(1, "A"), (2, "B"), (2, "C"), (4, "D"), ("x", "E"), ("y", "F"), (1, "G")]


@pytest.mark.parametrize("method,how", [("join", "inner"), ("leftOuterJoin", "left"),
                                        ("rightOuterJoin", "right"), ("fullOuterJoin", "full")])
def test_joins(sc, method, how):
    for nl, nr, np_ in ((1, 1, None), (2, 3, None), (3, 2, 5), (4, 4, 1)):
        left, right = sc.parallelize(LEFT, nl), sc.parallelize(RIGHT, nr)
        out = getattr(left, method)(right, np_)
        if np_ is not None:
            assert out.getNumPartitions() == np_
        got = out.collect()
        assert Counter(got) == Counter(ref_join(LEFT, RIGHT, how))
    assert sorted(sc.parallelize([(1, 2)]).join(sc.emptyRDD()).collect()) == []


def test_join_examples(sc):
    left, right = sc.parallelize(LEFT, 2), sc.parallelize(RIGHT, 2)
    key = lambda kv: (str(kv[0]), str(kv[1]))  # noqa: E731 - mixed key types sort via str
    assert sorted(left.join(right).collect(), key=key) == sorted([
        (1, ("a", "A")), (1, ("a", "G")), (1, ("b", "A")), (1, ("b", "G")), (1, ("f", "A")), (1, ("f", "G")),
        (2, ("c", "B")), (2, ("c", "C")), ("x", ("e", "E"))], key=key)
    assert (3, ("d", None)) in left.leftOuterJoin(right).collect()
    assert (4, (None, "D")) in left.rightOuterJoin(right).collect()
    full = left.fullOuterJoin(right).collect()
    assert (3, ("d", None)) in full and ("y", (None, "F")) in full


def test_join_runs_inside_the_next_stage_unless_kept(sc, stages):
    left, right = sc.parallelize(LEFT, 2), sc.parallelize(RIGHT, 2)
    joined = left.join(right)
    counts = joined.map(lambda kv: (kv[0], 1)).reduceByKey(operator.add)
    expected = Counter(k for k, _ in joined.collect())
    assert "zip" not in stages  # the join ran inside the collect's tasks
    assert dict(counts.collect()) == dict(expected)
    assert "zip" not in stages  # ... and inside the map side of the reduceByKey
    joined.cache()
    assert dict(counts.collect()) == dict(expected)
    assert "zip" in stages  # a kept join is computed (once) as its own stage
    stages.clear()
    assert dict(counts.collect()) == dict(expected)
    assert "zip" not in stages


def test_shuffle_merges_inside_the_next_stage_unless_kept(sc, stages):
    words = sc.parallelize([f"w{i % 13}" for i in range(2_000)], 3)
    counts = words.map(lambda w: (w, 1)).reduceByKey(operator.add, 2)
    expected = dict(Counter(f"w{i % 13}" for i in range(2_000)))
    assert dict(counts.collect()) == expected
    assert stages == ["shuffle-map", "action"]  # the merge ran inside the collect's tasks
    stages.clear()
    # ... inside a narrow step and the next shuffle's map side too, with the same result.
    by_count = counts.map(lambda kv: (kv[1], kv[0])).groupByKey(2).mapValues(sorted)
    assert dict(by_count.collect()) == {n: sorted(w for w, c in expected.items() if c == n)
                                        for n in set(expected.values())}
    assert "shuffle-reduce" not in stages
    assert counts.partitionBy(3).glom().map(len).sum() == 13
    stages.clear()
    counts.cache()
    assert dict(counts.collect()) == expected
    assert stages == ["shuffle-map", "shuffle-reduce", "action"]  # kept: merged once, as its own stage
    stages.clear()
    assert counts.count() == 13
    assert stages == ["action"]


@pytest.mark.parametrize("how", ["join", "leftOuterJoin"])
def test_join_with_a_small_kept_side_broadcasts_it(sc, stages, how):
    left = sc.parallelize(LEFT * 50, 3)
    right = sc.parallelize(RIGHT, 2).cache()
    shuffled = sorted(getattr(left, how)(right).collect(), key=repr)  # right is computed (and kept) here
    stages.clear()
    broadcast = getattr(left, how)(right)
    assert sorted(broadcast.collect(), key=repr) == shuffled
    assert isinstance(broadcast, __import__("pystream").joins._BroadcastJoinRDD)
    assert "shuffle-map" not in stages and "shuffle-reduce" not in stages  # neither side was shuffled
    # With a partition count asked for, both sides are hash-partitioned as usual.
    from pystream import joins

    explicit = getattr(left, how)(right, 4)
    assert not isinstance(explicit, joins._BroadcastJoinRDD)
    assert sorted(explicit.collect(), key=repr) == shuffled


def test_a_kept_side_joined_batch_after_batch_is_collected_and_sent_once(sc, stages):
    right = sc.parallelize([(k, k * 10) for k in range(5)], 2).cache()
    right.count()
    batches = [sc.parallelize([(i % 5, i) for i in range(20)], 2) for _ in range(3)]
    stages.clear()
    first = sorted(batches[0].join(right).collect())
    once = len(stages)
    for b in batches[1:]:
        assert sorted(b.join(right).collect()) == first
    assert len(stages) == 3 * once - 2  # only the first join collected the kept side
    right.unpersist().cache().count()  # kept again, as new partitions: the next join collects them again
    stages.clear()
    assert sorted(batches[0].join(right).collect()) == first and len(stages) == once


def test_broadcast_join_only_below_its_size_limit(sc, monkeypatch):
    from pystream import joins

    right = sc.parallelize([(i % 10, i) for i in range(200)], 2).cache()
    right.count()
    left = sc.parallelize([(k, str(k)) for k in range(12)], 2)
    monkeypatch.setattr(joins, "BROADCAST_MAX_RECORDS", 100)
    assert isinstance(left.join(right), RDD) and not isinstance(left.join(right), joins._BroadcastJoinRDD)
    monkeypatch.setattr(joins, "BROADCAST_MAX_RECORDS", 200)
    joined = left.join(right)
    assert isinstance(joined, joins._BroadcastJoinRDD)
    assert sorted(joined.collect()) == sorted((i % 10, (str(i % 10), i)) for i in range(200))


def test_cogroup_and_group_with(sc):
    left, right = sc.parallelize(LEFT, 2), sc.parallelize(RIGHT, 3)
    lg, rg = grouped(LEFT), grouped(RIGHT)
    keys = set(lg) | set(rg)
    for out in (left.cogroup(right), left.cogroup(right, 4)):
        got = out.collect()
        assert len(got) == len(keys)
        for _, (vs, ws) in got:
            assert isinstance(vs, ResultIterable) and isinstance(ws, ResultIterable)
        assert {k: (sorted(vs), sorted(ws)) for k, (vs, ws) in got} == {
            k: (sorted(lg.get(k, [])), sorted(rg.get(k, []))) for k in keys}
    assert left.cogroup(right, 4).getNumPartitions() == 4
    third = sc.parallelize([(1, 0.5), (9, 1.5)], 1)
    got = {k: tuple(sorted(s) for s in sides) for k, sides in left.groupWith(right, third).collect()}
    assert got[1] == (["a", "b", "f"], ["A", "G"], [0.5])
    assert got[9] == ([], [], [1.5])
    assert got["y"] == ([], ["F"], [])


def test_subtract_intersection_cartesian_lookup(sc):
    a = sc.parallelize([1, 2, 2, 3, 4, 5], 2)
    b = sc.parallelize([2, 4, 6], 2)
    assert sorted(a.subtract(b).collect()) == [1, 3, 5]
    assert sorted(a.intersection(b).collect()) == [2, 4]
    assert sorted(sc.parallelize(LEFT, 2).subtractByKey(sc.parallelize(RIGHT, 2)).collect()) == [(3, "d")]
    assert sorted(sc.parallelize([1, 2], 2).cartesian(sc.parallelize("ab", 1)).collect()) == [
        (1, "a"), (1, "b"), (2, "a"), (2, "b")]
    # Spark's CartesianRDD: partition i * n + j pairs partition i with the other's partition j.
    c = sc.parallelize([1, 2], 1).cartesian(sc.parallelize("ab", 2))
    assert c.getNumPartitions() == 2 and c.glom().collect() == [[(1, "a"), (2, "a")], [(1, "b"), (2, "b")]]
    big = sc.parallelize(range(7), 3).cartesian(sc.parallelize(range(5), 2).persist())
    assert big.getNumPartitions() == 6 and sorted(big.collect()) == [(a, b) for a in range(7) for b in range(5)]
    assert sc.emptyRDD().cartesian(sc.parallelize([1])).collect() == []
    assert sorted(sc.parallelize(LEFT, 3).lookup(1)) == ["a", "b", "f"]


# -- union, distinct, sort, repartition ------------------------------------------------------------------
def test_union(sc):
    a = sc.parallelize([1, 2, 3], 2)
    b = sc.parallelize([3, 4], 3)
    u = a.union(b)
    assert u.getNumPartitions() == 5
    assert u.collect() == [1, 2, 3, 3, 4]
    assert (a + b).collect() == [1, 2, 3, 3, 4]
    assert sc.union([a, b, a]).collect() == [1, 2, 3, 3, 4, 1, 2, 3]
    assert a.map(lambda x: x * 10).union(b.filter(lambda x: x > 3)).collect() == [10, 20, 30, 4]
    assert a.union(sc.emptyRDD()).collect() == [1, 2, 3]
    with pytest.raises(TypeError):
        a + [1]  # noqa: B018


def test_distinct(sc):
    data = [5, 1, 2, 1, 3, 5, 5, "a", "a", (1, 2), (1, 2)]
    for n in (1, 3):
        out = sc.parallelize(data, n).distinct()
        got = out.collect()
        assert len(got) == len(set(data))
        assert set(got) == set(data)
    assert sc.parallelize(data, 3).distinct(4).getNumPartitions() == 4


def test_sort_by(sc):
    data = [(i * 7919) % 101 for i in range(60)]
    rdd = sc.parallelize(data, 3)
    assert rdd.sortBy(lambda x: x).collect() == sorted(data)
    assert rdd.sortBy(lambda x: x, ascending=False).collect() == sorted(data, reverse=True)
    assert rdd.sortBy(lambda x: -x).collect() == sorted(data, key=lambda x: -x)
    for n in (1, 2, 5):
        out = rdd.sortBy(lambda x: x % 10, numPartitions=n)
        assert out.getNumPartitions() == n
        got = out.collect()
        assert [x % 10 for x in got] == sorted(x % 10 for x in data)
        assert Counter(got) == Counter(data)
        parts = out.glom().collect()
        flat = [x for p in parts for x in p]
        assert flat == got
    assert sc.emptyRDD().sortBy(lambda x: x).collect() == []


def test_sort_by_key(sc):
    pairs = [(w, i) for i, w in enumerate("pear Apple fig banana apple Cherry date".split())]
    rdd = sc.parallelize(pairs, 3)
    assert rdd.sortByKey().collect() == sorted(pairs, key=lambda kv: kv[0])
    assert rdd.sortByKey(False).collect() == sorted(pairs, key=lambda kv: kv[0], reverse=True)
    got = rdd.sortByKey(keyfunc=str.lower).collect()
    assert [k.lower() for k, _ in got] == sorted(k.lower() for k, _ in pairs)
    assert Counter(got) == Counter(pairs)
    out = rdd.sortByKey(True, 4)
    assert out.getNumPartitions() == 4
    assert out.collect() == sorted(pairs)
    assert rdd.sortByKey(ascending=False, numPartitions=2, keyfunc=lambda k: len(k)).keys().map(len).collect() == \
        sorted((len(k) for k, _ in pairs), reverse=True)


def test_repartition_and_coalesce(sc):
    data = list(range(101))
    rdd = sc.parallelize(data, 4)
    for n in (1, 3, 4, 9):
        out = rdd.repartition(n)
        assert out.getNumPartitions() == n
        assert Counter(out.collect()) == Counter(data)
        sizes = [len(p) for p in out.glom().collect()]
        assert len(sizes) == n and sum(sizes) == len(data)
    for n in (1, 2, 3, 4):
        out = rdd.coalesce(n)
        assert out.getNumPartitions() == n
        assert out.collect() == data  # merging adjacent partitions keeps the order
    assert rdd.coalesce(10).getNumPartitions() == 4
    assert rdd.coalesce(10).collect() == data
    grown = rdd.coalesce(10, shuffle=True)
    assert grown.getNumPartitions() == 10
    assert sorted(grown.collect()) == data
    assert sorted(rdd.map(lambda x: x * 2).repartition(3).map(lambda x: x + 1).collect()) == [x * 2 + 1 for x in data]
    with pytest.raises(ValueError):
        rdd.repartition(0)


def test_partition_by(sc):
    data = [(k, k) for k in range(50)] + [(f"k{k}", k) for k in range(50)] + [((1, "t"), 0), (None, 1)]
    rdd = sc.parallelize(data, 3)
    for n in (1, 2, 5):
        out = rdd.partitionBy(n)
        assert out.getNumPartitions() == n
        parts = out.glom().collect()
        for i, part in enumerate(parts):
            for k, _ in part:
                assert portable_hash(k) % n == i
        assert Counter(out.collect()) == Counter(data)
    ints = sc.parallelize([(k, str(k)) for k in range(-20, 20)], 2)
    for func in (lambda k: k, lambda k: -k * 3):
        parts = ints.partitionBy(4, func).glom().collect()
        for i, part in enumerate(parts):
            for k, _ in part:
                assert func(k) % 4 == i
        assert sorted(kv for p in parts for kv in p) == sorted((k, str(k)) for k in range(-20, 20))
    # Duplicates are kept: partitionBy does not combine.
    assert sorted(sc.parallelize([(1, 1), (1, 1)], 2).partitionBy(2).collect()) == [(1, 1), (1, 1)]


def test_partition_by_of_driver_data_splits_before_shipping(sc, stages):
    # Records the driver holds (parallelize, received blocks) are split on the driver: no map stage, and the
    # very partitions (same order) that map tasks would make.
    data = [(f"k{i % 37}", i) for i in range(5_000)]
    via_workers = sc.parallelize(data, 3).map(lambda kv: kv).partitionBy(4).glom().collect()
    assert "shuffle-map" in stages
    stages.clear()
    assert sc.parallelize(data, 3).partitionBy(4).glom().collect() == via_workers
    assert "shuffle-map" not in stages
    with pytest.raises(TypeError):
        sc.parallelize([1, 2, 3], 2).partitionBy(2).collect()


# -- actions ----------------------------------------------------------------------------------------------
def test_take_and_first(sc):
    data = list(range(30))
    for n in (1, 4, 10, 40):
        rdd = sc.parallelize(data, n)
        for k in (0, 1, 2, 7, 29, 30, 100):
            assert rdd.take(k) == data[:k]
        assert rdd.first() == 0
    assert sc.parallelize([9], 5).take(3) == [9]
    assert sc.parallelize([9], 5).first() == 9
    tagged = sc.parallelize(data, 6).mapPartitionsWithIndex(lambda i, it: [(i, x) for x in it])
    assert tagged.take(len(data)) == tagged.collect()
    assert tagged.take(8) == tagged.collect()[:8]
    assert sc.parallelize(data, 3).filter(lambda x: x > 25).take(2) == [26, 27]
    with pytest.raises(ValueError, match="RDD is empty"):
        sc.emptyRDD().first()
    with pytest.raises(ValueError, match="RDD is empty"):
        sc.parallelize([1, 2], 2).filter(lambda x: x > 5).first()


def test_reduce_fold_aggregate(sc):
    data = list(range(1, 21))
    for n in (1, 3, 7, 25):
        rdd = sc.parallelize(data, n)
        assert rdd.reduce(operator.add) == sum(data)
        assert rdd.reduce(max) == 20
        assert rdd.fold(0, operator.add) == sum(data)
        # pyspark semantics: the zero value is folded in once per partition and once more at the driver.
        assert rdd.fold(1, operator.add) == sum(data) + n + 1
        assert rdd.aggregate((0, 0), lambda acc, x: (acc[0] + x, acc[1] + 1),
                             lambda a, b: (a[0] + b[0], a[1] + b[1])) == (sum(data), len(data))
        zero: list = []
        got = rdd.aggregate(zero, lambda acc, x: acc + [x], lambda a, b: a + b)
        assert got == data and zero == []
    with pytest.raises(ValueError, match=r"Can not reduce\(\) empty RDD"):
        sc.emptyRDD().reduce(operator.add)
    with pytest.raises(ValueError, match=r"Can not reduce\(\) empty RDD"):
        sc.parallelize([], 3).reduce(operator.add)
    assert sc.parallelize([None, 0], 2).reduce(lambda a, b: (a, b)) == (None, 0)
    assert sc.emptyRDD().fold(0, operator.add) == 0


def test_sum_max_min_mean(sc):
    data = [3, -7, 12, 0, 5.5, 9, -2]
    rdd = sc.parallelize(data, 3)
    assert rdd.sum() == sum(data)
    assert rdd.max() == max(data)
    assert rdd.min() == min(data)
    assert rdd.mean() == pytest.approx(sum(data) / len(data))
    assert rdd.max(key=abs) == max(data, key=abs)
    assert rdd.min(key=lambda x: -x) == min(data, key=lambda x: -x)
    words = ["pear", "fig", "banana", "kiwi"]
    assert sc.parallelize(words, 2).max(key=len) == "banana"
    assert sc.parallelize(words, 2).min(key=len) == "fig"
    assert sc.parallelize(words, 2).min() == "banana"
    with pytest.raises(ValueError):
        sc.emptyRDD().max()
    with pytest.raises(ValueError):
        sc.parallelize([], 2).min()
    assert sc.parallelize([2 ** 70, 2 ** 70], 2).sum() == 2 ** 71


def test_top_and_take_ordered(sc):
    data = [(i * 37) % 53 - 20 for i in range(40)]
    rdd = sc.parallelize(data, 4)
    for k in (0, 1, 5, 40, 50):
        assert rdd.top(k) == sorted(data, reverse=True)[:k]
        assert rdd.takeOrdered(k) == sorted(data)[:k]
        assert rdd.top(k, key=abs) == sorted(data, key=abs, reverse=True)[:k]
        assert rdd.takeOrdered(k, key=lambda x: -x) == sorted(data, key=lambda x: -x)[:k]
    with pytest.raises(ValueError, match="empty RDD"):  # as pyspark's: a reduce over no partitions
        sc.emptyRDD().top(3)
    assert sc.parallelize([], 2).top(3) == [] and sc.emptyRDD().takeOrdered(3) == []
    with pytest.raises(ValueError, match="top N cannot be negative"):
        rdd.takeOrdered(-1)


def test_count_is_empty_get_num_partitions(sc):
    rdd = sc.parallelize(range(1000), 7)
    assert rdd.count() == 1000
    assert rdd.getNumPartitions() == 7
    assert rdd.filter(lambda x: x % 2).count() == 500
    assert rdd.map(lambda x: x).getNumPartitions() == 7
    assert rdd.flatMap(lambda x: [x, x]).count() == 2000
    assert not rdd.isEmpty()


def test_foreach_and_foreach_partition_via_files(sc, tmp_path):
    data = list(range(25))
    path = tmp_path / "foreach.txt"
    sc.parallelize(data, 3).foreach(Recorder(path))
    with open(path) as fh:
        assert sorted(int(line) for line in fh.read().split()) == data

    ppath = str(tmp_path / "parts.txt")

    def write_partition(it):
        items = list(it)
        with open(ppath, "a") as fh:
            fh.write(" ".join(map(str, items)) + "\n")

    sc.parallelize(data, 4).foreachPartition(write_partition)
    with open(ppath) as fh:
        lines = fh.read().splitlines()
    assert len(lines) == 4
    assert sorted(lines) == sorted(" ".join(map(str, p)) for p in slices(data, 4))


def test_foreach_partition_runs_generator_functions(sc, tmp_path):
    path = str(tmp_path / "gen.txt")

    def write_each(it):  # a generator function: pyspark runs what it returns to the end
        for x in it:
            with open(path, "a") as fh:
                fh.write(f"{x}\n")
            yield x

    assert sc.parallelize(range(9), 3).foreachPartition(write_each) is None
    with open(path) as fh:
        assert sorted(int(line) for line in fh.read().split()) == list(range(9))
    # Whatever f returns stays in the task (non-iterables too).
    assert sc.parallelize(range(4), 2).foreachPartition(lambda it: sum(it)) is None
    assert sc.parallelize(range(4), 2).foreach(lambda x: x) is None


def test_foreach_driver_side_effects(sc):
    # In-process, tasks share the driver's objects; in worker processes they act on copies, as in Spark.
    seen: list = []
    sc.parallelize(range(10), 3).foreach(seen.append)
    parts: list = []
    sc.parallelize(range(10), 3).foreachPartition(lambda it: parts.append(list(it)))
    if in_process(sc):
        assert sorted(seen) == list(range(10))
        assert sorted(parts) == sorted(slices(list(range(10)), 3))
    else:
        assert seen == [] and parts == []


def test_save_as_text_file(sc, tmp_path):
    data = [1, "two", (3, "x"), None, 4.5, "", [6]]
    out = tmp_path / "out"
    rdd = sc.parallelize(data, 3)
    rdd.saveAsTextFile(str(out))
    names = sorted(os.listdir(out))
    assert names == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    assert (out / "_SUCCESS").read_text() == ""
    for i, part in enumerate(slices(data, 3)):
        assert (out / f"part-{i:05d}").read_text(encoding="utf-8") == "".join(f"{x}\n" for x in part)
    assert sc.textFile(str(out)).collect() == [str(x) for x in data]
    with pytest.raises(FileExistsError):
        rdd.saveAsTextFile(str(out))
    # Empty partitions still get their (empty) file.
    out2 = tmp_path / "out2"
    sc.parallelize([], 2).saveAsTextFile(str(out2))
    assert sorted(os.listdir(out2)) == ["_SUCCESS", "part-00000", "part-00001"]
    assert (out2 / "part-00001").read_text() == ""


def test_to_local_iterator(sc):
    data = list(range(37))
    rdd = sc.parallelize(data, 5).map(lambda x: x * 3)
    it = rdd.toLocalIterator()
    assert iter(it) is it
    assert list(it) == [x * 3 for x in data]
    tagged = sc.parallelize(data, 4).mapPartitionsWithIndex(lambda i, it: [(i, x) for x in it])
    assert list(tagged.toLocalIterator()) == tagged.collect()
    assert list(sc.emptyRDD().toLocalIterator()) == []


def test_zip_with_index(sc):
    data = list("abcdefghijklmnopq")
    for n in (1, 3, 5, 30):
        rdd = sc.parallelize(data, n).zipWithIndex()
        assert rdd.collect() == list(zip(data, range(len(data))))
        assert rdd.take(4) == list(zip(data, range(4)))
    filtered = sc.parallelize(range(40), 4).filter(lambda x: x % 3 == 0).zipWithIndex()
    assert filtered.collect() == [(x, i) for i, x in enumerate(x for x in range(40) if x % 3 == 0)]


def test_cache_computes_once(sc, tmp_path):
    path = tmp_path / "calls.txt"
    data = list(range(12))
    rdd = sc.parallelize(data, 3).map(Recorder(path, lambda x: x * 2)).cache()
    assert rdd.is_cached
    assert read_calls(path) == 0  # lazy
    assert rdd.collect() == [x * 2 for x in data]
    assert read_calls(path) == len(data)
    assert rdd.count() == len(data)
    assert rdd.map(lambda x: x + 1).collect() == [x * 2 + 1 for x in data]
    assert sorted(rdd.map(lambda x: (x % 3, x)).reduceByKey(operator.add).collect()) == sorted(
        reduced([(x * 2 % 3, x * 2) for x in data], operator.add).items())
    assert rdd.take(2) == [0, 2]
    assert read_calls(path) == len(data)
    rdd.unpersist()
    assert not rdd.is_cached
    assert rdd.count() == len(data)
    assert read_calls(path) == 2 * len(data)


def test_persist_shuffled_rdd(sc, tmp_path):
    path = tmp_path / "calls.txt"
    rdd = sc.parallelize(PAIRS, 2).mapValues(Recorder(path)).reduceByKey(operator.add).persist()
    first = sorted(rdd.collect(), key=repr)
    assert read_calls(path) == len(PAIRS)
    assert sorted(rdd.collect(), key=repr) == first
    assert rdd.count() == len(first)
    assert read_calls(path) == len(PAIRS)


def test_uncached_rdd_recomputes(sc, tmp_path):
    path = tmp_path / "calls.txt"
    rdd = sc.parallelize(range(5), 2).map(Recorder(path))
    rdd.collect()
    rdd.collect()
    assert read_calls(path) == 10


def test_cache_marked_after_child_created(sc, tmp_path):
    path = tmp_path / "calls.txt"
    parent = sc.parallelize(range(8), 2).map(Recorder(path, lambda x: x + 1))
    child = parent.map(lambda x: x * 10)
    parent.cache()
    assert parent.collect() == [x + 1 for x in range(8)]
    assert child.collect() == [(x + 1) * 10 for x in range(8)]
    assert read_calls(path) == 8


def test_checkpoint(sc, tmp_path):
    path = tmp_path / "calls.txt"
    rdd = sc.parallelize(range(6), 2).map(Recorder(path))
    assert not rdd.isCheckpointed()
    rdd.checkpoint()
    assert rdd.isCheckpointed()
    assert rdd.collect() == list(range(6))
    assert read_calls(path) == 6


def test_glom(sc):
    data = list(range(10))
    assert sc.parallelize(data, 3).glom().collect() == slices(data, 3)
    assert sc.parallelize(data, 3).glom().map(len).collect() == [3, 3, 4]
    assert sc.emptyRDD().glom().collect() == []


def test_misc_api(sc):
    rdd = sc.parallelize([1, 2, 3], 2)
    assert rdd.context is sc
    assert rdd.setName("numbers") is rdd and rdd.name() == "numbers"
    assert rdd.id() != rdd.map(lambda x: x).id()
    assert "2 partitions" in repr(rdd)
    assert sc.range(5).collect() == [0, 1, 2, 3, 4]
    assert sc.range(2, 11, 3, numSlices=2).glom().collect() == range_slices([2, 5, 8], 2)
    b = sc.broadcast({"x": 1})
    assert sc.parallelize(["x", "x"], 2).map(lambda k: b.value[k]).collect() == [1, 1]


def test_to_pandas(sc):
    pd = pytest.importorskip("pandas")
    df = sc.parallelize([(1, "a"), (2, "b")], 2).toPandas(["n", "s"])
    assert isinstance(df, pd.DataFrame)
    assert df.to_dict("list") == {"n": [1, 2], "s": ["a", "b"]}
    dicts = sc.parallelize([{"n": 1}, {"n": 2}], 2).toPandas()
    assert dicts["n"].tolist() == [1, 2]


def test_to_arrow(sc):
    pa = pytest.importorskip("pyarrow")
    table = sc.parallelize([(1, "a"), (2, "b")], 2).toArrow(["n", "s"])
    assert isinstance(table, pa.Table)
    assert table.to_pydict() == {"n": [1, 2], "s": ["a", "b"]}
    assert sc.parallelize([(1, 2.5)], 1).toArrow().column_names == ["_1", "_2"]
    assert sc.parallelize([{"k": 1}], 1).toArrow().to_pydict() == {"k": [1]}


# -- property tests ---------------------------------------------------------------------------------------
KEYS = st.one_of(st.text(alphabet="abcxyz", max_size=3), st.integers(min_value=-6, max_value=6))
VALUES = st.one_of(st.integers(min_value=-100, max_value=100), st.integers(min_value=-(2 ** 70), max_value=2 ** 70))
PAIR_LISTS = st.lists(st.tuples(KEYS, VALUES), max_size=80)
NPARTS = st.integers(min_value=1, max_value=6)


@settings(max_examples=60)
@given(pairs=PAIR_LISTS, n_in=NPARTS, n_out=st.one_of(st.none(), NPARTS))
def test_prop_reduce_by_key_add(sc, pairs, n_in, n_out):
    rdd = sc.parallelize(pairs, n_in)
    got = rdd.reduceByKey(operator.add, n_out).collect()
    assert len(got) == len({k for k, _ in got})
    assert dict(got) == reduced(pairs, operator.add)
    assert dict(rdd.reduceByKey(lambda a, b: a + b, n_out).collect()) == reduced(pairs, operator.add)


@settings(max_examples=60)
@given(pairs=PAIR_LISTS, n_in=NPARTS, n_out=st.one_of(st.none(), NPARTS))
def test_prop_group_by_key(sc, pairs, n_in, n_out):
    got = sc.parallelize(pairs, n_in).groupByKey(n_out).collect()
    assert len(got) == len({k for k, _ in got})
    assert {k: sorted(vs) for k, vs in got} == {k: sorted(vs) for k, vs in grouped(pairs).items()}


@settings(max_examples=60)
@given(items=st.lists(KEYS, max_size=80), n_in=NPARTS)
def test_prop_count_by_value(sc, items, n_in):
    assert dict(sc.parallelize(items, n_in).countByValue()) == dict(Counter(items))


@settings(max_examples=60)
@given(left=PAIR_LISTS, right=PAIR_LISTS, nl=NPARTS, nr=NPARTS, n_out=st.one_of(st.none(), NPARTS))
def test_prop_join(sc, left, right, nl, nr, n_out):
    a, b = sc.parallelize(left, nl), sc.parallelize(right, nr)
    assert Counter(a.join(b, n_out).collect()) == Counter(ref_join(left, right, "inner"))
    assert Counter(a.fullOuterJoin(b, n_out).collect()) == Counter(ref_join(left, right, "full"))


@settings(max_examples=40)
@given(data=st.lists(st.integers(min_value=-50, max_value=50), max_size=60), n_in=NPARTS, n_out=NPARTS)
def test_prop_sort_and_distinct(sc, data, n_in, n_out):
    rdd = sc.parallelize(data, n_in)
    assert rdd.sortBy(lambda x: x, numPartitions=n_out).collect() == sorted(data)
    assert sorted(rdd.distinct(n_out).collect()) == sorted(set(data))
    assert Counter(rdd.repartition(n_out).collect()) == Counter(data)
    assert rdd.zipWithIndex().collect() == list(zip(data, range(len(data))))


def test_word_count_idioms_give_exactly_the_generic_result(sc):
    # flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(add) runs fused in C; every line kind
    # (ASCII with all of str.split's whitespace, non-ASCII, empty, non-str) must give what Python gives.
    import operator as op

    lines = ["a b  a\tc\nd\x0be\x0cf\rg\x1ch\x1di\x1ej\x1fk", "  lead trail  ", "", "   ", "héllo wörld a",
             "x\x85y z\xa0w\u2003v", "longwordlongword longwordlongword short", b"bytes line bytes"] * 3
    fused = sc.parallelize(lines, 3).flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(op.add)
    weighted = sc.parallelize(lines, 2).flatMap(lambda l: l.split()).map(lambda w: (w, 3)).reduceByKey(
        lambda a, b: a + b)
    expected = {}
    for line in lines:
        for w in line.split():
            expected[w] = expected.get(w, 0) + 1
    assert dict(fused.collect()) == expected
    assert dict(weighted.collect()) == {k: 3 * v for k, v in expected.items()}
    assert all(type(v) is int for _, v in fused.collect())
    with pytest.raises(AttributeError, match="split"):
        sc.parallelize([1], 1).flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(op.add).collect()


def test_run_job_runs_a_function_on_chosen_partitions(sc):
    from pystream.errors import IllegalArgumentError

    rdd = sc.parallelize(range(6), 3)
    assert sc.runJob(rdd, lambda part: [x * x for x in part]) == [0, 1, 4, 9, 16, 25]
    assert sc.runJob(rdd, lambda part: [x * x for x in part], [0, 2], True) == [0, 1, 16, 25]
    assert sc.runJob(rdd, lambda part: [sum(part)], [2, 0]) == [9, 1]  # in the order asked
    assert sc.runJob(rdd, lambda part: [1], []) == []
    with pytest.raises(IllegalArgumentError, match="non-existent partition: 3"):
        sc.runJob(rdd, lambda part: part, [3])


def test_binary_records_reads_fixed_length_records(sc, tmp_path):
    from pystream.errors import WrongRecordLengthError

    (tmp_path / "a.bin").write_bytes(b"aaaabbbb")
    (tmp_path / "b.bin").write_bytes(b"cccc")
    assert sorted(sc.binaryRecords(str(tmp_path), 4).collect()) == [b"aaaa", b"bbbb", b"cccc"]
    (tmp_path / "c.bin").write_bytes(b"dd")
    with pytest.raises(WrongRecordLengthError):
        sc.binaryRecords(str(tmp_path), 4)
    with pytest.raises(ValueError):
        sc.binaryRecords(str(tmp_path / "a.bin"), 0)


def test_map_partitions_with_split_is_the_deprecated_name_of_with_index(sc):
    rdd = sc.parallelize(range(4), 2)
    with pytest.warns(FutureWarning, match="mapPartitionsWithIndex"):
        out = rdd.mapPartitionsWithSplit(lambda i, it: [(i, sum(it))]).collect()
    assert out == [(0, 1), (1, 5)]
    assert sc.resources == {}


def test_sort_by_splits_ranges_evenly_and_keeps_equal_keys_in_order(sc):
    # Range-partitioned, as Spark's: each output partition a contiguous range of about a quarter of the records,
    # equal keys in one partition, in the order of the input.
    data = [((i * 7919) % 1000, i) for i in range(4000)]
    rdd = sc.parallelize(data, 3)
    for ascending in (True, False):
        out = rdd.sortBy(lambda r: r[0], ascending, 4)
        assert out.collect() == sorted(data, key=lambda r: r[0], reverse=not ascending)
        parts = out.glom().collect()
        assert all(600 <= len(p) <= 1400 for p in parts), [len(p) for p in parts]
        keys = [{r[0] for r in p} for p in parts]
        assert all(not (keys[i] & keys[j]) for i in range(4) for j in range(i + 1, 4))
    dup = sc.parallelize([(1, i) for i in range(50)] + [(0, -1)], 4)
    assert dup.sortByKey(numPartitions=3).collect() == [(0, -1)] + [(1, i) for i in range(50)]


def test_range_bounds_weigh_each_sample_by_its_partition():
    from pystream.shuffle import range_bounds

    assert range_bounds([], 3) == [] and range_bounds([(0, [])], 2) == []
    assert range_bounds([(100, list(range(10)))], 2) == [4]
    # A partition of 900 records sampled as 3 keys outweighs one of 100 sampled as 10.
    assert range_bounds([(100, list(range(10))), (900, [20, 21, 22])], 2) == [21]
    assert range_bounds([(10, [5] * 10)], 4) == [5]  # one distinct key: one bound


def test_distinct_keeps_the_first_of_equal_elements(sc):
    got = sc.parallelize([1.0, 2, True, 1, 2.0, "a"], 2).distinct(1).collect()
    assert got == [1.0, 2, "a"] and type(got[0]) is float and type(got[1]) is int


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, "2", True])
def test_partition_counts_must_be_whole_numbers_of_at_least_one(sc, bad):
    from pystream.errors import IllegalArgumentError

    rdd = sc.parallelize([("a", 1), ("b", 2)], 2)
    for make in (lambda: sc.parallelize([1, 2], bad), lambda: rdd.reduceByKey(operator.add, bad),
                 lambda: rdd.partitionBy(bad), lambda: rdd.repartition(bad), lambda: rdd.coalesce(bad),
                 lambda: rdd.groupByKey(bad), lambda: rdd.join(rdd, bad), lambda: rdd.sortByKey(True, bad)):
        with pytest.raises(IllegalArgumentError):
            make()
    assert rdd.reduceByKey(operator.add, np.int64(3)).getNumPartitions() == 3  # any integral type will do


def test_text_that_is_not_utf8_reads_as_replacement_characters(sc, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\nok\n\xff\xfe end\n")
    assert sc.textFile(str(tmp_path / "bad.txt")).collect() == ["caf\ufffd", "ok", "\ufffd\ufffd end"]
    assert sc.wholeTextFiles(str(tmp_path)).collect()[0][1] == "caf\ufffd\nok\n\ufffd\ufffd end\n"
    assert sc.textFile(str(tmp_path), use_unicode=False).collect()[0] == b"caf\xe9"


def test_a_partition_function_must_return_an_int(sc):
    with pytest.raises(Exception, match="partitionFunc must return an int, got str 'x'"):
        sc.parallelize([(1, 2), (3, 4)], 2).partitionBy(2, lambda k: "x").collect()
