"""The numpy group-by-sums against plain-Python references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream._core.groupby import sum_by_key_f64, sum_by_key_i64

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


def np_reference(keys, values):
    d = {}
    for k, v in zip(keys.tolist(), values.tolist()):
        d[k] = d[k] + v if k in d else v
    return list(d.keys()), list(d.values())


@settings(max_examples=100, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(-3, 3) | st.integers(I64_MIN, I64_MAX), st.integers(I64_MIN, I64_MAX) | st.integers(-5, 5)),
        max_size=60,
    )
)
def test_sum_by_key_i64_matches_python(data):
    keys = np.array([k for k, _ in data], dtype=np.int64)
    values = np.array([v for _, v in data], dtype=np.int64)
    uk, sums = sum_by_key_i64(keys, values)
    rk, rs = np_reference(keys, values)
    assert uk.dtype == np.int64 and uk.tolist() == rk
    assert sums.tolist() == rs
    if all(I64_MIN <= s <= I64_MAX for s in rs):
        assert sums.dtype == np.int64
    else:
        assert sums.dtype == object and all(type(s) is int for s in sums)


def test_sum_by_key_i64_overflow_and_edges():
    keys = np.array([1, 2, 1, 1], dtype=np.int64)
    values = np.array([I64_MAX, 5, I64_MAX, I64_MAX], dtype=np.int64)
    uk, sums = sum_by_key_i64(keys, values)
    assert uk.tolist() == [1, 2] and sums.dtype == object and sums.tolist() == [3 * I64_MAX, 5]
    uk, sums = sum_by_key_i64(np.array([7, 7], np.int64), np.array([I64_MIN, I64_MIN], np.int64))
    assert sums.tolist() == [2 * I64_MIN]
    uk, sums = sum_by_key_i64(np.empty(0, np.int64), np.empty(0, np.int64))
    assert uk.shape == (0,) and sums.shape == (0,) and sums.dtype == np.int64
    # Non-contiguous input is accepted.
    k = np.arange(20, dtype=np.int64)[::2] % 3
    v = np.arange(10, dtype=np.int64)
    assert sum_by_key_i64(k, v)[1].tolist() == np_reference(k, v)[1]
    n = 300_000
    k = (np.arange(n, dtype=np.int64) * 7919) % 50_021
    v = np.arange(n, dtype=np.int64)
    uk, sums = sum_by_key_i64(k, v)
    rk, rs = np_reference(k, v)
    assert uk.tolist() == rk and sums.tolist() == rs


def test_sum_by_key_argument_errors():
    k = np.zeros(3, np.int64)
    with pytest.raises(TypeError, match="dtype"):
        sum_by_key_i64(k, np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="dtype"):
        sum_by_key_i64(np.zeros(3, np.float64), k)
    with pytest.raises(TypeError, match="ndarray"):
        sum_by_key_i64([1, 2, 3], k)
    with pytest.raises(ValueError, match="1-D"):
        sum_by_key_i64(np.zeros((3, 1), np.int64), np.zeros((3, 1), np.int64))
    with pytest.raises(ValueError, match="length"):
        sum_by_key_i64(k, np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="dtype"):
        sum_by_key_f64(k, k)
    with pytest.raises(TypeError, match="dtype"):
        sum_by_key_i64(k.astype(">i8"), k)


@settings(max_examples=100, deadline=None)
@given(data=st.lists(st.tuples(st.integers(-3, 3), st.floats(allow_nan=True)), max_size=60))
def test_sum_by_key_f64_matches_python(data):
    keys = np.array([k for k, _ in data], dtype=np.int64)
    values = np.array([v for _, v in data], dtype=np.float64)
    uk, sums = sum_by_key_f64(keys, values)
    rk, rs = np_reference(keys, values)
    assert uk.tolist() == rk
    assert [repr(s) for s in sums.tolist()] == [repr(s) for s in rs]
    assert sums.dtype == np.float64
    assert all(math.isnan(a) == math.isnan(b) for a, b in zip(sums.tolist(), rs))
