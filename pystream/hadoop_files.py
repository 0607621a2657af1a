"""Files as Spark's Hadoop input and output formats see them: input paths and compression codecs.

Input paths (``sc.textFile``, ``wholeTextFiles``, ``binaryFiles``, ``binaryRecords``, ``pickleFile``) are
Hadoop's: several paths separated by commas, each a file, a directory (its files, hidden ones - names starting
with "." or "_" - left out) or a glob (``*``, ``?``, ``[abc]``, ``[^abc]``, ``{a,b}``), with or without
``file://``. A path that does not exist, or a glob that matches nothing, raises FileNotFoundError with Spark's
words.

Compression: a text file whose name ends in a codec's extension is read through it (.gz, .bz2, .deflate), as
Spark's TextInputFormat does; ``saveAsTextFile(path, compressionCodecClass)`` writes every part through the codec
it names, with its extension. Codecs Python cannot run without a native library (Snappy, LZ4, Zstandard) raise
UnsupportedCodecError, for input named so too: read as text, their bytes would be a silent wrong answer.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import os
import re
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from pystream.errors import CorruptInputError, IllegalArgumentError, UnsupportedCodecError

__all__ = ["Codec", "codec_named", "input_files", "local_path", "read_input", "text_lines"]


@dataclass(frozen=True)
class Codec:
    """A Hadoop compression codec: its class, the extension of its files, and how Python reads and writes them."""

    class_name: str
    extension: str

    def open_write(self, fh: BinaryIO) -> BinaryIO:
        """A writer that compresses into ``fh``; closing it ends the stream and leaves ``fh`` open."""
        if self.extension == ".gz":
            return gzip.GzipFile(fileobj=fh, mode="wb", mtime=0)  # type: ignore[return-value]
        if self.extension == ".bz2":
            return bz2.BZ2File(fh, "wb")  # type: ignore[return-value]
        return _ZlibWriter(fh)  # type: ignore[return-value]

    def compress(self, data: bytes) -> bytes:
        """``data`` as one compressed stream (a SequenceFile's value or block)."""
        if self.extension == ".gz":
            return gzip.compress(data, mtime=0)
        if self.extension == ".bz2":
            return bz2.compress(data)
        return zlib.compress(data)

    def decompress(self, data: bytes) -> bytes:
        """One compressed stream's bytes; OSError, EOFError, ValueError or zlib.error if it is damaged."""
        if self.extension == ".gz":
            return gzip.decompress(data)
        if self.extension == ".bz2":
            return bz2.decompress(data)
        return zlib.decompress(data)

    def open_read(self, fh: BinaryIO) -> BinaryIO:
        """A reader of what ``fh`` holds decompressed; closing it leaves ``fh`` open."""
        if self.extension == ".gz":
            return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
        if self.extension == ".bz2":
            return bz2.BZ2File(fh, "rb")  # type: ignore[return-value]
        return _ZlibReader(fh)  # type: ignore[return-value]


_PREFIX = "org.apache.hadoop.io.compress."
CODECS = {c.class_name: c for c in (Codec(_PREFIX + "GzipCodec", ".gz"), Codec(_PREFIX + "BZip2Codec", ".bz2"),
                                   Codec(_PREFIX + "DefaultCodec", ".deflate"))}
# Spark's short names for them.
_SHORT = {"gzip": _PREFIX + "GzipCodec", "bzip2": _PREFIX + "BZip2Codec", "deflate": _PREFIX + "DefaultCodec"}
# Hadoop codecs whose files Python cannot read without a native library, by extension.
_UNSUPPORTED = {".snappy": "SnappyCodec", ".lz4": "Lz4Codec", ".zst": "ZStandardCodec"}


def codec_named(name: str) -> Codec:
    """The codec of a Hadoop codec class name (or Spark's short name: gzip, bzip2, deflate)."""
    codec = CODECS.get(_SHORT.get(name.lower(), name))
    if codec is None:
        raise UnsupportedCodecError(
            f"Compression codec {name} is not available; pystream writes "
            f"{', '.join(sorted(CODECS))} (or gzip, bzip2, deflate)")
    return codec


def codec_of_file(path: str) -> Codec | None:
    """The codec a file's extension names, None for a plain file."""
    for codec in CODECS.values():
        if path.endswith(codec.extension):
            return codec
    for ext, name in _UNSUPPORTED.items():
        if path.endswith(ext):
            raise UnsupportedCodecError(
                f"{path} is compressed with {name}, which pystream cannot read (it reads .gz, .bz2 and .deflate "
                "files); decompress it first")
    return None


def read_input(path: str) -> bytes:
    """A whole file's bytes, decompressed when its extension names a codec; a damaged compressed file raises
    CorruptInputError naming it."""
    codec = codec_of_file(path)
    with open(path, "rb") as fh:
        if codec is None:
            return fh.read()
        if not fh.peek(1):
            return b""  # an empty file holds no records, whatever its name (bz2 would call it cut short)
        try:
            with codec.open_read(fh) as stream:
                return stream.read()
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise CorruptInputError(f"{path} could not be decompressed: {exc}") from exc


def text_lines(path: str, use_unicode: bool = True) -> list[Any]:
    """A text file's lines as Hadoop's LineRecordReader ends them (at "\n", "\r\n" or "\r" only: never inside
    a line at U+2028, U+0085 or a form feed, as str.splitlines would), read through its codec: as str, bytes
    that are not UTF-8 read as U+FFFD (as Hadoop's Text reads them), or as bytes."""
    lines = read_input(path).splitlines()
    return [line.decode("utf-8", "replace") for line in lines] if use_unicode else lines


class _ZlibReader(io.RawIOBase):
    """DefaultCodec's files: a zlib stream (several, one after the other, when files were concatenated)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._z = zlib.decompressobj()
        self._open_stream = False  # a stream begun and not ended: the file must go on
        self._buf = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        while not self._buf and not self._done:
            chunk = self._fh.read(1 << 16)
            if not chunk:
                if self._open_stream:
                    raise EOFError("the zlib stream ends before its end marker")
                self._done = True
                break
            self._buf = self._feed(chunk)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def _feed(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._z.decompress(data))
            self._open_stream = not self._z.eof
            if not self._z.eof:
                break
            data = self._z.unused_data
            self._z = zlib.decompressobj()
        return b"".join(out)

class _ZlibWriter(io.RawIOBase):
    """DefaultCodec's files: one zlib stream."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._z = zlib.compressobj()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        data = bytes(b)
        self._fh.write(self._z.compress(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._fh.write(self._z.flush())
        super().close()


# -- input paths --------------------------------------------------------------------------------------------
def input_files(paths: str) -> list[str]:
    """The files Hadoop's FileInputFormat reads for ``paths`` (see the module docstring), in order: each path's
    files sorted, paths in the order given."""
    if not isinstance(paths, str) or not paths.strip(", "):
        raise IllegalArgumentError(f"Can not create a Path from an empty string (got {paths!r})")
    out: list[str] = []
    for path in _split_commas(paths):
        local = local_path(path)
        if _is_glob(local):
            matches = sorted(m for pattern in _expand_braces(local) for m in glob.glob(_to_python_glob(pattern))
                             if not _hidden(m))
            if not matches:
                raise FileNotFoundError(f"Input Pattern file:{os.path.abspath(local)} matches 0 files")
        elif os.path.exists(local):
            matches = [local]
        else:
            raise FileNotFoundError(f"Input path does not exist: file:{os.path.abspath(local)}")
        for m in dict.fromkeys(matches):
            if os.path.isdir(m):
                out.extend(sorted(os.path.join(m, f) for f in os.listdir(m) if not _hidden(f)))
            else:
                out.append(m)
    return out


def local_path(path: str) -> str:
    """A path as the local file system names it: ``file:///a``, ``file:/a`` (as Hadoop prints it) and ``/a``
    are one; any other scheme raises FileNotFoundError (pystream reads and writes local files only)."""
    if path.startswith("file://"):
        return path[len("file://"):]
    if path.startswith("file:"):
        return path[len("file:"):]
    if "://" in path:
        raise FileNotFoundError(f"pystream reads and writes local files only, not {path}")
    return path


def _hidden(path: str) -> bool:
    return os.path.basename(path.rstrip(os.sep)).startswith((".", "_"))


def _split_commas(paths: str, keep_empty: bool = False) -> list[str]:
    """Split at commas outside braces ("a/{x,y},b" is two paths), as Hadoop's FileInputFormat does."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(paths):
        if ch == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        elif ch == "," and not depth:
            parts.append(paths[start:i])
            start = i + 1
    parts.append(paths[start:])
    return parts if keep_empty else [p for p in parts if p]


def _is_glob(path: str) -> bool:
    return bool(re.search(r"[*?\[{]", path))


def _expand_braces(pattern: str) -> list[str]:
    """``{a,b}`` alternatives expanded (nested ones too): Python's glob has none."""
    depth, open_at = 0, -1
    for i, ch in enumerate(pattern):
        if ch == "{":
            if depth == 0:
                open_at = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                head, body, tail = pattern[:open_at], pattern[open_at + 1:i], pattern[i + 1:]
                return [x for alt in _split_commas(body, keep_empty=True) for x in _expand_braces(head + alt + tail)]
    return [pattern]


def _to_python_glob(pattern: str) -> str:
    """Hadoop's negated class ``[^abc]`` is Python's ``[!abc]``."""
    return pattern.replace("[^", "[!")
