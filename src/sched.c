/*
 * The scheduler: one per thread, on a uv_loop_t. It owns a run queue of
 * actors and switches between them. An actor runs until it blocks or yields;
 * a blocking actor switches straight to the next runnable one, and only
 * switches back to the scheduler's own stack ("main") when nothing else can
 * run, when a dead actor must be reaped, or when the loop is due for a turn.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef TR_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef TR_TSAN
#include <sanitizer/tsan_interface.h>
#endif

TR__TLS tr__sched_t *tr__tls_sched;

/* Switches the loop gets between polls when actors keep each other busy,
 * and the time: a drain ends after TR__DRAIN_NS (checked every
 * TR__CLOCK_EVERY switches), so sockets and timers get a turn at least
 * every few milliseconds even when every switch is slow (actors that work
 * long between switches; a sanitizer's fiber switches). */
#define TR__SWITCH_BUDGET 4096
#define TR__CLOCK_EVERY 64
#define TR__DRAIN_NS 2000000

/* ---- handle tables ------------------------------------------------------ */

static int slots_grow(tr__slots_t *t) {
  uint32_t ncap = t->cap ? t->cap * 2 : 256;
  void **p;
  uint32_t *g, *f;
  if (t->cap >= (1u << TR__IDX_BITS)) return TR_ENOMEM;
  if (ncap > (1u << TR__IDX_BITS)) ncap = 1u << TR__IDX_BITS;
  p = realloc(t->ptr, ncap * sizeof(*p));
  if (p == NULL) return TR_ENOMEM;
  t->ptr = p;
  g = realloc(t->gen, ncap * sizeof(*g));
  if (g == NULL) return TR_ENOMEM;
  t->gen = g;
  f = realloc(t->free, ncap * sizeof(*f));
  if (f == NULL) return TR_ENOMEM;
  t->free = f;
  /* Push new indices so that the lowest is handed out first. */
  for (uint32_t i = ncap; i > t->cap; i--) {
    t->ptr[i - 1] = NULL;
    t->gen[i - 1] = 0;
    t->free[t->nfree++] = i - 1;
  }
  t->cap = ncap;
  return 0;
}

/* O(1) amortised. Index 0 is never used so that no handle is 0. */
int tr__slots_alloc(tr__slots_t *t, void *obj, uint32_t *idx, uint32_t *gen) {
  uint32_t i;
  int err;
  if (t->nfree == 0 && (err = slots_grow(t)) != 0) return err;
  i = t->free[--t->nfree];
  if (i == 0) {
    if (t->nfree == 0 && (err = slots_grow(t)) != 0) return err;
    i = t->free[--t->nfree];
  }
  if (++t->gen[i] == 0 || t->gen[i] > 0x7fffffffu) t->gen[i] = 1;
  t->ptr[i] = obj;
  *idx = i;
  *gen = t->gen[i];
  return 0;
}

void tr__slots_release(tr__slots_t *t, uint32_t idx) {
  t->ptr[idx] = NULL;
  t->free[t->nfree++] = idx;
}

void tr__slots_destroy(tr__slots_t *t) {
  free(t->ptr);
  free(t->gen);
  free(t->free);
  memset(t, 0, sizeof(*t));
}

tr_ref_t tr__make_ref(tr__sched_t *s) {
  return TR__REF_COUNTER_BIT | ((uint64_t)s->id << 48) | ++s->next_ref;
}

/* ---- run queue ----------------------------------------------------------
 *
 * One intrusive list in two parts. The back (after rqf_end) is FIFO:
 * wake-ups by messages, timers, I/O, other schedulers and host code, and
 * yields. The front (rq_head .. rqf_end) holds the actors the running
 * actor spawns, in spawn order, as one batch ahead of older batches, and,
 * when an actor exits, the actor it woke last (it runs next: typically a
 * parent or caller waiting for its result). The front runs first, so a
 * tree of spawns runs depth-first: its live set stays a few actors per
 * level and warm stacks are reused, where breadth-first order would keep
 * the whole tree alive at once, each actor on a freshly carved stack.
 *
 * Fairness: a run of front dispatches is treated like one actor's turn.
 * After TR__RQ_FRONT_RUN consecutive dispatches from the front, the front
 * moves behind the back (its actors keep their order) and the back's head
 * runs; a yield does the same before queueing the yielder. So whatever
 * chain of spawns and hand-offs runs ahead, an actor waiting at the back
 * runs once the actors ahead of it have had their turns, each turn at most
 * TR__RQ_FRONT_RUN + 1 dispatches. */

/* Moves the front behind the back, in order; O(1). */
static void rq_demote_front(tr__sched_t *s) {
  tr__actor_t *first = s->rq_head, *last = s->rqf_end, *back = last->rq_next;
  s->rqf_end = NULL;
  s->rqf_last = NULL;
  if (back == NULL) return; /* nobody behind: the order stays */
  s->rq_head = back;
  back->rq_prev = NULL;
  s->rq_tail->rq_next = first;
  first->rq_prev = s->rq_tail;
  last->rq_next = NULL;
  s->rq_tail = last;
}

/* Puts a in the front after `prev`, a front actor (NULL: at the head). */
static inline void front_insert(tr__sched_t *s, tr__actor_t *a,
                                tr__actor_t *prev) {
  tr__actor_t *next = prev ? prev->rq_next : s->rq_head;
  a->rq_prev = prev;
  a->rq_next = next;
  if (prev) prev->rq_next = a;
  else s->rq_head = a;
  if (next) next->rq_prev = a;
  else s->rq_tail = a;
  if (prev == s->rqf_end) s->rqf_end = a;
}

static inline void rq_unlink(tr__sched_t *s, tr__actor_t *a) {
  if (a == s->rqf_end) s->rqf_end = a->rq_prev;
  if (a->rq_prev) a->rq_prev->rq_next = a->rq_next;
  else s->rq_head = a->rq_next;
  if (a->rq_next) a->rq_next->rq_prev = a->rq_prev;
  else s->rq_tail = a->rq_prev;
  a->rq_next = a->rq_prev = NULL;
}

/* Takes the next actor to run; a new slice starts (no batch, no hand-off). */
static inline tr__actor_t *rq_pop(tr__sched_t *s) {
  tr__actor_t *a;
  s->rqf_last = NULL;
  s->handoff = NULL;
  if (s->rqf_end == NULL) {
    s->front_run = 0;
  } else if (TR__UNLIKELY(s->front_run++ >= TR__RQ_FRONT_RUN)) {
    rq_demote_front(s); /* the front's turn is over */
    s->front_run = 0;
  }
  if ((a = s->rq_head) == NULL) return NULL;
  if (a == s->rqf_end) s->rqf_end = NULL;
  s->rq_head = a->rq_next;
  if (a->rq_next) a->rq_next->rq_prev = NULL;
  else s->rq_tail = NULL;
  a->rq_next = NULL;
  return a;
}

void tr__rq_remove(tr__sched_t *s, tr__actor_t *a) {
  if (a == s->rqf_last) s->rqf_last = a->rq_prev;
  rq_unlink(s, a);
}

static void idle_cb(uv_idle_t *h);

/* Attached: the host's loop must call back while actors are runnable. */
static inline void idle_ensure(tr__sched_t *s) {
  if (s->rt->attached && !s->idle_active && !s->in_drain) {
    uv_idle_start(&s->idle, idle_cb);
    s->idle_active = 1;
  }
}

static inline void wake_push(tr__sched_t *s, tr__actor_t *a) {
  tr__rq_wake_push(s, a);
  idle_ensure(s);
}

/* Out of line, so that the hot wake pays one test of a->hib and no
 * registers saved for the call. */
__attribute__((noinline, cold)) static void
wake_hibernated(tr__sched_t *s, tr__actor_t *a) {
  if (tr__hib_wake(s, a) == 0) wake_push(s, a);
}

void tr__sched_wake(tr__sched_t *s, tr__actor_t *a) {
  if (a->state != TR__ST_WAITING) return;
  if (TR__UNLIKELY(a->hib)) {
    wake_hibernated(s, a);
    return;
  }
  wake_push(s, a);
}

void tr__sched_yield(tr__sched_t *s, tr__actor_t *a) {
  if (s->rqf_end != NULL) rq_demote_front(s);
  a->state = TR__ST_WAITING;
  tr__sched_wake(s, a);
  tr__sched_block(s, a);
}

void tr__sched_start(tr__sched_t *s, tr__actor_t *a) {
  a->state = TR__ST_RUNNABLE;
  if (s->current != NULL) {
    front_insert(s, a, s->rqf_last);
    s->rqf_last = a;
  } else {
    tr__rq_push_back(s, a);
  }
  idle_ensure(s);
}

/* ---- switching with sanitizer annotations ------------------------------- */

/* Stack bounds of the context we switch to, for ASan. */
#ifdef TR_ASAN
static void target_stack(tr__sched_t *s, tr__actor_t *to, const void **bottom,
                         size_t *size) {
  if (to != NULL) {
    *bottom = to->stack.lo;
    *size = to->stack.size;
  } else {
    *bottom = s->main_stack_bottom;
    *size = s->main_stack_size;
  }
}
#endif

/* Switches from `from` (NULL: main) to `to` (NULL: main). errno lives in a
 * local of each side's frame, so every context keeps its own. Switches
 * happen only inside tr__sched_drain, on the thread that set errno_loc:
 * reading errno through it saves the two __errno_location calls. */
static inline void do_switch(tr__sched_t *s, tr__actor_t *from,
                             tr__actor_t *to) {
  int saved_errno = *s->errno_loc;
  tr__ctx_t *fc = from ? &from->ctx : &s->main_ctx;
  tr__ctx_t *tc = to ? &to->ctx : &s->main_ctx;
#ifdef TR_ASAN
  void *fake = NULL;
  const void *bottom;
  size_t size;
  target_stack(s, to, &bottom, &size);
  /* A context that is never resumed (dead, or hibernating: its stack goes
   * back to the pool) keeps no fake stack. */
  __sanitizer_start_switch_fiber(
      (from && (from->state == TR__ST_DEAD || from->hib)) ? NULL : &fake,
      bottom, size);
#endif
#ifdef TR_TSAN
  __tsan_switch_to_fiber(to ? to->tsan_fiber : s->tsan_main, 0);
#endif
  tr__ctx_switch(fc, tc);
#ifdef TR_ASAN
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
  *s->errno_loc = saved_errno; /* read again: the thread may differ */
}

/* Called first thing on a new actor's stack. */
void tr__sched_entered(tr__sched_t *s, tr__actor_t *a) {
#ifdef TR_ASAN
  const void *old_bottom = NULL;
  size_t old_size = 0;
  __sanitizer_finish_switch_fiber(NULL, &old_bottom, &old_size);
  if (s->main_stack_bottom == NULL && old_bottom != NULL &&
      !tr__stack_in_slot(&a->stack, (uintptr_t)old_bottom)) {
    /* The first entry always comes from main (see tr__sched_drain). */
    s->main_stack_bottom = old_bottom;
    s->main_stack_size = old_size;
  }
#endif
  (void)s;
  (void)a;
}

/* Called in a's top frame right after the fault handler's siglongjmp: the
 * frames it skipped are dead. ASan cannot unpoison them itself (its
 * siglongjmp hook runs on the signal stack and only knows the thread's own
 * stack), so their stale redzones would make the next runtime call on this
 * stack a false positive. */
void tr__fiber_unwound(tr__actor_t *a) {
#ifdef TR_ASAN
  char *frame = __builtin_frame_address(0);
  __asan_unpoison_memory_region(a->stack.lo, (size_t)(frame - a->stack.lo));
#endif
  (void)a;
}

void tr__fiber_destroy(tr__actor_t *a) {
#ifdef TR_ASAN
  /* An actor that exits, crashes, is killed or hibernates never pops its
   * frames, so their redzones stay poisoned; clear them so that the next
   * actor given this slot (LIFO reuse) does not trip over stale poison.
   * (A hibernated actor has no stack: lo is NULL.) */
  if (a->stack.lo != NULL)
    __asan_unpoison_memory_region(a->stack.lo, a->stack.size);
#endif
#ifdef TR_TSAN
  if (a->tsan_fiber) __tsan_destroy_fiber(a->tsan_fiber);
  a->tsan_fiber = NULL;
#endif
  (void)a;
}

/* ---- blocking ----------------------------------------------------------- */

/* Nonzero, and the switch budget spent, once the drain has run for
 * TR__DRAIN_NS (the clock starts at the first check). */
static int drain_overdue(tr__sched_t *s) {
  uint64_t now = uv_hrtime();
  if (s->drain_until == 0) {
    s->drain_until = now + TR__DRAIN_NS;
    return 0;
  }
  if (now < s->drain_until) return 0;
  s->switches = TR__SWITCH_BUDGET;
  return 1;
}

/* Next actor to hand the CPU to from an actor context, or NULL for main:
 * main must run when something is waiting to be reaped, or when the loop
 * has not had a turn for a while. */
static inline tr__actor_t *next_from_actor(tr__sched_t *s) {
  if (s->dying_head != NULL || ++s->switches >= TR__SWITCH_BUDGET) return NULL;
  if ((s->switches & (TR__CLOCK_EVERY - 1)) == 0 && drain_overdue(s))
    return NULL;
  return rq_pop(s);
}

/* Suspends a (the current actor, state already set by the caller) until
 * someone makes it runnable again. */
void tr__sched_block(tr__sched_t *s, tr__actor_t *a) {
  tr__actor_t *next;
  if (s->out_mask != 0) tr__outbox_flush_all(s); /* what it sent goes now */
  next = next_from_actor(s);
  if (next == a) { /* yielded with nobody else runnable */
    a->state = TR__ST_RUNNING;
    return;
  }
  if (next != NULL) next->state = TR__ST_RUNNING;
  s->current = next;
  do_switch(s, a, next);
  /* Resumed: whoever switched to us set s->current = a. */
}

/* Ends the current actor for good: main reaps it. */
_Noreturn void tr__sched_exit_current(tr__sched_t *s, tr__actor_t *a) {
  tr__actor_t *h = s->handoff;
  if (s->out_mask != 0) tr__outbox_flush_all(s);
  if (h != NULL && h != a && h->state == TR__ST_RUNNABLE) {
    rq_unlink(s, h); /* the actor it woke last runs next (see run queue) */
    front_insert(s, h, NULL);
  }
  a->state = TR__ST_DEAD;
  a->dying_next = NULL;
  if (s->dying_tail) s->dying_tail->dying_next = a;
  else s->dying_head = a;
  s->dying_tail = a;
  s->current = NULL;
  do_switch(s, a, NULL);
  abort(); /* a dead actor is never resumed */
}

/* The current actor hibernates: it goes to main, never to the next actor,
 * because its stack can only go back to the pool once nothing runs on it.
 * Main does that in tr__reap, right after the switch returns there. */
_Noreturn void tr__sched_hibernate(tr__sched_t *s, tr__actor_t *a) {
  if (s->out_mask != 0) tr__outbox_flush_all(s);
  a->state = TR__ST_WAITING;
  s->hib_pending = a;
  s->current = NULL;
  do_switch(s, a, NULL);
  abort(); /* a hibernated context is never resumed */
}

/* Attached scheduler 0 with other schedulers: its uv_async keeps the
 * host's loop alive while actors live anywhere (another scheduler may send
 * to it at any time), and no longer once they are all gone. */
void tr__async_ref_update(tr__sched_t *s) {
  tr_runtime_t *rt = s->rt;
  int want;
  if (!rt->attached || s != &rt->sched || rt->nsched == 1 || !s->async_open)
    return;
  want = atomic_load(&rt->scheds_live) > 0;
  if (want == s->async_refd) return;
  s->async_refd = want;
  if (want) uv_ref((uv_handle_t *)&s->async);
  else uv_unref((uv_handle_t *)&s->async);
}

/* Runs actors until none is runnable or the loop is due a turn, applying
 * the inbox first and whenever the run queue runs dry. Must be called on
 * the scheduler's own stack. */
void tr__sched_drain(tr__sched_t *s) {
  tr__actor_t *a;
  tr__sched_t *prev = tr__tls_sched;
  tr__tls_sched = s;
  s->in_drain = 1;
  s->errno_loc = &errno;
  s->switches = 0;
  s->drain_until = 0;
  /* No asynchronous signal handler may run on an actor's stack. */
  pthread_sigmask(SIG_SETMASK, &s->sigmask, NULL);
  for (;;) {
    tr__inbox_apply(s);
    tr__reap(s);
    while (s->switches < TR__SWITCH_BUDGET && (a = rq_pop(s)) != NULL) {
      a->state = TR__ST_RUNNING;
      s->current = a;
      do_switch(s, NULL, a);
      s->current = NULL;
      tr__reap(s);
    }
    if (s->switches >= TR__SWITCH_BUDGET || !tr__inbox_pending(s)) break;
  }
  tr__outbox_flush_all(s); /* what apply and reap sent, before any sleep */
  pthread_sigmask(SIG_SETMASK, &s->loop_mask, NULL);
  s->in_drain = 0;
  tr__tls_sched = prev;
  tr__sched_settle(s);
}

/* Attached scheduler 0 goes back to the host's loop after draining: other
 * threads must wake it through its uv_async from now on, and what is still
 * runnable or queued runs on the next loop turn (the idle handle). */
void tr__sched_settle(tr__sched_t *s) {
  tr_runtime_t *rt = s->rt;
  int all_idle, more;
  if (!rt->attached) return;
  more = s->rq_head != NULL;
  if (s == &rt->sched && !tr__sched_sleep(s, 0, &all_idle)) more = 1;
  if (more && !s->idle_active && !s->handles_closing) {
    uv_idle_start(&s->idle, idle_cb); /* budget ran out: continue next turn */
    s->idle_active = 1;
  }
  tr__async_ref_update(s);
}

static void idle_cb(uv_idle_t *h) {
  tr__sched_t *s = h->data;
  tr__sched_drain(s);
  if (s->rq_head == NULL && (s != &s->rt->sched || !tr__inbox_pending(s))) {
    uv_idle_stop(&s->idle);
    s->idle_active = 0;
  }
  tr__runtime_check_stop(s);
}

/* ---- lifecycle ---------------------------------------------------------- */

int tr__sched_init(tr__sched_t *s, tr_runtime_t *rt, uv_loop_t *loop) {
  int err;
  memset(s, 0, sizeof(*s));
  s->rt = rt;
  if (loop == NULL) { /* a scheduler thread's own loop */
    if ((err = uv_loop_init(&s->own_loop)) != 0) return err;
    loop = &s->own_loop;
  }
  s->loop = loop;
  s->alive = mmap(NULL, sizeof(*s->alive) << TR__IDX_BITS,
                  PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (s->alive == MAP_FAILED) {
    s->alive = NULL;
    return TR_ENOMEM;
  }
  err = tr__stack_pool_new(&s->stacks, rt->cfg.stack_cache);
  if (err != 0) {
    munmap((void *)s->alive, sizeof(*s->alive) << TR__IDX_BITS);
    s->alive = NULL;
    return err;
  }
  uv_timer_init(loop, &s->uv_timer);
  s->uv_timer.data = s;
  uv_idle_init(loop, &s->idle);
  s->idle.data = s;
  uv_timer_init(loop, &s->stop_timer);
  s->stop_timer.data = s;
  tr__inbox_init(&s->inbox);
  pthread_mutex_init(&s->async_mu, NULL);
  uv_async_init(loop, &s->async, tr__async_cb);
  s->async.data = s;
  uv_unref((uv_handle_t *)&s->async); /* see tr__async_ref_update */
  s->async_open = 1;
  s->handles_open = 4;
#ifdef TR_TSAN
  s->tsan_main = __tsan_get_current_fiber();
#endif
  return 0;
}

static void handle_closed(uv_handle_t *h) {
  tr__sched_t *s = h->data;
  s->handles_open--;
}

/* Closes the runtime's handles on the loop (idempotent). */
void tr__sched_close_handles(tr__sched_t *s) {
  if (s->handles_closing) return;
  s->handles_closing = 1;
  uv_close((uv_handle_t *)&s->uv_timer, handle_closed);
  uv_close((uv_handle_t *)&s->idle, handle_closed);
  uv_close((uv_handle_t *)&s->stop_timer, handle_closed);
  pthread_mutex_lock(&s->async_mu);
  s->async_open = 0; /* no uv_async_send from here on */
  pthread_mutex_unlock(&s->async_mu);
  uv_close((uv_handle_t *)&s->async, handle_closed);
}

void tr__sched_destroy(tr__sched_t *s) {
  tr__io_destroy(s);
  tr__actor_cache_destroy(s);
  tr__msg_cache_destroy(s);
  tr__batch_cache_destroy(s);
  tr__timers_destroy(s);
  tr__slots_destroy(&s->pids);
  tr__slots_destroy(&s->timer_refs);
  tr__map_destroy(&s->rmon);
  tr__map_destroy(&s->rtimers);
  if (s->alive != NULL)
    munmap((void *)s->alive, sizeof(*s->alive) << TR__IDX_BITS);
  s->alive = NULL;
  pthread_mutex_destroy(&s->async_mu);
  tr__stack_pool_free(s->stacks);
  s->stacks = NULL;
}
