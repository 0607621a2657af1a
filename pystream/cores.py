"""How many cores this process may use: its CPU affinity, capped by the CPU quota of its control group.

A container limited to 2 CPUs on a 64-core host (Kubernetes ``limits: cpu: 2``, ``docker run --cpus 2``) sees
all 64 cores in its affinity; the kernel then throttles it to 2 cores' worth of time per period. Starting a
worker per visible core there would run 64 processes in the time of 2. So the quota counts too, as the JVM
and Go's automaxprocs count it: ``quota / period`` of the process's cgroup or of any cgroup above it (the
smallest), rounded down, at least 1. Both cgroup versions are read: v2's ``cpu.max`` and v1's
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``.
"""

from __future__ import annotations

import logging
import math
import os

logger = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (what taskset or a container's cpuset allows), or
    the machine's count where the platform has no affinity, capped by its cgroup's CPU quota."""
    if hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return n


def cgroup_cpu_quota(proc_cgroup: str = "/proc/self/cgroup",
                     mountinfo: str = "/proc/self/mountinfo") -> float | None:
    """The CPU time this process's cgroups allow it per unit of time, in cores (1.5: one and a half cores'
    worth), the smallest along its cgroup and the cgroups above it; None where no quota is set or none can be
    read (no cgroups, another platform). The files are parameters for tests; they default to this process's."""
    try:
        with open(proc_cgroup) as fh:
            memberships = [line.rstrip("\n").split(":", 2) for line in fh if line.count(":") >= 2]
        with open(mountinfo) as fh:
            mounts = [_parse_mount(line) for line in fh]
    except OSError:
        return None
    limits = []
    for hierarchy_id, controllers, path in memberships:
        if hierarchy_id == "0" and controllers == "":
            version = 2
        elif "cpu" in controllers.split(","):
            version = 1
        else:
            continue
        for root, point, fstype, options in mounts:
            if version == 2 and fstype != "cgroup2":
                continue
            if version == 1 and (fstype != "cgroup" or "cpu" not in options.split(",")):
                continue
            limit = _quota_along(point, _relative(path, root), version)
            if limit is not None:
                limits.append(limit)
            break
    return min(limits) if limits else None


def _parse_mount(line: str) -> tuple[str, str, str, str]:
    # "36 35 98:0 <root> <mount point> <options> [optional fields] - <fstype> <source> <super options>"
    left, _, right = line.partition(" - ")
    fields, tail = left.split(), right.split()
    if len(fields) < 5 or len(tail) < 3:
        return ("", "", "", "")
    return (_unescape(fields[3]), _unescape(fields[4]), tail[0], tail[2])


def _unescape(field: str) -> str:
    # mountinfo writes a space, tab, newline and backslash in a path as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _relative(path: str, root: str) -> str:
    """The cgroup ``path`` below a mount of the hierarchy's ``root``; the mount's own root when the path is not
    under it (a container that sees only its own cgroup, mounted at its root, reads its limits there)."""
    root = root.rstrip("/")
    if not root:
        return path
    if path == root or path.startswith(root + "/"):
        return path[len(root):] or "/"
    return "/"


def _quota_along(mount_point: str, path: str, version: int) -> float | None:
    """The smallest quota from the cgroup directory of ``path`` up to the mount point, in cores."""
    directory = os.path.normpath(os.path.join(mount_point, path.lstrip("/")))
    top = os.path.normpath(mount_point)
    limits = []
    while True:
        limit = _read_quota(directory, version)
        if limit is not None:
            limits.append(limit)
        if directory == top or not directory.startswith(top):
            break
        directory = os.path.dirname(directory)
    return min(limits) if limits else None


def _read_quota(directory: str, version: int) -> float | None:
    try:
        if version == 2:
            with open(os.path.join(directory, "cpu.max")) as fh:
                quota, _, period = fh.read().strip().partition(" ")
        else:
            with open(os.path.join(directory, "cpu.cfs_quota_us")) as fh:
                quota = fh.read().strip()
            with open(os.path.join(directory, "cpu.cfs_period_us")) as fh:
                period = fh.read().strip()
    except OSError:
        return None
    try:
        if quota == "max" or int(quota) <= 0 or int(period or 0) <= 0:
            return None  # unlimited (v2 "max", v1 -1)
        return int(quota) / int(period)
    except ValueError:
        logger.debug("unreadable CPU quota in %s: %r / %r", directory, quota, period)
        return None
