"""Input DStreams: the roots of the graph, asked at each batch time for the data of that batch."""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Any

from pystream.lineage import ParallelCollectionRDD, UnionRDD
from pystream.rdd import RDD
from pystream.streaming.dstream import DStream
from pystream.streaming.listener import StreamInputInfo

if TYPE_CHECKING:
    from pystream.streaming.context import StreamingContext


class InputDStream(DStream):
    """A source. ``_allocate(t)`` fixes which data belongs to batch ``t`` (called once per batch, in order,
    before any job of the batch is generated); ``_compute(t)`` builds that batch's RDD."""

    def __init__(self, ssc: StreamingContext) -> None:
        super().__init__(ssc, ssc._graph.batch_ms)
        self._id = ssc._graph.add_input_stream(self)

    def _allocate(self, t: int) -> StreamInputInfo:
        return StreamInputInfo(self._id, 0)

    def _start(self) -> None:
        """Start producing data (called by StreamingContext.start)."""

    def _recovered(self) -> None:
        """Called once on a stream rebuilt from a checkpoint, before ``_start``."""

    def _unrecoverable(self) -> str | None:
        """Why a stream rebuilt from a checkpoint cannot run (None: it can)."""
        return None

    def _replay_gap(self, t_ms: int) -> str | None:
        """Why the data of some batch after ``t_ms`` cannot be produced again (None: it can)."""
        return None if self._replayable_since(t_ms) else f"{self.name} cannot give its batches again"

    def _replayable_since(self, t_ms: int) -> bool:
        """Whether the data of every batch after ``t_ms`` can be produced again after a recovery (the
        generated sources are deterministic by batch time)."""
        return True

    def _stop(self, graceful: bool = False) -> None:
        """Stop producing data (called by StreamingContext.stop)."""

    @property
    def name(self) -> str:
        return f"{type(self).__name__}-{self._id}"


def _num_records(rdd: RDD) -> int:
    if isinstance(rdd, ParallelCollectionRDD):
        return sum(len(p) for p in rdd._parts)
    return 0


class QueueInputDStream(InputDStream):
    """queueStream: one RDD (or all queued RDDs) per batch; ``default`` or an empty batch when the queue is dry."""

    def __init__(self, ssc: StreamingContext, rdds: Any, oneAtATime: bool, default: RDD | None) -> None:
        super().__init__(ssc)
        self._queue: collections.deque[RDD] = collections.deque(rdds)
        self._one_at_a_time = oneAtATime
        self._default = default
        self._allocated: dict[int, RDD] = {}
        self._lock = threading.Lock()

    def push(self, rdd: RDD) -> None:
        """Queue one more RDD (thread-safe)."""
        with self._lock:
            self._queue.append(rdd)

    def _allocate(self, t: int) -> StreamInputInfo:
        with self._lock:
            if self._queue:
                if self._one_at_a_time:
                    rdd = self._queue.popleft()
                else:
                    rdds = list(self._queue)
                    self._queue.clear()
                    rdd = rdds[0] if len(rdds) == 1 else UnionRDD(self._sc, rdds)
            elif self._default is not None:
                rdd = self._default
            else:
                # An empty batch still has a partition, so count() gives [0] as in pyspark.
                rdd = ParallelCollectionRDD(self._sc, [[]])
        self._allocated[t] = rdd
        return StreamInputInfo(self._id, _num_records(rdd))

    def _compute(self, t: int) -> RDD | None:
        return self._allocated.pop(t, None)

    def _clear_metadata(self, t: int) -> None:
        for old in [s for s in self._allocated if s <= t]:
            del self._allocated[old]
        super()._clear_metadata(t)

    # As in pyspark, a queueStream runs with checkpointing on, and its state streams are checkpointed; its RDDs
    # live in this driver's memory only and are not written. A graph rebuilt from that checkpoint has lost them,
    # so recovery refuses it rather than run on an empty queue (Scala's QueueInputDStream fails to read too).
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.update(_queue=None, _default=None, _allocated={}, _lock=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._queue = collections.deque()
        self._lock = threading.Lock()

    def _replayable_since(self, t_ms: int) -> bool:
        return False  # its RDDs are gone once allocated

    def _unrecoverable(self) -> str | None:
        return ("queueStream doesn't support recovery from a checkpoint: its RDDs lived only in the memory of the "
                "driver that queued them (start from a new checkpoint directory, or use a source that can replay)")
