/*
 * Guarded coroutine stacks carved from large mappings (see stack.h).
 *
 * Each size class (a power of two between TR_STACK_SIZE_MIN and MAX) carves
 * slots [guard][usable] from its own chunks with a bump pointer. A chunk is
 * 64 MiB of MAP_NORESERVE address space (at least CHUNK_MIN_SLOTS slots for
 * big stacks): with MADV_GUARD_INSTALL guards a chunk stays one VMA (and
 * adjacent chunks usually merge), so a million 64 KiB stacks cost at most
 * ~1000 of the 65530 VMAs a process may have, while the unused tail of the
 * newest chunk costs only address space (pages are faulted in on touch).
 * Bigger chunks would save few VMAs; smaller ones would cost more mmaps. Chunks are only unmapped by
 * tr__stack_pool_free.
 *
 * Free slots are kept per class in a ring of slot pointers outside the
 * stack memory, so a released slot is never touched again: warm slots
 * (pages resident) are pushed and popped at the head (LIFO), cold slots
 * (pages MADV_DONTNEED-ed) are appended at the tail, so get() prefers warm
 * memory. Each ring's capacity is at least the number of slots its class has
 * carved, so tr__stack_put never allocates and cannot fail.
 *
 * Guard method, page size and the mprotect guard ceiling are detected once
 * per process. Setting TR_STACK_GUARD=mprotect in the environment forces the
 * mprotect fallback (for tests on new kernels).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "troupe.h"

#ifdef TR_VALGRIND
#include <valgrind/valgrind.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

#define CLS_MIN_SHIFT 14 /* log2(TR_STACK_SIZE_MIN) */
#define CLS_MAX_SHIFT 28 /* log2(TR_STACK_SIZE_MAX) */
#define NCLS (CLS_MAX_SHIFT - CLS_MIN_SHIFT + 1)
_Static_assert((1L << CLS_MIN_SHIFT) == TR_STACK_SIZE_MIN, "class min");
_Static_assert((1L << CLS_MAX_SHIFT) == TR_STACK_SIZE_MAX, "class max");

#define CHUNK_BYTES ((size_t)64 << 20)
/* 4 slots keep VMAs few for big stacks on 64-bit (4 x 256 MiB of address
 * space is nothing there); 32-bit address spaces cannot afford that. */
#define CHUNK_MIN_SLOTS (sizeof(void *) >= 8 ? 4 : 1)
#define RING_MIN 64 /* first ring capacity; rings stay powers of two */

/* Stack-clash probe interval: a guard must be at least this big. */
#if defined(__aarch64__)
#define GUARD_MIN ((size_t)65536)
#else
#define GUARD_MIN ((size_t)4096)
#endif

#define COLD ((uintptr_t)1) /* ring tag: the slot's pages were released */
#define HOT ((uintptr_t)2)  /* ring tag: the slot is in the hot set */
#define TAGS (COLD | HOT)

enum { GUARD_MADVISE = 1, GUARD_MPROTECT = 2 };

typedef struct cls {
  size_t size;          /* usable bytes of this class */
  char *next, *end;     /* uncarved part of the newest chunk */
  uintptr_t *ring;      /* free slot addresses (guard start) | tags */
  size_t head, n, cap;  /* ring state; cap >= carved */
  size_t carved;        /* slots ever carved for this class */
} cls_t;

typedef struct chunk {
  char *base;
  size_t len;
} chunk_t;

struct tr__stack_pool {
  cls_t cls[NCLS];
  chunk_t *chunks;
  size_t nchunks, chunks_cap;
  size_t cache_max;
  size_t in_use, cached, released, mapped, guards;
  size_t hot, hot_bytes; /* the hot set: fully touched slots kept warm */
};

/* Process-wide, written once under detect_once. */
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static int guard_method;
static size_t page_size;
static size_t guard_size;
static size_t guard_limit; /* mprotect guards allowed, all pools together */
static atomic_size_t guard_count; /* mprotect guards alive, all pools */

/* ---- once-per-process detection ----------------------------------------- */

/* Reads one integer from a /proc file; dflt if that fails. */
static long read_long(const char *path, long dflt) {
  FILE *f = fopen(path, "r");
  long v = dflt;

  if (f == NULL) return dflt;
  if (fscanf(f, "%ld", &v) != 1) v = dflt;
  fclose(f);
  return v;
}

/* Current number of mappings (lines of /proc/self/maps); dflt if unknown. */
static long count_maps(long dflt) {
  FILE *f = fopen("/proc/self/maps", "r");
  long n = 0;
  int c;

  if (f == NULL) return dflt;
  while ((c = getc(f)) != EOF)
    if (c == '\n') n++;
  fclose(f);
  return n;
}

/* mprotect guards split VMAs: each slot adds up to two (guard + stack).
 * Keep a margin of max/16 (at least 1024) mappings for everything else the
 * process maps (libraries, malloc arenas, thread stacks, files): ~30k
 * guards at the default vm.max_map_count of 65530. */
static size_t mprotect_limit(void) {
  long max = read_long("/proc/sys/vm/max_map_count", 65530);
  long now = count_maps(1024);
  long margin = max / 16 > 1024 ? max / 16 : 1024;
  long room = max - now - margin;

  return room > 0 ? (size_t)room / 2 : 0;
}

/* Nonzero if madvise(MADV_GUARD_INSTALL) works here (Linux >= 6.13).
 * Success of the madvise call is not enough (emulators such as qemu-user
 * accept unknown advice and do nothing), so the guard is also checked
 * without a signal: the kernel must refuse to read it for write(2). */
static int probe_guard_install(void) {
  char *p = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int fd[2], ok = 0;

  if (p == MAP_FAILED) return 0;
  if (madvise(p, page_size, MADV_GUARD_INSTALL) == 0 &&
      pipe2(fd, O_CLOEXEC) == 0) {
    ok = write(fd[1], p, 1) < 0 && errno == EFAULT;
    close(fd[0]);
    close(fd[1]);
  }
  munmap(p, 2 * page_size);
  return ok;
}

static void detect(void) {
  long ps = sysconf(_SC_PAGESIZE);
  const char *force = getenv("TR_STACK_GUARD");

  page_size = ps > 0 ? (size_t)ps : 4096;
  guard_size = page_size > GUARD_MIN ? page_size : GUARD_MIN;
  guard_method = probe_guard_install() ? GUARD_MADVISE : GUARD_MPROTECT;
  if (force != NULL && strcmp(force, "mprotect") == 0)
    guard_method = GUARD_MPROTECT;
  guard_limit = guard_method == GUARD_MADVISE ? SIZE_MAX : mprotect_limit();
}

const char *tr__stack_guard_method(void) {
  pthread_once(&detect_once, detect);
  return guard_method == GUARD_MADVISE ? "madv_guard_install" : "mprotect";
}

/* ---- size classes, chunks and guards ------------------------------------ */

/* Class index for a requested size, or -1 if out of range. Classes below
 * the page size (64 KiB pages) are folded into the page-sized class. */
static int cls_index(size_t size) {
  int shift;

  if (size < TR_STACK_SIZE_MIN || size > TR_STACK_SIZE_MAX) return -1;
  if (size < page_size) size = page_size;
  /* the smallest shift with 1 << shift >= size (size - 1 > 0 here) */
  shift = 64 - __builtin_clzll((unsigned long long)(size - 1));
  return shift < CLS_MIN_SHIFT ? 0 : shift - CLS_MIN_SHIFT;
}

static size_t slot_len(const cls_t *c) { return guard_size + c->size; }

/* Reserves a new chunk for c and makes it c's carving area. Costs one mmap
 * and one madvise. Returns 0 or TR_ENOMEM (nothing changed then). */
static int chunk_new(tr__stack_pool_t *pool, cls_t *c) {
  size_t nslots = CHUNK_BYTES / slot_len(c), len;
  chunk_t *cv;
  char *p;

  if (nslots < CHUNK_MIN_SLOTS) nslots = CHUNK_MIN_SLOTS;
  len = nslots * slot_len(c);
  if (pool->nchunks == pool->chunks_cap) {
    size_t cap = pool->chunks_cap ? 2 * pool->chunks_cap : 16;
    cv = realloc(pool->chunks, cap * sizeof *cv);
    if (cv == NULL) return TR_ENOMEM;
    pool->chunks = cv;
    pool->chunks_cap = cap;
  }
  p = mmap(NULL, len, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return TR_ENOMEM;
  (void)madvise(p, len, MADV_NOHUGEPAGE); /* EINVAL without THP: fine */
  pool->chunks[pool->nchunks++] = (chunk_t){p, len};
  pool->mapped += len;
  c->next = p;
  c->end = p + len;
  return 0;
}

/* madvise that retries transient failures. Returns 0 or -errno. */
static int madvise_retry(void *addr, size_t len, int advice) {
  int tries = 0;

  while (madvise(addr, len, advice) != 0) {
    if ((errno != EINTR && errno != EAGAIN) || ++tries == 16) return -errno;
  }
  return 0;
}

/* Installs the guard at g. mprotect guards count against the process-wide
 * ceiling: TR_EMAPCOUNT at the ceiling (or if the kernel reports the map
 * count exhausted anyway), nothing installed then. */
static int guard_install(tr__stack_pool_t *pool, char *g) {
  int rc;

  if (guard_method == GUARD_MADVISE) {
    rc = madvise_retry(g, guard_size, MADV_GUARD_INSTALL);
    if (rc < 0) return rc == -ENOMEM ? TR_ENOMEM : rc;
  } else {
    if (atomic_fetch_add(&guard_count, 1) >= guard_limit) {
      atomic_fetch_sub(&guard_count, 1);
      return TR_EMAPCOUNT;
    }
    if (mprotect(g, guard_size, PROT_NONE) != 0) {
      rc = errno == ENOMEM ? TR_EMAPCOUNT : -errno;
      atomic_fetch_sub(&guard_count, 1);
      return rc;
    }
  }
  pool->guards++;
  return 0;
}

/* ---- free-slot rings ---------------------------------------------------- */

/* Doubles c's ring, keeping its entries in order. Returns 0 or TR_ENOMEM. */
static int ring_grow(cls_t *c) {
  size_t cap = c->cap ? 2 * c->cap : RING_MIN;
  uintptr_t *r = realloc(c->ring, cap * sizeof *r);

  if (r == NULL) return TR_ENOMEM;
  if (c->head + c->n > c->cap) /* unwrap the part that wrapped around */
    memcpy(r + c->cap, r, (c->head + c->n - c->cap) * sizeof *r);
  c->ring = r;
  c->cap = cap;
  return 0;
}

static void ring_push_warm(cls_t *c, uintptr_t slot, int hot) {
  if (c->n >= c->cap) abort(); /* double put */
  c->head = (c->head + c->cap - 1) & (c->cap - 1);
  c->ring[c->head] = slot | (hot ? HOT : 0);
  c->n++;
}

static void ring_push_cold(cls_t *c, uintptr_t slot) {
  if (c->n >= c->cap) abort(); /* double put */
  c->ring[(c->head + c->n) & (c->cap - 1)] = slot | COLD;
  c->n++;
}

/* Pops the most recently freed warm slot, else a cold one. *hot tells
 * whether it is in the hot set. */
static char *ring_pop(tr__stack_pool_t *pool, cls_t *c, int *hot) {
  uintptr_t e = c->ring[c->head];

  c->head = (c->head + 1) & (c->cap - 1);
  c->n--;
  if (e & COLD)
    pool->released--;
  else
    pool->cached--;
  *hot = (e & HOT) != 0;
  return (char *)(e & ~TAGS);
}

/* Carves a fresh slot for c, guard installed. Returns 0, TR_ENOMEM or
 * TR_EMAPCOUNT; on error no slot is consumed. */
static int slot_carve(tr__stack_pool_t *pool, cls_t *c, char **slot) {
  int rc;

  if (c->carved == c->cap && (rc = ring_grow(c)) < 0) return rc;
  if ((size_t)(c->end - c->next) < slot_len(c) &&
      (rc = chunk_new(pool, c)) < 0)
    return rc;
  if ((rc = guard_install(pool, c->next)) < 0) return rc;
  *slot = c->next;
  c->next += slot_len(c);
  c->carved++;
  return 0;
}

/* ---- public ------------------------------------------------------------- */

int tr__stack_pool_new(tr__stack_pool_t **pool, size_t cache_max) {
  tr__stack_pool_t *p;
  int i;

  pthread_once(&detect_once, detect);
  *pool = NULL;
  p = calloc(1, sizeof *p);
  if (p == NULL) return TR_ENOMEM;
  for (i = 0; i < NCLS; i++) p->cls[i].size = (size_t)1 << (i + CLS_MIN_SHIFT);
  p->cache_max = cache_max;
  *pool = p;
  return 0;
}

void tr__stack_pool_free(tr__stack_pool_t *pool) {
  size_t i;

  if (pool == NULL) return;
  for (i = 0; i < pool->nchunks; i++)
    munmap(pool->chunks[i].base, pool->chunks[i].len);
  if (guard_method == GUARD_MPROTECT)
    atomic_fetch_sub(&guard_count, pool->guards);
  for (i = 0; i < NCLS; i++) free(pool->cls[i].ring);
  free(pool->chunks);
  free(pool);
}

int tr__stack_get(tr__stack_pool_t *pool, size_t size, tr__stack_t *st) {
  int ci = cls_index(size), rc;
  cls_t *c;
  char *slot;
  int hot = 0;

  if (ci < 0) return TR_EINVAL;
  c = &pool->cls[ci];
  if (c->n > 0)
    slot = ring_pop(pool, c, &hot);
  else if ((rc = slot_carve(pool, c, &slot)) < 0)
    return rc;
  pool->in_use++;
  st->guard = slot;
  st->guard_size = guard_size;
  st->lo = slot + guard_size;
  st->size = c->size;
  st->cls = (unsigned)ci;
  st->hot = (unsigned)hot;
#ifdef TR_VALGRIND
  st->vg_id = VALGRIND_STACK_REGISTER(st->lo, st->lo + st->size);
#else
  st->vg_id = 0;
#endif
  return 0;
}

/* touched: the stack was used all the way down. A touched stack joins
 * the hot set if the set's byte budget allows (a single slot is always
 * allowed, however big); a hot slot stays hot while it cycles between the
 * cache and actors, so an actor that overflows again and again on the
 * same slot (LIFO reuse) faults no page in. Without the budget a steady
 * stream of overflows would make every slot fully resident (found by
 * bench/chaos); without the hot set each overflow would fault its whole
 * stack in again (crash-to-DOWN went from 3.4 to 24 us). */
static void stack_put(tr__stack_pool_t *pool, tr__stack_t *st, int touched) {
  cls_t *c = &pool->cls[st->cls];
  int hot = st->hot;

#ifdef TR_VALGRIND
  VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
  pool->in_use--;
  if (touched && !hot &&
      (pool->hot == 0 || pool->hot_bytes + st->size <= TR__STACK_HOT_BYTES)) {
    hot = 1;
    pool->hot++;
    pool->hot_bytes += st->size;
  }
  if ((hot || !touched) && pool->cached < pool->cache_max) {
    ring_push_warm(c, (uintptr_t)st->guard, hot);
    pool->cached++;
    return;
  }
  /* Only the usable pages: the guard stays (MADV_GUARD_INSTALL guards
   * survive MADV_DONTNEED; mprotect guards are not affected). */
  (void)madvise_retry(st->lo, st->size, MADV_DONTNEED);
  if (hot) {
    pool->hot--;
    pool->hot_bytes -= st->size;
  }
  ring_push_cold(c, (uintptr_t)st->guard);
  pool->released++;
}

void tr__stack_put(tr__stack_pool_t *pool, tr__stack_t *st) {
  stack_put(pool, st, 0);
}

void tr__stack_put_touched(tr__stack_pool_t *pool, tr__stack_t *st) {
  stack_put(pool, st, 1);
}

void tr__stack_pool_stats(const tr__stack_pool_t *pool, tr__stack_stats_t *s) {
  s->in_use = pool->in_use;
  s->cached = pool->cached;
  s->released = pool->released;
  s->hot = pool->hot;
  s->hot_bytes = pool->hot_bytes;
  s->mapped = pool->mapped;
  s->guards = pool->guards;
  s->guard_limit = guard_method == GUARD_MADVISE ? SIZE_MAX : guard_limit;
}

/* Linear in the number of chunks (a few hundred at most); reads only, so
 * the fault handler may call it. */
int tr__stack_pool_contains(const tr__stack_pool_t *pool, uintptr_t addr) {
  if (pool == NULL) return 0;
  for (size_t i = 0; i < pool->nchunks; i++) {
    uintptr_t b = (uintptr_t)pool->chunks[i].base;
    if (addr >= b && addr < b + pool->chunks[i].len) return 1;
  }
  return 0;
}
