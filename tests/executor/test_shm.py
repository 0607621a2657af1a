"""Shared-memory segments when /dev/shm is short: a typed error, never a SIGBUS, and nothing left behind.

Each test runs a driver in a mount namespace of its own, with a small tmpfs on /dev/shm (as a container gets:
Docker's default is 64 MB), so the machine's /dev/shm is not touched.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest

DRIVER = textwrap.dedent("""
    import os
    from pystream import SparkConf, SparkContext
    from pystream.errors import SharedMemoryFullError
    sc = SparkContext("local[2]", "small-shm", SparkConf(loadDefaults=False).set("spark.pystream.executor", "process"))
    try:
        # 30 MB of records in 40 MB: encoded exactly, not in segments sized for twice their estimate.
        print("fits", sc.parallelize(["x" * 1000] * 30000, 2).map(len).sum(), flush=True)
        try:
            sc.parallelize(range(3_000_000), 2).map(lambda x: (x, str(x) * 5)).groupByKey().count()
        except SharedMemoryFullError as exc:
            print("full", isinstance(exc, MemoryError), "/dev/shm has no room" in str(exc), flush=True)
        print("after", sc.parallelize(range(100), 2).sum(), flush=True)
    finally:
        sc.stop()
    print("left", sorted(os.listdir("/dev/shm")), flush=True)
""")


def _small_shm_available() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /dev/shm"], capture_output=True)
    return probe.returncode == 0


def test_a_short_dev_shm_gives_a_typed_error_and_the_context_goes_on():
    if not _small_shm_available():
        pytest.skip("needs unshare and mount (root) to give a driver a small /dev/shm of its own")
    script = f"mount -t tmpfs -o size=40m tmpfs /dev/shm && exec {shlex.quote(sys.executable)} -c {shlex.quote(DRIVER)}"
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines == ["fits 30000000", "full True True", "after 4950", "left []"], out.stdout + out.stderr[-2000:]
