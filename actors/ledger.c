/*
 * The per-actor resource ledger: deferred cleanups and an arena. Both are
 * released on every exit path — normal return, tr_exit, a crash or a kill —
 * because reaping, not the actor's own code, runs them.
 */
#include "internal.h"

#include <stdlib.h>

typedef struct arena_block {
  struct arena_block *next;
  size_t size, used;
  _Alignas(16) unsigned char mem[];
} arena_block_t;

#define ARENA_BLOCK 4096

int tr_defer(void (*fn)(void *), void *arg) {
  TR__ACTOR_OR_RETURN(a);
  tr__defer_t *d;
  if (fn == NULL) return TR_EINVAL;
  if ((d = malloc(sizeof(*d))) == NULL) return TR_ENOMEM;
  d->fn = fn;
  d->arg = arg;
  d->next = a->defers;
  a->defers = d;
  return 0;
}

static arena_block_t *arena_block_new(size_t need) {
  size_t size = need > ARENA_BLOCK ? need : ARENA_BLOCK;
  arena_block_t *b;
  if (size > SIZE_MAX - sizeof(*b)) return NULL;
  if ((b = malloc(sizeof(*b) + size)) == NULL) return NULL;
  b->size = size;
  b->used = 0;
  return b;
}

void *tr_arena_alloc(size_t size) {
  tr__actor_t *a = tr__current();
  arena_block_t *b;
  void *p;
  if (a == NULL || size == 0 || size > SIZE_MAX - 15) return NULL;
  size = (size + 15) & ~(size_t)15;
  b = a->arena;
  if (b == NULL || b->size - b->used < size) {
    if ((b = arena_block_new(size)) == NULL) return NULL;
    /* A big request gets its own block behind the current one, so the
     * current block's free space is not wasted. */
    if (a->arena != NULL && size > ARENA_BLOCK / 2) {
      arena_block_t *cur = a->arena;
      b->next = cur->next;
      cur->next = b;
    } else {
      b->next = a->arena;
      a->arena = b;
    }
  }
  p = b->mem + b->used;
  b->used += size;
  return p;
}

/* Runs the cleanups, last registered first, then frees the arena. */
void tr__ledger_release(tr__actor_t *a) {
  tr__defer_t *d;
  arena_block_t *b, *n;
  while ((d = a->defers) != NULL) {
    a->defers = d->next;
    d->fn(d->arg);
    free(d);
  }
  /* Then the libuv handles and requests (after the cleanups, which may
   * still use them): closed and detached, never left to a dead stack. */
  if (a->io_handles != NULL || a->io_ops != NULL) tr__io_release(a);
  for (b = a->arena; b != NULL; b = n) {
    n = b->next;
    free(b);
  }
  a->arena = NULL;
}
