# cython: language_level=3
"""AggKernel, the base of AggTable (aggregation.pyx): the keyed table's storage and the loops that fold
records into it (``update``, ``update_keys``, ``count_words``, and the merge behind ``merge`` / ``subtract``).

Everything those loops call per record is here or inline in agg_kernel.pxd: a cdef method called from
another module is an indirect call through its vtable, which the C compiler cannot inline.
"""
cimport cython
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset
from itertools import islice

from pystream._core.deserialisation cimport FrameReader

from pystream.errors import IllegalStateError

__all__ = ["AggKernel"]


cdef extern from *:
    """
    /* str.split() with no separator splits ASCII text at exactly these characters (CPython's
     * _Py_ascii_whitespace): \t \n \v \f \r, the four information separators 0x1C-0x1F, and space. */
    static const unsigned char ps_ascii_space[128] = {
        0,0,0,0,0,0,0,0,0,1,1,1,1,1,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,
        1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0};
    """
    const unsigned char ps_ascii_space[128]

_ONE = 1


cdef struct span_ctx:
    const char *p
    Py_ssize_t n
    bint unsure  # a stored key with this hash was not an exact str: only Python's == can tell


cdef int _span_eq(void *ctx, const ps_agg_entry *e) noexcept:
    # A word of ASCII bytes equals a stored key that is an exact str with the same bytes. A key that is not
    # an exact str (a str subclass may equal the word) is not settled here: the caller then compares through
    # a str object.
    cdef PyObject *stored = <PyObject *>e.key
    cdef span_ctx *c = <span_ctx *>ctx
    if e.skey_tag:
        if c.n > 8 or e.skey_tag != <uint8_t>((1 << 4) | c.n):
            return 0
        return ps_agg_short_bytes(c.p, <size_t>c.n) == e.skey
    if not _is_str(stored):
        c.unsure = True
        return 0
    if _str_kind(stored) != 1 or _str_len(stored) != c.n:
        return 0
    return memcmp(_str_data(stored), c.p, <size_t>c.n) == 0


cdef inline size_t _front_index(uint64_t w, uint8_t tag) noexcept:
    return <size_t>(((w ^ (<uint64_t>tag << 56)) * <uint64_t>0x9E3779B97F4A7C15ULL) >> (64 - FRONT_BITS))


cdef inline uint8_t _classify(PyObject *v, ps_agg_num *num) noexcept:
    cdef int ovf = 0
    if _is_int(v):
        num.i = _as_ll(v, &ovf)
        return PS_AGG_OBJ if ovf else PS_AGG_I64
    if _is_float(v):
        num.f = _as_double(v)
        return PS_AGG_F64
    return PS_AGG_OBJ


cdef inline PyObject *_box(uint8_t kind, ps_agg_num num, PyObject *obj) noexcept:
    """New reference to the Python value of an accumulator (NULL with an error set on failure)."""
    if kind == PS_AGG_I64:
        return _from_ll(num.i)
    if kind == PS_AGG_F64:
        return _from_double(num.f)
    _incref(obj)
    return obj


cdef void _release_table(ps_agg_table *t) noexcept:
    """Drops every reference a table holds and frees it.  The table must already be detached from
    its AggTable, since a key's __del__ may run arbitrary code."""
    cdef size_t r
    cdef ps_agg_entry *e
    for r in range(t.n_entries):
        if r + 16 < t.n_entries:
            _prefetch(<PyObject *>t.entries[r + 16].key)  # the keys were not touched since insertion
        e = &t.entries[r]
        if e.kind == PS_AGG_DEAD:
            continue
        if e.kind == PS_AGG_OBJ:
            _xdecref(<PyObject *>e.num.obj)
        _xdecref(<PyObject *>e.key)
    ps_agg_free(t)


cdef class AggKernel:
    """AggTable's storage and per-record loops; made only as an AggTable."""

    def __cinit__(self, *args, **kwargs):
        check_status(ps_agg_init(&self.t, 0))

    def __dealloc__(self):
        free(self.front)
        if self.t.slots != NULL:
            _release_table(&self.t)

    # ---- plumbing -------------------------------------------------------------------------------

    @cython.final
    cdef int _enter(self) except -1:
        # User functions run in the middle of a probe: letting them mutate this table would
        # invalidate the slot and entry positions the loop holds.
        if self.busy:
            raise IllegalStateError("AggTable modified from inside one of its own user functions")
        self.busy = True
        return 0

    @cython.final
    cdef int64_t _insert(self, PyObject *key, Py_hash_t h, size_t pos) except -1:
        """New entry owning a reference to key; the caller fills the accumulator."""
        cdef int64_t idx
        cdef ps_agg_entry *e
        check_status(ps_agg_insert(&self.t, h, pos, &idx))
        _incref(key)
        e = &self.t.entries[idx]
        e.key = key
        if _is_str(key):
            e.skey_tag = _short_str(key, &e.skey)
        return idx

    @cython.final
    cdef int64_t _insert_inline(self, uint64_t w, uint8_t tag, Py_hash_t h, size_t pos) except -1:
        """New entry for an inline key (see agg_kernel.pxd): skey w, skey_tag tag; the caller fills the
        accumulator."""
        cdef int64_t idx
        cdef ps_agg_entry *e
        check_status(ps_agg_insert(&self.t, h, pos, &idx))
        e = &self.t.entries[idx]
        e.key = NULL
        e.skey = w
        e.skey_tag = tag
        return idx

    @cython.final
    cdef int64_t _find_from(self, ps_agg_entry *oe, size_t *pos) except -2:
        """Looks up the key of another table's entry oe; an inline key by its characters, with no str made
        unless a stored key that is not an exact str has its hash (then oe's str is made, and kept)."""
        cdef span_ctx ctx
        cdef int64_t idx
        cdef uint64_t w
        cdef PyObject *k
        if oe.key != NULL:
            return self._find(<PyObject *>oe.key, oe.hash, pos)
        w = oe.skey
        ctx.p = <const char *>&w
        ctx.n = oe.skey_tag & 0x0F
        ctx.unsure = False
        if ps_agg_find(&self.t, oe.hash, _span_eq, &ctx, &idx, pos) != PS_OK:
            raise RuntimeError("aggregation table probe failed")
        if idx < 0 and ctx.unsure:
            k = _entry_key(oe)
            if k == NULL:
                return -2
            return self._find(k, oe.hash, pos)
        return idx

    @cython.final
    cdef int64_t _insert_from(self, const ps_agg_entry *oe, size_t pos) except -1:
        """New entry for the key of another table's entry oe, which ``_find_from`` just missed at pos."""
        if oe.key != NULL:
            return self._insert(<PyObject *>oe.key, oe.hash, pos)
        return self._insert_inline(oe.skey, oe.skey_tag, oe.hash, pos)

    @cython.final
    cdef inline void _set(self, int64_t idx, PyObject *res) noexcept:
        """Stores res (a reference this steals) as entry idx's accumulator."""
        cdef ps_agg_entry *e = &self.t.entries[idx]
        cdef PyObject *old = <PyObject *>e.num.obj if e.kind == PS_AGG_OBJ else NULL
        cdef ps_agg_num num
        cdef uint8_t kind = _classify(res, &num) if self.canon else PS_AGG_OBJ
        if kind == PS_AGG_OBJ:
            e.num.obj = res
        else:
            e.num = num
        e.kind = kind
        if kind != PS_AGG_OBJ:
            _decref(res)
        # Last, once the entry is consistent: dropping the old value may run a __del__.
        _xdecref(old)

    @cython.final
    cdef int _apply(self, int64_t idx, int op, object fn, uint8_t kind, ps_agg_num num,
                    PyObject *obj) except -1:
        """acc = op(acc, value) through Python objects, exactly as the Python function would."""
        cdef ps_agg_entry *e = &self.t.entries[idx]
        cdef PyObject *args[2]
        cdef PyObject *res = NULL
        cdef int c
        args[0] = _box(e.kind, e.num, <PyObject *>e.num.obj)
        if args[0] == NULL:
            return -1
        args[1] = _box(kind, num, obj)
        if args[1] == NULL:
            _decref(args[0])
            return -1
        if op == OP_ADD:
            res = _add(args[0], args[1])
        elif op == OP_SUB:
            res = _sub(args[0], args[1])
        elif op == OP_MIN or op == OP_MAX:
            # builtin min/max keep the first of equal values: b replaces a only if b < a (b > a).
            c = _richcmp(args[1], args[0], Py_LT if op == OP_MIN else Py_GT)
            if c >= 0:
                res = args[1] if c else args[0]
                _incref(res)
        else:
            res = _vcall(<PyObject *>fn, args, 2, NULL)
        _decref(args[0])
        _decref(args[1])
        if res == NULL:
            return -1
        self._set(idx, res)
        return 0

    @cython.final
    cdef inline int _combine(self, int64_t idx, uint8_t kind, ps_agg_num num, PyObject *obj) except -1:
        """Folds one value (unboxed when kind says so) into an existing entry with the reducer."""
        cdef ps_agg_entry *e = &self.t.entries[idx]
        cdef int64_t r
        cdef uint8_t ak = e.kind
        if self.mode == MODE_SUM:
            if ak == PS_AGG_I64:
                if kind == PS_AGG_I64:
                    if not ps_agg_add_i64(e.num.i, num.i, &r):
                        e.num.i = r
                        return 0
                elif kind == PS_AGG_F64:
                    # int + float is float(int) + float in Python; int64 -> double rounds the same way.
                    e.num.f = <double>e.num.i + num.f
                    e.kind = PS_AGG_F64
                    return 0
            elif ak == PS_AGG_F64:
                if kind == PS_AGG_F64:
                    e.num.f = e.num.f + num.f
                    return 0
                if kind == PS_AGG_I64:
                    e.num.f = e.num.f + <double>num.i
                    return 0
            return self._apply(idx, OP_ADD, None, kind, num, obj)
        if self.mode == MODE_MIN or self.mode == MODE_MAX:
            # Mixed int/float comparisons are exact in Python, so only like kinds compare in C.
            if ak == kind and ak == PS_AGG_I64:
                if (num.i < e.num.i) if self.mode == MODE_MIN else (num.i > e.num.i):
                    e.num.i = num.i
                return 0
            if ak == kind and ak == PS_AGG_F64:
                if (num.f < e.num.f) if self.mode == MODE_MIN else (num.f > e.num.f):
                    e.num.f = num.f
                return 0
            return self._apply(idx, OP_MIN if self.mode == MODE_MIN else OP_MAX, None, kind, num, obj)
        if self.mode == MODE_COMBINER:
            # What the group functions do, without a call into Python: append the value to its key's list.
            if self.group is not None and ak == PS_AGG_OBJ and kind == PS_AGG_OBJ and _is_list(<PyObject *>e.num.obj):
                return _list_append(<PyObject *>e.num.obj, obj)
            return self._apply(idx, OP_CALL, self.merge_value, kind, num, obj)
        if self._group_extend(idx, kind, obj):
            return 0
        return self._apply(idx, OP_CALL, self.reducer, kind, num, obj)

    @cython.final
    cdef int _group_extend(self, int64_t idx, uint8_t kind, PyObject *obj) except -1:
        """Extends key idx's list with the list obj, as a group table's merge function does, without calling
        it: 1 if done, 0 if the table groups no values or either is not a list (the caller calls the function)."""
        cdef ps_agg_entry *e = &self.t.entries[idx]
        if (self.group is None or kind != PS_AGG_OBJ or e.kind != PS_AGG_OBJ or not _is_list(<PyObject *>e.num.obj)
                or not _is_list(obj)):
            return 0
        if _list_extend(<PyObject *>e.num.obj, obj) < 0:
            return -1
        return 1

    @cython.final
    cdef inline int _accumulate(self, PyObject *k, PyObject *v) except -1:
        cdef Py_hash_t h = _hash(k)
        cdef size_t pos
        cdef int64_t idx
        cdef ps_agg_num num
        cdef uint8_t kind
        cdef PyObject *first
        cdef ps_agg_entry *e
        num.i = 0
        if h == -1:
            return -1
        idx = self._find(k, h, &pos)
        if self.canon:
            kind = _classify(v, &num)
        else:
            kind = PS_AGG_OBJ
        if idx >= 0:
            return self._combine(idx, kind, num, v)
        if self.mode == MODE_COMBINER:
            # Called before inserting so a failing create_combiner leaves no half-made key.
            if self.group is not None:
                first = _vcall(<PyObject *>self.group, NULL, 0, NULL)
                if first != NULL and _list_append(first, v) < 0:
                    _decref(first)
                    return -1
            else:
                first = _vcall(<PyObject *>self.create_combiner, &v, 1, NULL)
            if first == NULL:
                return -1
            try:
                idx = self._insert(k, h, pos)
            except BaseException:
                _decref(first)
                raise
            e = &self.t.entries[idx]
            e.kind = PS_AGG_OBJ
            e.num.obj = first
            return 0
        idx = self._insert(k, h, pos)
        e = &self.t.entries[idx]
        e.kind = kind
        if kind == PS_AGG_OBJ:
            _incref(v)
            e.num.obj = v
        else:
            e.num = num
        return 0

    @cython.final
    cdef inline void _lookahead(self, PyObject *seq, bint is_list, bint pairs, Py_ssize_t i,
                                Py_ssize_t n, Py_hash_t *ring, uint8_t *ok) noexcept:
        """Prefetch stages, one dependent load each: record i+40 (tuple), i+32 (key object),
        i+24 (hash -> slot), i+16 (entry), i+8 (stored key).  Only exact str and int keys are
        hashed ahead: their hash has no side effects and cannot fail."""
        cdef Py_ssize_t j
        cdef PyObject *r
        cdef PyObject *k = NULL
        j = i + 80
        if pairs and j < n:
            _prefetch(_list_item(seq, j) if is_list else _tuple_item(seq, j))
        j = i + 32
        if j < n:
            r = _list_item(seq, j) if is_list else _tuple_item(seq, j)
            if pairs and _is_tuple(r) and _tuple_size(r) == 2:
                r = _tuple_item(r, 0)
            # pymalloc aligns to 16, so the header (hash at +24) may straddle two cache lines.
            _prefetch(r)
            _prefetch(<PyObject *>(<char *>r + 32))
        j = i + 24
        if j < n:
            r = _list_item(seq, j) if is_list else _tuple_item(seq, j)
            if not pairs:
                k = r
            elif _is_tuple(r) and _tuple_size(r) == 2:
                k = _tuple_item(r, 0)
            if k != NULL and (_is_str(k) or _is_int(k)):
                ring[j & 63] = _hash(k)
                ok[j & 63] = 1
                ps_agg_prefetch_slot(&self.t, ring[j & 63])
            else:
                ok[j & 63] = 0
        j = i + 16
        if j < n and ok[j & 63]:
            ps_agg_prefetch_entry(&self.t, ring[j & 63])
        j = i + 8
        if j < n and ok[j & 63]:
            ps_agg_prefetch_key(&self.t, ring[j & 63])

    @cython.final
    cdef int _update(self, records) except -1:
        cdef object seq = records if type(records) is list or type(records) is tuple else list(records)
        cdef bint is_list = type(seq) is list
        cdef PyObject *sp = <PyObject *>seq
        cdef Py_ssize_t i = 0, n
        cdef object rec
        cdef PyObject *p
        cdef Py_hash_t ring[64]
        cdef uint8_t ok[64]
        memset(ok, 0, sizeof(ok))
        while True:
            # Re-read: a user function may have resized the list.
            n = _list_size(sp) if is_list else _tuple_size(sp)
            if i >= n:
                break
            self._lookahead(sp, is_list, True, i, n, ring, ok)
            # Owned, so a user function that shrinks the list cannot free the record under us.
            rec = <object>(_list_item(sp, i) if is_list else _tuple_item(sp, i))
            p = <PyObject *>rec
            if not (_is_tuple(p) and _tuple_size(p) == 2):
                rec = _as_pair(rec, i)
                p = <PyObject *>rec
            self._accumulate(_tuple_item(p, 0), _tuple_item(p, 1))
            i += 1
        return 0

    @cython.final
    cdef int _update_keys(self, keys) except -1:
        cdef object seq = keys if type(keys) is list or type(keys) is tuple else list(keys)
        cdef bint is_list = type(seq) is list
        cdef PyObject *sp = <PyObject *>seq
        cdef Py_ssize_t i = 0, n
        cdef object key
        cdef PyObject *k
        cdef Py_hash_t h
        cdef size_t pos
        cdef int64_t idx
        cdef ps_agg_entry *e
        cdef PyObject *one = <PyObject *>_ONE
        cdef ps_agg_num one_num
        cdef bint fast = self.mode == MODE_SUM
        cdef Py_hash_t ring[64]
        cdef uint8_t ok[64]
        memset(ok, 0, sizeof(ok))
        one_num.i = 1
        while True:
            n = _list_size(sp) if is_list else _tuple_size(sp)
            if i >= n:
                break
            self._lookahead(sp, is_list, False, i, n, ring, ok)
            key = <object>(_list_item(sp, i) if is_list else _tuple_item(sp, i))
            k = <PyObject *>key
            if fast:
                h = _hash(k)
                if h == -1:
                    return -1
                idx = self._find(k, h, &pos)
                if idx >= 0:
                    e = &self.t.entries[idx]
                    if e.kind == PS_AGG_I64 and e.num.i != 0x7FFFFFFFFFFFFFFF:
                        e.num.i += 1
                    else:
                        self._combine(idx, PS_AGG_I64, one_num, one)
                else:
                    idx = self._insert(k, h, pos)
                    e = &self.t.entries[idx]
                    e.kind = PS_AGG_I64
                    e.num.i = 1
            else:
                self._accumulate(k, one)
            i += 1
        return 0

    @cython.final
    cdef int _merge(self, AggKernel other, bint subtract) except -1:
        cdef size_t r, j = 0, n = other.t.n_live
        cdef ps_agg_entry *oe
        cdef ps_agg_entry *e
        cdef size_t pos
        cdef int64_t idx, res
        cdef int64_t *found = NULL
        cdef uint8_t kind
        cdef ps_agg_num num
        cdef PyObject *obj
        if subtract:
            # Look every key up first so a missing key raises before anything changes.
            found = <int64_t *>malloc((n if n else 1) * sizeof(int64_t))
            if found == NULL:
                raise MemoryError()
            try:
                for r in range(other.t.n_entries):
                    oe = &other.t.entries[r]
                    if oe.kind == PS_AGG_DEAD:
                        continue
                    idx = self._find_from(oe, &pos)
                    if idx < 0:
                        raise KeyError(_key_object(oe, False))
                    found[j] = idx
                    j += 1
                j = 0
                for r in range(other.t.n_entries):
                    oe = &other.t.entries[r]
                    if oe.kind == PS_AGG_DEAD:
                        continue
                    idx = found[j]
                    j += 1
                    kind = oe.kind
                    num = oe.num
                    obj = <PyObject *>oe.num.obj
                    e = &self.t.entries[idx]
                    if self.inv == INV_SUB:
                        if e.kind == PS_AGG_I64 and kind == PS_AGG_I64:
                            if not ps_agg_sub_i64(e.num.i, num.i, &res):
                                e.num.i = res
                                continue
                        elif e.kind == PS_AGG_F64 and kind == PS_AGG_F64:
                            e.num.f = e.num.f - num.f
                            continue
                        elif e.kind == PS_AGG_I64 and kind == PS_AGG_F64:
                            e.num.f = <double>e.num.i - num.f
                            e.kind = PS_AGG_F64
                            continue
                        elif e.kind == PS_AGG_F64 and kind == PS_AGG_I64:
                            e.num.f = e.num.f - <double>num.i
                            continue
                        self._apply(idx, OP_SUB, None, kind, num, obj)
                    else:
                        self._apply(idx, OP_CALL, self.inverse, kind, num, obj)
            finally:
                free(found)
            return 0
        check_status(ps_agg_reserve(&self.t, n))
        for r in range(other.t.n_entries):
            oe = &other.t.entries[r]
            if oe.kind == PS_AGG_DEAD:
                continue
            kind = oe.kind
            num = oe.num
            obj = <PyObject *>oe.num.obj
            idx = self._find_from(oe, &pos)
            if idx >= 0:
                if self.mode == MODE_COMBINER:
                    if not self._group_extend(idx, kind, obj):
                        self._apply(idx, OP_CALL, self.merge_combiners, kind, num, obj)
                else:
                    self._combine(idx, kind, num, obj)
            else:
                idx = self._insert_from(oe, pos)
                e = &self.t.entries[idx]
                e.kind = kind
                e.num = num
                if kind == PS_AGG_OBJ:
                    _incref(obj)
                    e.num.obj = obj
        return 0

    # ---- public API -----------------------------------------------------------------------------

    def update(self, records):
        """Folds (key, value) pairs into their keys' accumulators, in order. ``records`` is an iterable, or a
        FrameReader (read to its end), whose (ASCII str, int) pairs are folded from the frame's bytes, with
        no object made for them but a new key longer than 8 characters (shorter ones are kept inline: see
        agg_kernel.pxd)."""
        cdef span_ring ring
        ring.pushed = ring.folded = 0
        self._enter()
        try:
            if type(records) is not FrameReader:
                self._update(records)
                return
            (<FrameReader>records).pins += 1  # the ring points into its frame
            try:
                self._update_frame(<FrameReader>records, &ring)
            finally:
                (<FrameReader>records).pins -= 1
        finally:
            self.busy = False

    @cython.final
    cdef int _update_frame(self, FrameReader reader, span_ring *ring) except -1:
        cdef const uint8_t *p
        cdef Py_ssize_t n
        cdef int64_t v
        cdef list chunk
        while True:
            if self.mode != MODE_COMBINER and reader.take_ascii_int_pair(&p, &n, &v):
                self._push_span(<const char *>p, n, v, ring)
                continue
            # Any other record (or a malformed one, which raises here) is decoded, with those after it, and
            # folded after the spans before it.
            self._flush_spans(ring)
            chunk = reader.next_chunk(256)
            if not chunk:
                return 0
            self._update(chunk)

    @cython.final
    cdef int _push_span(self, const char *p, Py_ssize_t n, int64_t v, span_ring *ring) except -1:
        """Folds the int v into the accumulator of the ASCII str key at p (n bytes), as ``update`` would fold
        the pair, SPAN_AHEAD spans later (or at ``_flush_spans``): p must stay valid until then.

        A lookup in a big table waits on three dependent cache misses (its slot, its entry, the stored key):
        in W1's word count, 70% of the lookups' time went to waiting for a slot and an entry. Each stage is
        prefetched for a later span while earlier ones are folded, so the misses overlap."""
        cdef size_t j = ring.pushed
        cdef Py_hash_t h
        cdef uint64_t w
        cdef uint8_t tag
        cdef front_slot *f
        cdef ps_agg_entry *e
        cdef int64_t r
        if self.front != NULL and n <= 8:
            # A word met recently, whose count is an int64: added here, with no hash and no probe (84% of W1's
            # words are among its 4096 most frequent). Int sums come out the same in any order, so this one
            # may pass the spans still in the ring; anything else takes the ring, in order.
            w = ps_agg_short_bytes(p, <size_t>n)
            tag = <uint8_t>((1 << 4) | n)
            f = &self.front[_front_index(w, tag)]
            if f.tag == tag and f.w == w and f.idx < self.t.n_entries:
                e = &self.t.entries[f.idx]
                if (e.skey_tag == tag and e.skey == w and e.kind == PS_AGG_I64
                        and not ps_agg_add_i64(e.num.i, v, &r)):
                    e.num.i = r
                    return 0
        h = _hash_bytes(p, n)  # what hash() of the key's str gives
        if h == -1:
            h = -2
        ring.p[j % SPAN_RING] = p
        ring.n[j % SPAN_RING] = n
        ring.h[j % SPAN_RING] = h
        ring.v[j % SPAN_RING] = v
        ring.pushed = j + 1
        ps_agg_prefetch_slot(&self.t, h)
        if j >= ring.folded + 8:
            ps_agg_prefetch_entry(&self.t, ring.h[(j - 8) % SPAN_RING])
        if j >= ring.folded + 16:
            ps_agg_prefetch_key(&self.t, ring.h[(j - 16) % SPAN_RING])
        if ring.pushed - ring.folded > SPAN_AHEAD:
            j = ring.folded
            ring.folded = j + 1
            return self._fold_span(ring.p[j % SPAN_RING], ring.n[j % SPAN_RING], ring.h[j % SPAN_RING],
                                   ring.v[j % SPAN_RING])
        return 0

    @cython.final
    cdef void _front_fill(self, const char *p, Py_ssize_t n, int64_t idx) noexcept:
        """Remembers that the word at p (n bytes) is entry idx, when it is short and its key an exact str."""
        cdef uint64_t w
        cdef uint8_t tag
        cdef front_slot *f
        if self.front == NULL or n > 8 or idx > <int64_t>0xFFFFFFFF:
            return
        w = ps_agg_short_bytes(p, <size_t>n)
        tag = <uint8_t>((1 << 4) | n)
        if self.t.entries[idx].skey_tag != tag:
            return  # a str subclass (or other) key equal to the word: only the probe may settle it
        f = &self.front[_front_index(w, tag)]
        f.w = w
        f.idx = <uint32_t>idx
        f.tag = tag

    @cython.final
    cdef int _flush_spans(self, span_ring *ring) except -1:
        """Folds every span still waiting in the ring, in order."""
        cdef size_t j
        while ring.folded < ring.pushed:
            j = ring.folded
            ring.folded = j + 1
            self._fold_span(ring.p[j % SPAN_RING], ring.n[j % SPAN_RING], ring.h[j % SPAN_RING],
                            ring.v[j % SPAN_RING])
        return 0

    @cython.final
    cdef int _fold_span(self, const char *p, Py_ssize_t n, Py_hash_t h, int64_t v) except -1:
        """Folds the int v into the accumulator of the ASCII str key at p (n bytes), whose str hash is h, as
        ``update`` would fold the pair (the key's str made only if the table lacks it)."""
        cdef span_ctx ctx
        cdef int64_t idx
        cdef size_t pos
        cdef ps_agg_entry *e
        cdef PyObject *key
        cdef ps_agg_num num
        num.i = v
        ctx.p = p
        ctx.n = n
        ctx.unsure = False
        if ps_agg_find(&self.t, h, _span_eq, &ctx, &idx, &pos) != PS_OK:
            raise RuntimeError("aggregation table probe failed")
        if idx >= 0:
            self._front_fill(p, n, idx)
            return self._combine(idx, PS_AGG_I64, num, NULL)
        cdef object value = None if self.canon and not ctx.unsure else v
        if n <= 8 and not ctx.unsure:
            idx = self._insert_inline(ps_agg_short_bytes(p, <size_t>n), <uint8_t>((1 << 4) | n), h, pos)
        else:
            key = _new_str(n, 127)
            if key == NULL:
                raise MemoryError()
            memcpy(_str_data(key), p, <size_t>n)
            try:
                if ctx.unsure:
                    # A key that may equal it, which only its __eq__ can settle: the pair as any other.
                    return self._accumulate(key, <PyObject *>value)
                idx = self._insert(key, h, pos)
            finally:
                _decref(key)  # the table holds its own reference
        e = &self.t.entries[idx]
        if value is None:
            e.kind = PS_AGG_I64
            e.num = num
        else:
            _incref(<PyObject *>value)
            e.kind = PS_AGG_OBJ
            e.num.obj = <PyObject *>value
        self._front_fill(p, n, idx)
        return 0

    @cython.final
    cdef int _count_line_words(self, const unsigned char *p, Py_ssize_t n, span_ring *ring) except -1:
        """Adds 1 per word of the ASCII line at p (n bytes), split as ``str.split()`` splits it, through the
        ring: the line must stay valid until the ring is flushed."""
        cdef Py_ssize_t i = 0, start
        while i < n:
            while i < n and ps_ascii_space[p[i]]:
                i += 1
            start = i
            while i < n and not ps_ascii_space[p[i]]:
                i += 1
            if i > start:
                self._push_span(<const char *>p + start, i - start, 1, ring)
        return 0

    @cython.final
    cdef int _count_line(self, object line, span_ring *ring) except -1:
        cdef PyObject *lp = <PyObject *>line
        if _is_str(lp) and _is_compact_ascii(lp):
            return self._count_line_words(<const unsigned char *>_str_data(lp), _str_len(lp), ring)
        self._flush_spans(ring)  # the words before this line are counted before its own
        return self._update_keys(line.split())

    def count_words(self, lines):
        """Adds 1 per word of ``line.split()`` for every line: ``flatMap(lambda l: l.split())`` followed by
        counting, fused. ASCII str lines are split in C without creating a str per word (only new keys of
        more than 8 characters are created; shorter ones are kept inline, see agg_kernel.pxd); any other
        line goes through its own ``split()``. ``lines`` is an iterable, or a FrameReader
        (read to its end), whose ASCII str records are split where they lie in the frame, with no str made
        for them either. Needs a sum table (``operator.add``)."""
        cdef tuple held
        cdef span_ring ring
        ring.pushed = ring.folded = 0
        if self.mode != MODE_SUM:
            raise ValueError("count_words() needs a table summing with operator.add")
        if self.front == NULL:
            # 128 KiB, for a table that counts words (without it, no cache: calloc failing is no error)
            self.front = <front_slot *>calloc(1 << FRONT_BITS, sizeof(front_slot))
        self._enter()
        try:
            if type(lines) is not FrameReader:
                # The ring points into the lines' characters: a chunk of them is held until its words are
                # folded (a generator's line would be gone, and a key's __eq__ may empty the caller's list).
                it = iter(lines)
                while True:
                    held = tuple(islice(it, 4096))
                    if not held:
                        return
                    for line in held:
                        self._count_line(line, &ring)
                    self._flush_spans(&ring)
            (<FrameReader>lines).pins += 1  # the ring points into its frame
            try:
                self._count_frame_words(<FrameReader>lines, &ring)
            finally:
                (<FrameReader>lines).pins -= 1
        finally:
            self.busy = False

    @cython.final
    cdef int _count_frame_words(self, FrameReader reader, span_ring *ring) except -1:
        cdef const uint8_t *p
        cdef Py_ssize_t n
        cdef list chunk
        while True:
            if reader.take_ascii_str(&p, &n):
                self._count_line_words(<const unsigned char *>p, n, ring)
                continue
            # Any other record (or a malformed one, which raises here) is decoded, with those after it.
            self._flush_spans(ring)
            chunk = reader.next_chunk(256)
            if not chunk:
                return 0
            for line in chunk:
                self._count_line(line, ring)
            self._flush_spans(ring)  # before the chunk, and the lines the ring points into, go

    def update_keys(self, keys):
        """Folds the value 1 into each key's accumulator (a counter's countByValue)."""
        self._enter()
        try:
            self._update_keys(keys)
        finally:
            self.busy = False


cdef tuple _as_pair(rec, Py_ssize_t i):
    try:
        pair = tuple(rec)
    except TypeError:
        pair = None
    if pair is None or len(pair) != 2:
        raise TypeError(f"record {i} is not a (key, value) pair: {rec!r:.80}")
    return pair
