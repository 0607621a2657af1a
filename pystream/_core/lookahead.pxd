# cython: language_level=3
"""Starting a keyed kernel's dict lookups before their turn, so the cache misses of a lookup in a state of a
million keys overlap the work on the records before it. Inline helpers only (cimported by state.pyx).
"""
from cpython.list cimport PyList_GET_ITEM
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE


cdef extern from "Python.h":
    bint PyTuple_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    Py_hash_t PyObject_Hash(object o)


cdef inline PyObject *_plain_key(list batch, Py_ssize_t j) noexcept:
    """Record j's key if looking it up ahead of its turn is harmless (an exact int or str, whose hash can
    neither fail nor run user code), else NULL."""
    cdef PyObject *rec = PyList_GET_ITEM(batch, j)
    cdef PyObject *k
    if not PyTuple_CheckExact(<object>rec) or PyTuple_GET_SIZE(<object>rec) != 2:
        return NULL
    k = PyTuple_GET_ITEM(<object>rec, 0)
    if PyLong_CheckExact(<object>k) or PyUnicode_CheckExact(<object>k):
        return k
    return NULL


cdef extern from *:
    """
    /* Prefetching a dict lookup before it happens: where CPython 3.11 and 3.12 keep a hash's first probe, its
     * entry and its value (Objects/dict-common.h). Only ever used to issue prefetches and to read memory the
     * dict owns at that moment: a wrong guess (a collision, another layout) costs a wasted cache line, never a
     * wrong result. Elsewhere ps_dict_peek does nothing. */
    #include <stdint.h>
    #include "ps_common.h"  /* PS_PREFETCHING */
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000 && !defined(Py_LIMITED_API) && !defined(Py_GIL_DISABLED)
    typedef struct {
        Py_ssize_t dk_refcnt;
        uint8_t dk_log2_size;
        uint8_t dk_log2_index_bytes;
        uint8_t dk_kind;
        uint32_t dk_version;
        Py_ssize_t dk_usable;
        Py_ssize_t dk_nentries;
        char dk_indices[];
    } ps_dictkeys;

    static inline Py_ssize_t ps_dict_index(const ps_dictkeys *dk, size_t i) {
        switch (dk->dk_log2_index_bytes - dk->dk_log2_size) {
        case 0: return ((const int8_t *)dk->dk_indices)[i];
        case 1: return ((const int16_t *)dk->dk_indices)[i];
        case 2: return ((const int32_t *)dk->dk_indices)[i];
        default: return ((const int64_t *)dk->dk_indices)[i];
        }
    }

    /* stage 0: the index slot; 1: the entry; 2: the stored key and value; 3: what a tuple value holds. */
    PS_PREFETCHING void ps_dict_peek(PyObject *dict, Py_hash_t hash, int stage) {
        const ps_dictkeys *dk = (const ps_dictkeys *)((PyDictObject *)dict)->ma_keys;
        size_t i, width;
        Py_ssize_t ix;
        PyObject *key, *value;
        if (((PyDictObject *)dict)->ma_values != NULL || dk->dk_kind > 1) return;  /* split tables */
        i = (size_t)hash & (((size_t)1 << dk->dk_log2_size) - 1);
        width = (size_t)1 << (dk->dk_log2_index_bytes - dk->dk_log2_size);
        if (stage == 0) { __builtin_prefetch(dk->dk_indices + i * width); return; }
        ix = ps_dict_index(dk, i);
        if (ix < 0 || ix >= dk->dk_nentries) return;
        const char *entries = dk->dk_indices + ((size_t)1 << dk->dk_log2_index_bytes);
        const char *entry = entries + (size_t)ix * (dk->dk_kind ? 2 : 3) * sizeof(void *);
        if (stage == 1) { __builtin_prefetch(entry); return; }
        if (dk->dk_kind) {
            key = ((PyObject *const *)entry)[0];
            value = ((PyObject *const *)entry)[1];
        } else {
            if (((const Py_hash_t *)entry)[0] != hash) return;
            key = ((PyObject *const *)entry)[1];
            value = ((PyObject *const *)entry)[2];
        }
        if (key == NULL || value == NULL) return;
        if (stage == 2) { __builtin_prefetch(key); __builtin_prefetch(value); return; }
        if (PyTuple_CheckExact(value)) {
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(value); j++) __builtin_prefetch(PyTuple_GET_ITEM(value, j));
            /* Its collector header, which sits before the object, often on the cache line before: the
             * replaced state is freed (tupledealloc reads the header) right after the update. */
            __builtin_prefetch((const char *)value - 2 * sizeof(void *));  /* PyGC_Head, 3.11-3.12 */
        }
    }
    #else
    static inline void ps_dict_peek(PyObject *dict, Py_hash_t hash, int stage) { (void)dict; (void)hash; (void)stage; }
    #endif
    """
    void ps_dict_peek(PyObject *d, Py_hash_t h, int stage) noexcept


cdef struct _Peek:
    # Hashes of the records a lookup pipeline is working on, by record index mod 16 (0: not an exact int/str).
    Py_hash_t hash[16]
    bint ok[16]


cdef inline void _peek_hash(_Peek *pk, list chunk, Py_ssize_t j) noexcept:
    cdef PyObject *k = _plain_key(chunk, j)
    pk.ok[j & 15] = k != NULL
    if k != NULL:
        # An exact int or str: hashing can neither fail nor run user code (a str caches its hash).
        pk.hash[j & 15] = PyObject_Hash(<object>k)


cdef inline void _peek_start(_Peek *pk, list chunk, Py_ssize_t n) noexcept:
    cdef Py_ssize_t j
    for j in range(min(8, n)):
        _peek_hash(pk, chunk, j)


cdef inline void _peek_ahead(_Peek *pk, dict d, list chunk, Py_ssize_t i, Py_ssize_t n, int stages) noexcept:
    """Before record i's lookup in ``d``: start the lookups of the next records, one dependent load per
    record further ahead (index slot 8 records ahead, entry 6, key and value 4, a tuple value's items 2), so
    the cache misses of a lookup overlap the work on the records before it. ``stages`` 3 stops at the value.
    Each record's hash is taken once, 8 records ahead (``_peek_start`` takes the chunk's first 8)."""
    cdef Py_ssize_t stage, j
    if i + 8 < n:
        _peek_hash(pk, chunk, i + 8)
    for stage in range(stages):
        j = i + 8 - 2 * stage
        if j < n and pk.ok[j & 15]:
            ps_dict_peek(<PyObject *>d, pk.hash[j & 15], stage)
