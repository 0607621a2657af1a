"""Hash partitioning: the C partitioner against a Python loop over portable_hash, same data.

The issue's kernel splits a batch "producing one frame (or index array) per partition": ``partition_order``
gives the index arrays (reading the records only, on up to ``get_num_threads()`` threads), ``partition`` gives
lists of the record objects themselves (a new reference to every record, which is a write to every tuple).
Both are timed against the faster of two Python loops: one appending the records, one their indices.

    pytest benchmarks/bench_partitioning.py     # pytest-benchmark figures
    python benchmarks/bench_partitioning.py     # side-by-side ratios (ratios())
"""

from __future__ import annotations


import pytest
from timing import best_of_each

from pystream import portable_hash
from pystream._core.partitioning import partition, partition_order

N = 1_000_000
PARTS = 8


def make_pairs(n: int = N) -> list[tuple[str, int]]:
    return [(f"key{i % 100_000}", i) for i in range(n)]


def python_partition(records, n=PARTS):
    parts = [[] for _ in range(n)]
    for rec in records:
        parts[portable_hash(rec[0]) % n].append(rec)
    return parts


def python_partition_indices(records, n=PARTS):
    parts = [[] for _ in range(n)]
    for i, rec in enumerate(records):
        parts[portable_hash(rec[0]) % n].append(i)
    return parts


def order_as_lists(order, starts) -> list[list[int]]:
    return [order[starts[p]:starts[p + 1]].tolist() for p in range(len(starts) - 1)]


def ratios(rounds: int = 5) -> dict:
    pairs = make_pairs()
    assert partition(pairs, PARTS) == python_partition(pairs)
    assert order_as_lists(*partition_order(pairs, PARTS)) == python_partition_indices(pairs)
    t = best_of_each({
        "lists": lambda: partition(pairs, PARTS),
        "order": lambda: partition_order(pairs, PARTS),
        "py": lambda: python_partition(pairs),
        "py_indices": lambda: python_partition_indices(pairs),
    }, rounds)
    lists, order, py = t["lists"], t["order"], min(t["py"], t["py_indices"])
    return {"partition_s": lists, "partition_order_s": order, "python_loop_s": py, "speedup": py / lists,
            "order_speedup": py / order, "records_per_s": N / order}


@pytest.fixture(scope="module")
def pairs():
    return make_pairs()


def test_partition_c(benchmark, pairs):
    benchmark.pedantic(partition, args=(pairs, PARTS), rounds=5, iterations=1, warmup_rounds=1)


def test_partition_order_c(benchmark, pairs):
    benchmark.pedantic(partition_order, args=(pairs, PARTS), rounds=5, iterations=1, warmup_rounds=1)


def test_partition_python_loop(benchmark, pairs):
    benchmark.pedantic(python_partition, args=(pairs,), rounds=3, iterations=1)


if __name__ == "__main__":
    for k, v in ratios().items():
        print(f"{k:>18}: {v:,.4f}")
