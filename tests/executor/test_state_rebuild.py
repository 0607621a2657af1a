"""Keyed state lost with a worker is rebuilt from the last state checkpoint plus the batches since."""

import os
import signal
import threading
import time

import pytest

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY
from pystream.errors import StateLostError
from pystream.streaming import StateSpec
from pystream.testing import advance, collect, manual_context

RATE = 40  # rows per second: 20 per 0.5 s batch


@pytest.fixture
def psc():
    sc = SparkContext("local[2]", "rebuild", SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "process"))
    yield sc
    sc.stop()


def expected(batches):
    counts = {}
    for v in range(batches * RATE // 2):
        counts[v % 5] = counts.get(v % 5, 0) + 1
    return sorted(counts.items())


def add(values, state):
    return sum(values) + (state or 0)


def wait_dead(pid):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    return
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.01)


def kill_worker(sc, index):
    pid = sc.executor._workers[index].process.pid
    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)


@pytest.mark.parametrize("kind", ["updateStateByKey", "mapWithState"])
def test_state_rebuilt_after_worker_killed_between_batches(psc, tmp_path, kind):
    ssc = manual_context(psc)
    ssc.checkpoint(str(tmp_path / "ck"))
    keyed = ssc.rateStream(RATE).map(lambda row: (row[1] % 5, 1))
    if kind == "updateStateByKey":
        state = keyed.updateStateByKey(add)
    else:
        def count(key, value, st):
            st.update((st.getOption() or 0) + value)
            return key

        state = keyed.mapWithState(StateSpec.function(count)).stateSnapshots()
    state.checkpoint(1.0)  # state written every 2 batches
    out = collect(state, sort=True)
    ssc.start()
    try:
        advance(ssc, 5)
        kill_worker(psc, 0)  # holds state partitions 0 (and the last checkpoint is 1 batch old)
        advance(ssc, 3)
        assert ssc.awaitTerminationOrTimeout(0) is False
    finally:
        ssc.stop(False)
    assert [sorted(b) for b in out.batches] == [expected(k) for k in range(1, 9)]


def test_state_rebuilt_when_worker_dies_during_the_batch(psc, tmp_path):
    ssc = manual_context(psc)
    ssc.checkpoint(str(tmp_path / "ck"))
    marker = str(tmp_path / "slow")

    def slow_add(values, state):
        if os.path.exists(marker):
            time.sleep(0.05)
        return sum(values) + (state or 0)

    state = ssc.rateStream(RATE).map(lambda row: (row[1] % 5, 1)).updateStateByKey(slow_add)
    state.checkpoint(1.0)
    out = collect(state, sort=True)
    ssc.start()
    try:
        advance(ssc, 3)
        open(marker, "w").close()
        threading.Timer(0.05, kill_worker, (psc, 1)).start()
        advance(ssc, 1)
        os.remove(marker)
        advance(ssc, 2)
        assert ssc.awaitTerminationOrTimeout(0) is False
    finally:
        ssc.stop(False)
    assert [sorted(b) for b in out.batches] == [expected(k) for k in range(1, 7)]


def test_without_checkpoint_lost_state_fails_clearly(psc):
    ssc = manual_context(psc)
    out = collect(ssc.rateStream(RATE).map(lambda row: (row[1] % 5, 1)).updateStateByKey(add), sort=True)
    ssc.start()
    try:
        advance(ssc, 2)
        kill_worker(psc, 0)
        advance(ssc, 1)
        with pytest.raises(Exception) as info:
            ssc.awaitTerminationOrTimeout(0)
        # Every later batch fails too: none may start over from what the sources still have (it gave totals
        # without the first batches).
        advance(ssc, 3)
        graph = ssc._graph
        stream = graph.stateful_streams[0]
        assert stream._lost_at is not None
        with pytest.raises(StateLostError, match="every later batch"):
            stream._prev_state(stream._lost_at + 4 * stream._slide_ms)
        # A checkpoint of the graph does not carry this driver's loss to a recovered one.
        assert "_lost_at" not in stream.__getstate__()
    finally:
        ssc.stop(False)
    err = info.value
    while err is not None and not isinstance(err, StateLostError):
        err = err.__cause__
    assert isinstance(err, StateLostError) and "checkpointing is off" in str(err)
    assert out.batches == [expected(1), expected(2)]


def test_state_lost_before_its_checkpoint_is_written_is_rebuilt_and_written(psc, tmp_path):
    from pystream.streaming.listener import StreamingListener

    ssc = manual_context(psc)
    ck = tmp_path / "ck"
    ssc.checkpoint(str(ck))
    state = ssc.rateStream(RATE).map(lambda row: (row[1] % 5, 1)).updateStateByKey(add)
    state.checkpoint(0.5)  # written after every batch
    out = collect(state, sort=True)

    class KillAfterBatch2(StreamingListener):
        # Runs after the batch's jobs, before its checkpoint is written.
        def onBatchCompleted(self, completed):
            if completed.batchInfo().batchTime().milliseconds() == 1000:
                kill_worker(psc, 0)

    ssc.addStreamingListener(KillAfterBatch2())
    ssc.start()
    try:
        advance(ssc, 4)
        assert ssc.awaitTerminationOrTimeout(0) is False
    finally:
        ssc.stop(False)
    assert [sorted(b) for b in out.batches] == [expected(k) for k in range(1, 5)]
    assert {"checkpoint-1000", "state-0-1000"} <= set(os.listdir(ck))


def window_expected(op, k):
    """Batch k's window (2.5 s: the last 5 batches) of the rate rows' keys, as plain Python gives it."""
    rows = range(max(0, k - 5) * RATE // 2, k * RATE // 2)
    if op == "window":
        return sorted(v % 5 for v in rows)
    if op == "countByWindow":
        return [len(rows)]
    counts = {}
    for v in rows:
        counts[v % 5] = counts.get(v % 5, 0) + 1
    return sorted(counts.items())


@pytest.mark.parametrize("op", ["window", "reduceByKeyAndWindow", "reduceByKeyAndWindow-inverse", "countByWindow"])
def test_windows_recover_when_a_worker_dies(psc, tmp_path, op):
    """A window keeps the batches in it (and the inverse-function window its previous result) in the workers;
    those a dead worker held are computed again, from the batches' lineage and the sources' replay."""
    import operator

    ssc = manual_context(psc)
    ssc.checkpoint(str(tmp_path / "ck"))
    keyed = ssc.rateStream(RATE).map(lambda row: (row[1] % 5, 1))
    if op == "window":
        stream = keyed.map(lambda kv: kv[0]).window(2.5, 0.5)
    elif op == "reduceByKeyAndWindow":
        stream = keyed.reduceByKeyAndWindow(operator.add, None, 2.5, 0.5)
    elif op == "reduceByKeyAndWindow-inverse":
        stream = keyed.reduceByKeyAndWindow(operator.add, operator.sub, 2.5, 0.5)
        stream.checkpoint(1.0)
    else:
        stream = keyed.countByWindow(2.5, 0.5)
    out = collect(stream, sort=True)
    ssc.start()
    try:
        advance(ssc, 6)
        kill_worker(psc, 0)
        advance(ssc, 2)
        kill_worker(psc, 1)
        advance(ssc, 4)
        assert ssc.awaitTerminationOrTimeout(0) is False
    finally:
        ssc.stop(False)
    assert [sorted(b) for b in out.batches] == [window_expected(op, k) for k in range(1, 13)]


def test_state_lost_between_its_batch_and_the_next_output_is_rebuilt(psc, tmp_path):
    ssc = manual_context(psc)
    ssc.checkpoint(str(tmp_path / "ck"))
    state = ssc.rateStream(RATE).map(lambda row: (row[1] % 5, 1)).updateStateByKey(add)
    state.checkpoint(1.0)
    counts = collect(state.count())  # the first output computes the batch's state
    kill_next = [False]
    seen = []

    def second(rdd):  # the second output of the same batch reads it after the kill
        if kill_next[0]:
            kill_next[0] = False
            kill_worker(psc, 0)
        seen.append(sorted(rdd.collect()))

    state.foreachRDD(second)
    ssc.start()
    try:
        advance(ssc, 3)
        kill_next[0] = True
        advance(ssc, 3)
        assert ssc.awaitTerminationOrTimeout(0) is False
    finally:
        ssc.stop(False)
    assert seen == [expected(k) for k in range(1, 7)]
    assert counts.batches == [[5]] * 6
