"""Typed errors raised by pystream.

Every error derives from :class:`PyStreamError` and also from the builtin exception that best matches it,
so ``except ValueError`` keeps working for code written against pyspark or plain Python.
"""

from __future__ import annotations

__all__ = [
    "PyStreamError",
    "CorruptFrameError",
    "FrameOverflowError",
    "IllegalStateError",
    "IllegalArgumentError",
    "StreamingJobError",
    "TaskFailedError",
    "ReceiverError",
    "SourceConnectionError",
    "WrongRecordLengthError",
    "CheckpointError",
    "StateLostError",
    "WorkerLostError",
    "NoSuchElementError",
    "JobCancelledError",
    "BarrierSlotsError",
    "BarrierSyncError",
    "KeyTooDeepError",
    "SharedMemoryFullError",
    "UnsupportedCodecError",
    "CorruptInputError",
    "UnsupportedFormatError",
    "UnserializableRecordError",
]


class PyStreamError(Exception):
    """Base class of every error pystream raises on purpose."""


class CorruptFrameError(PyStreamError, ValueError):
    """A record frame is malformed: truncated, wrong checksum, unknown version or flags, forged lengths."""


class FrameOverflowError(PyStreamError, ValueError):
    """An encoded frame does not fit in the buffer it was asked to be written into."""


class IllegalStateError(PyStreamError, RuntimeError):
    """An operation is not allowed in the current state (Spark's IllegalStateException)."""


class IllegalArgumentError(PyStreamError, ValueError):
    """An argument breaks one of Spark's requirements (Spark's IllegalArgumentException)."""


class StreamingJobError(PyStreamError, RuntimeError):
    """A batch's job failed; ``__cause__`` is the user's exception and ``traceback_text`` its traceback."""

    def __init__(self, message: str, traceback_text: str = "") -> None:
        super().__init__(message)
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        base = super().__str__()
        if self.traceback_text:
            return f"{base}\n{self.traceback_text}"
        return base


class TaskFailedError(StreamingJobError):
    """A task raised in an executor; carries the worker-side traceback."""


class ReceiverError(PyStreamError, RuntimeError):
    """A receiver reported an error it could not recover from."""


class SourceConnectionError(PyStreamError, ConnectionError):
    """A network source could not (re)connect after all its retries."""


class WrongRecordLengthError(PyStreamError, ValueError):
    """A binary record file's size is not a multiple of the record length."""


class CheckpointError(PyStreamError, ValueError):
    """A checkpoint is truncated, corrupted, unsigned, from an unknown version or another application."""


class StateLostError(PyStreamError, RuntimeError):
    """Keyed state was lost with a worker and cannot be rebuilt."""


class WorkerLostError(PyStreamError, RuntimeError):
    """A worker process died and the task ran out of attempts."""


class NoSuchElementError(PyStreamError, LookupError):
    """A value that is not there was asked for (Scala's NoSuchElementException), e.g. State.get()."""


class JobCancelledError(PyStreamError, RuntimeError):
    """A job was cancelled (``cancelJobGroup``, ``cancelJobsWithTag``, ``cancelAllJobs``) before it ended."""


class BarrierSlotsError(PyStreamError, RuntimeError):
    """A barrier stage (``RDD.barrier()``) has more tasks than the executor can run at once."""


class BarrierSyncError(PyStreamError, RuntimeError):
    """A barrier stage's sync cannot complete: another of its tasks failed, the tasks called different sync
    methods, or ``spark.barrier.sync.timeout`` passed."""


class KeyTooDeepError(PyStreamError, RecursionError):
    """A key nested deeper than the interpreter's recursion limit (a tuple in a tuple in ...) cannot be hashed."""


class SharedMemoryFullError(PyStreamError, MemoryError):
    """/dev/shm has no room for the shared memory a batch's records need."""


class UnsupportedCodecError(PyStreamError, ValueError):
    """A Hadoop compression codec pystream cannot run (Snappy, LZ4, Zstandard) or does not know, named for output
    or by an input file's extension."""


class CorruptInputError(PyStreamError, ValueError):
    """An input file cannot be decoded as its format says: a damaged or truncated compressed file."""


class UnsupportedFormatError(PyStreamError, ValueError):
    """A Hadoop input or output format whose code runs in a JVM (pystream reads and writes the text and
    SequenceFile formats)."""


class UnserializableRecordError(PyStreamError, TypeError):
    """A record cannot be pickled to cross to another process (a memoryview, a lock, an open file)."""
