"""Creates a queue of RDDs that is processed as a stream, one RDD per batch.

Spark's examples/src/main/python/streaming/queue_stream.py, ported to pystream.

Usage: queue_stream.py [--rdds N] [--batch SECONDS] [--seconds SECONDS]
    `$ python examples/queue_stream.py`
"""

from __future__ import annotations

import argparse

from pystream import SparkContext
from pystream.streaming import StreamingContext


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Process a queue of RDDs as a stream.")
    parser.add_argument("--rdds", type=int, default=5, help="number of RDDs queued (default 5)")
    parser.add_argument("--batch", type=float, default=0.5, help="batch interval in seconds (default 0.5)")
    parser.add_argument("--seconds", type=float, default=4.0, help="stop after this many seconds (default 4)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sc = SparkContext(appName="PythonStreamingQueueStream")
    ssc = StreamingContext(sc, args.batch)

    # Create the queue through which RDDs can be pushed to a QueueInputDStream
    rdd_queue = [ssc.sparkContext.parallelize(list(range(1, 1001)), 10) for _ in range(args.rdds)]

    # Create the QueueInputDStream and use it do some processing
    input_stream = ssc.queueStream(rdd_queue)
    mapped_stream = input_stream.map(lambda x: (x % 10, 1))
    reduced_stream = mapped_stream.reduceByKey(lambda a, b: a + b)
    reduced_stream.pprint()

    ssc.start()
    try:
        ssc.awaitTerminationOrTimeout(args.seconds)
    finally:
        ssc.stop(stopSparkContext=True, stopGraceFully=True)


if __name__ == "__main__":
    main()
