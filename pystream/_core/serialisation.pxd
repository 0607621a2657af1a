# What other _core modules cimport from serialisation: FrameWriter, so a kernel that makes frames (the
# partitioner's partition_frames, a table's split_items) encodes records straight into them, with no list in
# between.
cimport cython
from libc.stdint cimport uint64_t

from pystream._core.ps_frame cimport ps_strtab, ps_writer


ctypedef struct _estate:
    ps_writer w
    ps_strtab strings
    uint64_t probes
    uint64_t hits
    uint64_t probed_bytes
    uint64_t trial
    bint table_off
    bint end_pending  # PS_TAG_STRTAB_END is written before the next record (a FrameWriter without a table)


@cython.final
cdef class FrameWriter:
    cdef _estate _e
    cdef readonly Py_ssize_t count
    cdef int add(self, object record) except -1
    cdef int add_str_int(self, const unsigned char *s, Py_ssize_t n, long long v) except -1
    cdef int _add(self, object record, const unsigned char *s, Py_ssize_t n, long long v) except -1
    cdef void _seal(self) noexcept
