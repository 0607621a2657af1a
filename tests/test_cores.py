import errno
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from pystream.cores import cgroup_cpu_quota, usable_cores


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _mountinfo(tmp_path, *mounts):
    lines = [f"{30 + i} 1 0:{40 + i} {root} {point} rw,relatime shared:{i} - {fstype} cgroup {options}"
             for i, (root, point, fstype, options) in enumerate(mounts)]
    _write(tmp_path / "mountinfo", "\n".join(lines) + "\n")
    return str(tmp_path / "mountinfo")


def test_cgroup_v2_quota_is_the_smallest_along_the_path_to_the_mount(tmp_path):
    mnt = tmp_path / "cgroup v2"  # a space: mountinfo escapes it
    _write(mnt / "cpu.max", "max 100000\n")
    _write(mnt / "kubepods" / "cpu.max", "250000 100000\n")
    _write(mnt / "kubepods" / "pod1" / "cpu.max", "max 100000\n")
    _write(tmp_path / "cgroup", "0::/kubepods/pod1\n")
    info = _mountinfo(tmp_path, ("/", str(mnt).replace(" ", "\\040"), "cgroup2", "rw"))
    assert cgroup_cpu_quota(str(tmp_path / "cgroup"), info) == 2.5

    _write(mnt / "kubepods" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(str(tmp_path / "cgroup"), info) is None  # unlimited all the way up


def test_cgroup_v1_quota_read_where_a_container_mounts_its_own_cgroup(tmp_path):
    # Docker without a cgroup namespace: the container's cgroup is the root of the mount it sees.
    mnt = tmp_path / "cpu,cpuacct"
    _write(mnt / "cpu.cfs_quota_us", "50000\n")
    _write(mnt / "cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "cgroup", "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    info = _mountinfo(tmp_path, ("/docker/abc", str(mnt), "cgroup", "rw,cpu,cpuacct"),
                      ("/docker/abc", str(tmp_path / "memory"), "cgroup", "rw,memory"))
    assert cgroup_cpu_quota(str(tmp_path / "cgroup"), info) == 0.5
    # With a cgroup namespace the container calls its own cgroup "/": still the mount's root.
    _write(tmp_path / "cgroup", "4:cpu,cpuacct:/\n")
    assert cgroup_cpu_quota(str(tmp_path / "cgroup"), info) == 0.5

    _write(mnt / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_quota(str(tmp_path / "cgroup"), info) is None


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cgroup_cpu_quota(str(tmp_path / "missing"), str(tmp_path / "missing")) is None
    _write(tmp_path / "cgroup", "garbage\n")
    _write(tmp_path / "mountinfo", "not a mount line\n")
    assert cgroup_cpu_quota(str(tmp_path / "cgroup"), str(tmp_path / "mountinfo")) is None


def _cpu_cgroup_root():
    """A cgroup directory this test may create children in, with its version; None if there is none."""
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            point = fields[4]
            if tail[0] == "cgroup2" and os.path.exists(os.path.join(point, "cgroup.subtree_control")):
                with open(os.path.join(point, "cgroup.subtree_control")) as sc:
                    if "cpu" in sc.read().split() and os.access(point, os.W_OK):
                        return point, 2
            if tail[0] == "cgroup" and "cpu" in tail[2].split(",") and os.access(point, os.W_OK):
                return point, 1
    return None


def _set_quota(directory, version, cores):
    if version == 2:
        with open(os.path.join(directory, "cpu.max"), "w") as fh:
            fh.write(f"{int(cores * 100000)} 100000")
    else:
        with open(os.path.join(directory, "cpu.cfs_period_us"), "w") as fh:
            fh.write("100000")
        with open(os.path.join(directory, "cpu.cfs_quota_us"), "w") as fh:
            fh.write(str(int(cores * 100000)))


@pytest.mark.skipif(sys.platform != "linux", reason="control groups are Linux's")
def test_local_star_in_a_cgroup_limited_to_one_and_a_half_cores_runs_one_worker_and_one_thread():
    # A real cgroup with a real quota, set on the parent of the one the child process moves into: what a
    # container limited to 1.5 CPUs sees.
    found = _cpu_cgroup_root()
    if found is None:
        pytest.skip("no writable cgroup with the cpu controller here (needs root)")
    root, version = found
    parent = os.path.join(root, f"pystream-test-{uuid.uuid4().hex[:8]}")
    child = os.path.join(parent, "job")
    os.mkdir(parent)
    try:
        _set_quota(parent, version, 1.5)
        if version == 2:
            with open(os.path.join(parent, "cgroup.subtree_control"), "w") as fh:
                fh.write("+cpu")
        os.mkdir(child)
        code = textwrap.dedent(f"""
            import os
            with open({os.path.join(child, "cgroup.procs")!r}, "w") as fh:
                fh.write(str(os.getpid()))
            from pystream import SparkConf, SparkContext
            from pystream._core.partitioning import get_num_threads
            from pystream.cores import usable_cores
            sc = SparkContext("local[*]", "cgroup", SparkConf(loadDefaults=False))
            try:
                print(usable_cores(), sc.defaultParallelism, get_num_threads())
            finally:
                sc.stop()
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        # One worker, and the driver's partitioner on one thread.
        assert out.stdout.split() == ["1", "1", "1"]
    finally:
        for d in (child, parent):
            if os.path.isdir(d):
                _rmdir_when_empty(d)


def _rmdir_when_empty(cgroup):
    """Remove a cgroup once its last process has gone: multiprocessing's forkserver leaves a moment after the
    driver that started it has exited."""
    deadline = time.monotonic() + 10
    while True:
        try:
            os.rmdir(cgroup)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def test_usable_cores_is_at_most_the_affinity_and_at_least_one():
    n = usable_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota()
    if quota is not None:
        assert n <= max(1, int(quota))
