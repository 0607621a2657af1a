"""StatCounter: count, mean, variance, min and max of numbers in one pass (pyspark's ``RDD.stats()``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class StatCounter:
    """Running statistics of numbers: ``merge`` one value, ``mergeStats`` another counter (Welford's update and
    Chan's parallel combination, so partitions' counters combine exactly as one pass over all the values)."""

    def __init__(self, values: Iterable[Any] = ()) -> None:
        self.n = 0
        self.mu = 0.0
        self.m2 = 0.0
        self.maxValue = float("-inf")
        self.minValue = float("inf")
        for v in values:
            self.merge(v)

    def merge(self, value: Any) -> StatCounter:
        """Add one value; return this counter."""
        delta = value - self.mu
        self.n += 1
        self.mu += delta / self.n
        self.m2 += delta * (value - self.mu)
        self.maxValue = max(self.maxValue, value)
        self.minValue = min(self.minValue, value)
        return self

    def mergeStats(self, other: StatCounter) -> StatCounter:
        """Add another counter's values; return this counter."""
        if other is self:
            return self.mergeStats(other.copy())
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mu, self.m2 = other.n, other.mu, other.m2
            self.maxValue, self.minValue = other.maxValue, other.minValue
            return self
        delta = other.mu - self.mu
        n = self.n + other.n
        # The larger side's mean moves least: weighting from it keeps the rounding of mu small.
        if other.n * 10 < self.n:
            self.mu += delta * other.n / n
        elif self.n * 10 < other.n:
            self.mu = other.mu - delta * self.n / n
        else:
            self.mu = (self.mu * self.n + other.mu * other.n) / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.maxValue = max(self.maxValue, other.maxValue)
        self.minValue = min(self.minValue, other.minValue)
        return self

    def copy(self) -> StatCounter:
        """Return a new counter with the same statistics."""
        c = StatCounter()
        c.n, c.mu, c.m2, c.maxValue, c.minValue = self.n, self.mu, self.m2, self.maxValue, self.minValue
        return c

    def count(self) -> int:
        return self.n

    def mean(self) -> float:
        return self.mu

    def sum(self) -> float:
        return self.n * self.mu

    def min(self) -> Any:
        return self.minValue

    def max(self) -> Any:
        return self.maxValue

    def variance(self) -> float:
        """The population variance (NaN for no values)."""
        return self.m2 / self.n if self.n else math.nan

    def sampleVariance(self) -> float:
        """The sample variance, over n - 1 (NaN for fewer than 2 values)."""
        return self.m2 / (self.n - 1) if self.n > 1 else math.nan

    def stdev(self) -> float:
        return math.sqrt(self.variance())

    def sampleStdev(self) -> float:
        return math.sqrt(self.sampleVariance())

    def asDict(self, sample: bool = False) -> dict[str, Any]:
        """The statistics as a dict. As pyspark's (whatever its name says): stdev and variance are the sample
        ones by default, and the population ones with ``sample=True``."""
        return {"count": self.count(), "mean": self.mean(), "sum": self.sum(), "min": self.min(),
                "max": self.max(), "stdev": self.stdev() if sample else self.sampleStdev(),
                "variance": self.variance() if sample else self.sampleVariance()}

    def __repr__(self) -> str:
        return (f"(count: {self.count()}, mean: {self.mean()}, stdev: {self.stdev()}, max: {self.max()}, "
                f"min: {self.min()})")
