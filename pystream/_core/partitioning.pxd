# What other _core modules cimport from partitioning: the one check of a partition count, so every kernel
# that splits by key refuses the same counts with the same message.
cdef int check_num_partitions(long n) except -1
