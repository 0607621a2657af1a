# cython: language_level=3
"""Stable, process-independent hashing of keys (XXH64 over a canonical encoding).

Python's own ``hash()`` of str and bytes is salted per process, so it cannot route a key to the same
partition in two worker processes. ``key_hash`` is defined on the key's value instead:

* int (and bool, and floats with an integral value) by numeric value, so ``1 == 1.0 == True`` agree;
  values in the int64 range hash their 8 two's-complement bytes, larger ones their minimal
  little-endian two's-complement encoding;
* other floats by their IEEE-754 bits (every NaN is one canonical NaN, -0.0 is the integer 0);
* str by its UTF-8 bytes, bytes/bytearray by their bytes;
* tuples element-wise (XXH64 over the elements' hashes), frozensets order-independently;
* None by a constant; date/time/datetime/timedelta by their field values (aware datetimes in UTC);
* any other number (Decimal, Fraction, complex, numpy scalars) as the int or float it equals, if it equals
  one, else by Python's numeric hash, which is not salted: equal keys of different numeric types
  (``5 == numpy.int64(5) == Decimal(5)``) always share a partition, as Python's dict puts them together.

Each kind uses its own seed so that, say, the str "1" and the int 1 do not collide by construction.
Keys of any other type fall back to ``hash(key)``, which is stable across processes only for types whose
hash is not salted; the docs say so.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.ref cimport PyObject
from libc.math cimport floor, isnan, isinf
from libc.stdint cimport uint64_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from pystream._core.ps_xxhash cimport ps_xxh64, ps_xxh64_u64

import datetime as _dt
import numbers as _numbers

from pystream.errors import KeyTooDeepError

# How deep _tuple_hash has recursed (it runs with the GIL held, so one counter serves every thread).
cdef int _depth = 0
cdef enum:
    _MAX_DEPTH = 1000

cdef extern from "Python.h":
    bint PyUnicode_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    bint PyBytes_CheckExact(object o)

cdef enum:
    SEED_NONE = 0x6E6F6E65
    SEED_INT = 0x696E7436
    SEED_BIGINT = 0x62696769
    SEED_FLOAT = 0x666C6F74
    SEED_BYTES = 0x62797465
    SEED_TUPLE = 0x7475706C
    SEED_FROZENSET = 0x66736574
    SEED_DATE = 0x64617465
    SEED_DATETIME = 0x64746D65
    SEED_TIME = 0x74696D65
    SEED_TIMEDELTA = 0x7464656C
    SEED_OTHER = 0x6F746872
    SEED_NUMBER = 0x6E756D62

cdef enum:
    # Tuples this short hash their element hashes from a stack buffer.
    _STACK_TUPLE = 16

cdef object _UTC = _dt.timezone.utc
cdef object _EPOCH_NAIVE = _dt.datetime(1970, 1, 1)


cdef inline uint64_t _int64_hash(int64_t v) noexcept nogil:
    return ps_xxh64_u64(<uint64_t>v, SEED_INT)


cdef uint64_t _bigint_hash(object v) except? 0:
    cdef Py_ssize_t n = (v.bit_length() + 8) // 8  # +1 bit of sign, rounded up to bytes
    data = v.to_bytes(n, "little", signed=True)
    return ps_xxh64(PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data), SEED_BIGINT)


cdef uint64_t _int_hash(object v) except? 0:
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow == 0:
        return _int64_hash(x)
    return _bigint_hash(v)


cdef uint64_t _float_hash(double d) except? 0:
    cdef uint64_t bits
    if isnan(d):
        d = float("nan")  # one canonical NaN bit pattern, whatever the payload
    elif not isinf(d) and floor(d) == d:
        if -9.2233720368547758e18 <= d < 9.2233720368547758e18:
            return _int64_hash(<int64_t>d)
        return _bigint_hash(int(d))
    memcpy(&bits, &d, 8)
    return ps_xxh64_u64(bits, SEED_FLOAT)


cdef uint64_t _str_hash(object s) except? 0:
    cdef Py_ssize_t n = 0
    cdef const char *p
    try:
        p = PyUnicode_AsUTF8AndSize(s, &n)
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8; they still need a stable hash.
        data = str.encode(s, "utf-8", "surrogatepass")  # a str subclass's own encode() may say anything
        return ps_xxh64(PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data), SEED_STR)
    return ps_xxh64(p, <size_t>n, SEED_STR)


cdef int _enter_nested() except -1:
    global _depth
    # Nested keys recurse on the C stack: too deep, an error, not a crash (CPython's own hash of a tuple
    # nests deeper, on smaller frames).
    if _depth >= _MAX_DEPTH:
        raise KeyTooDeepError(f"a key nested more than {_MAX_DEPTH} deep (a tuple in a tuple in ...) cannot be "
                              "hashed")
    _depth += 1
    return 0


cdef inline void _leave_nested() noexcept:
    global _depth
    _depth -= 1


cdef uint64_t _tuple_hash(tuple t) except? 0:
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(t)
    cdef uint64_t stack[_STACK_TUPLE]
    cdef uint64_t *buf = stack
    cdef uint64_t h
    _enter_nested()
    try:
        if n > _STACK_TUPLE:
            buf = <uint64_t *>malloc(<size_t>n * sizeof(uint64_t))
            if buf == NULL:
                raise MemoryError()
        for i in range(n):
            buf[i] = key_hash(<object>PyTuple_GET_ITEM(t, i))
        h = ps_xxh64(buf, <size_t>n * sizeof(uint64_t), SEED_TUPLE)
    finally:
        if buf != stack:
            free(buf)
        _leave_nested()
    return h


cdef object _as_int_or_float(object key):
    """The int, else the float, that ``key`` (a number of another type) equals; None if it equals neither."""
    try:
        real = key
        if isinstance(key, complex) or (isinstance(key, _numbers.Complex) and not isinstance(key, _numbers.Real)):
            if key.imag != 0:
                return None
            real = key.real
        as_int = int(real)
        if as_int == key:
            return as_int
        as_float = float(real)
        if as_float == key:
            return as_float
    except Exception:  # not convertible (inf, nan, or a type that refuses): it equals no int
        pass
    try:
        as_float = float(key.real if isinstance(key, complex) else key)
        if as_float != as_float:
            return as_float  # a NaN of any type: the one canonical NaN
    except Exception:
        pass
    return None


cdef uint64_t _other_hash(object key) except? 0:
    cdef uint64_t acc_sum = 0, acc_xor = 0, h
    cdef uint64_t words[2]
    if isinstance(key, (tuple,)):
        return _tuple_hash(<tuple>key)
    if isinstance(key, bool) or isinstance(key, int):
        return _int_hash(key)
    if isinstance(key, float):
        return _float_hash(<double>key)
    if isinstance(key, str):
        return _str_hash(key)  # its characters, not what an overridden __str__ says
    if isinstance(key, (bytes, bytearray)):
        data = bytes(key)
        return ps_xxh64(PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data), SEED_BYTES)
    if key is None:
        return ps_xxh64_u64(0, SEED_NONE)
    if isinstance(key, frozenset):
        # Equal sets may iterate in different orders: combine order-independently.
        _enter_nested()
        try:
            for item in key:
                h = key_hash(item)
                acc_sum += h
                acc_xor ^= h
        finally:
            _leave_nested()
        words[0] = acc_sum
        words[1] = acc_xor ^ <uint64_t>len(key)
        return ps_xxh64(words, 16, SEED_FROZENSET)
    if isinstance(key, _dt.datetime):
        seed = SEED_DATETIME
        if key.tzinfo is not None and key.utcoffset() is not None:
            # Aware datetimes are equal when they name the same instant; naive and aware never compare equal.
            key = key.astimezone(_UTC).replace(tzinfo=None)
            seed = SEED_DATETIME + 1
        return ps_xxh64_u64(_int_hash((key - _EPOCH_NAIVE) // _dt.timedelta(microseconds=1)), seed)
    if isinstance(key, _dt.date):
        return ps_xxh64_u64(<uint64_t>key.toordinal(), SEED_DATE)
    if isinstance(key, _dt.timedelta):
        return ps_xxh64_u64(<uint64_t>_int_hash(key // _dt.timedelta(microseconds=1)), SEED_TIMEDELTA)
    if isinstance(key, _dt.time) and key.tzinfo is None:
        return ps_xxh64_u64(<uint64_t>(((key.hour * 60 + key.minute) * 60 + key.second) * 1000000
                                       + key.microsecond), SEED_TIME)
    if isinstance(key, _numbers.Number) or (hasattr(key, "__int__") and hasattr(key, "__float__")):
        same = _as_int_or_float(key)
        if type(same) is int:
            return _int_hash(same)
        if type(same) is float:
            return _float_hash(<double>same)
        return ps_xxh64_u64(<uint64_t>(<int64_t>hash(key)), SEED_NUMBER)
    return ps_xxh64_u64(<uint64_t>(<int64_t>hash(key)), SEED_OTHER)


cdef uint64_t key_hash(object key) except? 0:
    if PyUnicode_CheckExact(key):
        return _str_hash(key)
    if PyLong_CheckExact(key):
        return _int_hash(key)
    if PyTuple_CheckExact(key):
        return _tuple_hash(<tuple>key)
    if PyFloat_CheckExact(key):
        return _float_hash(PyFloat_AS_DOUBLE(key))
    if PyBytes_CheckExact(key):
        return ps_xxh64(PyBytes_AS_STRING(key), <size_t>PyBytes_GET_SIZE(key), SEED_BYTES)
    return _other_hash(key)


def portable_hash(key) -> int:
    """Return the stable 64-bit hash of ``key`` as a non-negative int.

    Equal keys give equal hashes in every process and every run (unlike ``hash()`` of str), and
    ``portable_hash(1) == portable_hash(1.0) == portable_hash(True)``. The partition of a key among
    ``n`` partitions is ``portable_hash(key) % n``.
    """
    return key_hash(key)


def xxh64(data, unsigned long long seed=0) -> int:
    """Return the XXH64 digest of a bytes-like object (or str, as UTF-8) as an int, bit-exact with
    ``xxhash.xxh64_intdigest``."""
    cdef const unsigned char[::1] view
    cdef uint64_t h
    if isinstance(data, str):
        data = (<str>data).encode("utf-8")
    if isinstance(data, bytes):
        return ps_xxh64(PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data), seed)
    mv = memoryview(data)
    if mv.ndim != 1 or mv.format not in ("B", "b", "c"):
        mv = mv.cast("B")
    elif mv.format != "B":
        mv = mv.cast("B")
    view = mv
    if view.shape[0] == 0:
        return ps_xxh64(NULL, 0, seed)
    with nogil:
        h = ps_xxh64(&view[0], <size_t>view.shape[0], seed)
    return h
