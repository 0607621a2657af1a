"""The status pages: Spark's web UI tabs (Jobs, Stages, Streaming, Environment) as plain HTML.

Each page is rendered on the server, at the request, from the same records the REST API (pystream/ui.py)
answers from, so a page and the API never disagree. The pages carry no script and load nothing from elsewhere:
they work offline, behind any proxy and in any browser. ``?refresh=N`` (1-3600 seconds) makes a page reload
itself. Every text the application chose (job descriptions, names, failure reasons, settings) is escaped.

- ``/`` sends to ``/streaming/`` once a StreamingContext started, else to ``/jobs/``.
- ``/jobs/``, ``/jobs/job/?id=N``: jobs by status (the completed ones ``?page=N&pageSize=M``, newest first),
  a job's stages.
- ``/stages/``: stages by status.
- ``/streaming/``: the batch interval, receivers, totals; input rate, scheduling delay, processing time and total
  delay of the retained batches, as a timeline and a histogram each; the active batches and the completed
  ones (``?page=N&pageSize=M``, newest first). ``/streaming/batch/?id=<batch time in ms>``: its output
  operations, with their failure reasons.
- ``/environment/``: Python, pystream and the executor, and the SparkConf; a setting whose key or value
  matches ``spark.redaction.regex`` (default Spark's: secret, password, token, access key) shows no value.
"""

from __future__ import annotations

import datetime
import html
import platform
import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pystream.ui import StatusServer, StreamingProgress

__all__ = ["BadRequest", "NotFound", "Redirect", "render"]

#: Spark's default spark.redaction.regex.
REDACTION_REGEX = r"(?i)secret|password|token|access[.]?key"
REDACTED = "*********(redacted)"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222}
nav{background:#2c3e50;padding:.5em 1em}nav a,nav span{color:#fff;margin-right:1.5em;text-decoration:none}
nav a.on{font-weight:bold;border-bottom:2px solid #fff}main{padding:1em 1.5em}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f2f2f2}td.num{text-align:right}.failed{color:#b00}.bar{background:#ddd;width:8em;height:.9em}
.bar div{background:#5b9bd5;height:100%}svg{background:#fafafa;border:1px solid #ddd;margin-right:1em}
.chart text{font-size:10px;fill:#555}ul.summary{list-style:none;padding:0}td a{white-space:nowrap}
"""


class NotFound(Exception):
    """An unknown path or id: answered 404."""


class BadRequest(Exception):
    """A query the page cannot take: answered 400."""


class Redirect(Exception):
    """Answered 302 to ``location``."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def render(status: StatusServer, path: str, query: dict[str, list[str]]) -> str:
    """The HTML page at ``path``; NotFound, BadRequest or Redirect when there is none to give."""
    refresh = _int(query, "refresh", None, 1, 3600)
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise Redirect("/streaming/" if status.streaming is not None else "/jobs/")
    if parts == ["jobs"]:
        page, size = _int(query, "page", 1, 1), _int(query, "pageSize", 100, 1, 10_000)
        return _page(status, "Jobs", "jobs", refresh, _jobs_page(status, page, size))
    if parts == ["jobs", "job"]:
        job_id = _int(query, "id", -1, 0)
        return _page(status, f"Job {job_id}", "jobs", refresh, _job_page(status, job_id))
    if parts == ["stages"]:
        return _page(status, "Stages", "stages", refresh, _stages_page(status))
    if parts[0] == "streaming" and len(parts) <= 2:
        progress = status.streaming
        if progress is None:
            raise NotFound("no StreamingContext has started on this application")
        if len(parts) == 1:
            page, size = _int(query, "page", 1, 1), _int(query, "pageSize", 100, 1, 10_000)
            return _page(status, "Streaming", "streaming", refresh, _streaming_page(progress, page, size))
        if parts[1] == "batch":
            batch_ms = _int(query, "id", -1, 0)
            return _page(status, "Batch", "streaming", refresh, _batch_page(progress, batch_ms))
    if parts == ["environment"]:
        return _page(status, "Environment", "environment", refresh, _environment_page(status))
    raise NotFound(f"unknown page {path}")


def _int(query: dict[str, list[str]], name: str, default: int | None, low: int, high: int | None = None) -> Any:
    values = query.get(name)
    if not values:
        if default == -1:
            raise BadRequest(f"the query needs {name}=<number>")
        return default
    try:
        value = int(values[0])
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {values[0]!r}") from None
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{name} must be {low}-{high}, got {value}" if high is not None
                         else f"{name} must be at least {low}, got {value}")
    return value


# -- the frame of every page --------------------------------------------------------------------------------
def _page(status: StatusServer, title: str, tab: str, refresh: int | None, body: str) -> str:
    sc = status.sc
    tabs = [("jobs", "Jobs", "/jobs/"), ("stages", "Stages", "/stages/")]
    if status.streaming is not None:
        tabs.append(("streaming", "Streaming", "/streaming/"))
    tabs.append(("environment", "Environment", "/environment/"))
    nav = "".join(f'<a href="{href}"{" class=on" if key == tab else ""}>{label}</a>' for key, label, href in tabs)
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>{meta}"
            f"<title>{_e(sc.appName)} - {_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"<nav><span>pystream {_e(sc.version)}</span>{nav}<span>{_e(sc.appName)}</span></nav>"
            f"<main><h1>{_e(title)}</h1>{body}</main></body></html>")


def error_page(code: int, message: str) -> str:
    """A page for an error status (no navigation: the server may not know the application's state)."""
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{code}</title>"
            f"<style>{_STYLE}</style></head><body><main><h1>{code}</h1><p class=error>{_e(message)}</p>"
            f'<p><a href="/">Back to the application</a></p></main></body></html>')


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(headers: list[str], rows: list[list[str]], table_id: str) -> str:
    """Cells are HTML already (escaped where they hold text); a cell of a number is right-aligned."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td{' class=num' if _numeric(c) else ''}>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table id={table_id}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _numeric(cell: str) -> bool:
    return bool(re.fullmatch(r"[\d.,]+( ms| s| min| h| records/s)?", cell))


def _bar(done: int, total: int) -> str:
    width = 0 if total <= 0 else min(100, 100 * done // total)
    return f"<div class=bar title='{done}/{total}'><div style='width:{width}%'></div></div>{done}/{total}"


def local_time(ms: int | None, millis: bool = False) -> str:
    """A time as the UI shows it: local, ``2026/12/08 10:15:30`` (``.250`` added when ``millis``)."""
    if ms is None:
        return ""
    d = datetime.datetime.fromtimestamp(ms / 1000)
    return d.strftime("%Y/%m/%d %H:%M:%S") + (f".{ms % 1000:03d}" if millis else "")


def duration(ms: float | None) -> str:
    """A duration as the UI shows it: ms below 0.1 s, then seconds, minutes and hours."""
    if ms is None or ms < 0:
        return "-"
    if ms < 100:
        return f"{ms:.0f} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s" if s < 1 else f"{s:.0f} s"
    m = s / 60
    if m < 60:
        return f"{m:.1f} min" if m < 10 else f"{m:.0f} min"
    return f"{m / 60:.1f} h"


def _paged(items: list, page: int, size: int, base: str) -> tuple[list, str]:
    """Page ``page`` (from 1) of ``items`` in pages of ``size``, and the links to every page (none if one)."""
    pages = max(1, -(-len(items) // size))
    if page > pages:
        raise BadRequest(f"page must be 1-{pages}, got {page}")
    links = " ".join(f"<b>{p}</b>" if p == page else f'<a href="{base}?page={p}&amp;pageSize={size}">{p}</a>'
                     for p in range(1, pages + 1))
    return items[(page - 1) * size:page * size], (f"<p class=pages>Page {page} of {pages}: {links}</p>"
                                                  if pages > 1 else "")


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- jobs and stages ----------------------------------------------------------------------------------------
def _batch_link(batch: tuple[int, int]) -> str:
    """As Spark describes a streaming job: the output operation and batch it ran for, linked to the batch."""
    t, op = batch
    return (f'<a href="/streaming/batch/?id={t}">[output operation {op}, batch time '
            f"{local_time(t, t % 1000 != 0)}]</a>")


def _job_rows(jobs: list[Any], stages: dict[int, Any]) -> list[list[str]]:
    rows = []
    for j in reversed(jobs):  # newest first, as Spark lists them
        own = [stages[s] for s in j.stage_ids if s in stages]
        description = "".join(f"<div>{_e(text)}</div>" for text in (j.group and f"[{j.group}]", j.description)
                              if text)
        if j.batch is not None and not j.description:
            description += f"<div>Streaming job from {_batch_link(j.batch)}</div>"
        rows.append([f'<a href="/jobs/job/?id={j.job_id}">{j.job_id}</a>',
                     f"{description}<a href='/jobs/job/?id={j.job_id}'>{_e(j.name)}</a>",
                     local_time(j.submitted), duration((j.ended or _now_ms()) - j.submitted),
                     _bar(sum(s.status == "COMPLETE" for s in own), len(own)),
                     _bar(sum(s.completed for s in own), sum(s.num_tasks for s in own))
                     + (f" <span class=failed>({sum(s.failed for s in own)} failed)</span>"
                        if any(s.failed for s in own) else "")])
    return rows


def _jobs_page(status: StatusServer, page: int, size: int) -> str:
    jobs, stages = status.sc._jobs.snapshot()
    sc = status.sc
    by_status = {k: [j for j in jobs if j.status == k] for k in ("RUNNING", "SUCCEEDED", "FAILED")}
    out = [f"<ul class=summary><li><b>User:</b> {_e(sc.sparkUser())}</li>"
           f"<li><b>Started:</b> {local_time(sc.startTime)}</li>"
           f"<li><b>Total uptime:</b> {duration(_now_ms() - sc.startTime)}</li>"
           f"<li><b>Master:</b> {_e(sc.master)}</li>"
           + "".join(f"<li><b>{label} jobs:</b> {len(by_status[k])}</li>"
                     for k, label in (("RUNNING", "Active"), ("SUCCEEDED", "Completed"), ("FAILED", "Failed")))
           + "</ul>"]
    headers = ["Job Id", "Description", "Submitted", "Duration", "Stages: Succeeded/Total",
               "Tasks: Succeeded/Total"]
    for key, label, table_id in (("RUNNING", "Active Jobs", "active-jobs"),
                                 ("SUCCEEDED", "Completed Jobs", "completed-jobs"),
                                 ("FAILED", "Failed Jobs", "failed-jobs")):
        chosen, links = by_status[key], ""
        if key == "SUCCEEDED":
            # Newest first: the last page holds the oldest.
            shown, links = _paged(chosen[::-1], page, size, "/jobs/")
            chosen = shown[::-1]
        if chosen:
            out.append(f"<h2>{label} ({len(by_status[key])})</h2>" + links
                       + _table(headers, _job_rows(chosen, stages), table_id))
    if not jobs:
        out.append("<p>No job has run yet.</p>")
    return "".join(out)


def _job_page(status: StatusServer, job_id: int) -> str:
    jobs, stages = status.sc._jobs.snapshot()
    job = next((j for j in jobs if j.job_id == job_id), None)
    if job is None:
        raise NotFound(f"unknown job: {job_id} (the last 1000 jobs are kept)")
    own = [stages[s] for s in job.stage_ids if s in stages]
    out = [f"<ul class=summary><li><b>Status:</b> {_e(job.status)}</li>"
           f"<li><b>Submitted:</b> {local_time(job.submitted)}</li>"
           f"<li><b>Duration:</b> {duration((job.ended or _now_ms()) - job.submitted)}</li>"
           + (f"<li><b>Job group:</b> {_e(job.group)}</li>" if job.group else "")
           + (f"<li><b>Description:</b> {_e(job.description)}</li>" if job.description else "")
           + (f"<li><b>Tags:</b> {_e(', '.join(sorted(job.tags)))}</li>" if job.tags else "")
           + (f"<li><b>Streaming batch:</b> {_batch_link(job.batch)}</li>" if job.batch else "")
           + f"<li><b>Call site:</b> {_e(job.name)}</li></ul>",
           "<h2>Stages</h2>" + _table(_STAGE_HEADERS, _stage_rows(own), "job-stages")]
    return "".join(out)


_STAGE_HEADERS = ["Stage Id", "Attempt", "Description", "Submitted", "Duration", "Tasks: Succeeded/Total",
                  "Failed Tasks", "Status"]


def _stage_rows(stages: list[Any]) -> list[list[str]]:
    return [[str(s.stage_id), str(s.attempt), _e(s.name), local_time(s.submitted),
             duration((s.ended or _now_ms()) - s.submitted) if s.submitted else "-",
             _bar(s.completed, s.num_tasks), str(s.failed), _e(s.status)]
            for s in sorted(stages, key=lambda s: -s.stage_id)]


def _stages_page(status: StatusServer) -> str:
    _, stages = status.sc._jobs.snapshot()
    out = []
    for key, label, table_id in (("ACTIVE", "Active Stages", "active-stages"),
                                 ("COMPLETE", "Completed Stages", "completed-stages"),
                                 ("FAILED", "Failed Stages", "failed-stages")):
        chosen = [s for s in stages.values() if s.status == key]
        if chosen:
            out.append(f"<h2>{label} ({len(chosen)})</h2>" + _table(_STAGE_HEADERS, _stage_rows(chosen), table_id))
    return "".join(out) or "<p>No stage has run yet.</p>"


# -- streaming ----------------------------------------------------------------------------------------------
_BATCH_HEADERS = ["Batch Time", "Records", "Scheduling Delay", "Processing Time", "Total Delay",
                  "Output Ops: Succeeded/Total", "Status"]


def _batch_rows(progress: StreamingProgress, batches: list[tuple[str, Any]], millis: bool) -> list[list[str]]:
    rows = []
    for state, b in batches:
        d = progress.batch(state, b)
        failed = (f"<div class=failed>{_e(d['firstFailureReason'].splitlines()[0])}</div>"
                  if d["firstFailureReason"] else "")
        rows.append([f'<a href="/streaming/batch/?id={d["batchId"]}">{local_time(d["batchId"], millis)}</a>',
                     f"{d['inputSize']:,}", duration(d["schedulingDelay"]), duration(d["processingTime"]),
                     duration(d["totalDelay"]),
                     _bar(d["numCompletedOutputOps"], d["numTotalOutputOps"]) + failed, _e(state.lower())])
    return rows


def _streaming_page(progress: StreamingProgress, page: int, size: int) -> str:
    stats = progress.statistics()
    batch_ms = stats["batchDuration"]
    millis = batch_ms % 1000 != 0
    all_batches = progress.batch_list()
    active = [(s, b) for s, b in all_batches if s != "COMPLETED"]
    completed = [(s, b) for s, b in all_batches if s == "COMPLETED"]
    started = progress.started_ms
    out = [f"<p>Running batches of <b>{duration(batch_ms)}</b>"
           + (f" for <b>{duration(progress.ssc.clock.now_ms() - started)}</b> since <b>{local_time(started)}</b>"
              if started is not None else "")
           + f" (<b>{stats['numTotalCompletedBatches']:,}</b> completed batches, "
           f"<b>{stats['numProcessedRecords']:,}</b> records).</p>"
           f"<ul class=summary><li><b>Receivers:</b> {stats['numActiveReceivers']} active / "
           f"{stats['numReceivers']}</li><li><b>Active batches:</b> {stats['numActiveBatches']}</li></ul>"]
    done = [b for _, b in reversed(completed)]  # oldest first, for the charts
    out.append("<h2>Statistics</h2>")
    if done:
        rate = [(b.batchTime().milliseconds(), b.numRecords() * 1000 / batch_ms) for b in done]
        charts = [("input-rate", "Input Rate", "records/s", rate, stats["avgInputRate"], None),
                  ("scheduling-delay", "Scheduling Delay", "ms", _series(done, "schedulingDelay"),
                   stats["avgSchedulingDelay"], None),
                  ("processing-time", "Processing Time", "ms", _series(done, "processingDelay"),
                   stats["avgProcessingTime"], batch_ms),
                  ("total-delay", "Total Delay", "ms", _series(done, "totalDelay"), stats["avgTotalDelay"], None)]
        rows = []
        for chart_id, label, unit, points, avg, limit in charts:
            shown = "-" if avg is None else (f"{avg:,.2f} records/s" if unit == "records/s" else duration(avg))
            rows.append([f"<b>{label}</b><div>avg: {shown}</div>",
                         _timeline(chart_id, points, unit, limit), _histogram(chart_id, [v for _, v in points])])
        out.append(_table(["", "Timelines (the retained batches)", "Histograms"], rows, "statistics"))
    else:
        out.append("<p>No batch has completed yet.</p>")
    out.append(f"<h2>Active Batches ({len(active)})</h2>"
               + _table(_BATCH_HEADERS, _batch_rows(progress, active, millis), "active-batches"))
    shown, links = _paged(completed, page, size, "/streaming/")
    out.append(f"<h2>Completed Batches (last {len(completed):,} out of {stats['numTotalCompletedBatches']:,})</h2>"
               + links + _table(_BATCH_HEADERS, _batch_rows(progress, shown, millis), "completed-batches"))
    return "".join(out)


def _series(batches: list[Any], metric: str) -> list[tuple[int, float]]:
    return [(b.batchTime().milliseconds(), float(v)) for b in batches if (v := getattr(b, metric)()) >= 0]


def _timeline(chart_id: str, points: list[tuple[int, float]], unit: str, limit: float | None) -> str:
    """An SVG line of the values over batch time; ``limit`` (the batch interval) drawn dashed."""
    w, h, pad = 360, 120, 30
    if not points:
        return "-"
    t0, t1 = points[0][0], points[-1][0]
    top = max([v for _, v in points] + ([limit] if limit else [])) or 1.0

    def x(t: int) -> float:
        return pad + (w - pad - 5) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.5)

    def y(v: float) -> float:
        return h - 15 - (h - 25) * v / top

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    dashed = (f"<line x1={pad} x2={w - 5} y1={y(limit):.1f} y2={y(limit):.1f} stroke='#c0392b' "
              f"stroke-dasharray='4 3'><title>batch interval</title></line>" if limit else "")
    dots = "".join(f"<circle cx={x(t):.1f} cy={y(v):.1f} r=2 fill='#2c7fb8'><title>{local_time(t)}: "
                   f"{v:,.1f} {unit}</title></circle>" for t, v in points[-200:])
    return (f"<svg class=chart id={chart_id}-timeline width={w} height={h} role=img "
            f"aria-label='{chart_id} timeline'><text x=2 y=12>{top:,.0f} {unit}</text><text x=2 y={h - 3}>0</text>"
            f"{dashed}<polyline fill=none stroke='#2c7fb8' points='{line}'/>{dots}</svg>")


def _histogram(chart_id: str, values: list[float], bins: int = 10) -> str:
    """An SVG histogram of the values in ``bins`` equal ranges (horizontal bars, counts beside them)."""
    w, h = 240, 120
    if not values:
        return "-"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / span * bins))] += 1
    most = max(counts)
    row = (h - 10) / bins
    bars = "".join(
        f"<rect x=60 y={5 + i * row:.1f} width={(w - 100) * c / most:.1f} height={row - 1:.1f} fill='#5b9bd5'>"
        f"<title>{low + i * span / bins:,.1f}-{low + (i + 1) * span / bins:,.1f}: {c}</title></rect>"
        f"<text x={64 + (w - 100) * c / most:.1f} y={5 + (i + 0.8) * row:.1f}>{c}</text>"
        for i, c in enumerate(counts))
    return (f"<svg class=chart id={chart_id}-histogram width={w} height={h} role=img "
            f"aria-label='{chart_id} histogram'><text x=2 y=12>{low:,.0f}</text><text x=2 y={h - 3}>{high:,.0f}"
            f"</text>{bars}</svg>")


def _batch_page(progress: StreamingProgress, batch_ms: int) -> str:
    for state, b in progress.batch_list():
        if b.batchTime().milliseconds() == batch_ms:
            break
    else:
        raise NotFound(f"unknown batch: {batch_ms} (the last 1000 completed batches are kept)")
    d = progress.batch(state, b)
    out = [f"<ul class=summary><li><b>Batch time:</b> {local_time(batch_ms, True)}</li>"
           f"<li><b>Status:</b> {_e(state.lower())}</li><li><b>Batch duration:</b> {duration(d['batchDuration'])}"
           f"</li><li><b>Input records:</b> {d['inputSize']:,}</li>"
           f"<li><b>Scheduling delay:</b> {duration(d['schedulingDelay'])}</li>"
           f"<li><b>Processing time:</b> {duration(d['processingTime'])}</li>"
           f"<li><b>Total delay:</b> {duration(d['totalDelay'])}</li></ul>"]
    jobs, _ = progress.ssc.sparkContext._jobs.snapshot()
    rows = []
    for _, op in sorted(b.outputOperationInfos().items()):
        reason = op.failureReason()
        ran = " ".join(f'<a href="/jobs/job/?id={j.job_id}">{j.job_id}</a>' for j in jobs
                       if j.batch == (batch_ms, op.id()))
        rows.append([str(op.id()), _e(op.name()), _e(op.description()), duration(op.duration()),
                     "failed" if reason else ("succeeded" if op.endTime() is not None else "running"), ran,
                     f"<pre class=failed>{_e(reason)}</pre>" if reason else ""])
    out.append("<h2>Output Operations</h2>" + _table(
        ["Output Op Id", "Name", "Description", "Duration", "Status", "Job Ids", "Error"], rows,
        "output-operations"))
    return "".join(out)


# -- environment --------------------------------------------------------------------------------------------
def _environment_page(status: StatusServer) -> str:
    sc = status.sc
    conf = sc.getConf()
    try:
        secret = re.compile(conf.get("spark.redaction.regex") or REDACTION_REGEX)
    except re.error:
        # A pattern Python cannot read (Java's \p{Upper}, say): every value hidden, rather than one shown
        # that the user meant to hide.
        secret = re.compile("")
    pairs = sorted(conf.getAll())
    runtime = [["Python", _e(platform.python_version())], ["pystream", _e(sc.version)],
               ["Master", _e(sc.master)], ["Executor", _e(type(sc.executor).__name__)],
               ["Default parallelism", str(sc.defaultParallelism)]]
    # As Spark's redaction: a key or a value that matches hides the value.
    props = [[_e(k), REDACTED if secret.search(k) or secret.search(v) else _e(v)] for k, v in pairs]
    return ("<h2>Runtime</h2>" + _table(["Name", "Value"], runtime, "runtime")
            + "<h2>Spark Properties</h2>" + _table(["Name", "Value"], props, "properties"))
