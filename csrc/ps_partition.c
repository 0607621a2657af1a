#include "ps_partition.h"

ps_status ps_partition_assign(const uint64_t *hashes, size_t n, uint32_t nparts, uint32_t *ids, int64_t *counts) {
    if (nparts == 0) return PS_ERR_ARG;
    if ((nparts & (nparts - 1)) == 0) {
        /* A power of two: the modulo is a mask, which is the common case (8, 16, ... partitions). */
        uint64_t mask = nparts - 1;
        for (size_t i = 0; i < n; i++) {
            uint32_t p = (uint32_t)(hashes[i] & mask);
            ids[i] = p;
            counts[p]++;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            uint32_t p = (uint32_t)(hashes[i] % nparts);
            ids[i] = p;
            counts[p]++;
        }
    }
    return PS_OK;
}

ps_status ps_partition_count(const uint32_t *ids, size_t n, uint32_t nparts, int64_t *counts, size_t *bad) {
    for (size_t i = 0; i < n; i++) {
        if (PS_UNLIKELY(ids[i] >= nparts)) {
            *bad = i;
            return PS_ERR_ARG;
        }
        counts[ids[i]]++;
    }
    return PS_OK;
}

ps_status ps_partition_order(const uint32_t *ids, size_t n, uint32_t nparts, const int64_t *counts, int64_t *starts,
                             int64_t *order) {
    int64_t pos = 0;
    for (uint32_t p = 0; p < nparts; p++) {
        starts[p] = pos;
        pos += counts[p];
    }
    starts[nparts] = pos;
    if ((size_t)pos != n) return PS_ERR_ARG;
    for (size_t i = 0; i < n; i++) order[starts[ids[i]]++] = (int64_t)i;
    /* Restore starts, which the scatter advanced to each partition's end. */
    for (uint32_t p = nparts; p > 0; p--) starts[p] = starts[p - 1];
    starts[0] = 0;
    return PS_OK;
}
