"""End-to-end streaming workloads W1-W4: pystream on each executor against a plain-Python reference.

    python benchmarks/streaming.py [--scale 1.0] [--only W1,W3]

Every workload is generated from a seed, run through a StreamingContext driven by a manual clock (each batch
runs as soon as the previous one finished, so the figure is processing throughput), and checked against the
plain-Python single-process reference for exact equality. For each configuration the script prints records/s,
the ratio to the reference measured in the same run, p50/p99 batch processing time, and the peak resident
memory of the whole process tree (driver + workers).
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as wl  # noqa: E402

from pystream import SparkConf, SparkContext  # noqa: E402
from pystream.streaming import StateSpec, StreamingListener  # noqa: E402
from pystream.testing import advance, manual_context  # noqa: E402

CONFIGS = [("inprocess", 1), ("process", 1), ("process", 2)]


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Peak of the summed RSS of the driver and the given worker processes."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak_kb = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.02):
            total = rss_kb(os.getpid()) + sum(rss_kb(p) for p in self.pids())
            self.peak_kb = max(self.peak_kb, total)


class BatchTimer(StreamingListener):
    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.durations: list[float] = []

    def onBatchStarted(self, e) -> None:
        self.started[e.batchInfo().batchTime().milliseconds()] = time.perf_counter()

    def onBatchCompleted(self, e) -> None:
        t = e.batchInfo().batchTime().milliseconds()
        self.durations.append(time.perf_counter() - self.started.pop(t))


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run_config(kind: str, workers: int, batches: list[list], build: Callable[[Any, Any], Any]) -> dict:
    conf = SparkConf(loadDefaults=False).set("spark.pystream.executor", kind)
    sc = SparkContext(f"local[{workers}]", "bench", conf)
    try:
        ssc = manual_context(sc, 1.0)
        stream = ssc.queueStream([sc.parallelize(b, workers) for b in batches])
        result = build(sc, stream)
        timer = BatchTimer()
        ssc.addStreamingListener(timer)
        pids = (lambda: sc.executor.worker_pids) if kind == "process" else (lambda: [])
        sampler = MemorySampler(pids)
        sampler.start()
        ssc.start()
        t0 = time.perf_counter()
        advance(ssc, len(batches), timeout=600)
        elapsed = time.perf_counter() - t0
        sampler.stop_event.set()
        sampler.join()
        ssc.awaitTerminationOrTimeout(0)  # raises if a batch failed
        if isinstance(result, dict) and "latest" in result:  # state streams: read the final state once
            result = dict(result["latest"].collect())
        ssc.stop(stopSparkContext=False)
    finally:
        sc.stop()
    return {"seconds": elapsed, "p50": percentile(timer.durations, 0.5), "p99": percentile(timer.durations, 0.99),
            "peak_mb": sampler.peak_kb / 1024, "result": result}


# -- the workloads -------------------------------------------------------------------------------------------
def w1_build(sc, lines):
    per_batch: list[dict] = []
    counts = lines.flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(operator.add)
    counts.foreachRDD(lambda rdd: per_batch.append(dict(rdd.collect())))
    return per_batch


def w2_build(sc, lines):
    windows: list[dict] = []
    counts = lines.flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKeyAndWindow(
        operator.add, operator.sub, 3.0, 1.0)
    counts.foreachRDD(lambda rdd: windows.append(dict(rdd.collect())))
    return windows


def w2_reference(batches):
    per = wl.wordcount_reference(batches)
    out = []
    for i in range(len(per)):
        total: Counter = Counter()
        for c in per[max(0, i - 2):i + 1]:
            total.update(c)
        out.append(dict(total))
    return out


def update_count_sum(values, state):
    c, s = state if state is not None else (0, 0.0)
    for v in values:
        c += 1
        s += v
    return (c, s)


def w3_update_build(sc, events):
    final: dict = {}
    state = events.updateStateByKey(update_count_sum)
    state.foreachRDD(lambda rdd: final.update(latest=rdd))
    return final


def count_sum_mapping(key, value, state):
    c, s = state.getOption() or (0, 0.0)
    c += 1
    s += value
    state.update((c, s))
    return (key, c)


def w3_mws_build(sc, events):
    final: dict = {}
    mapped = events.mapWithState(StateSpec.function(count_sum_mapping))
    mapped.foreachRDD(lambda rdd: rdd.count())
    mapped.stateSnapshots().foreachRDD(lambda rdd: final.update(latest=rdd))
    return final


def w4_build_for(campaigns: dict[str, str]):
    def build(sc, lines):
        totals: Counter = Counter()
        campaign_rdd = sc.parallelize(list(campaigns.items()), 2).cache()
        views = (lines.map(json.loads).filter(lambda e: e["event_type"] == "view")
                 .map(lambda e: (e["ad_id"], e["event_time"])))
        per_window = (views.transform(lambda rdd: rdd.join(campaign_rdd))
                      .map(lambda kv: ((kv[1][1], kv[1][0] // 10_000 * 10_000), 1))
                      .reduceByKey(operator.add))
        per_window.foreachRDD(lambda rdd: totals.update(dict(rdd.collect())))
        return totals
    return build


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def bench(name: str, records: int, batches, build, reference_fn, check) -> list[dict]:
    ref, ref_s = timed(reference_fn, batches)
    rows = [{"workload": name, "config": "plain Python (1 process)", "records_per_s": records / ref_s,
             "ratio": 1.0, "p50": None, "p99": None, "peak_mb": None}]
    for kind, workers in CONFIGS:
        r = run_config(kind, workers, batches, build)
        check(r["result"], ref)
        rows.append({"workload": name, "config": f"{kind}, {workers} worker{'s' * (workers > 1)}",
                     "records_per_s": records / r["seconds"], "ratio": ref_s / r["seconds"], "p50": r["p50"],
                     "p99": r["p99"], "peak_mb": r["peak_mb"]})
        del r
    return rows


def check_equal(got, ref):
    assert got == ref, "pystream's result differs from the reference"


def check_w3(got, ref):
    assert got == ref, "state differs from the reference"


def check_w4(got, ref):
    assert got == ref, "campaign window counts differ from the reference"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the specified workload sizes")
    p.add_argument("--only", default="W1,W2,W3,W4")
    args = p.parse_args(argv)
    only = set(args.only.upper().split(","))
    s = args.scale
    rows: list[dict] = []
    if only & {"W1", "W2"}:
        lines = int(2_000_000 * s)
        batches = wl.zipf_batches(lines, max(1, int(200_000 * s)))
        if "W1" in only:
            rows += bench("W1 word count", lines, batches, w1_build,
                          lambda b: [dict(c) for c in wl.wordcount_reference(b)], check_equal)
        if "W2" in only:
            rows += bench("W2 windowed word count", lines, batches, w2_build, w2_reference, check_equal)
        del batches
    if "W3" in only:
        n = int(10_000_000 * s)
        batches = wl.event_batches(n, max(1, int(500_000 * s)), max(1, int(1_000_000 * s)))
        rows += bench("W3 updateStateByKey", n, batches, w3_update_build, wl.state_reference, check_w3)
        rows += bench("W3 mapWithState", n, batches, w3_mws_build, wl.state_reference, check_w3)
        del batches
    if "W4" in only:
        n = int(5_000_000 * s)
        campaigns = wl.ad_campaigns()
        batches = wl.yahoo_batches(n, max(1, int(500_000 * s)), sorted(campaigns))
        rows += bench("W4 Yahoo streaming", n, batches, w4_build_for(campaigns),
                      lambda b: wl.yahoo_reference(b, campaigns), check_w4)
    print_table(rows)
    return rows


def print_table(rows: list[dict]) -> None:
    head = f"{'workload':<24} {'configuration':<26} {'records/s':>12} {'vs ref':>7} {'p50 ms':>8} {'p99 ms':>8} {'peak MB':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        p50 = "" if r["p50"] is None else f"{r['p50'] * 1000:.0f}"
        p99 = "" if r["p99"] is None else f"{r['p99'] * 1000:.0f}"
        mem = "" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        print(f"{r['workload']:<24} {r['config']:<26} {r['records_per_s']:>12,.0f} {r['ratio']:>6.2f}x "
              f"{p50:>8} {p99:>8} {mem:>8}", flush=True)


if __name__ == "__main__":
    main()
