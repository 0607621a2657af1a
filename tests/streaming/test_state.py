"""updateStateByKey and mapWithState (Scala's API and errors)."""

import pytest

from pystream.errors import IllegalArgumentError, NoSuchElementError, StreamingJobError
from pystream.streaming import State, StateSpec
from pystream.testing import advance, collect, manual_context, run_stream


def running_sum(values, state):
    return sum(values) + (state or 0)


def test_update_state_by_key(sc):
    inputs = [[("a", 1), ("b", 2)], [("a", 3)], [], [("c", 5)]]
    out = run_stream(sc, inputs, lambda s: s.updateStateByKey(running_sum), sort=True)
    assert out == [[("a", 1), ("b", 2)], [("a", 4), ("b", 2)], [("a", 4), ("b", 2)],
                   [("a", 4), ("b", 2), ("c", 5)]]


def test_earlier_state_rdds_still_read_their_own_batch(sc):
    # State is updated in place; an RDD of an earlier batch, read after later batches ran, still gives the
    # state of its own batch (as Spark's immutable state RDDs do).
    kept = []
    ssc = manual_context(sc)
    ssc.remember(60)
    inputs = [[("a", 1), ("b", 2)], [("a", 3), ("c", 1)], [("b", 5)]]
    state = ssc.queueStream(inputs).updateStateByKey(running_sum)
    snaps = ssc.queueStream(inputs).mapWithState(StateSpec.function(counting)).stateSnapshots()
    state.foreachRDD(lambda rdd: kept.append(rdd))
    snaps.foreachRDD(lambda rdd: kept.append(rdd))
    ssc.start()
    try:
        advance(ssc, 3)
        got = [sorted(rdd.collect()) for rdd in kept]
    finally:
        ssc.stop(False)
    assert got[0::2] == [[("a", 1), ("b", 2)], [("a", 4), ("b", 2), ("c", 1)], [("a", 4), ("b", 7), ("c", 1)]]
    assert got[1::2] == [[("a", 1), ("b", 2)], [("a", 4), ("b", 2), ("c", 1)], [("a", 4), ("b", 7), ("c", 1)]]


def test_a_window_over_state_sees_each_batch_version(sc):
    inputs = [[("a", 1)], [("a", 2)], [("a", 4)]]
    out = run_stream(sc, inputs, lambda s: s.updateStateByKey(running_sum).window(1.0, 0.5), sort=True)
    assert out == [[("a", 1)], [("a", 1), ("a", 3)], [("a", 3), ("a", 7)]]


def _extend(values, state):
    state = state if state is not None else []
    state.extend(values)  # changed in place, and returned
    return state


def test_a_state_changed_in_place_leaves_earlier_versions_alone(sc):
    # pyspark hands the function a freshly unpickled state each batch: a window over the state stream sees
    # each batch's own list.
    inputs = [[("a", 1)], [("a", 2)], [("a", 3)]]
    out = run_stream(sc, inputs, lambda s: s.updateStateByKey(_extend).window(1.0, 0.5), sort=True)
    assert [sorted(b) for b in out] == [[("a", [1])], [("a", [1]), ("a", [1, 2])], [("a", [1, 2]), ("a", [1, 2, 3])]]


def _append_seen(key, value, state):
    seen = state.getOption() or {"values": []}
    seen["values"].append(value)  # changed in place
    if value == "boom":
        raise RuntimeError("boom")
    state.update(seen)
    return len(seen["values"])


def test_a_map_with_state_changed_in_place_leaves_earlier_versions_alone(sc):
    ssc = manual_context(sc)
    ssc.remember(60)
    mapped = ssc.queueStream([[("a", 1), ("a", 2)], [("a", 3)], [("a", "boom")], [("a", 4)]]).mapWithState(
        StateSpec.function(_append_seen))
    kept = []
    mapped.stateSnapshots().foreachRDD(lambda rdd: kept.append(rdd))
    out = collect(mapped)
    ssc.start()
    try:
        advance(ssc, 4)
        with pytest.raises(Exception, match="boom"):
            ssc.awaitTerminationOrTimeout(0)
        got = []
        for rdd in kept:
            try:
                got.append(rdd.collect())
            except Exception as exc:  # the failed batch's snapshot fails again
                assert "boom" in str(exc)
    finally:
        ssc.stop(False)
    # Batch 3 failed after changing the state in place: batch 4 starts from batch 2's state, and every kept
    # snapshot still reads its own batch.
    assert out.batches[0] == [1, 2] and out.batches[1] == [3] and out.batches[-1] == [4]
    assert got == [[("a", {"values": [1, 2]})], [("a", {"values": [1, 2, 3]})], [("a", {"values": [1, 2, 3, 4]})]]


def test_a_state_that_cannot_be_copied_is_kept_as_it_is(sc):
    # A ctypes pointer's pickling raises ValueError: such a state goes on by reference, as before copies.
    import ctypes

    def update(values, state):
        total = (state[0] if state is not None else 0) + sum(values)
        return (total, ctypes.pointer(ctypes.c_int(total)))

    out = run_stream(sc, [[("a", 1)], [("a", 2)], [("a", 3)]],
                     lambda s: s.updateStateByKey(update).mapValues(lambda st: (st[0], st[1].contents.value)))
    assert out == [[("a", (1, 1))], [("a", (3, 3))], [("a", (6, 6))]]


def test_update_state_none_removes_key_and_sees_all_keys(sc):
    calls = []

    def update(values, state):
        calls.append((tuple(values), state))
        total = sum(values) + (state or 0)
        return None if total >= 4 else total

    inputs = [[("a", 1), ("b", 3)], [("a", 3), ("b", 1)], [("a", 1)]]
    out = run_stream(sc, inputs, lambda s: s.updateStateByKey(update), sort=True)
    assert out == [[("a", 1), ("b", 3)], [], [("a", 1)]]
    if sc.getConf().get("spark.pystream.executor") == "inprocess":
        # Keys with state but no new values are called with an empty list.
        assert ((), 1) not in calls and ((3,), 1) in calls


def test_update_state_initial_rdd_and_partitions(sc):
    initial = sc.parallelize([("a", 10), ("z", 100)])
    out = run_stream(sc, [[("a", 1)], [("b", 1)]],
                     lambda s: s.updateStateByKey(running_sum, numPartitions=3, initialRDD=initial), sort=True)
    assert out == [[("a", 11), ("z", 100)], [("a", 11), ("b", 1), ("z", 100)]]
    # A key given twice starts from its first state, as in pyspark.
    twice = sc.parallelize([("a", 10), ("a", 20), ("z", 1)], 2)
    out = run_stream(sc, [[("a", 1)]], lambda s: s.updateStateByKey(running_sum, initialRDD=twice), sort=True)
    assert out == [[("a", 11), ("z", 1)]]
    parts = run_stream(sc, [[("a", 1), ("b", 2), ("c", 3)]],
                       lambda s: s.updateStateByKey(running_sum, numPartitions=3).glom().map(len))
    assert len(parts[0]) == 3 and sum(parts[0]) == 3


def test_update_state_many_batches_keeps_lineage_short(sc):
    # State is materialised every batch: 200 batches must not build a 200-deep recursion.
    inputs = [[("k", 1)] for _ in range(200)]
    out = run_stream(sc, inputs, lambda s: s.updateStateByKey(running_sum))
    assert out[-1] == [("k", 200)]


def test_update_state_error_fails_batch_then_continues(sc):
    def update(values, state):
        if 13 in values:
            raise ZeroDivisionError("unlucky")
        return sum(values) + (state or 0)

    ssc = manual_context(sc)
    out = collect(ssc.queueStream([[("a", 1)], [("a", 13)], [("b", 2)]]).updateStateByKey(update), sort=True)
    ssc.start()
    try:
        advance(ssc, 3)
        with pytest.raises(Exception) as info:
            ssc.awaitTerminationOrTimeout(0)
        assert "unlucky" in str(info.value)
    finally:
        ssc.stop(False)
    assert out.batches[0] == [("a", 1)]


def _map_with_state(sc, inputs, spec, n=None, snapshots=False):
    ssc = manual_context(sc)
    mapped = ssc.queueStream([sc.parallelize(b, 1) for b in inputs]).mapWithState(spec)
    out = collect(mapped)
    snap = collect(mapped.stateSnapshots(), sort=True)
    ssc.start()
    try:
        advance(ssc, n or len(inputs))
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(False)
    return (out.batches, snap.batches) if snapshots else out.batches


def counting(key, value, state):
    total = (state.getOption() or 0) + (value or 0)
    if state.isTimingOut():
        return (key, "timeout", state.get())
    state.update(total)
    return (key, total)


def test_map_with_state_per_record_and_snapshots(sc):
    inputs = [[("a", 1), ("a", 2), ("b", 5)], [("a", 10)], []]
    out, snaps = _map_with_state(sc, inputs, StateSpec.function(counting), snapshots=True)
    assert out == [[("a", 1), ("a", 3), ("b", 5)], [("a", 13)], []]
    assert snaps == [[("a", 3), ("b", 5)], [("a", 13), ("b", 5)], [("a", 13), ("b", 5)]]


def test_map_with_state_initial_state_partitions_and_remove(sc):
    def fn(key, value, state):
        if value == "drop":
            state.remove()
            return (key, "removed", state.exists())
        state.update((state.getOption() or 0) + value)
        return (key, state.get())

    spec = StateSpec.function(fn).initialState(sc.parallelize([("a", 100)])).numPartitions(3)
    out, snaps = _map_with_state(sc, [[("a", 1), ("b", 2)], [("a", "drop")], [("a", 5)]], spec, snapshots=True)
    assert sorted(out[0]) == [("a", 101), ("b", 2)]
    assert out[1:] == [[("a", "removed", False)], [("a", 5)]]
    assert snaps == [[("a", 101), ("b", 2)], [("b", 2)], [("a", 5), ("b", 2)]]


def test_map_with_state_timeout(sc):
    spec = StateSpec.function(counting).timeout(1.0)
    inputs = [[("a", 1), ("b", 1)], [("b", 1)], [("b", 1)], [], [], [], []]
    out, snaps = _map_with_state(sc, inputs, spec, snapshots=True)
    # "a" idle from t=500: at t=2000 its last update (500) is older than 2000 - 1000.
    assert out[3] == [("a", "timeout", 1)]
    assert ("a", 1) not in snaps[3]
    assert [r for b in out for r in b if r[1] == "timeout" and r[0] == "b"] == [("b", "timeout", 3)]


def test_state_object_rules():
    s = State()
    assert not s.exists() and s.getOption() is None
    with pytest.raises(NoSuchElementError, match="State is not set"):
        s.get()
    s.update(3)
    assert s.exists() and s.get() == 3
    s.remove()
    with pytest.raises(IllegalArgumentError, match="Cannot update the state after it has been removed"):
        s.update(4)
    with pytest.raises(IllegalArgumentError, match="already been removed"):
        s.remove()
    t = State(True, 7, timing_out=True)
    assert t.isTimingOut() and t.get() == 7
    with pytest.raises(IllegalArgumentError, match="Cannot update the state that is timing out"):
        t.update(1)
    with pytest.raises(IllegalArgumentError, match="Cannot remove the state that is timing out"):
        t.remove()
    assert isinstance(NoSuchElementError("x"), LookupError) and isinstance(IllegalArgumentError("x"), ValueError)


def test_state_spec_validation():
    with pytest.raises(TypeError):
        StateSpec.function(42)
    with pytest.raises(ValueError):
        StateSpec.function(counting).numPartitions(0)
    with pytest.raises(ValueError):
        StateSpec.function(counting).timeout(0)


def test_map_with_state_function_error_keeps_previous_state(sc):
    def fn(key, value, state):
        if value == "boom":
            state.update(-1)
            raise RuntimeError("boom")
        state.update((state.getOption() or 0) + value)
        return state.get()

    ssc = manual_context(sc)
    mapped = ssc.queueStream([[("a", 1)], [("a", "boom")]]).mapWithState(StateSpec.function(fn))
    snaps = collect(mapped.stateSnapshots())
    ssc.start()
    try:
        advance(ssc, 2)
        with pytest.raises(Exception, match="boom"):
            ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(False)
    assert snaps.batches[0] == [("a", 1)]


def test_run_stream_helper_sorts(sc):
    assert run_stream(sc, [[3, 1, 2]], lambda s: s, sort=True) == [[1, 2, 3]]


def test_state_streams_say_how_their_keys_are_partitioned(sc, stages):
    import operator

    from pystream import portable_hash
    from pystream.rdd import Partitioner

    inputs = [[(f"k{i % 7}", i) for i in range(j, j + 30)] for j in range(3)]
    seen = []

    def placed(rdd):
        seen.append((rdd.partitioner, all(portable_hash(k) % 3 == i
                                          for i, part in enumerate(rdd.glom().collect()) for k, _ in part)))

    def build(s):
        state = s.reduceByKey(operator.add, 3).updateStateByKey(running_sum, 3)
        state.foreachRDD(placed)
        s.mapWithState(StateSpec.function(counting).numPartitions(3)).stateSnapshots().foreachRDD(placed)
        # Joined with the batch's own counts, partitioned alike: only the reduceByKeys shuffle.
        return state.join(s.reduceByKey(operator.add, 3), 3)

    out = run_stream(sc, inputs, build, sort=True)
    assert seen and all(p == Partitioner(3, portable_hash) and ok for p, ok in seen)
    totals: dict = {}
    for b, batch in enumerate(inputs):
        now: dict = {}
        for k, v in batch:
            now[k] = now.get(k, 0) + v
            totals[k] = totals.get(k, 0) + v
        assert out[b] == sorted((k, (totals[k], now[k])) for k in now)
    # Per batch: the updateStateByKey input's reduceByKey, the join's reduceByKey, mapWithState's batch.
    assert stages.count("shuffle-map") == 3 * len(inputs)


@pytest.mark.parametrize("kind", ["updateStateByKey", "mapWithState"])
def test_a_batch_whose_function_raises_is_dropped_and_the_stream_goes_on(sc, kind):
    """No checkpoint needed: the failed batch leaves the state as the batch before left it, the error reaches
    awaitTermination, and the next batches build on that state."""
    ssc = manual_context(sc)

    def update(values, state):
        if "boom" in values:
            raise ValueError("boom")
        return len(values) + (state or 0)

    def mapping(key, value, state):
        if value == "boom":
            raise ValueError("boom")
        state.update((state.getOption() or 0) + 1)
        return key

    batches = [[("a", "x"), ("b", "x")], [("a", "x"), ("a", "boom")], [("a", "x")], [("b", "x")]]
    keyed = ssc.queueStream(batches)
    if kind == "updateStateByKey":
        state = keyed.updateStateByKey(update)
    else:
        state = keyed.mapWithState(StateSpec.function(mapping)).stateSnapshots()
    out = collect(state, sort=True)
    ssc.start()
    try:
        advance(ssc, 2)
        with pytest.raises(StreamingJobError, match="boom"):
            ssc.awaitTerminationOrTimeout(0)
        advance(ssc, 2)
    finally:
        ssc.stop(False)
    assert out.batches == [[("a", 1), ("b", 1)], [("a", 2), ("b", 1)], [("a", 2), ("b", 2)]]
