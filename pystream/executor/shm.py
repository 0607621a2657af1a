"""POSIX shared-memory segments owned by pystream.

Segments are named ``ps_<driver pid>_<owner>_<n>`` so that everything one driver made can be found and removed:
by the driver at stop, by the driver for a worker that died, and by the workers themselves if the driver dies.
multiprocessing.shared_memory is not used because in Python 3.11 every attach registers the segment with a
resource tracker that unlinks it (and warns) when the attaching process exits.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import threading

from pystream.errors import SharedMemoryFullError

try:
    import _posixshmem
except ImportError:  # pragma: no cover - non-POSIX
    _posixshmem = None

SHM_DIR = "/dev/shm"
_counter = itertools.count()
_lock = threading.Lock()


def prefix_for(driver_pid: int) -> str:
    return f"ps_{driver_pid}_"


def new_name(driver_pid: int, owner: str) -> str:
    with _lock:
        n = next(_counter)
    return f"{prefix_for(driver_pid)}{owner}_{os.getpid()}_{n}"


class Segment:
    """A mapped shared-memory segment; ``unlink()`` removes the name, ``close()`` the mapping."""

    __slots__ = ("name", "size", "_mm", "_owner", "__weakref__")

    def __init__(self, name: str, size: int, mm: mmap.mmap, owner: bool) -> None:
        self.name, self.size, self._mm, self._owner = name, size, mm, owner

    @classmethod
    def create(cls, name: str, size: int) -> Segment:
        size = max(int(size), 1)
        fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            _reserve(fd, size)
            mm = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            _posixshmem.shm_unlink("/" + name)
            raise
        os.close(fd)
        return cls(name, size, mm, True)

    @classmethod
    def attach(cls, name: str) -> Segment:
        fd = _posixshmem.shm_open("/" + name, os.O_RDWR, 0o600)
        try:
            size = os.fstat(fd).st_size
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        return cls(name, size, mm, False)

    @property
    def buf(self) -> memoryview:
        return memoryview(self._mm)

    def close(self) -> None:
        mm, self._mm = self._mm, None
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # a view is still exported; the mapping goes with the last view
                pass

    def unlink(self) -> None:
        unlink(self.name)


def _reserve(fd: int, size: int) -> None:
    """Make sure writing the segment's ``size`` bytes cannot fail. A write into a merely truncated segment that
    /dev/shm has no room for kills the writer with SIGBUS (Docker gives containers 64 MB of it by default).
    With room to spare the segment stays sparse: a frame's segment is sized for its largest possible
    encoding, twice what it usually takes, and only the pages written take memory. Short of room, the pages
    are reserved now, and what cannot be reserved raises SharedMemoryFullError. (Segments made sparse at the
    same time by other processes may still take the room; the check makes that rare, not impossible.)"""
    if has_room(size):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            free = _free_bytes()
            raise SharedMemoryFullError(
                f"{SHM_DIR} has no room for {size} more bytes ({free} free): give the machine or container more "
                "shared memory (docker run --shm-size=...), or process smaller batches") from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def has_room(size: int) -> bool:
    """Whether /dev/shm has room to spare for ``size`` more bytes (twice that free)."""
    free = _free_bytes()
    return not isinstance(free, int) or free >= 2 * size


def _free_bytes() -> int | str:
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return "unknown"
    return st.f_bavail * st.f_frsize


def unlink(name: str) -> None:
    try:
        _posixshmem.shm_unlink("/" + name)
    except FileNotFoundError:
        pass


def remove_stale() -> list[str]:
    """Unlink segments left by drivers that no longer exist (a whole process group killed at once leaves no
    one to clean up); returns the names removed. A live driver's segments are never touched."""
    try:
        names = [n for n in os.listdir(SHM_DIR) if n.startswith("ps_")]
    except FileNotFoundError:  # pragma: no cover - no /dev/shm
        return []
    removed = []
    for n in names:
        pid = n.split("_", 2)[1]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        unlink(n)
        removed.append(n)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists and has not ended (another user's counts as alive: not ours to judge).
    A zombie has ended: a driver killed a moment ago is one until its parent reaps it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours to judge
        return True
    fields = proc_stat(pid)
    return fields is None or fields[0] != "Z"


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...); None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) >= 2 else None


def remove_with_prefix(prefix: str) -> list[str]:
    """Unlink every segment whose name starts with ``prefix``; return the names removed."""
    try:
        names = [n for n in os.listdir(SHM_DIR) if n.startswith(prefix)]
    except FileNotFoundError:  # pragma: no cover - no /dev/shm
        return []
    for n in names:
        unlink(n)
    return names
