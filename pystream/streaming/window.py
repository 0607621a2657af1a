"""Windowed streams: plain windows and incrementally reduced windows (reduceByKeyAndWindow with invFunc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pystream._core.aggregation import AggTable
from pystream.lineage import ZippedPartitionsRDD, union
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
        return union(self._sc, rdds)


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
        if prev is not None and self._window_ms >= 5 * self._slide_ms and not prev._lost:
            old = parent._slice_ms(prev_end - self._window_ms + p_slide, cur_begin)
            new = parent._slice_ms(prev_end + p_slide, cur_end)
            if not old and not new:
                return prev
            update = _WindowUpdate(self._func, self._inv, self._filter, len(old), len(new))
            rdd = ZippedPartitionsRDD(self._sc, [prev, *old, *new], update, preserves_partitioning=True)

            def whole_instead() -> None:
                # The previous window was lost with a worker: this one is reduced in full from the batches in
                # it (which the parent keeps, or computes again).
                rdd._rdds = [self._whole(t) or self._sc.parallelize([], self._n)]
                rdd._func = _only

            rdd._on_lost = whole_instead
            return rdd
        return self._whole(t)

    def _whole(self, t: int) -> RDD | None:
        """The window ending at ``t`` reduced in full from the parent's batches in it."""
        parent = self._parent
        current = parent._slice_ms(t - self._window_ms + parent._slide_ms, t)
        if not current:
            return None
        # Batches reduced into the same partitions are merged partition by partition (union keeps them side by
        # side, and reduceByKey then combines in place): no shuffle.
        whole = union(self._sc, current).reduceByKey(self._func, self._n)
        return whole.filter(self._filter) if self._filter else whole


def _only(split: int, part: list) -> list:
    return list(part)


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
