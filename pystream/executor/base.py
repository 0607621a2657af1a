"""The executor interface."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskContext:
    """What a task knows about itself: its partition and the stage it belongs to."""

    partition: int
    stage: str = ""
    attempt: int = 0


class Executor(abc.ABC):
    """Runs tasks: ``fn(partition_index, input)`` for each input of a stage, results in input order.

    ``fn`` must be picklable (cloudpickle) for executors that run tasks in other processes; inputs and results
    are lists of records or other picklable values. A task's exception fails the whole call; the executor raises
    it (or a :class:`pystream.errors.TaskFailedError` carrying the remote traceback).
    """

    #: How many tasks can run at once.
    parallelism: int = 1

    @abc.abstractmethod
    def run_tasks(self, fn: Callable[[int, Any], Any], inputs: Sequence[Any], *, stage: str = "") -> list[Any]:
        """Run ``fn(i, inputs[i])`` for every i and return the results in order."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Release workers and memory. Idempotent."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
