"""multiprocessing's temporary directory of a driver (``pymp-*``, where the forkserver's socket lives).

multiprocessing removes it when the driver exits; a killed driver leaves it behind. Its workers then remove
it (see worker.py); when they were killed too (a whole process group), the next driver does, as it does the
dead driver's shared-memory segments. A mark inside the directory names the driver's pid.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import shutil
import tempfile

from pystream.executor.shm import pid_alive

_MARK = "pystream-driver-"

#: (pid, path) of the directory this process made.
_made: tuple[int, str] | None = None


def of_this_driver() -> str | None:
    """multiprocessing's temporary directory, made now if need be, when this process made it; else None.

    A child forked from another Python process inherits its parent's directory, which must outlive the child:
    hence the pid. A directory that other code of this process made before pystream looked cannot be told
    from an inherited one, and is left alone.
    """
    global _made
    config = getattr(multiprocessing.current_process(), "_config", None)
    if not isinstance(config, dict):  # pragma: no cover - a multiprocessing without the attribute
        return None
    if "tempdir" not in config:
        # A temporary directory that cannot be written is no reason to refuse to start (the spawn start
        # method needs none): the directory is then simply not cleaned up after a killed driver.
        try:
            path = multiprocessing.util.get_temp_dir()
            with open(os.path.join(path, f"{_MARK}{os.getpid()}"), "x"):
                pass
        except OSError:
            return None
        _made = (os.getpid(), path)
    if _made is not None and _made == (os.getpid(), config.get("tempdir")):
        return _made[1]
    return None


def remove(path: str) -> None:
    """Remove a driver's directory (by a worker whose driver is gone); anything not a ``pymp-`` one stays."""
    if os.path.basename(path).startswith("pymp-"):
        shutil.rmtree(path, ignore_errors=True)


def remove_stale() -> list[str]:
    """Remove the directories of pystream drivers that no longer exist; return their paths."""
    removed = []
    try:
        entries = [e.path for e in os.scandir(tempfile.gettempdir()) if e.name.startswith("pymp-")]
    except OSError:
        return []
    for path in entries:
        try:
            marks = [n for n in os.listdir(path) if n.startswith(_MARK)]
        except OSError:  # gone meanwhile, or another user's
            continue
        pid = marks[0][len(_MARK):] if len(marks) == 1 else ""
        if pid.isdigit() and not pid_alive(int(pid)):
            remove(path)
            removed.append(path)
    return removed
