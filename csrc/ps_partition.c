#include "ps_partition.h"

#include <pthread.h>
#include <stdlib.h>

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

typedef struct {
    const ps_ptr_span *spans;
    size_t nspans;
    const uint32_t *ids;
    size_t lo, hi;
    void ***cursor; /* this range's write position in every partition */
} ps_scatter_job;

static void ps_scatter_range(ps_scatter_job *j) {
    size_t base = 0, s = 0, i = j->lo;
    while (s < j->nspans && base + j->spans[s].n <= i) base += j->spans[s++].n;
    for (; s < j->nspans && i < j->hi; base += j->spans[s++].n) {
        void *const *items = j->spans[s].items - base; /* indexed by the global record number */
        size_t end = base + j->spans[s].n < j->hi ? base + j->spans[s].n : j->hi;
        for (; i < end; i++) *j->cursor[j->ids[i]]++ = items[i];
    }
}

static void *ps_scatter_thread(void *arg) {
    ps_scatter_job *j = (ps_scatter_job *)arg;
    ps_scatter_range(j);
    return NULL;
}

ps_status ps_partition_scatter(const ps_ptr_span *spans, size_t nspans, const uint32_t *ids, size_t total,
                               uint32_t nparts, void **const *dst, const int64_t *range_counts, unsigned nranges) {
    if (nparts == 0 || nranges == 0) return PS_ERR_ARG;
    ps_scatter_job *jobs = calloc(nranges, sizeof(ps_scatter_job));
    void ***cursors = malloc((size_t)nranges * nparts * sizeof(void **));
    pthread_t *threads = calloc(nranges, sizeof(pthread_t));
    unsigned char *started = calloc(nranges, 1);
    ps_status st = PS_OK;
    if (jobs == NULL || cursors == NULL || threads == NULL || started == NULL) {
        st = PS_ERR_NOMEM;
        goto done;
    }
    for (uint32_t p = 0; p < nparts; p++) {
        void **at = dst[p];
        for (unsigned r = 0; r < nranges; r++) {
            cursors[(size_t)r * nparts + p] = at;
            at += range_counts[(size_t)r * nparts + p];
        }
    }
    for (unsigned r = 0; r < nranges; r++) {
        jobs[r] = (ps_scatter_job){spans, nspans, ids, total * r / nranges, total * (r + 1) / nranges,
                                   cursors + (size_t)r * nparts};
    }
    /* Each range writes only its own slice of every partition: the threads share nothing but reads. */
    for (unsigned r = 1; r < nranges; r++)
        started[r] = pthread_create(&threads[r], NULL, ps_scatter_thread, &jobs[r]) == 0;
    ps_scatter_range(&jobs[0]);
    for (unsigned r = 1; r < nranges; r++) {
        if (started[r])
            pthread_join(threads[r], NULL);
        else
            ps_scatter_range(&jobs[r]); /* no thread to be had: the caller does this range too */
    }
done:
    free(jobs);
    free(cursors);
    free(threads);
    free(started);
    return st;
}
