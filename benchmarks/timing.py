"""The timing rule every side-by-side ratio uses: best of a few rounds, perf_counter, same process, and the
rounds of a kernel and of its baselines interleaved."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of_each(calls: dict[str, Callable[[], Any]], rounds: int = 5) -> dict[str, float]:
    """Seconds of the fastest of ``rounds`` calls of each function in ``calls``, by name.

    The rounds are interleaved (a, b, c, a, b, c, ...), so a kernel and its baselines see the same phases of
    this machine, whose speed drifts by a third within minutes: timed one after the other, one side can get a
    fast minute and the other a slow one. Each result is dropped outside the timing.
    """
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            result = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            del result
    return best
