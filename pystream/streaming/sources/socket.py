"""socketTextStream: a TCP client receiving UTF-8 lines, reconnecting with backoff."""

from __future__ import annotations

import logging
import numbers
import re
import socket
import threading

from pystream.errors import IllegalArgumentError, SourceConnectionError
from pystream.streaming.sources.receiver import Receiver

logger = logging.getLogger(__name__)

RETRIES_KEY = "spark.pystream.socket.maxRetries"
BACKOFF_KEY = "spark.pystream.socket.maxBackoff"
MAX_LINE_KEY = "spark.pystream.socket.maxLineBytes"
MAX_LINE_BYTES = 64 << 20
_LINE_END = re.compile(rb"\r\n|\r|\n")


class LineTooLongError(OSError):
    """A server sent more than the receiver's maxLineBytes without a newline: its memory would grow unbounded."""


class SocketTextReceiver(Receiver):
    """Connects to ``host:port`` and stores each line (UTF-8, newline stripped).

    When the connection fails or the server closes it, the receiver reconnects with exponential backoff
    (0.1 s doubling up to ``maxBackoff`` seconds). After ``maxRetries`` failed attempts in a row it stops and
    the streaming context fails with SourceConnectionError.

    The complete lines of each read from the socket are stored with one ``store()`` call: with the
    write-ahead log on, one block (one fsync) per read, not per line. A line longer than ``maxLineBytes``
    (``spark.pystream.socket.maxLineBytes``, 64 MiB) is reported as an error and the connection made again,
    instead of memory growing without bound while a server never sends a newline.
    """

    max_line_bytes = MAX_LINE_BYTES  # (a receiver restored from an older checkpoint has none of its own)

    def __init__(self, host: str, port: int, max_retries: int = 10, max_backoff: float = 2.0,
                 chunk_lines: int = 1000, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        super().__init__()
        if isinstance(port, bool) or not isinstance(port, numbers.Integral) or not 0 < port < 65536:
            raise IllegalArgumentError(f"port must be a whole number from 1 to 65535, got {port!r}")
        self.host = host
        self.port = int(port)
        self.max_line_bytes = max_line_bytes
        self.max_retries = max_retries
        self.max_backoff = max_backoff
        self.chunk_lines = chunk_lines
        self._sock: socket.socket | None = None
        self._closing = threading.Event()

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_sock"] = None
        del state["_closing"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._closing = threading.Event()

    def onStart(self) -> None:
        self._closing.clear()
        failures = 0
        backoff = 0.1
        last_error: BaseException | None = None
        while not self._closing.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=5.0)
            except OSError as exc:
                failures += 1
                last_error = exc
                if failures > self.max_retries:
                    break
                logger.info("connecting to %s:%d failed (%s); retry %d in %.1fs", self.host, self.port, exc,
                            failures, backoff)
                if self._closing.wait(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff)
                continue
            failures, backoff = 0, 0.1
            self._sock = sock
            try:
                self._receive(sock)
            except OSError as exc:
                last_error = exc
                if not self._closing.is_set():
                    self.reportError(f"Error receiving data from {self.host}:{self.port}", exc)
            finally:
                self._sock = None
                sock.close()
            if not self._closing.is_set():
                logger.info("connection to %s:%d closed; reconnecting", self.host, self.port)
                if self._closing.wait(backoff):
                    return
        if not self._closing.is_set():
            err = SourceConnectionError(
                f"Could not connect to {self.host}:{self.port} after {self.max_retries} retries: {last_error}")
            self.stop(str(err), err)

    def _receive(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        # A bytearray grows in place: a long line arriving in many reads costs its length, not its square.
        pending = bytearray()
        ended = skip_lf = False
        while not self._closing.is_set():
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not data:
                ended = True
                break
            pending += data
            if skip_lf and pending[:1] == b"\n":
                del pending[:1]  # the \r\n whose \r ended the last read: its line was stored then
            skip_lf = False
            if b"\n" not in data and b"\r" not in data:
                if len(pending) > self.max_line_bytes:
                    raise LineTooLongError(
                        f"{self.host}:{self.port} sent more than {self.max_line_bytes} bytes without a newline "
                        f"({MAX_LINE_KEY}); the connection is dropped and made again")
                continue
            # Lines end as Java's readLine ends them (Spark's receiver reads with it): \n, \r\n or a lone \r.
            *lines, rest = _LINE_END.split(pending)
            skip_lf = pending.endswith(b"\r")  # a \n may still come for it
            pending = bytearray(rest)
            self.store([line.decode("utf-8", "replace") for line in lines])
        # What the server sent after its last line end is a line when it closed the connection (as readLine
        # gives it); a fragment cut off by stop() is not.
        if ended and pending and not self._closing.is_set():
            self.store(pending.decode("utf-8", "replace"))

    def onStop(self) -> None:
        self._closing.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

