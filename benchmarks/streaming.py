"""End-to-end streaming workloads W1-W4: pystream on each executor against a plain-Python reference.

    python benchmarks/streaming.py [--scale 1.0] [--only W1,W3] [--repeat 3]

Each workload's batches are generated one at a time from a seed (benchmarks/workloads.py). The plain-Python
single-process reference and every pystream configuration process the same batches, each configuration in a
fresh process; only processing is timed (generating a batch is not). pystream runs a StreamingContext on a
manual clock, so each batch starts when the previous one is done: the figure is processing throughput, every
batch counted (the first one included). Results are checked against the reference exactly (an
order-independent digest of every batch's output, or of the final state).

Every configuration runs ``--repeat`` times (default 3), in interleaved rounds (reference, in-process,
1 worker, 2 workers, then again), and each row gives its median run; "ratio range" is the lowest and highest
ratio of its rounds, each against the median reference: how far one run alone could have strayed.

Printed per configuration: records/s, the ratio to the reference measured in this run, p50/p99 batch processing
time, the peak memory of the whole process tree (driver + workers, shared-memory segments counted once), that
peak divided by the in-memory size of one batch window of input plus the state, and the same for the growth of
the peak over what the tree held before the first batch (interpreters, imports, the generator, idle workers),
and the CPU time a batch took in the driver and in the workers (every thread, the memory sampler's excepted).

For W1 and W3, which have a scaling target, a last line gives 2 workers against 1 worker (median of the
rounds' ratios) beside this machine's own scaling at the same time: two copies of the reference running at
once, against one alone (``machine_scaling``, one more configuration in each round). On a shared virtual
machine that ceiling moves by a third within minutes. A second line gives the configurations' CPU time per
batch, and the most that 2 workers doing that much work could scale on this machine's cores: a 1-worker
batch's time over the 2-worker CPU time spread evenly over the cores.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import sys
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as wl  # noqa: E402

from pystream import SparkConf, SparkContext  # noqa: E402
from pystream.cores import usable_cores  # noqa: E402
from pystream.streaming import StateSpec  # noqa: E402
from pystream.testing import advance, manual_context  # noqa: E402

CONFIGS = [("inprocess", 1), ("process", 1), ("process", 2)]


def private_kb(pid: int) -> int:
    """Resident memory of a process apart from shared memory: RssAnon + RssFile (VmRSS if those are missing)."""
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("RssAnon:", "RssFile:", "VmRSS:")):
                    fields[line.split(":")[0]] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    if "RssAnon" in fields:
        return fields["RssAnon"] + fields.get("RssFile", 0)
    return fields.get("VmRSS", 0)


def shm_kb(driver_pid: int) -> int:
    """Memory held by the driver's shared-memory segments (each counted once, however many processes map it)."""
    total = 0
    prefix = f"ps_{driver_pid}_"
    try:
        names = [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
    except FileNotFoundError:
        return 0
    for n in names:
        try:
            total += os.stat(os.path.join("/dev/shm", n)).st_blocks * 512
        except FileNotFoundError:
            pass
    return total // 1024


def cpu_ms(pid: int, skip: int | None = None) -> float:
    """CPU time every thread of process ``pid`` (but thread ``skip``) has used so far, in ms; 0 once it is gone.
    From /proc/<pid>/task/<tid>/schedstat (nanoseconds), or from stat's clock ticks where that is missing."""
    total = 0.0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0.0
    for tid in tids:
        if skip is not None and int(tid) == skip:
            continue
        try:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                    total += int(fh.read().split()[0]) / 1e6
            except FileNotFoundError:
                with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
        except (FileNotFoundError, ProcessLookupError):  # a thread that ended meanwhile
            pass
    return total


class MemorySampler(threading.Thread):
    """Peak memory of the process tree: every process's own resident memory plus the shared-memory segments
    once. (Summed VmRSS would count a segment once per process that maps it; /proc/<pid>/smaps_rollup would
    count it once too, but reading it every 20 ms takes the processes' memory-map lock and slows them down.)"""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak_kb = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.02):
            self.peak_kb = max(self.peak_kb, tree_kb(self.pids()))


def tree_kb(worker_pids: list[int]) -> int:
    """The driver's and its workers' own resident memory, plus the driver's shared-memory segments once."""
    me = os.getpid()
    return private_kb(me) + sum(private_kb(p) for p in worker_pids) + shm_kb(me)


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def deep_size(obj: Any) -> int:
    """Bytes of a batch or state in memory: containers plus their str/int/float/tuple contents."""
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        return size + sum(deep_size(k) + deep_size(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return size + sum(deep_size(x) for x in obj)
    return size


def partition_digest(it) -> list[int]:
    return [wl.digest(it)]


def rdd_digest(rdd) -> int:
    return sum(rdd.mapPartitions(partition_digest).collect()) & wl.MASK


class Workload:
    """name, batch count, generator, the DStream pipeline, and the reference."""

    name: str
    batches: int
    records_per_batch: int
    window: int = 1

    def batch(self, i: int) -> list:
        raise NotImplementedError

    def build(self, sc, stream) -> Callable[[], list[int]]:
        """Set up the pipeline; return a function giving the digests to compare, read after the last batch."""
        raise NotImplementedError

    def reference(self) -> tuple[float, list[int], int]:
        """Run the reference; return (processing seconds, digests, bytes of one window of input + state)."""
        raise NotImplementedError

    #: Whether the issue sets a 2-worker scaling target for this workload (then ``work`` exists, and this
    #: machine's own scaling of the reference is measured beside it).
    scaling_target = False

    def work(self, batch: list, state: dict) -> None:
        """The reference's processing of one batch."""
        raise NotImplementedError


class WordCount(Workload):
    def __init__(self, scale: float) -> None:
        self.name = "W1 word count"
        self.records_per_batch = max(1, int(200_000 * scale))
        self.batches = 10

    def batch(self, i: int) -> list:
        return wl.zipf_batch(i, self.records_per_batch)

    scaling_target = True

    def work(self, batch: list, state: dict) -> None:
        wl.wordcount(batch)

    def build(self, sc, lines):
        digests: list[int] = []
        counts = lines.flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(operator.add)
        counts.foreachRDD(lambda rdd: digests.append(rdd_digest(rdd)))
        return lambda: digests

    def reference(self):
        spent, digests, size = 0.0, [], 0
        for i in range(self.batches):
            lines = self.batch(i)
            t0 = time.perf_counter()
            c = wl.wordcount(lines)
            spent += time.perf_counter() - t0
            digests.append(wl.digest(c.items()))
            size = max(size, deep_size(lines))
        return spent, digests, size


class WindowedWordCount(WordCount):
    def __init__(self, scale: float) -> None:
        super().__init__(scale)
        self.name = "W2 windowed word count"
        self.window = 3

    scaling_target = False

    def build(self, sc, lines):
        digests: list[int] = []
        counts = lines.flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKeyAndWindow(
            operator.add, operator.sub, 3.0, 1.0)
        counts.foreachRDD(lambda rdd: digests.append(rdd_digest(rdd)))
        return lambda: digests

    def reference(self):
        spent, digests, recent, size = 0.0, [], [], 0
        for i in range(self.batches):
            lines = self.batch(i)
            t0 = time.perf_counter()
            recent = (recent + [wl.wordcount(lines)])[-3:]
            window: Counter = Counter()
            for c in recent:
                window.update(c)
            spent += time.perf_counter() - t0
            digests.append(wl.digest(window.items()))
            size = max(size, 3 * deep_size(lines))
        return spent, digests, size


class Stateful(Workload):
    def __init__(self, scale: float, kind: str) -> None:
        self.kind = kind
        self.name = f"W3 {kind}"
        self.records_per_batch = max(1, int(500_000 * scale))
        self.batches = 20
        self.keys = max(1, int(1_000_000 * scale))

    def batch(self, i: int) -> list:
        return wl.event_batch(i, self.records_per_batch, self.keys)

    scaling_target = True

    def work(self, batch: list, state: dict) -> None:
        wl.state_update(state, batch)

    def build(self, sc, events):
        final: dict = {}
        if self.kind == "updateStateByKey":
            state = events.updateStateByKey(update_count_sum)
        else:
            mapped = events.mapWithState(StateSpec.function(count_sum_mapping))
            mapped.foreachRDD(lambda rdd: rdd.count())
            state = mapped.stateSnapshots()
        state.foreachRDD(lambda rdd: final.update(latest=rdd))
        return lambda: [rdd_digest(final["latest"])]

    def reference(self):
        spent, state = 0.0, {}
        for i in range(self.batches):
            events = self.batch(i)
            t0 = time.perf_counter()
            wl.state_update(state, events)
            spent += time.perf_counter() - t0
        size = deep_size(events) + deep_size(state)
        return spent, [wl.digest(state.items())], size


def update_count_sum(values, state):
    c, s = state if state is not None else (0, 0.0)
    for v in values:
        c += 1
        s += v
    return (c, s)


def count_sum_mapping(key, value, state):
    c, s = state.getOption() or (0, 0.0)
    c += 1
    s += value
    state.update((c, s))
    return (key, c)


class Yahoo(Workload):
    def __init__(self, scale: float) -> None:
        self.name = "W4 Yahoo streaming"
        self.records_per_batch = max(1, int(500_000 * scale))
        self.batches = 10
        self.campaigns = wl.ad_campaigns()
        self.ads = sorted(self.campaigns)

    def batch(self, i: int) -> list:
        return wl.yahoo_batch(i, self.records_per_batch, self.ads)

    def build(self, sc, lines):
        totals: Counter = Counter()
        campaign_rdd = sc.parallelize(list(self.campaigns.items()), 2).cache()
        views = (lines.map(json.loads).filter(lambda e: e["event_type"] == "view")
                 .map(lambda e: (e["ad_id"], e["event_time"])))
        per_window = (views.transform(lambda rdd: rdd.join(campaign_rdd))
                      .map(lambda kv: ((kv[1][1], kv[1][0] // 10_000 * 10_000), 1))
                      .reduceByKey(operator.add))
        per_window.foreachRDD(lambda rdd: totals.update(dict(rdd.collect())))
        return lambda: [wl.digest(totals.items())]

    def reference(self):
        spent, counts, size = 0.0, Counter(), 0
        for i in range(self.batches):
            lines = self.batch(i)
            t0 = time.perf_counter()
            wl.yahoo_count(lines, self.campaigns, counts)
            spent += time.perf_counter() - t0
            size = max(size, deep_size(lines))
        return spent, [wl.digest(counts.items())], size + deep_size(counts)


def run_config(kind: str, workers: int, w: Workload) -> dict:
    conf = SparkConf(loadDefaults=False).set("spark.pystream.executor", kind)
    sc = SparkContext(f"local[{workers}]", "bench", conf)
    try:
        ssc = manual_context(sc, 1.0)
        stream = ssc.queueStream([])
        queue = ssc._graph.input_streams[-1]
        result = w.build(sc, stream)
        durations: list[float] = []
        pids = (lambda: sc.executor.worker_pids) if kind == "process" else (lambda: [])
        sampler = MemorySampler(pids)
        # CPU time spent in the batches, by the driver (its threads but the sampler) and by the workers: the
        # work a configuration does, whatever the cores did in parallel.
        driver_cpu = workers_cpu = 0.0
        ssc.start()
        # What the tree holds before any data (interpreters, imports, the generator's tables, idle workers):
        # the part of the peak that does not grow with the data.
        wl.warm_generators()
        idle_kb = tree_kb(pids())
        sampler.start()
        for i in range(w.batches):
            data = w.batch(i)
            queue.push(sc.parallelize(data, workers))
            del data
            d0, w0 = cpu_ms(os.getpid(), sampler.native_id), sum(cpu_ms(p) for p in pids())
            t0 = time.perf_counter()
            advance(ssc, 1, timeout=600)
            durations.append(time.perf_counter() - t0)
            driver_cpu += cpu_ms(os.getpid(), sampler.native_id) - d0
            workers_cpu += sum(cpu_ms(p) for p in pids()) - w0
        digests = result()
        sampler.stop_event.set()
        sampler.join()
        ssc.awaitTerminationOrTimeout(0)  # raises if a batch failed
        ssc.stop(stopSparkContext=False)
    finally:
        sc.stop()
    return {"seconds": sum(durations), "p50": percentile(durations, 0.5), "p99": percentile(durations, 0.99),
            "peak_mb": sampler.peak_kb / 1024, "idle_mb": idle_kb / 1024, "digests": digests,
            "cpu_driver_ms": driver_cpu / w.batches, "cpu_workers_ms": workers_cpu / w.batches}


WORKLOADS: dict[str, Callable[[float], Workload]] = {
    "W1": WordCount,
    "W2": WindowedWordCount,
    "W3u": lambda s: Stateful(s, "updateStateByKey"),
    "W3m": lambda s: Stateful(s, "mapWithState"),
    "W4": Yahoo,
}


def _reference_worker(key: str, scale: float, barrier: Any, out: Any) -> None:
    """The reference's work, timed batch by batch; each batch starts when every such process is ready."""
    w = WORKLOADS[key](scale)
    state: dict = {}
    spent = []
    for i in range(w.batches):
        batch = w.batch(i)  # generated before the barrier: not timed, as in the reference
        barrier.wait()
        t0 = time.perf_counter()
        w.work(batch, state)
        spent.append(time.perf_counter() - t0)
        del batch
    out.put(spent)


def _run_references(key: str, scale: float, copies: int) -> list[list[float]]:
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # this process runs no thread: forking it is safe
    barrier, out = ctx.Barrier(copies), ctx.Queue()
    procs = [ctx.Process(target=_reference_worker, args=(key, scale, barrier, out)) for _ in range(copies)]
    for p in procs:
        p.start()
    try:
        return [out.get(timeout=600) for _ in procs]
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
                p.join()


def machine_scaling(key: str, scale: float) -> dict:
    """How this machine scales the plain-Python reference itself: the reference alone in one process, then
    two copies of it at once, each batch started together; scaling is twice the work in the time the slower
    copy took. The same work in both, so this is the machine (its two cores, shared caches and memory, its
    host's other tenants), not the algorithm; each contender is a fresh fork of this process, so none inherits
    a heap another warmed. The ceiling, at this moment, for any 2-worker speed-up."""
    one = sum(_run_references(key, scale, 1)[0])
    a, b = _run_references(key, scale, 2)
    two = sum(max(x, y) for x, y in zip(a, b))
    return {"one_s": one, "two_s": two, "scaling": 2 * one / two}


def run_one(key: str, scale: float, config: str) -> dict:
    """One configuration of one workload, in this process: "reference" or "<executor>:<workers>"."""
    w = WORKLOADS[key](scale)
    if config == "reference":
        seconds, digests, data = w.reference()
        return {"seconds": seconds, "digests": digests, "data_bytes": data}
    if config == "machine":
        return machine_scaling(key, scale)
    kind, workers = config.split(":")
    return run_config(kind, int(workers), w)


def in_subprocess(key: str, scale: float, config: str) -> dict:
    # Each configuration runs in a fresh interpreter: what one left in the heap (and the reference's data)
    # must not slow or weigh on the next.
    cmd = [sys.executable, os.path.abspath(__file__), "--run", key, "--scale", str(scale), "--config", config]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{key} {config} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(key: str, scale: float, repeat: int = 1) -> list[dict]:
    """Every configuration of one workload, ``repeat`` rounds of them interleaved; each figure is the median
    round's (this machine's speed drifts by a fifth within minutes: one run of each can mislead)."""
    w = WORKLOADS[key](scale)
    configs = ["reference"] + [f"{kind}:{workers}" for kind, workers in CONFIGS] + (
        ["machine"] if w.scaling_target else [])
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    for _ in range(repeat):
        for c in configs:
            r = in_subprocess(key, scale, c)
            if c not in ("reference", "machine") and r["digests"] != runs["reference"][0]["digests"]:
                raise AssertionError(f"{w.name} on {c}: results differ from the reference")
            runs[c].append(r)
    ref = median_run(runs["reference"])
    ref_s, data = ref["seconds"], runs["reference"][0]["data_bytes"]
    records = w.batches * w.records_per_batch
    rows = [{"workload": w.name, "config": "plain Python (1 process)", "records_per_s": records / ref_s,
             "ratio": 1.0, "p50": None, "p99": None, "peak_mb": None, "idle_mb": None, "data_mb": data / 2**20,
             "spread": spread([ref_s / r["seconds"] for r in runs["reference"]])}]
    for kind, workers in CONFIGS:
        done = runs[f"{kind}:{workers}"]
        r = median_run(done)
        rows.append({"workload": w.name, "config": f"{kind}, {workers} worker{'s' * (workers > 1)}",
                     "records_per_s": records / r["seconds"], "ratio": ref_s / r["seconds"], "p50": r["p50"],
                     "p99": r["p99"], "peak_mb": r["peak_mb"], "idle_mb": r["idle_mb"], "data_mb": data / 2**20,
                     "cpu": (r["cpu_driver_ms"], r["cpu_workers_ms"]),
                     "spread": spread([ref_s / x["seconds"] for x in done])})
    if w.scaling_target:
        # Round by round: 2 workers against 1 worker, and this machine's own 2-process scaling of the
        # reference, each pair measured minutes apart at most.
        ours = sorted(a["seconds"] / b["seconds"] for a, b in zip(runs["process:1"], runs["process:2"]))
        machine = sorted(m["scaling"] for m in runs["machine"])
        one, two = median_run(runs["process:1"]), median_run(runs["process:2"])
        # 2 workers can take no less than their CPU time over the cores, whatever the overlap: with the work
        # they did, this is the most they could scale.
        cpu_two = two["cpu_driver_ms"] + two["cpu_workers_ms"]
        ceiling = (one["seconds"] * 1000 / w.batches) / (cpu_two / usable_cores()) if cpu_two else float("nan")
        rows.append({"workload": w.name, "scaling": ours[(len(ours) - 1) // 2], "scaling_range": ours,
                     "machine": machine[(len(machine) - 1) // 2], "machine_range": machine,
                     "cpu_one": one["cpu_driver_ms"] + one["cpu_workers_ms"], "cpu_two": cpu_two,
                     "ceiling": ceiling})
    return rows


def median_run(done: list[dict]) -> dict:
    return sorted(done, key=lambda r: r["seconds"])[(len(done) - 1) // 2]


def spread(ratios: list[float]) -> str:
    """The range of one configuration's ratios over the rounds (each against the median reference)."""
    return "" if len(ratios) < 2 else f"{min(ratios):.2f}-{max(ratios):.2f}"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the specified batch sizes")
    p.add_argument("--only", default="W1,W2,W3,W4")
    p.add_argument("--repeat", type=int, default=3, help="rounds of every configuration; medians are printed")
    p.add_argument("--run", help=argparse.SUPPRESS)  # one workload key, in this process (used internally)
    p.add_argument("--config", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.run:
        print(json.dumps(run_one(args.run, args.scale, args.config)))
        return []
    only = set(args.only.upper().split(","))
    keys = [k for k in WORKLOADS if k.upper() in only or k[:2] in only]
    print_header()
    rows: list[dict] = []
    for key in keys:
        for row in bench(key, args.scale, max(1, args.repeat)):
            print_row(row)
            rows.append(row)
    return rows


def print_header() -> None:
    head = (f"{'workload':<24} {'configuration':<26} {'records/s':>12} {'vs ref':>7} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'peak MB':>8} {'data MB':>8} {'peak/data':>9} {'idle MB':>8} {'growth/data':>11} {'ratio range':>12} "
            f"{'CPU ms/batch':>13}")
    print(head)
    print("-" * len(head), flush=True)


def print_row(r: dict) -> None:
    if "scaling" in r:
        ours, machine = r["scaling_range"], r["machine_range"]
        print(f"{r['workload']:<24} scaling, 2 workers / 1 worker: {r['scaling']:.2f}x "
              f"(rounds {ours[0]:.2f}-{ours[-1]:.2f}; target 1.6x {'ok' if r['scaling'] >= 1.6 else 'BELOW'}); "
              f"this machine's own, 2 copies of the plain-Python reference at once: {r['machine']:.2f}x "
              f"(rounds {machine[0]:.2f}-{machine[-1]:.2f})", flush=True)
        print(f"{'':<24} CPU per batch (driver + workers): {r['cpu_one']:.0f} ms on 1 worker, {r['cpu_two']:.0f} ms "
              f"on 2 workers; on {usable_cores()} cores, that work allows 2 workers at most {r['ceiling']:.2f}x 1 worker",
              flush=True)
        return
    p50 = "" if r["p50"] is None else f"{r['p50'] * 1000:.0f}"
    p99 = "" if r["p99"] is None else f"{r['p99'] * 1000:.0f}"
    mem = "" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
    rel = "" if r["peak_mb"] is None else f"{r['peak_mb'] / r['data_mb']:.1f}x"
    idle = "" if r["idle_mb"] is None else f"{r['idle_mb']:.0f}"
    growth = "" if r["idle_mb"] is None else f"{(r['peak_mb'] - r['idle_mb']) / r['data_mb']:.1f}x"
    cpu = "" if r.get("cpu") is None else f"{r['cpu'][0]:.0f} + {r['cpu'][1]:.0f}"
    print(f"{r['workload']:<24} {r['config']:<26} {r['records_per_s']:>12,.0f} {r['ratio']:>6.2f}x "
          f"{p50:>8} {p99:>8} {mem:>8} {r['data_mb']:>8.0f} {rel:>9} {idle:>8} {growth:>11} {r['spread']:>12} "
          f"{cpu:>13}", flush=True)


if __name__ == "__main__":
    main()
