"""Kill tests: a real driver process is SIGKILLed at random moments and restarted with getOrCreate; the
output must end with exactly the totals of all input (nothing lost, nothing counted twice)."""

from __future__ import annotations

import collections
import os
import random
import subprocess
import sys
import textwrap
import time

import pytest
from _support import (
    assert_clean_log,
    assert_exactly_once,
    kill_group,
    wait_first_checkpoint,
    wait_for_totals,
)

CHILD = textwrap.dedent('''
    import sys
    from pystream import SparkConf, SparkContext
    from pystream.context import EXECUTOR_KEY
    from pystream.streaming import StreamingContext

    inp, out, ck, executor, interval = sys.argv[1:6]

    def setup():
        conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, executor)
        sc = SparkContext("local[2]", "kill-test", conf)
        ssc = StreamingContext(sc, 0.2)
        ssc.checkpoint(ck)
        words = ssc.textFileStream(inp).flatMap(str.split).map(lambda w: (w, 1))
        totals = words.updateStateByKey(lambda vs, s: sum(vs) + (s or 0))
        if interval != "default":
            totals.checkpoint(float(interval))
        totals.saveAsTextFiles(out + "/totals")
        return ssc

    ssc = StreamingContext.getOrCreate(ck, setup)
    ssc.start()
    ssc.awaitTermination()
''')

VOCAB = [f"w{i}" for i in range(40)]


def _spawn(script, inp, out, ck, executor, interval, log):
    return subprocess.Popen([sys.executable, str(script), str(inp), str(out), str(ck), executor, interval],
                            stdout=log, stderr=log, start_new_session=True)


class _Feeder:
    def __init__(self, inp, rng):
        self.inp, self.rng, self.n = inp, rng, 0
        self.expected = collections.Counter()

    def put(self):
        lines = [" ".join(self.rng.choice(VOCAB) for _ in range(self.rng.randint(1, 8)))
                 for _ in range(self.rng.randint(1, 20))]
        for line in lines:
            self.expected.update(line.split())
        tmp = os.path.join(self.inp, f".f{self.n}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        os.rename(tmp, os.path.join(self.inp, f"f{self.n:05d}.txt"))
        self.n += 1

    def feed_for(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.put()
            time.sleep(self.rng.uniform(0.01, 0.08))


@pytest.mark.parametrize("executor,interval", [("inprocess", "1.0"), ("process", "default")])
def test_sigkill_many_times_keeps_exact_totals(tmp_path, executor, interval):
    rng = random.Random(f"{executor}-{interval}")
    inp, out, ck = tmp_path / "in", tmp_path / "out", tmp_path / "ck"
    inp.mkdir()
    out.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(CHILD)
    feeder = _Feeder(str(inp), rng)
    kills = 0
    with open(tmp_path / "driver.log", "ab") as log:
        proc = _spawn(script, inp, out, ck, executor, interval, log)
        try:
            # A new textFileStream ignores files already there: feed once the first run has a checkpoint.
            wait_first_checkpoint(ck, proc, tmp_path / "driver.log")
            while kills < 6:
                # Feed while the driver runs, then kill it at a random moment (often mid-batch, mid-write).
                feeder.feed_for(rng.uniform(1.0, 3.0))
                kill_group(proc)
                kills += 1
                if rng.random() < 0.5:
                    feeder.feed_for(rng.uniform(0.1, 0.5))  # files arriving while the driver is down
                proc = _spawn(script, inp, out, ck, executor, interval, log)
            feeder.feed_for(1.0)
            expected = dict(feeder.expected)
            outs, latest = wait_for_totals(out, expected, proc, tmp_path / "driver.log", 25)
        finally:
            kill_group(proc)
    assert_clean_log(tmp_path / "driver.log")
    assert_exactly_once(outs, latest, expected)
    assert kills >= 5


def _kill_when_writing(proc, folder: str, prefix: str, timeout: float) -> bool:
    """SIGKILL the driver as soon as a temporary file or directory of ``prefix`` shows in ``folder`` (a write in
    progress); kill it anyway after ``timeout``. Returns whether the kill landed on a write in progress."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            names = []
        if any(n.startswith(prefix) and n.endswith(".tmp") for n in names):
            kill_group(proc)
            return True
        time.sleep(0.0003)
    kill_group(proc)
    return False


def test_sigkill_during_checkpoint_writes_and_output_keeps_exact_totals(tmp_path):
    """Kills aimed at the two most delicate moments: while a checkpoint file is being written (its temporary
    file exists) and while a batch's output directory is being written."""
    rng = random.Random("targeted")
    inp, out, ck = tmp_path / "in", tmp_path / "out", tmp_path / "ck"
    inp.mkdir()
    out.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(CHILD)
    feeder = _Feeder(str(inp), rng)
    landed = {"checkpoint": 0, "output": 0}
    with open(tmp_path / "driver.log", "ab") as log:
        proc = _spawn(script, inp, out, ck, "inprocess", "0.4", log)
        try:
            wait_first_checkpoint(ck, proc, tmp_path / "driver.log")
            for target in ["checkpoint", "output"] * 3:
                feeder.feed_for(rng.uniform(0.5, 1.0))
                folder, prefix = (str(ck), ".") if target == "checkpoint" else (str(out), ".totals-")
                landed[target] += _kill_when_writing(proc, folder, prefix, timeout=3.0)
                proc = _spawn(script, inp, out, ck, "inprocess", "0.4", log)
            feeder.feed_for(1.0)
            expected = dict(feeder.expected)
            outs, latest = wait_for_totals(out, expected, proc, tmp_path / "driver.log", 25)
        finally:
            kill_group(proc)
    assert_clean_log(tmp_path / "driver.log")
    assert_exactly_once(outs, latest, expected)
    # Most kills must really land mid-write for the test to mean something.
    assert landed["checkpoint"] >= 2 and landed["output"] >= 2, landed
