/*
 * Internal structures shared by the runtime layers (src/, actors/,
 * mailbox/, supervisor/). Nothing here is API.
 *
 * Threading: everything hanging off a scheduler is touched only by that
 * scheduler's thread. Actors never migrate (see doc/design.md). Other
 * threads reach a scheduler only through its inbox (src/inbox.c), its
 * alive table (atomic pids) and the runtime-wide fields marked shared.
 */
#ifndef TR_INTERNAL_H
#define TR_INTERNAL_H

#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "context.h"
#include "stack.h"
#include "troupe.h"

#define TR__LIKELY(x) __builtin_expect(!!(x), 1)
#define TR__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TR__TLS __thread __attribute__((tls_model("initial-exec")))

/* A spin-wait hint to the CPU. */
static inline void tr__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Asks for the cache line at p in a state to write it (x86's PREFETCHW;
 * GCC emits it for __builtin_prefetch only with -mprfchw). For lines
 * another core read last: the write needs them exclusive. Never faults. */
static inline void tr__prefetch_w(const void *p) {
#if defined(__x86_64__)
  __asm__ __volatile__("prefetchw %0" : : "m"(*(const char *)p));
#else
  __builtin_prefetch(p, 1);
#endif
}

typedef struct tr__actor tr__actor_t;
typedef struct tr__sched tr__sched_t;
typedef struct tr__timer tr__timer_t;
typedef struct tr__monitor tr__monitor_t;
typedef struct tr__defer tr__defer_t;

/* ---- handle tables: index + generation, shared by pids and timer refs ---- */

#define TR__IDX_BITS 24
#define TR__IDX_MASK ((1u << TR__IDX_BITS) - 1)
#define TR__REF_COUNTER_BIT (UINT64_C(1) << 63)
/* Counter refs (monitors, calls, remote timers): bit 63, the creating
 * scheduler in bits 48..55, a counter below. A send_after timer armed on
 * another scheduler also has bit 62 and its target scheduler in bits
 * 56..61. Slot timer refs (bit 63 clear): gen << 30 | sched << 24 | idx. */
#define TR__REF_RTIMER_BIT (UINT64_C(1) << 62)
#define TR__MAX_SCHEDULERS 64

/* The scheduler id a pid names (bits 24..31). */
static inline unsigned tr__pid_sched(tr_pid_t pid) {
  return (unsigned)(pid >> TR__IDX_BITS) & 0xffu;
}

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

/* Link of the lock-free MPSC inbox (src/inbox.c). */
typedef struct tr__qnode {
  struct tr__qnode *_Atomic qnext;
} tr__qnode_t;

struct tr_msg_s {
  tr_msg_t *next;          /* mailbox queue / held list */
  union {
    tr_msg_t *prev;        /* held list only */
    tr_pid_t to;           /* in transit: the receiver */
  };
  tr__actor_t *holder;     /* actor that received it and holds it */
  tr_pid_t from;
  tr_ref_t ref;
  tr_reason_t *reason;     /* EXIT/DOWN: trailing storage */
  msgpack_object *pool;    /* tr_msg_obj's element objects, or NULL */
  msgpack_object obj;
  uint8_t kind;
  uint8_t decoded;
  uint8_t cls;             /* allocation size class, TR__MSG_NOCLASS if none */
  uint8_t home;            /* scheduler whose cache it came from (class
                            * buffers), TR__MSG_NOHOME if none */
  uint32_t children;       /* element objects a decode needs (counted when
                            * the sender validated), TR__MSG_UNCOUNTED */
  size_t len;
  char data[];             /* msgpack body, then tr_reason_t if any */
};

/* Small messages, and the decode pools of tr_msg_obj, are recycled
 * through per-scheduler free lists (128, 256, 512 and 1024 bytes). */
#define TR__MSG_CLASSES 4
#define TR__MSG_NOCLASS 0xff
#define TR__MSG_UNCOUNTED UINT32_MAX
#define TR__MSG_NOHOME 0xff
/* Buffers freed on another scheduler go home in batches of this many. */
#define TR__MSG_RETURN_BATCH 64
#define TR__MSG_CACHE_MAX 4096

tr_msg_t *tr__msg_new(tr_msg_kind_t kind, const void *data, size_t len,
                      int with_reason);
void tr__msg_destroy(tr_msg_t *m);
void tr__msg_cache_destroy(tr__sched_t *s);
/* Queues m to a (a live actor of the calling thread's scheduler), waking it
 * if it waits. Takes ownership of m. */
void tr__deliver(tr__actor_t *a, tr_msg_t *m);
void tr__mailbox_clear(tr__actor_t *a);
/* Delivers on s (the calling thread's scheduler) the run of inline
 * messages that starts at b->next in a signal batch (src/inbox.c), at most
 * `budget` of them; returns how many entries it applied and leaves b->next,
 * b->to and b->from after them. */
struct tr__batch;
size_t tr__deliver_inline_run(tr__sched_t *s, struct tr__batch *b,
                              size_t budget);
/* Sends a message of `kind` to `to`, an actor of another scheduler than
 * s (the caller's): through that scheduler's inbox. */
int tr__send_remote(tr__sched_t *s, tr_msg_kind_t kind, tr_pid_t from,
                    tr_pid_t to, tr_ref_t ref, const void *data, size_t len);
/* Selective receive with a runtime-side predicate (faults are fatal). */
int tr__recv_internal(tr__actor_t *a, tr_msg_t **msg, tr_match_fn match,
                      void *arg, int timeout_ms);
/* Frees every queued message that match accepts. */
void tr__mailbox_drop_match(tr__actor_t *a, tr_match_fn match, void *arg);
/* Builds and delivers a system message (EXIT / DOWN). */
void tr__deliver_exit(tr__actor_t *to, tr_pid_t from, const tr_reason_t *r);
void tr__deliver_down(tr__actor_t *to, tr_ref_t ref, tr_pid_t from,
                      const tr_reason_t *r);

/* limit.c: mailbox limits. tr__mbox_admit (only for a->mbox_limit != NULL)
 * returns 1 if m may be queued, 0 if the policy consumed it (and maybe
 * killed a). tr__mbox_removed counts queued messages the policy removed (a
 * selective receive's scan position may be gone when it changed). */
int tr__mbox_opts_check(const tr_spawn_opts_t *o);
int tr__mbox_opts_apply(tr__actor_t *a, const tr_spawn_opts_t *o);
int tr__mbox_admit(tr__actor_t *a, tr_msg_t *m);
uint64_t tr__mbox_removed(const tr__actor_t *a);
void tr__mbox_limit_free(tr__actor_t *a);

/* ---- signals between schedulers (src/inbox.c) ----
 * Every cross-scheduler operation is a tr_msg_t pushed onto the target
 * scheduler's inbox: user messages as they are, operations as messages of
 * an internal kind (>= TR__SIG_FIRST) with their operands in from, ref,
 * reason and the body. */
enum {
  TR__SIG_FIRST = 16,
  TR__SIG_EXIT = TR__SIG_FIRST, /* exit signal from -> to; decoded=1: link */
  TR__SIG_LINK,         /* from links to `to` */
  TR__SIG_UNLINK,       /* from unlinks `to` */
  TR__SIG_MONITOR,      /* from monitors `to` with ref */
  TR__SIG_DEMONITOR,    /* from drops monitor ref on `to` */
  TR__SIG_DOWN,         /* monitor ref on `from` fired: reason, to watcher */
  TR__SIG_SPAWN,        /* body: tr__spawn_req_t */
  TR__SIG_RPC_REPLY,    /* ref: token; body: tr__rpc_res_t; to: waiter */
  TR__SIG_TIMER_ARM,    /* TIMER message to arm on to's scheduler; due in
                         * from while in transit */
  TR__SIG_TIMER_CANCEL, /* ref: timer; body: token; from: who waits */
  TR__SIG_STOP,         /* tr_runtime_stop reached this scheduler */
  TR__SIG_KILL_ALL,     /* tr_runtime_free: kill every actor */
  TR__SIG_HOST_ACK,     /* body: tr__host_wait_t *: everything before is in */
  TR__SIG_MBOX_STATS    /* body: tr__mbox_query_t (remote mailbox stats) */
};

/* The result of a request an actor or the host waits for. */
typedef struct tr__rpc_res {
  int err;
  tr_pid_t pid;
} tr__rpc_res_t;

/* A host thread waiting for a scheduler (remote spawn, sync). */
typedef struct tr__host_wait {
  int done;            /* under rt->mu */
  tr__rpc_res_t res;
} tr__host_wait_t;

/* ---- actors ---- */

enum {
  TR__ST_RUNNABLE = 1, /* in the run queue */
  TR__ST_RUNNING,      /* on the CPU */
  TR__ST_WAITING,      /* blocked: receive, sleep, I/O */
  TR__ST_DEAD          /* exited, awaiting reaping */
};

/* A monitor between two actors of one scheduler is one record in both
 * lists. Across schedulers each side keeps its own record: the watcher's
 * has target == NULL (tpid names it), the target's has watcher == NULL
 * (wpid names it) and sits in the scheduler's remote-monitor map. */
struct tr__monitor {
  tr_ref_t ref;
  tr__actor_t *watcher;
  tr__actor_t *target;
  tr_pid_t wpid, tpid;
  tr__monitor_t *w_next, *w_prev; /* in watcher->monitors */
  tr__monitor_t *t_next, *t_prev; /* in target->monitored_by */
};

struct tr__defer {
  void (*fn)(void *);
  void *arg;
  tr__defer_t *next;
};

/* Why an actor ended: its reason and, after a fault, the return addresses
 * at the fault. An actor holds one only once it is dead or has an exit
 * pending (tr__actor_t.exit), so that a live actor does not carry 184
 * bytes it rarely needs (doc/performance.md, W5). */
typedef struct tr__exit {
  tr_reason_t reason;
  uintptr_t bt[8]; /* return addresses at the fault, 0-terminated */
} tr__exit_t;

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
  uint8_t exit_owned;    /* exit was allocated for this actor */
  uint8_t rpc_done;      /* rpc_res holds the answer to rpc_token */
  uint8_t hib;           /* hibernating: no stack (actors/hibernate.c) */
  tr__actor_t *rq_next, *rq_prev;
  /* mailbox: FIFO of undelivered messages; held: received, not freed
   * (held1, a slot for one of them, the common case, then a list) */
  tr_msg_t *mq_head, *mq_tail;
  size_t mq_len;
  tr_msg_t *held1, *held;
  /* Read on every runtime entry and delivery: kept in the first lines with
   * the fields above (a ring of 1,000 actors touches a different actor
   * each hop). */
  uintptr_t stack_limit; /* runtime entry below this: stack_overflow */
  struct tr__mbox_limit *mbox_limit; /* mailbox limit, or NULL (limit.c) */
  tr_ref_t call_ref;     /* reply awaited by tr_call, 0 if none */
  tr__timer_t wait_timer;
  tr__stack_t stack;
  tr_actor_fn fn;
  void *arg;
  sigjmp_buf *fault_env; /* top frame, for the fault handler */
  const tr__exit_t *exit; /* once dead or an exit is pending (actor.c) */
  /* links: pids of linked actors */
  tr_pid_t *links;
  uint32_t nlinks, caplinks;
  tr__monitor_t *monitors;     /* as watcher */
  tr__monitor_t *monitored_by; /* as target */
  tr__timer_t *timers;         /* SEND timers aimed at this actor */
  tr__defer_t *defers;
  void *arena;                 /* list of arena blocks */
  tr__actor_t *top_next, *top_prev; /* top-level list (stop order) */
  tr__actor_t *dying_next;
  tr_pid_t parent;  /* supervisor/: who awaits its init ack (tr_sup_init_ack) */
  struct tr__io_handle *io_handles; /* I/O handles it owns (src/io_core.c) */
  struct tr__io_op *io_ops;         /* I/O requests it waits for */
  /* a request to another scheduler this actor waits for (remote spawn,
   * remote cancel_timer): token, and the answer once rpc_done */
  uint64_t rpc_token;
  tr__rpc_res_t rpc_res;
#ifdef TR_TSAN
  void *tsan_fiber;
#endif
};

/* ---- scheduler ---- */

/* A u64 -> pointer map (open addressing), for the few lookups by ref that
 * cross-scheduler bookkeeping needs (src/inbox.c). Key 0 is never used. */
typedef struct tr__map {
  uint64_t *keys;
  void **vals;
  size_t cap, len;
} tr__map_t;

int tr__map_put(tr__map_t *m, uint64_t key, void *val);
void *tr__map_get(const tr__map_t *m, uint64_t key);
void *tr__map_del(tr__map_t *m, uint64_t key);
void tr__map_destroy(tr__map_t *m);

/* The pid alive table: for each pid-table index, the pid of the live actor
 * there (0 if none), readable from any thread. One MAP_NORESERVE mapping
 * per scheduler covering every index (128 MiB of address space; pages are
 * touched as indices are used), so it never moves. Bit 63 (never set in a
 * pid) marks a pid that has a registered name. */
#define TR__ALIVE_NAMED (UINT64_C(1) << 63)

/* Signals one thread sends another scheduler travel in batches
 * (src/inbox.c); messages with a body of up to this many bytes travel
 * inside the batch. */
#define TR__INLINE_MAX 128
typedef struct tr__batch tr__batch_t;

/* The MPSC inbox: Vyukov's intrusive queue. Producers (any thread) swap
 * head; the owner pops at tail. `wake` is the owner's sleep state (0 runs,
 * 1 sleeps, 2 sleeps idle): a producer that finds it nonzero sends the one
 * uv_async (src/inbox.c). */
typedef struct tr__inbox {
  _Alignas(64) tr__qnode_t *_Atomic head;
  _Atomic int wake;
  _Alignas(64) tr__qnode_t *tail; /* owner only */
  tr__qnode_t stub;
} tr__inbox_t;

struct tr__sched {
  tr_runtime_t *rt;
  unsigned id;
  uv_loop_t *loop;
  tr__ctx_t main_ctx;
  tr__actor_t *current;
  /* Run queue (sched.c): one list, the front (rq_head .. rqf_end: what the
   * running actor spawned, and the actor an exiting one woke last) ahead
   * of the back (FIFO). */
  tr__actor_t *rq_head, *rq_tail;
  tr__actor_t *rqf_end;    /* last actor of the front, NULL if empty */
  tr__actor_t *rqf_last;   /* last actor of the running actor's batch */
  tr__actor_t *handoff;    /* last actor the running actor woke */
  unsigned front_run;      /* consecutive dispatches from the front */
  tr__actor_t *dying_head, *dying_tail;
  /* Freed actor records kept for the next spawn (actors/actor.c), linked
   * through dying_next: a spawn+exit then costs no malloc and no free. */
  tr__actor_t *actor_free;
  uint32_t actor_nfree;
  tr__actor_t *hib_pending; /* switched to main to give its stack back */
  tr__slots_t pids;
  tr__slots_t timer_refs;
  tr__stack_pool_t *stacks;
  size_t live;
  uint64_t next_ref;
  unsigned switches;       /* since the loop last got control */
  uint64_t drain_until;    /* uv_hrtime() the drain ends by (0: not set) */
  int in_cleanup;          /* running defer callbacks */
  int in_drain;
  int *errno_loc;          /* &errno of the thread draining (do_switch) */
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
  tr__actor_t *top_head;   /* top-level actors, youngest first */
  /* Recycled message buffers per class: stacks of pointers, so that taking
   * or caching one never touches the buffer (mailbox/mailbox.c). */
  struct {
    tr_msg_t **v;
    uint32_t n, cap;
  } msg_cache[TR__MSG_CLASSES];
  /* Buffers of other schedulers freed here, batched per home, and the
   * batches other schedulers sent home to us (a lock-free stack). */
  struct tr__msg_ret *msg_out[TR__MAX_SCHEDULERS][TR__MSG_CLASSES];
  _Atomic(struct tr__msg_ret *) msg_back;
  /* crash capture */
  tr__exit_t exit_rec;     /* the exit of the running actor (a fault, an
                            * error): read by its reap, which comes next */
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
  /* ---- multi-core (src/inbox.c, src/runtime.c) ---- */
  _Atomic size_t live_pub;  /* `live`, published for other threads */
  tr__inbox_t inbox;        /* signals from other threads */
  tr__batch_t *in_batch;    /* owner: the batch being applied */
  tr__batch_t *out[TR__MAX_SCHEDULERS]; /* outboxes, per destination */
  uint64_t out_mask;        /* destinations with a nonempty outbox */
  tr__batch_t *batch_free;  /* recycled batches */
  uint32_t batch_nfree;
  _Atomic(tr__batch_t *) batch_back; /* ours, back from other schedulers */
  uv_async_t async;         /* wakes the owner for its inbox */
  pthread_mutex_t async_mu; /* async_open and uv_async_send vs. close */
  int async_open;
  int async_refd;           /* attached scheduler 0: async keeps loop alive */
  int sleep_idle;           /* asleep idle: not counted in rt->busy */
  int signals_seen;         /* signals applied since the last spin */
  uint64_t polled_ns;       /* uv_hrtime() after the loop's last turn */
  uint64_t next_token;      /* rpc tokens of this scheduler's actors */
  tr__map_t rmon;           /* ref -> monitor record of a remote watcher */
  tr__map_t rtimers;        /* ref -> send_after timer armed from afar */
  _Atomic uint64_t *alive;  /* the alive table (1 << TR__IDX_BITS) */
  /* scheduler threads (id > 0): their own loop, parked outside a run */
  uv_loop_t own_loop;
  pthread_t thread;
  int has_thread;
  int parked;               /* under rt->mu */
  int service_req;          /* under rt->mu: apply the inbox while parked */
  unsigned service_done;    /* under rt->mu */
};

struct tr_runtime_s {
  tr_config_t cfg;
  tr__sched_t sched;      /* scheduler 0: the host thread's */
  tr__sched_t **scheds;   /* all of them; scheds[0] == &sched */
  unsigned nsched;
  int placement;          /* default placement (cfg or TR_PLACEMENT) */
  uv_loop_t own_loop;
  int attached;
  _Atomic int running;
  _Atomic int stopping;
  _Atomic int stop_done;
  _Atomic int freeing;
  /* shared between the scheduler threads */
  _Atomic unsigned rr_next;     /* round-robin placement */
  _Atomic long busy;            /* schedulers not idle + pending wake-ups */
  _Atomic unsigned scheds_live; /* schedulers with live actors */
  _Atomic long top_live;        /* top-level actors alive */
  pthread_mutex_t mu;           /* thread parking, service, host waits */
  pthread_cond_t cv;
  int run_active;               /* under mu: threads run actors */
  _Atomic int run_flag;         /* run_active, for a lock-free look */
  int quit;                     /* under mu: threads exit */
  pthread_mutex_t log_mu;       /* serialises the logger */
  /* registry: name -> pid, pid -> entry (actors/registry.c) */
  pthread_mutex_t reg_mu;
  struct tr__name **names_by_name, **names_by_pid;
  size_t names_cap, names_len;
};

/* The scheduler driving the calling thread, or NULL. */
extern TR__TLS tr__sched_t *tr__tls_sched;

static inline tr__actor_t *tr__current(void) {
  tr__sched_t *s = tr__tls_sched;
  return s != NULL ? s->current : NULL;
}

/* The scheduler of rt that pid names, or NULL. */
static inline tr__sched_t *tr__pid_owner(tr_runtime_t *rt, tr_pid_t pid) {
  unsigned id = tr__pid_sched(pid);
  return (rt != NULL && id < rt->nsched) ? rt->scheds[id] : NULL;
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
_Noreturn void tr__reserve_exhausted(tr__actor_t *a, uintptr_t at);
/* The stack pointer, near enough for the reserve check, without making
 * the caller set up a frame. */
static inline __attribute__((always_inline)) uintptr_t tr__stack_pointer(void) {
  uintptr_t sp;
#if defined(__x86_64__)
  __asm__("mov %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
  __asm__("mov %0, sp" : "=r"(sp));
#else
  sp = (uintptr_t)__builtin_frame_address(0);
#endif
  return sp;
}

/* tr__actor_enter for a (not NULL), the running actor of the calling
 * thread's scheduler. */
static inline tr__actor_t *tr__actor_enter_running(tr__actor_t *a) {
  uintptr_t sp = tr__stack_pointer();
  if (TR__UNLIKELY(sp < a->stack_limit)) tr__reserve_exhausted(a, sp);
  a->in_runtime++;
  return a;
}
/* The error of an actor-only call made where no actor runs (s: the
 * calling thread's scheduler, or NULL). */
static inline int tr__not_actor_error(const tr__sched_t *s) {
  return (s != NULL && s->in_cleanup) ? TR_ECLEANUP : TR_ENOTACTOR;
}
static inline tr__actor_t *tr__actor_enter(int *err) {
  tr__sched_t *s = tr__tls_sched;
  tr__actor_t *a = s != NULL ? s->current : NULL;
  if (TR__UNLIKELY(a == NULL)) {
    *err = tr__not_actor_error(s);
    return NULL;
  }
  return tr__actor_enter_running(a);
}
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
/* Consecutive dispatches from the front of the run queue after which the
 * front moves behind the actors waiting at the back (the fairness bound). */
#define TR__RQ_FRONT_RUN 1024
/* Makes a waiting actor runnable (back of the run queue). */
void tr__sched_wake(tr__sched_t *s, tr__actor_t *a);
/* Appends a to the back of s's run queue. */
static inline void tr__rq_push_back(tr__sched_t *s, tr__actor_t *a) {
  a->rq_next = NULL;
  a->rq_prev = s->rq_tail;
  if (s->rq_tail) s->rq_tail->rq_next = a;
  else s->rq_head = a;
  s->rq_tail = a;
}
/* Makes a (waiting, not hibernated) runnable at the back of the queue;
 * the caller starts the idle handle if s is attached and not draining. */
static inline void tr__rq_wake_push(tr__sched_t *s, tr__actor_t *a) {
  a->state = TR__ST_RUNNABLE;
  tr__rq_push_back(s, a);
  s->handoff = a; /* read only if the running actor exits in this slice */
}
/* tr__sched_wake for an actor known to be waiting (a delivery's): inline
 * while s drains (no idle handle to start) and a is not hibernated. */
static inline void tr__sched_wake_waiting(tr__sched_t *s, tr__actor_t *a) {
  if (TR__LIKELY(!a->hib) && TR__LIKELY(s->in_drain)) tr__rq_wake_push(s, a);
  else tr__sched_wake(s, a);
}
/* Makes a new actor runnable: in the running actor's batch at the front
 * if s runs an actor (its spawner), else at the back. */
void tr__sched_start(tr__sched_t *s, tr__actor_t *a);
void tr__sched_block(tr__sched_t *s, tr__actor_t *a);
/* The current actor a yields: every other runnable actor runs once first
 * (the front moves behind the back, then a queues last). */
void tr__sched_yield(tr__sched_t *s, tr__actor_t *a);
void tr__sched_drain(tr__sched_t *s);
void tr__sched_switch_in(tr__sched_t *s, tr__actor_t *from, tr__actor_t *to);
void tr__sched_after_switch(tr__sched_t *s);
void tr__rq_remove(tr__sched_t *s, tr__actor_t *a);
_Noreturn void tr__sched_exit_current(tr__sched_t *s, tr__actor_t *a);
void tr__sched_entered(tr__sched_t *s, tr__actor_t *a);
/* The current actor a (a->hib set, fn and arg its restart) switches to
 * main for good; main returns its stack (tr__hib_release, from reap). */
_Noreturn void tr__sched_hibernate(tr__sched_t *s, tr__actor_t *a);
void tr__fiber_destroy(tr__actor_t *a);
void tr__fiber_unwound(tr__actor_t *a);
int tr__sched_init(tr__sched_t *s, tr_runtime_t *rt, uv_loop_t *loop);
void tr__sched_close_handles(tr__sched_t *s);
void tr__sched_destroy(tr__sched_t *s);
void tr__async_ref_update(tr__sched_t *s);
void tr__sched_settle(tr__sched_t *s);

/* actor.c */
void tr__actor_kill(tr__sched_t *s, tr__actor_t *a, const tr_reason_t *r);
void tr__reap(tr__sched_t *s);
/* Frees the actor records cached for reuse (at scheduler teardown). */
void tr__actor_cache_destroy(tr__sched_t *s);
void tr__reason_set(tr_reason_t *r, tr_reason_kind_t kind);
/* The reason a dead (or exit-pending) actor ended with; "normal" if none
 * was set. Valid until a is freed. */
const tr_reason_t *tr__actor_reason(const tr__actor_t *a);
/* The running actor a exits with r: the reason goes into the scheduler's
 * exit record (a plain one is shared), then a ends. */
_Noreturn void tr__actor_exit_with(tr__actor_t *a, const tr_reason_t *r);
/* Fault path, back in a's top frame: a's exit is the scheduler's record,
 * which the fault handler filled. */
void tr__actor_exit_faulted(tr__actor_t *a);
/* An exit signal that arrived while a was running takes effect at its next
 * runtime call. */
static inline void tr__check_pending_exit(tr__actor_t *a) {
  if (TR__UNLIKELY(a->exit_pending)) tr__sched_exit_current(a->s, a);
}
void tr__kill_all(tr__sched_t *s, tr_reason_kind_t kind);
/* Gives a a stack and a fresh context that starts a->fn(a->arg) in the
 * top frame spawn uses. Returns 0, TR_ENOMEM or TR_EMAPCOUNT. */
int tr__actor_stack_new(tr__sched_t *s, tr__actor_t *a, size_t size);

/* hibernate.c: on main, a hibernating actor's stack goes back to the
 * pool; when a wake finds a hibernated actor with mail, it gets a fresh
 * stack (nonzero: it stays hibernated, or could not and was killed). */
void tr__hib_release(tr__sched_t *s);
int tr__hib_wake(tr__sched_t *s, tr__actor_t *a);

/* link.c */
int tr__link_pair(tr__actor_t *a, tr__actor_t *b);
int tr__monitor_make(tr__actor_t *w, tr__actor_t *t, tr_ref_t *ref);
void tr__exit_signal(tr__sched_t *s, tr__actor_t *to, tr_pid_t from,
                     const tr_reason_t *r, int from_link);
void tr__links_notify(tr__actor_t *a);
void tr__monitors_release(tr__actor_t *a);

/* registry.c: the runtime-wide registry. remove_actor runs on a's own
 * thread once a is marked dead (its alive entry held the NAMED bit). */
void tr__registry_remove_actor(tr__actor_t *a);
void tr__registry_remove_pid(tr_runtime_t *rt, tr_pid_t pid);
/* Copies pid's name into buf (size > 0), "" if none. */
void tr__registry_name_of(tr_runtime_t *rt, tr_pid_t pid, char *buf, size_t size);
int tr__registry_init(tr_runtime_t *rt);
void tr__registry_destroy(tr_runtime_t *rt);

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
/* Standalone: runs every scheduler (threads unparked) until all actors
 * exited (0), nothing can progress (TR_EDEADLK), a stop finished, or
 * until(arg) holds (0); parks the threads again before returning. */
int tr__runtime_drive(tr_runtime_t *rt, int (*until)(void *), void *arg);
/* Host thread: returns once k has applied every signal pushed to it so
 * far (servicing k if it is parked), then applies scheduler 0's inbox if
 * the host is on its scheduler stack. */
void tr__host_sync(tr_runtime_t *rt, tr__sched_t *k);
/* Host thread: waits for w->done, servicing k while it is parked. */
void tr__host_wait(tr_runtime_t *rt, tr__sched_t *k, tr__host_wait_t *w);
/* Marks w done (any thread) and wakes the waiting host. */
void tr__host_done(tr_runtime_t *rt, tr__host_wait_t *w, const tr__rpc_res_t *res);
void tr__sig_stop_apply(tr__sched_t *s);
void tr__sig_kill_all_apply(tr__sched_t *s);
/* An actor was added or removed on s (owner thread). */
void tr__live_inc(tr__sched_t *s);
void tr__live_dec(tr__sched_t *s);

/* inbox.c: the MPSC inbox and signals. */
void tr__inbox_init(tr__inbox_t *q);
/* Sends m (its kind and `to` set) to scheduler s. From a scheduler thread
 * it goes into that thread's outbox for s (pushed when full, when the
 * running actor blocks or exits, at the end of a drain, or at once from
 * host code); from any other thread it is pushed at once. m now belongs
 * to s. */
void tr__sig_push(tr__sched_t *s, tr_msg_t *m);
/* A batch of signals from one thread to one scheduler, the inbox's queue
 * node (src/inbox.c says why and how). Its entries are 8-byte words in
 * buf: a word with bit 0 clear is a tr_msg_t pointer; one with
 * TR__ENT_INLINE heads an inline message:
 *
 *   the head  TR__ENT_INLINE | TR__ENT_REF if a ref follows | TR__ENT_SAME
 *             if to and from are those of the batch's last inline message
 *             | kind << 8 | len << 16 | the entry's bytes << 24
 *             | children << 32
 *   to, from  unless TR__ENT_SAME (a batch starts with both TR_PID_NONE)
 *   ref       if TR__ENT_REF
 *   the body  len bytes, padded to 8 */
#define TR__BATCH_BYTES (4096 - 64)
#define TR__ENT_INLINE UINT64_C(1)
#define TR__ENT_REF UINT64_C(2)
#define TR__ENT_SAME UINT64_C(4)
/* How far ahead of its writes the sender asks for a batch's lines. */
#define TR__BATCH_PREFETCH_W 512

struct tr__batch {
  tr__qnode_t qn;                /* first: the inbox link */
  tr__batch_t *fnext;            /* free lists */
  uint32_t used;                 /* bytes of entries in buf */
  uint32_t next;                 /* owner: offset of the next entry */
  uint32_t cap;                  /* bytes buf holds */
  uint32_t ahead;                /* owner: prefetched up to this offset */
  uint8_t home;                  /* scheduler it goes back to, or NOHOME */
  tr_pid_t to, from;             /* the last inline message's: the sender's
                                  * while it writes, then the owner's */
  _Alignas(8) unsigned char buf[];
};

/* len and the entry's size each fit the head's 8 bits for them. */
_Static_assert(4 * 8 + TR__INLINE_MAX <= 0xff, "inline entry too big");

/* Bytes of the entry whose first word is h. */
static inline size_t tr__ent_size(uint64_t h) {
  if ((h & TR__ENT_INLINE) == 0) return sizeof(uint64_t);
  return (size_t)(h >> 24) & 0xff;
}

tr__batch_t *tr__batch_room_slow(tr__sched_t *dst, size_t need,
                                 tr__sched_t **sp);
void tr__batch_push_now(tr__sched_t *s, tr__sched_t *dst, tr__batch_t *b);

/* A batch with room for an entry of `need` bytes to dst: the calling
 * scheduler's outbox (*sp is that scheduler), or, from a thread with no
 * scheduler (*sp NULL), a batch of its own. `self`, if not NULL, is the
 * calling thread's scheduler, running an actor (the checks for the other
 * cases are skipped). */
static inline tr__batch_t *tr__batch_room(tr__sched_t *self, tr__sched_t *dst,
                                          size_t need, tr__sched_t **sp) {
  tr__sched_t *s = self != NULL ? self : tr__tls_sched;
  tr__batch_t *b;
  if ((self != NULL ||
       (TR__LIKELY(s != NULL) && TR__LIKELY(s->rt == dst->rt))) &&
      TR__LIKELY((b = s->out[dst->id]) != NULL) &&
      TR__LIKELY(b->used + need <= b->cap)) {
    *sp = s;
    return b;
  }
  return tr__batch_room_slow(dst, need, sp);
}

/* After an entry went into b: it is pushed now from host code (nothing
 * flushes for it later) and when the destination waits for work (latency
 * matters then; a busy one comes back to its inbox later anyway). `self`
 * as for tr__batch_room. */
static inline void tr__batch_pushed(tr__sched_t *self, tr__sched_t *s,
                                    tr__sched_t *dst, tr__batch_t *b) {
  if ((self == NULL && (TR__UNLIKELY(s == NULL) ||
                        (s->current == NULL && !s->in_drain))) ||
      atomic_load_explicit(&dst->inbox.wake, memory_order_relaxed) != 0)
    tr__batch_push_now(s, dst, b);
}

/* Sends a copy of a small message (len <= TR__INLINE_MAX) to `to` on dst,
 * inside the batch: dst copies it into a buffer of its own. `self`, if not
 * NULL, is the calling thread's scheduler, known to be running an actor
 * (tr__batch_room). */
static inline __attribute__((always_inline)) void
tr__sig_push_inline(tr__sched_t *self, tr__sched_t *dst, tr_msg_kind_t kind,
                    tr_pid_t to, tr_pid_t from, tr_ref_t ref, const void *data,
                    size_t len, uint32_t children) {
  tr__sched_t *s;
  size_t pad = (len + 7) & ~(size_t)7;
  /* Room for the long form: the short one may not be possible in a new
   * batch. */
  tr__batch_t *b =
      tr__batch_room(self, dst, 24 + (ref != 0 ? 8 : 0) + pad, &s);
  uint64_t *w = (uint64_t *)(void *)(b->buf + b->used);
  uint64_t h = TR__ENT_INLINE | (uint64_t)kind << 8 | (uint64_t)len << 16 |
               (uint64_t)children << 32;
  /* The batch's lines were last read by the receiver's core: ask for
   * them ahead of the writes. */
  tr__prefetch_w(b->buf + b->used + TR__BATCH_PREFETCH_W);
  if (to == b->to && from == b->from) {
    h |= TR__ENT_SAME;
    w += 1;
  } else {
    w[1] = to;
    w[2] = from;
    b->to = to;
    b->from = from;
    w += 3;
  }
  if (ref != 0) {
    h |= TR__ENT_REF;
    *w++ = ref;
  }
  h |= (uint64_t)((unsigned char *)w + pad - (b->buf + b->used)) << 24;
  ((uint64_t *)(void *)(b->buf + b->used))[0] = h;
  if (len != 0) {
    unsigned char *body = (unsigned char *)w;
    w[(len - 1) / 8] = 0; /* padding: the receiver copies words */
    if (len == 1) {
      body[0] = *(const unsigned char *)data;
    } else if (len <= 8) {
      for (size_t i = 0; i < len; i++) body[i] = ((const unsigned char *)data)[i];
    } else {
      memcpy(body, data, len);
    }
  }
  b->used = (uint32_t)((unsigned char *)w + pad - b->buf);
  tr__batch_pushed(self, s, dst, b);
}

/* Frees s's recycled batches (runtime teardown). */
void tr__batch_cache_destroy(tr__sched_t *s);
/* Pushes every outbox of s (its own thread). */
void tr__outbox_flush_all(tr__sched_t *s);
/* Builds a control signal (aborts when out of memory: a lost EXIT or DOWN
 * would break supervision) and pushes it to the scheduler `to` names. */
void tr__sig_send(tr_runtime_t *rt, int kind, tr_pid_t to, tr_pid_t from,
                  tr_ref_t ref, const tr_reason_t *r, const void *body,
                  size_t len, int flag);
void tr__sig_send_to(tr__sched_t *dst, int kind, tr_pid_t to, tr_pid_t from,
                     tr_ref_t ref, const tr_reason_t *r, const void *body,
                     size_t len, int flag);
/* Owner thread, scheduler stack: applies queued signals; returns how many. */
size_t tr__inbox_apply(tr__sched_t *s);
/* Owner: nonzero if signals may be waiting. */
int tr__inbox_pending(tr__sched_t *s);
/* Teardown, no other thread running: frees whatever is queued. */
void tr__inbox_discard(tr__sched_t *s);
/* Wakes s (any thread) as a push would, without a signal. */
void tr__poke(tr__sched_t *s);
/* Owner: it runs and looks at its inbox (clears its sleep state). */
void tr__sched_awake(tr__sched_t *s);
/* Owner: it is about to block in its loop; idle if nothing is runnable
 * and its loop has nothing alive. Returns 0 if signals arrived (do not
 * block). *all_idle is set when this made every scheduler idle. */
int tr__sched_sleep(tr__sched_t *s, int idle, int *all_idle);
void tr__async_cb(uv_async_t *h);
/* Alive table. */
static inline _Atomic uint64_t *tr__alive_slot(tr__sched_t *s, uint32_t idx) {
  return &s->alive[idx & TR__IDX_MASK];
}
static inline void tr__alive_set(tr__sched_t *s, uint32_t idx, tr_pid_t pid) {
  atomic_store_explicit(tr__alive_slot(s, idx), pid, memory_order_release);
}
static inline uint64_t tr__alive_clear(tr__sched_t *s, uint32_t idx) {
  return atomic_exchange(tr__alive_slot(s, idx), 0);
}
/* Nonzero if pid names a live actor of rt (any thread). */
int tr__pid_alive(tr_runtime_t *rt, tr_pid_t pid);

/* actor.c: spawning with a supervisor parent (supervisor/), remote spawn,
 * and the request/answer wait of an actor. */
int tr__spawn(tr_runtime_t *rt, tr_actor_fn fn, void *arg,
              const tr_spawn_opts_t *o, tr_pid_t sup_parent, tr_pid_t *pid);
void tr__sig_spawn_apply(tr__sched_t *s, tr_msg_t *m);
void tr__sig_rpc_reply_apply(tr__sched_t *s, tr_msg_t *m);
void tr__sig_mbox_stats_apply(tr__sched_t *s, tr_msg_t *m);
/* Nonzero if pid is a live actor of another scheduler than the caller's. */
int tr__pid_is_remote(tr_pid_t pid);
/* tr_mailbox_stats for such a pid: asks its scheduler and waits (an actor
 * blocks; host code waits for the thread). */
int tr__mbox_stats_remote(tr_pid_t pid, tr_mailbox_stats_t *st);
/* Blocks a (actor context) until its request `token` is answered. */
void tr__rpc_wait(tr__actor_t *a);
/* Sends an answer to the actor `to` waiting for token. */
void tr__rpc_answer(tr_runtime_t *rt, tr_pid_t to, uint64_t token, int err,
                    tr_pid_t pid);

/* link.c: applying link, monitor and exit signals from other schedulers. */
void tr__sig_exit_apply(tr__sched_t *s, tr_msg_t *m);
void tr__sig_link_apply(tr__sched_t *s, tr_msg_t *m);
void tr__sig_unlink_apply(tr__sched_t *s, tr_msg_t *m);
void tr__sig_monitor_apply(tr__sched_t *s, tr_msg_t *m);
void tr__sig_demonitor_apply(tr__sched_t *s, tr_msg_t *m);
void tr__sig_down_apply(tr__sched_t *s, tr_msg_t *m);
/* Watcher side of a monitor on a remote pid (record + MONITOR signal). */
int tr__monitor_remote(tr__actor_t *w, tr_pid_t pid, tr_ref_t ref);
/* Adds the link a -> pid on a's side only. */
int tr__link_add(tr__actor_t *a, tr_pid_t pid);
/* Target side of a monitor from a remote watcher. */
int tr__monitor_target_add(tr__actor_t *t, tr_pid_t wpid, tr_ref_t ref);

/* timer.c */
void tr__sig_timer_arm_apply(tr__sched_t *s, tr_msg_t *m);
void tr__sig_timer_cancel_apply(tr__sched_t *s, tr_msg_t *m);

/* codec.h supplies the msgpack helpers. */

#endif
