/* MAP_ANONYMOUS is not in strict C11/POSIX.1-2008. */
#define _DEFAULT_SOURCE
#include "ps_arena.h"

#include <sys/mman.h>

#define PS_ARENA_MAX_BLOCKS 65536

typedef struct {
    void *ptr;
    size_t size;
} ps_block;

static ps_block cache[PS_ARENA_MAX_BLOCKS];
static size_t ncached = 0;
static size_t capacity = 0;
static uint64_t hits = 0, misses = 0, released = 0;

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
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
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
