"""Hadoop SequenceFiles, as Spark writes and reads them: ``saveAsSequenceFile`` / ``sc.sequenceFile``, and
``saveAsPickleFile`` / ``sc.pickleFile``, whose files are SequenceFiles too. Files either side writes, the other
reads (checked against Spark 3.5.3's own in tests/data).

A file (version 6) is a header naming the key and value Writable classes, the compression and a 16-byte sync
marker, then the records: uncompressed, each value compressed alone (RECORD), or blocks of records whose key
lengths, keys, value lengths and values are compressed together (BLOCK, what Spark writes when given a codec).
Codecs: DefaultCodec (zlib), GzipCodec and BZip2Codec (pystream.hadoop_files).

Python values become Writables as pyspark converts them: bool -> BooleanWritable, int -> IntWritable (or
LongWritable past 32 bits), float -> DoubleWritable, str -> Text, bytes and bytearray -> BytesWritable, None ->
NullWritable, dict -> MapWritable; the first record fixes a file's key and value classes, and a later one of
another class fails, as in Spark ("wrong key class"). Reading gives them back (BytesWritable as a bytearray,
as pyspark does; FloatWritable, VIntWritable, VLongWritable, ByteWritable read too).

A pickle file holds, per record, up to 10 pickled batches of ``batchSize`` elements, serialised as a Java
``byte[][]`` in a BytesWritable (Spark's saveAsObjectFile). A damaged file raises CorruptInputError.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import pickle
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from pystream.errors import CorruptInputError, IllegalArgumentError
from pystream.hadoop_files import Codec, codec_named

__all__ = ["PartitionFile", "read_pickle_batches", "read_records", "write_pickle_batches", "write_records"]

MAGIC = b"SEQ\x06"
_IO = "org.apache.hadoop.io."
TEXT, INT, LONG, DOUBLE, FLOAT = (_IO + n for n in ("Text", "IntWritable", "LongWritable", "DoubleWritable",
                                                  "FloatWritable"))
BOOLEAN, BYTES, NULL, MAP, BYTE = (_IO + n for n in ("BooleanWritable", "BytesWritable", "NullWritable",
                                                    "MapWritable", "ByteWritable"))
VINT, VLONG = _IO + "VIntWritable", _IO + "VLongWritable"
SYNC_ESCAPE = -1
# Hadoop 3's: a sync marker at least every 100 KiB of records, where a reader can start.
SYNC_INTERVAL = 5 * 1024 * 20
# io.seqfile.compress.blocksize: the uncompressed bytes of a BLOCK-compressed file's block.
BLOCK_SIZE = 1_000_000
# AbstractMapWritable's ids of the classes every MapWritable knows; others are named in the map itself.
_MAP_IDS = {BOOLEAN: -126, BYTES: -125, FLOAT: -124, INT: -123, LONG: -122, MAP: -121, NULL: -119, TEXT: -116,
            VINT: -114, VLONG: -113}
_MAP_CLASSES = {v: k for k, v in _MAP_IDS.items()}


# -- Hadoop's variable-length integers (WritableUtils.writeVLong) -----------------------------------------
def write_vlong(out: bytearray, value: int) -> None:
    if -112 <= value <= 127:
        out += struct.pack(">b", value)
        return
    size = -112
    if value < 0:
        value = ~value
        size = -120
    n = (value.bit_length() + 7) // 8
    out += struct.pack(">b", size - n)
    out += value.to_bytes(n, "big")


class _In:
    """Bytes read from the front; running short raises CorruptInputError naming the file."""

    __slots__ = ("data", "pos", "name")

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CorruptInputError(f"{self.name}: a record runs past the end of the data ({n} bytes wanted at "
                                    f"offset {self.pos} of {len(self.data)})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def vlong(self) -> int:
        first = self.unpack(">b")
        if first >= -112:
            return first
        negative = first < -120
        n = (-120 - first) if negative else (-112 - first)
        value = int.from_bytes(self.take(n), "big")
        return ~value if negative else value

    def text(self) -> str:
        raw = self.take(self.vlong())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptInputError(f"{self.name}: a Text that is not UTF-8: {exc}") from None

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


# -- Writables ------------------------------------------------------------------------------------------
def writable_class(value: Any) -> str:
    """The Writable class pyspark converts a Python value to."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INT if -(1 << 31) <= value < (1 << 31) else LONG
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return TEXT
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BYTES
    if isinstance(value, dict):
        return MAP
    raise IllegalArgumentError(f"Data of type {type(value).__name__} cannot be used in a SequenceFile (it takes "
                               "None, bool, int, float, str, bytes, bytearray and dicts of them)")


def encode(out: bytearray, cls: str, value: Any) -> None:
    """Append ``value`` as a Writable of class ``cls``."""
    if cls == TEXT:
        raw = value.encode("utf-8")
        write_vlong(out, len(raw))
        out += raw
    elif cls == INT:
        out += struct.pack(">i", value)
    elif cls == LONG:
        if not -(1 << 63) <= value < (1 << 63):
            raise IllegalArgumentError(f"{value} does not fit a LongWritable (64 bits)")
        out += struct.pack(">q", value)
    elif cls == DOUBLE:
        out += struct.pack(">d", value)
    elif cls == FLOAT:
        try:
            out += struct.pack(">f", value)
        except OverflowError:  # past float32: Java's (float) cast gives an infinity
            out += struct.pack(">f", math.copysign(math.inf, value))
    elif cls in (VINT, VLONG):
        write_vlong(out, value)
    elif cls == BYTE:
        out += struct.pack(">b", value)
    elif cls == BOOLEAN:
        out += b"\x01" if value else b"\x00"
    elif cls == BYTES:
        out += struct.pack(">i", len(value))
        out += bytes(value)
    elif cls == NULL:
        pass
    elif cls == MAP:
        _encode_map(out, value)
    else:  # pragma: no cover - writable_class gives no other
        raise IllegalArgumentError(f"pystream does not write {cls}")


def _encode_map(out: bytearray, mapping: dict) -> None:
    entries = [(writable_class(k), k, writable_class(v), v) for k, v in mapping.items()]
    extra = sorted({c for kc, _, vc, _ in entries for c in (kc, vc) if c not in _MAP_IDS})
    ids = dict(_MAP_IDS, **{c: i + 1 for i, c in enumerate(extra)})
    out += struct.pack(">b", len(extra))
    for c in extra:
        raw = c.encode()
        out += struct.pack(">bH", ids[c], len(raw)) + raw
    out += struct.pack(">i", len(entries))
    for kc, k, vc, v in entries:
        out += struct.pack(">b", ids[kc])
        encode(out, kc, k)
        out += struct.pack(">b", ids[vc])
        encode(out, vc, v)


def decode(r: _In, cls: str) -> Any:
    """A Writable of class ``cls`` read as pyspark gives it."""
    if cls == TEXT:
        return r.text()
    if cls == INT:
        return r.unpack(">i")
    if cls == LONG:
        return r.unpack(">q")
    if cls == DOUBLE:
        return r.unpack(">d")
    if cls == FLOAT:
        return r.unpack(">f")
    if cls == BOOLEAN:
        return r.take(1) != b"\x00"
    if cls == BYTE:
        return r.unpack(">b")
    if cls in (VINT, VLONG):
        return r.vlong()
    if cls == BYTES:
        return bytearray(r.take(r.unpack(">i")))
    if cls == NULL:
        return None
    if cls == MAP:
        return _decode_map(r)
    raise CorruptInputError(f"{r.name}: pystream cannot read Writables of class {cls}")


def _decode_map(r: _In) -> dict:
    classes = dict(_MAP_CLASSES)
    for _ in range(r.unpack(">b")):
        cid = r.unpack(">b")
        classes[cid] = r.take(r.unpack(">H")).decode("utf-8", "replace")
    size = r.unpack(">i")
    if size < 0:
        raise CorruptInputError(f"{r.name}: a MapWritable of {size} entries")
    out = {}
    for _ in range(size):
        kc = classes.get(r.unpack(">b"))
        if kc is None:
            raise CorruptInputError(f"{r.name}: a MapWritable key of an unknown class id")
        k = decode(r, kc)
        vc = classes.get(r.unpack(">b"))
        if vc is None:
            raise CorruptInputError(f"{r.name}: a MapWritable value of an unknown class id")
        try:
            out[k] = decode(r, vc)
        except TypeError:  # a key Python cannot hash (a map, bytes as bytearray)
            raise CorruptInputError(f"{r.name}: a MapWritable key of class {kc} cannot be a dict key") from None
    return out


# -- files ----------------------------------------------------------------------------------------------
_NONE = object()  # no record at all (a record may be None)

def write_records(fh: BinaryIO, records: Iterable[tuple[Any, Any]], codec: Codec | None = None,
                  classes: tuple[str | None, str | None] = (None, None),
                  empty: tuple[str, str] = (NULL, NULL)) -> None:
    """Write (key, value) pairs as one SequenceFile; with a codec, BLOCK-compressed as Spark writes them.
    ``classes`` forces the key and value Writable classes (pyspark's keyClass and valueClass: a LongWritable
    for small ints, say); otherwise the first pair sets them. No pairs (an empty partition) still make a valid
    file, of the classes ``empty``."""
    for cls in classes:
        if cls is not None and cls not in _FITS:
            raise IllegalArgumentError(f"pystream does not write {cls}; it writes {', '.join(sorted(_FITS))}")
    it = iter(records)
    first = next(it, _NONE)
    if first is _NONE:
        key_cls, value_cls = classes[0] or empty[0], classes[1] or empty[1]
    else:
        k, v = _pair(first)
        key_cls, value_cls = classes[0] or writable_class(k), classes[1] or writable_class(v)
    sync = os.urandom(16)
    head = bytearray(MAGIC)
    for name in (key_cls, value_cls):
        write_vlong(head, len(name))
        head += name.encode()
    head += b"\x01\x01" if codec is not None else b"\x00\x00"
    if codec is not None:
        write_vlong(head, len(codec.class_name))
        head += codec.class_name.encode()
    head += struct.pack(">i", 0)  # no metadata
    head += sync
    fh.write(head)
    pairs = _checked(first, it, key_cls, value_cls) if first is not _NONE else iter(())
    try:
        if codec is None:
            _write_plain(fh, pairs, key_cls, value_cls, sync)
        else:
            _write_blocks(fh, pairs, key_cls, value_cls, sync, codec)
    except RecursionError:
        raise IllegalArgumentError("a dict nested deeper than Python can write as MapWritables") from None


def _pair(record: Any) -> tuple[Any, Any]:
    if not isinstance(record, tuple) or len(record) != 2:
        raise IllegalArgumentError(f"a SequenceFile holds (key, value) pairs, not {type(record).__name__} "
                                   f"{record!r:.60}")
    return record


def _checked(first: Any, rest: Iterator[Any], key_cls: str, value_cls: str) -> Iterator[tuple[Any, Any]]:
    for record in itertools.chain((first,), rest):
        k, v = _pair(record)
        for what, cls, value in (("key", key_cls, k), ("value", value_cls, v)):
            if not _FITS[cls](value):
                raise IllegalArgumentError(f"wrong {what} class: {writable_class(value)} is not class {cls} "
                                           f"(the class of this file's {what}s)")
        yield k, v


def _int_within(bits: int) -> Any:
    return lambda v: type(v) is not bool and isinstance(v, int) and -(1 << (bits - 1)) <= v < (1 << (bits - 1))


# What each Writable pystream writes takes: the classes pyspark converts Python values to, and those a
# keyClass or valueClass may ask for instead.
_FITS = {
    TEXT: lambda v: isinstance(v, str), INT: _int_within(32), LONG: _int_within(64), VINT: _int_within(32),
    VLONG: _int_within(64), BYTE: _int_within(8),
    DOUBLE: lambda v: type(v) is not bool and isinstance(v, (int, float)),
    FLOAT: lambda v: type(v) is not bool and isinstance(v, (int, float)),
    BOOLEAN: lambda v: isinstance(v, bool), BYTES: lambda v: isinstance(v, (bytes, bytearray, memoryview)),
    NULL: lambda v: v is None, MAP: lambda v: isinstance(v, dict),
}


def _write_plain(fh: BinaryIO, pairs: Iterator[tuple[Any, Any]], key_cls: str, value_cls: str,
                 sync: bytes) -> None:
    buf = bytearray()
    since_sync = 0
    for k, v in pairs:
        if since_sync >= SYNC_INTERVAL:
            buf += struct.pack(">i", SYNC_ESCAPE) + sync
            since_sync = 0
        key, value = bytearray(), bytearray()
        encode(key, key_cls, k)
        encode(value, value_cls, v)
        buf += struct.pack(">ii", len(key) + len(value), len(key))
        buf += key
        buf += value
        since_sync += 8 + len(key) + len(value)
        if len(buf) >= 1 << 16:
            fh.write(buf)
            buf.clear()
    fh.write(buf)


def _write_blocks(fh: BinaryIO, pairs: Iterator[tuple[Any, Any]], key_cls: str, value_cls: str, sync: bytes,
                  codec: Codec) -> None:
    while True:
        key_lens, keys, value_lens, values = bytearray(), bytearray(), bytearray(), bytearray()
        n = 0
        for k, v in pairs:
            start = len(keys)
            encode(keys, key_cls, k)
            write_vlong(key_lens, len(keys) - start)
            start = len(values)
            encode(values, value_cls, v)
            write_vlong(value_lens, len(values) - start)
            n += 1
            if len(keys) + len(values) >= BLOCK_SIZE:
                break
        if not n:
            return
        block = bytearray(struct.pack(">i", SYNC_ESCAPE) + sync)
        write_vlong(block, n)
        for part in (key_lens, keys, value_lens, values):
            packed = codec.compress(bytes(part))
            write_vlong(block, len(packed))
            block += packed
        fh.write(block)


def _decompress(codec: Codec, data: bytes, name: str) -> bytes:
    try:
        return codec.decompress(data)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise CorruptInputError(f"{name}: a compressed block could not be decompressed: {exc}") from None


def read_records(data: bytes, name: str) -> tuple[str, str, list[tuple[Any, Any]]]:
    """The key class, the value class and the (key, value) pairs of a SequenceFile's bytes."""
    try:
        return _read_records(data, name)
    except RecursionError:
        raise CorruptInputError(f"{name}: MapWritables nested deeper than Python can read") from None


def _read_records(data: bytes, name: str) -> tuple[str, str, list[tuple[Any, Any]]]:
    r = _In(data, name)
    if r.take(3) != b"SEQ":
        raise CorruptInputError(f"{name} is not a SequenceFile (it does not start with SEQ)")
    version = r.take(1)[0]
    if version != 6:
        raise CorruptInputError(f"{name} is a SequenceFile of version {version}; pystream reads version 6, "
                                "which Hadoop has written since 0.20")
    key_cls, value_cls = r.text(), r.text()
    compressed, blocks = r.take(1) != b"\x00", r.take(1) != b"\x00"
    if blocks and not compressed:
        raise CorruptInputError(f"{name}: a SequenceFile header that says BLOCK-compressed but not compressed")
    codec = None
    if compressed:
        codec = codec_named(r.text())
    for _ in range(max(0, r.unpack(">i"))):  # metadata: not kept
        r.text()
        r.text()
    sync = r.take(16)
    if blocks and codec is not None:
        return key_cls, value_cls, _read_blocks(r, key_cls, value_cls, sync, codec)
    out = []
    while not r.done:
        length = r.unpack(">i")
        if length == SYNC_ESCAPE:
            if r.take(16) != sync:
                raise CorruptInputError(f"{name}: a sync marker that is not the file's")
            continue
        key_len = r.unpack(">i")
        if length < 0 or not 0 <= key_len <= length:
            raise CorruptInputError(f"{name}: a record of {length} bytes with a key of {key_len}")
        key = _In(r.take(key_len), name)
        value = _In(r.take(length - key_len), name)
        if codec is not None:
            value = _In(_decompress(codec, value.data, name), name)
        out.append((_whole(key, key_cls), _whole(value, value_cls)))
    return key_cls, value_cls, out


def _read_blocks(r: _In, key_cls: str, value_cls: str, sync: bytes, codec: Codec) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    while not r.done:
        if r.unpack(">i") != SYNC_ESCAPE or r.take(16) != sync:
            raise CorruptInputError(f"{r.name}: a block that does not start with the file's sync marker")
        n = r.vlong()
        if n < 0:
            raise CorruptInputError(f"{r.name}: a block of {n} records")
        key_lens, keys, value_lens, values = (_In(_decompress(codec, r.take(r.vlong()), r.name), r.name)
                                              for _ in range(4))
        for _ in range(n):
            key = _In(keys.take(key_lens.vlong()), r.name)
            value = _In(values.take(value_lens.vlong()), r.name)
            out.append((_whole(key, key_cls), _whole(value, value_cls)))
    return out


def _whole(r: _In, cls: str) -> Any:
    value = decode(r, cls)
    if not r.done:
        raise CorruptInputError(f"{r.name}: a {cls} with {len(r.data) - r.pos} bytes left over")
    return value


# -- pickle files (Spark's saveAsObjectFile of pickled batches) -----------------------------------------
# Java's serialisation of a byte[][]: the stream header, the array's class (its name and serialVersionUID),
# its length, then each byte[] (its class described the first time, referred to after).
_JAVA_HEAD = (bytes.fromhex("aced0005") + b"\x75\x72\x00\x03[[B" + bytes.fromhex("4bfd19156767db37")
              + b"\x02\x00\x00\x78\x70")
_JAVA_BYTES_CLASS = b"\x75\x72\x00\x02[B" + bytes.fromhex("acf317f8060854e0") + b"\x02\x00\x00\x78\x70"
_JAVA_BYTES_REF = b"\x75\x71\x00\x7e\x00\x02"  # handle 2: the byte[] class, described after [[B and the array
# Spark groups a partition's pickled batches 10 to a record.
OBJECTS_PER_RECORD = 10


def java_byte_arrays(arrays: list[bytes]) -> bytes:
    out = bytearray(_JAVA_HEAD)
    out += struct.pack(">i", len(arrays))
    for i, a in enumerate(arrays):
        out += _JAVA_BYTES_CLASS if i == 0 else _JAVA_BYTES_REF
        out += struct.pack(">i", len(a))
        out += a
    return bytes(out)


def read_java_byte_arrays(data: bytes, name: str) -> list[bytes]:
    r = _In(data, name)
    if r.take(len(_JAVA_HEAD)) != _JAVA_HEAD:
        raise CorruptInputError(f"{name} is not a file saveAsPickleFile wrote (no Java byte[][] in a record)")
    out = []
    for i in range(r.unpack(">i")):
        tag = r.take(len(_JAVA_BYTES_CLASS) if i == 0 else len(_JAVA_BYTES_REF))
        if tag != (_JAVA_BYTES_CLASS if i == 0 else _JAVA_BYTES_REF):
            raise CorruptInputError(f"{name} is not a file saveAsPickleFile wrote (an element is no byte[])")
        out.append(r.take(r.unpack(">i")))
    if not r.done:
        raise CorruptInputError(f"{name}: bytes after a record's byte[][]")
    return out


def write_pickle_batches(fh: BinaryIO, elements: Iterable[Any], batch_size: int) -> None:
    """A partition as Spark's saveAsPickleFile writes it: lists of ``batch_size`` elements pickled, grouped
    OBJECTS_PER_RECORD to a (NullWritable, BytesWritable) record."""
    def records() -> Iterator[tuple[None, bytes]]:
        group: list[bytes] = []
        it = iter(elements)
        while batch := list(itertools.islice(it, batch_size)):
            group.append(_dumps(batch))
            if len(group) == OBJECTS_PER_RECORD:
                yield None, java_byte_arrays(group)
                group = []
        if group:
            yield None, java_byte_arrays(group)

    write_records(fh, records(), empty=(NULL, BYTES))


def _dumps(batch: list) -> bytes:
    # The standard pickle, as pyspark's CPickleSerializer, so that pyspark reads the file too; what only
    # cloudpickle can pickle (a function, a class of the driver's script) is pickled so (pystream reads it).
    try:
        return pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        from pystream import pickling

        return pickling.dumps(batch)


def read_pickle_batches(data: bytes, name: str) -> list[Any]:
    """The elements of one file saveAsPickleFile wrote (Spark's or pystream's)."""
    key_cls, value_cls, records = read_records(data, name)
    if value_cls != BYTES:
        raise CorruptInputError(f"{name} is not a file saveAsPickleFile wrote (its values are {value_cls})")
    out: list[Any] = []
    for _, value in records:
        for blob in read_java_byte_arrays(bytes(value), name):
            try:
                batch = pickle.loads(blob)
            except Exception as exc:
                raise CorruptInputError(f"{name}: a pickled batch could not be read: {exc}") from exc
            if type(batch) is not list:
                raise CorruptInputError(f"{name} is not a file saveAsPickleFile wrote (a batch is no list)")
            out.extend(batch)
    return out


class PartitionFile:
    """A partition as the bytes of one file, made in the task that holds its records: ``write(out, records,
    *args)`` into memory (write_records, write_pickle_batches). The driver then writes the files."""

    __slots__ = ("write", "args")

    def __init__(self, write: Any, *args: Any) -> None:
        self.write, self.args = write, args

    def __call__(self, _: int, it: Iterator[Any]) -> bytes:
        with io.BytesIO() as out:
            self.write(out, it, *self.args)
            return out.getvalue()

