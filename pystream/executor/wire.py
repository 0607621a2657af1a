"""How task inputs and outputs cross process boundaries: record frames in shared memory, by reference.

A description is a small tuple sent over the worker's pipe:

* ``("obj", value)``: a small value, pickled with the message;
* ``("frame", name, offset, length)``: a list of records encoded as a frame inside segment ``name``;
* ``("pooled", name, offset, length)``: the same inside one of the driver's reused input segments
  (:mod:`pystream.executor.arena`), whose mapping the worker keeps;
* ``("block", block_id)``: a partition kept in the receiving worker's memory (no copy at all);
* ``("list", [desc, ...])`` / ``("tuple", [desc, ...])``: containers of the above (a reduce task's buckets,
  a zip task's partitions).
"""

from __future__ import annotations

from typing import Any

from pystream import frames
from pystream.frames import FrameReader, FrameWriter
from pystream.executor import shm

#: Lists shorter than this travel inside the pipe message; longer ones as a frame in shared memory.
INLINE_LIMIT = 256


class Buckets(list):
    """The inputs of one reduce task: one bucket (list of records or a reference) per map task."""

    __slots__ = ()


def write_frames(lists: list[list | FrameWriter], driver_pid: int,
                 owner: str) -> tuple[shm.Segment, list[tuple[int, int]]]:
    """Encode each list as one frame (a FrameWriter is one already), all in one new segment; return it and
    each frame's (offset, length)."""
    encoded = [part if isinstance(part, FrameWriter) else frames.encode(part) for part in lists]
    total = sum(len(e) for e in encoded)
    seg = shm.Segment.create(shm.new_name(driver_pid, owner), total)
    try:
        view = seg.buf
        spans = []
        pos = 0
        for e in encoded:
            if isinstance(e, FrameWriter):
                n = e.write_into(view, pos)
            else:
                n = len(e)
                view[pos:pos + n] = e
            spans.append((pos, n))
            pos += n
        view.release()
    except BaseException:
        seg.close()
        seg.unlink()
        raise
    return seg, spans


def write_records(records: list, driver_pid: int, owner: str) -> tuple[shm.Segment, int]:
    """Encode ``records`` straight into a new segment (no intermediate bytes); return it and the frame length."""
    # A frame is never larger than this bound for the types frames store inline; pickled objects may be, so
    # fall back to encode() when encode_into reports an overflow.
    size = max(64 + 2 * estimate_size(records), 4096)
    if not shm.has_room(size):
        # Short of shared memory: encoded first, into a segment of exactly its size (write_frames).
        segs, spans = write_frames([records], driver_pid, owner)
        return segs, spans[0][1]
    seg = shm.Segment.create(shm.new_name(driver_pid, owner), size)
    try:
        return seg, encode_into_segment(records, seg)
    except ValueError:
        seg.close()
        seg.unlink()
        segs, spans = write_frames([records], driver_pid, owner)
        return segs, spans[0][1]
    except BaseException:
        seg.close()
        seg.unlink()
        raise


def encode_into_segment(records: list, seg: shm.Segment) -> int:
    """Encode ``records`` as one frame at the start of ``seg``; return its length. FrameOverflowError (a
    ValueError) when it does not fit."""
    view = seg.buf
    try:
        return frames.encode_into(records, view)
    finally:
        view.release()


def copy_into_segment(frame: FrameWriter, seg: shm.Segment) -> int:
    """Copy a frame built elsewhere (a FrameWriter) to the start of ``seg``; return its length."""
    view = seg.buf
    try:
        return frame.write_into(view)
    finally:
        view.release()


def estimate_size(records: list) -> int:
    """An estimate of the frame size of ``records``, from a sample of them (strings counted by their encoding)."""
    n = len(records)
    if n == 0:
        return 0
    sample = records[:64]
    try:
        total = sum(_estimate(r) for r in sample)
    except Exception:  # an odd object: let the encoder find out what it costs
        return 0
    return total * n // len(sample)


def _estimate(record: Any) -> int:
    if isinstance(record, str):
        return len(record) + 16 if record.isascii() else len(record) * 4 + 16
    if isinstance(record, bytes):
        return len(record) + 16
    if isinstance(record, tuple):
        return 8 + sum(_estimate(x) for x in record)
    return 32


def read_frame(name: str, offset: int, length: int) -> list:
    """Decode one frame of a segment into records, then drop the mapping (the records own their memory)."""
    seg = shm.Segment.attach(name)
    try:
        return decode_in(seg, offset, length)
    finally:
        seg.close()


def decode_in(seg: shm.Segment, offset: int, length: int) -> list:
    """Decode the frame at ``offset`` of a mapped segment."""
    view = seg.buf
    try:
        part = view[offset:offset + length]
        try:
            return frames.decode(part)
        finally:
            part.release()
    finally:
        view.release()


def open_in(seg: shm.Segment, offset: int, length: int) -> FrameReader:
    """A FrameReader over the frame at ``offset`` of a mapped segment (header and checksum checked now)."""
    return FrameReader(seg.buf, offset, length)


def close_readers(readers: list[FrameReader | shm.Segment]) -> None:
    """Close the readers a task was given, so the segments they read can be reused or unmapped (and close,
    after its readers, each segment mapped only for them)."""
    for reader in readers:
        reader.close()
    readers.clear()
