"""stop() also stops the SparkContext unless told not to (own SparkContext: no shared fixture here)."""

import pytest

from pystream import SparkContext
from pystream.errors import IllegalStateError
from pystream.testing import collect, manual_context


def test_stop_stops_spark_context_by_default():
    sc = SparkContext("local[1]", "stop-test")
    try:
        ssc = manual_context(sc)
        collect(ssc.queueStream([[1]]))
        ssc.start()
        ssc.stop()
        with pytest.raises(IllegalStateError):
            sc.parallelize([1]).collect()
    finally:
        sc.stop()
