"""Backpressure: receivers take in no more records per second than the batches manage to process.

Spark's ``spark.streaming.backpressure.enabled``: after each completed batch, a PID controller estimates from
the batch's records, processing time and scheduling delay the rate the job can sustain, and each receiver's
rate limit becomes that estimate (never above ``spark.streaming.receiver.maxRate`` when that is set). Until the
first estimate, receivers take ``spark.streaming.backpressure.initialRate`` records per second if it is set, or
as many as they get. The controller's gains and floor are Spark's settings of the same names:
``spark.streaming.backpressure.pid.proportional`` (1.0), ``.integral`` (0.2), ``.derived`` (0.0) and
``.minRate`` (100).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pystream.errors import IllegalArgumentError
from pystream.streaming.listener import StreamingListener

if TYPE_CHECKING:
    from pystream.context import SparkConf

logger = logging.getLogger(__name__)

__all__ = ["PIDRateEstimator", "RateController", "ENABLED_KEY", "INITIAL_RATE_KEY"]

ENABLED_KEY = "spark.streaming.backpressure.enabled"
INITIAL_RATE_KEY = "spark.streaming.backpressure.initialRate"
_PID = "spark.streaming.backpressure.pid."


class PIDRateEstimator:
    """Spark's PIDRateEstimator: ``compute`` gives a new rate (records per second) for a completed batch, or
    None when the batch tells nothing new (the first one, which only sets the starting point; one with no
    records or no processing time; one not later than the last)."""

    def __init__(self, batch_interval_ms: int, proportional: float = 1.0, integral: float = 0.2,
                 derivative: float = 0.0, min_rate: float = 100.0) -> None:
        if batch_interval_ms <= 0:
            raise IllegalArgumentError(f"Specified batch interval {batch_interval_ms} in PIDRateEstimator is invalid.")
        for name, value in (("Proportional", proportional), ("Integral", integral), ("Derivative", derivative)):
            if value < 0:
                raise IllegalArgumentError(f"{name} term {value} in PIDRateEstimator should be >= 0.")
        if min_rate <= 0:
            raise IllegalArgumentError(f"Minimum rate in PIDRateEstimator should be > 0, got {min_rate}")
        self.batch_interval_ms = batch_interval_ms
        self.proportional, self.integral, self.derivative = proportional, integral, derivative
        self.min_rate = min_rate
        self.first_run = True
        self.latest_time = -1
        self.latest_rate = -1.0
        self.latest_error = -1.0

    @classmethod
    def from_conf(cls, conf: SparkConf, batch_interval_ms: int) -> PIDRateEstimator:
        return cls(batch_interval_ms, conf.getFloat(_PID + "proportional", 1.0), conf.getFloat(_PID + "integral", 0.2),
                   conf.getFloat(_PID + "derived", 0.0), conf.getFloat(_PID + "minRate", 100.0))

    def compute(self, time_ms: int, num_elements: int, processing_delay_ms: int,
                scheduling_delay_ms: int) -> float | None:
        if not (time_ms > self.latest_time and num_elements > 0 and processing_delay_ms > 0):
            return None
        delay_since_update = (time_ms - self.latest_time) / 1000
        processing_rate = num_elements / processing_delay_ms * 1000
        # The error: how much faster the records came in than they were processed. The historical error: the
        # records still waiting (the scheduling delay, at the processing rate) spread over a batch interval.
        error = self.latest_rate - processing_rate
        historical_error = scheduling_delay_ms * processing_rate / self.batch_interval_ms
        d_error = (error - self.latest_error) / delay_since_update
        new_rate = max(self.latest_rate - self.proportional * error - self.integral * historical_error
                       - self.derivative * d_error, self.min_rate)
        self.latest_time = time_ms
        if self.first_run:
            self.latest_rate = processing_rate
            self.latest_error = 0.0
            self.first_run = False
            return None
        self.latest_rate = new_rate
        self.latest_error = error
        logger.debug("backpressure: new rate %.1f records/s (processing rate %.1f)", new_rate, processing_rate)
        return new_rate


class RateController(StreamingListener):
    """One receiver stream's controller: on each completed batch, its rate limit becomes the estimator's."""

    def __init__(self, stream_id: int, estimator: PIDRateEstimator, publish: Any) -> None:
        self.stream_id = stream_id
        self.estimator = estimator
        self.publish = publish

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        inputs = info.streamIdToInputInfo().get(self.stream_id)
        if inputs is None:
            return
        rate = self.estimator.compute(info.processingEndTime() or -1, inputs.numRecords(),
                                      info.processingDelay(), info.schedulingDelay())
        if rate is not None:
            self.publish(rate)
