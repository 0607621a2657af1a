"""What the driver holds of data that lives elsewhere: a partition a worker keeps (BlockRef), a frame in a shared
segment (FrameRef, its segment's owner SharedSegment), or a partition the driver encoded into its input arena
(PooledFrame). Dropping the last reference frees what it names."""

from __future__ import annotations

import weakref
from typing import Any

from pystream.executor import shm
from pystream.executor.arena import Lease
from pystream.executor.wire import read_frame


class BlockRef:
    """A partition kept in a worker's memory. Dropping the last reference frees it in the worker."""

    __slots__ = ("worker", "incarnation", "block_id", "count", "__weakref__")

    def __init__(self, executor: Any, worker: int, incarnation: int, block_id: int, count: int):
        self.worker, self.incarnation, self.block_id, self.count = worker, incarnation, block_id, count
        weakref.finalize(self, executor._free_block, worker, incarnation, block_id)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"BlockRef(worker={self.worker}, block={self.block_id}, records={self.count})"


class SharedSegment:
    """Driver-side owner of a segment that workers read; unlinked when the last reference goes."""

    __slots__ = ("name", "__weakref__")

    def __init__(self, name: str) -> None:
        self.name = name
        weakref.finalize(self, shm.unlink, name)


class FrameRef:
    """One frame inside a shared segment (a shuffle bucket, or a large result)."""

    __slots__ = ("segment", "offset", "length")

    def __init__(self, segment: SharedSegment, offset: int, length: int) -> None:
        self.segment, self.offset, self.length = segment, offset, length

    def load(self) -> list:
        return read_frame(self.segment.name, self.offset, self.length)


class PooledFrame:
    """A partition the driver encoded itself into an input-arena segment (records it split by key)."""

    __slots__ = ("lease", "count")

    def __init__(self, lease: Lease, count: int) -> None:
        self.lease, self.count = lease, count

    def __len__(self) -> int:
        return self.count
