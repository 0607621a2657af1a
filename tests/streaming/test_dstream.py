"""DStream operators, run through the manual-clock harness on every executor."""

import operator
import os
import sys

import pytest

from pystream.errors import IllegalArgumentError
from pystream.rdd import ResultIterable
from pystream.testing import advance, collect, run_stream


def sorted_batches(batches):
    return [sorted(b, key=repr) for b in batches]


INPUT = [[1, 2, 3], [4, 5], [], [6]]


def test_map_filter_flatmap(sc):
    assert run_stream(sc, INPUT, lambda s: s.map(lambda x: x * 10)) == [[10, 20, 30], [40, 50], [], [60]]
    assert run_stream(sc, INPUT, lambda s: s.filter(lambda x: x % 2)) == [[1, 3], [5], [], []]
    assert run_stream(sc, INPUT, lambda s: s.flatMap(lambda x: [x] * x)) == [
        [1, 2, 2, 3, 3, 3], [4] * 4 + [5] * 5, [], [6] * 6]


def test_map_partitions_and_glom(sc):
    def build(s):
        return s.repartition(2).mapPartitionsWithIndex(lambda i, it: [(i, sum(it))])

    out = run_stream(sc, [[1, 2, 3, 4]], build)
    assert sorted(i for i, _ in out[0]) == [0, 1] and sum(v for _, v in out[0]) == 10
    assert run_stream(sc, [[1, 2, 3]], lambda s: s.mapPartitions(lambda it: [sum(it)])) == [[6]]
    glommed = run_stream(sc, [[1, 2, 3]], lambda s: s.glom())
    assert glommed == [[[1, 2, 3]]]


def test_count_and_reduce(sc):
    # pyspark: an empty batch (with partitions) counts [0]; reduce of an empty batch gives nothing.
    assert run_stream(sc, INPUT, lambda s: s.count()) == [[3], [2], [0], [1]]
    assert run_stream(sc, INPUT, lambda s: s.reduce(operator.add)) == [[6], [9], [], [6]]


def test_count_after_queue_runs_dry_and_empty_rdd(sc):
    assert run_stream(sc, [[1]], lambda s: s.count(), num_batches=3) == [[1], [0], [0]]
    from pystream.testing import manual_context

    ssc = manual_context(sc)
    out = collect(ssc.queueStream([sc.emptyRDD()]).count())
    ssc.start()
    try:
        advance(ssc, 1)
    finally:
        ssc.stop(False)
    assert out.batches == [[]]


def test_count_by_value_and_reduce_by_key(sc):
    words = [["a", "b", "a"], ["c"], ["a", "a", "a"]]
    assert sorted_batches(run_stream(sc, words, lambda s: s.countByValue())) == [
        [("a", 2), ("b", 1)], [("c", 1)], [("a", 3)]]
    pairs = [[("a", 1), ("b", 2), ("a", 3)], [("b", 5)]]
    for func in (operator.add, lambda a, b: a + b, max):
        got = sorted_batches(run_stream(sc, pairs, lambda s: s.reduceByKey(func)))
        exp = [sorted({"a": func(1, 3), "b": 2}.items()), [("b", 5)]]
        assert got == exp
    got = run_stream(sc, pairs, lambda s: s.reduceByKey(operator.add, 3).glom().map(len))
    assert len(got[0]) == 3


def test_combine_group_partition(sc):
    pairs = [[("a", 1), ("b", 2), ("a", 3)]]
    combined = run_stream(sc, pairs, lambda s: s.combineByKey(lambda v: [v], lambda c, v: c + [v],
                                                               lambda a, b: a + b))
    assert sorted((k, sorted(v)) for k, v in combined[0]) == [("a", [1, 3]), ("b", [2])]
    grouped = run_stream(sc, pairs, lambda s: s.groupByKey())
    assert all(isinstance(v, ResultIterable) for _, v in grouped[0])
    assert sorted((k, sorted(v)) for k, v in grouped[0]) == [("a", [1, 3]), ("b", [2])]
    parts = run_stream(sc, pairs, lambda s: s.partitionBy(4).glom().map(len))
    assert len(parts[0]) == 4 and sum(parts[0]) == 3
    assert run_stream(sc, pairs, lambda s: s.mapValues(lambda v: v * 2).filter(lambda kv: kv[0] == "a")) == [
        [("a", 2), ("a", 6)]]
    assert run_stream(sc, [[("a", "xy")]], lambda s: s.flatMapValues(list)) == [[("a", "x"), ("a", "y")]]


def test_transform_one_and_two_arguments(sc):
    seen = []

    def with_time(t, rdd):
        seen.append(t)
        return rdd.map(lambda x: x + 1)

    assert run_stream(sc, [[1], [2]], lambda s: s.transform(lambda rdd: rdd.map(lambda x: -x))) == [[-1], [-2]]
    assert run_stream(sc, [[1], [2]], lambda s: s.transform(with_time)) == [[2], [3]]
    import datetime

    assert len(seen) == 2 and all(isinstance(t, datetime.datetime) for t in seen)
    assert (seen[1] - seen[0]).total_seconds() == pytest.approx(0.5)
    with pytest.raises(Exception, match="must return an RDD"):
        run_stream(sc, [[1]], lambda s: s.transform(lambda rdd: [1]))


def test_a_transform_function_of_the_wrong_arity_fails_where_the_stream_is_defined(ssc):
    s = ssc.queueStream([[1]])
    with pytest.raises(IllegalArgumentError, match="func should take 1 or 2 arguments .* not 3"):
        s.transform(lambda t, a, b: a)
    with pytest.raises(IllegalArgumentError, match="func should take 2 or 3 arguments .* not 1"):
        s.transformWith(lambda a: a, s)
    with pytest.raises(IllegalArgumentError, match="func should take 1 or 2 arguments"):
        s.foreachRDD(lambda: None)
    with pytest.raises(TypeError):
        s.foreachRDD(None)
    s.foreachRDD(lambda *args: None)  # anything goes with *args (it gets the time too)


def _two_streams(sc, left, right, op, n=None):
    from pystream.testing import manual_context

    ssc = manual_context(sc)
    a = ssc.queueStream([sc.parallelize(b, 1) for b in left])
    b = ssc.queueStream([sc.parallelize(b, 1) for b in right])
    out = collect(op(a, b), sort=True)
    ssc.start()
    try:
        advance(ssc, n or len(left))
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(False)
    return out.batches


def test_joins_and_union(sc):
    left = [[("a", 1), ("b", 2), ("a", 3)], [("c", 1)]]
    right = [[("a", "x"), ("d", "y")], [("c", "z"), ("c", "w")]]
    assert _two_streams(sc, left, right, lambda a, b: a.join(b)) == [
        [("a", (1, "x")), ("a", (3, "x"))], [("c", (1, "w")), ("c", (1, "z"))]]
    assert _two_streams(sc, left, right, lambda a, b: a.leftOuterJoin(b))[0] == [
        ("a", (1, "x")), ("a", (3, "x")), ("b", (2, None))]
    assert _two_streams(sc, left, right, lambda a, b: a.rightOuterJoin(b))[0] == [
        ("a", (1, "x")), ("a", (3, "x")), ("d", (None, "y"))]
    assert _two_streams(sc, left, right, lambda a, b: a.fullOuterJoin(b))[0] == [
        ("a", (1, "x")), ("a", (3, "x")), ("b", (2, None)), ("d", (None, "y"))]
    cg = _two_streams(sc, left, right, lambda a, b: a.cogroup(b))[0]
    assert sorted((k, sorted(v), sorted(w)) for k, (v, w) in cg) == [
        ("a", [1, 3], ["x"]), ("b", [2], []), ("d", [], ["y"])]
    assert _two_streams(sc, [[1, 2]], [[3]], lambda a, b: a.union(b)) == [[1, 2, 3]]
    assert _two_streams(sc, [[1]], [[2]], lambda a, b: a.transformWith(lambda x, y: x.cartesian(y), b)) == [
        [(1, 2)]]


def test_union_needs_same_slide(ssc):
    a = ssc.queueStream([[1]])
    with pytest.raises(ValueError, match="the two DStream should have same slide duration"):
        a.union(a.window(1.0, 1.0))
    with pytest.raises(ValueError, match="should have at least one DStream"):
        ssc.union()
    with pytest.raises(ValueError, match="All DStreams should have same slide duration"):
        ssc.union(a, a.window(1.0, 1.0))


def test_context_union_and_transform(sc):
    from pystream.testing import manual_context

    ssc = manual_context(sc)
    a = ssc.queueStream([[1, 2]])
    b = ssc.queueStream([[3]])
    c = ssc.queueStream([[4]])
    u = collect(ssc.union(a, b, c), sort=True)
    t = collect(ssc.transform([a, b], lambda rdds: rdds[0].union(rdds[1]).map(lambda x: x * 2)), sort=True)
    # As pyspark's: a tuple of the RDDs, never the time, whatever the function's arguments.
    kinds = []

    def with_default(rdds, factor=10):
        kinds.append(type(rdds).__name__)
        return rdds[0].map(lambda x: x * factor)

    d = collect(ssc.transform([a, c], with_default), sort=True)
    ssc.start()
    try:
        advance(ssc, 1)
    finally:
        ssc.stop(False)
    assert u.batches == [[1, 2, 3, 4]]
    assert t.batches == [[2, 4, 6]]
    assert d.batches == [[10, 20]] and kinds == ["tuple"]


def test_foreachrdd_one_and_two_args_and_order(sc):
    from pystream.testing import manual_context

    ssc = manual_context(sc)
    stream = ssc.queueStream([[1], [2]])
    calls = []
    stream.foreachRDD(lambda rdd: calls.append(("one", rdd.collect())))
    stream.foreachRDD(lambda t, rdd: calls.append(("two", rdd.collect(), t.microsecond % 500000)))
    ssc.start()
    try:
        advance(ssc, 2)
    finally:
        ssc.stop(False)
    assert calls == [("one", [1]), ("two", [1], 0), ("one", [2]), ("two", [2], 0)]


def test_pprint_format(sc, capsys):
    from pystream.testing import manual_context

    ssc = manual_context(sc)
    ssc.queueStream([list(range(12)), [1]]).pprint()
    ssc.queueStream([["x"]]).pprint(num=1)
    ssc.start()
    try:
        advance(ssc, 2)
    finally:
        ssc.stop(False)
    out = capsys.readouterr().out
    blocks = out.split("-------------------------------------------\nTime: ")
    assert len(blocks) == 5  # text before the first header, then 2 outputs x 2 batches
    first = blocks[1].split("\n")
    assert first[1] == "-------------------------------------------"
    assert first[2:12] == [str(i) for i in range(10)]
    assert first[12:14] == ["...", ""]
    import datetime

    datetime.datetime.fromisoformat(first[0])  # "Time: <datetime>" as str(datetime)
    assert blocks[2].split("\n")[2:4] == ["x", ""]


def test_save_as_text_files(sc, tmp_path):
    from pystream.testing import manual_context

    ssc = manual_context(sc)
    ssc.queueStream([[1, 2], [3]]).saveAsTextFiles(str(tmp_path / "out"), "txt")
    # pyspark's rddToFileName: only a None suffix is left out (an empty one leaves the dot).
    ssc.queueStream([[1]]).saveAsTextFiles(str(tmp_path / "empty" / "out"), "")
    ssc.start()
    try:
        advance(ssc, 2)
    finally:
        ssc.stop(False)
    assert sorted(os.listdir(tmp_path / "empty")) == ["out-1000.", "out-500."]
    dirs = sorted(d for d in os.listdir(tmp_path) if d != "empty")
    assert dirs == ["out-1000.txt", "out-500.txt"]
    content = {}
    for d in dirs:
        files = sorted(os.listdir(tmp_path / d))
        parts = [f for f in files if f != "_SUCCESS"]
        assert "_SUCCESS" in files and parts and all(f.startswith("part-") for f in parts)
        content[d] = sorted(line for f in parts for line in (tmp_path / d / f).read_text().splitlines())
    assert content == {"out-500.txt": ["1", "2"], "out-1000.txt": ["3"]}


def test_save_as_text_files_rerun_does_not_duplicate(sc, tmp_path):
    from pystream.lineage import ParallelCollectionRDD
    from pystream.output import write_text_dir

    path = tmp_path / "out-500"
    rdd = ParallelCollectionRDD(sc, [[1], [2]])
    assert write_text_dir(str(path), rdd._run(lambda _, it: [str(x) for x in it]), if_exists="skip")
    assert not write_text_dir(str(path), [["9"]], if_exists="skip")  # complete output stands
    assert sorted(os.listdir(path)) == ["_SUCCESS", "part-00000", "part-00001"]
    os.remove(path / "_SUCCESS")  # an incomplete directory from a crash is replaced
    assert write_text_dir(str(path), [["9"]], if_exists="skip")
    assert (path / "part-00000").read_text() == "9\n" and not (path / "part-00001").exists()
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_slice_and_remember(sc):
    from pystream.testing import manual_context

    ssc = manual_context(sc)
    stream = ssc.queueStream([[1], [2], [3], [4]])
    collect(stream)
    ssc.remember(10)
    ssc.start()
    try:
        advance(ssc, 4)
        got = [r.collect() for r in stream.slice(0.5, 1.5)]
        assert got == [[1], [2], [3]]
        assert [r.collect() for r in stream.slice(0.7, 1.2)] == [[1], [2]]  # aligned down to batch times
    finally:
        ssc.stop(False)


def test_cache_and_persist_compute_once(sc, tmp_path):
    from pystream.testing import manual_context

    marker = tmp_path / "calls"

    def tracked(x):
        with open(marker, "a") as fh:
            fh.write("x")
        return x

    ssc = manual_context(sc)
    mapped = ssc.queueStream([[1, 2]]).map(tracked).cache()
    a = collect(mapped)
    b = collect(mapped.map(lambda x: x + 1))
    ssc.start()
    try:
        advance(ssc, 1)
    finally:
        ssc.stop(False)
    assert a.batches == [[1, 2]] and b.batches == [[2, 3]]
    assert marker.read_text() == "xx"


def _exit_on_7(x):
    if x == 7:
        sys.exit(3)
    return x


@pytest.mark.parametrize("where", ["task", "foreachRDD", "transform"])
def test_sys_exit_in_a_batch_fails_that_batch_and_the_stream_goes_on(sc, where):
    # As pyspark: the batch's job fails with the error; the job thread lives on (it used to die, and every
    # later batch waited for ever).
    from pystream.errors import StreamingJobError
    from pystream.testing import manual_context

    ssc = manual_context(sc)
    stream = ssc.queueStream([[1, 2], [7, 8], [3]])
    seen = []
    if where == "task":
        stream.map(_exit_on_7).foreachRDD(lambda rdd: seen.append(sorted(rdd.collect())))
    elif where == "transform":
        stream.transform(lambda rdd: rdd.map(_exit_on_7) if 7 in rdd.collect() and sys.exit(4) is None else rdd
                         ).foreachRDD(lambda rdd: seen.append(sorted(rdd.collect())))
    else:
        stream.foreachRDD(lambda rdd: seen.append([_exit_on_7(x) for x in sorted(rdd.collect())]))
    ssc.start()
    try:
        advance(ssc, 2)
        with pytest.raises(StreamingJobError, match="SystemExit"):
            ssc.awaitTerminationOrTimeout(0)
        advance(ssc, 1)  # the next batch runs
    finally:
        ssc.stop(False)
    assert seen == [[1, 2], [3]]


def test_sys_exit_in_a_task_fails_its_job_not_the_driver_or_the_worker(sc):
    from pystream.errors import TaskFailedError

    pids = list(getattr(sc.executor, "worker_pids", []))
    with pytest.raises(TaskFailedError, match="SystemExit: 3"):
        sc.parallelize([1, 7], 2).map(_exit_on_7).collect()
    assert list(getattr(sc.executor, "worker_pids", [])) == pids  # no worker ended (and lost what it kept)
    assert sc.parallelize([1, 2], 2).sum() == 3
