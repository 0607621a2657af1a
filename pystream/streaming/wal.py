"""The receivers' write-ahead log (Spark's ReceivedBlockTracker + FileBasedWriteAheadLog, simplified).

With ``spark.streaming.receiver.writeAheadLog.enable`` true and a checkpoint directory set, every block a
receiver stores (one ``store()`` call) is appended to a log in the checkpoint directory and fsynced before
``store()`` returns: what a receiver has stored survives a crash of the driver. Which blocks make up batch
``t`` is appended (and fsynced) to a second log before any job of batch ``t`` runs. On recovery
(:func:`pystream.checkpoint.recover`) the batches that a recovery re-runs get exactly the blocks they had,
and the blocks stored but not yet given to any batch go to the first new batch: nothing lost, nothing twice.

Layout, per receiver stream ``<id>`` (the local checkpoint directory only)::

    receivedData/<id>/log-<first seq>-<run>            blocks: sequence number -> records (a pystream frame)
    receivedBlockMetadata/<id>/log-<after ms>-<run>    allocations: batch ms -> blocks (lo, hi]

Each segment starts with a header (magic, version, kind, flags, stream) and holds records: a 40-byte header
(magic, type, flags, stream, key, payload length, XXH64 of the payload, XXH64 of the header), an HMAC-SHA256
signature when ``PYSTREAM_CHECKPOINT_KEY`` is set (checked before any frame is decoded, since frames may embed
pickles), then the payload. Block sequence numbers are consecutive per stream, so batch ``t``'s blocks are the
range ``(lo, hi]``; every allocation segment starts with a base record (the last batch allocated before it and
the highest block allocated) so each segment stands alone. A new process writes new segments; segments roll
every ``rollingIntervalSecs`` (Spark's keys, 60 s by default).

A record cut short at the end of a segment (a process killed mid-append; or zeros after a power loss) was never
acknowledged: it is dropped with a warning. Any other damage is a ``CheckpointError`` naming the file.
Segments whose batches are all covered by the checkpoints (the batches a recovery can no longer need) are
deleted after each checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pystream import frames
from pystream.errors import CheckpointError, CorruptFrameError, IllegalArgumentError
from pystream.hashing import xxh64

if TYPE_CHECKING:
    from pystream.streaming.context import StreamingContext

logger = logging.getLogger(__name__)

__all__ = ["ENABLE_KEY", "ReceiverLog", "RecoveredLog", "load_log", "read_segment", "wal_enabled"]

ENABLE_KEY = "spark.streaming.receiver.writeAheadLog.enable"
ROLL_KEY = "spark.streaming.receiver.writeAheadLog.rollingIntervalSecs"
TRACKER_ROLL_KEY = "spark.streaming.driver.writeAheadLog.rollingIntervalSecs"
DATA_DIR = "receivedData"
META_DIR = "receivedBlockMetadata"

SEG_MAGIC = b"PSWL"
REC_MAGIC = b"PSWR"
VERSION = 1
KIND_DATA, KIND_ALLOC = 1, 2
_KIND_NAMES = {KIND_DATA: "block", KIND_ALLOC: "allocation"}
REC_BLOCK, REC_BASE, REC_ALLOC = 1, 2, 3
FLAG_SIGNED = 1
#: segment header: magic, version, kind, flags, stream, XXH64 of the preceding 12 bytes
_SEG = struct.Struct("<4sHBBIQ")
#: record header: magic, type, flags, reserved, stream, key (block seq or batch ms), payload length,
#: XXH64 of the payload, then XXH64 of these 32 bytes
_REC = struct.Struct("<4sBBHIqIQ")
_REC_CHECK = struct.Struct("<Q")
REC_HEADER_SIZE = _REC.size + _REC_CHECK.size
_SIG_LEN = 32


def wal_enabled(ssc: StreamingContext) -> bool:
    return ssc.sparkContext._conf.getBoolean(ENABLE_KEY, False)


def check_config(ssc: StreamingContext) -> None:
    """Spark's refusal of a write-ahead log without a checkpoint directory; local directories only."""
    from pystream.streaming.sources.receiver import ReceiverInputDStream

    if not wal_enabled(ssc) or not any(isinstance(s, ReceiverInputDStream) for s in ssc._graph.input_streams):
        return
    if ssc._checkpoint_dir is None:
        raise IllegalArgumentError(
            "Cannot enable receiver write-ahead log without checkpoint directory set. Please use "
            "streamingContext.checkpoint() to set the checkpoint directory. See documentation for more details.")
    root_of(ssc)


def root_of(ssc: StreamingContext) -> str:
    url = ssc._checkpoint_dir
    assert url is not None
    if "://" in url and not url.startswith("file://"):
        raise NotImplementedError(
            f"the receiver write-ahead log ({ENABLE_KEY}) needs a local checkpoint directory; {url!r} is an "
            "fsspec URL (checkpoints without the write-ahead log work there)")
    return os.path.abspath(url[len("file://"):] if url.startswith("file://") else url)


# -- records ------------------------------------------------------------------------------------------------
def _encode_record(rtype: int, stream: int, key_value: int, payload: bytes, key: bytes | None) -> bytes:
    head = _REC.pack(REC_MAGIC, rtype, FLAG_SIGNED if key else 0, 0, stream, key_value, len(payload),
                     xxh64(payload))
    head += _REC_CHECK.pack(xxh64(head))
    sig = hmac.new(key, head + payload, hashlib.sha256).digest() if key else b""
    return head + sig + payload


def _segment_header(kind: int, stream: int, key: bytes | None) -> bytes:
    head = struct.pack("<4sHBBI", SEG_MAGIC, VERSION, kind, FLAG_SIGNED if key else 0, stream)
    return head + struct.pack("<Q", xxh64(head))


@dataclass
class Segment:
    """What one segment file holds: records as (type, key, payload), and whether a torn tail was dropped."""

    path: str
    kind: int
    stream: int
    records: list[tuple[int, int, memoryview]] = field(default_factory=list)
    torn: bool = False


def read_segment(path: str, key: bytes | None, kind: int | None = None) -> Segment:
    """Read and check one segment. A record cut short (or zeroed) at the end is dropped (``torn``); anything
    else wrong is a CheckpointError naming ``path``. Payloads are checked, not decoded."""
    with open(path, "rb") as fh:
        data = memoryview(fh.read())
    what = "write-ahead log file"
    if len(data) < _SEG.size:  # created, then killed before its header was complete
        return Segment(path, kind or 0, -1, torn=len(data) > 0)
    magic, version, got_kind, flags, stream, check = _SEG.unpack_from(data)
    if magic != SEG_MAGIC or check != xxh64(data[:_SEG.size - 8]):
        if not any(data):
            return Segment(path, kind or 0, -1, torn=True)
        raise CheckpointError(f"{what} {path} is corrupted: bad segment header")
    if version != VERSION:
        raise CheckpointError(f"{what} {path} has format version {version}; this pystream reads version {VERSION}")
    if kind is not None and got_kind != kind:
        raise CheckpointError(f"{what} {path} holds {_KIND_NAMES.get(got_kind, got_kind)} records, not "
                              f"{_KIND_NAMES[kind]} records")
    signed = bool(flags & FLAG_SIGNED)
    if key is not None and not signed:
        raise CheckpointError(f"{what} {path} is not signed, but PYSTREAM_CHECKPOINT_KEY is set: refusing to load it")
    seg = Segment(path, got_kind, stream)
    sig_len = _SIG_LEN if signed else 0
    pos, end = _SEG.size, len(data)
    while pos < end:
        if end - pos < REC_HEADER_SIZE:
            seg.torn = True
            break
        fields = _REC.unpack_from(data, pos)
        rmagic, rtype, rflags, _, rstream, rkey, length, pchk = fields
        (hchk,) = _REC_CHECK.unpack_from(data, pos + _REC.size)
        if rmagic != REC_MAGIC or hchk != xxh64(data[pos:pos + _REC.size]):
            if not any(data[pos:]):  # zeros to the end: space allocated but never written
                seg.torn = True
                break
            raise CheckpointError(f"{what} {path} is corrupted: bad record header at byte {pos}")
        if rstream != stream or bool(rflags & FLAG_SIGNED) != signed:
            raise CheckpointError(f"{what} {path} is corrupted: record at byte {pos} does not match its segment")
        rec_end = pos + REC_HEADER_SIZE + sig_len + length
        if rec_end > end:
            seg.torn = True
            break
        body_start = pos + REC_HEADER_SIZE + sig_len
        payload = data[body_start:rec_end]
        last = rec_end == end
        if xxh64(payload) != pchk:
            # A last record whose end never reached the disk (the file's size did, its pages did not) ends in
            # a zeroed sector: torn. One whose bytes are all there but differ was damaged after it was written, and
            # dropping it would lose records store() had acknowledged.
            if last and not any(data[max(body_start, (rec_end - 1) // 512 * 512):rec_end]):  # its last sector
                seg.torn = True
                break
            raise CheckpointError(f"{what} {path} is corrupted: XXH64 checksum mismatch in the record at byte {pos}")
        if key is not None:
            sig = data[pos + REC_HEADER_SIZE:body_start]
            expect = hmac.new(key, bytes(data[pos:pos + REC_HEADER_SIZE]) + bytes(payload), hashlib.sha256).digest()
            if not hmac.compare_digest(bytes(sig), expect):
                raise CheckpointError(f"{what} {path} has a wrong signature in the record at byte {pos} (another "
                                      "key, or the file was modified): refusing to load it")
        seg.records.append((rtype, rkey, payload))
        pos = rec_end
    if seg.torn:
        logger.warning("write-ahead log file %s ends with an incomplete record (a write cut short): dropped it",
                       path)
    return seg


def _decode(path: str, payload: memoryview) -> list:
    try:
        return frames.decode(payload)
    except CorruptFrameError as exc:
        raise CheckpointError(f"write-ahead log file {path} is corrupted: {exc}") from None


# -- writing ------------------------------------------------------------------------------------------------
class _SegmentFile:
    """One segment being appended to: a raw file descriptor, fdatasync after every record."""

    def __init__(self, directory: str, name: str, kind: int, stream: int, key: bytes | None) -> None:
        self.path = os.path.join(directory, name)
        self.name = name
        self.opened = time.monotonic()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._write(_segment_header(kind, stream, key))
        os.fsync(self.fd)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name is durable too
        finally:
            os.close(dir_fd)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def append(self, record: bytes) -> None:
        self._write(record)
        os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class _SegInfo:
    name: str
    lo: int | None = None  # data: block seqs; allocations: the base's "after" batch ms (None: from the start)
    hi: int | None = None  # data: the highest seq; allocations: the newest batch ms
    closed: bool = True


class ReceiverLog:
    """The write-ahead log of one receiver stream in this process: appends blocks and allocations."""

    def __init__(self, root: str, stream: int, key: bytes | None, roll_s: float = 60.0,
                 tracker_roll_s: float = 60.0) -> None:
        self.stream = stream
        self.key = key
        self.roll_s = roll_s
        self.tracker_roll_s = tracker_roll_s
        self.data_dir = os.path.join(root, DATA_DIR, str(stream))
        self.meta_dir = os.path.join(root, META_DIR, str(stream))
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.meta_dir, exist_ok=True)
        self.run = uuid.uuid4().hex[:8]
        self.next_seq = 1
        #: the highest block seq given to a batch, and that batch's time
        self.alloc_hi = 0
        self.last_alloc_ms: int | None = None
        self._allocs: list[tuple[int, int]] = []  # (batch ms, hi) not yet cleaned
        self._covered_hi = 0  # blocks up to this one belong to batches no recovery needs any more
        self._data_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._data: list[_SegInfo] = []
        self._meta: list[_SegInfo] = []
        self._data_file: _SegmentFile | None = None
        self._meta_file: _SegmentFile | None = None
        self.closed = False
        self.fsync_s = 0.0
        self._segments_made = 0

    def open(self, recovered: RecoveredLog | None) -> None:
        """Start this run's segments, continuing from what recovery read (or from nothing)."""
        if recovered is not None:
            self.next_seq = recovered.next_seq
            self.alloc_hi = recovered.alloc_hi
            self.last_alloc_ms = recovered.last_alloc_ms
            self._allocs = sorted((t, hi) for t, (_, hi) in recovered.allocations.items())
            self._data = [_SegInfo(n, lo, hi) for n, lo, hi in recovered.data_segments]
            self._meta = [_SegInfo(n, lo, hi) for n, lo, hi in recovered.meta_segments]
        self._roll_data()
        self._roll_meta()

    def _roll_data(self) -> None:
        if self._data_file is not None:
            self._data_file.close()
            self._data[-1].closed = True
        self._segments_made += 1
        name = f"log-{self.next_seq:016d}-{self.run}-{self._segments_made}"
        self._data_file = _SegmentFile(self.data_dir, name, KIND_DATA, self.stream, self.key)
        self._data.append(_SegInfo(name, None, None, closed=False))

    def _roll_meta(self) -> None:
        if self._meta_file is not None:
            self._meta_file.close()
            self._meta[-1].closed = True
        after = self.last_alloc_ms
        self._segments_made += 1
        name = f"log-{after if after is not None else 0:016d}-{self.run}-{self._segments_made}"
        self._meta_file = _SegmentFile(self.meta_dir, name, KIND_ALLOC, self.stream, self.key)
        self._meta_file.append(_encode_record(REC_BASE, self.stream, -1 if after is None else after,
                                              frames.encode([after, self.alloc_hi]), self.key))
        self._meta.append(_SegInfo(name, after, None, closed=False))

    def append_block(self, records: list, frame: bytes | None = None) -> int:
        """Log one block durably; returns its sequence number. The caller serialises calls."""
        payload = frame if frame is not None else frames.encode(records)
        with self._data_lock:
            if self.closed:
                raise RuntimeError("the write-ahead log is closed")
            assert self._data_file is not None
            info = self._data[-1]
            if info.hi is not None and time.monotonic() - self._data_file.opened >= self.roll_s:
                self._roll_data()
                info = self._data[-1]
            seq = self.next_seq
            started = time.perf_counter()
            self._data_file.append(_encode_record(REC_BLOCK, self.stream, seq, payload, self.key))
            self.fsync_s += time.perf_counter() - started
            self.next_seq = seq + 1
            if info.lo is None:
                info.lo = seq
            info.hi = seq
            return seq

    def record_allocation(self, t: int, hi: int) -> int:
        """Log durably that batch ``t`` holds the blocks after the last allocation up to ``hi``; returns lo."""
        with self._meta_lock:
            assert self._meta_file is not None
            lo = self.alloc_hi
            if hi < lo:
                raise RuntimeError(f"block allocation goes backwards: batch {t} ms up to {hi}, already {lo}")
            info = self._meta[-1]
            if info.hi is not None and time.monotonic() - self._meta_file.opened >= self.tracker_roll_s:
                self._roll_meta()
                info = self._meta[-1]
            self._meta_file.append(_encode_record(REC_ALLOC, self.stream, t, frames.encode([lo, hi]), self.key))
            info.hi = t
            self.alloc_hi = hi
            self.last_alloc_ms = t
            self._allocs.append((t, hi))
            return lo

    def clean(self, horizon_ms: int) -> list[str]:
        """Delete the closed segments that only hold batches at or before ``horizon_ms`` (no recovery can need
        them any more); returns the deleted paths."""
        deleted = []
        with self._meta_lock:
            covered = [hi for t, hi in self._allocs if t <= horizon_ms]
            self._covered_hi = max([self._covered_hi, *covered])
            hi_covered = self._covered_hi
            self._allocs = [(t, hi) for t, hi in self._allocs if t > horizon_ms]
            keep = []
            for i, info in enumerate(self._meta):
                # A closed segment may go once every batch in it is old enough and a later segment exists.
                newest = info.hi if info.hi is not None else info.lo
                if info.closed and i < len(self._meta) - 1 and (newest is None or newest <= horizon_ms):
                    deleted.append(os.path.join(self.meta_dir, info.name))
                else:
                    keep.append(info)
            self._meta = keep
        with self._data_lock:
            keep = []
            for info in self._data:
                if info.closed and (info.hi is None or info.hi <= hi_covered):
                    deleted.append(os.path.join(self.data_dir, info.name))
                else:
                    keep.append(info)
            self._data = keep
        for path in deleted:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return deleted

    def segment_names(self) -> tuple[list[str], list[str]]:
        with self._data_lock, self._meta_lock:
            return [i.name for i in self._data], [i.name for i in self._meta]

    def close(self) -> None:
        with self._data_lock, self._meta_lock:
            self.closed = True
            for f in (self._data_file, self._meta_file):
                if f is not None:
                    f.close()


class ReceiverLogs:
    """The write-ahead logs of a StreamingContext's receivers (``ssc._wal``): cleaned after each checkpoint."""

    def __init__(self) -> None:
        self.logs: list[ReceiverLog] = []

    def add(self, log: ReceiverLog) -> None:
        self.logs.append(log)

    def clean(self, horizon_ms: int) -> None:
        for log in self.logs:
            log.clean(horizon_ms)

    def close(self) -> None:
        for log in self.logs:
            log.close()


# -- recovery -----------------------------------------------------------------------------------------------
@dataclass
class RecoveredLog:
    """What the write-ahead log of one stream says after a crash (checked; frames not decoded yet)."""

    stream: int
    allocations: dict[int, tuple[int, int]]     # batch ms -> (lo, hi]
    blocks: dict[int, tuple[str, memoryview]]   # seq -> (file, payload)
    covered_after: int | None                   # allocations are known for every batch after this (None: all)
    alloc_hi: int
    last_alloc_ms: int | None
    next_seq: int
    data_segments: list[tuple[str, int | None, int | None]]
    meta_segments: list[tuple[str, int | None, int | None]]
    data_dir: str
    #: filled by materialize(): records of each batch a recovery may run again, and the unallocated blocks
    batches: dict[int, list] = field(default_factory=dict)
    unallocated: list = field(default_factory=list)

    def replayable_since(self, t_ms: int) -> bool:
        """Whether every batch after ``t_ms`` can be rebuilt: its allocation and its blocks are still logged."""
        return self.replay_gap(t_ms) is None

    def replay_gap(self, t_ms: int) -> str | None:
        """Why some batch after ``t_ms`` cannot be rebuilt from the log (None: every one can)."""
        if self.covered_after is not None and t_ms < self.covered_after:
            return (f"the write-ahead log in {self.data_dir} keeps the batches of stream {self.stream} after "
                    f"{self.covered_after} ms only")
        for t, (lo, hi) in sorted(self.allocations.items()):
            if t > t_ms:
                for s in range(lo + 1, hi + 1):
                    if s not in self.blocks:
                        return (f"the write-ahead log in {self.data_dir} lost block {s} of stream {self.stream}, "
                                f"allocated to batch {t} ms (a log file deleted or damaged)")
        return None

    def materialize(self, need_after: int, batch_times: Iterable[int]) -> None:
        """Decode the blocks of every batch after ``need_after`` and the blocks no batch has; CheckpointError
        when one is missing. ``batch_times`` are the batches after ``need_after`` a checkpoint says ran."""
        where = self.data_dir
        for t in batch_times:
            if t > need_after and t not in self.allocations:
                raise CheckpointError(f"the write-ahead log in {where} has no allocation for batch {t} ms of "
                                      f"stream {self.stream}, which the checkpoint needs")
        for t, (lo, hi) in sorted(self.allocations.items()):
            if t <= need_after:
                continue
            records: list = []
            for s in range(lo + 1, hi + 1):
                if s not in self.blocks:
                    raise CheckpointError(f"the write-ahead log in {where} lost block {s} of stream {self.stream}, "
                                          f"allocated to batch {t} ms")
                records.extend(_decode(*self.blocks[s]))
            self.batches[t] = records
        top = max(self.blocks, default=0)
        for s in range(self.alloc_hi + 1, top + 1):
            if s not in self.blocks:
                raise CheckpointError(f"the write-ahead log in {where} lost block {s} of stream {self.stream}, "
                                      f"stored before block {top}")
            self.unallocated.extend(_decode(*self.blocks[s]))
        self.blocks = {}  # decoded what was needed: let the file contents go


def _segment_files(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith("log-"))


def load_log(root: str, stream: int, key: bytes | None) -> RecoveredLog:
    """Read every segment of stream ``stream``'s write-ahead log under checkpoint directory ``root``."""
    data_dir = os.path.join(root, DATA_DIR, str(stream))
    meta_dir = os.path.join(root, META_DIR, str(stream))
    allocations: dict[int, tuple[int, int]] = {}
    alloc_hi, last_ms = 0, None
    afters: list[int | None] = []
    meta_segments = []
    for name in _segment_files(meta_dir):
        path = os.path.join(meta_dir, name)
        seg = read_segment(path, key, KIND_ALLOC)
        if not seg.records:
            meta_segments.append((name, None, None))
            continue
        (rtype, _, payload), rest = seg.records[0], seg.records[1:]
        if rtype != REC_BASE or seg.stream != stream:
            raise CheckpointError(f"write-ahead log file {path} is corrupted: it does not start with its base record")
        after, base_hi = _decode(path, payload)
        afters.append(after)
        alloc_hi = max(alloc_hi, base_hi)
        if after is not None:
            last_ms = after if last_ms is None else max(last_ms, after)
        newest = None
        for rtype, t, payload in rest:
            if rtype != REC_ALLOC:
                raise CheckpointError(f"write-ahead log file {path} is corrupted: record of type {rtype}")
            lo, hi = _decode(path, payload)
            if t in allocations and allocations[t] != (lo, hi):
                raise CheckpointError(f"write-ahead log file {path} allocates batch {t} ms twice, differently")
            allocations[t] = (lo, hi)
            alloc_hi = max(alloc_hi, hi)
            last_ms = t if last_ms is None else max(last_ms, t)
            newest = t if newest is None else max(newest, t)
        meta_segments.append((name, after, newest))
    if not afters or any(a is None for a in afters):
        covered_after = None
    else:
        covered_after = min(a for a in afters if a is not None)
    blocks: dict[int, tuple[str, memoryview]] = {}
    data_segments = []
    for name in _segment_files(data_dir):
        path = os.path.join(data_dir, name)
        seg = read_segment(path, key, KIND_DATA)
        seqs = []
        for rtype, seq, payload in seg.records:
            if rtype != REC_BLOCK or seg.stream != stream:
                raise CheckpointError(f"write-ahead log file {path} is corrupted: record of type {rtype}")
            if seq in blocks:
                raise CheckpointError(f"write-ahead log file {path} repeats block {seq} (also in {blocks[seq][0]})")
            blocks[seq] = (path, payload)
            seqs.append(seq)
        data_segments.append((name, min(seqs) if seqs else None, max(seqs) if seqs else None))
    next_seq = max(max(blocks, default=0), alloc_hi) + 1
    return RecoveredLog(stream, allocations, blocks, covered_after, alloc_hi, last_ms, next_seq, data_segments,
                        meta_segments, data_dir)


def load_receiver_logs(ssc: StreamingContext) -> None:
    """Recovery, first step: read the log of every receiver stream of a rebuilt graph (before states are
    chosen, so that ``_replayable_since`` knows what the log still holds)."""
    from pystream.checkpoint import signing_key
    from pystream.streaming.sources.receiver import ReceiverInputDStream

    if not wal_enabled(ssc) or ssc._checkpoint_dir is None:
        return
    try:
        root = root_of(ssc)
    except NotImplementedError:
        return  # start() refuses this configuration with a clear error
    key = signing_key()
    for stream in ssc._graph.input_streams:
        if isinstance(stream, ReceiverInputDStream):
            stream._wal_recovery = load_log(root, stream._id, key)


def materialize_receiver_logs(ssc: StreamingContext, need_after: int, checkpoint_ms: int) -> None:
    """Recovery, last step: decode the blocks of the batches the recovered context may compute again."""
    from pystream.streaming.sources.receiver import ReceiverInputDStream

    graph = ssc._graph
    for stream in graph.input_streams:
        rec = getattr(stream, "_wal_recovery", None)
        if isinstance(stream, ReceiverInputDStream) and rec is not None:
            first = need_after + graph.batch_ms
            rec.materialize(need_after, range(max(first, graph.zero_ms + graph.batch_ms), checkpoint_ms + 1,
                                              graph.batch_ms))
