"""The web UI's pages (pystream/ui_pages.py), fetched over a real socket and read with an HTML parser: what
each table and chart holds, escaping, redaction, paging, redirects and error pages."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY
from pystream.testing import advance, manual_context
from pystream.ui_pages import duration


def _context(kind="inprocess", **settings):
    conf = SparkConf(loadDefaults=False).set(EXECUTOR_KEY, kind).set("spark.ui.enabled", "true")
    conf.set("spark.ui.port", "0")
    for key, value in settings.items():
        conf.set(key, value)
    return SparkContext("local[2]", "pages-test", conf)


class Page(HTMLParser):
    """A page's tables (by id: rows of cell texts, header row first), links, SVG charts and whole text."""

    def __init__(self, body: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self.charts: dict[str, dict[str, int]] = {}  # svg id -> counts of its element kinds
        self.meta: list[dict[str, str | None]] = []
        self.texts: list[str] = []
        self._table: list[str] = []
        self._cell: list[str] | None = None
        self._svg: str | None = None
        self._depth = 0  # nesting of tables inside a cell (charts are no tables; the guard is for safety)
        self.feed(body)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table.append(a.get("id") or f"table{len(self.tables)}")
            self.tables[self._table[-1]] = []
        elif tag == "tr" and self._table:
            self.tables[self._table[-1]].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "a":
            self.links.append(a["href"])
        elif tag == "svg":
            self._svg = a["id"]
            self.charts[self._svg] = {}
        elif self._svg is not None:
            self.charts[self._svg][tag] = self.charts[self._svg].get(tag, 0) + 1
        if tag == "meta":
            self.meta.append(a)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table[-1]][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table.pop()
        elif tag == "svg":
            self._svg = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._cell is not None and self._svg is None:
            self._cell.append(data + " ")

    @property
    def text(self) -> str:
        return " ".join("".join(self.texts).split())

    def rows(self, table_id: str) -> list[dict[str, str]]:
        head, *body = self.tables[table_id]
        return [dict(zip(head, row)) for row in body]


def _fetch(sc, path):
    """(status, headers, body) of a GET, redirects not followed."""
    url = urlsplit(sc.uiWebUrl)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


def _page(sc, path) -> Page:
    status, headers, body = _fetch(sc, path)
    assert status == 200, body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    return Page(body)


@pytest.mark.parametrize("kind", ["inprocess", "process"])
def test_jobs_and_stages_pages(kind):
    sc = _context(kind)
    try:
        sc.setJobGroup("nightly", "<script>alert('sums')</script>")
        assert sc.parallelize(range(10), 2).map(lambda x: (x % 2, x)).reduceByKey(lambda a, b: a + b) \
            .collectAsMap() == {0: 20, 1: 25}
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
        with pytest.raises(ZeroDivisionError):
            sc.parallelize([0, 1, 2], 3).map(lambda x: 1 // x).collect()
        status, headers, body = _fetch(sc, "/jobs/")
        assert "<script>" not in body and "&lt;script&gt;alert(&#x27;sums&#x27;)&lt;/script&gt;" in body
        page = Page(body)
        (done,) = page.rows("completed-jobs")
        assert done["Job Id"] == "0" and "[nightly]" in done["Description"]
        assert "<script>alert('sums')</script>" in done["Description"]  # shown as text
        assert "collectAsMap at test_ui_pages.py:" in done["Description"]
        assert done["Stages: Succeeded/Total"] == "2/2" and done["Tasks: Succeeded/Total"] == "4/4"
        (failed,) = page.rows("failed-jobs")
        assert failed["Job Id"] == "1" and failed["Tasks: Succeeded/Total"].endswith("/3 (1 failed)")
        assert "active-jobs" not in page.tables
        assert "Completed jobs: 1" in page.text and "Failed jobs: 1" in page.text
        assert "/jobs/job/?id=0" in page.links and "/streaming/" not in page.links  # no streaming tab yet

        job = _page(sc, "/jobs/job/?id=0")
        stages = job.rows("job-stages")
        assert [s["Status"] for s in stages] == ["COMPLETE", "COMPLETE"]
        assert sorted(s["Tasks: Succeeded/Total"] for s in stages) == ["2/2", "2/2"]
        assert any(s["Description"].startswith("reduceByKey at test_ui_pages.py:") for s in stages)
        assert "Job group: nightly" in job.text

        for _ in range(3):
            sc.parallelize([1]).count()
        second = _page(sc, "/jobs/?page=2&pageSize=3")
        assert [j["Job Id"] for j in second.rows("completed-jobs")] == ["0"]  # the oldest, on the last page
        assert "Page 2 of 2" in second.text and "/jobs/?page=1&amp;pageSize=3" not in second.links
        assert "/jobs/?page=1&pageSize=3" in second.links
        assert [j["Job Id"] for j in _page(sc, "/jobs/?pageSize=3").rows("completed-jobs")] == ["4", "3", "2"]

        all_stages = _page(sc, "/stages/")
        assert len(all_stages.rows("completed-stages")) == 5  # 2 of the sums, 3 counts
        (bad,) = all_stages.rows("failed-stages")
        assert bad["Status"] == "FAILED" and bad["Failed Tasks"] == "1"
    finally:
        sc.stop()


def test_streaming_pages():
    sc = _context()
    ssc = manual_context(sc, 1.0)
    try:
        stream = ssc.queueStream([sc.parallelize(range(n), 1) for n in (5, 3, 4, 8, 2)])

        def output(rdd):
            if rdd.count() == 3:
                raise ValueError("three <is> bad")

        stream.foreachRDD(output)
        stream.count().foreachRDD(lambda rdd: rdd.collect())
        status, _, body = _fetch(sc, "/streaming/")
        assert status == 404 and "no StreamingContext" in body and body.startswith("<!DOCTYPE html>")
        ssc.start()
        advance(ssc, 5)
        with pytest.raises(Exception, match="three <is> bad"):
            ssc.awaitTerminationOrTimeout(0)

        page = _page(sc, "/streaming/")
        assert "Running batches of 1 s for 5 s since" in page.text
        assert "5 completed batches, 22 records" in page.text
        batches = page.rows("completed-batches")
        assert [b["Records"] for b in batches] == ["2", "8", "4", "3", "5"]  # newest first
        assert [b["Status"] for b in batches] == ["completed"] * 5
        assert batches[3]["Output Ops: Succeeded/Total"].startswith("1/2 Job for batch at time 2000 ms")
        assert batches[3]["Output Ops: Succeeded/Total"].endswith("failed: ValueError: three <is> bad")
        assert batches[0]["Output Ops: Succeeded/Total"] == "2/2"
        assert page.rows("active-batches") == []
        assert "/streaming/batch/?id=3000" in page.links
        # Every chart has a point per completed batch; the processing-time one also the batch interval line.
        assert page.charts["input-rate-timeline"]["circle"] == 5
        assert page.charts["processing-time-timeline"]["line"] == 1
        assert page.charts["input-rate-histogram"]["rect"] == 10
        (rate,) = [r for r in page.tables["statistics"] if r and r[0].startswith("Input Rate")]
        assert rate[0] == "Input Rate avg: 4.40 records/s"

        second = _page(sc, "/streaming/?page=2&pageSize=2")
        assert [b["Records"] for b in second.rows("completed-batches")] == ["4", "3"]
        assert "Page 2 of 3" in second.text and "/streaming/?page=3&pageSize=2" in second.links
        assert _fetch(sc, "/streaming/?page=4&pageSize=2")[0] == 400

        detail = _page(sc, "/streaming/batch/?id=2000")
        ops = detail.rows("output-operations")
        assert [op["Status"] for op in ops] == ["failed", "succeeded"]
        assert ops[0]["Name"].startswith("foreachRDD at test_ui_pages.py:")
        assert "ValueError: three <is> bad" in ops[0]["Error"]
        assert "Input records: 3" in detail.text
        # Each operation lists the jobs it ran (count() runs one), and the Jobs page links them back.
        job_ids = [op["Job Ids"] for op in ops]
        assert all(ids.isdigit() for ids in job_ids)
        jobs = {j["Job Id"]: j for j in _page(sc, "/jobs/").rows("completed-jobs")}
        assert jobs[job_ids[1]]["Description"].startswith(
            "Streaming job from [output operation 1, batch time 1970/01/01")
        assert "/streaming/batch/?id=2000" in _page(sc, f"/jobs/job/?id={job_ids[1]}").links
        status, _, body = _fetch(sc, "/streaming/batch/?id=9000")
        assert status == 404 and "unknown batch: 9000" in body
        # The page and the REST API tell the same.
        api = f"/api/v1/applications/{sc.applicationId}/streaming/batches"
        with urllib.request.urlopen(sc.uiWebUrl + api, timeout=10) as r:
            assert [b["inputSize"] for b in json.loads(r.read())] == [2, 8, 4, 3, 5]
    finally:
        ssc.stop(stopSparkContext=False)
        sc.stop()


def test_environment_redacts_secrets():
    sc = _context(**{"spark.my.password": "hunter2", "spark.plain": "visible", "spark.url": "token=abc123",
                     "spark.note": "<b>bold</b>"})
    try:
        status, _, body = _fetch(sc, "/environment/")
        assert status == 200 and "hunter2" not in body and "abc123" not in body and "<b>bold</b>" not in body
        props = {r["Name"]: r["Value"] for r in Page(body).rows("properties")}
        assert props["spark.my.password"] == props["spark.url"] == "*********(redacted)"
        assert props["spark.plain"] == "visible" and props["spark.note"] == "<b>bold</b>"
        runtime = {r["Name"]: r["Value"] for r in Page(body).rows("runtime")}
        assert runtime["Executor"] == "InProcessExecutor" and runtime["Master"] == "local[2]"
    finally:
        sc.stop()


def test_redirects_refresh_and_error_pages():
    sc = _context()
    try:
        status, headers, _ = _fetch(sc, "/")
        assert status == 302 and headers["Location"] == "/jobs/"
        page = _page(sc, "/jobs/?refresh=5")
        assert {"http-equiv": "refresh", "content": "5"} in page.meta
        assert not [m for m in _page(sc, "/jobs/").meta if m.get("http-equiv")]
        for path, code, says in [("/jobs/?refresh=0", 400, "refresh must be 1-3600"),
                                 ("/jobs/job/", 400, "needs id="), ("/jobs/job/?id=x", 400, "whole number"),
                                 ("/jobs/job/?id=7", 404, "unknown job: 7"), ("/nowhere", 404, "unknown page")]:
            status, headers, body = _fetch(sc, path)
            assert (status, headers["Content-Type"]) == (code, "text/html; charset=utf-8"), path
            assert says in Page(body).text, (path, body)
        with pytest.raises(urllib.error.HTTPError) as info:  # the API still answers JSON
            urllib.request.urlopen(sc.uiWebUrl + "/api/v1/nowhere", timeout=10)
        assert info.value.headers["Content-Type"] == "application/json"
        info.value.close()
        ssc = manual_context(sc, 0.25)
        ssc.queueStream([[1]]).foreachRDD(lambda rdd: None)
        ssc.start()
        try:
            advance(ssc, 1)
            status, headers, _ = _fetch(sc, "/")
            assert status == 302 and headers["Location"] == "/streaming/"
            (batch,) = _page(sc, "/streaming/").rows("completed-batches")
            assert batch["Batch Time"].endswith(".250")  # a sub-second interval shows milliseconds
        finally:
            ssc.stop(stopSparkContext=False)
    finally:
        sc.stop()


@pytest.mark.parametrize("ms, text", [(None, "-"), (-1, "-"), (0, "0 ms"), (99, "99 ms"), (450, "0.5 s"),
                                      (1000, "1 s"), (59_400, "59 s"), (90_000, "1.5 min"), (1_800_000, "30 min"),
                                      (5_400_000, "1.5 h")])
def test_durations_read_as_spark_shows_them(ms, text):
    assert duration(ms) == text


def test_text_that_is_no_utf8_and_patterns_python_cannot_read_still_make_pages(tmp_path):
    sc = _context(**{"spark.redaction.regex": r"\p{Upper}", "app.db.XPRIVATE": "hunter2"})
    try:
        sc.setJobDescription("from a file named caf\udce9.txt")  # a lone surrogate, as os.fsdecode makes
        sc.parallelize([1]).count()
        status, _, body = _fetch(sc, "/jobs/")
        assert status == 200 and "caf?.txt" in Page(body).text
        status, _, body = _fetch(sc, "/environment/")
        # A pattern only Java reads hides every value: never the one the user meant to hide.
        assert status == 200 and "hunter2" not in body
        assert {r["Value"] for r in Page(body).rows("properties")} == {"*********(redacted)"}
    finally:
        sc.stop()

