"""Stand-ins for well-known per-record functions (pystream/known_functions.py) against the functions, same data.

    pytest benchmarks/bench_known_functions.py     # pytest-benchmark figures
    python benchmarks/bench_known_functions.py     # side-by-side ratio (ratios())
"""

from __future__ import annotations

import functools
import json

import pytest
from timing import best_of_each
from workloads import ad_campaigns, yahoo_batch

from pystream.known_functions import json_loads

N = 200_000


@functools.cache
def lines() -> list[str]:
    """W4's JSON ad events: the records `lines.map(json.loads)` meets in the Yahoo benchmark."""
    return yahoo_batch(0, N, sorted(ad_campaigns()))


def parse_all(f, records):
    return list(map(f, records))


def ratios(rounds: int = 5) -> dict:
    recs = lines()
    assert parse_all(json_loads, recs) == parse_all(json.loads, recs)
    t = best_of_each({"fast": lambda: parse_all(json_loads, recs), "plain": lambda: parse_all(json.loads, recs)},
                     rounds)
    fast, plain = t["fast"], t["plain"]
    return {"stand_in_s": fast, "json_loads_s": plain, "speedup": plain / fast}


@pytest.fixture(scope="module")
def records():
    return lines()


def test_json_loads_stand_in(benchmark, records):
    benchmark.pedantic(parse_all, args=(json_loads, records), rounds=3, iterations=1)


def test_json_loads(benchmark, records):
    benchmark.pedantic(parse_all, args=(json.loads, records), rounds=3, iterations=1)


if __name__ == "__main__":
    for k, v in ratios().items():
        print(f"{k:>14}: {v:,.4f}")
