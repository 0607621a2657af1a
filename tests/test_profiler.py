"""spark.python.profile (pystream/profiler.py): tasks run under cProfile, stats summed per RDD, on both
executors."""

from __future__ import annotations

import io
import pstats
import sys

import pytest

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY

EXECUTORS = ["inprocess", "process"]


def _context(kind, **settings):
    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, kind).set("spark.python.profile", "true")
    for key, value in settings.items():
        conf.set(key, value)
    return SparkContext("local[2]", "profiled", conf)


def square_slowly(x):
    return sum(range(50)) + x * x


def larger(a, b):  # a Python reducer (a + b would be recognised and run in C, never called)
    return a if a > b else b


def _calls(stats: pstats.Stats, name: str) -> int:
    return sum(v[1] for (_, _, fn), v in stats.stats.items() if fn == name)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", EXECUTORS)
def test_each_rdds_tasks_are_profiled_and_summed(kind, tmp_path, monkeypatch):
    sc = _context(kind)
    try:
        squares = sc.parallelize(range(1000), 4).map(square_slowly)
        assert squares.count() == 1000
        pairs = sc.parallelize(range(300), 3).map(lambda x: (x % 7, x)).reduceByKey(larger)
        assert sorted(pairs.collect()) == [(k, max(x for x in range(300) if x % 7 == k)) for k in range(7)]
        out = io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        sc.show_profiles()
        monkeypatch.undo()
        text = out.getvalue()
        assert f"Profile of RDD<id={squares.id()}>" in text and "square_slowly" in text
        sc.dump_profiles(str(tmp_path / "dump"))
        by_name = {p.name: pstats.Stats(str(p)) for p in (tmp_path / "dump").iterdir()}
        assert _calls(by_name[f"rdd_{squares.id()}.pstats"], "square_slowly") == 1000  # every task, once
        # The shuffle's map side ran larger() once per value but each partition's first of a key (300 - 3 * 7),
        # its merge once per key met in more than one partition.
        assert sum(_calls(s, "larger") for s in by_name.values()) >= 300 - 3 * 7
    finally:
        sc.stop()


def test_the_dump_setting_writes_at_stop(tmp_path):
    sc = _context("inprocess", **{"spark.python.profile.dump": str(tmp_path / "at-stop")})
    rdd = sc.parallelize(range(10), 2).map(square_slowly)
    rdd.collect()
    sc.stop()
    (path,) = (tmp_path / "at-stop").iterdir()
    assert path.name == f"rdd_{rdd.id()}.pstats" and _calls(pstats.Stats(str(path)), "square_slowly") == 10


def test_profiles_need_the_setting():
    sc = SparkContext("local[1]", "plain", SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "inprocess"))
    try:
        with pytest.raises(RuntimeError, match="spark.python.profile"):
            sc.show_profiles()
        with pytest.raises(RuntimeError, match="spark.python.profile"):
            sc.dump_profiles("anywhere")
    finally:
        sc.stop()
