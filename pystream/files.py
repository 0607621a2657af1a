"""Files shipped with ``SparkContext.addFile`` and ``addPyFile``, as the driver and tasks find them (pyspark's
``SparkFiles``).

The context copies each added file into a directory of its own, inside the driver's multiprocessing temporary
directory (so a killed driver's copies go with it, see pystream.executor.tempdir), and removes it on stop().
Every process of the context (driver and workers, replacements included) is told that directory and the
python paths ``addPyFile`` added: a .py file's directory, or a .zip, .egg or .whl archive itself.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tarfile
import zipfile

from pystream.errors import IllegalArgumentError, IllegalStateError


class SparkFiles:
    """Where the files added with ``SparkContext.addFile`` are, in the driver and in tasks."""

    _root: str | None = None

    @classmethod
    def get(cls, filename: str) -> str:
        """Return the path of the copy of an added file (or directory) named ``filename``."""
        return os.path.join(cls.getRootDirectory(), filename)

    @classmethod
    def getRootDirectory(cls) -> str:
        """Return the directory holding the copies of added files."""
        if cls._root is None:
            raise IllegalStateError("No file was added with SparkContext.addFile or addPyFile")
        return cls._root


_ARCHIVE_FORMATS = {".zip": "zip", ".jar": "zip", ".tar": "tar", ".tar.gz": "gztar", ".tgz": "gztar"}


def unpack_archive(src: str, dest: str) -> None:
    """Unpack the archive ``src`` into the new directory ``dest`` (addArchive). ValueError for a format it does
    not know (by its name's ending) or a member that would land outside ``dest``."""
    kind = next((f for end, f in _ARCHIVE_FORMATS.items() if src.lower().endswith(end)), None)
    if kind is None:
        raise IllegalArgumentError(f"{src} is not an archive addArchive can unpack ({', '.join(_ARCHIVE_FORMATS)})")
    os.makedirs(dest)
    try:
        if kind == "zip":
            with zipfile.ZipFile(src) as zf:
                for member in zf.namelist():
                    target = os.path.realpath(os.path.join(dest, member))
                    if os.path.isabs(member) or not target.startswith(os.path.realpath(dest) + os.sep):
                        raise IllegalArgumentError(f"archive {src} has a member outside its directory: {member!r}")
                zf.extractall(dest)
        else:
            with tarfile.open(src) as tf:
                try:
                    tf.extractall(dest, filter="data")  # refuses absolute paths, "..", links out of dest
                except tarfile.FilterError as exc:
                    raise IllegalArgumentError(f"archive {src} has a member outside its directory: {exc}") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def install(root: str | None, python_paths: list[str], environment: dict[str, str] | None = None) -> None:
    """Make this process see the added files: SparkFiles' directory, and each python path first on sys.path;
    and set the tasks' environment variables (a worker's)."""
    os.environ.update(environment or {})
    SparkFiles._root = root
    added = False
    for path in reversed(python_paths):
        if path not in sys.path:
            sys.path.insert(0, path)
            added = True
    if added:
        importlib.invalidate_caches()


def uninstall(python_paths: list[str]) -> None:
    """Undo ``install`` (a stopped context's files are gone)."""
    SparkFiles._root = None
    for path in python_paths:
        while path in sys.path:
            sys.path.remove(path)
    importlib.invalidate_caches()
