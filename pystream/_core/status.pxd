from pystream._core.ps_common cimport ps_status

# Raise the typed Python error for a non-zero C status; the only place a status becomes an exception.
cdef int check_status(ps_status st) except -1
cdef int raise_status(ps_status st, str context) except -1
