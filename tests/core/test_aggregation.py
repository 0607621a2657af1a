"""AggTable against plain-Python references."""

from __future__ import annotations

import copy
import decimal
import operator
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream._core.aggregation import AggTable
from pystream.errors import IllegalStateError

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


def add_lambda(a, b):
    return a + b


def norm(x):
    """Comparable form that tells 1 from 1.0 from True and -0.0 from 0.0, and equates NaNs."""
    if isinstance(x, float):
        return ("float", repr(x))
    if isinstance(x, tuple):
        return ("tuple", tuple(norm(i) for i in x))
    if isinstance(x, list):
        return ("list", [norm(i) for i in x])
    return (type(x).__name__, x)


def norm_items(items):
    return [(norm(k), norm(v)) for k, v in items]


def reference(pairs, fn, d=None):
    """dict-based reduce, left to right; returns (items, exception type or None)."""
    d = {} if d is None else d
    try:
        for k, v in pairs:
            d[k] = fn(d[k], v) if k in d else v
    except Exception as exc:  # noqa: BLE001 - compared against the table's
        return list(d.items()), type(exc)
    return list(d.items()), None


def run_table(table, pairs):
    try:
        table.update(pairs)
    except Exception as exc:  # noqa: BLE001
        return table.items(), type(exc)
    return table.items(), None


REDUCERS = {
    "add": operator.add,
    "lambda": lambda a, b: a + b,
    "def": add_lambda,
    "min": min,
    "max": max,
    "mul": lambda a, b: a * b,
}

keys_st = st.sampled_from([1, 1.0, True, 0, 0.0, False, -1, "a", "b", "", (1, 2), None, 2**70, "ключ"])
int_st = st.one_of(
    st.integers(-10, 10),
    st.integers(I64_MIN, I64_MAX),
    st.sampled_from([I64_MAX, I64_MIN, I64_MAX - 1, I64_MIN + 1, 2**63, -(2**63) - 1, 2**100]),
    st.integers(),
)
float_st = st.floats(allow_nan=True, allow_infinity=True)
num_st = st.one_of(int_st, float_st, st.booleans())
value_st = st.one_of(num_st, st.text(max_size=3))


@pytest.mark.parametrize("name", sorted(REDUCERS))
@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(keys_st, num_st), max_size=40))
def test_numbers_match_python(name, pairs):
    fn = REDUCERS[name]
    want, want_exc = reference(pairs, fn)
    got, got_exc = run_table(AggTable(fn), pairs)
    assert got_exc is want_exc
    assert norm_items(got) == norm_items(want)


# mul is left out: "ab" * 2**62 would try to allocate the product.
@pytest.mark.parametrize("name", sorted(set(REDUCERS) - {"mul"}))
@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(keys_st, value_st), max_size=40))
def test_mixed_values_match_python_including_errors(name, pairs):
    fn = REDUCERS[name]
    want, want_exc = reference(pairs, fn)
    table = AggTable(fn)
    got, got_exc = run_table(table, pairs)
    assert got_exc is want_exc
    assert norm_items(got) == norm_items(want)
    # Still usable after a user-visible error.
    table.update([("zz", 1)])
    assert "zz" in table


@pytest.mark.parametrize("name", ["add", "min", "max", "mul"])
@settings(max_examples=100, deadline=None)
@given(a=st.lists(st.tuples(keys_st, num_st), max_size=25), b=st.lists(st.tuples(keys_st, num_st), max_size=25))
def test_merge_matches_reduce_of_partials(name, a, b):
    fn = REDUCERS[name]
    ra, ea = reference(a, fn)
    rb, eb = reference(b, fn)
    if ea or eb:
        return
    want, want_exc = reference(rb, fn, dict(ra))
    ta, tb = AggTable(fn), AggTable(fn)
    ta.update(a)
    tb.update(b)
    try:
        ta.merge(tb)
    except Exception as exc:  # noqa: BLE001
        assert type(exc) is want_exc
        return
    assert want_exc is None
    assert norm_items(ta.items()) == norm_items(want)
    assert norm_items(tb.items()) == norm_items(rb)  # other is untouched


@settings(max_examples=100, deadline=None)
@given(a=st.lists(st.tuples(keys_st, int_st), max_size=30), b=st.lists(st.tuples(keys_st, int_st), max_size=30))
def test_int_merge_equals_single_update(a, b):
    ta, tb, whole = AggTable(operator.add), AggTable(operator.add), AggTable(operator.add)
    ta.update(a)
    tb.update(b)
    ta.merge(tb)
    whole.update(a + b)
    assert norm_items(ta.items()) == norm_items(whole.items())


@pytest.mark.parametrize("inverse", [operator.sub, lambda a, b: a - b, lambda x, y: x - y + 0])
@settings(max_examples=100, deadline=None)
@given(a=st.lists(st.tuples(keys_st, int_st), max_size=30), b=st.lists(st.tuples(keys_st, int_st), max_size=30))
def test_subtract_after_merge_restores(inverse, a, b):
    t = AggTable(operator.add, inverse)
    t.update(a + b[:1])
    before = norm_items(t.items())
    window = AggTable(operator.add)
    window.update([(k, v) for k, v in b if k in t])
    t.merge(window)
    t.subtract(window)
    assert norm_items(t.items()) == before


def test_sum_semantics_and_order():
    t = AggTable(operator.add)
    t.update([("b", 1), (1, 2), ("a", 1.5), (1.0, 3), (True, 4), ("b", 2.5), ("a", 2)])
    assert t.items() == [("b", 3.5), (1, 9), ("a", 3.5)]
    assert type(t.keys()[1]) is int  # the first-inserted key object is kept, as in dict
    assert [type(v) for v in t.values()] == [float, int, float]


def test_overflow_is_exact():
    t = AggTable(operator.add)
    t.update([("k", I64_MAX), ("k", 1)])
    assert t["k"] == 2**63 and type(t["k"]) is int
    t.update([("k", -2)])  # back inside int64
    assert t["k"] == I64_MAX - 1
    t.update([("n", I64_MIN), ("n", -1), ("n", -(2**64))])
    assert t["n"] == I64_MIN - 1 - 2**64
    c = AggTable.counter()
    c[("x",)] = I64_MAX
    c.update_keys([("x",)])
    assert c[("x",)] == 2**63
    s = AggTable(operator.add, operator.sub)
    s.update([("k", I64_MIN)])
    o = AggTable(operator.add)
    o.update([("k", 1)])
    s.subtract(o)
    assert s["k"] == I64_MIN - 1


def test_bool_and_min_max_identity():
    t = AggTable(operator.add)
    t.update([("a", True), ("a", True), ("b", True)])
    assert t.items() == [("a", 2), ("b", True)] and t["b"] is True
    m = AggTable(min)
    m.update([("a", True), ("a", 1), ("b", 1), ("b", True), ("c", 1.0), ("c", 1)])
    assert m["a"] is True and type(m["b"]) is int and type(m["c"]) is float
    nan = float("nan")
    for fn in (min, max):
        for seq in ([nan, 1.0], [1.0, nan], [0.0, -0.0], [-0.0, 0.0], [2, 2.0], [2.0, 2]):
            t = AggTable(fn)
            t.update([("k", v) for v in seq])
            assert norm(t["k"]) == norm(fn(*seq))


def test_strings_decimals_lists():
    t = AggTable(lambda a, b: a + b)
    t.update([("s", "ab"), ("s", "c"), ("d", decimal.Decimal("0.1")), ("d", decimal.Decimal("0.2")),
              ("l", [1]), ("l", [2])])
    assert t.items() == [("s", "abc"), ("d", decimal.Decimal("0.3")), ("l", [1, 2])]


def test_generic_function_and_combiner():
    t = AggTable(lambda a, b: a * b)
    t.update([("a", 2), ("b", 3), ("a", 5), ("a", 2**62)])
    assert t.items() == [("a", 10 * 2**62), ("b", 3)]
    c = AggTable.combiner(lambda v: [v], lambda acc, v: acc + [v], lambda x, y: x + y)
    c.update([("a", 1), ("b", 2), ("a", 3)])
    d = AggTable.combiner(lambda v: [v], lambda acc, v: acc + [v], lambda x, y: x + y)
    d.update([("b", 4), ("c", 5)])
    c.merge(d)
    assert c.items() == [("a", [1, 3]), ("b", [2, 4]), ("c", [5])]


def test_user_exception_propagates_and_table_stays_usable():
    class Boom(Exception):
        pass

    def reducer(a, b):
        if b == 13:
            raise Boom("13")
        return a + b

    t = AggTable(reducer)
    with pytest.raises(Boom):
        t.update([("a", 1), ("a", 2), ("a", 13), ("a", 100)])
    assert t.items() == [("a", 3)]
    t.update([("a", 4)])
    assert t["a"] == 7

    def create(v):
        if v < 0:
            raise Boom("negative")
        return [v]

    c = AggTable.combiner(create, lambda acc, v: acc + [v], operator.add)
    with pytest.raises(Boom):
        c.update([("x", 1), ("y", -1)])
    assert c.items() == [("x", [1])] and "y" not in c


def test_unhashable_key_and_bad_records():
    t = AggTable(operator.add)
    with pytest.raises(TypeError, match="unhashable"):
        t.update([("a", 1), ([1], 2)])
    assert t.items() == [("a", 1)]
    with pytest.raises(TypeError, match="record 1 is not a"):
        t.update([("a", 1), 5])
    with pytest.raises(TypeError, match="record 0 is not a"):
        t.update([("a", 1, 2)])
    t.update([["b", 1], ("b", 2)])  # any pair-like sequence
    t.update(iter([("c", 1)]))
    assert t.to_dict() == {"a": 2, "b": 3, "c": 1}
    with pytest.raises(TypeError):
        t.update_keys([{}])
    with pytest.raises(TypeError):
        AggTable(5)


def test_eq_raising_key_propagates():
    class K:
        def __hash__(self):
            return 1

        def __eq__(self, other):
            raise ValueError("no eq")

    t = AggTable(operator.add)
    t.update([(K(), 1)])
    with pytest.raises(ValueError, match="no eq"):
        t.update([(K(), 2)])
    assert len(t) == 1


def test_reentrant_mutation_is_refused():
    t = AggTable(operator.add)

    def reducer(a, b):
        t.update([("other", 1)])
        return a + b

    g = AggTable(reducer)
    t = g
    g.update([("k", 1)])
    with pytest.raises(IllegalStateError):
        g.update([("k", 2)])
    assert g.items() == [("k", 1)]


@pytest.mark.parametrize("first", [[], [("a", 1), ("b", 2.5)]])
def test_reserve_makes_room_and_changes_nothing_else(first):
    keys = [(f"k{i}", i) for i in range(5000)]
    t, plain = AggTable(operator.add), AggTable(operator.add)
    for table in (t, plain):
        table.update(first)
    t.reserve(len(keys))
    t.reserve(0)
    assert t.items() == plain.items()
    for table in (t, plain):
        table.update(keys + keys[:10])
    assert t.items() == plain.items()
    with pytest.raises(ValueError):
        t.reserve(-1)
    with pytest.raises(MemoryError):
        t.reserve(2**40)  # refused before any index is sized for it
    with pytest.raises(TypeError):
        t.reserve("many")
    assert t.items() == plain.items()

    def reducer(a, b):
        g.reserve(10)
        return a + b

    g = AggTable(reducer)
    g.update([("k", 1)])
    with pytest.raises(IllegalStateError):
        g.update([("k", 2)])


def test_subtract_requirements():
    t = AggTable(operator.add)
    t.update([("a", 1)])
    with pytest.raises(ValueError, match="inverse"):
        t.subtract(t)
    t = AggTable(operator.add, operator.sub)
    t.update([("a", 5), ("b", 1.5)])
    o = AggTable(operator.add)
    o.update([("a", 5), ("missing", 1)])
    with pytest.raises(KeyError, match="missing"):
        t.subtract(o)
    assert t.items() == [("a", 5), ("b", 1.5)]  # nothing applied
    o = AggTable(operator.add)
    o.update([("a", 5), ("b", 1)])
    t.subtract(o)
    assert t.items() == [("a", 0), ("b", 0.5)]  # zeros stay
    with pytest.raises(ValueError, match="different reducers"):
        t.merge(AggTable(min))
    with pytest.raises(TypeError):
        t.merge({"a": 1})


def test_counter_matches_collections_counter():
    import collections

    keys = ["x", 1, 1.0, True, "y", "x", None, (1,), "x"] * 50
    c = AggTable.counter()
    c.update_keys(keys)
    assert c.items() == list(collections.Counter(keys).items())
    c.update_keys(iter(["x"]))
    assert c["x"] == 151


def test_mapping_api():
    t = AggTable(operator.add)
    t.update([(i, i) for i in range(100)])
    assert len(t) == 100 and 5 in t and 500 not in t and t.get(500, "d") == "d"
    assert t.pop(5) == 5 and 5 not in t and t.pop(5, None) is None
    del t[6]
    with pytest.raises(KeyError):
        del t[6]
    with pytest.raises(KeyError):
        t[6]
    t[6] = "six"
    assert t.keys()[-1] == 6 and t[6] == "six"
    for i in range(7, 90):
        del t[i]
    t.update([(i, 1) for i in range(1000, 1100)])  # exercises compaction after many pops
    assert t.keys() == [0, 1, 2, 3, 4, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 6] + list(range(1000, 1100))
    assert list(t) == t.keys() and t.values() == [v for _, v in t.items()]
    c = t.copy()
    c.update([(0, 10)])
    assert t[0] == 0 and c[0] == 10 and copy.copy(t).items() == t.items()
    t.clear()
    assert len(t) == 0 and t.items() == []
    t.update([("a", 1)])
    assert t.items() == [("a", 1)]
    for k in list(t):
        t.pop(k)
    assert len(t) == 0
    assert "AggTable" in repr(t)


def _singleton(v):
    return [v]


def _append(acc, v):
    return acc + [v]


@pytest.mark.parametrize(
    "make",
    [
        lambda: AggTable(operator.add),
        lambda: AggTable(lambda a, b: a + b, lambda a, b: a - b),  # pickles as operator.add / sub
        lambda: AggTable(min),
        lambda: AggTable.counter(),
        lambda: AggTable.combiner(_singleton, _append, operator.add),
    ],
)
def test_pickle_round_trip(make):
    t = make()
    t.update([("a", 1), ("b", 2**80), ("a", 2.5), ((1, "x"), -3), ("c", True), ("gone", 0)])
    t.pop("gone")
    u = pickle.loads(pickle.dumps(t))
    assert norm_items(u.items()) == norm_items(t.items())
    u.update([("a", 1)])
    w = make()
    w.update([("a", 1)])
    t.merge(w)
    assert norm_items(u.items()) == norm_items(t.items())  # same behaviour after the round trip


def test_many_keys_grow_and_collide():
    class Same:
        def __init__(self, v):
            self.v = v

        def __hash__(self):
            return 42

        def __eq__(self, other):
            return isinstance(other, Same) and self.v == other.v

    t = AggTable(operator.add)
    t.update([(Same(i % 50), 1) for i in range(500)])
    assert len(t) == 50 and set(t.values()) == {10}
    big = AggTable(operator.add)
    big.update([(i * 1_000_003, i) for i in range(50_000)])
    big.update([(i * 1_000_003, 1) for i in range(50_000)])
    assert big.items() == [(i * 1_000_003, i + 1) for i in range(50_000)]


def test_records_list_mutated_by_reducer():
    records = [("k", i) for i in range(100)]

    def reducer(a, b):
        if len(records) > 50:
            del records[50:]
        return a + b

    t = AggTable(reducer)
    t.update(records)
    assert t["k"] == sum(range(50))


def test_nan_and_subclass_keys_follow_dict():
    nan = float("nan")
    other_nan = float("nan")
    pairs = [(nan, 1), (nan, 2), (other_nan, 3), ("s", 1)]

    class S(str):
        pass

    pairs += [(S("s"), 5), (S("t"), 1), ("t", 1)]
    t = AggTable(operator.add)
    t.update(pairs)
    want, _ = reference(pairs, operator.add)
    assert [(id(k), v) for k, v in t.items()] == [(id(k), v) for k, v in want]
    t.update(tuple(pairs))  # tuples of records take the same path
    assert [v for v in t.values()] == [2 * v for _, v in want]


# -- split_items: a table's pairs split by the stable key hash, as lists or straight into frames ---------------
@settings(max_examples=200)
@given(records=st.lists(st.tuples(keys_st, int_st), max_size=60), n=st.integers(1, 9), data=st.data())
def test_split_items_equals_partitioning_the_items(records, n, data):
    from pystream import frames
    from pystream._core.partitioning import partition

    t = AggTable(operator.add)
    t.update(records)
    expected = partition(t.items(), n)
    as_frames = data.draw(st.sets(st.integers(0, n - 1)))
    as_tables = data.draw(st.sets(st.integers(0, n - 1).filter(lambda j: j not in as_frames)))
    before = norm_items(t.items())
    got = t.split_items(n, as_frames, as_tables)
    assert len(got) == n
    for j in range(n):
        if j in as_frames:
            # Byte for byte the frame the lists would encode to with no string table (a table's keys do not
            # repeat), without the tuples being made.
            assert got[j].count == len(expected[j])
            plain = frames.FrameWriter(strings=False)
            plain.extend(expected[j])
            assert got[j].getvalue() == plain.getvalue()
            assert [norm(r) for r in frames.decode(got[j].getvalue())] == [norm(r) for r in expected[j]]
        elif j in as_tables:
            # A table of its own with the same reducer: it folds more values as the whole table would.
            assert type(got[j]) is AggTable and t.can_merge(got[j])
            assert norm_items(got[j].items()) == norm_items(expected[j])
            got[j].update(expected[j])
            assert norm_items(got[j].items()) == [(k, norm(v + v)) for (k, _), (_, v) in
                                                  zip(norm_items(expected[j]), expected[j])]
        else:
            assert [norm(r) for r in got[j]] == [norm(r) for r in expected[j]]
    assert norm_items(t.items()) == before  # the table itself is left as it was
    assert [norm(r) for r in t.split_items(n)[0]] == [norm(r) for r in expected[0]]


@settings(max_examples=300)
@given(words=st.lists(st.one_of(st.text(max_size=10), st.text(st.characters(max_codepoint=255), max_size=9),
                                st.text("abcdefgh", min_size=7, max_size=9)), max_size=40),
       n=st.integers(1, 9), consume=st.booleans())
def test_split_items_of_str_keys_of_any_length_and_kind_equals_partitioning_them(words, n, consume):
    # Keys of up to 8 ASCII characters are hashed from the table's own copy of them: every other str (longer,
    # Latin-1, wider kinds) from its object. Both must be portable_hash's partition.
    from pystream._core.partitioning import partition

    t = AggTable(operator.add)
    t.update_keys(words)
    want = partition(t.items(), n)
    assert t.split_items(n, consume=consume) == want


@settings(max_examples=200)
@given(records=st.lists(st.tuples(keys_st, value_st), max_size=60), n=st.integers(1, 9), data=st.data())
def test_a_consuming_split_gives_what_a_copying_split_gives_and_empties_the_table(records, n, data):
    def join(a, b):
        return (a, b)

    t = AggTable(join)  # Python-object values and a Python reducer: the entries that own the most
    t.update(records)
    dead = data.draw(st.sampled_from([None] + t.keys())) if len(t) else None
    if dead is not None:
        del t[dead]  # a dead entry among the live ones is skipped
    as_frames = data.draw(st.sets(st.integers(0, n - 1)))
    as_tables = data.draw(st.sets(st.integers(0, n - 1).filter(lambda j: j not in as_frames)))
    copy_of = t.copy()
    want = copy_of.split_items(n, as_frames, as_tables)
    got = t.split_items(n, as_frames, as_tables, consume=True)
    assert len(t) == 0 and t.items() == []
    for j in range(n):
        if j in as_frames:
            assert got[j].getvalue() == want[j].getvalue()
        elif j in as_tables:
            assert repr(got[j].items()) == repr(want[j].items()) and copy_of.can_merge(got[j])
        else:
            assert repr(got[j]) == repr(want[j])
    t.update([("again", 1)])  # the emptied table is a table still
    assert t.items() == [("again", 1)]


def _refcounts(objects):
    import sys

    return [sys.getrefcount(o) for o in objects]


def _table_of_fresh_objects(n):
    """A table of n str keys and list values made at run time (no other holder), with their reference counts."""
    keys = [f"key-{i}-" + "x" * i for i in range(n)]
    values = [[i] for i in range(n)]
    t = AggTable(lambda a, b: a + b)
    t.update(zip(keys, values))
    return keys, values, t, _refcounts(keys), _refcounts(values)


def test_a_consuming_split_moves_the_references_and_drops_those_of_encoded_pairs():
    from pystream import frames

    keys, values, t, rk, rv = _table_of_fresh_objects(60)
    parts = t.split_items(3, [0], [1], consume=True)
    encoded = {k for k, _ in frames.decode(parts[0].getvalue())}
    gone = [k in encoded for k in keys]  # an encoded pair is only bytes now; any other pair's objects are in its bucket
    assert _refcounts(keys) == [r - g for r, g in zip(rk, gone)]
    assert _refcounts(values) == [r - g for r, g in zip(rv, gone)]
    assert sorted(parts[1].keys() + [kv[0] for kv in parts[2]] + list(encoded)) == sorted(keys)


def test_a_consuming_split_whose_frame_fails_to_encode_drops_its_entries_and_raises():
    keys, values, t, rk, rv = _table_of_fresh_objects(50)
    t.update([(k, [lambda: None]) for k in keys])  # values no frame can hold (a lambda does not pickle)
    with pytest.raises(TypeError, match="cannot encode a function"):
        t.split_items(2, [0], [1], consume=True)
    assert len(t) == 0
    assert _refcounts(keys) == [r - 1 for r in rk]  # the table held each key once; now nothing does
    t.update([("again", 1)])
    assert t.items() == [("again", 1)]


def test_a_copying_split_into_tables_takes_a_reference_to_each_key_and_value():
    keys, values, t, rk, rv = _table_of_fresh_objects(50)
    parts = t.split_items(3, (), range(3))
    assert _refcounts(keys) == [r + 1 for r in rk] and _refcounts(values) == [r + 1 for r in rv]
    # Each part finds its own keys (their index was built once their entries were in).
    for part in parts:
        assert all(part[k] is values[keys.index(k)] for k in part.keys())
        part.update([(k, [0]) for k in part.keys()])
        assert all(v[-1] == 0 and len(v) == 2 for v in part.values())
    del parts, part
    assert _refcounts(keys) == rk and _refcounts(values) == rv


def test_a_consuming_split_that_raises_while_hashing_leaves_the_table_whole():
    armed = False

    class Touchy:
        # Hashed through hash() by the stable hash's fallback, which fails once armed.
        def __hash__(self):
            if armed:
                raise RuntimeError("no hash now")
            return 7

    t = AggTable(operator.add)
    t.update([("a", 1), (Touchy(), 2), ("b", 3)])
    before = t.items()
    armed = True
    with pytest.raises(RuntimeError, match="no hash now"):
        t.split_items(2, [0], [1], consume=True)
    assert t.items() == before
    armed = False
    assert sum(len(p) for p in t.split_items(2, [], [0, 1], consume=True)) == 3 and len(t) == 0


def test_iter_items_makes_the_pairs_as_it_goes_and_stops_if_the_table_changes_size():
    t = AggTable(operator.add)
    t.update([("a", 1), ("b", 2.5), ("a", 3), ("c", [1]), ("d", 4)])
    del t["b"]
    it = t.iter_items()
    assert it.__length_hint__() == 3
    assert next(it) == ("a", 4)
    assert it.__length_hint__() == 2
    t["a"] = 10  # a value changed in place: the iteration goes on
    assert list(it) == [("c", [1]), ("d", 4)]
    assert list(it) == []
    assert list(t.iter_items()) == t.items()
    for change in (lambda: t.__setitem__("new", 1), lambda: t.pop("c")):
        it = t.iter_items()
        next(it)
        change()
        with pytest.raises(RuntimeError, match="changed size"):
            next(it)
        with pytest.raises(StopIteration):
            next(it)


@settings(max_examples=100)
@given(records=st.lists(st.tuples(keys_st, value_st), max_size=40), n=st.integers(1, 5))
def test_split_tables_keep_the_reducers_and_object_values(records, n):
    # Tables split off a table of Python-object values and a Python reducer own their values: dropping
    # the source (and the other parts) leaves them whole.
    import gc

    def join(a, b):
        return (a, b)

    t = AggTable(join)
    t.update(records)
    expected = t.items()
    parts = t.split_items(n, (), range(n))
    del t
    gc.collect()
    merged = AggTable(join)
    for part in parts:
        assert merged.can_merge(part)
        merged.merge(part)
    assert sorted(map(repr, merged.items())) == sorted(map(repr, expected))
    for part in parts:
        part.update([(k, "x") for k, _ in part.items()])
        assert all(type(v) is tuple and v[1] == "x" for v in part.values())


def test_split_items_of_counted_words_and_object_values():
    from pystream._core.partitioning import partition

    t = AggTable.counter()
    t.count_words(["to be or not to be", "that is the question"] * 50)
    t[("tuple", 1)] = 7
    del t["or"]  # a dead entry among the live ones is skipped
    assert t.split_items(4) == partition(t.items(), 4)
    combined = AggTable(lambda a, b: a + b)
    combined.update([("a", [1]), ("b", [2]), ("a", [3])])  # Python-object values
    assert sorted(sum(combined.split_items(3), [])) == [("a", [1, 3]), ("b", [2])]


def test_split_items_refuses_bad_arguments_and_reentry():
    t = AggTable(operator.add)
    t.update([("a", 1), ("b", 2)])
    with pytest.raises(ValueError, match="between 1"):
        t.split_items(0)
    with pytest.raises(ValueError, match="outside 0..1"):
        t.split_items(2, [2])
    with pytest.raises(ValueError, match="tables index 5 is outside 0..1"):
        t.split_items(2, (), [5])
    with pytest.raises(ValueError, match="both a frame and a table"):
        t.split_items(2, [1], [1])

    class Meddler:
        # Hashed by the stable hash's fallback (hash()), which here tries to change the table mid-split.
        def __hash__(self):
            if armed:
                t["c"] = 3
            return 1

        def __eq__(self, other):
            return self is other

    armed = False
    t.update([(Meddler(), 1)])
    armed = True
    with pytest.raises(IllegalStateError):
        t.split_items(2)
    armed = False
    assert len(t.split_items(2)[0]) + len(t.split_items(2)[1]) == 3


def test_can_merge_tells_which_tables_merge_accepts():
    adds, mins = AggTable(operator.add), AggTable(min)
    combined = AggTable.combiner(lambda v: [v], lambda c, v: c + [v], operator.add)
    assert adds.can_merge(AggTable.counter()) and adds.can_merge(AggTable(lambda a, b: a + b))
    assert not adds.can_merge(mins) and not adds.can_merge(combined) and not adds.can_merge({"a": 1})
    for other in (mins, combined):
        with pytest.raises(ValueError, match="different reducers"):
            adds.merge(other)


# -- count_words: flatMap(str.split) and counting, fused; over a list, or in place over a frame's records ------
line_st = st.one_of(st.text(alphabet=st.sampled_from("ab c\t\n\x1c\x1f\x0bé€xyz"), max_size=80),
                    st.sampled_from(["to be", "or", "x" * 70 + " y", ""]), st.binary(max_size=6))


@settings(max_examples=300)
@given(lines=st.lists(line_st, max_size=40), compress=st.booleans())
def test_count_words_is_a_dict_loop_over_the_split_lines_from_a_list_or_a_frame(lines, compress):
    from pystream import frames

    want: dict = {}
    for line in lines:
        for w in line.split():
            want[w] = want.get(w, 0) + 1
    t = AggTable(operator.add)
    t.count_words(lines)
    assert t.items() == list(want.items())
    # Read in place: ASCII lines split where they lie in the frame, every other record decoded first.
    reader = frames.FrameReader(frames.encode(lines, compress=compress))
    t = AggTable(operator.add)
    t.count_words(reader)
    assert t.items() == list(want.items()) and reader.remaining == 0


def test_count_words_in_place_over_a_frame_whose_string_table_ends():
    from pystream import frames

    # Thousands of distinct short lines: the encoder numbers them, then gives up (ends the string table);
    # repeats before that point are references to earlier literals.
    lines = [f"w{i % 5000} w{i % 7}" for i in range(20_000)] + ["tail é", 3]
    data = frames.encode(lines[:-1], compress=False)
    assert b"\x0e" in data[frames.HEADER_SIZE:]
    t = AggTable(operator.add)
    t.count_words(frames.FrameReader(data))
    ref = AggTable(operator.add)
    ref.count_words(lines[:-1])
    assert t.items() == ref.items()
    # A record without split() fails as it does from a list; a closed reader cannot be read.
    with pytest.raises(AttributeError):
        AggTable(operator.add).count_words(frames.FrameReader(frames.encode(lines)))
    reader = frames.FrameReader(data)
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        AggTable(operator.add).count_words(reader)
    with pytest.raises(ValueError, match="operator.add"):
        AggTable(min).count_words(frames.FrameReader(data))


word_st = st.sampled_from(["a", "b", "ab", "w1", "w22", "xyzxyzx", "eightchr", "ninechars", "a\x1fb"])
table_op_st = st.one_of(
    st.tuples(st.just("count"), st.lists(st.lists(word_st, max_size=12).map(" ".join), max_size=6)),
    st.tuples(st.just("pop"), word_st),
    st.tuples(st.just("set"), word_st, st.sampled_from([0.5, -3, I64_MAX, I64_MIN, 2**70, 7]))
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(table_op_st, max_size=25), in_place=st.booleans())
def test_count_words_between_pops_and_stores_is_a_dict_loop(ops, in_place):
    from pystream import frames

    # count_words remembers where short words were (its front cache) and adds to their int counts directly:
    # entries removed, moved by compaction, or turned float or big-int in between must still come out as a
    # dict counting the same words in the same order would have them.
    t, want = AggTable(operator.add), {}
    for op in ops:
        if op[0] == "count":
            t.count_words(frames.FrameReader(frames.encode(op[1], compress=False)) if in_place else op[1])
            for line in op[1]:
                for w in line.split():
                    want[w] = want[w] + 1 if w in want else 1
        elif op[0] == "pop":
            assert t.pop(op[1], None) == want.pop(op[1], None)
        else:
            t[op[1]] = want[op[1]] = op[2]
        assert norm_items(t.items()) == norm_items(want.items())


def test_short_keys_of_every_length_are_one_key_whether_counted_from_text_or_given_as_str():
    from itertools import product

    from pystream import frames
    from pystream._core.partitioning import partition

    # Up to 8 bytes a key is compared by its packed bytes (skey), built one way from a str key and another
    # from a word's span: all words over {a, b} of lengths 1-9 share prefixes, suffixes and middles.
    words = ["".join(p) for n in range(1, 10) for p in product("ab", repeat=n)]
    text = [" ".join(words[i:i + 50]) for i in range(0, len(words), 50)]
    for source in (text, frames.FrameReader(frames.encode(text, compress=False))):
        t = AggTable(operator.add)
        t.update([(w, 10) for w in words])  # str keys first
        t.count_words(source)  # then the same words as spans of text
        assert t.items() == [(w, 11) for w in words]
    t = AggTable(operator.add)
    t.count_words(text)  # spans first: their keys made from the spans
    t.update([(w, 10) for w in words])
    assert t.items() == [(w, 11) for w in words]
    # A split hashes a short key from its packed bytes: it must land where portable_hash sends the str.
    assert t.split_items(7) == partition(t.items(), 7)


def test_a_reader_cannot_be_closed_while_a_table_counts_its_words_in_place():
    from pystream import frames

    # count_words and update hash spans of the frame some way ahead of folding them: a key's __eq__ that
    # closed the reader mid-way would leave them pointing into released memory.
    class Closer(str):
        __hash__ = str.__hash__

        def __eq__(self, other):
            reader.close()
            return str.__eq__(self, other)

    lines = ["to be or not to be"] * 200
    reader = frames.FrameReader(frames.encode(lines, compress=False))
    t = AggTable(operator.add)
    t.update([(Closer("be"), 1)])
    with pytest.raises(IllegalStateError, match="while a kernel reads"):
        t.count_words(reader)
    reader.close()  # once the table is done with it
    with pytest.raises(ValueError, match="closed"):
        reader.next_chunk()
    pairs = frames.FrameWriter(strings=False)
    pairs.extend([("to", 1), ("be", 2)] * 100)
    reader = frames.FrameReader(pairs.getvalue())
    with pytest.raises(IllegalStateError, match="while a kernel reads"):
        t.update(reader)
    reader.close()


# -- update from a FrameReader: (ASCII str, int) pairs folded from the frame's bytes -------------------------
class StrKey(str):
    """A str subclass: equal to (and hashed as) the plain str, stored by the table as a key of its own type."""


pair_key_st = st.one_of(st.sampled_from(["a", "b", "ab", "k" * 9, "k" * 70, "é", "", "clé"]),
                        st.text(alphabet="abc", max_size=3), st.sampled_from([1, 2.5, None, (1, "a")]))
pair_value_st = st.one_of(st.integers(-100, 100), st.sampled_from([I64_MAX, I64_MIN, 2**64, -(2**70)]),
                          st.sampled_from([0.5, "s"]))
FOLD_REDUCERS = {"add": operator.add, "min": min, "max": max, "python": lambda a, b: (a, b) if a != b else a}


@settings(max_examples=300, deadline=None)
@given(records=st.lists(st.tuples(pair_key_st, pair_value_st), max_size=40),
       seed=st.lists(st.tuples(st.sampled_from(["a", "ab", StrKey("a"), StrKey("b"), 3]), st.integers(0, 3)),
                     max_size=4),
       reducer=st.sampled_from(sorted(FOLD_REDUCERS)), strings=st.booleans())
def test_update_from_a_frame_reader_is_update_from_the_decoded_records(records, seed, reducer, strings):
    from pystream import frames

    def fold(source):
        t = AggTable(FOLD_REDUCERS[reducer])
        t.update(seed)  # keys already there, some of them str subclasses equal to a frame's plain str
        try:
            t.update(source)
        except TypeError as e:  # "s" + 1, min("s", 1): the same error whichever way the pairs come
            return ("error", str(e))
        return [(type(k).__name__, norm(k), repr(v)) for k, v in t.items()]

    if strings:
        data = frames.encode(records, compress=False)
    else:
        w = frames.FrameWriter(len(records), strings=False)
        w.extend(records)
        data = w.getvalue()
    reader = frames.FrameReader(data)
    assert fold(reader) == fold(records)
    assert reader.remaining == 0 or fold(records)[0] == "error"


def test_update_from_a_frame_reader_of_many_keys_and_a_combiner_table():
    from pystream import frames

    pairs = [(f"w{i % 3000}", i) for i in range(9000)] + [("w1", 2**70), ("w2", 1.5), ("wé", 1)]
    for strings in (True, False):
        w = frames.FrameWriter(strings=strings)
        w.extend(pairs)
        got, want = AggTable(operator.add), AggTable(operator.add)
        got.update(frames.FrameReader(w.getvalue()))
        want.update(pairs)
        assert norm_items(got.items()) == norm_items(want.items())
    # combineByKey's table folds through create_combiner and merge_value: every pair decoded.
    comb = AggTable.combiner(lambda v: [v], lambda c, v: c + [v], operator.add)
    comb.update(frames.FrameReader(frames.encode(pairs[:10])))
    assert comb.items() == [(k, [v]) for k, v in pairs[:10]]
    reader = frames.FrameReader(frames.encode(pairs))
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        AggTable(operator.add).update(reader)


def test_words_and_frame_pairs_fold_into_an_equal_str_subclass_key_as_a_dict_would():
    from pystream import frames

    for source in (["to be to"], frames.FrameReader(frames.encode(["to be to"], compress=False))):
        t = AggTable(operator.add)
        t.update([(StrKey("to"), 5)])
        t.count_words(source)
        assert [(type(k), k, v) for k, v in t.items()] == [(StrKey, "to", 7), (str, "be", 1)]
    w = frames.FrameWriter(strings=False)
    w.extend([("to", 1), ("be", 2)])
    t = AggTable(lambda a, b: a * 10 + b)  # a Python reducer: values kept as objects
    t.update([(StrKey("to"), 5)])
    t.update(frames.FrameReader(w.getvalue()))
    assert [(type(k), k, v) for k, v in t.items()] == [(StrKey, "to", 51), (str, "be", 2)]


def test_tables_keep_every_entry_as_their_arrays_cross_into_and_out_of_their_own_mappings():
    # 200K keys put the slots and entries past 1 MiB (csrc/ps_bigmem.h: mapped on their own); popping most
    # of them shrinks the index back under it; copies, clears and a consuming split go through both.
    from pystream._core.partitioning import partition

    keys = [f"k{i}" for i in range(200_000)]
    t = AggTable(operator.add)
    t.update((k, i) for i, k in enumerate(keys))
    c = t.copy()
    for k in keys[:190_000]:
        del t[k]
    t.update([("new", 1)] * 3)  # inserts after the pops: the table compacts into smaller arrays
    assert t.items() == [(k, i) for i, k in enumerate(keys)][190_000:] + [("new", 3)]
    assert len(c) == 200_000 and c["k199999"] == 199_999 and c["k0"] == 0
    want = partition(c.items(), 3)
    assert c.split_items(3, consume=True) == want and len(c) == 0
    t.clear()
    t.update_keys(keys)
    assert len(t) == 200_000 and t["k123456"] == 1


@given(st.lists(st.tuples(st.one_of(st.text(max_size=3), st.integers(-3, 3)),
                          st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=False), st.text(max_size=2))),
                max_size=40),
       st.lists(st.one_of(st.text(max_size=3), st.integers(-3, 3)), max_size=5))
def test_merge_into_an_empty_table_is_a_copy_that_folds_on(pairs, popped):
    # An empty table takes a merge as a copy of the other's entries (the first bucket of a reduce task):
    # the same pairs in the same order, the same accumulator objects, and folding goes on from them.
    def fold(a, b):
        try:
            return a + b
        except TypeError:
            return b

    src = AggTable(fold)
    src.update(pairs)
    for k in popped:
        src.pop(k, None)  # dead entries in the source
    dst = AggTable(fold)
    dst.merge(src)
    assert dst.items() == src.items()
    assert all(a[1] is b[1] for a, b in zip(dst.items(), src.items()) if not isinstance(a[1], (int, float)))
    dst.merge(src)
    dst.update(pairs)
    expected = {}
    for k, v in src.items() + src.items() + pairs:
        expected[k] = fold(expected[k], v) if k in expected else v
    assert dst.items() == list(expected.items())


def test_merge_into_an_empty_combiner_table_shares_the_combiners():
    src = AggTable.combiner(lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b)
    src.update([("a", 1), ("b", 2), ("a", 3)])
    dst = AggTable.combiner(lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b)
    dst.merge(src)
    assert dst.items() == [("a", [1, 3]), ("b", [2])]
    assert dst["a"] is src["a"]
    dst.merge(src)
    assert dst.items() == [("a", [1, 3, 1, 3]), ("b", [2, 2])]
    assert src.items() == [("a", [1, 3]), ("b", [2])]


# -- inline keys: short ASCII words folded from bytes are kept in the entry, their str made when asked for ----
class SameHash:
    """Not a str, equal to one word and hashed as it is: only its __eq__ can tell the table so."""

    def __init__(self, word):
        self.word = word

    def __hash__(self):
        return hash(self.word)

    def __eq__(self, other):
        return other == self.word


def _counted(lines, in_place, inverse=None):
    from pystream import frames

    t = AggTable(operator.add, inverse)
    t.count_words(frames.FrameReader(frames.encode(lines, compress=False)) if in_place else lines)
    return t


def test_counted_short_words_take_no_str_object_each():
    import gc
    import sys

    words = [f"w{i}" for i in range(60_000)]  # distinct: each a new key of at most 8 characters
    lines = [" ".join(words[i:i + 10]) for i in range(0, len(words), 10)]
    long_lines = [" ".join(f"longword{i}" for i in range(j, j + 10)) for j in range(0, 20_000, 10)]
    gc.collect()
    gc.disable()  # no other test's garbage freed in between
    try:
        before = sys.getallocatedblocks()
        t = _counted(lines, in_place=False)
        made = sys.getallocatedblocks() - before  # the table's arrays are not object blocks; a key's str is
        before = sys.getallocatedblocks()
        t2 = _counted(long_lines, in_place=False)
        made_long = sys.getallocatedblocks() - before
    finally:
        gc.enable()
    assert made < 1_000 and len(t) == 60_000 and t["w59999"] == 1
    assert made_long >= 20_000 and len(t2) == 20_000  # longer words are str objects, as before


@pytest.mark.parametrize("in_place", [False, True])
def test_inline_keys_answer_as_str_keys(in_place):
    lines = ["to be or not to be", "é to", "eightchr ninechars"]
    ref = AggTable(operator.add)
    ref.update([(w, 1) for line in lines for w in line.split()])
    # Looked up, copied and pickled before anything lists the keys (which makes their strs, and keeps them).
    t = _counted(lines, in_place)
    assert t["to"] == 3 and "be" in t and t.get("or") == 1 and "b" not in t and t.get("tob", 0) == 0
    assert t[StrKey("be")] == 2 and StrKey("not") in t  # a str subclass probe: compared by its characters
    assert t[SameHash("to")] == 3 and t.get(SameHash("tx")) is None  # not a str: through the key's str
    copies = [t.copy(), copy.copy(t), pickle.loads(pickle.dumps(_counted(lines, in_place)))]
    assert all(c.items() == ref.items() for c in copies)
    assert _counted(lines, in_place).keys() == ref.keys() and list(_counted(lines, in_place)) == list(ref)
    assert t.items() == ref.items() and all(type(k) is str for k in t.keys())
    u = _counted(lines, in_place)
    assert u.pop("be") == 2 and "be" not in u
    u["to"] = 10
    u.update([("to", 1), ("or", 5)])
    assert u["to"] == 11 and u["or"] == 6
    u.clear()
    assert len(u) == 0 and u.items() == []


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.lists(word_st, max_size=8).map(" ".join), max_size=12),
       other=st.lists(st.tuples(st.one_of(word_st, st.sampled_from([StrKey("ab"), 3, "x" * 12])),
                                st.integers(-5, 5)), max_size=12),
       n=st.integers(1, 4), in_place=st.booleans())
def test_tables_of_inline_keys_merge_split_and_subtract_as_tables_of_str_keys(lines, other, n, in_place):
    from pystream import frames
    from pystream._core.partitioning import partition

    words = [(w, 1) for line in lines for w in line.split()]
    plain = AggTable(operator.add, operator.sub)
    plain.update(words)

    def inline():  # a new table each time: listing its keys would make their strs, which it then keeps
        return _counted(lines, in_place)

    # Merged both ways with a table of str (and other) keys, and into an empty table (a copy).
    o = AggTable(operator.add)
    o.update(other)
    for a, b, first, then in ((inline(), o, plain, o), (o.copy(), inline(), o, plain)):
        ref = AggTable(operator.add)
        ref.update(first.items())
        ref.update(then.items())
        a.merge(b)
        assert [(type(k), k, v) for k, v in a.items()] == [(type(k), k, v) for k, v in ref.items()]
    empty = AggTable(operator.add)
    empty.merge(inline())
    assert empty.items() == plain.items()
    # Split into lists, frames and tables: as partitioning the pairs; a consuming split too.
    want = partition(plain.items(), n)
    for consume in (False, True):
        source = inline()
        parts = source.split_items(n, [j for j in range(n) if j % 2], [j for j in range(n) if not j % 2],
                                   consume=consume)
        got = [frames.decode(p.getvalue()) if j % 2 else p.items() for j, p in enumerate(parts)]
        assert got == want and len(source) == (0 if consume else len(plain))
    # The reduce side: pairs read from a frame fold into a table of inline keys, or make them.
    w = frames.FrameWriter(strings=False)
    w.extend(plain.items())
    folded = AggTable(operator.add)
    folded.update(frames.FrameReader(w.getvalue()))
    folded.update(frames.FrameReader(w.getvalue()))
    assert folded.items() == [(k, 2 * v) for k, v in plain.items()]
    # Subtracting an inline table from a table of str keys, and the reverse; a missing key is named.
    s = AggTable(operator.add, operator.sub)
    s.update(words + words)
    s.subtract(inline())
    assert s.items() == plain.items()
    twice = _counted(lines + lines, in_place, operator.sub)
    twice.subtract(plain)
    assert twice.items() == plain.items()
    if words:
        with pytest.raises(KeyError) as err:
            AggTable(operator.add, operator.sub).subtract(inline())
        assert err.value.args[0] == words[0][0]
    assert inline().items() == plain.items()


def test_an_inline_key_met_by_an_equal_key_of_another_type_folds_as_a_dict_would():
    from pystream import frames

    t = AggTable(operator.add)
    t.update([(SameHash("to"), 5)])  # stored first: a word with its hash must ask it
    t.count_words(["to be to"])
    assert [(type(k).__name__, v) for k, v in t.items()] == [("SameHash", 7), ("str", 1)]
    u = _counted(["to be to"], in_place=True)
    t2 = AggTable(operator.add)
    t2.update([(SameHash("to"), 5)])
    t2.merge(u)  # the inline key looked up in a table whose equal key is not a str
    assert [(type(k).__name__, v) for k, v in t2.items()] == [("SameHash", 7), ("str", 1)]
    w = frames.FrameWriter(strings=False)
    w.extend(u.items())
    t3 = AggTable(operator.add)
    t3.update([(SameHash("be"), 1)])
    t3.update(frames.FrameReader(w.getvalue()))
    assert [(type(k).__name__, v) for k, v in t3.items()] == [("SameHash", 2), ("str", 2)]


def test_lists_of_pairs_share_an_inline_key_str_and_an_iterator_makes_its_own():
    t = _counted(["to be or not to be"], in_place=True)
    first = t.items()
    assert all(p[0] is q[0] for p, q in zip(first, t.items()))  # made once, kept by the table
    assert all(k is p[0] for k, p in zip(t.keys(), first))
    u = _counted(["to be or not to be"], in_place=True)
    once, again = list(u.iter_items()), list(u.iter_items())
    assert once == again == first and all(p[0] is not q[0] for p, q in zip(once, again))  # not kept


class _Group(list):
    __slots__ = ()


def _new(v):
    return _Group([v])


# groupByKey's own functions: the fast path must do what they do.
from pystream.rdd import _group_append as _append  # noqa: E402
from pystream.rdd import _group_extend as _extend  # noqa: E402


@given(st.lists(st.tuples(st.integers(-5, 30), st.integers()), max_size=200),
       st.lists(st.tuples(st.integers(-5, 30), st.integers()), max_size=200))
def test_group_tables_group_values_as_their_functions_would(left, right):
    from collections import defaultdict

    def tables(group):
        a = AggTable.combiner(_new, _append, _extend, group=group)
        b = AggTable.combiner(_new, _append, _extend, group=group)
        a.update(left)
        b.update(right)
        merged = AggTable(_extend, group=group)
        for t in (a, b):
            if group is None:  # tables of different modes: their pairs, as a reduce task folds them
                merged.update(t.items())
            else:
                merged.merge(t)
        return a, merged

    _, fast = tables(_Group)
    _, slow = tables(None)
    expected = defaultdict(list)
    for k, v in left + right:
        expected[k].append(v)
    assert fast.items() == slow.items() == [(k, _Group(v)) for k, v in expected.items()]
    assert all(type(v) is _Group for _, v in fast.items())
    # A pair's value (a group from another worker's frame) extends the key's group too.
    again = AggTable(_extend, group=_Group)
    again.update([(k, _Group([v])) for k, v in left])
    assert again.items() == [(k, _Group(v)) for k, v in _grouped(left).items()]


def _grouped(pairs):
    from collections import defaultdict

    out = defaultdict(list)
    for k, v in pairs:
        out[k].append(v)
    return out


def test_group_tables_merge_only_with_their_own_group_type():
    a = AggTable.combiner(_new, _append, _extend, group=_Group)
    assert a.can_merge(AggTable(_extend, group=_Group))
    assert not a.can_merge(AggTable(_extend))
    assert not a.can_merge(AggTable(_extend, group=list))
    with pytest.raises(TypeError, match="list type"):
        AggTable(_extend, group=dict)
    with pytest.raises(TypeError, match="list type"):
        AggTable.combiner(_new, _append, _extend, group=[])
    # A value that is not a list goes through the functions: their own error, not a crash.
    b = AggTable(_extend, group=_Group)
    b.update([(1, _Group([1]))])
    with pytest.raises(TypeError, match="not iterable"):
        b.update([(1, 5)])
