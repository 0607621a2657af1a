# What aggregation.pyx cimports from agg_kernel: the table type AggTable derives from, and the key probe,
# inline, since AggTable's lookups (in, get, []) run once per record in the window operators.
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.string cimport memcmp, memcpy

from pystream._core.ps_agg cimport *
from pystream._core.ps_common cimport *
from pystream._core.status cimport check_status
from pystream._core.deserialisation cimport FrameReader


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
    void _xincref "Py_XINCREF"(PyObject *o)
    int _richcmp "PyObject_RichCompareBool"(PyObject *a, PyObject *b, int op)
    bint _is_int "PyLong_CheckExact"(PyObject *o)
    bint _is_float "PyFloat_CheckExact"(PyObject *o)
    bint _is_str "PyUnicode_CheckExact"(PyObject *o)
    bint _is_tuple "PyTuple_CheckExact"(PyObject *o)
    Py_ssize_t _tuple_size "PyTuple_GET_SIZE"(PyObject *o)
    PyObject *_tuple_item "PyTuple_GET_ITEM"(PyObject *o, Py_ssize_t i)
    Py_ssize_t _list_size "PyList_GET_SIZE"(PyObject *o)
    int _list_set_slice "PyList_SetSlice"(PyObject *lst, Py_ssize_t lo, Py_ssize_t hi, PyObject *items)
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
    bint _is_list "PyList_Check"(PyObject *o)
    int _list_append "PyList_Append"(PyObject *lst, PyObject *item)
    int _gc_tracked "PyObject_GC_IsTracked"(PyObject *o)
    void _gc_untrack "PyObject_GC_UnTrack"(PyObject *o)


# Spans of ASCII key bytes (words of a line, keys of (str, int) pairs in a frame) waiting to be folded, each
# with its hash: the loops hash a span SPAN_AHEAD spans before folding it, and prefetch what its lookup will
# read meanwhile (see AggKernel._push_span).
cdef enum:
    SPAN_RING = 32  # a power of two, above SPAN_AHEAD
    SPAN_AHEAD = 24

# count_words' front cache: the entry index of recently met short words (at most 8 bytes, the skey of an
# exact str key), by their packed bytes. Only a hint: a hit is checked against the entry it names, so nothing
# that moves or drops entries needs to touch it. Only a sum table has one (count_words needs operator.add),
# whose int counts come out the same in whatever order they are added.
cdef enum:
    FRONT_BITS = 13

cdef struct front_slot:
    uint64_t w
    uint32_t idx
    uint8_t tag  # skey_tag of the word; 0 = empty

cdef struct span_ring:
    const char *p[SPAN_RING]
    Py_ssize_t n[SPAN_RING]
    Py_hash_t h[SPAN_RING]
    int64_t v[SPAN_RING]
    size_t pushed
    size_t folded


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


cdef struct eq_ctx:
    PyObject *key


cdef inline int _list_extend(PyObject *a, PyObject *b) noexcept:
    """``a.extend(b)`` for two lists (0, or -1 with an error set)."""
    cdef Py_ssize_t n = _list_size(a)
    return _list_set_slice(a, n, n, b)


cdef inline uint8_t _short_str(PyObject *s, uint64_t *out) noexcept:
    """Packs an exact str of at most 8 data bytes as (tag, bytes); tag 0 if it is longer.  Two
    exact strs are equal iff their kinds, lengths and data are, and the tag holds kind and length."""
    cdef int kind = _str_kind(s)
    cdef size_t nb = <size_t>_str_len(s) * kind
    if nb > 8:
        return 0
    out[0] = ps_agg_short_bytes(_str_data(s), nb)
    return <uint8_t>((kind << 4) | nb)


# An inline key: a live entry whose key is NULL holds a str of at most 8 ASCII characters in its skey alone
# (tag (1 << 4) | length), made by a table that folded it from bytes (count_words, a frame's pairs). No str
# object is made for it until one is asked for: W1's map task counted 65K distinct words a worker, 3.6 MB of
# str objects, which its split then freed one cache miss each; the reduce task made 40K more.
cdef inline PyObject *_new_inline_str(const ps_agg_entry *e) noexcept:
    """A new str of an inline key's characters; NULL with MemoryError set if it cannot be made."""
    cdef Py_ssize_t n = e.skey_tag & 0x0F
    cdef PyObject *s = _new_str(n, 127)
    if s != NULL:
        memcpy(_str_data(s), &e.skey, <size_t>n)  # skey holds the characters in memory order
    return s


cdef inline PyObject *_entry_key(ps_agg_entry *e) noexcept:
    """The entry's key object (a borrowed reference); an inline key's str is made now, and kept. NULL with
    MemoryError set if it cannot be made."""
    if e.key == NULL:
        e.key = _new_inline_str(e)
    return <PyObject *>e.key


cdef inline object _key_object(ps_agg_entry *e, bint keep):
    """A reference to the entry's key. An inline key's str is kept by the table with ``keep`` (a list of every
    pair holds them all anyway, and the next list then shares them, as a dict's would), else made for the
    caller alone (a consumer that drops each pair, a split that moves the entry out)."""
    cdef PyObject *s
    if keep or e.key != NULL:
        s = _entry_key(e)  # borrowed from the table
        if s == NULL:
            raise MemoryError()
        return <object>s
    s = _new_inline_str(e)  # the caller's alone
    if s == NULL:
        raise MemoryError()
    key = <object>s
    _decref(s)
    return key


cdef inline int _key_eq(void *ctx, const ps_agg_entry *e) noexcept:
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
    if stored == NULL:
        # An inline key met by a probe that is not an exact str: only its == can tell, through the str.
        stored = _entry_key(<ps_agg_entry *>e)
        if stored == NULL:
            return -1
    if _is_str(stored) and _is_str(probe):
        # Same answer as str.__eq__ without the call; the hashes already matched.
        n = _str_len(stored)
        kind = _str_kind(stored)
        if n != _str_len(probe) or kind != _str_kind(probe):
            return 0
        return memcmp(_str_data(stored), _str_data(probe), <size_t>n * kind) == 0
    return _richcmp(stored, probe, Py_EQ)


cdef void _release_table(ps_agg_table *t) noexcept


cdef class AggKernel:
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
    cdef front_slot *front  # count_words' front cache (see front_slot), allocated by its first call
    # A list type when the table groups values (groupByKey): its combiners are such lists, a value is appended to
    # its key's, and two combiners merge by extending the first (see AggTable's ``group``); else None.
    cdef object group

    # Final, so that the loops in agg_kernel.pyx call them directly (and inline the inline ones).
    @cython.final
    cdef int _enter(self) except -1

    @cython.final
    cdef inline int64_t _find(self, PyObject *key, Py_hash_t h, size_t *pos) except -2:
        cdef eq_ctx ctx
        cdef int64_t idx
        ctx.key = key
        if ps_agg_find(&self.t, h, _key_eq, &ctx, &idx, pos) != PS_OK:
            return -2  # the key's __eq__ raised
        return idx

    @cython.final
    cdef int64_t _insert(self, PyObject *key, Py_hash_t h, size_t pos) except -1
    @cython.final
    cdef int64_t _insert_inline(self, uint64_t w, uint8_t tag, Py_hash_t h, size_t pos) except -1
    @cython.final
    cdef int64_t _find_from(self, ps_agg_entry *oe, size_t *pos) except -2
    @cython.final
    cdef int64_t _insert_from(self, const ps_agg_entry *oe, size_t pos) except -1
    @cython.final
    cdef inline void _set(self, int64_t idx, PyObject *res) noexcept
    @cython.final
    cdef int _apply(self, int64_t idx, int op, object fn, uint8_t kind, ps_agg_num num,
                    PyObject *obj) except -1
    @cython.final
    cdef inline int _combine(self, int64_t idx, uint8_t kind, ps_agg_num num, PyObject *obj) except -1
    @cython.final
    cdef inline int _accumulate(self, PyObject *k, PyObject *v) except -1
    @cython.final
    cdef inline void _lookahead(self, PyObject *seq, bint is_list, bint pairs, Py_ssize_t i,
                                Py_ssize_t n, Py_hash_t *ring, uint8_t *ok) noexcept
    @cython.final
    cdef int _update(self, records) except -1
    @cython.final
    cdef int _update_keys(self, keys) except -1
    @cython.final
    cdef int _merge(self, AggKernel other, bint subtract) except -1
    @cython.final
    cdef int _group_extend(self, int64_t idx, uint8_t kind, PyObject *obj) except -1
    @cython.final
    cdef int _count_line_words(self, const unsigned char *p, Py_ssize_t n, span_ring *ring) except -1
    @cython.final
    cdef int _count_line(self, object line, span_ring *ring) except -1
    @cython.final
    cdef int _update_frame(self, FrameReader reader, span_ring *ring) except -1
    @cython.final
    cdef int _count_frame_words(self, FrameReader reader, span_ring *ring) except -1
    @cython.final
    cdef int _push_span(self, const char *p, Py_ssize_t n, int64_t v, span_ring *ring) except -1
    @cython.final
    cdef int _flush_spans(self, span_ring *ring) except -1
    @cython.final
    cdef void _front_fill(self, const char *p, Py_ssize_t n, int64_t idx) noexcept
    @cython.final
    cdef int _fold_span(self, const char *p, Py_ssize_t n, Py_hash_t h, int64_t v) except -1
