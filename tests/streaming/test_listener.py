"""StreamingListener events and BatchInfo fields."""

import sys
import threading
import time

from pystream.streaming import StreamingContext, StreamingListener
from pystream.testing import advance, collect, manual_context


class Recorder(StreamingListener):
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def _add(self, name, ev):
        with self.lock:
            self.events.append((name, ev))

    def onStreamingStarted(self, e):
        self._add("started", e)

    def onBatchSubmitted(self, e):
        self._add("submitted", e)

    def onBatchStarted(self, e):
        self._add("batchStarted", e)

    def onBatchCompleted(self, e):
        self._add("completed", e)

    def onOutputOperationStarted(self, e):
        self._add("opStarted", e)

    def onOutputOperationCompleted(self, e):
        self._add("opCompleted", e)


def test_event_order_and_batch_info(sc):
    ssc = manual_context(sc)
    rec = Recorder()
    ssc.addStreamingListener(rec)
    stream = ssc.queueStream([[1, 2, 3], [4]])
    collect(stream)
    stream.map(lambda x: 1 // (x - 4)).foreachRDD(lambda rdd: rdd.collect())
    ssc.start()
    try:
        advance(ssc, 2)
    finally:
        ssc.stop(False)
    names = [n for n, _ in rec.events]
    assert names[0] == "started"
    per_batch = ["submitted", "batchStarted", "opStarted", "opCompleted", "opStarted", "opCompleted", "completed"]
    assert names[1:] == per_batch * 2
    completed = [e.batchInfo() for n, e in rec.events if n == "completed"]
    first, second = completed
    assert first.batchTime().milliseconds() == 500 and second.batchTime().milliseconds() == 1000
    assert first.numRecords() == 3 and second.numRecords() == 1
    assert first.streamIdToInputInfo()[0].numRecords() == 3
    assert first.schedulingDelay() >= 0 and first.processingDelay() >= 0
    assert first.totalDelay() == first.schedulingDelay() + first.processingDelay()
    ops = second.outputOperationInfos()
    assert ops[0].failureReason() is None
    assert "ZeroDivisionError" in ops[1].failureReason()
    submitted = [e.batchInfo() for n, e in rec.events if n == "submitted"]
    assert submitted[0] is first  # the same object, filled in as the batch progresses


def test_output_operations_are_named_by_the_call_that_made_them(sc, tmp_path):
    ssc = manual_context(sc)
    rec = Recorder()
    ssc.addStreamingListener(rec)
    stream = ssc.queueStream([[1, 2]])
    line = sys._getframe().f_lineno
    stream.pprint()
    stream.saveAsTextFiles(str(tmp_path / "out"))
    stream.foreachRDD(lambda rdd: None)
    ssc.start()
    try:
        advance(ssc, 1)
    finally:
        ssc.stop(False)
    (info,) = [e.batchInfo() for n, e in rec.events if n == "completed"]
    names = [op.name() for _, op in sorted(info.outputOperationInfos().items())]
    assert names == [f"pprint at test_listener.py:{line + 1}", f"saveAsTextFiles at test_listener.py:{line + 2}",
                     f"foreachRDD at test_listener.py:{line + 3}"]


def test_delays_unknown_until_processed():
    from pystream.streaming.listener import BatchInfo
    from pystream.streaming.time import Time

    info = BatchInfo(Time(1000), {}, 1000)
    assert (info.schedulingDelay(), info.processingDelay(), info.totalDelay()) == (-1, -1, -1)
    assert info.numRecords() == 0


def test_slow_batches_queue_and_show_scheduling_delay(sc):
    # Real clock: each batch takes ~3 intervals, so later batches wait and their scheduling delay grows.
    ssc = StreamingContext(sc, 0.05)
    rec = Recorder()
    ssc.addStreamingListener(rec)
    ssc.queueStream([[1]] * 20).foreachRDD(lambda rdd: time.sleep(0.15))
    ssc.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with rec.lock:
            done = [e.batchInfo() for n, e in rec.events if n == "completed"]
        if len(done) >= 4:
            break
        time.sleep(0.02)
    ssc.stop(False)
    delays = [i.schedulingDelay() for i in done[:4]]
    assert delays[3] > delays[0] and delays[3] >= 150


def test_failing_listener_does_not_stop_streaming(sc):
    class Bad(StreamingListener):
        def onBatchCompleted(self, e):
            raise RuntimeError("listener bug")

    ssc = manual_context(sc)
    ssc.addStreamingListener(Bad())
    out = collect(ssc.queueStream([[1], [2]]))
    ssc.start()
    try:
        advance(ssc, 2)
        assert ssc.awaitTerminationOrTimeout(0) is False
    finally:
        ssc.stop(False)
    assert out.batches == [[1], [2]]


def test_queued_batches_are_bounded(sc):
    # With at most 2 batches waiting, the timer stops generating (and allocating data) while a slow job runs.
    import threading

    from pystream.streaming.scheduler import MAX_QUEUED_KEY

    sc._conf.set(MAX_QUEUED_KEY, 2)
    release = threading.Event()
    try:
        ssc = manual_context(sc)
        ssc.queueStream([[i] for i in range(10)]).foreachRDD(lambda rdd: release.wait(10))
        ssc.start()
        try:
            ssc.clock.advance(10 * 500)
            time.sleep(0.3)
            sched = ssc._scheduler
            assert sched._pending == 2 and sched.last_generated_ms == 1000
            release.set()
            with sched._cond:
                assert sched._cond.wait_for(lambda: (sched.last_completed_ms or 0) >= 5000, 10)
        finally:
            release.set()
            ssc.stop(False)
    finally:
        sc._conf._settings.pop(MAX_QUEUED_KEY, None)
