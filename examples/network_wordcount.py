r"""Counts words in UTF-8 encoded, "\n" delimited text received from the network every batch.

Spark's examples/src/main/python/streaming/network_wordcount.py, ported to pystream.

Usage: network_wordcount.py <hostname> <port> [--batch SECONDS] [--seconds SECONDS]
  <hostname> and <port> describe the TCP server that Spark Streaming would connect to receive data.

To run this on your local machine, you need to first run a Netcat server
    `$ nc -lk 9999`
and then run the example
    `$ python examples/network_wordcount.py localhost 9999`
"""

from __future__ import annotations

import argparse

from pystream import SparkContext
from pystream.streaming import StreamingContext


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Count words received over TCP, per batch.")
    parser.add_argument("hostname", help="host of the TCP server sending lines")
    parser.add_argument("port", type=int, help="port of the TCP server sending lines")
    parser.add_argument("--batch", type=float, default=1.0, help="batch interval in seconds (default 1)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after this many seconds (default 10)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sc = SparkContext(appName="PythonStreamingNetworkWordCount")
    ssc = StreamingContext(sc, args.batch)

    lines = ssc.socketTextStream(args.hostname, args.port)
    counts = lines.flatMap(lambda line: line.split(" ")) \
        .map(lambda word: (word, 1)) \
        .reduceByKey(lambda a, b: a + b)
    counts.pprint()

    ssc.start()
    try:
        ssc.awaitTerminationOrTimeout(args.seconds)
    finally:
        ssc.stop()


if __name__ == "__main__":
    main()
