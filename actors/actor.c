/*
 * Actor lifecycle: spawn, the top frame (where faults land), exit, and
 * reaping — releasing everything an actor held, whatever ended it.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TR_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Stack kept free below the deepest runtime call made from an actor: an
 * actor that enters the runtime with less than this left exits with
 * stack_overflow instead of faulting inside runtime code. */
#define TR__RESERVE_MAX (16 * 1024)

static size_t reserve_for(const tr__actor_t *a) {
  size_t r = a->stack.size / 4;
  return r < TR__RESERVE_MAX ? r : TR__RESERVE_MAX;
}

void tr__reason_set(tr_reason_t *r, tr_reason_kind_t kind) {
  memset(r, 0, sizeof(*r));
  r->kind = kind;
}

/* ---- exit reasons --------------------------------------------------------
 *
 * A live actor carries no reason, only a pointer (tr__actor_t.exit). A
 * plain reason (a kind and nothing else: normal, shutdown, killed, ...)
 * points into a shared table. The running actor's own exit with details
 * (tr_exit_error, a fault, the stack reserve, a supervisor's reason) goes
 * into its scheduler's record, exit_rec: an actor that exits is reaped
 * before any other actor runs on its scheduler, so the record is free
 * again by the next such exit, and the fault handler can fill it without
 * allocating. Only a reason with details given to an actor that is not
 * running, or pending while it runs (an exit signal), is allocated. */

#define PLAIN(k) [k] = {.reason = {.kind = k}}
static const tr__exit_t plain_exits[TR_REASON__COUNT] = {
    PLAIN(TR_REASON_NORMAL),         PLAIN(TR_REASON_SHUTDOWN),
    PLAIN(TR_REASON_KILL),           PLAIN(TR_REASON_KILLED),
    PLAIN(TR_REASON_NOPROC),         PLAIN(TR_REASON_ERROR),
    PLAIN(TR_REASON_STACK_OVERFLOW), PLAIN(TR_REASON_SEGV),
    PLAIN(TR_REASON_BUS),            PLAIN(TR_REASON_FPE),
    PLAIN(TR_REASON_ILL),            PLAIN(TR_REASON_ABORT),
    PLAIN(TR_REASON_TRAP),           PLAIN(TR_REASON_MAILBOX_OVERFLOW),
};
#undef PLAIN
_Static_assert(TR_REASON__COUNT == 14, "one plain exit per reason kind");

static int reason_is_plain(const tr_reason_t *r) {
  return (unsigned)r->kind < TR_REASON__COUNT && r->code == 0 &&
         r->addr == 0 && r->pc == 0 && r->text[0] == '\0';
}

static void exit_release(tr__actor_t *a) {
  if (a->exit_owned) free((void *)a->exit);
  a->exit = NULL;
  a->exit_owned = 0;
}

static void exit_plain(tr__actor_t *a, tr_reason_kind_t kind) {
  exit_release(a);
  a->exit = &plain_exits[(unsigned)kind < TR_REASON__COUNT ? kind
                                                           : TR_REASON_ERROR];
}

/* a, which is not running or gets a pending exit, keeps a copy of r until
 * it is reaped. Without memory only the kind is kept. */
static void exit_keep(tr__actor_t *a, const tr_reason_t *r) {
  tr__exit_t *e;
  if (reason_is_plain(r) || (e = malloc(sizeof(*e))) == NULL) {
    exit_plain(a, r->kind);
    return;
  }
  e->reason = *r;
  e->bt[0] = 0;
  exit_release(a);
  a->exit = e;
  a->exit_owned = 1;
}

/* The running actor's exit record, cleared, now a's exit. */
static tr__exit_t *exit_record(tr__actor_t *a) {
  tr__exit_t *e = &a->s->exit_rec;
  exit_release(a);
  memset(&e->reason, 0, sizeof(e->reason));
  e->bt[0] = 0;
  a->exit = e;
  return e;
}

const tr_reason_t *tr__actor_reason(const tr__actor_t *a) {
  return a->exit != NULL ? &a->exit->reason : &plain_exits[0].reason;
}

_Noreturn void tr__actor_exit_with(tr__actor_t *a, const tr_reason_t *r) {
  if (reason_is_plain(r)) exit_plain(a, r->kind);
  else exit_record(a)->reason = *r;
  tr__sched_exit_current(a->s, a);
}

/* No free here, just after a fault: a pending reason's allocation, if
 * any, takes the record instead (and is freed with a). */
void tr__actor_exit_faulted(tr__actor_t *a) {
  if (a->exit_owned) *(tr__exit_t *)a->exit = a->s->exit_rec;
  else a->exit = &a->s->exit_rec;
}

void tr_spawn_opts_init(tr_spawn_opts_t *opts) {
  if (opts == NULL) return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
}

tr_pid_t tr_self(void) {
  tr__actor_t *a = tr__current();
  return a != NULL ? a->pid : TR_PID_NONE;
}

/* a entered the runtime at stack address `at`, inside its reserve: it
 * exits with stack_overflow. Out of line, so that the hot entry check
 * (tr__actor_enter, inline) needs no registers saved. */
__attribute__((noinline, cold)) _Noreturn void
tr__reserve_exhausted(tr__actor_t *a, uintptr_t at) {
  tr__exit_t *e = exit_record(a);
  e->reason.kind = TR_REASON_STACK_OVERFLOW;
  e->reason.addr = at;
  snprintf(e->reason.text, sizeof(e->reason.text),
           "stack reserve exhausted at runtime entry");
  tr__sched_exit_current(a->s, a);
}

/* ---- the top frame ------------------------------------------------------ */

static void actor_main(void *arg) {
  tr__actor_t *a = arg;
  tr__sched_t *s = a->s;
  sigjmp_buf env;
  tr__sched_entered(s, a);
  if (sigsetjmp(env, 0) == 0) {
    a->fault_env = &env;
    a->fn(a->arg);
    exit_plain(a, TR_REASON_NORMAL);
  } else {
    /* Back from the fault handler: it filled in s->exit_rec. The signal
     * stays blocked after siglongjmp(env, 0); unblock it. */
    tr__fiber_unwound(a);
    pthread_sigmask(SIG_SETMASK, &s->sigmask, NULL);
    tr__actor_exit_faulted(a);
  }
  a->fault_env = NULL;
  tr__sched_exit_current(s, a);
}

/* ---- spawn -------------------------------------------------------------- */

/* Cache colouring: how far below its top an actor's stack starts. Stack
 * slots lie a power of two plus a guard apart, so every actor's top
 * frames would fall on the same few cache sets (4 KiB apart in L1, and
 * only 32 different offsets in a 128 KiB L2 period with 64 KiB stacks):
 * a ring of 1,000 actors (W2) then missed L1 and L2 on every hop for the
 * saved context and the frames under it. The offset, a multiple of 64
 * bytes up to a sixteenth of the stack (at most 1,984 bytes), comes from
 * a hash of the slot's address, so a slot always gets the same one, and
 * an idle actor's frames stay within the top page (W5). */
static size_t stack_colour(const tr__stack_t *st) {
#ifdef TR_TSAN
  /* TSan's instrumentation calls its runtime on every access: a stack
   * overflow lands in the actor's frame or in that runtime (fatal: code
   * that may hold locks) depending on the start offset. Keep it fixed. */
  (void)st;
  return 0;
#else
  size_t span = st->size / 16 > 2048 ? 2048 : st->size / 16;
  uint64_t h = (uint64_t)((uintptr_t)st->lo >> 12) * UINT64_C(0x9E3779B97F4A7C15);
  return (size_t)(h >> 32) & (span - 64);
#endif
}

static inline __attribute__((always_inline)) int
actor_stack_new(tr__sched_t *s, tr__actor_t *a, size_t size) {
  int err = tr__stack_get(s->stacks, size, &a->stack);
  if (err != 0) return err;
  a->stack_limit = (uintptr_t)a->stack.lo + reserve_for(a);
  tr__ctx_make(&a->ctx, a->stack.lo, a->stack.size - stack_colour(&a->stack),
               actor_main, a);
#ifdef TR_TSAN
  a->tsan_fiber = __tsan_create_fiber(0);
#endif
  return 0;
}

int tr__actor_stack_new(tr__sched_t *s, tr__actor_t *a, size_t size) {
  return actor_stack_new(s, a, size);
}

/* Actor records: a per-scheduler cache of freed ones, so that spawn+exit
 * costs no malloc and no free (W3: the two were a third of its
 * instructions, because a spawn burst frees more records than glibc's
 * thread cache holds and the rest go through _int_free). The sanitizer
 * and valgrind builds keep no cache, so a use after free is still caught. */
#if defined(TR_ASAN) || defined(TR_VALGRIND)
#define ACTOR_CACHE_MAX 0
#else
#define ACTOR_CACHE_MAX 256
#endif

static tr__actor_t *actor_record_new(tr__sched_t *s) {
  tr__actor_t *a = s->actor_free;
  if (a == NULL) return calloc(1, sizeof(*a));
  s->actor_free = a->dying_next;
  s->actor_nfree--;
  memset(a, 0, sizeof(*a));
  return a;
}

static void actor_record_free(tr__sched_t *s, tr__actor_t *a) {
#if ACTOR_CACHE_MAX > 0
  if (s->actor_nfree < ACTOR_CACHE_MAX) {
    a->dying_next = s->actor_free;
    s->actor_free = a;
    s->actor_nfree++;
    return;
  }
#else
  (void)s;
#endif
  free(a);
}

void tr__actor_cache_destroy(tr__sched_t *s) {
  tr__actor_t *a;
  while ((a = s->actor_free) != NULL) {
    s->actor_free = a->dying_next;
    free(a);
  }
  s->actor_nfree = 0;
}

static int actor_alloc(tr__sched_t *s, size_t stack_size, tr__actor_t **out) {
  tr__actor_t *a = actor_record_new(s);
  uint32_t idx, gen;
  int err;
  if (a == NULL) return TR_ENOMEM;
  err = actor_stack_new(s, a, stack_size);
  if (err != 0) goto fail_stack;
  err = tr__slots_alloc(&s->pids, a, &idx, &gen);
  if (err != 0) goto fail_slot;
  a->pid = ((uint64_t)gen << 32) | ((uint64_t)s->id << TR__IDX_BITS) | idx;
  tr__alive_set(s, idx, a->pid);
  a->s = s;
  a->wait_timer.heap_idx = SIZE_MAX;
  a->wait_timer.type = TR__TIMER_WAIT;
  a->wait_timer.target = a;
  *out = a;
  return 0;
fail_slot:
  tr__stack_put(s->stacks, &a->stack);
  tr__fiber_destroy(a);
fail_stack:
  actor_record_free(s, a);
  return err;
}

/* a is dead from now on for every thread: its alive entry is cleared and,
 * if it had a registered name, the name is released (idempotent). */
static void mark_dead(tr__sched_t *s, tr__actor_t *a) {
  uint64_t old = tr__alive_clear(s, (uint32_t)(a->pid & TR__IDX_MASK));
  if (old & TR__ALIVE_NAMED) tr__registry_remove_actor(a);
}

static void top_list_add(tr__sched_t *s, tr__actor_t *a) {
  atomic_fetch_add(&s->rt->top_live, 1);
  a->top_level = 1;
  a->top_prev = NULL;
  a->top_next = s->top_head;
  if (s->top_head) s->top_head->top_prev = a;
  s->top_head = a;
}

static void top_list_remove(tr__sched_t *s, tr__actor_t *a) {
  if (!a->top_level) return;
  if (a->top_prev) a->top_prev->top_next = a->top_next;
  else s->top_head = a->top_next;
  if (a->top_next) a->top_next->top_prev = a->top_prev;
  a->top_level = 0;
  if (atomic_fetch_sub(&s->rt->top_live, 1) == 1 && s->rt->stopping) {
    /* The last top-level actor is gone: the others kill their stragglers. */
    for (unsigned i = 0; i < s->rt->nsched; i++)
      if (s->rt->scheds[i] != s) tr__poke(s->rt->scheds[i]);
  }
}

static int spawn_check(tr_runtime_t *rt, tr__actor_t *parent,
                       const tr_spawn_opts_t *o, tr_actor_fn fn) {
  size_t ss = o ? o->stack_size : 0;
  if (rt == NULL || fn == NULL) return TR_EINVAL;
  if (o != NULL && o->size != 0 &&
      (o->size < offsetof(tr_spawn_opts_t, monitor_ref) || o->size > sizeof(*o)))
    return TR_EINVAL;
  if (tr__mbox_opts_check(o) != 0) return TR_EINVAL;
  if (ss != 0 && (ss < TR_STACK_SIZE_MIN || ss > TR_STACK_SIZE_MAX))
    return TR_EINVAL;
  if (o && (o->flags & ~(unsigned)(TR_SPAWN_LINK | TR_SPAWN_MONITOR)))
    return TR_EINVAL;
  if (o && (o->flags & (TR_SPAWN_LINK | TR_SPAWN_MONITOR)) && parent == NULL)
    return TR_ENOTACTOR;
  if (o && (o->flags & TR_SPAWN_MONITOR) && o->monitor_ref == NULL)
    return TR_EINVAL;
  if (parent == NULL && rt->stopping) return TR_ESTOPPED;
  if (o && o->name) {
    tr_pid_t tmp;
    size_t n = strlen(o->name);
    if (n == 0 || n >= TR_NAME_MAX) return TR_EINVAL;
    if (tr_whereis(o->name, &tmp) == 0) return TR_EEXIST;
  }
  return 0;
}


static int spawn_extras(tr__actor_t *parent, tr__actor_t *a,
                        const tr_spawn_opts_t *o) {
  int err;
  if (o == NULL) return 0;
  if ((err = tr__mbox_opts_apply(a, o)) != 0) return err;
  if (o->name && (err = tr_register(o->name, a->pid)) != 0) return err;
  if ((o->flags & TR_SPAWN_LINK) && (err = tr__link_pair(parent, a)) != 0)
    return err;
  if (o->flags & TR_SPAWN_MONITOR)
    return tr__monitor_make(parent, a, o->monitor_ref);
  return 0;
}

static void actor_free(tr__actor_t *a);

/* Creates an actor on s (the calling thread's scheduler) and makes it
 * runnable. */
static int actor_create(tr__sched_t *s, tr_actor_fn fn, void *arg,
                        size_t stack_size, tr__actor_t **out) {
  tr__actor_t *a;
  int err = actor_alloc(s, stack_size, &a);
  if (err != 0) return err;
  a->fn = fn;
  a->arg = arg;
  tr__live_inc(s);
  *out = a;
  return 0;
}

/* ---- placement ------------------------------------------------------------ */

static int opts_have_placement(const tr_spawn_opts_t *o) {
  return o != NULL && (o->size == 0 || o->size >= offsetof(tr_spawn_opts_t, placement) +
                                                      sizeof(o->placement));
}

/* The scheduler a spawn from `local` with options o goes to. */
static int place(tr_runtime_t *rt, tr__sched_t *local, const tr_spawn_opts_t *o,
                 tr__sched_t **out) {
  int p = opts_have_placement(o) ? o->placement : TR_PLACE_DEFAULT;
  if (p == TR_PLACE_DEFAULT) p = rt->placement;
  switch (p) {
  case TR_PLACE_LOCAL:
    *out = local;
    return 0;
  case TR_PLACE_ROUND_ROBIN:
    *out = rt->scheds[atomic_fetch_add_explicit(&rt->rr_next, 1,
                                                memory_order_relaxed) %
                      rt->nsched];
    return 0;
  case TR_PLACE_LEAST_LOADED: {
    tr__sched_t *best = local;
    size_t least = local->live;
    for (unsigned i = 0; i < rt->nsched; i++) {
      size_t n = atomic_load_explicit(&rt->scheds[i]->live_pub,
                                      memory_order_relaxed);
      if (rt->scheds[i] != local && n < least) {
        least = n;
        best = rt->scheds[i];
      }
    }
    *out = best;
    return 0;
  }
  default:
    if (p >= TR_PLACE_SCHED(0) && p < TR_PLACE_SCHED(rt->nsched)) {
      *out = rt->scheds[p - TR_PLACE_SCHED(0)];
      return 0;
    }
    return TR_EINVAL;
  }
}

/* ---- remote spawn --------------------------------------------------------- */

/* A spawn request to another scheduler (the body of TR__SIG_SPAWN). */
typedef struct {
  tr_actor_fn fn;
  void *arg;
  tr_spawn_opts_t opts;    /* the caller's, normalised; no pointers kept */
  char name[TR_NAME_MAX];  /* "" for none */
  tr_pid_t spawner;        /* the spawning actor (or NONE: host code) */
  tr_pid_t sup_parent;
  tr_ref_t monitor_ref;
  uint64_t token;          /* the spawner's request */
  tr__host_wait_t *host;   /* host code waits here instead */
} tr__spawn_req_t;

/* The answer (body of TR__SIG_RPC_REPLY). */
typedef struct {
  tr__rpc_res_t res;
  unsigned flags;          /* spawn: TR_SPAWN_LINK / MONITOR to record */
  tr_ref_t monitor_ref;
  void *box;               /* a result box the waiter frees (NULL: none) */
} tr__rpc_reply_t;

static void rpc_reply_send(tr_runtime_t *rt, tr_pid_t to, uint64_t token,
                           const tr__rpc_reply_t *r) {
  tr__sig_send(rt, TR__SIG_RPC_REPLY, to, TR_PID_NONE, token, NULL, r,
               sizeof(*r), 0);
}

void tr__rpc_answer(tr_runtime_t *rt, tr_pid_t to, uint64_t token, int err,
                    tr_pid_t pid) {
  tr__rpc_reply_t r;
  memset(&r, 0, sizeof(r));
  r.res.err = err;
  r.res.pid = pid;
  rpc_reply_send(rt, to, token, &r);
}

void tr__rpc_wait(tr__actor_t *a) {
  while (!a->rpc_done) {
    a->state = TR__ST_WAITING;
    tr__sched_block(a->s, a); /* messages may wake us: keep waiting */
    tr__check_pending_exit(a);
  }
  a->rpc_token = 0;
}

/* Applies a spawn request on s, the chosen scheduler. */
void tr__sig_spawn_apply(tr__sched_t *s, tr_msg_t *m) {
  tr_runtime_t *rt = s->rt;
  tr__spawn_req_t q;
  tr__rpc_reply_t r;
  tr__actor_t *a = NULL;
  int err;
  memcpy(&q, m->data, sizeof(q));
  memset(&r, 0, sizeof(r));
  if (rt->freeing || (q.spawner == TR_PID_NONE && rt->stopping)) {
    err = TR_ESTOPPED;
  } else if ((err = actor_create(s, q.fn, q.arg,
                                 q.opts.stack_size ? q.opts.stack_size
                                                   : rt->cfg.stack_size,
                                 &a)) == 0) {
    unsigned flags = q.opts.flags;
    q.opts.flags = 0;
    q.opts.name = q.name[0] ? q.name : NULL;
    q.opts.monitor_ref = NULL;
    if ((err = tr__mbox_opts_apply(a, &q.opts)) == 0 &&
        (q.opts.name == NULL || (err = tr_register(q.opts.name, a->pid)) == 0) &&
        (!(flags & TR_SPAWN_LINK) || (err = tr__link_add(a, q.spawner)) == 0) &&
        (!(flags & TR_SPAWN_MONITOR) ||
         (err = tr__monitor_target_add(a, q.spawner, q.monitor_ref)) == 0)) {
      a->parent = q.sup_parent;
      if (q.spawner == TR_PID_NONE) top_list_add(s, a);
      tr__sched_start(s, a);
      r.res.pid = a->pid;
      r.flags = flags;
      r.monitor_ref = q.monitor_ref;
    } else {
      actor_free(a);
    }
  }
  r.res.err = err;
  if (q.host != NULL) tr__host_done(rt, q.host, &r.res);
  else rpc_reply_send(rt, q.spawner, q.token, &r);
}

/* An answer reached the scheduler of the actor that waits for it. */
void tr__sig_rpc_reply_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__rpc_reply_t r;
  tr__actor_t *a = tr__lookup(s, m->to);
  tr_reason_t why;
  memcpy(&r, m->data, sizeof(r));
  if (a != NULL && a->rpc_token == m->ref && !a->rpc_done) {
    /* Record the spawner's side before anything from the child arrives. */
    if (r.res.err == 0 && (r.flags & TR_SPAWN_LINK) &&
        tr__link_add(a, r.res.pid) != 0)
      abort();
    if (r.res.err == 0 && (r.flags & TR_SPAWN_MONITOR) &&
        tr__monitor_remote(a, r.res.pid, r.monitor_ref) != 0)
      abort();
    a->rpc_res = r.res;
    a->rpc_done = 1;
    tr__sched_wake(s, a);
    return;
  }
  free(r.box); /* the waiter is gone: nobody takes the result */
  if (r.res.err != 0 || r.flags == 0) return;
  /* The spawner died waiting: its child must not keep a link or monitor
   * to it. */
  if (r.flags & TR_SPAWN_LINK) {
    tr__reason_set(&why, TR_REASON_NOPROC);
    tr__sig_send(s->rt, TR__SIG_EXIT, r.res.pid, m->to, 0, &why, NULL, 0, 1);
  }
  if (r.flags & TR_SPAWN_MONITOR)
    tr__sig_send(s->rt, TR__SIG_DEMONITOR, r.res.pid, m->to, r.monitor_ref,
                 NULL, NULL, 0, 0);
}

/* ---- mailbox stats of another scheduler's actor ------------------------- */

typedef struct {
  int err;
  tr_mailbox_stats_t st;
} tr__stats_box_t;

/* The body of TR__SIG_MBOX_STATS. */
typedef struct {
  tr__stats_box_t *box;    /* filled by the target's scheduler */
  uint64_t token;          /* the waiting actor's request, or */
  tr__host_wait_t *host;   /* the waiting host */
} tr__stats_req_t;

void tr__sig_mbox_stats_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__stats_req_t q;
  tr__rpc_reply_t r;
  memcpy(&q, m->data, sizeof(q));
  q.box->err = tr_mailbox_stats(m->to, &q.box->st); /* local here */
  memset(&r, 0, sizeof(r));
  if (q.host != NULL) {
    tr__host_done(s->rt, q.host, &r.res);
    return;
  }
  r.box = q.box;
  rpc_reply_send(s->rt, m->from, q.token, &r);
}

int tr__mbox_stats_remote(tr_pid_t pid, tr_mailbox_stats_t *st) {
  tr__sched_t *s = tr__tls_sched, *dst = tr__pid_owner(s->rt, pid);
  tr__actor_t *a = s->current;
  tr__stats_req_t q;
  int err;
  memset(&q, 0, sizeof(q));
  if (a != NULL) {
    /* The box outlives us if we are killed while waiting: the answer's
     * scheduler frees it then. */
    if ((q.box = calloc(1, sizeof(*q.box))) == NULL) return TR_ENOMEM;
    q.token = a->rpc_token = ++s->next_token;
    a->rpc_done = 0;
    tr__sig_send_to(dst, TR__SIG_MBOX_STATS, pid, a->pid, 0, NULL, &q,
                    sizeof(q), 0);
    tr__rpc_wait(a);
  } else {
    tr__stats_box_t box;
    tr__host_wait_t w;
    if (s->in_cleanup) return TR_ECLEANUP;
    memset(&box, 0, sizeof(box));
    memset(&w, 0, sizeof(w));
    q.box = &box;
    q.host = &w;
    tr__sig_send_to(dst, TR__SIG_MBOX_STATS, pid, TR_PID_NONE, 0, NULL, &q,
                    sizeof(q), 0);
    tr__host_wait(s->rt, dst, &w);
    *st = box.st;
    return box.err;
  }
  *st = q.box->st;
  err = q.box->err;
  free(q.box);
  return err;
}

int tr__pid_is_remote(tr_pid_t pid) {
  tr__sched_t *s = tr__tls_sched;
  return s != NULL && tr__pid_sched(pid) != s->id && tr__pid_alive(s->rt, pid);
}

/* Spawns on `target`, another scheduler than the caller's. */
static int spawn_remote(tr_runtime_t *rt, tr__sched_t *target,
                        tr__actor_t *parent, tr_actor_fn fn, void *arg,
                        const tr_spawn_opts_t *o, tr_pid_t sup_parent,
                        tr_pid_t *pid) {
  tr__spawn_req_t q;
  tr__host_wait_t w;
  const tr__rpc_res_t *res;
  memset(&q, 0, sizeof(q));
  tr_spawn_opts_init(&q.opts);
  if (o != NULL)
    memcpy(&q.opts, o, o->size != 0 && o->size < sizeof(q.opts) ? o->size
                                                                 : sizeof(q.opts));
  q.opts.size = sizeof(q.opts);
  if (o != NULL && o->name != NULL) snprintf(q.name, sizeof(q.name), "%s", o->name);
  q.opts.name = NULL;
  q.opts.monitor_ref = NULL;
  q.fn = fn;
  q.arg = arg;
  q.sup_parent = sup_parent;
  if (parent != NULL) {
    tr__sched_t *s = parent->s;
    q.spawner = parent->pid;
    if (q.opts.flags & TR_SPAWN_MONITOR) q.monitor_ref = tr__make_ref(s);
    q.token = parent->rpc_token = ++s->next_token;
    parent->rpc_done = 0;
    tr__sig_send_to(target, TR__SIG_SPAWN, TR_PID_NONE, parent->pid, 0, NULL,
                    &q, sizeof(q), 0);
    tr__rpc_wait(parent);
    res = &parent->rpc_res;
    if (res->err == 0 && (q.opts.flags & TR_SPAWN_MONITOR))
      *o->monitor_ref = q.monitor_ref;
  } else {
    memset(&w, 0, sizeof(w));
    q.host = &w;
    tr__sig_send_to(target, TR__SIG_SPAWN, TR_PID_NONE, TR_PID_NONE, 0, NULL,
                    &q, sizeof(q), 0);
    tr__host_wait(rt, target, &w);
    res = &w.res;
    tr__async_ref_update(&rt->sched);
  }
  if (res->err == 0 && pid != NULL) *pid = res->pid;
  return res->err;
}

int tr__spawn(tr_runtime_t *rt, tr_actor_fn fn, void *arg,
              const tr_spawn_opts_t *o, tr_pid_t sup_parent, tr_pid_t *pid) {
  tr__sched_t *prev = tr__tls_sched;
  tr__actor_t *parent = tr__current();
  tr__actor_t *a = NULL;
  tr__sched_t *s, *local;
  int err = 0;
  /* From an actor, spawn is a runtime entry point like send and receive:
   * the stack reserve is enforced and its code counts as runtime code. */
  tr__actor_t *entered __attribute__((cleanup(tr__actor_leave))) =
      parent != NULL ? tr__actor_enter(&err) : NULL;
  (void)entered;
  if (rt == NULL && parent != NULL) rt = parent->s->rt;
  if (parent != NULL && parent->s->rt != rt) return TR_EINVAL;
  if (parent == NULL && prev != NULL && prev->in_cleanup) return TR_ECLEANUP;
  if ((err = spawn_check(rt, parent, o, fn)) != 0) return err;
  local = parent != NULL ? parent->s
          : (prev != NULL && prev->rt == rt) ? prev : &rt->sched;
  if ((err = place(rt, local, o, &s)) != 0) return err;
  if (s != local)
    return spawn_remote(rt, s, parent, fn, arg, o, sup_parent, pid);
  tr__tls_sched = s;
  err = actor_create(s, fn, arg,
                     (o && o->stack_size) ? o->stack_size : rt->cfg.stack_size, &a);
  if (err != 0) goto out;
  if ((err = spawn_extras(parent, a, o)) != 0) {
    actor_free(a);
    goto out;
  }
  a->parent = sup_parent;
  if (parent == NULL) top_list_add(s, a);
  tr__sched_start(s, a);
  if (pid) *pid = a->pid;
out:
  tr__tls_sched = prev;
  return err;
}

int tr_spawn(tr_runtime_t *rt, tr_actor_fn fn, void *arg,
             const tr_spawn_opts_t *o, tr_pid_t *pid) {
  return tr__spawn(rt, fn, arg, o, TR_PID_NONE, pid);
}

int tr_spawn_link(tr_actor_fn fn, void *arg, tr_pid_t *pid) {
  tr_spawn_opts_t o;
  int err; /* TR_ENOTACTOR, or TR_ECLEANUP in a cleanup */
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_LINK;
  if (tr__current() == NULL) return tr__actor_enter(&err) ? 0 : err;
  return tr_spawn(NULL, fn, arg, &o, pid);
}

int tr_spawn_monitor(tr_actor_fn fn, void *arg, tr_pid_t *pid, tr_ref_t *ref) {
  tr_spawn_opts_t o;
  int err;
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_MONITOR;
  o.monitor_ref = ref;
  if (tr__current() == NULL) return tr__actor_enter(&err) ? 0 : err;
  return tr_spawn(NULL, fn, arg, &o, pid);
}

/* ---- yield and exit ----------------------------------------------------- */

int tr_yield(void) {
  TR__ACTOR_OR_RETURN(a);
  tr__sched_yield(a->s, a);
  tr__check_pending_exit(a);
  return 0;
}

int tr_exit(tr_reason_kind_t kind) {
  tr__actor_t *a = tr__current();
  if (a == NULL) {
    tr__sched_t *s = tr__tls_sched;
    return (s && s->in_cleanup) ? TR_ECLEANUP : TR_ENOTACTOR;
  }
  if ((unsigned)kind >= TR_REASON__COUNT) return TR_EINVAL;
  exit_plain(a, kind == TR_REASON_KILL ? TR_REASON_KILLED : kind);
  tr__sched_exit_current(a->s, a);
}

int tr_exit_error(int code, const char *fmt, ...) {
  tr__actor_t *a = tr__current();
  tr__exit_t *e;
  va_list ap;
  if (a == NULL) {
    tr__sched_t *s = tr__tls_sched;
    return (s && s->in_cleanup) ? TR_ECLEANUP : TR_ENOTACTOR;
  }
  e = exit_record(a);
  e->reason.kind = TR_REASON_ERROR;
  e->reason.code = code;
  if (fmt != NULL) {
    va_start(ap, fmt);
    vsnprintf(e->reason.text, sizeof(e->reason.text), fmt, ap);
    va_end(ap);
  }
  tr__sched_exit_current(a->s, a);
}

/* ---- killing and reaping ------------------------------------------------ */

/* Ends actor a with reason r. The current actor only gets a pending exit
 * (it cannot be torn down under its own feet); any other actor is marked
 * dead at once — it no longer receives, and its pid is stale — and queued
 * for reaping on the scheduler stack. */
void tr__actor_kill(tr__sched_t *s, tr__actor_t *a, const tr_reason_t *r) {
  if (a->state == TR__ST_DEAD) return;
  if (a == s->current) {
    if (!a->exit_pending) {
      exit_keep(a, r);
      a->exit_pending = 1;
    }
    return;
  }
  exit_keep(a, r);
  mark_dead(s, a); /* the pid is stale and the name free at once */
  if (a->state == TR__ST_RUNNABLE) tr__rq_remove(s, a);
  tr__timer_disarm(s, &a->wait_timer);
  a->state = TR__ST_DEAD;
  a->dying_next = NULL;
  if (s->dying_tail) s->dying_tail->dying_next = a;
  else s->dying_head = a;
  s->dying_tail = a;
}

static void actor_free(tr__actor_t *a) {
  tr__sched_t *s = a->s;
  mark_dead(s, a);
  tr__mailbox_clear(a);
  free(a->links);
  tr__slots_release(&s->pids, (uint32_t)(a->pid & TR__IDX_MASK));
  if (a->hib) {
    /* hibernated: its stack went back to the pool already */
  } else if (tr__actor_reason(a)->kind == TR_REASON_STACK_OVERFLOW) {
    tr__stack_put_touched(s->stacks, &a->stack); /* touched to the guard */
  } else {
    tr__stack_put(s->stacks, &a->stack);
  }
  tr__fiber_destroy(a);
  exit_release(a);
  actor_record_free(s, a);
  tr__live_dec(s);
}

/* Releases everything a held, in this order: its own cleanups (so that a
 * restarted successor finds ports and files free), its name and timers,
 * then the exit signals and DOWN messages that tell others. */
static void reap_one(tr__sched_t *s, tr__actor_t *a) {
  if (tr_reason_is_crash(tr__actor_reason(a)->kind)) tr__crash_report(s, a);
  s->in_cleanup++;
  tr__ledger_release(a);
  s->in_cleanup--;
  mark_dead(s, a);
  tr__timers_release(a);
  tr__timer_disarm(s, &a->wait_timer);
  top_list_remove(s, a);
  tr__links_notify(a);
  tr__monitors_release(a);
  actor_free(a);
}

/* Reaps every dead actor; runs on the scheduler stack only. */
void tr__reap(tr__sched_t *s) {
  tr__actor_t *a;
  if (TR__UNLIKELY(s->hib_pending != NULL)) tr__hib_release(s);
  while ((a = s->dying_head) != NULL) {
    s->dying_head = a->dying_next;
    if (s->dying_head == NULL) s->dying_tail = NULL;
    reap_one(s, a);
  }
}

/* Kills every live actor with `kind` (runtime stop and free). */
void tr__kill_all(tr__sched_t *s, tr_reason_kind_t kind) {
  tr_reason_t r;
  tr__reason_set(&r, kind);
  for (uint32_t i = 0; i < s->pids.cap; i++) {
    tr__actor_t *a = s->pids.ptr[i];
    if (a != NULL && a->state != TR__ST_DEAD) tr__actor_kill(s, a, &r);
  }
}

int tr_is_alive(tr_pid_t pid) {
  tr__sched_t *s = tr__tls_sched;
  if (s == NULL) return 0;
  if (tr__pid_sched(pid) == s->id) return tr__lookup(s, pid) != NULL;
  return tr__pid_alive(s->rt, pid);
}

unsigned tr_pid_scheduler(tr_pid_t pid) { return tr__pid_sched(pid); }
