# cython: language_level=3
"""Turns C status codes into typed Python errors (one helper, as pyarrow's check_status)."""
from pystream._core.ps_common cimport *

from pystream.errors import CorruptFrameError, FrameOverflowError


cdef int raise_status(ps_status st, str context) except -1:
    msg = ps_status_message(st).decode("ascii")
    if context:
        msg = f"{context}: {msg}"
    if st == PS_ERR_NOMEM:
        raise MemoryError(msg)
    if st == PS_ERR_OVERFLOW:
        raise FrameOverflowError(msg)
    if st == PS_ERR_ARG:
        raise ValueError(msg)
    raise CorruptFrameError(msg)


cdef int check_status(ps_status st) except -1:
    if st == PS_OK:
        return 0
    return raise_status(st, "")


def status_message(int code):
    """Message of a C status code (for tests and diagnostics)."""
    return ps_status_message(<ps_status>code).decode("ascii")
