"""The keyed-state kernels: in-place updates, readable older versions, roll-back on errors."""

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream import frames
from pystream._core.state import KeyedState, map_with_state, update_state_by_key


def count_sum(values, state):
    c, s = state if state is not None else (0, 0)
    return (c + len(values), s + sum(values))


def reference_update(state: dict, batch, update) -> dict:
    grouped: dict = {}
    for k, v in batch:
        grouped.setdefault(k, []).append(v)
    out = {}
    for k, s in state.items():
        r = update(grouped.pop(k, []), s)
        if r is not None:
            out[k] = r
    for k, vs in grouped.items():
        r = update(vs, None)
        if r is not None:
            out[k] = r
    return out


def test_every_version_stays_readable_after_later_batches():
    batches = [[("a", 1), ("b", 2)], [("a", 3), ("c", 4)], [("b", 5)], []]
    versions, expected, prev, model = [], [], [], {}
    for batch in batches:
        prev = update_state_by_key(prev, batch, count_sum)
        model = reference_update(model, batch, count_sum)
        versions.append(prev[0])
        expected.append(model)
    assert [v.is_newest for v in versions] == [False, False, False, True]
    assert [v.states() for v in versions] == expected
    assert [dict(v.items()) for v in versions] == expected
    assert [len(v) for v in versions] == [len(e) for e in expected]
    # A copy of an older version (a checkpoint, another worker) is a newest version with the same state.
    copy = pickle.loads(pickle.dumps(versions[1]))
    assert copy.is_newest and copy.states() == expected[1]
    # Building on an older version copies it and leaves every version as it was.
    again = update_state_by_key([versions[0]], [("z", 9)], count_sum)[0]
    assert again.states() == reference_update(expected[0], [("z", 9)], count_sum)
    assert [v.states() for v in versions] == expected


def test_none_removes_a_key_and_initial_pairs_seed_the_state():
    def drop_b(values, state):
        return None if values == ["drop"] else (state or 0) + sum(values)

    first = update_state_by_key([("a", 10), ("b", 20)], [("a", 1), ("b", "drop")], drop_b)[0]
    assert first.states() == {"a": 11}


def test_an_error_leaves_the_previous_version_intact():
    prev = update_state_by_key([], [(k, 1) for k in range(100)], count_sum)
    before = prev[0].states()

    def failing(values, state):
        if state is not None and state[0] == 1 and values == [7]:
            raise RuntimeError("boom")
        return count_sum(values, state)

    batch = [(k, 1) for k in range(50)] + [(60, 7)] + [(k, 1) for k in range(200, 210)]
    with pytest.raises(RuntimeError, match="boom"):
        update_state_by_key(prev, batch, failing)
    assert prev[0].is_newest and prev[0].states() == before
    after = update_state_by_key(prev, batch, count_sum)[0]
    assert after.states() == reference_update(before, batch, count_sum)


def test_map_with_state_error_rolls_back_updates_removals_and_new_keys():
    def fn(key, value, state):
        if value == "boom":
            raise RuntimeError("boom")
        if value == "rm":
            state.remove()
        else:
            state.update((state.getOption() or 0) + value)
        return key

    prev = map_with_state([], [("a", 1), ("b", 2), ("c", 3)], fn, 1000, 5000)
    before, before_times = prev[0].states(), prev[0].times()
    with pytest.raises(RuntimeError):
        map_with_state(prev, [("a", 5), ("b", "rm"), ("d", 4), ("b", 6), ("x", "boom")], fn, 2000, 5000)
    assert prev[0].is_newest
    assert prev[0].states() == before and prev[0].times() == before_times


def test_map_with_state_gives_each_record_a_fresh_state_when_the_function_keeps_it():
    # The kernel reuses a record's State for the next record only when nothing else holds it.
    kept = []

    def fn(key, value, state):
        assert not state._updated and not state._removed
        if value % 3 == 0:
            kept.append((key, state))
        if value % 5 == 0 and state.exists():
            state.remove()
        else:
            state.update((state.getOption() or 0) + value)
        return key

    prev = map_with_state([], [("a", 1), ("b", 2)], fn, 1000, None)
    batch = [("a", 3), ("c", 5), ("b", 6), ("a", 10), ("d", 9), ("b", 15), ("c", 12)]
    out = map_with_state(prev, batch, fn, 2000, None)[0]
    assert out.states() == {"c": 17, "d": 9}
    # Every kept State still shows what its own record made of it, untouched by the records after it.
    assert [(k, s.getOption(), s.exists()) for k, s in kept] == [
        ("a", 4, True), ("b", 8, True), ("d", 9, True), ("b", None, False), ("c", 17, True)]

# -- a model of mapWithState, checked against every version --------------------------------------------------
OPS = st.sampled_from(["add", "rm", "keep"])


def model_map_with_state(states: dict, times: dict, batch, t, timeout):
    states, times = dict(states), dict(times)
    mapped = []
    for k, op in batch:
        has = k in states
        if op == "add":
            states[k] = states.get(k, 0) + 1
            times[k] = t
        elif op == "rm" and has:
            del states[k]
            del times[k]
        elif has:
            times[k] = t
        mapped.append((k, states.get(k)))
    for k in [k for k, last in times.items() if last < t - timeout]:
        mapped.append((k, "timeout"))
        del states[k]
        del times[k]
    return states, times, mapped


def mapping(key, op, state):
    if state.isTimingOut():
        return (key, "timeout")
    if op == "add":
        state.update((state.getOption() or 0) + 1)
    elif op == "rm" and state.exists():
        state.remove()
    return (key, state.getOption())


def as_input(batch, reader: bool):
    """A batch as a list, or as a worker hands it to a streaming kernel: a FrameReader over its frame."""
    return frames.FrameReader(frames.encode(list(batch))) if reader else list(batch)


@pytest.mark.parametrize("reader", [False, True], ids=["list", "reader"])
@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 8), OPS), max_size=12), min_size=1, max_size=6))
def test_map_with_state_versions_match_a_model(batches, reader):
    timeout = 2500
    prev: list = []
    versions, expected = [], []
    states: dict = {}
    times: dict = {}
    for i, batch in enumerate(batches):
        t = 1000 * (i + 1)
        prev = map_with_state(prev, as_input(batch, reader), mapping, t, timeout)
        states, times, mapped = model_map_with_state(states, times, batch, t, timeout)
        assert prev[0].mapped == mapped
        versions.append(prev[0])
        expected.append((states, times))
    assert [(v.states(), v.times()) for v in versions] == expected


def rebuilt(values, state):
    """Rebuilds its state tuple even without new values: the kernel keeps the old one (same objects)."""
    if "rm" in values:
        return None
    c, s, inner = state if state is not None else (0, 0, (0,))
    if not values:
        return (c, s, (inner[0],))
    return (c + len(values), s + sum(values), (c,))


@pytest.mark.parametrize("reader", [False, True], ids=["list", "reader"])
@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 8), st.one_of(st.integers(-3, 3), st.just("rm"))),
                                 max_size=12), min_size=1, max_size=6))
def test_update_state_versions_match_a_model(batches, reader):
    prev: list = []
    versions, expected, model = [], [], {}
    for batch in batches:
        prev = update_state_by_key(prev, as_input(batch, reader), rebuilt)
        model = reference_update(model, batch, rebuilt)
        versions.append(prev[0])
        expected.append(model)
    assert [v.states() for v in versions] == expected
    assert [sorted(v.items()) for v in versions] == [sorted(e.items()) for e in expected]


def test_an_unchanged_state_is_not_logged_and_a_changed_one_is():
    prev = update_state_by_key([], [("a", 1), ("b", 2)], rebuilt)
    first = prev[0]
    a_state = first.states()["a"]
    second = update_state_by_key(prev, [("b", 5)], rebuilt)[0]
    # "a" got nothing: the function rebuilt an equal tuple of the same objects, and "a" keeps its old one.
    assert second.states()["a"] is a_state
    assert first.states() == {"a": (1, 1, (0,)), "b": (1, 2, (0,))}
    assert second.states() == {"a": (1, 1, (0,)), "b": (2, 7, (1,))}


def test_keyed_state_from_items_and_repr():
    ks = KeyedState.from_items([("a", 1), ("b", 2)], {"a": 5})
    assert ks.timed and ks.times() == {"a": 5, "b": 0}
    assert "2 keys" in repr(ks)
    with pytest.raises(TypeError):
        KeyedState.from_items([1, 2])


def test_a_keyed_state_pickled_before_it_moved_to_keyed_state_still_loads():
    # What pickle.dumps(KeyedState.from_items([("a", 1), ("b", (2, 3.5))], {"a": 7}), protocol=2) wrote while
    # KeyedState and its reducer lived in pystream._core.state (checkpoints name the reducer's module).
    old = (b"\x80\x02cpystream._core.state\n_restore_keyed_state\nq\x00}q\x01(X\x01\x00\x00\x00aq\x02K\x01"
           b"X\x01\x00\x00\x00bq\x03K\x02G@\x0c\x00\x00\x00\x00\x00\x00\x86q\x04u}q\x05(h\x02K\x07h\x03K\x00u"
           b"\x86q\x06Rq\x07.")
    ks = pickle.loads(old)
    assert type(ks) is KeyedState and ks.is_newest and ks.timed
    assert ks.states() == {"a": 1, "b": (2, 3.5)} and ks.times() == {"a": 7, "b": 0}


def test_a_reader_batch_larger_than_a_chunk_and_a_wrong_batch_type():
    batch = [(k % 1000, 1) for k in range(5000)]
    got = update_state_by_key([], as_input(batch, True), count_sum)[0].states()
    assert got == reference_update({}, batch, count_sum)
    with pytest.raises(TypeError, match="list of \\(key, value\\) pairs"):
        update_state_by_key([], iter(batch), count_sum)


OLD_VALUES = [0, -1, 2**63 - 1, -(2**63), 2**64 + 5, 1.5, -0.0, float("inf"), None, True, "text", b"raw",
              (1, 2.5), (None, -0.0, 2**70, "x"), (1, 2, 3, 4, 5), ((1, 2), 3), [1, 2], (), frozenset({1})]


def same(a, b) -> bool:
    """Equal, with the same types all the way down, and floats equal bit for bit (-0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


def test_older_versions_give_back_every_kind_of_state_exactly():
    keys = list(range(len(OLD_VALUES)))
    first = map_with_state([], [(k, OLD_VALUES[k]) for k in keys], set_to, 1000, None)[0]
    second = map_with_state([first], [(k, "new") for k in keys], set_to, 2000, None)[0]
    assert all(v == "new" for v in second.states().values())
    old = first.states()
    assert all(same(old[k], OLD_VALUES[k]) for k in keys), old
    assert all(same(dict(first.items())[k], OLD_VALUES[k]) for k in keys)
    # Values kept by reference (anything but ints, floats and None, alone or in a small tuple) are the same
    # objects; the list is one.
    assert old[keys[OLD_VALUES.index([1, 2])]] is OLD_VALUES[OLD_VALUES.index([1, 2])]


def test_a_failing_batch_restores_every_kind_of_state_exactly():
    keys = list(range(len(OLD_VALUES)))
    prev = map_with_state([], [(k, OLD_VALUES[k]) for k in keys], set_to, 1000, None)

    def fails_late(key, value, state):
        if key == keys[-1]:
            raise RuntimeError("late")
        state.update(value)
        return key

    with pytest.raises(RuntimeError, match="late"):
        map_with_state(prev, [(k, "new") for k in keys], fails_late, 2000, None)
    restored = prev[0].states()
    assert prev[0].is_newest and all(same(restored[k], OLD_VALUES[k]) for k in keys), restored


def set_to(key, value, state):
    state.update(value)
    return key
