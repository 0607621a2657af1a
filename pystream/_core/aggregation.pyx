# cython: language_level=3
"""Keyed aggregation tables behind reduceByKey, combineByKey, countByValue and the window operators.

Keys follow dict semantics (``hash()``, then identity or ``==``) and come out in first-insertion order.
Values are combined left to right in arrival order, exactly as Python would with the same function;
``operator.add`` / ``lambda a, b: a + b``, ``min``, ``max`` and counting run in C while the values are
exact ints (int64) or floats, and fall back to the Python operation the moment they are not.

AggTable is defined here: construction, ``merge`` / ``subtract``, the dict-like views, copying and pickling.
The storage and the loops that fold records in (``update``, ``update_keys``, ``count_words``) it inherits
from agg_kernel.AggKernel.
"""
cimport cython
from libc.stdint cimport int64_t

from pystream._core.agg_kernel cimport (
    INV_GENERIC,
    INV_NONE,
    INV_SUB,
    MODE_COMBINER,
    MODE_GENERIC,
    MODE_MAX,
    MODE_MIN,
    MODE_SUM,
    AggKernel,
    PyObject,
    Py_hash_t,
    _decref,
    _gc_is,
    _gc_untrack,
    _hash,
    _incref,
    _key_object,
    _prefetch,
    _release_table,
    _xdecref,
    _xincref,
)
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc

from pystream._core.hashing cimport SEED_STR, fast_key_hash
from pystream._core.ps_xxhash cimport ps_xxh64
from pystream._core.partitioning cimport check_num_partitions
from pystream._core.ps_agg cimport *
from pystream._core.ps_common cimport *
from pystream._core.serialisation cimport FrameWriter
from pystream._core.status cimport check_status

import operator
import types

__all__ = ["AggTable"]


# Built in Python (eval), not Cython, so that they carry real bytecode to compare against.
_REF_ADD = eval("lambda a, b: a + b").__code__
_REF_SUB = eval("lambda a, b: a - b").__code__


cdef bint _same_lambda(fn, ref):
    """True for a plain two-argument function whose body is exactly ref's (any argument names)."""
    if type(fn) is not types.FunctionType:
        return False
    if fn.__defaults__ or fn.__kwdefaults__ or fn.__closure__:
        return False
    code = fn.__code__
    return (code.co_code == ref.co_code and code.co_argcount == 2 and code.co_kwonlyargcount == 0
            and code.co_nlocals == 2 and not (code.co_flags & 0x0C))  # 0x0C: *args / **kwargs


cdef int _reducer_mode(fn):
    if fn is operator.add or _same_lambda(fn, _REF_ADD):
        return MODE_SUM
    if fn is min:
        return MODE_MIN
    if fn is max:
        return MODE_MAX
    return MODE_GENERIC


cdef inline tuple _pair(ps_agg_entry *e, bint keep):
    key = _key_object(e, keep)
    pair = (key, _value(e))
    if e.kind != PS_AGG_OBJ and not _gc_is(<PyObject *>key):
        # (atomic key, number) cannot be in a cycle: spare the collector a walk over it.
        _gc_untrack(<PyObject *>pair)
    return pair


cdef inline bint _ascii_skey(const ps_agg_entry *e) noexcept:
    """Whether the entry holds its key's whole content: an exact str of at most 8 ASCII characters."""
    return (e.skey_tag >> 4) == 1 and (e.skey & 0x8080808080808080ULL) == 0


cdef inline uint64_t _entry_key_hash(const ps_agg_entry *e) except? 0:
    """``portable_hash`` of the entry's key; a short ASCII key's from the entry's copy of its characters (they
    are its UTF-8), without loading the key object (W1's map table: 65K keys, all of them such)."""
    if _ascii_skey(e):
        return ps_xxh64(&e.skey, e.skey_tag & 0x0F, SEED_STR)
    return fast_key_hash(<object>e.key)


cdef bint _mergeable(AggTable a, AggTable b):
    # Group tables of one list type merge whatever their mode: both extend a key's list with the other's.
    return a.mode == b.mode or (a.group is not None and a.group is b.group)


cdef object _group_type(group):
    if group is not None and not (isinstance(group, type) and issubclass(group, list)):
        raise TypeError(f"group must be a list type, got {group!r}")
    return group


cdef inline object _value(const ps_agg_entry *e):
    if e.kind == PS_AGG_I64:
        return e.num.i
    if e.kind == PS_AGG_F64:
        return e.num.f
    return <object>e.num.obj


@cython.final
cdef class AggTable(AggKernel):
    """Insertion-ordered table from key to accumulator: ``AggTable(reducer, inverse=None, group=None)``.

    ``group``, a list type, says that the accumulators are such lists and ``reducer`` extends the first with the
    second (returning it): the table then extends them in C. ``combiner(..., group=)`` says the same of a
    combineByKey table whose functions make ``group([v])``, append and extend (groupByKey's)."""

    def __init__(self, reducer, inverse=None, *, group=None):
        if not callable(reducer):
            raise TypeError(f"reducer must be callable, got {type(reducer).__name__}")
        if inverse is not None and not callable(inverse):
            raise TypeError(f"inverse must be callable or None, got {type(inverse).__name__}")
        self.group = _group_type(group)
        self.reducer = reducer
        self.mode = _reducer_mode(reducer)
        self.canon = self.mode != MODE_GENERIC
        self.inverse = inverse
        if inverse is None:
            self.inv = INV_NONE
        elif inverse is operator.sub or _same_lambda(inverse, _REF_SUB):
            self.inv = INV_SUB
        else:
            self.inv = INV_GENERIC

    @staticmethod
    def counter():
        """Counts occurrences: ``update_keys(keys)`` adds 1 per key (countByValue)."""
        return AggTable(operator.add, operator.sub)

    @staticmethod
    def combiner(create_combiner, merge_value, merge_combiners, *, group=None):
        """combineByKey: a key's first value goes through create_combiner, later ones through
        merge_value; merge() joins two tables' combiners with merge_combiners."""
        for name, fn in (("create_combiner", create_combiner), ("merge_value", merge_value),
                         ("merge_combiners", merge_combiners)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        cdef AggTable t = AggTable.__new__(AggTable)
        t.mode = MODE_COMBINER
        t.canon = False
        t.inv = INV_NONE
        t.reducer = merge_combiners
        t.create_combiner = create_combiner
        t.merge_value = merge_value
        t.merge_combiners = merge_combiners
        t.group = _group_type(group)
        return t

    # ---- plumbing -------------------------------------------------------------------------------

    cdef AggTable _empty_like(self):
        """An empty table with this one's reducers."""
        cdef AggTable c = AggTable.__new__(AggTable)
        c.mode, c.inv, c.canon = self.mode, self.inv, self.canon
        c.reducer, c.inverse = self.reducer, self.inverse
        c.create_combiner, c.merge_value, c.merge_combiners = (
            self.create_combiner, self.merge_value, self.merge_combiners)
        c.group = self.group
        return c

    cdef void _append_entry(self, ps_agg_entry *src, bint move) noexcept:
        """Appends another table's entry, whose key this table does not hold yet, unindexed (see
        ``ps_agg_append_unindexed``): a copy holding references of its own, or with ``move`` the entry with
        the references it holds (``src`` is left dead), which touches neither its key nor its value object."""
        ps_agg_append_unindexed(&self.t, src)
        if move:
            src.kind = PS_AGG_DEAD
            src.key = NULL
            return
        _xincref(<PyObject *>src.key)
        if src.kind == PS_AGG_OBJ:
            _incref(<PyObject *>src.num.obj)

    def can_merge(self, other):
        """Return whether ``merge(other)`` accepts ``other``: both tables fold with the same kind of reducer
        (tables from different reducers, or a combineByKey table into a plain one, do not merge), or both group
        values into lists of the same type (a groupByKey map table into its merge table)."""
        return isinstance(other, AggTable) and _mergeable(self, <AggTable>other)

    cdef int _put(self, key, value) except -1:
        """Sets a key's accumulator directly (unpickling, __setitem__)."""
        cdef Py_hash_t h = _hash(<PyObject *>key)
        cdef size_t pos
        cdef int64_t idx
        cdef ps_agg_entry *e
        if h == -1:
            return -1
        idx = self._find(<PyObject *>key, h, &pos)
        if idx < 0:
            idx = self._insert(<PyObject *>key, h, pos)
        _incref(<PyObject *>value)
        self._set(idx, <PyObject *>value)
        return 0

    def reserve(self, Py_ssize_t n):
        """Make room for ``n`` more keys, so that folding them in never grows the table step by step (each
        step re-indexes every key). Returns None; raises ValueError for a negative ``n`` and MemoryError
        when the room cannot be had (the table is then unchanged)."""
        if n < 0:
            raise ValueError(f"reserve needs a count of 0 or more keys, got {n}")
        self._enter()
        try:
            check_status(ps_agg_reserve(&self.t, <size_t>n))
        finally:
            self.busy = False

    cdef int64_t _lookup(self, key) except -2:
        cdef Py_hash_t h = _hash(<PyObject *>key)
        cdef size_t pos
        if h == -1:
            return -2
        return self._find(<PyObject *>key, h, &pos)

    # ---- public API -----------------------------------------------------------------------------

    def merge(self, other):
        """Reduce-side merge: folds other's accumulators into this table's with the reducer
        (merge_combiners for a combiner).  Keys new to this table keep other's accumulator."""
        cdef AggTable o = _check_other(other)
        if not _mergeable(self, o):
            raise ValueError("cannot merge tables built with different reducers")
        if o is self:
            o = self.copy()
        self._enter()
        o.busy, was = True, o.busy
        try:
            if self.t.n_entries == 0:
                # Every key is new, and a new key keeps other's accumulator: the merge is a copy (a reduce
                # task's first bucket), without a lookup per entry.
                self._copy_entries(o)
            else:
                self._merge(o, False)
        finally:
            self.busy = False
            o.busy = was

    def subtract(self, other):
        """Inverse reduce for sliding windows: acc = inverse(acc, other_acc) for each key of other.
        Every key of other must be present (KeyError otherwise, before anything changes); keys
        that reach zero stay."""
        cdef AggTable o = _check_other(other)
        if self.inv == INV_NONE:
            raise ValueError("subtract() needs a table built with an inverse function")
        if o is self:
            o = self.copy()
        self._enter()
        o.busy, was = True, o.busy
        try:
            self._merge(o, True)
        finally:
            self.busy = False
            o.busy = was

    def items(self):
        cdef list out = [None] * <Py_ssize_t>self.t.n_live
        cdef size_t r, j = 0
        cdef ps_agg_entry *e
        for r in range(self.t.n_entries):
            if r + 16 < self.t.n_entries:
                _prefetch(<PyObject *>self.t.entries[r + 16].key)
            e = &self.t.entries[r]
            if e.kind != PS_AGG_DEAD:
                out[j] = _pair(e, True)
                j += 1
        return out

    def iter_items(self):
        """Return an iterator over the (key, value) pairs, in ``items()`` order, each pair made only when it
        is reached: a consumer that drops each pair before the next (a reduce partition streamed into the
        next step) never holds them all at once. Like a dict's, the iterator raises RuntimeError if the
        table changes size while it runs."""
        return _ItemIterator(self)

    def split_items(self, long num_partitions, frames=(), tables=(), *, bint consume=False):
        """Return the (key, value) pairs split by ``portable_hash(key) % num_partitions``: one entry per
        partition, each in this table's order, exactly ``partitioning.partition(self.items(), n)``.

        Partition j is a list of pairs; or, for each j in ``frames``, a ``serialisation.FrameWriter`` holding
        them encoded (as if appended), with no list of them made: the pairs a map task ships to another worker;
        or, for each j in ``tables``, a table like this one (same reducers) holding them, entries copied in C
        with no pair made: what a reduce task on this worker merges (``merge()``) without folding pairs.
        With ``consume``, this table is emptied as it is split (also when the split raises once the keys are
        hashed): its index is freed before the partitions are built, and its entries move to them rather than
        being copied, so neither a key's reference count nor the memory of both is held twice.
        Raises ValueError for a partition count below 1, or an index out of range or in both.
        """
        check_num_partitions(num_partitions)
        cdef uint32_t n = <uint32_t>num_partitions, p
        cdef bint pow2 = (n & (n - 1)) == 0
        cdef list writers = [None] * n
        cdef list subs = [None] * n
        for j in frames:
            if not 0 <= j < n:
                raise ValueError(f"frames index {j} is outside 0..{n - 1}")
            writers[j] = FrameWriter(self.t.n_live // n + 1, False)  # its keys do not repeat
        for j in tables:
            if not 0 <= j < n:
                raise ValueError(f"tables index {j} is outside 0..{n - 1}")
            if writers[j] is not None:
                raise ValueError(f"partition {j} cannot be both a frame and a table")
            subs[j] = self._empty_like()
        cdef size_t r, m = self.t.n_entries
        cdef uint64_t h
        cdef ps_agg_entry *e
        cdef uint32_t *ids = <uint32_t *>malloc((m + 1) * sizeof(uint32_t))
        cdef Py_ssize_t *counts = <Py_ssize_t *>calloc(n, sizeof(Py_ssize_t))
        cdef Py_ssize_t *fill = <Py_ssize_t *>calloc(n, sizeof(Py_ssize_t))
        cdef list parts = [None] * n
        cdef ps_agg_table src
        cdef ps_agg_table empty
        cdef ps_agg_table *owned = NULL
        try:
            if consume:
                check_status(ps_agg_init(&empty, 0))  # before anything moves: the table is left valid
            if ids == NULL or counts == NULL or fill == NULL:
                raise MemoryError()
            # A key's hash may run its __hash__ (keys that are not str, int, ...): no one may change the
            # table meanwhile.
            self._enter()
            try:
                for r in range(m):
                    e = &self.t.entries[r]
                    if e.kind == PS_AGG_DEAD:
                        continue
                    if r + 16 < m and not _ascii_skey(&self.t.entries[r + 16]):
                        _prefetch(<PyObject *>self.t.entries[r + 16].key)
                    h = _entry_key_hash(e)
                    p = <uint32_t>(h & (n - 1)) if pow2 else <uint32_t>(h % n)
                    ids[r] = p
                    counts[p] += 1
                if consume:
                    src = self.t
                    self.t = empty
                    ps_agg_drop_index(&src)  # only the entries are read from here on
                    owned = &src
                for p in range(n):
                    if subs[p] is not None:
                        parts[p] = subs[p]
                        check_status(ps_agg_reserve_entries(&(<AggTable>subs[p]).t, <size_t>counts[p]))
                    else:
                        parts[p] = writers[p] if writers[p] is not None else PyList_New(counts[p])
                _distribute(owned if consume else &self.t, ids, writers, subs, parts, fill, consume)
                for p in range(n):
                    if subs[p] is not None:  # their entries came unindexed, their keys all distinct
                        check_status(ps_agg_reindex(&(<AggTable>subs[p]).t))
            finally:
                self.busy = False
        finally:
            if owned != NULL:
                _release_table(owned)  # what an error left unmoved; then the entries array
            elif consume:
                ps_agg_free(&empty)  # the keys' hashing raised: the table was left as it was
            free(ids)
            free(counts)
            free(fill)
        return parts

    def keys(self):
        cdef list out = [None] * <Py_ssize_t>self.t.n_live
        cdef size_t r, j = 0
        for r in range(self.t.n_entries):
            if self.t.entries[r].kind != PS_AGG_DEAD:
                out[j] = _key_object(&self.t.entries[r], True)
                j += 1
        return out

    def values(self):
        cdef list out = [None] * <Py_ssize_t>self.t.n_live
        cdef size_t r, j = 0
        for r in range(self.t.n_entries):
            if self.t.entries[r].kind != PS_AGG_DEAD:
                out[j] = _value(&self.t.entries[r])
                j += 1
        return out

    def to_dict(self):
        return dict(self.items())

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return self.t.n_live

    def __contains__(self, key):
        return self._lookup(key) >= 0

    def get(self, key, default=None):
        cdef int64_t idx = self._lookup(key)
        if idx < 0:
            return default
        return _value(&self.t.entries[idx])

    def __getitem__(self, key):
        cdef int64_t idx = self._lookup(key)
        if idx < 0:
            raise KeyError(key)
        return _value(&self.t.entries[idx])

    def __setitem__(self, key, value):
        self._enter()
        try:
            self._put(key, value)
        finally:
            self.busy = False

    def pop(self, key, *default):
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        self._enter()
        cdef int64_t idx
        cdef ps_agg_entry *e
        cdef PyObject *k
        cdef PyObject *obj
        try:
            idx = self._lookup(key)
            if idx < 0:
                if default:
                    return default[0]
                raise KeyError(key)
            e = &self.t.entries[idx]
            value = _value(e)
            k = <PyObject *>e.key
            obj = <PyObject *>e.num.obj if e.kind == PS_AGG_OBJ else NULL
            ps_agg_remove(&self.t, idx)
            _xdecref(obj)
            _xdecref(k)
            return value
        finally:
            self.busy = False

    def __delitem__(self, key):
        self.pop(key)

    def clear(self):
        cdef ps_agg_table old
        self._enter()
        try:
            old = self.t
            check_status(ps_agg_init(&self.t, 0))
        except BaseException:
            self.t = old
            self.busy = False
            raise
        _release_table(&old)
        self.busy = False

    cdef int _copy_entries(self, AggTable src) except -1:
        """Make this table's (empty) storage a copy of ``src``'s: its live entries in order, each key and
        object accumulator referenced anew, the index rebuilt from the stored hashes (no key compared)."""
        cdef size_t r
        cdef ps_agg_entry *e
        cdef ps_status st
        ps_agg_free(&self.t)
        st = ps_agg_copy(&self.t, &src.t)
        if st != PS_OK:
            check_status(ps_agg_init(&self.t, 0))
            check_status(st)
        for r in range(self.t.n_entries):
            if r + 16 < self.t.n_entries:
                # The keys lie anywhere in the heap (a reduce task's first bucket: 40K of them, a cache miss
                # each when met in turn).
                _prefetch(<PyObject *>self.t.entries[r + 16].key)
            e = &self.t.entries[r]
            _xincref(<PyObject *>e.key)
            if e.kind == PS_AGG_OBJ:
                _incref(<PyObject *>e.num.obj)
        return 0

    def copy(self):
        cdef AggTable c = self._empty_like()
        c._copy_entries(self)
        return c

    def __copy__(self):
        return self.copy()

    def __reduce__(self):
        if self.mode == MODE_COMBINER:
            spec = (None, None, (self.create_combiner, self.merge_value, self.merge_combiners))
        else:
            # A recognised lambda pickles as its operator twin: same results, and plain pickle can
            # store it where it could not store the lambda.
            reducer = operator.add if self.mode == MODE_SUM else self.reducer
            inverse = operator.sub if self.inv == INV_SUB else self.inverse
            spec = (reducer, inverse, None)
        return (_rebuild, (spec, self.items()))

    def __repr__(self):
        if self.mode == MODE_COMBINER:
            fn = "combiner"
        else:
            fn = getattr(self.reducer, "__qualname__", None) or repr(self.reducer)
        return f"AggTable({fn}, {len(self)} keys)"


cdef AggTable _check_other(other):
    if not isinstance(other, AggTable):
        raise TypeError(f"expected an AggTable, got {type(other).__name__}")
    return <AggTable>other


def _rebuild(spec, items):
    """Unpickles an AggTable (accumulators are restored as they were, not re-reduced)."""
    reducer, inverse, combiner = spec
    cdef AggTable t = AggTable.combiner(*combiner) if combiner is not None else AggTable(reducer, inverse)
    for key, value in items:
        t._put(key, value)
    return t


cdef int _distribute(ps_agg_table *src, const uint32_t *ids, list writers, list subs, list parts,
                     Py_ssize_t *fill, bint move) except -1:
    """``split_items``' second pass: each live entry of ``src`` into its partition ``ids[r]``, a copy with
    references of its own; or with ``move`` (``src`` detached from its table) the entry itself, leaving it
    dead: its references go with it, or are dropped once it is encoded or paired."""
    cdef size_t r
    cdef uint32_t p
    cdef ps_agg_entry *e
    cdef object w
    cdef tuple pair
    for r in range(src.n_entries):
        e = &src.entries[r]
        if e.kind == PS_AGG_DEAD:
            continue
        p = ids[r]
        if subs[p] is not None:
            (<AggTable>subs[p])._append_entry(e, move)
            continue
        w = writers[p]
        if w is not None:
            if e.key == NULL and e.kind == PS_AGG_I64:
                # An inline key's characters, and its count, straight from the entry.
                (<FrameWriter>w).add_str_int(<const unsigned char *>&e.skey, e.skey_tag & 0x0F, e.num.i)
            else:
                # A tuple that goes straight back to CPython's free list once encoded.
                (<FrameWriter>w).add((_key_object(e, False), _value(e)))
        else:
            pair = _pair(e, not move)
            Py_INCREF(pair)
            PyList_SET_ITEM(parts[p], fill[p], pair)
            fill[p] += 1
        if move:
            # The key (and value) now live in the frame or the pair: the entry's references go, and a key only
            # this table held is freed here, while it is still in cache.
            if e.kind == PS_AGG_OBJ:
                _xdecref(<PyObject *>e.num.obj)
            e.kind = PS_AGG_DEAD
            _xdecref(<PyObject *>e.key)
            e.key = NULL
    return 0


@cython.final
cdef class _ItemIterator:
    """``AggTable.iter_items()``: the table's live entries as pairs, one at a time."""
    cdef AggTable table
    cdef size_t r
    cdef size_t n_entries
    cdef size_t n_live
    cdef size_t left

    def __cinit__(self, AggTable table):
        self.table = table
        self.r = 0
        self.n_entries = table.t.n_entries
        self.n_live = self.left = table.t.n_live

    def __iter__(self):
        return self

    def __length_hint__(self):
        return self.left

    def __next__(self):
        cdef AggTable t = self.table
        cdef ps_agg_entry *e
        if t is None:
            raise StopIteration
        # An insert may move the entries and a removal may compact them on a later insert: a table that
        # changed size has no position left to go on from.
        if t.t.n_entries != self.n_entries or t.t.n_live != self.n_live:
            self.table = None
            raise RuntimeError("AggTable changed size during iteration")
        while self.r < self.n_entries:
            e = &t.t.entries[self.r]
            self.r += 1
            if self.r + 16 < self.n_entries:
                _prefetch(<PyObject *>t.t.entries[self.r + 16].key)
            if e.kind != PS_AGG_DEAD:
                self.left -= 1
                return _pair(e, False)
        self.table = None  # the table may go as soon as the pairs are out
        raise StopIteration
