"""Hadoop SequenceFiles and pickle files (pystream/sequence_files.py): Spark 3.5.3's own files read
(tests/data/spark-3.5.3, made by its make.py), every Writable written and read back on both executors,
compression, the errors, and damaged files fuzzed."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream.errors import CorruptInputError, IllegalArgumentError, UnsupportedCodecError, UnsupportedFormatError
from pystream.hadoop_files import codec_named
from pystream.sequence_files import (
    SYNC_INTERVAL,
    read_java_byte_arrays,
    read_pickle_batches,
    read_records,
    write_records,
)

SPARK = os.path.join(os.path.dirname(__file__), "data", "spark-3.5.3")
MAP = {"d": 1.5, "n": None, "b": bytearray(b"x"), "t": True, "l": 2 ** 40, "s": "str", "nest": {"a": 1}}


@pytest.mark.parametrize("name, pairs", [
    ("seq-text-int", [("a", 1), ("b", -2)]),
    ("seq-long-double", [(2 ** 40, 1.5), (-(2 ** 41), -0.0)]),
    ("seq-bool-bytes", [(True, bytearray(b"\x00\x01")), (False, bytearray(b"zz"))]),
    ("seq-null-text", [(None, "n\u00e9")]),
    ("seq-text-map", [("m", MAP)]),
    ("seq-block-DefaultCodec", [(f"k{i}", i) for i in range(3000)]),
    ("seq-block-BZip2Codec", [(f"k{i}", i) for i in range(3000)]),
])
def test_sequence_files_spark_wrote_are_read_as_pyspark_reads_them(sc, name, pairs):
    got = sc.sequenceFile(os.path.join(SPARK, name)).collect()
    assert got == pairs
    assert [type(v) for _, v in got] == [type(v) for _, v in pairs]  # BytesWritable: a bytearray, as pyspark's


def test_pickle_files_spark_wrote_are_read(sc):
    assert sc.pickleFile(os.path.join(SPARK, "pickle")).collect() == [1, "two", (3, 4), {"five": 5.0}, None,
                                                                       b"raw"] * 5


@pytest.mark.parametrize("codec", [None, "org.apache.hadoop.io.compress.DefaultCodec",
                                   "org.apache.hadoop.io.compress.GzipCodec", "bzip2"])
def test_every_writable_round_trips(sc, tmp_path, codec):
    cases = {
        "text-int": [(f"k\u00e9{i}", i - 5) for i in range(10)],
        "long-double": [(2 ** 40 + i, i / 3) for i in range(10)],
        "bool-bytes": [(i % 2 == 0, bytes(range(i))) for i in range(10)],
        "null-map": [(None, {"k": i, "nested": {"x": [b"b"][0]}, 1.5: None}) for i in range(3)],
        "int-long-edges": [(-(2 ** 31), 2 ** 63 - 1), (2 ** 31 - 1, -(2 ** 63))],
    }
    for name, pairs in cases.items():
        out = str(tmp_path / name)
        sc.parallelize(pairs, 2).saveAsSequenceFile(out, codec)
        got = sc.sequenceFile(out).collect()
        expected = [(k, bytearray(v) if isinstance(v, bytes) else _bytes_as_read(v)) for k, v in pairs]
        assert got == expected, name


def _bytes_as_read(value):
    if isinstance(value, dict):
        return {k: _bytes_as_read(v) for k, v in value.items()}
    return bytearray(value) if isinstance(value, bytes) else value


def test_a_big_file_has_sync_markers_and_empty_partitions_make_valid_files(sc, tmp_path):
    out = str(tmp_path / "big")
    pairs = [(i, "x" * (i % 50)) for i in range(20_000)]
    sc.parallelize(pairs, 3).saveAsSequenceFile(out)
    part = os.path.join(out, "part-00000")
    with open(part, "rb") as fh:
        data = fh.read()
    sync = data[data.index(b"\xff\xff\xff\xff") + 4:][:16]
    assert data.count(b"\xff\xff\xff\xff" + sync) >= len(data) // SYNC_INTERVAL - 1  # a marker every 100 KiB
    assert sc.sequenceFile(out).collect() == pairs
    empty = str(tmp_path / "empty")
    sc.parallelize([], 2).saveAsSequenceFile(empty)
    assert sorted(f for f in os.listdir(empty) if f.startswith("part-")) == ["part-00000", "part-00001"]
    assert sc.sequenceFile(empty).collect() == []


def test_what_a_sequence_file_cannot_hold_is_refused(sc, tmp_path):
    with pytest.raises(IllegalArgumentError, match="wrong key class: .*LongWritable is not class .*IntWritable"):
        sc.parallelize([(1, "a"), (2 ** 40, "b")], 1).saveAsSequenceFile(str(tmp_path / "a"))
    with pytest.raises(IllegalArgumentError, match="Data of type list cannot be used"):
        sc.parallelize([("k", [1, 2])], 1).saveAsSequenceFile(str(tmp_path / "b"))
    with pytest.raises(IllegalArgumentError, match=r"\(key, value\) pairs, not int"):
        sc.parallelize([1, 2], 1).saveAsSequenceFile(str(tmp_path / "c"))
    with pytest.raises(UnsupportedCodecError):
        sc.parallelize([("k", 1)], 1).saveAsSequenceFile(str(tmp_path / "d"), "org.apache.hadoop.io.compress.Lz4Codec")
    with pytest.raises(IllegalArgumentError, match="JVM classes"):
        sc.sequenceFile(os.path.join(SPARK, "seq-text-int"),
                        valueConverter="org.apache.spark.examples.pythonconverters.Whatever")


def test_pickle_files_round_trip_and_pickle_what_pickle_cannot_with_cloudpickle(sc, tmp_path):
    records = [{"n": i, "tags": ("a", i % 3)} for i in range(25)] + [None, 1.5, b"raw"]
    out = str(tmp_path / "out")
    sc.parallelize(records, 3).saveAsPickleFile(out, batchSize=4)
    with open(os.path.join(out, "part-00000"), "rb") as fh:
        assert fh.read(4) == b"SEQ\x06"  # Spark's layout, which pyspark reads
    assert sc.pickleFile(out).collect() == records and sc.pickleFile(out, 5).getNumPartitions() == 5
    auto = str(tmp_path / "auto")
    sc.parallelize(records, 2).saveAsPickleFile(auto, batchSize=0)
    assert sc.pickleFile(auto).collect() == records
    funcs = str(tmp_path / "funcs")
    sc.parallelize([1, 2], 1).map(lambda x: (lambda y: x + y)).saveAsPickleFile(funcs)
    with open(os.path.join(funcs, "part-00000"), "rb") as fh:  # (records that only cloudpickle can ship)
        assert [f(10) for f in read_pickle_batches(fh.read(), "funcs")] == [11, 12]
    with pytest.raises(FileExistsError):
        sc.parallelize([1]).saveAsPickleFile(out)
    with pytest.raises(ValueError):
        sc.parallelize([1]).saveAsPickleFile(str(tmp_path / "other"), batchSize=-1)
    cut = tmp_path / "cut"
    cut.mkdir()
    with open(os.path.join(out, "part-00000"), "rb") as fh:
        (cut / "part-00000").write_bytes(fh.read()[:-3])
    with pytest.raises(CorruptInputError, match="runs past the end"):
        sc.pickleFile(str(cut))
    with pytest.raises(CorruptInputError, match="is not a file saveAsPickleFile wrote"):
        sc.pickleFile(os.path.join(SPARK, "seq-text-int"))


def _spark_file(name):
    with open(os.path.join(SPARK, name, "part-00000"), "rb") as fh:
        return fh.read()


def _seeds():
    blobs = [_spark_file(n) for n in ("seq-text-map", "seq-bool-bytes", "seq-block-DefaultCodec", "pickle")]
    out = io.BytesIO()
    write_records(out, [(i, {"k": "v" * i}) for i in range(40)], codec_named("bzip2"))
    return blobs + [out.getvalue()]


SEEDS = _seeds()


@settings(max_examples=300, deadline=None)
@given(seed=st.sampled_from(SEEDS), cuts=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                   max_size=4), truncate=st.integers(0, 10**6))
def test_damaged_sequence_files_raise_only_corrupt_input(seed, cuts, truncate):
    data = bytearray(seed)
    for at, byte in cuts:
        data[at % len(data)] = byte
    data = bytes(data[:max(4, truncate % (len(data) + 1))])
    try:
        read_records(data, "fuzzed")
        read_pickle_batches(data, "fuzzed")
    except (CorruptInputError, UnsupportedCodecError):
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_never_a_sequence_file_or_a_byte_array(blob):
    for parse in (lambda: read_records(blob, "random"), lambda: read_java_byte_arrays(blob, "random")):
        try:
            parse()
        except (CorruptInputError, UnsupportedCodecError):
            pass


# -- pyspark's Hadoop format methods (pystream/hadoop_formats.py); the expected values are what Spark 3.5.3 gave
# for the same calls.
MAPRED, MAPREDUCE_IN, MAPREDUCE_OUT = ("org.apache.hadoop.mapred.", "org.apache.hadoop.mapreduce.lib.input.",
                                       "org.apache.hadoop.mapreduce.lib.output.")


def test_hadoop_text_input_formats_read_as_spark_does(sc, tmp_path):
    (tmp_path / "in.txt").write_bytes(b"a\tb\nline two\n\nk\tv\tw\r\nlast")
    path = str(tmp_path / "in.txt")
    assert sc.hadoopFile(path, MAPRED + "TextInputFormat", "org.apache.hadoop.io.LongWritable",
                         "org.apache.hadoop.io.Text").collect() == [
        (0, "a\tb"), (4, "line two"), (13, ""), (14, "k\tv\tw"), (21, "last")]
    assert sc.newAPIHadoopFile(path, MAPREDUCE_IN + "KeyValueTextInputFormat", "org.apache.hadoop.io.Text",
                               "org.apache.hadoop.io.Text").collect() == [
        ("a", "b"), ("line two", ""), ("", ""), ("k", "v\tw"), ("last", "")]
    conf = {"mapreduce.input.fileinputformat.inputdir": path,
            "mapreduce.input.keyvaluelinerecordreader.key.value.separator": " "}
    assert sc.newAPIHadoopRDD(MAPREDUCE_IN + "KeyValueTextInputFormat", conf=conf).collect()[1] == ("line", "two")
    assert sc.hadoopFile(os.path.join(SPARK, "seq-text-int"), MAPRED + "SequenceFileInputFormat").collect() == [
        ("a", 1), ("b", -2)]
    with pytest.raises(UnsupportedFormatError, match="runs in a JVM"):
        sc.hadoopFile(path, "org.apache.parquet.hadoop.ParquetInputFormat")
    with pytest.raises(IllegalArgumentError, match="names no input path"):
        sc.hadoopRDD(MAPRED + "TextInputFormat", conf={})


def test_hadoop_output_formats_write_as_spark_does(sc, tmp_path):
    pairs = [("a", 1), (None, "only value"), ("only key", None), (True, 2.5)]
    old = str(tmp_path / "textout")
    sc.parallelize(pairs, 1).saveAsHadoopFile(old, MAPRED + "TextOutputFormat")
    with open(os.path.join(old, "part-00000"), "rb") as fh:
        assert fh.read() == b"a\t1\nonly value\nonly key\ntrue\t2.5\n"
    new = str(tmp_path / "seqout")
    sc.parallelize([(1, "x"), (2, "y")], 2).saveAsNewAPIHadoopFile(
        new, MAPREDUCE_OUT + "SequenceFileOutputFormat", "org.apache.hadoop.io.LongWritable")
    assert sorted(f for f in os.listdir(new) if f.startswith("part")) == ["part-r-00000", "part-r-00001"]
    with open(os.path.join(new, "part-r-00000"), "rb") as fh:
        assert read_records(fh.read(), "new")[:2] == ("org.apache.hadoop.io.LongWritable",
                                                       "org.apache.hadoop.io.Text")
    assert sc.sequenceFile(new).collect() == [(1, "x"), (2, "y")]
    gz = str(tmp_path / "gz")
    sc.parallelize([("k", "v")], 1).saveAsHadoopFile(gz, MAPRED + "TextOutputFormat",
                                                     compressionCodecClass="org.apache.hadoop.io.compress.GzipCodec")
    assert sc.textFile(gz + "/part-00000.gz").collect() == ["k\tv"]
    dataset = str(tmp_path / "dataset")
    sc.parallelize([("k", "v")], 1).saveAsNewAPIHadoopDataset({
        "mapreduce.job.outputformat.class": MAPREDUCE_OUT + "TextOutputFormat",
        "mapreduce.output.fileoutputformat.outputdir": dataset,
        "mapreduce.output.textoutputformat.separator": ",",
        "mapreduce.output.fileoutputformat.compress": "true"})
    assert sc.textFile(dataset).collect() == ["k,v"] and os.path.exists(dataset + "/part-r-00000.deflate")
    with pytest.raises(UnsupportedFormatError):
        sc.parallelize([("k", "v")]).saveAsHadoopFile(str(tmp_path / "x"), "org.apache.hadoop.mapred.MapFileOutputFormat")
    with pytest.raises(IllegalArgumentError, match="wrong key class"):
        sc.parallelize([(2 ** 40, "x")], 1).saveAsHadoopFile(str(tmp_path / "y"), MAPRED + "SequenceFileOutputFormat",
                                                             "org.apache.hadoop.io.IntWritable")
    with pytest.raises(IllegalArgumentError, match="JVM classes"):
        sc.parallelize([("k", "v")]).saveAsHadoopFile(str(tmp_path / "z"), MAPRED + "TextOutputFormat",
                                                      keyConverter="org.example.Converter")


def test_a_record_that_is_none_is_no_pair_and_not_the_end(sc, tmp_path):
    with pytest.raises(IllegalArgumentError, match=r"\(key, value\) pairs, not NoneType"):
        sc.parallelize([None, (1, 2), (3, 4)], 1).saveAsSequenceFile(str(tmp_path / "none-first"))


def test_text_output_writes_values_as_their_writables_print_them(sc, tmp_path):
    out = str(tmp_path / "out")
    sc.parallelize([("a", 1), (None, None), ("b", None), (None, "c"), (1.5e20, b"ab"), (1e-4, 2.5)], 1) \
        .saveAsHadoopFile(out, MAPRED + "TextOutputFormat")
    with open(os.path.join(out, "part-00000"), "rb") as fh:  # what Spark 3.5.3 wrote for the same pairs
        assert fh.read() == b"a\t1\nb\nc\n1.5E20\t61 62\n1.0E-4\t2.5\n"


def test_a_key_value_separator_splits_at_its_first_character_as_hadoop_does(sc, tmp_path):
    (tmp_path / "kv.txt").write_text("a::b::c\nd:e\nnosep\n")
    conf = {"mapreduce.input.keyvaluelinerecordreader.key.value.separator": "::"}
    got = sc.newAPIHadoopFile(str(tmp_path / "kv.txt"), MAPREDUCE_IN + "KeyValueTextInputFormat", conf=conf)
    assert got.collect() == [("a", ":b::c"), ("d", "e"), ("nosep", "")]  # Spark 3.5.3's answer
