"""Stand-ins for well-known per-record functions answer exactly as the functions themselves."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream.errors import TaskFailedError
from pystream.known_functions import json_loads, stand_in

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)
SPACE = st.text(alphabet=" \t\n\r", max_size=3)


def outcome(f, s):
    """What f(s) gives, comparable across calls: the value's repr (NaN equals NaN, 1 differs from 1.0), or the
    exception's type and message."""
    try:
        return "value", repr(f(s))
    except Exception as exc:  # noqa: BLE001 - the very point: every error must be the same
        return "error", type(exc), str(exc)


@settings(max_examples=500, deadline=None)
@given(VALUES, SPACE, SPACE, st.sampled_from([None, 2]), st.booleans())
def test_json_loads_stand_in_matches_json_loads_on_every_document(value, before, after, indent, ascii_only):
    s = before + json.dumps(value, indent=indent, ensure_ascii=ascii_only) + after
    assert outcome(json_loads, s) == outcome(json.loads, s)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40) | st.text(alphabet='{}[]",:0123456789.eE+-tfrnulsaNIiy \n\\', max_size=40))
def test_json_loads_stand_in_matches_json_loads_on_any_text(s):
    assert outcome(json_loads, s) == outcome(json.loads, s)


class Line(str):
    pass


@pytest.mark.parametrize("s", [
    "", " ", "\ufeff{}", '{"a": 1} x', '{"a": 1}{"b": 2}', '{"a": 1}  ', "  [1, 2]", "[" * 100_000,
    "NaN", "-Infinity", '"\\ud800"', '{"a": 1, "a": 2}', "1e400", b'{"a": [1, 2.5, null]}',
    bytearray(b"[true]"), '\u00e9"', Line('{"sub": "class"}'), None, 12,
])
def test_json_loads_stand_in_matches_json_loads_on_edge_cases(s):
    assert outcome(json_loads, s) == outcome(json.loads, s)


def test_only_json_loads_itself_has_a_stand_in():
    assert stand_in(json.loads) is json_loads
    assert stand_in(str.split) is str.split
    keep_floats = lambda s: json.loads(s, parse_float=str)  # noqa: E731 - a user's variant, run as written
    assert stand_in(keep_floats) is keep_floats


def test_map_json_loads_gives_json_loads_results_and_errors(sc):
    lines = [json.dumps({"id": i, "tags": ["a", i / 3], "ok": i % 2 == 0}) for i in range(3000)]
    lines[17] = " " + lines[17] + "\n"
    assert sc.parallelize(lines, 2).map(json.loads).collect() == [json.loads(x) for x in lines]
    bad = sc.parallelize(['{"a": 1}', '{"a": 1,}'], 2).map(json.loads)
    with pytest.raises((json.JSONDecodeError, TaskFailedError)) as info:
        bad.collect()
    try:
        json.loads('{"a": 1,}')
    except json.JSONDecodeError as expected:
        assert str(expected) in str(info.value)
