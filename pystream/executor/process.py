"""The process-pool executor: long-lived worker processes, data through shared memory.

* Workers start once per context from a forkserver (never a fork of the threaded driver) and live until
  ``stop()``. Task i of every stage runs on worker ``i mod W``, so partition p of a state stream is computed,
  kept and updated on the same worker batch after batch: state never travels.
* Task functions are cloudpickled; a worker receives each distinct function once (keyed by digest).
* Inputs from the driver are record frames written into shared memory; shuffle map outputs are frames in
  shared memory that reduce tasks decode in place; partitions of persisted RDDs stay in the worker that made
  them (``BlockRef``) until the driver drops the last reference.
* A worker that dies is noticed at once (its process sentinel), replaced, and its tasks retried up to
  ``spark.task.maxFailures`` times (default 4). Partitions it was keeping are lost: a task that needs one
  fails with StateLostError.
* ``stop()``, an exception, Ctrl-C or interpreter exit leave no worker and no shared-memory segment behind;
  if the driver is killed, the workers notice the closed pipe, remove its segments (and multiprocessing's
  directory, where the forkserver's socket is) and exit.

Beside this module: ``refs`` (what the driver holds of data living in workers or shared memory), ``release``
(when the driver frees what it let go) and ``workers`` (the processes: handles, start, join, their errors).
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.util
import os
import pickle
import signal
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from pystream import accumulators, pickling, taskcontext
from pystream.broadcast import Broadcast
from pystream.cores import usable_cores
from pystream.errors import (BarrierSyncError, IllegalArgumentError, IllegalStateError, JobCancelledError,
                             StateLostError, TaskFailedError, UnserializableRecordError, WorkerLostError)
from pystream.executor import shm, tempdir
from pystream.executor.base import Executor, StageMonitor
from pystream._core.partitioning import partition_frames
from pystream.executor.arena import InputArena
from pystream.executor.refs import BlockRef, FrameRef, PooledFrame, SharedSegment
from pystream.executor.release import Releasing
from pystream.executor.wire import Buckets, copy_into_segment, write_records
from pystream.executor.workers import (WorkerHandle, catches_signal, close_fds, drain, is_orphaned_worker,
                                       join_all, main_hidden, remote_error)

logger = logging.getLogger(__name__)

_PROTOCOL = pickle.HIGHEST_PROTOCOL

MAX_FAILURES_KEY = "spark.task.maxFailures"
START_METHOD_KEY = "spark.pystream.executor.startMethod"
#: Freed allocator arenas each worker keeps mapped for the next batch (pystream._core.memory), in MiB.
ARENA_CACHE_KEY = "spark.pystream.worker.arenaCacheMB"
#: Idle input segments the driver keeps for its next inputs (written again without page faults), in MiB.
INPUT_ARENA_KEY = "spark.pystream.driver.inputArenaMB"

_live_executors: weakref.WeakSet = weakref.WeakSet()

#: Driver inputs of at most this many records travel inside the task message instead of shared memory.
_INLINE_RECORDS = 64


class _Shipment(NamedTuple):
    """What a stage sends its workers besides inputs: its task function pickled (and the digest a worker keeps
    it by), the broadcasts it reads, what a task does with its output (out_mode), and what its tasks' TaskContext
    tells them."""

    digest: bytes
    payload: bytes
    broadcasts: list[Broadcast]
    out_mode: str
    stage_id: int
    properties: dict[str, str]  # the local properties of the driver thread that runs the stage
    monitor: StageMonitor  # hears of each task's start and end, and tells whether the job was cancelled
    main_classes: list[tuple[str, bytes]]  # the driver script's classes, for records of them (pickling.py)


class _BarrierRestart(Exception):
    """A worker died in a barrier stage: every task of the stage starts again."""

    def __init__(self, attempts: int) -> None:
        super().__init__(attempts)
        self.attempts = attempts


class _Task:
    __slots__ = ("task_id", "split", "data", "attempts", "worker", "keepalive", "started")

    def __init__(self, task_id: int, split: int, data: Any, worker: int) -> None:
        self.task_id, self.split, self.data, self.worker = task_id, split, data, worker
        self.attempts = 0
        self.keepalive: list = []
        self.started = False  # told to the stage's monitor (a task waits in its worker's pipe until then)


class ProcessExecutor(Releasing, Executor):
    """Runs tasks in ``parallelism`` worker processes; see the module docstring for the rules."""

    def __init__(self, parallelism: int, conf: Any = None) -> None:
        self.parallelism = max(1, int(parallelism))
        self.max_failures = conf.getInt(MAX_FAILURES_KEY, 4) if conf is not None else 4
        if self.max_failures < 1:
            raise IllegalArgumentError(f"{MAX_FAILURES_KEY} must be at least 1, got {self.max_failures}")
        self._arena_cache_mb = conf.getInt(ARENA_CACHE_KEY, 256) if conf is not None else 256
        if not 0 <= self._arena_cache_mb <= 1 << 20:  # at most 1 TiB: a worker must be able to hold it
            raise IllegalArgumentError(f"{ARENA_CACHE_KEY} must be 0 to 1048576 (MiB), got {self._arena_cache_mb}")
        method = (conf.get(START_METHOD_KEY) if conf is not None else None) or "forkserver"
        if method not in multiprocessing.get_all_start_methods() or method == "fork":
            # A plain fork of a driver that runs threads can copy a lock some thread holds: never done.
            logger.warning("%s=%s is not available here or not safe; workers start with spawn", START_METHOD_KEY,
                           method)
            method = "spawn"
        self._ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            self._ctx.set_forkserver_preload(["pystream.executor.worker"])
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._ids = itertools.count()
        self._workers: list[WorkerHandle] = []
        self._init_releasing()
        self._runs = 0
        self._cores = usable_cores()
        self._stopped = False
        self._stop_once = threading.Lock()
        # wake(): a byte here ends a stage's wait for its tasks, to look at its job's cancellation at once.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        # Closed with the executor object, not by stop(): a wake() after stop() must not write to a reused fd.
        weakref.finalize(self, close_fds, self._wake_r, self._wake_w)
        self._incarnations = itertools.count()
        # SparkFiles' directory, addPyFile's python paths and the tasks' environment (share_files), for every
        # worker, replacements too.
        self._files: tuple[str | None, list[str], dict[str, str]] | None = None
        idle_mb = conf.getInt(INPUT_ARENA_KEY, 256) if conf is not None else 256
        if idle_mb < 0:
            raise ValueError(f"{INPUT_ARENA_KEY} must be >= 0, got {idle_mb}")
        self._arena = InputArena(self._pid, max_free=2 * self.parallelism + 2, max_free_bytes=idle_mb << 20)
        stale = shm.remove_stale()
        if stale:
            logger.info("removed %d shared-memory segments left by drivers that died", len(stale))
        stale = tempdir.remove_stale()
        if stale:
            logger.info("removed %d multiprocessing directories left by drivers that died", len(stale))
        try:
            for i in range(self.parallelism):
                self._workers.append(self._start_worker(i))
        except BaseException:
            self.stop()
            raise
        _live_executors.add(self)

    # -- workers ------------------------------------------------------------------------------------------
    def share_files(self, root: str | None, python_paths: list[str],
                    environment: dict[str, str] | None = None) -> None:
        with self._lock:
            self._files = (root, python_paths, environment or {})
            for w in self._workers:
                self._send_files(w)

    def _send_files(self, w: WorkerHandle) -> None:
        if self._files is not None and w.process.is_alive():
            try:
                w.conn.send(("files", *self._files))
            except OSError:
                pass  # the worker died: its replacement is sent them

    def _start_worker(self, index: int) -> WorkerHandle:
        from pystream.executor.worker import main

        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=main, args=(child, index, self._pid, self._arena_cache_mb << 20,
                                                    tempdir.of_this_driver()),
                                 name=f"pystream-worker-{index}", daemon=True)
        with main_hidden():
            proc.start()
        child.close()
        return WorkerHandle(index, next(self._incarnations), proc, parent)

    @property
    def worker_pids(self) -> list[int]:
        """PIDs of the live worker processes (for tests and monitoring)."""
        return [w.process.pid for w in self._workers if w.process.is_alive()]

    def _replace_worker(self, w: WorkerHandle) -> WorkerHandle:
        if self._stopped:
            # stop() is waiting for this thread to let go: a worker started now would outlive the executor.
            raise IllegalStateError("the executor has been stopped")
        logger.warning("worker %d (pid %s) died; starting a replacement", w.index, w.process.pid)
        try:
            w.conn.close()
        except OSError:
            pass
        w.process.join(1.0)
        if is_orphaned_worker(w.process.pid):
            # Taken for dead because the forkserver that started it died (its exit status came from there),
            # but alive, maybe in a long task: it would run on unseen, beside its replacement.
            os.kill(w.process.pid, signal.SIGKILL)
        # What the dead worker wrote and never reported would otherwise stay in /dev/shm.
        shm.remove_with_prefix(f"{shm.prefix_for(self._pid)}w{w.index}_{w.process.pid}_")
        new = self._start_worker(w.index)
        self._workers[w.index] = new
        self._send_files(new)
        return new

    def has_lost(self, partitions: Sequence[Any]) -> bool:
        for part in partitions:
            if isinstance(part, BlockRef):
                w = self._workers[part.worker] if part.worker < len(self._workers) else None
                if w is None or w.incarnation != part.incarnation or not w.process.is_alive():
                    return True
        return False

    def _describe(self, data: Any, worker: WorkerHandle, keepalive: list) -> tuple:
        if isinstance(data, BlockRef):
            if self._workers[data.worker].incarnation != data.incarnation:
                raise StateLostError(
                    f"a partition kept by worker {data.worker} was lost when that worker died, and what reads it "
                    "could not compute it again (its lineage was cut, and no checkpoint holds it)")
            if data.worker == worker.index:
                return ("block", data.block_id)
            frame = self._export(data)
            keepalive.append(frame)
            return ("frame", frame.segment.name, frame.offset, frame.length)
        if isinstance(data, PooledFrame):
            keepalive.append(data.lease)
            return ("pooled", data.lease.name, 0, data.lease.length)
        if isinstance(data, FrameRef):
            keepalive.append(data)
            return ("frame", data.segment.name, data.offset, data.length)
        if isinstance(data, Buckets):
            return ("list", [self._describe(d, worker, keepalive) for d in data])
        if isinstance(data, tuple) and data and any(isinstance(d, (list, BlockRef, FrameRef, PooledFrame))
                                                    for d in data):
            return ("tuple", [self._describe(d, worker, keepalive) for d in data])
        if isinstance(data, list) and len(data) > _INLINE_RECORDS:
            lease = self._arena.write(data)
            if lease is not None:
                keepalive.append(lease)
                return ("pooled", lease.name, 0, lease.length)
            seg, n = write_records(data, self._pid, "d")
            seg.close()
            owner = SharedSegment(seg.name)
            keepalive.append(owner)
            return ("frame", seg.name, 0, n)
        return ("obj", data)

    def hold(self, parts: list[list]) -> list[Any]:
        # Encoded once into the input arena, for every task that will read them; small lists travel inline.
        out: list[Any] = []
        for part in parts:
            lease = None
            if type(part) is list and len(part) > _INLINE_RECORDS:
                with self._lock:
                    if self._stopped:
                        raise IllegalStateError("the executor has been stopped")
                    lease = self._arena.write(part)
            out.append(part if lease is None else PooledFrame(lease, len(part)))
        return out

    def partition_on_driver(self, parts: list[list], num_partitions: int) -> list[Any]:
        # Split and encoded in one pass, straight into the frames the tasks will read: no lists of the
        # partitions, and no second pass over the records to encode each one.
        out: list[Any] = []
        for writer in partition_frames(parts, num_partitions):
            with self._lock:
                if self._stopped:
                    raise IllegalStateError("the executor has been stopped")
                lease = self._arena.write_frame(writer)
            if lease is not None:
                out.append(PooledFrame(lease, writer.count))
                continue
            seg = shm.Segment.create(shm.new_name(self._pid, "d"), len(writer))
            owner = SharedSegment(seg.name)
            try:
                n = copy_into_segment(writer, seg)
            finally:
                seg.close()
            out.append(FrameRef(owner, 0, n))
        return out

    def _export(self, ref: BlockRef) -> FrameRef:
        """Ask the worker holding ``ref`` to write it into shared memory (a partition needed elsewhere)."""
        w = self._workers[ref.worker]
        request = next(self._ids)
        w.conn.send(("export", request, ref.block_id))
        while True:
            msg = self._recv(w)
            if msg[0] == "exported" and msg[1] == request:
                desc = msg[2]
                return FrameRef(SharedSegment(desc[1]), desc[2], desc[3])
            if msg[0] == "export-failed" and msg[1] == request:
                raise StateLostError(f"worker {ref.worker} could not export a kept partition: {msg[2]}")
            self._early.append((w, msg))

    def _recv(self, w: WorkerHandle) -> tuple:
        while True:
            ready = multiprocessing.connection.wait([w.conn, w.process.sentinel])
            if w.conn in ready:
                try:
                    return w.conn.recv()
                except (EOFError, OSError):
                    pass
            if not w.process.is_alive():
                raise StateLostError(f"worker {w.index} died while exporting a kept partition")

    # -- running ------------------------------------------------------------------------------------------
    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # full: a wake is already pending; closed: stopped

    def run_tasks(self, fn: Callable[[int, Any], Any], inputs: Sequence[Any], *, stage: str = "",
                  keep: bool = False, monitor: StageMonitor | None = None) -> list[Any]:
        if self._stopped:
            raise IllegalStateError("the executor has been stopped")
        if not inputs:
            return []
        payload, broadcasts = pickling.dumps_task(fn)
        out_mode = f"buckets:{self.parallelism}" if stage == "shuffle-map" else ("keep" if keep else "ship")
        with self._lock:
            self._runs += 1
            run = self._runs
            monitor = monitor or StageMonitor()
            shipment = _Shipment(hashlib.blake2b(payload, digest_size=16).digest(), payload, broadcasts, out_mode,
                                 run if monitor.stage_id is None else monitor.stage_id,
                                 dict(taskcontext.local_properties()), monitor, pickling.main_classes())
            self._early: list = []
            self._heal()  # a worker that died between stages is replaced before anything is sent to it
            # Before the tasks: a broadcast unpersisted, and used again by this stage, is then sent again.
            self._forget_broadcasts()
            tasks = {}
            results: dict[int, Any] = {}
            try:
                # Each input read just before its task is sent: reading one may encode it (a partition the
                # driver holds as objects), which then overlaps the tasks already sent.
                for split, data in enumerate(inputs):
                    self._check_cancelled(shipment)
                    task = _Task(next(self._ids), split, data, split % self.parallelism)
                    tasks[task.task_id] = task
                    self._submit(task, shipment)
                # The workers are busy: the driver frees what it discarded meanwhile, not before their tasks, and
                # on a core no task runs on (now, or once a task is done: see _collect).
                if self._spare_core():
                    self._drop_discarded(until=self._replied)
                # After the tasks, not before: a worker frees what the last stage left while the driver waits,
                # instead of before its task (freeing a stage's buckets took up to 3 ms).
                self._flush_released()
                while True:
                    try:
                        self._collect(tasks, results, shipment)
                        break
                    except _BarrierRestart as restart:
                        tasks = self._restart_barrier(tasks, results, shipment, restart.attempts)
                # What was discarded before the last run and is still here found no spare core and no idle
                # driver: it goes now, so that a driver that is never idle does not keep it for long.
                self._drop_discarded(ran=run - 1)
            except BaseException as exc:
                if shipment.monitor.barrier is not None:
                    # Its other tasks may wait at a sync that will never complete: release them.
                    shipment.monitor.barrier.fail("the barrier stage failed")
                    self._abandon_running()
                elif not isinstance(exc, JobCancelledError):  # (a cancel chose whether to interrupt already)
                    # The job failed (a task raised, a worker died too often, Ctrl-C): its tasks still queued
                    # are of no use, and never start; else the next job (the next batch) waited for all of them.
                    # Those running finish (interrupted, one could leave a block half kept).
                    self._abandon_running(interrupt=False)
                for w in self._workers:
                    w.running.clear()
                if any(not w.process.is_alive() for w in self._workers):
                    self._heal()
                raise
            return [results[t.task_id] for t in sorted(tasks.values(), key=lambda t: t.split)]

    def _submit(self, task: _Task, shipment: _Shipment) -> None:
        w = self._workers[task.worker]
        task.keepalive = []
        desc = self._describe(task.data, w, task.keepalive)
        try:
            blob = pickle.dumps(desc, _PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise UnserializableRecordError(
                f"a record of task {task.split}'s input cannot be pickled to reach a worker process ({exc}); "
                "records cross processes pickled, as in pyspark (spark.pystream.executor=inprocess keeps them "
                "as they are)") from exc
        task.started = False
        w.running[task.task_id] = task
        try:
            for b in shipment.broadcasts:
                if b._bid not in w.broadcasts:
                    w.conn.send(("broadcast", b._bid, b.dump()))
                    w.broadcasts.add(b._bid)
            if shipment.digest not in w.functions:
                w.conn.send(("fn", shipment.digest, shipment.payload))
                w.functions.add(shipment.digest)
            for name, payload in shipment.main_classes:
                if w.main_classes.get(name) is not payload:
                    w.conn.send(("main-class", name, payload))
                    w.main_classes[name] = payload
            w.conn.send(("task", task.task_id, shipment.digest, task.split, blob,
                         shipment.out_mode,
                         (shipment.stage_id, task.attempts, next(self._ids), shipment.properties,
                          self._barrier_peers(shipment))))
            self._started(w, shipment)
        except OSError:
            # The worker died under us; the sentinel will report it and the task is retried.
            pass

    def _collect(self, tasks: dict[int, _Task], results: dict[int, Any], shipment: _Shipment) -> None:
        while len(results) < len(tasks):
            if self._stopped:
                # stop() waits for the lock this run holds: give it up within one wait, not after the tasks.
                raise IllegalStateError("the executor has been stopped")
            early, self._early = self._early, []
            for w, msg in early:
                self._handle(w, msg, tasks, results, shipment)
            if len(results) >= len(tasks):
                break
            self._check_cancelled(shipment)
            if shipment.monitor.barrier is not None:
                why = shipment.monitor.barrier.overdue()
                if why is not None:
                    raise BarrierSyncError(why)
            if self._discarded and self._spare_core():
                self._drop_discarded(until=self._replied)
            busy = [w for w in self._workers if w.running]
            waitables: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy] + [self._wake_r]
            ready = multiprocessing.connection.wait(waitables, timeout=1.0)
            if self._wake_r in ready:
                drain(self._wake_r)
            for w in busy:
                if w.conn in ready:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None:
                        self._handle(w, msg, tasks, results, shipment)
                        continue
                if w.process.sentinel in ready or not w.process.is_alive():
                    self._worker_died(w, shipment)

    def _started(self, w: WorkerHandle, shipment: _Shipment) -> None:
        # A worker runs its tasks one at a time, in the order sent: the first of those it has not finished runs.
        task = next(iter(w.running.values()), None)
        if task is not None and not task.started:
            task.started = True
            shipment.monitor.task_started(task.split)

    def _check_cancelled(self, shipment: _Shipment) -> None:
        reason = shipment.monitor.cancelled()
        if reason is None:
            return
        # Spark interrupts a cancelled job's task threads when asked to; a barrier stage's are always stopped.
        self._abandon_running(interrupt=shipment.monitor.interrupt or shipment.monitor.barrier is not None)
        # The stage's replies that still come are dropped (run_tasks forgets its tasks).
        raise JobCancelledError(reason)

    def _handle(self, w: WorkerHandle, msg: tuple, tasks: dict, results: dict, shipment: _Shipment) -> None:
        kind, task_id = msg[0], msg[1]
        if kind == "barrier":
            self._barrier_sync(w, msg, tasks, shipment)
            return
        task = w.running.pop(task_id, None)
        if task is None:
            if kind == "done":
                try:
                    reply = pickle.loads(msg[2])[0]
                except Exception:  # a result no one waits for, which cannot be read either: nothing to free
                    return
                self._drop_reply(w, reply)
            return
        shipment.monitor.task_ended(task.split, kind == "done")
        barrier = shipment.monitor.barrier
        if barrier is not None and kind == "done":
            why = barrier.finish(task.split)
            if why is not None:
                raise BarrierSyncError(why)
        self._started(w, shipment)
        if kind == "done":
            try:
                reply, updates = pickle.loads(msg[2])
            except Exception as exc:
                raise TaskFailedError(
                    f"task {task.split} ran in worker {w.index}, but the driver could not unpickle its result: "
                    f"{type(exc).__name__}: {exc}", "") from exc
            results[task_id] = self._result(w, reply)
            accumulators.apply_updates(updates)
        elif kind == "failed":
            _, _, type_name, message, tb, blob = msg
            raise remote_error(type_name, message, tb, blob, task.split, w.index)

    def _drop_reply(self, w: WorkerHandle, reply: tuple) -> None:
        # The outputs of a task no one waits for any more (a stage that failed while it ran): the references
        # made here go at once, which frees the worker's blocks and unlinks the segments, as for any result.
        if reply[0] == "frame":
            shm.unlink(reply[1])
        elif reply[0] in ("block", "buckets"):
            self._result(w, reply)

    def _result(self, w: WorkerHandle, reply: tuple) -> Any:
        kind = reply[0]
        if kind == "block":
            return BlockRef(self, w.index, w.incarnation, reply[1], reply[2])
        if kind == "buckets":
            seg = SharedSegment(reply[1]) if reply[1] is not None else None
            return [BlockRef(self, w.index, w.incarnation, b[1], b[2]) if b[0] == "block"
                    else FrameRef(seg, b[1], b[2]) for b in reply[2]]
        if kind == "frame":
            seg = SharedSegment(reply[1])
            return FrameRef(seg, reply[2], reply[3]).load()
        return reply[1]

    def _worker_died(self, w: WorkerHandle, shipment: _Shipment) -> None:
        lost = list(w.running.values())
        new = self._replace_worker(w)
        if shipment.monitor.barrier is not None and lost:
            # Spark relaunches every task of a barrier stage: the others wait for the lost one at its syncs.
            raise _BarrierRestart(max(t.attempts for t in lost) + 1)
        for task in lost:
            if task.started:  # the one it was running failed; those waiting behind it are only sent again
                shipment.monitor.task_ended(task.split, False)
                task.attempts += 1
            if task.attempts >= self.max_failures:
                raise WorkerLostError(
                    f"task {task.split} failed {task.attempts} times: its worker process died each time "
                    f"(last exit code {w.process.exitcode})")
            logger.warning("retrying task %d on a new worker %d (attempt %d)", task.split, new.index,
                           task.attempts + 1)
            self._submit(task, shipment)

    # -- barrier stages (pystream.barrier) ------------------------------------------------------------------
    def _barrier_peers(self, shipment: _Shipment) -> list[str] | None:
        """The addresses of a barrier stage's tasks (task i runs on worker i mod W), or None for other stages."""
        barrier = shipment.monitor.barrier
        if barrier is None:
            return None
        return [f"127.0.0.1:{self._workers[i % self.parallelism].process.pid}" for i in range(barrier.num_tasks)]

    def _barrier_sync(self, w: WorkerHandle, msg: tuple, tasks: dict, shipment: _Shipment) -> None:
        """A barrier task reached a sync: once every task has, release them all with the messages."""
        _, task_id, kind, message = msg
        task = w.running.get(task_id)
        barrier = shipment.monitor.barrier
        if task is None or barrier is None:
            return  # a task of an abandoned attempt: it is being cancelled
        _, messages = barrier.arrive(task.split, kind, message)  # BarrierSyncError fails the stage
        if messages is None:
            return
        for t in tasks.values():
            try:
                self._workers[t.worker].conn.send(("barrier-done", t.task_id, messages))
            except OSError:
                pass  # its worker died: the stage starts again

    def _abandon_running(self, interrupt: bool = True) -> None:
        """Cancel every task sent: those waiting in a pipe never start (the worker reads the cancel ahead of
        them), and with ``interrupt`` the running ones get SIGUSR1, which raises in them (see worker.main). For
        a cancelled job, and a barrier stage that failed or starts again (Spark kills its tasks)."""
        for w in self._workers:
            if w.running and w.process.is_alive():
                try:
                    w.conn.send(("cancel", list(w.running)))
                    if interrupt and (w.catches_interrupt or catches_signal(w.process.pid, signal.SIGUSR1)):
                        # Delivered before this worker could read a next task: it stops the task running now only.
                        # (Not to a worker still starting: SIGUSR1 would end it; its tasks are cancelled above.)
                        w.catches_interrupt = True
                        os.kill(w.process.pid, signal.SIGUSR1)
                except OSError:
                    pass  # the worker died: nothing of it runs

    def _restart_barrier(self, tasks: dict[int, _Task], results: dict[int, Any], shipment: _Shipment,
                         attempts: int) -> dict[int, _Task]:
        """Every task of a barrier stage again, as new tasks (the old ones' replies are dropped)."""
        self._abandon_running()
        for w in self._workers:
            for task in w.running.values():
                if task.started:
                    shipment.monitor.task_ended(task.split, False)
            w.running.clear()
        if attempts >= self.max_failures:
            raise WorkerLostError(f"a barrier stage failed {attempts} times: a worker process died each time")
        logger.warning("a worker died in a barrier stage: starting its %d tasks again (attempt %d)",
                       len(tasks), attempts + 1)
        shipment.monitor.barrier.reset()
        results.clear()
        fresh: dict[int, _Task] = {}
        for old in sorted(tasks.values(), key=lambda t: t.split):
            task = _Task(next(self._ids), old.split, old.data, old.worker)
            task.attempts = attempts
            fresh[task.task_id] = task
            self._submit(task, shipment)
        return fresh

    def _heal(self) -> None:
        if self._stopped:
            return
        for i, w in enumerate(list(self._workers)):
            if not w.process.is_alive():
                self._replace_worker(w)

    # -- lifecycle ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        # Flagged before taking the lock: a batch on the scheduler's thread holds it while its tasks run, and
        # sees the flag within one wait of _collect, so stop() never waits for a long task to end.
        with self._stop_once:
            if self._stopped:
                return
            self._stopped = True
        # A second Ctrl-C may land anywhere in here (the first one is often what stops us), also while the lock
        # is awaited from a batch still running: whatever it cuts short, the workers are killed and the shared
        # memory removed (it left 100 MB in /dev/shm).
        workers: list[WorkerHandle] | None = None
        try:
            with self._lock:
                workers, self._workers = self._workers, []
            for w in workers:
                try:
                    w.conn.send(("stop",))
                except OSError:
                    pass
            # One grace period for all, not one each: a worker busy in a long task reads "stop" only after it.
            join_all(workers, 2.0)
            for w in workers:
                if w.process.is_alive():
                    w.process.terminate()
            join_all(workers, 2.0)
        finally:
            # The rest takes milliseconds, and must not be cut short: a Ctrl-C waits until it is done.
            restore = _holding_sigint()
            try:
                if workers is None:
                    workers = list(self._workers)  # interrupted while waiting for the lock
                for w in workers:
                    if w.process.is_alive():
                        w.process.kill()
                    w.process.join()
                    try:
                        w.conn.close()
                    except OSError:
                        pass
                shm.remove_with_prefix(shm.prefix_for(self._pid))
                self._arena.close()
                self._drop_discarded()
            finally:
                restore()


def _holding_sigint() -> Callable[[], None]:
    """Hold SIGINT back until the returned function is called, which then delivers one that came meanwhile
    (only the main thread may change handlers: from any other thread, nothing is changed)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    came: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    except (ValueError, OSError):  # pragma: no cover - no signals here
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if came and callable(previous):
            previous(signal.SIGINT, None)  # Python's default handler: KeyboardInterrupt, now

    return restore


# Registered after multiprocessing.util (imported above) has registered its own exit function, so this runs
# first (atexit is last in, first out): that one terminates daemon workers and joins every child, and a
# batch still running on the scheduler's thread would start replacements for the terminated workers.
@atexit.register
def _stop_all() -> None:
    for executor in list(_live_executors):
        try:
            executor.stop()
        except BaseException:  # pragma: no cover - best effort at exit (a second Ctrl-C too: the next goes on)
            pass
