"""SparkConf and SparkContext: a light local context with pyspark's names.

``SparkContext(master="local[N]")`` sets the default parallelism to N (``local[*]``: the cores this process may
run on, as its CPU affinity and its container's CPU quota allow) and owns the executor that runs every task of
every RDD it creates.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pystream import files, jobs, profiler, taskcontext
from pystream.accumulators import Accumulator, AccumulatorParam, new_accumulator
from pystream.broadcast import Broadcast
from pystream.cores import usable_cores
from pystream.errors import IllegalArgumentError, IllegalStateError
from pystream.file_inputs import FileInputs

logger = logging.getLogger(__name__)

_MASTER_RE = re.compile(r"^local(?:\[(\*|\d+)(?:,\s*\d+)?\])?$")

#: SparkConf key choosing the executor: "inprocess" (every task in the driver) or "process" (worker pool).
EXECUTOR_KEY = "spark.pystream.executor"
#: Partitions of parallelize and of the shuffles that are given no count (Spark's key); default: the cores.
DEFAULT_PARALLELISM_KEY = "spark.default.parallelism"
EXECUTOR_ENV = "spark.executorEnv."


_TIME_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_TIME_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


def _time_ms(key: str, text: str) -> int:
    m = _TIME_RE.fullmatch(str(text).lower())
    if m is None or m.group(2) not in ("", *_TIME_UNITS_MS):
        raise IllegalArgumentError(
            f"{key} must be a duration such as 500ms, 30s or 2min (a plain number is milliseconds), got {text!r}")
    return int(float(m.group(1)) * _TIME_UNITS_MS.get(m.group(2), 1))


# SparkContext.setSystemProperty's properties: the defaults a SparkConf(loadDefaults=True) starts from, as the
# JVM's system properties are Spark's.
_system_properties: dict[str, str] = {}


class SparkConf:
    """Configuration as string key/value pairs, with pyspark's chaining setters. With ``loadDefaults``, it
    starts from the ``spark.*`` properties of SparkContext.setSystemProperty, then the environment's
    ``PYSTREAM_CONF_<KEY>`` variables (``PYSTREAM_CONF_SPARK_APP_NAME`` for ``spark.app.name``)."""

    def __init__(self, loadDefaults: bool = True, _settings: dict[str, str] | None = None) -> None:
        self._settings: dict[str, str] = dict(_settings or {})
        if loadDefaults:
            for key, value in list(_system_properties.items()):
                if key.startswith("spark."):
                    self._settings.setdefault(key, value)
            for key, value in os.environ.items():
                if key.startswith("PYSTREAM_CONF_"):
                    self._settings.setdefault(key[len("PYSTREAM_CONF_"):].lower().replace("_", "."), value)

    def set(self, key: str, value: Any) -> SparkConf:
        """Set a configuration property; returns this SparkConf."""
        self._settings[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return self

    def setIfMissing(self, key: str, value: Any) -> SparkConf:
        """Set a property only if it is not already set; returns this SparkConf."""
        if key not in self._settings:
            self.set(key, value)
        return self

    def setMaster(self, value: str) -> SparkConf:
        """Set the master URL (``local``, ``local[N]``, ``local[*]``); returns this SparkConf."""
        return self.set("spark.master", value)

    def setAppName(self, value: str) -> SparkConf:
        """Set the application name; returns this SparkConf."""
        return self.set("spark.app.name", value)

    def setAll(self, pairs: Iterable[tuple[str, Any]]) -> SparkConf:
        """Set several properties from (key, value) pairs; returns this SparkConf."""
        for key, value in pairs:
            self.set(key, value)
        return self

    def get(self, key: str, defaultValue: str | None = None) -> str | None:
        """Return the value of ``key``, or ``defaultValue`` when it is not set."""
        value = self._lookup(key)
        return defaultValue if value is None else value

    def _lookup(self, key: str) -> str | None:
        value = self._settings.get(key)
        if value is None:
            # Keys set from PYSTREAM_CONF_* environment variables arrive lower-cased; Spark's keys never differ
            # only by case, so a case-insensitive match is unambiguous.
            lowered = key.lower()
            for k, v in self._settings.items():
                if k.lower() == lowered:
                    return v
        return value

    def getInt(self, key: str, default: int) -> int:
        value = self._lookup(key)
        return default if value is None else int(value)

    def getFloat(self, key: str, default: float) -> float:
        value = self._lookup(key)
        return default if value is None else float(value)

    def getBoolean(self, key: str, default: bool) -> bool:
        value = self._lookup(key)
        return default if value is None else value.strip().lower() in ("true", "1", "yes")

    def getTimeAsMs(self, key: str, default: str) -> int:
        """Return a duration property in milliseconds, as Spark's ``SparkConf.getTimeAsMs``: a plain number is
        milliseconds, or a number with a unit (``ms``, ``s``, ``m``/``min``, ``h``, ``d``, e.g. ``"30s"``).
        Raises IllegalArgumentError for any other value."""
        value = self._lookup(key)
        return _time_ms(key, default if value is None else value)

    def getAll(self) -> list[tuple[str, str]]:
        """Return every property as a list of (key, value) pairs."""
        return list(self._settings.items())

    def contains(self, key: str) -> bool:
        """Return whether ``key`` is set."""
        return key in self._settings

    def toDebugString(self) -> str:
        """Return the properties one ``key=value`` per line."""
        return "\n".join(f"{k}={v}" for k, v in sorted(self._settings.items()))

    def copy(self) -> SparkConf:
        return SparkConf(loadDefaults=False, _settings=self._settings)


def parse_master(master: str) -> int:
    """Return the parallelism a master URL asks for; ValueError for URLs this local context cannot run."""
    m = _MASTER_RE.match(master.strip())
    if not m:
        raise ValueError(f"Could not parse Master URL: '{master}' (pystream runs local, local[N] and local[*])")
    n = m.group(1)
    if n is None:
        return 1
    if n == "*":
        # The cores this process may use, not the machine's: under taskset, a container's cpuset or its CPU quota,
        # a worker per machine core would leave several on each usable one.
        return usable_cores()
    if int(n) < 1:
        raise ValueError(f"Asked to run locally with {n} threads")
    return int(n)


class SparkContext(jobs.JobControl, FileInputs):
    """The entry point for creating RDDs: a light local context.

    ``SparkContext(master="local[N]", appName=..., conf=None)``. Only one SparkContext may be active at a time,
    as in pyspark; :meth:`getOrCreate` returns the active one.
    """

    _lock = threading.RLock()
    _active_spark_context: SparkContext | None = None

    def __init__(self, master: str | None = None, appName: str | None = None, conf: SparkConf | None = None,
                 *, pyFiles: Iterable[str] | None = None, environment: dict[str, str] | None = None,
                 **_ignored: Any) -> None:
        self._conf = conf.copy() if conf is not None else SparkConf()
        if master is not None:
            self._conf.setMaster(master)
        if appName is not None:
            self._conf.setAppName(appName)
        self._conf.setIfMissing("spark.master", "local[*]")
        self._conf.setIfMissing("spark.app.name", "pystream")
        self.master: str = self._conf.get("spark.master") or "local[*]"
        self.appName: str = self._conf.get("spark.app.name") or "pystream"
        self._parallelism = parse_master(self.master)
        self._default_parallelism = self._parallelism
        # Whether shuffles given no count use it (as pyspark's), rather than their parent's partition count.
        self._parallelism_set = self._conf.get(DEFAULT_PARALLELISM_KEY) is not None
        if self._parallelism_set:
            raw = self._conf.get(DEFAULT_PARALLELISM_KEY)
            try:
                self._default_parallelism = int(raw)
            except (TypeError, ValueError):
                self._default_parallelism = 0
            if self._default_parallelism < 1:
                raise IllegalArgumentError(f"{DEFAULT_PARALLELISM_KEY} must be a positive integer, got {raw!r}")
        self._checkpoint_dir: str | None = None
        self._stopped = False
        self._executor = None
        self.startTime = int(time.time() * 1000)  # ms since the epoch, as Spark's
        self.applicationId = f"local-{self.startTime}"
        self._files_root: str | None = None
        self._added_files: dict[str, str] = {}  # name -> the path it was added from
        self._archives: list[str] = []  # names of the added files that are archives, unpacked
        self._python_paths: list[str] = []
        # Environment variables of every task, as pyspark's executor environment: SparkContext(environment=...)
        # over the conf's spark.executorEnv.NAME entries.
        self.environment: dict[str, str] = {
            k[len(EXECUTOR_ENV):]: v for k, v in self._conf.getAll() if k.startswith(EXECUTOR_ENV)}
        self.environment.update({str(k): str(v) for k, v in (environment or {}).items()})
        self._jobs = jobs.JobTracker(self._wake_executor)
        self._ui = None  # the status API (pystream/ui.py), with spark.ui.enabled
        self._profiles = profiler.Profiles() if self._conf.getBoolean(profiler.PROFILE_KEY, False) else None
        with SparkContext._lock:
            active = SparkContext._active_spark_context
            if active is not None:
                raise ValueError(
                    "Cannot run multiple SparkContexts at once; existing "
                    f"SparkContext(app={active.appName}, master={active.master})")
            SparkContext._active_spark_context = self
        try:
            self._executor = self._make_executor()
            if self._conf.getBoolean("spark.ui.enabled", False):
                from pystream.ui import StatusServer

                self._ui = StatusServer(self)
            if self.environment:
                self._share_files()
            # As pyspark: the pyFiles argument, then the conf's spark.submit.pyFiles (comma-separated).
            submitted = [p for p in (self._conf.get("spark.submit.pyFiles") or "").split(",") if p]
            for path in [*(pyFiles or ()), *submitted]:
                self.addPyFile(path)
        except BaseException:
            self.stop()
            raise

    def _make_executor(self):
        kind = (self._conf.get(EXECUTOR_KEY) or "process").lower()
        if kind == "inprocess":
            from pystream.executor.inprocess import InProcessExecutor

            return InProcessExecutor(self._parallelism)
        if kind == "process":
            from pystream.executor.process import ProcessExecutor

            return ProcessExecutor(self._parallelism, conf=self._conf)
        raise ValueError(f"{EXECUTOR_KEY} must be 'inprocess' or 'process', got {kind!r}")

    @classmethod
    def getOrCreate(cls, conf: SparkConf | None = None) -> SparkContext:
        """Return the active SparkContext, creating one from ``conf`` when there is none."""
        with cls._lock:
            if cls._active_spark_context is None:
                cls(conf=conf)
            assert cls._active_spark_context is not None
            return cls._active_spark_context

    # -- properties ---------------------------------------------------------------------------------------
    @property
    def defaultParallelism(self) -> int:
        """Default number of partitions: ``spark.default.parallelism`` when set, else N for ``local[N]`` and the
        usable cores for ``local[*]`` (the workers' count, whatever this is)."""
        return self._default_parallelism

    @property
    def defaultMinPartitions(self) -> int:
        return min(self._parallelism, 2)

    @property
    def executor(self):
        """The executor that runs this context's tasks."""
        self._check_alive()
        return self._executor

    def getConf(self) -> SparkConf:
        """Return a copy of this context's configuration."""
        return self._conf.copy()

    @property
    def version(self) -> str:
        from pystream import __version__

        return __version__

    @property
    def uiWebUrl(self) -> str | None:
        """The address of the status REST API (``<url>/api/v1/...``, see pystream/ui.py) when
        ``spark.ui.enabled`` is true, else None."""
        return None if self._ui is None else self._ui.url

    def sparkUser(self) -> str:
        """Return the name of the user running this driver."""
        return getpass.getuser()

    def setLocalProperty(self, key: str, value: str | None) -> None:
        """Set a property of the jobs this thread starts (None removes it), as Spark's local properties: their
        tasks read it with ``TaskContext.get().getLocalProperty(key)``."""
        props = taskcontext.local_properties()
        if value is None:
            props.pop(key, None)
        else:
            props[key] = str(value)

    def getLocalProperty(self, key: str) -> str | None:
        """Return a property set with setLocalProperty in this thread, or None."""
        return taskcontext.local_properties().get(key)

    def setJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> None:
        """Name the jobs this thread starts (the local properties Spark uses for it)."""
        self.setLocalProperty("spark.jobGroup.id", groupId)
        self.setLocalProperty("spark.job.description", description)
        self.setLocalProperty("spark.job.interruptOnCancel", str(interruptOnCancel).lower())

    def setJobDescription(self, value: str) -> None:
        """Describe the jobs this thread starts."""
        self.setLocalProperty("spark.job.description", value)

    def show_profiles(self) -> None:
        """Print the cProfile stats of every RDD's tasks so far (spark.python.profile, see pystream.profiler)."""
        self._need_profiles().show()

    def dump_profiles(self, path: str) -> None:
        """Write each RDD's stats so far to ``path``/rdd_<id>.pstats (spark.python.profile)."""
        self._need_profiles().dump(path)

    def _need_profiles(self) -> profiler.Profiles:
        if self._profiles is None:
            raise RuntimeError("'spark.python.profile' configuration must be set to 'true' to enable Python profile.")
        return self._profiles

    def setLogLevel(self, logLevel: str) -> None:
        """Set the level of pystream's loggers (ALL, DEBUG, INFO, WARN, ERROR, FATAL, OFF)."""
        levels = {"ALL": logging.NOTSET, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
                  "WARNING": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL,
                  "OFF": logging.CRITICAL + 10, "TRACE": logging.DEBUG}
        try:
            level = levels[logLevel.upper()]
        except KeyError:
            raise ValueError(f"Supplied level {logLevel} did not match one of: {', '.join(levels)}") from None
        logging.getLogger("pystream").setLevel(level)

    def setCheckpointDir(self, dirName: str) -> None:
        """Set the directory under which RDD and streaming checkpoints are written."""
        self._checkpoint_dir = dirName

    def getCheckpointDir(self) -> str | None:
        return self._checkpoint_dir

    # -- RDD creation -------------------------------------------------------------------------------------
    def parallelize(self, c: Iterable[Any], numSlices: int | None = None):
        """Distribute a local collection into an RDD of ``numSlices`` partitions (default: defaultParallelism).

        Elements keep their order, in contiguous slices laid out as pyspark lays them out (batches of up to
        1024 records shared between the partitions: 10 records in 4 partitions hold 2, 2, 2 and 4). The
        collection is taken as it is now: records that can change (lists, dicts, objects) are copied, as
        pyspark pickles them here, so later changes to them do not reach the RDD.
        """
        from pystream._core.serialisation import immutable_records, private_copy
        from pystream.lineage import ParallelCollectionRDD
        from pystream.rdd import partition_count

        self._check_alive()
        n = partition_count(numSlices, self.defaultParallelism, "numSlices")
        if isinstance(c, range) and len(c) > _EAGER_RANGE:
            # As pyspark: each task makes its own slice of the range, which is never a list in the driver
            # (sc.range(10**12).take(3) is three ints).
            return ParallelCollectionRDD(self, [[] for _ in range(n)]).mapPartitionsWithIndex(_RangeSlice(c, n))
        data = c if isinstance(c, list) else list(c)
        size = len(data)
        if isinstance(c, range):
            ends = [(i * size) // n for i in range(n + 1)]  # as its tasks would slice it (_RangeSlice)
        else:
            # pyspark's layout: the records go in batches of min(len // n, 1024) (at least 1), and partition i
            # takes batches [i * B // n, (i + 1) * B // n) of the B batches: 10 records in 4 make 2, 2, 2, 4.
            batch = max(1, min(size // n, 1024))
            batches = -(-size // batch)
            ends = [min(size, (i * batches // n) * batch) for i in range(n + 1)]
        parts = [data[ends[i]:ends[i + 1]] for i in range(n)]
        if not immutable_records(data):
            # pyspark pickles the collection here: what the caller changes in its objects afterwards does not
            # reach the RDD. Records nothing can change (str, numbers, tuples of them) are kept by reference.
            parts = [private_copy(p) for p in parts]
        return ParallelCollectionRDD(self, parts)

    def emptyRDD(self):
        """Return an RDD with no partitions and no elements."""
        from pystream.lineage import ParallelCollectionRDD

        self._check_alive()
        return ParallelCollectionRDD(self, [])

    def range(self, start: int, end: int | None = None, step: int = 1, numSlices: int | None = None):
        """Return an RDD of the ints ``range(start, end, step)`` (``range(0, start)`` with one argument)."""
        if end is None:
            start, end = 0, start
        return self.parallelize(range(start, end, step), numSlices)

    def runJob(self, rdd: Any, partitionFunc: Callable[[Iterator[Any]], Iterable[Any]],
               partitions: Sequence[int] | None = None, allowLocal: bool = False) -> list[Any]:
        """Run ``partitionFunc(iterator)`` on the given partitions of ``rdd`` (all by default) as one job; return
        what it yields, partition after partition in the order given. An index outside the RDD's partitions
        raises IllegalArgumentError. ``allowLocal`` is accepted and ignored, as in Spark 2+."""
        n = rdd.getNumPartitions()
        wanted = list(range(n)) if partitions is None else [int(p) for p in partitions]
        for p in wanted:
            if not 0 <= p < n:
                raise IllegalArgumentError(
                    f"Attempting to access a non-existent partition: {p}. Total number of partitions: {n}")
        if not wanted:
            return []
        chosen = set(wanted)

        def run(split: int, it: Iterator[Any]) -> list[Any] | None:
            return list(partitionFunc(it)) if split in chosen else None

        first = min(wanted)
        results = rdd._run(run, range(first, max(wanted) + 1))
        return [x for p in wanted for x in results[p - first]]

    def addFile(self, path: str, recursive: bool = False) -> None:
        """Copy a file (or, with ``recursive``, a directory) for every task: ``SparkFiles.get(name)`` gives the
        path of the copy, in the driver and in tasks. Adding the same path again does nothing; another path of
        the same name is an error."""
        self._add_file(path, recursive)

    def _add_file(self, path: str, recursive: bool, archive: bool = False) -> str:
        """addFile (or addArchive); return the path of the copy."""
        self._check_alive()
        src = os.path.abspath(path[len("file://"):] if path.startswith("file://") else path)
        if "://" in path and not path.startswith("file://"):
            raise IllegalArgumentError(f"addFile takes a local path, not {path!r}")
        name = os.path.basename(src.rstrip(os.sep))
        if os.path.isdir(src) and not recursive:
            raise IllegalArgumentError(f"Added file {src} is a directory and recursive is not turned on.")
        if not os.path.exists(src):
            raise FileNotFoundError(f"File {src} does not exist")
        known = self._added_files.get(name)
        if known is not None:
            if known != src:
                raise IllegalArgumentError(f"File {name} was already registered with a different path "
                                           f"(old path = {known}, new path = {src})")
            assert self._files_root is not None
            return os.path.join(self._files_root, name)
        if self._files_root is None:
            from pystream.executor import tempdir

            self._files_root = tempfile.mkdtemp(prefix="files-", dir=tempdir.of_this_driver())
        dest = os.path.join(self._files_root, name)
        if archive:
            files.unpack_archive(src, dest)
            self._archives.append(name)
        elif os.path.isdir(src):
            shutil.copytree(src, dest)
        else:
            shutil.copy2(src, dest)
        self._added_files[name] = src
        self._share_files()
        return dest

    @classmethod
    def setSystemProperty(cls, key: str, value: str) -> None:
        """Set a property every SparkConf made with loadDefaults starts from (``spark.*`` keys), as pyspark sets
        a Java system property: call it before making the SparkContext it is for."""
        _system_properties[str(key)] = str(value)

    @property
    def resources(self) -> dict[str, Any]:
        """The resources (GPUs, ...) given to the driver: none in local mode."""
        return {}

    @property
    def listFiles(self) -> list[str]:
        """The files added with addFile and addPyFile, as file: URIs of their sources."""
        return [f"file:{src}" for name, src in self._added_files.items() if name not in self._archives]

    @property
    def listArchives(self) -> list[str]:
        """The archives added with addArchive, as file: URIs of their sources."""
        return [f"file:{self._added_files[name]}" for name in self._archives]

    def addArchive(self, path: str) -> None:
        """Unpack an archive (.zip, .jar, .tar, .tar.gz, .tgz) for every task: ``SparkFiles.get(name)`` is the
        directory of its contents, ``name`` being the archive's file name. Members that would land outside that
        directory (absolute paths, ``..``, links out of it) are refused."""
        self._add_file(path, recursive=False, archive=True)

    def addPyFile(self, path: str) -> None:
        """Add a .py module, or a .zip, .egg or .whl archive of modules, for every task to import (addFile, and
        its copy, or the directory of a .py file's copy, first on sys.path of the driver and the workers)."""
        copy = self._add_file(path, recursive=False)
        entry = os.path.dirname(copy) if copy.endswith(".py") else copy
        if entry not in self._python_paths:
            self._python_paths.append(entry)
            self._share_files()

    def _share_files(self) -> None:
        files.install(self._files_root, self._python_paths)
        self._executor.share_files(self._files_root, list(self._python_paths), dict(self.environment))

    def union(self, rdds):
        """Return the union of a list of RDDs: the partitions of each, in order; or, when they all have the same
        partitioner, partition i of each together (that partitioner kept), as Spark's."""
        from pystream.lineage import union

        self._check_alive()
        rdds = list(rdds)
        if not rdds:
            raise ValueError("union needs at least one RDD")
        return union(self, rdds)

    def accumulator(self, value: Any, accum_param: AccumulatorParam | None = None) -> Accumulator:
        """Return an Accumulator starting at ``value``, added to with ``accum_param`` (an AccumulatorParam; by
        default ``+`` for an int, float or complex value, and TypeError for any other). Tasks add to it; only
        the driver reads its ``value`` (see pystream.accumulators)."""
        self._check_alive()
        return new_accumulator(value, accum_param)

    def broadcast(self, value: Any) -> Broadcast:
        """Return a Broadcast of ``value``: tasks read it as ``b.value``, and each worker gets it once (see
        pystream.broadcast)."""
        self._check_alive()
        return Broadcast(value)

    # -- lifecycle ----------------------------------------------------------------------------------------
    def _check_alive(self) -> None:
        if self._stopped:
            raise IllegalStateError("Cannot call methods on a stopped SparkContext.")

    def stop(self) -> None:
        """Stop the context and its executor (idempotent)."""
        with SparkContext._lock:
            if self._stopped:
                return
            self._stopped = True
            if SparkContext._active_spark_context is self:
                SparkContext._active_spark_context = None
        if self._ui is not None:
            self._ui.stop()
        if self._profiles is not None and self._conf.get(profiler.DUMP_KEY):
            self._profiles.dump(self._conf.get(profiler.DUMP_KEY) or "")
        if self._executor is not None:
            self._executor.stop()
        if self._files_root is not None:
            files.uninstall(self._python_paths)
            shutil.rmtree(self._files_root, ignore_errors=True)

    def __reduce__(self):
        raise IllegalStateError(
            "It appears that you are attempting to reference SparkContext from a broadcast variable, action, or "
            "transformation. SparkContext can only be used on the driver, not in code that runs on workers.")

    def __enter__(self) -> SparkContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SparkContext master={self.master} appName={self.appName}>"


#: Ranges up to this long are sliced in the driver, as lists are (their tasks then carry them as frames).
_EAGER_RANGE = 100_000


class _RangeSlice:
    """Partition i of parallelize(range) of n partitions: the i-th contiguous slice, made in the task."""

    __slots__ = ("start", "step", "size", "n")

    def __init__(self, r: range, n: int) -> None:
        self.start, self.step, self.size, self.n = r.start, r.step, len(r), n

    def __call__(self, split: int, _: Iterator[Any]) -> range:
        lo, hi = (split * self.size) // self.n, ((split + 1) * self.size) // self.n
        return range(self.start + lo * self.step, self.start + hi * self.step, self.step)

