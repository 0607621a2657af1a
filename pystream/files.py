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
import sys

from pystream.errors import IllegalStateError


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


def install(root: str | None, python_paths: list[str]) -> None:
    """Make this process see the added files: SparkFiles' directory, and each python path first on sys.path."""
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
