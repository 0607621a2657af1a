/* Shared status codes for pystream's C core.
 *
 * Every C function that can fail returns a ps_status; the Cython layer turns a
 * non-zero status into a typed Python exception in one place
 * (pystream/_core/status.pyx: check_status), so no C code touches Python.
 */
#ifndef PS_COMMON_H
#define PS_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PS_OK = 0,
    PS_ERR_NOMEM = 1,         /* allocation failed */
    PS_ERR_TRUNCATED = 2,     /* input ends before a declared length */
    PS_ERR_MAGIC = 3,         /* not a pystream frame */
    PS_ERR_VERSION = 4,       /* unknown format version */
    PS_ERR_FLAGS = 5,         /* unknown flag bits or reserved bits set */
    PS_ERR_CHECKSUM = 6,      /* payload checksum mismatch */
    PS_ERR_LENGTH = 7,        /* a length field disagrees with the data */
    PS_ERR_COUNT = 8,         /* a record/element count disagrees with the data */
    PS_ERR_TAG = 9,           /* unknown value tag */
    PS_ERR_VARINT = 10,       /* over-long or overflowing varint */
    PS_ERR_DEPTH = 11,        /* nesting deeper than the limit */
    PS_ERR_UTF8 = 12,         /* invalid UTF-8 in a string */
    PS_ERR_TRAILING = 13,     /* bytes left after the last record */
    PS_ERR_OVERFLOW = 14,     /* output buffer too small */
    PS_ERR_ARG = 15,          /* invalid argument */
} ps_status;

const char *ps_status_message(ps_status st);

#if defined(__GNUC__)
#define PS_LIKELY(x) __builtin_expect(!!(x), 1)
#define PS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define PS_LIKELY(x) (x)
#define PS_UNLIKELY(x) (x)
#endif

/* For a function whose only effect is prefetching. GCC counts a prefetch as no side effect, so a function
 * it does not inline first is found to be pure, and every call of it is dropped: GCC 12 -O3 left
 * ps_agg_prefetch_entry and ps_agg_prefetch_key out of every loop that called them. Inlined first, the
 * prefetches stay. tests/core/test_prefetch.py compiles the helpers of csrc/ and checks they keep them. */
#if defined(__GNUC__) || defined(__clang__)
#define PS_PREFETCHING static inline __attribute__((always_inline))
#else
#define PS_PREFETCHING static inline
#endif

#endif
