# What other _core modules cimport from deserialisation: FrameReader, so a kernel that folds a frame's records
# (a table counting the words of text lines, or merging (word, count) pairs) may read a record's bytes where
# they lie in the frame, making no object for it.
cimport cython
from cpython.buffer cimport Py_buffer
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint8_t

from pystream._core.ps_frame cimport ps_reader


ctypedef struct _dstate:
    ps_reader r
    Py_ssize_t record
    PyObject *strings  # list of literal short strings, in order: targets of PS_TAG_STRREF
    bint keep_strings  # False after PS_TAG_STRTAB_END: no later literal is referenced, none is kept


@cython.final
cdef class FrameReader:
    cdef Py_buffer _view
    cdef bint _has_view
    cdef object _raw            # the decompressed payload of an lz4 frame
    cdef list _strings
    cdef _dstate _s
    cdef readonly Py_ssize_t count
    cdef Py_ssize_t _next
    # Kernels reading spans of the frame in place (AggKernel.count_words, update) while they may run user
    # code pin the reader: closing it then would free memory their pending spans point into.
    cdef int pins
    cdef void _release(self) noexcept
    cpdef list next_chunk(self, Py_ssize_t size=*)
    cdef int take_ascii_str(self, const uint8_t **p, Py_ssize_t *n) except -1
    cdef int take_ascii_int_pair(self, const uint8_t **p, Py_ssize_t *n, int64_t *v) except -1
    cdef const uint8_t *_next_record(self) except? NULL
    cdef int _took(self, const uint8_t *end, bint keep) except -1
