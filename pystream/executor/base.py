"""The executor interface."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any


class StageMonitor:
    """What the driver follows of a stage while an executor runs it (see pystream.jobs): the executor reports
    each task's start and end, and gives up a stage whose job was cancelled. This default follows nothing."""

    #: The stage's id, which its tasks see as ``TaskContext.stageId()`` (None: the executor numbers stages).
    stage_id: int | None = None
    #: Whether the cancelled stage's running tasks are to be interrupted, not left to finish.
    interrupt: bool = False
    #: A barrier stage's pystream.barrier.BarrierCoordinator: its tasks all run at once, and sync through it.
    barrier: Any = None

    def task_started(self, split: int) -> None:
        pass

    def task_ended(self, split: int, succeeded: bool) -> None:
        pass

    def cancelled(self) -> str | None:
        """Why the stage's job was cancelled (the message of the JobCancelledError to raise), or None."""
        return None


class Executor(abc.ABC):
    """Runs tasks: ``fn(partition_index, input)`` for each input of a stage, results in input order.

    ``fn`` must be picklable (cloudpickle) for executors that run tasks in other processes; inputs are lists of
    records, partition handles from an earlier ``keep=True`` call, or tuples/``Buckets`` of those. A task's
    exception fails the whole call: the executor raises it (with the remote traceback as its cause), or a
    :class:`pystream.errors.TaskFailedError` when it cannot be carried over.
    """

    #: How many tasks can run at once.
    parallelism: int = 1

    @abc.abstractmethod
    def run_tasks(self, fn: Callable[[int, Any], Any], inputs: Sequence[Any], *, stage: str = "",
                  keep: bool = False, monitor: StageMonitor | None = None) -> list[Any]:
        """Run ``fn(i, inputs[i])`` for every i and return the results in order.

        ``monitor`` hears of each task's start and end; once its ``cancelled()`` gives a reason, no further task
        starts and the call raises JobCancelledError with it (promptly after ``wake()``).

        ``keep=True`` asks for partition handles instead of values: the executor may keep each result where
        it was computed and return a reference that later tasks accept as input (the in-process executor
        returns the lists themselves). ``stage="shuffle-map"`` results are lists of buckets, which the
        executor may likewise return as references, one per bucket.
        """

    def wake(self) -> None:
        """Make a ``run_tasks`` call waiting on its tasks (in another thread) look at its monitor now. The
        default does nothing: an executor that never waits in another thread has nothing to wake."""

    def hold(self, parts: list[list]) -> list[Any]:
        """Partitions the driver made (parallelize, received blocks), as handles this executor's tasks accept;
        the driver keeps these in place of the lists. The default keeps the lists."""
        return parts

    def partition_on_driver(self, parts: list[list], num_partitions: int) -> list[Any]:
        """partitionBy (stable key hash) of records the driver holds: ``num_partitions`` partitions, as handles
        this executor's tasks accept. Partition j holds ``parts[0]``'s records for j, then ``parts[1]``'s, ...
        The default gives lists; an executor in other processes may encode them where its tasks will read."""
        from pystream._core.partitioning import partition_many

        return partition_many(parts, num_partitions)

    def has_lost(self, partitions: Sequence[Any]) -> bool:
        """Whether any of these partition handles was lost (its worker died). Never, in-process."""
        return False

    def discard(self, obj: Any) -> None:  # noqa: B027 - optional hook
        """Forget ``obj``, which the driver is done with (a forgotten batch's records, a partition's list once
        it is encoded). The default drops it now; an executor whose tasks run in other processes may keep it
        until the driver is idle (``tidy``) or has a core that none of its tasks needs, and drop it then:
        freeing half a million records takes the driver 15-30 ms, which would otherwise delay those tasks."""

    def tidy(self, until: Callable[[], bool]) -> None:  # noqa: B027 - optional hook
        """The driver is idle: free what was discarded, stopping soon after ``until()`` turns true (the driver
        has work again). The streaming scheduler calls this between batches, when none is waiting to run."""

    def release(self) -> None:  # noqa: B027 - optional hook
        """Free, now, what partition handles dropped since the last call released (an executor may otherwise
        defer it to its next tasks). The streaming scheduler calls this when a batch is done."""

    def share_files(self, root: str | None, python_paths: list[str],  # noqa: B027 - optional hook
                    environment: dict[str, str] | None = None) -> None:
        """Make the tasks see what the context gives them: the directory of the copies of added files
        (SparkFiles), the python paths of addPyFile (the driver already sees both), and the environment variables
        of SparkContext(environment=...) and spark.executorEnv.* (the driver's own environment is not changed)."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Release workers and memory. Idempotent."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
