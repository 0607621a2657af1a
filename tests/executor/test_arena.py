"""The driver's input arena: reuse, and the bounds on what it keeps idle."""

import os

from pystream.executor import shm
from pystream.executor.arena import MIN_SEGMENT, InputArena
from pystream.frames import decode


def present(names):
    return {n for n in names if os.path.exists(os.path.join("/dev/shm", n))}


def test_idle_segments_stay_within_count_and_byte_bounds():
    arena = InputArena(os.getpid(), max_free=3, max_free_bytes=3 * MIN_SEGMENT)
    try:
        small = [f"line {i}" for i in range(1_000)]  # fits a MIN_SEGMENT segment
        big = ["x" * 1_000] * 3_000  # ~3 MB: a 4 MiB segment, over the byte bound on its own
        leases = [arena.write(small) for _ in range(4)] + [arena.write(big)]
        names = [lease.name for lease in leases]
        seg = shm.Segment.attach(names[0])
        try:
            view = seg.buf
            assert decode(view[:leases[0].length]) == small
            view.release()
        finally:
            seg.close()
        del leases
        idle = arena._free
        assert len(idle) == 3 and sum(s.size for s in idle) <= 3 * MIN_SEGMENT
        dropped = set(names) - {s.name for s in idle}
        assert len(dropped) == 2 and not present(dropped)  # unlinked ...
        assert set(arena.retired()) == dropped  # ... and announced, for workers to unmap
        # The next write reuses an idle segment instead of making one.
        again = arena.write(small)
        assert again.name in names and len(arena._free) == 2
        del again
    finally:
        arena.close()
    assert not present(names)


def test_a_zero_budget_keeps_nothing_idle():
    arena = InputArena(os.getpid(), max_free=4, max_free_bytes=0)
    try:
        lease = arena.write(list(range(100)))
        name = lease.name
        del lease
        assert arena._free == [] and not present({name})
    finally:
        arena.close()
