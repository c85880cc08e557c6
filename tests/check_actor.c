/* Check suite for the actor lifecycle (actors/actor.c, actors/ledger.c):
 * spawn, self, yield, run order (the run queue's front and its fairness
 * bound, src/sched.c), exit reasons, spawn options, scale, stale pids,
 * per-actor errno, the actor-only guard, deferred cleanups and the arena. */
#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "testutil.h"
#include "internal.h" /* TR__IDX_MASK, TR__RQ_FRONT_RUN, stack pool stats */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* A valid one-byte msgpack body (positive fixint 1). */
static const unsigned char ONE[] = {0x01};

/* Receives the next message, which must be a DOWN for ref, and returns its
 * reason. */
static tr_reason_t expect_down(tr_ref_t ref, tr_pid_t pid) {
  tr_msg_t *m = NULL;
  tr_reason_t r;
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  ck_assert_uint_eq(tr_msg_from(m), pid);
  TR_OK(tr_msg_reason(m, &r));
  tr_msg_free(m);
  return r;
}

static void noop_actor(void *arg) { (void)arg; }

/* ------------------------------------------------------------------------ */
/* Spawn, args, self                                                        */
/* ------------------------------------------------------------------------ */

typedef struct {
  int id;
  tr_pid_t self; /* what tr_self() said inside */
  int ran;
} who_t;

static void who_actor(void *arg) {
  who_t *w = arg;
  w->self = tr_self();
  w->ran++;
}

START_TEST(test_spawn_outside) {
  tr_runtime_t *rt = NULL;
  who_t w[3] = {{.id = 0}, {.id = 1}, {.id = 2}};
  tr_pid_t pid[3];

  ck_assert_uint_eq(tr_self(), TR_PID_NONE); /* no runtime at all */
  TR_OK(tr_runtime_new(&rt, NULL));
  ck_assert_uint_eq(tr_self(), TR_PID_NONE); /* runtime, but host code */
  for (int i = 0; i < 3; i++) TR_OK(tr_spawn(rt, who_actor, &w[i], NULL, &pid[i]));
  ck_assert_uint_ne(pid[0], TR_PID_NONE);
  ck_assert_uint_ne(pid[0], pid[1]);
  ck_assert_uint_ne(pid[1], pid[2]);
  ck_assert_uint_ne(pid[0], pid[2]);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 3);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(w[i].ran, 0); /* nothing runs before tr_runtime_run */
    ck_assert(tr_is_alive(pid[i]));
  }
  TR_OK(tr_spawn(rt, noop_actor, NULL, NULL, NULL)); /* pid out may be NULL */
  TR_OK(tr_runtime_run(rt));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(w[i].ran, 1);
    ck_assert_uint_eq(w[i].self, pid[i]); /* arg passed through untouched */
    ck_assert(!tr_is_alive(pid[i]));
  }
  ck_assert_uint_eq(tr_self(), TR_PID_NONE);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

typedef struct {
  who_t child[2];
  tr_pid_t child_pid[2];
  tr_pid_t parent;
  int ran_before_yield;
  tr_runtime_t *other_rt;
  int other_rt_rc;
} inside_t;

static void spawner_actor(void *arg) {
  inside_t *t = arg;
  t->parent = tr_self();
  TR_OK(tr_spawn(NULL, who_actor, &t->child[0], NULL, &t->child_pid[0]));
  TR_OK(tr_spawn(tr_runtime_current(), who_actor, &t->child[1], NULL,
                 &t->child_pid[1]));
  t->other_rt_rc = tr_spawn(t->other_rt, noop_actor, NULL, NULL, NULL);
  /* The children first run when the spawner blocks or yields. */
  t->ran_before_yield = t->child[0].ran + t->child[1].ran;
  ck_assert(tr_is_alive(t->child_pid[0]));
  TR_OK(tr_yield());
  ck_assert_int_eq(t->child[0].ran, 1);
  ck_assert_int_eq(t->child[1].ran, 1);
  ck_assert(!tr_is_alive(t->child_pid[0]));
  ck_assert_uint_eq(tr_self(), t->parent);
}

START_TEST(test_spawn_inside) {
  /* One scheduler: children must not run before the spawner yields. */
  inside_t t;
  tr_runtime_t *rt = NULL;
  memset(&t, 0, sizeof(t));
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_runtime_new(&t.other_rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, spawner_actor, &t, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(t.ran_before_yield, 0);
  ck_assert_int_eq(t.other_rt_rc, TR_EINVAL); /* not the caller's runtime */
  ck_assert_uint_eq(tr_runtime_actor_count(t.other_rt), 0);
  for (int i = 0; i < 2; i++) {
    ck_assert_uint_eq(t.child[i].self, t.child_pid[i]);
    ck_assert_uint_ne(t.child_pid[i], t.parent);
  }
  TR_OK(tr_runtime_free(rt));
  TR_OK(tr_runtime_free(t.other_rt));
}
END_TEST

static void return_watcher(void *arg) {
  tr_pid_t pid;
  tr_ref_t ref;
  tr_msg_t *m;
  tr_reason_t r;
  const msgpack_object *o;
  tr_pid_t opid;
  (void)arg;
  TR_OK(tr_spawn_monitor(noop_actor, NULL, &pid, &ref));
  ck_assert_uint_ne(ref, 0);
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  ck_assert_uint_eq(tr_msg_from(m), pid);
  TR_OK(tr_msg_reason(m, &r));
  ck_assert_int_eq(r.kind, TR_REASON_NORMAL);
  ck_assert_int_eq(r.code, 0);
  ck_assert_str_eq(r.text, "");
  o = tr_msg_obj(m);
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(o->via.array.size, 4);
  ck_assert(tr_msg_is_tag(m, "DOWN"));
  ck_assert_uint_eq(o->via.array.ptr[1].via.u64, ref);
  TR_OK(tr_obj_pid(&o->via.array.ptr[2], &opid));
  ck_assert_uint_eq(opid, pid);
  ck_assert_int_eq(o->via.array.ptr[3].type, MSGPACK_OBJECT_STR);
  ck_assert_int_eq(o->via.array.ptr[3].via.str.size, 6);
  ck_assert(memcmp(o->via.array.ptr[3].via.str.ptr, "normal", 6) == 0);
  tr_msg_free(m);
}

START_TEST(test_return_is_normal_exit) { tr_test_run(return_watcher, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Yield                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
  char seq[64];
  size_t n;
  int yield_rc_bad;
} order_t;

typedef struct {
  order_t *o;
  char id;
} yielder_t;

static void yielder(void *arg) {
  yielder_t *y = arg;
  for (int i = 0; i < 4; i++) {
    y->o->seq[y->o->n++] = y->id;
    if (tr_yield() != 0) y->o->yield_rc_bad++;
  }
}

START_TEST(test_yield_interleaving) {
  /* One scheduler: the exact yield interleaving. */
  tr_runtime_t *rt = NULL;
  order_t o;
  yielder_t y[3] = {{&o, 'A'}, {&o, 'B'}, {&o, 'C'}};
  memset(&o, 0, sizeof(o));
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  for (int i = 0; i < 3; i++) TR_OK(tr_spawn(rt, yielder, &y[i], NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_str_eq(o.seq, "ABCABCABCABC");
  ck_assert_int_eq(o.yield_rc_bad, 0);
}
END_TEST

static void lone_yielder(void *arg) {
  int *n = arg;
  for (int i = 0; i < 1000; i++) {
    TR_OK(tr_yield());
    (*n)++;
  }
}

START_TEST(test_yield_alone) {
  int n = 0;
  tr_test_run(lone_yielder, &n);
  ck_assert_int_eq(n, 1000);
}
END_TEST

/* Cache colouring (design.md, "Stack slots"): actors alive at once, each
 * on a slot of its own, start their frames at different offsets within a
 * page; without the colouring every one would be at the same offset. */
#define COLOUR_ACTORS 64
static unsigned colour_off[COLOUR_ACTORS];

static void colour_probe(void *arg) {
  unsigned i = (unsigned)(uintptr_t)arg;
  colour_off[i] = (unsigned)((uintptr_t)__builtin_frame_address(0) & 4095);
}

START_TEST(test_stack_colouring) {
  tr_runtime_t *rt = NULL;
  unsigned distinct = 0;
  if (tr_test_on_tsan()) return; /* the TSan build does not colour */
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  for (unsigned i = 0; i < COLOUR_ACTORS; i++)
    TR_OK(tr_spawn(rt, colour_probe, (void *)(uintptr_t)i, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  for (unsigned i = 0; i < COLOUR_ACTORS; i++) {
    unsigned j = 0;
    while (j < i && colour_off[j] != colour_off[i]) j++;
    if (j == i) distinct++;
  }
  /* 32 colours hashed over 64 slots: about 28 distinct expected */
  ck_assert_uint_ge(distinct, 8);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Run order: spawned actors and hand-offs run first, within a bound        */
/* ------------------------------------------------------------------------ */

/* All on one scheduler: the subject is the run queue's order. */

static order_t run_order;

static void mark(char c) {
  if (run_order.n + 1 < sizeof(run_order.seq)) run_order.seq[run_order.n++] = c;
}

static void mark_leaf(void *arg) { mark((char)(intptr_t)arg); }

static void mark_then_spawn(void *arg) {
  mark((char)(intptr_t)arg);
  TR_OK(tr_spawn(NULL, mark_leaf, (void *)(intptr_t)'a', NULL, NULL));
  TR_OK(tr_spawn(NULL, mark_leaf, (void *)(intptr_t)'b', NULL, NULL));
}

static tr_pid_t order_parent;

static void mark_and_tell(void *arg) {
  mark((char)(intptr_t)arg);
  TR_OK(tr_send(order_parent, ONE, sizeof(ONE)));
}

static void mark_yield(void *arg) { /* X: 'X', yield, 'x' */
  (void)arg;
  mark('X');
  TR_OK(tr_yield());
  mark('x');
}

static void spawn_three_wait(void *arg) {
  tr_msg_t *m;
  (void)arg;
  order_parent = tr_self();
  mark('P');
  TR_OK(tr_spawn(NULL, mark_then_spawn, (void *)(intptr_t)'1', NULL, NULL));
  TR_OK(tr_spawn(NULL, mark_leaf, (void *)(intptr_t)'2', NULL, NULL));
  TR_OK(tr_spawn(NULL, mark_and_tell, (void *)(intptr_t)'3', NULL, NULL));
  TR_OK(tr_recv(&m, -1));
  tr_msg_free(m);
  mark('p');
}

START_TEST(test_spawned_run_first_in_order) {
  /* While P waits, its children run in spawn order, each one's own
   * children before its next sibling (depth-first), all ahead of X, which
   * was runnable before them; the last one's message wakes P, and as it
   * exits P runs next. First-in-first-out would give XPx123abp. */
  tr_runtime_t *rt = NULL;
  memset(&run_order, 0, sizeof(run_order));
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, mark_yield, NULL, NULL, NULL));
  TR_OK(tr_spawn(rt, spawn_three_wait, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_str_eq(run_order.seq, "XP1ab23px");
}
END_TEST

static void spawn_two_yield(void *arg) {
  (void)arg;
  mark('P');
  TR_OK(tr_spawn(NULL, mark_leaf, (void *)(intptr_t)'1', NULL, NULL));
  TR_OK(tr_spawn(NULL, mark_leaf, (void *)(intptr_t)'2', NULL, NULL));
  TR_OK(tr_yield());
  mark('p');
}

START_TEST(test_yield_runs_all_runnable_first) {
  /* tr_yield: every other runnable actor runs once first, in queue order:
   * X (runnable before P's children), then the children, then P. */
  tr_runtime_t *rt = NULL;
  memset(&run_order, 0, sizeof(run_order));
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, mark_yield, NULL, NULL, NULL));
  TR_OK(tr_spawn(rt, spawn_two_yield, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_str_eq(run_order.seq, "XPx12p");
}
END_TEST

static tr_pid_t result_waiter;

static void result_child(void *arg) {
  (void)arg;
  mark('C');
  TR_OK(tr_send(result_waiter, ONE, sizeof(ONE)));
  mark('c'); /* the waiter runs only once this child has exited */
}

static void result_waiter_actor(void *arg) {
  tr_msg_t *m;
  (void)arg;
  result_waiter = tr_self();
  mark('W');
  TR_OK(tr_spawn(NULL, result_child, NULL, NULL, NULL));
  TR_OK(tr_recv(&m, -1));
  tr_msg_free(m);
  mark('w');
}

static void yield_thrice(void *arg) {
  (void)arg;
  for (int i = 0; i < 3; i++) {
    mark('y');
    TR_OK(tr_yield());
  }
}

START_TEST(test_exit_hands_off_to_woken) {
  /* An actor that exits hands the CPU to the actor it woke last: the
   * waiter runs before Y, which was runnable first. */
  tr_runtime_t *rt = NULL;
  memset(&run_order, 0, sizeof(run_order));
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, yield_thrice, NULL, NULL, NULL));
  TR_OK(tr_spawn(rt, result_waiter_actor, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_str_eq(run_order.seq, "yWCcwyy");
}
END_TEST

static tr_pid_t order_server;

static void serve_nine(void *arg) {
  (void)arg;
  order_server = tr_self();
  for (int i = 0; i < 9; i++) {
    tr_msg_t *m;
    const unsigned char *d;
    TR_OK(tr_recv(&m, -1));
    d = tr_msg_data(m, NULL);
    mark((char)d[0]);
    TR_OK(tr_send(tr_msg_from(m), ONE, sizeof(ONE)));
    tr_msg_free(m);
  }
}

static void ask_three(void *arg) {
  unsigned char id = (unsigned char)(intptr_t)arg; /* a fixint: 'A' < 128 */
  for (int i = 0; i < 3; i++) {
    tr_msg_t *m;
    TR_OK(tr_send(order_server, &id, 1));
    TR_OK(tr_recv(&m, -1));
    tr_msg_free(m);
  }
}

START_TEST(test_woken_actors_take_turns) {
  /* A wake-up by a message queues at the back: a server's clients are
   * served in turn, none monopolises it by answering at once. */
  tr_runtime_t *rt = NULL;
  memset(&run_order, 0, sizeof(run_order));
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, serve_nine, NULL, NULL, NULL));
  for (char c = 'A'; c <= 'C'; c++)
    TR_OK(tr_spawn(rt, ask_three, (void *)(intptr_t)c, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_str_eq(run_order.seq, "ABCABCABC");
}
END_TEST

/* Skynet (bench/w3_spawn.c) with 10,000 leaves: 11,111 actors. */
typedef struct {
  uint64_t num, size;
  tr_pid_t parent;
} sky_t;

static size_t sky_peak_live;
static uint64_t sky_sum;
static int sky_bad;

static void sky_node(void *arg) {
  sky_t me = *(sky_t *)arg;
  uint64_t total = 0;
  unsigned char buf[9];
  free(arg);
  if (me.size > 1) {
    for (uint64_t i = 0; i < 10; i++) {
      sky_t *c = malloc(sizeof(*c));
      if (c == NULL) abort();
      c->num = me.num + i * (me.size / 10);
      c->size = me.size / 10;
      c->parent = tr_self();
      if (tr_spawn(NULL, sky_node, c, NULL, NULL) != 0) sky_bad++;
    }
    for (int i = 0; i < 10; i++) {
      tr_msg_t *m;
      uint64_t v = 0;
      if (tr_recv(&m, -1) != 0) {
        sky_bad++;
        return;
      }
      const unsigned char *d = tr_msg_data(m, NULL);
      for (int k = 1; k < 9; k++) v = (v << 8) | d[k];
      total += v;
      tr_msg_free(m);
    }
  } else {
    size_t live = tr_runtime_actor_count(tr_runtime_current());
    if (live > sky_peak_live) sky_peak_live = live;
    total = me.num;
  }
  if (me.parent == TR_PID_NONE) {
    sky_sum = total;
    return;
  }
  buf[0] = 0xcf; /* msgpack uint 64 */
  for (int k = 0; k < 8; k++) buf[1 + k] = (unsigned char)(total >> (56 - 8 * k));
  if (tr_send(me.parent, buf, sizeof(buf)) != 0) sky_bad++;
}

START_TEST(test_spawn_tree_live_set_bounded) {
  /* Spawned actors run first, and an exiting leaf hands the CPU to its
   * waiting parent: the tree runs depth-first, so few of its 11,111 actors
   * are alive at once and few stack slots are ever carved (a freed slot is
   * reused). First-in-first-out order keeps all 11,111 alive and carves a
   * slot for each; queueing woken parents at the back keeps ~1,200. */
  tr_runtime_t *rt = NULL;
  tr_config_t cfg = *tr_test_cfg1();
  tr__stack_stats_t st;
  sky_t *root = malloc(sizeof(*root));
  size_t carved;
  ck_assert_ptr_nonnull(root);
  root->num = 0;
  root->size = 10000;
  root->parent = TR_PID_NONE;
  sky_peak_live = 0;
  sky_sum = 0;
  sky_bad = 0;
  cfg.stack_size = 16 * 1024;
  TR_OK(tr_runtime_new(&rt, &cfg));
  TR_OK(tr_spawn(rt, sky_node, root, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  tr__stack_pool_stats(rt->sched.stacks, &st);
  carved = st.in_use + st.cached + st.released;
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(sky_bad, 0);
  ck_assert_uint_eq(sky_sum, 10000ull * 9999 / 2);
  ck_assert_uint_le(sky_peak_live, 400);
  ck_assert_uint_le(carved, 400);
}
END_TEST

/* An endless-looking spawn chain: each link spawns the next and exits. */
typedef struct {
  int links, limit;
  int victim_runs, max_gap, last_seen; /* the victim's turns, in links */
  int sibling_at;                      /* links when the sibling ran */
} chain_t;

static chain_t chain;

static void chain_link(void *arg) {
  (void)arg;
  if (++chain.links < chain.limit)
    TR_OK(tr_spawn(NULL, chain_link, NULL, NULL, NULL));
}

static void chain_victim(void *arg) {
  (void)arg;
  for (;;) {
    if (chain.links - chain.last_seen > chain.max_gap)
      chain.max_gap = chain.links - chain.last_seen;
    chain.last_seen = chain.links;
    if (chain.links >= chain.limit) break;
    chain.victim_runs++;
    TR_OK(tr_yield());
  }
}

START_TEST(test_spawn_chain_cannot_starve_runnable) {
  /* Fairness bound: after TR__RQ_FRONT_RUN dispatches from the front, the
   * front moves behind the actors waiting at the back. The victim, runnable
   * (yielding) before the chain starts, runs at least once every
   * TR__RQ_FRONT_RUN + 2 links; without the bound it would wait for all
   * 20,000. */
  tr_runtime_t *rt = NULL;
  memset(&chain, 0, sizeof(chain));
  chain.limit = 20000;
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, chain_victim, NULL, NULL, NULL));
  TR_OK(tr_spawn(rt, chain_link, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(chain.links, chain.limit);
  ck_assert_int_le(chain.max_gap, TR__RQ_FRONT_RUN + 2);
  ck_assert_int_ge(chain.victim_runs, chain.limit / (TR__RQ_FRONT_RUN + 2));
}
END_TEST

static void chain_sibling(void *arg) {
  (void)arg;
  chain.sibling_at = chain.links;
}

static void chain_and_sibling(void *arg) {
  (void)arg;
  TR_OK(tr_spawn(NULL, chain_link, NULL, NULL, NULL));
  TR_OK(tr_spawn(NULL, chain_sibling, NULL, NULL, NULL));
}

START_TEST(test_spawn_chain_cannot_starve_sibling) {
  /* The sibling is queued in the front behind the first link; every new
   * link goes ahead of it. At the end of the chain's turn the bound moves
   * it to the back with the link of the moment; the chain's next turn
   * ends behind it: it runs within two turns, not after the whole chain. */
  tr_runtime_t *rt = NULL;
  memset(&chain, 0, sizeof(chain));
  chain.limit = 20000;
  chain.sibling_at = -1;
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, chain_and_sibling, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(chain.links, chain.limit);
  ck_assert_int_ge(chain.sibling_at, 0);
  ck_assert_int_le(chain.sibling_at, 2 * (TR__RQ_FRONT_RUN + 1));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Exit reasons                                                             */
/* ------------------------------------------------------------------------ */

enum { EX_NORMAL, EX_SHUTDOWN, EX_KILL, EX_ERROR, EX_ERROR_LONG, EX_COUNT };

typedef struct {
  int mode;
  int after_exit; /* set if tr_exit returned: must stay 0 */
  int bad_kind_rc;
} exiter_t;

static void exiter(void *arg) {
  exiter_t *e = arg;
  char big[300];
  e->bad_kind_rc = tr_exit((tr_reason_kind_t)TR_REASON__COUNT);
  switch (e->mode) {
  case EX_NORMAL: tr_exit(TR_REASON_NORMAL); break;
  case EX_SHUTDOWN: tr_exit(TR_REASON_SHUTDOWN); break;
  case EX_KILL: tr_exit(TR_REASON_KILL); break;
  case EX_ERROR: tr_exit_error(42, "boom %d at %s", 7, "here"); break;
  case EX_ERROR_LONG:
    for (size_t i = 0; i < sizeof(big) - 1; i++) big[i] = (char)('a' + i % 26);
    big[sizeof(big) - 1] = '\0';
    tr_exit_error(-3, "%s", big);
    break;
  }
  e->after_exit = 1;
}

static void exit_watcher(void *arg) {
  exiter_t e[EX_COUNT];
  tr_pid_t pid[EX_COUNT];
  tr_ref_t ref[EX_COUNT];
  tr_reason_t r;
  (void)arg;
  for (int i = 0; i < EX_COUNT; i++) {
    e[i].mode = i;
    e[i].after_exit = 0;
    e[i].bad_kind_rc = 1;
    TR_OK(tr_spawn_monitor(exiter, &e[i], &pid[i], &ref[i]));
  }
  /* Children run in spawn order, so the DOWNs arrive in that order. */
  r = expect_down(ref[EX_NORMAL], pid[EX_NORMAL]);
  ck_assert_int_eq(r.kind, TR_REASON_NORMAL);
  r = expect_down(ref[EX_SHUTDOWN], pid[EX_SHUTDOWN]);
  ck_assert_int_eq(r.kind, TR_REASON_SHUTDOWN);
  r = expect_down(ref[EX_KILL], pid[EX_KILL]);
  ck_assert_int_eq(r.kind, TR_REASON_KILLED); /* kill becomes killed */
  r = expect_down(ref[EX_ERROR], pid[EX_ERROR]);
  ck_assert_int_eq(r.kind, TR_REASON_ERROR);
  ck_assert_int_eq(r.code, 42);
  ck_assert_str_eq(r.text, "boom 7 at here");
  r = expect_down(ref[EX_ERROR_LONG], pid[EX_ERROR_LONG]);
  ck_assert_int_eq(r.kind, TR_REASON_ERROR);
  ck_assert_int_eq(r.code, -3);
  ck_assert_uint_eq(strlen(r.text), TR_REASON_TEXT_MAX - 1);
  for (size_t i = 0; i < TR_REASON_TEXT_MAX - 1; i++)
    ck_assert_int_eq(r.text[i], 'a' + (int)(i % 26));
  for (int i = 0; i < EX_COUNT; i++) {
    ck_assert_int_eq(e[i].after_exit, 0);
    ck_assert_int_eq(e[i].bad_kind_rc, TR_EINVAL);
  }
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

/* One scheduler: the DOWNs arrive in spawn order. */
START_TEST(test_exit_reasons) { tr_test_run1(exit_watcher, NULL); }
END_TEST

START_TEST(test_exit_outside) {
  tr_runtime_t *rt = NULL;
  ck_assert_int_eq(tr_exit(TR_REASON_NORMAL), TR_ENOTACTOR);
  ck_assert_int_eq(tr_exit_error(1, "x"), TR_ENOTACTOR);
  TR_OK(tr_runtime_new(&rt, NULL));
  ck_assert_int_eq(tr_exit(TR_REASON_SHUTDOWN), TR_ENOTACTOR);
  ck_assert_int_eq(tr_exit_error(1, "x %d", 2), TR_ENOTACTOR);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Spawn options                                                            */
/* ------------------------------------------------------------------------ */

typedef struct {
  size_t used;     /* bytes of stack the child dirtied */
  int ran;
} deep_t;

/* Dirties `used` bytes of stack in one frame: needs a big enough stack. */
static void deep_actor(void *arg) {
  deep_t *d = arg;
  volatile char *buf = __builtin_alloca(d->used);
  for (size_t i = 0; i < d->used; i += 512) buf[i] = (char)i;
  buf[d->used - 1] = 1;
  d->ran = buf[0] == 0 && buf[d->used - 1] == 1;
}

static int counter_runs;
static void counting_actor(void *arg) {
  (void)arg;
  counter_runs++;
}

static void opts_in_actor(void *arg) {
  tr_spawn_opts_t o;
  tr_ref_t ref = 0;
  tr_pid_t pid = TR_PID_NONE, w;
  tr_runtime_t *rt = tr_runtime_current();
  size_t before;
  deep_t big = {.used = 768 * 1024};
  tr_reason_t r;
  (void)arg;

  /* A 1 MiB stack holds a 768 KiB frame that the default could not. */
  tr_spawn_opts_init(&o);
  o.stack_size = 1024 * 1024;
  o.flags = TR_SPAWN_MONITOR;
  o.monitor_ref = &ref;
  TR_OK(tr_spawn(NULL, deep_actor, &big, &o, &pid));
  ck_assert_uint_ne(ref, 0);
  r = expect_down(ref, pid);
  ck_assert_int_eq(r.kind, TR_REASON_NORMAL);
  ck_assert_int_eq(big.ran, 1);

  /* The smallest stack allowed works too. */
  tr_spawn_opts_init(&o);
  o.stack_size = TR_STACK_SIZE_MIN;
  TR_OK(tr_spawn(NULL, counting_actor, NULL, &o, NULL));

  /* Invalid options: error, nothing started. */
  before = tr_runtime_actor_count(rt);
  tr_spawn_opts_init(&o);
  o.stack_size = TR_STACK_SIZE_MIN - 1;
  ck_assert_int_eq(tr_spawn(NULL, counting_actor, NULL, &o, NULL), TR_EINVAL);
  o.stack_size = TR_STACK_SIZE_MAX + 1;
  ck_assert_int_eq(tr_spawn(NULL, counting_actor, NULL, &o, NULL), TR_EINVAL);
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_MONITOR; /* without monitor_ref */
  ck_assert_int_eq(tr_spawn(NULL, counting_actor, NULL, &o, NULL), TR_EINVAL);
  o.flags = 1u << 7; /* unknown flag */
  ck_assert_int_eq(tr_spawn(NULL, counting_actor, NULL, &o, NULL), TR_EINVAL);
  o.flags = TR_SPAWN_LINK | (1u << 30);
  ck_assert_int_eq(tr_spawn(NULL, counting_actor, NULL, &o, NULL), TR_EINVAL);
  tr_spawn_opts_init(&o);
  ck_assert_int_eq(tr_spawn(NULL, NULL, NULL, &o, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_spawn(NULL, NULL, NULL, NULL, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_spawn_link(NULL, NULL, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_spawn_monitor(NULL, NULL, NULL, &ref), TR_EINVAL);
  ck_assert_int_eq(tr_spawn_monitor(counting_actor, NULL, NULL, NULL), TR_EINVAL);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), before);

  /* name: registered at spawn. */
  tr_spawn_opts_init(&o);
  o.name = "named_child";
  TR_OK(tr_spawn(NULL, counting_actor, NULL, &o, &pid));
  TR_OK(tr_whereis("named_child", &w));
  ck_assert_uint_eq(w, pid);

  /* LINK from inside: the link exists (a trapping parent gets EXIT). */
  ck_assert_int_eq(tr_trap_exit(1), 0);
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_LINK;
  TR_OK(tr_spawn(NULL, counting_actor, NULL, &o, &pid));
  {
    tr_msg_t *m;
    TR_OK(tr_recv(&m, 5000));
    ck_assert_int_eq(tr_msg_kind(m), TR_MSG_EXIT);
    ck_assert_uint_eq(tr_msg_from(m), pid);
    TR_OK(tr_msg_reason(m, &r));
    ck_assert_int_eq(r.kind, TR_REASON_NORMAL);
    tr_msg_free(m);
  }
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_spawn_opts_inside) {
  /* One scheduler: a named child must not have run and exited before whereis. */
  counter_runs = 0;
  tr_test_run1(opts_in_actor, NULL);
  ck_assert_int_eq(counter_runs, 3); /* min stack, named, linked */
}
END_TEST

START_TEST(test_spawn_opts_outside) {
  tr_runtime_t *rt = NULL;
  tr_spawn_opts_t o;
  tr_ref_t ref = 0;
  tr_pid_t pid = 77;

  counter_runs = 0;
  /* No runtime and no actor: nothing to spawn into. */
  ck_assert_int_eq(tr_spawn(NULL, counting_actor, NULL, NULL, NULL), TR_EINVAL);
  TR_OK(tr_runtime_new(&rt, NULL));
  ck_assert_int_eq(tr_spawn(NULL, counting_actor, NULL, NULL, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_spawn(rt, NULL, NULL, NULL, &pid), TR_EINVAL);
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_LINK;
  ck_assert_int_eq(tr_spawn(rt, counting_actor, NULL, &o, NULL), TR_ENOTACTOR);
  o.flags = TR_SPAWN_MONITOR;
  o.monitor_ref = &ref;
  ck_assert_int_eq(tr_spawn(rt, counting_actor, NULL, &o, NULL), TR_ENOTACTOR);
  ck_assert_int_eq(tr_spawn_link(counting_actor, NULL, &pid), TR_ENOTACTOR);
  ck_assert_int_eq(tr_spawn_monitor(counting_actor, NULL, &pid, &ref),
                   TR_ENOTACTOR);
  o.flags = 1u << 9;
  o.monitor_ref = NULL;
  ck_assert_int_eq(tr_spawn(rt, counting_actor, NULL, &o, NULL), TR_EINVAL);
  tr_spawn_opts_init(&o);
  o.stack_size = 1;
  ck_assert_int_eq(tr_spawn(rt, counting_actor, NULL, &o, NULL), TR_EINVAL);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  /* A valid name from outside. */
  tr_spawn_opts_init(&o);
  o.name = "outside";
  TR_OK(tr_spawn(rt, counting_actor, NULL, &o, &pid));
  {
    tr_pid_t w;
    TR_OK(tr_whereis("outside", &w));
    ck_assert_uint_eq(w, pid);
  }
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(counter_runs, 1);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Scale                                                                    */
/* ------------------------------------------------------------------------ */

/* 100,000; 2,000 under valgrind, which would take many minutes. */
#define MANY (tr_test_on_valgrind() || tr_test_on_tsan() ? 2000 : 100000)

/* Sanitizers add memory per actor (redzones, quarantine, shadow): the
 * idle footprint is checked in plain builds only. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FOOTPRINT_CHECKED 0
#else
#define FOOTPRINT_CHECKED 1
#endif

/* Hot loops count failures and assert once: every passing ck_assert costs
 * Check a write(2) to its report pipe. */
typedef struct {
  int ran;
  int failed;
  size_t count_after_spawn;
  size_t count_after_all;
} many_t;

static void many_child(void *arg) { ((many_t *)arg)->ran++; }

static void many_parent(void *arg) {
  many_t *t = arg;
  tr_runtime_t *rt = tr_runtime_current();
  for (int i = 0; i < MANY; i++)
    if (tr_spawn(NULL, many_child, t, NULL, NULL) != 0) t->failed++;
  t->count_after_spawn = tr_runtime_actor_count(rt);
  while (t->ran < MANY - t->failed)
    if (tr_yield() != 0) t->failed++;
  t->count_after_all = tr_runtime_actor_count(rt);
}

START_TEST(test_100k_spawn_exit) {
  /* One scheduler: counts actors before any child ran; plain shared counters. */
  tr_runtime_t *rt = NULL;
  many_t t = {0, 0, 0, 0};
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, many_parent, &t, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(t.failed, 0);
  ck_assert_int_eq(t.ran, MANY);
  ck_assert_uint_eq(t.count_after_spawn, MANY + 1);
  ck_assert_uint_eq(t.count_after_all, 1); /* every child reaped */
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

typedef struct {
  tr_pid_t *pids;
  int blocked;   /* receivers that reached tr_recv */
  int released;  /* receivers that got their own index */
  int wrong;
  size_t alive_seen;
  int vmas;
  long rss_before, rss_blocked; /* KiB: before the spawns, all blocked */
} parked_t;

static parked_t parked;

static void parked_actor(void *arg) {
  int idx = (int)(intptr_t)arg;
  tr_msg_t *m;
  const msgpack_object *o;
  parked.blocked++;
  if (tr_recv(&m, -1) != 0) {
    parked.wrong++;
    return;
  }
  o = tr_msg_obj(m);
  if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      o->via.u64 != (uint64_t)idx)
    parked.wrong++;
  else
    parked.released++;
  tr_msg_free(m);
}

static void releaser(void *arg) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  (void)arg;
  /* Spawned last: every receiver ran once and is blocked by now. */
  parked.alive_seen = tr_runtime_actor_count(tr_runtime_current());
  parked.vmas = tr_test_vma_count();
  parked.rss_blocked = tr_test_rss_kib();
  ck_assert_int_eq(parked.blocked, MANY);
  ck_assert_int_eq(parked.released, 0);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  for (int i = 0; i < MANY; i++) {
    sb.size = 0;
    msgpack_pack_uint32(&pk, (uint32_t)i);
    if (tr_send(parked.pids[i], sb.data, sb.size) != 0) parked.wrong++;
  }
  msgpack_sbuffer_destroy(&sb);
}

START_TEST(test_100k_blocked_in_recv) {
  /* One scheduler: plain counters shared by the actors. */
  tr_runtime_t *rt = NULL;
  memset(&parked, 0, sizeof(parked));
  parked.pids = calloc(MANY, sizeof(tr_pid_t));
  ck_assert_ptr_nonnull(parked.pids);
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  parked.rss_before = tr_test_rss_kib();
  for (int i = 0; i < MANY; i++)
    if (tr_spawn(rt, parked_actor, (void *)(intptr_t)i, NULL, &parked.pids[i]))
      parked.wrong++;
  ck_assert_int_eq(parked.wrong, 0);
  TR_OK(tr_spawn(rt, releaser, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_uint_eq(parked.alive_seen, MANY + 1);
  ck_assert_int_eq(parked.blocked, MANY);
  ck_assert_int_eq(parked.released, MANY);
  ck_assert_int_eq(parked.wrong, 0);
  /* Guards must not cost a mapping each (vm.max_map_count is 65530). */
  ck_assert_int_lt(parked.vmas, 20000);
  /* An idle actor costs its one touched stack page, its record and a few
   * bytes of tables: at most 4,608 bytes (W5, doc/performance.md; 4,516
   * measured, 4,691 before the exit reason left the record). Sanitizers
   * and valgrind add their own memory per actor. */
  if (FOOTPRINT_CHECKED && !tr_test_on_valgrind())
    ck_assert_msg((parked.rss_blocked - parked.rss_before) * 1024 / MANY <= 4608,
                  "%ld bytes per idle actor",
                  (parked.rss_blocked - parked.rss_before) * 1024 / MANY);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
  free(parked.pids);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stale pids                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
  tr_pid_t old, fresh;
  size_t fresh_mailbox_len;
  int fresh_got_check;
  int fresh_got_other;
} stale_t;

static void stale_fresh(void *arg) {
  stale_t *t = arg;
  tr_msg_t *m;
  TR_OK(tr_recv(&m, 5000));
  if (tr_msg_is_tag(m, "check")) t->fresh_got_check++;
  else t->fresh_got_other++;
  tr_msg_free(m);
  t->fresh_mailbox_len = tr_mailbox_len();
  /* Nothing else turns up later either. */
  ck_assert_int_eq(tr_recv(&m, 20), TR_ETIMEDOUT);
}

static void stale_driver(void *arg) {
  stale_t *t = arg;
  tr_ref_t ref, ref2;
  tr_reason_t r;
  tr_msg_t *m;

  TR_OK(tr_spawn_monitor(noop_actor, NULL, &t->old, &ref));
  r = expect_down(ref, t->old);
  ck_assert_int_eq(r.kind, TR_REASON_NORMAL);
  ck_assert(!tr_is_alive(t->old));
  TR_OK(tr_spawn(NULL, stale_fresh, t, NULL, &t->fresh));
  /* Same slot, new generation. */
  ck_assert_uint_eq(t->fresh & TR__IDX_MASK, t->old & TR__IDX_MASK);
  ck_assert_uint_ne(t->fresh, t->old);
  ck_assert(!tr_is_alive(t->old));
  ck_assert(tr_is_alive(t->fresh));
  /* Every pid-taking call treats the old pid as dead. */
  ck_assert_int_eq(tr_send(t->old, ONE, sizeof(ONE)), 0);
  ck_assert_int_eq(tr_send_tagged(t->old, "stale", "i", (int64_t)1), 0);
  ck_assert_int_eq(tr_exit_pid(NULL, t->old, TR_REASON_KILL), 0);
  ck_assert_int_eq(tr_register("stale_name", t->old), TR_ENOPROC);
  TR_OK(tr_monitor(t->old, &ref2));
  TR_OK(tr_recv(&m, 1000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), ref2);
  TR_OK(tr_msg_reason(m, &r));
  ck_assert_int_eq(r.kind, TR_REASON_NOPROC);
  tr_msg_free(m);
  ck_assert(tr_is_alive(t->fresh)); /* the kill did not reach it */
  TR_OK(tr_send_tagged(t->fresh, "check", ""));
}

START_TEST(test_stale_pid) {
  /* One scheduler: slot reuse on the spawner's scheduler. */
  stale_t t;
  memset(&t, 0, sizeof(t));
  tr_test_run1(stale_driver, &t);
  ck_assert_int_eq(t.fresh_got_check, 1);
  ck_assert_int_eq(t.fresh_got_other, 0);
  ck_assert_uint_eq(t.fresh_mailbox_len, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* errno per actor                                                          */
/* ------------------------------------------------------------------------ */

typedef struct {
  int mine;
  int seen[3]; /* errno after a yield, a sleep, a blocking receive */
} errno_case_t;

/* Sets its own errno before each switch and reads it back after. */
static void errno_actor(void *arg) {
  errno_case_t *e = arg;
  tr_msg_t *m;
  errno = e->mine;
  TR_OK(tr_yield());
  e->seen[0] = errno;
  errno = e->mine + 1;
  TR_OK(tr_sleep(5));
  e->seen[1] = errno;
  errno = e->mine + 2;
  TR_OK(tr_recv(&m, -1)); /* parked until the pinger sends */
  e->seen[2] = errno;
  tr_msg_free(m);
}

typedef struct {
  tr_pid_t to[3];
  int seen[2];
} pinger_t;

static void errno_pinger(void *arg) {
  pinger_t *p = arg;
  errno = EPIPE;
  TR_OK(tr_sleep(20)); /* everyone else is parked in tr_recv by then */
  p->seen[0] = errno;
  errno = ENOSPC;
  for (int i = 0; i < 3; i++) TR_OK(tr_send(p->to[i], ONE, sizeof(ONE)));
  TR_OK(tr_yield());
  p->seen[1] = errno;
}

START_TEST(test_errno_per_actor) {
  tr_runtime_t *rt = NULL;
  errno_case_t e[3] = {{.mine = EDOM}, {.mine = EACCES}, {.mine = EILSEQ}};
  pinger_t p;
  TR_OK(tr_runtime_new(&rt, NULL));
  for (int i = 0; i < 3; i++) TR_OK(tr_spawn(rt, errno_actor, &e[i], NULL, &p.to[i]));
  TR_OK(tr_spawn(rt, errno_pinger, &p, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(e[i].seen[0], e[i].mine);
    ck_assert_int_eq(e[i].seen[1], e[i].mine + 1);
    ck_assert_int_eq(e[i].seen[2], e[i].mine + 2);
  }
  ck_assert_int_eq(p.seen[0], EPIPE);
  ck_assert_int_eq(p.seen[1], ENOSPC);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Actor-only calls from outside                                            */
/* ------------------------------------------------------------------------ */

static int never_match(const tr_msg_t *m, void *arg) {
  (void)m;
  (void)arg;
  return 0;
}

static void never_cleanup(void *arg) { (void)arg; }

/* Every actor-only call returns `want` here. */
static void check_actor_only(int want) {
  tr_msg_t *m = NULL;
  tr_ref_t ref = 0;
  msgpack_object obj;
  tr_pid_t pid = ((uint64_t)1 << 32) | 1;
  tr_reason_t why;

  obj.type = MSGPACK_OBJECT_NIL;
  ck_assert_int_eq(tr_yield(), want);
  ck_assert_int_eq(tr_recv(&m, 0), want);
  ck_assert_int_eq(tr_recv(&m, -1), want);
  ck_assert_int_eq(tr_recv_tag(&m, "t", 0), want);
  ck_assert_int_eq(tr_recv_match(&m, never_match, NULL, 0), want);
  ck_assert_int_eq(tr_send(pid, ONE, sizeof(ONE)), want);
  ck_assert_int_eq(tr_send_obj(pid, &obj), want);
  ck_assert_int_eq(tr_send_tagged(pid, "t", "i", (int64_t)1), want);
  ck_assert_int_eq(tr_send_named("nobody", ONE, sizeof(ONE)), want);
  ck_assert_int_eq(tr_link(pid), want);
  ck_assert_int_eq(tr_unlink(pid), want);
  ck_assert_int_eq(tr_monitor(pid, &ref), want);
  ck_assert_int_eq(tr_demonitor(1, 0), want);
  ck_assert_int_eq(tr_trap_exit(1), want);
  ck_assert_int_eq(tr_sleep(1), want);
  ck_assert_int_eq(tr_sleep(0), want);
  ck_assert_int_eq(tr_defer(never_cleanup, NULL), want);
  ck_assert_int_eq(tr_call(pid, ONE, sizeof(ONE), &m, 10, &why), want);
  ck_assert_int_eq(tr_reply(NULL, ONE, 1), want);
  ck_assert_int_eq(tr_send_after(pid, 1, ONE, sizeof(ONE), &ref), want);
  ck_assert_int_eq(tr_cancel_timer(1), want);
  ck_assert_int_eq(tr_exit(TR_REASON_NORMAL), want);
  ck_assert_int_eq(tr_exit_error(1, "x"), want);
  ck_assert_ptr_null(tr_arena_alloc(16));
  ck_assert_uint_eq(tr_mailbox_len(), 0);
  ck_assert_uint_eq(tr_self(), TR_PID_NONE);
}

START_TEST(test_actor_only_outside) {
  tr_runtime_t *rt = NULL;
  check_actor_only(TR_ENOTACTOR); /* no runtime on this thread */
  TR_OK(tr_runtime_new(&rt, NULL));
  check_actor_only(TR_ENOTACTOR); /* the runtime's thread, host code */
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Deferred cleanups                                                        */
/* ------------------------------------------------------------------------ */

typedef struct {
  char log[16];
  int n;
  int self_none;       /* cleanups that saw tr_self() == NONE */
  int ecleanup;        /* actor-only calls that said TR_ECLEANUP */
  int calls;           /* actor-only calls made */
  tr_pid_t target;     /* a live pid to aim at */
} defer_log_t;

typedef struct {
  defer_log_t *log;
  char tag;
} defer_arg_t;

#define EXPECT_CLEANUP(expr)                                                 \
  do {                                                                       \
    l->calls++;                                                              \
    if ((expr) == TR_ECLEANUP) l->ecleanup++;                                \
  } while (0)

static void cleanup_cb(void *arg) {
  defer_arg_t *d = arg;
  defer_log_t *l = d->log;
  tr_msg_t *m;
  tr_ref_t ref;
  tr_reason_t why;
  l->log[l->n++] = d->tag;
  if (tr_self() == TR_PID_NONE) l->self_none++;
  EXPECT_CLEANUP(tr_yield());
  EXPECT_CLEANUP(tr_recv(&m, 0));
  EXPECT_CLEANUP(tr_send(l->target, ONE, sizeof(ONE)));
  EXPECT_CLEANUP(tr_send_tagged(l->target, "x", ""));
  EXPECT_CLEANUP(tr_sleep(1));
  EXPECT_CLEANUP(tr_defer(cleanup_cb, arg));
  EXPECT_CLEANUP(tr_monitor(l->target, &ref));
  EXPECT_CLEANUP(tr_link(l->target));
  EXPECT_CLEANUP(tr_trap_exit(1));
  EXPECT_CLEANUP(tr_call(l->target, ONE, sizeof(ONE), &m, 0, &why));
  EXPECT_CLEANUP(tr_send_after(l->target, 1, ONE, sizeof(ONE), &ref));
  EXPECT_CLEANUP(tr_exit(TR_REASON_NORMAL));
  EXPECT_CLEANUP(tr_exit_error(3, "no"));
  EXPECT_CLEANUP(tr_spawn(NULL, noop_actor, NULL, NULL, NULL));
  if (tr_arena_alloc(8) == NULL) l->ecleanup++;
  l->calls++;
}

enum { END_RETURN, END_ERROR, END_KILLED };

typedef struct {
  defer_log_t log;
  defer_arg_t args[3];
  int how;
} defer_case_t;

static void deferring_actor(void *arg) {
  defer_case_t *c = arg;
  tr_msg_t *m;
  for (int i = 0; i < 3; i++) TR_OK(tr_defer(cleanup_cb, &c->args[i]));
  ck_assert_int_eq(tr_defer(NULL, NULL), TR_EINVAL);
  ck_assert_int_eq(c->log.n, 0); /* nothing runs before the exit */
  switch (c->how) {
  case END_RETURN: return;
  case END_ERROR: tr_exit_error(9, "bye"); break;
  case END_KILLED: tr_recv(&m, -1); break; /* parked until killed */
  }
  c->log.log[c->log.n++] = '!'; /* not reached */
}

static void defer_driver(void *arg) {
  defer_case_t *c = arg;
  tr_pid_t pid;
  tr_ref_t ref;
  tr_reason_t r;
  c->log.target = tr_self();
  TR_OK(tr_spawn_monitor(deferring_actor, c, &pid, &ref));
  if (c->how == END_KILLED) {
    TR_OK(tr_yield()); /* let it register its cleanups and park */
    ck_assert(tr_is_alive(pid));
    TR_OK(tr_exit_pid(NULL, pid, TR_REASON_KILL));
  }
  r = expect_down(ref, pid);
  ck_assert_int_eq(r.kind, c->how == END_RETURN  ? TR_REASON_NORMAL
                           : c->how == END_ERROR ? TR_REASON_ERROR
                                                 : TR_REASON_KILLED);
  /* Calls from the cleanups must not have reached us. */
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

static void run_defer_case(int how) {
  defer_case_t c;
  memset(&c, 0, sizeof(c));
  c.how = how;
  for (int i = 0; i < 3; i++) {
    c.args[i].log = &c.log;
    c.args[i].tag = (char)('1' + i);
  }
  tr_test_run(defer_driver, &c);
  ck_assert_str_eq(c.log.log, "321"); /* last registered first */
  ck_assert_int_eq(c.log.self_none, 3);
  ck_assert_int_eq(c.log.calls, 3 * 15);
  ck_assert_int_eq(c.log.ecleanup, c.log.calls);
}

START_TEST(test_defer_on_return) { run_defer_case(END_RETURN); }
END_TEST
START_TEST(test_defer_on_exit_error) { run_defer_case(END_ERROR); }
END_TEST
START_TEST(test_defer_on_kill) { run_defer_case(END_KILLED); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Arena                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
  int n;
  int misaligned;
  int corrupted;
} arena_res_t;

#define ARENA_ALLOCS 5000

static size_t arena_size(int i) {
  static const size_t sizes[] = {1, 7, 16, 17, 100, 1000, 2047, 2049, 4096,
                                 5000, 3, 64 * 1024};
  return sizes[i % (int)(sizeof(sizes) / sizeof(sizes[0]))];
}

static void arena_actor(void *arg) {
  arena_res_t *res = arg;
  unsigned char **p = tr_arena_alloc(ARENA_ALLOCS * sizeof(*p));
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq((uintptr_t)p % 16, 0);
  for (int i = 0; i < ARENA_ALLOCS; i++) {
    size_t sz = arena_size(i);
    p[i] = tr_arena_alloc(sz);
    if (p[i] == NULL) {
      res->corrupted++;
      return;
    }
    if ((uintptr_t)p[i] % 16 != 0) res->misaligned++;
    memset(p[i], (unsigned char)i, sz); /* fills exactly what was asked */
    res->n++;
  }
  /* No allocation overlaps another: every fill is intact. */
  for (int i = 0; i < ARENA_ALLOCS; i++) {
    size_t sz = arena_size(i);
    for (size_t j = 0; j < sz; j++)
      if (p[i][j] != (unsigned char)i) {
        res->corrupted++;
        break;
      }
  }
  ck_assert_ptr_null(tr_arena_alloc(SIZE_MAX));
  ck_assert_ptr_null(tr_arena_alloc(SIZE_MAX - 8));
  /* Nothing is freed explicitly: the arena goes with the actor (ASan's leak
   * check and valgrind would see otherwise). */
}

static void arena_killed_actor(void *arg) {
  tr_msg_t *m;
  (void)arg;
  for (int i = 0; i < 100; i++) ck_assert_ptr_nonnull(tr_arena_alloc(3000));
  tr_recv(&m, -1);
}

static void arena_driver(void *arg) {
  tr_pid_t pid, victim;
  tr_ref_t ref, vref;
  tr_reason_t r;
  TR_OK(tr_spawn_monitor(arena_actor, arg, &pid, &ref));
  TR_OK(tr_spawn_monitor(arena_killed_actor, NULL, &victim, &vref));
  r = expect_down(ref, pid);
  ck_assert_int_eq(r.kind, TR_REASON_NORMAL);
  TR_OK(tr_exit_pid(NULL, victim, TR_REASON_KILL));
  r = expect_down(vref, victim);
  ck_assert_int_eq(r.kind, TR_REASON_KILLED);
}

START_TEST(test_arena) {
  arena_res_t res = {0, 0, 0};
  tr_test_run(arena_driver, &res);
  ck_assert_int_eq(res.n, ARENA_ALLOCS);
  ck_assert_int_eq(res.misaligned, 0);
  ck_assert_int_eq(res.corrupted, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *suite_actor(void) {
  Suite *s = suite_create("actor");
  TCase *basic = tcase_create("basic");
  TCase *opts = tcase_create("opts");
  TCase *scale = tcase_create("scale");
  TCase *ledger = tcase_create("ledger");
  TCase *order = tcase_create("order");

  tcase_add_test(basic, test_spawn_outside);
  tcase_add_test(basic, test_spawn_inside);
  tcase_add_test(basic, test_return_is_normal_exit);
  tcase_add_test(basic, test_yield_interleaving);
  tcase_add_test(basic, test_yield_alone);
  tcase_add_test(basic, test_stack_colouring);
  tcase_add_test(basic, test_exit_reasons);
  tcase_add_test(basic, test_exit_outside);
  tcase_add_test(basic, test_stale_pid);
  tcase_add_test(basic, test_errno_per_actor);
  tcase_add_test(basic, test_actor_only_outside);
  suite_add_tcase(s, basic);

  tcase_add_test(order, test_spawned_run_first_in_order);
  tcase_add_test(order, test_yield_runs_all_runnable_first);
  tcase_add_test(order, test_exit_hands_off_to_woken);
  tcase_add_test(order, test_woken_actors_take_turns);
  tcase_add_test(order, test_spawn_tree_live_set_bounded);
  tcase_add_test(order, test_spawn_chain_cannot_starve_runnable);
  tcase_add_test(order, test_spawn_chain_cannot_starve_sibling);
  suite_add_tcase(s, order);

  tcase_add_test(opts, test_spawn_opts_inside);
  tcase_add_test(opts, test_spawn_opts_outside);
  suite_add_tcase(s, opts);

  tcase_set_timeout(scale, 120);
  tcase_add_test(scale, test_100k_spawn_exit);
  tcase_add_test(scale, test_100k_blocked_in_recv);
  suite_add_tcase(s, scale);

  tcase_add_test(ledger, test_defer_on_return);
  tcase_add_test(ledger, test_defer_on_exit_error);
  tcase_add_test(ledger, test_defer_on_kill);
  tcase_add_test(ledger, test_arena);
  suite_add_tcase(s, ledger);
  return s;
}

TR_TEST_MAIN(suite_actor)
