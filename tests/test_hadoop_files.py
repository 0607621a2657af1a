"""Hadoop's input paths and compression codecs (pystream/hadoop_files.py): textFile, wholeTextFiles, binaryFiles,
saveAsTextFile(codec) and textFileStream, against real Spark output (tests/data/spark-3.5.3) and the standard
library's own decompressors."""

from __future__ import annotations

import bz2
import gzip
import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystream.errors import CorruptInputError, UnsupportedCodecError
from pystream.hadoop_files import input_files, read_input
from pystream.testing import advance, manual_context

SPARK = os.path.join(os.path.dirname(__file__), "data", "spark-3.5.3")
SPARK_LINES = [f"spark line {i} \u00e9\u4e2d" for i in range(300)] + ["", "  padded  "]
DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".deflate": zlib.decompress}


@pytest.mark.parametrize("codec", ["GzipCodec", "BZip2Codec", "DefaultCodec"])
def test_text_files_spark_compressed_are_read(sc, codec):
    path = os.path.join(SPARK, f"text-{codec}")
    assert sorted(sc.textFile(path).collect()) == sorted(SPARK_LINES)  # the .crc files and _SUCCESS left out
    (name, text), _ = sorted(sc.wholeTextFiles(path).collect())
    assert name.endswith("part-00000" + {"GzipCodec": ".gz", "BZip2Codec": ".bz2", "DefaultCodec": ".deflate"}[codec])
    assert text.startswith("spark line 0 \u00e9\u4e2d\n")
    raw = dict(sc.binaryFiles(path).collect())[name]  # binaryFiles gives the bytes as stored
    assert name.startswith("file:/")
    with open(name[len("file:"):], "rb") as fh:
        assert raw == fh.read() and raw != text.encode()


@pytest.mark.parametrize("codec, extension", [("org.apache.hadoop.io.compress.GzipCodec", ".gz"),
                                              ("org.apache.hadoop.io.compress.BZip2Codec", ".bz2"),
                                              ("org.apache.hadoop.io.compress.DefaultCodec", ".deflate"),
                                              ("gzip", ".gz"), ("bzip2", ".bz2"), ("deflate", ".deflate")])
def test_save_as_text_file_compresses_each_part(sc, tmp_path, codec, extension):
    lines = [f"record {i} \u00fc" for i in range(2000)]
    out = str(tmp_path / "out")
    sc.parallelize(lines, 3).saveAsTextFile(out, codec)
    parts = sorted(f for f in os.listdir(out) if f.startswith("part-"))
    assert parts == [f"part-0000{i}{extension}" for i in range(3)] and "_SUCCESS" in os.listdir(out)
    # Each part is a valid stream for the standard library's own decompressor.
    decoded = []
    for p in parts:
        with open(os.path.join(out, p), "rb") as fh:
            decoded += DECOMPRESS[extension](fh.read()).decode().splitlines()
    assert decoded == lines
    assert sc.textFile(out).collect() == lines


def test_an_unknown_codec_fails_before_writing(sc, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UnsupportedCodecError, match="SnappyCodec is not available"):
        sc.parallelize([1]).saveAsTextFile(str(out), "org.apache.hadoop.io.compress.SnappyCodec")
    assert not out.exists() and os.listdir(tmp_path) == []
    with pytest.raises(ValueError):  # UnsupportedCodecError is a ValueError too
        sc.parallelize([1]).saveAsTextFile(str(out), "zip")


@pytest.mark.parametrize("extension", [".snappy", ".lz4", ".zst"])
def test_input_compressed_by_a_codec_python_lacks_is_refused(sc, tmp_path, extension):
    (tmp_path / f"data{extension}").write_bytes(b"\x00\x01binary")
    with pytest.raises(UnsupportedCodecError, match="cannot read"):
        sc.textFile(str(tmp_path))


@pytest.mark.parametrize("extension, compress", [(".gz", gzip.compress), (".bz2", bz2.compress),
                                                 (".deflate", zlib.compress)])
def test_damaged_and_concatenated_compressed_files(sc, tmp_path, extension, compress):
    whole = compress(b"a\nb\n") + compress(b"c\n")  # two streams one after the other, as `cat` makes them
    (tmp_path / f"joined{extension}").write_bytes(whole)
    assert sc.textFile(str(tmp_path / f"joined{extension}")).collect() == ["a", "b", "c"]
    cut = compress(b"line\n" * 1000)
    (tmp_path / f"cut{extension}").write_bytes(cut[:len(cut) // 2])
    with pytest.raises(CorruptInputError, match=f"cut{extension} could not be decompressed"):
        sc.textFile(str(tmp_path / f"cut{extension}")).collect()
    (tmp_path / f"empty{extension}").write_bytes(b"")
    assert sc.textFile(str(tmp_path / f"empty{extension}")).collect() == []


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), extension=st.sampled_from([".gz", ".bz2", ".deflate"]),
       damage=st.integers(min_value=0, max_value=400))
def test_random_and_damaged_compressed_bytes_raise_only_corrupt_input(tmp_path_factory, data, extension, damage):
    compressor = {".gz": gzip.compress, ".bz2": bz2.compress, ".deflate": zlib.compress}[extension]
    path = str(tmp_path_factory.mktemp("fuzz") / f"f{extension}")
    for blob in (data, _flip(compressor(data), damage)):
        with open(path, "wb") as fh:
            fh.write(blob)
        try:
            read_input(path)
        except CorruptInputError:
            pass


def _flip(blob: bytes, at: int) -> bytes:
    if not blob:
        return blob
    i = at % len(blob)
    return blob[:i] + bytes([blob[i] ^ 0x5A]) + blob[i + 1:]


def test_input_paths_are_hadoops(tmp_path):
    for rel in ("a/1.txt", "a/2.log", "a/_hidden", "a/.dot", "b/3.txt", "c/x/4.txt", "d{e}/5.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    t = str(tmp_path)

    def rel(paths):
        return [os.path.relpath(p, t) for p in input_files(paths)]

    assert rel(f"{t}/a") == ["a/1.txt", "a/2.log"]  # a directory's files, hidden ones left out
    assert rel(f"{t}/a/_hidden") == ["a/_hidden"]  # a file named is read, hidden or not
    assert rel(f"{t}/*/*.txt") == ["a/1.txt", "b/3.txt", "d{e}/5.txt"]
    assert rel(f"{t}/{{a,b}}/*.txt") == ["a/1.txt", "b/3.txt"]
    assert rel(f"{t}/a/[^1]*") == ["a/2.log"]
    assert rel(f"{t}/a/?.txt,{t}/b") == ["a/1.txt", "b/3.txt"]  # comma-separated, in the order given
    assert rel(f"file://{t}/b/3.txt") == ["b/3.txt"]
    assert rel(f"{t}/c/*") == ["c/x/4.txt"]  # a directory a glob matched: its files
    assert rel(f"{t}/a/*") == ["a/1.txt", "a/2.log"]  # a glob matches no hidden file
    with pytest.raises(FileNotFoundError, match=r"Input path does not exist: file:.*/missing"):
        input_files(f"{t}/missing")
    with pytest.raises(FileNotFoundError, match=r"Input Pattern file:.*/a/\*\.csv matches 0 files"):
        input_files(f"{t}/a/*.csv")
    with pytest.raises(FileNotFoundError, match="local files only"):
        input_files("hdfs://namenode/data")


def test_text_file_takes_globs_and_lists(sc, tmp_path):
    (tmp_path / "logs").mkdir()
    for day in (1, 2, 3):
        (tmp_path / "logs" / f"2026-12-0{day}.log.gz").write_bytes(gzip.compress(f"day {day}\n".encode() * day))
    (tmp_path / "notes.txt").write_text("note\n")
    got = sc.textFile(f"{tmp_path}/logs/2026-12-0[12].log.gz,{tmp_path}/notes.txt").collect()
    assert got == ["day 1", "day 2", "day 2", "note"]
    assert sc.textFile(f"{tmp_path}/logs/*.gz").count() == 6


def test_text_file_stream_reads_compressed_files(sc, tmp_path):
    ssc = manual_context(sc, 1.0)
    seen: list[list[str]] = []
    ssc.textFileStream(str(tmp_path)).foreachRDD(lambda rdd: seen.append(sorted(rdd.collect())))
    ssc.start()
    try:
        (tmp_path / "a.gz").write_bytes(gzip.compress(b"x\ny\n"))
        (tmp_path / "b.bz2").write_bytes(bz2.compress(b"z\n"))
        (tmp_path / "c.txt").write_text("w\n")
        advance(ssc, 1)
    finally:
        ssc.stop(stopSparkContext=False)
    assert seen == [["w", "x", "y", "z"]]


def test_file_uris_name_the_same_files_for_input_and_output(sc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a URI taken for a relative path would land here
    out = tmp_path / "out"
    sc.parallelize(["a", "b"], 1).saveAsTextFile(f"file://{out}")
    assert (out / "part-00000").exists() and not (tmp_path / "file:").exists()
    for uri in (f"file://{out}", f"file:{out}", str(out)):
        assert sc.textFile(uri).collect() == ["a", "b"]
    with pytest.raises(ValueError, match="empty string"):
        sc.textFile("")
