"""Record frames: round-trips, buffers, and every way a frame can be corrupt."""

from __future__ import annotations

import enum
import math
import struct
import sys
from collections import namedtuple
from multiprocessing import shared_memory

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream import frames
from pystream.errors import CorruptFrameError, FrameOverflowError

H = frames.HEADER_SIZE
Point = namedtuple("Point", "x y")


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


class Custom:
    def __init__(self, a):
        self.a = a

    def __eq__(self, other):
        return type(other) is Custom and other.a == self.a


def same(a, b):
    """Equality that also checks types all the way down (1 == 1.0 == True otherwise)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items()) and all(
            same(k1, k2) for k1, k2 in zip(a, b)
        )
    return a == b


def roundtrip(records, **kw):
    out = frames.decode(frames.encode(records, **kw))
    assert same(out, list(records)), (out, records)
    return out


def resign(frame: bytearray) -> bytearray:
    """Recompute the checksum so a mutated payload reaches the structural parser."""
    struct.pack_into("<Q", frame, 32, xxhash.xxh64_intdigest(bytes(frame[H:])))
    return frame


def forged(payload: bytes, count: int, version: int = 1) -> bytes:
    """An uncompressed frame of ``payload``; version 1 by default, which every later version still reads."""
    header = struct.pack("<BBHQQQQ", version, 0, 0, count, len(payload), len(payload), 0)
    return bytes(resign(bytearray(frames.MAGIC + header + payload)))


SCALARS = [
    None, True, False, 0, 1, -1, 63, 64, -64, 2**31, -(2**31), 2**63 - 1, -(2**63),
    2**63, -(2**63) - 1, 2**64, -(2**64), 2**1000, -(2**1000), 0.0, -0.0, 1.5, float("inf"),
    float("-inf"), float("nan"), "", "a", "x" * 63, "x" * 64, "y" * 10_000, "héllo", "日本語",
    "astral \U0001f600 \U00010348", "\x00nul", b"", b"\x00\xff", bytes(range(256)) * 3,
    bytearray(b""), bytearray(b"abc"),
]


@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_scalar_roundtrip(value):
    roundtrip([value])
    roundtrip([(value, value), [value], {"k": value}])


def test_containers_and_nesting():
    roundtrip([])
    roundtrip([(), [], {}, ((),), [[]], {(): []}])
    roundtrip([tuple(range(15)), tuple(range(16)), list(range(15)), list(range(16)), list(range(1000))])
    roundtrip([{1: "a", "b": 2.0, (1, 2): [None, {"x": b"y"}], None: True, 2**70: bytearray(b"z")}])
    deep = []
    cur = deep
    for _ in range(frames.MAX_NESTING - 1):
        nxt = []
        cur.append(nxt)
        cur = nxt
    roundtrip([deep])


def test_repeated_strings_share_objects_and_shrink_frame():
    keys = [f"key{i % 10}" for i in range(1000)]
    out = roundtrip([(k, i) for i, k in enumerate(keys)])
    assert out[0][0] is out[10][0]
    assert len(frames.encode(keys, compress=False)) < sum(map(len, keys))


def test_decoded_tuples_of_atomic_values_skip_the_collector_and_cycles_are_still_collected():
    import gc
    import weakref

    recs = [("a", 1), ("b", [1]), ((1, 2), 3.5), ("k", {"a": 1}), (1, 2, 3, 4, 5, 6.0), (1, 2, 3, 4, 5, {})]
    out = frames.decode(frames.encode(recs))
    assert out == recs
    # Only tuples that can never be in a cycle are left untracked: an untracked dict may be tracked later.
    assert [gc.is_tracked(t) for t in out] == [False, True, False, True, False, True]

    class Box:
        pass

    record = frames.decode(frames.encode([("k", {"a": 1})]))[0]
    box = Box()
    box.record = record
    record[1]["box"] = box  # record -> dict -> box -> record
    ref = weakref.ref(box)
    del box, record
    gc.collect()
    assert ref() is None


def test_non_native_types_keep_their_type():
    out = roundtrip([Point(1, "a"), Color.GREEN, Custom([1, 2]), {"p": Point(2, 3)}, frozenset({1, 2}),
                     complex(1, 2)])
    assert type(out[0]) is Point and type(out[1]) is Color and out[1] is Color.GREEN


def test_str_and_int_subclasses_are_not_flattened():
    class S(str):
        pass

    class I(int):
        pass

    out = frames.decode(frames.encode([Color.RED, ("x", Color.RED)]))
    assert type(out[0]) is Color and type(out[1][1]) is Color
    with pytest.raises(TypeError, match="cannot encode"):  # local classes cannot be pickled
        frames.encode([S("a")])
    with pytest.raises(TypeError, match="cannot encode"):
        frames.encode([I(3)])


def test_lone_surrogate_str_roundtrips_via_pickle():
    roundtrip(["\ud800", ("a\udfffb",)])


def test_too_deep_and_cyclic_encode_raise():
    cyc = []
    cyc.append(cyc)
    with pytest.raises(ValueError, match="nested more than"):
        frames.encode([cyc])
    deep = ()
    for _ in range(frames.MAX_NESTING + 1):
        deep = (deep,)
    with pytest.raises(ValueError, match="nested more than"):
        frames.encode([deep])


def test_iterables_accepted():
    assert frames.decode(frames.encode(x * 2 for x in range(5))) == [0, 2, 4, 6, 8]
    assert frames.decode(frames.encode((1, "a"))) == [1, "a"]


@pytest.mark.parametrize("compress", [None, True, False])
def test_compress_modes(compress):
    small = [("k", i) for i in range(10)]
    big = [(f"key{i % 100}", i, "pad" * 10) for i in range(20_000)]
    for recs in (small, big, []):
        data = frames.encode(recs, compress=compress)
        assert frames.decode(data) == recs
        flags = data[5]
        if compress is False or recs is small and compress is None:
            assert flags == 0
        if recs is big and compress is not False:
            assert flags == 1
            assert len(data) < len(frames.encode(recs, compress=False))


def test_incompressible_payload_stays_uncompressed():
    import os

    recs = [os.urandom(100_000)]
    assert frames.encode(recs, compress=True)[5] == 0


def test_encode_into_bytearray_at_offset():
    recs = [("a", 1), ("b", [2.5, None]), {"k": b"v"}]
    expected = frames.encode(recs, compress=False)
    buf = bytearray(b"\xaa" * (len(expected) + 20))
    n = frames.encode_into(recs, buf, 7)
    assert n == len(expected)
    assert bytes(buf[7 : 7 + n]) == expected
    assert buf[:7] == b"\xaa" * 7 and buf[7 + n :] == b"\xaa" * 13
    assert frames.frame_length(buf, 7) == n
    assert frames.decode(memoryview(buf)[7 : 7 + n]) == recs


def test_encode_into_shared_memory():
    recs = [(f"key{i % 7}", i) for i in range(1000)]
    shm = shared_memory.SharedMemory(create=True, size=1 << 16)
    try:
        n = frames.encode_into(recs, shm.buf, 100)
        length = frames.frame_length(shm.buf, 100)
        assert length == n
        view = shm.buf[100 : 100 + length]
        try:
            assert frames.frame_count(view) == 1000
            assert frames.decode(view) == recs
        finally:
            view.release()
    finally:
        shm.close()
        shm.unlink()


@pytest.mark.parametrize("room", [0, 10, H - 1, H, H + 5])
def test_encode_into_overflow_never_writes_past_end(room):
    recs = [("x" * 50, i) for i in range(20)]
    backing = bytearray(b"\x55" * (room + 64))
    target = memoryview(backing)[:room]
    with pytest.raises(FrameOverflowError, match="available"):
        frames.encode_into(recs, target, 0)
    target.release()
    assert backing[room:] == b"\x55" * 64


def test_encode_into_exact_fit_and_bad_args():
    recs = [1, "two", 3.0]
    n = len(frames.encode(recs, compress=False))
    buf = bytearray(n)
    assert frames.encode_into(recs, buf) == n
    assert frames.decode(buf) == recs
    with pytest.raises(FrameOverflowError):
        frames.encode_into(recs, bytearray(n - 1))
    with pytest.raises(ValueError, match="offset"):
        frames.encode_into(recs, bytearray(100), 101)
    with pytest.raises((TypeError, BufferError)):
        frames.encode_into(recs, b"\x00" * 100)


def test_decode_buffers_without_copy():
    recs = [("a", 1), ("b", 2)]
    data = frames.encode(recs)
    arr = np.frombuffer(data, dtype=np.uint8).copy()
    assert frames.decode(arr) == recs
    assert frames.decode(memoryview(data)) == recs
    assert frames.decode(bytearray(data)) == recs
    padded = b"zz" + data + b"zz"
    assert frames.decode(memoryview(padded)[2:-2]) == recs
    assert frames.frame_length(padded, 2) == len(data)
    assert frames.frame_count(data) == 2


def test_header_layout():
    data = frames.encode([1, 2, 3], compress=False)
    magic, ver, flags, res, count, stored, raw, cks = struct.unpack_from("<4sBBHQQQQ", data)
    assert (magic, ver, flags, res, count, stored, raw) == (b"PSRF", 2, 0, 0, 3, len(data) - H, len(data) - H)
    assert frames.FORMAT_VERSION == 2
    assert cks == xxhash.xxh64_intdigest(data[H:])


# ------------------------------------------------------------------------------------------ corruption

def corrupt(data, match):
    with pytest.raises(CorruptFrameError, match=match):
        frames.decode(data)


@pytest.fixture
def frame():
    return bytearray(frames.encode([("a", 1), ("bb", [2, 3.0]), None], compress=False))


def test_bad_magic(frame):
    frame[0] ^= 1
    corrupt(frame, "bad magic")
    with pytest.raises(CorruptFrameError, match="bad magic"):
        frames.frame_length(frame)


def test_bad_version(frame):
    frame[4] = 9
    corrupt(frame, "version 9 is not supported .*versions 1 to 2")
    frame[4] = 0
    corrupt(frame, "version 0")


def test_version_1_frames_still_decode(frame):
    # Version 2 only added the end-of-string-table tag: a frame from a version 1 build (a checkpoint, a
    # write-ahead log) reads as it always did.
    expected = frames.decode(frame)
    frame[4] = 1
    assert frames.decode(frame) == expected


@pytest.mark.parametrize("bit", range(1, 8))
def test_unknown_flag_bit(frame, bit):
    frame[5] |= 1 << bit
    corrupt(frame, "unknown flag bits")
    with pytest.raises(CorruptFrameError, match="unknown flag bits"):
        frames.frame_count(frame)


def test_reserved_nonzero(frame):
    frame[7] = 1
    corrupt(frame, "reserved")


def test_checksum(frame):
    frame[-1] ^= 0x40
    corrupt(frame, "checksum mismatch")


def test_truncated_at_every_length(frame):
    for n in range(len(frame)):
        with pytest.raises(CorruptFrameError, match="shorter than|truncated"):
            frames.decode(bytes(frame[:n]))


def test_trailing_bytes(frame):
    corrupt(bytes(frame) + b"\x00", "trailing")


def test_uncompressed_length_mismatch(frame):
    struct.pack_into("<Q", frame, 24, len(frame) - H + 1)
    corrupt(frame, "uncompressed length")


def test_forged_record_count(frame):
    struct.pack_into("<Q", frame, 8, 10**18)
    corrupt(frame, "record count")
    struct.pack_into("<Q", frame, 8, 4)  # plausible count, but only three records present
    corrupt(frame, "payload ends|truncated")
    struct.pack_into("<Q", frame, 8, 2)
    corrupt(frame, "left after the last")


def test_forged_list_count():
    corrupt(forged(b"\x0a" + b"\xff" * 8 + b"\x7f", 1), "list of .* items cannot fit")
    corrupt(forged(b"\x09\x80\x80\x80\x80\x80\x80\x80\x80\x01", 1), "tuple of .* items cannot fit")
    corrupt(forged(b"\x0b\x05\x00\x00", 1), "dict of 5 items cannot fit")


def test_forged_string_length():
    corrupt(forged(b"\x06\xa0\x1f" + b"abc", 1), "string length 4000 exceeds the 3 bytes left")
    corrupt(forged(b"\x85ab", 1), "string length 5 exceeds the 2 bytes left")


def test_bad_varint_and_tag_and_utf8_and_strref():
    corrupt(forged(b"\x03" + b"\xff" * 10 + b"\x01", 1), "bad int")
    corrupt(forged(b"\xc5", 1), "unknown value tag 0xc5")
    corrupt(forged(b"\x0f", 1), "unknown value tag 0x0f")
    corrupt(forged(b"\x82\xc3\x28", 1), "not valid UTF-8")
    corrupt(forged(b"\x83\xed\xa0\x80", 1), "not valid UTF-8")  # an encoded surrogate
    corrupt(forged(b"\x0d\x00", 1), "string reference #0")
    corrupt(forged(b"\x81a\x0d\x01", 2), "string reference #1")
    assert frames.decode(forged(b"\x81a\x0d\x00", 2)) == ["a", "a"]


def test_flat_tuples_and_other_records_keep_one_string_table():
    # Tuples of scalars decode on a fast path of their own; the literals it adds to the string table must
    # stay in step with the generic decoder's, in whatever order the two kinds of records come.
    records = [
        ("a", 1), [("b", 2.5)], ("b", "a", None, True), ("c", "c"), ("é", "a"), ("a", -(2**40), False),
        ("", 0), ({"x": 1}, "c"), ("c", "b"), (2**70, "d"), ("d", "e" * 64), ("e" * 64, "d"), ("f",),
        ("g", "h", "i", "j", "k"), ("k", "j"), (), ("x", float("-inf"), 63, 64),
    ]
    out = roundtrip(records)
    assert out[0][0] is out[2][1] is out[4][1]  # every "a" is one object
    assert out[3][0] is out[3][1] is out[7][1] is out[8][0]
    assert out[9][1] is out[10][0] is out[11][1]


def test_flat_tuples_that_are_malformed_fail_as_any_record():
    # A tuple of two scalars whose second item is damaged: the error names the record and what is wrong.
    good = b"\x22\x81a\x41"
    corrupt(forged(good + b"\x22\x0d\x05\x41", 2), "record 1 .*string reference #5 but only 1")
    corrupt(forged(good + b"\x22\x0d\x00", 2), "record 1 .*payload ends where a value was expected")
    corrupt(forged(good + b"\x22\x03" + b"\xff" * 10, 2), "record 1 .*bad int")
    corrupt(forged(good + b"\x22\x05\x00\x00", 2), "record 1 .*float")
    corrupt(forged(good + b"\x22\x85ab", 2), "record 1 .*string length 5 exceeds")
    corrupt(forged(good + b"\x22\x41\xc5", 2), "record 1 .*unknown value tag 0xc5")
    # A reference to a literal of the same record; and a literal read before the fast path met a value it
    # leaves to the generic decoder (bytes), which joins the table once, not twice.
    assert frames.decode(forged(b"\x22\x81a\x0d\x00", 1)) == [("a", "a")]
    assert frames.decode(forged(b"\x22\x81b\x07\x01z" + b"\x22\x0d\x00\x40", 2)) == [("b", b"z"), ("b", 0)]
    corrupt(forged(b"\x22\x81b\x07\x01z" + b"\x22\x0d\x01\x40", 2), "record 1 .*string reference #1 but only 1")


def test_string_table_end_tag():
    # PS_TAG_STRTAB_END (0x0e) prefixes a value: literals before it stay referable, later ones are not kept.
    assert frames.decode(forged(b"\x81a\x0e\x81b\x0d\x00", 3, 2)) == ["a", "b", "a"]
    corrupt(forged(b"\x81a\x0e\x81b\x0d\x01", 3, 2), "record 2 .*string reference #1 but only 1")
    # Inside a tuple of scalars (the fast path hands it to the generic decoder), and before a whole record.
    assert frames.decode(forged(b"\x22\x81a\x0e\x81b" + b"\x22\x0d\x00\x41", 2, 2)) == [("a", "b"), ("a", 1)]
    corrupt(forged(b"\x22\x81a\x0e\x81b" + b"\x22\x0d\x01\x41", 2, 2), "record 1 .*string reference #1 but only 1")
    assert frames.decode(forged(b"\x81a" + b"\x0e\x22\x81b\x0d\x00", 2, 2)) == ["a", ("b", "a")]
    # Once per frame, and always before a value.
    corrupt(forged(b"\x0e\x81a\x0e\x81b", 2, 2), "record 1 .*string table ends a second time")
    corrupt(forged(b"\x81a\x0e", 1, 2), "1 payload bytes left after the last of 1 records")
    corrupt(forged(b"\x81a\x0e", 2, 2), "record 1 .*payload ends where a value was expected")


def test_unique_strings_end_the_table_so_a_reader_keeps_none_of_them():
    # Text lines hardly ever repeat: after its trial the encoder stops looking them up and says so, once.
    lines = [f"line {i} of a text that does not repeat" for i in range(20_000)]
    data = frames.encode(lines, compress=False)
    assert data[H:].count(b"\x0e") == 1
    assert frames.decode(data) == lines
    # A reader that decodes a chunk at a time holds no line it has handed out (the table would, otherwise:
    # a map task's whole input alive until its last record).
    reader = frames.FrameReader(data)
    chunks = [reader.next_chunk(1000) for _ in range(20)]
    assert [x for c in chunks for x in c] == lines
    last = chunks[-1][-1]
    del chunks
    assert sys.getrefcount(last) == 2  # this name and the call's argument
    reader.close()
    # Repeated strings keep the table (and the sharing) for the whole frame.
    keys = [(f"k{i % 500}", i) for i in range(20_000)]
    data = frames.encode(keys, compress=False)
    out = frames.decode(data)
    assert out == keys and out[0][0] is out[500][0] is out[19_500][0]


def test_a_table_of_long_strings_ends_after_4096_and_one_of_short_keys_waits_for_their_repeats():
    def literals_before_the_end(data):
        reader_view = data[H:]
        return reader_view[:reader_view.index(b"\x0e")].count(b"text")

    # Text: 4096 lines probed, not a quarter of them (the reader would keep every line read before the end).
    lines = [f"text line {i} of forty and more bytes, no repeat" for i in range(100_000)]
    data = frames.encode(lines, compress=False)
    assert literals_before_the_end(data) == 4095 and frames.decode(data) == lines  # the end precedes the 4096th
    # Short lines: the quarter-frame trial, as for keys.
    short = [f"text {i}" for i in range(100_000)]
    assert literals_before_the_end(frames.encode(short, compress=False)) == 24_999
    # Identifiers cycling through 6,000 values: no repeat among the first 4096, and still shared after.
    keys = [(f"user-{i % 6000}", i) for i in range(40_000)]
    data = frames.encode(keys, compress=False)
    out = frames.decode(data)
    assert out == keys and out[6000][0] is out[0][0] and out[39_999][0] is out[3999][0]


def test_reader_names_the_failing_record_by_its_place_in_the_frame():
    frame = forged(b"\x22\x81a\x41" + b"\x22\x0d\x00\x41" * 699 + b"\x22\x0d\x09\x41", 701)
    reader = frames.FrameReader(frame)
    assert len(reader.next_chunk(300)) == 300
    assert len(reader.next_chunk(300)) == 300
    with pytest.raises(CorruptFrameError, match="record 700 .*string reference #9"):
        reader.next_chunk(300)


def test_bad_embedded_pickle_and_dict_key():
    corrupt(forged(b"\x0c\x03abc", 1), "embedded pickle")
    with pytest.raises(CorruptFrameError) as info:
        frames.decode(forged(b"\x0c\x03abc", 1))
    assert info.value.__cause__ is not None
    corrupt(forged(b"\x0b\x01\x30\x40", 1), "dict key of type list")


def test_forged_huge_uncompressed_length():
    data = bytearray(frames.encode([("k" * 100, i) for i in range(2000)], compress=True))
    assert data[5] == 1
    struct.pack_into("<Q", data, 24, 1 << 60)
    corrupt(data, "implausible")
    struct.pack_into("<Q", data, 24, (len(data) - H) * 200)  # plausible but wrong
    corrupt(data, "decompress")


def test_lz4_garbage_payload():
    payload = b"\xff" * 50
    data = bytearray(frames.MAGIC + struct.pack("<BBHQQQQ", 1, 1, 0, 1, len(payload), 1000, 0) + payload)
    corrupt(resign(data), "decompress")


def test_forged_deep_nesting():
    depth = frames.MAX_NESTING + 5
    corrupt(forged(b"\x31" * depth + b"\x30", 1), "nested more than")
    corrupt(forged(b"\x0a\x01" * 100_000 + b"\x00", 1), "nested more than")


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        frames.decode(b"nope")


# ------------------------------------------------------------------------------------------ properties

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True)
    | st.text()
    | st.binary()
    | st.binary().map(bytearray)
)
hashables = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda c: st.lists(c, max_size=4).map(tuple),
    max_leaves=8,
)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=6)
    | st.lists(c, max_size=20).map(tuple)
    | st.dictionaries(hashables, c, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(values, max_size=10), st.sampled_from([None, True, False]))
def test_property_roundtrip(records, compress):
    roundtrip(records, compress=compress)


@settings(max_examples=100, deadline=None)
@given(st.lists(values, max_size=10), st.integers(min_value=0, max_value=50))
def test_property_encode_into_matches_encode(records, offset):
    expected = frames.encode(records, compress=False)
    buf = bytearray(offset + len(expected))
    assert frames.encode_into(records, buf, offset) == len(expected)
    assert bytes(buf[offset:]) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(values, max_size=30), st.sampled_from([None, True, False]), st.integers(1, 7))
def test_property_reader_chunks_match_decode(records, compress, size):
    frame = frames.encode(records, compress=compress)
    reader = frames.FrameReader(frame)
    assert len(reader) == len(records)
    chunks = []
    while chunk := reader.next_chunk(size):
        assert len(chunk) <= size
        chunks.append(chunk)
    # Compared as frames: NaN != NaN, but the same NaN encodes alike.
    assert frames.encode([r for c in chunks for r in c], compress=False) == frames.encode(records, compress=False)
    assert reader.remaining == 0 and reader.next_chunk(size) == []


def test_reader_reads_a_span_iterates_and_refuses_after_close():
    records = [(f"k{i % 10}", i) for i in range(5000)]
    frame = frames.encode(records, compress=True)
    buf = bytearray(b"x" * 7 + frame + b"y" * 5)
    reader = frames.FrameReader(buf, 7, len(frame))
    assert list(reader) == records
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.next_chunk()
    view = memoryview(bytearray(frames.encode(records, compress=False)))
    reader = frames.FrameReader(view)
    assert reader.next_chunk(10) == records[:10]
    with pytest.raises(BufferError):
        view.release()  # the reader of an uncompressed frame still holds the memory...
    reader.close()
    view.release()  # ...until it is closed
    with pytest.raises(ValueError, match="outside"):
        frames.FrameReader(frame, 10, len(frame))
    with pytest.raises(ValueError, match="positive"):
        frames.FrameReader(frame).next_chunk(0)


def test_reader_iterator_knows_exactly_how_many_records_remain():
    import operator

    records = [(f"k{i % 10}", i) for i in range(1000)]
    reader = frames.FrameReader(frames.encode(records))
    assert reader.next_chunk(100) == records[:100]  # read past directly: the iterator starts after them
    it = iter(reader)
    assert operator.length_hint(it) == 900
    assert [next(it) for _ in range(300)] == records[100:400]
    assert operator.length_hint(it) == 600
    assert list(it) == records[400:]
    assert operator.length_hint(it) == 0
    with pytest.raises(StopIteration):
        next(it)


def test_reader_checks_the_frame_up_front():
    frame = bytearray(frames.encode([("a", 1)] * 100, compress=False))
    frame[-1] ^= 0xFF
    with pytest.raises(CorruptFrameError, match="checksum"):
        frames.FrameReader(frame)


# -- FrameWriter ------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=12), st.integers(min_value=0, max_value=100))
def test_property_frame_writer_is_encode(records, expected):
    w = frames.FrameWriter(expected)
    half = len(records) // 2
    for r in records[:half]:
        w.append(r)
    assert same(frames.decode(w.getvalue()), records[:half])  # readable midway, and again later
    w.extend(records[half:])
    assert w.getvalue() == frames.encode(records, compress=False)
    assert (w.count, len(w)) == (len(records), len(w.getvalue()))


def test_frame_writer_leaves_a_failed_record_out_whole():
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    w = frames.FrameWriter()
    w.append(("key-a", 1))
    with pytest.raises(TypeError, match="pickling it failed"):
        w.append(("key-b", "key-c", [1, 2, Unpicklable()]))  # fails after writing two new strings
    w.extend([("key-b", 2), ("key-c", 3), ("key-a", 4), ("key-b", 5)])
    assert frames.decode(w.getvalue()) == [("key-a", 1), ("key-b", 2), ("key-c", 3), ("key-a", 4), ("key-b", 5)]
    assert w.count == 5


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=12))
def test_property_frame_writer_without_a_string_table_holds_the_same_records(records):
    # No string is referenced: each is stored where it occurs, and the frame says so before its first record.
    w = frames.FrameWriter(len(records), strings=False)
    w.extend(records)
    data = w.getvalue()
    assert same(frames.decode(data), records) and w.count == len(records)
    assert data[frames.HEADER_SIZE:frames.HEADER_SIZE + 1] == (b"\x0e" if records else b"")


def test_frame_writer_without_a_string_table_leaves_a_failed_first_record_out_whole():
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    w = frames.FrameWriter(strings=False)
    with pytest.raises(TypeError, match="pickling it failed"):
        w.append(("key-a", [Unpicklable()]))
    assert frames.decode(w.getvalue()) == []  # not even the table's end is left behind
    w.extend([("key-a", 1), ("key-a", 2)])
    assert frames.decode(w.getvalue()) == [("key-a", 1), ("key-a", 2)]
    assert w.getvalue().count(b"key-a") == 2  # repeated, not referenced


def test_frame_writer_write_into():
    recs = [(f"k{i % 9}", i) for i in range(1_000)]
    w = frames.FrameWriter()
    w.extend(recs)
    buf = bytearray(len(w) + 10)
    assert w.write_into(buf, 10) == len(w)
    assert frames.decode(bytes(buf[10:])) == recs
    with pytest.raises(FrameOverflowError):
        w.write_into(bytearray(len(w) - 1))
    with pytest.raises(ValueError, match="outside"):
        w.write_into(buf, len(buf) + 1)
    with pytest.raises(BufferError):
        w.write_into(b"read-only" * 1000)


class _Flaky:
    """A record whose unpickling fails while ``fail`` is set (a passing reason: a resource not there yet)."""

    fail = True

    def __reduce__(self):
        return (_make_flaky, ())


def _make_flaky():
    if _Flaky.fail:
        raise OSError("not yet")
    return "flaky-ok"


def test_a_chunk_that_fails_is_not_half_read():
    frame = frames.encode(["s1", 10, "s2", _Flaky(), "s1", 14])  # short strings: the table is read again
    reader = frames.FrameReader(frame)
    _Flaky.fail = True
    try:
        assert reader.next_chunk(2) == ["s1", 10]
        with pytest.raises(CorruptFrameError, match="not yet"):
            reader.next_chunk(2)
        assert reader.remaining == 4
        _Flaky.fail = False
        assert reader.next_chunk(3) == ["s2", "flaky-ok", "s1"]
        assert reader.next_chunk(3) == [14] and reader.remaining == 0
    finally:
        _Flaky.fail = True


def test_immutable_records_tells_records_nothing_can_change():
    from pystream._core.serialisation import immutable_records

    assert immutable_records([])
    assert immutable_records(["a", b"b", 1, 2**70, 1.5, True, None, 1j, ("k", (1, (2.0, ("x",))))])
    for changeable in ([1], {"a": 1}, {1}, bytearray(b"x"), ("k", [1]), frozenset([1]), (((((1,),),),),)):
        assert not immutable_records(["a", changeable])

    class Text(str):
        pass

    assert not immutable_records([Text("a")])  # a subclass may carry changeable attributes
