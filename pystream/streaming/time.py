"""Batch times: integer milliseconds inside, ``datetime`` for user functions (as pyspark passes them)."""

from __future__ import annotations

import datetime as _dt
import functools
import math
import numbers
import time as _time
from typing import Any

from pystream.errors import IllegalArgumentError


@functools.total_ordering
class Time:
    """A batch time in milliseconds (Scala's ``Time``), with ``milliseconds()`` as in Spark's listener API."""

    __slots__ = ("_ms",)

    def __init__(self, ms: int) -> None:
        self._ms = int(ms)

    def milliseconds(self) -> int:
        return self._ms

    def to_datetime(self) -> _dt.datetime:
        return ms_to_datetime(self._ms)

    def __int__(self) -> int:
        return self._ms

    def __index__(self) -> int:
        return self._ms

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Time):
            return self._ms == other._ms
        if isinstance(other, int):
            return self._ms == other
        return NotImplemented

    def __lt__(self, other: Any) -> bool:
        return self._ms < int(other)

    def __hash__(self) -> int:
        return hash(self._ms)

    def __repr__(self) -> str:
        return f"{self._ms} ms"


def ms_to_datetime(ms: int) -> _dt.datetime:
    """The local datetime of a batch time, as pyspark gives user functions."""
    return _dt.datetime.fromtimestamp(ms / 1000.0)


def to_ms(value: Any) -> int:
    """Milliseconds of a datetime (local time, as pyspark), a Time, or a number of seconds."""
    if isinstance(value, Time):
        return value.milliseconds()
    if isinstance(value, _dt.datetime):
        return int(round((_time.mktime(value.timetuple()) + value.microsecond / 1e6) * 1000))
    return int(round(float(value) * 1000))


def duration_ms(seconds: Any, what: str = "duration") -> int:
    """Milliseconds of a duration given in seconds (float allowed): IllegalArgumentError (a ValueError) unless
    it is a finite number of at least 1 ms."""
    if isinstance(seconds, (bool, str, bytes)) or not isinstance(seconds, numbers.Real):
        raise IllegalArgumentError(f"{what} must be a number of seconds, got {seconds!r}")
    if not math.isfinite(seconds):
        raise IllegalArgumentError(f"{what} must be a finite number of seconds, got {seconds!r}")
    ms = int(round(float(seconds) * 1000))
    if ms <= 0:
        raise IllegalArgumentError(f"{what} must be at least 1 ms (0.001 s), got {seconds!r} s")
    return ms
