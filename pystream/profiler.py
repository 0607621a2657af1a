"""``spark.python.profile``: every task runs under cProfile and the stats add up per RDD on the driver, as
pyspark's BasicProfiler: ``sc.show_profiles()`` prints them, ``sc.dump_profiles(path)`` writes one
``rdd_<id>.pstats`` file per RDD (``python -m pstats`` reads them), and with ``spark.python.profile.dump`` set
to a directory ``sc.stop()`` writes them there.

A task's stats travel as an accumulator update with its reply, so only the tasks whose results were taken count
(a task retried after its worker died counts once). A task whose output is lazy (an iterator) is read to its end
inside the profile, so that the user's functions it runs are in it.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from pystream.accumulators import Accumulator, AccumulatorParam, new_accumulator

__all__ = ["PROFILE_KEY", "DUMP_KEY", "ProfiledTask", "Profiles"]

PROFILE_KEY = "spark.python.profile"
DUMP_KEY = "spark.python.profile.dump"


class _Raw:
    """A stats dict as pstats.Stats takes one (anything with create_stats() and .stats)."""

    def __init__(self, stats: dict) -> None:
        self.stats = stats

    def create_stats(self) -> None:
        pass


def merge_stats(a: dict, b: dict) -> dict:
    """The stats of two profiles together, as pstats.Stats.add sums them."""
    if not a:
        return b
    if not b:
        return a
    both = pstats.Stats(_Raw(dict(a)))
    both.add(_Raw(b))
    return both.stats


class _StatsParam(AccumulatorParam[dict]):
    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, value1: dict, value2: dict) -> dict:
        return merge_stats(value1, value2)


class ProfiledTask:
    """A stage's task function run under cProfile; the stats are added to ``accumulator``."""

    def __init__(self, task: Any, accumulator: Accumulator) -> None:
        self.task = task
        self.accumulator = accumulator

    @property
    def streams_input(self) -> bool:
        return getattr(self.task, "streams_input", False)

    def __call__(self, split: int, data: Any) -> Any:
        profile = cProfile.Profile()
        profile.enable()
        try:
            result = self.task(split, data)
            if isinstance(result, Iterator):
                result = list(result)
        finally:
            profile.disable()
        profile.create_stats()
        self.accumulator.add(profile.stats)
        return result


class Profiles:
    """The driver's profiles, one accumulator per RDD id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_rdd: dict[int, Accumulator] = {}

    def wrap(self, task: Any, rdd_id: int) -> ProfiledTask:
        with self._lock:
            acc = self._by_rdd.get(rdd_id)
            if acc is None:
                acc = self._by_rdd[rdd_id] = new_accumulator({}, _StatsParam())
        return ProfiledTask(task, acc)

    def stats(self) -> dict[int, pstats.Stats]:
        with self._lock:
            values = {rdd_id: acc.value for rdd_id, acc in sorted(self._by_rdd.items())}
        return {rdd_id: pstats.Stats(_Raw(v)) for rdd_id, v in values.items() if v}

    def show(self, out: TextIO | None = None) -> None:
        for rdd_id, stats in self.stats().items():
            stream = out or sys.stdout
            print("=" * 60, file=stream)
            print(f"Profile of RDD<id={rdd_id}>", file=stream)
            print("=" * 60, file=stream)
            stats.stream = stream  # type: ignore[attr-defined]
            stats.sort_stats("time", "cumulative").print_stats()

    def dump(self, path: str) -> list[str]:
        os.makedirs(path, exist_ok=True)
        written = []
        for rdd_id, stats in self.stats().items():
            name = os.path.join(path, f"rdd_{rdd_id}.pstats")
            stats.dump_stats(name)
            written.append(name)
        return written
