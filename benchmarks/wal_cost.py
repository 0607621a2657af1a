"""Cost of the receivers' write-ahead log: records per second a receiver stores with the log on and off.

    python benchmarks/wal_cost.py [--seconds 3] [--dir /path/on/the/disk/to/measure]

Two receivers, each in a running StreamingContext (real clock, 0.5 s batches, checkpointing on, a count() per
batch): a custom receiver calling store() with blocks of 1, 100 and 10,000 short strings as fast as it can, and
socketTextStream reading lines that a local TCP server writes as fast as the socket takes them. With the log on
every store() call is one fdatasync, so the cost is per block, not per record.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
import threading
import time

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY
from pystream.streaming import Receiver, StreamingContext
from pystream.streaming.sources.receiver import MAX_BUFFERED_KEY
from pystream.streaming.wal import ENABLE_KEY


class BlastReceiver(Receiver):
    def __init__(self, block: int) -> None:
        super().__init__()
        self.block = block
        self.stored = 0

    def onStart(self) -> None:
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        data = [f"record {i} some payload" for i in range(self.block)]
        while not self.isStopped():
            self.store(list(data))
            self.stored += len(data)


def _context(sc: SparkContext, ck: str) -> StreamingContext:
    ssc = StreamingContext(sc, 0.5)
    ssc.checkpoint(ck)
    return ssc


def run_custom(sc: SparkContext, base: str, block: int, seconds: float) -> float:
    ck = tempfile.mkdtemp(dir=base)
    ssc = _context(sc, ck)
    receiver = BlastReceiver(block)
    ssc.receiverStream(receiver).count().foreachRDD(lambda rdd: rdd.collect())
    ssc.start()
    time.sleep(0.5)
    n0, t0 = receiver.stored, time.perf_counter()
    time.sleep(seconds)
    rate = (receiver.stored - n0) / (time.perf_counter() - t0)
    ssc.stop(stopSparkContext=False)
    shutil.rmtree(ck, ignore_errors=True)
    return rate


def run_socket(sc: SparkContext, base: str, seconds: float) -> float:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        chunk = b"".join(b"line %d of the socket benchmark\n" % i for i in range(2000))
        with conn:
            while not stop.is_set():
                try:
                    conn.sendall(chunk)
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    ck = tempfile.mkdtemp(dir=base)
    ssc = _context(sc, ck)
    counted = [0]
    ssc.socketTextStream("127.0.0.1", port).count().foreachRDD(
        lambda rdd: counted.__setitem__(0, counted[0] + sum(rdd.collect())))
    sup = ssc._graph.input_streams[0]._supervisor
    ssc.start()
    time.sleep(1.0)
    # Stored records = counted by finished batches + still buffered.
    def stored() -> int:
        with sup.cond:
            return counted[0] + len(sup.buffer)

    n0, t0 = stored(), time.perf_counter()
    time.sleep(seconds)
    rate = (stored() - n0) / (time.perf_counter() - t0)
    stop.set()
    ssc.stop(stopSparkContext=False)
    server.close()
    shutil.rmtree(ck, ignore_errors=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--dir", default=None, help="where the checkpoint directories go (default: a temp dir)")
    args = parser.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="wal-cost-")
    os.makedirs(base, exist_ok=True)
    # A buffer large enough that the batches' draining (1M records by default) does not cap the rates.
    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "inprocess").set(MAX_BUFFERED_KEY, "20000000")
    sc = SparkContext("local[2]", "wal-cost", conf)
    try:
        print(f"{'receiver':<28}{'log off rec/s':>16}{'log on rec/s':>16}{'on/off':>8}{'blocks/s on':>14}")
        cases = [(f"store() of {b} records", b) for b in (1, 100, 10_000)] + [("socketTextStream", None)]
        for name, block in cases:
            rates = []
            for on in (False, True):
                sc._conf.set(ENABLE_KEY, "true" if on else "false")
                rates.append(run_custom(sc, base, block, args.seconds) if block else
                             run_socket(sc, base, args.seconds))
            blocks = f"{rates[1] / block:,.0f}" if block else "-"
            print(f"{name:<28}{rates[0]:>16,.0f}{rates[1]:>16,.0f}{rates[1] / rates[0]:>8.2f}{blocks:>14}")
    finally:
        sc.stop()
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
