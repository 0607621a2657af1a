"""The DStream graph of a StreamingContext: its inputs, outputs, and the jobs each batch runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pystream.errors import IllegalArgumentError, IllegalStateError
from pystream.streaming.listener import StreamInputInfo

if TYPE_CHECKING:
    from pystream.streaming.dstream import DStream, ForEachDStream
    from pystream.streaming.sources.base import InputDStream


class DStreamGraph:
    def __init__(self, batch_ms: int) -> None:
        self.batch_ms = batch_ms
        self.input_streams: list[InputDStream] = []
        self.output_streams: list[ForEachDStream] = []
        self.stateful_streams: list[DStream] = []
        self.zero_ms: int | None = None
        self.remember_ms: int | None = None
        self.started = False
        #: with checkpointing: inputs keep what they need to replay the batches after this time
        self.replay_from_ms: int | None = None
        self.lock = threading.RLock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    def check_mutable(self) -> None:
        if self.started:
            raise IllegalStateError(
                "Adding new inputs, transformations, and output operations after starting a context is not "
                "supported")

    def add_input_stream(self, stream: InputDStream) -> int:
        self.check_mutable()
        with self.lock:
            self.input_streams.append(stream)
            return len(self.input_streams) - 1

    def add_output_stream(self, stream: ForEachDStream) -> None:
        self.check_mutable()
        with self.lock:
            self.output_streams.append(stream)

    def add_stateful_stream(self, stream: DStream) -> None:
        with self.lock:
            self.stateful_streams.append(stream)

    def remember(self, ms: int) -> None:
        self.check_mutable()
        self.remember_ms = ms

    def validate(self) -> None:
        if not self.output_streams:
            raise IllegalArgumentError("requirement failed: No output operations registered, so nothing to execute")

    def start(self, zero_ms: int) -> None:
        with self.lock:
            self.zero_ms = zero_ms
            for out in self.output_streams:
                out._initialize(zero_ms)
            for out in self.output_streams:
                out._remember(self.remember_ms)
            for inp in self.input_streams:
                if inp._zero_ms is None:  # an input no output depends on still gets its clock
                    inp._initialize(zero_ms)
            self.started = True

    def generate_jobs(self, t: int) -> tuple[dict[int, StreamInputInfo], list[tuple[int, Callable[[], None]]]]:
        """Allocate each input's data to batch ``t`` and return its input infos and output jobs, in order."""
        with self.lock:
            infos = {}
            for inp in self.input_streams:
                infos[inp._id] = inp._allocate(t)
                # Fix the batch's RDD now, even if only a later window reads it.
                inp._get_or_compute(t)
            jobs = []
            for i, out in enumerate(self.output_streams):
                job = out._generate_job(t)
                if job is not None:
                    jobs.append((i, job))
            return infos, jobs

    def materialize_state(self, t: int) -> None:
        """Compute the state RDDs of batch ``t`` that no output touched, so the next batch builds on data,
        not on an ever longer lineage."""
        with self.lock:
            streams = list(self.stateful_streams)
        first: Exception | None = None
        for stream in streams:  # one stream's failure leaves the others to be materialised
            try:
                stream._materialize(t)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def clear_metadata(self, t: int) -> None:
        with self.lock:
            for out in self.output_streams:
                out._clear_metadata(t)
            for inp in self.input_streams:
                inp._clear_metadata(t)
