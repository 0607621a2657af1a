"""Checkpoints in one process: round trips of every stateful operator, re-run batches, corruption and
fallback, signatures, fsspec URLs, queueStream's refusal."""

from __future__ import annotations

import collections
import operator
import os
import pickle
import struct

import pytest

from pystream import SparkConf, SparkContext
from pystream.checkpoint import (
    _HEADER,
    KEY_ENV,
    KIND_METADATA,
    CheckpointStore,
    decode_file,
    encode_file,
    recover,
)
from pystream.context import EXECUTOR_KEY
from pystream.errors import CheckpointError
from pystream.streaming import StreamingContext
from pystream.streaming.state import StateSpec
from pystream.testing import advance

from _support import read_bytes, write_bytes

EXECUTORS = ["inprocess", "process"]

RESULTS: dict[str, dict[int, list]] = {}


def _record(tag):
    return _Recorder(tag)


class _Recorder:
    """foreachRDD sink that survives pickling by reference to this module's RESULTS."""

    def __init__(self, tag):
        self.tag = tag

    def __call__(self, t, rdd):
        RESULTS.setdefault(self.tag, {})[int(t.timestamp() * 1000 + 0.5)] = sorted(rdd.collect(), key=repr)


@pytest.fixture(scope="module", params=EXECUTORS)
def msc(request):
    conf = (SparkConf(loadDefaults=False).set(EXECUTOR_KEY, request.param)
            .set("spark.streaming.clock", "manual"))
    context = SparkContext("local[2]", "checkpoint-tests", conf)
    yield context
    context.stop()


def _counting(word_counts):
    return word_counts.updateStateByKey(lambda vs, s: sum(vs) + (s or 0))


def _mapping(word_counts):
    def track(key, value, state):
        total = (state.getOption() or 0) + value
        state.update(total)
        return (key, total)

    return word_counts.mapWithState(StateSpec.function(track).numPartitions(3)).stateSnapshots()


def _windowing(word_counts):
    return word_counts.reduceByKeyAndWindow(operator.add, operator.sub, 2.5, 0.5)


def _counting_from_initial(word_counts):
    initial = word_counts._sc.parallelize([("w0", 100), ("zz", 5)], 2)
    return word_counts.updateStateByKey(lambda vs, s: sum(vs) + (s or 0), initialRDD=initial)


PIPELINES = {"updateStateByKey": _counting, "mapWithState": _mapping, "reduceByKeyAndWindow": _windowing,
             "initialRDD": _counting_from_initial}


class _Job:
    def __init__(self, sc, tmp_path, tag, pipeline="updateStateByKey", interval=1.0, ck=None):
        self.sc, self.tag, self.pipeline, self.interval = sc, tag, pipeline, interval
        self.inp = str(tmp_path / "in")
        self.ck = ck or str(tmp_path / "ck")
        os.makedirs(self.inp, exist_ok=True)
        self.n = 0
        RESULTS.pop(tag, None)

    def setup(self):
        ssc = StreamingContext(self.sc, 0.5)
        ssc.checkpoint(self.ck)
        words = ssc.textFileStream(self.inp).flatMap(str.split).map(lambda w: (w, 1))
        out = PIPELINES[self.pipeline](words)
        if self.interval is not None:
            out.checkpoint(self.interval)
        out.foreachRDD(_record(self.tag))
        return ssc

    def put(self, i):
        words = " ".join(f"w{(i * 7 + j) % 11}" for j in range(i % 5 + 1))
        tmp = os.path.join(self.inp, f".f{self.n}")
        with open(tmp, "w") as fh:
            fh.write(words + "\n")
        os.rename(tmp, os.path.join(self.inp, f"f{self.n:04d}"))
        self.n += 1

    def run(self, ssc, batches, start=0):
        for i in range(start, start + batches):
            self.put(i)
            advance(ssc, 1)

    def results(self):
        return dict(RESULTS.get(self.tag, {}))


def _start_fresh(job):
    ssc = StreamingContext.getOrCreate(job.ck, job.setup)
    assert ssc._recovery is None
    ssc.start()
    return ssc


def _start_recovered(job, **kw):
    ssc = StreamingContext.getOrCreate(job.ck, job.setup)
    assert ssc._recovery is not None
    ssc.clock.set_time(ssc._recovery["time_ms"])
    ssc.start()
    return ssc


@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_recovered_stream_continues_like_an_uninterrupted_one(msc, tmp_path, pipeline):
    # initialRDD: the default 10 s interval, so no state is written yet and recovery replays every batch
    # from the (checkpointed) initial state.
    interval = None if pipeline == "initialRDD" else 1.0
    ref = _Job(msc, tmp_path / "ref", "ref-" + pipeline, pipeline, interval=interval)
    ssc = _start_fresh(ref)
    ref.run(ssc, 16)
    ssc.stop(stopSparkContext=False)
    expected = ref.results()

    job = _Job(msc, tmp_path / "rec", "rec-" + pipeline, pipeline, interval=interval)
    ssc = _start_fresh(job)
    job.run(ssc, 7)
    ssc.stop(stopSparkContext=False)
    before = job.results()
    RESULTS.pop(job.tag)
    ssc = _start_recovered(job)
    assert ssc._recovery["time_ms"] == max(before)
    job.run(ssc, 9, start=7)
    ssc.stop(stopSparkContext=False)
    after = job.results()
    assert sorted(before) + sorted(after) == sorted(expected)
    assert {**before, **after} == expected


def test_unfinished_batches_run_again_with_the_same_result(msc, tmp_path):
    job = _Job(msc, tmp_path, "rerun")
    ssc = _start_fresh(job)
    job.run(ssc, 8)
    ssc.stop(stopSparkContext=False)
    first = job.results()
    store = CheckpointStore(job.ck)
    times = store.metadata_times()
    for t in times[:3]:  # as if the driver died after the jobs of the last three batches, before checkpoints
        store.delete(f"checkpoint-{t}")
    RESULTS.pop(job.tag)
    ssc = _start_recovered(job)
    assert ssc._recovery["time_ms"] == times[3]
    ssc.clock.set_time(times[0])  # the clock moved on while the driver was down: the batches run again
    advance(ssc, 0)
    import time as _time

    deadline = _time.monotonic() + 30
    while len(job.results()) < 3 and _time.monotonic() < deadline:
        _time.sleep(0.02)
    ssc.stop(stopSparkContext=False)
    again = job.results()
    assert sorted(again) == sorted(times[:3])
    # The files of the batches whose allocation was not checkpointed are read by the first batch that runs
    # again (as Spark's file stream); once they are all counted, the totals are the same as the first time.
    assert again[times[0]] == first[times[0]]
    assert again[times[2]] == first[times[0]]


def test_default_interval_is_smallest_slide_multiple_of_10s(msc, tmp_path):
    job = _Job(msc, tmp_path, "interval", interval=None)
    ssc = _start_fresh(job)
    stream = ssc._graph.stateful_streams[0]
    assert stream._checkpoint_ms == 10_000
    job.run(ssc, 21)
    ssc.stop(stopSparkContext=False)
    names = os.listdir(job.ck)
    assert [n for n in names if n.startswith("state-")] == [f"state-0-{ssc._graph.zero_ms + 10_000}"]
    assert len([n for n in names if n.startswith("checkpoint-")]) == 5  # old ones cleaned


# -- corruption ----------------------------------------------------------------------------------------------
def _written(msc, tmp_path, batches=10):
    job = _Job(msc, tmp_path, "corrupt")
    ssc = _start_fresh(job)
    job.run(ssc, batches)
    ssc.stop(stopSparkContext=False)
    return job, CheckpointStore(job.ck)


def _flip(path, offset=None):
    data = bytearray(read_bytes(path))
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x5A
    write_bytes(path, bytes(data))


def _truncate(path):
    data = read_bytes(path)
    write_bytes(path, data[: len(data) - 7])


def _newest_state(store):
    return max((n for n in store.list() if n.startswith("state-")), key=lambda n: int(n.rsplit("-", 1)[1]))


@pytest.mark.parametrize("damage,message", [(_flip, "checksum"), (_truncate, "truncated"),
                                            (lambda p: _flip(p, 0), "does not start with")])
def test_damaged_newest_metadata_falls_back_to_previous(msc, tmp_path, damage, message):
    job, store = _written(msc, tmp_path)
    times = store.metadata_times()
    newest = store.path(f"checkpoint-{times[0]}")
    damage(newest)
    ssc = recover(job.ck)
    assert ssc._recovery["time_ms"] == times[1]
    (err,) = ssc._checkpoint_errors
    assert isinstance(err, CheckpointError) and newest in str(err) and message in str(err)
    # ... and the recovered stream is right: the re-run batch gives the totals it gave the first time.
    first = job.results()
    RESULTS.pop(job.tag)
    ssc.clock.set_time(times[1])
    ssc.start()
    advance(ssc, 1)
    ssc.stop(stopSparkContext=False)
    assert job.results()[times[0]] == first[times[0]]


def test_unknown_version_and_other_application_are_refused(msc, tmp_path):
    job, store = _written(msc, tmp_path)
    times = store.metadata_times()
    path = store.path(f"checkpoint-{times[0]}")
    data = bytearray(read_bytes(path))
    struct.pack_into("<H", data, 4, 99)
    write_bytes(path, bytes(data))
    meta, body = decode_file("x", store.read(f"checkpoint-{times[1]}"), KIND_METADATA, None)
    meta["app"] = "someone-else"
    path1 = store.path(f"checkpoint-{times[1]}")
    write_bytes(path1, encode_file(KIND_METADATA, meta, body, None))
    ssc = recover(job.ck)
    assert ssc._recovery["time_ms"] == times[2]
    errs = [str(e) for e in ssc._checkpoint_errors]
    assert path in errs[0] and "format version 99" in errs[0]
    assert path1 in errs[1] and "someone-else" in errs[1]


def test_every_metadata_damaged_raises_instead_of_starting_over(msc, tmp_path):
    job, store = _written(msc, tmp_path)
    for t in store.metadata_times():
        _flip(store.path(f"checkpoint-{t}"))
    with pytest.raises(CheckpointError, match="checkpoint-.*checksum"):
        StreamingContext.getOrCreate(job.ck, job.setup)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_newest_state_falls_back_to_previous_state_and_replays(msc, tmp_path, damage):
    job, store = _written(msc, tmp_path, batches=12)
    name = _newest_state(store)
    path = store.path(name)
    {"flip": _flip, "truncate": _truncate, "delete": os.unlink}[damage](path)
    ssc = recover(job.ck)
    assert ssc._recovery["time_ms"] == store.metadata_times()[0]
    assert any(path in str(e) for e in ssc._checkpoint_errors)
    stream = ssc._graph.stateful_streams[0]
    (restored,) = stream._generated
    assert restored < int(name.rsplit("-", 1)[1])
    # Continue: the batches after the older state are replayed from their files, so totals stay exact.
    ref = _Job(msc, tmp_path / "ref", "corrupt-ref")
    ref_ssc = _start_fresh(ref)
    ref.run(ref_ssc, 14)
    ref_ssc.stop(stopSparkContext=False)
    RESULTS.pop(job.tag)
    ssc.clock.set_time(ssc._recovery["time_ms"])
    ssc.start()
    job.run(ssc, 2, start=12)
    ssc.stop(stopSparkContext=False)
    got = job.results()
    assert list(got.values()) == [ref.results()[t] for t in sorted(ref.results())][-2:]


def test_all_state_damaged_raises(msc, tmp_path):
    job, store = _written(msc, tmp_path, batches=12)
    for n in store.list():
        if n.startswith("state-"):
            _truncate(store.path(n))
    with pytest.raises(CheckpointError, match="state-0-.*truncated|no usable state"):
        recover(job.ck)


# -- signatures ----------------------------------------------------------------------------------------------
def test_signed_checkpoints(msc, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "secret-1")
    job, store = _written(msc, tmp_path, batches=4)
    newest = store.metadata_times()[0]
    assert recover(job.ck)._recovery["time_ms"] == newest
    monkeypatch.setenv(KEY_ENV, "secret-2")
    with pytest.raises(CheckpointError, match="wrong signature"):
        recover(job.ck)
    monkeypatch.delenv(KEY_ENV)
    assert recover(job.ck)._recovery["time_ms"] == newest  # without a key: checksums only


def test_unsigned_or_forged_checkpoint_is_refused_before_unpickling(msc, tmp_path, monkeypatch):
    job, store = _written(msc, tmp_path, batches=3)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    meta, _ = decode_file("x", store.read(f"checkpoint-{store.metadata_times()[0]}"), KIND_METADATA, None)
    evil = encode_file(KIND_METADATA, meta, pickle.dumps(Evil()), None)
    for t in store.metadata_times():
        write_bytes(store.path(f"checkpoint-{t}"), evil)
    monkeypatch.setenv(KEY_ENV, "secret")
    with pytest.raises(CheckpointError, match="not signed"):
        recover(job.ck)
    assert not marker.exists()
    # A forged signature (right length, wrong bytes) is refused too.
    header = bytearray(evil[:_HEADER.size])
    header[7] |= 1
    forged = bytes(header) + b"\0" * 32 + evil[_HEADER.size:]
    for t in store.metadata_times():
        write_bytes(store.path(f"checkpoint-{t}"), forged)
    with pytest.raises(CheckpointError, match="wrong signature"):
        recover(job.ck)
    assert not marker.exists()


# -- other -------------------------------------------------------------------------------------------------
def test_fsspec_memory_url(msc, tmp_path):
    url = f"memory://pystream-ck-{os.getpid()}-{id(tmp_path)}"
    job = _Job(msc, tmp_path, "memory", ck=url)
    ssc = _start_fresh(job)
    job.run(ssc, 6)
    ssc.stop(stopSparkContext=False)
    first = job.results()
    store = CheckpointStore(url)
    assert len(store.metadata_times()) == 5 and any(n.startswith("state-") for n in store.list())
    RESULTS.pop(job.tag)
    ssc = _start_recovered(job)
    job.run(ssc, 1, start=6)
    ssc.stop(stopSparkContext=False)
    (t,) = job.results()
    expected = collections.Counter(dict(first[max(first)]))
    expected.update(["w9", "w10"])  # the words of input file 6
    assert dict(job.results()[t]) == dict(expected)


def test_get_active_or_create_recovers(msc, tmp_path):
    job, store = _written(msc, tmp_path, batches=3)
    ssc = StreamingContext.getActiveOrCreate(job.ck, job.setup)
    assert ssc._recovery is not None and ssc._recovery["time_ms"] == store.metadata_times()[0]
    with pytest.raises(TypeError):
        StreamingContext.getActiveOrCreate(job.ck, 42)


def _queue_setup(msc, ck, tag):
    def setup():
        ssc = StreamingContext(msc, 1)
        ssc.checkpoint(ck)
        counts = ssc.queueStream([[1], [1, 2]]).map(lambda x: (x, 1)).updateStateByKey(
            lambda vs, s: sum(vs) + (s or 0))
        counts.checkpoint(1)
        counts.foreachRDD(_record(tag))
        return ssc
    return setup


def test_queue_stream_runs_with_checkpointing_but_cannot_be_recovered(msc, tmp_path):
    # As pyspark: a queueStream with a checkpoint directory runs, and its state streams are checkpointed.
    ck = str(tmp_path / "ck")
    setup = _queue_setup(msc, ck, "queue-ck")
    ssc = StreamingContext.getOrCreate(ck, setup)
    ssc.start()
    advance(ssc, 2)
    ssc.stop(stopSparkContext=False)
    assert list(RESULTS.pop("queue-ck").values()) == [[(1, 1)], [(1, 2), (2, 1)]]
    assert any(n.startswith("checkpoint-") for n in os.listdir(ck))
    # Its RDDs were never written: recovery refuses the checkpoint instead of running on an empty queue.
    with pytest.raises(CheckpointError, match="queueStream doesn't support recovery"):
        StreamingContext.getOrCreate(ck, setup)


class _CountWords:
    """foreachRDD: adds the batch's words to an accumulator in the tasks, then records its value."""

    def __init__(self, tag, acc):
        self.tag, self.acc = tag, acc

    def __call__(self, t, rdd):
        acc = self.acc
        rdd.foreach(lambda w: acc.add(1))
        RESULTS.setdefault(self.tag, {})[int(t.timestamp() * 1000 + 0.5)] = acc.value


def test_accumulators_of_a_recovered_graph_count_again_from_zero(msc, tmp_path):
    made = []

    def setup():
        ssc = StreamingContext(msc, 0.5)
        ssc.checkpoint(str(tmp_path / "ck"))
        made.append(msc.accumulator(0))
        ssc.textFileStream(job.inp).flatMap(str.split).foreachRDD(_CountWords("acc", made[-1]))
        return ssc

    job = _Job(msc, tmp_path, "acc")
    job.setup = setup
    ssc = _start_fresh(job)
    job.run(ssc, 3)  # 1 + 2 + 3 words
    ssc.stop(stopSparkContext=False)
    (first,) = made
    assert first.value == 6 and sorted(job.results().values()) == [1, 3, 6]
    RESULTS.pop("acc")
    ssc = _start_recovered(job)
    job.run(ssc, 2, start=3)  # 4 + 5 words
    ssc.stop(stopSparkContext=False)
    # As in Spark, an accumulator's value is not recovered: the recovered graph has one of its own, from zero.
    # The tasks of that graph never add to the first one, though its id lives on in this process.
    assert made == [first] and first.value == 6
    assert sorted(job.results().values()) == [4, 9]
