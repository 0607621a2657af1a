"""The process executor: shared memory, worker lifetime, affinity, retries, cleanup after any end."""

import contextlib
import gc
import operator
import os
import signal
import subprocess
import sys
import textwrap
import time
import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream import BarrierTaskContext, SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY
from pystream.errors import StateLostError, TaskFailedError
from pystream.executor.inprocess import InProcessExecutor
from pystream.executor.process import BlockRef, ProcessExecutor
from pystream.testing import advance, collect, manual_context


def shm_of(pid):
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(f"ps_{pid}_"))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the open and the read: ESRCH
        return False


def wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(scope="module")
def psc():
    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "process")
    sc = SparkContext("local[2]", "process-tests", conf)
    yield sc
    sc.stop()


def test_default_for_local_n_is_the_process_pool():
    sc = SparkContext("local[2]", "default-executor", SparkConf(loadDefaults=False))
    try:
        assert isinstance(sc.executor, ProcessExecutor) and len(sc.executor.worker_pids) == 2
    finally:
        sc.stop()
    sc = SparkContext("local[1]", "debug", SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "inprocess"))
    try:
        assert isinstance(sc.executor, InProcessExecutor)
    finally:
        sc.stop()


def test_workers_and_segments_gone_after_stop():
    sc = SparkContext("local[2]", "stop", SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "process"))
    pids = sc.executor.worker_pids
    assert len(pids) == 2 and all(alive(p) for p in pids)
    assert sc.parallelize(range(10_000), 4).map(lambda x: (x % 7, x)).reduceByKey(lambda a, b: a + b).count() == 7
    sc.stop()
    assert not any(alive(p) for p in pids)
    assert shm_of(os.getpid()) == []


def test_large_inputs_travel_as_frames_and_come_back_equal(psc):
    data = [(f"k{i % 1000}", i, float(i), None, b"x" * (i % 5)) for i in range(50_000)]
    assert psc.parallelize(data, 3).collect() == data
    # Only the driver's idle input segments stay, for the next inputs (every other segment is gone).
    assert all("_dp_" in n for n in shm_of(os.getpid()))


def test_driver_partitioning_encodes_straight_into_input_segments(psc, monkeypatch):
    # partitionBy of records the driver holds: split and encoded in one pass into the input arena, no map
    # stage; each segment goes back to the arena when its partition is dropped.
    stages = []
    run = psc.executor.run_tasks
    monkeypatch.setattr(psc.executor, "run_tasks",
                        lambda fn, inputs, **kw: stages.append(kw.get("stage")) or run(fn, inputs, **kw))
    data = [(i % 1_000, float(i)) for i in range(60_000)]
    expected = psc.parallelize(data, 3).map(lambda kv: kv).partitionBy(2).glom().collect()
    assert "shuffle-map" in stages
    stages.clear()
    split = psc.parallelize(data, 3).partitionBy(2).cache()
    assert split.glom().collect() == expected
    assert stages == ["action"]
    parts = split._cached
    assert [type(p).__name__ for p in parts] == ["PooledFrame", "PooledFrame"]
    assert [len(p) for p in parts] == [len(p) for p in expected]
    held = {p.lease.name for p in parts}
    assert held <= set(shm_of(os.getpid()))
    arena = psc.executor._arena
    assert not held & {seg.name for seg in arena._free}  # in use: not handed out again
    del parts
    split.unpersist()
    del split
    gc.collect()
    present = set(shm_of(os.getpid()))
    assert all(name in {seg.name for seg in arena._free} or name not in present for name in held)


def test_parallelized_partitions_are_encoded_once_and_kept_as_frames(psc):
    data = [(f"k{i % 100}", i) for i in range(30_000)]
    rdd = psc.parallelize(data, 3).map(lambda kv: kv[1])
    src = rdd._prev
    assert all(type(p) is list for p in src._parts)  # nothing encoded before tasks need it
    assert rdd.sum() == sum(range(30_000))
    held = src._parts
    assert [type(p).__name__ for p in held] == ["PooledFrame"] * 3 and sum(map(len, held)) == 30_000
    names = {p.lease.name for p in held}
    assert rdd.count() == 30_000 and src._parts is held  # later jobs read the same frames
    arena = psc.executor._arena
    assert not names & {seg.name for seg in arena._free}
    del rdd, src, held
    gc.collect()
    # Dropping the RDD gives its segments back to the arena (or unlinks them).
    present = set(shm_of(os.getpid()))
    assert all(name in {seg.name for seg in arena._free} or name not in present for name in names)
    small = psc.parallelize(list(range(10)), 2)
    assert small.sum() == 45 and all(type(p) is list for p in small._parts)  # small ones travel inline
    big = psc.parallelize(list(range(40_000)), 4)
    assert big.first() == 0  # only what take() reads is encoded
    assert [type(p).__name__ for p in big._parts] == ["PooledFrame", "list", "list", "list"]
    assert big.take(5) == [0, 1, 2, 3, 4] and type(big._parts[1]) is list
    assert big.count() == 40_000 and all(type(p).__name__ == "PooledFrame" for p in big._parts)


class _Probe:
    """A record that, when pickled into a frame, notes which records of the first partition are still alive."""

    first: list = []
    seen: list = []

    def __init__(self, i):
        self.i = i

    def __reduce__(self):
        if self.i == 100:  # the first record of the second partition
            _Probe.seen.append(sum(r() is not None for r in _Probe.first))
        return (_Probe, (self.i,))


def test_each_parallelized_partition_is_dropped_once_its_frame_is_written(psc):
    # The driver must not hold a whole batch as objects and as frames at once: the first partition's
    # objects are gone by the time the second partition is encoded.
    data = [_Probe(i) for i in range(200)]
    rdd = psc.parallelize(data, 2)
    del data
    # parallelize copied the records (they can change): the RDD's copies are those that must go.
    _Probe.first, _Probe.seen = [weakref.ref(r) for r in rdd._parts[0]], []
    assert rdd.map(lambda r: r.i).sum() == sum(range(200))
    assert _Probe.seen == [0]
    assert [type(p).__name__ for p in rdd._parts] == ["PooledFrame"] * 2


class _Gate:
    """A record whose pickling (as the second partition is encoded) waits for the first task to start."""

    path: str | None = None
    saw: bool | None = None

    def __init__(self, i):
        self.i = i

    def __reduce__(self):
        if self.i == 100 and _Gate.path is not None:
            deadline = time.monotonic() + 10
            while not os.path.exists(_Gate.path) and time.monotonic() < deadline:
                time.sleep(0.002)
            _Gate.saw = os.path.exists(_Gate.path)
        return (_Gate, (self.i,))


def test_the_first_task_runs_while_the_next_partition_is_encoded(psc, tmp_path):
    # A stage's tasks are sent as their inputs are read: partition 0's task is at work before partition 1
    # of the same driver-held collection has been encoded, not after every partition was.
    started = str(tmp_path / "first-task-started")

    def note_start(i, it):
        if i == 0:
            open(started, "w").close()
        return [sum(r.i for r in it)]

    _Gate.path, _Gate.saw = started, None
    try:
        rdd = psc.parallelize([_Gate(i) for i in range(200)], 2)
        assert rdd.mapPartitionsWithIndex(note_start).collect() == [sum(range(100)), sum(range(100, 200))]
    finally:
        _Gate.path = None
    assert _Gate.saw is True


def mapped_segments(pid):
    with open(f"/proc/{pid}/maps") as fh:
        return {line.split("/dev/shm/")[1].strip() for line in fh if "/dev/shm/ps_" in line}


def test_input_segments_are_reused_then_retired_everywhere(psc):
    pids = psc.executor.worker_pids
    data = [f"line {i:05d} " * 8 for i in range(40_960)]  # partitions of equal size, in either order
    assert psc.parallelize(data, 2).map(len).sum() == sum(map(len, data))
    first = shm_of(os.getpid())
    assert 2 <= len(first) and all("_dp_" in n for n in first)
    # Each worker keeps its mapping of the input segments it read.
    assert all(mapped_segments(p) & set(first) for p in pids)
    assert psc.parallelize(data[::-1], 2).map(len).sum() == sum(map(len, data))
    assert shm_of(os.getpid()) == first  # written again into the same segments, none new

    arena = psc.executor._arena
    arena._max_free = 1
    try:
        assert psc.parallelize(data, 2).count() == len(data)  # releasing the leases retires all but one
        kept = shm_of(os.getpid())
        assert len(kept) == 1
        # The next run tells the workers to forget them, behind its tasks; a worker has done so by the time it
        # runs a later task.
        assert psc.parallelize(range(10), 2).count() == 10
        assert psc.parallelize(range(10), 2).count() == 10
        assert all(mapped_segments(p) <= set(kept) for p in pids)
    finally:
        arena._max_free = 6


def test_a_streaming_task_reads_its_input_a_chunk_at_a_time_and_no_reader_outlives_it(psc):
    class SumsAsItGoes:  # local, so it reaches the workers by value
        streams_input = True

        def __call__(self, split, records):
            return [(type(records).__name__, sum(v for _, v in records))]

    data = [(f"k{i % 7}", i) for i in range(60_000)]
    halves = [data[:30_000], data[30_000:]]
    out = psc.executor.run_tasks(SumsAsItGoes(), halves, stage="test")
    assert out == [[("FrameReader", sum(v for _, v in h))] for h in halves]
    # Not streamed in the driver: the same task gets the lists themselves.
    assert SumsAsItGoes()(0, halves[0]) == [("list", sum(v for _, v in halves[0]))]

    # A reader must not work after its task, even if something kept it: the input arena reuses the memory.
    class KeepsTheReader:
        streams_input = True

        def __call__(self, split, records):
            import pystream.executor.worker as w

            w.LEAKED = records
            return [records.next_chunk(2)]

    class ReadsTheKeptReader:
        def __call__(self, split, records):
            import pystream.executor.worker as w

            try:
                w.LEAKED.next_chunk(2)
            except ValueError as exc:
                return [str(exc)]
            return ["still readable"]

    assert psc.executor.run_tasks(KeepsTheReader(), halves, stage="test") == [[h[:2]] for h in halves]
    assert psc.executor.run_tasks(ReadsTheKeptReader(), [[1], [2]], stage="test") == \
        [["this FrameReader is closed"]] * 2


def test_a_streaming_reduce_task_reads_other_workers_buckets_as_it_merges_them(psc, shm_names):
    from pystream.executor.wire import Buckets

    class SplitsInTwo:  # a map task: bucket j gets the records of key parity j
        def __call__(self, split, records):
            return [[r for r in records if r[0] % 2 == j] for j in range(2)]

    class TellsItsBuckets:
        streams_input = True

        def __call__(self, split, buckets):
            return [(type(b).__name__, sorted(b)) for b in buckets]

    data = [(i, split) for split in range(2) for i in range(5_000)]
    halves = [data[:5_000], data[5_000:]]
    maps = psc.executor.run_tasks(SplitsInTwo(), halves, stage="shuffle-map")
    inputs = [Buckets(m[j] for m in maps) for j in range(2)]
    out = psc.executor.run_tasks(TellsItsBuckets(), inputs, stage="test")
    for j in range(2):
        # Reduce task j runs on worker j: its own map task's bucket stayed there as a list; the other
        # worker's came through shared memory and is read as a frame, never decoded whole.
        assert [kind for kind, _ in out[j]] == ["list" if m == j else "FrameReader" for m in range(2)]
        assert [recs for _, recs in out[j]] == [sorted(r for r in h if r[0] % 2 == j) for h in halves]
    # The non-streaming path still decodes them, and equal.
    plain = psc.executor.run_tasks(lambda split, buckets: [sorted(b) for b in buckets], inputs, stage="test")
    assert plain == [[recs for _, recs in out[j]] for j in range(2)]
    del maps, inputs
    gc.collect()
    psc.executor.release()
    pid = os.getpid()
    deadline = time.monotonic() + 10
    while any(n.startswith(f"ps_{pid}_w") for n in shm_names()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [n for n in shm_names() if n.startswith(f"ps_{pid}_w")]  # every bucket segment unlinked


def test_a_map_tasks_table_bucket_read_on_another_worker_arrives_as_its_pairs(psc):
    # A map task keeps the buckets bound for its own worker as tables split off its aggregation table. Read
    # by a task on another worker (exported through shared memory), such a bucket is its (key, value) pairs.
    import operator

    from pystream import portable_hash
    from pystream._core.aggregation import AggTable
    from pystream.shuffle import Aggregator, MapSideTask

    records = [(f"k{i % 40}", i) for i in range(400)]
    maps = psc.executor.run_tasks(MapSideTask(None, Aggregator.from_reducer(operator.add), 2, portable_hash),
                                  [records, []], stage="shuffle-map")
    local = maps[0][0]
    assert isinstance(local, BlockRef) and local.worker == 0 and len(local) > 0
    table = AggTable(operator.add)
    table.update(records)
    want = [kv for kv in table.items() if portable_hash(kv[0]) % 2 == 0]
    assert len(local) == len(want)
    out = psc.executor.run_tasks(lambda split, b: (type(b).__name__, list(b.items()) if split == 0 else b),
                                 [local, local], stage="test")
    assert out == [("AggTable", want), ("list", want)]


def test_outputs_of_tasks_a_failed_stage_abandoned_are_freed(psc, shm_names):
    # Task 1 fails at once; task 0 goes on and ships its buckets (one in a segment, one kept on its worker)
    # after the stage has already raised. Its reply comes in during the next stage: nothing it made is left.
    def map_side(split, recs):
        if split == 1:
            raise ValueError("boom")
        time.sleep(0.3)
        return [[(f"k{i}", i) for i in range(500)], [(f"j{i}", i) for i in range(500)]]

    pid = os.getpid()
    psc.executor.release()
    with pytest.raises(ValueError, match="boom"):
        psc.executor.run_tasks(map_side, [[1], [2]], stage="shuffle-map")
    time.sleep(0.5)
    assert psc.executor.run_tasks(lambda split, recs: len(recs), [[1, 2], [3]], stage="test") == [2, 1]
    psc.executor.release()
    deadline = time.monotonic() + 10
    while any(n.startswith(f"ps_{pid}_w") for n in shm_names()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [n for n in shm_names() if n.startswith(f"ps_{pid}_w")]


def test_discarded_objects_are_freed_on_a_spare_core_or_after_the_next_run(psc):
    class Records(list):  # weakly referable
        pass

    ex = psc.executor
    ex.release()
    first = Records(range(1000))
    ref = weakref.ref(first)
    ex.discard(first)
    del first
    gc.collect()
    assert ref() is not None  # kept: freeing it now would delay the tasks that come next

    def uneven(split, recs):
        if split == 1:
            time.sleep(0.3)  # task 0 is done long before: a core is spare meanwhile
        return len(recs)

    assert ex.run_tasks(uneven, [[1], [2, 3]], stage="test") == [1, 2]
    assert ref() is None  # freed while task 1 still ran

    # Tasks that leave no core spare: freed at the end of the run after, at the latest.
    second = Records(range(10))
    ref = weakref.ref(second)
    ex.discard(second)
    del second
    ex.run_tasks(lambda split, recs: len(recs), [[1], [2]], stage="test")
    ex.run_tasks(lambda split, recs: len(recs), [[1], [2]], stage="test")
    assert ref() is None

    # With no tasks at all, a batch later at most.
    third = Records(range(10))
    ref = weakref.ref(third)
    ex.discard(third)
    del third
    ex.release()
    assert ref() is not None
    ex.release()
    assert ref() is None


class _Counted:
    freed = 0

    def __del__(self):
        _Counted.freed += 1


def test_an_idle_driver_frees_discarded_records_a_chunk_at_a_time_until_it_has_work(psc):
    from pystream.executor.release import _FREE_CHUNK

    ex = psc.executor
    ex.release()
    _Counted.freed = 0
    ex.discard([_Counted() for _ in range(3 * _FREE_CHUNK + 5)])
    looks = []

    def work_arrives():  # asked before every chunk: work arrives after two of them
        looks.append(None)
        return len(looks) > 2

    ex.tidy(work_arrives)
    assert _Counted.freed == 2 * _FREE_CHUNK  # from the list's end, the rest still queued
    ex.tidy(lambda: False)
    assert _Counted.freed == 3 * _FREE_CHUNK + 5

    # A stop() meanwhile ends the tidying at the next chunk (stop frees what is left, at once).
    ex.discard([_Counted() for _ in range(3 * _FREE_CHUNK)])
    before = _Counted.freed
    looks.clear()

    def stop_during(looks=looks):
        looks.append(None)
        ex._stopped = True  # what stop() sets first, before it waits for the executor's lock
        return False

    try:
        ex.tidy(stop_during)
    finally:
        ex._stopped = False
    assert _Counted.freed == before + _FREE_CHUNK and len(looks) == 1
    ex.tidy(lambda: False)
    assert _Counted.freed == before + 3 * _FREE_CHUNK

    # A list that something else still holds is let go whole, never emptied under its holder.
    held = [_Counted() for _ in range(2 * _FREE_CHUNK)]
    ex.discard(held)
    ex.tidy(lambda: False)
    assert len(held) == 2 * _FREE_CHUNK and _Counted.freed == 6 * _FREE_CHUNK + 5
    del held
    assert _Counted.freed == 8 * _FREE_CHUNK + 5


class _Noted:
    """An object that leaves a file behind when it is freed (in whichever process that happens)."""

    def __init__(self, path):
        self.path = path

    def __del__(self):
        open(self.path, "w").close()


def test_discarded_objects_wait_for_a_core_that_no_task_needs(psc, tmp_path, monkeypatch):
    # As many tasks as cores: the driver frees nothing while both run, and frees once one of them is done,
    # while the other still runs (freeing takes a core from a task: W1's second map task started 3 ms late).
    ex = psc.executor
    ex.release()
    monkeypatch.setattr(ex, "_cores", ex.parallelism)
    freed = str(tmp_path / "freed")
    ex.discard([_Noted(freed)])
    gc.collect()
    assert not os.path.exists(freed)

    def task(split, recs):
        if split == 1:
            return os.path.exists(freed)  # the other task still runs: nothing freed yet
        return wait_until(lambda: os.path.exists(freed), timeout=10)

    assert ex.run_tasks(task, [[0], [1]], stage="test") == [True, False]


def test_a_partition_a_worker_no_longer_keeps_is_freed_while_it_is_idle(psc, tmp_path):
    freed = str(tmp_path / "freed-in-worker")
    ex = psc.executor
    (kept,) = ex.run_tasks(lambda split, recs: [_Noted(freed)], [[0]], stage="test", keep=True)
    assert isinstance(kept, BlockRef)
    gc.collect()
    assert not os.path.exists(freed)
    del kept
    gc.collect()
    ex.release()  # sends the free; the worker drops the partition once nothing else is waiting for it
    assert wait_until(lambda: os.path.exists(freed))


def test_a_forgotten_batch_of_driver_records_is_freed_once_the_driver_is_idle(psc):
    # Batches partitioned on the driver (updateStateByKey's shuffle of a queueStream) keep their records as
    # driver objects; freeing them took 30 ms at the end of every W3 batch, before the next could start, and
    # 15 ms in the middle of the next batch on 2 workers. Between batches the driver has nothing else to do.
    ssc = manual_context(psc, 1.0)
    rdds = [psc.parallelize([(k % 50, 1) for k in range(2000 * i, 2000 * (i + 1))], 2) for i in range(4)]
    refs = [weakref.ref(r) for r in rdds]
    out = collect(ssc.queueStream(rdds).updateStateByKey(lambda vs, s: (s or 0) + sum(vs)))
    del rdds
    ssc.start()
    try:
        advance(ssc, 2)
        gc.collect()
        assert [sorted(o) for o in out.batches] == [[(k, 40 * i) for k in range(50)] for i in (1, 2)]
        # Batch 1 is forgotten at the end of batch 2 (inputs are remembered for one batch), and freed after it.
        assert wait_until(lambda: refs[0]() is None)
        assert refs[1]() is not None
        advance(ssc, 1)
        assert wait_until(lambda: refs[1]() is None)
        assert refs[2]() is not None
        advance(ssc, 1)
        assert sorted(out.batches[-1]) == [(k, 160) for k in range(50)]
    finally:
        ssc.stop(stopSparkContext=False)


def test_kept_partitions_stay_in_workers_and_are_freed(psc):
    rdd = psc.parallelize(range(1000), 4).map(lambda x: x * 2).cache()
    assert rdd.count() == 1000
    parts = rdd._cached
    assert all(isinstance(p, BlockRef) for p in parts)
    assert [p.worker for p in parts] == [0, 1, 0, 1]  # partition p on worker p mod W
    assert rdd.sum() == 999_000
    held = weakref.ref(parts[0])
    del parts
    rdd.unpersist()
    assert held() is None


def test_task_error_carries_the_worker_traceback(psc):
    with pytest.raises(ZeroDivisionError) as info:
        psc.parallelize([1, 0], 2).map(lambda x: 1 // x).collect()
    remote = str(info.value.__cause__)
    assert "worker.py" in remote
    # The lambda travelled by value; its frame still names this file and shows its line, as pyspark's do.
    assert f'File "{__file__}"' in remote and "map(lambda x: 1 // x)" in remote
    assert "<dynamic-code>" not in remote
    assert psc.parallelize([1, 2]).count() == 2  # the pool is still usable

    class Unpicklable(Exception):
        def __reduce__(self):
            raise TypeError("no")

    def boom(x):
        raise Unpicklable("custom")

    with pytest.raises(TaskFailedError, match="Unpicklable: custom"):
        psc.parallelize([1], 1).map(boom).collect()


def test_workers_partition_on_their_own_thread_only(psc):
    def threads(_):
        from pystream._core.partitioning import get_num_threads

        return [get_num_threads()]

    assert psc.parallelize(range(4), 4).mapPartitions(threads).collect() == [1, 1, 1, 1]


def test_functions_are_shipped_once_per_worker(psc):
    ssc = manual_context(psc)
    out = collect(ssc.queueStream([[("a", i)] for i in range(6)]).map(lambda kv: (kv[0], kv[1] + 1))
                  .reduceByKey(lambda a, b: a + b))
    ssc.start()
    try:
        advance(ssc, 2)
        known = [set(w.functions) for w in psc.executor._workers]
        advance(ssc, 4)
        assert [set(w.functions) for w in psc.executor._workers] == known
    finally:
        ssc.stop(False)
    assert out.batches[-1] == [("a", 6)]


def test_state_partitions_stay_on_their_worker(psc):
    ssc = manual_context(psc)
    state = ssc.queueStream([[(k, 1) for k in "abcdefgh"]] * 4).updateStateByKey(
        lambda vs, s: sum(vs) + (s or 0), numPartitions=4)
    out = collect(state, sort=True)
    ssc.start()
    try:
        for _ in range(3):
            advance(ssc, 1)
            t = ssc._scheduler.last_completed_ms
            parts = state._internal._generated[t]._cached  # the state partitions behind the view
            assert [p.worker for p in parts] == [0, 1, 0, 1]
    finally:
        ssc.stop(False)
    assert out.batches[-1] == [(k, 3) for k in "abcdefgh"]


def test_killed_worker_is_replaced_and_task_retried(psc, tmp_path):
    pid = psc.executor.worker_pids[0]
    marker = str(tmp_path / "killed-once")

    def slow_once(x):
        # The first attempt of partition 0 kills its own worker; the retry on the replacement succeeds.
        if x == 0 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return x * 10

    try:
        t0 = time.monotonic()
        assert psc.parallelize(range(8), 2).map(slow_once).collect() == [x * 10 for x in range(8)]
        assert time.monotonic() - t0 < 5
    finally:
        if os.path.exists(marker):
            os.remove(marker)
    assert pid not in psc.executor.worker_pids and len(psc.executor.worker_pids) == 2
    assert not alive(pid)


def test_accumulator_updates_of_a_task_retried_after_its_worker_died_count_once(psc, tmp_path):
    marker = str(tmp_path / "killed-once")
    acc = psc.accumulator(0)

    def add_or_die(x):
        acc.add(x)
        # The first attempt at partition 0 adds, then kills its worker: those adds never reach the driver.
        if x == 3 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)

    psc.parallelize(range(8), 2).foreach(add_or_die)
    assert os.path.exists(marker) and acc.value == sum(range(8))


def _held_ids(sc):
    """The broadcast ids each worker holds."""
    return sc.parallelize([0, 1], 2).map(lambda _: sorted(__import__("pystream.broadcast").broadcast._values)
                                         ).collect()


def test_workers_drop_a_broadcast_when_it_is_unpersisted_and_get_it_again_when_used(psc):
    b = psc.broadcast([10, 20, 30])
    rdd = psc.parallelize([0, 1, 2, 2], 2)
    assert rdd.map(lambda i: b.value[i]).collect() == [10, 20, 30, 30]
    assert all(b._bid in held for held in _held_ids(psc))
    b.unpersist()
    assert not any(b._bid in held for held in _held_ids(psc))
    assert rdd.map(lambda i: b.value[i] + 1).collect() == [11, 21, 31, 31]  # sent again
    assert b.value == [10, 20, 30]


def test_workers_drop_a_broadcast_the_driver_lets_go_of(psc):
    def use_once():
        b = psc.broadcast("v")
        assert psc.parallelize([0, 1], 2).map(lambda _: b.value).collect() == ["v", "v"]
        assert all(b._bid in held for held in _held_ids(psc))
        return b._bid

    bid = use_once()
    gc.collect()
    assert not any(bid in held for held in _held_ids(psc))  # told at the next stage


def test_a_replacement_worker_gets_the_broadcasts_it_needs(psc, tmp_path):
    b = psc.broadcast({"x": 5})
    rdd = psc.parallelize(["x"] * 4, 2)
    assert rdd.map(lambda k: b.value[k]).collect() == [5] * 4
    marker = str(tmp_path / "killed-once")

    def read_or_die(k):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return b.value[k] * 2

    assert rdd.map(read_or_die).collect() == [10] * 4
    assert os.path.exists(marker)


def test_a_replacement_worker_sees_the_added_python_files(psc, tmp_path):
    mod = tmp_path / "pystream_test_helper_e.py"
    mod.write_text("def inc(x):\n    return x + 1\n")
    psc.addPyFile(str(mod))
    marker = str(tmp_path / "killed-once")

    def inc_or_die(x):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        import pystream_test_helper_e

        return pystream_test_helper_e.inc(x)

    assert psc.parallelize(range(4), 2).map(inc_or_die).collect() == [1, 2, 3, 4]
    assert os.path.exists(marker)

def test_a_retried_task_knows_its_attempt_number(psc, tmp_path):
    from pystream import TaskContext

    marker = str(tmp_path / "killed-once")

    def attempt_or_die(x):
        if x == 0 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return (TaskContext.get().partitionId(), TaskContext.get().attemptNumber())

    assert psc.parallelize(range(4), 2).map(attempt_or_die).collect() == [(0, 1), (0, 1), (1, 0), (1, 0)]

def test_worker_killed_from_outside_mid_batch(psc):
    pid = psc.executor.worker_pids[1]

    def slow(x):
        time.sleep(0.3)
        return x

    import threading

    threading.Timer(0.1, os.kill, (pid, signal.SIGKILL)).start()
    assert psc.parallelize(range(4), 2).map(slow).collect() == [0, 1, 2, 3]
    assert pid not in psc.executor.worker_pids


def test_kept_partitions_lost_with_a_worker_are_computed_again_from_their_lineage(psc):
    rdd = psc.parallelize(range(100), 2).map(lambda x: x * 2).cache()
    assert rdd.count() == 100
    pid = rdd._cached[1].worker
    victim = psc.executor._workers[pid].process.pid
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: not alive(victim))
    assert rdd.map(lambda x: x + 1).collect() == [x * 2 + 1 for x in range(100)]  # as Spark recomputes lost blocks
    assert not psc.executor.has_lost(rdd._cached)


def test_lost_partitions_without_lineage_fail_with_state_lost_error(psc):
    rdd = psc.parallelize(range(100), 2).map(lambda x: x).cache()
    rdd.count()
    rdd._truncate_lineage()  # as a state stream cuts its RDDs' lineage every batch
    victim = psc.executor._workers[rdd._cached[1].worker].process.pid
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: not alive(victim))
    with pytest.raises(StateLostError, match="lost when that worker died.*could not compute it again"):
        rdd.map(lambda x: x + 1).collect()
    # The pool heals; new work runs.
    assert psc.parallelize(range(10), 2).sum() == 45


@pytest.mark.parametrize("victim", [0, 1])
def test_a_worker_killed_during_the_reduce_side_loses_map_outputs_that_are_made_again(psc, tmp_path, victim):
    """Map outputs live in the worker that made them: a reduce task that finds them gone makes the stage run
    the map side again, as Spark resubmits a map stage after a fetch failure."""
    marker = str(tmp_path / "reducing")

    def slow_reduce_side(kv):
        open(marker, "a").close()
        time.sleep(0.2)
        return kv

    def kill_when_reducing():
        assert wait_until(lambda: os.path.exists(marker), 20)
        time.sleep(0.05)
        os.kill(psc.executor.worker_pids[victim], signal.SIGKILL)

    import threading

    killer = threading.Thread(target=kill_when_reducing)
    killer.start()
    got = psc.parallelize(range(2000), 4).map(lambda x: (x % 10, 1)).reduceByKey(lambda a, b: a + b, 4) \
        .map(slow_reduce_side).collect()
    killer.join()
    assert sorted(got) == [(k, 200) for k in range(10)]


def test_a_dead_forkserver_costs_the_workers_not_the_driver(psc):
    # The forkserver that starts workers dies (a stray kill, the OOM killer): its workers then look dead to
    # multiprocessing. They are replaced, the old ones end, and the driver's shared memory and temporary
    # directory stay (the old workers used to delete them, and every later job failed).
    from multiprocessing import forkserver

    cached = psc.parallelize(range(20_000), 4).map(lambda x: (x % 10, x)).cache()
    assert cached.count() == 20_000
    old = list(psc.executor.worker_pids)
    server = forkserver._forkserver._forkserver_pid
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 5  # dead, not reaped here: multiprocessing reaps it, and starts another
    while time.monotonic() < deadline:
        with open(f"/proc/{server}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    for _ in range(3):
        assert sorted(cached.reduceByKey(operator.add).collect()) == sorted(
            (k, sum(range(k, 20_000, 10))) for k in range(10))
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/proc/{p}") for p in old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{p}") for p in old)
    assert len(psc.executor.worker_pids) == 2 and not set(psc.executor.worker_pids) & set(old)

def test_worker_runs_out_of_attempts(psc):
    from pystream.errors import WorkerLostError

    def always_die(x):
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(WorkerLostError, match="worker process died"):
        psc.parallelize([1], 1).map(always_die).collect()
    assert psc.parallelize(range(4), 2).count() == 4


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", 1, 2.5, None]), st.integers(-100, 100)), max_size=60),
       st.integers(1, 5), st.integers(1, 4),
       st.lists(st.sampled_from(["map", "filter", "flatMap", "reduceByKey", "groupByKey", "distinct",
                                 "repartition", "join", "sortByKey", "mapValues", "countByValue"]),
                min_size=1, max_size=4))
def test_same_results_as_in_process(psc, records, slices, nparts, ops):
    def pipeline(sc):
        rdd = sc.parallelize(records, slices)
        for op in ops:
            if op == "map":
                rdd = rdd.map(lambda kv: (kv[0], kv[1] * 2))
            elif op == "filter":
                rdd = rdd.filter(lambda kv: kv[1] % 3 != 0)
            elif op == "flatMap":
                rdd = rdd.flatMap(lambda kv: [kv, (kv[0], -kv[1])])
            elif op == "reduceByKey":
                rdd = rdd.reduceByKey(lambda a, b: a + b, nparts)
            elif op == "groupByKey":
                rdd = rdd.groupByKey(nparts).mapValues(lambda vs: sum(vs))
            elif op == "distinct":
                rdd = rdd.distinct(nparts)
            elif op == "repartition":
                rdd = rdd.repartition(nparts)
            elif op == "join":
                rdd = rdd.join(rdd.mapValues(lambda v: v % 7), nparts).mapValues(lambda vw: vw[0] + vw[1])
            elif op == "sortByKey":
                rdd = rdd.map(lambda kv: (str(kv[0]), kv[1])).sortByKey(numPartitions=nparts)
            elif op == "mapValues":
                rdd = rdd.mapValues(lambda v: v - 1)
            elif op == "countByValue":
                rdd = sc.parallelize(sorted(rdd.countByValue().items(), key=repr), nparts)
        return rdd.collect()

    remote = pipeline(psc)
    process_executor = psc._executor
    psc._executor = InProcessExecutor(2)
    try:
        local = pipeline(psc)
    finally:
        psc._executor = process_executor
    assert sorted(map(repr, remote)) == sorted(map(repr, local))
    if ops[-1] == "sortByKey":
        assert remote == local


DRIVER = textwrap.dedent("""
    import os, sys, time
    from pystream import SparkConf, SparkContext
    from pystream.streaming import StreamingContext
    mode = sys.argv[1]
    sc = SparkContext("local[2]", "driver", SparkConf(loadDefaults=False).set("spark.pystream.executor", "process"))
    # Start-up to the first batch output is measured by the parent from this line.
    print("PIDS", *sc.executor.worker_pids, flush=True)
    if mode == "long":
        print("BATCH", flush=True)
        print("LONG", flush=True)
        sc.parallelize(range(2), 2).map(lambda x: time.sleep(60)).collect()
    if mode == "shuffle":  # jobs in the main thread, over partitions kept in shared memory
        data = sc.parallelize([(i % 1000, "x" * 20) for i in range(200_000)], 6).cache()
        data.count()
        print("BATCH", flush=True)
        while True:
            data.groupByKey(8).mapValues(len).collect()
    ssc = StreamingContext(sc, 0.1)
    data = [[(i % 10, i) for i in range(5000)] for _ in range(200)]
    def out(rdd):
        rdd.collect()
        print("BATCH", flush=True)
    ssc.queueStream(data).reduceByKey(lambda a, b: a + b).foreachRDD(out)
    ssc.start()
    if mode == "raise":
        time.sleep(0.5)
        raise RuntimeError("driver crashed")
    ssc.awaitTermination()
""")


@contextlib.contextmanager
def driver_process(script, *args, **popen):
    """The driver script running, its output piped; killed and its pipes closed at the end, however it went.
    Yields the process and the worker PIDs from the script's first line ("PIDS ...")."""
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)
    try:
        first = proc.stdout.readline().split()
        assert first[0] == "PIDS", proc.stderr.read()
        yield proc, [int(p) for p in first[1:]]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def own_tmpdir(tmp_path):
    """A temporary directory of its own for a driver process (multiprocessing's directory, with the
    forkserver's socket, goes there), and the environment that gives it."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return tmp, dict(os.environ, TMPDIR=str(tmp))


@pytest.mark.parametrize("how", ["raise", "sigint", "sigint-twice", "sigkill", "sigterm", "sigkill-in-a-long-task",
                                 "sigterm-in-a-long-task"])
def test_no_worker_or_segment_survives_the_driver(tmp_path, how):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    tmp, env = own_tmpdir(tmp_path)
    mode = {"raise": "raise", "sigint-twice": "shuffle"}.get(how, "long" if how.endswith("long-task") else "run")
    with driver_process(script, mode, env=env) as (proc, pids):
        assert len(pids) == 2
        assert [p.name[:5] for p in tmp.iterdir()] == ["pymp-"]
        assert proc.stdout.readline().strip() == "BATCH"
        if how.endswith("long-task"):
            # Both workers are inside a task that would run for a minute: only a watch on the driver ends them.
            assert proc.stdout.readline().strip() == "LONG"
            time.sleep(0.5)
        if how == "sigint":
            proc.send_signal(signal.SIGINT)
        elif how == "sigint-twice":  # a second Ctrl-C lands in the middle of the first one's cleanup
            time.sleep(1.0)  # in the middle of a shuffle
            proc.send_signal(signal.SIGINT)
            time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
        elif how.startswith("sigkill"):
            proc.send_signal(signal.SIGKILL)
        elif how.startswith("sigterm"):
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert wait_until(lambda: not any(alive(p) for p in pids), 10), "a worker outlived the driver"
    assert wait_until(lambda: shm_of(proc.pid) == [], 10), shm_of(proc.pid)
    assert wait_until(lambda: list(tmp.iterdir()) == [], 10), list(tmp.iterdir())


FORKED_DRIVER = textwrap.dedent("""
    import multiprocessing, multiprocessing.util
    from pystream.executor.tempdir import of_this_driver
    def child(conn):
        conn.send(of_this_driver())
    if __name__ == "__main__":
        parent_dir = of_this_driver()
        receiver, sender = multiprocessing.Pipe(duplex=False)
        proc = multiprocessing.get_context("fork").Process(target=child, args=(sender,))
        proc.start()
        print(repr(receiver.recv()), repr(parent_dir == multiprocessing.util.get_temp_dir()), flush=True)
        proc.join()
""")


def test_workers_of_a_forked_driver_leave_its_parents_directory_alone(tmp_path):
    """A driver forked from another Python process inherits that process's multiprocessing directory, which
    must outlive the driver: its workers are not told to remove it. The parent's own driver would be."""
    script = tmp_path / "forked.py"
    script.write_text(FORKED_DRIVER)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "True"]


def test_a_driver_killed_with_its_workers_leaves_a_directory_the_next_driver_removes(tmp_path):
    """Killing the whole process group leaves nobody to remove the driver's multiprocessing directory; the next
    driver does, and leaves alone a live driver's directory and any directory pystream did not mark."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    tmp, env = own_tmpdir(tmp_path)
    with driver_process(script, "run", env=env, start_new_session=True) as (proc, pids):
        assert proc.stdout.readline().strip() == "BATCH"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert wait_until(lambda: not any(alive(p) for p in pids), 10)
    [dead] = list(tmp.iterdir())
    assert (dead / f"pystream-driver-{proc.pid}").exists()
    live = tmp / "pymp-live"
    live.mkdir()
    (live / f"pystream-driver-{os.getpid()}").touch()
    unmarked = tmp / "pymp-other"
    unmarked.mkdir()
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        from pystream import SparkConf, SparkContext
        sc = SparkContext("local[1]", "next", SparkConf(loadDefaults=False).set("spark.pystream.executor", "process"))
        sc.stop()
    """)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp.iterdir()) == ["pymp-live", "pymp-other"]


def test_a_driver_whose_temporary_directory_cannot_be_made_still_runs(tmp_path):
    # Only the cleanup after a killed driver needs multiprocessing's directory; the spawn start method does
    # not. (This runs as any user, root included, so the directory's failure is made by hand.)
    script = tmp_path / "no_tmp.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing.util
        def refuse():
            raise PermissionError("no temporary directory here")
        multiprocessing.util.get_temp_dir = refuse
        from pystream import SparkConf, SparkContext
        conf = (SparkConf(loadDefaults=False).set("spark.pystream.executor", "process")
                .set("spark.pystream.executor.startMethod", "spawn"))
        sc = SparkContext("local[2]", "no-tmp", conf)
        print(sc.parallelize(range(1000), 2).map(lambda x: x * 2).sum(), flush=True)
        sc.stop()
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(999_000)]


BUSY_DRIVER = textwrap.dedent("""
    import sys, time
    from pystream import SparkConf, SparkContext
    from pystream.streaming import StreamingContext
    sc = SparkContext("local[2]", "busy", SparkConf(loadDefaults=False).set("spark.pystream.executor", "process"))
    print("PIDS", *sc.executor.worker_pids, flush=True)
    ssc = StreamingContext(sc, 0.1)
    def slow(x):
        print("RUNNING", flush=True)  # the worker shares the driver's stdout
        time.sleep(120)
        return x
    ssc.queueStream([[1, 2]]).map(slow).foreachRDD(lambda rdd: rdd.collect())
    ssc.start()
    ssc.awaitTermination()
""")


def test_ctrl_c_while_the_job_thread_waits_on_a_long_task_ends_the_driver_promptly(tmp_path):
    # The batch runs on the scheduler's job thread, which holds the executor while its tasks run: stopping at
    # exit must not wait for the task, and must not let the job thread start replacement workers.
    script = tmp_path / "busy.py"
    script.write_text(BUSY_DRIVER)
    # Its own session, so that every process it starts, replacement workers included, can be found after.
    with driver_process(script, start_new_session=True) as (proc, pids):
        assert "RUNNING" in proc.stdout.readline()  # two tasks print it, maybe on one line
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        took = time.monotonic() - t0
    assert took < 10, took
    assert proc.returncode == -signal.SIGINT
    assert wait_until(lambda: not any(alive(p) for p in pids), 10), "a worker outlived the driver"
    assert wait_until(lambda: shm_of(proc.pid) == [], 10), shm_of(proc.pid)
    assert wait_until(lambda: _in_session(proc.pid) == [], 10), _in_session(proc.pid)


def _in_session(sid):
    found = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(p))
    return found


ENDING_DRIVER = textwrap.dedent("""
    import os, sys
    from pystream import SparkConf, SparkContext
    from pystream.streaming import StreamingContext
    conf = SparkConf(loadDefaults=False).set("spark.pystream.executor", "process")
    conf.set("spark.streaming.stopGracefullyOnShutdown", sys.argv[1])
    sc = SparkContext("local[2]", "ending", conf)
    print("PIDS", os.getpid(), *sc.executor.worker_pids, flush=True)
    ssc = StreamingContext(sc, 0.2)
    def out(rdd):
        print("BATCH", sorted(rdd.collect()), flush=True)
    ssc.queueStream([[("a", 1), ("b", 2), ("a", 3)]]).reduceByKey(lambda a, b: a + b).foreachRDD(out)
    ssc.start()
    # The script ends here, with the context running and its first batch not yet due.
""")


@pytest.mark.parametrize("graceful", ["true", "false"])
def test_a_script_that_ends_with_its_context_running_stops_it(tmp_path, graceful):
    script = tmp_path / "ending.py"
    script.write_text(ENDING_DRIVER)
    done = subprocess.run([sys.executable, str(script), graceful], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    driver, *pids = [int(p) for p in lines[0].split()[1:]]
    if graceful == "true":
        # spark.streaming.stopGracefullyOnShutdown: the batch due at exit still runs, before the workers stop.
        assert "BATCH [('a', 4), ('b', 2)]" in lines[1:], done.stdout
    assert "Error" not in done.stderr, done.stderr
    assert wait_until(lambda: not any(alive(p) for p in pids), 10), "a worker outlived the driver"
    assert wait_until(lambda: shm_of(driver) == [], 10), shm_of(driver)


def test_startup_to_first_output_under_a_second(tmp_path):
    script = tmp_path / "start.py"
    script.write_text(textwrap.dedent("""
        import time
        t0 = time.perf_counter()
        from pystream import SparkContext
        from pystream.streaming import StreamingContext
        from pystream.testing import manual_context
        sc = SparkContext("local[2]", "startup")
        ssc = StreamingContext(sc, 0.05)
        done = []
        ssc.queueStream([[("a", 1), ("b", 2)]]).reduceByKey(lambda a, b: a + b).foreachRDD(
            lambda rdd: done.append(rdd.collect()))
        t1 = time.perf_counter()
        ssc.start()
        while not done:
            time.sleep(0.005)
        print(time.perf_counter() - t1, flush=True)
        ssc.stop()
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # The budget is checked by benchmarks/; here only that it works and is not absurdly slow.
    assert float(out.stdout.strip()) < 10


def test_referencing_driver_objects_in_tasks_fails_clearly(psc):
    from pystream.errors import IllegalStateError

    other = psc.parallelize([1, 2])
    with pytest.raises(IllegalStateError, match="reference an RDD from an action or transformation"):
        psc.parallelize([1]).map(lambda x: other.count() * x).collect()
    with pytest.raises(IllegalStateError, match="reference SparkContext"):
        psc.parallelize([1]).map(lambda x: psc.defaultParallelism).collect()
    assert psc.parallelize([1, 2]).count() == 2


def test_segments_of_dead_drivers_are_removed_at_start(tmp_path):
    # A driver killed together with its workers (a whole process group) leaves its segments behind; the next
    # driver removes them, and never touches a live driver's.
    from pystream.executor import shm

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = shm.Segment.create(f"ps_{dead_pid}_d_1_1", 64)
    stale.close()
    live = shm.Segment.create(f"ps_{os.getpid()}_d_1_1", 64)
    live.close()
    try:
        executor = ProcessExecutor(1)
        assert shm_of(dead_pid) == []
        # A live driver's segment stays (beside the idle input segments of this module's context).
        assert [n for n in shm_of(os.getpid()) if "_dp_" not in n] == [live.name]
        executor.stop()
    finally:
        shm.unlink(stale.name)
        shm.unlink(live.name)


def _cancel_once_two_tasks_started(psc, tmp_path, interrupt, run):
    """Run ``run()`` as a job of its own group on another thread, cancel the group once two of its tasks have
    written started-* in tmp_path, and return what the job raised."""
    import threading

    from pystream.errors import JobCancelledError

    out = {}

    def job():
        psc.setJobGroup("cancelled", "a job cancelled while it runs", interruptOnCancel=interrupt)
        try:
            out["value"] = run()
        except JobCancelledError as exc:
            out["error"] = exc
        finally:
            psc.setLocalProperty("spark.jobGroup.id", None)
            psc.setInterruptOnCancel(False)

    t = threading.Thread(target=job)
    t.start()
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("started-*"))) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    psc.cancelJobGroup("cancelled")
    t.join(30)
    assert isinstance(out.get("error"), JobCancelledError)
    return out["error"]


def test_cancelling_a_job_without_interrupt_on_cancel_lets_its_running_tasks_finish(psc, tmp_path):
    def slow(i, it):
        open(tmp_path / f"started-{i}", "w").close()
        time.sleep(0.8)
        open(tmp_path / f"finished-{i}", "w").close()
        return it

    _cancel_once_two_tasks_started(
        psc, tmp_path, False, lambda: psc.parallelize([1, 2, 3, 4], 4).mapPartitionsWithIndex(slow).collect())
    assert psc.parallelize(range(4), 2).sum() == 6  # after the running tasks, not the queued ones
    # As Spark: the two running tasks finished; the two queued never started.
    assert sorted(p.name for p in tmp_path.glob("finished-*")) == ["finished-0", "finished-1"]
    assert len(list(tmp_path.glob("started-*"))) == 2


def test_cancelling_a_job_with_interrupt_on_cancel_interrupts_its_running_tasks(psc, tmp_path):
    def wait_at_gate(x):
        open(tmp_path / f"started-{x}", "w").close()
        deadline = time.monotonic() + 60
        while not (tmp_path / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        open(tmp_path / f"finished-{x}", "w").close()
        return x

    pids = set(psc.executor.worker_pids)
    _cancel_once_two_tasks_started(
        psc, tmp_path, True, lambda: psc.parallelize(range(4), 4).map(wait_at_gate).collect())
    # The gate never opens: the next job runs because the stuck tasks were interrupted, on the same workers
    # (an interrupted task is not a dead worker), and the two tasks still queued never started.
    assert psc.parallelize(range(4), 2).map(lambda x: x * 10).collect() == [0, 10, 20, 30]
    assert set(psc.executor.worker_pids) == pids
    assert len(list(tmp_path.glob("started-*"))) == 2 and not list(tmp_path.glob("finished-*"))


def test_a_worker_killed_in_a_barrier_stage_restarts_every_task_of_it(psc):
    def killed_once(index, it):
        ctx = BarrierTaskContext.get()
        if index == 1 and ctx.attemptNumber() == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return [(index, ctx.allGather(str(ctx.attemptNumber())))]

    pids = psc.executor.worker_pids
    out = psc.parallelize(range(4), 2).barrier().mapPartitionsWithIndex(killed_once).collect()
    # Both tasks ran again (attempt 1), partition 0's too, though its worker lived: Spark relaunches the stage.
    assert out == [(0, ["1", "1"]), (1, ["1", "1"])]
    assert psc.executor.worker_pids != pids and len(psc.executor.worker_pids) == 2



MAIN_CLASSES_DRIVER = textwrap.dedent("""
    import collections
    from pystream import SparkConf, SparkContext

    Point = collections.namedtuple("Point", "x y")

    class Box:
        def __init__(self, v):
            self.v = v

    sc = SparkContext("local[2]", "main-classes", SparkConf(loadDefaults=False).set("spark.pystream.executor", "process"))
    try:
        for n in (10, 5000):  # inside the task message, and as a frame in shared memory
            points = sc.parallelize([Point(i, -i) for i in range(n)], 2)
            assert points.map(lambda p: isinstance(p, Point) and p.x == -p.y).distinct().collect() == [True]
            back = points.map(lambda p: Box(p.x)).collect()
            assert [type(b) for b in back[:2]] == [Box, Box] and sum(b.v for b in back) == n * (n - 1) // 2
            assert points.map(lambda p: (p.x % 3, p)).groupByKey().mapValues(len).collectAsMap() == {
                k: len(range(k, n, 3)) for k in range(3)}
        print("ok", flush=True)
    finally:
        sc.stop()
""")


def test_records_of_classes_the_driver_script_defines_work_in_workers(tmp_path):
    # Workers never import the driver's script: its classes are defined in them (pickling.main_classes), so
    # records of them unpickle there and come back as the driver's own classes.
    script = tmp_path / "job.py"
    script.write_text(MAIN_CLASSES_DRIVER)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["ok"]


class _UnreadableInTheDriver:
    """Pickles in the worker; unpickling it raises (as a class the driver cannot import would)."""

    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise ZeroDivisionError("division by zero")


class _UnprintableError(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


def _raise_unprintable(x):
    raise _UnprintableError()


def test_a_result_the_driver_cannot_read_fails_its_task_and_leaves_the_next_job_alone(psc):
    with pytest.raises(TaskFailedError, match="could not unpickle its result: ZeroDivisionError") as err:
        psc.parallelize(range(4), 2).map(lambda x: _UnreadableInTheDriver()).collect()
    assert isinstance(err.value.__cause__, ZeroDivisionError)
    assert psc.parallelize(range(10), 2).sum() == 45  # the other task's unreadable reply was dropped
    assert psc.parallelize(range(10), 2).sum() == 45
    # An exception whose str() fails still comes back as itself, not as a dead worker.
    pids = psc.executor.worker_pids
    with pytest.raises(_UnprintableError):
        psc.parallelize(range(4), 2).map(_raise_unprintable).collect()
    assert psc.executor.worker_pids == pids



@pytest.mark.parametrize("count", [1, 10_000])  # inside the task message, and in a frame in shared memory
def test_records_that_cannot_be_pickled_fail_with_a_typed_error(psc, count):
    import threading

    from pystream.errors import UnserializableRecordError

    for record in (memoryview(b"abc"), threading.Lock()):
        with pytest.raises(UnserializableRecordError, match="pickl") as info:
            psc.parallelize([record] * count, 2).map(lambda x: 1).count()
        assert isinstance(info.value, TypeError)
    assert psc.parallelize(range(10), 2).sum() == 45  # the pool is fine


def test_only_the_task_a_dead_worker_was_running_counts_an_attempt(psc, tmp_path):
    # Worker 0 is killed once while each of partitions 0, 2, 4 and 6 runs: 4 deaths, each task failing once.
    # Tasks queued behind a running one are sent again, with no attempt counted (task 6 used to fail with
    # "failed 4 times" before it had run at all).
    import threading

    from pystream.taskcontext import TaskContext

    marks = str(tmp_path)

    def slow(it):
        ctx = TaskContext.get()
        with open(os.path.join(marks, f"run_{ctx.partitionId()}_{ctx.attemptNumber()}"), "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(0.4)
        return [sum(it)]

    done, killed = threading.Event(), set()

    def killer():
        while not done.is_set():
            for name in os.listdir(marks):
                part, attempt = map(int, name[4:].split("_"))
                if part % 2 == 0 and part not in killed:
                    killed.add(part)
                    time.sleep(0.1)
                    with open(os.path.join(marks, name)) as fh:
                        os.kill(int(fh.read()), signal.SIGKILL)
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        assert psc.parallelize(range(80), 8).mapPartitions(slow).collect() == [
            sum(range(10 * i, 10 * i + 10)) for i in range(8)]
    finally:
        done.set()
        thread.join()
    assert killed == {0, 2, 4, 6}
    attempts = {int(n.split("_")[1]): [] for n in os.listdir(marks)}
    for n in os.listdir(marks):
        attempts[int(n.split("_")[1])].append(int(n.split("_")[2]))
    assert all(sorted(a) == [0, 1] for p, a in attempts.items() if p % 2 == 0)


def test_a_failed_job_stops_its_other_tasks(psc, tmp_path):
    # As Spark's failed stage: its tasks still queued never start, and the next job waits only for the ones
    # running (it waited for all 15 of them).
    marks = str(tmp_path)

    def task(x):
        if x == 0:
            raise ValueError("fails at once")
        time.sleep(0.5)
        with open(os.path.join(marks, f"end_{x}"), "w"):
            pass
        return x

    with pytest.raises(ValueError, match="fails at once"):
        psc.parallelize(range(16), 16).map(task).collect()
    assert psc.parallelize(range(10), 2).sum() == 45
    time.sleep(0.7)
    assert len(os.listdir(marks)) <= 2  # at most the one running on each worker
    assert len(psc.executor.worker_pids) == 2