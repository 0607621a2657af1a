"""The arena cache of worker processes (pystream._core.memory)."""

import subprocess
import sys
import textwrap

import pytest

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_freed_arenas_are_reused_and_objects_stay_intact():
    # A fresh interpreter: the cache is installed in worker processes only, never in the test's own process.
    out = run_python("""
        from pystream._core.memory import install_arena_cache, arena_cache_stats, ARENA_SIZE
        install_arena_cache(32 * ARENA_SIZE)
        for round in range(3):
            data = [("key%d" % i, i * 1.5, (i, str(i))) for i in range(300_000)]
            assert data[123_456] == ("key123456", 123_456 * 1.5, (123_456, "123456"))
            del data
        s = arena_cache_stats()
        assert s["installed"] and s["capacity"] == 32, s
        assert s["hits"] >= 32 * 2, s          # later rounds took arenas the earlier ones freed
        assert 0 < s["cached"] <= 32, s         # never more than the capacity kept
        assert s["released"] > 0, s             # the rest went back to the system
        install_arena_cache(0)                  # lowering the capacity unmaps what is over it
        assert arena_cache_stats()["cached"] == 0
        print("ok")
    """)
    assert out.strip() == "ok"


def test_negative_capacity_is_refused():
    from pystream._core.memory import install_arena_cache

    with pytest.raises(ValueError):
        install_arena_cache(-1)


def arena_stats(_it):
    from pystream._core.memory import arena_cache_stats

    return [arena_cache_stats()]


def test_workers_run_with_the_configured_cache():
    conf = (SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "process")
            .set("spark.pystream.worker.arenaCacheMB", "8"))
    sc = SparkContext("local[2]", "arena-cache", conf)
    try:
        sc.parallelize(range(200_000), 2).map(lambda x: (str(x), x)).count()
        stats = sc.parallelize([0, 1], 2).mapPartitions(arena_stats).collect()
    finally:
        sc.stop()
    assert [s["installed"] for s in stats] == [True, True]
    assert all(s["capacity"] == 8 for s in stats)
