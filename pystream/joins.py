"""Joins and cogroup: hash-partition every side alike, then combine partition by partition.

A join whose other side is small and already kept in memory (a lookup table, like the ad-to-campaign map of
the Yahoo streaming benchmark) skips the shuffle instead: that side's records go with the task to every
partition of this side, and the join runs inside this side's pipeline (a broadcast hash join).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pystream.broadcast import Broadcast
from pystream.lineage import PipelinedRDD, ZippedPartitionsRDD
from pystream.rdd import RDD, ResultIterable

#: A kept right side of an inner or left outer join with at most this many records is broadcast.
BROADCAST_MAX_RECORDS = 100_000


def join(left: RDD, right: RDD, numPartitions: int | None, kind: str) -> RDD:
    """``kind`` ("inner", "left", "right", "full") join of two pair RDDs: a hash join per partition (the right
    side's values by key in a dict, the left side streamed past it), broadcast when the right side is small
    and kept (and no partition count was asked for)."""
    if numPartitions is None and kind in ("inner", "left") and _small_and_kept(right):
        return _BroadcastJoinRDD(left, right, kind)
    parts = copartitioned([left, right], numPartitions)
    return ZippedPartitionsRDD(left.ctx, parts, _JoinPartition(kind), preserves_partitioning=True)


def _small_and_kept(rdd: RDD) -> bool:
    parts = rdd._cached
    return parts is not None and not rdd._lost and sum(len(p) for p in parts) <= BROADCAST_MAX_RECORDS


class _BroadcastJoinRDD(PipelinedRDD):
    """This side's partitions joined against the right side's records, which are read when this RDD is
    computed (not when it is made) and sent to each worker once, as a Broadcast: a stream that joins every
    batch against the same kept RDD collects it and pickles it once, not once per batch."""

    def __init__(self, left: RDD, right: RDD, kind: str) -> None:
        super().__init__(left, _BroadcastJoin(None, kind), True)  # the function is replaced when computed
        self._right: RDD | None = right
        self._kind = kind

    def _pipeline(self):  # type: ignore[no-untyped-def]
        self._load_right()
        return super()._pipeline()

    def _do_compute(self) -> list[list]:
        self._load_right()
        return super()._do_compute()

    def _load_right(self) -> None:
        if self._right is not None:
            self._func = _BroadcastJoin(_table_of(self._right), self._kind)
            self._right = None


def _table_of(right: RDD) -> Broadcast:
    """The kept RDD's values by key, as a Broadcast made once for the partitions it keeps now."""
    made = getattr(right, "_join_table", None)
    if made is not None and made[0] is right._cached:
        return made[1]
    by_key: dict[Any, list] = {}
    for k, w in right.collect():
        ws = by_key.get(k)
        if ws is None:
            by_key[k] = [w]
        else:
            ws.append(w)
    table = right.ctx.broadcast(by_key)
    right._join_table = (right._cached, table)  # type: ignore[attr-defined]
    return table


class _BroadcastJoin:
    __slots__ = ("table", "keep_left")

    def __init__(self, table: Broadcast | None, kind: str) -> None:
        self.table = table
        self.keep_left = kind == "left"

    def __call__(self, split: int, it: Iterator[Any]) -> Iterator[Any]:
        get = self.table.value.get  # type: ignore[union-attr]
        keep_left = self.keep_left
        for k, v in it:
            ws = get(k)
            if ws is not None:
                for w in ws:
                    yield (k, (v, w))
            elif keep_left:
                yield (k, (v, None))


def copartitioned(rdds: list[RDD], numPartitions: int | None) -> list[RDD]:
    """``rdds`` hash-partitioned alike. Without a partition count: the partitioner one of them already has, as
    Spark's defaultPartitioner (the one with most partitions, unless an input has 10 times more), so that side
    is not shuffled again (partitionBy returns it as it is); else pyspark's count for the union of them all
    that its joins group (spark.default.parallelism, or their partitions added up)."""
    most = max(r.getNumPartitions() for r in rdds)
    if numPartitions is None:
        known = [r.partitioner for r in rdds if r.partitioner is not None]
        if known:
            chosen = max(known, key=lambda p: p.numPartitions)
            if most < 10 * chosen.numPartitions:
                return [r.partitionBy(chosen.numPartitions, chosen.partitionFunc) for r in rdds]
        ctx = rdds[0].ctx
        if ctx._parallelism_set:
            numPartitions = ctx.defaultParallelism
        else:
            numPartitions = max(1, sum(r.getNumPartitions() for r in rdds))
    return [r.partitionBy(numPartitions) for r in rdds]


def cogroup(rdds: list[RDD], numPartitions: int | None) -> RDD:
    """(k, (values of rdds[0], values of rdds[1], ...)): every side hash-partitioned alike, then grouped
    partition by partition (no per-record combiner calls)."""
    parts = copartitioned(rdds, numPartitions)
    return ZippedPartitionsRDD(rdds[0].ctx, parts, _CogroupPartition(len(rdds)), preserves_partitioning=True)


class _CogroupPartition:
    __slots__ = ("sides",)

    def __init__(self, sides: int) -> None:
        self.sides = sides

    def __call__(self, split: int, *parts: list) -> list:
        groups: dict[Any, tuple] = {}
        n = self.sides
        for i, part in enumerate(parts):
            for k, v in part:
                g = groups.get(k)
                if g is None:
                    g = groups[k] = tuple(ResultIterable() for _ in range(n))
                g[i].append(v)
        return list(groups.items())


class _JoinPartition:
    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, split: int, left: list, right: list) -> list:
        by_key: dict[Any, list] = {}
        for k, w in right:
            ws = by_key.get(k)
            if ws is None:
                by_key[k] = [w]
            else:
                ws.append(w)
        out: list = []
        append = out.append
        keep_left = self.kind in ("left", "full")
        if self.kind in ("inner", "left"):
            for k, v in left:
                ws = by_key.get(k)
                if ws is not None:
                    for w in ws:
                        append((k, (v, w)))
                elif keep_left:
                    append((k, (v, None)))
            return out
        # right and full outer joins also need the right keys no left record matched.
        matched = set()
        for k, v in left:
            ws = by_key.get(k)
            if ws is not None:
                matched.add(k)
                for w in ws:
                    append((k, (v, w)))
            elif keep_left:
                append((k, (v, None)))
        for k, ws in by_key.items():
            if k not in matched:
                for w in ws:
                    append((k, (None, w)))
        return out


