"""Jobs and stages as the driver follows them: ``statusTracker()``, job groups and tags, and cancellation.

A job is what one action runs (``count``, ``collect``, an output operation's work in a streaming batch): the
stages its lineage needs, each a set of tasks on the executor. A job belongs to the job group and carries the
tags of the thread that started it (its local properties, as in Spark: ``setJobGroup``, ``addJobTag``).
``cancelJobGroup``, ``cancelJobsWithTag`` and ``cancelAllJobs`` cancel the matching jobs that are running: a
cancelled job starts no further task and its action raises :class:`~pystream.errors.JobCancelledError`. Its
tasks already running finish on their own, unless the job was started with ``interruptOnCancel``: then the
process executor interrupts them (see ``ProcessExecutor``), as Spark interrupts the task threads.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from pystream import taskcontext
from pystream.barrier import BarrierCoordinator, is_barrier, sync_timeout
from pystream.errors import BarrierSlotsError, JobCancelledError, StateLostError
from pystream.executor.base import StageMonitor

logger = logging.getLogger(__name__)

__all__ = ["SparkJobInfo", "SparkStageInfo", "StatusTracker", "JobTracker", "JobControl"]

GROUP_KEY = "spark.jobGroup.id"
TAGS_KEY = "spark.job.tags"
INTERRUPT_KEY = "spark.job.interruptOnCancel"
DESCRIPTION_KEY = "spark.job.description"
# Set by the streaming scheduler on the jobs of a batch's output operations, as Spark Streaming's.
BATCH_TIME_KEY = "spark.streaming.internal.batchTime"
OUTPUT_OP_KEY = "spark.streaming.internal.outputOpId"

# As Spark's UI keeps the last spark.ui.retainedJobs / retainedStages: what statusTracker() can still tell.
RETAINED = 1000


class SparkJobInfo(NamedTuple):
    """What ``StatusTracker.getJobInfo`` tells of a job: its stages so far and its status (RUNNING, SUCCEEDED,
    FAILED)."""

    jobId: int
    stageIds: list[int]
    status: str


class SparkStageInfo(NamedTuple):
    """What ``StatusTracker.getStageInfo`` tells of a stage, its task counts included."""

    stageId: int
    currentAttemptId: int
    name: str
    numTasks: int
    numActiveTasks: int
    numCompletedTasks: int
    numFailedTasks: int


class _Job:
    __slots__ = ("job_id", "group", "tags", "interrupt", "stage_ids", "status", "cancel_reason", "name",
                 "description", "submitted", "ended", "batch")

    def __init__(self, job_id: int, properties: dict[str, str]) -> None:
        self.job_id = job_id
        self.name = call_site()
        self.description = properties.get(DESCRIPTION_KEY)
        self.submitted = _now_ms()
        self.ended: int | None = None
        self.group = properties.get(GROUP_KEY)
        self.tags = split_tags(properties.get(TAGS_KEY))
        self.interrupt = properties.get(INTERRUPT_KEY, "false").lower() == "true"
        self.stage_ids: list[int] = []
        self.status = "RUNNING"
        self.cancel_reason: str | None = None
        # (batch time ms, output operation id) of a job a streaming batch ran (pystream.streaming.scheduler).
        self.batch: tuple[int, int] | None = None
        if BATCH_TIME_KEY in properties and OUTPUT_OP_KEY in properties:
            self.batch = (int(properties[BATCH_TIME_KEY]), int(properties[OUTPUT_OP_KEY]))


class _Stage(StageMonitor):
    """One stage of a job, as the executor reports its tasks."""

    def __init__(self, stage_id: int, name: str, num_tasks: int, job: _Job, lock: threading.Lock) -> None:
        self.stage_id = stage_id
        self.name = name
        self.num_tasks = num_tasks
        self.active = self.completed = self.failed = 0
        self.attempt = 0
        self.status = "ACTIVE"  # then COMPLETE or FAILED, as Spark's REST API says
        self.submitted = _now_ms()
        self.ended: int | None = None
        self.job = job
        self._lock = lock

    @property
    def interrupt(self) -> bool:  # type: ignore[override]
        return self.job.interrupt

    def task_started(self, split: int) -> None:
        with self._lock:
            self.active += 1

    def task_ended(self, split: int, succeeded: bool) -> None:
        with self._lock:
            self.active = max(0, self.active - 1)
            if succeeded:
                self.completed += 1
            else:
                self.failed += 1

    def cancelled(self) -> str | None:
        return self.job.cancel_reason

    def info(self) -> SparkStageInfo:
        return SparkStageInfo(self.stage_id, self.attempt, self.name, self.num_tasks, self.active, self.completed,
                              self.failed)


def _now_ms() -> int:
    return int(time.time() * 1000)


# The modules whose public functions are the API a job or an RDD is named for (the outermost one called).
_API_MODULES = frozenset({"pystream.rdd", "pystream.actions", "pystream.context", "pystream.joins"})
# Frames that are never the user's: pystream's own, and those a thread of pystream's starts from.
_NOT_USER = frozenset({"contextlib", "threading"})


def call_site() -> str:
    """Spark's name for a job or an RDD: the pystream call the user's code made and where ("collect at
    job.py:12"); the call alone when no code of the user's made it (an RDD a stream's batch makes)."""
    frame = sys._getframe(1)
    action = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not _is_user(module):
            if module in _API_MODULES and not frame.f_code.co_name.startswith("_"):
                action = frame.f_code.co_name  # the outermost one is what the user called
            frame = frame.f_back
            continue
        return f"{action or 'job'} at {_where(frame)}"
    return action or "job"


def user_line() -> str | None:
    """Where the user's code called into pystream ("job.py:10"), or None if no code of the user's did."""
    frame = sys._getframe(1)
    while frame is not None and not _is_user(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
    return None if frame is None else _where(frame)


def _is_user(module: str) -> bool:
    return not (module == "pystream" or module.startswith("pystream.") or module in _NOT_USER)


def _where(frame: Any) -> str:
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def split_tags(text: str | None) -> frozenset[str]:
    return frozenset(t for t in (text or "").split(",") if t)


def check_tag(tag: str) -> None:
    """Spark's rules for a job tag: a non-empty str without a comma (tags are kept comma-joined)."""
    if not isinstance(tag, str):
        raise TypeError(f"a job tag must be a str, got {type(tag).__name__}")
    if not tag:
        raise ValueError("Spark job tag cannot be an empty string.")
    if "," in tag:
        raise ValueError(f"Spark job tag cannot contain ',': {tag!r}")


class JobTracker:
    """The driver's jobs and stages: which run, what they ran, and their cancellation. One per SparkContext;
    ``wake`` makes an executor waiting on a stage's tasks look at its cancellation at once."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._job_ids = itertools.count()
        self._stage_ids = itertools.count()
        self._jobs: OrderedDict[int, _Job] = OrderedDict()
        self._stages: OrderedDict[int, _Stage] = OrderedDict()
        self._current = threading.local()

    @contextmanager
    def job(self) -> Iterator[_Job]:
        """Run the body as one job of the calling thread (its group, tags and interruptOnCancel)."""
        job = _Job(next(self._job_ids), taskcontext.local_properties())
        with self._lock:
            self._jobs[job.job_id] = job
            _trim(self._jobs)
        outer = getattr(self._current, "job", None)
        self._current.job = job
        try:
            yield job
        except BaseException:
            job.status = "FAILED"
            raise
        else:
            job.status = "SUCCEEDED"
        finally:
            job.ended = _now_ms()
            self._current.job = outer

    @contextmanager
    def stage(self, name: str | None, num_tasks: int) -> Iterator[_Stage]:
        """A stage of the calling thread's job (a job of its own outside one), named ``name`` (None: the job's
        name, as Spark names a job's result stage); raises JobCancelledError, before it starts, for a job that
        was cancelled."""
        job = getattr(self._current, "job", None)
        if job is None:
            with self.job(), self.stage(name, num_tasks) as stage:
                yield stage
            return
        if name is None:
            name = job.name
        if job.cancel_reason is not None:
            raise JobCancelledError(job.cancel_reason)
        stage = _Stage(next(self._stage_ids), name, num_tasks, job, self._lock)
        with self._lock:
            job.stage_ids.append(stage.stage_id)
            self._stages[stage.stage_id] = stage
            _trim(self._stages)
        ok = False
        try:
            yield stage
            ok = True
        finally:
            with self._lock:
                stage.active = 0
                stage.status = "COMPLETE" if ok else "FAILED"
                stage.ended = _now_ms()

    # -- cancellation -------------------------------------------------------------------------------------
    def cancel(self, matches: Callable[[_Job], bool], reason: Callable[[_Job], str]) -> list[int]:
        """Cancel the running jobs ``matches`` selects; return their ids."""
        with self._lock:
            hit = [j for j in self._jobs.values() if j.status == "RUNNING" and j.cancel_reason is None
                   and matches(j)]
            for j in hit:
                j.cancel_reason = reason(j)
        if hit:
            self._wake()
        return [j.job_id for j in hit]

    # -- status -------------------------------------------------------------------------------------------
    def job_ids(self, group: str | None) -> list[int]:
        with self._lock:
            return [j.job_id for j in self._jobs.values() if j.group == group]

    def active_job_ids(self) -> list[int]:
        with self._lock:
            return [j.job_id for j in self._jobs.values() if j.status == "RUNNING"]

    def active_stage_ids(self) -> list[int]:
        with self._lock:
            return [s.stage_id for s in self._stages.values() if s.status == "ACTIVE"]

    def snapshot(self) -> tuple[list[_Job], dict[int, _Stage]]:
        """The kept jobs (oldest first) and stages by id, for the status API (pystream.ui)."""
        with self._lock:
            return list(self._jobs.values()), dict(self._stages)

    def job_info(self, job_id: int) -> SparkJobInfo | None:
        with self._lock:
            j = self._jobs.get(job_id)
            return None if j is None else SparkJobInfo(j.job_id, list(j.stage_ids), j.status)

    def stage_info(self, stage_id: int) -> SparkStageInfo | None:
        with self._lock:
            s = self._stages.get(stage_id)
            return None if s is None else s.info()


def _trim(table: OrderedDict) -> None:
    while len(table) > RETAINED:
        table.popitem(last=False)


class StatusTracker:
    """Low-level status of the context's jobs and stages, as pyspark's ``sc.statusTracker()``. It keeps the
    last 1000 jobs and stages; every method answers from what is kept at the time of the call."""

    def __init__(self, tracker: JobTracker) -> None:
        self._tracker = tracker

    def getJobIdsForGroup(self, jobGroup: str | None = None) -> list[int]:
        """Return the ids of the jobs of ``jobGroup`` (of no group for None), running or ended, oldest first."""
        return self._tracker.job_ids(jobGroup)

    def getActiveStageIds(self) -> list[int]:
        """Return the ids of the stages running now."""
        return self._tracker.active_stage_ids()

    def getActiveJobsIds(self) -> list[int]:
        """Return the ids of the jobs running now."""
        return self._tracker.active_job_ids()

    def getJobInfo(self, jobId: int) -> SparkJobInfo | None:
        """Return a SparkJobInfo, or None if the job is unknown (or no longer kept)."""
        return self._tracker.job_info(jobId)

    def getStageInfo(self, stageId: int) -> SparkStageInfo | None:
        """Return a SparkStageInfo, or None if the stage is unknown (or no longer kept)."""
        return self._tracker.stage_info(stageId)


class JobControl:
    """SparkContext's methods for jobs: tags, interruptOnCancel, cancellation, status (the job group is set with
    ``setJobGroup``, beside the other local properties). Mixed into SparkContext, whose ``_jobs`` they use."""

    _jobs: JobTracker
    _profiles: Any
    _conf: Any
    _executor: Any
    executor: Any
    setLocalProperty: Callable[[str, str | None], None]
    getLocalProperty: Callable[[str], str | None]

    def setInterruptOnCancel(self, interruptOnCancel: bool) -> None:
        """Whether cancelling the jobs this thread starts interrupts their running tasks (see cancelJobGroup)."""
        self.setLocalProperty(INTERRUPT_KEY, str(bool(interruptOnCancel)).lower())

    def addJobTag(self, tag: str) -> None:
        """Tag the jobs this thread starts from now on (cancelJobsWithTag cancels them by it). A tag is a
        non-empty str without a comma: anything else raises TypeError or ValueError."""
        check_tag(tag)
        tags = set(self.getJobTags())
        tags.add(tag)
        self.setLocalProperty(TAGS_KEY, ",".join(sorted(tags)))

    def removeJobTag(self, tag: str) -> None:
        """Stop tagging this thread's jobs with ``tag`` (no error if it was not there)."""
        check_tag(tag)
        tags = set(self.getJobTags())
        tags.discard(tag)
        self.setLocalProperty(TAGS_KEY, ",".join(sorted(tags)) if tags else None)

    def getJobTags(self) -> set[str]:
        """Return the tags this thread's jobs get."""
        return set(split_tags(self.getLocalProperty(TAGS_KEY)))

    def clearJobTags(self) -> None:
        """Stop tagging this thread's jobs: the ones it starts from now on get no tag."""
        self.setLocalProperty(TAGS_KEY, None)

    def cancelJobGroup(self, groupId: str) -> None:
        """Cancel the running jobs of group ``groupId`` (setJobGroup): each starts no further task, and its action
        raises JobCancelledError. Tasks already running finish, unless the job was started with
        interruptOnCancel: then they are interrupted (on the process executor; in-process tasks always finish).
        Jobs started later are not affected."""
        self._jobs.cancel(lambda j: j.group == groupId,
                            lambda j: f"Job {j.job_id} cancelled part of cancelled job group {groupId}")

    def cancelJobsWithTag(self, tag: str) -> None:
        """Cancel the running jobs tagged ``tag`` (addJobTag), as cancelJobGroup cancels a group's."""
        check_tag(tag)
        self._jobs.cancel(lambda j: tag in j.tags,
                            lambda j: f"Job {j.job_id} cancelled part of cancelled job tag {tag}")

    def cancelAllJobs(self) -> None:
        """Cancel every running job, as cancelJobGroup cancels a group's."""
        self._jobs.cancel(lambda j: True, lambda j: f"Job {j.job_id} cancelled as part of cancellation of all jobs")

    def statusTracker(self) -> StatusTracker:
        """Return a StatusTracker: the ids, stages and task counts of this context's jobs."""
        return StatusTracker(self._jobs)

    def _run_stage(self, fn: Any, inputs: Any, *, stage: str, keep: bool = False, rdd: Any = None,
                   recompute: Callable[[], Any] | None = None) -> list[Any]:
        """Run one stage's tasks, computing ``rdd``, as part of the calling thread's job (see pystream.jobs);
        with spark.python.profile, under cProfile (pystream.profiler).

        ``recompute`` gives the inputs again: when some were lost with a worker that died during the stage
        (map outputs or kept partitions it held), they are computed again and the stage runs again, up to
        ``spark.stage.maxConsecutiveAttempts`` (4) times, as Spark resubmits the stage whose output a fetch
        failure lost. Without it, or past that, StateLostError."""
        attempts = max(1, self._conf.getInt("spark.stage.maxConsecutiveAttempts", 4))
        for attempt in itertools.count(1):
            try:
                return self._run_stage_once(fn, inputs, stage, keep, rdd)
            except StateLostError as exc:
                if recompute is None:
                    raise
                if attempt >= attempts:
                    raise StateLostError(
                        f"a {stage} stage lost its input with a worker process {attempt} times in a row, and "
                        f"spark.stage.maxConsecutiveAttempts is {attempts}: {exc}") from exc
                logger.warning("a %s stage lost its input with a worker process (attempt %d of %d); computing "
                               "it again", stage, attempt, attempts)
                inputs = recompute()
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_stage_once(self, fn: Any, inputs: Any, stage: str, keep: bool, rdd: Any) -> list[Any]:
        coordinator = self._barrier_coordinator(fn, len(inputs))
        if self._profiles is not None and rdd is not None:
            fn = self._profiles.wrap(fn, rdd.id())
        # Spark's stage names: a job's result stage is named as the job, any other stage for the RDD it computes.
        name = None if stage == "action" or rdd is None else rdd._creation_site
        with self._jobs.stage(name, len(inputs)) as monitor:
            monitor.barrier = coordinator
            return self.executor.run_tasks(fn, inputs, stage=stage, keep=keep, monitor=monitor)

    def _barrier_coordinator(self, fn: Any, num_tasks: int) -> Any:
        """The BarrierCoordinator of a barrier stage of ``num_tasks`` tasks running ``fn``, else None."""
        if not is_barrier(fn):
            return None
        slots = self.executor.parallelism
        if num_tasks > slots:
            raise BarrierSlotsError(
                f"a barrier stage needs all its {num_tasks} tasks running at once, and this context runs "
                f"{slots} at a time: repartition or coalesce the barrier RDD to at most {slots} partitions, or "
                "start the context with more cores (local[N])")
        return BarrierCoordinator(num_tasks, sync_timeout(self._conf))

    def _wake_executor(self) -> None:
        if self._executor is not None:
            self._executor.wake()
