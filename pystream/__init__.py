"""pystream: Spark Streaming, rebuilt for Python.

A pyspark.streaming program runs after changing its imports::

    from pystream import SparkConf, SparkContext
    from pystream.streaming import StreamingContext
"""

from pystream._core.hashing import portable_hash
from pystream.accumulators import Accumulator, AccumulatorParam
from pystream.barrier import BarrierTaskContext, BarrierTaskInfo, RDDBarrier
from pystream.context import Broadcast, SparkConf, SparkContext
from pystream.errors import PyStreamError
from pystream.files import SparkFiles
from pystream.jobs import SparkJobInfo, SparkStageInfo, StatusTracker
from pystream.taskcontext import TaskContext
from pystream.rdd import RDD, StorageLevel
from pystream.streaming import DStream, StateSpec, State, StreamingContext, StreamingListener

__version__ = "0.1.0"

__all__ = [
    "portable_hash",
    "PyStreamError",
    "SparkConf",
    "SparkContext",
    "Broadcast",
    "Accumulator",
    "AccumulatorParam",
    "SparkFiles",
    "TaskContext",
    "BarrierTaskContext",
    "BarrierTaskInfo",
    "RDDBarrier",
    "StatusTracker",
    "SparkJobInfo",
    "SparkStageInfo",
    "RDD",
    "StorageLevel",
    "StreamingContext",
    "DStream",
    "StreamingListener",
    "StateSpec",
    "State",
    "__version__",
]
