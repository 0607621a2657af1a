from libc.stdint cimport uint64_t

cdef extern from "ps_xxhash.h" nogil:
    uint64_t ps_xxh64(const void *data, size_t length, uint64_t seed)
    uint64_t ps_xxh64_u64(uint64_t word, uint64_t seed)
