from libc.stdint cimport uint64_t
from pystream._core.ps_xxhash cimport ps_xxh64

cdef extern from "Python.h":
    bint PyUnicode_CheckExact(object o)
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void *PyUnicode_DATA(object o)

cdef enum:
    SEED_STR = 0x73747269

# Stable hash of a key (see hashing.pyx for the canonical encoding); equal keys hash equally in every process.
cdef uint64_t key_hash(object key) except? 0


cdef inline uint64_t fast_key_hash(object key) except? 0:
    # Per-record loops elsewhere inline the commonest case (an ASCII str key: its bytes are its UTF-8) and
    # call across modules only for the rest.
    if PyUnicode_CheckExact(key) and PyUnicode_IS_COMPACT_ASCII(key):
        return ps_xxh64(PyUnicode_DATA(key), <size_t>PyUnicode_GET_LENGTH(key), SEED_STR)
    return key_hash(key)
