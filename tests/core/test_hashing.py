import datetime as dt
import os
import random
import subprocess
import sys
from decimal import Decimal

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream import portable_hash
from pystream.hashing import xxh64


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**63 + 12345, 2**64 - 1])
def test_xxh64_bit_exact_every_length(seed):
    rng = random.Random(seed)
    for n in range(1025):
        data = rng.randbytes(n)
        assert xxh64(data, seed) == xxhash.xxh64_intdigest(data, seed), n


@given(st.binary(max_size=4096), st.integers(0, 2**64 - 1))
def test_xxh64_property(data, seed):
    assert xxh64(data, seed) == xxhash.xxh64_intdigest(data, seed)


def test_xxh64_accepts_buffers():
    data = bytes(range(256)) * 3
    expected = xxhash.xxh64_intdigest(data)
    assert xxh64(bytearray(data)) == expected
    assert xxh64(memoryview(data)) == expected
    assert xxh64(memoryview(data)[10:50]) == xxhash.xxh64_intdigest(data[10:50])
    assert xxh64("héllo") == xxhash.xxh64_intdigest("héllo".encode())
    import numpy as np

    assert xxh64(np.frombuffer(data, dtype=np.uint32)) == expected
    with pytest.raises(TypeError):
        xxh64(12)
    with pytest.raises(OverflowError):
        xxh64(b"x", -1)


def test_numeric_keys_agree():
    assert portable_hash(1) == portable_hash(1.0) == portable_hash(True)
    assert portable_hash(0) == portable_hash(0.0) == portable_hash(-0.0) == portable_hash(False)
    assert portable_hash(2**70) == portable_hash(float(2**70))
    assert portable_hash(-(2**63)) == portable_hash(float(-(2**63)))
    assert portable_hash(2**63) == portable_hash(float(2**63))
    assert portable_hash(float("nan")) == portable_hash(-float("nan"))
    assert portable_hash(1.5) != portable_hash(1)
    assert portable_hash((1, "a")) == portable_hash((1.0, "a")) == portable_hash((True, "a"))


def test_equal_numbers_of_any_type_hash_equally():
    # Equal keys share a partition whatever their types, as a dict puts them together (5 == np.int64(5)).
    from fractions import Fraction

    import numpy as np

    equal = [(5, np.int64(5)), (5, np.uint8(5)), (1, Decimal(1)), (0.5, Fraction(1, 2)), (2, complex(2, 0)),
             (True, np.bool_(True)), (1.5, np.float32(1.5)), (Decimal("0.1"), Fraction(1, 10)),
             (float("nan"), np.float64("nan")), (2**70, Decimal(2**70)), (complex(1, 2), np.complex128(1 + 2j)),
             (-3, Fraction(-6, 2)), (0, np.float16(-0.0))]
    for a, b in equal:
        assert a == b or (a != a and b != b)
        assert portable_hash(a) == portable_hash(b), (a, b)
    assert portable_hash(Decimal("0.1")) != portable_hash(0.1)  # not equal: 0.1 is not exactly a tenth
    assert portable_hash(Fraction(1, 3)) != portable_hash(1 / 3)


def test_a_str_subclass_hashes_its_characters_not_its_str():
    class Shouty(str):
        def __str__(self):
            return self.upper()

        def encode(self, *args):
            return b"other"

    assert portable_hash(Shouty("abc")) == portable_hash("abc")
    assert portable_hash(Shouty("\ud800")) == portable_hash("\ud800")


def test_keys_nested_too_deep_raise_instead_of_crashing():
    from pystream.errors import KeyTooDeepError

    for wrap in (lambda k: (k,), lambda k: frozenset([k]), lambda k: (1, k)):
        key = 0
        for _ in range(999):
            key = wrap(key)
        assert portable_hash(key) == portable_hash(key)
        for _ in range(30_000):
            key = wrap(key)
        with pytest.raises(KeyTooDeepError, match="nested more than 1000 deep") as err:
            portable_hash(key)
        assert isinstance(err.value, RecursionError)
    assert portable_hash((1, (2, 3))) == portable_hash((1, (2, 3)))  # the depth count came back to zero


def test_kinds_do_not_collide_by_construction():
    values = [None, 0, 1, "1", b"1", (1,), ("1",), frozenset([1]), 1.5, "", b"", ()]
    hashes = [portable_hash(v) for v in values]
    assert len(set(hashes)) == len(values)


def test_subclasses_hash_like_their_base():
    class S(str):
        pass

    class I(int):
        pass

    assert portable_hash(S("abc")) == portable_hash("abc")
    assert portable_hash(I(7)) == portable_hash(7)
    assert portable_hash(bytearray(b"xy")) == portable_hash(b"xy")


def test_other_types():
    assert portable_hash(frozenset([1, 2, 3])) == portable_hash(frozenset([3, 2, 1]))
    assert portable_hash(dt.date(2024, 1, 2)) == portable_hash(dt.date(2024, 1, 2))
    assert portable_hash(dt.datetime(2024, 1, 2, 3, 4, 5)) != portable_hash(dt.date(2024, 1, 2))
    aware = dt.datetime(2024, 1, 2, 12, tzinfo=dt.timezone.utc)
    other = dt.datetime(2024, 1, 2, 13, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert aware == other and portable_hash(aware) == portable_hash(other)
    assert portable_hash(dt.timedelta(days=1)) == portable_hash(dt.timedelta(hours=24))
    assert portable_hash("\ud800") == portable_hash("\ud800")  # lone surrogate still hashes
    assert isinstance(portable_hash(Decimal("1.5")), int)
    with pytest.raises(TypeError):
        portable_hash([1, 2])


key_strategy = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.tuples(children, children) | st.lists(children, max_size=4).map(tuple),
    max_leaves=10,
)


@given(key_strategy, key_strategy)
def test_equal_keys_hash_equally(a, b):
    if a == b:
        assert portable_hash(a) == portable_hash(b)
    assert 0 <= portable_hash(a) < 2**64


@settings(max_examples=50)
@given(st.integers(-(2**200), 2**200))
def test_int_and_integral_float(n):
    f = float(n)
    if f == n:
        assert portable_hash(f) == portable_hash(n)


def test_stable_across_processes_and_hash_seeds():
    keys = ["alpha", "βeta", b"raw", 42, -7, 3.25, None, ("a", 1), 2**80]
    here = [portable_hash(k) for k in keys]
    code = (
        "from pystream import portable_hash;"
        f"print([portable_hash(k) for k in {keys!r}])"
    )
    for seed in ("0", "1", "random"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert eval(out.stdout) == here
