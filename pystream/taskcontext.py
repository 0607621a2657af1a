"""TaskContext: what a running task knows about itself (pyspark's ``TaskContext.get()``), and the local
properties of the driver's threads that tasks see.

``SparkContext.setLocalProperty`` sets a property of the calling thread; the jobs that thread starts carry a
copy of its properties to their tasks, where ``TaskContext.get().getLocalProperty(key)`` reads them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

# The running task's context, per thread: in-process tasks run in the driver's threads.
_current = threading.local()
# The driver's local properties, per thread.
_properties = threading.local()


class TaskContext:
    """The partition, stage and attempt of the task running in this thread; ``TaskContext.get()`` gives it
    inside a task, and None anywhere else (in the driver's own code)."""

    def __init__(self, partition: int, stage: int, attempt: int, task_attempt_id: int,
                 properties: dict[str, str] | None = None) -> None:
        self._partition = partition
        self._stage = stage
        self._attempt = attempt
        self._task_attempt_id = task_attempt_id
        self._properties = properties or {}

    @classmethod
    def get(cls) -> TaskContext | None:
        """Return the context of the task running in this thread, or None outside tasks."""
        return getattr(_current, "context", None)

    def partitionId(self) -> int:
        """The index of the partition this task computes."""
        return self._partition

    def stageId(self) -> int:
        """The id of the stage this task belongs to (a new one for every stage the executor runs)."""
        return self._stage

    def attemptNumber(self) -> int:
        """How many times this task was tried before (0 the first time; a task whose worker died is retried)."""
        return self._attempt

    def taskAttemptId(self) -> int:
        """An id unique to this attempt of this task among the executor's tasks."""
        return self._task_attempt_id

    def getLocalProperty(self, key: str) -> str | None:
        """A local property of the driver thread that started the job (SparkContext.setLocalProperty)."""
        return self._properties.get(key)

    def cpus(self) -> int:
        """The cores this task may use: one, as each worker runs one task at a time."""
        return 1

    def resources(self) -> dict[str, Any]:
        """Resources assigned to this task (GPUs and such): none here."""
        return {}

    def __repr__(self) -> str:
        return (f"TaskContext(partition={self._partition}, stage={self._stage}, attempt={self._attempt}, "
                f"taskAttemptId={self._task_attempt_id})")


@contextlib.contextmanager
def running(context: TaskContext) -> Iterator[None]:
    """Run the block as the task ``context`` describes (TaskContext.get() gives it there)."""
    outer = getattr(_current, "context", None)
    _current.context = context
    try:
        yield
    finally:
        _current.context = outer


def local_properties() -> dict[str, str]:
    """The calling driver thread's local properties (a dict to change in place)."""
    props = getattr(_properties, "props", None)
    if props is None:
        props = _properties.props = {}
    return props


def inherit(properties: dict[str, str]) -> None:
    """Give the calling thread a copy of ``properties`` as its local properties: what a thread pystream starts
    for jobs (the streaming scheduler's) inherits from the thread that started it, as in Spark."""
    _properties.props = dict(properties)
