"""The in-process executor: runs every task in the driver's thread, in order. For debugging and tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pystream.accumulators import held_updates
from pystream.executor.base import Executor


class InProcessExecutor(Executor):
    """Runs tasks one after the other in the calling thread; exceptions propagate unchanged. A task's
    accumulator updates are held aside and added when it returns, as the process executor adds them."""

    def __init__(self, parallelism: int = 1) -> None:
        self.parallelism = max(1, int(parallelism))

    def run_tasks(self, fn: Callable[[int, Any], Any], inputs: Sequence[Any], *, stage: str = "",
                  keep: bool = False) -> list[Any]:
        out = []
        for i, data in enumerate(inputs):
            with held_updates() as held:
                out.append(fn(i, data))
            held.apply()
        return out
