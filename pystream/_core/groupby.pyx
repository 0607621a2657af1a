# cython: language_level=3
"""Columnar group-by on numpy arrays: per-key sums of an int64 key column and a value column.

The batch counterpart of :mod:`pystream._core.aggregation` (which combines Python records one by one with
dict key semantics): here keys are int64s and values int64s or float64s, summed in one C pass without the
GIL (``ps_keysum`` in csrc/ps_agg.c). Keys come out in first-occurrence order.
"""
from libc.stdint cimport int64_t, uint64_t

from pystream._core.ps_agg cimport (
    ps_keysum,
    ps_keysum_export_f64,
    ps_keysum_export_i128,
    ps_keysum_export_i64,
    ps_keysum_export_keys,
    ps_keysum_f64,
    ps_keysum_fits_i64,
    ps_keysum_free,
    ps_keysum_i64,
    ps_keysum_len,
)
from pystream._core.ps_common cimport ps_status
from pystream._core.status cimport check_status

# numpy only serves these entry points, which import it when first called: processes that never use them
# (workers, most drivers) neither pay its import time nor its memory.

__all__ = ["sum_by_key_i64", "sum_by_key_f64"]

_I64 = "int64"
_F64 = "float64"


cdef object _column(x, str name, dtype):
    import numpy as np
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {dtype}, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got {x.ndim} dimensions")
    return np.ascontiguousarray(x)


cdef tuple _columns(keys, values, vdtype):
    k = _column(keys, "keys", _I64)
    v = _column(values, "values", vdtype)
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"keys and values differ in length: {k.shape[0]} != {v.shape[0]}")
    return k, v


def sum_by_key_i64(keys, values):
    """(unique_keys, sums) for int64 keys and values, keys in first-occurrence order.  Sums are
    exact: int64 when every sum fits, otherwise an object array of Python ints."""
    import numpy as np
    k, v = _columns(keys, values, _I64)
    cdef const int64_t[::1] kv = k
    cdef const int64_t[::1] vv = v
    cdef size_t n = kv.shape[0]
    cdef const int64_t *kp = &kv[0] if n else NULL
    cdef const int64_t *vp = &vv[0] if n else NULL
    cdef ps_keysum *ks = NULL
    cdef ps_status st
    cdef int64_t[::1] out_k
    cdef int64_t[::1] out_s
    cdef uint64_t[::1] lo
    cdef int64_t[::1] hi
    with nogil:
        st = ps_keysum_i64(kp, vp, n, &ks)
    check_status(st)
    try:
        m = ps_keysum_len(ks)
        uniq = np.empty(m, dtype=np.int64)
        out_k = uniq
        if m:
            ps_keysum_export_keys(ks, &out_k[0])
        if ps_keysum_fits_i64(ks):
            sums = np.empty(m, dtype=np.int64)
            out_s = sums
            if m:
                ps_keysum_export_i64(ks, &out_s[0])
        else:
            lo_a = np.empty(m, dtype=np.uint64)
            hi_a = np.empty(m, dtype=np.int64)
            lo = lo_a
            hi = hi_a
            ps_keysum_export_i128(ks, &lo[0], &hi[0])
            sums = np.empty(m, dtype=object)
            sums[:] = [(h << 64) + l for h, l in zip(hi_a.tolist(), lo_a.tolist())]
    finally:
        ps_keysum_free(ks)
    return uniq, sums


def sum_by_key_f64(keys, values):
    """(unique_keys, sums) for int64 keys and float64 values, keys in first-occurrence order; each
    sum adds left to right from the key's first value, as Python's reduce would."""
    import numpy as np
    k, v = _columns(keys, values, _F64)
    cdef const int64_t[::1] kv = k
    cdef const double[::1] vv = v
    cdef size_t n = kv.shape[0]
    cdef const int64_t *kp = &kv[0] if n else NULL
    cdef const double *vp = &vv[0] if n else NULL
    cdef ps_keysum *ks = NULL
    cdef ps_status st
    cdef int64_t[::1] out_k
    cdef double[::1] out_s
    with nogil:
        st = ps_keysum_f64(kp, vp, n, &ks)
    check_status(st)
    try:
        m = ps_keysum_len(ks)
        uniq = np.empty(m, dtype=np.int64)
        sums = np.empty(m, dtype=np.float64)
        out_k = uniq
        out_s = sums
        if m:
            ps_keysum_export_keys(ks, &out_k[0])
            ps_keysum_export_f64(ks, &out_s[0])
    finally:
        ps_keysum_free(ks)
    return uniq, sums
