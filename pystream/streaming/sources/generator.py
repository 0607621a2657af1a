"""Built-in generated sources for demos and benchmarks, deterministic given the stream's start.

``rateStream(rowsPerSecond)`` yields ``(timestamp, value)`` rows as Spark's rate source: value counts up from 0
and row v is stamped ``start + v / rowsPerSecond`` seconds. ``textGeneratorStream`` yields lines of words drawn
from a Zipf distribution over a fixed vocabulary; batch k's lines depend only on (seed, k). Rows are generated
by the batch's tasks, so generation runs on the executor.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
from typing import TYPE_CHECKING, Any

from pystream.errors import IllegalArgumentError
from pystream.rdd import RDD, partition_count
from pystream.streaming.listener import StreamInputInfo
from pystream.streaming.sources.base import InputDStream

if TYPE_CHECKING:
    from pystream.streaming.context import StreamingContext


class _GeneratedDStream(InputDStream):
    def __init__(self, ssc: StreamingContext, per_second: float, num_partitions: int | None) -> None:
        # Checked before the stream joins the graph: a refused one must leave the context as it was.
        if (isinstance(per_second, bool) or not isinstance(per_second, numbers.Real)
                or not (math.isfinite(per_second) and per_second > 0)):
            raise IllegalArgumentError(f"rows per second must be a finite number above 0, got {per_second!r}")
        parts = partition_count(num_partitions, ssc.sparkContext.defaultParallelism)
        super().__init__(ssc)
        self._rate = float(per_second)
        self._parts = parts

    def _range(self, t: int) -> tuple[int, int]:
        assert self._zero_ms is not None
        lo = int((t - self._slide_ms - self._zero_ms) * self._rate // 1000)
        hi = int((t - self._zero_ms) * self._rate // 1000)
        return lo, hi

    def _allocate(self, t: int) -> StreamInputInfo:
        lo, hi = self._range(t)
        return StreamInputInfo(self._id, hi - lo)

    def _compute(self, t: int) -> RDD | None:
        lo, hi = self._range(t)
        n = self._parts
        bounds = [(lo + (i * (hi - lo)) // n, lo + ((i + 1) * (hi - lo)) // n) for i in range(n)]
        return self._sc.parallelize(bounds, n).flatMap(self._make_rows())

    def _make_rows(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class RateInputDStream(_GeneratedDStream):
    def _make_rows(self) -> Any:
        return _RateRows(self._zero_ms or 0, self._rate)


class _RateRows:
    def __init__(self, zero_ms: int, rate: float) -> None:
        self.zero_ms, self.rate = zero_ms, rate

    def __call__(self, bounds: tuple[int, int]) -> list[tuple[_dt.datetime, int]]:
        epoch = _dt.datetime.fromtimestamp(self.zero_ms / 1000.0)
        step = 1.0 / self.rate
        return [(epoch + _dt.timedelta(seconds=v * step), v) for v in range(*bounds)]


class TextGeneratorDStream(_GeneratedDStream):
    def __init__(self, ssc: StreamingContext, lines_per_second: float, words_per_line: int, vocabulary: int,
                 zipf_s: float, seed: int, num_partitions: int | None) -> None:
        for what, value, low in (("wordsPerLine", words_per_line, 0), ("vocabularySize", vocabulary, 1),
                                 ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise IllegalArgumentError(f"{what} must be a whole number of at least {low}, got {value!r}")
        if isinstance(zipf_s, bool) or not isinstance(zipf_s, numbers.Real) or not math.isfinite(zipf_s):
            raise IllegalArgumentError(f"zipfExponent must be a finite number, got {zipf_s!r}")
        super().__init__(ssc, lines_per_second, num_partitions)
        self._words = int(words_per_line)
        self._vocab = int(vocabulary)
        self._s = float(zipf_s)
        self._seed = int(seed)

    def _make_rows(self) -> Any:
        return ZipfLines(self._words, self._vocab, self._s, self._seed)


class ZipfLines:
    """Lines of ``words`` words; word ranks follow Zipf(s) over ``vocabulary`` words named ``w<rank>``.

    Line v is a pure function of (seed, v), so the same rows come out whatever the batching or partitioning.
    """

    def __init__(self, words: int, vocabulary: int, s: float, seed: int) -> None:
        self.words, self.vocabulary, self.s, self.seed = words, vocabulary, s, seed
        self._cdf: Any = None

    def _table(self):
        import numpy as np

        if self._cdf is None:
            weights = 1.0 / np.arange(1, self.vocabulary + 1, dtype=np.float64) ** self.s
            self._cdf = np.cumsum(weights / weights.sum())
            self._names = np.array([f"w{i}" for i in range(self.vocabulary)], dtype=object)
        return self._cdf, self._names

    def __getstate__(self) -> dict:
        return {"words": self.words, "vocabulary": self.vocabulary, "s": self.s, "seed": self.seed, "_cdf": None}

    def lines(self, lo: int, hi: int) -> list[str]:
        import numpy as np

        cdf, names = self._table()
        out: list[str] = []
        block = 4096
        for start in range((lo // block) * block, hi, block):
            rng = np.random.default_rng([self.seed, start // block])
            u = rng.random((block, self.words))
            ranks = np.minimum(np.searchsorted(cdf, u), self.vocabulary - 1)
            words = names[ranks]
            a, b = max(lo, start) - start, min(hi, start + block) - start
            out.extend(" ".join(row) for row in words[a:b].tolist())
        return out

    def __call__(self, bounds: tuple[int, int]) -> list[str]:
        return self.lines(*bounds)
