"""SparkConf and SparkContext behaviour.

Every test creates its own contexts and stops them (finally blocks / the ``make_sc`` fixture); the module-scoped
``sc`` fixture is deliberately not used here, since only one SparkContext may be active at a time.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY, parse_master
from pystream.cores import usable_cores
from pystream.errors import IllegalArgumentError, IllegalStateError, PyStreamError
from pystream.rdd import RDD


def _conf() -> SparkConf:
    return SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "inprocess")


@pytest.fixture(autouse=True)
def no_active_context():
    """Each test starts and ends with no active SparkContext (a leaked one is stopped and reported)."""
    assert SparkContext._active_spark_context is None, "a SparkContext was left active before this test"
    yield
    leaked = SparkContext._active_spark_context
    if leaked is not None:
        leaked.stop()
        pytest.fail(f"test left {leaked!r} active")


@pytest.fixture
def make_sc():
    """Factory of SparkContexts that are all stopped after the test."""
    made: list[SparkContext] = []

    def make(master: str | None = "local[2]", appName: str | None = "ctx-test", conf: SparkConf | None = None):
        ctx = SparkContext(master, appName, conf if conf is not None else _conf())
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.stop()


# -- SparkConf --------------------------------------------------------------------------------------------
def test_conf_setters_chain_and_getters():
    conf = SparkConf(loadDefaults=False)
    assert conf.setMaster("local[3]") is conf
    assert conf.setAppName("app").set("a.b", 5).set("flag", True).setIfMissing("a.b", 9) is conf
    assert conf.get("spark.master") == "local[3]"
    assert conf.get("spark.app.name") == "app"
    assert conf.get("a.b") == "5"
    assert conf.get("flag") == "true"
    assert conf.get("missing") is None
    assert conf.get("missing", "d") == "d"
    assert conf.getInt("a.b", 0) == 5 and conf.getInt("nope", 7) == 7
    assert conf.getFloat("a.b", 0.0) == 5.0 and conf.getFloat("nope", 1.5) == 1.5
    assert conf.getBoolean("flag", False) is True and conf.getBoolean("nope", True) is True
    assert conf.contains("a.b") and not conf.contains("nope")
    conf.setAll([("x", 1), ("y", "z")])
    assert dict(conf.getAll()) == {"spark.master": "local[3]", "spark.app.name": "app", "a.b": "5", "flag": "true",
                                   "x": "1", "y": "z"}
    assert conf.toDebugString().splitlines() == sorted(f"{k}={v}" for k, v in conf.getAll())
    copy = conf.copy()
    copy.set("x", 2)
    assert conf.get("x") == "1" and copy.get("x") == "2"


def test_conf_load_defaults_from_environment(monkeypatch):
    monkeypatch.setenv("PYSTREAM_CONF_SPARK_APP_NAME", "from-env")
    assert SparkConf().get("spark.app.name") == "from-env"
    assert SparkConf(loadDefaults=False).get("spark.app.name") is None
    # Explicit settings win over the environment.
    assert SparkConf().setAppName("explicit").get("spark.app.name") == "explicit"


# -- master URLs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("master,expected", [
    ("local", 1), ("local[1]", 1), ("local[2]", 2), ("local[16]", 16), ("local[*]", usable_cores()),
    ("local[4,3]", 4), ("local[*, 2]", usable_cores()), ("  local[3] ", 3),
])
def test_parse_master(master, expected):
    assert parse_master(master) == expected


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="the platform has no CPU affinity")
def test_local_star_counts_the_cores_this_process_may_use():
    # A child pinned to one core (as taskset or a container's cpuset would) gets one partition per usable core,
    # not one per core of the machine; run on a real affinity, in a child so this process keeps its own.
    code = (
        "import os\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from pystream import SparkConf, SparkContext\n"
        "from pystream.context import parse_master\n"
        "sc = SparkContext('local[*]', 'pinned', SparkConf(loadDefaults=False).set('spark.pystream.executor', "
        "'inprocess'))\n"
        "print(parse_master('local[*]'), sc.defaultParallelism, sc.parallelize(range(10)).getNumPartitions())\n"
        "sc.stop()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "1"]


@pytest.mark.parametrize("master", ["spark://host:7077", "yarn", "mesos://m:5050", "local[0]", "local[-1]",
                                    "local[abc]", "local[]", "localhost", "local[2", " ", "LOCAL[2]x", "k8s://x"])
def test_bad_master_urls(master):
    with pytest.raises(ValueError, match="Master URL|threads"):
        parse_master(master)
    with pytest.raises(ValueError):
        SparkContext(master, "bad", _conf())
    # A failed constructor leaves no active context behind.
    assert SparkContext._active_spark_context is None


@pytest.mark.parametrize("master,expected", [("local", 1), ("local[3]", 3), ("local[*]", usable_cores())])
def test_default_parallelism(make_sc, master, expected):
    ctx = make_sc(master)
    assert ctx.defaultParallelism == expected
    assert ctx.defaultMinPartitions == min(expected, 2)
    assert ctx.master == master
    assert ctx.parallelize(range(100)).getNumPartitions() == expected


@pytest.mark.parametrize("kind", ["inprocess", "process"])
def test_spark_default_parallelism_sets_the_partitions_of_parallelize_and_of_shuffles(make_sc, kind):
    import operator

    ctx = make_sc("local[2]", "parallelism", SparkConf(loadDefaults=False).set(EXECUTOR_KEY, kind)
                  .set("spark.default.parallelism", "3"))
    assert ctx.defaultParallelism == 3 and ctx.defaultMinPartitions == 2
    pairs = ctx.parallelize([(k % 4, k) for k in range(20)])
    assert pairs.getNumPartitions() == 3
    five = ctx.parallelize([(k % 4, k) for k in range(20)], 5)
    # pyspark's _defaultReducePartitions: the setting, not the parent's 5 partitions.
    for rdd in (five.reduceByKey(operator.add), five.groupByKey(), five.sortByKey(), five.join(pairs)):
        assert rdd.getNumPartitions() == 3
    assert dict(five.reduceByKey(operator.add).collect()) == {k: sum(range(k, 20, 4)) for k in range(4)}
    if kind == "process":
        assert len(ctx.executor.worker_pids) == 2  # the workers stay as many as local[2] says


@pytest.mark.parametrize("bad", ["0", "-1", "many"])
def test_a_bad_spark_default_parallelism_is_refused(bad):
    with pytest.raises(ValueError, match="spark.default.parallelism must be a positive integer"):
        SparkContext("local[2]", "bad", _conf().set("spark.default.parallelism", bad))
    assert SparkContext._active_spark_context is None


@pytest.mark.parametrize("kind", ["inprocess", "process"])
def test_stopping_the_context_while_jobs_run_raises_illegal_state(make_sc, kind):
    import threading
    import time

    ctx = make_sc("local[2]", "stop-mid-job", SparkConf(loadDefaults=False).set(EXECUTOR_KEY, kind))

    def slow(x):
        time.sleep(0.02)
        return x

    stopper = threading.Thread(target=lambda: (time.sleep(0.3), ctx.stop()))
    stopper.start()
    try:
        with pytest.raises(IllegalStateError, match="stopped"):
            for _ in range(500):
                ctx.parallelize(range(20), 2).map(slow).count()
    finally:
        stopper.join(10)


def test_parse_master_empty():
    with pytest.raises(ValueError):
        parse_master("")


def test_master_and_app_name_from_conf(make_sc):
    ctx = make_sc(None, None, _conf().setMaster("local[3]").setAppName("from-conf"))
    assert ctx.master == "local[3]" and ctx.appName == "from-conf"
    assert ctx.defaultParallelism == 3
    assert ctx.getConf().get("spark.master") == "local[3]"


def test_arguments_override_conf_and_conf_is_copied(make_sc):
    conf = _conf().setMaster("local[3]").setAppName("conf-name")
    ctx = make_sc("local[2]", "arg-name", conf)
    assert ctx.master == "local[2]" and ctx.appName == "arg-name"
    assert conf.get("spark.master") == "local[3]"  # the caller's conf is not changed
    got = ctx.getConf()
    got.set("spark.master", "local[9]")
    assert ctx.getConf().get("spark.master") == "local[2]"


def test_defaults_without_master(make_sc):
    ctx = make_sc(None, None, _conf())
    assert ctx.master == "local[*]"
    assert ctx.appName == "pystream"
    assert ctx.defaultParallelism == usable_cores()


def test_bad_executor_kind():
    with pytest.raises(ValueError, match=EXECUTOR_KEY):
        SparkContext("local[2]", "x", SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "threads"))
    assert SparkContext._active_spark_context is None


# -- one active context -----------------------------------------------------------------------------------
def test_only_one_active_context():
    first = SparkContext("local[2]", "first", _conf())
    try:
        with pytest.raises(ValueError, match="Cannot run multiple SparkContexts at once") as info:
            SparkContext("local[1]", "second", _conf())
        assert "first" in str(info.value)
        assert SparkContext._active_spark_context is first
        assert first.parallelize([1, 2]).collect() == [1, 2]  # the first still works
    finally:
        first.stop()
    second = SparkContext("local[1]", "second", _conf())
    try:
        assert SparkContext._active_spark_context is second
    finally:
        second.stop()
    assert SparkContext._active_spark_context is None


def test_get_or_create():
    conf = _conf().setMaster("local[3]").setAppName("goc")
    ctx = SparkContext.getOrCreate(conf)
    try:
        assert isinstance(ctx, SparkContext)
        assert ctx.appName == "goc" and ctx.defaultParallelism == 3
        assert SparkContext.getOrCreate() is ctx
        # The active one is returned whatever conf is passed.
        assert SparkContext.getOrCreate(_conf().setMaster("local[1]").setAppName("other")) is ctx
    finally:
        ctx.stop()
    again = SparkContext.getOrCreate(_conf().setMaster("local[1]"))
    try:
        assert again is not ctx
        assert again.defaultParallelism == 1
    finally:
        again.stop()


def test_get_or_create_with_existing_constructed_context():
    ctx = SparkContext("local[2]", "constructed", _conf())
    try:
        assert SparkContext.getOrCreate() is ctx
    finally:
        ctx.stop()


# -- stop -------------------------------------------------------------------------------------------------
def test_stop_is_idempotent_and_calls_fail_after():
    ctx = SparkContext("local[2]", "stopper", _conf())
    rdd = ctx.parallelize(range(10), 2).map(lambda x: x + 1)
    try:
        assert rdd.count() == 10
    finally:
        ctx.stop()
    ctx.stop()  # idempotent
    ctx.stop()
    assert SparkContext._active_spark_context is None
    for call in (lambda: ctx.parallelize([1]), lambda: ctx.range(3), lambda: ctx.executor, lambda: rdd.collect(),
                 lambda: rdd.count(), lambda: ctx.emptyRDD(), lambda: ctx.union([rdd]), lambda: ctx.broadcast(1),
                 lambda: ctx.textFile(__file__)):
        with pytest.raises(IllegalStateError, match="stopped SparkContext"):
            call()
    err = IllegalStateError("x")
    assert isinstance(err, RuntimeError) and isinstance(err, PyStreamError)


def test_stop_of_old_context_does_not_clear_new_one():
    old = SparkContext("local[1]", "old", _conf())
    old.stop()
    new = SparkContext("local[1]", "new", _conf())
    try:
        old.stop()
        assert SparkContext._active_spark_context is new
        assert new.parallelize([1]).collect() == [1]
    finally:
        new.stop()


def test_context_manager():
    with SparkContext("local[2]", "cm", _conf()) as ctx:
        assert SparkContext._active_spark_context is ctx
        assert ctx.parallelize([1, 2, 3]).sum() == 6
    assert SparkContext._active_spark_context is None
    with pytest.raises(IllegalStateError):
        ctx.parallelize([1])


def test_stop_on_exception_in_with_block():
    with pytest.raises(KeyError):
        with SparkContext("local[2]", "cm", _conf()):
            raise KeyError("x")
    assert SparkContext._active_spark_context is None


# -- RDD creation -----------------------------------------------------------------------------------------
def _spark_slices(data, n):
    # pyspark's: batches of min(len // n, 1024) records (at least 1); partition i takes batches i*B//n to
    # (i+1)*B//n of the B batches.
    size = len(data)
    batch = max(1, min(size // n, 1024))
    batches = -(-size // batch)
    ends = [min(size, (i * batches // n) * batch) for i in range(n + 1)]
    return [data[ends[i]:ends[i + 1]] for i in range(n)]


@pytest.mark.parametrize("size", [0, 1, 5, 10, 11, 97])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 12])
def test_parallelize_slices_like_spark(make_sc, size, n):
    ctx = make_sc("local[2]")
    data = list(range(size))
    rdd = ctx.parallelize(data, n)
    assert isinstance(rdd, RDD)
    assert rdd.getNumPartitions() == n
    parts = rdd.glom().collect()
    assert parts == _spark_slices(data, n)
    assert [x for p in parts for x in p] == data  # contiguous, in order


def test_parallelize_examples(make_sc):
    ctx = make_sc("local[3]")
    assert ctx.parallelize(range(5), 2).glom().collect() == [[0, 1], [2, 3, 4]]
    assert ctx.parallelize([1, 2, 3, 4, 5, 6], 3).glom().collect() == [[1, 2], [3, 4], [5, 6]]
    assert ctx.parallelize([1], 3).glom().collect() == [[], [], [1]]
    assert ctx.parallelize(range(7)).getNumPartitions() == 3  # defaultParallelism
    assert ctx.parallelize((x * x for x in range(4)), 2).collect() == [0, 1, 4, 9]
    assert ctx.parallelize("abc", 1).collect() == ["a", "b", "c"]
    data = [1, 2, 3]
    rdd = ctx.parallelize(data, 2)
    data.append(4)  # later changes to the caller's list do not leak into the RDD
    assert rdd.collect() == [1, 2, 3]


@pytest.mark.parametrize("n", [0, -1])
def test_parallelize_bad_num_slices(make_sc, n):
    ctx = make_sc()
    with pytest.raises(ValueError):
        ctx.parallelize([1, 2, 3], n)


def test_empty_rdd(make_sc):
    ctx = make_sc()
    empty = ctx.emptyRDD()
    assert empty.getNumPartitions() == 0
    assert empty.collect() == [] and empty.count() == 0 and empty.isEmpty()
    assert empty.glom().collect() == []


def test_range(make_sc):
    ctx = make_sc("local[2]")
    assert ctx.range(5).collect() == list(range(5))
    assert ctx.range(2, 10).collect() == list(range(2, 10))
    assert ctx.range(10, 0, -3).collect() == list(range(10, 0, -3))
    assert ctx.range(0, 9, numSlices=3).glom().collect() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_union_and_broadcast(make_sc):
    ctx = make_sc()
    a, b = ctx.parallelize([1, 2], 1), ctx.parallelize([3], 2)
    u = ctx.union([a, b])
    assert u.getNumPartitions() == 3 and u.collect() == [1, 2, 3]
    with pytest.raises(ValueError):
        ctx.union([])
    bc = ctx.broadcast([1, 2, 3])
    assert bc.value == [1, 2, 3]
    assert ctx.parallelize([0, 2], 2).map(lambda i: bc.value[i]).collect() == [1, 3]
    bc.unpersist()
    assert bc.value == [1, 2, 3]
    bc.destroy()


def test_text_file(make_sc, tmp_path):
    ctx = make_sc()
    f = tmp_path / "lines.txt"
    f.write_text("alpha\nbeta\n\ngamma\n", encoding="utf-8")
    assert ctx.textFile(str(f)).collect() == ["alpha", "beta", "", "gamma"]
    assert ctx.textFile(str(f), 3).getNumPartitions() == 3
    assert ctx.textFile(str(f), use_unicode=False).collect() == [b"alpha", b"beta", b"", b"gamma"]
    d = tmp_path / "dir"
    d.mkdir()
    (d / "b.txt").write_text("2\n")
    (d / "a.txt").write_text("1\n")
    (d / "_SUCCESS").write_text("")
    (d / ".hidden").write_text("nope\n")
    assert ctx.textFile(str(d)).collect() == ["1", "2"]


# -- misc -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level,expected", [("ALL", logging.NOTSET), ("DEBUG", logging.DEBUG),
                                            ("INFO", logging.INFO), ("WARN", logging.WARNING),
                                            ("error", logging.ERROR), ("FATAL", logging.CRITICAL),
                                            ("OFF", logging.CRITICAL + 10), ("TRACE", logging.DEBUG)])
def test_set_log_level(make_sc, level, expected):
    ctx = make_sc()
    logger = logging.getLogger("pystream")
    saved = logger.level
    try:
        ctx.setLogLevel(level)
        assert logger.level == expected
    finally:
        logger.setLevel(saved)


@pytest.mark.parametrize("level", ["LOUD", "", "warnings", "5"])
def test_set_log_level_rejects_unknown(make_sc, level):
    ctx = make_sc()
    logger = logging.getLogger("pystream")
    saved = logger.level
    try:
        with pytest.raises(ValueError, match="did not match one of"):
            ctx.setLogLevel(level)
        assert logger.level == saved
    finally:
        logger.setLevel(saved)


def test_context_properties(make_sc):
    import pystream

    ctx = make_sc("local[2]", "props")
    assert ctx.version == pystream.__version__
    assert "local[2]" in repr(ctx) and "props" in repr(ctx)
    assert ctx.getCheckpointDir() is None
    ctx.setCheckpointDir("/tmp/somewhere")
    assert ctx.getCheckpointDir() == "/tmp/somewhere"
    assert ctx.getConf().get(EXECUTOR_KEY) == "inprocess"
    assert ctx.executor.parallelism == 2


def test_conf_from_environment_matches_camel_case_keys(monkeypatch):
    from pystream import SparkConf

    monkeypatch.setenv("PYSTREAM_CONF_SPARK_TASK_MAXFAILURES", "2")
    conf = SparkConf()
    assert conf.getInt("spark.task.maxFailures", 4) == 2
    assert conf.get("spark.task.maxFailures") == "2"
    assert SparkConf(loadDefaults=False).getInt("spark.task.maxFailures", 4) == 4


@pytest.mark.parametrize("text, ms", [("250", 250), ("250ms", 250), ("30s", 30_000), ("1.5s", 1500),
                                      ("2min", 120_000), ("2m", 120_000), ("1h", 3_600_000), (" 5 S ", 5000)])
def test_time_properties_read_as_spark_reads_them(text, ms):
    conf = _conf().set("spark.streaming.gracefulStopTimeout", text)
    assert conf.getTimeAsMs("spark.streaming.gracefulStopTimeout", "1s") == ms
    assert _conf().getTimeAsMs("spark.streaming.gracefulStopTimeout", "3s") == 3000  # the default when unset


@pytest.mark.parametrize("text", ["", "soon", "10 parsecs", "-5s", "1e3"])
def test_a_malformed_time_property_is_a_typed_error_naming_it(text):
    from pystream.errors import IllegalArgumentError

    conf = _conf().set("spark.streaming.gracefulStopTimeout", text)
    with pytest.raises(IllegalArgumentError, match="spark.streaming.gracefulStopTimeout must be a duration"):
        conf.getTimeAsMs("spark.streaming.gracefulStopTimeout", "1s")


def test_application_details_and_local_properties(make_sc):
    import getpass
    import threading
    import time as _time

    before = int(_time.time() * 1000)
    ctx = make_sc()
    assert before <= ctx.startTime <= int(_time.time() * 1000)
    assert ctx.applicationId == f"local-{ctx.startTime}"
    assert ctx.sparkUser() == getpass.getuser() and ctx.uiWebUrl is None
    ctx.setJobGroup("nightly", "totals per user")
    ctx.setLocalProperty("pool", "fast")
    assert ctx.getLocalProperty("spark.jobGroup.id") == "nightly"
    assert ctx.getLocalProperty("spark.job.description") == "totals per user"
    seen = []
    other = threading.Thread(target=lambda: seen.append(ctx.getLocalProperty("pool")))
    other.start()
    other.join()
    assert seen == [None] and ctx.getLocalProperty("pool") == "fast"  # per thread, as Spark's
    ctx.setJobDescription("again")
    ctx.setLocalProperty("pool", None)
    assert ctx.getLocalProperty("spark.job.description") == "again" and ctx.getLocalProperty("pool") is None


def test_whole_text_files_and_binary_files(make_sc, tmp_path):
    ctx = make_sc()
    (tmp_path / "a.txt").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes("é\n".encode())
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".hidden").write_text("x")
    whole = ctx.wholeTextFiles(str(tmp_path)).collect()
    # Keyed by URI, as pyspark's: file:/... (which every reader of input paths takes back).
    assert whole == [(f"file:{tmp_path}/a.txt", "one\ntwo\n"), (f"file:{tmp_path}/b.txt", "é\n")]
    assert ctx.binaryFiles(str(tmp_path / "b.txt")).collect() == [(f"file:{tmp_path}/b.txt", "é\n".encode())]
    assert ctx.textFile(whole[0][0]).collect() == ["one", "two"]


def test_stop_removes_added_files_and_python_paths(make_sc, tmp_path):
    from pystream import SparkFiles
    from pystream.errors import IllegalStateError

    mod = tmp_path / "pystream_test_helper_d.py"
    mod.write_text("VALUE = 4\n")
    ctx = make_sc()
    ctx.addPyFile(str(mod))
    root = SparkFiles.getRootDirectory()
    assert os.path.isfile(os.path.join(root, mod.name)) and root in sys.path
    ctx.stop()
    assert not os.path.exists(root) and root not in sys.path
    with pytest.raises(IllegalStateError, match="No file was added"):
        SparkFiles.get(mod.name)



@pytest.mark.parametrize("mb", ["-1", str(10**15)])
def test_an_arena_cache_no_worker_could_hold_is_refused_where_the_context_starts(mb):
    """Past the driver, each worker would die starting, and the job fail as if workers kept crashing."""
    conf = SparkConf(loadDefaults=False).set("spark.pystream.worker.arenaCacheMB", mb)
    with pytest.raises(IllegalArgumentError, match="arenaCacheMB must be 0 to 1048576"):
        SparkContext("local[1]", "arena", conf)
    assert SparkContext._active_spark_context is None


def test_task_attempts_must_be_at_least_one():
    conf = SparkConf(loadDefaults=False).set("spark.task.maxFailures", "0")
    with pytest.raises(IllegalArgumentError, match="maxFailures must be at least 1"):
        SparkContext("local[1]", "attempts", conf)
