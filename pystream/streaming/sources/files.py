"""textFileStream and binaryRecordsStream: new files in a directory, each in exactly one batch.

A file is new when it appears in the directory after the stream started (files are expected to arrive by
atomic move or rename). Names starting with "." are ignored, as are subdirectories. The files of a batch are
read by its tasks, so reading runs on the executor.
"""

from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING, Any

from pystream.errors import IllegalArgumentError, WrongRecordLengthError
from pystream.hadoop_files import text_lines
from pystream.rdd import RDD
from pystream.streaming.listener import StreamInputInfo
from pystream.streaming.sources.base import InputDStream

if TYPE_CHECKING:
    from pystream.streaming.context import StreamingContext


class FileInputDStream(InputDStream):
    def __init__(self, ssc: StreamingContext, directory: str, reader: Any, newFilesOnly: bool = True) -> None:
        super().__init__(ssc)
        self._dir = os.path.abspath(directory)
        self._reader = reader
        self._new_only = newFilesOnly
        self._seen: set[str] = set()
        self._files: dict[int, list[str]] = {}
        # The newest batch time whose file list was forgotten (None: none yet); checkpoints keep both maps.
        self._forgotten_ms: int | None = None
        self._is_recovered = False

    def _list(self) -> list[str]:
        try:
            entries = list(os.scandir(self._dir))
        except FileNotFoundError:
            return []
        return sorted(e.path for e in entries if not e.name.startswith(".") and e.is_file())

    def _start(self) -> None:
        # After a recovery, files that arrived while the driver was down are new: read them in the next batch.
        if self._new_only and not self._is_recovered:
            self._seen.update(self._list())

    def _recovered(self) -> None:
        self._is_recovered = True

    def _replayable_since(self, t_ms: int) -> bool:
        return self._forgotten_ms is None or t_ms >= self._forgotten_ms

    def _allocate(self, t: int) -> StreamInputInfo:
        if t in self._files:  # a batch scheduled before a recovery runs again with the same files
            files = self._files[t]
            return StreamInputInfo(self._id, 0, {"files": files, "Description": "\n".join(files)})
        current = self._list()
        new = [p for p in current if p not in self._seen]
        self._seen.update(new)
        # Forget names that disappeared so the set tracks the directory, not all history.
        self._seen.intersection_update(current)
        self._files[t] = new
        return StreamInputInfo(self._id, 0, {"files": new, "Description": "\n".join(new)})

    def files_of_batch(self, t: int) -> list[str]:
        return list(self._files.get(t, []))

    def _compute(self, t: int) -> RDD | None:
        files = self._files.get(t)
        if files is None:
            return None
        return self._sc.parallelize(files, max(1, len(files))).flatMap(self._reader)

    def _clear_metadata(self, t: int) -> None:
        horizon = t - (self._remember_ms or 0)
        # With checkpointing, keep the file lists of every batch a recovery may replay (those after the oldest
        # state checkpoint still kept): they are small, and without them the state could not be rebuilt.
        keep_after = getattr(self._ssc._graph, "replay_from_ms", None)
        if keep_after is not None:
            horizon = min(horizon, keep_after)
        for old in [s for s in self._files if s <= horizon]:
            del self._files[old]
            if self._forgotten_ms is None or old > self._forgotten_ms:
                self._forgotten_ms = old
        super()._clear_metadata(t)


class TextFileReader:
    """The lines of one file, as ``sc.textFile`` reads them (pystream.hadoop_files.text_lines)."""

    def __call__(self, path: str) -> list[str]:
        return text_lines(path)


class BinaryRecordReader:
    """Fixed-length records of one file, as bytes; WrongRecordLengthError if its size is not a multiple."""

    def __init__(self, record_length: int) -> None:
        if (isinstance(record_length, bool) or not isinstance(record_length, numbers.Integral)
                or record_length <= 0):
            raise IllegalArgumentError(f"recordLength must be a whole number above 0, got {record_length!r}")
        self.n = int(record_length)

    def __call__(self, path: str) -> list[bytes]:
        with open(path, "rb") as fh:
            data = fh.read()
        n = self.n
        if len(data) % n:
            raise WrongRecordLengthError(
                f"Record length of file {path} is {len(data)} bytes, not a multiple of the record length {n}")
        return [data[i:i + n] for i in range(0, len(data), n)]
