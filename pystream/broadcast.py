"""Broadcast variables: a read-only value every task may read, shipped to each worker once (pyspark's).

A task function that refers to a Broadcast is pickled with a reference to it, not its value (see
``pystream.pickling.dumps_task``). The value is pickled once, the first time a task needs it, and sent to each
worker once, before its first task that reads it; the worker keeps it until the broadcast is unpersisted,
destroyed or dropped by the driver. Before this, every stage of every batch pickled the whole value into its
task function again: a 1M-entry lookup dict cost 170 ms of the driver per stage.

Tasks read the value as it was when it was first pickled; the driver's ``value`` is the object itself.
"""

from __future__ import annotations

import collections
import itertools
import pickle
import secrets
import threading
import weakref
from typing import Any, Generic, TypeVar

from pystream.errors import IllegalStateError

T = TypeVar("T")

# Ids start at random, as accumulators' do: a Broadcast restored from a checkpoint gets a new one anyway.
_ids = itertools.count(secrets.randbits(62))
# Ids of broadcasts unpersisted, destroyed or dropped by the driver: the process executor tells its workers.
released: collections.deque[int] = collections.deque()
# A worker's values by id.
_values: dict[int, Any] = {}

_DESTROYED = "Attempted to use broadcast variable after it was destroyed"


class Broadcast(Generic[T]):
    """A read-only value shared with every task (pyspark's Broadcast); made by ``sc.broadcast(value)``."""

    def __init__(self, value: T) -> None:
        self._bid = next(_ids)
        self._value: T | None = value
        self._blob: bytes | None = None
        self._destroyed = False
        self._lock = threading.Lock()
        weakref.finalize(self, released.append, self._bid)

    @property
    def value(self) -> T:
        """The broadcast value."""
        if self._destroyed:
            raise IllegalStateError(_DESTROYED)
        return self._value  # type: ignore[return-value]

    def unpersist(self, blocking: bool = False) -> None:
        """Drop the workers' copies; a task that reads the value after this has it sent again."""
        released.append(self._bid)

    def destroy(self, blocking: bool = False) -> None:
        """Drop the value everywhere: no task may use this broadcast any more."""
        self._destroyed = True
        self._value = self._blob = None
        released.append(self._bid)

    def dump(self) -> bytes:
        """The value pickled, once (what is sent to each worker)."""
        with self._lock:
            if self._destroyed:
                raise IllegalStateError(_DESTROYED)
            if self._blob is None:
                from pystream import pickling

                self._blob = pickling.dumps(self._value)
            return self._blob

    def __reduce__(self) -> tuple:
        # Pickled whole (a checkpoint's graph): restored as a new broadcast of the same value.
        if self._destroyed:
            raise IllegalStateError(_DESTROYED)
        return (Broadcast, (self._value,))


class _WorkerBroadcast:
    """A task's Broadcast in a worker: reads the value the driver sent to this process."""

    __slots__ = ("_bid",)

    def __init__(self, bid: int) -> None:
        self._bid = bid

    @property
    def value(self) -> Any:
        try:
            return _values[self._bid]
        except KeyError:
            raise IllegalStateError(f"broadcast {self._bid} was not sent to this worker") from None


def shipped(bid: int) -> _WorkerBroadcast:
    """What a task function's reference to broadcast ``bid`` unpickles to (in a worker)."""
    return _WorkerBroadcast(bid)


def receive(bid: int, blob: bytes) -> None:
    """A worker: keep the value the driver sent for broadcast ``bid``."""
    _values[bid] = pickle.loads(blob)


def forget(bids: list[int]) -> None:
    """A worker: drop the values of these broadcasts."""
    for bid in bids:
        _values.pop(bid, None)
