"""Jobs as the driver follows them: statusTracker(), job groups and tags, and cancellation, on both executors."""

from __future__ import annotations

import os
import threading
import time

import pytest

from pystream import TaskContext
from pystream.errors import JobCancelledError


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Gate:
    """Tasks that mark that they started, then wait until the test opens the gate (files: tasks run in other
    processes)."""

    def __init__(self, root) -> None:
        self.root = str(root)

    def task(self, x):
        open(os.path.join(self.root, f"started-{x}"), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(self.root, "open")) and time.monotonic() < deadline:
            time.sleep(0.01)
        open(os.path.join(self.root, f"finished-{x}"), "w").close()
        return x

    def started(self) -> int:
        return sum(n.startswith("started-") for n in os.listdir(self.root))

    def finished(self) -> int:
        return sum(n.startswith("finished-") for n in os.listdir(self.root))

    def open(self) -> None:
        open(os.path.join(self.root, "open"), "w").close()


def _line_of_next_call() -> int:
    """The line this is called on (the caller's)."""
    import sys

    return sys._getframe(1).f_lineno


def _in_thread(fn):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_status_tracker_follows_jobs_and_their_stages(sc):
    st = sc.statusTracker()
    before = set(st.getJobIdsForGroup())
    counts = sc.parallelize(range(100), 4).map(lambda x: (x % 3, 1)).reduceByKey(lambda a, b: a + b, 2)
    line = _line_of_next_call()
    assert counts.collectAsMap() == {0: 34, 1: 33, 2: 33}
    (job_id,) = set(st.getJobIdsForGroup()) - before
    info = st.getJobInfo(job_id)
    assert info.jobId == job_id and info.status == "SUCCEEDED" and len(info.stageIds) == 2
    shuffle, result = (st.getStageInfo(s) for s in info.stageIds)
    # Spark's names: a stage for the RDD it computes, where it was made; the result stage as its job.
    assert (shuffle.name, shuffle.numTasks, shuffle.numCompletedTasks) == (
        f"reduceByKey at test_jobs.py:{line - 1}", 4, 4)
    assert (result.name, result.numTasks, result.numCompletedTasks) == (
        f"collectAsMap at test_jobs.py:{line + 1}", 2, 2)
    assert shuffle.numActiveTasks == result.numActiveTasks == shuffle.numFailedTasks == 0
    assert st.getActiveJobsIds() == [] and st.getActiveStageIds() == []
    assert st.getJobInfo(10**9) is None and st.getStageInfo(10**9) is None
    # A task sees the stage id the tracker gives.
    stage_ids = set(sc.parallelize(range(4), 2).map(lambda _: TaskContext.get().stageId()).collect())
    assert stage_ids == set(st.getJobInfo(max(st.getJobIdsForGroup())).stageIds)


def test_a_failed_job_is_failed_and_its_failed_task_counted(sc):
    st = sc.statusTracker()
    sc.setJobGroup("failing", "a job whose task raises")
    try:
        with pytest.raises(ZeroDivisionError):
            sc.parallelize([1, 0], 2).map(lambda x: 1 // x).collect()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    (job_id,) = st.getJobIdsForGroup("failing")
    info = st.getJobInfo(job_id)
    assert info.status == "FAILED"
    assert st.getStageInfo(info.stageIds[0]).numFailedTasks == 1


def test_cancel_job_group_stops_a_running_job_and_starts_none_of_its_tasks(sc, tmp_path):
    gate = Gate(tmp_path)
    st = sc.statusTracker()

    def slow():
        sc.setJobGroup("slow", "waits at the gate")
        return sc.parallelize(range(6), 6).map(gate.task).collect()

    t, out = _in_thread(slow)
    _wait_for(lambda: gate.started() >= 1)
    (job_id,) = st.getJobIdsForGroup("slow")
    assert st.getActiveJobsIds() == [job_id] and len(st.getActiveStageIds()) == 1
    running = st.getStageInfo(st.getActiveStageIds()[0])
    # Running means started: tasks waiting for a free worker are not counted.
    assert running.numTasks == 6 and 1 <= running.numActiveTasks <= sc.executor.parallelism
    sc.cancelJobGroup("other")  # another group's: nothing happens
    assert st.getJobInfo(job_id).status == "RUNNING"
    sc.cancelJobGroup("slow")
    if type(sc.executor).__name__ == "ProcessExecutor":
        t.join(30)  # the action ends at once, without waiting for its running tasks
        assert not t.is_alive()
    gate.open()
    t.join(30)
    assert isinstance(out.get("error"), JobCancelledError)
    assert str(out["error"]) == f"Job {job_id} cancelled part of cancelled job group slow"
    assert st.getJobInfo(job_id).status == "FAILED"
    # The tasks running when it was cancelled finish; the others never start. The next job runs on the same
    # workers after whatever the cancelled one left there.
    assert sc.parallelize(range(4), 2).map(lambda x: x + 1).collect() == [1, 2, 3, 4]
    started = gate.started()
    assert 1 <= started <= min(2, sc.executor.parallelism) < 6
    _wait_for(lambda: gate.finished() == started)
    # A cancelled group's later jobs run.
    sc.setJobGroup("slow", "again")
    try:
        assert sc.parallelize(range(3), 3).collect() == [0, 1, 2]
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)


def test_job_tags_and_cancel_jobs_with_tag(sc, tmp_path):
    assert sc.getJobTags() == set()
    sc.addJobTag("nightly")
    sc.addJobTag("etl")
    assert sc.getJobTags() == {"nightly", "etl"}
    sc.removeJobTag("nightly")
    sc.removeJobTag("absent")
    assert sc.getJobTags() == {"etl"}
    sc.clearJobTags()
    assert sc.getJobTags() == set()
    for bad, error in (("", ValueError), ("a,b", ValueError), (3, TypeError)):
        with pytest.raises(error):
            sc.addJobTag(bad)
    gate = Gate(tmp_path)

    def tagged():
        sc.addJobTag("etl")
        return sc.parallelize(range(4), 4).map(gate.task).collect()

    t, out = _in_thread(tagged)
    _wait_for(lambda: gate.started() >= 1)
    sc.cancelJobsWithTag("nightly")
    assert t.is_alive() or "error" not in out
    sc.cancelJobsWithTag("etl")
    gate.open()
    t.join(30)
    assert isinstance(out.get("error"), JobCancelledError)
    assert "cancelled part of cancelled job tag etl" in str(out["error"])
    assert sc.getJobTags() == set()  # tags are the thread's own


def test_cancel_all_jobs(sc, tmp_path):
    gate = Gate(tmp_path)
    t, out = _in_thread(lambda: sc.parallelize(range(4), 4).map(gate.task).count())
    _wait_for(lambda: gate.started() >= 1)
    sc.cancelAllJobs()
    gate.open()
    t.join(30)
    assert isinstance(out.get("error"), JobCancelledError)
    assert "cancellation of all jobs" in str(out["error"])
    assert sc.parallelize(range(4), 2).count() == 4  # nothing lingers: later jobs run


def test_collect_with_job_group(sc):
    st = sc.statusTracker()
    assert sc.parallelize(range(5), 2).collectWithJobGroup("once", "a collect of its own") == list(range(5))
    assert len(st.getJobIdsForGroup("once")) == 1
    assert sc.getLocalProperty("spark.jobGroup.id") is None  # the thread's group is as it was


def test_a_cancelled_streaming_job_fails_its_batch_and_the_next_batch_runs(ssc, tmp_path):
    from pystream.errors import StreamingJobError
    from pystream.testing import advance

    sc = ssc.sparkContext
    gate = Gate(tmp_path)
    first = sc.parallelize(range(4), 4).map(gate.task)
    seen: list = []
    stream = ssc.queueStream([first, sc.parallelize(range(10, 12), 2)])
    stream.foreachRDD(lambda rdd: seen.append(sorted(rdd.collect())))
    ssc.start()
    t, out = _in_thread(lambda: advance(ssc, 1, timeout=60))
    _wait_for(lambda: gate.started() >= 1)
    sc.cancelAllJobs()
    gate.open()
    t.join(60)
    with pytest.raises(StreamingJobError) as info:
        ssc.awaitTerminationOrTimeout(0)
    assert isinstance(info.value.__cause__, JobCancelledError)
    advance(ssc, 1, timeout=60)
    assert seen == [[10, 11]]


def test_a_streams_stages_are_named_for_the_operator_and_the_streams_line(ssc):
    from pystream.testing import advance

    sc = ssc.sparkContext
    st = sc.statusTracker()
    before = set(st.getJobIdsForGroup())
    stream = ssc.queueStream([sc.parallelize([(1, 2), (1, 3)], 2)])
    seen: list = []
    line = _line_of_next_call() + 1
    stream.reduceByKey(lambda a, b: a * b).foreachRDD(lambda rdd: seen.append(rdd.collect()))
    ssc.start()
    advance(ssc, 1)
    assert seen == [[(1, 6)]]
    (job_id,) = set(st.getJobIdsForGroup()) - before
    # The batch's RDDs are made by the scheduler: they are named for their operator and the line that made the
    # stream, as Spark's streaming stages are.
    assert [st.getStageInfo(s).name for s in st.getJobInfo(job_id).stageIds] == [
        f"reduceByKey at test_jobs.py:{line}", f"collect at test_jobs.py:{line}"]
