"""Input sources driven for real: a TCP server, files in a directory, custom receivers, queues, generators.

Batches are driven by a ManualClock. What a receiver stores before ``advance(ssc)`` belongs to that batch, so
the tests first wait (with a deadline, never a fixed sleep) until the receiver has stored what was sent.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import struct
import threading
import time

import pytest

from pystream import frames
from pystream.errors import (
    CorruptFrameError,
    IllegalArgumentError,
    ReceiverError,
    SourceConnectionError,
    StreamingJobError,
    WrongRecordLengthError,
)
from pystream.streaming import Receiver, StreamingListener
from pystream.streaming.sources.receiver import MAX_BUFFERED_KEY, ON_STOP_TIMEOUT_KEY
from pystream.streaming.sources.socket import BACKOFF_KEY, MAX_LINE_KEY, RETRIES_KEY
from pystream.testing import advance, collect, manual_context

from _support import conf_values

DEADLINE = 15.0


# -- helpers ------------------------------------------------------------------------------------------------
def wait_for(cond, what: str, timeout: float = DEADLINE) -> None:
    """Poll ``cond`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def buffered(ssc, index: int = 0) -> int:
    """Records a receiver stream has stored that no batch has taken yet."""
    sup = ssc._graph.input_streams[index]._supervisor
    with sup.cond:
        return len(sup.buffer)


class EventRecorder(StreamingListener):
    """Records (event name, event) pairs, thread-safe."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self._lock = threading.Lock()

    def _add(self, name, event):
        with self._lock:
            self.events.append((name, event))

    def names(self) -> list[str]:
        with self._lock:
            return [n for n, _ in self.events]

    def of(self, name: str) -> list:
        with self._lock:
            return [e for n, e in self.events if n == name]

    def onReceiverStarted(self, e):
        self._add("started", e)

    def onReceiverError(self, e):
        self._add("error", e)

    def onReceiverStopped(self, e):
        self._add("stopped", e)

    def onBatchCompleted(self, e):
        self._add("batch", e)


class LineServer:
    """A real TCP server on 127.0.0.1 (ephemeral port) whose connections are handled, in order, by the
    given handlers on a server thread; errors on that thread are kept and re-raised by ``close``."""

    def __init__(self, *handlers) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(DEADLINE)
        self.port = self.sock.getsockname()[1]
        self.errors: list[BaseException] = []
        self.served = 0
        self._handlers = handlers
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for handler in self._handlers:
                conn, _ = self.sock.accept()
                with conn:
                    handler(conn)
                self.served += 1
        except BaseException as exc:  # noqa: BLE001 - reported by close()
            self.errors.append(exc)

    def close(self) -> None:
        self._thread.join(DEADLINE)
        self.sock.close()
        assert not self._thread.is_alive(), "server thread did not finish"
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> LineServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- socketTextStream ---------------------------------------------------------------------------------------
def test_socket_lines_batches_and_reconnect(sc, ssc):
    second, do_reset = threading.Event(), threading.Event()
    payload = "héllo wörld\ncrlf line\r\n日本語 テキスト\nlast without newline".encode()
    cut = payload.index("日".encode()) + 1  # splits a multi-byte character across two sends

    def first_conn(conn):
        conn.sendall(payload[:cut])
        time.sleep(0.05)
        conn.sendall(payload[cut:])

    def second_conn(conn):
        assert second.wait(DEADLINE)
        conn.sendall(b"second\r\nconnection \xc3\xa9\n")

    def reset_conn(conn):  # a connection reset while receiving: the receiver reports it and reconnects
        conn.sendall(b"before reset\n")
        assert do_reset.wait(DEADLINE)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    events = EventRecorder()
    ssc.addStreamingListener(events)
    with LineServer(first_conn, second_conn, reset_conn) as server:
        lines = ssc.socketTextStream("127.0.0.1", server.port)
        out = collect(lines)
        words = collect(lines.flatMap(lambda l: l.split(" ")).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b),
                        sort=True)
        ssc.start()
        wait_for(lambda: buffered(ssc) == 4, "the first connection's 4 lines")
        advance(ssc)
        assert out.batches == [["héllo wörld", "crlf line", "日本語 テキスト", "last without newline"]]
        assert words.batches[0] == sorted([("héllo", 1), ("wörld", 1), ("crlf", 1), ("line", 1), ("日本語", 1),
                                           ("テキスト", 1), ("last", 1), ("without", 1), ("newline", 1)], key=repr)

        # The server closed the connection; the receiver reconnects to the same port and gets more lines.
        second.set()
        wait_for(lambda: buffered(ssc) == 2, "the second connection's lines")
        advance(ssc)
        assert out.batches[1] == ["second", "connection é"]

        wait_for(lambda: buffered(ssc) == 1, "the third connection's line")
        do_reset.set()
        wait_for(lambda: any("Error receiving data" in e.receiverInfo().lastErrorMessage()
                             for e in events.of("error")), "the reset connection's error event")
        advance(ssc)
        assert out.batches[2] == ["before reset"]
        advance(ssc)
        assert out.batches[3] == []
        ssc.stop(stopSparkContext=False)

    started = events.of("started")
    assert len(started) == 1 and started[0].receiverInfo().active()
    assert started[0].receiverInfo().streamId() == 0
    assert "ConnectionResetError" in events.of("error")[0].receiverInfo().lastError()
    stopped = events.of("stopped")
    assert len(stopped) == 1 and not stopped[0].receiverInfo().active()
    assert events.names()[0] == "started" and events.names().count("stopped") == 1


def test_socket_lines_end_as_java_readline_ends_them(sc, ssc):
    # \n, \r\n or a lone \r end a line (Spark's receiver reads with BufferedReader.readLine).
    def conn(c):
        c.sendall(b"cr\ronly\na\r\r\nb\r")
        time.sleep(0.05)
        c.sendall(b"\nlast")

    with LineServer(conn) as server:
        out = collect(ssc.socketTextStream("127.0.0.1", server.port))
        ssc.start()
        wait_for(lambda: buffered(ssc) == 6, "the 6 lines")
        advance(ssc)
        ssc.stop(stopSparkContext=False)
    assert out.batches == [["cr", "only", "a", "", "b", "last"]]


def test_lines_ended_by_a_lone_cr_arrive_while_the_connection_stays_open(sc, ssc):
    done = threading.Event()

    def conn(c):
        c.sendall(b"one\rtwo\r")
        time.sleep(0.05)
        c.sendall(b"\nthree\r")  # the \n of two's \r\n: no empty line
        done.wait(DEADLINE)

    with LineServer(conn) as server:
        out = collect(ssc.socketTextStream("127.0.0.1", server.port))
        ssc.start()
        wait_for(lambda: buffered(ssc) == 3, "the 3 lines, before the server closes")
        advance(ssc)
        done.set()
        ssc.stop(stopSparkContext=False)
    assert out.batches == [["one", "two", "three"]]


def test_stop_does_not_store_half_a_line(sc, ssc):
    # The rest of the line would have come later: what stop() cut off is no line (a line the server ended
    # by closing the connection is one; see above).
    sent, done = threading.Event(), threading.Event()

    def conn(c):
        c.sendall(b"complete line\npartial-li")
        sent.set()
        done.wait(DEADLINE)

    with LineServer(conn) as server:
        out = collect(ssc.socketTextStream("127.0.0.1", server.port))
        ssc.start()
        assert sent.wait(DEADLINE)
        wait_for(lambda: buffered(ssc) == 1, "the complete line")
        advance(ssc)
        time.sleep(0.3)  # the fragment has arrived too
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
        done.set()
    assert out.batches == [["complete line"]]
    assert buffered(ssc) == 0  # nothing stored at the stop


def test_socket_gives_up_after_retries(sc, ssc):
    port = free_port()
    events = EventRecorder()
    ssc.addStreamingListener(events)
    with conf_values(sc, {RETRIES_KEY: 2, BACKOFF_KEY: 0.02}):
        lines = ssc.socketTextStream("127.0.0.1", port)  # the conf is read here
    collect(lines)
    ssc.start()
    with pytest.raises(SourceConnectionError, match=rf"Could not connect to 127\.0\.0\.1:{port} after 2 retries") as ei:
        ssc.awaitTerminationOrTimeout(DEADLINE)
    assert isinstance(ei.value, ConnectionError)
    assert "refused" in str(ei.value).lower()
    # Every later call raises the same error.
    with pytest.raises(SourceConnectionError):
        ssc.awaitTerminationOrTimeout(0)

    names = [n for n in events.names() if n != "batch"]
    assert names == ["started", "error", "stopped"]
    (err,) = events.of("error")
    assert "Could not connect" in err.receiverInfo().lastErrorMessage()
    assert "SourceConnectionError" in err.receiverInfo().lastError()
    assert err.receiverInfo().lastErrorTime() > 0
    (stopped,) = events.of("stopped")
    assert not stopped.receiverInfo().active()
    assert "Could not connect" in stopped.receiverInfo().lastErrorMessage()
    # The started event kept what was true when it was posted.
    assert events.of("started")[0].receiverInfo().active()
    assert events.of("started")[0].receiverInfo().lastErrorMessage() == ""


def test_socket_conf_is_read_when_stream_is_created(sc, ssc):
    with conf_values(sc, {RETRIES_KEY: 7, BACKOFF_KEY: 0.5, MAX_LINE_KEY: 1000}):
        stream = ssc.socketTextStream("127.0.0.1", 1)
    receiver = stream._receiver
    assert (receiver.max_retries, receiver.max_backoff, receiver.max_line_bytes) == (7, 0.5, 1000)
    assert RETRIES_KEY not in sc._conf._settings and BACKOFF_KEY not in sc._conf._settings


def test_a_line_longer_than_the_limit_drops_the_connection_and_the_next_lines_arrive(sc, ssc):
    """A server that never sends a newline must not grow the receiver's memory without bound."""
    second = threading.Event()

    def endless(conn):
        conn.sendall(b"short\n" + b"x" * 300_000)  # then the server hangs up, the line unfinished
        assert second.wait(DEADLINE)

    def normal(conn):
        conn.sendall(b"after\n")

    events = EventRecorder()
    ssc.addStreamingListener(events)
    with LineServer(endless, normal) as server:
        with conf_values(sc, {MAX_LINE_KEY: 100_000, BACKOFF_KEY: 0.02}):
            lines = ssc.socketTextStream("127.0.0.1", server.port)
        out = collect(lines)
        ssc.start()
        wait_for(lambda: any("without a newline" in e.receiverInfo().lastErrorMessage() + e.receiverInfo().lastError()
                             for e in events.of("error")), "the too-long line's error event")
        second.set()
        wait_for(lambda: buffered(ssc) == 2, "the short line and the next connection's line")
        advance(ssc)
        ssc.stop(stopSparkContext=False)
    assert out.batches == [["short", "after"]]
    assert "LineTooLongError" in events.of("error")[0].receiverInfo().lastError()


# -- textFileStream / binaryRecordsStream -------------------------------------------------------------------
def move_in(tmp_path, directory, name: str, data: bytes, via_dotfile: bool = False) -> str:
    """Write ``data`` under a temporary name, then rename it atomically to ``directory/name``."""
    if via_dotfile:
        tmp = os.path.join(directory, f".{name}.tmp")
    else:
        staging = tmp_path / "staging"
        staging.mkdir(exist_ok=True)
        tmp = str(staging / name)
    with open(tmp, "wb") as fh:
        fh.write(data)
    dest = os.path.join(directory, name)
    os.rename(tmp, dest)
    return dest


def test_text_file_stream(sc, ssc, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "old.txt").write_text("existing before start\n", encoding="utf-8")
    events = EventRecorder()
    ssc.addStreamingListener(events)
    out = collect(ssc.textFileStream(str(d)))
    ssc.start()

    a = move_in(tmp_path, d, "a.txt", b"one\ntwo\nthree\n")
    (d / ".hidden").write_text("dotfile\n", encoding="utf-8")
    (d / "sub").mkdir()
    (d / "sub" / "inner.txt").write_text("in a subdirectory\n", encoding="utf-8")
    advance(ssc)
    assert out.batches == [["one", "two", "three"]]

    # Written as a dotfile inside the directory, then renamed; non-ASCII, CRLF, no final newline, and a
    # U+2028 / form feed inside a line (only \n, \r\n and \r end lines).
    text = "héllo wörld\r\n日本語\nπ ≈ 3.14\u2028still the same line\x0cand this\nlast"
    b = move_in(tmp_path, str(d), "b.txt", text.encode("utf-8"), via_dotfile=True)
    move_in(tmp_path, d, "c.txt", b"")
    advance(ssc)
    assert out.batches[1] == ["héllo wörld", "日本語", "π ≈ 3.14\u2028still the same line\x0cand this", "last"]

    advance(ssc)  # nothing new: each file is read in exactly one batch
    assert out.batches[2] == []
    (d / "sub" / "later.txt").write_text("ignored\n", encoding="utf-8")
    (d / ".later").write_text("ignored\n", encoding="utf-8")
    d2 = move_in(tmp_path, d, "d.txt", b"four\n")
    advance(ssc)
    assert out.batches == [["one", "two", "three"],
                           ["héllo wörld", "日本語", "π ≈ 3.14\u2028still the same line\x0cand this", "last"],
                           [], ["four"]]

    files = [e.batchInfo().streamIdToInputInfo()[0].metadata()["files"] for e in events.of("batch")]
    assert files == [[a], [b, os.path.join(str(d), "c.txt")], [], [d2]]


def test_text_file_stream_directory_created_later(sc, ssc, tmp_path):
    d = tmp_path / "later"
    out = collect(ssc.textFileStream(str(d)))
    ssc.start()
    advance(ssc)
    d.mkdir()
    move_in(tmp_path, d, "x.txt", b"x\n")
    advance(ssc)
    assert out.batches == [[], ["x"]]


def test_binary_records_stream(sc, ssc, tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    (d / "old.bin").write_bytes(b"zzzz")
    out = collect(ssc.binaryRecordsStream(str(d), 4))
    ssc.start()

    move_in(tmp_path, d, "a.bin", b"aaaabbbbcccc")
    move_in(tmp_path, d, "b.bin", bytes(range(8)))
    advance(ssc)
    assert out.batches == [[b"aaaa", b"bbbb", b"cccc", b"\x00\x01\x02\x03", b"\x04\x05\x06\x07"]]

    bad = move_in(tmp_path, d, "bad.bin", b"0123456789")  # 10 bytes: not a multiple of 4
    advance(ssc)
    with pytest.raises(StreamingJobError) as ei:
        ssc.awaitTerminationOrTimeout(0)
    assert isinstance(ei.value.__cause__, WrongRecordLengthError)
    assert isinstance(ei.value.__cause__, ValueError)
    assert "WrongRecordLengthError" in str(ei.value) and "bad.bin" in str(ei.value)
    assert "10 bytes" in str(ei.value) and bad in str(ei.value.__cause__)

    # Later batches still run.
    move_in(tmp_path, d, "c.bin", b"dddd")
    advance(ssc)
    assert out.batches == [[b"aaaa", b"bbbb", b"cccc", b"\x00\x01\x02\x03", b"\x04\x05\x06\x07"], [b"dddd"]]
    with pytest.raises(StreamingJobError):  # the failure stays reported
        ssc.awaitTerminationOrTimeout(0)


def test_binary_records_length_must_be_positive(ssc, tmp_path):
    for bad in (0, -4, 2.5, True, "4"):
        with pytest.raises(IllegalArgumentError, match="recordLength must be a whole number above 0"):
            ssc.binaryRecordsStream(str(tmp_path), bad)


# -- receiverStream ----------------------------------------------------------------------------------------
class ScriptedReceiver(Receiver):
    """Runs ``script(self, n)`` in its n-th onStart (n from 0); records onStart/onStop calls."""

    def __init__(self, script) -> None:
        super().__init__()
        self.script = script
        self.calls: list[str] = []
        self.starts = 0
        self.stop_requested = threading.Event()

    def onStart(self) -> None:
        n = self.starts
        self.starts += 1
        self.calls.append("start")
        self.script(self, n)

    def onStop(self) -> None:
        self.calls.append("stop")
        self.stop_requested.set()


def test_receiver_store_variants(sc, ssc):
    def script(r, n):
        r.store(1)
        r.store([2, 3])
        r.store(iter([4, 5]))
        r.store(x for x in (6,))
        r.store((7, "seven"))  # a tuple is one record
        r.store("text")
        r.store({"k": 1})
        r.storeBytes(frames.encode([8, "nine", (10, b"ten")]))
        r.store([])

    receiver = ScriptedReceiver(script)
    events = EventRecorder()
    ssc.addStreamingListener(events)
    out = collect(ssc.receiverStream(receiver))
    assert not receiver.isStarted() and receiver.isStopped()
    ssc.start()
    wait_for(lambda: buffered(ssc) == 12, "12 stored records")
    assert receiver.isStarted() and not receiver.isStopped()
    assert receiver.streamId == 0
    advance(ssc)
    advance(ssc)
    assert out.batches == [[1, 2, 3, 4, 5, 6, (7, "seven"), "text", {"k": 1}, 8, "nine", (10, b"ten")], []]
    batches = [e.batchInfo() for e in events.of("batch")]
    assert [b.numRecords() for b in batches] == [12, 0]
    assert receiver.calls == ["start"]
    ssc.stop(stopSparkContext=False)
    assert receiver.calls == ["start", "stop"]
    assert receiver.isStopped()
    assert [n for n in events.names() if n != "batch"] == ["started", "stopped"]


def test_receiver_store_bytes_rejects_corrupt_frame(sc, ssc):
    seen: list[BaseException] = []

    def script(r, n):
        frame = bytearray(frames.encode([1, 2, 3]))
        frame[-1] ^= 0xFF
        try:
            r.storeBytes(bytes(frame))
        except CorruptFrameError as exc:
            seen.append(exc)
        r.store("after")

    out = collect(ssc.receiverStream(ScriptedReceiver(script)))
    ssc.start()
    wait_for(lambda: buffered(ssc) == 1, "the record stored after the corrupt frame")
    advance(ssc)
    assert out.batches == [["after"]]
    assert len(seen) == 1


def test_receiver_report_error_keeps_running(sc, ssc):
    def script(r, n):
        r.store("before")
        r.reportError("something went wrong", ValueError("bad input"))
        r.store("after")

    receiver = ScriptedReceiver(script)
    events = EventRecorder()
    ssc.addStreamingListener(events)
    out = collect(ssc.receiverStream(receiver))
    ssc.start()
    wait_for(lambda: buffered(ssc) == 2, "both records")
    advance(ssc)
    assert out.batches == [["before", "after"]]
    (err,) = events.of("error")
    info = err.receiverInfo()
    assert info.lastErrorMessage() == "something went wrong"
    assert "ValueError: bad input" in info.lastError()
    assert info.active() and info.name() == "ScriptedReceiver"
    assert not receiver.isStopped()
    assert ssc.awaitTerminationOrTimeout(0) is False  # a reported error does not fail the context


def test_receiver_restart_calls_on_stop_then_on_start(sc, ssc):
    def script(r, n):
        if n == 0:
            r.store("first life")
            r.restart("restarting on purpose", RuntimeError("transient"), 10)
        else:
            r.store(f"life {n}")

    receiver = ScriptedReceiver(script)
    events = EventRecorder()
    ssc.addStreamingListener(events)
    out = collect(ssc.receiverStream(receiver))
    ssc.start()
    wait_for(lambda: receiver.calls == ["start", "stop", "start"] and buffered(ssc) == 2, "the restart")
    advance(ssc)
    assert out.batches == [["first life", "life 1"]]
    assert [n for n in events.names() if n != "batch"] == ["started", "error", "started"]
    err = events.of("error")[0].receiverInfo()
    assert err.lastErrorMessage() == "restarting on purpose" and "transient" in err.lastError()
    assert ssc.awaitTerminationOrTimeout(0) is False
    ssc.stop(stopSparkContext=False)
    assert receiver.calls == ["start", "stop", "start", "stop"]


class _RestartsItself(Receiver):
    """Spark's custom receiver pattern: the receiving thread calls restart() and ends; onStop() joins it."""

    def __init__(self) -> None:
        super().__init__()
        self.starts, self.joined = 0, []

    def onStart(self) -> None:
        self.starts += 1
        self.thread = threading.Thread(target=self._receive, args=(self.starts,), daemon=True)
        self.thread.start()

    def _receive(self, n: int) -> None:
        self.store(n)
        if n == 1:
            self.restart("connection lost, trying again", None, 0)

    def onStop(self) -> None:
        self.thread.join(3)
        self.joined.append(not self.thread.is_alive())


def test_restart_from_the_receiving_thread_returns_at_once(sc, ssc):
    # Asynchronous, as Spark's: the receiving thread's restart() returned only after onStop() gave up waiting
    # for that very thread (10 s).
    receiver = _RestartsItself()
    out = collect(ssc.receiverStream(receiver))
    ssc.start()
    wait_for(lambda: buffered(ssc) == 2, "a record from each start")
    advance(ssc)
    ssc.stop(stopSparkContext=False)
    assert out.batches == [[1, 2]] and receiver.starts == 2
    assert receiver.joined == [True, True]  # the restart's onStop, then the context's


def test_receiver_failing_on_start_is_restarted(sc, ssc):
    def script(r, n):
        if n == 0:
            raise OSError("cannot open the device")
        r.store("recovered")

    receiver = ScriptedReceiver(script)
    events = EventRecorder()
    ssc.addStreamingListener(events)
    out = collect(ssc.receiverStream(receiver))
    ssc.start()
    wait_for(lambda: buffered(ssc) == 1, "the restarted receiver's record")  # after the 2 s restart delay
    advance(ssc)
    assert out.batches == [["recovered"]]
    assert receiver.calls == ["start", "stop", "start"]
    assert "cannot open the device" in events.of("error")[0].receiverInfo().lastError()


def test_receiver_stop_with_error_fails_context(sc, ssc):
    boom = RuntimeError("the source is gone for good")

    def script(r, n):
        r.store("last words")
        r.stop("giving up", boom)

    receiver = ScriptedReceiver(script)
    events = EventRecorder()
    ssc.addStreamingListener(events)
    collect(ssc.receiverStream(receiver))
    ssc.start()
    with pytest.raises(RuntimeError, match="the source is gone for good") as ei:
        ssc.awaitTerminationOrTimeout(DEADLINE)
    assert ei.value is boom
    assert receiver.calls == ["start", "stop"] and receiver.isStopped()
    assert [n for n in events.names() if n != "batch"] == ["started", "error", "stopped"]
    assert events.of("stopped")[0].receiverInfo().lastErrorMessage() == "giving up"
    ssc.stop(stopSparkContext=False)
    assert receiver.calls == ["start", "stop"]  # stopping the context does not stop it twice


def test_receiver_stop_without_error_does_not_fail_context(sc, ssc):
    def script(r, n):
        r.store("only")
        r.stop("done")

    receiver = ScriptedReceiver(script)
    out = collect(ssc.receiverStream(receiver))
    ssc.start()
    wait_for(receiver.isStopped, "the receiver to stop")
    advance(ssc)
    assert out.batches == [["only"]]
    assert ssc.awaitTerminationOrTimeout(0) is False


class _StuckOnStop(Receiver):
    """A receiver whose onStop() never returns (a close or a join that blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def onStart(self) -> None:
        self.store([1])

    def onStop(self) -> None:
        self.release.wait(60)


def test_a_receiver_whose_on_stop_never_returns_does_not_keep_the_context_from_stopping(sc, ssc):
    with conf_values(sc, {ON_STOP_TIMEOUT_KEY: 0.3}):
        receiver = _StuckOnStop()
        out = collect(ssc.receiverStream(receiver))
    ssc.start()
    wait_for(lambda: buffered(ssc) >= 1, "the record")
    advance(ssc)
    t0 = time.monotonic()
    ssc.stop(stopSparkContext=False)
    assert time.monotonic() - t0 < 5
    receiver.release.set()
    assert out.batches == [[1]]
    with pytest.raises(ValueError, match="NaN"):
        ssc.awaitTerminationOrTimeout(float("nan"))


def test_receiver_blocking_on_start_is_stopped_with_context(sc, ssc):
    def script(r, n):
        i = 0
        while not r.stop_requested.is_set():
            r.store(i)
            i += 1
            r.stop_requested.wait(0.001)

    receiver = ScriptedReceiver(script)
    collect(ssc.receiverStream(receiver))
    ssc.start()
    wait_for(lambda: buffered(ssc) > 3, "some records")
    advance(ssc)
    ssc.stop(stopSparkContext=False)
    assert receiver.calls == ["start", "stop"]
    thread = ssc._graph.input_streams[0]._supervisor.thread
    assert thread is not None and not thread.is_alive()


def test_receiver_bounded_buffer_blocks_store(sc, ssc):
    entered, returned = [], []
    fourth_returned = threading.Event()

    def script(r, n):
        def feed():
            for i in range(9):
                entered.append(i)
                r.store(i)
                returned.append(i)
                if i == 3:
                    fourth_returned.set()

        threading.Thread(target=feed, daemon=True).start()

    with conf_values(sc, {MAX_BUFFERED_KEY: 3}):
        stream = ssc.receiverStream(ScriptedReceiver(script))
    out = collect(stream)
    ssc.start()
    # The 4th store has been entered while the buffer holds 3: it waits for a batch to drain the buffer.
    wait_for(lambda: len(entered) == 4 and buffered(ssc) == 3, "a full buffer and a 4th store")
    assert not fourth_returned.wait(0.3)
    assert returned == [0, 1, 2] and buffered(ssc) == 3
    advance(ssc)
    assert out.batches == [[0, 1, 2]]
    assert fourth_returned.wait(DEADLINE)  # the batch drained the buffer: store went on
    wait_for(lambda: len(entered) == 7 and buffered(ssc) == 3, "the buffer full again")
    advance(ssc)
    wait_for(lambda: len(returned) == 9 and buffered(ssc) == 3, "the last records")
    advance(ssc)
    assert out.batches == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_receiver_api_needs_a_context():
    r = ScriptedReceiver(lambda r, n: None)
    with pytest.raises(ReceiverError, match="not been started"):
        r.store(1)
    assert r.isStopped() and not r.isStarted()


def test_receiver_stream_needs_a_receiver(ssc):
    with pytest.raises(TypeError, match="Receiver"):
        ssc.receiverStream(object())


# -- queueStream --------------------------------------------------------------------------------------------
def test_queue_stream_one_at_a_time(sc, ssc):
    out = collect(ssc.queueStream([[1, 2], sc.parallelize([3]), [4, 5, 6]]))
    counts = collect(ssc._graph.input_streams[0].count())
    ssc.start()
    advance(ssc, 4)
    assert out.batches == [[1, 2], [3], [4, 5, 6], []]
    assert counts.batches == [[2], [1], [3], [0]]


def test_queue_stream_all_at_once(sc, ssc):
    q = ssc.queueStream([[1, 2], sc.parallelize([3]), [4, 5, 6]], oneAtATime=False)
    out = collect(q)
    ssc.start()
    advance(ssc, 2)
    assert out.batches == [[1, 2, 3, 4, 5, 6], []]


@pytest.mark.parametrize("as_rdd", [True, False])
def test_queue_stream_default(sc, ssc, as_rdd):
    default = sc.parallelize([9, 9]) if as_rdd else [9, 9]
    out = collect(ssc.queueStream([[1]], default=default))
    ssc.start()
    advance(ssc, 3)
    assert out.batches == [[1], [9, 9], [9, 9]]


def test_queue_stream_empty_batches_count_zero(sc, ssc):
    q = ssc.queueStream([[], []])
    counts = collect(q.count())
    out = collect(q)
    ssc.start()
    advance(ssc, 3)
    assert counts.batches == [[0], [0], [0]]
    assert out.batches == [[], [], []]


def test_queue_stream_push_after_start(sc, ssc):
    q = ssc.queueStream([])
    out = collect(q)
    ssc.start()
    advance(ssc)
    q.push(sc.parallelize(["pushed"]))
    advance(ssc)
    assert out.batches == [[], ["pushed"]]


# -- rateStream / textGeneratorStream -----------------------------------------------------------------------
def run_batches(sc, build, n: int, batch: float = 0.5) -> list[list]:
    ssc = manual_context(sc, batch)
    try:
        out = collect(build(ssc))
        ssc.start()
        advance(ssc, n)
        ssc.awaitTerminationOrTimeout(0)
        return out.batches
    finally:
        ssc.stop(stopSparkContext=False)


def test_rate_stream(sc, ssc):
    out = collect(ssc.rateStream(10))
    ssc.start()
    advance(ssc, 3)
    assert [len(b) for b in out.batches] == [5, 5, 5]  # rowsPerSecond * batch duration
    rows = [row for b in out.batches for row in b]
    assert [v for _, v in rows] == list(range(15))  # consecutive across batches
    t0 = rows[0][0]
    assert isinstance(t0, dt.datetime)
    assert t0 == dt.datetime.fromtimestamp(0)  # the manual clock's zero time
    assert all(ts - t0 == dt.timedelta(milliseconds=100 * v) for ts, v in rows)
    # Deterministic: another run gives the same rows.
    ssc.stop(stopSparkContext=False)
    assert run_batches(sc, lambda s: s.rateStream(10), 3) == out.batches


def test_rate_stream_fractional_rate_and_partitions(sc):
    batches = run_batches(sc, lambda s: s.rateStream(3), 4)
    assert [len(b) for b in batches] == [1, 2, 1, 2]
    assert [v for b in batches for _, v in b] == list(range(6))
    parts = run_batches(sc, lambda s: s.rateStream(12, numPartitions=3).glom().map(len), 2)
    assert parts == [[2, 2, 2], [2, 2, 2]]


def test_rate_stream_rejects_bad_rate(ssc):
    with pytest.raises(ValueError, match="finite number above 0"):
        ssc.rateStream(0)


def test_a_refused_source_leaves_the_context_as_it_was(sc, ssc, tmp_path):
    # Refused arguments used to leave a half-made stream in the graph, and every batch then failed.
    for make in (lambda: ssc.rateStream(0), lambda: ssc.rateStream(5, numPartitions=0),
                 lambda: ssc.textGeneratorStream(10, seed=-1), lambda: ssc.textGeneratorStream(10, wordsPerLine=-1),
                 lambda: ssc.socketTextStream("127.0.0.1", 70000), lambda: ssc.socketTextStream("127.0.0.1", 99.9),
                 lambda: ssc.binaryRecordsStream(str(tmp_path), 0)):
        with pytest.raises(IllegalArgumentError):
            make()
    assert ssc._graph.input_streams == []
    out = collect(ssc.queueStream([[1, 2, 3]]))
    ssc.start()
    advance(ssc)
    assert out.batches == [[1, 2, 3]]
    assert ssc.awaitTerminationOrTimeout(0) is False


def test_text_generator_stream(sc, ssc):
    gen = ssc.textGeneratorStream(6, wordsPerLine=4, vocabularySize=50, seed=7)
    out = collect(gen)
    ssc.start()
    advance(ssc, 3)
    assert [len(b) for b in out.batches] == [3, 3, 3]
    for line in (line for b in out.batches for line in b):
        words = line.split(" ")
        assert len(words) == 4
        assert all(re.fullmatch(r"w\d+", w) and int(w[1:]) < 50 for w in words)
    ssc.stop(stopSparkContext=False)
    build = lambda s: s.textGeneratorStream(6, wordsPerLine=4, vocabularySize=50, seed=7)  # noqa: E731
    assert run_batches(sc, build, 3) == out.batches
    # Partitioning and batching do not change the lines; the seed does.
    repartitioned = run_batches(sc, lambda s: s.textGeneratorStream(6, 4, 50, seed=7, numPartitions=3), 3)
    assert repartitioned == out.batches
    longer = run_batches(sc, lambda s: s.textGeneratorStream(6, 4, 50, seed=7), 3, batch=1.5)
    assert longer[0] == [line for b in out.batches for line in b]
    other_seed = run_batches(sc, lambda s: s.textGeneratorStream(6, 4, 50, seed=8), 3)
    assert other_seed != out.batches


def test_text_generator_zipf_skew(sc):
    lines = run_batches(sc, lambda s: s.textGeneratorStream(400, wordsPerLine=10, vocabularySize=1000), 1)[0]
    assert len(lines) == 200
    words = [w for line in lines for w in line.split()]
    top = sum(1 for w in words if w == "w0")
    assert top > words.count("w100") and top > len(words) / 50  # rank 0 is by far the most frequent
