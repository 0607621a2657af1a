"""StreamingContext lifecycle and Spark's illegal-state errors."""

import threading
import time

import pytest

from pystream.errors import IllegalArgumentError, IllegalStateError, StreamingJobError
from pystream.streaming import StreamingContext
from pystream.testing import advance, collect, manual_context


def test_start_without_output_fails(ssc):
    ssc.queueStream([[1]])
    with pytest.raises(IllegalArgumentError, match="No output operations registered, so nothing to execute"):
        ssc.start()


def test_start_after_stop_and_idempotent_stop(sc):
    ssc = manual_context(sc)
    collect(ssc.queueStream([[1]]))
    ssc.start()
    ssc.start()  # harmless
    assert ssc.getState() == "ACTIVE"
    ssc.stop(False)
    ssc.stop(False)
    assert ssc.getState() == "STOPPED"
    with pytest.raises(IllegalStateError, match="StreamingContext has already been stopped"):
        ssc.start()
    assert ssc.awaitTerminationOrTimeout(0.01) is True


def test_adding_after_start_fails(ssc):
    stream = ssc.queueStream([[1]])
    collect(stream)
    ssc.start()
    with pytest.raises(IllegalStateError, match="after starting a context is not supported"):
        stream.map(lambda x: x)
    with pytest.raises(IllegalStateError, match="after starting a context is not supported"):
        ssc.queueStream([[2]])
    with pytest.raises(IllegalStateError, match="after starting a context is not supported"):
        stream.foreachRDD(lambda rdd: None)


def test_second_active_context_fails(sc):
    a = manual_context(sc)
    collect(a.queueStream([[1]]))
    b = manual_context(sc)
    collect(b.queueStream([[1]]))
    a.start()
    try:
        assert StreamingContext.getActive() is a
        with pytest.raises(IllegalStateError, match="Only one StreamingContext may be started"):
            b.start()
    finally:
        a.stop(False)
    assert StreamingContext.getActive() is None
    b.start()
    b.stop(False)


def test_get_active_or_create(sc):
    with pytest.raises(TypeError, match="setupFunc should be callable"):
        StreamingContext.getActiveOrCreate(None, 42)
    with pytest.raises(ValueError, match="setupFunc cannot be None"):
        StreamingContext.getActiveOrCreate(None, None)
    created = []

    def setup():
        ssc = manual_context(sc)
        collect(ssc.queueStream([[1]]))
        created.append(ssc)
        return ssc

    first = StreamingContext.getActiveOrCreate(None, setup)
    first.start()
    try:
        assert StreamingContext.getActiveOrCreate(None, setup) is first
        assert len(created) == 1
    finally:
        first.stop(False)


def test_batch_duration_validation(sc):
    for bad, says in [(0, "at least 1 ms"), (0.0001, "at least 1 ms"), (-1, "at least 1 ms"),
                      (float("inf"), "finite"), (float("nan"), "finite"), ("soon", "number of seconds"),
                      (True, "number of seconds")]:
        with pytest.raises(IllegalArgumentError, match=says):
            StreamingContext(sc, bad)
    assert StreamingContext(sc, 0.25).batchDuration == 0.25


def test_stream_arguments_are_checked_where_the_stream_is_defined(sc):
    """Not at the first batch, where the error would come one batch interval after the mistake."""
    ssc = manual_context(sc)
    pairs = ssc.queueStream([[("a", 1)]])
    bad_calls = [
        lambda: pairs.window(float("inf")), lambda: pairs.window("long"), lambda: pairs.window(1.0, float("nan")),
        lambda: pairs.reduceByKey(lambda a, b: a + b, -1), lambda: pairs.reduceByKey(lambda a, b: a + b, 0),
        lambda: pairs.groupByKey(1.5), lambda: pairs.updateStateByKey(lambda v, s: s, -2),
        lambda: pairs.reduceByKeyAndWindow(lambda a, b: a + b, None, 1.0, 0.5, -1),
        lambda: ssc.rateStream(float("nan")), lambda: ssc.rateStream(float("inf")), lambda: ssc.rateStream(0),
        lambda: ssc.textGeneratorStream(10, wordsPerLine=-1), lambda: ssc.textGeneratorStream(10, vocabularySize=0),
    ]
    for call in bad_calls:
        with pytest.raises(IllegalArgumentError):
            call()


def test_failed_batch_raises_from_await_and_later_batches_run(sc):
    ssc = manual_context(sc)
    stream = ssc.queueStream([[1], [0], [2]])
    results = collect(stream.map(lambda x: 10 // x))
    ssc.start()
    try:
        advance(ssc, 3)
        for _ in range(2):  # the same error on every later call
            with pytest.raises(StreamingJobError) as info:
                ssc.awaitTerminationOrTimeout(0.01)
            assert isinstance(info.value.__cause__, ZeroDivisionError)
            assert "ZeroDivisionError" in str(info.value) and "<lambda>" in info.value.traceback_text
    finally:
        ssc.stop(False)
    assert results.batches == [[10], [5]]


def test_await_termination_wakes_on_stop(sc):
    ssc = manual_context(sc)
    collect(ssc.queueStream([[1]]))
    ssc.start()
    threading.Timer(0.05, lambda: ssc.stop(False)).start()
    t0 = time.monotonic()
    ssc.awaitTermination()
    assert time.monotonic() - t0 < 5
    assert ssc.awaitTerminationOrTimeout(0) is True


def test_real_clock_runs_batches_and_graceful_stop(sc):
    ssc = StreamingContext(sc, 0.1)
    q = ssc.queueStream([[1], [2], [3]])
    out = collect(q, skip_empty=True)
    ssc.start()
    deadline = time.monotonic() + 10
    while len(out.batches) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert out.batches == [[1], [2], [3]]
    assert all(isinstance(t, __import__("datetime").datetime) for t in out.times)


def test_stop_from_inside_a_job(sc):
    ssc = manual_context(sc)
    ssc.queueStream([[1]]).foreachRDD(lambda rdd: ssc.stop(False))
    ssc.start()
    ssc.clock.advance(500)
    assert ssc.awaitTerminationOrTimeout(10) is True
