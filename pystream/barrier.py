"""Barrier execution mode (pyspark's ``RDD.barrier()``): a stage whose tasks all run at once and may wait for
each other (``BarrierTaskContext.barrier()``) or exchange messages (``allGather``), as distributed training
(Horovod, XGBoost, a TorchDistributor) needs to start its peers together.

* ``rdd.barrier().mapPartitions(f)`` marks ``f`` (a BarrierStep); the stage whose fused pipeline holds it is a
  barrier stage (``is_barrier``), and the one after a shuffle is not.
* A barrier stage needs a free slot per task: more tasks than the executor's parallelism fail at once with
  BarrierSlotsError (Spark waits for a larger cluster; a local pool never grows).
* The driver counts the tasks' syncs (BarrierCoordinator): sync k of every task is released together, with
  every task's message in partition order. Tasks that call different methods at the same sync, or a sync
  that not every task reaches within ``spark.barrier.sync.timeout`` seconds, fail the stage.
* A task that fails fails the stage; the others are released from their wait with an error. When a worker
  process dies, every task of the stage is started again (spark.task.maxFailures attempts), as Spark relaunches
  a whole barrier stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pystream.errors import BarrierSyncError, IllegalStateError
from pystream.taskcontext import TaskContext

if TYPE_CHECKING:
    from pystream.rdd import RDD

#: Seconds a barrier sync waits for every task of its stage (Spark's key and default: a year).
SYNC_TIMEOUT_KEY = "spark.barrier.sync.timeout"
DEFAULT_SYNC_TIMEOUT = 365 * 24 * 3600.0


class RDDBarrier:
    """What ``rdd.barrier()`` returns: the RDD's partitions, to map in a barrier stage."""

    def __init__(self, rdd: RDD) -> None:
        self.rdd = rdd

    def mapPartitions(self, f: Callable[[Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False) -> RDD:
        """Return a new RDD of ``f(iterator)`` of each partition, computed in a barrier stage: every task runs at
        once, and ``BarrierTaskContext.get()`` in ``f`` syncs with the others."""
        return self.mapPartitionsWithIndex(lambda _, it: f(it), preservesPartitioning)

    def mapPartitionsWithIndex(self, f: Callable[[int, Iterator[Any]], Iterable[Any]],
                               preservesPartitioning: bool = False) -> RDD:
        """Return a new RDD of ``f(index, iterator)`` of each partition, computed in a barrier stage."""
        from pystream.lineage import PipelinedRDD

        return PipelinedRDD(self.rdd, BarrierStep(f), preservesPartitioning)


class BarrierStep:
    """A pipeline step that makes its stage a barrier stage."""

    __slots__ = ("func",)
    barrier = True

    def __init__(self, func: Callable[[int, Iterator[Any]], Iterable[Any]]) -> None:
        self.func = func

    def __call__(self, split: int, iterator: Iterator[Any]) -> Iterable[Any]:
        if not isinstance(TaskContext.get(), BarrierTaskContext):
            # Only an executor that starts the stage's tasks together may run it (a sync would wait forever).
            raise IllegalStateError("a barrier step ran outside a barrier stage")
        return self.func(split, iterator)


def is_barrier(task: Any) -> bool:
    """Whether a stage's task function runs a barrier step (in its fused pipeline, or in the task it wraps)."""
    for name in ("pipeline", "func", "task"):
        part = getattr(task, name, None)
        if part is not None and (getattr(part, "barrier", False) or (name == "task" and is_barrier(part))):
            return True
    return False


class BarrierTaskInfo:
    """A barrier task's peer: ``address`` is where it runs ("host:pid")."""

    __slots__ = ("address",)

    def __init__(self, address: str) -> None:
        self.address = address

    def __repr__(self) -> str:
        return f"BarrierTaskInfo({self.address!r})"


class BarrierTaskContext(TaskContext):
    """The TaskContext of a task in a barrier stage (``BarrierTaskContext.get()``), with the syncs."""

    def __init__(self, partition: int, stage: int, attempt: int, task_attempt_id: int,
                 properties: dict[str, str] | None, sync: Callable[[str, str], list[str]],
                 addresses: list[str]) -> None:
        super().__init__(partition, stage, attempt, task_attempt_id, properties)
        self._sync = sync
        self._addresses = addresses

    @classmethod
    def get(cls) -> BarrierTaskContext:
        """Return the running barrier task's context; raise IllegalStateError (a RuntimeError) outside one."""
        context = TaskContext.get()
        if not isinstance(context, BarrierTaskContext):
            raise IllegalStateError("It is not in a barrier stage.")
        return context

    def barrier(self) -> None:
        """Wait until every task of the stage has called barrier() (as often as this one has); raise
        BarrierSyncError when that cannot happen (another task failed, the timeout passed)."""
        self._sync("barrier", "")

    def allGather(self, message: str = "") -> list[str]:
        """A barrier() that also exchanges ``message`` (a str): return every task's, in partition order."""
        if not isinstance(message, str):
            raise TypeError(f"allGather takes a str message, not {type(message).__name__}")
        return self._sync("allGather", message)

    def getTaskInfos(self) -> list[BarrierTaskInfo]:
        """Return the stage's tasks, in partition order (their addresses)."""
        return [BarrierTaskInfo(a) for a in self._addresses]


class BarrierCoordinator:
    """The driver's count of a barrier stage's syncs: ``arrive`` records one task's sync k and, once every task
    has made its sync k, gives their messages. Thread-safe: in-process tasks arrive from their own threads."""

    def __init__(self, num_tasks: int, timeout: float) -> None:
        self.num_tasks = num_tasks
        self.timeout = timeout
        self._lock = threading.Condition()
        self.reset()

    def reset(self) -> None:
        """Forget every sync (the stage starts again)."""
        with self._lock:
            self._count = [0] * self.num_tasks  # syncs each task has made
            self._epochs: dict[int, dict[int, tuple[str, str]]] = {}
            self._first: dict[int, float] = {}  # when each open sync's first task arrived
            self._done: dict[int, list[str]] = {}
            self._finished: set[int] = set()
            self._failed: str | None = None
            self._lock.notify_all()

    def arrive(self, split: int, kind: str, message: str) -> tuple[int, list[str] | None]:
        """Task ``split`` makes its next sync: return (that sync's number, every message if it was the last to
        arrive, else None). Raise BarrierSyncError when the tasks disagree on the method."""
        with self._lock:
            if self._failed is not None:
                raise BarrierSyncError(self._failed)
            epoch = self._count[split]
            self._count[split] += 1
            arrived = self._epochs.setdefault(epoch, {})
            self._first.setdefault(epoch, time.monotonic())
            arrived[split] = (kind, message)
            kinds = {k for k, _ in arrived.values()}
            if len(kinds) > 1:
                self.fail(f"the tasks of a barrier stage called different methods at sync {epoch}: "
                          f"{sorted(kinds)} (every task must call barrier() or allGather() in the same order)")
                raise BarrierSyncError(self._failed)
            if len(arrived) < self.num_tasks:
                if self._unreachable(epoch):
                    raise BarrierSyncError(self._failed)
                return epoch, None
            del self._epochs[epoch], self._first[epoch]
            messages = [arrived[i][1] for i in range(self.num_tasks)]
            self._done[epoch] = messages
            self._lock.notify_all()
            return epoch, messages

    def finish(self, split: int) -> str | None:
        """Task ``split`` ended (returned or failed): a sync it did not reach can no longer complete. Return why
        the stage must fail, or None."""
        with self._lock:
            self._finished.add(split)
            for epoch in list(self._epochs):
                self._unreachable(epoch)
            return self._failed

    def _unreachable(self, epoch: int) -> bool:
        gone = sorted(i for i in self._finished if self._count[i] <= epoch)
        if gone:
            self.fail(f"barrier sync {epoch} cannot complete: the tasks of partitions {gone} ended without "
                      "reaching it (every task must call barrier() or allGather() as many times)")
        return bool(gone)

    def overdue(self) -> str | None:
        """Why the stage must fail now (a sync past the timeout), or None."""
        with self._lock:
            now = time.monotonic()
            for epoch, first in self._first.items():
                if now - first > self.timeout:
                    waiting = sorted(self._epochs[epoch])
                    self.fail(f"barrier sync {epoch} timed out after {self.timeout:g} s ({SYNC_TIMEOUT_KEY}): "
                              f"only the tasks of partitions {waiting} of {self.num_tasks} reached it")
            return self._failed

    def fail(self, reason: str) -> None:
        """End every sync of the stage with ``reason`` (a task failed, or the syncs went wrong)."""
        with self._lock:
            if self._failed is None:
                self._failed = reason
            self._lock.notify_all()

    def wait(self, split: int, kind: str, message: str) -> list[str]:
        """``arrive``, then block until the sync completes (in-process tasks, each in its own thread)."""
        epoch, messages = self.arrive(split, kind, message)
        with self._lock:
            while messages is None:
                messages = self._done.get(epoch)
                if messages is not None:
                    break
                if self._failed is not None:
                    raise BarrierSyncError(self._failed)
                self._lock.wait(0.5)
                self.overdue()
            return messages


def sync_timeout(conf: Any) -> float:
    """``spark.barrier.sync.timeout`` of ``conf`` in seconds (a positive number)."""
    raw = conf.get(SYNC_TIMEOUT_KEY) if conf is not None else None
    if raw is None:
        return DEFAULT_SYNC_TIMEOUT
    text = str(raw).strip().lower()
    value = float(text[:-1]) if text.endswith("s") else float(text)
    if value <= 0:
        raise ValueError(f"{SYNC_TIMEOUT_KEY} must be positive, got {raw!r}")
    return value
