/*
 * Guarded coroutine stacks from per-scheduler arenas.
 *
 * A pool hands out slots laid out as [guard][stack] (stacks grow down, so
 * the guard sits below the lowest usable byte). Slots come from large
 * MAP_NORESERVE mappings with MADV_NOHUGEPAGE; guards are installed with
 * MADV_GUARD_INSTALL where the kernel has it (no extra VMA per stack) and
 * with mprotect(PROT_NONE) otherwise, in which case the number of guards is
 * capped below vm.max_map_count and TR_EMAPCOUNT is returned at the cap.
 * Freed slots are reused LIFO; past `cache_max` free slots, a freed slot's
 * pages are returned to the kernel with MADV_DONTNEED. Stacks that were
 * touched all the way down (they overflowed) are kept warm only within a
 * small byte budget per pool, the "hot set", so repeated overflows stay
 * cheap while a stream of them cannot make every slot fully resident.
 *
 * A pool belongs to one scheduler thread and is not thread-safe.
 */
#ifndef TR_STACK_H
#define TR_STACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr__stack {
  char *lo;         /* lowest usable byte, just above the guard */
  size_t size;      /* usable bytes; the top is lo + size */
  char *guard;      /* first byte of the guard */
  size_t guard_size;
  unsigned vg_id;   /* valgrind stack id (0 without --enable-valgrind) */
  unsigned cls : 8; /* size class, internal to the pool */
  unsigned hot : 1; /* all pages resident (counted in the pool's hot set) */
} tr__stack_t;

typedef struct tr__stack_pool tr__stack_pool_t;

typedef struct tr__stack_stats {
  size_t in_use;      /* slots handed out */
  size_t cached;      /* free slots with pages still resident */
  size_t released;    /* free slots whose pages were MADV_DONTNEED-ed */
  size_t hot;         /* slots in the hot set (in use or cached) */
  size_t hot_bytes;   /* their usable bytes, at most TR__STACK_HOT_BYTES
                         (or one slot, if a single slot is bigger) */
  size_t mapped;      /* bytes of address space reserved */
  size_t guards;      /* guards installed */
  size_t guard_limit; /* max guards (SIZE_MAX with MADV_GUARD_INSTALL) */
} tr__stack_stats_t;

/* Creates a pool. cache_max: free slots kept resident before the rest are
 * MADV_DONTNEED-ed. Returns 0 or TR_ENOMEM. */
int tr__stack_pool_new(tr__stack_pool_t **pool, size_t cache_max);
/* Unmaps everything. Slots still in use become invalid. NULL accepted. */
void tr__stack_pool_free(tr__stack_pool_t *pool);

/* Hands out a slot with at least `size` usable bytes (rounded up to the
 * pool's size class; size must be within TR_STACK_SIZE_MIN..MAX, else
 * TR_EINVAL). Returns 0, TR_ENOMEM, or TR_EMAPCOUNT (mprotect fallback at
 * its ceiling). With --enable-valgrind the stack is registered. */
int tr__stack_get(tr__stack_pool_t *pool, size_t size, tr__stack_t *st);
/* Returns a slot to the pool (LIFO). The caller must no longer run on it. */
void tr__stack_put(tr__stack_pool_t *pool, tr__stack_t *st);
/* As tr__stack_put, for a stack known to have been touched all the way
 * down (it overflowed). It is kept warm if it already is in the hot set or
 * the set has room for it; otherwise its pages are released at once. */
void tr__stack_put_touched(tr__stack_pool_t *pool, tr__stack_t *st);

/* Byte budget of a pool's hot set (see above). */
#define TR__STACK_HOT_BYTES ((size_t)2 << 20)

/* Nonzero if addr lies in st's guard. */
static inline int tr__stack_in_guard(const tr__stack_t *st, uintptr_t addr) {
  return addr >= (uintptr_t)st->guard &&
         addr < (uintptr_t)st->guard + st->guard_size;
}
/* Nonzero if addr lies in st's slot (guard or usable stack). */
static inline int tr__stack_in_slot(const tr__stack_t *st, uintptr_t addr) {
  return addr >= (uintptr_t)st->guard &&
         addr < (uintptr_t)st->lo + st->size;
}

/* Nonzero if addr lies anywhere in the pool's mappings (any slot).
 * Async-signal-safe: the fault handler calls it. */
int tr__stack_pool_contains(const tr__stack_pool_t *pool, uintptr_t addr);

void tr__stack_pool_stats(const tr__stack_pool_t *pool, tr__stack_stats_t *s);

/* "madv_guard_install" or "mprotect": how guards are made on this kernel. */
const char *tr__stack_guard_method(void);

#endif
