"""Input sources: queues, sockets, directories, generators, and custom receivers."""

from pystream.streaming.sources.base import InputDStream, QueueInputDStream
from pystream.streaming.sources.receiver import Receiver, ReceiverInputDStream

__all__ = ["InputDStream", "QueueInputDStream", "Receiver", "ReceiverInputDStream"]
