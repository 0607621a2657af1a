/* Memory for big arrays: the slots and entries of aggregation tables that a worker builds and drops batch
 * after batch (W1's map table: 7 MB of them).
 *
 * Blocks of at least PS_BIG_MIN bytes get a mapping of their own, aligned on and advised to use transparent
 * huge pages: the kernel then faults their whole 2 MiB stretches in at once instead of 4 KiB at a time
 * (measured: 2,400 faults for one W1 map task), and a freed block goes straight back to the system, as a big
 * malloc'd block does. A mapping covers the block's 4 KiB pages, not a whole number of huge pages: its tail
 * takes ordinary pages as they are written, so no array holds memory it does not use. Smaller blocks come
 * from malloc. The caller gives the block's size back when it grows or frees it.
 *
 * Thread-safe: no state beyond the mappings themselves.
 */
#ifndef PS_BIGMEM_H
#define PS_BIGMEM_H

#include <stddef.h>

#define PS_BIG_MIN ((size_t)1 << 20)

/* NULL when out of memory. size 0 gives a valid pointer to free. */
void *ps_big_alloc(size_t size);
/* Like realloc: NULL (and the old block untouched) when out of memory. */
void *ps_big_realloc(void *p, size_t old_size, size_t new_size);
void ps_big_free(void *p, size_t size);

#endif
