"""Atomic directory output shared by RDD.saveAsTextFile, saveAsPickleFile and DStream.saveAsTextFiles.

A directory is written under a temporary name beside its target, with ``_SUCCESS`` last, then renamed into
place in one step, so readers see either no directory or a complete one, and a batch that runs again after a
failure finds its complete output already there instead of writing a second copy.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from pystream.hadoop_files import Codec

SUCCESS = "_SUCCESS"


def is_complete(path: str) -> bool:
    """Return whether ``path`` is a directory written completely (it holds ``_SUCCESS``)."""
    return os.path.isfile(os.path.join(path, SUCCESS))


def write_text_dir(path: str, partitions: Iterable[Iterable[str]], *, if_exists: str = "error",
                   codec: Codec | None = None, part: str = "part-") -> bool:
    """Write one ``part-NNNNN`` file per partition into the directory ``path``, atomically: each partition's
    lines, each followed by a newline; through ``codec`` (pystream.hadoop_files), with its extension, if given.
    ``part`` begins the files' names (Hadoop's new API writes ``part-r-NNNNN``).

    ``if_exists``: "error" raises FileExistsError when ``path`` exists (Spark's saveAsTextFile); "skip" keeps a
    complete existing directory and replaces an incomplete one (re-run batches). Returns whether it wrote.
    """
    if codec is None:
        return _write_dir(path, partitions, _write_lines, if_exists, "", part)

    def compressed(fh: BinaryIO, lines: Iterable[str]) -> None:
        with codec.open_write(fh) as out:
            _write_lines(out, lines)

    return _write_dir(path, partitions, compressed, if_exists, codec.extension, part)


def write_binary_dir(path: str, partitions: Iterable[bytes], *, if_exists: str = "error",
                     part: str = "part-") -> bool:
    """As write_text_dir, with each partition's file given as bytes."""
    return _write_dir(path, partitions, _write_bytes, if_exists, "", part)


def _write_lines(fh: BinaryIO, lines: Iterable[str]) -> None:
    # Line by line, through the file's buffer: no partition-sized string is built first.
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="\n")
    try:
        for line in lines:
            text.write(line)
            text.write("\n")
        text.flush()
    finally:
        text.detach()  # the caller's file stays open (closing the wrapper would close it)


def _write_bytes(fh: BinaryIO, data: bytes) -> None:
    fh.write(data)


def _write_dir(path: str, partitions: Iterable[Any], write_part: Callable[[BinaryIO, Any], None],
               if_exists: str, extension: str = "", prefix: str = "part-") -> bool:
    from pystream.hadoop_files import local_path

    path = os.path.abspath(local_path(path))  # file:// and file: name the local file system, as for input
    if os.path.exists(path):
        if if_exists == "error":
            raise FileExistsError(f"Output directory {path} already exists")
        if is_complete(path):
            return False
        shutil.rmtree(path, ignore_errors=True)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    os.makedirs(tmp)
    try:
        for i, part in enumerate(partitions):
            with open(os.path.join(tmp, f"{prefix}{i:05d}{extension}"), "wb") as fh:
                write_part(fh, part)
                fh.flush()
                os.fsync(fh.fileno())
        with open(os.path.join(tmp, SUCCESS), "w"):
            pass
        try:
            os.rename(tmp, path)
        except OSError:
            # Someone else completed the same directory meanwhile (a concurrent re-run): theirs stands.
            if if_exists == "skip" and is_complete(path):
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


class FileSink:
    """A transactional file sink for ``foreachRDD``: each batch is committed atomically under its batch time.

    ``stream.foreachRDD(FileSink("/data/out"))`` writes batch t's records into ``batch-<t ms>/part-NNNNN``
    (one JSON value, or ``str()``, per line), then commits it by writing ``_commits/<t ms>`` (the batch's files
    and record count). A batch that runs again after a recovery finds its commit and writes nothing; a batch
    directory without a commit (a crash between the two steps) is replaced. :meth:`read` returns the records of
    committed batches only, so a reader never sees a partial or duplicated batch.
    """

    def __init__(self, path: str, format: str = "json") -> None:
        if format not in ("json", "text"):
            raise ValueError(f"format must be 'json' or 'text', got {format!r}")
        self.path = os.path.abspath(path)
        self.format = format

    def _line(self, record: object) -> str:
        if self.format == "text":
            return str(record)
        import json

        return json.dumps(record, separators=(",", ":"), default=str)

    def __call__(self, time: object, rdd: object) -> None:
        from pystream.streaming.time import to_ms

        t = to_ms(time)
        commit = os.path.join(self.path, "_commits", str(t))
        if os.path.exists(commit):
            return  # this batch was committed by an earlier run
        target = os.path.join(self.path, f"batch-{t}")
        if os.path.exists(target):
            shutil.rmtree(target, ignore_errors=True)  # written but never committed: replace it
        line = self._line
        parts = rdd._run(lambda _, it: [line(r) for r in it])  # type: ignore[attr-defined]
        write_text_dir(target, parts, if_exists="error")
        files = sorted(f for f in os.listdir(target) if f.startswith("part-"))
        self._write_commit(commit, {"batch_ms": t, "files": files, "records": sum(len(p) for p in parts)})

    @staticmethod
    def _write_commit(commit: str, info: dict) -> None:
        import json

        os.makedirs(os.path.dirname(commit), exist_ok=True)
        tmp = f"{commit}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, commit)

    def committed_batches(self) -> list[int]:
        """Batch times (ms) committed so far, in order."""
        try:
            names = os.listdir(os.path.join(self.path, "_commits"))
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def read(self) -> list:
        """Every record of every committed batch, batch by batch (JSON values decoded, or text lines)."""
        import json

        out: list = []
        for t in self.committed_batches():
            with open(os.path.join(self.path, "_commits", str(t)), encoding="utf-8") as fh:
                info = json.load(fh)
            for name in info["files"]:
                with open(os.path.join(self.path, f"batch-{t}", name), encoding="utf-8") as fh:
                    for line in fh.read().splitlines():
                        out.append(json.loads(line) if self.format == "json" else line)
        return out
