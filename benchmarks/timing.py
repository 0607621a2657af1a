"""The timing rule every side-by-side ratio uses: best of a few rounds, perf_counter, same process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[..., Any], *args: Any, rounds: int = 5) -> float:
    """Seconds of the fastest of ``rounds`` calls of ``fn(*args)`` (its result is dropped outside the timing)."""
    best = float("inf")
    for _ in range(rounds):
        result = None
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    del result
    return best
