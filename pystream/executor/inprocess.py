"""The in-process executor: runs every task in the driver's thread, in order. For debugging and tests."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from typing import Any

from pystream.accumulators import held_updates
from pystream.errors import JobCancelledError
from pystream.executor.base import Executor, StageMonitor
from pystream.taskcontext import TaskContext, local_properties, running


class InProcessExecutor(Executor):
    """Runs tasks one after the other in the calling thread; exceptions propagate unchanged. A task's
    accumulator updates are held aside and added when it returns, as the process executor adds them."""

    def __init__(self, parallelism: int = 1) -> None:
        self.parallelism = max(1, int(parallelism))
        self._stages = itertools.count()
        self._tasks = itertools.count()
        self._saved_environment: dict[str, str | None] = {}

    def share_files(self, root: str | None, python_paths: list[str],
                    environment: dict[str, str] | None = None) -> None:
        # Tasks run in the driver: the tasks' environment is the driver's own until stop(), which restores it.
        for key, value in (environment or {}).items():
            self._saved_environment.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def stop(self) -> None:
        saved, self._saved_environment = self._saved_environment, {}
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def run_tasks(self, fn: Callable[[int, Any], Any], inputs: Sequence[Any], *, stage: str = "",
                  keep: bool = False, monitor: StageMonitor | None = None) -> list[Any]:
        monitor = monitor or StageMonitor()
        stage_id = next(self._stages) if monitor.stage_id is None else monitor.stage_id
        props = dict(local_properties())
        out = []
        for i, data in enumerate(inputs):
            # A task here cannot be interrupted: a cancelled job stops before its next task.
            reason = monitor.cancelled()
            if reason is not None:
                raise JobCancelledError(reason)
            monitor.task_started(i)
            ok = False
            try:
                with held_updates() as held, running(TaskContext(i, stage_id, 0, next(self._tasks), props)):
                    out.append(fn(i, data))
                held.apply()
                ok = True
            finally:
                monitor.task_ended(i, ok)
        return out
