"""Record frames: how pystream moves batches of records between processes.

A frame is a 40-byte header (magic ``b"PSRF"``, version, flags, record count, payload lengths, XXH64
checksum) followed by a compact tagged encoding of the records, optionally lz4-compressed. None, bool,
int (any size), float, str, bytes, bytearray, tuple, list and dict are encoded natively, nested to any
depth up to :data:`MAX_NESTING`; any other object (including subclasses such as namedtuples and
IntEnums) is pickled inside the frame so its type survives. The layout is documented in
``csrc/ps_frame.h``.

Decoding validates everything (header, checksum, every length and count before allocating) and raises
:class:`pystream.errors.CorruptFrameError` for any malformed input. Because frames may embed pickles,
only decode frames written by a trusted pystream process: the checksum detects corruption, it does not
authenticate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pystream._core import deserialisation as _de
from pystream._core import serialisation as _ser

__all__ = [
    "encode",
    "encode_into",
    "decode",
    "FrameReader",
    "FrameWriter",
    "frame_length",
    "frame_count",
    "HEADER_SIZE",
    "MAGIC",
    "FORMAT_VERSION",
    "MAX_NESTING",
    "COMPRESS_THRESHOLD",
]

HEADER_SIZE: int = _ser.HEADER_SIZE
MAGIC: bytes = _ser.MAGIC
FORMAT_VERSION: int = _ser.FORMAT_VERSION
MAX_NESTING: int = _ser.MAX_NESTING
COMPRESS_THRESHOLD: int = _ser.COMPRESS_THRESHOLD


def encode(records: Iterable[Any], *, compress: bool | None = None) -> bytes:
    """Encode ``records`` (a list, or any iterable, converted once) as one frame.

    ``compress=None`` lz4-compresses payloads larger than :data:`COMPRESS_THRESHOLD` bytes when that
    makes them smaller; ``True`` always tries (keeping the smaller result); ``False`` never compresses.
    Raises ``ValueError`` for containers nested deeper than :data:`MAX_NESTING` (or self-referencing)
    and ``TypeError`` for values that are neither native nor picklable.
    """
    return _ser.encode(records, compress=compress)


def encode_into(records: Iterable[Any], buffer: Any, offset: int = 0) -> int:
    """Write an uncompressed frame of ``records`` into the writable ``buffer`` at ``offset``.

    The payload is encoded directly into ``buffer`` (no intermediate copy) and the header written last.
    Returns the number of bytes written. Raises :class:`pystream.errors.FrameOverflowError` if the frame
    does not fit; nothing is ever written past the end of ``buffer`` (bytes between ``offset`` and the
    end may have been overwritten).
    """
    return _ser.encode_into(records, buffer, offset)


def decode(buffer: Any) -> list[Any]:
    """Decode the single frame in ``buffer`` (any buffer-protocol object; the frame is not copied).

    ``buffer`` must hold exactly one frame: trailing bytes are an error. Raises
    :class:`pystream.errors.CorruptFrameError` saying what was wrong for any malformed frame.
    """
    return _de.decode(buffer)


FrameReader = _de.FrameReader
"""``FrameReader(buffer, offset=0, length=-1)``: the frame's records a chunk at a time (``next_chunk(size)``,
or iteration), for consumers that handle records in order and drop them; ``close()`` releases the buffer."""


FrameWriter = _ser.FrameWriter
"""``FrameWriter(expected=0)``: a frame built a record at a time (``append``, ``extend``), read out with
``getvalue()`` or copied into a buffer with ``write_into(buffer, offset=0)``; the same bytes as
``encode(records, compress=False)``. A record that fails to encode is left out whole."""


def frame_length(buffer: Any, offset: int = 0) -> int:
    """Total size in bytes of the frame whose (validated) header starts at ``offset`` in ``buffer``."""
    return _de.frame_length(buffer, offset)


def frame_count(buffer: Any) -> int:
    """Number of records in the frame at the start of ``buffer``, read from its validated header."""
    return _de.frame_count(buffer)
