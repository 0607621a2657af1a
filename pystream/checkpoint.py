"""Streaming checkpoints: metadata every batch, keyed state every checkpoint interval, recovery.

Files in the checkpoint directory (a local path or an fsspec URL such as ``file://`` or ``memory://``):

- ``checkpoint-<ms>``: the metadata checkpoint written after batch ``<ms>`` completed: the DStream graph with
  its functions (cloudpickle), the configuration, the batch duration and zero time, each source's position
  (for file streams: which files belong to which batch, and the files seen) and the state files in use.
  Batches after ``<ms>`` were scheduled but not finished: recovery runs them again.
- ``state-<stream>-<ms>``: the partitions of stateful stream number ``<stream>`` after batch ``<ms>``,
  written every checkpoint interval of that stream (Spark's default: the smallest multiple of the slide that
  is at least 10 s; ``DStream.checkpoint(interval)`` overrides).

Every file is written under a temporary name and renamed into place, and carries a header: magic, format
version, kind, XXH64 of the contents and, when ``PYSTREAM_CHECKPOINT_KEY`` is set, an HMAC-SHA256 signature
that is checked before anything is unpickled. The last few checkpoints are kept; older files are deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import pickle
import re
import struct
import time
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pystream.errors import CheckpointError, StateLostError
from pystream.hashing import xxh64

if TYPE_CHECKING:
    from pystream.streaming.context import StreamingContext

logger = logging.getLogger(__name__)

__all__ = ["CheckpointStore", "CheckpointWriter", "recover", "encode_file", "decode_file", "FORMAT_VERSION",
           "KEY_ENV"]

FORMAT_VERSION = 1
MAGIC = b"PSCK"
KIND_METADATA, KIND_STATE, KIND_WAL = 1, 2, 3
_KIND_NAMES = {KIND_METADATA: "metadata", KIND_STATE: "state", KIND_WAL: "write-ahead log"}
FLAG_SIGNED = 1
KEY_ENV = "PYSTREAM_CHECKPOINT_KEY"
#: magic, version, kind, flags, metadata length, body length, XXH64 of metadata + body
_HEADER = struct.Struct("<4sHBBIQQ")
_SIG_LEN = 32
KEEP_METADATA = 5
KEEP_STATE = 2

_META_RE = re.compile(r"^checkpoint-(\d+)$")
_STATE_RE = re.compile(r"^state-(\d+)-(\d+)$")


def signing_key() -> bytes | None:
    """The HMAC key from ``PYSTREAM_CHECKPOINT_KEY``, or None when checkpoints are not signed."""
    key = os.environ.get(KEY_ENV)
    return key.encode("utf-8") if key else None


# -- file format --------------------------------------------------------------------------------------------
def encode_file(kind: int, meta: dict, body: bytes, key: bytes | None) -> bytes:
    """The bytes of one checkpoint file: header, optional signature, JSON metadata, body."""
    meta_b = json.dumps(meta, sort_keys=True).encode("utf-8")
    checksum = xxh64(meta_b + body)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, kind, FLAG_SIGNED if key else 0, len(meta_b), len(body), checksum)
    sig = hmac.new(key, header + meta_b + body, hashlib.sha256).digest() if key else b""
    return header + sig + meta_b + body


def decode_file(name: str, data: bytes, kind: int, key: bytes | None) -> tuple[dict, bytes]:
    """Check one checkpoint file and return its metadata and body; CheckpointError naming ``name`` if it is
    truncated, corrupted, unsigned or wrongly signed (when ``key`` is set), or of another version or kind.
    Nothing is unpickled here."""
    what = _KIND_NAMES.get(kind, "checkpoint")
    if len(data) < _HEADER.size:
        raise CheckpointError(f"{what} checkpoint file {name} is truncated: {len(data)} bytes, shorter than the "
                              f"{_HEADER.size}-byte header")
    magic, version, got_kind, flags, meta_len, body_len, checksum = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"{what} checkpoint file {name} is corrupted: it does not start with {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{what} checkpoint file {name} has format version {version}; this pystream reads "
                              f"version {FORMAT_VERSION}")
    if got_kind != kind:
        raise CheckpointError(f"checkpoint file {name} holds a {_KIND_NAMES.get(got_kind, got_kind)} checkpoint, "
                              f"not a {what} checkpoint")
    sig_len = _SIG_LEN if flags & FLAG_SIGNED else 0
    expected = _HEADER.size + sig_len + meta_len + body_len
    if len(data) < expected:
        raise CheckpointError(f"{what} checkpoint file {name} is truncated: {len(data)} bytes of {expected}")
    if len(data) > expected:
        raise CheckpointError(f"{what} checkpoint file {name} is corrupted: {len(data) - expected} bytes after "
                              "its end")
    start = _HEADER.size + sig_len
    signed = data[:_HEADER.size] + data[start:]
    if key is not None:
        if not sig_len:
            raise CheckpointError(f"{what} checkpoint file {name} is not signed, but {KEY_ENV} is set: refusing "
                                  "to load it")
        sig = data[_HEADER.size:start]
        if not hmac.compare_digest(sig, hmac.new(key, signed, hashlib.sha256).digest()):
            raise CheckpointError(f"{what} checkpoint file {name} has a wrong signature (another key, or the file "
                                  "was modified): refusing to load it")
    payload = data[start:]
    if xxh64(payload) != checksum:
        raise CheckpointError(f"{what} checkpoint file {name} is corrupted: XXH64 checksum mismatch")
    try:
        meta = json.loads(payload[:meta_len].decode("utf-8"))
    except ValueError as exc:
        raise CheckpointError(f"{what} checkpoint file {name} is corrupted: bad metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{what} checkpoint file {name} is corrupted: metadata is not an object")
    return meta, payload[meta_len:]


# -- storage ------------------------------------------------------------------------------------------------
class CheckpointStore:
    """A checkpoint directory: a local path (os calls, fsynced) or any fsspec URL (imported lazily)."""

    def __init__(self, url: str) -> None:
        self.url = url
        if "://" in url and not url.startswith("file://"):
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(url)
            self.local = False
            self.fs.makedirs(self.root, exist_ok=True)
        else:
            self.fs = None
            self.root = os.path.abspath(url[len("file://"):] if url.startswith("file://") else url)
            self.local = True
            os.makedirs(self.root, exist_ok=True)

    def path(self, name: str) -> str:
        return os.path.join(self.root, name) if self.local else f"{self.root.rstrip('/')}/{name}"

    def describe(self, name: str) -> str:
        return self.path(name) if self.local else f"{self.url.rstrip('/')}/{name}"

    def write_atomic(self, name: str, data: bytes) -> None:
        tmp = f".{name}.{uuid.uuid4().hex}.tmp"
        if self.local:
            tmp_path = self.path(tmp)
            # A directory removed while the stream runs is made again, as Hadoop's file systems make the
            # parents of a file they create: the next checkpoint is then complete again.
            os.makedirs(self.root, exist_ok=True)
            with open(tmp_path, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_path, self.path(name))
            dir_fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        else:
            self.fs.pipe_file(self.path(tmp), data)
            self.fs.mv(self.path(tmp), self.path(name))

    def read(self, name: str) -> bytes:
        if self.local:
            with open(self.path(name), "rb") as fh:
                return fh.read()
        return self.fs.cat_file(self.path(name))

    def list(self) -> list[str]:
        if self.local:
            try:
                return os.listdir(self.root)
            except FileNotFoundError:
                return []
        try:
            return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]
        except FileNotFoundError:
            return []

    def delete(self, name: str) -> None:
        try:
            if self.local:
                os.unlink(self.path(name))
            else:
                self.fs.rm_file(self.path(name))
        except FileNotFoundError:
            pass

    def metadata_times(self) -> list[int]:
        """Batch times of the metadata checkpoints present, newest first."""
        return sorted((int(m.group(1)) for n in self.list() if (m := _META_RE.match(n))), reverse=True)


def metadata_name(t: int) -> str:
    return f"checkpoint-{t}"


def state_name(stream: int, t: int) -> str:
    return f"state-{stream}-{t}"


# -- pickling the graph -------------------------------------------------------------------------------------
_RDD_DATA: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pickler_class() -> type:
    from pystream.pickling import Pickler

    class GraphPickler(Pickler):
        """Pickles a DStream graph; the contexts become references and a static RDD its partitions."""

        def __init__(self, file: Any, ssc: Any) -> None:
            super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
            self._ssc, self._sc = ssc, ssc.sparkContext

        def persistent_id(self, obj: Any) -> Any:
            from pystream.accumulators import Accumulator
            from pystream.rdd import RDD

            if type(obj) is Accumulator:
                # Its value is not checkpointed (as in Spark): a recovered graph gets a new accumulator from zero.
                return ("accumulator", obj.aid, obj.accum_param.zero(obj._value), obj.accum_param)
            if obj is self._ssc:
                return "ssc"
            if obj is self._sc:
                return "sc"
            if isinstance(obj, RDD):
                # An RDD a function or stream refers to (an initialRDD, a static lookup table): its data,
                # collected once per RDD rather than at every batch's checkpoint.
                data = _RDD_DATA.get(obj)
                if data is None:
                    data = _RDD_DATA[obj] = [list(p) for p in obj.glom().collect()]
                return ("rdd", data)
            return None

    return GraphPickler


class _GraphUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, ssc: Any) -> None:
        super().__init__(file)
        self._ssc = ssc
        self._accumulators: dict[int, Any] = {}

    def persistent_load(self, pid: Any) -> Any:
        if pid == "ssc":
            return self._ssc
        if pid == "sc":
            return self._ssc.sparkContext
        if isinstance(pid, tuple) and pid and pid[0] == "rdd":
            return _restored_rdd(self._ssc.sparkContext, pid[1])
        if isinstance(pid, tuple) and pid and pid[0] == "accumulator":
            acc = self._accumulators.get(pid[1])
            if acc is None:
                acc = self._accumulators[pid[1]] = self._ssc.sparkContext.accumulator(pid[2], pid[3])
            return acc
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")


def _restored_rdd(sc: Any, parts: list[list]) -> Any:
    from pystream.lineage import ParallelCollectionRDD

    rdd = ParallelCollectionRDD(sc, parts)
    rdd._persisted = True
    rdd._cached = parts
    return rdd


def dumps_graph(ssc: StreamingContext) -> bytes:
    buf = io.BytesIO()
    _pickler_class()(buf, ssc).dump(ssc._graph)
    return buf.getvalue()


def loads_graph(data: bytes, ssc: StreamingContext) -> Any:
    return _GraphUnpickler(io.BytesIO(data), ssc).load()


# -- writing ------------------------------------------------------------------------------------------------
class CheckpointWriter:
    """Writes a StreamingContext's checkpoints; the job thread calls :meth:`after_batch` after every batch."""

    def __init__(self, ssc: StreamingContext, run_id: str | None = None,
                 state_files: dict[int, list[tuple[int, str]]] | None = None) -> None:
        self.ssc = ssc
        self.store = CheckpointStore(ssc._checkpoint_dir)
        self.key = signing_key()
        self.app = ssc.sparkContext.appName
        self.run_id = run_id or uuid.uuid4().hex
        self.state_files: dict[int, list[tuple[int, str]]] = {k: list(v) for k, v in (state_files or {}).items()}
        self.last_write_s = 0.0
        for name in self.store.list():
            if name.startswith(".") and name.endswith(".tmp"):  # left by a write that was killed
                self.store.delete(name)

    def _header(self, t: int) -> dict:
        return {"app": self.app, "run_id": self.run_id, "time_ms": t}

    def after_batch(self, t: int) -> None:
        started = time.perf_counter()
        graph = self.ssc._graph
        assert graph.zero_ms is not None
        for i, stream in enumerate(graph.stateful_streams):
            ck = stream._checkpoint_ms
            if not ck or (t - graph.zero_ms) % ck != 0:
                continue
            rdd = stream._generated.get(t)
            if rdd is None:
                continue
            try:
                self.write_state(i, t, rdd)
            except StateLostError:
                # A worker died after the batch made this state and before it was written: made again first
                # (from the previous checkpoint and the batches since), as the next batch would.
                logger.warning("state of batch %d ms was lost with a worker before its checkpoint; rebuilding", t)
                rdd = stream._regenerated(t)
                if rdd is not None:
                    self.write_state(i, t, rdd)
                    rdd._truncate_lineage()
        with graph.lock:
            graph.replay_from_ms = self._replay_from(graph)
            body = dumps_graph(self.ssc)
        meta = self._header(t)
        meta.update({
            "batch_ms": graph.batch_ms,
            "zero_ms": graph.zero_ms,
            "next_ms": t + graph.batch_ms,
            "conf": self.ssc.sparkContext._conf.getAll(),
            "state": {str(i): [[st, name] for st, name in files] for i, files in self.state_files.items()},
            "written_at": time.time(),
        })
        self.store.write_atomic(metadata_name(t), encode_file(KIND_METADATA, meta, body, self.key))
        self._clean(t)
        self.last_write_s = time.perf_counter() - started

    def _replay_from(self, graph: Any) -> int | None:
        """The time after which the inputs must be able to replay batches: the oldest kept state (less the
        window of a windowed state stream), or the start while a stream has no state checkpoint yet."""
        if not graph.stateful_streams:
            return None
        since = []
        for i, stream in enumerate(graph.stateful_streams):
            files = self.state_files.get(i)
            base = min(st for st, _ in files) if files else graph.zero_ms
            since.append(base - getattr(stream, "_window_ms", 0))
        return min(since)

    def write_state(self, stream: int, t: int, rdd: Any) -> None:
        from pystream import pickling

        parts = [list(p) for p in rdd.glom().collect()]
        body = pickling.dumps(parts)
        meta = self._header(t)
        meta.update({"stream": stream, "partitions": len(parts)})
        name = state_name(stream, t)
        self.store.write_atomic(name, encode_file(KIND_STATE, meta, body, self.key))
        files = self.state_files.setdefault(stream, [])
        files[:] = [f for f in files if f[0] != t] + [(t, name)]
        del files[:-KEEP_STATE]

    def _clean(self, t: int) -> None:
        times = self.store.metadata_times()
        for old in times[KEEP_METADATA:]:
            self.store.delete(metadata_name(old))
        # Keep every state file a kept metadata checkpoint may name: those after the oldest kept checkpoint,
        # and the last KEEP_STATE at or before it (what it named when it was written).
        oldest = min(times[:KEEP_METADATA], default=None)
        by_stream: dict[int, list[tuple[int, str]]] = {}
        for name in self.store.list():
            if m := _STATE_RE.match(name):
                by_stream.setdefault(int(m.group(1)), []).append((int(m.group(2)), name))
        keep = {name for files in self.state_files.values() for _, name in files}
        for files in by_stream.values():
            files.sort()
            if oldest is not None:
                keep.update(name for st, name in files if st > oldest)
                keep.update(name for st, name in [f for f in files if f[0] <= oldest][-KEEP_STATE:])
            for _, name in files:
                if name not in keep:
                    self.store.delete(name)
        wal = getattr(self.ssc, "_wal", None)
        if wal is not None:
            # The receivers' logs keep every batch a recovery from a kept checkpoint may run again: those after
            # the oldest kept checkpoint and after the oldest kept state (less its window).
            horizon = min(t, oldest if oldest is not None else t)
            replay_from = self.ssc._graph.replay_from_ms
            if replay_from is not None:
                horizon = min(horizon, replay_from)
            wal.clean(horizon)


    def load_state(self, stream: int, at_or_before: int) -> tuple[int, list[list]] | None:
        """The newest state of stateful stream ``stream`` written at or before ``at_or_before`` ms that the
        sources can still replay from, as (time, partitions); None when there is none. Damaged files are
        skipped (and logged), never used."""
        graph = self.ssc._graph
        for st, name in sorted(self.state_files.get(stream, []), reverse=True):
            if st > at_or_before or not _replayable(graph, st):
                continue
            where = self.store.describe(name)
            try:
                meta, body = decode_file(where, self.store.read(name), KIND_STATE, self.key)
                if meta.get("run_id") != self.run_id or meta.get("stream") != stream:
                    raise CheckpointError(f"state checkpoint file {where} belongs to another stream or run")
                return st, pickle.loads(body)
            except (CheckpointError, FileNotFoundError, pickle.UnpicklingError) as exc:
                logger.warning("cannot rebuild state from %s: %s", where, exc)
        return None


# -- recovery -----------------------------------------------------------------------------------------------
def recover(path: str, setupFunc: Callable[[], Any] | None = None) -> StreamingContext | None:
    """Rebuild a StreamingContext from the newest valid checkpoint in ``path``; None when there is none.

    A checkpoint that cannot be used (truncated, corrupted, wrongly signed, another version or application, or
    state that cannot be replayed) is recorded and the previous one is tried; when checkpoints exist but none is
    usable, the first CheckpointError is raised rather than starting from nothing.
    """
    store = CheckpointStore(path)
    key = signing_key()
    times = store.metadata_times()
    errors: list[CheckpointError] = []
    for t in times:
        try:
            ssc = _recover_from(store, t, key, errors)
        except CheckpointError as exc:
            logger.warning("cannot recover from checkpoint %s: %s", store.describe(metadata_name(t)), exc)
            errors.append(exc)
            continue
        ssc._checkpoint_errors = errors
        for err in errors:
            logger.warning("skipped an unusable checkpoint: %s", err)
        return ssc
    if errors:
        raise errors[0]
    return None


def _active_app() -> str | None:
    from pystream.context import SparkContext

    active = SparkContext._active_spark_context
    return None if active is None else active.appName


def _recover_from(store: CheckpointStore, t: int, key: bytes | None, errors: list[CheckpointError]
                  ) -> StreamingContext:
    from pystream.context import SparkConf, SparkContext
    from pystream.streaming.context import StreamingContext

    name = metadata_name(t)
    where = store.describe(name)
    try:
        data = store.read(name)
    except FileNotFoundError:
        raise CheckpointError(f"metadata checkpoint file {where} disappeared while recovering") from None
    meta, body = decode_file(where, data, KIND_METADATA, key)
    try:
        app, run_id = meta["app"], meta["run_id"]
        batch_ms, zero_ms, next_ms = int(meta["batch_ms"]), int(meta["zero_ms"]), int(meta["next_ms"])
        conf_pairs = meta["conf"]
        state_meta = {int(k): [(int(st), str(n)) for st, n in v] for k, v in meta["state"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"metadata checkpoint file {where} is corrupted: missing field ({exc})") from None
    active_app = _active_app()
    if active_app is not None and active_app != app:
        raise CheckpointError(f"metadata checkpoint file {where} was written by application {app!r}, not by "
                              f"the running application {active_app!r}")
    # Read and check every state file before unpickling anything.
    candidates: dict[int, list[tuple[int, str, list]]] = {}
    for stream, files in state_meta.items():
        good = []
        for st, sname in sorted(files, reverse=True):
            swhere = store.describe(sname)
            try:
                sdata = store.read(sname)
            except FileNotFoundError:
                errors.append(CheckpointError(f"state checkpoint file {swhere} (named by {where}) is missing"))
                continue
            try:
                smeta, sbody = decode_file(swhere, sdata, KIND_STATE, key)
                if smeta.get("app") != app or smeta.get("run_id") != run_id:
                    raise CheckpointError(f"state checkpoint file {swhere} belongs to another application "
                                          f"({smeta.get('app')!r}, run {smeta.get('run_id')}), not to {where}")
                if smeta.get("time_ms") != st or smeta.get("stream") != stream:
                    raise CheckpointError(f"state checkpoint file {swhere} holds stream {smeta.get('stream')} at "
                                          f"{smeta.get('time_ms')} ms, not stream {stream} at {st} ms")
            except CheckpointError as exc:
                errors.append(exc)
                continue
            good.append((st, sname, [sbody]))
        candidates[stream] = good

    conf = SparkConf(loadDefaults=False)
    conf.setAll(conf_pairs)
    sc = SparkContext.getOrCreate(conf)
    ssc = StreamingContext(sc, batch_ms / 1000.0)
    ssc._checkpoint_dir = store.url
    sc.setCheckpointDir(store.url)
    try:
        graph = loads_graph(body, ssc)
    except Exception as exc:
        raise CheckpointError(f"metadata checkpoint file {where} could not be loaded: {type(exc).__name__}: "
                              f"{exc}") from exc
    if graph.batch_ms != batch_ms or graph.zero_ms != zero_ms:
        raise CheckpointError(f"metadata checkpoint file {where} is inconsistent: graph and header disagree")
    for inp in graph.input_streams:
        why = inp._unrecoverable()
        if why is not None:
            raise CheckpointError(f"metadata checkpoint file {where} cannot be recovered: {why}")
    ssc._graph = graph
    from pystream.streaming.wal import load_receiver_logs, materialize_receiver_logs

    load_receiver_logs(ssc)  # the receivers' write-ahead logs (CheckpointError naming a damaged file)
    need_after = t  # the oldest batch the recovered context may compute again is after this one
    # Restore each stateful stream at the newest state whose later batches the sources can replay.
    kept: dict[int, list[tuple[int, str]]] = {}
    for i, stream in enumerate(graph.stateful_streams):
        options = candidates.get(i, [])
        chosen = None
        for st, sname, holder in options:
            gaps = _replay_gaps(graph, st - getattr(stream, "_window_ms", 0))
            if gaps:
                errors.append(CheckpointError(
                    f"state checkpoint file {store.describe(sname)} is too old: the sources no longer know the "
                    f"data of the batches after {st} ms ({'; '.join(gaps)})"))
                continue
            try:
                parts = pickle.loads(holder[0])
            except Exception as exc:
                errors.append(CheckpointError(f"state checkpoint file {store.describe(sname)} could not be "
                                              f"loaded: {type(exc).__name__}: {exc}"))
                continue
            if len(parts) != getattr(stream, "_n", len(parts)):
                errors.append(CheckpointError(f"state checkpoint file {store.describe(sname)} has {len(parts)} "
                                              f"partitions, the stream has {stream._n}"))
                continue
            chosen = (st, sname, parts)
            break
        if chosen is None:
            gaps = _replay_gaps(graph, zero_ms - getattr(stream, "_window_ms", 0))
            if state_meta.get(i) or gaps:
                raise CheckpointError(f"metadata checkpoint file {where}: no usable state checkpoint for stateful "
                                      f"stream {i} ({type(stream).__name__})"
                                      + (f", and the batches since the start cannot be replayed: {'; '.join(gaps)}"
                                         if gaps else ""))
            need_after = min(need_after, zero_ms - getattr(stream, "_window_ms", 0))
            continue  # no state written yet: the sources replay every batch since the start
        st, sname, parts = chosen
        need_after = min(need_after, st - getattr(stream, "_window_ms", 0))
        stream._generated[st] = _restored_rdd(sc, parts)
        kept[i] = [(x, n) for x, n in state_meta.get(i, []) if x <= st]
    materialize_receiver_logs(ssc, need_after, t)
    ssc._recovery = {"time_ms": t, "next_ms": next_ms, "run_id": run_id, "state_files": kept,
                     "checkpoint": where}
    return ssc


def _replayable(graph: Any, since_ms: int) -> bool:
    """Whether every input can give again the data of each batch after ``since_ms``."""
    return not _replay_gaps(graph, since_ms)


def _replay_gaps(graph: Any, since_ms: int) -> list[str]:
    """Why inputs cannot give again the data of some batch after ``since_ms``, one reason each (none: they can)."""
    return [g for g in (inp._replay_gap(since_ms) for inp in graph.input_streams) if g]
