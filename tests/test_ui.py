"""The status REST API (pystream/ui.py), over a real socket: applications, jobs, stages, streaming batches."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY
from pystream.testing import advance, manual_context


def _context(kind="inprocess", **settings):
    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, kind).set("spark.ui.enabled", "true")
    conf.set("spark.ui.port", "0")
    for key, value in settings.items():
        conf.set(key.replace("_", "."), value)
    return SparkContext("local[2]", "ui-test", conf)


def _get(sc, path):
    with urllib.request.urlopen(sc.uiWebUrl + path, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        return json.loads(response.read())


def _error(sc, path):
    with pytest.raises(urllib.error.HTTPError) as info:
        _get(sc, path)
    return info.value.code, json.loads(info.value.read())["error"]


def test_no_server_unless_enabled():
    sc = SparkContext("local[1]", "no-ui", SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "inprocess"))
    try:
        assert sc.uiWebUrl is None
    finally:
        sc.stop()


@pytest.mark.parametrize("kind", ["inprocess", "process"])
def test_applications_jobs_and_stages(kind):
    sc = _context(kind)
    try:
        assert sc.uiWebUrl.startswith("http://127.0.0.1:")
        sc.setJobGroup("nightly", "the sums")
        assert sc.parallelize(range(10), 2).map(lambda x: (x % 2, x)).reduceByKey(lambda a, b: a + b) \
            .collectAsMap() == {0: 20, 1: 25}
        sc.setLocalProperty("spark.jobGroup.id", None)
        with pytest.raises(ZeroDivisionError):
            sc.parallelize([0], 1).map(lambda x: 1 // x).collect()
        (app,) = _get(sc, "/api/v1/applications")
        assert (app["id"], app["name"]) == (sc.applicationId, "ui-test")
        assert _get(sc, f"/api/v1/applications/{sc.applicationId}")["attempts"][0]["completed"] is False
        base = f"/api/v1/applications/{sc.applicationId}"
        failed, done = _get(sc, f"{base}/jobs")  # newest first
        assert failed["status"] == "FAILED" and failed["numFailedTasks"] == 1
        assert done["status"] == "SUCCEEDED" and done["jobGroup"] == "nightly" and done["description"] == "the sums"
        assert done["name"].startswith("collectAsMap at test_ui.py:")
        assert (done["numTasks"], done["numCompletedTasks"], done["numCompletedStages"]) == (4, 4, 2)
        assert done["submissionTime"].endswith("GMT") and done["completionTime"] >= done["submissionTime"]
        assert _get(sc, f"{base}/jobs/{done['jobId']}") == done
        assert [j["jobId"] for j in _get(sc, f"{base}/jobs?status=succeeded")] == [done["jobId"]]
        stages = _get(sc, f"{base}/stages")
        assert {s["stageId"] for s in stages} == set(done["stageIds"]) | set(failed["stageIds"])
        (shuffle,) = _get(sc, f"{base}/stages/{done['stageIds'][0]}")
        assert shuffle["name"].startswith("reduceByKey at test_ui.py:")
        assert (shuffle["status"], shuffle["numCompleteTasks"]) == ("COMPLETE", 2)
        assert [s["stageId"] for s in _get(sc, f"{base}/stages?status=failed")] == failed["stageIds"]
        assert _error(sc, f"{base}/jobs/999")[0] == 404
        assert _error(sc, "/api/v1/applications/other-app/jobs")[0] == 404
        assert _error(sc, "/api/v2/nothing")[0] == 404
        code, message = _error(sc, f"{base}/jobs?status=sideways")
        assert code == 400 and "running" in message
        assert _error(sc, f"{base}/streaming/statistics") == (
            404, "no streaming listener attached to this application (no StreamingContext started)")
    finally:
        sc.stop()


def test_streaming_statistics_and_batches():
    sc = _context()
    ssc = manual_context(sc, 1.0)
    try:
        base = f"/api/v1/applications/{sc.applicationId}/streaming"
        stream = ssc.queueStream([sc.parallelize(range(n), 1) for n in (5, 3, 4)])

        def output(rdd):
            if rdd.count() == 3:
                raise ValueError("three is bad")

        stream.foreachRDD(output)
        ssc.start()
        advance(ssc, 3)
        with pytest.raises(Exception, match="three is bad"):
            ssc.awaitTerminationOrTimeout(0)
        stats = _get(sc, f"{base}/statistics")
        assert stats["batchDuration"] == 1000 and stats["numTotalCompletedBatches"] == 3
        assert stats["numProcessedRecords"] == stats["numReceivedRecords"] == 12
        assert stats["avgInputRate"] == pytest.approx(4.0) and stats["numActiveBatches"] == 0
        batches = _get(sc, f"{base}/batches")
        assert [b["batchId"] for b in batches] == [3000, 2000, 1000]  # newest first
        assert [b["inputSize"] for b in batches] == [4, 3, 5]
        assert batches[1]["numFailedOutputOps"] == 1 and "three is bad" in batches[1]["firstFailureReason"]
        assert batches[0]["numCompletedOutputOps"] == 1 and batches[0]["status"] == "COMPLETED"
        assert _get(sc, f"{base}/batches/2000") == batches[1]
        (op,) = _get(sc, f"{base}/batches/2000/operations")
        assert op["outputOpId"] == 0 and "three is bad" in op["failureReason"]
        assert _get(sc, f"{base}/batches?status=queued") == []
        assert _error(sc, f"{base}/batches/4000")[0] == 404
    finally:
        ssc.stop(stopSparkContext=False)
        sc.stop()


def test_a_taken_port_moves_to_the_next_and_stop_closes_the_server():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        sc = _context(spark_ui_port=str(port))
        url = sc.uiWebUrl
        assert port < int(url.rsplit(":", 1)[1]) <= port + 16
        assert _get(sc, "/api/v1/applications")[0]["id"] == sc.applicationId
        sc.stop()
        assert sc.uiWebUrl == url  # the address it had
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url + "/api/v1/applications", timeout=5)
        assert not [t for t in threading.enumerate() if t.name == "pystream-ui"]
    finally:
        holder.close()
    with pytest.raises(OSError, match="could not bind"):
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        try:
            _context(spark_ui_port=str(held.getsockname()[1]), spark_port_maxRetries="0")
        finally:
            held.close()
