# cython: language_level=3
"""Keyed aggregation tables behind reduceByKey, combineByKey, countByValue and the window operators.

Keys follow dict semantics (``hash()``, then identity or ``==``) and come out in first-insertion order.
Values are combined left to right in arrival order, exactly as Python would with the same function;
``operator.add`` / ``lambda a, b: a + b``, ``min``, ``max`` and counting run in C while the values are
exact ints (int64) or floats, and fall back to the Python operation the moment they are not.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

from pystream._core.ps_agg cimport *
from pystream._core.ps_common cimport *
from pystream._core.status cimport check_status

import operator
import types

from pystream.errors import IllegalStateError

__all__ = ["AggTable"]


cdef extern from *:
    """
    /* str caches its hash in the object: read it without the two calls PyObject_Hash makes. */
    static inline Py_hash_t ps_key_hash(PyObject *o) {
        if (PyUnicode_CheckExact(o)) {
            Py_hash_t h = ((PyASCIIObject *)o)->hash;
            if (h != -1) return h;
        }
        return PyObject_Hash(o);
    }
    """
    ctypedef struct PyObject
    ctypedef Py_ssize_t Py_hash_t
    Py_hash_t _hash "ps_key_hash"(PyObject *o)


cdef extern from "Python.h":
    # Raw-pointer spellings with no implied error checks: the hot loops own their references and
    # test results themselves, so Cython must not add a refcount pair or a PyErr_Occurred per call.
    int Py_LT
    int Py_GT
    int Py_EQ
    void _incref "Py_INCREF"(PyObject *o)
    void _decref "Py_DECREF"(PyObject *o)
    void _xdecref "Py_XDECREF"(PyObject *o)
    int _richcmp "PyObject_RichCompareBool"(PyObject *a, PyObject *b, int op)
    bint _is_int "PyLong_CheckExact"(PyObject *o)
    bint _is_float "PyFloat_CheckExact"(PyObject *o)
    bint _is_str "PyUnicode_CheckExact"(PyObject *o)
    bint _is_tuple "PyTuple_CheckExact"(PyObject *o)
    Py_ssize_t _tuple_size "PyTuple_GET_SIZE"(PyObject *o)
    PyObject *_tuple_item "PyTuple_GET_ITEM"(PyObject *o, Py_ssize_t i)
    Py_ssize_t _list_size "PyList_GET_SIZE"(PyObject *o)
    PyObject *_list_item "PyList_GET_ITEM"(PyObject *o, Py_ssize_t i)
    long long _as_ll "PyLong_AsLongLongAndOverflow"(PyObject *o, int *overflow)
    double _as_double "PyFloat_AS_DOUBLE"(PyObject *o)
    PyObject *_from_ll "PyLong_FromLongLong"(long long v)
    PyObject *_from_double "PyFloat_FromDouble"(double v)
    PyObject *_add "PyNumber_Add"(PyObject *a, PyObject *b)
    PyObject *_sub "PyNumber_Subtract"(PyObject *a, PyObject *b)
    PyObject *_vcall "PyObject_Vectorcall"(PyObject *f, PyObject **args, size_t nargsf, PyObject *kw)
    void _prefetch "PS_AGG_PREFETCH"(PyObject *p)
    Py_ssize_t _str_len "PyUnicode_GET_LENGTH"(PyObject *o)
    int _str_kind "PyUnicode_KIND"(PyObject *o)
    void *_str_data "PyUnicode_DATA"(PyObject *o)
    bint _is_compact_ascii "PyUnicode_IS_COMPACT_ASCII"(PyObject *o)
    Py_hash_t _hash_bytes "_Py_HashBytes"(const void *p, Py_ssize_t n)
    PyObject *_new_str "PyUnicode_New"(Py_ssize_t size, Py_UCS4 maxchar)
    bint _gc_is "PyObject_IS_GC"(PyObject *o)
    int _gc_tracked "PyObject_GC_IsTracked"(PyObject *o)
    void _gc_untrack "PyObject_GC_UnTrack"(PyObject *o)


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


cdef enum:
    MODE_SUM = 1
    MODE_MIN = 2
    MODE_MAX = 3
    MODE_GENERIC = 4
    MODE_COMBINER = 5

cdef enum:
    INV_NONE = 0
    INV_SUB = 1
    INV_GENERIC = 2

cdef enum:
    OP_ADD = 1
    OP_SUB = 2
    OP_MIN = 3
    OP_MAX = 4
    OP_CALL = 5

# Built in Python (eval), not Cython, so that they carry real bytecode to compare against.
_REF_ADD = eval("lambda a, b: a + b").__code__
_REF_SUB = eval("lambda a, b: a - b").__code__
_ONE = 1


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


cdef struct eq_ctx:
    PyObject *key


cdef inline uint8_t _short_str(PyObject *s, uint64_t *out) noexcept:
    """Packs an exact str of at most 8 data bytes as (tag, bytes); tag 0 if it is longer.  Two
    exact strs are equal iff their kinds, lengths and data are, and the tag holds kind and length."""
    cdef int kind = _str_kind(s)
    cdef size_t nb = <size_t>_str_len(s) * kind
    if nb > 8:
        return 0
    out[0] = 0
    memcpy(out, _str_data(s), nb)
    return <uint8_t>((kind << 4) | nb)


cdef int _key_eq(void *ctx, const ps_agg_entry *e) noexcept:
    # dict order: the stored key is the left operand of ==.
    cdef PyObject *stored = <PyObject *>e.key
    cdef PyObject *probe = (<eq_ctx *>ctx).key
    cdef Py_ssize_t n
    cdef int kind
    cdef uint64_t w
    if stored == probe:
        return 1
    if e.skey_tag and _is_str(probe):
        # Stored key is a short exact str: decide from the entry alone.
        return _short_str(probe, &w) == e.skey_tag and w == e.skey
    if _is_str(stored) and _is_str(probe):
        # Same answer as str.__eq__ without the call; the hashes already matched.
        n = _str_len(stored)
        kind = _str_kind(stored)
        if n != _str_len(probe) or kind != _str_kind(probe):
            return 0
        return memcmp(_str_data(stored), _str_data(probe), <size_t>n * kind) == 0
    return _richcmp(stored, probe, Py_EQ)


cdef struct span_ctx:
    const char *p
    Py_ssize_t n


cdef int _span_eq(void *ctx, const ps_agg_entry *e) noexcept:
    # A word of an ASCII line equals a stored key only if that key is an exact str with the same bytes.
    cdef PyObject *stored = <PyObject *>e.key
    cdef span_ctx *c = <span_ctx *>ctx
    cdef uint64_t w = 0
    if e.skey_tag:
        # A short str key's kind, length and bytes live in the entry: no need to touch the key object.
        if c.n > 8 or e.skey_tag != <uint8_t>((1 << 4) | c.n):
            return 0
        memcpy(&w, c.p, <size_t>c.n)
        return w == e.skey
    if not _is_str(stored) or _str_kind(stored) != 1 or _str_len(stored) != c.n:
        return 0
    return memcmp(_str_data(stored), c.p, <size_t>c.n) == 0


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


cdef inline object _value(const ps_agg_entry *e):
    if e.kind == PS_AGG_I64:
        return e.num.i
    if e.kind == PS_AGG_F64:
        return e.num.f
    return <object>e.num.obj


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


@cython.final
cdef class AggTable:
    """Insertion-ordered table from key to accumulator: ``AggTable(reducer, inverse=None)``."""

    cdef ps_agg_table t
    cdef int mode
    cdef int inv
    cdef bint busy
    cdef bint canon  # numeric modes keep exact ints / floats unboxed even after a Python op
    cdef readonly object reducer
    cdef readonly object inverse
    cdef object create_combiner
    cdef object merge_value
    cdef object merge_combiners

    def __cinit__(self, *args, **kwargs):
        check_status(ps_agg_init(&self.t, 0))

    def __dealloc__(self):
        if self.t.slots != NULL:
            _release_table(&self.t)

    def __init__(self, reducer, inverse=None):
        if not callable(reducer):
            raise TypeError(f"reducer must be callable, got {type(reducer).__name__}")
        if inverse is not None and not callable(inverse):
            raise TypeError(f"inverse must be callable or None, got {type(inverse).__name__}")
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
    def combiner(create_combiner, merge_value, merge_combiners):
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
        return t

    # ---- plumbing -------------------------------------------------------------------------------

    cdef int _enter(self) except -1:
        # User functions run in the middle of a probe: letting them mutate this table would
        # invalidate the slot and entry positions the loop holds.
        if self.busy:
            raise IllegalStateError("AggTable modified from inside one of its own user functions")
        self.busy = True
        return 0

    cdef int64_t _find(self, PyObject *key, Py_hash_t h, size_t *pos) except -2:
        cdef eq_ctx ctx
        cdef int64_t idx
        ctx.key = key
        if ps_agg_find(&self.t, h, _key_eq, &ctx, &idx, pos) != PS_OK:
            return -2  # the key's __eq__ raised
        return idx

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
            return self._apply(idx, OP_CALL, self.merge_value, kind, num, obj)
        return self._apply(idx, OP_CALL, self.reducer, kind, num, obj)

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

    cdef int _merge(self, AggTable other, bint subtract) except -1:
        cdef size_t r, j = 0, n = other.t.n_live
        cdef ps_agg_entry *oe
        cdef ps_agg_entry *e
        cdef PyObject *k
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
                    idx = self._find(<PyObject *>oe.key, oe.hash, &pos)
                    if idx < 0:
                        raise KeyError(<object>oe.key)
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
            k = <PyObject *>oe.key
            kind = oe.kind
            num = oe.num
            obj = <PyObject *>oe.num.obj
            idx = self._find(k, oe.hash, &pos)
            if idx >= 0:
                if self.mode == MODE_COMBINER:
                    self._apply(idx, OP_CALL, self.merge_combiners, kind, num, obj)
                else:
                    self._combine(idx, kind, num, obj)
            else:
                idx = self._insert(k, oe.hash, pos)
                e = &self.t.entries[idx]
                e.kind = kind
                e.num = num
                if kind == PS_AGG_OBJ:
                    _incref(obj)
                    e.num.obj = obj
        return 0

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

    cdef int64_t _lookup(self, key) except -2:
        cdef Py_hash_t h = _hash(<PyObject *>key)
        cdef size_t pos
        if h == -1:
            return -2
        return self._find(<PyObject *>key, h, &pos)

    # ---- public API -----------------------------------------------------------------------------

    def update(self, records):
        """Folds (key, value) pairs into their keys' accumulators, in order."""
        self._enter()
        try:
            self._update(records)
        finally:
            self.busy = False

    cdef int _count_span(self, const char *p, Py_ssize_t n) except -1:
        cdef span_ctx ctx
        cdef int64_t idx
        cdef size_t pos
        cdef ps_agg_entry *e
        cdef PyObject *key
        cdef ps_agg_num one_num
        cdef Py_hash_t h = _hash_bytes(p, n)  # what hash() of the word's str gives
        if h == -1:
            h = -2
        ctx.p = p
        ctx.n = n
        if ps_agg_find(&self.t, h, _span_eq, &ctx, &idx, &pos) != PS_OK:
            raise RuntimeError("aggregation table probe failed")
        if idx >= 0:
            e = &self.t.entries[idx]
            if e.kind == PS_AGG_I64 and e.num.i != 0x7FFFFFFFFFFFFFFF:
                e.num.i += 1
            else:
                one_num.i = 1
                self._combine(idx, PS_AGG_I64, one_num, <PyObject *>_ONE)
            return 0
        key = _new_str(n, 127)
        if key == NULL:
            raise MemoryError()
        memcpy(_str_data(key), p, <size_t>n)
        try:
            idx = self._insert(key, h, pos)
        finally:
            _decref(key)  # the table holds its own reference
        e = &self.t.entries[idx]
        e.kind = PS_AGG_I64
        e.num.i = 1
        return 0

    def count_words(self, lines):
        """Adds 1 per word of ``line.split()`` for every line: ``flatMap(lambda l: l.split())`` followed by
        counting, fused. ASCII str lines are split in C without creating a str per word (only new keys are
        created); any other line goes through its own ``split()``. Needs a sum table (``operator.add``)."""
        cdef object line
        cdef PyObject *lp
        cdef const unsigned char *p
        cdef Py_ssize_t n, i, start
        if self.mode != MODE_SUM:
            raise ValueError("count_words() needs a table summing with operator.add")
        self._enter()
        try:
            for line in lines:
                lp = <PyObject *>line
                if _is_str(lp) and _is_compact_ascii(lp):
                    p = <const unsigned char *>_str_data(lp)
                    n = _str_len(lp)
                    i = 0
                    while i < n:
                        while i < n and ps_ascii_space[p[i]]:
                            i += 1
                        start = i
                        while i < n and not ps_ascii_space[p[i]]:
                            i += 1
                        if i > start:
                            self._count_span(<const char *>p + start, i - start)
                else:
                    self._update_keys(line.split())
        finally:
            self.busy = False

    def update_keys(self, keys):
        """Folds the value 1 into each key's accumulator (a counter's countByValue)."""
        self._enter()
        try:
            self._update_keys(keys)
        finally:
            self.busy = False

    def merge(self, other):
        """Reduce-side merge: folds other's accumulators into this table's with the reducer
        (merge_combiners for a combiner).  Keys new to this table keep other's accumulator."""
        cdef AggTable o = _check_other(other)
        if o.mode != self.mode:
            raise ValueError("cannot merge tables built with different reducers")
        if o is self:
            o = self.copy()
        self._enter()
        o.busy, was = True, o.busy
        try:
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
        cdef tuple pair
        cdef size_t r, j = 0
        cdef ps_agg_entry *e
        for r in range(self.t.n_entries):
            if r + 16 < self.t.n_entries:
                _prefetch(<PyObject *>self.t.entries[r + 16].key)
            e = &self.t.entries[r]
            if e.kind != PS_AGG_DEAD:
                pair = (<object>e.key, _value(e))
                if e.kind != PS_AGG_OBJ and not _gc_is(<PyObject *>e.key):
                    # (atomic key, number) cannot be in a cycle: spare the collector a walk over it.
                    _gc_untrack(<PyObject *>pair)
                out[j] = pair
                j += 1
        return out

    def keys(self):
        cdef list out = [None] * <Py_ssize_t>self.t.n_live
        cdef size_t r, j = 0
        for r in range(self.t.n_entries):
            if self.t.entries[r].kind != PS_AGG_DEAD:
                out[j] = <object>self.t.entries[r].key
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
            _decref(k)
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

    def copy(self):
        cdef AggTable c = AggTable.__new__(AggTable)
        cdef size_t r
        cdef ps_agg_entry *e
        cdef ps_status st
        c.mode, c.inv, c.canon = self.mode, self.inv, self.canon
        c.reducer, c.inverse = self.reducer, self.inverse
        c.create_combiner, c.merge_value, c.merge_combiners = (
            self.create_combiner, self.merge_value, self.merge_combiners)
        ps_agg_free(&c.t)
        st = ps_agg_copy(&c.t, &self.t)
        if st != PS_OK:
            check_status(ps_agg_init(&c.t, 0))
            check_status(st)
        for r in range(c.t.n_entries):
            e = &c.t.entries[r]
            _incref(<PyObject *>e.key)
            if e.kind == PS_AGG_OBJ:
                _incref(<PyObject *>e.num.obj)
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


cdef tuple _as_pair(rec, Py_ssize_t i):
    try:
        pair = tuple(rec)
    except TypeError:
        pair = None
    if pair is None or len(pair) != 2:
        raise TypeError(f"record {i} is not a (key, value) pair: {rec!r:.80}")
    return pair


def _rebuild(spec, items):
    """Unpickles an AggTable (accumulators are restored as they were, not re-reduced)."""
    reducer, inverse, combiner = spec
    cdef AggTable t = AggTable.combiner(*combiner) if combiner is not None else AggTable(reducer, inverse)
    for key, value in items:
        t._put(key, value)
    return t
