"""Map-side shuffle tasks fed a streamed input frame: the same buckets as from a list, folded a chunk at a time."""

from __future__ import annotations

import itertools
import operator

import pytest

from pystream import frames
from pystream._core.hashing import portable_hash
from pystream.shuffle import FOLD_CHUNK, Aggregator, CountingMapSideTask, MapSideTask, record_chunks


def buckets(result) -> list[list]:
    return [sorted(b, key=repr) for b in result]


def reader(records: list) -> frames.FrameReader:
    return frames.FrameReader(frames.encode(records, compress=False))


LINES = [" ".join(f"w{(i * 7 + j * 13) % 997}" for j in range(i % 12)) + (" é" if i % 50 == 0 else "")
         for i in range(9_000)]
PAIRS = [(f"k{i % 1_234}", i) for i in range(9_000)] + [((1, "t"), 2.5), (None, 1), (True, 1), (1.0, 4)]


@pytest.mark.parametrize("task", [
    CountingMapSideTask(None, 1, 3, portable_hash, split_words=True),
    CountingMapSideTask(None, 3, 3, portable_hash, split_words=True),  # a weight: buckets scaled from the counts
    CountingMapSideTask(None, 1, 3, portable_hash),  # countByValue of whole lines
    CountingMapSideTask(None, 1, 3, lambda k: len(k)),  # a user partitioner: lists, not a TableSplit
], ids=["words", "weighted", "lines", "user-partitioner"])
def test_counting_task_gives_the_same_buckets_from_a_frame_as_from_a_list(task):
    assert task.streams_input
    assert buckets(task(0, reader(LINES))) == buckets(task(0, list(LINES)))


@pytest.mark.parametrize("aggregator", [
    Aggregator.from_reducer(operator.add),  # in C
    Aggregator.from_reducer(lambda a, b: max(a, b) + 0),  # a Python function called from the C loop
    Aggregator(lambda v: [v], lambda c, v: c + [v], operator.add),  # combineByKey
], ids=["add", "python-reducer", "combiner"])
def test_combining_task_gives_the_same_buckets_from_a_frame_as_from_a_list(aggregator):
    task = MapSideTask(None, aggregator, 4, portable_hash)
    assert task.streams_input
    assert buckets(task(0, reader(PAIRS))) == buckets(task(0, list(PAIRS)))
    # With a pipeline, its output is folded as it comes.
    piped = MapSideTask(lambda split, it: ((k, v) for k, v in it if v != 3), aggregator, 4, portable_hash)
    assert buckets(piped(0, reader(PAIRS))) == buckets(task(0, [kv for kv in PAIRS if kv[1] != 3]))


def test_a_task_that_needs_a_list_does_not_stream():
    # No aggregator and no pipeline: the records are split as they are, which needs the list itself.
    assert not MapSideTask(None, None, 2, portable_hash).streams_input
    assert MapSideTask(lambda split, it: it, None, 2, portable_hash).streams_input


def test_record_chunks_never_materialise_more_than_a_chunk():
    assert list(record_chunks(PAIRS))[0] is PAIRS  # a list as it is
    r = reader(PAIRS)
    sizes = [len(c) for c in record_chunks(r)]
    assert sizes == [FOLD_CHUNK] * (len(PAIRS) // FOLD_CHUNK) + [len(PAIRS) % FOLD_CHUNK]
    # An endless pipeline output: the first chunk takes FOLD_CHUNK items of it, no more.
    source = itertools.count()
    first = next(record_chunks(source))
    assert first == list(range(FOLD_CHUNK)) and next(source) == FOLD_CHUNK


def test_a_failing_record_fails_the_task_wherever_it_is():
    # The error of a record in the last chunk surfaces as from a list: nothing folded so far is returned.
    bad = [(f"k{i}", i) for i in range(3 * FOLD_CHUNK)] + [("k0", "not a number")]
    task = MapSideTask(None, Aggregator.from_reducer(operator.add), 2, portable_hash)
    with pytest.raises(TypeError):
        task(0, reader(bad))
    with pytest.raises(TypeError):
        task(0, bad)
