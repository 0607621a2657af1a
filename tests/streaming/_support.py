"""Helpers shared by the streaming tests (imported as ``_support``; pytest puts this folder on sys.path)."""

from __future__ import annotations

import ast
import collections
import contextlib
import os
import signal
import time


@contextlib.contextmanager
def conf_values(sc, values: dict):
    """Temporarily set conf keys of the (module-shared) SparkContext; restore them afterwards."""
    settings = sc._conf._settings
    saved = {k: settings.get(k) for k in values}
    try:
        for k, v in values.items():
            sc._conf.set(k, v)
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                settings.pop(k, None)
            else:
                settings[k] = old


def read_bytes(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def write_bytes(path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def kill_group(proc) -> None:
    """SIGKILL a child driver started in its own session, with its worker processes, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def totals_outputs(out) -> dict[int, dict]:
    """{batch ms: totals} of every complete ``totals-<ms>`` output directory written by saveAsTextFiles."""
    result = {}
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if not name.startswith("totals-") or not os.path.isfile(os.path.join(path, "_SUCCESS")):
            continue
        totals = {}
        for part in sorted(os.listdir(path)):
            if part.startswith("part-"):
                with open(os.path.join(path, part), encoding="utf-8") as fh:
                    for line in fh:
                        k, v = ast.literal_eval(line)
                        assert k not in totals, f"key {k} twice in {path}"
                        totals[k] = v
        result[int(name.split("-", 1)[1])] = totals
    return result


def assert_exactly_once(outs: dict[int, dict], latest: dict | None, expected: dict) -> None:
    """The final totals equal the input's; no batch ever counted a record twice; totals never shrink."""
    assert latest == expected, (
        f"final totals differ: missing {collections.Counter(expected) - collections.Counter(latest or {})}, "
        f"extra {collections.Counter(latest or {}) - collections.Counter(expected)}")
    for t, totals in outs.items():
        over = {k: v for k, v in totals.items() if v > expected.get(k, 0)}
        assert not over, f"batch {t} counted records twice: {over}"
    prev: dict = {}
    for t in sorted(outs):
        assert all(outs[t].get(k, 0) >= v for k, v in prev.items()), f"batch {t} lost counts"
        prev = outs[t]


def wait_first_checkpoint(ck, proc, log_path, timeout: float = 20.0) -> None:
    """Wait until the child driver wrote its first metadata checkpoint (and is still running)."""
    deadline = time.monotonic() + timeout
    while not (os.path.isdir(ck) and any(n.startswith("checkpoint-") for n in os.listdir(ck))):
        assert time.monotonic() < deadline and proc.poll() is None, _tail(log_path)
        time.sleep(0.05)


def wait_for_totals(out, expected: dict, proc, log_path, timeout: float) -> tuple[dict[int, dict], dict | None]:
    """Poll the child's output until its newest totals equal ``expected`` (or ``timeout`` passes); return every
    output and the newest totals. The child must stay alive meanwhile."""
    deadline = time.monotonic() + timeout
    latest = None
    while time.monotonic() < deadline:
        outs = totals_outputs(str(out))
        if outs:
            latest = outs[max(outs)]
            if latest == expected:
                break
        assert proc.poll() is None, _tail(log_path)
        time.sleep(0.2)
    return totals_outputs(str(out)), latest


def _tail(log_path, n: int = 3000) -> str:
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        return fh.read()[-n:]


def assert_clean_log(log_path) -> None:
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    assert "Traceback" not in text, text[-3000:]
