# C declarations shared by every _core module (csrc/ps_common.h).
cdef extern from "ps_common.h":
    ctypedef enum ps_status:
        PS_OK
        PS_ERR_NOMEM
        PS_ERR_TRUNCATED
        PS_ERR_MAGIC
        PS_ERR_VERSION
        PS_ERR_FLAGS
        PS_ERR_CHECKSUM
        PS_ERR_LENGTH
        PS_ERR_COUNT
        PS_ERR_TAG
        PS_ERR_VARINT
        PS_ERR_DEPTH
        PS_ERR_UTF8
        PS_ERR_TRAILING
        PS_ERR_OVERFLOW
        PS_ERR_ARG
    const char *ps_status_message(ps_status st) nogil
