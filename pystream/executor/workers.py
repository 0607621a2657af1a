"""Worker processes as the driver sees them: their handles, starting them without the user's __main__, joining
them within one grace period, and the exceptions their failed tasks come back as."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

import cloudpickle

from pystream.errors import TaskFailedError
from pystream.executor import shm


class WorkerHandle:
    """The driver's side of one worker process: its pipe, and what it has been sent and is running."""


    def __init__(self, index: int, incarnation: int, process: Any, conn: Any) -> None:
        self.index = index
        self.incarnation = incarnation
        self.process = process
        self.conn = conn
        self.functions: set[bytes] = set()
        self.main_classes: dict[str, bytes] = {}  # the driver script's classes it was sent, by name
        self.broadcasts: set[int] = set()  # ids of the broadcast values it holds
        self.running: dict[int, Any] = {}
        self.catches_interrupt = False  # known to have its SIGUSR1 handler (see catches_signal)


def catches_signal(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` installed (Linux: SigCgt in /proc/<pid>/status).
    A worker still starting has none yet, and the signal's default action would end it."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def is_orphaned_worker(pid: int) -> bool:
    """Whether ``pid`` is still a live pystream worker of this driver's pool after its parent (the forkserver)
    died: a multiprocessing child whose parent is no longer the forkserver. A pid reused since by another
    program is never one (its command line differs)."""
    fields = shm.proc_stat(pid)
    if fields is None:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
        with open(f"/proc/{fields[1]}/cmdline", "rb") as fh:
            parent = fh.read()
    except OSError:
        return False
    # Its parent no forkserver any more: a pid reused by a live worker of another driver has one.
    return (fields[0] != "Z" and b"multiprocessing" in cmdline and b"pystream.executor.worker" in cmdline
            and b"multiprocessing.forkserver" not in parent)


def close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, OSError):
        pass


def join_all(workers: list[WorkerHandle], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for w in workers:
        w.process.join(max(0.0, deadline - time.monotonic()))


@contextlib.contextmanager
def main_hidden():
    """Start workers without re-importing the driver's __main__ in them.

    multiprocessing would otherwise run the user's script again in every worker, which breaks pyspark-style
    scripts that have no ``if __name__ == "__main__"`` guard. Workers need nothing from __main__: task
    functions arrive cloudpickled, and cloudpickle carries __main__'s functions by value.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__["__spec__"] = None
            main.__dict__.pop("__file__", None)
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)
            if "__spec__" not in saved:
                main.__dict__.pop("__spec__", None)


def remote_error(type_name: str, message: str, tb: str, blob: bytes | None, split: int, worker: int
                  ) -> BaseException:
    header = f"task {split} failed in worker {worker}: {type_name}: {message}"
    if blob is not None:
        try:
            exc = cloudpickle.loads(blob)
        except Exception:
            exc = None
        if isinstance(exc, Exception):
            exc.__cause__ = RemoteTraceback(tb)
            return exc
    # SystemExit, KeyboardInterrupt and their like from a task fail its job, as in pyspark: raised as they are in
    # the driver, they would end the driver's thread (a streaming job thread: every later batch stalls).
    err = TaskFailedError(header, tb)
    err.__cause__ = RemoteTraceback(tb)
    return err


class RemoteTraceback(Exception):
    """The worker-side traceback of a task's exception (shown as the exception's cause)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'
