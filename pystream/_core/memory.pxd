# Borrowing pystream's arena allocator around a bulk decode (memory.pyx).
cdef bint bulk_begin() noexcept
cdef void bulk_end() noexcept
