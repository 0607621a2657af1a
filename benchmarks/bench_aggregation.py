"""Keyed aggregation: AggTable against the plain-Python equivalents, and the numpy group-by-sum.

    pytest benchmarks/bench_aggregation.py          # pytest-benchmark figures
    python benchmarks/bench_aggregation.py          # side-by-side ratios (ratios())
"""

from __future__ import annotations

import collections
import operator

import numpy as np
import pytest
from timing import best_of_each

from pystream._core.aggregation import AggTable
from pystream._core.groupby import sum_by_key_f64, sum_by_key_i64

N = 1_000_000
DISTINCT = 100_000


def make_pairs(n: int = N, distinct: int = DISTINCT) -> list[tuple[str, int]]:
    # f-strings build a fresh str per record, so equal keys are distinct objects as they would be
    # after deserialisation: lookups must compare characters, not just identities.
    return [(f"key{i % distinct}", i) for i in range(n)]


def make_arrays(n: int = N, distinct: int = DISTINCT) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    keys = rng.integers(0, distinct, n, dtype=np.int64)
    values = rng.integers(-(10**6), 10**6, n, dtype=np.int64)
    return keys, values


def dict_get_loop(pairs):
    d = {}
    for k, v in pairs:
        d[k] = d.get(k, 0) + v
    return list(d.items())


def dict_in_loop(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            d[k] += v
        else:
            d[k] = v
    return list(d.items())


def agg_sum(pairs):
    t = AggTable(operator.add)
    t.update(pairs)
    return t.items()


def agg_count(keys):
    t = AggTable.counter()
    t.update_keys(keys)
    return t


def dict_group_loop(pairs):
    d = collections.defaultdict(list)
    for k, v in pairs:
        d[k].append(v)
    return list(d.items())


def agg_group(pairs, fast: bool = True):
    """groupByKey's map-side table: built in C (``group=``), or through its three Python functions."""
    from pystream.rdd import ResultIterable, _group_append, _group_extend, _new_group

    t = AggTable.combiner(_new_group, _group_append, _group_extend, group=ResultIterable if fast else None)
    t.update(pairs)
    return t.items()


def ratios(rounds: int = 5) -> dict:
    """Best-of-`rounds` timings side by side on the same data, in one process, rounds interleaved."""
    pairs = make_pairs()
    keys = [k for k, _ in pairs]
    assert agg_sum(pairs) == dict_get_loop(pairs)
    assert agg_group(pairs) == agg_group(pairs, fast=False) == dict_group_loop(pairs)
    ak, av = make_arrays()
    avf = av.astype(np.float64)
    t = best_of_each({
        "get": lambda: dict_get_loop(pairs),
        "in": lambda: dict_in_loop(pairs),
        "agg": lambda: agg_sum(pairs),
        "counter": lambda: collections.Counter(keys),
        "count": lambda: agg_count(keys),
        "count_items": lambda: agg_count(keys).items(),
        "np": lambda: sum_by_key_i64(ak, av),
        "npf": lambda: sum_by_key_f64(ak, avf),
        "group_dict": lambda: dict_group_loop(pairs),
        "group_agg": lambda: agg_group(pairs),
        "group_agg_py": lambda: agg_group(pairs, fast=False),
    }, rounds)
    t_get, t_in, t_agg, t_counter = t["get"], t["in"], t["agg"], t["counter"]
    t_count, t_count_items, t_np, t_npf = t["count"], t["count_items"], t["np"], t["npf"]
    return {
        "records": N,
        "distinct_keys": DISTINCT,
        "dict_loop_s": min(t_get, t_in),
        "aggtable_sum_s": t_agg,
        "sum_vs_dict_loop": min(t_get, t_in) / t_agg,
        "counter_s": t_counter,
        "aggtable_count_s": t_count,
        "count_vs_counter": t_counter / t_count,
        "count_with_items_vs_counter": t_counter / t_count_items,
        "sum_by_key_i64_records_per_s": N / t_np,
        "sum_by_key_f64_records_per_s": N / t_npf,
        "group_table_vs_defaultdict": t["group_dict"] / t["group_agg"],
        "group_table_vs_its_python_functions": t["group_agg_py"] / t["group_agg"],
    }


@pytest.fixture(scope="module")
def pairs():
    return make_pairs()


@pytest.fixture(scope="module")
def keys(pairs):
    return [k for k, _ in pairs]


def test_dict_loop(benchmark, pairs):
    benchmark.pedantic(dict_in_loop, args=(pairs,), rounds=3, iterations=1)


def test_aggtable_sum(benchmark, pairs):
    benchmark.pedantic(agg_sum, args=(pairs,), rounds=5, iterations=1)


def test_counter(benchmark, keys):
    benchmark.pedantic(collections.Counter, args=(keys,), rounds=3, iterations=1)


def test_aggtable_count(benchmark, keys):
    benchmark.pedantic(agg_count, args=(keys,), rounds=5, iterations=1)


def test_aggtable_group(benchmark, pairs):
    benchmark.pedantic(agg_group, args=(pairs,), rounds=3, iterations=1)


def test_sum_by_key_i64(benchmark):
    k, v = make_arrays()
    benchmark.pedantic(sum_by_key_i64, args=(k, v), rounds=10, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable, which runs the call once, untimed
        benchmark.extra_info["records_per_s"] = N / benchmark.stats.stats.min


if __name__ == "__main__":
    for name, value in ratios().items():
        print(f"{name:32} {value:,.3f}" if isinstance(value, float) else f"{name:32} {value:,}")
