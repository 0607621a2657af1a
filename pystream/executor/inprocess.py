"""The in-process executor: runs every task in the driver's thread, in order. For debugging and tests."""

from __future__ import annotations

import itertools
import os
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from pystream.accumulators import held_updates
from pystream.barrier import BarrierTaskContext
from pystream.errors import BarrierSyncError, JobCancelledError, TaskFailedError
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
        if monitor.barrier is not None:
            return self._run_barrier(fn, inputs, stage_id, props, monitor)
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
            except SystemExit as exc:
                # sys.exit() in a task fails its job, as on the process executor (not the driver).
                tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                raise TaskFailedError(f"task {i} failed: SystemExit: {exc}", tb) from exc
            finally:
                monitor.task_ended(i, ok)
        return out

    def _run_barrier(self, fn: Callable[[int, Any], Any], inputs: Sequence[Any], stage_id: int,
                     props: dict[str, str], monitor: StageMonitor) -> list[Any]:
        """A barrier stage: every task at once, each in a thread of its own, syncing through the coordinator."""
        reason = monitor.cancelled()
        if reason is not None:
            raise JobCancelledError(reason)
        coordinator = monitor.barrier
        address = f"127.0.0.1:{os.getpid()}"
        addresses = [address] * len(inputs)
        out: list[Any] = [None] * len(inputs)
        errors: list[tuple[int, BaseException]] = []

        def task(i: int, data: Any) -> None:
            monitor.task_started(i)
            ok = False
            context = BarrierTaskContext(i, stage_id, 0, next(self._tasks), props,
                                         lambda kind, message: coordinator.wait(i, kind, message), addresses)
            try:
                with held_updates() as held, running(context):
                    out[i] = fn(i, data)
                held.apply()
                ok = True
            except BaseException as exc:
                errors.append((i, exc))
                # The others may wait at a sync this task will never reach.
                coordinator.fail(f"task {i} of the barrier stage failed: {type(exc).__name__}: {exc}")
            finally:
                coordinator.finish(i)
                monitor.task_ended(i, ok)

        threads = [threading.Thread(target=task, args=(i, data), name=f"pystream-barrier-task-{i}", daemon=True)
                   for i, data in enumerate(inputs)]
        for t in threads:
            t.start()
        # Until every task is done, or the stage failed: a task that never reaches a sync (a timeout) is not
        # waited for; it cannot be interrupted, and its next sync raises.
        while any(t.is_alive() for t in threads) and coordinator.overdue() is None:
            for t in threads:
                t.join(0.05)
            cancelled = monitor.cancelled()
            if cancelled is not None:
                coordinator.fail(f"the job was cancelled: {cancelled}")
                raise JobCancelledError(cancelled)
        failed = [e for e in errors if not isinstance(e[1], BarrierSyncError)] or errors
        if failed:
            # The task that failed first, not the BarrierSyncErrors its failure caused in the others.
            raise min(failed, key=lambda e: e[0])[1]
        why = coordinator.overdue()
        if why is not None:
            raise BarrierSyncError(why)
        return out
