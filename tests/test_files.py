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


def _tar(path, members):
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_added_archives_are_unpacked_for_every_task(sc, tmp_path):
    with zipfile.ZipFile(tmp_path / "model-a.zip", "w") as zf:
        zf.writestr("weights/a.txt", "zipped")
    _tar(tmp_path / "model-b.tar.gz", {"b.txt": b"tarred"})
    sc.addArchive(str(tmp_path / "model-a.zip"))
    sc.addArchive(str(tmp_path / "model-b.tar.gz"))

    def read_both(_):
        with open(os.path.join(SparkFiles.get("model-a.zip"), "weights", "a.txt")) as a, \
                open(os.path.join(SparkFiles.get("model-b.tar.gz"), "b.txt")) as b:
            return a.read() + "+" + b.read()

    assert sc.parallelize(range(2), 2).map(read_both).collect() == ["zipped+tarred"] * 2
    archives = [os.path.basename(a) for a in sc.listArchives]
    assert "model-a.zip" in archives and "model-b.tar.gz" in archives
    assert not {os.path.basename(f) for f in sc.listFiles} & {"model-a.zip", "model-b.tar.gz"}


def test_an_archive_with_members_outside_its_directory_is_refused(sc, tmp_path):
    with zipfile.ZipFile(tmp_path / "evil-a.zip", "w") as zf:
        zf.writestr("../escaped.txt", "no")
    _tar(tmp_path / "evil-b.tgz", {"../../escaped.txt": b"no"})
    (tmp_path / "plain-c.rar").write_bytes(b"x")
    for name in ("evil-a.zip", "evil-b.tgz", "plain-c.rar"):
        with pytest.raises(IllegalArgumentError):
            sc.addArchive(str(tmp_path / name))
    assert not list(tmp_path.parent.rglob("escaped.txt"))
    assert not {os.path.basename(a) for a in sc.listArchives} & {"evil-a.zip", "evil-b.tgz", "plain-c.rar"}
