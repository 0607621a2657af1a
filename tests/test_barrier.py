"""Barrier execution mode: RDD.barrier(), BarrierTaskContext's syncs, and how a barrier stage fails, on both
executors (and a worker killed in one, on the process executor)."""

from __future__ import annotations

import operator
import os
import threading
import time

import pytest

from pystream import BarrierTaskContext, BarrierTaskInfo, RDDBarrier, SparkConf, SparkContext, TaskContext
from pystream.barrier import BarrierCoordinator
from pystream.context import EXECUTOR_KEY
from pystream.errors import BarrierSlotsError, BarrierSyncError, IllegalStateError, JobCancelledError, PyStreamError


@pytest.fixture(scope="module", params=["inprocess", "process"])
def sc(request):
    """conftest's local[2] context on each executor, with barrier syncs that wait at most 2 s."""
    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, request.param).set("spark.barrier.sync.timeout", "2s")
    context = SparkContext("local[2]", f"barrier-{request.param}", conf)
    yield context
    context.stop()


def gathered(index, it):
    ctx = BarrierTaskContext.get()
    assert TaskContext.get() is ctx and ctx.partitionId() == index
    total = sum(it)
    ctx.barrier()
    first = ctx.allGather(str(total))
    second = ctx.allGather(f"p{index}")
    ctx.barrier()
    return [(index, first, second, [info.address for info in ctx.getTaskInfos()])]


def test_all_gather_gives_every_task_the_messages_in_partition_order(sc):
    out = sc.parallelize(range(10), 2).barrier().mapPartitionsWithIndex(gathered).collect()
    assert [o[0] for o in out] == [0, 1]
    assert all(o[1] == [str(sum(range(5))), str(sum(range(5, 10)))] and o[2] == ["p0", "p1"] for o in out)
    addresses = out[0][3]
    assert out[1][3] == addresses and len(addresses) == 2 and all(a.startswith("127.0.0.1:") for a in addresses)
    if sc.executor.parallelism > 1 and hasattr(sc.executor, "worker_pids"):
        # Each task on a worker of its own, at once.
        assert sorted(int(a.split(":")[1]) for a in addresses) == sorted(sc.executor.worker_pids)


def test_a_barrier_step_fuses_with_its_neighbours_and_the_shuffle_after_it_is_an_ordinary_stage(sc, stages):
    def tag(it):
        ctx = BarrierTaskContext.get()
        ctx.barrier()
        return ((x % 3, 1) for x in it)

    rdd = sc.parallelize(range(30), 2).map(lambda x: x * 2).barrier().mapPartitions(tag).filter(lambda kv: True)
    assert dict(rdd.reduceByKey(operator.add).collect()) == {0: 10, 1: 10, 2: 10}
    assert stages == ["shuffle-map", "action"]
    assert sc.parallelize(range(4), 2).barrier().mapPartitions(lambda it: it).collect() == [0, 1, 2, 3]
    base = sc.parallelize([1])
    assert isinstance(base.barrier(), RDDBarrier) and base.barrier().rdd is base


def test_a_barrier_stage_needs_a_slot_per_task(sc):
    rdd = sc.parallelize(range(9), sc.executor.parallelism + 1).barrier().mapPartitions(lambda it: it)
    with pytest.raises(BarrierSlotsError, match="at most 2 partitions") as err:
        rdd.collect()
    assert isinstance(err.value, RuntimeError) and isinstance(err.value, PyStreamError)


def _fails_in_partition_1(index, it):
    ctx = BarrierTaskContext.get()
    if index == 1:
        raise KeyError("partition 1 broke")
    ctx.barrier()  # never completes: partition 1 failed
    return [index]


def _returns_early(index, it):
    if index == 0:
        BarrierTaskContext.get().barrier()
    return [index]


def _mismatched(index, it):
    ctx = BarrierTaskContext.get()
    if index:
        ctx.barrier()
    else:
        ctx.allGather("x")
    return [index]


@pytest.mark.parametrize("task, error, match", [
    (_fails_in_partition_1, KeyError, "partition 1 broke"),
    (_returns_early, BarrierSyncError, r"sync 0 cannot complete: the tasks of partitions \[1\] ended"),
    (_mismatched, BarrierSyncError, r"different methods at sync 0: \['allGather', 'barrier'\]"),
], ids=["a task raises", "a task skips a sync", "the tasks disagree on the method"])
def test_a_barrier_stage_that_cannot_sync_fails_and_the_next_job_runs(sc, task, error, match):
    with pytest.raises(error, match=match):
        sc.parallelize(range(4), 2).barrier().mapPartitionsWithIndex(task).collect()
    # No task was left waiting at a sync: the workers run the next jobs, barrier or not.
    assert sc.parallelize(range(6), 2).map(lambda x: x + 1).collect() == [1, 2, 3, 4, 5, 6]
    assert [o[0] for o in sc.parallelize(range(4), 2).barrier().mapPartitionsWithIndex(gathered).collect()] == [0, 1]


def test_barrier_task_context_outside_a_barrier_stage(sc):
    with pytest.raises(IllegalStateError, match="not in a barrier stage"):
        BarrierTaskContext.get()
    kinds = sc.parallelize(range(2), 2).map(lambda _: type(TaskContext.get()).__name__).collect()
    assert kinds == ["TaskContext", "TaskContext"]
    assert repr(BarrierTaskInfo("h:1")) == "BarrierTaskInfo('h:1')"


def _slow_partition_1(index, it):
    if index == 1:
        time.sleep(6)
    BarrierTaskContext.get().barrier()
    return [index]


def test_a_sync_past_the_timeout_fails_the_stage(sc):
    t0 = time.monotonic()
    with pytest.raises(BarrierSyncError, match=r"barrier sync 0 timed out after 2 s .*partitions \[0\] of 2"):
        sc.parallelize(range(4), 2).barrier().mapPartitionsWithIndex(_slow_partition_1).collect()
    assert time.monotonic() - t0 < 5
    assert sc.parallelize(range(4), 2).sum() == 6


def test_a_cancelled_barrier_job_releases_its_waiting_tasks(sc, tmp_path):
    marker = str(tmp_path / "waiting")

    def wait_forever(index, it):
        ctx = BarrierTaskContext.get()
        if index == 0:
            open(marker, "w").close()
            ctx.barrier()  # partition 1 never comes
        else:
            deadline = time.monotonic() + 10
            while not os.path.exists(marker + "-done") and time.monotonic() < deadline:
                time.sleep(0.01)
        return [index]

    out: dict = {}

    def run():
        sc.setJobGroup("barrier-group", "a barrier job to cancel", interruptOnCancel=True)
        try:
            sc.parallelize(range(2), 2).barrier().mapPartitionsWithIndex(wait_forever).collect()
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 30
    while not os.path.exists(marker):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sc.cancelJobGroup("barrier-group")
    if not hasattr(sc.executor, "worker_pids"):
        open(marker + "-done", "w").close()  # in-process tasks are never interrupted: let partition 1 end
    t.join(20)
    open(marker + "-done", "w").close()
    assert not t.is_alive()
    assert isinstance(out.get("error"), (JobCancelledError, BarrierSyncError))
    assert sc.parallelize(range(3), 2).collect() == [0, 1, 2]


def test_the_coordinator_releases_a_sync_when_every_task_reached_it():
    c = BarrierCoordinator(3, timeout=60)
    assert c.arrive(2, "allGather", "c") == (0, None)
    assert c.arrive(0, "allGather", "a") == (0, None)
    assert c.arrive(1, "allGather", "b") == (0, ["a", "b", "c"])
    assert c.arrive(1, "barrier", "") == (1, None)
    assert c.finish(2) is not None  # task 2 ended before sync 1
    with pytest.raises(BarrierSyncError, match="sync 1 cannot complete"):
        c.arrive(0, "barrier", "")
    c.reset()
    assert c.arrive(0, "barrier", "") == (0, None) and c.overdue() is None
    late = BarrierCoordinator(2, timeout=0.01)
    late.arrive(1, "barrier", "")
    time.sleep(0.05)
    assert "timed out" in late.overdue()
    with pytest.raises(BarrierSyncError, match="timed out"):
        late.wait(0, "barrier", "")
