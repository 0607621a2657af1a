"""What a SparkContext gives its tasks from its constructor: environment variables (environment=...,
spark.executorEnv.*), pyFiles (and spark.submit.pyFiles), and setSystemProperty's defaults; on both executors."""

from __future__ import annotations

import os

import pytest

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY

EXECUTORS = ["inprocess", "process"]


def _env(name):
    return os.environ.get(name)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_tasks_see_the_environment_the_context_was_given(kind):
    assert "PS_TEST_COLOUR" not in os.environ and "PS_TEST_SIZE" not in os.environ
    conf = (SparkConf(loadDefaults=False).set(EXECUTOR_KEY, kind)
            .set("spark.executorEnv.PS_TEST_COLOUR", "blue").set("spark.executorEnv.PS_TEST_SIZE", "s"))
    sc = SparkContext("local[2]", "env", conf, environment={"PS_TEST_SIZE": "xl"})
    try:
        assert sc.environment == {"PS_TEST_COLOUR": "blue", "PS_TEST_SIZE": "xl"}  # the argument wins
        got = sc.parallelize(range(4), 2).map(lambda _: (_env("PS_TEST_COLOUR"), _env("PS_TEST_SIZE"))).collect()
        assert got == [("blue", "xl")] * 4
    finally:
        sc.stop()
    assert "PS_TEST_COLOUR" not in os.environ and "PS_TEST_SIZE" not in os.environ  # the driver's is as it was


@pytest.mark.parametrize("kind", EXECUTORS)
def test_py_files_given_to_the_context_are_importable_in_tasks(kind, tmp_path):
    (tmp_path / "ps_dep_one.py").write_text("VALUE = 'one'\n")
    (tmp_path / "ps_dep_two.py").write_text("VALUE = 'two'\n")
    conf = (SparkConf(loadDefaults=False).set(EXECUTOR_KEY, kind)
            .set("spark.submit.pyFiles", str(tmp_path / "ps_dep_two.py")))
    sc = SparkContext("local[2]", "pyfiles", conf, pyFiles=[str(tmp_path / "ps_dep_one.py")])
    try:
        def values(_):
            import ps_dep_one
            import ps_dep_two

            return ps_dep_one.VALUE + ps_dep_two.VALUE

        assert sc.parallelize(range(2), 2).map(values).collect() == ["onetwo", "onetwo"]
        assert sorted(os.path.basename(f) for f in sc.listFiles) == ["ps_dep_one.py", "ps_dep_two.py"]
    finally:
        sc.stop()


def test_a_missing_py_file_fails_the_context_and_leaves_none_active(tmp_path):
    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "inprocess")
    with pytest.raises(FileNotFoundError):
        SparkContext("local[1]", "bad", conf, pyFiles=[str(tmp_path / "missing.py")])
    SparkContext("local[1]", "next", conf).stop()  # no context was left active


def test_system_properties_are_the_defaults_of_a_conf(monkeypatch):
    from pystream import context

    monkeypatch.setattr(context, "_system_properties", {})
    SparkContext.setSystemProperty("spark.app.name", "from-system")
    SparkContext.setSystemProperty("other.key", "ignored")
    assert SparkConf().get("spark.app.name") == "from-system"
    assert SparkConf().get("other.key") is None  # only spark.* keys, as Spark's
    assert SparkConf(loadDefaults=False).get("spark.app.name") is None
    assert SparkConf().set("spark.app.name", "mine").get("spark.app.name") == "mine"
