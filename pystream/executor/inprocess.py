"""The in-process executor: runs every task in the driver's thread, in order. For debugging and tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pystream.executor.base import Executor


class InProcessExecutor(Executor):
    """Runs tasks one after the other in the calling thread; exceptions propagate unchanged."""

    def __init__(self, parallelism: int = 1) -> None:
        self.parallelism = max(1, int(parallelism))

    def run_tasks(self, fn: Callable[[int, Any], Any], inputs: Sequence[Any], *, stage: str = "",
                  keep: bool = False) -> list[Any]:
        return [fn(i, data) for i, data in enumerate(inputs)]
