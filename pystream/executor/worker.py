"""The worker process: runs tasks sent by the driver, keeps partitions it is told to keep.

A worker is long-lived. Task functions arrive once (cloudpickled, keyed by digest) and are reused by every
later task; data arrives as references to frames in shared memory or to partitions the worker already holds.
When the driver goes away (its end of the pipe closes), the worker removes every shared-memory segment of
that driver, and the driver's multiprocessing directory (the forkserver's socket), and exits, so nothing
outlives a crashed driver.
"""

from __future__ import annotations

import collections
import gc
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import cloudpickle

from pystream import accumulators, broadcast, files
from pystream._core.aggregation import AggTable
from pystream._core.memory import install_arena_cache
from pystream._core.partitioning import set_num_threads
from pystream.barrier import BarrierTaskContext
from pystream.errors import BarrierSyncError, JobCancelledError
from pystream.executor import shm, tempdir
from pystream.executor.wire import (
    INLINE_LIMIT,
    Buckets,
    FrameReader,
    close_readers,
    decode_in,
    open_in,
    read_frame,
    write_frames,
)
from pystream.shuffle import TableSplit
from pystream.taskcontext import TaskContext, running


class Worker:
    def __init__(self, conn: Any, index: int, driver_pid: int, temp_dir: str | None = None) -> None:
        self.conn = conn
        self.index = index
        self.driver_pid = driver_pid
        self.temp_dir = temp_dir
        self.owner = f"w{index}"
        self.functions: dict[bytes, Any] = {}
        self.blocks: dict[int, Any] = {}
        self.next_block = 0
        self.dying: list[Any] = []  # freed partitions, to drop when idle (see run)
        self.inbox: collections.deque[tuple] = collections.deque()  # read ahead (see next_message)
        self.cancelled: set[int] = set()  # ids of tasks in the inbox whose job was cancelled
        # The driver's input segments are reused batch after batch; so is their mapping here (a new mapping
        # would fault in every page again).
        self.mapped: dict[str, shm.Segment] = {}

    # -- inputs -------------------------------------------------------------------------------------------
    def resolve(self, desc: tuple, readers: list[FrameReader | shm.Segment] | None = None) -> Any:
        """The task input ``desc`` describes. With ``readers`` (a task that streams its input), a frame is not
        decoded here but given as a FrameReader (a reduce task's buckets from other workers too); the readers,
        and the segments they read, are collected in ``readers`` to close after."""
        kind = desc[0]
        if kind == "obj":
            return desc[1]
        if kind == "frame":
            if readers is None:
                return read_frame(desc[1], desc[2], desc[3])
            seg = shm.Segment.attach(desc[1])
            try:
                reader = open_in(seg, desc[2], desc[3])
            except BaseException:
                seg.close()
                raise
            readers += (reader, seg)  # in this order: a segment closes once nothing reads it
            return reader
        if kind == "pooled":
            seg = self.mapped.get(desc[1])
            if seg is None:
                seg = self.mapped[desc[1]] = shm.Segment.attach(desc[1])
            if readers is None:
                return decode_in(seg, desc[2], desc[3])
            reader = open_in(seg, desc[2], desc[3])
            readers.append(reader)
            return reader
        if kind == "block":
            return self.blocks[desc[1]]
        if kind == "list":
            return Buckets(self.resolve(d, readers) for d in desc[1])
        if kind == "tuple":
            return tuple(self.resolve(d, readers) for d in desc[1])
        raise ValueError(f"unknown input description {kind!r}")

    # -- outputs ------------------------------------------------------------------------------------------
    def keep(self, value: Any) -> tuple:
        block_id = self.next_block
        self.next_block += 1
        self.blocks[block_id] = value
        return ("block", block_id, len(value) if isinstance(value, (list, AggTable)) else 1)

    def ship(self, value: Any) -> tuple:
        if isinstance(value, list) and len(value) > INLINE_LIMIT:
            seg, spans = write_frames([value], self.driver_pid, self.owner)
            seg.close()
            return ("frame", seg.name, spans[0][0], spans[0][1])
        return ("obj", value)

    def ship_buckets(self, buckets: list[list] | TableSplit, workers: int) -> tuple:
        # Reduce task j runs on worker j mod W: buckets bound for this worker stay here as blocks; only the
        # others are encoded into shared memory.
        remote = [j for j in range(len(buckets)) if j % workers != self.index]
        if isinstance(buckets, TableSplit):
            buckets = buckets.split(frames=remote)  # the remote ones encoded from the table, as frames
        local = {j: self.keep(buckets[j]) for j in range(len(buckets)) if j % workers == self.index}
        name, spans = None, {}
        if remote:
            seg, frame_spans = write_frames([buckets[j] for j in remote], self.driver_pid, self.owner)
            seg.close()
            name, spans = seg.name, dict(zip(remote, frame_spans))
        return ("buckets", name, [local[j] if j in local else ("frame", spans[j][0], spans[j][1])
                                  for j in range(len(buckets))])

    # -- loop ---------------------------------------------------------------------------------------------
    def next_message(self) -> tuple:
        """The next message to act on. Tasks wait in the pipe behind the one running: a "cancel" that came
        after them (their job was cancelled) is read ahead of them, so that they never start."""
        conn = self.conn
        while True:
            if not self.inbox:
                # Partitions the driver let go of are freed while it has nothing for this worker: freeing a map
                # task's bucket table took 1-4 ms, and came between the worker's map task and its reduce task.
                while self.dying and not conn.poll():
                    self.dying.pop()
                self.take(conn.recv())
            while conn.poll():
                self.take(conn.recv())
            if not self.inbox:
                continue
            msg = self.inbox.popleft()
            if msg[0] == "task" and msg[1] in self.cancelled:
                self.cancelled.discard(msg[1])  # the driver stopped waiting for it: no reply
                continue
            return msg

    def take(self, msg: tuple) -> None:
        """A message read from the driver: into the inbox, or, a cancel, acted on at once."""
        if msg[0] != "cancel":
            self.inbox.append(msg)
            return
        # Every task sent before the cancel was read by now: those not waiting here ran already.
        self.cancelled.update(set(msg[1]) & {m[1] for m in self.inbox if m[0] == "task"})

    def run(self) -> None:
        kind = None
        while True:
            try:
                msg = self.next_message()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "task":
                self.run_task(*msg[1:])
            elif kind == "fn":
                self.functions[msg[1]] = cloudpickle.loads(msg[2])
            elif kind == "main-class":
                define_main_class(msg[1], msg[2])
            elif kind == "broadcast":
                broadcast.receive(msg[1], msg[2])
            elif kind == "unbroadcast":
                broadcast.forget(msg[1])
            elif kind == "files":
                files.install(msg[1], msg[2], msg[3])
            elif kind == "free":
                self.dying += [self.blocks.pop(block_id) for block_id in msg[1] if block_id in self.blocks]
            elif kind == "forget":
                for name in msg[1]:
                    seg = self.mapped.pop(name, None)
                    if seg is not None:
                        seg.close()
            elif kind == "export":
                self.export(msg[1], msg[2])
            elif kind == "stop":
                break
        # The driver is gone: whatever it left in shared memory goes too. A driver still alive closed the pipe
        # itself (it took this worker for dead, say when the forkserver that started it died), and keeps its
        # shared memory.
        if kind != "stop" and not shm.pid_alive(self.driver_pid):
            self.clean_up_after_driver()

    def clean_up_after_driver(self) -> None:
        """What a driver that is gone left: its shared memory and its temporary directory."""
        shm.remove_with_prefix(shm.prefix_for(self.driver_pid))
        if self.temp_dir is not None:
            tempdir.remove(self.temp_dir)

    def export(self, request_id: int, block_id: int) -> None:
        try:
            block = self.blocks[block_id]
            if type(block) is AggTable:  # a map task's bucket: read elsewhere as its pairs
                block = block.items()
            seg, spans = write_frames([block], self.driver_pid, self.owner)
            seg.close()
            self.conn.send(("exported", request_id, ("frame", seg.name, spans[0][0], spans[0][1])))
        except BaseException as exc:  # a missing block or a failed write: the driver decides
            self.conn.send(("export-failed", request_id, f"{type(exc).__name__}: {exc}"))

    def barrier_sync(self, task_id: int, kind: str, message: str) -> list[str]:
        """A barrier task's sync (pystream.barrier): tell the driver, and wait until it releases every task of
        the stage, reading ahead what else comes (the cancel of this task raises here)."""
        interruptible, _interruptible[0] = _interruptible[0], False  # a message cut in half breaks the pipe
        try:
            self.conn.send(("barrier", task_id, kind, message))
            while True:
                msg = self.conn.recv()
                if msg[0] == "barrier-done" and msg[1] == task_id:
                    return msg[2]
                if msg[0] == "cancel" and task_id in msg[1]:
                    self.take(msg)  # tasks queued behind this one may be cancelled too
                    raise BarrierSyncError("the barrier stage was abandoned (another of its tasks failed, its job "
                                           "was cancelled, or a worker died) while this task waited")
                if msg[0] != "barrier-done":  # one for an abandoned attempt of this stage is dropped
                    self.take(msg)
        finally:
            _interruptible[0] = interruptible

    def run_task(self, task_id: int, digest: bytes, split: int, desc: bytes, out_mode: str,
                 info: tuple[int, int, int, dict[str, str], list[str] | None]) -> None:
        # A task that consumes its records in order says so (streams_input): its input frames are decoded a
        # chunk at a time as it goes, and each chunk is freed while still in cache.
        readers: list[FrameReader | shm.Segment] | None = None
        try:
            fn = self.functions[digest]
            if getattr(fn, "streams_input", False):
                readers = []
            # The input's description comes pickled apart from the message: records that cannot be unpickled
            # here fail this task (with the reason), instead of breaking the pipe.
            desc = pickle.loads(desc)
            data = self.resolve(desc, readers)
            accumulators.start_task()
            stage_id, attempt, attempt_id, properties, barrier_peers = info
            if barrier_peers is None:
                context = TaskContext(split, stage_id, attempt, attempt_id, properties)
            else:
                context = BarrierTaskContext(split, stage_id, attempt, attempt_id, properties,
                                             lambda kind, message: self.barrier_sync(task_id, kind, message),
                                             barrier_peers)
            # Until the output is shipped: a lazy result runs the user's code while it is read.
            with running(context):
                _interruptible[0] = True
                try:
                    result = fn(split, data)
                    if out_mode == "keep":
                        reply = self.keep(result if isinstance(result, list) else list(result))
                    elif out_mode.startswith("buckets"):
                        reply = self.ship_buckets(result, int(out_mode.split(":")[1]))
                    else:
                        reply = self.ship(result)
                finally:
                    _interruptible[0] = False
            if readers:
                # The input arena reuses the memory once the task is done: no reader may outlive it.
                close_readers(readers)
            # Reply first, free after: the driver moves on while this worker drops the task's objects (a map
            # task's input and table took 2 ms to free, on the critical path of every stage change).
            # What the task added to accumulators travels with its reply: the driver adds it in only for a task
            # whose result it takes (never for one that failed, or one a dead worker never finished).
            # Pickled here, as bytes: a reply the driver cannot unpickle then fails this task there, and no
            # other reply is left unread in the pipe.
            self.conn.send(("done", task_id, pickle.dumps((reply, accumulators.task_updates()), _PROTOCOL)))
            del data, result
            _collect_task_garbage()
        except BaseException as exc:
            if readers:
                close_readers(readers)
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            try:
                blob = cloudpickle.dumps(exc)
                pickle.loads(blob)
            except Exception:
                blob = None
            self.conn.send(("failed", task_id, type(exc).__name__, _safe_str(exc), tb, blob))
            # SystemExit or KeyboardInterrupt too: only the task's code raises them here (workers ignore
            # SIGINT), and ending the worker would lose the partitions it keeps.
            del exc
            _collect_task_garbage()


_PROTOCOL = pickle.HIGHEST_PROTOCOL


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ fails still reports its type
        return f"<{type(exc).__name__}: str() failed>"


def define_main_class(name: str, payload: bytes) -> None:
    """Make a class of the driver's __main__ (its script) importable here as ``__main__.<name>``: records of it
    then unpickle in this worker, which never imports the driver's script."""
    try:
        cls = cloudpickle.loads(payload)
    except Exception as exc:  # such records then fail their task, saying why
        sys.stderr.write(f"pystream worker: class __main__.{name} of the driver could not be defined: {exc!r}\n")
        return
    setattr(sys.modules["__main__"], name, cls)


# Whether a task runs, so that SIGUSR1 (the driver cancelling its job with interruptOnCancel) may stop it.
# Never while the worker talks to the driver: a message cut in half would break the connection.
_interruptible = [False]


def _interrupt(signum: int, frame: Any) -> None:
    if _interruptible[0]:
        _interruptible[0] = False
        raise JobCancelledError("task interrupted: its job was cancelled")


def _collect_task_garbage() -> None:
    gc.collect(0)
    gc.freeze()


def watch_driver(driver_pid: int, clean_up: Callable[[], None]) -> None:
    """End this worker as soon as its driver is gone, even in the middle of a task that would run for hours:
    a driver killed with SIGKILL (or SIGTERM, the signal of kill, docker and systemd) tells its workers
    nothing, and they would only notice at their next message. A thread waits on the driver's pidfd (polls,
    where there is none), then removes what the driver left in shared memory and exits."""

    def watch() -> None:
        try:
            fd = os.pidfd_open(driver_pid)
        except ProcessLookupError:
            fd = -1  # gone already
        except (OSError, AttributeError):
            fd = None
        if fd is None:
            while shm.pid_alive(driver_pid):
                time.sleep(0.5)
        elif fd >= 0:
            select.select([fd], [], [])  # readable once the driver has exited
        try:
            clean_up()
        finally:
            os._exit(0)

    threading.Thread(target=watch, name="pystream-driver-watch", daemon=True).start()


def main(conn: Any, index: int, driver_pid: int, arena_cache_bytes: int = 0,
         temp_dir: str | None = None) -> None:
    """Entry point of a worker process."""
    # Each batch builds and drops millions of small objects; CPython would unmap the emptied arenas and fault
    # fresh pages in for the next batch (see csrc/ps_arena.h).
    install_arena_cache(arena_cache_bytes)
    # The pool already runs a worker per core: a partition() that scattered on threads of its own here would
    # only take the core of another worker.
    set_num_threads(1)
    # Ctrl-C in a terminal reaches the whole process group; the driver decides how workers end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, _interrupt)
    # Workers allocate millions of records per batch next to large long-lived partitions and state. Left to
    # itself, CPython's cyclic collector re-walks those again and again (measured: a 5 ms reduce task took
    # 40 ms). Instead it runs once per task, over what the task made, and then freezes the survivors: kept
    # partitions are never walked again, and freed by reference counting as usual.
    gc.disable()
    gc.freeze()
    code = 0
    worker = Worker(conn, index, driver_pid, temp_dir)
    watch_driver(driver_pid, worker.clean_up_after_driver)
    try:
        worker.run()
    except BaseException as exc:
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, EOFError)) and not shm.pid_alive(driver_pid):
            worker.clean_up_after_driver()  # the driver died while a task ran: nobody to tell
        else:
            # Outside any task (a message that could not be read, say): the driver sees the worker die, with a
            # non-zero exit code, and this traceback is on the worker's stderr.
            traceback.print_exc()
            code = 1
    finally:
        try:
            conn.close()
        except OSError:
            pass
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
