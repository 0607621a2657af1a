"""Clocks that drive batch generation: the system clock, and a manual clock for deterministic tests."""

from __future__ import annotations

import threading
import time


class Clock:
    """A source of milliseconds that the batch timer can wait on."""

    def now_ms(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def wait_until(self, target_ms: int, cancelled: threading.Event) -> bool:
        """Block until the clock reads at least ``target_ms`` (True) or ``cancelled`` is set (False)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def wake(self) -> None:
        """Wake every waiter so it can re-check its cancellation."""


class SystemClock(Clock):
    """Wall-clock time in milliseconds since the epoch."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wait_until(self, target_ms: int, cancelled: threading.Event) -> bool:
        while not cancelled.is_set():
            remaining = (target_ms - self.now_ms()) / 1000.0
            if remaining <= 0:
                return True
            cancelled.wait(min(remaining, 0.1))
        return False


class ManualClock(Clock):
    """A clock that only moves when told to; starts at ``start_ms`` (0 by default, as Spark's ManualClock)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._time = int(start_ms)
        self._cond = threading.Condition()

    def now_ms(self) -> int:
        with self._cond:
            return self._time

    def set_time(self, ms: int) -> None:
        """Move the clock to ``ms`` (never backwards) and wake waiters."""
        with self._cond:
            if ms < self._time:
                raise ValueError(f"ManualClock cannot go back from {self._time} to {ms}")
            self._time = int(ms)
            self._cond.notify_all()

    def advance(self, ms: float) -> None:
        """Move the clock forward by ``ms`` milliseconds and wake waiters."""
        with self._cond:
            self._time += int(ms)
            self._cond.notify_all()

    def wait_until(self, target_ms: int, cancelled: threading.Event) -> bool:
        with self._cond:
            while self._time < target_ms:
                if cancelled.is_set():
                    return False
                self._cond.wait(0.05)
            return not cancelled.is_set()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
