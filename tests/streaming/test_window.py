"""Window operators: Spark's documented results, alignment, validation, and inverse == recompute."""

import operator
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream.testing import run_stream


def test_window_count_matches_spark(sc):
    # Spark's own Python test: window(1.5, 0.5).count() over inputs range(1)..range(5).
    out = run_stream(sc, [range(i + 1) for i in range(5)], lambda s: s.window(1.5, 0.5).count(), num_batches=7)
    assert out == [[1], [3], [6], [9], [12], [9], [5]]


def test_count_by_window_matches_spark(sc):
    out = run_stream(sc, [range(i + 1) for i in range(6)], lambda s: s.countByWindow(2.5, 0.5), num_batches=10)
    assert out == [[1], [3], [6], [10], [15], [20], [18], [15], [11], [6]]


def test_window_alignment_slide(sc):
    # window(1.0, 1.0) over 0.5 s batches emits after the 2nd batch, then the 4th, 6th...
    out = run_stream(sc, [[i] for i in range(6)], lambda s: s.window(1.0, 1.0))
    assert out == [[0, 1], [2, 3], [4, 5]]


def test_window_validation(ssc):
    s = ssc.queueStream([[1]])
    with pytest.raises(ValueError, match=r"windowDuration must be multiple of the parent dstream's slide "
                                         r"\(batch\) duration \(500 ms\)"):
        s.window(0.7)
    with pytest.raises(ValueError, match=r"slideDuration must be multiple of the parent dstream's slide"):
        s.window(1.0, 0.7)
    with pytest.raises(ValueError, match="windowDuration must be multiple"):
        s.reduceByKeyAndWindow(operator.add, operator.sub, 1.2, 0.5)
    with pytest.raises(ValueError, match="windowDuration must be multiple"):
        s.countByWindow(0.75, 0.5)


def test_reduce_by_window(sc):
    out = run_stream(sc, [[1, 2], [3], [4], [5]], lambda s: s.reduceByWindow(operator.add, operator.sub, 1.0, 0.5))
    assert out == [[3], [6], [7], [9]]
    out = run_stream(sc, [[1, 2], [3], [4], [5]], lambda s: s.reduceByWindow(operator.add, None, 1.0, 0.5))
    assert out == [[3], [6], [7], [9]]


def test_count_by_value_and_window(sc):
    inputs = [["a", "b"], ["a"], ["c"], []]
    out = run_stream(sc, inputs, lambda s: s.countByValueAndWindow(1.0, 0.5), sort=True)
    assert out == [[("a", 1), ("b", 1)], [("a", 2), ("b", 1)], [("a", 1), ("c", 1)], [("c", 1)]]


def test_group_by_key_and_window(sc):
    inputs = [[("a", 1)], [("a", 2), ("b", 3)], [("b", 4)]]
    out = run_stream(sc, inputs, lambda s: s.groupByKeyAndWindow(1.0, 0.5).mapValues(sorted), sort=True)
    assert out == [[("a", [1])], [("a", [1, 2]), ("b", [3])], [("a", [2]), ("b", [3, 4])]]


def _window_reference(inputs, window_batches, slide_batches, n_out):
    """Per output: sum by key over the last ``window_batches`` input batches, every ``slide_batches``."""
    out = []
    for b in range(1, n_out + 1):
        if b % slide_batches:
            continue
        acc = {}
        for batch in inputs[max(0, b - window_batches):b]:
            for k, v in batch:
                acc[k] = acc.get(k, 0) + v
        out.append(acc)
    return out


def test_filter_func_is_used_only_with_an_inverse_function_as_in_pyspark(sc):
    inputs = [[("a", 1)], [("a", 1), ("b", 5)], [("b", 1)]]
    drop_a = lambda kv: kv[0] != "a"  # noqa: E731
    without = run_stream(sc, inputs, lambda s: s.reduceByKeyAndWindow(operator.add, None, 1.0, 0.5,
                                                                       filterFunc=drop_a), sort=True)
    assert without == [[("a", 1)], [("a", 2), ("b", 5)], [("a", 1), ("b", 6)]]
    with_inv = run_stream(sc, inputs, lambda s: s.reduceByKeyAndWindow(operator.add, operator.sub, 1.0, 0.5,
                                                                        filterFunc=drop_a), sort=True)
    assert with_inv == [[], [("b", 5)], [("b", 6)]]


@pytest.mark.parametrize("window_batches,slide_batches", [(2, 1), (5, 1), (6, 2), (8, 1)])
def test_reduce_by_key_and_window_inverse_equals_recompute(sc, window_batches, slide_batches):
    rng = random.Random(window_batches * 10 + slide_batches)
    inputs = [[(rng.choice("abcdef"), rng.randint(-3, 9)) for _ in range(rng.randint(0, 8))] for _ in range(12)]
    n = len(inputs) + window_batches
    w, s = window_batches * 0.5, slide_batches * 0.5
    with_inv = run_stream(sc, inputs, lambda st: st.reduceByKeyAndWindow(operator.add, operator.sub, w, s),
                          num_batches=n)
    without = run_stream(sc, inputs, lambda st: st.reduceByKeyAndWindow(operator.add, None, w, s), num_batches=n)
    ref = _window_reference(inputs + [[]] * window_batches, window_batches, slide_batches, n)
    assert [dict(b) for b in without] == ref
    # The inverse path keeps keys whose sum returned to 0 only for windows >= 5 slides (pyspark's rule).
    nonzero = [{k: v for k, v in dict(b).items() if v != 0} for b in with_inv]
    assert nonzero == [{k: v for k, v in r.items() if v != 0} for r in ref]
    for got, r in zip(with_inv, ref):
        assert set(dict(got)) >= set(r)


def test_inverse_window_keeps_zero_keys_unless_filtered(sc):
    inputs = [[("a", 1)]] + [[] for _ in range(6)]
    kept = run_stream(sc, inputs, lambda s: s.reduceByKeyAndWindow(operator.add, operator.sub, 2.5, 0.5))
    assert kept[5] == [("a", 0)]
    dropped = run_stream(sc, inputs, lambda s: s.reduceByKeyAndWindow(
        operator.add, operator.sub, 2.5, 0.5, filterFunc=lambda kv: kv[1] != 0))
    assert dropped[5] == []
    small = run_stream(sc, inputs, lambda s: s.reduceByKeyAndWindow(operator.add, operator.sub, 1.0, 0.5))
    assert small[2] == []  # small windows are recomputed: no zero keys


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(1, 5)), max_size=6), min_size=1,
                max_size=10),
       st.integers(5, 8))
def test_property_inverse_window_equals_full_recompute(sc, inputs, window_batches):
    # Positive values (counts): a key at 0 has nothing left in the window, so filtering it out is safe. With
    # mixed signs a filtered key would lose contributions still in the window, in Spark as here.
    n = len(inputs) + 2
    w = window_batches * 0.5
    keep_nonzero = lambda kv: kv[1] != 0  # noqa: E731
    inv = run_stream(sc, inputs, lambda s: s.reduceByKeyAndWindow(operator.add, operator.sub, w, 0.5,
                                                                 filterFunc=keep_nonzero), num_batches=n)
    full = run_stream(sc, inputs, lambda s: s.reduceByKeyAndWindow(operator.add, None, w, 0.5,
                                                                  filterFunc=keep_nonzero), num_batches=n)
    assert [sorted(b) for b in inv] == [sorted(b) for b in full]


def test_generic_inverse_functions(sc):
    inputs = [[("a", 2)], [("a", 3)], [("a", 4)], [("b", 1)], [], [], [], []]
    out = run_stream(sc, inputs, lambda s: s.reduceByKeyAndWindow(lambda x, y: x * y, lambda x, y: x // y,
                                                                 2.5, 0.5, filterFunc=lambda kv: kv[1] != 1))
    assert [dict(b).get("a") for b in out] == [2, 6, 24, 24, 24, 12, 4, None]


def test_windows_of_reduced_batches_keep_their_partitions_and_need_no_second_shuffle(sc, stages):
    from pystream import portable_hash
    from pystream.rdd import Partitioner

    inputs = [[(f"k{i % 5}", i) for i in range(j, j + 20)] for j in range(4)]
    seen = []

    def build(s):
        reduced = s.reduceByKey(operator.add, 3)
        reduced.window(1.0, 0.5).foreachRDD(
            lambda rdd: seen.append((rdd.getNumPartitions(), rdd.partitioner, [
                {portable_hash(k) % 3 for k, _ in part} <= {i} for i, part in enumerate(rdd.glom().collect())])))
        return s.reduceByKeyAndWindow(operator.add, None, 1.0, 0.5, 3)

    out = run_stream(sc, inputs, build, sort=True)
    # Spark's PartitionerAwareUnionRDD: 3 partitions, not 3 per batch in the window, each key where it was.
    assert seen and all(n == 3 and p == Partitioner(3, portable_hash) and all(ok) for n, p, ok in seen)
    sums = [dict() for _ in inputs]
    for b, batch in enumerate(inputs):
        for k, v in batch:
            sums[b][k] = sums[b].get(k, 0) + v
    windows = [sorted({k: sums[b].get(k, 0) + (sums[b - 1].get(k, 0) if b else 0)
                       for k in sums[b].keys() | (sums[b - 1].keys() if b else set())}.items()) for b in range(4)]
    assert out[:4] == windows
    # One shuffle per batch and stream (its reduceByKey); merging the window's batches shuffles nothing more.
    assert stages.count("shuffle-map") == 2 * len(inputs)
