r"""Counts words in UTF-8 encoded, "\n" delimited text received from the network, keeping a running total
per word across batches with updateStateByKey.

Spark's examples/src/main/python/streaming/stateful_network_wordcount.py, ported to pystream.

Usage: stateful_network_wordcount.py <hostname> <port> [--checkpoint DIR] [--batch SECONDS] [--seconds SECONDS]
  <hostname> and <port> describe the TCP server that Spark Streaming would connect to receive data.

To run this on your local machine, you need to first run a Netcat server
    `$ nc -lk 9999`
and then run the example
    `$ python examples/stateful_network_wordcount.py localhost 9999 --checkpoint /tmp/checkpoint`
"""

from __future__ import annotations

import argparse
import tempfile

from pystream import SparkContext
from pystream.streaming import StreamingContext


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Running word counts over lines received over TCP.")
    parser.add_argument("hostname", help="host of the TCP server sending lines")
    parser.add_argument("port", type=int, help="port of the TCP server sending lines")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint directory (default: a temporary directory removed at the end)")
    parser.add_argument("--batch", type=float, default=1.0, help="batch interval in seconds (default 1)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after this many seconds (default 10)")
    return parser.parse_args(argv)


def update_func(new_values: list[int], last_sum: int | None) -> int:
    return sum(new_values) + (last_sum or 0)


def run(args: argparse.Namespace, checkpoint_dir: str) -> None:
    sc = SparkContext(appName="PythonStreamingStatefulNetworkWordCount")
    ssc = StreamingContext(sc, args.batch)
    ssc.checkpoint(checkpoint_dir)

    # RDD with initial state (key, value) pairs
    initial_state_rdd = sc.parallelize([("hello", 1), ("world", 1)])

    lines = ssc.socketTextStream(args.hostname, args.port)
    running_counts = lines.flatMap(lambda line: line.split(" ")) \
        .map(lambda word: (word, 1)) \
        .updateStateByKey(update_func, initialRDD=initial_state_rdd)
    running_counts.pprint()

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
