"""pyspark's Hadoop format methods (``sc.hadoopFile``, ``newAPIHadoopFile``, ``hadoopRDD``, ``newAPIHadoopRDD``,
``rdd.saveAsHadoopFile``, ``saveAsNewAPIHadoopFile``, ``saveAsHadoopDataset``, ``saveAsNewAPIHadoopDataset``)
for the formats that need no JVM, in both of Hadoop's APIs (``org.apache.hadoop.mapred`` and ``...mapreduce``):

- TextInputFormat: (byte offset of the line, line) pairs, compressed files decompressed (the offset then counts
  in the decompressed text); KeyValueTextInputFormat: each line split where the separator's first character
  first appears (``mapreduce.input.keyvaluelinerecordreader.key.value.separator``, a tab), as Hadoop splits;
- SequenceFileInputFormat: as ``sc.sequenceFile``;
- TextOutputFormat: "key<tab>value" lines, each side as its Writable's toString() writes it (true, 1.5E20,
  "61 62" for bytes); a None key or value and its separator left out, and no line for (None, None), as
  Hadoop's NullWritable (``mapreduce.output.textoutputformat.separator``), compressed with
  ``compressionCodecClass`` or ``mapreduce.output.fileoutputformat.compress.codec``;
- SequenceFileOutputFormat: as ``saveAsSequenceFile``, ``keyClass`` / ``valueClass`` choosing the Writables.

Any other format names JVM code: UnsupportedFormatError. So do the converters (``keyConverter``, ...).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterator
from typing import Any

from pystream.errors import IllegalArgumentError, UnsupportedFormatError

__all__ = ["read_hadoop", "save_hadoop", "save_hadoop_dataset", "input_path_of"]

_IN = ("org.apache.hadoop.mapred.", "org.apache.hadoop.mapreduce.lib.input.")
_OUT = ("org.apache.hadoop.mapred.", "org.apache.hadoop.mapreduce.lib.output.")
INPUT_FORMATS = {p + f: f for p in _IN for f in ("TextInputFormat", "KeyValueTextInputFormat",
                                                 "SequenceFileInputFormat")}
OUTPUT_FORMATS = {p + f: f for p in _OUT for f in ("TextOutputFormat", "SequenceFileOutputFormat")}


def _no_converters(*converters: str | None) -> None:
    if any(c is not None for c in converters):
        raise IllegalArgumentError("keyConverter and valueConverter name JVM classes, which pystream has none of: "
                                   "convert the pairs with map() instead")


def _setting(conf: dict[str, str] | None, *keys: str, default: str | None = None) -> str | None:
    for key in keys:
        if conf and key in conf:
            return conf[key]
    return default


def input_path_of(conf: dict[str, str] | None) -> str:
    """The input path a Hadoop configuration names (hadoopRDD, newAPIHadoopRDD)."""
    path = _setting(conf, "mapreduce.input.fileinputformat.inputdir", "mapred.input.dir")
    if path is None:
        raise IllegalArgumentError("conf names no input path (mapreduce.input.fileinputformat.inputdir)")
    return path


def read_hadoop(sc: Any, path: str, input_format: str, key_class: str | None, value_class: str | None,
                key_converter: str | None, value_converter: str | None, conf: dict[str, str] | None) -> Any:
    """The RDD of (key, value) pairs an input format gives for ``path``."""
    from pystream.hadoop_files import input_files, read_input

    _no_converters(key_converter, value_converter)
    kind = INPUT_FORMATS.get(input_format)
    if kind is None:
        raise UnsupportedFormatError(f"input format {input_format} runs in a JVM; pystream reads "
                                     f"{', '.join(sorted(INPUT_FORMATS))}")
    if kind == "SequenceFileInputFormat":
        return sc.sequenceFile(path, key_class, value_class)
    # Hadoop's KeyValueLineRecordReader splits at the separator's first character only.
    sep = (_setting(conf, "mapreduce.input.keyvaluelinerecordreader.key.value.separator",
                    "key.value.separator.in.input.line", default="\t") or "\t")[0]
    sc._check_alive()
    pairs: list[tuple[Any, str]] = []
    for name in input_files(path):
        data = read_input(name)
        offset = 0
        for raw in data.splitlines(keepends=True):
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")  # Hadoop's Text.toString replaces bad bytes
            if kind == "TextInputFormat":
                pairs.append((offset, line))
            else:
                key, found, value = line.partition(sep)
                pairs.append((key, value if found else ""))
            offset += len(raw)
    return sc.parallelize(pairs, sc.defaultMinPartitions)


def save_hadoop(rdd: Any, path: str, output_format: str, key_class: str | None, value_class: str | None,
                key_converter: str | None, value_converter: str | None, conf: dict[str, str] | None,
                codec_name: str | None) -> None:
    """Write ``rdd``'s pairs into the new directory ``path`` through an output format."""
    from pystream.hadoop_files import codec_named
    from pystream.output import write_binary_dir, write_text_dir
    from pystream.sequence_files import PartitionFile, write_records

    _no_converters(key_converter, value_converter)
    kind = OUTPUT_FORMATS.get(output_format)
    if kind is None:
        raise UnsupportedFormatError(f"output format {output_format} runs in a JVM; pystream writes "
                                     f"{', '.join(sorted(OUTPUT_FORMATS))}")
    if codec_name is None and _setting(conf, "mapreduce.output.fileoutputformat.compress",
                                       "mapred.output.compress", default="false").lower() == "true":
        codec_name = _setting(conf, "mapreduce.output.fileoutputformat.compress.codec",
                              "mapred.output.compression.codec", default="org.apache.hadoop.io.compress.DefaultCodec")
    codec = None if codec_name is None else codec_named(codec_name)
    part = "part-r-" if output_format.startswith("org.apache.hadoop.mapreduce.") else "part-"  # as Hadoop names them
    if kind == "SequenceFileOutputFormat":
        write_binary_dir(path, rdd._run(PartitionFile(write_records, codec, (key_class, value_class))), part=part)
        return
    sep = _setting(conf, "mapreduce.output.textoutputformat.separator", "mapred.textoutputformat.separator",
                   default="\t")
    write_text_dir(path, rdd._run(_TextLines(sep)), codec=codec, part=part)


def save_hadoop_dataset(rdd: Any, conf: dict[str, str], new_api: bool, key_converter: str | None,
                        value_converter: str | None) -> None:
    """saveAsHadoopDataset / saveAsNewAPIHadoopDataset: the output format, directory and classes from ``conf``."""
    fmt = (_setting(conf, "mapreduce.job.outputformat.class") if new_api
           else _setting(conf, "mapred.output.format.class", "mapreduce.job.outputformat.class"))
    path = _setting(conf, "mapreduce.output.fileoutputformat.outputdir", "mapred.output.dir")
    if fmt is None or path is None:
        raise IllegalArgumentError("conf must name the output format (mapreduce.job.outputformat.class) and "
                                   "directory (mapreduce.output.fileoutputformat.outputdir)")
    save_hadoop(rdd, path, fmt, _setting(conf, "mapreduce.job.output.key.class", "mapred.output.key.class"),
                _setting(conf, "mapreduce.job.output.value.class", "mapred.output.value.class"),
                key_converter, value_converter, conf, None)


class _TextLines:
    """Hadoop's TextOutputFormat: key, separator, value; a None side and the separator left out."""

    __slots__ = ("sep",)

    def __init__(self, sep: str) -> None:
        self.sep = sep

    def __call__(self, _: int, it: Iterator[Any]) -> list[str]:
        lines = []
        for record in it:
            if not isinstance(record, tuple) or len(record) != 2:
                raise IllegalArgumentError(f"TextOutputFormat writes (key, value) pairs, not {record!r:.60}")
            k, v = record
            if k is None and v is None:
                continue  # Hadoop writes nothing for it
            if k is None:
                lines.append(_text(v))
            elif v is None:
                lines.append(_text(k))
            else:
                lines.append(f"{_text(k)}{self.sep}{_text(v)}")
        return lines


def _text(value: Any) -> str:
    """A value as its Writable's toString() writes it, which TextOutputFormat writes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return " ".join(f"{b:02x}" for b in bytes(value))  # BytesWritable: hex bytes, spaced
    return str(value)


def java_double(x: float) -> str:
    """Java's Double.toString: plain notation from 10^-3 to 10^7, else d.dddE<exponent>; NaN and Infinity."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        return repr(x)  # Python writes this range plainly too, with the same shortest digits
    sign, digits, exponent = decimal.Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exponent, int)
    fraction = "".join(map(str, digits[1:])) or "0"
    return f"{'-' if sign else ''}{digits[0]}.{fraction}E{len(digits) - 1 + exponent}"
