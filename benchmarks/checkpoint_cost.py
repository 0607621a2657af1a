"""Cost of checkpointing and time to recover: W3 (updateStateByKey over (key, value) events) with and
without checkpoints (metadata every batch, state every 10 batches).

    python benchmarks/checkpoint_cost.py [--scale 0.2] [--executor process]

The events come from a deterministic source (batch k's events depend only on k), since queueStream cannot be
checkpointed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as wl  # noqa: E402
from streaming import update_count_sum  # noqa: E402

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY
from pystream.streaming import StreamingContext
from pystream.streaming.listener import StreamInputInfo
from pystream.streaming.sources.base import InputDStream
from pystream.testing import advance


class EventDStream(InputDStream):
    """W3's events, generated per batch from (seed, batch index)."""

    def __init__(self, ssc, per_batch: int, keys: int, parts: int) -> None:
        super().__init__(ssc)
        self.per_batch, self.keys, self.parts = per_batch, keys, parts

    def _allocate(self, t):
        return StreamInputInfo(self._id, self.per_batch)

    def _compute(self, t):
        k = (t - self._zero_ms) // self._slide_ms - 1
        return self._sc.parallelize(wl.event_batch(k, self.per_batch, self.keys), self.parts)


def run(executor: str, batches: int, per_batch: int, keys: int, checkpoint: str | None) -> float:
    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, executor).set("spark.streaming.clock", "manual")
    sc = SparkContext("local[2]", "ckbench", conf)
    try:
        ssc = StreamingContext(sc, 1.0)
        if checkpoint:
            ssc.checkpoint(checkpoint)
        state = EventDStream(ssc, per_batch, keys, 2).updateStateByKey(update_count_sum)
        if checkpoint:
            state.checkpoint(10.0)
        state.foreachRDD(lambda rdd: None)
        ssc.start()
        t0 = time.perf_counter()
        advance(ssc, batches, timeout=600)
        elapsed = time.perf_counter() - t0
        ssc.awaitTerminationOrTimeout(0)
        ssc.stop(stopSparkContext=False)
        return elapsed
    finally:
        sc.stop()


KILL_CHILD = textwrap.dedent('''
    import sys, time
    t0 = time.time()
    from pystream import SparkContext
    from pystream.streaming import StreamingContext
    from pystream.streaming.listener import StreamingListener
    inp, ck, out = sys.argv[1:4]

    class First(StreamingListener):
        done = False
        def onBatchCompleted(self, e):
            if not First.done:
                First.done = True
                with open(out, "a") as fh:
                    fh.write(f"{time.time()}\\n")

    def setup():
        sc = SparkContext("local[2]", "recovery-time")
        ssc = StreamingContext(sc, 0.2)
        ssc.checkpoint(ck)
        words = ssc.textFileStream(inp).flatMap(str.split).map(lambda w: (w, 1))
        words.updateStateByKey(lambda vs, s: sum(vs) + (s or 0)).foreachRDD(lambda rdd: None)
        return ssc

    ssc = StreamingContext.getOrCreate(ck, setup)
    ssc.addStreamingListener(First())
    ssc.start()
    ssc.awaitTermination()
''')


def recovery_times(rounds: int = 5) -> list[float]:
    """Seconds from SIGKILL of a driver (state of 50,000 keys) to its restarted self completing a batch."""
    tmp = tempfile.mkdtemp()
    try:
        inp, ck, out = f"{tmp}/in", f"{tmp}/ck", f"{tmp}/first.txt"
        os.makedirs(inp)
        script = f"{tmp}/driver.py"
        with open(script, "w") as fh:
            fh.write(KILL_CHILD)
        times = []
        proc = subprocess.Popen([sys.executable, script, inp, ck, out], start_new_session=True)
        while not os.path.exists(out):
            time.sleep(0.05)
        with open(f"{inp}/.a", "w") as fh:
            fh.write(" ".join(f"k{i}" for i in range(50_000)))
        os.rename(f"{inp}/.a", f"{inp}/a")
        time.sleep(3)
        for _ in range(rounds):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = time.time()
            os.unlink(out)
            proc = subprocess.Popen([sys.executable, script, inp, ck, out], start_new_session=True)
            while not os.path.exists(out):
                if proc.poll() is not None:
                    raise RuntimeError("the restarted driver exited")
                time.sleep(0.01)
            time.sleep(0.05)
            with open(out) as fh:
                times.append(float(fh.read().split()[0]) - killed)
            time.sleep(1.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return times
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=float, default=0.2)
    p.add_argument("--executor", default="process")
    a = p.parse_args()
    per_batch, keys, batches = int(500_000 * a.scale), int(1_000_000 * a.scale), 20
    tmp = tempfile.mkdtemp()
    try:
        results = {}
        for label, ck in [("none", None), ("every 10 batches", f"{tmp}/ck"), ("none (again)", None),
                          ("every 10 batches (again)", f"{tmp}/ck2")]:
            secs = run(a.executor, batches, per_batch, keys, ck)
            results[label] = secs
            print(f"W3 updateStateByKey, {a.executor}, {batches} x {per_batch:,} events, {keys:,} keys, "
                  f"checkpoints {label}: {secs:.2f} s, {batches * per_batch / secs:,.0f} events/s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rt = recovery_times()
    print("recovery after SIGKILL (kill -> first batch of the restarted driver), s:",
          " ".join(f"{x:.2f}" for x in rt))


if __name__ == "__main__":
    main()
