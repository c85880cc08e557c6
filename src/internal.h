/*
 * Internal structures shared by the runtime layers (src/, actors/,
 * mailbox/, supervisor/). Nothing here is API.
 *
 * Threading: everything hanging off a scheduler is touched only by that
 * scheduler's thread. Actors never migrate (see doc/design.md).
 */
#ifndef TR_INTERNAL_H
#define TR_INTERNAL_H

#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "stack.h"
#include "troupe.h"

#define TR__LIKELY(x) __builtin_expect(!!(x), 1)
#define TR__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TR__TLS __thread __attribute__((tls_model("initial-exec")))

typedef struct tr__actor tr__actor_t;
typedef struct tr__sched tr__sched_t;
typedef struct tr__timer tr__timer_t;
typedef struct tr__monitor tr__monitor_t;
typedef struct tr__defer tr__defer_t;

/* ---- handle tables: index + generation, shared by pids and timer refs ---- */

#define TR__IDX_BITS 24
#define TR__IDX_MASK ((1u << TR__IDX_BITS) - 1)
#define TR__REF_COUNTER_BIT (UINT64_C(1) << 63)

typedef struct tr__slots {
  void **ptr;      /* live object per index, NULL when free */
  uint32_t *gen;   /* generation of each index (never 0 once used) */
  uint32_t *free;  /* LIFO stack of free indices */
  uint32_t nfree;
  uint32_t cap;
} tr__slots_t;

int tr__slots_alloc(tr__slots_t *t, void *obj, uint32_t *idx, uint32_t *gen);
void tr__slots_release(tr__slots_t *t, uint32_t idx);
void tr__slots_destroy(tr__slots_t *t);

/* ---- timers ---- */

enum { TR__TIMER_WAIT = 1, TR__TIMER_SEND = 2 };

struct tr__timer {
  uint64_t due_ms;     /* absolute, on the uv_hrtime clock in ms */
  size_t heap_idx;     /* position in the scheduler heap; SIZE_MAX if none */
  int type;
  tr_ref_t ref;        /* SEND timers: handle in sched->timer_refs */
  tr__actor_t *target; /* WAIT: the sleeper; SEND: the receiver */
  tr_msg_t *msg;       /* SEND: message to deliver */
  tr__timer_t *t_next, *t_prev; /* SEND timers aimed at target */
};

/* ---- messages ---- */

struct tr_msg_s {
  tr_msg_t *next;          /* mailbox queue / held list */
  tr_msg_t *prev;          /* held list only */
  tr__actor_t *holder;     /* actor that received it and holds it */
  tr_pid_t from;
  tr_ref_t ref;
  tr_reason_t *reason;     /* EXIT/DOWN: trailing storage */
  msgpack_zone *zone;      /* decode zone for arrays/maps */
  msgpack_object obj;
  uint8_t kind;
  uint8_t decoded;
  uint8_t cls;             /* allocation size class, TR__MSG_NOCLASS if none */
  size_t len;
  char data[];             /* msgpack body, then tr_reason_t if any */
};

/* Small messages are recycled through per-scheduler free lists. */
#define TR__MSG_CLASSES 3
#define TR__MSG_NOCLASS 0xff
#define TR__MSG_CACHE_MAX 4096

tr_msg_t *tr__msg_new(tr_msg_kind_t kind, const void *data, size_t len,
                      int with_reason);
void tr__msg_destroy(tr_msg_t *m);
void tr__msg_cache_destroy(tr__sched_t *s);
/* Queues m to a (a live actor of the calling thread's scheduler), waking it
 * if it waits. Takes ownership of m. */
void tr__deliver(tr__actor_t *a, tr_msg_t *m);
void tr__mailbox_clear(tr__actor_t *a);
/* Selective receive with a runtime-side predicate (faults are fatal). */
int tr__recv_internal(tr__actor_t *a, tr_msg_t **msg, tr_match_fn match,
                      void *arg, int timeout_ms);
/* Frees every queued message that match accepts. */
void tr__mailbox_drop_match(tr__actor_t *a, tr_match_fn match, void *arg);
/* Builds and delivers a system message (EXIT / DOWN). */
void tr__deliver_exit(tr__actor_t *to, tr_pid_t from, const tr_reason_t *r);
void tr__deliver_down(tr__actor_t *to, tr_ref_t ref, tr_pid_t from,
                      const tr_reason_t *r);

/* ---- actors ---- */

enum {
  TR__ST_RUNNABLE = 1, /* in the run queue */
  TR__ST_RUNNING,      /* on the CPU */
  TR__ST_WAITING,      /* blocked: receive, sleep, I/O */
  TR__ST_DEAD          /* exited, awaiting reaping */
};

struct tr__monitor {
  tr_ref_t ref;
  tr__actor_t *watcher;
  tr__actor_t *target;
  tr__monitor_t *w_next, *w_prev; /* in watcher->monitors */
  tr__monitor_t *t_next, *t_prev; /* in target->monitored_by */
};

struct tr__defer {
  void (*fn)(void *);
  void *arg;
  tr__defer_t *next;
};

struct tr__actor {
  tr__ctx_t ctx;
  tr__sched_t *s;
  tr_pid_t pid;
  uint8_t state;
  uint8_t trap_exit;
  uint8_t top_level;     /* spawned from outside any actor */
  uint8_t timed_out;     /* the wait timer fired */
  uint8_t exit_pending;  /* an exit signal arrived while running */
  uint8_t in_runtime;    /* executing runtime code (faults are fatal) */
  tr__actor_t *rq_next, *rq_prev;
  /* mailbox: FIFO of undelivered messages; held: received, not freed */
  tr_msg_t *mq_head, *mq_tail;
  size_t mq_len;
  tr_msg_t *held;
  tr_ref_t call_ref;     /* reply awaited by tr_call, 0 if none */
  tr__timer_t wait_timer;
  tr__stack_t stack;
  uintptr_t stack_limit; /* runtime entry below this: stack_overflow */
  tr_actor_fn fn;
  void *arg;
  sigjmp_buf *fault_env; /* top frame, for the fault handler */
  tr_reason_t reason;    /* exit reason once dead (or pending) */
  uintptr_t fault_bt[8]; /* return addresses at the fault, 0-terminated */
  /* links: pids of linked actors */
  tr_pid_t *links;
  uint32_t nlinks, caplinks;
  tr__monitor_t *monitors;     /* as watcher */
  tr__monitor_t *monitored_by; /* as target */
  tr__timer_t *timers;         /* SEND timers aimed at this actor */
  char *name;
  tr__defer_t *defers;
  void *arena;                 /* list of arena blocks */
  tr__actor_t *top_next, *top_prev; /* top-level list (stop order) */
  tr__actor_t *dying_next;
  tr_pid_t parent;  /* supervisor/: who awaits its init ack (tr_sup_init_ack) */
  struct tr__io_handle *io_handles; /* I/O handles it owns (src/io_core.c) */
  struct tr__io_op *io_ops;         /* I/O requests it waits for */
#ifdef TR_TSAN
  void *tsan_fiber;
#endif
};

/* ---- scheduler ---- */

struct tr__sched {
  tr_runtime_t *rt;
  unsigned id;
  uv_loop_t *loop;
  tr__ctx_t main_ctx;
  tr__actor_t *current;
  tr__actor_t *rq_head, *rq_tail;
  tr__actor_t *dying_head, *dying_tail;
  tr__slots_t pids;
  tr__slots_t timer_refs;
  tr__stack_pool_t *stacks;
  size_t live;
  uint64_t next_ref;
  unsigned switches;       /* since the loop last got control */
  int in_cleanup;          /* running defer callbacks */
  int in_drain;
  /* timers */
  tr__timer_t **heap;
  size_t heap_len, heap_cap;
  uint64_t armed_ms;       /* due time uv_timer is armed for, or 0 */
  uv_timer_t uv_timer;
  uv_idle_t idle;
  uv_timer_t stop_timer;
  int idle_active;
  int handles_open;        /* runtime handles not yet closed */
  int handles_closing;
  /* registry: open hash of name -> actor */
  tr__actor_t **names;
  size_t names_cap, names_len;
  tr__actor_t *top_head;   /* top-level actors, youngest first */
  tr_msg_t *msg_free[TR__MSG_CLASSES]; /* recycled message buffers */
  uint32_t msg_nfree[TR__MSG_CLASSES];
  /* crash capture */
  sigset_t sigmask;        /* mask while actors run (async signals blocked) */
  sigset_t loop_mask;      /* the thread's own mask, while the loop runs */
  void *altstack;
  size_t altstack_size;
  stack_t prev_altstack;
  int faults_installed;
  struct tr__io_sched *io;  /* I/O state, created at first use (io_core.c) */
#ifdef TR_ASAN
  const void *main_stack_bottom;
  size_t main_stack_size;
#endif
#ifdef TR_TSAN
  void *tsan_main;
#endif
};

struct tr_runtime_s {
  tr_config_t cfg;
  tr__sched_t sched;      /* one scheduler (multi-core comes later) */
  uv_loop_t own_loop;
  int attached;
  int running;
  int stopping;
  int stop_done;
  int freeing;
};

/* The scheduler driving the calling thread, or NULL. */
extern TR__TLS tr__sched_t *tr__tls_sched;

static inline tr__actor_t *tr__current(void) {
  tr__sched_t *s = tr__tls_sched;
  return s != NULL ? s->current : NULL;
}

/* Resolves a pid of scheduler s to its live actor, or NULL. */
static inline tr__actor_t *tr__lookup(tr__sched_t *s, tr_pid_t pid) {
  uint32_t idx = (uint32_t)(pid & TR__IDX_MASK);
  tr__actor_t *a;
  if (s == NULL || idx >= s->pids.cap) return NULL;
  a = (tr__actor_t *)s->pids.ptr[idx];
  if (a == NULL || a->pid != pid || a->state == TR__ST_DEAD) return NULL;
  return a;
}

tr_ref_t tr__make_ref(tr__sched_t *s);

/* Guards the actor-only API. Returns the current actor, or NULL with *err
 * set to TR_ENOTACTOR / TR_ECLEANUP. Also enforces the stack reserve: an
 * actor too close to its guard exits with stack_overflow here. */
tr__actor_t *tr__actor_enter(int *err);
static inline void tr__actor_leave(tr__actor_t **pa) {
  if (*pa != NULL) (*pa)->in_runtime--;
}
/* Declares `a` as the current actor for the rest of the scope, counting the
 * scope as runtime code (a fault there is fatal), or returns the error. */
#define TR__ACTOR_OR_RETURN(a)                                               \
  int tr__enter_err_;                                                        \
  tr__actor_t *a __attribute__((cleanup(tr__actor_leave))) =                 \
      tr__actor_enter(&tr__enter_err_);                                      \
  if (a == NULL) return tr__enter_err_

/* sched.c */
void tr__sched_wake(tr__sched_t *s, tr__actor_t *a);
void tr__sched_block(tr__sched_t *s, tr__actor_t *a);
void tr__sched_drain(tr__sched_t *s);
void tr__sched_switch_in(tr__sched_t *s, tr__actor_t *from, tr__actor_t *to);
void tr__sched_after_switch(tr__sched_t *s);
void tr__rq_remove(tr__sched_t *s, tr__actor_t *a);
_Noreturn void tr__sched_exit_current(tr__sched_t *s, tr__actor_t *a);
void tr__sched_entered(tr__sched_t *s, tr__actor_t *a);
void tr__fiber_destroy(tr__actor_t *a);
void tr__fiber_unwound(tr__actor_t *a);
int tr__sched_init(tr__sched_t *s, tr_runtime_t *rt, uv_loop_t *loop);
void tr__sched_close_handles(tr__sched_t *s);
void tr__sched_destroy(tr__sched_t *s);

/* actor.c */
void tr__actor_kill(tr__sched_t *s, tr__actor_t *a, const tr_reason_t *r);
void tr__reap(tr__sched_t *s);
void tr__reason_set(tr_reason_t *r, tr_reason_kind_t kind);
void tr__check_pending_exit(tr__actor_t *a);
void tr__kill_all(tr__sched_t *s, tr_reason_kind_t kind);

/* link.c */
int tr__link_pair(tr__actor_t *a, tr__actor_t *b);
int tr__monitor_make(tr__actor_t *w, tr__actor_t *t, tr_ref_t *ref);
void tr__exit_signal(tr__sched_t *s, tr__actor_t *to, tr_pid_t from,
                     const tr_reason_t *r, int from_link);
void tr__links_notify(tr__actor_t *a);
void tr__monitors_release(tr__actor_t *a);

/* registry.c */
void tr__registry_remove_actor(tr__actor_t *a);
void tr__registry_destroy(tr__sched_t *s);

/* ledger.c */
void tr__ledger_release(tr__actor_t *a);

/* io_core.c: closes an exiting actor's handles and detaches its pending
 * requests (called from tr__ledger_release); frees a scheduler's I/O state
 * (tr__sched_destroy). */
void tr__io_release(tr__actor_t *a);
void tr__io_destroy(tr__sched_t *s);

/* timer.c */
uint64_t tr__now_ms(void);
void tr__timer_arm(tr__sched_t *s, tr__timer_t *t, uint64_t due_ms);
void tr__timer_disarm(tr__sched_t *s, tr__timer_t *t);
void tr__timers_release(tr__actor_t *a);
void tr__timers_destroy(tr__sched_t *s);
void tr__timer_cb(uv_timer_t *h);

/* fault.c */
int tr__fault_init(tr__sched_t *s, int install);
void tr__fault_fini(tr__sched_t *s);
void tr__crash_report(tr__sched_t *s, tr__actor_t *a);

/* runtime.c */
void tr__log(tr__sched_t *s, tr_log_level_t level, const char *fmt, ...)
    TR_PRINTF(3, 4);
void tr__runtime_check_stop(tr__sched_t *s);

/* codec.h supplies the msgpack helpers. */

#endif
