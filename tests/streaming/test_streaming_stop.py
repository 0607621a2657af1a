"""stop() also stops the SparkContext unless told not to (own SparkContext: no shared fixture here)."""

import contextlib
import threading
import time

import pytest

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY
from pystream.errors import IllegalArgumentError, IllegalStateError
from pystream.testing import collect, manual_context


def test_stop_stops_spark_context_by_default():
    sc = SparkContext("local[1]", "stop-test")
    try:
        ssc = manual_context(sc)
        collect(ssc.queueStream([[1]]))
        ssc.start()
        ssc.stop()
        with pytest.raises(IllegalStateError):
            sc.parallelize([1]).collect()
    finally:
        sc.stop()


@contextlib.contextmanager
def blocked_batch(conf=None, batch_s=10.0):
    """A started context (10 s batches, manual clock) whose first batch is running and blocked until the
    test is done with it."""
    sc = SparkContext("local[1]", "stop-wait", (conf or SparkConf(loadDefaults=False)).set(EXECUTOR_KEY, "inprocess"))
    started, release = threading.Event(), threading.Event()

    def hold(rdd):
        started.set()
        release.wait(60)

    try:
        ssc = manual_context(sc, batch_s)
        ssc.queueStream([[1], [2]]).foreachRDD(hold)
        ssc.start()
        ssc.clock.set_time(ssc._scheduler.next_batch_ms)
        assert started.wait(10)
        job_thread = ssc._scheduler._job_thread
        yield ssc
        release.set()
        job_thread.join(10)
        assert not job_thread.is_alive()
    finally:
        release.set()
        sc.stop()


def test_a_non_graceful_stop_gives_a_running_batch_two_seconds_as_spark_does(caplog):
    # Not ten batch intervals (100 s here): Spark's job scheduler waits 2 s for running jobs, then moves on.
    with blocked_batch() as ssc:
        t0 = time.monotonic()
        ssc.stop(stopSparkContext=False)
        waited = time.monotonic() - t0
        assert 1.9 <= waited < 8, waited
        assert "still running after stop()" in caplog.text


def test_a_graceful_stop_waits_at_most_the_configured_graceful_stop_timeout(caplog):
    conf = SparkConf(loadDefaults=False).set("spark.streaming.gracefulStopTimeout", "1s")
    with blocked_batch(conf) as ssc:
        t0 = time.monotonic()
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
        waited = time.monotonic() - t0
        # One deadline for the whole stop (not one per step): about 1 s, never the default 100 s.
        assert 0.9 <= waited < 6, waited
        assert "timed out waiting for queued batches" in caplog.text


def test_a_malformed_graceful_stop_timeout_fails_start_not_stop():
    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "inprocess").set(
        "spark.streaming.gracefulStopTimeout", "a while")
    sc = SparkContext("local[1]", "stop-conf", conf)
    try:
        ssc = manual_context(sc)
        collect(ssc.queueStream([[1]]))
        with pytest.raises(IllegalArgumentError, match="gracefulStopTimeout"):
            ssc.start()
        ssc.stop(stopSparkContext=False)  # never started: nothing to wait for
    finally:
        sc.stop()
