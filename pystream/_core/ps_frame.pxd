# C declarations of the frame codec (csrc/ps_buf.h, csrc/ps_frame.h).
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from pystream._core.ps_common cimport ps_status


cdef extern from "ps_buf.h" nogil:
    ctypedef struct ps_writer:
        uint8_t *buf
        size_t len
        size_t cap
        int fixed

    ctypedef struct ps_reader:
        const uint8_t *start
        const uint8_t *p
        const uint8_t *end

    ps_status ps_writer_grow(ps_writer *w, size_t need)
    void ps_writer_init(ps_writer *w, uint8_t *fixed_buf, size_t fixed_cap)
    ps_status ps_writer_reserve_initial(ps_writer *w, size_t cap)
    void ps_writer_free(ps_writer *w)

    ps_status ps_w_reserve(ps_writer *w, size_t n)
    void ps_w_u8(ps_writer *w, uint8_t v)
    void ps_w_bytes(ps_writer *w, const void *p, size_t n)
    void ps_w_varint(ps_writer *w, uint64_t v)
    void ps_w_u64le(ps_writer *w, uint64_t v)
    size_t ps_varint_len(uint64_t v)
    uint64_t ps_zigzag(int64_t v)
    int64_t ps_unzigzag(uint64_t v)

    size_t ps_r_left(const ps_reader *r)
    size_t ps_r_offset(const ps_reader *r)
    ps_status ps_r_u8(ps_reader *r, uint8_t *out)
    ps_status ps_r_varint(ps_reader *r, uint64_t *out)
    double ps_load_f64le(const uint8_t *p)
    uint64_t ps_f64_bits(double d)
    int ps_is_ascii(const uint8_t *p, size_t n)


cdef extern from "ps_frame.h" nogil:
    const char *PS_FRAME_MAGIC
    enum:
        PS_FRAME_VERSION
        PS_FRAME_MIN_VERSION
        PS_FRAME_HEADER_SIZE
        PS_FRAME_FLAG_LZ4
        PS_LZ4_MAX_RATIO
        PS_LZ4_SLACK

    enum:
        PS_TAG_NONE
        PS_TAG_FALSE
        PS_TAG_TRUE
        PS_TAG_INT
        PS_TAG_BIGINT
        PS_TAG_FLOAT
        PS_TAG_STR
        PS_TAG_BYTES
        PS_TAG_BYTEARRAY
        PS_TAG_TUPLE
        PS_TAG_LIST
        PS_TAG_DICT
        PS_TAG_PICKLE
        PS_TAG_STRREF
        PS_TAG_STRTAB_END
        PS_TAG_TUPLE_SMALL
        PS_TAG_LIST_SMALL
        PS_TAG_INT_SMALL
        PS_TAG_STR_SMALL
        PS_TAG_STR_SMALL_END

    enum:
        PS_STRTAB_MAX_ENTRIES
        PS_STR_SHORT_MAX
        PS_MAX_DEPTH

    ctypedef struct ps_strtab_slot:
        uint64_t off1
        uint32_t index
        uint32_t hash

    ctypedef struct ps_strtab:
        ps_strtab_slot *slots
        size_t mask
        size_t used
        uint64_t next_index

    void ps_strtab_init(ps_strtab *t)
    void ps_strtab_free(ps_strtab *t)
    uint32_t ps_strhash(const uint8_t *s, size_t n)
    ps_strtab_slot *ps_strtab_probe(ps_strtab *t, const uint8_t *buf, const uint8_t *s, size_t n, uint32_t h)
    void ps_strtab_fill(ps_strtab *t, ps_strtab_slot *sl, size_t off, uint32_t h)
    void ps_strtab_prefetch(const ps_strtab *t, const uint8_t *s, size_t n)

    ctypedef struct ps_frame_header:
        uint8_t magic[4]
        uint8_t version
        uint8_t flags
        uint16_t reserved
        uint64_t count
        uint64_t stored_len
        uint64_t raw_len
        uint64_t checksum

    void ps_frame_header_init(ps_frame_header *h, uint64_t count, uint64_t stored_len, uint64_t raw_len,
                              uint8_t flags, const uint8_t *payload)
    void ps_frame_header_write(uint8_t *out, const ps_frame_header *h)
    ps_status ps_frame_header_parse(const uint8_t *buf, size_t len, ps_frame_header *h)
    ps_status ps_frame_validate(const uint8_t *buf, size_t len, ps_frame_header *h, uint64_t *computed)
    uint64_t ps_frame_checksum(const uint8_t *payload, size_t n)
