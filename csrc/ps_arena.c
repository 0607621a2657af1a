/* MAP_ANONYMOUS is not in strict C11/POSIX.1-2008. */
#define _DEFAULT_SOURCE
#include "ps_arena.h"

#include <sys/mman.h>

#define PS_ARENA_MAX_BLOCKS 65536
/* Fresh blocks are carved from transparent huge pages of this size where the block size divides it: the kernel
 * then faults and zeroes 2 MiB at once (measured: 100 MiB of new 1 MiB arenas faulted in 40 ms as 4 KiB pages,
 * 4 ms as huge pages). */
#define PS_HUGE_PAGE ((size_t)2 << 20)

typedef struct {
    void *ptr;
    size_t size;
} ps_block;

static ps_block cache[PS_ARENA_MAX_BLOCKS];
static size_t ncached = 0;
static size_t capacity = 0;
static uint64_t hits = 0, misses = 0, released = 0;
/* The not yet handed out blocks of the last huge page: `npending` blocks of `pending_size` from `pending`. */
static char *pending = NULL;
static size_t pending_size = 0, npending = 0;

static void *map_plain(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A fresh block: the next unused part of a huge page, or plain pages when the size does not tile one. Each
 * block can be unmapped on its own (the kernel splits the huge page), so CPython's own allocator, which unmaps
 * what it frees, may free blocks mapped here. */
static void *map_fresh(size_t size) {
    if (size == 0 || size > PS_HUGE_PAGE / 2 || PS_HUGE_PAGE % size != 0)
        return map_plain(size);
    if (npending > 0 && pending_size == size) {
        void *p = pending;
        pending += size;
        npending--;
        return p;
    }
    ps_arena_drop_pending();
    /* Twice the huge page, to find one aligned on its size inside; the rest goes straight back. */
    char *raw = mmap(NULL, 2 * PS_HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return map_plain(size);
    char *huge = (char *)(((uintptr_t)raw + PS_HUGE_PAGE - 1) & ~(uintptr_t)(PS_HUGE_PAGE - 1));
    size_t head = (size_t)(huge - raw), tail = PS_HUGE_PAGE - head;
    if (head > 0)
        munmap(raw, head);
    if (tail > 0)
        munmap(huge + PS_HUGE_PAGE, tail);
#ifdef MADV_HUGEPAGE
    /* Advice only: where transparent huge pages are off, these are ordinary pages. */
    madvise(huge, PS_HUGE_PAGE, MADV_HUGEPAGE);
#endif
    pending = huge + size;
    pending_size = size;
    npending = PS_HUGE_PAGE / size - 1;
    return huge;
}

void ps_arena_drop_pending(void) {
    if (npending > 0)
        munmap(pending, npending * pending_size);
    pending = NULL;
    npending = 0;
}

ps_status ps_arena_set_capacity(size_t blocks) {
    if (blocks > PS_ARENA_MAX_BLOCKS)
        return PS_ERR_ARG;
    capacity = blocks;
    while (ncached > capacity) {
        ncached--;
        munmap(cache[ncached].ptr, cache[ncached].size);
        released++;
    }
    return PS_OK;
}

void *ps_arena_alloc(void *ctx, size_t size) {
    (void)ctx;
    /* The most recently freed block first: its pages are the likeliest to be in cache. */
    for (size_t i = ncached; i-- > 0;) {
        if (cache[i].size == size) {
            void *p = cache[i].ptr;
            cache[i] = cache[--ncached];
            hits++;
            return p;
        }
    }
    void *p = map_fresh(size);
    if (p == NULL)
        return NULL;
    misses++;
    return p;
}

void ps_arena_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    if (ptr == NULL)
        return;
    if (ncached < capacity) {
        cache[ncached].ptr = ptr;
        cache[ncached].size = size;
        ncached++;
        return;
    }
    munmap(ptr, size);
    released++;
}

void ps_arena_get_stats(ps_arena_stats *out) {
    out->hits = hits;
    out->misses = misses;
    out->released = released;
    out->cached = ncached;
    out->capacity = capacity;
}
