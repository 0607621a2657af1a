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
