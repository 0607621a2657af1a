import sys
from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pystream import portable_hash
from pystream._core.partitioning import (
    partition, partition_frames, partition_ids, partition_many, partition_order, scatter)
from pystream.frames import decode


def reference(records, n):
    parts = [[] for _ in range(n)]
    for rec in records:
        parts[portable_hash(rec[0]) % n].append(rec)
    return parts


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 16, 1000])
def test_matches_reference(n):
    recs = [(f"k{i % 37}", i) for i in range(2000)] + [(i, str(i)) for i in range(300)]
    parts = partition(recs, n)
    assert parts == reference(recs, n)
    assert len(parts) == n
    ids = partition_ids(recs, n)
    assert ids.dtype == np.uint32
    assert [int(i) for i in ids] == [portable_hash(k) % n for k, _ in recs]


@given(st.lists(st.tuples(st.one_of(st.text(max_size=5), st.integers(), st.floats(allow_nan=False)), st.integers())),
       st.integers(1, 40))
def test_property_partition(recs, n):
    parts = partition(recs, n)
    assert parts == reference(recs, n)
    assert sorted(map(repr, (r for p in parts for r in p))) == sorted(map(repr, recs))


def test_equal_numeric_keys_same_partition():
    parts = partition([(1, "a"), (1.0, "b"), (True, "c")], 13)
    assert sum(1 for p in parts if p) == 1


def test_shares_record_objects_and_refcounts():
    recs = [("a", object()) for _ in range(10)]
    before = sys.getrefcount(recs[0])
    parts = partition(recs, 4)
    owner = next(i for i, p in enumerate(parts) if p)
    shared = parts[owner][0] is recs[0]
    with_parts = sys.getrefcount(recs[0])
    del parts
    after = sys.getrefcount(recs[0])
    assert shared
    assert (with_parts, after) == (before + 1, before)


def test_accepts_other_pair_shapes_and_iterables():
    Pair = namedtuple("Pair", "k v")
    recs = [["x", 1], Pair("y", 2), ("z", 3)]
    parts = partition(iter(recs), 5)
    assert sorted(r[0] for p in parts for r in p) == ["x", "y", "z"]


def test_bad_records_raise_and_do_not_leak():
    good = ("a", 1)
    before = sys.getrefcount(good)
    with pytest.raises(TypeError, match="record 2 is int"):
        partition([good, good, 5], 4)
    with pytest.raises(TypeError, match="unhashable|list"):
        partition([good, ([1], 2)], 4)
    assert sys.getrefcount(good) == before
    with pytest.raises(ValueError, match="between 1"):
        partition([good], 0)


def test_scatter_custom_ids():
    recs = list(range(10))
    parts = scatter(recs, [i % 3 for i in recs], 3)
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(ValueError, match="partition id 5 of record 1"):
        scatter([1, 2], [0, 5], 3)
    with pytest.raises(ValueError, match="one partition id per record"):
        scatter([1, 2], [0], 3)
    assert scatter([], [], 2) == [[], []]


def test_empty():
    assert partition([], 3) == [[], [], []]
    assert len(partition_ids([], 3)) == 0
    order, starts = partition_order([], 3)
    assert len(order) == 0 and starts.tolist() == [0, 0, 0, 0]


def index_reference(records, n):
    parts = [[] for _ in range(n)]
    for i, rec in enumerate(records):
        parts[portable_hash(rec[0]) % n].append(i)
    return parts


def as_index_lists(order, starts):
    # A byte per partition id and an int32 per index up to 255 partitions; past that, int64 indices.
    assert order.dtype == (np.int32 if len(starts) <= 256 else np.int64) and starts.dtype == np.int64
    return [order[starts[p]:starts[p + 1]].tolist() for p in range(len(starts) - 1)]


@given(st.lists(st.tuples(st.one_of(st.text(max_size=5), st.integers(), st.floats(allow_nan=False)), st.integers())),
       st.integers(1, 40))
def test_property_partition_order_indexes_the_partitions(recs, n):
    order, starts = partition_order(recs, n)
    assert len(starts) == n + 1 and starts[-1] == len(recs)
    assert as_index_lists(order, starts) == index_reference(recs, n)
    assert [[recs[i] for i in part] for part in as_index_lists(order, starts)] == partition(recs, n)


@pytest.mark.parametrize("n", [255, 256, 1000])
def test_partition_order_past_255_partitions(n):
    # Keys hashed on the threads (str) and by Python-level code (ints, tuples) on either side of the compact form.
    recs = [(f"w{j % 5003}" if j % 3 else (j % 11 if j % 2 else (j % 3, "t")), j) for j in range(20_000)]
    order, starts = partition_order(recs, n)
    assert as_index_lists(order, starts) == index_reference(recs, n)


def test_partition_order_and_ids_errors_and_references():
    good = ("a", 1)
    before = sys.getrefcount(good)
    order, starts = partition_order([good] * 10, 4)
    assert sys.getrefcount(good) == before  # index arrays hold no reference to any record
    with pytest.raises(TypeError, match="record 2 is int"):
        partition_order([good, good, 5], 4)
    with pytest.raises(TypeError, match="record 1 is int"):
        partition_ids([good, 5], 4)
    with pytest.raises(ValueError, match="between 1"):
        partition_order([good], 0)
    assert sys.getrefcount(good) == before


@given(st.lists(st.lists(st.tuples(st.one_of(st.text(max_size=3), st.integers(-5, 5)), st.integers()), max_size=30),
                max_size=5),
       st.integers(1, 9))
def test_property_partition_many_is_partition_of_the_concatenation(inputs, n):
    joined = [r for recs in inputs for r in recs]
    assert partition_many(inputs, n) == partition(joined, n) == reference(joined, n)


def test_partition_many_bad_record_in_a_later_list_leaks_nothing():
    good = ("a", 1)
    before = sys.getrefcount(good)
    with pytest.raises(TypeError, match="record 1 is int"):
        partition_many([[good, good], [good, 5], [good]], 4)
    assert sys.getrefcount(good) == before
    parts = partition_many([[good], [good, good]], 2)
    assert sys.getrefcount(good) == before + 3
    del parts
    assert sys.getrefcount(good) == before


@given(st.lists(st.lists(st.tuples(st.one_of(st.text(max_size=3), st.integers(-5, 5), st.floats(allow_nan=False)),
                                   st.one_of(st.integers(), st.text(max_size=4))), max_size=30), max_size=4),
       st.integers(1, 9))
def test_property_partition_frames_encode_partition_many(inputs, n):
    writers = partition_frames(inputs, n)
    assert [decode(w.getvalue()) for w in writers] == partition_many(inputs, n)
    assert [w.count for w in writers] == [len(p) for p in partition_many(inputs, n)]


def test_partition_frames_bad_input():
    with pytest.raises(TypeError, match="record 1 is int"):
        partition_frames([[("a", 1), 5]], 3)
    with pytest.raises(ValueError, match="between 1"):
        partition_frames([[("a", 1)]], 0)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    with pytest.raises(TypeError, match="pickling it failed"):
        partition_frames([[("a", 1), ("b", Unpicklable())]], 2)


# -- large inputs: the scatter cut into ranges, one thread each (a range per 65,536 records) -----------------
@pytest.fixture
def threads():
    from pystream._core import partitioning

    previous = partitioning.get_num_threads()
    yield partitioning.set_num_threads
    partitioning.set_num_threads(previous)


@pytest.mark.parametrize("nthreads", [1, 2, 3, 4])
@pytest.mark.parametrize("layout", [[300_001], [70_000, 0, 1, 140_000], [1, 1, 1, 131_072], [131_071, 2]])
def test_threaded_scatter_matches_reference(threads, nthreads, layout):
    threads(nthreads)
    inputs, i = [], 0
    for n in layout:
        # str keys (the fast path), int and tuple keys (hashed by Python-level code) in every range
        inputs.append([(f"w{j % 5003}" if j % 7 else (j % 11 if j % 2 else (j % 3, "t")), j)
                       for j in range(i, i + n)])
        i += n
    joined = [r for recs in inputs for r in recs]
    expected = reference(joined, 13)
    assert partition_many(inputs, 13) == expected
    assert partition(joined, 13) == expected
    assert partition(joined, 16) == reference(joined, 16)
    assert as_index_lists(*partition_order(joined, 13)) == index_reference(joined, 13)
    assert partition_ids(joined, 16).tolist() == [portable_hash(k) % 16 for k, _ in joined]
    # Past 256 partitions each range counts straight into the shared rows, and indices are int64.
    assert partition(joined, 300) == reference(joined, 300)
    assert as_index_lists(*partition_order(joined, 300)) == index_reference(joined, 300)


def test_threaded_scatter_refcounts_with_one_record_many_times(threads):
    # the same object in every range: each range's thread moves pointers only, references are taken once each
    threads(4)
    rec = ("k", 1)
    before = sys.getrefcount(rec)
    parts = partition([rec] * 300_000, 8)
    assert sys.getrefcount(rec) == before + 300_000
    assert sum(len(p) for p in parts) == 300_000
    del parts
    assert sys.getrefcount(rec) == before


def test_threaded_bad_record_in_a_later_range_leaks_nothing(threads):
    threads(4)
    good = ("a", 1)
    before = sys.getrefcount(good)
    recs = [good] * 300_000
    recs[250_000] = 5
    with pytest.raises(TypeError, match="record 250000 is int"):
        partition(recs, 4)
    with pytest.raises(TypeError, match="record 1 is int"):
        partition_many([[good] * 200_000, [good, 5]], 4)
    with pytest.raises(TypeError, match="record 250000 is int"):
        partition_order(recs, 4)
    del recs
    assert sys.getrefcount(good) == before


def test_key_hash_that_changes_the_list_raises():
    recs = []

    class Shrinking:
        def __hash__(self):
            recs.clear()
            return 1

    recs.extend([("a", 1), (Shrinking(), 2)] + [("b", i) for i in range(100)])
    with pytest.raises(RuntimeError, match="changed size"):
        partition(recs, 4)
    recs.extend([("a", 1), (Shrinking(), 2)] + [("b", i) for i in range(100)])
    with pytest.raises(RuntimeError, match="changed size"):
        partition_order(recs, 4)
    # partition_frames read the record after hashing its key: from an emptied list, a crash.
    recs.extend([(Shrinking(), 1)] + [("b", i) for i in range(100)])
    with pytest.raises(RuntimeError, match="changed size"):
        partition_frames([recs], 3)


def test_set_num_threads(threads):
    assert threads(3) >= 1
    from pystream._core.partitioning import get_num_threads

    assert get_num_threads() == 3
    with pytest.raises(ValueError, match="at least 1"):
        threads(0)
    assert get_num_threads() == 3
