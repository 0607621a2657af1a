"""Fuzzing the frame decoder: any input either decodes or raises CorruptFrameError, nothing else."""

from __future__ import annotations

import operator
import os
import struct

import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pystream import frames
from pystream._core.aggregation import AggTable
from pystream.errors import CorruptFrameError

H = frames.HEADER_SIZE
# The structural fuzz (payloads re-signed so they pass the checksum) runs the 10,000 cases CI requires; the
# other kinds share a smaller budget so the suite stays within its time limit. PYSTREAM_FUZZ_SCALE multiplies both.
_SCALE = float(os.environ.get("PYSTREAM_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=int(2_000 * _SCALE), deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_FULL = settings(max_examples=int(10_000 * _SCALE), deadline=None, suppress_health_check=list(HealthCheck))

SEEDS = [
    frames.encode([], compress=False),
    frames.encode([("key1", 1), ("key2", -2), ("key1", 3)], compress=False),
    frames.encode([None, True, False, 2**70, -(2**65), 1.5, "héllo", "x" * 70, b"\x00\x01", bytearray(b"ab")],
                  compress=False),
    frames.encode([(1, [2, (3, {"a": [4.0, None]})]), {"k": ("v", "v", "v")}, list(range(20)), tuple(range(17))],
                  compress=False),
    frames.encode([frozenset({1}), complex(1, 2)], compress=False),  # embedded pickles
    frames.encode([("k" * 40, i) for i in range(300)], compress=True),  # lz4 payload
]


def _version_2_frame(payload: bytes, count: int) -> bytes:
    return frames.MAGIC + struct.pack("<BBHQQQQ", 2, 0, 0, count, len(payload), len(payload),
                                      xxhash.xxh64_intdigest(payload)) + payload


# The end of the string table (tag 0x0e), which the encoder writes only after thousands of unique strings:
# "a", then ("b", "a") with the table ended before it, then ("a", 1).
SEEDS.append(_version_2_frame(b"\x81a" + b"\x0e\x22\x81b\x0d\x00" + b"\x22\x0d\x00\x41", 3))
assert frames.decode(SEEDS[-1]) == ["a", ("b", "a"), ("a", 1)]


# Text lines for the word counter that reads a frame's str records in place: short literals (numbered for
# references), long ones, a repeat (a reference), non-ASCII, blank, and lines that are not str.
LINES_SEED = frames.encode(["to be or", "x" * 70 + " y\tz", "héllo wörld", "", "  a  b ", "to be or", 7, ("t",)],
                           compress=False)
SEEDS.append(LINES_SEED)
SEEDS.append(_version_2_frame(b"\x83a b" + b"\x0e\x83c a" + b"\x06\x03d e", 3))
assert frames.decode(SEEDS[-1]) == ["a b", "c a", "d e"]


# (str, int) pairs for the table that folds them from a frame's bytes: with no string table (as a map task's
# buckets are written), and with the table's end inside a pair, before its key.
_pairs = frames.FrameWriter(strings=False)
_pairs.extend([("ab", 1), ("x" * 70, -5), ("ab", 2**40), ("é", 3), ("ab", "s"), (1, 2), ("c", 1.5)])
PAIRS_SEED = _pairs.getvalue()
SEEDS.append(PAIRS_SEED)
SEEDS.append(_version_2_frame(b"\x22\x81a\x41" + b"\x22\x0e\x81b\x03\x07" + b"\x22\x0d\x00\x42", 3))
assert frames.decode(SEEDS[-1]) == [("a", 1), ("b", -4), ("a", 2)]


def folded_pairs(records) -> tuple:
    """update() of records (a list, or a FrameReader it folds in place): the items, or the error's type."""
    table = AggTable(operator.add)
    try:
        table.update(records)
    except Exception as e:  # noqa: BLE001 - a record that is not a pair, or a value + cannot add
        return (type(e),)
    return ("ok", [(repr(k), repr(v)) for k, v in table.items()])


def counted_words(lines) -> tuple:
    """count_words of lines (a list, or a FrameReader it reads in place): its items, or the error's type."""
    table = AggTable(operator.add)
    try:
        table.count_words(lines)
    except Exception as e:  # noqa: BLE001 - a record without split(), or one whose split() gives bytes
        return (type(e),)
    return ("ok", table.items())


def read_in_chunks(data, size: int) -> list:
    reader = frames.FrameReader(data)
    out: list = []
    while chunk := reader.next_chunk(size):
        out += chunk
    reader.close()
    return out


def check(data) -> None:
    try:
        expected = frames.decode(data)
    except CorruptFrameError:
        expected = None
    # The chunked reader accepts exactly what decode accepts, and gives the same records.
    try:
        got = read_in_chunks(data, 3)
    except CorruptFrameError:
        got = None
    assert (got is None) == (expected is None)
    if got is not None:
        assert frames.encode(got, compress=False) == frames.encode(expected, compress=False)
    # Counting words straight from the frame reads the same records: the same counts, or the same error.
    try:
        reader = frames.FrameReader(data)
    except CorruptFrameError:
        assert expected is None
    else:
        in_place = counted_words(reader)
        if expected is None:
            # A corrupt frame never gives counts (a record that is not text may fail it before the corruption).
            assert in_place[0] != "ok"
        else:
            assert in_place == counted_words(expected)
        in_place = folded_pairs(frames.FrameReader(data))
        if expected is None:
            assert in_place[0] != "ok"
        else:
            assert in_place == folded_pairs(expected)
    for fn in (frames.frame_count, frames.frame_length):
        try:
            fn(data)
        except CorruptFrameError:
            pass


def resigned(header: bytes, payload: bytes, *, fix_lengths: bool) -> bytes:
    head = bytearray(header)
    if fix_lengths and not head[5] & 1:
        struct.pack_into("<QQ", head, 16, len(payload), len(payload))
    struct.pack_into("<Q", head, 32, xxhash.xxh64_intdigest(payload))
    return bytes(head) + payload


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data):
    check(data)
    check(frames.MAGIC + data)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_bit_flips(seed, data):
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    check(bytes(buf))


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_truncations_and_extensions(seed, data):
    n = data.draw(st.integers(0, len(seed)))
    check(seed[:n])
    check(seed + data.draw(st.binary(min_size=1, max_size=8)))


@FUZZ_FULL
@given(st.sampled_from(SEEDS[:5] + [LINES_SEED, SEEDS[8], PAIRS_SEED, SEEDS[-1]]), st.data())
def test_payload_mutations_with_valid_checksum(seed, data):
    """Re-signing the header gets mutations past the checksum into the structural parser."""
    payload = bytearray(seed[H:])
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.integers(0, 3))
        pos = data.draw(st.integers(0, len(payload)))
        if op == 0 and pos < len(payload):
            payload[pos] = data.draw(st.integers(0, 255))
        elif op == 1:
            payload[pos:pos] = data.draw(st.binary(min_size=1, max_size=6))
        elif op == 2:
            del payload[pos : pos + data.draw(st.integers(1, 6))]
        else:
            # Forge a varint length/count in place: the parser must bound it before allocating.
            big = data.draw(st.sampled_from([0x7F, 0x3FFF, 2**32, 2**62, 2**63 + 5]))
            enc = bytearray()
            while big >= 0x80:
                enc.append((big & 0x7F) | 0x80)
                big >>= 7
            enc.append(big)
            payload[pos:pos] = bytes([data.draw(st.sampled_from([0x06, 0x07, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x04]))]) + enc
    count = data.draw(st.sampled_from([None, 0, 1, 2, 5, len(payload), len(payload) + 1]))
    header = bytearray(seed[:H])
    if count is not None:
        struct.pack_into("<Q", header, 8, count)
    check(resigned(bytes(header), bytes(payload), fix_lengths=True))


@FUZZ
@given(st.binary(max_size=120), st.integers(0, 12), st.booleans())
def test_random_payloads_with_valid_header(payload, count, compressed):
    raw = len(payload) * 3 if compressed else len(payload)
    header = frames.MAGIC + struct.pack("<BBHQQQQ", 1, int(compressed), 0, count, len(payload), raw, 0)
    check(resigned(header, payload, fix_lengths=False))
