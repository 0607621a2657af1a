"""Backpressure (pystream/streaming/backpressure.py): Spark's PID rate estimator, and receivers whose rate limit
follows it; and spark.streaming.receiver.maxRate's throttle."""

from __future__ import annotations

import threading
import time

import pytest

from pystream.errors import IllegalArgumentError
from pystream.streaming import Receiver
from pystream.streaming.backpressure import ENABLED_KEY, INITIAL_RATE_KEY, PIDRateEstimator
from pystream.streaming.listener import BatchInfo, StreamInputInfo, StreamingListenerBatchCompleted
from pystream.streaming.sources.receiver import MAX_RATE_KEY
from pystream.streaming.time import Time

from _support import conf_values


def test_the_first_batch_only_sets_the_starting_point():
    est = PIDRateEstimator(1000)
    assert est.compute(10, 1000, 1000, 0) is None
    assert est.compute(20, 1000, 1000, 0) == pytest.approx(1000.0)  # processed as fast as it came: no change


def test_the_rate_follows_spark_formula():
    est = PIDRateEstimator(1000, proportional=1.0, integral=0.2, derivative=0.0, min_rate=100)
    assert est.compute(10, 1000, 1000, 0) is None  # latest rate 1000 records/s
    # Processing rate 500/s: error 500; 500 ms of scheduling delay at 500/s over a 1 s batch: 250 waiting.
    assert est.compute(20, 1000, 2000, 500) == pytest.approx(1000 - 500 - 0.2 * 250)
    # With a derivative term: d(error)/dt over the 10 ms since the last update.
    d = PIDRateEstimator(1000, 1.0, 0.0, 0.001, 1)
    d.compute(0, 100, 100, 0)  # 1000/s
    assert d.compute(1000, 100, 200, 0) == pytest.approx(1000 - 500 - 0.001 * 500)


def test_no_estimate_without_news_and_never_below_the_floor():
    est = PIDRateEstimator(1000, min_rate=50)
    est.compute(10, 1000, 100, 0)
    assert est.compute(20, 0, 100, 0) is None  # no records
    assert est.compute(20, 100, 0, 0) is None  # no processing time
    assert est.compute(10, 100, 100, 0) is None  # not later than the last
    assert est.compute(30, 10, 10_000, 50_000) == 50  # far behind: the floor


@pytest.mark.parametrize("args", [(0,), (1000, -1.0), (1000, 1.0, -0.1), (1000, 1.0, 0.2, -1.0),
                                  (1000, 1.0, 0.2, 0.0, 0.0)])
def test_bad_settings_are_refused(args):
    with pytest.raises(IllegalArgumentError):
        PIDRateEstimator(*args)


class _Flood(Receiver):
    """Stores numbers one by one, as fast as it is let, until stopped; counts what it stored."""

    def __init__(self) -> None:
        super().__init__()
        self.stored = 0

    def onStart(self) -> None:
        def run():
            while not self.isStopped():
                self.store(self.stored)
                self.stored += 1

        threading.Thread(target=run, daemon=True).start()

    def onStop(self) -> None:
        pass


def _completed(stream_id: int, records: int, end_ms: int, processing_ms: int, scheduling_ms: int):
    start = end_ms - processing_ms
    info = BatchInfo(Time(end_ms), {stream_id: StreamInputInfo(stream_id, records)}, start - scheduling_ms, start,
                     end_ms)
    return StreamingListenerBatchCompleted(info)


def test_a_receiver_takes_the_rate_backpressure_estimates(sc, ssc):
    with conf_values(sc, {ENABLED_KEY: "true", INITIAL_RATE_KEY: "2000", MAX_RATE_KEY: "5000"}):
        created = time.monotonic()  # the throttle counts from the stream's making
        receiver = _Flood()
        stream = ssc.receiverStream(receiver)
        stream.foreachRDD(lambda rdd: None)
        ssc.start()
    sup = ssc._graph.input_streams[0]._supervisor
    assert sup.limit() == 2000  # initialRate, before any estimate
    # Stored at the initial rate: never more than 2000 per second since then (the throttle sleeps after a store).
    time.sleep(0.25)
    stored = receiver.stored
    assert stored <= 2000 * (time.monotonic() - created) + 2
    sid = stream._id
    ssc._listeners.post("onBatchCompleted", _completed(sid, 1000, 1000, 1000, 0))  # the starting point
    assert sup.limit() == 2000
    ssc._listeners.post("onBatchCompleted", _completed(sid, 1000, 2000, 2000, 500))
    # The fixture's batches are 0.5 s: 500 ms of scheduling delay at 500/s is 500 records per batch interval.
    assert sup.limit() == pytest.approx(1000 - 500 - 0.2 * 500)  # the estimate, under maxRate
    ssc._listeners.post("onBatchCompleted", _completed(sid + 1, 10, 3000, 10, 0))  # another stream's: no change
    assert sup.limit() == pytest.approx(400)
    for t in range(4, 12):  # processing fast again: the estimate climbs, but maxRate caps it
        ssc._listeners.post("onBatchCompleted", _completed(sid, 100_000, t * 1000, 10, 0))
    assert sup.limit() == 5000


def test_without_backpressure_only_max_rate_limits(sc, ssc):
    with conf_values(sc, {MAX_RATE_KEY: "1000"}):
        receiver = _Flood()
        stream = ssc.receiverStream(receiver)
        stream.foreachRDD(lambda rdd: None)
        started = time.monotonic()
        ssc.start()
    sup = ssc._graph.input_streams[0]._supervisor
    ssc._listeners.post("onBatchCompleted", _completed(stream._id, 1000, 1000, 1000, 0))
    ssc._listeners.post("onBatchCompleted", _completed(stream._id, 1000, 2000, 2000, 500))
    assert sup.limit() == 1000  # no controller listens
    # 300 records at 1000/s take at least 0.3 s, however fast the machine.
    deadline = time.monotonic() + 15
    while receiver.stored < 300:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert time.monotonic() - started >= 0.29


class _IdleThenFlood(Receiver):
    """Idle for a while (a quiet socket), then stores as fast as it can, noting when each record went in."""

    def __init__(self, idle: float) -> None:
        super().__init__()
        self.idle, self.stamps, self.done = idle, [], threading.Event()

    def onStart(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        time.sleep(self.idle)
        t0 = time.monotonic()
        while not self.isStopped() and time.monotonic() - t0 < 0.5:
            self.store(1)
            self.stamps.append(time.monotonic() - t0)
        self.done.set()

    def onStop(self) -> None:
        pass


def test_max_rate_keeps_at_most_a_second_of_idle_allowance(sc, ssc):
    # Guava's RateLimiter, as Spark's receivers: after 3 s idle at 100/s, half a second may store 100 (one
    # second of allowance kept) + 50, not the 350 the idle time would have allowed.
    with conf_values(sc, {MAX_RATE_KEY: "100"}):
        receiver = _IdleThenFlood(3.0)
        ssc.receiverStream(receiver).foreachRDD(lambda rdd: None)
        ssc.start()
    assert receiver.done.wait(15)
    ssc.stop(stopSparkContext=False)
    assert 100 <= sum(1 for s in receiver.stamps if s < 0.5) <= 160
