"""The status REST API: the part of Spark's monitoring API (``/api/v1``) that tells of a running application's
jobs, stages and streaming batches, served over HTTP while the SparkContext runs.

It is off unless ``spark.ui.enabled`` is true (Spark's is on by default; an open port is a choice left to the
user here). It listens on ``spark.driver.bindAddress`` (default 127.0.0.1) and ``spark.ui.port`` (default 4040;
0 for any free port), trying the next ports up to ``spark.port.maxRetries`` (16) times when one is taken, as
Spark does; ``sc.uiWebUrl`` gives the address. Endpoints, each answering JSON as Spark's do:

- ``/api/v1/applications`` and ``/api/v1/applications/<app-id>``
- ``/api/v1/applications/<app-id>/jobs`` (``?status=running|succeeded|failed``) and ``.../jobs/<job-id>``
- ``/api/v1/applications/<app-id>/stages`` (``?status=active|complete|failed``) and ``.../stages/<stage-id>``
- ``/api/v1/applications/<app-id>/streaming/statistics``, ``.../streaming/batches`` (``?status=queued|
  processing|completed``), ``.../streaming/batches/<batch-id>`` and ``.../batches/<batch-id>/operations``,
  for the StreamingContext started on this context (404 before one is).

An unknown path or id answers 404 with a message, a bad query 400; the server never stops the application.
Every other path is a page of the web UI (pystream/ui_pages.py), from the same records.
"""

from __future__ import annotations

import collections
import datetime
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from pystream.streaming.listener import BatchInfo, StreamingListener
from pystream.ui_pages import BadRequest as _BadRequest
from pystream.ui_pages import NotFound as _NotFound
from pystream.ui_pages import Redirect, error_page, render

if TYPE_CHECKING:
    from pystream.context import SparkContext
    from pystream.streaming.context import StreamingContext

logger = logging.getLogger(__name__)

__all__ = ["StatusServer", "StreamingProgress"]

# As spark.streaming.ui.retainedBatches: the completed batches the API still tells of.
RETAINED_BATCHES = 1000


def _date(ms: int | None) -> str | None:
    """Spark's REST date format: 2015-02-03T16:42:59.720GMT."""
    if ms is None:
        return None
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}GMT"


class StreamingProgress(StreamingListener):
    """What the streaming endpoints tell: the batches (queued, processing, the last 1000 completed), the
    receivers, and totals, as Spark's StreamingJobProgressListener keeps them."""

    def __init__(self, ssc: StreamingContext) -> None:
        self.ssc = ssc
        self.lock = threading.Lock()
        self.started_ms: int | None = None
        self.batches: dict[int, BatchInfo] = {}  # queued and processing, by batch time
        self.completed: collections.deque[BatchInfo] = collections.deque(maxlen=RETAINED_BATCHES)
        self.total_completed = 0
        self.processed_records = 0
        self.received_records = 0
        self.receivers: dict[int, bool] = {}  # stream id -> active

    def onStreamingStarted(self, streamingStarted: Any) -> None:
        with self.lock:
            self.started_ms = streamingStarted.time()

    def onReceiverStarted(self, receiverStarted: Any) -> None:
        with self.lock:
            self.receivers[receiverStarted.receiverInfo().streamId()] = True

    def onReceiverStopped(self, receiverStopped: Any) -> None:
        with self.lock:
            self.receivers[receiverStopped.receiverInfo().streamId()] = False

    def onBatchSubmitted(self, batchSubmitted: Any) -> None:
        info = batchSubmitted.batchInfo()
        with self.lock:
            self.batches[info.batchTime().milliseconds()] = info
            self.received_records += info.numRecords()

    def onBatchStarted(self, batchStarted: Any) -> None:
        info = batchStarted.batchInfo()
        with self.lock:
            self.batches[info.batchTime().milliseconds()] = info

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        with self.lock:
            self.batches.pop(info.batchTime().milliseconds(), None)
            self.completed.append(info)
            self.total_completed += 1
            self.processed_records += info.numRecords()

    # -- JSON ---------------------------------------------------------------------------------------------
    def statistics(self) -> dict:
        with self.lock:
            done = list(self.completed)
            batch_ms = self.ssc._graph.batch_ms

            def avg(values: list[int]) -> float | None:
                values = [v for v in values if v >= 0]
                return sum(values) / len(values) if values else None

            records = sum(b.numRecords() for b in done)
            return {
                "startTime": _date(self.started_ms),
                "batchDuration": batch_ms,
                "numReceivers": len(self.receivers),
                "numActiveReceivers": sum(self.receivers.values()),
                "numInactiveReceivers": len(self.receivers) - sum(self.receivers.values()),
                "numTotalCompletedBatches": self.total_completed,
                "numRetainedCompletedBatches": len(done),
                "numActiveBatches": len(self.batches),
                "numProcessedRecords": self.processed_records,
                "numReceivedRecords": self.received_records,
                "avgInputRate": records * 1000 / (len(done) * batch_ms) if done else None,
                "avgSchedulingDelay": avg([b.schedulingDelay() for b in done]),
                "avgProcessingTime": avg([b.processingDelay() for b in done]),
                "avgTotalDelay": avg([b.totalDelay() for b in done]),
            }

    def batch_list(self) -> list[tuple[str, BatchInfo]]:
        """(status, info) of every batch the API tells of, the newest first."""
        with self.lock:
            out = [("PROCESSING" if b.processingStartTime() is not None else "QUEUED", b)
                   for b in self.batches.values()]
            out += [("COMPLETED", b) for b in self.completed]
        return sorted(out, key=lambda sb: -sb[1].batchTime().milliseconds())

    def batch(self, status: str, b: BatchInfo) -> dict:
        ops = list(b.outputOperationInfos().values())
        failures = [op.failureReason() for op in ops if op.failureReason()]
        return {
            "batchId": b.batchTime().milliseconds(),
            "batchTime": _date(b.batchTime().milliseconds()),
            "status": status,
            "batchDuration": self.ssc._graph.batch_ms,
            "inputSize": b.numRecords(),
            "schedulingDelay": _delay(b.schedulingDelay()),
            "processingTime": _delay(b.processingDelay()),
            "totalDelay": _delay(b.totalDelay()),
            "numActiveOutputOps": sum(op.startTime() is not None and op.endTime() is None for op in ops),
            "numCompletedOutputOps": sum(op.endTime() is not None and not op.failureReason() for op in ops),
            "numFailedOutputOps": len(failures),
            "numTotalOutputOps": len(ops),
            "firstFailureReason": failures[0] if failures else None,
        }

    @staticmethod
    def operations(b: BatchInfo) -> list[dict]:
        return [{"outputOpId": op.id(), "name": op.name(), "description": op.description(),
                 "startTime": _date(op.startTime()), "endTime": _date(op.endTime()),
                 "duration": _delay(op.duration()), "failureReason": op.failureReason()}
                for _, op in sorted(b.outputOperationInfos().items())]


def _delay(ms: int) -> int | None:
    return None if ms < 0 else ms


class StatusServer:
    """The HTTP server of the status API, on a thread of its own; ``stop()`` closes its socket and joins it."""

    def __init__(self, sc: SparkContext) -> None:
        conf = sc.getConf()
        self.sc = sc
        self.streaming: StreamingProgress | None = None
        host = conf.get("spark.driver.bindAddress") or "127.0.0.1"
        port = conf.getInt("spark.ui.port", 4040)
        retries = conf.getInt("spark.port.maxRetries", 16)
        if not 0 <= port <= 65535:
            raise ValueError(f"spark.ui.port must be 0-65535, got {port}")
        handler = type("Handler", (_Handler,), {"status": self})
        last: OSError | None = None
        for attempt in range(max(0, retries) + 1):
            try:
                self.httpd = ThreadingHTTPServer((host, port + attempt if port else 0), handler)
                break
            except OSError as exc:  # taken: Spark tries the next port
                last = exc
        else:
            raise OSError(f"could not bind the status API to {host}:{port} after {retries} retries: {last}")
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="pystream-ui", daemon=True)
        self.thread.start()
        logger.info("status API at %s/api/v1", self.url)

    def attach(self, ssc: StreamingContext) -> None:
        """Follow a StreamingContext's batches (called as it starts)."""
        self.streaming = StreamingProgress(ssc)
        ssc.addStreamingListener(self.streaming)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    # -- routes -------------------------------------------------------------------------------------------
    def route(self, path: str, query: dict[str, list[str]]) -> Any:
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["api", "v1"] or len(parts) < 3 or parts[2] != "applications":
            raise _NotFound(f"unknown path {path}")
        app = self.application()
        if len(parts) == 3:
            return [app]
        if parts[3] != app["id"]:
            raise _NotFound(f"unknown app: {parts[3]}")
        rest = parts[4:]
        if not rest:
            return app
        if rest[0] == "jobs" and len(rest) <= 2:
            return self.jobs(rest[1] if len(rest) == 2 else None, _status(query, {"running", "succeeded", "failed"}))
        if rest[0] == "stages" and len(rest) <= 2:
            return self.stages(rest[1] if len(rest) == 2 else None,
                               _status(query, {"active", "complete", "failed"}))
        if rest[0] == "streaming" and len(rest) >= 2:
            return self.streaming_route(rest[1:], query)
        raise _NotFound(f"unknown path {path}")

    def application(self) -> dict:
        sc = self.sc
        return {"id": sc.applicationId, "name": sc.appName, "attempts": [{
            "startTime": _date(sc.startTime), "endTime": _date(None), "lastUpdated": _date(sc.startTime),
            "duration": 0, "sparkUser": sc.sparkUser(), "completed": False, "appSparkVersion": sc.version,
            "startTimeEpoch": sc.startTime, "endTimeEpoch": -1, "lastUpdatedEpoch": sc.startTime}]}

    def jobs(self, job_id: str | None, status: str | None) -> Any:
        jobs, stages = self.sc._jobs.snapshot()
        out = []
        for j in jobs:
            own = [stages[s] for s in j.stage_ids if s in stages]
            out.append({
                "jobId": j.job_id, "name": j.name, "description": j.description,
                "submissionTime": _date(j.submitted), "completionTime": _date(j.ended),
                "stageIds": list(j.stage_ids), "jobGroup": j.group, "jobTags": sorted(j.tags), "status": j.status,
                "numTasks": sum(s.num_tasks for s in own), "numActiveTasks": sum(s.active for s in own),
                "numCompletedTasks": sum(s.completed for s in own), "numSkippedTasks": 0,
                "numFailedTasks": sum(s.failed for s in own), "numKilledTasks": 0,
                "numActiveStages": sum(s.status == "ACTIVE" for s in own),
                "numCompletedStages": sum(s.status == "COMPLETE" for s in own), "numSkippedStages": 0,
                "numFailedStages": sum(s.status == "FAILED" for s in own)})
        if job_id is not None:
            return _one(out, "jobId", job_id, "job")
        out.reverse()  # newest first, as Spark lists them
        return [j for j in out if status is None or j["status"] == status.upper()]

    def stages(self, stage_id: str | None, status: str | None) -> Any:
        _, stages = self.sc._jobs.snapshot()
        out = [{"status": s.status, "stageId": s.stage_id, "attemptId": s.attempt, "name": s.name,
                "numTasks": s.num_tasks, "numActiveTasks": s.active, "numCompleteTasks": s.completed,
                "numFailedTasks": s.failed, "numKilledTasks": 0, "jobIds": [s.job.job_id],
                "submissionTime": _date(s.submitted), "completionTime": _date(s.ended)}
               for s in stages.values()]
        if stage_id is not None:
            return [_one(out, "stageId", stage_id, "stage")]  # one entry per attempt, as Spark's
        out.reverse()
        return [s for s in out if status is None or s["status"] == status.upper()]

    def streaming_route(self, rest: list[str], query: dict[str, list[str]]) -> Any:
        progress = self.streaming
        if progress is None:
            raise _NotFound("no streaming listener attached to this application (no StreamingContext started)")
        if rest == ["statistics"]:
            return progress.statistics()
        if rest[0] != "batches" or len(rest) > 3 or (len(rest) == 3 and rest[2] != "operations"):
            raise _NotFound(f"unknown path streaming/{'/'.join(rest)}")
        batches = progress.batch_list()
        if len(rest) == 1:
            status = _status(query, {"queued", "processing", "completed"})
            return [progress.batch(s, b) for s, b in batches if status is None or s == status.upper()]
        try:
            wanted = int(rest[1])
        except ValueError:
            raise _NotFound(f"unknown batch: {rest[1]}") from None
        for s, b in batches:
            if b.batchTime().milliseconds() == wanted:
                return progress.operations(b) if len(rest) == 3 else progress.batch(s, b)
        raise _NotFound(f"unknown batch: {wanted}")


def _status(query: dict[str, list[str]], allowed: set[str]) -> str | None:
    values = query.get("status")
    if not values:
        return None
    if values[0].lower() not in allowed:
        raise _BadRequest(f"status must be one of {', '.join(sorted(allowed))}, got {values[0]!r}")
    return values[0]


def _one(items: list[dict], key: str, wanted: str, what: str) -> dict:
    for item in items:
        if str(item[key]) == wanted:
            return item
    raise _NotFound(f"unknown {what}: {wanted}")


class _Handler(BaseHTTPRequestHandler):
    status: StatusServer
    server_version = "pystream"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        api = url.path.startswith("/api/")
        headers: dict[str, str] = {}
        try:
            if api:
                body, code = self.status.route(url.path, query), 200
            else:
                body, code = render(self.status, url.path, query), 200
        except Redirect as move:
            body, code, headers = "", 302, {"Location": move.location}
        except _NotFound as exc:
            body, code = {"error": str(exc)}, 404
        except _BadRequest as exc:
            body, code = {"error": str(exc)}, 400
        except Exception as exc:  # a bug here must not take the application down
            logger.exception("status API failed on %s", self.path)
            body, code = {"error": f"{type(exc).__name__}: {exc}"}, 500
        if api:
            data, kind = json.dumps(body, indent=2).encode(), "application/json"
        else:
            text = error_page(code, body["error"]) if isinstance(body, dict) else body
            # A lone surrogate (a file name that was not UTF-8, say) shows as "?", not a dead page.
            data, kind = text.encode("utf-8", "replace"), "text/html; charset=utf-8"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        # The pages show what the application chose to say: no other site may frame or sniff them.
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        logger.debug("%s " + format, self.address_string(), *args)
