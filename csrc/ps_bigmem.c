/* mremap */
#define _GNU_SOURCE
#include "ps_bigmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#define PS_BIG_MAPPED 1
#else
#define PS_BIG_MAPPED 0
#endif

#define HUGE ((size_t)2 << 20)

#if PS_BIG_MAPPED
/* A block maps whole pages, not whole huge pages: it starts on a huge page's boundary, so the kernel backs
 * each of its complete 2 MiB stretches with one huge page and its tail with ordinary pages. Rounding the
 * mapping up to 2 MiB instead kept up to 2 MiB resident per array for nothing: 7 MB per W1 worker. */
static size_t mapped_size(size_t size) {
    long page = sysconf(_SC_PAGESIZE); /* read once by libc at start-up: no system call */
    size_t p = page > 0 ? (size_t)page : 4096;
    return (size + p - 1) & ~(p - 1);
}

static void *map_huge(size_t size) {
    size_t len = mapped_size(size);
    /* One huge page more than asked, to start on a huge page's boundary; the rest goes straight back. */
    char *raw = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    char *p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    size_t head = (size_t)(p - raw), tail = HUGE - head;
    if (head > 0) munmap(raw, head);
    if (tail > 0) munmap(p + len, tail);
#ifdef MADV_HUGEPAGE
    /* Advice only: where transparent huge pages are off, these are ordinary pages. */
    madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
}
#endif

void *ps_big_alloc(size_t size) {
#if PS_BIG_MAPPED
    if (size >= PS_BIG_MIN) return map_huge(size);
#endif
    return malloc(size ? size : 1);
}

void ps_big_free(void *p, size_t size) {
    if (!p) return;
#if PS_BIG_MAPPED
    if (size >= PS_BIG_MIN) {
        munmap(p, mapped_size(size));
        return;
    }
#endif
    (void)size;
    free(p);
}

void *ps_big_realloc(void *p, size_t old_size, size_t new_size) {
    if (!p) return ps_big_alloc(new_size);
#if PS_BIG_MAPPED
    int old_big = old_size >= PS_BIG_MIN, new_big = new_size >= PS_BIG_MIN;
    if (!old_big && !new_big) return realloc(p, new_size ? new_size : 1);
    if (old_big && new_big) {
        size_t have = mapped_size(old_size), want = mapped_size(new_size);
        if (want == have) return p;
        if (want < have) {
            munmap((char *)p + want, have - want);
            return p;
        }
        /* In place when the address space after it is free (no copy, the huge pages stay aligned). */
        void *q = mremap(p, have, want, 0);
        if (q != MAP_FAILED) {
#ifdef MADV_HUGEPAGE
            madvise((char *)p + have, want - have, MADV_HUGEPAGE);
#endif
            return p;
        }
    }
    void *q = ps_big_alloc(new_size);
    if (!q) return NULL;
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    ps_big_free(p, old_size);
    return q;
#else
    (void)old_size;
    return realloc(p, new_size ? new_size : 1);
#endif
}
