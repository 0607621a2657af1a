"""Windowed streams: plain windows and incrementally reduced windows (reduceByKeyAndWindow with invFunc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pystream._core.aggregation import AggTable
from pystream._core.hashing import portable_hash
from pystream.lineage import ShuffledRDD, UnionRDD, ZippedPartitionsRDD
from pystream.rdd import RDD
from pystream.streaming.dstream import DStream
from pystream.streaming.time import duration_ms


class WindowedDStream(DStream):
    """The union of the parent's RDDs in (t - window, t], computed every ``slide``."""

    def __init__(self, parent: DStream, window: float, slide: float | None) -> None:
        slide_ms = parent._slide_ms if slide is None else duration_ms(slide, "slideDuration")
        super().__init__(parent._ssc, slide_ms, [parent])
        self._parent = parent
        self._window_ms = duration_ms(window, "windowDuration")
        # Overlapping windows reuse the parent's batches; keep them instead of recomputing each time.
        parent.persist()

    def _parent_remember_ms(self) -> int:
        assert self._remember_ms is not None
        return self._remember_ms + self._window_ms

    def _compute(self, t: int) -> RDD | None:
        rdds = self._parent._slice_ms(t - self._window_ms + self._parent._slide_ms, t)
        return UnionRDD(self._sc, rdds)


class ReducedWindowedDStream(DStream):
    """reduceByKeyAndWindow with an inverse function, following pyspark's PythonReducedWindowedDStream.

    For windows of at least 5 slides the previous window's result is updated: values of the batches that
    left the window are removed with ``inv`` and those of the new batches added with ``func``, partition by
    partition in the C aggregation table (state and batches share the hash partitioning, so no shuffle).
    Smaller windows are reduced in full, as pyspark does.
    """

    def __init__(self, reduced: DStream, func: Callable[[Any, Any], Any], inv: Callable[[Any, Any], Any],
                 window: float, slide: float | None, num_partitions: int,
                 filter_func: Callable[[tuple[Any, Any]], bool] | None) -> None:
        slide_ms = reduced._slide_ms if slide is None else duration_ms(slide, "slideDuration")
        super().__init__(reduced._ssc, slide_ms, [reduced])
        self._parent = reduced
        self._window_ms = duration_ms(window, "windowDuration")
        self._func = func
        self._inv = inv
        self._n = num_partitions
        self._filter = filter_func
        self._must_checkpoint = True
        self._persisted = True
        reduced.persist()
        self._ssc._graph.add_stateful_stream(self)

    def _parent_remember_ms(self) -> int:
        assert self._remember_ms is not None
        return self._remember_ms + self._window_ms

    def _compute(self, t: int) -> RDD | None:
        parent, p_slide = self._parent, self._parent._slide_ms
        cur_begin, cur_end = t - self._window_ms, t
        prev_end = t - self._slide_ms
        prev = self._get_or_compute(prev_end) if prev_end > (self._zero_ms or 0) else None
        if prev is not None and self._window_ms >= 5 * self._slide_ms:
            old = parent._slice_ms(prev_end - self._window_ms + p_slide, cur_begin)
            new = parent._slice_ms(prev_end + p_slide, cur_end)
            if not old and not new:
                return prev
            update = _WindowUpdate(self._func, self._inv, self._filter, len(old), len(new))
            return ZippedPartitionsRDD(self._sc, [prev, *old, *new], update)
        current = parent._slice_ms(cur_begin + p_slide, cur_end)
        if not current:
            return None
        if all(_hash_partitioned(r, self._n) for r in current):
            # The batches share one hash partitioning: merge them partition by partition, no shuffle.
            return ZippedPartitionsRDD(self._sc, current, _MergeWindow(self._func, self._filter))
        whole = UnionRDD(self._sc, current).reduceByKey(self._func, self._n)
        return whole.filter(self._filter) if self._filter else whole


def _hash_partitioned(rdd: RDD, n: int) -> bool:
    return (isinstance(rdd, ShuffledRDD) and rdd.getNumPartitions() == n
            and rdd._partition_func is portable_hash and rdd._aggregator is not None)


class _MergeWindow:
    """Per partition: the window's batches (already reduced per key) merged with ``func`` in time order."""

    def __init__(self, func: Callable[[Any, Any], Any], filter_func: Callable[[tuple[Any, Any]], bool] | None):
        self.func, self.filter = func, filter_func

    def __call__(self, split: int, *batches: list) -> list:
        table = AggTable(self.func)
        for part in batches:
            table.update(part)
        items = table.items()
        return [kv for kv in items if self.filter(kv)] if self.filter else items


class _WindowUpdate:
    """Per partition: previous window - leaving batches + entering batches, then the filter."""

    def __init__(self, func: Callable[[Any, Any], Any], inv: Callable[[Any, Any], Any],
                 filter_func: Callable[[tuple[Any, Any]], bool] | None, n_old: int, n_new: int) -> None:
        self.func, self.inv, self.filter = func, inv, filter_func
        self.n_old, self.n_new = n_old, n_new

    def __call__(self, split: int, prev: list, *batches: list) -> list:
        table = AggTable(self.func, self.inv)
        table.update(prev)
        if self.n_old:
            old = AggTable(self.func)
            for part in batches[:self.n_old]:
                old.update(part)
            # Keys that already left the window (dropped by the filter) have nothing to subtract from,
            # as in pyspark's leftOuterJoin of the previous window with the leaving batches.
            leaving = AggTable(self.func)
            leaving.update([kv for kv in old.items() if kv[0] in table])
            if len(leaving):
                table.subtract(leaving)
        if self.n_new:
            new = AggTable(self.func)
            for part in batches[self.n_old:]:
                new.update(part)
            table.update(new.items())
        items = table.items()
        return [kv for kv in items if self.filter(kv)] if self.filter else items
