"""pyspark.streaming's API: StreamingContext, DStream, listeners, and Scala's mapWithState and Receiver."""

from pystream.streaming.context import StreamingContext
from pystream.streaming.dstream import DStream
from pystream.streaming.listener import (
    BatchInfo,
    OutputOperationInfo,
    ReceiverInfo,
    StreamingListener,
    StreamInputInfo,
)
from pystream.streaming.sources.receiver import Receiver
from pystream.streaming.state import State, StateSpec
from pystream.streaming.time import Time

__all__ = [
    "StreamingContext",
    "DStream",
    "StreamingListener",
    "BatchInfo",
    "OutputOperationInfo",
    "ReceiverInfo",
    "StreamInputInfo",
    "Receiver",
    "State",
    "StateSpec",
    "Time",
]
