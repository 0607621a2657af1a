"""Broadcast variables: read by tasks on both executors, sent to each worker once, dropped on unpersist."""

from __future__ import annotations

import pickle

import pytest

from pystream import broadcast, pickling
from pystream.errors import IllegalStateError


def test_tasks_read_broadcast_values(sc):
    lookup = sc.broadcast({i: str(i) for i in range(1000)})
    factor = sc.broadcast(3)
    rdd = sc.parallelize(range(10), 4)
    assert rdd.map(lambda x: lookup.value[x] * factor.value).collect() == [str(x) * 3 for x in range(10)]
    # The same broadcast in another stage, and through a shuffle.
    pairs = rdd.map(lambda x: (x % 2, lookup.value[x])).reduceByKey(lambda a, b: a + b).collectAsMap()
    assert pairs == {0: "02468", 1: "13579"}
    assert lookup.value[7] == "7" and factor.value == 3


def test_a_task_function_carries_a_reference_not_the_value():
    big = broadcast.Broadcast({i: i for i in range(100_000)})
    payload, shipped = pickling.dumps_task(lambda x: big.value[x])
    assert shipped == [big] and len(payload) < 2000 < len(big.dump())
    worker_side = pickle.loads(payload)  # as a worker reads it, once the value has arrived
    broadcast.receive(big._bid, big.dump())
    try:
        assert worker_side(41) == 41
    finally:
        broadcast.forget([big._bid])
    with pytest.raises(IllegalStateError, match="was not sent to this worker"):
        worker_side(1)


def test_a_destroyed_broadcast_cannot_be_used(sc):
    b = sc.broadcast({"k": 1})
    assert sc.parallelize(["k"], 1).map(lambda k: b.value[k]).collect() == [1]
    b.destroy()
    with pytest.raises(IllegalStateError, match="after it was destroyed"):
        b.value
    with pytest.raises(IllegalStateError, match="after it was destroyed"):
        sc.parallelize(["k"], 1).map(lambda k: b.value[k]).collect()
    assert sc.parallelize([1, 2], 2).count() == 2  # the context goes on


def test_a_broadcast_pickled_whole_comes_back_as_a_new_one_with_its_value():
    b = broadcast.Broadcast([1, 2])
    copy = pickle.loads(pickling.dumps(b))  # as a checkpoint's graph carries it
    assert copy.value == [1, 2] and copy._bid != b._bid
