"""Print every speed ratio of pystream, each measured side by side with its baseline in this one run.

    python benchmarks/run.py                 # kernels, then the streaming workloads at full size
    python benchmarks/run.py --kernels       # kernels only (about a minute)
    python benchmarks/run.py --scale 0.2     # smaller streaming workloads
    python benchmarks/run.py --repeat 1      # one round of each streaming configuration (default 3)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_aggregation  # noqa: E402
import bench_frames  # noqa: E402
import bench_known_functions  # noqa: E402
import bench_partitioning  # noqa: E402

TARGETS = {
    "frames encode vs pickle 5": 3.0,
    "frames decode vs pickle 5": 3.0,
    "  both on the arena cache": 3.0,
    "partition (index arrays) vs loop": 10.0,
    "  as lists of the records": None,
    "sum by key vs dict loop": 3.0,
    "count vs collections.Counter": 1.0,
    "map(json.loads) stand-in": 1.0,
}


def kernels() -> None:
    f = bench_frames.ratios()
    fc = bench_frames.ratios_on_arena_cache()
    p = bench_partitioning.ratios()
    a = bench_aggregation.ratios()
    j = bench_known_functions.ratios()
    rows = [
        ("frames encode vs pickle 5", f["encode_speedup"]),
        ("frames decode vs pickle 5", f["decode_speedup"]),
        ("  both on the arena cache", fc["decode_speedup"]),
        ("partition (index arrays) vs loop", p["order_speedup"]),
        ("  as lists of the records", p["speedup"]),
        ("sum by key vs dict loop", a["sum_vs_dict_loop"]),
        ("count vs collections.Counter", a["count_vs_counter"]),
        ("map(json.loads) stand-in", j["speedup"]),
    ]
    print("Kernels (1M records, JSON 200K lines; best of 5 interleaved rounds, same process, same data)")
    for name, ratio in rows:
        target = TARGETS[name]
        if target is None:
            print(f"  {name:<32} {ratio:6.2f}x")
            continue
        print(f"  {name:<32} {ratio:6.2f}x   target {target:g}x  {'ok' if ratio >= target else 'BELOW'}")
    print(f"  {'frame size / pickle size':<32} {f['size_ratio']:6.2f}    target <= 1  "
          f"{'ok' if f['size_ratio'] <= 1 else 'BELOW'}")
    print(f"  {'sum_by_key_i64 (numpy)':<32} {a['sum_by_key_i64_records_per_s'] / 1e6:6.1f}M records/s   target 30M  "
          f"{'ok' if a['sum_by_key_i64_records_per_s'] >= 30e6 else 'BELOW'}")


def startup() -> float:
    """Seconds from SparkContext(...) to the first batch's output, in a fresh interpreter (process executor)."""
    code = textwrap.dedent("""
        import time
        t0 = time.perf_counter()
        from pystream import SparkContext
        from pystream.streaming import StreamingContext
        t1 = time.perf_counter()
        sc = SparkContext("local[2]", "startup")
        ssc = StreamingContext(sc, 0.05)
        done = []
        ssc.queueStream([[("a", 1), ("b", 2)]]).reduceByKey(lambda a, b: a + b).foreachRDD(
            lambda rdd: done.append((rdd.collect(), time.perf_counter())))
        ssc.start()
        while not done:
            time.sleep(0.001)
        print(done[0][1] - t1, done[0][1] - t0)
        ssc.stop()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, with_imports = (float(x) for x in out.stdout.split())
    print(f"Start-up: SparkContext(...) to first batch output {first:.3f} s "
          f"({with_imports:.3f} s including imports); target < 1 s  {'ok' if first < 1 else 'BELOW'}")
    return first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernels", action="store_true", help="kernels and start-up only")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--only", default="W1,W2,W3,W4")
    p.add_argument("--repeat", type=int, default=3, help="rounds of each streaming configuration (medians)")
    args = p.parse_args()
    kernels()
    startup()
    if not args.kernels:
        import streaming

        print()
        streaming.main(["--scale", str(args.scale), "--only", args.only, "--repeat", str(args.repeat)])


if __name__ == "__main__":
    main()
