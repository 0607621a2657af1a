"""Reusable shared-memory segments for the driver's task inputs.

The first write to a fresh segment costs a page fault per 4 KiB page: for a partition of 250,000 JSON lines
(44 MB) that is about 25 ms, four times the cost of encoding it. A segment written before costs none. So the
driver keeps the segments its inputs went through and writes later inputs into them once the tasks that
read them are done (a :class:`Lease` is held for as long as a task may still read its input). Workers keep
their mappings of these segments for the same reason, and are told to drop a mapping when its segment is
retired (:meth:`InputArena.retired`).

What the arena may hold idle is bounded: at most ``max_free`` segments and ``max_free_bytes`` bytes, none larger
than ``max_segment`` bytes (beyond, the smallest idle segments are unlinked first), and every segment is
unlinked by :meth:`InputArena.close` (the executor's stop).
"""

from __future__ import annotations

import threading
import weakref

from pystream import frames
from pystream._core.serialisation import FrameWriter
from pystream.errors import FrameOverflowError, SharedMemoryFullError
from pystream.executor import shm
from pystream.executor.wire import copy_into_segment, encode_into_segment, estimate_size

#: Segments are created at least this large (and in powers of two) so that batches of varying size reuse them.
MIN_SEGMENT = 1 << 20


class Lease:
    """A task input written into an arena segment; the segment returns to the arena when this is dropped."""

    __slots__ = ("name", "length", "__weakref__")

    def __init__(self, arena: InputArena, seg: shm.Segment, length: int) -> None:
        self.name, self.length = seg.name, length
        weakref.finalize(self, arena._release, seg)


class InputArena:
    """The driver's pool of input segments (see the module docstring)."""

    def __init__(self, driver_pid: int, max_free: int = 4, max_segment: int = 1 << 30,
                 max_free_bytes: int = 256 << 20) -> None:
        self._pid = driver_pid
        self._max_free = max_free
        self._max_free_bytes = max_free_bytes
        self._max_segment = max_segment
        self._free: list[shm.Segment] = []
        self._retired: list[str] = []
        self._closed = False
        # Leases are released by finalizers, which may run on any thread.
        self._lock = threading.RLock()

    def write(self, records: list) -> Lease | None:
        """Encode ``records`` as one frame into an arena segment; None if they do not fit the arena's bound."""
        need = 64 + 2 * estimate_size(records)
        if need > self._max_segment:
            return None
        if not shm.has_room(need):
            # Short of shared memory: encoded first, then copied into a segment of no more than its size.
            data = frames.encode(records)
            seg = self._take(len(data))
            view = seg.buf
            try:
                view[:len(data)] = data
            except BaseException:
                view.release()
                self._release(seg)
                raise
            view.release()
            return Lease(self, seg, len(data))
        seg = self._take(need)
        try:
            n = encode_into_segment(records, seg)
        except FrameOverflowError:
            self._release(seg)
            return None
        except BaseException:
            self._release(seg)
            raise
        return Lease(self, seg, n)

    def write_frame(self, frame: FrameWriter) -> Lease | None:
        """Copy a frame built elsewhere (a FrameWriter) into an arena segment; None if it exceeds the bound."""
        need = len(frame)
        if need > self._max_segment:
            return None
        seg = self._take(need)
        try:
            n = copy_into_segment(frame, seg)
        except BaseException:
            self._release(seg)
            raise
        return Lease(self, seg, n)

    def _take(self, need: int) -> shm.Segment:
        with self._lock:
            fits = [s for s in self._free if s.size >= need]
            if fits:
                seg = min(fits, key=lambda s: s.size)
                self._free.remove(seg)
                return seg
        size = max(MIN_SEGMENT, 1 << (need - 1).bit_length())
        try:
            return shm.Segment.create(shm.new_name(self._pid, "dp"), size)
        except SharedMemoryFullError:
            # /dev/shm is short: the idle segments go, and the new one is only as large as this input needs
            # (rounding up to a power of two is for reuse, worth less than fitting at all).
            with self._lock:
                idle, self._free = self._free, []
                self._retired.extend(s.name for s in idle)
            for s in idle:
                s.close()
                s.unlink()
            return shm.Segment.create(shm.new_name(self._pid, "dp"), need)

    def _release(self, seg: shm.Segment) -> None:
        with self._lock:
            drop = [seg]
            if not self._closed and seg.size <= min(self._max_segment, self._max_free_bytes):
                self._free.append(seg)
                # Keep the largest idle segments: they fit every input the smaller ones fit.
                self._free.sort(key=lambda s: s.size)
                drop = []
                while (len(self._free) > self._max_free
                       or sum(s.size for s in self._free) > self._max_free_bytes):
                    drop.append(self._free.pop(0))
            self._retired.extend(s.name for s in drop)
        for s in drop:
            s.close()
            s.unlink()

    def retired(self) -> list[str]:
        """Names of the segments unlinked since the last call (workers drop their mappings of them)."""
        with self._lock:
            names, self._retired = self._retired, []
        return names

    def close(self) -> None:
        """Unlink every idle segment now, and every leased one when its lease is dropped."""
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        for seg in free:
            seg.close()
            seg.unlink()
