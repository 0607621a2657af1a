"""Atomic text-directory output shared by RDD.saveAsTextFile and DStream.saveAsTextFiles.

A directory is written under a temporary name beside its target, with ``_SUCCESS`` last, then renamed into
place in one step, so readers see either no directory or a complete one, and a batch that runs again after a
failure finds its complete output already there instead of writing a second copy.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable

SUCCESS = "_SUCCESS"


def is_complete(path: str) -> bool:
    """Return whether ``path`` is a directory written completely (it holds ``_SUCCESS``)."""
    return os.path.isfile(os.path.join(path, SUCCESS))


def write_text_dir(path: str, partitions: Iterable[Iterable[str]], *, if_exists: str = "error") -> bool:
    """Write one ``part-NNNNN`` file per partition into the directory ``path``, atomically.

    ``if_exists``: "error" raises FileExistsError when ``path`` exists (Spark's saveAsTextFile); "skip" keeps a
    complete existing directory and replaces an incomplete one (re-run batches). Returns whether it wrote.
    """
    path = os.path.abspath(path)
    if os.path.exists(path):
        if if_exists == "error":
            raise FileExistsError(f"Output directory {path} already exists")
        if is_complete(path):
            return False
        shutil.rmtree(path, ignore_errors=True)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    os.makedirs(tmp)
    try:
        for i, lines in enumerate(partitions):
            with open(os.path.join(tmp, f"part-{i:05d}"), "w", encoding="utf-8") as fh:
                for line in lines:
                    fh.write(line)
                    fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
        with open(os.path.join(tmp, SUCCESS), "w"):
            pass
        try:
            os.rename(tmp, path)
        except OSError:
            # Someone else completed the same directory meanwhile (a concurrent re-run): theirs stands.
            if if_exists == "skip" and is_complete(path):
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True
