"""Map-side shuffle tasks fed a streamed input frame: the same buckets as from a list, folded a chunk at a time."""

from __future__ import annotations

import itertools
import operator

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from pystream import frames
from pystream._core.aggregation import AggTable
from pystream._core.hashing import portable_hash
from pystream.shuffle import (
    FOLD_CHUNK,
    Aggregator,
    CountingMapSideTask,
    MapSideTask,
    ReduceSideTask,
    TableSplit,
    merge_buckets,
    record_chunks,
)


def pairs_of(bucket) -> list:
    """A bucket's (key, combiner) pairs, whatever form it takes (a list, or a table of the map side)."""
    return bucket.items() if type(bucket) is AggTable else list(bucket)


def buckets(result) -> list[list]:
    return [sorted(pairs_of(b), key=repr) for b in result]


def reader(records: list) -> frames.FrameReader:
    return frames.FrameReader(frames.encode(records, compress=False))


LINES = [" ".join(f"w{(i * 7 + j * 13) % 997}" for j in range(i % 12)) + (" é" if i % 50 == 0 else "")
         for i in range(9_000)]
PAIRS = [(f"k{i % 1_234}", i) for i in range(9_000)] + [((1, "t"), 2.5), (None, 1), (True, 1), (1.0, 4)]


@pytest.mark.parametrize("task", [
    CountingMapSideTask(None, 1, 3, portable_hash, split_words=True),
    CountingMapSideTask(None, 3, 3, portable_hash, split_words=True),  # a weight: buckets scaled from the counts
    CountingMapSideTask(None, 1, 3, portable_hash),  # countByValue of whole lines
    CountingMapSideTask(None, 1, 3, lambda k: len(k)),  # a user partitioner: lists, not a TableSplit
], ids=["words", "weighted", "lines", "user-partitioner"])
def test_counting_task_gives_the_same_buckets_from_a_frame_as_from_a_list(task):
    assert task.streams_input
    assert buckets(task(0, reader(LINES))) == buckets(task(0, list(LINES)))


def test_a_counting_task_run_again_sizes_its_table_from_the_last_run_of_that_split():
    # A worker keeps its task object from batch to batch; each split's next table starts with room for half
    # the keys the split had, and comes out as one built from nothing, also when the batch shrinks or grows.
    task = CountingMapSideTask(None, 1, 3, portable_hash, split_words=True)
    fresh = CountingMapSideTask(None, 1, 3, portable_hash, split_words=True)
    distinct = len({w for line in LINES for w in line.split()})
    assert buckets(task(0, reader(LINES))) == buckets(fresh(0, list(LINES)))
    assert task.counted == {0: distinct}
    for batch in (LINES[:100], LINES, LINES * 2, []):
        assert buckets(task(0, reader(batch))) == buckets(CountingMapSideTask(
            None, 1, 3, portable_hash, split_words=True)(0, list(batch)))
    assert task.counted == {0: 0}
    task(2, reader(LINES[:10]))
    assert task.counted == {0: 0, 2: len({w for line in LINES[:10] for w in line.split()})}


@pytest.mark.parametrize("aggregator", [
    Aggregator.from_reducer(operator.add),  # in C
    Aggregator.from_reducer(lambda a, b: max(a, b) + 0),  # a Python function called from the C loop
    Aggregator(lambda v: [v], lambda c, v: c + [v], operator.add),  # combineByKey
], ids=["add", "python-reducer", "combiner"])
def test_combining_task_gives_the_same_buckets_from_a_frame_as_from_a_list(aggregator):
    task = MapSideTask(None, aggregator, 4, portable_hash)
    assert task.streams_input
    assert buckets(task(0, reader(PAIRS))) == buckets(task(0, list(PAIRS)))
    # With a pipeline, its output is folded as it comes.
    piped = MapSideTask(lambda split, it: ((k, v) for k, v in it if v != 3), aggregator, 4, portable_hash)
    assert buckets(piped(0, reader(PAIRS))) == buckets(task(0, [kv for kv in PAIRS if kv[1] != 3]))


def test_a_task_that_needs_a_list_does_not_stream():
    # No aggregator and no pipeline: the records are split as they are, which needs the list itself.
    assert not MapSideTask(None, None, 2, portable_hash).streams_input
    assert MapSideTask(lambda split, it: it, None, 2, portable_hash).streams_input


@pytest.mark.parametrize("aggregator", [Aggregator.from_reducer(operator.add), None], ids=["add", "concatenate"])
def test_a_kept_reduce_task_reads_other_workers_frames_as_it_merges_them(aggregator):
    # A kept reduce (its own stage: W2's window, a cached shuffle) is handed another worker's bucket as a
    # frame to read in place, and gives what it gives from the decoded pairs.
    task = ReduceSideTask(aggregator)
    assert task.streams_input
    other = [(k, v) for k, v in PAIRS if isinstance(k, str)]
    own = [(f"k{i % 2_000}", -i) for i in range(3_000)]
    got = task(0, [reader(other), list(own)])
    assert got == task(0, [list(other), list(own)])
    assert got == task(0, [reader(other), reader(own)])
    if aggregator is None:
        assert got == other + own
    else:
        want: dict = {}
        for k, v in other + own:
            want[k] = want.get(k, 0) + v
        assert got == list(want.items())


def test_record_chunks_never_materialise_more_than_a_chunk():
    assert list(record_chunks(PAIRS))[0] is PAIRS  # a list as it is
    r = reader(PAIRS)
    sizes = [len(c) for c in record_chunks(r)]
    assert sizes == [FOLD_CHUNK] * (len(PAIRS) // FOLD_CHUNK) + [len(PAIRS) % FOLD_CHUNK]
    # An endless pipeline output: the first chunk takes FOLD_CHUNK items of it, no more.
    source = itertools.count()
    first = next(record_chunks(source))
    assert first == list(range(FOLD_CHUNK)) and next(source) == FOLD_CHUNK


def test_a_failing_record_fails_the_task_wherever_it_is():
    # The error of a record in the last chunk surfaces as from a list: nothing folded so far is returned.
    bad = [(f"k{i}", i) for i in range(3 * FOLD_CHUNK)] + [("k0", "not a number")]
    task = MapSideTask(None, Aggregator.from_reducer(operator.add), 2, portable_hash)
    with pytest.raises(TypeError):
        task(0, reader(bad))
    with pytest.raises(TypeError):
        task(0, bad)


REDUCERS = {
    "add": operator.add,
    "min": min,
    "python": lambda a, b: a * 2 + b,  # order-sensitive: merged in the wrong order, it shows
}


@settings(max_examples=150, deadline=None)
@given(maps=st.lists(st.lists(st.tuples(st.sampled_from(["a", "b", "c", 1, 2.0, (1, "x"), None]),
                                        st.integers(-5, 5)), max_size=30), min_size=1, max_size=4),
       reducer=st.sampled_from(sorted(REDUCERS)), n=st.integers(1, 4), data=st.data())
def test_reduce_side_merge_of_tables_lists_and_frames_is_the_fold_of_every_pair(maps, reducer, n, data):
    # Each map task's buckets in whatever form an executor hands them over: the map table's own parts
    # (kept on the reduce task's worker), lists, or frames from another worker. Every form merges to the
    # fold of all the map outputs' pairs, map after map, as one dict loop would.
    func = REDUCERS[reducer]
    agg = Aggregator.from_reducer(func)
    task = MapSideTask(None, agg, n, portable_hash)
    outputs = [task(0, list(records)) for records in maps]
    assert all(isinstance(o, TableSplit) for o in outputs)
    forms = [data.draw(st.lists(st.sampled_from(["table", "list", "frame"]), min_size=n, max_size=n))
             for _ in outputs]
    handed, raws = [], []
    for out, form in zip(outputs, forms):
        frame_ids = [j for j in range(n) if form[j] == "frame"]
        split = out.split(frames=frame_ids)
        raws.append({j: split[j].getvalue() for j in frame_ids})
        handed.append([frames.FrameReader(split[j].getvalue()) if form[j] == "frame" else
                       split[j].items() if form[j] == "list" else split[j] for j in range(n)])
    for j in range(n):
        want: dict = {}
        for records in maps:
            combined: dict = {}
            for k, v in records:
                if portable_hash(k) % n == j:
                    combined[k] = func(combined[k], v) if k in combined else v
            for k, v in combined.items():
                want[k] = func(want[k], v) if k in want else v
        tables = [h[j] for h in handed if type(h[j]) is AggTable]
        before = [t.items() for t in tables]
        got = merge_buckets(agg, [h[j] for h in handed])
        assert type(got) is list and got == list(want.items())
        # For a next step that reads it as it goes: the same pairs, each made when it is reached.
        lazy = merge_buckets(agg, [frames.FrameReader(raw[j]) if j in raw else h[j]
                                   for h, raw in zip(handed, raws)], lazy=True)
        assert not isinstance(lazy, list) and list(lazy) == got
        # A map task's table is read, never changed: a reduce task that runs again merges it again.
        assert [t.items() for t in tables] == before
        assert list(merge_buckets(agg, [h[j] for h in handed if type(h[j]) is AggTable])) == \
            list(merge_buckets(agg, [t.items() for t in tables]))


def test_a_single_table_bucket_is_the_partition_and_a_combiner_table_merges_by_its_pairs():
    agg = Aggregator.from_reducer(operator.add)
    (only,) = MapSideTask(None, agg, 1, portable_hash)(0, PAIRS)
    assert type(only) is AggTable
    assert merge_buckets(agg, [only]) == only.items()
    # combineByKey's map table folds with other functions than its merge: merged through its pairs.
    comb = Aggregator(lambda v: [v], lambda c, v: c + [v], operator.add)
    tables = [MapSideTask(None, comb, 1, portable_hash)(0, half)[0] for half in (PAIRS[:10], PAIRS[5:15])]
    assert not comb.merge_table().can_merge(tables[0])
    want: dict = {}
    for k, v in PAIRS[:10] + PAIRS[5:15]:
        want.setdefault(k, []).append(v)
    assert sorted(merge_buckets(comb, tables), key=repr) == sorted(want.items(), key=repr)


# -- Partitioner: an RDD that says where its keys are ---------------------------------------------------------

from pystream.rdd import Partitioner, ResultIterable  # noqa: E402

KEYS = ["a", "b", "zz", "é", 0, 1, -7, 2**40, 1.5, None, ("t", 1), True]


def test_partitioner_equality_and_placement():
    p = Partitioner(4, portable_hash)
    assert p == Partitioner(4, portable_hash) and hash(p) == hash(Partitioner(4, portable_hash))
    assert p != Partitioner(3, portable_hash)
    assert p != Partitioner(4, lambda k: portable_hash(k))  # another function: not known to place keys alike
    assert p != (4, portable_hash) and p is not None
    assert [p(k) for k in KEYS] == [portable_hash(k) % 4 for k in KEYS]
    assert repr(p) == "Partitioner(4, portable_hash)"


def _placed_as_said(rdd) -> bool:
    """Whether every record of partition i of ``rdd`` has a key its partitioner puts in partition i."""
    part = rdd.partitioner
    return all(part(kv[0]) == i for i, records in enumerate(rdd.glom().collect()) for kv in records)


PAIRS = [(KEYS[i % len(KEYS)], i) for i in range(600)]
WORDS = [f"w{i % 97}" for i in range(3000)]

PARTITIONED = {
    "partitionBy": lambda sc: sc.parallelize(PAIRS, 3).partitionBy(4),
    "partitionBy of driver lists": lambda sc: sc.parallelize(PAIRS, 3).partitionBy(5),
    "reduceByKey(add)": lambda sc: sc.parallelize(PAIRS, 3).reduceByKey(operator.add, 4),
    "reduceByKey(lambda)": lambda sc: sc.parallelize(PAIRS, 3).reduceByKey(lambda a, b: a * 2 + b, 3),
    "word count in C": lambda sc: sc.parallelize(WORDS, 3).map(lambda w: (w, 1)).reduceByKey(operator.add, 4),
    "groupByKey": lambda sc: sc.parallelize(PAIRS, 3).groupByKey(4),
    "combineByKey": lambda sc: sc.parallelize(PAIRS, 2).combineByKey(
        lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b, 3),
    "join": lambda sc: sc.parallelize(PAIRS, 2).join(sc.parallelize(PAIRS[:50], 3), 4),
    "cogroup": lambda sc: sc.parallelize(PAIRS, 2).cogroup(sc.parallelize(PAIRS[:50], 3), 4),
    "mapValues after": lambda sc: sc.parallelize(PAIRS, 3).reduceByKey(operator.add, 4).mapValues(str),
    "filter after": lambda sc: sc.parallelize(PAIRS, 3).groupByKey(4).filter(lambda kv: len(kv[1]) > 40),
}


@pytest.mark.parametrize("make", PARTITIONED.values(), ids=PARTITIONED.keys())
def test_every_partitioned_rdd_holds_its_keys_where_its_partitioner_says(sc, make):
    rdd = make(sc)
    assert isinstance(rdd.partitioner, Partitioner)
    assert rdd.partitioner.numPartitions == rdd.getNumPartitions()
    assert _placed_as_said(rdd)


def test_which_transformations_keep_the_partitioner(sc):
    r = sc.parallelize(PAIRS, 3).reduceByKey(operator.add, 4)
    p = Partitioner(4, portable_hash)
    assert sc.parallelize(PAIRS, 3).partitioner is None
    assert r.partitioner == p
    for kept in (r.mapValues(str), r.flatMapValues(lambda v: [v, v]), r.filter(bool),
                 r.map(lambda kv: kv, preservesPartitioning=True), r.mapPartitions(iter, True), r.sample(False, 0.5, 1),
                 r.join(r), r.leftOuterJoin(r), r.cogroup(r)):
        assert kept.partitioner == p
    for lost in (r.map(lambda kv: kv), r.flatMap(lambda kv: [kv]), r.keys(), r.mapPartitions(iter), r.glom(),
                 r.repartition(4), r.sortByKey(), r.coalesce(2)):
        assert lost.partitioner is None
    def first(k):
        return 0

    custom = r.partitionBy(4, first)
    assert custom.partitioner == Partitioner(4, first) and custom.partitioner != p
    assert custom.partitionBy(4, first) is custom


def test_partitioned_rdds_skip_the_shuffle_and_give_the_same_answers(sc, stages):
    base = sc.parallelize(PAIRS, 3)
    r = base.reduceByKey(operator.add, 4).persist()
    r.count()
    stages.clear()
    assert r.partitionBy(4) is r
    assert r.partitionBy(3) is not r and r.partitionBy(4, lambda k: 0) is not r
    doubled = r.mapValues(lambda v: 2 * v)
    summed = doubled.reduceByKey(operator.add, 4)
    grouped = doubled.groupByKey(4)
    folded = doubled.foldByKey(0, operator.add, 4)
    joined = r.join(doubled)
    got = (dict(summed.collect()), {k: list(v) for k, v in grouped.collect()}, dict(folded.collect()),
           dict(joined.collect()))
    assert "shuffle-map" not in stages and "shuffle-reduce" not in stages
    assert all(type(v) is ResultIterable for _, v in grouped.collect())
    expect: dict = {}
    for k, v in PAIRS:
        expect[k] = expect.get(k, 0) + v
    assert got == ({k: 2 * v for k, v in expect.items()}, {k: [2 * v] for k, v in expect.items()},
                   {k: 2 * v for k, v in expect.items()}, {k: (v, 2 * v) for k, v in expect.items()})
    # Another partition count, or another function: a shuffle, as before.
    stages.clear()
    assert dict(doubled.reduceByKey(operator.add, 3).collect()) == got[0]
    assert "shuffle-map" in stages
    r.unpersist()


def test_union_of_alike_partitioned_rdds_keeps_partitions_side_by_side(sc, stages):
    r = sc.parallelize(PAIRS, 3).reduceByKey(operator.add, 4).persist()
    s = sc.parallelize(PAIRS[:100], 2).reduceByKey(operator.add, 4).persist()
    u = r.union(s.mapValues(lambda v: -v))
    assert u.getNumPartitions() == 4 and u.partitioner == r.partitioner
    assert _placed_as_said(u)
    assert sorted(map(repr, u.collect())) == sorted(map(repr, r.collect() + [(k, -v) for k, v in s.collect()]))
    three = sc.union([r, s, r])
    assert three.getNumPartitions() == 4 and three.partitioner == r.partitioner
    stages.clear()
    merged = dict(three.reduceByKey(operator.add, 4).collect())
    assert "shuffle-map" not in stages
    rd, sd = dict(r.collect()), dict(s.collect())
    assert merged == {k: 2 * rd.get(k, 0) + sd.get(k, 0) for k in set(rd) | set(sd)}
    # Partitioned differently, or not at all: the partitions of one, then the other's.
    other = r.union(sc.parallelize(PAIRS, 3).reduceByKey(operator.add, 3))
    assert other.getNumPartitions() == 7 and other.partitioner is None
    plain = r.union(sc.parallelize(PAIRS, 2))
    assert plain.getNumPartitions() == 6 and plain.partitioner is None
    r.unpersist()
    s.unpersist()


def test_a_join_keeps_the_partitioner_one_side_has_and_shuffles_only_the_other(sc, stages):
    def by_parity(k):
        return k % 2

    table = sc.parallelize([(k, f"v{k}") for k in range(200)], 2).partitionBy(5, by_parity).persist()
    table.count()
    batch = sc.parallelize([(k % 250, k) for k in range(1000)], 3)
    stages.clear()
    joined = table.join(batch)  # the kept side is the left one here: no broadcast join
    assert joined.partitioner == table.partitioner and joined.getNumPartitions() == 5
    got = joined.collect()
    assert stages.count("shuffle-map") == 1  # the batch only
    assert sorted(got) == sorted((k % 250, (f"v{k % 250}", k)) for k in range(1000) if k % 250 < 200)
    assert _placed_as_said(joined)
    # With a partition count asked for, both sides go to it, as before.
    stages.clear()
    assert sorted(table.join(batch, 3).collect()) == sorted(got)
    assert stages.count("shuffle-map") == 2
    table.unpersist()
