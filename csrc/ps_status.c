#include "ps_common.h"

const char *ps_status_message(ps_status st) {
    switch (st) {
    case PS_OK: return "ok";
    case PS_ERR_NOMEM: return "out of memory";
    case PS_ERR_TRUNCATED: return "truncated frame: data ends before a declared length";
    case PS_ERR_MAGIC: return "bad magic number: not a pystream frame";
    case PS_ERR_VERSION: return "unknown frame format version";
    case PS_ERR_FLAGS: return "unknown flag bits or non-zero reserved bits in the frame header";
    case PS_ERR_CHECKSUM: return "checksum mismatch: the payload is corrupted";
    case PS_ERR_LENGTH: return "a length field disagrees with the frame size";
    case PS_ERR_COUNT: return "a record or element count disagrees with the payload";
    case PS_ERR_TAG: return "unknown value tag in the payload";
    case PS_ERR_VARINT: return "malformed variable-length integer";
    case PS_ERR_DEPTH: return "nesting deeper than the decoder allows";
    case PS_ERR_UTF8: return "invalid UTF-8 in a string value";
    case PS_ERR_TRAILING: return "bytes left over after the last record";
    case PS_ERR_OVERFLOW: return "output buffer too small";
    case PS_ERR_ARG: return "invalid argument";
    }
    return "unknown status";
}
