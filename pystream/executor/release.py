"""When the process executor's driver frees what it let go: partitions workers keep, input segments, broadcasts,
and the objects discard() was given (a batch's input lists), on a core no task needs or when the driver is idle."""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from typing import Any

from pystream import broadcast

# Records the driver frees at a time while a task may be about to reply: about half a millisecond.
_FREE_CHUNK = 16384


class Releasing:
    """ProcessExecutor's freeing, kept apart from running tasks. Reads the executor's ``_workers``, ``_lock``,
    ``_arena``, ``_cores`` and ``_stopped``; owns ``_pending_frees``, ``_discarded`` and ``_releases``."""

    _workers: list[Any]
    _lock: Any
    _arena: Any
    _cores: int
    _stopped: bool
    _runs: int

    def _init_releasing(self) -> None:
        # (worker, incarnation, block id) of dropped BlockRefs. A deque: finalizers append from whichever
        # thread drops the last reference (a receiver's, the generator's) while a flush drains it, and both
        # are atomic on a deque; swapping a dict under a finalizer halfway through its append lost that free.
        self._pending_frees: collections.deque[tuple[int, int, int]] = collections.deque()
        # Objects discard() keeps to free when the driver is idle (tidy) or has a core to spare while tasks run
        # (see _drop_discarded), each with the release() and run_tasks() counts at its discard: what is still
        # there at the end of the second run after its discard is dropped then, and by the second release()
        # after it at the latest.
        self._discarded: collections.deque[tuple[int, int, Any]] = collections.deque()
        self._releases = 0

    def _free_block(self, worker: int, incarnation: int, block_id: int) -> None:
        # Called from finalizers (any thread, possibly during a run): queue it, send with the next message.
        self._pending_frees.append((worker, incarnation, block_id))

    def _flush_frees(self) -> None:
        pending: dict[tuple[int, int], list[int]] = {}
        queued = self._pending_frees
        while queued:
            worker, incarnation, block_id = queued.popleft()
            pending.setdefault((worker, incarnation), []).append(block_id)
        for (index, incarnation), ids in pending.items():
            w = self._workers[index] if index < len(self._workers) else None
            if w is not None and w.incarnation == incarnation and w.process.is_alive():
                try:
                    w.conn.send(("free", ids))
                except OSError:
                    pass

    def _forget_broadcasts(self) -> None:
        """Tell the workers to drop the broadcasts the driver unpersisted, destroyed or dropped."""
        gone: set[int] = set()
        while broadcast.released:
            gone.add(broadcast.released.popleft())
        for w in self._workers:
            drop = sorted(w.broadcasts & gone)
            if drop and w.process.is_alive():
                w.broadcasts.difference_update(drop)
                try:
                    w.conn.send(("unbroadcast", drop))
                except OSError:
                    pass

    def _flush_released(self) -> None:
        """Tell workers what the driver released: partitions to free, input segments to unmap."""
        self._flush_frees()
        names = self._arena.retired()
        if not names:
            return
        for w in self._workers:
            if w.process.is_alive():
                try:
                    w.conn.send(("forget", names))
                except OSError:
                    pass

    def discard(self, obj: Any) -> None:
        if not self._stopped:  # a stopped executor runs no more tasks: obj goes now
            self._discarded.append((self._releases, self._runs, obj))

    def _spare_core(self) -> bool:
        """Whether a core is left that no running task needs: the driver's own work there slows no task
        (W1 on 2 workers: freeing a partition's lines while both ran started the second task 3 ms late)."""
        return sum(1 for w in self._workers if w.running) < self._cores

    def _drop_discarded(self, *, released: int | None = None, ran: int | None = None,
                        until: Callable[[], bool] | None = None) -> None:
        """Free the discarded objects: all, or those discarded before release number ``released`` or before
        run number ``ran``. With ``until``, a few thousand records at a time, stopping as soon as ``until()`` is
        true: the driver frees on a spare core, and what it waits for must not wait behind the freeing (W3
        with mapWithState on 2 workers: a batch's 500K events, 15 ms to free, held up the stage's last reply)."""
        # Popped one at a time (a deque's ends are thread-safe): an object's finalizer may discard more.
        q = self._discarded
        while q and (released is None or q[0][0] < released) and (ran is None or q[0][1] < ran):
            if until is None:
                q.popleft()
                continue
            if until():
                return
            if type(q[0][2]) is list:
                obj = q[0][2]
                # Emptied from its end while the queue alone holds it (its entry, obj, and getrefcount's
                # argument make 3): a list anything else still holds is only let go, never changed.
                if len(obj) > _FREE_CHUNK and sys.getrefcount(obj) == 3:
                    del obj[-_FREE_CHUNK:]
                    continue
                del obj
                q.popleft()
                continue
            released_at, ran_at, obj = q.popleft()
            # An RDD of the driver's records: its lists take its place in the queue, and go a chunk at a time
            # once it is gone (if anything else still holds the RDD, they stay whole, and are only let go).
            lists = obj._driver_record_lists() if hasattr(obj, "_driver_record_lists") else []
            del obj
            q.extendleft((released_at, ran_at, part) for part in reversed(lists))
            del lists

    def tidy(self, until: Callable[[], bool]) -> None:
        # Tasks that another thread runs meanwhile free on their own spare cores: this one does not wait.
        if not self._lock.acquire(blocking=False):
            return
        try:
            # Between chunks the GIL is let go (sleep(0)): the thread the last batch woke (the caller waiting for
            # it) runs at once, not after the interpreter's 5 ms switch interval. A stop() waits for this lock:
            # it is not kept waiting for the rest (stop drops it all at once).
            self._drop_discarded(until=lambda: time.sleep(0) or self._stopped or until())
        finally:
            self._lock.release()

    def _replied(self) -> bool:
        """Whether a worker with a task running has sent something (or ended) that the driver has not read."""
        for w in self._workers:
            if w.running:
                try:
                    if w.conn.poll():
                        return True
                except OSError:
                    return True
        return False

    def release(self) -> None:
        # Workers then free the previous batch's partitions (state versions, cached blocks) while the driver
        # waits for the next batch, not at the start of it.
        with self._lock:
            self._releases += 1
            self._drop_discarded(released=self._releases - 1)
            if not self._stopped:
                self._flush_released()
