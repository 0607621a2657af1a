"""Shared fixtures for the pystream test suite."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def shm_names():
    """Names of pystream shared-memory segments present now (to assert none are left behind)."""

    def current():
        try:
            return {n for n in os.listdir("/dev/shm") if n.startswith("ps_")}
        except FileNotFoundError:  # pragma: no cover - non-Linux
            return set()

    return current


def _executors():
    kinds = ["inprocess"]
    try:
        import pystream.executor.process  # noqa: F401
    except ImportError:
        pass
    else:
        kinds.append("process")
    return kinds


EXECUTORS = _executors()


@pytest.fixture(scope="module", params=EXECUTORS)
def sc(request):
    """A local[2] SparkContext on each executor kind (module-scoped: starting a process pool is not free)."""
    from pystream import SparkConf, SparkContext
    from pystream.context import EXECUTOR_KEY

    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, request.param)
    context = SparkContext("local[2]", f"test-{request.param}", conf)
    yield context
    context.stop()


@pytest.fixture
def ssc(sc):
    """A StreamingContext (0.5 s batches) on a ManualClock; stopped (not its SparkContext) after the test."""
    from pystream.testing import manual_context

    context = manual_context(sc, 0.5)
    yield context
    context.stop(stopSparkContext=False)


@pytest.fixture
def stages(sc, monkeypatch):
    """The stage of every task the executor runs from here on (the executor itself still runs them)."""
    seen: list[str] = []
    run = sc.executor.run_tasks

    def recording(fn, inputs, *, stage="", keep=False, monitor=None):
        seen.append(stage)
        return run(fn, inputs, stage=stage, keep=keep, monitor=monitor)

    monkeypatch.setattr(sc.executor, "run_tasks", recording)
    return seen


@pytest.fixture(autouse=True)
def _fresh_local_properties():
    """Each test starts with no local properties (job group, tags, ...) on the main thread: they are the
    thread's, not a context's, and would otherwise carry over from one test to the next."""
    from pystream import taskcontext

    taskcontext.local_properties().clear()
    yield
    taskcontext.local_properties().clear()
