"""Command line: ``python -m pystream demo`` runs a windowed word count over generated Zipf text."""

from __future__ import annotations

import argparse
import operator
import sys

from pystream import SparkContext
from pystream.streaming import StreamingContext, StreamingListener
from pystream.streaming.dstream import format_batch


class _BatchReport(StreamingListener):
    def onBatchCompleted(self, batchCompleted) -> None:
        info = batchCompleted.batchInfo()
        print(f"batch {info.batchTime().to_datetime()}: {info.numRecords()} records, "
              f"processing {info.processingDelay()} ms, scheduling delay {info.schedulingDelay()} ms\n", flush=True)


def demo(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m pystream demo",
                                description="Windowed word count over a built-in Zipf text generator.")
    p.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    p.add_argument("--rate", type=float, default=20_000, help="generated lines per second (default 20000)")
    p.add_argument("--batch", type=float, default=1.0, help="batch interval in seconds (default 1)")
    p.add_argument("--window", type=float, default=10.0, help="window length in seconds (default 10)")
    p.add_argument("--top", type=int, default=10, help="words to print per batch (default 10)")
    p.add_argument("--master", default="local[2]", help="local, local[N] or local[*] (default local[2])")
    args = p.parse_args(argv)

    sc = SparkContext(args.master, "pystream-demo")
    ssc = StreamingContext(sc, args.batch)
    lines = ssc.textGeneratorStream(args.rate, wordsPerLine=10, vocabularySize=100_000, zipfExponent=1.1)
    counts = (lines.flatMap(lambda line: line.split())
              .map(lambda word: (word, 1))
              .reduceByKeyAndWindow(operator.add, operator.sub, args.window, args.batch,
                                    filterFunc=lambda kv: kv[1] > 0))
    top = args.top

    def print_top(time, rdd):
        # pprint's format, for the most frequent words, without sorting the whole window.
        print(format_batch(time, rdd.takeOrdered(top + 1, key=lambda kv: (-kv[1], kv[0])), top), flush=True)

    counts.foreachRDD(print_top)
    ssc.addStreamingListener(_BatchReport())
    print(f"pystream demo: {args.rate:.0f} lines/s of Zipf(1.1) words, {args.window:g} s windows every "
          f"{args.batch:g} s, for {args.duration:g} s on {args.master}\n", flush=True)
    ssc.start()
    try:
        ssc.awaitTerminationOrTimeout(args.duration)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        ssc.stop(stopSparkContext=True, stopGraceFully=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m pystream demo [--duration S] [--rate LINES] [--batch S] [--window S] [--master M]")
        return 0 if argv else 2
    if argv[0] == "demo":
        return demo(argv[1:])
    print(f"unknown command {argv[0]!r}; try: python -m pystream demo", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
