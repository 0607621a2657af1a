"""Accumulators on both executors: tasks add, the driver reads, a failed task's updates are dropped."""

from __future__ import annotations

import pytest

from pystream import Accumulator, AccumulatorParam
from pystream.errors import IllegalStateError
from pystream.testing import advance, collect


class VectorParam(AccumulatorParam):
    """pyspark's documented example: element-wise sums of fixed-length lists."""

    def zero(self, value):
        return [0.0] * len(value)

    def addInPlace(self, value1, value2):
        for i in range(len(value1)):
            value1[i] += value2[i]
        return value1


def test_tasks_add_and_the_driver_reads(sc):
    acc = sc.accumulator(0)
    assert isinstance(acc, Accumulator) and acc.value == 0
    sc.parallelize(range(1, 101), 4).foreach(lambda x: acc.add(x))
    assert acc.value == 5050
    sc.parallelize(range(10), 3).foreachPartition(lambda it: acc.add(sum(1 for _ in it)))
    assert acc.value == 5060
    acc += 5  # the driver adds too
    assert acc.value == 5065 and str(acc) == "5065" and repr(acc).endswith("value=5065>")
    acc.value = 1
    sc.parallelize([1, 2], 2).foreach(lambda x: acc.add(x))
    assert acc.value == 4


def test_default_params_and_a_custom_one(sc):
    f = sc.accumulator(0.5)
    c = sc.accumulator(1j)
    v = sc.accumulator([1.0, 2.0, 3.0], VectorParam())
    rdd = sc.parallelize(range(8), 4)
    rdd.foreach(lambda x: (f.add(0.25), c.add(1j), v.add([1.0, float(x), 0.0])))
    assert f.value == 0.5 + 8 * 0.25
    assert c.value == 9j
    assert v.value == [9.0, 2.0 + sum(range(8)), 3.0]
    with pytest.raises(TypeError, match="No default accumulator param"):
        sc.accumulator("text")


def test_updates_in_transformations_count_once_per_task_that_ran(sc):
    seen = sc.accumulator(0)

    def count(x):
        seen.add(1)
        return x * 2

    doubled = sc.parallelize(range(50), 5).map(count)
    assert doubled.sum() == 2 * sum(range(50)) and seen.value == 50
    # Not cached: a second action runs the map again, and its tasks add again (as in Spark).
    assert doubled.count() == 50 and seen.value == 100
    # Through a shuffle: the map side's tasks add once each.
    pairs = sc.parallelize(range(40), 4).map(lambda x: (count(x) % 3, 1)).reduceByKey(lambda a, b: a + b)
    assert sorted(pairs.collect()) == [(0, 14), (1, 13), (2, 13)] and seen.value == 140


def test_reading_the_value_inside_a_task_fails_clearly(sc):
    acc = sc.accumulator(0)
    with pytest.raises(IllegalStateError, match="cannot be accessed inside tasks"):
        sc.parallelize([1], 1).map(lambda x: acc.value).collect()
    with pytest.raises(IllegalStateError, match="cannot be accessed inside tasks"):
        sc.parallelize([1], 1).foreach(lambda x: setattr(acc, "value", 3))
    assert acc.value == 0


def test_a_failed_task_adds_nothing(sc):
    acc = sc.accumulator(0)

    def add_then_fail(split, it):
        for x in it:
            acc.add(x)
        if split == 1:
            raise ValueError("bad partition")
        return []

    rdd = sc.parallelize(range(10), 2)  # partitions [0..4] and [5..9]
    with pytest.raises(ValueError, match="bad partition"):
        rdd.mapPartitionsWithIndex(add_then_fail).collect()
    # Partition 1's adds are dropped. Partition 0's task succeeds, but the job may fail before its reply is
    # read (workers run both at once), and then its result and updates go unused, as in Spark.
    before = acc.value
    assert before in (0, sum(range(5)))
    rdd.foreach(lambda x: acc.add(x))
    assert acc.value == before + sum(range(10))  # the pool and the accumulator go on


def test_a_stream_counts_bad_records_batch_after_batch(ssc):
    sc = ssc.sparkContext
    bad = sc.accumulator(0)

    def parse(line):
        try:
            return [int(line)]
        except ValueError:
            bad.add(1)
            return []

    seen = []
    stream = ssc.queueStream([["1", "x", "2"], ["y", "z", "3"], ["4"]])
    out = collect(stream.flatMap(parse))
    stream.foreachRDD(lambda rdd: seen.append(bad.value))  # read on the driver, after the batch's jobs
    ssc.start()
    advance(ssc, 3)
    assert out.batches == [[1, 2], [3], [4]]
    assert bad.value == 3 and seen == [1, 3, 3]

