"""StreamingListener and the information it receives (Spark's names: BatchInfo, OutputOperationInfo, ...).

Fields are read with Scala-style accessor methods (``batchCompleted.batchInfo().numRecords()``), as pyspark
code written against the JVM objects does. Delays are in milliseconds and ``-1`` until known.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from pystream.streaming.time import Time

logger = logging.getLogger(__name__)


class StreamingListener:
    """Receives streaming events; override the methods you need. Called from the scheduler's threads, in order."""

    def onStreamingStarted(self, streamingStarted: StreamingListenerStreamingStarted) -> None:
        """The streaming context has started."""

    def onReceiverStarted(self, receiverStarted: StreamingListenerReceiverStarted) -> None:
        """A receiver has started."""

    def onReceiverError(self, receiverError: StreamingListenerReceiverError) -> None:
        """A receiver reported an error."""

    def onReceiverStopped(self, receiverStopped: StreamingListenerReceiverStopped) -> None:
        """A receiver has stopped."""

    def onBatchSubmitted(self, batchSubmitted: StreamingListenerBatchSubmitted) -> None:
        """A batch's jobs were generated and queued."""

    def onBatchStarted(self, batchStarted: StreamingListenerBatchStarted) -> None:
        """A batch started processing."""

    def onBatchCompleted(self, batchCompleted: StreamingListenerBatchCompleted) -> None:
        """A batch finished processing (its output operations may have failed)."""

    def onOutputOperationStarted(self, outputOperationStarted: StreamingListenerOutputOperationStarted) -> None:
        """An output operation of a batch started."""

    def onOutputOperationCompleted(self, outputOperationCompleted: StreamingListenerOutputOperationCompleted) -> None:
        """An output operation of a batch finished (``failureReason()`` is set if it failed)."""


def _accessors(cls):
    """Give a dataclass Scala-style accessor methods named like its fields (stored with a leading underscore)."""
    for name in list(cls.__dataclass_fields__):
        public = name.lstrip("_")

        def getter(self, _n=name):
            return getattr(self, _n)

        getter.__name__ = public
        setattr(cls, public, getter)
    return cls


@_accessors
@dataclass
class StreamInputInfo:
    _inputStreamId: int
    _numRecords: int
    _metadata: dict = field(default_factory=dict)

    def metadataDescription(self) -> str | None:
        return self._metadata.get("Description")


@_accessors
@dataclass
class OutputOperationInfo:
    _batchTime: Time
    _id: int
    _name: str
    _description: str
    _startTime: int | None = None
    _endTime: int | None = None
    _failureReason: str | None = None

    def duration(self) -> int:
        """Milliseconds the operation took, -1 until it ended."""
        if self._startTime is None or self._endTime is None:
            return -1
        return self._endTime - self._startTime


@_accessors
@dataclass
class BatchInfo:
    _batchTime: Time
    _streamIdToInputInfo: dict[int, StreamInputInfo]
    _submissionTime: int
    _processingStartTime: int | None = None
    _processingEndTime: int | None = None
    _outputOperationInfos: dict[int, OutputOperationInfo] = field(default_factory=dict)

    def numRecords(self) -> int:
        """Records received in this batch, over every input stream."""
        return sum(info.numRecords() for info in self._streamIdToInputInfo.values())

    def schedulingDelay(self) -> int:
        """Milliseconds between submission and the start of processing; -1 until processing starts."""
        if self._processingStartTime is None:
            return -1
        return self._processingStartTime - self._submissionTime

    def processingDelay(self) -> int:
        """Milliseconds processing took; -1 until it ended."""
        if self._processingStartTime is None or self._processingEndTime is None:
            return -1
        return self._processingEndTime - self._processingStartTime

    def totalDelay(self) -> int:
        """Scheduling delay plus processing delay; -1 until the batch ended."""
        if self._processingStartTime is None or self._processingEndTime is None:
            return -1
        return self.schedulingDelay() + self.processingDelay()


@_accessors
@dataclass
class ReceiverInfo:
    _streamId: int
    _name: str
    _active: bool
    _location: str = "driver"
    _executorId: str = "driver"
    _lastErrorMessage: str = ""
    _lastError: str = ""
    _lastErrorTime: int = -1


@_accessors
@dataclass
class StreamingListenerStreamingStarted:
    _time: int


@_accessors
@dataclass
class StreamingListenerReceiverStarted:
    _receiverInfo: ReceiverInfo


@_accessors
@dataclass
class StreamingListenerReceiverError:
    _receiverInfo: ReceiverInfo


@_accessors
@dataclass
class StreamingListenerReceiverStopped:
    _receiverInfo: ReceiverInfo


@_accessors
@dataclass
class StreamingListenerBatchSubmitted:
    _batchInfo: BatchInfo


@_accessors
@dataclass
class StreamingListenerBatchStarted:
    _batchInfo: BatchInfo


@_accessors
@dataclass
class StreamingListenerBatchCompleted:
    _batchInfo: BatchInfo


@_accessors
@dataclass
class StreamingListenerOutputOperationStarted:
    _outputOperationInfo: OutputOperationInfo


@_accessors
@dataclass
class StreamingListenerOutputOperationCompleted:
    _outputOperationInfo: OutputOperationInfo


class ListenerBus:
    """Delivers events to listeners in order; a failing listener is logged and never stops streaming."""

    def __init__(self) -> None:
        self._listeners: list[StreamingListener] = []
        self._lock = threading.RLock()

    def add(self, listener: StreamingListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove(self, listener: StreamingListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def post(self, method: str, event: Any) -> None:
        with self._lock:
            listeners = list(self._listeners)
            for listener in listeners:
                try:
                    getattr(listener, method)(event)
                except Exception:
                    logger.exception("StreamingListener %r raised in %s", listener, method)
