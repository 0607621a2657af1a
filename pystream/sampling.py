"""Random sampling and histograms of RDDs: the partition functions behind ``sample``, ``randomSplit``,
``takeSample`` and ``histogram``.

Each partition draws from its own generator, seeded from the seed and the partition's index: the same seed
gives the same sample on every executor and in every run, and the splits of ``randomSplit`` (the same draws,
cut into ranges) are disjoint and together hold every element once, provided the parent RDD gives the same
elements each time it is computed.
"""

from __future__ import annotations

import bisect
import math
import numbers
import random
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from pystream.errors import IllegalArgumentError


def partition_random(seed: int, split: int) -> random.Random:
    """Partition ``split``'s generator, as pyspark's samplers make it (the same seed gives pyspark's sample):
    seeded with ``seed ^ split``, then 10 draws to mix seeds that are close to each other. An int seed:
    random.Random hashes nothing, so every process draws the same numbers."""
    rng = random.Random(seed ^ split)
    for _ in range(10):
        rng.randint(0, 1)
    return rng


def check_fraction(fraction: Any, what: str = "fraction") -> float:
    """A sampling fraction or weight as a float: a finite number of at least 0, else IllegalArgumentError (a
    ValueError; an infinite mean would never end the Poisson draw, and NaN compares false with everything)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):  # numpy's numbers too
        raise IllegalArgumentError(f"{what} must be a number, got {fraction!r}")
    if not (math.isfinite(fraction) and fraction >= 0):
        raise IllegalArgumentError(f"{what} must be a finite number of at least 0, got {fraction}")
    return float(fraction)


def seed_or_new(seed: int | None) -> int:
    """The seed given, or a random one (each call of sample() without a seed draws a new sample). A seed is a
    whole number (pyspark's samplers mix it with the partition index by XOR), else IllegalArgumentError."""
    if seed is None:
        return random.randint(0, sys.maxsize)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise IllegalArgumentError(f"seed must be a whole number, got {seed!r}")
    return int(seed)


class BernoulliSampler:
    """Keeps each element with probability ``fraction`` (sampling without replacement)."""

    __slots__ = ("fraction", "seed")

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction, self.seed = fraction, seed

    def __call__(self, split: int, it: Iterator[Any]) -> Iterator[Any]:
        rng = partition_random(self.seed, split).random
        f = self.fraction
        return (x for x in it if rng() < f)


class PoissonSampler:
    """Repeats each element a Poisson(``fraction``) number of times (sampling with replacement)."""

    __slots__ = ("fraction", "seed")

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction, self.seed = fraction, seed

    def __call__(self, split: int, it: Iterator[Any]) -> Iterator[Any]:
        rng = partition_random(self.seed, split)
        for x in it:
            for _ in range(poisson(rng, self.fraction)):
                yield x


class RangeSampler:
    """Keeps the elements whose draw falls in [lower, upper): one split of ``randomSplit``."""

    __slots__ = ("lower", "upper", "seed")

    def __init__(self, lower: float, upper: float, seed: int) -> None:
        self.lower, self.upper, self.seed = lower, upper, seed

    def __call__(self, split: int, it: Iterator[Any]) -> Iterator[Any]:
        rng = partition_random(self.seed, split).random
        lo, hi = self.lower, self.upper
        return (x for x in it if lo <= rng() < hi)


class KeySampler:
    """Samples the pairs of a partition with each key's own fraction (sampleByKey)."""

    __slots__ = ("with_replacement", "fractions", "seed")

    def __init__(self, with_replacement: bool, fractions: dict[Any, float], seed: int) -> None:
        self.with_replacement, self.fractions, self.seed = with_replacement, fractions, seed

    def __call__(self, split: int, it: Iterator[Any]) -> Iterator[Any]:
        rng = partition_random(self.seed, split)
        for kv in it:
            try:
                f = self.fractions[kv[0]]
            except KeyError:
                raise KeyError(f"sampleByKey: no fraction for key {kv[0]!r}") from None
            if self.with_replacement:
                for _ in range(poisson(rng, f)):
                    yield kv
            elif rng.random() < f:
                yield kv


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson(mean) draw, as pyspark's samplers draw it: Knuth's product of uniforms below a mean of 20,
    else a sum of exponential gaps (in the log domain, where exp(-mean) would underflow)."""
    k = 0
    if mean < 20.0:
        limit, p = math.exp(-mean), rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    p = rng.expovariate(mean)
    while p < 1.0:
        k += 1
        p += rng.expovariate(mean)
    return k


def fraction_for_sample_size(num: int, total: int, with_replacement: bool) -> float:
    """A sampling fraction that gives at least ``num`` of ``total`` elements with high probability (99.99%):
    the mean plus a margin of a few standard deviations of the sample's size."""
    fraction = num / total
    if with_replacement:
        # The sample's size is Poisson(num): mean num, standard deviation sqrt(num).
        deviations = 9 if num < 12 else 5
        return fraction + deviations * math.sqrt(fraction / total)
    # Binomial(total, fraction): a Chernoff bound with failure probability 5e-5 (pyspark's).
    gamma = -math.log(0.00005) / total
    return min(1.0, fraction + gamma + math.sqrt(gamma * gamma + 2 * gamma * fraction))


# -- histogram -------------------------------------------------------------------------------------------------
def countable(x: Any) -> bool:
    """Whether histogram() counts x: None and NaN are left out."""
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def min_max(it: Iterator[Any]) -> list[tuple[Any, Any]]:
    lo = hi = None
    for x in it:
        if lo is None:
            lo = hi = x
        elif x < lo:
            lo = x
        elif x > hi:
            hi = x
    return [] if lo is None else [(lo, hi)]


def even_buckets(lo: Any, hi: Any, n: int) -> tuple[list[Any], Any]:
    """n buckets of equal width from lo to hi, and that width; an int width where it is a whole number."""
    try:
        width = (hi - lo) / n
    except TypeError:
        raise TypeError("Can not generate buckets with non-number in RDD") from None
    if math.isinf(width):
        raise ValueError("Can not generate buckets with infinite value")
    if int(width) * n == hi - lo:
        width = int(width)
    return [lo + i * width for i in range(n)] + [hi], width  # the last bound exactly hi, whatever the rounding


def check_buckets(buckets: Sequence[Any]) -> Any:
    """The width of ``buckets`` (given bounds) if they are evenly spaced numbers, else None; ValueError for
    bounds histogram() cannot use."""
    if not isinstance(buckets, (list, tuple)):
        raise TypeError("buckets should be a list or tuple or number(int or long)")
    if len(buckets) < 2:
        raise ValueError("buckets should have more than one value")
    if not all(countable(b) for b in buckets):
        raise ValueError("can not have None or NaN in buckets")
    if sorted(buckets) != list(buckets):
        raise ValueError("buckets should be sorted")
    if len(set(buckets)) != len(buckets):
        raise ValueError("buckets should not contain duplicated values")
    try:
        steps = [b - a for a, b in zip(buckets, buckets[1:])]
    except TypeError:
        return None  # bounds without '-' (strings): found by bisection
    # Evenly spaced up to rounding: counted as pyspark does, by division, so that an element lands where it does
    # there (0.3 in [0, 0.1, ..., 1.0]: int(0.3 / 0.1) = 2).
    return (buckets[-1] - buckets[0]) / (len(buckets) - 1) if max(steps) - min(steps) < 1e-10 else None


class BucketCounter:
    """Counts a partition's elements per bucket: [b0, b1), [b1, b2), ..., [b(n-1), bn] (the last one closed);
    with ``width`` (evenly spaced bounds), bucket int((x - b0) / width), as pyspark counts."""

    __slots__ = ("buckets", "width")

    def __init__(self, buckets: list[Any], width: Any = None) -> None:
        self.buckets = buckets
        self.width = width

    def __call__(self, it: Iterator[Any]) -> list[list[int]]:
        b = self.buckets
        last = len(b) - 2
        counts = [0] * (last + 1)
        lo, hi, width = b[0], b[-1], self.width
        for x in it:
            if countable(x) and lo <= x <= hi:
                t = int((x - lo) / width) if width else bisect.bisect_right(b, x) - 1
                counts[min(t, last)] += 1
        return [counts]


def add_counts(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b)]
