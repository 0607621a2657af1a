r"""Counts words over a sliding window, updated incrementally with reduceByKeyAndWindow and its inverse
function: the windowed word count of the Spark Streaming programming guide
(``reduceByKeyAndWindow(lambda x, y: x + y, lambda x, y: x - y, 30, 10)``), ported to pystream.

Lines come from the built-in text generator (Zipf-distributed words, deterministic given --seed), or from a
TCP server when --host and --port are given.

Usage: windowed_wordcount.py [--host HOST --port PORT] [--window SECONDS] [--slide SECONDS]
                             [--checkpoint DIR] [--batch SECONDS] [--seconds SECONDS]

    `$ python examples/windowed_wordcount.py --seconds 5`
    `$ nc -lk 9999` then `$ python examples/windowed_wordcount.py --host localhost --port 9999`
"""

from __future__ import annotations

import argparse
import tempfile

from pystream import SparkContext
from pystream.streaming import StreamingContext


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Windowed word counts with an inverse reduce function.")
    parser.add_argument("--host", default=None, help="read lines from this TCP server (with --port)")
    parser.add_argument("--port", type=int, default=None, help="port of the TCP server")
    parser.add_argument("--batch", type=float, default=0.5, help="batch interval in seconds (default 0.5)")
    parser.add_argument("--window", type=float, default=3.0, help="window length in seconds (default 3)")
    parser.add_argument("--slide", type=float, default=0.5, help="slide interval in seconds (default 0.5)")
    parser.add_argument("--lines-per-second", type=float, default=20.0,
                        help="generated lines per second when no server is given (default 20)")
    parser.add_argument("--words-per-line", type=int, default=5, help="words per generated line (default 5)")
    parser.add_argument("--vocabulary", type=int, default=20, help="distinct generated words (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated text (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint directory (default: a temporary directory removed at the end)")
    parser.add_argument("--num", type=int, default=10, help="records printed per window (default 10)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after this many seconds (default 10)")
    args = parser.parse_args(argv)
    if (args.host is None) != (args.port is None):
        parser.error("--host and --port go together")
    return args


def run(args: argparse.Namespace, checkpoint_dir: str) -> None:
    sc = SparkContext(appName="PythonStreamingWindowedWordCount")
    ssc = StreamingContext(sc, args.batch)
    ssc.checkpoint(checkpoint_dir)  # windows with an inverse function keep state: they need a checkpoint

    if args.host is not None:
        lines = ssc.socketTextStream(args.host, args.port)
    else:
        lines = ssc.textGeneratorStream(args.lines_per_second, wordsPerLine=args.words_per_line,
                                        vocabularySize=args.vocabulary, seed=args.seed)
    counts = lines.flatMap(lambda line: line.split(" ")) \
        .map(lambda word: (word, 1)) \
        .reduceByKeyAndWindow(lambda a, b: a + b, lambda a, b: a - b, args.window, args.slide,
                              filterFunc=lambda kv: kv[1] > 0)
    counts.transform(lambda rdd: rdd.sortBy(lambda kv: (-kv[1], kv[0]))).pprint(args.num)

    ssc.start()
    try:
        ssc.awaitTerminationOrTimeout(args.seconds)
    finally:
        ssc.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.checkpoint is not None:
        run(args, args.checkpoint)
    else:
        with tempfile.TemporaryDirectory(prefix="pystream-checkpoint-") as tmp:
            run(args, tmp)


if __name__ == "__main__":
    main()
