"""SparkContext.addFile / addPyFile and SparkFiles, on both executors."""

from __future__ import annotations

import os
import zipfile

import pytest

from pystream import SparkFiles
from pystream.errors import IllegalArgumentError


def _read(name):
    with open(SparkFiles.get(name)) as fh:
        return fh.read()


def test_added_files_are_read_by_tasks_from_a_copy(sc, tmp_path):
    src = tmp_path / "lookup-a.txt"
    src.write_text("v1")
    sc.addFile(str(src))
    src.write_text("v2")  # the tasks read the copy made when it was added
    assert sc.parallelize(range(4), 2).map(lambda _: _read("lookup-a.txt")).collect() == ["v1"] * 4
    assert _read("lookup-a.txt") == "v1" and SparkFiles.get("lookup-a.txt") != str(src)
    assert os.path.dirname(SparkFiles.get("lookup-a.txt")) == SparkFiles.getRootDirectory()
    sc.addFile(str(src))  # the same path again: nothing happens
    other = tmp_path / "other"
    other.mkdir()
    (other / "lookup-a.txt").write_text("x")
    with pytest.raises(IllegalArgumentError, match="already registered with a different path"):
        sc.addFile(str(other / "lookup-a.txt"))
    with pytest.raises(FileNotFoundError):
        sc.addFile(str(tmp_path / "missing.txt"))
    with pytest.raises(IllegalArgumentError, match="local path"):
        sc.addFile("http://example.com/x.txt")
    uri = tmp_path / "lookup-uri-a.txt"
    uri.write_text("u")
    sc.addFile(f"file://{uri}")
    assert sc.parallelize([0], 1).map(lambda _: _read("lookup-uri-a.txt")).collect() == ["u"]


def test_directories_need_recursive(sc, tmp_path):
    d = tmp_path / "models-b"
    d.mkdir()
    (d / "m1").write_text("1")
    (d / "m2").write_text("2")
    with pytest.raises(IllegalArgumentError, match="recursive is not turned on"):
        sc.addFile(str(d))
    sc.addFile(str(d), recursive=True)
    listed = sc.parallelize([0], 1).map(lambda _: sorted(os.listdir(SparkFiles.get("models-b")))).collect()
    assert listed == [["m1", "m2"]]


def test_py_files_and_archives_are_importable_in_tasks(sc, tmp_path):
    mod = tmp_path / "pystream_test_helper_c.py"
    mod.write_text("def triple(x):\n    return 3 * x\n")
    archive = tmp_path / "deps_c.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("pystream_test_pkg_c/__init__.py", "GREETING = 'hello'\n")

    def use(x):
        import pystream_test_helper_c
        import pystream_test_pkg_c

        return (pystream_test_helper_c.triple(x), pystream_test_pkg_c.GREETING)

    sc.addPyFile(str(mod))
    sc.addPyFile(str(archive))
    assert sc.parallelize([1, 2], 2).map(use).collect() == [(3, "hello"), (6, "hello")]
