"""Run the ported Spark streaming examples (examples/*.py) for real, as subprocesses, and check what they print.

The socket examples connect to a real TCP server run by the test. Batches run on the wall clock, so the
assertions only rely on what is certain whatever the timing (e.g. a line is never split across batches).
"""

from __future__ import annotations

import ast
import collections
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["network_wordcount.py", "stateful_network_wordcount.py", "windowed_wordcount.py", "queue_stream.py"]
TIMEOUT = 90.0
SEP = "-------------------------------------------"


def run_example(name: str, *args: str) -> str:
    """Run ``examples/<name>`` with ``args``; return its stdout (fail on a non-zero exit or a traceback)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run([sys.executable, "-W", "error::ResourceWarning", f"examples/{name}", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def parse_pprint(out: str) -> list[list]:
    """Split pprint output into batches of records (each record parsed back with ast.literal_eval)."""
    batches: list[list] = []
    lines = out.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("Time: "):
            assert lines[i - 1] == SEP and lines[i + 1] == SEP, lines[i - 1:i + 2]
            records = []
            i += 2
            while i < len(lines) and lines[i] != "":
                records.append(ast.literal_eval(lines[i]))
                i += 1
            batches.append(records)
        i += 1
    return batches


class OneShotServer:
    """A real TCP server: accepts one connection, sends ``chunks`` (pausing ``pause`` s between them), then
    keeps the connection open until the client closes it (or the test is done with the server)."""

    def __init__(self, chunks: list[bytes], pause: float = 0.0) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.chunks, self.pause = chunks, pause
        self.errors: list[BaseException] = []
        self.sent = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._done.is_set():
                try:
                    conn, _ = self.sock.accept()
                except TimeoutError:
                    continue
                break
            else:
                return  # the example never connected: run_example reports why
            with conn:
                for i, chunk in enumerate(self.chunks):
                    if i and self._done.wait(self.pause):
                        return
                    conn.sendall(chunk)
                self.sent.set()
                conn.settimeout(0.1)
                while not self._done.is_set():  # until the example closes its end
                    try:
                        if not conn.recv(4096):
                            return
                    except TimeoutError:
                        continue
        except BaseException as exc:  # noqa: BLE001 - re-raised by close()
            self.errors.append(exc)

    def close(self) -> None:
        """Called once the example has exited (its end of the connection is closed)."""
        self._done.set()
        self._thread.join(TIMEOUT)
        self.sock.close()
        assert not self._thread.is_alive()
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> OneShotServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_help(name):
    out = run_example(name, "--help")
    assert "usage:" in out and "--seconds" in out


def test_network_wordcount():
    with OneShotServer(["hello world hello pystream\n".encode(), "héllo wörld\n".encode()], pause=0.3) as server:
        out = run_example("network_wordcount.py", "127.0.0.1", str(server.port), "--batch", "0.5",
                          "--seconds", "4")
        assert server.sent.is_set()
    batches = parse_pprint(out)
    assert len(batches) >= 3 and out.count("Time: ") == len(batches)
    records = [r for b in batches for r in b]
    # A line is never split across batches, so one batch holds all of the first line's words.
    (first,) = [b for b in batches if ("hello", 2) in b]
    assert {("hello", 2), ("pystream", 1), ("world", 1)} <= set(first)
    assert ("héllo", 1) in records and ("wörld", 1) in records
    assert sum(c for w, c in records if w == "hello") == 2


def test_stateful_network_wordcount(tmp_path):
    lines = ["hello world hello\n".encode(), "hello again\n".encode()]
    checkpoint = tmp_path / "checkpoint"
    with OneShotServer(lines, pause=1.0) as server:
        out = run_example("stateful_network_wordcount.py", "127.0.0.1", str(server.port), "--checkpoint",
                          str(checkpoint), "--batch", "0.5", "--seconds", "5")
        assert server.sent.is_set()
    batches = parse_pprint(out)
    assert len(batches) >= 3
    # The initial state (hello, 1), (world, 1) is in every batch until words arrive; totals only grow.
    assert sorted(batches[0]) in ([("hello", 1), ("world", 1)], [("hello", 3), ("world", 2)],
                                  [("again", 1), ("hello", 4), ("world", 2)])
    assert sorted(batches[-1]) == [("again", 1), ("hello", 4), ("world", 2)]
    hello = [dict(b)["hello"] for b in batches]
    assert hello == sorted(hello) and set(hello) <= {1, 3, 4}


def test_windowed_wordcount_generated(tmp_path):
    from pystream.streaming.sources.generator import ZipfLines

    out = run_example("windowed_wordcount.py", "--batch", "0.5", "--window", "3", "--slide", "0.5",
                      "--lines-per-second", "20", "--words-per-line", "5", "--vocabulary", "6", "--seed", "3",
                      "--checkpoint", str(tmp_path / "ckpt"), "--seconds", "5")
    batches = parse_pprint(out)
    assert len(batches) >= 7  # the window (6 batches) is full, and then slides
    gen = ZipfLines(5, 6, 1.1, 3)
    for k, printed in enumerate(batches, start=1):
        # Batch k holds generated lines [(k-1)*10, k*10); the window at batch k covers batches k-5..k.
        words = [w for line in gen.lines(max(0, k - 6) * 10, k * 10) for w in line.split(" ")]
        expected = sorted(collections.Counter(words).items(), key=lambda kv: (-kv[1], kv[0]))
        assert printed == expected, f"window at batch {k}"
    assert all(sum(c for _, c in b) == 50 * min(k, 6) for k, b in enumerate(batches, start=1))


def test_windowed_wordcount_socket(tmp_path):
    with OneShotServer(["to be or not to be\n".encode()]) as server:
        out = run_example("windowed_wordcount.py", "--host", "127.0.0.1", "--port", str(server.port),
                          "--batch", "0.5", "--window", "1", "--slide", "0.5",
                          "--checkpoint", str(tmp_path / "ckpt"), "--seconds", "4")
    batches = parse_pprint(out)
    full = [("be", 2), ("to", 2), ("not", 1), ("or", 1)]
    # The line's batch is in two consecutive windows of 2 batches, then leaves them.
    hits = [i for i, b in enumerate(batches) if b == full]
    assert len(hits) == 2 and hits[1] == hits[0] + 1, batches
    assert all(b in ([], full) for b in batches)


def test_queue_stream():
    out = run_example("queue_stream.py", "--rdds", "3", "--batch", "0.5", "--seconds", "3")
    batches = parse_pprint(out)
    assert len(batches) >= 4
    expected = sorted((k, 100) for k in range(10))
    assert [sorted(b) for b in batches[:3]] == [expected] * 3
    assert all(b == [] for b in batches[3:])
