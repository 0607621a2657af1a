"""StreamingContext: the entry point of a streaming program (pyspark.streaming's API)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pystream.context import SparkContext
from pystream.errors import IllegalStateError
from pystream.rdd import RDD
from pystream.streaming.clock import Clock, ManualClock, SystemClock
from pystream.streaming.dstream import DStream, MultiTransformedDStream, UnionDStream
from pystream.streaming.graph import DStreamGraph
from pystream.streaming.listener import ListenerBus, StreamingListener, StreamingListenerStreamingStarted
from pystream.streaming.scheduler import JobScheduler
from pystream.streaming.time import duration_ms

logger = logging.getLogger(__name__)

CLOCK_KEY = "spark.streaming.clock"
STOP_GRACEFULLY_ON_SHUTDOWN_KEY = "spark.streaming.stopGracefullyOnShutdown"
GRACEFUL_STOP_TIMEOUT_KEY = "spark.streaming.gracefulStopTimeout"
#: How long a non-graceful stop() waits for a running batch before leaving it (Spark's JobScheduler: 2 s).
_STOP_WAIT_S = 2.0
_INITIALIZED, _ACTIVE, _STOPPED = "INITIALIZED", "ACTIVE", "STOPPED"


class StreamingContext:
    """Main entry point for streaming: ``StreamingContext(sparkContext, batchDuration)`` (seconds).

    Create input DStreams from it, define transformations and output operations, then ``start()`` and
    ``awaitTermination()``. Only one StreamingContext can be active at a time.
    """

    _lock = threading.RLock()
    _activeContext: StreamingContext | None = None

    def __init__(self, sparkContext: SparkContext, batchDuration: float | None = None, jssc: Any = None, *,
                 clock: Clock | None = None) -> None:
        if batchDuration is None:
            raise ValueError("batchDuration must be given (seconds)")
        if not isinstance(sparkContext, SparkContext):
            raise TypeError(f"sparkContext must be a SparkContext, got {type(sparkContext).__name__}")
        self._sc = sparkContext
        self._graceful_timeout_s = 0.0  # set by start() from spark.streaming.gracefulStopTimeout
        self._graph = DStreamGraph(duration_ms(batchDuration, "batchDuration"))
        if clock is None:
            kind = (sparkContext._conf.get(CLOCK_KEY) or "system").lower()
            clock = ManualClock() if "manual" in kind else SystemClock()
        self._clock = clock
        self._listeners = ListenerBus()
        self._state = _INITIALIZED
        self._scheduler: JobScheduler | None = None
        self._checkpoint_dir: str | None = None
        self._checkpoint_writer: Any = None
        #: the receivers' write-ahead logs (pystream.streaming.wal.ReceiverLogs) when enabled
        self._wal: Any = None
        #: set by pystream.checkpoint.recover on a context rebuilt from a checkpoint
        self._recovery: dict | None = None
        #: CheckpointErrors of the newer checkpoints recovery had to skip
        self._checkpoint_errors: list = []
        self._error: BaseException | None = None
        self._term = threading.Condition()
        self._stop_lock = threading.Lock()

    # -- properties ---------------------------------------------------------------------------------------
    @property
    def sparkContext(self) -> SparkContext:
        """The SparkContext this StreamingContext runs on."""
        return self._sc

    @property
    def clock(self) -> Clock:
        """The clock that times batches (a ManualClock when ``spark.streaming.clock`` is "manual")."""
        return self._clock

    @property
    def batchDuration(self) -> float:
        return self._graph.batch_ms / 1000.0

    def getState(self) -> str:
        """"INITIALIZED", "ACTIVE" or "STOPPED"."""
        return self._state

    # -- class methods ------------------------------------------------------------------------------------
    @classmethod
    def getActive(cls) -> StreamingContext | None:
        """Return the active (started, not stopped) StreamingContext, or None."""
        with cls._lock:
            return cls._activeContext

    @classmethod
    def getActiveOrCreate(cls, checkpointPath: str | None, setupFunc: Callable[[], StreamingContext]
                          ) -> StreamingContext:
        """Return the active context, or recreate one from ``checkpointPath``, or create one with ``setupFunc``."""
        if setupFunc is None:
            raise ValueError("setupFunc cannot be None")
        if not callable(setupFunc):
            raise TypeError("setupFunc should be callable.")
        active = cls.getActive()
        if active is not None:
            return active
        if checkpointPath is not None:
            return cls.getOrCreate(checkpointPath, setupFunc)
        return setupFunc()

    @classmethod
    def getOrCreate(cls, checkpointPath: str, setupFunc: Callable[[], StreamingContext]) -> StreamingContext:
        """Recreate a context from the checkpoint in ``checkpointPath`` or, when there is none, create one with
        ``setupFunc``."""
        if setupFunc is None:
            raise ValueError("setupFunc cannot be None")
        if not callable(setupFunc):
            raise TypeError("setupFunc should be callable.")
        try:
            from pystream.checkpoint import recover
        except ImportError:
            recover = None
        if recover is not None:
            ssc = recover(checkpointPath, setupFunc)
            if ssc is not None:
                return ssc
        ssc = setupFunc()
        if not isinstance(ssc, StreamingContext):
            raise TypeError(f"setupFunc must return a StreamingContext, got {type(ssc).__name__}")
        return ssc

    # -- configuration ------------------------------------------------------------------------------------
    def remember(self, duration: float) -> None:
        """Keep every DStream's RDDs for at least ``duration`` seconds (for slice and late queries)."""
        self._graph.remember(duration_ms(duration, "remember duration"))

    def checkpoint(self, directory: str | None) -> None:
        """Set the checkpoint directory (a path or fsspec URL) for metadata and state."""
        self._checkpoint_dir = directory
        if directory is not None:
            self._sc.setCheckpointDir(directory)

    def addStreamingListener(self, streamingListener: StreamingListener) -> None:
        """Receive streaming events (batches, output operations, receivers) on ``streamingListener``."""
        self._listeners.add(streamingListener)

    def removeStreamingListener(self, streamingListener: StreamingListener) -> None:
        self._listeners.remove(streamingListener)

    # -- inputs -------------------------------------------------------------------------------------------
    def queueStream(self, rdds: Iterable[Any], oneAtATime: bool = True, default: Any = None) -> DStream:
        """Return a DStream fed from a queue of RDDs (or lists, parallelized): one per batch when
        ``oneAtATime``, else all queued at once; ``default`` (or an empty batch) when the queue is empty."""
        from pystream.streaming.sources.base import QueueInputDStream

        rdds = [r if isinstance(r, RDD) else self._sc.parallelize(r) for r in rdds]
        if default is not None and not isinstance(default, RDD):
            default = self._sc.parallelize(default)
        return QueueInputDStream(self, rdds, oneAtATime, default)

    def socketTextStream(self, hostname: str, port: int, storageLevel: Any = None) -> DStream:
        """Return a DStream of the UTF-8 lines received over TCP from ``hostname:port`` (reconnecting with
        backoff; the context fails with SourceConnectionError once retries run out)."""
        from pystream.streaming.sources.receiver import ReceiverInputDStream
        from pystream.streaming.sources.socket import (BACKOFF_KEY, MAX_LINE_BYTES, MAX_LINE_KEY, RETRIES_KEY,
                                                       SocketTextReceiver)

        conf = self._sc._conf
        receiver = SocketTextReceiver(hostname, port, conf.getInt(RETRIES_KEY, 10), conf.getFloat(BACKOFF_KEY, 2.0),
                                      max_line_bytes=conf.getInt(MAX_LINE_KEY, MAX_LINE_BYTES))
        return ReceiverInputDStream(self, receiver)

    def receiverStream(self, receiver: Any) -> DStream:
        """Return a DStream of what a custom :class:`Receiver` stores."""
        from pystream.streaming.sources.receiver import ReceiverInputDStream

        return ReceiverInputDStream(self, receiver)

    def textFileStream(self, directory: str) -> DStream:
        """Return a DStream of the lines of files that appear in ``directory`` (by atomic move); each new file
        is read in exactly one batch, names starting with "." are ignored."""
        from pystream.streaming.sources.files import FileInputDStream, TextFileReader

        return FileInputDStream(self, directory, TextFileReader())

    def binaryRecordsStream(self, directory: str, recordLength: int) -> DStream:
        """Return a DStream of the fixed-length byte records of files that appear in ``directory``; a file whose
        size is not a multiple of ``recordLength`` fails its batch with WrongRecordLengthError."""
        from pystream.streaming.sources.files import BinaryRecordReader, FileInputDStream

        return FileInputDStream(self, directory, BinaryRecordReader(recordLength))

    def rateStream(self, rowsPerSecond: float, numPartitions: int | None = None) -> DStream:
        """Return a DStream of ``(timestamp, value)`` rows at ``rowsPerSecond``, deterministic given the start."""
        from pystream.streaming.sources.generator import RateInputDStream

        return RateInputDStream(self, rowsPerSecond, numPartitions)

    def textGeneratorStream(self, linesPerSecond: float, wordsPerLine: int = 10, vocabularySize: int = 100_000,
                            zipfExponent: float = 1.1, seed: int = 0, numPartitions: int | None = None) -> DStream:
        """Return a DStream of generated text lines whose words follow a Zipf distribution (for demos and
        benchmarks); deterministic given ``seed`` and the start."""
        from pystream.streaming.sources.generator import TextGeneratorDStream

        return TextGeneratorDStream(self, linesPerSecond, wordsPerLine, vocabularySize, zipfExponent, seed,
                                    numPartitions)

    def union(self, *dstreams: DStream) -> DStream:
        """Return the union of several DStreams with the same slide duration."""
        if not dstreams:
            raise ValueError("should have at least one DStream to union")
        if len(dstreams) == 1:
            return dstreams[0]
        if len({d._slide_ms for d in dstreams}) > 1:
            raise ValueError("All DStreams should have same slide duration")
        return UnionDStream(list(dstreams))

    def transform(self, dstreams: list[DStream], transformFunc: Callable[..., RDD]) -> DStream:
        """Return a DStream of ``transformFunc(rdds)`` over several streams: ``rdds`` is a tuple of their RDDs of
        the batch, in the order of ``dstreams`` (as pyspark's, which never passes the batch time here)."""
        dstreams = list(dstreams)
        if not dstreams:
            raise ValueError("should have at least one DStream to transform")
        if not callable(transformFunc):
            raise TypeError(f"transformFunc should be a function, got {type(transformFunc).__name__}")
        return MultiTransformedDStream(dstreams, lambda t, rdds: transformFunc(tuple(rdds)))

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the execution of the streams. Starting twice is harmless; after stop() it is an error."""
        with StreamingContext._lock:
            if self._state == _ACTIVE:
                logger.warning("StreamingContext has already been started")
                return
            if self._state == _STOPPED:
                raise IllegalStateError("StreamingContext has already been stopped")
            active = StreamingContext._activeContext
            if active is not None and active is not self:
                raise IllegalStateError(
                    "Only one StreamingContext may be started in this process. Currently running "
                    "StreamingContext was started elsewhere; stop it first.")
            self._graph.validate()
            from pystream.streaming.wal import check_config

            check_config(self)
            batch = self._graph.batch_ms
            # Read now, so that a malformed value fails start(), not a stop() half-way through.
            self._graceful_timeout_s = self._sc._conf.getTimeAsMs(GRACEFUL_STOP_TIMEOUT_KEY, f"{10 * batch}ms") / 1000
            if self._recovery is not None:
                # Rebuilt from a checkpoint: the graph keeps its zero time; the batches after the checkpointed
                # one (scheduled but unfinished, then those missed while down) run first, then the clock's.
                first = self._recovery["next_ms"]
                for inp in self._graph.input_streams:
                    inp._recovered()
            else:
                # Spark's timer: the first batch is the next multiple of the interval, zero time one earlier.
                first = (self._clock.now_ms() // batch + 1) * batch
                self._graph.start(first - batch)
            if self._checkpoint_dir is not None:
                from pystream.checkpoint import CheckpointWriter

                rec = self._recovery or {}
                self._checkpoint_writer = CheckpointWriter(self, rec.get("run_id"), rec.get("state_files"))
            self._scheduler = JobScheduler(self)
            if self._sc._ui is not None:
                self._sc._ui.attach(self)  # before the receivers start: it counts them
            for inp in self._graph.input_streams:
                inp._start()
            self._scheduler.start(first)
            self._state = _ACTIVE
            StreamingContext._activeContext = self
            # Spark's shutdown hook: registered after the executor's exit handler, so it runs before it (atexit
            # is last in, first out). Otherwise the scheduler would go on starting batches on a stopped
            # executor, each failing and logging, while the interpreter waits to exit.
            atexit.register(self._stop_on_exit)
        self._listeners.post("onStreamingStarted", StreamingListenerStreamingStarted(self._clock.now_ms()))

    def stop(self, stopSparkContext: bool = True, stopGraceFully: bool = False) -> None:
        """Stop the streams (idempotent). ``stopGraceFully`` first processes the data already received, for at
        most ``spark.streaming.gracefulStopTimeout`` (default 10 batch intervals); otherwise queued batches are
        dropped and a running one gets 2 seconds to finish (as Spark's job scheduler gives it) before stop()
        returns without it. ``stopSparkContext`` also stops the SparkContext, which ends such a batch."""
        with self._stop_lock:
            if self._state != _STOPPED:
                self._stop_streaming(stopGraceFully)
        if stopSparkContext:
            self._sc.stop()

    def _stop_on_exit(self) -> None:
        self.stop(stopSparkContext=False,
                  stopGraceFully=self._sc._conf.getBoolean(STOP_GRACEFULLY_ON_SHUTDOWN_KEY, False))

    def _stop_streaming(self, graceful: bool) -> None:
        was_active = self._state == _ACTIVE
        atexit.unregister(self._stop_on_exit)
        self._state = _STOPPED
        with StreamingContext._lock:
            if StreamingContext._activeContext is self:
                StreamingContext._activeContext = None
        sched = self._scheduler
        if was_active and sched is not None:
            for inp in self._graph.input_streams:
                try:
                    inp._stop(graceful)
                except Exception:
                    logger.exception("Error stopping input stream %s", inp.name)
            if graceful:
                # One deadline for the whole graceful stop, as Spark's gracefulStopTimeout.
                deadline = time.monotonic() + self._graceful_timeout_s

                def left() -> float:
                    return max(0.0, deadline - time.monotonic())

                # Everything received before now belongs to a batch at or after now: wait for that batch.
                target = self._clock.now_ms()
                if not sched.wait_generated(target, left()):
                    logger.warning("graceful stop: timed out waiting for the last batch to be generated")
                sched.stop_generation()
                if not sched.wait_idle(left()):
                    logger.warning("graceful stop: timed out waiting for queued batches to finish")
                sched.stop_jobs(drop_pending=False, timeout=left())
            else:
                sched.stop_generation()
                sched.stop_jobs(drop_pending=True, timeout=_STOP_WAIT_S)
        if self._wal is not None:
            self._wal.close()
        with self._term:
            self._term.notify_all()

    def _report_error(self, error: BaseException) -> None:
        with self._term:
            if self._error is None:
                self._error = error
            self._term.notify_all()

    def awaitTermination(self, timeout: float | None = None) -> None:
        """Wait until the context stops; re-raises the first error of a failed batch or receiver."""
        self.awaitTerminationOrTimeout(timeout)

    def awaitTerminationOrTimeout(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: no limit); return True if stopped, False on timeout. Once a
        batch has failed, every call raises that error. A NaN timeout is a ValueError, as pyspark's."""
        if timeout is not None and timeout != timeout:
            raise ValueError("awaitTerminationOrTimeout: the timeout is NaN")
        with self._term:
            self._term.wait_for(lambda: self._state == _STOPPED or self._error is not None, timeout)
            if self._error is not None:
                raise self._error
            return self._state == _STOPPED

    def __enter__(self) -> StreamingContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(stopSparkContext=False)
