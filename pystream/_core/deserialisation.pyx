# cython: language_level=3
"""Record frames, the decoding half: a frame back into equal Python records, all at once (``decode``) or a
chunk at a time (``FrameReader``), with every length, count and tag checked before it is used.

The byte-level checks (header, varints, checksum) are C in csrc/ps_frame.[ch] and csrc/ps_buf.h; this module
builds the Python objects. ``serialisation`` writes the frames.

Frames may embed pickles (for values that are not exactly one of the built-in types), so decoding a
frame runs the same risk as ``pickle.loads``: only decode frames produced by a trusted pystream process.
The checksum detects corruption, it does not authenticate.
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

from pystream._core.ps_common cimport *
from pystream._core.ps_frame cimport *
from pystream._core.memory cimport bulk_begin, bulk_end
from pystream._core.status cimport raise_status

import pickle

import lz4.block

from pystream.errors import CorruptFrameError, IllegalStateError


cdef extern from "Python.h":
    int PyGC_Disable()
    int PyGC_Enable()
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object o)
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    object PyLong_FromLongLong(long long v)
    object PyFloat_FromDouble(double v)
    object PyByteArray_FromStringAndSize(const char *s, Py_ssize_t n)
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_READ
    void PyObject_GC_UnTrack(void *o)


cdef int MAX_DEPTH = PS_MAX_DEPTH
MAGIC = PS_FRAME_MAGIC[:4]  # from ps_frame.h, the one place the format defines it

cdef object _pickle_loads = pickle.loads
cdef object _lz4_decompress = lz4.block.decompress


cdef int _fail(_dstate *s, ps_status st, str what) except -1:
    raise_status(st, f"record {s.record} at payload offset {ps_r_offset(&s.r)}: {what}")
    return -1


# The checks below run for nearly every value: each is an inline test whose failure (formatting a message)
# is a separate function, so that the compiler inlines the test into the decode loop.
cdef int _short(_dstate *s, uint64_t n, str what) except -1:
    return _fail(s, PS_ERR_TRUNCATED, f"{what} length {n} exceeds the {ps_r_left(&s.r)} bytes left")


cdef inline int _need(_dstate *s, uint64_t n, str what) except -1:
    if n > ps_r_left(&s.r):
        _short(s, n, what)
    return 0


cdef uint64_t _bad_varint(_dstate *s, ps_status st, str what) except? 0xFFFFFFFFFFFFFFFF:
    _fail(s, st, f"bad {what}")
    return 0


cdef inline uint64_t _varint(_dstate *s, str what) except? 0xFFFFFFFFFFFFFFFF:
    cdef uint64_t v = 0
    cdef ps_status st = ps_r_varint(&s.r, &v)
    if st != PS_OK:
        return _bad_varint(s, st, what)
    return v


cdef int _too_many(_dstate *s, uint64_t n, str what) except -1:
    return _fail(s, PS_ERR_COUNT, f"{what} of {n} items cannot fit in the {ps_r_left(&s.r)} bytes left")


cdef inline int _need_items(_dstate *s, uint64_t n, uint64_t per_item, str what) except -1:
    # Checked before allocating: a forged count must fail here, not in PyList_New(10**18).
    if n > ps_r_left(&s.r) // per_item:
        _too_many(s, n, what)
    return 0


cdef object _dec_str(_dstate *s, size_t n):
    cdef const uint8_t *p
    _need(s, n, "string")
    p = s.r.p
    if ps_is_ascii(p, n):
        u = PyUnicode_New(n, 127)
        memcpy(PyUnicode_DATA(u), p, n)
    else:
        try:
            u = PyUnicode_DecodeUTF8(<const char *>p, n, NULL)
        except UnicodeDecodeError as e:
            _fail(s, PS_ERR_UTF8, f"string of {n} bytes is not valid UTF-8 ({e.reason} at byte {e.start})")
    s.r.p += n
    return u


cdef object _dec_raw(_dstate *s, str what):
    cdef uint64_t n = _varint(s, f"{what} length")
    _need(s, n, what)
    b = PyBytes_FromStringAndSize(<const char *>s.r.p, n)
    s.r.p += n
    return b


cdef extern from *:
    """
    /* A value that can never be part of a reference cycle: an object of a non-GC type, or an untracked
     * exact tuple (as CPython's own tuple untracking decides: an untracked dict may be tracked later, when
     * a container is put in it, so it does not count). */
    static inline int ps_atomic(PyObject *o) {
        return !PyType_IS_GC(Py_TYPE(o)) || (PyTuple_CheckExact(o) && !PyObject_GC_IsTracked(o));
    }
    /* A tuple of the n (<= 4) references in items, stolen. Created with PyObject_GC_NewVar, which does not
     * track it; tracked unless every item is atomic. NULL (items released) on a failed allocation. */
    static PyObject *ps_tuple_steal(PyObject **items, size_t n, int atomic) {
        PyTupleObject *t = PyObject_GC_NewVar(PyTupleObject, &PyTuple_Type, (Py_ssize_t)n);
        if (t == NULL) {
            for (size_t i = 0; i < n; i++) Py_DECREF(items[i]);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) t->ob_item[i] = items[i];
        if (!atomic) PyObject_GC_Track((PyObject *)t);
        return (PyObject *)t;
    }
    """
    bint _atomic "ps_atomic"(PyObject *o)
    object ps_tuple_steal(PyObject **items, size_t n, bint atomic)


cdef extern from *:
    """
    /* One record of the commonest shape, a tuple of 1 to 4 scalars (a shared or short ASCII str, an int64,
     * a float, None, a bool), decoded without the generic decoder's recursion and per-value dispatch.
     * 1: decoded, the new tuple stored in out[i]; 0: another shape, or anything unusual or malformed (nothing
     * consumed, nothing changed: the generic decoder starts over at the same byte and reports any damage);
     * -1: an exception (MemoryError). A new literal string joins the string table only once its whole
     * record has decoded, so that starting over cannot add it twice. */
    static int ps_dec_flat_record(ps_reader *r, PyObject *strings, int keep, PyObject *out, Py_ssize_t i) {
        const uint8_t *p = r->p, *end = r->end;
        if (PS_UNLIKELY(p >= end)) return 0;
        size_t n = (size_t)p[0] - PS_TAG_TUPLE_SMALL;
        if (n - 1 >= 4) return 0;  /* unsigned: only 1..4 */
        ps_reader rr = {r->start, p + 1, end};
        Py_ssize_t nstr = PyList_GET_SIZE(strings);
        PyObject *items[4];
        unsigned literals = 0;
        size_t k;
        for (k = 0; k < n; k++) {
            if (PS_UNLIKELY(rr.p >= end)) goto other;
            uint8_t t = *rr.p++;
            PyObject *o;
            uint64_t v;
            if (t == PS_TAG_STRREF) {
                if (ps_r_varint(&rr, &v) != PS_OK || v >= (uint64_t)nstr) goto other;
                o = PyList_GET_ITEM(strings, (Py_ssize_t)v);
                Py_INCREF(o);
            } else if (t >= PS_TAG_INT_SMALL && t < PS_TAG_STR_SMALL) {
                o = PyLong_FromLong((long)(t - PS_TAG_INT_SMALL));  /* a cached small int */
            } else if (t == PS_TAG_INT) {
                if (ps_r_varint(&rr, &v) != PS_OK) goto other;
                if ((o = PyLong_FromLongLong(ps_unzigzag(v))) == NULL) goto fail;
            } else if (t >= PS_TAG_STR_SMALL && t < PS_TAG_STR_SMALL_END) {
                size_t len = (size_t)(t - PS_TAG_STR_SMALL);
                if ((size_t)(end - rr.p) < len || !ps_is_ascii(rr.p, len)) goto other;
                if ((o = PyUnicode_New((Py_ssize_t)len, 127)) == NULL) goto fail;
                memcpy(PyUnicode_DATA(o), rr.p, len);
                rr.p += len;
                if (len && keep) literals |= 1u << k;  /* the empty string is never in the table */
            } else if (t == PS_TAG_FLOAT) {
                if (end - rr.p < 8) goto other;
                if ((o = PyFloat_FromDouble(ps_load_f64le(rr.p))) == NULL) goto fail;
                rr.p += 8;
            } else if (t == PS_TAG_NONE) {
                o = Py_None;
                Py_INCREF(o);
            } else if (t == PS_TAG_TRUE || t == PS_TAG_FALSE) {
                o = t == PS_TAG_TRUE ? Py_True : Py_False;
                Py_INCREF(o);
            } else {
                goto other;
            }
            items[k] = o;
        }
        for (size_t j = 0; literals >> j; j++) {
            if ((literals >> j) & 1 && PyList_Append(strings, items[j]) < 0) {
                PyList_SetSlice(strings, nstr, PyList_GET_SIZE(strings), NULL);
                goto fail;
            }
        }
        /* Every item is of a type the collector ignores: the tuple is created untracked. */
        PyTupleObject *tup = PyObject_GC_NewVar(PyTupleObject, &PyTuple_Type, (Py_ssize_t)n);
        if (tup == NULL) {
            PyList_SetSlice(strings, nstr, PyList_GET_SIZE(strings), NULL);
            goto fail;
        }
        for (size_t j = 0; j < n; j++) tup->ob_item[j] = items[j];
        PyList_SET_ITEM(out, i, (PyObject *)tup);
        r->p = rr.p;
        return 1;
    other:
        while (k--) Py_DECREF(items[k]);
        return 0;
    fail:
        while (k--) Py_DECREF(items[k]);
        return -1;
    }

    /* ps_dec_flat_record for out[i], out[i + 1], ... up to out[n - 1]: the index of the first record it
     * did not decode (n when it did them all), or -1 on an exception. */
    static Py_ssize_t ps_dec_flat_run(ps_reader *r, PyObject *strings, int keep, PyObject *out, Py_ssize_t i,
                                      Py_ssize_t n) {
        for (; i < n; i++) {
            int st = ps_dec_flat_record(r, strings, keep, out, i);
            if (st <= 0) return st < 0 ? -1 : i;
        }
        return n;
    }
    """
    Py_ssize_t ps_dec_flat_run(ps_reader *r, PyObject *strings, int keep, object out, Py_ssize_t i,
                               Py_ssize_t n) except -1


cdef object _dec_tuple(_dstate *s, size_t n, int depth):
    cdef Py_ssize_t i
    cdef bint atomic = True
    _need_items(s, n, 1, "tuple")
    if 0 < n <= 4:
        return _dec_small_tuple(s, n, depth)
    t = PyTuple_New(n)
    for i in range(<Py_ssize_t>n):
        item = _dec(s, depth + 1)
        if atomic and not _atomic(<PyObject *>item):
            atomic = False
        Py_INCREF(item)
        PyTuple_SET_ITEM(t, i, item)
    if atomic and n:
        # CPython untracks such tuples at their first GC pass anyway; doing it now spares the collector
        # from walking a million fresh record tuples that can never be part of a cycle.
        PyObject_GC_UnTrack(<void *>t)
    return t


cdef object _dec_small_tuple(_dstate *s, size_t n, int depth):
    # The items first, then the tuple: one that holds only atomic values (str, int, float, ...) is created
    # untracked, instead of being linked into the collector's list and unlinked again.
    cdef PyObject *items[4]
    cdef size_t i, done = 0
    cdef bint atomic = True
    cdef object item
    try:
        for done in range(n):
            item = _dec(s, depth + 1)
            if atomic and not _atomic(<PyObject *>item):
                atomic = False
            Py_INCREF(item)
            items[done] = <PyObject *>item
        done = n
    finally:
        if done != n:
            for i in range(done):
                Py_DECREF(<object>items[i])
    return ps_tuple_steal(items, n, atomic)


cdef object _dec_list(_dstate *s, size_t n, int depth):
    cdef Py_ssize_t i
    _need_items(s, n, 1, "list")
    lst = PyList_New(n)
    for i in range(<Py_ssize_t>n):
        item = _dec(s, depth + 1)
        Py_INCREF(item)
        PyList_SET_ITEM(lst, i, item)
    return lst


cdef object _dec_dict(_dstate *s, size_t n, int depth):
    cdef size_t i
    _need_items(s, n, 2, "dict")
    d = {}
    for i in range(n):
        k = _dec(s, depth + 1)
        v = _dec(s, depth + 1)
        try:
            PyDict_SetItem(d, k, v)
        except Exception as e:
            _fail(s, PS_ERR_TAG, f"dict key of type {type(k).__qualname__} is unusable ({e!r})")
    return d


cdef object _dec_pickle(_dstate *s):
    data = _dec_raw(s, "pickle")
    try:
        return _pickle_loads(data)
    except Exception as e:
        raise CorruptFrameError(
            f"record {s.record} at payload offset {ps_r_offset(&s.r)}: embedded pickle of {len(data)} bytes "
            f"failed to load: {e!r}"
        ) from e


cdef object _dec(_dstate *s, int depth):
    cdef uint8_t tag
    cdef uint64_t n
    cdef ps_reader *r = &s.r
    if r.p >= r.end:
        _fail(s, PS_ERR_TRUNCATED, "payload ends where a value was expected")
    tag = r.p[0]
    r.p += 1
    if tag >= PS_TAG_STR_SMALL:
        if tag < PS_TAG_STR_SMALL_END:
            u = _dec_str(s, tag - PS_TAG_STR_SMALL)
            if tag != PS_TAG_STR_SMALL and s.keep_strings:
                PyList_Append(<object>s.strings, u)
            return u
        r.p -= 1
        _fail(s, PS_ERR_TAG, f"unknown value tag 0x{tag:02x}")
    if tag >= PS_TAG_INT_SMALL:
        return PyLong_FromLongLong(tag - PS_TAG_INT_SMALL)
    if tag >= PS_TAG_TUPLE_SMALL:
        if depth >= MAX_DEPTH:
            _fail(s, PS_ERR_DEPTH, f"containers nested more than {MAX_DEPTH} deep")
        if tag >= PS_TAG_LIST_SMALL:
            return _dec_list(s, tag - PS_TAG_LIST_SMALL, depth)
        return _dec_tuple(s, tag - PS_TAG_TUPLE_SMALL, depth)
    if tag == PS_TAG_STRREF:
        n = _varint(s, "string reference")
        if n >= <uint64_t>PyList_GET_SIZE(<object>s.strings):
            r.p -= 1
            _fail(s, PS_ERR_COUNT, f"string reference #{n} but only {PyList_GET_SIZE(<object>s.strings)} "
                                   "strings precede it")
        return <object>PyList_GET_ITEM(<object>s.strings, n)
    if tag == PS_TAG_INT:
        return PyLong_FromLongLong(ps_unzigzag(_varint(s, "int")))
    if tag == PS_TAG_STRTAB_END:
        if not s.keep_strings:
            r.p -= 1
            _fail(s, PS_ERR_TAG, "the string table ends a second time")
        s.keep_strings = False
        return _dec(s, depth)  # the value it prefixes (once: a second end fails above)
    if tag == PS_TAG_STR:
        return _dec_str(s, _varint(s, "string length"))
    if tag == PS_TAG_NONE:
        return None
    if tag == PS_TAG_TRUE:
        return True
    if tag == PS_TAG_FALSE:
        return False
    if tag == PS_TAG_FLOAT:
        _need(s, 8, "float")
        r.p += 8
        return PyFloat_FromDouble(ps_load_f64le(r.p - 8))
    if tag == PS_TAG_TUPLE or tag == PS_TAG_LIST or tag == PS_TAG_DICT:
        if depth >= MAX_DEPTH:
            _fail(s, PS_ERR_DEPTH, f"containers nested more than {MAX_DEPTH} deep")
        n = _varint(s, "container size")
        if tag == PS_TAG_TUPLE:
            return _dec_tuple(s, n, depth)
        if tag == PS_TAG_LIST:
            return _dec_list(s, n, depth)
        return _dec_dict(s, n, depth)
    if tag == PS_TAG_BYTES:
        return _dec_raw(s, "bytes")
    if tag == PS_TAG_BYTEARRAY:
        n = _varint(s, "bytearray length")
        _need(s, n, "bytearray")
        b = PyByteArray_FromStringAndSize(<const char *>r.p, n)
        r.p += n
        return b
    if tag == PS_TAG_BIGINT:
        return int.from_bytes(_dec_raw(s, "big int"), "little", signed=True)
    if tag == PS_TAG_PICKLE:
        return _dec_pickle(s)
    r.p -= 1
    _fail(s, PS_ERR_TAG, f"unknown value tag 0x{tag:02x}")


cdef str _header_problem(ps_status st, ps_frame_header *h, size_t length, uint64_t computed):
    cdef size_t total = PS_FRAME_HEADER_SIZE + h.stored_len
    if st == PS_ERR_MAGIC:
        return f"bad magic {bytes(h.magic[:4])!r}, expected {MAGIC!r}"
    if st == PS_ERR_TRUNCATED and (length < PS_FRAME_HEADER_SIZE):
        return f"buffer of {length} bytes is shorter than the {PS_FRAME_HEADER_SIZE}-byte frame header"
    if st == PS_ERR_VERSION:
        return (f"format version {h.version} is not supported (this build reads versions {PS_FRAME_MIN_VERSION} "
                f"to {PS_FRAME_VERSION})")
    if st == PS_ERR_FLAGS:
        if h.flags & ~PS_FRAME_FLAG_LZ4:
            return f"unknown flag bits 0x{h.flags & ~PS_FRAME_FLAG_LZ4:02x} set (flags byte 0x{h.flags:02x})"
        return f"reserved header field is 0x{h.reserved:04x}, must be 0"
    if st == PS_ERR_LENGTH:
        if h.flags & PS_FRAME_FLAG_LZ4:
            return (f"declared uncompressed length {h.raw_len} is implausible for {h.stored_len} lz4 bytes "
                    f"(max ratio {PS_LZ4_MAX_RATIO}) or the stored length is absurd")
        return f"uncompressed length {h.raw_len} != stored length {h.stored_len} in an uncompressed frame"
    if st == PS_ERR_COUNT:
        return f"record count {h.count} exceeds the {h.raw_len}-byte payload (every record needs a byte)"
    if st == PS_ERR_TRUNCATED:
        return f"frame truncated: {length} bytes, but the header declares {total}"
    if st == PS_ERR_TRAILING:
        return f"{length - total} trailing bytes after the {total}-byte frame (decode takes exactly one frame)"
    if st == PS_ERR_CHECKSUM:
        return f"checksum mismatch: header says 0x{h.checksum:016x}, payload hashes to 0x{computed:016x}"
    return "invalid frame header"


cdef inline void _start(_dstate *s, const uint8_t *p, size_t n, list strings) noexcept:
    s.r.start = p
    s.r.p = p
    s.r.end = p + n
    s.record = 0
    s.strings = <PyObject *>strings
    s.keep_strings = True


cdef int _check_end(_dstate *s, uint64_t count) except -1:
    if s.r.p != s.r.end:
        s.record = count
        _fail(s, PS_ERR_TRAILING, f"{ps_r_left(&s.r)} payload bytes left after the last of {count} records")
    return 0


cdef int _dec_records(_dstate *s, list out, Py_ssize_t n, Py_ssize_t first) except -1:
    """Decode the next ``n`` records, numbered from ``first`` in error messages, into a fresh list's empty
    slots: runs of flat tuples in C, any other record through the generic decoder."""
    cdef Py_ssize_t i = 0
    while i < n:
        i = ps_dec_flat_run(&s.r, s.strings, s.keep_strings, out, i, n)
        if i < n:
            s.record = first + i
            item = _dec(s, 0)
            Py_INCREF(item)
            PyList_SET_ITEM(out, i, item)
            i += 1
    return 0


cdef enum:
    # Frames of at least this many records decode into objects on huge pages (memory.bulk_begin): their
    # page faults were more than half of decoding them.
    _BULK_RECORDS = 8192


cdef list _decode_payload(const uint8_t *p, size_t n, uint64_t count):
    cdef _dstate s
    cdef Py_ssize_t i
    cdef bint bulk = count >= _BULK_RECORDS and bulk_begin()
    try:
        strings = []
        _start(&s, p, n, strings)
        # ps_frame_header_parse has checked count <= payload bytes, so this allocation is bounded by the input.
        out = PyList_New(<Py_ssize_t>count)
        _dec_records(&s, out, <Py_ssize_t>count, 0)
        _check_end(&s, count)
        return <list>out
    finally:
        if bulk:
            bulk_end()


cdef object _open_payload(const uint8_t *buf, size_t length, ps_frame_header *h, const uint8_t **payload):
    """Validate the frame at ``buf`` and point ``*payload`` at its records: in place, or (an lz4 frame) in the
    returned bytes, which the caller keeps while it reads. Returns None for an uncompressed frame."""
    cdef uint64_t computed
    cdef ps_status st = ps_frame_validate(buf, length, h, &computed)
    if st != PS_OK:
        raise_status(st, _header_problem(st, h, length, computed))
    if not (h.flags & PS_FRAME_FLAG_LZ4):
        payload[0] = buf + PS_FRAME_HEADER_SIZE
        return None
    # raw_len was bounded by the lz4 ratio in ps_frame_header_parse, so this allocation is safe.
    src = PyMemoryView_FromMemory(<char *>buf + PS_FRAME_HEADER_SIZE, h.stored_len, PyBUF_READ)
    try:
        raw = _lz4_decompress(src, uncompressed_size=h.raw_len)
    except Exception as e:
        raise CorruptFrameError(f"lz4 payload of {h.stored_len} bytes failed to decompress: {e}") from e
    if PyBytes_GET_SIZE(raw) != <Py_ssize_t>h.raw_len:
        raise CorruptFrameError(
            f"lz4 payload decompressed to {PyBytes_GET_SIZE(raw)} bytes, header declares {h.raw_len}"
        )
    payload[0] = <const uint8_t *>PyBytes_AS_STRING(raw)
    return raw


cdef list _decode_frame(const uint8_t *buf, size_t length):
    cdef ps_frame_header h
    cdef const uint8_t *payload
    raw = _open_payload(buf, length, &h, &payload)  # holds a decompressed payload while it is decoded
    return _decode_payload(payload, h.raw_len, h.count)


def decode(buffer):
    cdef Py_buffer view
    cdef int gc_was_enabled
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    # A frame decodes into fresh, acyclic objects (pickled ones aside): letting the cyclic collector run every
    # 700 of them only re-walks the young generation; it resumes, with the objects counted, on return.
    gc_was_enabled = PyGC_Disable()
    try:
        return _decode_frame(<const uint8_t *>view.buf, view.len)
    finally:
        if gc_was_enabled:
            PyGC_Enable()
        PyBuffer_Release(&view)


cdef inline const uint8_t *_table_end(const uint8_t *q, const uint8_t *end, bint *keep) noexcept:
    """Past the end of the string table at q, if there is one (``keep`` then False); q otherwise. NULL for
    NULL, or for an end the table already had (an error that the generic decoder reports)."""
    if q == NULL or q >= end or q[0] != PS_TAG_STRTAB_END:
        return q
    if not keep[0]:
        return NULL
    keep[0] = False
    return q + 1


cdef inline const uint8_t *_ascii_literal(const ps_reader *r, const uint8_t *q, bint keep,
                                          uint64_t *size) noexcept:
    """Where the bytes of the str value at q begin (``size`` of them), if it is a str of ASCII characters
    that the frame keeps no reference to: a long one, an empty one, or any once the table ended (``keep``
    False). NULL for any other value, or a malformed one."""
    cdef ps_reader t
    cdef uint8_t tag
    if q == NULL or q >= r.end:
        return NULL
    tag = q[0]
    if PS_TAG_STR_SMALL <= tag < PS_TAG_STR_SMALL_END:
        size[0] = tag - PS_TAG_STR_SMALL
        if size[0] != 0 and keep:
            return NULL  # a literal a later PS_TAG_STRREF may name: it must become a str object
        q += 1
    elif tag == PS_TAG_STR:
        t.start, t.p, t.end = r.start, q + 1, r.end
        if ps_r_varint(&t, size) != PS_OK:
            return NULL
        q = t.p
    else:
        return NULL
    if size[0] > <uint64_t>(r.end - q) or not ps_is_ascii(q, size[0]):
        return NULL
    return q


@cython.final
cdef class FrameReader:
    """The records of one frame, decoded a chunk at a time instead of all at once.

    A consumer that handles records in order (a state kernel, a pipeline) decodes a few hundred, processes
    them and drops them before decoding more: they are freed while still in cache, and the next chunk's
    objects reuse the very memory they held. Decoding a whole frame first, then walking it, then freeing it
    touches every record three times from main memory.

    The frame is ``buffer[offset:offset + length]`` (to its end by default). The header and checksum are
    checked up front, as ``decode`` does; a malformed record raises CorruptFrameError when it is reached.
    The reader holds the buffer until ``close()``, after which reading raises ValueError: a reader must not
    outlive the memory it was given.
    """

    def __cinit__(self, buffer, Py_ssize_t offset=0, Py_ssize_t length=-1):
        cdef ps_frame_header h
        cdef const uint8_t *start
        cdef const uint8_t *payload
        PyObject_GetBuffer(buffer, &self._view, PyBUF_SIMPLE)
        self._has_view = True
        if length < 0:
            length = self._view.len - offset
        if offset < 0 or offset > self._view.len or length > self._view.len - offset:
            self._release()
            raise ValueError(f"frame span [{offset}, {offset} + {length}) is outside the {self._view.len}-byte buffer")
        start = <const uint8_t *>self._view.buf + offset
        try:
            self._raw = _open_payload(start, length, &h, &payload)
        except BaseException:
            self._release()
            raise
        if self._raw is not None:
            self._release()  # the payload now lives in _raw: the caller's memory is no longer needed
        self._strings = []
        _start(&self._s, payload, h.raw_len, self._strings)
        self.count = <Py_ssize_t>h.count
        self._next = 0

    cdef void _release(self) noexcept:
        if self._has_view:
            self._has_view = False
            PyBuffer_Release(&self._view)

    def __dealloc__(self):
        self._release()

    def close(self):
        """Stop reading: release the buffer and the decompressed payload. Raises IllegalStateError while a
        kernel reads the frame in place (from a key's ``__eq__`` called by that kernel)."""
        if self.pins:
            raise IllegalStateError("a FrameReader cannot be closed while a kernel reads its frame")
        self._release()
        self._raw = None
        self._s.r.start = self._s.r.p = self._s.r.end = NULL
        self._next = -1

    def __len__(self):
        return self.count

    @property
    def remaining(self):
        """Records not decoded yet."""
        return 0 if self._next < 0 else self.count - self._next

    cpdef list next_chunk(self, Py_ssize_t size=256):
        """Return a new list of up to ``size`` further records; [] once every record was read."""
        cdef Py_ssize_t i, n
        cdef int gc_was_enabled
        if self._next < 0:
            raise ValueError("this FrameReader is closed")
        if size < 1:
            raise ValueError(f"chunk size must be positive, got {size}")
        n = min(size, self.count - self._next)
        out = PyList_New(n)
        # A chunk that fails is not half read: where the frame was, and its string table, are as before it,
        # so the same chunk can be read again (say, a record whose unpickling failed for a passing reason).
        cdef const uint8_t *at = self._s.r.p
        cdef bint keep = self._s.keep_strings
        cdef Py_ssize_t record = self._s.record
        cdef Py_ssize_t strings = len(self._strings) if self._strings is not None else 0
        gc_was_enabled = PyGC_Disable()
        try:
            _dec_records(&self._s, out, n, self._next)
            self._next += n
        except BaseException:
            self._s.r.p = at
            self._s.keep_strings = keep
            self._s.record = record
            if self._strings is not None:
                del self._strings[strings:]
            raise
        finally:
            if gc_was_enabled:
                PyGC_Enable()
        if self._next == self.count:
            _check_end(&self._s, <uint64_t>self.count)
        return <list>out


    cdef int take_ascii_str(self, const uint8_t **p, Py_ssize_t *n) except -1:
        """1, with the span of its bytes in the frame, when the next record is a str of ASCII characters
        that the frame keeps no reference to (a long one, or once the string table has ended): the record
        is then read, with no str made. 0, reading nothing, for any other record, or none left, or one that
        is malformed (``next_chunk`` reads it, or says what is wrong with it)."""
        cdef bint keep = self._s.keep_strings
        cdef uint64_t size
        cdef const uint8_t *q = self._next_record()
        q = _table_end(q, self._s.r.end, &keep)
        q = _ascii_literal(&self._s.r, q, keep, &size)
        if q == NULL:
            return 0
        p[0] = q
        n[0] = <Py_ssize_t>size
        return self._took(q + size, keep)

    cdef int take_ascii_int_pair(self, const uint8_t **p, Py_ssize_t *n, int64_t *v) except -1:
        """1, with its key's bytes in the frame and its int, when the next record is a (str, int) pair whose
        str is of ASCII characters the frame keeps no reference to, and whose int fits int64: the record is
        then read, with no object made. 0, reading nothing, otherwise (``next_chunk`` reads the record)."""
        cdef ps_reader *r = &self._s.r
        cdef ps_reader t
        cdef bint keep = self._s.keep_strings
        cdef uint64_t size, raw
        cdef uint8_t tag
        cdef const uint8_t *key
        # The end of the string table may prefix the pair or its key (not both: a second end is an error).
        cdef const uint8_t *q = _table_end(self._next_record(), r.end, &keep)
        if q == NULL or q >= r.end or q[0] != PS_TAG_TUPLE_SMALL + 2:
            return 0
        key = _ascii_literal(r, _table_end(q + 1, r.end, &keep), keep, &size)
        if key == NULL:
            return 0
        q = key + size
        if q >= r.end:
            return 0
        tag = q[0]
        if PS_TAG_INT_SMALL <= tag < PS_TAG_STR_SMALL:
            v[0] = tag - PS_TAG_INT_SMALL
            q += 1
        elif tag == PS_TAG_INT:
            t.start, t.p, t.end = r.start, q + 1, r.end
            if ps_r_varint(&t, &raw) != PS_OK:
                return 0
            v[0] = ps_unzigzag(raw)
            q = t.p
        else:
            return 0
        p[0] = key
        n[0] = <Py_ssize_t>size
        return self._took(q, keep)

    cdef const uint8_t *_next_record(self) except? NULL:
        # Where the next record starts; NULL when every record was read.
        if self._next < 0:
            raise ValueError("this FrameReader is closed")
        if self._next >= self.count:
            return NULL
        return self._s.r.p

    cdef int _took(self, const uint8_t *end, bint keep) except -1:
        # The record a take_* method read in place ends at ``end``; ``keep`` is False if it ended the table.
        self._s.r.p = end
        self._s.keep_strings = keep
        self._next += 1
        if self._next == self.count:
            _check_end(&self._s, <uint64_t>self.count)
        return 1

    def __iter__(self):
        return FrameReaderIterator(self)


@cython.final
cdef class FrameReaderIterator:
    """Iterates a FrameReader's records, decoding them a chunk at a time. ``operator.length_hint`` of it is
    exact (the records it has yet to give), so a count needs no decoding."""

    cdef FrameReader _reader
    cdef list _chunk
    cdef Py_ssize_t _pos

    def __cinit__(self, FrameReader reader not None):
        self._reader = reader
        self._chunk = []
        self._pos = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._pos >= PyList_GET_SIZE(self._chunk):
            self._chunk = self._reader.next_chunk(256)
            self._pos = 0
            if PyList_GET_SIZE(self._chunk) == 0:
                raise StopIteration
        item = <object>PyList_GET_ITEM(self._chunk, self._pos)
        self._pos += 1
        return item

    def __length_hint__(self):
        return PyList_GET_SIZE(self._chunk) - self._pos + self._reader.remaining


cdef int _parse_header_at(buffer, Py_ssize_t offset, ps_frame_header *h) except -1:
    cdef Py_buffer view
    cdef ps_status st
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    try:
        if offset < 0 or offset > view.len:
            raise ValueError(f"offset {offset} is outside the {view.len}-byte buffer")
        st = ps_frame_header_parse(<const uint8_t *>view.buf + offset, view.len - offset, h)
        if st != PS_OK:
            raise_status(st, _header_problem(st, h, view.len - offset, 0))
    finally:
        PyBuffer_Release(&view)
    return 0


def frame_length(buffer, Py_ssize_t offset=0):
    cdef ps_frame_header h
    _parse_header_at(buffer, offset, &h)
    return PS_FRAME_HEADER_SIZE + h.stored_len


def frame_count(buffer):
    cdef ps_frame_header h
    _parse_header_at(buffer, 0, &h)
    return h.count
