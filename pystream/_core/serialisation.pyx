# cython: language_level=3
"""Record frames, the encoding half: lists of Python records into compact, checksummed frames.

The byte-level work (header layout, varints, bounds checks, checksum) is C in csrc/ps_frame.[ch] and
csrc/ps_buf.h; this module walks Python objects, which only Cython/the C API can create quickly.
Layout and tags are documented in csrc/ps_frame.h; ``deserialisation`` reads frames back.

Frames may embed pickles (for values that are not exactly one of the built-in types), so decoding a
frame runs the same risk as ``pickle.loads``: only decode frames produced by a trusted pystream process.
The checksum detects corruption, it does not authenticate.
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Next
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from pystream._core.ps_common cimport *
from pystream._core.ps_frame cimport *
from pystream._core.status cimport raise_status

import pickle

import lz4.block

from pystream.errors import FrameOverflowError, UnserializableRecordError


cdef extern from "Python.h":
    # NULL (with UnicodeEncodeError set) for lone surrogates; checked by hand so we can fall back to pickle.
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size)
    # Never fails for an exact int, which is all we pass.
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow)
    double PyFloat_AS_DOUBLE(object o)
    char *PyByteArray_AS_STRING(object o)
    Py_ssize_t PyByteArray_GET_SIZE(object o)
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_READ
    void PyErr_Clear()


cdef int MAX_DEPTH = PS_MAX_DEPTH
# Decoding recurses on the C stack; this bound (checked on encode and decode) keeps forged frames safe.
MAX_NESTING = MAX_DEPTH
# Auto-compression only pays off for payloads big enough that lz4's fixed cost is noise.
COMPRESS_THRESHOLD = 64 * 1024
cdef Py_ssize_t _COMPRESS_THRESHOLD = COMPRESS_THRESHOLD
HEADER_SIZE = PS_FRAME_HEADER_SIZE
FORMAT_VERSION = PS_FRAME_VERSION
MAGIC = PS_FRAME_MAGIC[:4]  # from ps_frame.h, the one place the format defines it

cdef object _pickle_dumps = pickle.dumps
cdef object _pickle_loads = pickle.loads
cdef object _lz4_compress = lz4.block.compress


# ---------------------------------------------------------------------------------------------- encode

cdef int _grow(ps_writer *w, size_t n) except -1:
    cdef ps_status st = ps_writer_grow(w, n)
    if st != PS_OK:
        raise_status(st, f"cannot reserve {n} more bytes after {w.len} written")
    return 0


cdef inline int _reserve(ps_writer *w, size_t n) except -1:
    if w.cap - w.len >= n:
        return 0
    return _grow(w, n)


cdef inline int _enc_sized(ps_writer *w, uint8_t tag, const void *data, size_t n) except -1:
    _reserve(w, 1 + ps_varint_len(n) + n)
    ps_w_u8(w, tag)
    ps_w_varint(w, n)
    ps_w_bytes(w, data, n)
    return 0


cdef int _enc_pickle(ps_writer *w, object o) except -1:
    try:
        data = _pickle_dumps(o, 5)
    except Exception as e:
        raise UnserializableRecordError(
            f"cannot encode a {type(o).__qualname__}: it is not a built-in frame type and pickling it failed: {e}"
        ) from e
    _enc_sized(w, PS_TAG_PICKLE, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    return 0


cdef int _enc_bigint(ps_writer *w, object o) except -1:
    # Rare (beyond int64), so Python-level to_bytes is fine; +8 bits leaves room for the sign bit.
    data = o.to_bytes((o.bit_length() + 8) // 8, "little", signed=True)
    _enc_sized(w, PS_TAG_BIGINT, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    return 0


cdef int _too_deep(object o) except -1:
    raise ValueError(
        f"cannot encode a {type(o).__qualname__} nested more than {MAX_DEPTH} containers deep "
        "(self-referencing container?)"
    )


cdef enum:
    # After a trial of max(4096, records / 4) short strings, a table that found fewer than 1 in 8 repeated is
    # switched off for the rest of the frame: unique strings (text lines, keys already combined) would only
    # pay for probing it. A quarter of the frame gives late repeats (keys cycling through a large set) a
    # chance to show.
    _TABLE_TRIAL = 4096
    # Unless the strings tried are long: keys that cycle are identifiers, and strings of this many bytes on
    # average are text, whose lines do not come back. Those end the table after 4096 already: W1's lines
    # (43 bytes) were probed for a quarter of each partition, and a reader keeps every literal it read before
    # the table's end as a str, where it would count a line's words in place.
    _TEXT_BYTES = 24


cdef inline void _estate_init(_estate *e, Py_ssize_t records) noexcept:
    # The string table (not the writer, which each caller sets up over its own memory).
    ps_strtab_init(&e.strings)
    e.probes = 0
    e.hits = 0
    e.probed_bytes = 0
    e.table_off = False
    e.end_pending = False
    e.trial = max(<uint64_t>_TABLE_TRIAL, <uint64_t>records // 4)


cdef int _open_payload_space(ps_writer *w, Py_ssize_t records) except -1:
    # A growing writer, positioned after room for the header (written last, once the payload is known). One
    # up-front reservation sized for typical small records avoids most regrowth copies.
    _reserve(w, PS_FRAME_HEADER_SIZE + min(<size_t>max(records, 0) * 16, <size_t>1 << 28) + 4096)
    w.len = PS_FRAME_HEADER_SIZE
    return 0


cdef inline int _enc_short_str(_estate *e, const uint8_t *s, size_t n) except -1:
    cdef ps_writer *w = &e.w
    cdef uint32_t h
    cdef ps_strtab_slot *sl = NULL
    if not e.table_off:
        h = ps_strhash(s, n)
        sl = ps_strtab_probe(&e.strings, w.buf, s, n, h)
        e.probes += 1
        e.probed_bytes += n
        if sl != NULL and sl.off1 != 0:
            e.hits += 1
            _reserve(w, 1 + ps_varint_len(sl.index))
            ps_w_u8(w, PS_TAG_STRREF)
            ps_w_varint(w, sl.index)
            return 0
        if (e.hits * 8 < e.probes and (e.probes == e.trial or (
                e.probes == _TABLE_TRIAL and e.probed_bytes > <uint64_t>_TEXT_BYTES * e.probes))):
            # Tell the decoder too, before this literal: it need not keep this or any later one.
            e.table_off = True
            _reserve(w, 1)
            ps_w_u8(w, PS_TAG_STRTAB_END)
    _reserve(w, 1 + n)
    if sl != NULL:
        ps_strtab_fill(&e.strings, sl, w.len, h)
    e.strings.next_index += 1
    ps_w_u8(w, PS_TAG_STR_SMALL + <uint8_t>n)
    ps_w_bytes(w, s, n)
    return 0


cdef inline int _enc_str_bytes(_estate *e, const uint8_t *s, Py_ssize_t n) except -1:
    # A str by its UTF-8 bytes.
    cdef ps_writer *w = &e.w
    if 0 < n <= PS_STR_SHORT_MAX:
        return _enc_short_str(e, s, <size_t>n)
    _reserve(w, 1 if n == 0 else 1 + ps_varint_len(n) + <size_t>n)
    if n == 0:
        ps_w_u8(w, PS_TAG_STR_SMALL)
    else:
        ps_w_u8(w, PS_TAG_STR)
        ps_w_varint(w, n)
        ps_w_bytes(w, s, n)
    return 0


cdef inline int _enc_ll(ps_writer *w, long long v) except -1:
    if 0 <= v < 64:
        _reserve(w, 1)
        ps_w_u8(w, PS_TAG_INT_SMALL + <uint8_t>v)
    else:
        _reserve(w, 1 + ps_varint_len(ps_zigzag(v)))
        ps_w_u8(w, PS_TAG_INT)
        ps_w_varint(w, ps_zigzag(v))
    return 0


cdef int _enc(_estate *e, object o, int depth) except -1:
    cdef ps_writer *w = &e.w
    cdef type t = type(o)
    cdef Py_ssize_t n, i, written
    cdef const char *s
    cdef long long v
    cdef int overflow = 0
    cdef PyObject *kp
    cdef PyObject *vp

    if t is str:
        s = PyUnicode_AsUTF8AndSize(o, &n)
        if s == NULL:
            # Lone surrogates have no UTF-8 form; pickle stores them (surrogatepass) and keeps the type.
            PyErr_Clear()
            return _enc_pickle(w, o)
        return _enc_str_bytes(e, <const uint8_t *>s, n)
    if t is int:
        v = PyLong_AsLongLongAndOverflow(o, &overflow)
        if overflow:
            return _enc_bigint(w, o)
        return _enc_ll(w, v)
    if t is tuple:
        if depth >= MAX_DEPTH:
            return _too_deep(o)
        n = PyTuple_GET_SIZE(o)
        _reserve(w, 1 if n < 16 else 1 + ps_varint_len(n))
        if n < 16:
            ps_w_u8(w, PS_TAG_TUPLE_SMALL + <uint8_t>n)
        else:
            ps_w_u8(w, PS_TAG_TUPLE)
            ps_w_varint(w, n)
        for i in range(n):
            _enc(e, <object>PyTuple_GET_ITEM(o, i), depth + 1)
        return 0
    if t is float:
        _reserve(w, 9)
        ps_w_u8(w, PS_TAG_FLOAT)
        ps_w_u64le(w, ps_f64_bits(PyFloat_AS_DOUBLE(o)))
        return 0
    if o is None:
        _reserve(w, 1)
        ps_w_u8(w, PS_TAG_NONE)
        return 0
    if t is bool:
        _reserve(w, 1)
        ps_w_u8(w, PS_TAG_TRUE if o is True else PS_TAG_FALSE)
        return 0
    if t is list:
        if depth >= MAX_DEPTH:
            return _too_deep(o)
        n = PyList_GET_SIZE(o)
        _reserve(w, 1 if n < 16 else 1 + ps_varint_len(n))
        if n < 16:
            ps_w_u8(w, PS_TAG_LIST_SMALL + <uint8_t>n)
        else:
            ps_w_u8(w, PS_TAG_LIST)
            ps_w_varint(w, n)
        for i in range(n):
            # A pickled element's __reduce__ can run arbitrary code and mutate this list.
            if PyList_GET_SIZE(o) != n:
                raise RuntimeError("list changed size during encoding")
            _enc(e, <object>PyList_GET_ITEM(o, i), depth + 1)
        if PyList_GET_SIZE(o) != n:
            raise RuntimeError("list changed size during encoding")
        return 0
    if t is dict:
        if depth >= MAX_DEPTH:
            return _too_deep(o)
        n = len(<dict>o)
        _reserve(w, 1 + ps_varint_len(n))
        ps_w_u8(w, PS_TAG_DICT)
        ps_w_varint(w, n)
        i = 0
        written = 0
        while PyDict_Next(o, &i, &kp, &vp):
            key = <object>kp
            val = <object>vp
            _enc(e, key, depth + 1)
            _enc(e, val, depth + 1)
            written += 1
        if written != n or len(<dict>o) != n:
            raise RuntimeError("dictionary changed size during encoding")
        return 0
    if t is bytes:
        return _enc_sized(w, PS_TAG_BYTES, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o))
    if t is bytearray:
        return _enc_sized(w, PS_TAG_BYTEARRAY, PyByteArray_AS_STRING(o), PyByteArray_GET_SIZE(o))
    return _enc_pickle(w, o)


cdef extern from *:
    """
    /* The string a record's probe will look up first, when it is a short ASCII str or a tuple starting with
     * one (the keyed records of a shuffle, a partition of lines): its table slot, prefetched. */
    PS_PREFETCHING void ps_prefetch_record_key(const ps_strtab *t, PyObject *rec) {
        PyObject *k = rec;
        if (PyTuple_CheckExact(rec)) {
            if (PyTuple_GET_SIZE(rec) == 0) return;
            k = PyTuple_GET_ITEM(rec, 0);
        }
        if (!PyUnicode_CheckExact(k) || !PyUnicode_IS_COMPACT_ASCII(k)) return;
        Py_ssize_t n = PyUnicode_GET_LENGTH(k);
        if (n >= 1 && n <= PS_STR_SHORT_MAX) ps_strtab_prefetch(t, (const uint8_t *)PyUnicode_DATA(k), (size_t)n);
    }
    """
    void ps_prefetch_record_key(const ps_strtab *t, PyObject *rec)


cdef enum:
    # Records ahead whose key slot is prefetched: enough to cover a miss to memory at a few tens of ns per
    # record, few enough that the slots are still in cache when their probes come.
    _PREFETCH_AHEAD = 16


cdef Py_ssize_t _enc_records(_estate *e, list records) except -1:
    cdef Py_ssize_t n = PyList_GET_SIZE(records)
    cdef Py_ssize_t i
    for i in range(n):
        if PyList_GET_SIZE(records) != n:
            raise RuntimeError("records list changed size during encoding")
        if i + _PREFETCH_AHEAD < n and not e.table_off:
            ps_prefetch_record_key(&e.strings, PyList_GET_ITEM(records, i + _PREFETCH_AHEAD))
        _enc(e, <object>PyList_GET_ITEM(records, i), 0)
    if PyList_GET_SIZE(records) != n:
        raise RuntimeError("records list changed size during encoding")
    return n


cdef inline list _as_list(records):
    if type(records) is list:
        return <list>records
    return list(records)


cpdef object private_copy(object o):
    """Return ``o`` itself when nothing can change it (see ``immutable_records``); else a copy sharing no object
    with it (a pickle round trip, as pyspark's parallelize and workers make), or ``o`` when it cannot be
    pickled."""
    if unchangeable(o, 0):
        return o
    try:
        return _pickle_loads(_pickle_dumps(o, 5))
    except Exception:  # whatever its pickling raises (ValueError for a ctypes pointer, say)
        return o


def immutable_records(list records):
    """Return whether every record is made of values nothing can change: exactly str, bytes, int, float,
    bool, complex or None, or tuples of those (at most 4 deep). Such records may be kept by reference; any
    other (a list, a dict, an object, a subclass) may be changed by its owner after it was handed over."""
    cdef Py_ssize_t i
    for i in range(PyList_GET_SIZE(records)):
        if not unchangeable(<object>PyList_GET_ITEM(records, i), 0):
            return False
    return True


def encode(records, *, compress=None):
    cdef list recs = _as_list(records)
    cdef _estate e
    cdef ps_writer *w = &e.w
    cdef ps_frame_header h
    cdef Py_ssize_t count, plen
    cdef bint do_compress
    cdef bytes out
    cdef uint8_t *dst
    ps_writer_init(w, NULL, 0)
    _estate_init(&e, PyList_GET_SIZE(recs))
    try:
        _open_payload_space(w, PyList_GET_SIZE(recs))
        count = _enc_records(&e, recs)
        plen = w.len - PS_FRAME_HEADER_SIZE
        if compress is None:
            do_compress = plen > _COMPRESS_THRESHOLD
        else:
            do_compress = bool(compress)
        if do_compress and plen > 0:
            comp = _lz4_compress(
                PyMemoryView_FromMemory(<char *>w.buf + PS_FRAME_HEADER_SIZE, plen, PyBUF_READ), store_size=False
            )
            if PyBytes_GET_SIZE(comp) < plen:
                out = PyBytes_FromStringAndSize(NULL, PS_FRAME_HEADER_SIZE + PyBytes_GET_SIZE(comp))
                dst = <uint8_t *>PyBytes_AS_STRING(out)
                memcpy(dst + PS_FRAME_HEADER_SIZE, PyBytes_AS_STRING(comp), PyBytes_GET_SIZE(comp))
                ps_frame_header_init(&h, count, PyBytes_GET_SIZE(comp), plen, PS_FRAME_FLAG_LZ4,
                                     dst + PS_FRAME_HEADER_SIZE)
                ps_frame_header_write(dst, &h)
                return out
        ps_frame_header_init(&h, count, plen, plen, 0, w.buf + PS_FRAME_HEADER_SIZE)
        ps_frame_header_write(w.buf, &h)
        return PyBytes_FromStringAndSize(<char *>w.buf, w.len)
    finally:
        ps_writer_free(w)
        ps_strtab_free(&e.strings)


def encode_into(records, buffer, Py_ssize_t offset=0):
    cdef list recs = _as_list(records)
    cdef Py_buffer view
    cdef _estate e
    cdef ps_writer *w = &e.w
    cdef ps_frame_header h
    cdef Py_ssize_t count, avail
    cdef uint8_t *dst
    # Initialised before anything can raise: the finally clause frees the table.
    _estate_init(&e, PyList_GET_SIZE(recs))
    try:
        PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE | PyBUF_WRITABLE)
    except BaseException:
        ps_strtab_free(&e.strings)
        raise
    try:
        if offset < 0 or offset > view.len:
            raise ValueError(f"offset {offset} is outside the {view.len}-byte buffer")
        avail = view.len - offset
        if avail < PS_FRAME_HEADER_SIZE:
            raise FrameOverflowError(
                f"no room for the {PS_FRAME_HEADER_SIZE}-byte frame header: {avail} bytes available at offset "
                f"{offset} of a {view.len}-byte buffer"
            )
        dst = <uint8_t *>view.buf + offset
        # The payload goes straight into the caller's buffer; the header is written last, once its
        # lengths and checksum are known, so a failed encode never leaves a valid-looking frame behind.
        ps_writer_init(w, dst + PS_FRAME_HEADER_SIZE, avail - PS_FRAME_HEADER_SIZE)
        try:
            count = _enc_records(&e, recs)
        except FrameOverflowError:
            raise FrameOverflowError(
                f"frame does not fit: {avail} bytes available at offset {offset} of a {view.len}-byte buffer "
                f"(ran out after {w.len} payload bytes)"
            ) from None
        ps_frame_header_init(&h, count, w.len, w.len, 0, w.buf)
        ps_frame_header_write(dst, &h)
        return PS_FRAME_HEADER_SIZE + <Py_ssize_t>w.len
    finally:
        ps_strtab_free(&e.strings)
        PyBuffer_Release(&view)


@cython.final
cdef class FrameWriter:
    """A frame built a record at a time: ``append``/``extend``, then ``getvalue()`` or ``write_into()``.

    It encodes exactly as ``encode(records, compress=False)`` would encode all the records appended, and can be
    read out any number of times (each read seals the records so far into a complete frame). A partitioner
    fills one per partition in a single pass over its input (``partitioning.partition_frames``).
    ``strings=False`` is for records whose strings do not repeat (a table's keys): no string table is kept,
    and the frame says so before its first record, which lets a reader take each string where it lies.
    """

    def __cinit__(self, Py_ssize_t expected=0, bint strings=True):
        ps_writer_init(&self._e.w, NULL, 0)
        _estate_init(&self._e, expected)
        if not strings:
            # Records whose strings do not repeat (a table's keys): no table, and the decoder is told before
            # the first record, so it keeps none of them and may read them where they lie.
            self._e.table_off = True
            self._e.end_pending = True
        self.count = 0
        _open_payload_space(&self._e.w, expected)

    def __dealloc__(self):
        ps_writer_free(&self._e.w)
        ps_strtab_free(&self._e.strings)

    cdef int add(self, object record) except -1:
        return self._add(record, NULL, 0, 0)

    cdef int add_str_int(self, const unsigned char *s, Py_ssize_t n, long long v) except -1:
        """Encodes the pair (str of the UTF-8 bytes s[:n], v) exactly as ``add`` encodes that tuple, with
        neither made: a table's inline key (see agg_kernel.pxd) and its count."""
        return self._add(None, s, n, v)

    cdef int _add(self, object record, const unsigned char *s, Py_ssize_t n, long long v) except -1:
        # record; or, with s, the pair (s[:n] as str, v)
        cdef size_t mark = self._e.w.len
        cdef uint64_t strings = self._e.strings.next_index
        cdef bint end_pending = self._e.end_pending
        try:
            if end_pending:
                _reserve(&self._e.w, 1)
                ps_w_u8(&self._e.w, PS_TAG_STRTAB_END)
                self._e.end_pending = False
            if s == NULL:
                _enc(&self._e, record, 0)
            else:
                _reserve(&self._e.w, 1)
                ps_w_u8(&self._e.w, PS_TAG_TUPLE_SMALL + 2)
                _enc_str_bytes(&self._e, <const uint8_t *>s, n)
                _enc_ll(&self._e.w, v)
        except BaseException:
            # A record that fails to encode leaves no partial bytes behind: the frame stays valid without it.
            self._e.w.len = mark
            self._e.end_pending = end_pending
            if self._e.strings.next_index != strings:
                # Strings it wrote are gone, but the table still points at them: stop using the table.
                self._e.strings.next_index = strings
                self._e.table_off = True
            raise
        self.count += 1
        return 0

    def append(self, record) -> None:
        """Encode one more record."""
        self.add(record)

    def extend(self, records) -> None:
        """Encode each of ``records``, in order."""
        for record in records:
            self.add(record)

    def __len__(self):
        """The size in bytes of the frame ``getvalue()`` would return now."""
        return <Py_ssize_t>self._e.w.len

    cdef void _seal(self) noexcept:
        cdef ps_frame_header h
        cdef size_t plen = self._e.w.len - PS_FRAME_HEADER_SIZE
        ps_frame_header_init(&h, <uint64_t>self.count, plen, plen, 0, self._e.w.buf + PS_FRAME_HEADER_SIZE)
        ps_frame_header_write(self._e.w.buf, &h)

    def getvalue(self) -> bytes:
        """The frame of every record appended so far (uncompressed)."""
        self._seal()
        return PyBytes_FromStringAndSize(<char *>self._e.w.buf, <Py_ssize_t>self._e.w.len)

    def write_into(self, buffer, Py_ssize_t offset=0) -> int:
        """Copy the frame into the writable ``buffer`` at ``offset``; return its length. FrameOverflowError
        (a ValueError) when it does not fit."""
        cdef Py_buffer view
        PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE | PyBUF_WRITABLE)
        try:
            if offset < 0 or offset > view.len:
                raise ValueError(f"offset {offset} is outside the {view.len}-byte buffer")
            if <size_t>(view.len - offset) < self._e.w.len:
                raise FrameOverflowError(
                    f"frame of {self._e.w.len} bytes does not fit: {view.len - offset} bytes available at offset "
                    f"{offset} of a {view.len}-byte buffer")
            self._seal()
            memcpy(<uint8_t *>view.buf + offset, self._e.w.buf, self._e.w.len)
            return <Py_ssize_t>self._e.w.len
        finally:
            PyBuffer_Release(&view)
