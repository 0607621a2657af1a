"""Hash partitioning: the C partitioner against a Python loop over portable_hash, same data.

    pytest benchmarks/bench_partitioning.py     # pytest-benchmark figures
    python benchmarks/bench_partitioning.py     # side-by-side ratio (ratios())
"""

from __future__ import annotations


import pytest
from timing import best_of

from pystream import portable_hash
from pystream._core.partitioning import partition

N = 1_000_000
PARTS = 8


def make_pairs(n: int = N) -> list[tuple[str, int]]:
    return [(f"key{i % 100_000}", i) for i in range(n)]


def python_partition(records, n=PARTS):
    parts = [[] for _ in range(n)]
    for rec in records:
        parts[portable_hash(rec[0]) % n].append(rec)
    return parts


def ratios(rounds: int = 5) -> dict:
    pairs = make_pairs()
    assert partition(pairs, PARTS) == python_partition(pairs)
    c = best_of(lambda p: partition(p, PARTS), pairs, rounds=rounds)
    py = best_of(python_partition, pairs, rounds=rounds)
    return {"partition_s": c, "python_loop_s": py, "speedup": py / c, "records_per_s": N / c}


@pytest.fixture(scope="module")
def pairs():
    return make_pairs()


def test_partition_c(benchmark, pairs):
    benchmark.pedantic(partition, args=(pairs, PARTS), rounds=5, iterations=1)


def test_partition_python_loop(benchmark, pairs):
    benchmark.pedantic(python_partition, args=(pairs,), rounds=3, iterations=1)


if __name__ == "__main__":
    for k, v in ratios().items():
        print(f"{k:>16}: {v:,.4f}")
