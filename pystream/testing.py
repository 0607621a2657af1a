"""Testing support: drive a StreamingContext with a manual clock, feed lists, collect outputs.

With a :class:`ManualClock`, batches happen only when the test advances time, so window and state tests run
in milliseconds and never race the wall clock::

    ssc = manual_context(sc, 0.5)
    out = collect(ssc.queueStream([[1, 2], [3]]).map(lambda x: x * 10))
    ssc.start()
    advance(ssc, 2)
    assert out.batches == [[10, 20], [30]]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from pystream.context import SparkContext
from pystream.rdd import RDD
from pystream.streaming.clock import ManualClock
from pystream.streaming.context import StreamingContext
from pystream.streaming.dstream import DStream

__all__ = ["ManualClock", "manual_context", "collect", "OutputCollector", "advance", "run_stream"]


def manual_context(sc: SparkContext, batchDuration: float = 0.5) -> StreamingContext:
    """Return a StreamingContext whose batches are driven by a ManualClock starting at 0."""
    return StreamingContext(sc, batchDuration, clock=ManualClock())


class OutputCollector:
    """Collects ``rdd.collect()`` of every batch of a DStream (registered as its output operation)."""

    def __init__(self, dstream: DStream, sort: bool = False, skip_empty: bool = False) -> None:
        self.batches: list[list] = []
        self.times: list[Any] = []
        self._sort = sort
        self._skip_empty = skip_empty
        self._lock = threading.Lock()
        dstream.foreachRDD(self._collect)

    def __getstate__(self) -> dict:
        # Checkpoints pickle output functions; a recovered graph gets a collector of its own.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _collect(self, time: Any, rdd: RDD) -> None:
        data = rdd.collect()
        if self._skip_empty and not data:
            return
        if self._sort:
            data = sorted(data, key=repr)
        with self._lock:
            self.batches.append(data)
            self.times.append(time)


def collect(dstream: DStream, sort: bool = False, skip_empty: bool = False) -> OutputCollector:
    """Register an output operation that records every batch of ``dstream``; returns the collector."""
    return OutputCollector(dstream, sort, skip_empty)


def advance(ssc: StreamingContext, batches: int = 1, timeout: float = 30.0) -> None:
    """Advance a started context's ManualClock by ``batches`` intervals, waiting until each batch completed."""
    clock = ssc.clock
    if not isinstance(clock, ManualClock):
        raise TypeError("advance() needs a StreamingContext driven by a ManualClock (see manual_context)")
    sched = ssc._scheduler
    if sched is None:
        raise RuntimeError("start() the StreamingContext before advancing its clock")
    for _ in range(batches):
        target = sched.next_batch_ms
        clock.set_time(max(clock.now_ms(), target))
        with sched._cond:
            done = sched._cond.wait_for(
                lambda: sched.last_completed_ms is not None and sched.last_completed_ms >= target, timeout)
        if not done:
            raise TimeoutError(f"batch {target} ms did not complete within {timeout} s")


def run_stream(sc: SparkContext, inputs: Iterable[Iterable[Any]], build: Callable[[DStream], DStream],
               num_batches: int | None = None, batchDuration: float = 0.5, sort: bool = False) -> list[list]:
    """Feed ``inputs`` (one list per batch) through ``build(stream)`` and return each batch's output.

    Like Spark's own Python stream tests: a queueStream of the inputs, one per batch, run for ``num_batches``
    (default: as many as inputs) on a manual clock. The SparkContext stays running.
    """
    inputs = [list(batch) for batch in inputs]
    ssc = manual_context(sc, batchDuration)
    stream = ssc.queueStream([sc.parallelize(batch, 1) for batch in inputs])
    out = collect(build(stream), sort=sort)
    ssc.start()
    try:
        advance(ssc, num_batches if num_batches is not None else len(inputs))
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    return out.batches
