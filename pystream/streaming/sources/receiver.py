"""Custom receivers (Spark's Receiver API) and the input stream that batches what they store.

A receiver runs in its own thread in the driver: ``onStart`` is called there and may block or start more
threads; ``store`` hands records to a bounded buffer. At each batch time everything stored so far becomes
that batch. When the buffer is full, ``store`` blocks (backpressure) instead of letting memory grow without
bound; ``spark.streaming.receiver.maxRate`` caps records per second, and with
``spark.streaming.backpressure.enabled`` the cap follows what the batches manage to process (see
:mod:`pystream.streaming.backpressure`).

With ``spark.streaming.receiver.writeAheadLog.enable`` (and a checkpoint directory), each ``store`` call is one
block, appended to the write-ahead log and fsynced before ``store`` returns; batch ``t``'s blocks are logged
before its jobs run (see :mod:`pystream.streaming.wal`).
"""

from __future__ import annotations

import collections.abc
import copy
import logging
import threading
import time
import traceback

from typing import TYPE_CHECKING, Any

from pystream.errors import ReceiverError
from pystream.streaming import backpressure
from pystream.lineage import ParallelCollectionRDD
from pystream.rdd import RDD
from pystream.streaming.listener import (
    ReceiverInfo,
    StreamingListenerReceiverError,
    StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped,
    StreamInputInfo,
)
from pystream.streaming.sources.base import InputDStream

if TYPE_CHECKING:
    from pystream.streaming.context import StreamingContext

logger = logging.getLogger(__name__)

MAX_BUFFERED_KEY = "spark.pystream.receiver.maxBufferedRecords"
MAX_RATE_KEY = "spark.streaming.receiver.maxRate"
#: Seconds stop() waits for a receiver's onStop() to return before going on without it.
ON_STOP_TIMEOUT_KEY = "spark.pystream.receiver.onStopTimeout"


class Receiver:
    """Base class of custom receivers: implement ``onStart`` and ``onStop``; call ``store`` with data.

    ``store(item)`` stores one record; ``store(list)`` and ``store(iterator)`` store each element;
    ``storeBytes(frame)`` stores the records of a pystream frame (``pystream.frames.encode``), Scala's
    ``store(ByteBuffer)``. ``reportError`` tells listeners; ``restart`` stops and starts the receiver again
    after a delay; ``stop`` ends it for good.
    """

    def __init__(self, storageLevel: Any = None) -> None:
        self.storageLevel = storageLevel
        self._supervisor: _Supervisor | None = None

    def __getstate__(self) -> dict:
        # A checkpoint keeps the receiver's configuration, not its running supervisor.
        state = self.__dict__.copy()
        state["_supervisor"] = None
        return state

    # -- to implement -------------------------------------------------------------------------------------
    def onStart(self) -> None:  # pragma: no cover - abstract
        """Start receiving: set up connections and threads, then call store(). Called in its own thread."""
        raise NotImplementedError

    def onStop(self) -> None:
        """Release what onStart set up. Called when the receiver stops or restarts."""

    # -- API for implementations --------------------------------------------------------------------------
    @property
    def streamId(self) -> int:
        return self._sup().stream_id

    def store(self, data: Any) -> None:
        """Store one record, or every element of a list or iterator (not str/bytes/tuple/dict, which are
        records)."""
        sup = self._sup()
        if isinstance(data, list):
            sup.push(data)
        elif isinstance(data, collections.abc.Iterator):
            sup.push(list(data))
        else:
            sup.push([data])

    def storeBytes(self, frame: Any) -> None:
        """Store the records of one encoded pystream frame (CorruptFrameError if it is malformed)."""
        from pystream.frames import decode

        sup = self._sup()
        records = decode(frame)
        # With the write-ahead log, the frame (already checked) is logged as it is.
        sup.push(records, bytes(frame) if sup.wal is not None else None)

    def reportError(self, message: str, throwable: BaseException | None = None) -> None:
        """Report a non-fatal error to the listeners; the receiver keeps running."""
        self._sup().report_error(message, throwable)

    def restart(self, message: str, error: BaseException | None = None, millisecond: int = 2000) -> None:
        """Stop the receiver (onStop), then start it again (onStart) after ``millisecond`` ms."""
        self._sup().restart(message, error, millisecond)

    def stop(self, message: str, error: BaseException | None = None) -> None:
        """Stop the receiver for good; with ``error``, the streaming context fails with it."""
        self._sup().stop_receiver(message, error)

    def isStarted(self) -> bool:
        return self._supervisor is not None and self._supervisor.started

    def isStopped(self) -> bool:
        return self._supervisor is None or self._supervisor.stopped.is_set()

    def _sup(self) -> _Supervisor:
        if self._supervisor is None:
            raise ReceiverError("the receiver has not been started by a StreamingContext")
        return self._supervisor


class _Supervisor:
    """Runs one receiver: its thread, its buffer, restarts, and its events."""

    def __init__(self, stream: ReceiverInputDStream, receiver: Receiver) -> None:
        self.stream = stream
        self.stream_id = stream._id
        self.receiver = receiver
        conf = stream._ssc.sparkContext._conf
        self.capacity = conf.getInt(MAX_BUFFERED_KEY, 1_000_000)
        self.max_rate = conf.getFloat(MAX_RATE_KEY, 0.0)
        self.on_stop_timeout = conf.getFloat(ON_STOP_TIMEOUT_KEY, 10.0)
        #: backpressure's rate limit (pystream.streaming.backpressure), records per second; 0 for none
        self.rate_limit = 0.0
        if conf.getBoolean(backpressure.ENABLED_KEY, False):
            self.rate_limit = conf.getFloat(backpressure.INITIAL_RATE_KEY, 0.0)
        self.buffer: list = []
        self.cond = threading.Condition()
        self.stopped = threading.Event()
        self.started = False
        self.thread: threading.Thread | None = None
        self.info = ReceiverInfo(self.stream_id, type(receiver).__name__, False)
        # Guava's RateLimiter, as Spark's receivers use it: records may be stored at ``limit`` per second, and
        # at most one second of unused allowance is kept (an idle receiver may then burst by that much only).
        self._rate_lock = threading.Lock()
        self._next_free = time.monotonic()
        self._stored_permits = 0.0
        self._lifecycle = threading.RLock()
        self._restarting = False  # a restart() is under way (guarded by cond)
        #: the write-ahead log (None when off); ``wal_lock`` keeps log order and buffer order the same
        self.wal: Any = None
        self.wal_lock = threading.Lock()
        #: the highest block sequence number in ``buffer`` (write-ahead log only)
        self.logged_hi = 0

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.receiver._supervisor = self
        self._launch(0)

    def _launch(self, delay_ms: int) -> None:
        self.thread = threading.Thread(target=self._run, args=(delay_ms,), daemon=True,
                                       name=f"pystream-receiver-{self.stream_id}")
        self.thread.start()

    def _run(self, delay_ms: int) -> None:
        if delay_ms and self.stopped.wait(delay_ms / 1000.0):
            return
        with self.cond:
            self._restarting = False  # from now on, a restart() starts another one
        if self.stopped.is_set():
            return
        self.started = True
        self.info._active = True
        self.stream._ssc._listeners.post("onReceiverStarted", StreamingListenerReceiverStarted(self._snapshot()))
        try:
            self.receiver.onStart()
        except Exception as exc:
            self.restart(f"Error starting receiver {self.stream_id}", exc, 2000)

    def restart(self, message: str, error: BaseException | None, delay_ms: int) -> None:
        # In a thread of its own, as Spark's: the receiving thread that asks for a restart returns at once,
        # so an onStop() that joins that thread does not wait for itself (10 s of onStopTimeout, each time).
        with self.cond:
            if self.stopped.is_set() or self._restarting:
                return  # one restart at a time: a second caller would start a second onStart()
            self._restarting = True
        threading.Thread(target=self._restart, args=(message, error, delay_ms), daemon=True,
                         name=f"pystream-receiver-{self.stream_id}-restart").start()

    def _restart(self, message: str, error: BaseException | None, delay_ms: int) -> None:
        with self._lifecycle:
            try:
                if self.stopped.is_set():
                    return  # (stays "restarting": a stopped receiver starts nothing again)
                logger.warning("Restarting receiver %d: %s", self.stream_id, message)
                self.report_error(message, error)
                self._call_on_stop()
                self._launch(delay_ms)  # its thread ends the restart (see _run), after the delay
            except BaseException:
                with self.cond:
                    self._restarting = False
                raise

    def stop_receiver(self, message: str, error: BaseException | None) -> None:
        with self._lifecycle:
            if self.stopped.is_set():
                return
            self.stopped.set()
            with self.cond:
                self.cond.notify_all()
            self._call_on_stop()
            if error is not None:
                # Record the error first so the stopped event carries it (Spark's lastErrorMessage/lastError).
                self.report_error(message, error)
            self.info._active = False
            self.stream._ssc._listeners.post("onReceiverStopped", StreamingListenerReceiverStopped(self._snapshot()))
        if error is not None:
            self.stream._ssc._report_error(error if isinstance(error, Exception) else ReceiverError(message))

    def _call_on_stop(self) -> None:
        # In a thread of its own, waited for a bounded time: a receiver whose onStop() never returns (a blocking
        # close or join) must not keep the context from stopping (Spark bounds this wait too).
        done = threading.Event()

        def call() -> None:
            try:
                self.receiver.onStop()
            except Exception:
                logger.exception("Receiver %d raised in onStop", self.stream_id)
            finally:
                done.set()

        threading.Thread(target=call, name=f"pystream-receiver-{self.stream_id}-onStop", daemon=True).start()
        if not done.wait(self.on_stop_timeout):
            logger.warning("Receiver %d: onStop() has not returned after %g s (%s); going on without it",
                           self.stream_id, self.on_stop_timeout, ON_STOP_TIMEOUT_KEY)

    def shutdown(self) -> None:
        """Stop for the context's stop(); waits briefly for the receiver thread."""
        self.stop_receiver("Stopped by driver", None)
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(5.0)

    # -- data ---------------------------------------------------------------------------------------------
    def limit(self) -> float:
        """The records per second this receiver may store now (0: no limit): backpressure's, capped by maxRate."""
        limits = [r for r in (self.max_rate, self.rate_limit) if r > 0]
        return min(limits) if limits else 0.0

    def set_rate_limit(self, rate: float) -> None:
        """Backpressure's new estimate; the throttle counts from now at the new limit."""
        with self.cond:
            self.rate_limit = rate
        with self._rate_lock:
            self._next_free = time.monotonic()
            self._stored_permits = 0.0

    def push(self, records: list, frame: bytes | None = None) -> None:
        limit = self.limit()
        if limit > 0:
            self._throttle(len(records), limit)
        if self.wal is None:
            with self.cond:
                self._wait_for_room()
                self.buffer.extend(records)
            return
        # Stored means logged: the block is durable before it is buffered and before store() returns. Blocks
        # enter the buffer in log order, so a batch's blocks are always a range of sequence numbers.
        with self.wal_lock:
            with self.cond:
                self._wait_for_room()
            seq = self.wal.append_block(records, frame)
            with self.cond:
                self.buffer.extend(records)
                self.logged_hi = seq

    def _wait_for_room(self) -> None:
        while len(self.buffer) >= self.capacity and not self.stopped.is_set():
            self.cond.wait(0.1)

    def _throttle(self, n: int, limit: float) -> None:
        with self._rate_lock:
            now = time.monotonic()
            if now > self._next_free:
                self._stored_permits = min(limit, self._stored_permits + (now - self._next_free) * limit)
                self._next_free = now
            wait = self._next_free - now
            used = min(float(n), self._stored_permits)
            self._stored_permits -= used
            self._next_free += (n - used) / limit
        if wait > 0:
            self.stopped.wait(wait)

    def drain(self) -> list:
        return self.drain_logged()[0]

    def drain_logged(self) -> tuple[list, int]:
        """Everything buffered, and the sequence number of its last block (write-ahead log)."""
        with self.cond:
            records, self.buffer = self.buffer, []
            hi = self.logged_hi
            self.cond.notify_all()
        return records, hi

    def report_error(self, message: str, error: BaseException | None) -> None:
        self.info._lastErrorMessage = message
        self.info._lastError = "" if error is None else "".join(
            traceback.format_exception(type(error), error, error.__traceback__))
        self.info._lastErrorTime = int(time.time() * 1000)
        self.stream._ssc._listeners.post("onReceiverError", StreamingListenerReceiverError(self._snapshot()))

    def _snapshot(self) -> ReceiverInfo:
        """A copy of the receiver's info as it is now: an event keeps what was true when it was posted."""
        return copy.copy(self.info)


class ReceiverInputDStream(InputDStream):
    """An input stream fed by a Receiver; each batch holds the records stored since the previous batch."""

    def __init__(self, ssc: StreamingContext, receiver: Receiver) -> None:
        if not isinstance(receiver, Receiver):
            raise TypeError(f"receiverStream needs a pystream Receiver, got {type(receiver).__name__}")
        super().__init__(ssc)
        self._receiver = receiver
        self._supervisor = _Supervisor(self, receiver)
        self._blocks: dict[int, list] = {}
        self._init_wal()

    def _init_wal(self) -> None:
        #: this run's write-ahead log (None when off)
        self._wal_log: Any = None
        #: set by recovery: what the log held (pystream.streaming.wal.RecoveredLog)
        self._wal_recovery: Any = None
        #: batch times whose blocks recovery restored: they run again with exactly those blocks
        self._wal_replay: set[int] = set()

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_supervisor"] = None
        state["_blocks"] = {}
        for k in ("_wal_log", "_wal_recovery", "_wal_replay"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_wal()
        self._supervisor = _Supervisor(self, self._receiver)

    def _start(self) -> None:
        from pystream.streaming import wal

        if wal.wal_enabled(self._ssc) and self._ssc._checkpoint_dir is not None:
            from pystream.checkpoint import signing_key

            conf = self._sc._conf
            log = wal.ReceiverLog(wal.root_of(self._ssc), self._id, signing_key(),
                                  conf.getFloat(wal.ROLL_KEY, 60.0), conf.getFloat(wal.TRACKER_ROLL_KEY, 60.0))
            rec = self._wal_recovery
            log.open(rec)
            if rec is not None:
                self._blocks.update(rec.batches)
                self._wal_replay = set(rec.batches)
                sup = self._supervisor
                with sup.cond:
                    sup.buffer = list(rec.unallocated) + sup.buffer
                    sup.logged_hi = log.next_seq - 1
                self._wal_recovery = None
            else:
                self._supervisor.logged_hi = log.next_seq - 1
            if self._ssc._wal is None:
                self._ssc._wal = wal.ReceiverLogs()
            self._ssc._wal.add(log)
            self._wal_log = log
            self._supervisor.wal = log
        if self._sc._conf.getBoolean(backpressure.ENABLED_KEY, False):
            estimator = backpressure.PIDRateEstimator.from_conf(self._sc._conf, self._ssc._graph.batch_ms)
            self._ssc.addStreamingListener(
                backpressure.RateController(self._id, estimator, self._supervisor.set_rate_limit))
        self._supervisor.start()

    def _replayable_since(self, t_ms: int) -> bool:
        rec = self._wal_recovery
        return True if rec is None else rec.replayable_since(t_ms)

    def _replay_gap(self, t_ms: int) -> str | None:
        rec = self._wal_recovery
        return None if rec is None else rec.replay_gap(t_ms)

    def _stop(self, graceful: bool = False) -> None:
        self._supervisor.shutdown()

    def _allocate(self, t: int) -> StreamInputInfo:
        if t in self._wal_replay:  # a batch that ran before a recovery: the same blocks again
            self._wal_replay.discard(t)
            return StreamInputInfo(self._id, len(self._blocks.get(t, ())))
        if self._wal_log is None:
            records = self._supervisor.drain()
        else:
            records, hi = self._supervisor.drain_logged()
            self._wal_log.record_allocation(t, hi)  # durable before any job of batch t runs
        self._blocks[t] = records
        return StreamInputInfo(self._id, len(records))

    def _compute(self, t: int) -> RDD | None:
        records = self._blocks.pop(t, None)
        if records is None:
            return None
        n = max(1, min(self._sc.defaultParallelism, len(records)))
        size = len(records)
        return ParallelCollectionRDD(self._sc, [records[(i * size) // n:((i + 1) * size) // n] for i in range(n)])

    def _clear_metadata(self, t: int) -> None:
        for old in [s for s in self._blocks if s <= t]:
            del self._blocks[old]
        self._wal_replay.difference_update([s for s in self._wal_replay if s <= t])
        super()._clear_metadata(t)


