"""The driver's batch loop: a timer thread generates each batch's jobs, a job thread runs them in order.

Generation and execution are separate threads so that when processing falls behind the interval, batches
queue up and their scheduling delay shows it, as in Spark's JobGenerator / JobScheduler.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from pystream import taskcontext
from pystream.errors import StreamingJobError
from pystream.jobs import BATCH_TIME_KEY, OUTPUT_OP_KEY
from pystream.streaming.listener import (
    BatchInfo,
    OutputOperationInfo,
    StreamingListenerBatchCompleted,
    StreamingListenerBatchStarted,
    StreamingListenerBatchSubmitted,
    StreamingListenerOutputOperationCompleted,
    StreamingListenerOutputOperationStarted,
)
from pystream.streaming.time import Time, ms_to_datetime

if TYPE_CHECKING:
    from pystream.streaming.context import StreamingContext

logger = logging.getLogger(__name__)

_STOP = object()

#: How many generated batches may wait for processing before the timer waits too.
MAX_QUEUED_KEY = "spark.pystream.scheduler.maxQueuedBatches"


class JobScheduler:
    def __init__(self, ssc: StreamingContext) -> None:
        self._ssc = ssc
        self._graph = ssc._graph
        self._clock = ssc._clock
        self._batch_ms = ssc._graph.batch_ms
        self._queue: queue.Queue = queue.Queue()
        self._cancel_gen = threading.Event()
        self._gen_thread: threading.Thread | None = None
        self._job_thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self.last_generated_ms: int | None = None
        self.last_completed_ms: int | None = None
        self._pending = 0
        self.next_batch_ms = 0
        self._max_queued = max(1, ssc.sparkContext._conf.getInt(MAX_QUEUED_KEY, 50))

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self, first_batch_ms: int) -> None:
        self.next_batch_ms = first_batch_ms
        # The batches' jobs carry the local properties the thread starting the stream had set (Spark's are
        # inherited by the threads it starts).
        props = dict(taskcontext.local_properties())
        self._gen_thread = threading.Thread(target=_inheriting, args=(props, self._generate_loop),
                                            name="pystream-job-generator", daemon=True)
        self._job_thread = threading.Thread(target=_inheriting, args=(props, self._job_loop),
                                            name="pystream-job-executor", daemon=True)
        self._job_thread.start()
        self._gen_thread.start()

    def stop_generation(self) -> None:
        self._cancel_gen.set()
        self._clock.wake()
        with self._cond:
            self._cond.notify_all()
        if self._gen_thread is not None and self._gen_thread is not threading.current_thread():
            self._gen_thread.join()

    def wait_generated(self, t_ms: int, timeout: float) -> bool:
        """Wait until a batch at or after ``t_ms`` was generated (graceful stop)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self.last_generated_ms is not None and self.last_generated_ms >= t_ms, timeout)

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until every generated batch has been processed."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def stop_jobs(self, drop_pending: bool, timeout: float | None) -> None:
        if drop_pending:
            try:
                while True:
                    item = self._queue.get_nowait()
                    if item is not _STOP:
                        with self._cond:
                            self._pending -= 1
                            self._cond.notify_all()
            except queue.Empty:
                pass
        self._queue.put(_STOP)
        if self._job_thread is not None and self._job_thread is not threading.current_thread():
            self._job_thread.join(timeout)
            if self._job_thread.is_alive():
                logger.warning("a batch job is still running after stop(); it will finish in the background")

    # -- generation ---------------------------------------------------------------------------------------
    def _generate_loop(self) -> None:
        t = self.next_batch_ms
        while self._clock.wait_until(t, self._cancel_gen):
            # Memory stays bounded when processing falls behind: at most max_queued batches hold their data
            # while waiting; meanwhile receivers keep filling their bounded buffers and then block.
            with self._cond:
                self._cond.wait_for(lambda: self._pending < self._max_queued or self._cancel_gen.is_set())
            if self._cancel_gen.is_set():
                break
            self.generate_batch(t)
            t += self._batch_ms
            self.next_batch_ms = t

    def generate_batch(self, t: int) -> None:
        submitted = self._clock.now_ms()
        try:
            infos, jobs = self._graph.generate_jobs(t)
        except BaseException as exc:  # a failing source or transform (or sys.exit()) fails this batch only
            logger.error("Error generating jobs for time %d ms", t, exc_info=True)
            self._ssc._report_error(_job_error(t, exc))
            infos, jobs = {}, []
        info = BatchInfo(Time(t), infos, submitted)
        for i, (out_id, _) in enumerate(jobs):
            stream = self._graph.output_streams[out_id]
            # (A stream restored from an older checkpoint has no _op_name.)
            name = getattr(stream, "_op_name", None) or getattr(stream._func, "__name__", "foreachRDD")
            info._outputOperationInfos[out_id] = OutputOperationInfo(Time(t), out_id, name, f"output {out_id}")
        with self._cond:
            self._pending += 1
            self.last_generated_ms = t
            self._cond.notify_all()
        self._ssc._listeners.post("onBatchSubmitted", StreamingListenerBatchSubmitted(info))
        self._queue.put((t, info, jobs))

    # -- execution ----------------------------------------------------------------------------------------
    def _job_loop(self) -> None:
        while True:
            if self._queue.empty():
                # Idle until the next batch: the driver frees what the last ones left now, not during a batch,
                # where it would take a core from the tasks or hold up their replies (as Spark clears a batch's
                # metadata after the batch has completed).
                try:
                    self._ssc.sparkContext.executor.tidy(lambda: not self._queue.empty())
                except Exception:  # pragma: no cover - defensive: tidying must never kill the job thread
                    logger.exception("Error freeing what earlier batches left")
            item = self._queue.get()
            if item is _STOP:
                return
            t, info, jobs = item
            try:
                self._run_batch(t, info, jobs)
            finally:
                with self._cond:
                    self._pending -= 1
                    self.last_completed_ms = t
                    self._cond.notify_all()

    def _run_batch(self, t: int, info: BatchInfo, jobs: list) -> None:
        bus = self._ssc._listeners
        info._processingStartTime = self._clock.now_ms()
        bus.post("onBatchStarted", StreamingListenerBatchStarted(info))
        props = taskcontext.local_properties()
        # As Spark Streaming marks its jobs: tasks read them with TaskContext.get().getLocalProperty().
        props[BATCH_TIME_KEY] = str(t)
        for out_id, job in jobs:
            op = info._outputOperationInfos[out_id]
            op._startTime = self._clock.now_ms()
            bus.post("onOutputOperationStarted", StreamingListenerOutputOperationStarted(op))
            props[OUTPUT_OP_KEY] = str(out_id)
            try:
                job()
            except BaseException as exc:  # sys.exit() in a foreachRDD too: the job thread must go on
                err = _job_error(t, exc)
                op._failureReason = str(err)
                logger.error("Error running job for output %d of batch %d ms", out_id, t, exc_info=True)
                self._ssc._report_error(err)
            op._endTime = self._clock.now_ms()
            bus.post("onOutputOperationCompleted", StreamingListenerOutputOperationCompleted(op))
        try:
            self._graph.materialize_state(t)
        except BaseException as exc:
            self._ssc._report_error(_job_error(t, exc))
        info._processingEndTime = self._clock.now_ms()
        bus.post("onBatchCompleted", StreamingListenerBatchCompleted(info))
        try:
            self._graph.clear_metadata(t)
            self._ssc.sparkContext.executor.release()
        except Exception:  # pragma: no cover - defensive: clearing must never kill the job thread
            logger.exception("Error clearing metadata of batch %d ms", t)
        writer = self._ssc._checkpoint_writer
        if writer is not None:
            try:
                writer.after_batch(t)
            except BaseException as exc:
                logger.error("Error writing the checkpoint of batch %d ms", t, exc_info=True)
                self._ssc._report_error(exc)


def _inheriting(properties: dict[str, str], loop: Callable[[], None]) -> None:
    taskcontext.inherit(properties)
    loop()


def _job_error(t: int, exc: BaseException) -> StreamingJobError:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    err = StreamingJobError(f"Job for batch at time {t} ms ({ms_to_datetime(t)}) failed: "
                            f"{type(exc).__name__}: {exc}", tb)
    err.__cause__ = exc
    return err
