/*
 * Multi-core: several schedulers (threads), actors pinned to the one they
 * were placed on, and everything across schedulers as within one:
 * placement, messages (per-pair order), links, monitors, exit signals,
 * call/reply, registry, timers, supervisors, stop, deadlock detection,
 * embedded mode — and the stress tests: 8 senders on different schedulers
 * x 1,000,000 messages to one receiver, and link/monitor storms while
 * actors crash.
 *
 * Every test builds its runtime with an explicit number of schedulers, so
 * the suite means the same whatever TR_SCHEDULERS says. State shared
 * between actors of different schedulers is atomic.
 */
#include <stdatomic.h>
#include <stdint.h>

#include "testutil.h"

#define WAIT_MS 10000

/* Message count per sender in the N:1 stress test (TR_MULTI_MSGS overrides;
 * the sanitizer builds run fewer). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STRESS_MSGS_DEFAULT 100000
#else
#define STRESS_MSGS_DEFAULT 1000000
#endif

/* A SEGV the compiler cannot see coming. Not instrumented by TSan, which
 * would otherwise record the faulting store to address 8 from several
 * threads as a race. */
static int *volatile bad_ptr = (int *)(uintptr_t)8;
#if defined(__SANITIZE_THREAD__)
__attribute__((no_sanitize_thread))
#endif
static void segv(void) { *bad_ptr = 1; }

static tr_runtime_t *new_rt(unsigned nsched, int placement) {
  tr_runtime_t *rt = NULL;
  tr_config_t cfg;
  tr_config_init(&cfg);
  cfg.schedulers = nsched;
  cfg.placement = placement;
  TR_OK(tr_runtime_new(&rt, &cfg));
  ck_assert_uint_eq(tr_runtime_scheduler_count(rt), nsched);
  return rt;
}

static tr_spawn_opts_t on_sched(unsigned id) {
  tr_spawn_opts_t o;
  tr_spawn_opts_init(&o);
  o.placement = TR_PLACE_SCHED(id);
  return o;
}

/* Spawns fn(arg) on scheduler id from an actor or host code. */
static tr_pid_t spawn_on(tr_runtime_t *rt, unsigned id, tr_actor_fn fn, void *arg) {
  tr_spawn_opts_t o = on_sched(id);
  tr_pid_t pid = TR_PID_NONE;
  TR_OK(tr_spawn(rt, fn, arg, &o, &pid));
  ck_assert_uint_eq(tr_pid_scheduler(pid), id);
  return pid;
}

static void run_main(unsigned nsched, tr_actor_fn fn, void *arg) {
  tr_runtime_t *rt = new_rt(nsched, TR_PLACE_LOCAL);
  TR_OK(tr_spawn(rt, fn, arg, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}

static uint64_t msg_u64(const tr_msg_t *m, uint32_t i) {
  const msgpack_object *o = tr_msg_obj(m);
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_gt(o->via.array.size, i);
  return o->via.array.ptr[i].via.u64;
}

static tr_msg_t *recv_tag(const char *tag) {
  tr_msg_t *m = NULL;
  TR_OK(tr_recv_tag(&m, tag, WAIT_MS));
  return m;
}

static int match_kind(const tr_msg_t *m, void *arg) {
  return tr_msg_kind(m) == *(tr_msg_kind_t *)arg;
}

/* The first message of that kind (others stay queued). */
static tr_msg_t *recv_kind(tr_msg_kind_t kind) {
  tr_msg_t *m = NULL;
  TR_OK(tr_recv_match(&m, match_kind, &kind, WAIT_MS));
  return m;
}

/* ------------------------------------------------------------------------ */
/* Configuration and placement                                              */
/* ------------------------------------------------------------------------ */

START_TEST(test_config) {
  tr_runtime_t *rt = (tr_runtime_t *)1;
  tr_config_t cfg;
  tr_config_init(&cfg);
  cfg.schedulers = TR_SCHEDULERS_MAX + 1;
  ck_assert_int_eq(tr_runtime_new(&rt, &cfg), TR_EINVAL);
  ck_assert_ptr_null(rt);
  tr_config_init(&cfg);
  cfg.placement = TR_PLACE_SCHED(2);
  cfg.schedulers = 2;
  ck_assert_int_eq(tr_runtime_new(&rt, &cfg), TR_EINVAL);
  cfg.placement = 99;
  ck_assert_int_eq(tr_runtime_new(&rt, &cfg), TR_EINVAL);
  cfg.placement = TR_PLACE_SCHED(1);
  TR_OK(tr_runtime_new(&rt, &cfg));
  ck_assert_uint_eq(tr_runtime_scheduler_count(rt), 2);
  ck_assert_int_eq(tr_sched_self(), 0); /* host code: scheduler 0 */
  TR_OK(tr_runtime_free(rt));
  ck_assert_uint_eq(tr_runtime_scheduler_count(NULL), 0);
  ck_assert_int_eq(tr_sched_self(), -1);
  /* Many threads come and go cleanly. */
  rt = new_rt(TR_SCHEDULERS_MAX, TR_PLACE_LOCAL);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

static _Atomic int where[16];

static void report_sched(void *arg) {
  atomic_store(&where[(intptr_t)arg], tr_sched_self());
}

START_TEST(test_placement_from_host) {
  tr_runtime_t *rt = new_rt(4, TR_PLACE_LOCAL);
  tr_spawn_opts_t o;
  tr_pid_t p[8];
  for (int i = 0; i < 16; i++) atomic_store(&where[i], -1);
  /* Explicit. */
  for (int i = 0; i < 4; i++) p[i] = spawn_on(rt, (unsigned)i, report_sched, (void *)(intptr_t)i);
  o = on_sched(4);
  ck_assert_int_eq(tr_spawn(rt, report_sched, NULL, &o, NULL), TR_EINVAL);
  o.placement = -5;
  ck_assert_int_eq(tr_spawn(rt, report_sched, NULL, &o, NULL), TR_EINVAL);
  /* Local (the default here): scheduler 0 for host code. */
  TR_OK(tr_spawn(rt, report_sched, (void *)4, NULL, &p[4]));
  ck_assert_uint_eq(tr_pid_scheduler(p[4]), 0);
  /* Round-robin visits every scheduler. */
  tr_spawn_opts_init(&o);
  o.placement = TR_PLACE_ROUND_ROBIN;
  {
    int seen[4] = {0};
    for (int i = 0; i < 8; i++) {
      tr_pid_t q;
      TR_OK(tr_spawn(rt, report_sched, (void *)(intptr_t)(8 + i % 4), &o, &q));
      seen[tr_pid_scheduler(q)]++;
    }
    for (int i = 0; i < 4; i++) ck_assert_int_eq(seen[i], 2);
  }
  /* Nothing ran yet: the threads are parked outside tr_runtime_run. */
  for (int i = 0; i < 4; i++) ck_assert_int_eq(atomic_load(&where[i]), -1);
  for (int i = 0; i < 4; i++) ck_assert(tr_is_alive(p[i]));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 13);
  TR_OK(tr_runtime_run(rt));
  for (int i = 0; i < 4; i++) ck_assert_int_eq(atomic_load(&where[i]), i);
  ck_assert_int_eq(atomic_load(&where[4]), 0);
  for (int i = 0; i < 4; i++) ck_assert(!tr_is_alive(p[i]));
  TR_OK(tr_runtime_free(rt));
}
END_TEST

static void idle_recv(void *arg) {
  tr_msg_t *m;
  (void)arg;
  if (tr_recv(&m, -1) == 0) tr_msg_free(m);
}

static void least_loaded_main(void *arg) {
  tr_spawn_opts_t o;
  tr_pid_t blockers[6], p;
  (void)arg;
  /* Load schedulers 0 and 1; 2 is the least loaded. */
  for (int i = 0; i < 6; i++)
    blockers[i] = spawn_on(NULL, (unsigned)(i % 2), idle_recv, NULL);
  tr_spawn_opts_init(&o);
  o.placement = TR_PLACE_LEAST_LOADED;
  TR_OK(tr_spawn(NULL, idle_recv, NULL, &o, &p));
  ck_assert_uint_eq(tr_pid_scheduler(p), 2);
  ck_assert_int_eq(tr_sched_self(), 0);
  TR_OK(tr_send_tagged(p, "go", NULL));
  for (int i = 0; i < 6; i++) TR_OK(tr_send_tagged(blockers[i], "go", NULL));
}

START_TEST(test_placement_least_loaded) { run_main(3, least_loaded_main, NULL); }
END_TEST

/* The runtime default applies to spawns that ask for TR_PLACE_DEFAULT. */
static void default_rr_main(void *arg) {
  int seen[3] = {0};
  (void)arg;
  for (int i = 0; i < 9; i++) {
    tr_pid_t p;
    TR_OK(tr_spawn(NULL, idle_recv, NULL, NULL, &p));
    seen[tr_pid_scheduler(p)]++;
    TR_OK(tr_send_tagged(p, "go", NULL));
  }
  for (int i = 0; i < 3; i++) ck_assert_int_eq(seen[i], 3);
}

START_TEST(test_placement_default_round_robin) {
  tr_runtime_t *rt = new_rt(3, TR_PLACE_ROUND_ROBIN);
  TR_OK(tr_spawn(rt, default_rr_main, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

/* Keeps the CPU for us microseconds, as an actor doing real work would. */
static void burn_us(unsigned us) {
  double end = tr_test_now_ms() + us / 1000.0;
  while (tr_test_now_ms() < end) {
  }
}

/* Echoes every message to its sender until "quit"; arg, if not NULL,
 * points to the microseconds of work each message takes first. */
static void echo_loop(void *arg) {
  unsigned work_us = arg ? *(const unsigned *)arg : 0;
  tr_msg_t *m;
  for (;;) {
    size_t len;
    const void *d;
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_is_tag(m, "quit")) {
      tr_msg_free(m);
      return;
    }
    d = tr_msg_data(m, &len);
    if (work_us) burn_us(work_us);
    TR_OK(tr_send(tr_msg_from(m), d, len));
    tr_msg_free(m);
  }
}

static void ping_main(void *arg) {
  tr_pid_t e = spawn_on(NULL, 1, echo_loop, NULL);
  (void)arg;
  for (uint64_t i = 0; i < 20000; i++) {
    tr_msg_t *m;
    TR_OK(tr_send_tagged(e, "ping", "u", i));
    TR_OK(tr_recv(&m, WAIT_MS));
    ck_assert(tr_msg_is_tag(m, "ping"));
    ck_assert_uint_eq(msg_u64(m, 1), i);
    ck_assert_uint_eq(tr_msg_from(m), e);
    tr_msg_free(m);
  }
  TR_OK(tr_send_tagged(e, "quit", NULL));
}

START_TEST(test_ping_pong_across) { run_main(2, ping_main, NULL); }
END_TEST

/* From host code to an actor of a parked scheduler: delivered when the
 * runtime runs. Sends to stale pids of other schedulers are no-ops. */
static _Atomic int host_got;

static void host_receiver(void *arg) {
  tr_msg_t *m;
  (void)arg;
  for (int i = 0; i < 3; i++) {
    TR_OK(tr_recv(&m, WAIT_MS));
    ck_assert_uint_eq(msg_u64(m, 1), (uint64_t)i);
    tr_msg_free(m);
    atomic_fetch_add(&host_got, 1);
  }
}

START_TEST(test_host_send_across) {
  tr_runtime_t *rt = new_rt(2, TR_PLACE_LOCAL);
  tr_pid_t p = spawn_on(rt, 1, host_receiver, NULL);
  void *d;
  size_t len;
  atomic_store(&host_got, 0);
  for (uint64_t i = 0; i < 3; i++) {
    TR_OK(tr_pack_tagged(&d, &len, "n", "u", i));
    TR_OK(tr_runtime_send(rt, p, d, len));
    free(d);
  }
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(atomic_load(&host_got), 3);
  TR_OK(tr_pack_tagged(&d, &len, "n", "u", 0));
  TR_OK(tr_runtime_send(rt, p, d, len)); /* stale: no-op */
  TR_OK(tr_runtime_send(rt, (tr_pid_t)0x7f000001u, d, len)); /* no such sched */
  free(d);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Spawn across, with link and monitor                                      */
/* ------------------------------------------------------------------------ */

static void exit_with(void *arg) {
  tr_msg_t *m;
  TR_OK(tr_recv(&m, WAIT_MS));
  tr_msg_free(m);
  tr_exit((tr_reason_kind_t)(intptr_t)arg);
}

static void spawn_across_main(void *arg) {
  tr_spawn_opts_t o = on_sched(1);
  tr_pid_t c;
  tr_ref_t ref = 0;
  tr_msg_t *m;
  tr_reason_t r;
  (void)arg;
  tr_trap_exit(1);
  o.flags = TR_SPAWN_LINK | TR_SPAWN_MONITOR;
  o.monitor_ref = &ref;
  o.name = "across_child";
  TR_OK(tr_spawn(NULL, exit_with, (void *)(intptr_t)TR_REASON_SHUTDOWN, &o, &c));
  ck_assert_uint_eq(tr_pid_scheduler(c), 1);
  ck_assert_uint_ne(ref, 0);
  ck_assert(tr_is_alive(c));
  {
    tr_pid_t w;
    TR_OK(tr_whereis("across_child", &w));
    ck_assert_uint_eq(w, c);
  }
  /* Taken name: nothing starts. */
  ck_assert_int_eq(tr_spawn(NULL, exit_with, NULL, &o, NULL), TR_EEXIST);
  TR_OK(tr_send_tagged(c, "go", NULL));
  m = recv_kind(TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  ck_assert_uint_eq(tr_msg_from(m), c);
  TR_OK(tr_msg_reason(m, &r));
  ck_assert_int_eq(r.kind, TR_REASON_SHUTDOWN);
  tr_msg_free(m);
  m = recv_kind(TR_MSG_EXIT);
  ck_assert_uint_eq(tr_msg_from(m), c);
  TR_OK(tr_msg_reason(m, &r));
  ck_assert_int_eq(r.kind, TR_REASON_SHUTDOWN);
  tr_msg_free(m);
  ck_assert(!tr_is_alive(c));
  {
    tr_pid_t w;
    ck_assert_int_eq(tr_whereis("across_child", &w), TR_ENOENT);
  }
}

START_TEST(test_spawn_link_monitor_across) { run_main(2, spawn_across_main, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Links and exit signals                                                   */
/* ------------------------------------------------------------------------ */

static void link_main(void *arg) {
  tr_pid_t a, dead;
  tr_msg_t *m;
  tr_reason_t r;
  tr_ref_t ref;
  (void)arg;
  tr_trap_exit(1);
  /* A dead pid of another scheduler: noproc. */
  dead = spawn_on(NULL, 1, exit_with, (void *)(intptr_t)TR_REASON_NORMAL);
  TR_OK(tr_monitor(dead, &ref));
  TR_OK(tr_send_tagged(dead, "go", NULL));
  tr_msg_free(recv_kind(TR_MSG_DOWN));
  TR_OK(tr_link(dead));
  m = recv_kind(TR_MSG_EXIT);
  ck_assert_uint_eq(tr_msg_from(m), dead);
  TR_OK(tr_msg_reason(m, &r));
  ck_assert_int_eq(r.kind, TR_REASON_NOPROC);
  tr_msg_free(m);
  /* A live one: its exit reason comes back along the link. */
  a = spawn_on(NULL, 1, exit_with, (void *)(intptr_t)TR_REASON_SHUTDOWN);
  TR_OK(tr_link(a));
  TR_OK(tr_link(a)); /* idempotent */
  TR_OK(tr_send_tagged(a, "go", NULL));
  m = recv_kind(TR_MSG_EXIT);
  ck_assert_uint_eq(tr_msg_from(m), a);
  TR_OK(tr_msg_reason(m, &r));
  ck_assert_int_eq(r.kind, TR_REASON_SHUTDOWN);
  tr_msg_free(m);
  /* Unlinked: no EXIT. */
  a = spawn_on(NULL, 1, exit_with, (void *)(intptr_t)TR_REASON_SHUTDOWN);
  TR_OK(tr_link(a));
  TR_OK(tr_unlink(a));
  TR_OK(tr_monitor(a, &ref));
  TR_OK(tr_send_tagged(a, "go", NULL));
  tr_msg_free(recv_kind(TR_MSG_DOWN));
  ck_assert_int_eq(tr_recv(&m, 50), TR_ETIMEDOUT);
}

START_TEST(test_links_across) { run_main(2, link_main, NULL); }
END_TEST

/* Exit signals: kill is untrappable; normal ignored unless trapping; our
 * death along a link kills a non-trapping peer on another scheduler. */
/* arg: the pid told "ready" once the trapper traps exits (an EXIT that
 * came before would be a normal exit of a non-trapping actor: ignored). */
static void trapper(void *arg) {
  tr_msg_t *m;
  tr_trap_exit(1);
  TR_OK(tr_send_tagged((tr_pid_t)(uintptr_t)arg, "ready", NULL));
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_kind(m) == TR_MSG_EXIT) {
      tr_reason_t r;
      TR_OK(tr_msg_reason(m, &r));
      TR_OK(tr_send_tagged(tr_msg_from(m) ? tr_msg_from(m) : TR_PID_NONE, "x", NULL));
    }
    tr_msg_free(m);
  }
}

static void blocked_forever(void *arg) {
  tr_msg_t *m;
  (void)arg;
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    tr_msg_free(m);
  }
}

static void linked_then_dies(void *arg) {
  tr_pid_t peer = (tr_pid_t)(uintptr_t)arg;
  tr_msg_t *m;
  TR_OK(tr_link(peer));
  TR_OK(tr_recv(&m, WAIT_MS));
  tr_msg_free(m);
  tr_exit_error(7, "boom");
}

static void exit_main(void *arg) {
  tr_pid_t t, b, l;
  tr_ref_t rt_, rb, rl;
  tr_msg_t *m;
  tr_reason_t r;
  (void)arg;
  t = spawn_on(NULL, 1, trapper, (void *)(uintptr_t)tr_self());
  TR_OK(tr_monitor(t, &rt_));
  tr_msg_free(recv_tag("ready"));
  TR_OK(tr_exit_pid(NULL, t, TR_REASON_NORMAL)); /* an EXIT for a trapper */
  m = recv_tag("x");
  ck_assert_uint_eq(tr_msg_from(m), t);
  tr_msg_free(m);
  TR_OK(tr_exit_pid(NULL, t, TR_REASON_KILL));
  m = recv_kind(TR_MSG_DOWN);
  TR_OK(tr_msg_reason(m, &r));
  ck_assert_int_eq(r.kind, TR_REASON_KILLED);
  tr_msg_free(m);
  /* A link across: b dies with l's reason. */
  b = spawn_on(NULL, 1, blocked_forever, NULL);
  TR_OK(tr_monitor(b, &rb));
  l = spawn_on(NULL, 0, linked_then_dies, (void *)(uintptr_t)b);
  TR_OK(tr_monitor(l, &rl));
  TR_OK(tr_yield()); /* l links */
  TR_OK(tr_send_tagged(l, "die", NULL));
  for (int i = 0; i < 2; i++) {
    m = recv_kind(TR_MSG_DOWN);
    TR_OK(tr_msg_reason(m, &r));
    ck_assert_int_eq(r.kind, TR_REASON_ERROR);
    ck_assert_int_eq(r.code, 7);
    tr_msg_free(m);
  }
}

START_TEST(test_exit_signals_across) { run_main(2, exit_main, NULL); }
END_TEST

/* From host code: a kill of another scheduler's actor takes effect before
 * tr_exit_pid returns, as locally. */
START_TEST(test_exit_pid_from_host) {
  tr_runtime_t *rt = new_rt(2, TR_PLACE_LOCAL);
  tr_pid_t a = spawn_on(rt, 1, blocked_forever, NULL);
  tr_pid_t b = spawn_on(rt, 1, blocked_forever, NULL);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 2);
  TR_OK(tr_exit_pid(rt, a, TR_REASON_KILL));
  ck_assert(!tr_is_alive(a));
  ck_assert(tr_is_alive(b));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 1);
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  TR_OK(tr_exit_pid(rt, b, TR_REASON_SHUTDOWN));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Monitors                                                                 */
/* ------------------------------------------------------------------------ */

static void monitor_main(void *arg) {
  tr_pid_t a;
  tr_ref_t r1, r2, r3;
  tr_msg_t *m;
  tr_reason_t why;
  (void)arg;
  a = spawn_on(NULL, 1, exit_with, (void *)(intptr_t)TR_REASON_SHUTDOWN);
  TR_OK(tr_monitor(a, &r1));
  TR_OK(tr_monitor(a, &r2));
  TR_OK(tr_monitor(a, &r3));
  ck_assert_uint_ne(r1, r2);
  TR_OK(tr_demonitor(r2, 0));
  TR_OK(tr_send_tagged(a, "go", NULL));
  for (int i = 0; i < 2; i++) {
    m = recv_kind(TR_MSG_DOWN);
    ck_assert(tr_msg_ref(m) == r1 || tr_msg_ref(m) == r3);
    ck_assert_uint_eq(tr_msg_from(m), a);
    TR_OK(tr_msg_reason(m, &why));
    ck_assert_int_eq(why.kind, TR_REASON_SHUTDOWN);
    tr_msg_free(m);
  }
  ck_assert_int_eq(tr_recv(&m, 50), TR_ETIMEDOUT); /* none for r2 */
  /* Dead already: noproc at once. */
  TR_OK(tr_monitor(a, &r1));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  TR_OK(tr_msg_reason(m, &why));
  ck_assert_int_eq(why.kind, TR_REASON_NOPROC);
  tr_msg_free(m);
  /* A demonitor with flush after the DOWN was sent leaves nothing. */
  a = spawn_on(NULL, 1, exit_with, (void *)(intptr_t)TR_REASON_NORMAL);
  TR_OK(tr_monitor(a, &r1));
  TR_OK(tr_monitor(a, &r2));
  TR_OK(tr_send_tagged(a, "go", NULL));
  m = recv_kind(TR_MSG_DOWN); /* one of them */
  TR_OK(tr_demonitor(tr_msg_ref(m) == r1 ? r2 : r1, TR_DEMONITOR_FLUSH));
  tr_msg_free(m);
  ck_assert_int_eq(tr_recv(&m, 50), TR_ETIMEDOUT);
}

START_TEST(test_monitors_across) { run_main(2, monitor_main, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* call / reply                                                             */
/* ------------------------------------------------------------------------ */

static void adder(void *arg) {
  tr_msg_t *m;
  (void)arg;
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_kind(m) == TR_MSG_CALL) {
      uint64_t x = msg_u64(m, 1);
      if (x == 999999) {
        tr_msg_free(m);
        tr_exit(TR_REASON_SHUTDOWN); /* dies without answering */
      }
      void *d;
      size_t len;
      TR_OK(tr_pack_tagged(&d, &len, "sum", "u", x + 1));
      TR_OK(tr_reply(m, d, len));
      free(d);
    }
    tr_msg_free(m);
  }
}

static void call_main(void *arg) {
  tr_pid_t s = spawn_on(NULL, 1, adder, NULL);
  tr_msg_t *reply;
  tr_reason_t why;
  void *d;
  size_t len;
  (void)arg;
  for (uint64_t i = 0; i < 2000; i++) {
    TR_OK(tr_pack_tagged(&d, &len, "add", "u", i));
    TR_OK(tr_call(s, d, len, &reply, WAIT_MS, NULL));
    free(d);
    ck_assert_uint_eq(msg_u64(reply, 1), i + 1);
    ck_assert_uint_eq(tr_msg_from(reply), s);
    tr_msg_free(reply);
  }
  ck_assert_uint_eq(tr_mailbox_len(), 0); /* monitors' DOWNs all flushed */
  TR_OK(tr_pack_tagged(&d, &len, "add", "u", 999999));
  ck_assert_int_eq(tr_call(s, d, len, &reply, WAIT_MS, &why), TR_EDOWN);
  ck_assert_int_eq(why.kind, TR_REASON_SHUTDOWN);
  /* Dead server: at once, noproc. */
  ck_assert_int_eq(tr_call(s, d, len, &reply, WAIT_MS, &why), TR_EDOWN);
  ck_assert_int_eq(why.kind, TR_REASON_NOPROC);
  free(d);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_call_across) { run_main(2, call_main, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */
/* ------------------------------------------------------------------------ */

static void registry_main(void *arg) {
  tr_pid_t a, b, w;
  tr_ref_t ref;
  (void)arg;
  a = spawn_on(NULL, 1, exit_with, (void *)(intptr_t)TR_REASON_NORMAL);
  b = spawn_on(NULL, 2, blocked_forever, NULL);
  TR_OK(tr_register("remote_a", a));
  ck_assert_int_eq(tr_register("remote_a", b), TR_EEXIST);
  ck_assert_int_eq(tr_register("other", a), TR_ENAMED);
  TR_OK(tr_whereis("remote_a", &w));
  ck_assert_uint_eq(w, a);
  TR_OK(tr_send_named("remote_a", "\x90", 1)); /* wakes a: it exits */
  TR_OK(tr_monitor(a, &ref));
  tr_msg_free(recv_kind(TR_MSG_DOWN));
  /* The name went with its actor, on a's own thread. */
  ck_assert_int_eq(tr_whereis("remote_a", &w), TR_ENOENT);
  ck_assert_int_eq(tr_register("x", a), TR_ENOPROC);
  TR_OK(tr_register("remote_a", b));
  TR_OK(tr_unregister("remote_a"));
  TR_OK(tr_register("remote_b", b));
  TR_OK(tr_exit_pid(NULL, b, TR_REASON_KILL));
  TR_OK(tr_monitor(b, &ref));
  tr_msg_free(recv_kind(TR_MSG_DOWN));
  ck_assert_int_eq(tr_whereis("remote_b", &w), TR_ENOENT);
}

START_TEST(test_registry_across) { run_main(3, registry_main, NULL); }
END_TEST

/* Many actors on many schedulers register and race for names. */
static _Atomic int names_won;

static void name_racer(void *arg) {
  char name[32];
  snprintf(name, sizeof(name), "race%d", (int)(intptr_t)arg % 10);
  if (tr_register(name, tr_self()) == 0) {
    atomic_fetch_add(&names_won, 1);
    tr_sleep(5); /* keep it a while so the others see it taken */
  }
}

START_TEST(test_registry_race) {
  tr_runtime_t *rt = new_rt(4, TR_PLACE_ROUND_ROBIN);
  atomic_store(&names_won, 0);
  for (intptr_t i = 0; i < 400; i++)
    TR_OK(tr_spawn(rt, name_racer, (void *)i, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  /* At least one winner per name, never two at once (each name is held
   * for 5 ms by its winner; later rounds may win again). */
  ck_assert_int_ge(atomic_load(&names_won), 10);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Timers                                                                   */
/* ------------------------------------------------------------------------ */

static void timer_target(void *arg) {
  tr_msg_t *m;
  tr_pid_t boss = (tr_pid_t)(uintptr_t)arg;
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_kind(m) == TR_MSG_TIMER) {
      TR_OK(tr_send_tagged(boss, "fired", "u", tr_msg_ref(m)));
    } else if (tr_msg_is_tag(m, "quit")) {
      tr_msg_free(m);
      return;
    }
    tr_msg_free(m);
  }
}

static void timer_main(void *arg) {
  tr_pid_t t = spawn_on(NULL, 1, timer_target, (void *)(uintptr_t)tr_self());
  tr_ref_t r1, r2, r3;
  tr_msg_t *m;
  (void)arg;
  TR_OK(tr_send_after(t, 10, "\xa1x", 2, &r1));
  TR_OK(tr_send_after(t, 2000, "\xa1y", 2, &r2));
  ck_assert_uint_ne(r1, 0);
  m = recv_tag("fired");
  ck_assert_uint_eq(msg_u64(m, 1), r1);
  tr_msg_free(m);
  ck_assert_int_eq(tr_cancel_timer(r1), TR_ENOENT); /* fired */
  TR_OK(tr_cancel_timer(r2));                      /* from another scheduler */
  ck_assert_int_eq(tr_cancel_timer(r2), TR_ENOENT);
  /* Cancelled with its target. */
  TR_OK(tr_send_after(t, 2000, "\xa1z", 2, &r3));
  TR_OK(tr_send_tagged(t, "quit", NULL));
  {
    tr_ref_t mon;
    TR_OK(tr_monitor(t, &mon));
    tr_msg_free(recv_kind(TR_MSG_DOWN));
  }
  ck_assert_int_eq(tr_cancel_timer(r3), TR_ENOENT);
  /* A dead target: no timer at all. */
  TR_OK(tr_send_after(t, 10, "\xa1z", 2, &r3));
  ck_assert_uint_eq(r3, 0);
}

START_TEST(test_timers_across) { run_main(2, timer_main, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Supervisors across schedulers                                            */
/* ------------------------------------------------------------------------ */

static _Atomic int sup_starts;
static _Atomic int sup_scheds_seen;

static void sup_worker(void *arg) {
  tr_msg_t *m;
  (void)arg;
  atomic_fetch_add(&sup_starts, 1);
  atomic_fetch_or(&sup_scheds_seen, 1 << tr_sched_self());
  TR_OK(tr_sup_init_ack(TR_INIT_OK));
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_is_tag(m, "crash")) segv();
    tr_msg_free(m);
  }
}

static void sup_main(void *arg) {
  tr_child_spec_t specs[4];
  tr_sup_flags_t f;
  tr_sup_child_info_t info[4];
  size_t n;
  tr_pid_t sup;
  (void)arg;
  tr_sup_flags_init(&f);
  f.intensity = 10;
  for (int i = 0; i < 4; i++) {
    char id[8];
    snprintf(id, sizeof(id), "w%d", i);
    TR_OK(tr_child_spec_init(&specs[i], id, sup_worker, NULL));
  }
  TR_OK(tr_sup_start_link(&f, specs, 4, &sup, NULL));
  ck_assert_int_eq(atomic_load(&sup_starts), 4);
  TR_OK(tr_sup_which_children(sup, info, 4, &n));
  ck_assert_uint_eq(n, 4);
  /* Crash each one (children live on several schedulers): all restart. */
  for (int i = 0; i < 4; i++) TR_OK(tr_send_tagged(info[i].pid, "crash", NULL));
  while (atomic_load(&sup_starts) < 8) tr_sleep(1);
  TR_OK(tr_sup_which_children(sup, info, 4, &n));
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(info[i].state, TR_CHILD_RUNNING);
    ck_assert_uint_eq(info[i].restarts, 1);
    ck_assert_int_eq(info[i].last_exit.kind, TR_REASON_SEGV);
  }
  TR_OK(tr_sup_stop(sup));
  ck_assert(!tr_is_alive(sup));
  for (int i = 0; i < 4; i++) ck_assert(!tr_is_alive(info[i].pid));
}

START_TEST(test_supervisor_across) {
  tr_runtime_t *rt = new_rt(3, TR_PLACE_ROUND_ROBIN);
  atomic_store(&sup_starts, 0);
  atomic_store(&sup_scheds_seen, 0);
  TR_OK(tr_spawn(rt, sup_main, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_gt(__builtin_popcount((unsigned)atomic_load(&sup_scheds_seen)), 1);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Run, stop, deadlock, free                                                */
/* ------------------------------------------------------------------------ */

START_TEST(test_deadlock_across) {
  tr_runtime_t *rt = new_rt(3, TR_PLACE_ROUND_ROBIN);
  tr_pid_t p[6];
  void *quit;
  size_t qlen;
  for (int i = 0; i < 6; i++) TR_OK(tr_spawn(rt, idle_recv, NULL, NULL, &p[i]));
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 6);
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  TR_OK(tr_pack_tagged(&quit, &qlen, "quit", NULL));
  for (int i = 0; i < 5; i++) TR_OK(tr_runtime_send(rt, p[i], quit, qlen));
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 1);
  TR_OK(tr_runtime_send(rt, p[5], quit, qlen));
  TR_OK(tr_runtime_run(rt));
  free(quit);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* A sleeper on another scheduler is not a deadlock. */
static void sleepy(void *arg) {
  (void)arg;
  TR_OK(tr_sleep(30));
}

START_TEST(test_no_false_deadlock) {
  tr_runtime_t *rt = new_rt(2, TR_PLACE_LOCAL);
  spawn_on(rt, 1, sleepy, NULL);
  TR_OK(tr_spawn(rt, idle_recv, NULL, NULL, NULL));
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK); /* after the sleeper */
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 1);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

static _Atomic int stopped_by_shutdown;

static void top_trapper(void *arg) {
  tr_msg_t *m;
  (void)arg;
  tr_trap_exit(1);
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_kind(m) == TR_MSG_EXIT) {
      tr_reason_t r;
      TR_OK(tr_msg_reason(m, &r));
      if (r.kind == TR_REASON_SHUTDOWN) atomic_fetch_add(&stopped_by_shutdown, 1);
      tr_msg_free(m);
      return;
    }
    tr_msg_free(m);
  }
}

static void stopper(void *arg) {
  tr_runtime_t *rt = arg;
  TR_OK(tr_sleep(5));
  TR_OK(tr_runtime_stop(rt));
}

START_TEST(test_stop_across) {
  tr_runtime_t *rt = new_rt(3, TR_PLACE_ROUND_ROBIN);
  atomic_store(&stopped_by_shutdown, 0);
  for (int i = 0; i < 6; i++) TR_OK(tr_spawn(rt, top_trapper, NULL, NULL, NULL));
  /* Non-top-level stragglers are killed once the top-level ones are gone. */
  for (int i = 0; i < 3; i++) spawn_on(rt, (unsigned)i, blocked_forever, NULL);
  TR_OK(tr_spawn(rt, stopper, rt, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(atomic_load(&stopped_by_shutdown), 6);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  ck_assert_int_eq(tr_spawn(rt, idle_recv, NULL, NULL, NULL), TR_ESTOPPED);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

START_TEST(test_stop_from_host_across) {
  tr_runtime_t *rt = new_rt(2, TR_PLACE_LOCAL);
  tr_pid_t a = spawn_on(rt, 1, blocked_forever, NULL);
  tr_pid_t b = spawn_on(rt, 0, blocked_forever, NULL);
  TR_OK(tr_runtime_stop(rt)); /* both are top-level: killed by shutdown now */
  ck_assert(!tr_is_alive(a));
  ck_assert(!tr_is_alive(b));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* Freed while actors on every scheduler are blocked or runnable. */
static void spinner(void *arg) {
  (void)arg;
  for (;;) TR_OK(tr_yield());
}

static void free_tester(void *arg) {
  char *buf = malloc(64);
  (void)arg;
  TR_OK(tr_defer(free, buf));
  blocked_forever(NULL);
}

START_TEST(test_free_with_live_actors) {
  tr_runtime_t *rt = new_rt(4, TR_PLACE_ROUND_ROBIN);
  for (int i = 0; i < 40; i++) TR_OK(tr_spawn(rt, free_tester, NULL, NULL, NULL));
  TR_OK(tr_runtime_free(rt));
  rt = new_rt(2, TR_PLACE_LOCAL);
  for (int i = 0; i < 4; i++) TR_OK(tr_spawn(rt, free_tester, NULL, NULL, NULL));
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  TR_OK(tr_runtime_free(rt));
  (void)spinner;
}
END_TEST

/* A crash on one scheduler leaves the others running. */
static void crash_now(void *arg) {
  (void)arg;
  segv();
}

static void crash_main(void *arg) {
  tr_pid_t e = spawn_on(NULL, 2, echo_loop, NULL);
  tr_msg_t *m;
  (void)arg;
  for (int i = 0; i < 30; i++) {
    tr_pid_t c;
    tr_ref_t ref;
    tr_spawn_opts_t o = on_sched((unsigned)(i % 2));
    tr_reason_t r;
    o.flags = TR_SPAWN_MONITOR;
    o.monitor_ref = &ref;
    TR_OK(tr_spawn(NULL, crash_now, NULL, &o, &c));
    m = recv_kind(TR_MSG_DOWN);
    TR_OK(tr_msg_reason(m, &r));
    ck_assert_int_eq(r.kind, TR_REASON_SEGV);
    tr_msg_free(m);
    TR_OK(tr_send_tagged(e, "p", "i", (int64_t)i));
    m = recv_tag("p");
    tr_msg_free(m);
  }
  TR_OK(tr_send_tagged(e, "quit", NULL));
}

START_TEST(test_crash_isolated) { run_main(3, crash_main, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Embedded: scheduler 0 on the host's loop, the rest on threads            */
/* ------------------------------------------------------------------------ */

static _Atomic int embed_done;

static void embed_main(void *arg) {
  (void)arg;
  ping_main(NULL);
  call_main(NULL);
  atomic_fetch_add(&embed_done, 1);
}

START_TEST(test_embedded_multi) {
  uv_loop_t loop;
  tr_runtime_t *rt = NULL;
  tr_config_t cfg;
  tr_spawn_opts_t o = on_sched(1);
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  tr_config_init(&cfg);
  cfg.schedulers = 3;
  TR_OK(tr_runtime_attach(&rt, &loop, &cfg));
  atomic_store(&embed_done, 0);
  TR_OK(tr_spawn(rt, embed_main, NULL, NULL, NULL));
  TR_OK(tr_spawn(rt, embed_main, NULL, &o, NULL));
  /* The host's loop returns once every actor everywhere is gone. */
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(atomic_load(&embed_done), 2);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* Actors the host spawns only on other schedulers keep the host's loop
 * alive too: uv_run returns once they are gone, not before. */
static void remote_sleeper(void *arg) {
  (void)arg;
  TR_OK(tr_sleep(100));
  atomic_fetch_add(&embed_done, 1);
}

START_TEST(test_embedded_remote_only) {
  uv_loop_t loop;
  tr_runtime_t *rt = NULL;
  tr_config_t cfg;
  tr_spawn_opts_t o = on_sched(1);
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  tr_config_init(&cfg);
  cfg.schedulers = 2;
  TR_OK(tr_runtime_attach(&rt, &loop, &cfg));
  atomic_store(&embed_done, 0);
  TR_OK(tr_spawn(rt, remote_sleeper, NULL, &o, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(atomic_load(&embed_done), 1);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  /* And again, now that the loop has run once. */
  TR_OK(tr_spawn(rt, remote_sleeper, NULL, &o, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(atomic_load(&embed_done), 2);
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Messages of every size across schedulers                                 */
/* ------------------------------------------------------------------------ */

/* Small messages travel inside the signal batches, their to and from left
 * out while a run goes to one receiver; big ones and tagged ones travel as
 * buffers of their own, in the same batches. Two senders on one scheduler
 * send to two receivers on the other, in runs of 5 per receiver, bodies
 * of every size from 0 to 300 bytes of payload and every 13th message
 * tagged. The receivers first take only the senders' "done" (each comes
 * after all of its sender's messages), so every batch was applied and
 * recycled while they held the rest: far more batches than a scheduler
 * keeps. Then every message must be there once, intact, in order. */
#define SIZES_MSGS 20000 /* per sender, a multiple of 10 */
#define SIZES_MAX 300

static struct {
  tr_pid_t rcv[2];
  _Atomic int errors;
  _Atomic int got[2];
} sizes;

static size_t sizes_payload(int id, uint32_t seq) {
  return (seq * 7u + (unsigned)id * 3u) % (SIZES_MAX + 1);
}

static unsigned char sizes_byte(int id, uint32_t seq, size_t i) {
  return (unsigned char)(id * 31 + seq * 7 + i);
}

/* [id, seq, bin] */
static size_t sizes_body(unsigned char *buf, int id, uint32_t seq) {
  size_t n = sizes_payload(id, seq), h = 0;
  buf[h++] = 0x93;
  buf[h++] = (unsigned char)id;
  buf[h++] = 0xce;
  for (int b = 3; b >= 0; b--) buf[h++] = (unsigned char)(seq >> (8 * b));
  if (n < 256) {
    buf[h++] = 0xc4;
    buf[h++] = (unsigned char)n;
  } else {
    buf[h++] = 0xc5;
    buf[h++] = (unsigned char)(n >> 8);
    buf[h++] = (unsigned char)n;
  }
  for (size_t i = 0; i < n; i++) buf[h + i] = sizes_byte(id, seq, i);
  return h + n;
}

static void sizes_sender(void *arg) {
  int id = (int)(intptr_t)arg;
  unsigned char buf[16 + SIZES_MAX];
  for (uint32_t seq = 0; seq < SIZES_MSGS; seq++) {
    tr_pid_t to = sizes.rcv[(seq / 5) & 1];
    int err = seq % 13 == 12
                  ? tr_send_tagged(to, "t", "iu", (int64_t)id, (uint64_t)seq)
                  : tr_send(to, buf, sizes_body(buf, id, seq));
    if (err != 0) atomic_fetch_add(&sizes.errors, 1);
    if ((seq & 255) == 255) tr_yield();
  }
  for (int r = 0; r < 2; r++)
    if (tr_send_tagged(sizes.rcv[r], "done", "i", (int64_t)id) != 0)
      atomic_fetch_add(&sizes.errors, 1);
}

/* 0 if m is message seq of sender id, intact (*id, *seq set). */
static int sizes_check(const tr_msg_t *m, int *id, uint32_t *seq) {
  const msgpack_object *o = tr_msg_obj(m), *f;
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3) return -1;
  f = o->via.array.ptr;
  if (f[0].type == MSGPACK_OBJECT_STR) { /* ["t", id, seq] */
    *id = (int)f[1].via.i64;
    *seq = (uint32_t)f[2].via.u64;
    return *seq % 13 == 12 && tr_msg_is_tag(m, "t") ? 0 : -1;
  }
  *id = (int)f[0].via.u64;
  *seq = (uint32_t)f[1].via.u64;
  if (*id < 0 || *id > 1 || f[2].type != MSGPACK_OBJECT_BIN ||
      f[2].via.bin.size != sizes_payload(*id, *seq) || *seq % 13 == 12)
    return -1;
  for (size_t i = 0; i < f[2].via.bin.size; i++)
    if ((unsigned char)f[2].via.bin.ptr[i] != sizes_byte(*id, *seq, i)) return -1;
  return 0;
}

static void sizes_receiver(void *arg) {
  int me = (int)(intptr_t)arg, n = 0;
  int64_t last[2] = {-1, -1};
  tr_msg_t *m;
  for (int i = 0; i < 2; i++) tr_msg_free(recv_tag("done"));
  while (tr_recv(&m, 0) == 0) {
    int id;
    uint32_t seq;
    if (sizes_check(m, &id, &seq) != 0 || (int64_t)seq <= last[id] ||
        (int)((seq / 5) & 1) != me || tr_msg_from(m) == TR_PID_NONE)
      atomic_fetch_add(&sizes.errors, 1);
    else
      last[id] = seq;
    n++;
    tr_msg_free(m);
  }
  atomic_store(&sizes.got[me], n);
}

START_TEST(test_message_sizes_across) {
  tr_runtime_t *rt = new_rt(2, TR_PLACE_LOCAL);
  memset(&sizes, 0, sizeof(sizes));
  for (int r = 0; r < 2; r++)
    sizes.rcv[r] = spawn_on(rt, 0, sizes_receiver, (void *)(intptr_t)r);
  for (int i = 0; i < 2; i++) spawn_on(rt, 1, sizes_sender, (void *)(intptr_t)i);
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(atomic_load(&sizes.errors), 0);
  /* Each receiver: half of each sender's messages. */
  ck_assert_int_eq(atomic_load(&sizes.got[0]), SIZES_MSGS);
  ck_assert_int_eq(atomic_load(&sizes.got[1]), SIZES_MSGS);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stress: 8 senders x N messages to one receiver                           */
/* ------------------------------------------------------------------------ */

#define NSENDERS 8
#define WINDOW 20000 /* messages a sender may be ahead of the receiver's ack */

typedef struct {
  tr_pid_t receiver;
  uint64_t msgs;
  _Atomic uint64_t got[NSENDERS];
  _Atomic int order_errors;
  _Atomic int foreign;
  _Atomic int sender_scheds;
  _Atomic int call_errors;
  int small; /* messages of 1 to 8 bytes, as most cross-scheduler traffic */
} stress_t;

static stress_t stress;

/* [id, seq] as a fixarray of two msgpack uints: seq as uint 64 (11 bytes
 * in all), or, in the small mode, in as few bytes as it fits (3 to 7) and
 * in 8 bytes every 61st message, an uint 64 every 97th (which ends a run of
 * one-word messages in the receiver's batch). Returns the length. */
static size_t stress_encode(unsigned char *buf, int id, uint64_t seq) {
  size_t n = 0, w;
  buf[n++] = 0x92;
  buf[n++] = (unsigned char)id;
  if (!stress.small || seq % 97 == 96) w = 8, buf[n++] = 0xcf;
  else if (seq % 61 == 60) w = 5, buf[0] = 0x93, buf[n++] = 0xc0; /* + nil */
  else if (seq < 0x80) w = 0;
  else if (seq < 0x100) w = 1, buf[n++] = 0xcc;
  else if (seq < 0x10000) w = 2, buf[n++] = 0xcd;
  else w = 4, buf[n++] = 0xce;
  if (w == 5) { /* [id, nil, seq] with seq as uint 32: 8 bytes */
    buf[n++] = 0xce;
    w = 4;
  }
  if (w == 0) buf[n++] = (unsigned char)seq;
  for (size_t b = w; b-- > 0;) buf[n++] = (unsigned char)(seq >> (8 * b));
  return n;
}

/* stress_encode's inverse: 0 if d (len bytes) is a message of sender *id
 * with sequence number *seq, -1 if it is not one. */
static int stress_decode(const unsigned char *d, size_t len, int *id,
                         uint64_t *seq) {
  size_t at = 2, w;
  unsigned char buf[16];
  if (len < 3 || len > 11 || (d[0] != 0x92 && d[0] != 0x93) ||
      d[1] >= NSENDERS)
    return -1;
  if (d[0] == 0x93 && (len < 4 || d[at++] != 0xc0)) return -1;
  switch (d[at]) {
  case 0xcc: w = 1; break;
  case 0xcd: w = 2; break;
  case 0xce: w = 4; break;
  case 0xcf: w = 8; break;
  default: w = 0; break;
  }
  if ((w == 0 && d[at] >= 0x80) || at + 1 + w > len) return -1;
  *seq = w == 0 ? d[at] : 0;
  for (size_t b = 0; b < w; b++) *seq = *seq << 8 | d[at + 1 + b];
  *id = d[1];
  /* exactly the bytes the sender would have written */
  return stress_encode(buf, *id, *seq) == len && memcmp(buf, d, len) == 0 ? 0 : -1;
}

static void stress_sender(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t acked = 0;
  atomic_fetch_or(&stress.sender_scheds, 1 << tr_sched_self());
  for (uint64_t seq = 0; seq < stress.msgs; seq++) {
    unsigned char buf[16];
    size_t n = stress_encode(buf, id, seq);
    /* No ck_assert in the hot loops: each one writes to Check's pipe. */
    if (tr_send(stress.receiver, buf, n) != 0) atomic_fetch_add(&stress.call_errors, 1);
    if ((seq & 63) == 63 && tr_yield() != 0) atomic_fetch_add(&stress.call_errors, 1);
    while (seq + 1 - acked >= WINDOW) { /* flow control: wait for an ack */
      tr_msg_t *m;
      if (tr_recv(&m, WAIT_MS) != 0) {
        atomic_fetch_add(&stress.call_errors, 1);
        return;
      }
      acked = tr_msg_obj(m)->via.array.ptr[1].via.u64;
      tr_msg_free(m);
    }
  }
}

static void stress_receiver(void *arg) {
  uint64_t next[NSENDERS] = {0};
  tr_pid_t from[NSENDERS] = {0};
  uint64_t total = 0, want = stress.msgs * NSENDERS;
  (void)arg;
  while (total < want) {
    tr_msg_t *m;
    const unsigned char *d;
    size_t len;
    uint64_t seq = 0;
    int id;
    if (tr_recv(&m, WAIT_MS) != 0) {
      atomic_fetch_add(&stress.call_errors, 1);
      break;
    }
    d = tr_msg_data(m, &len);
    if (stress_decode(d, len, &id, &seq) != 0) {
      atomic_fetch_add(&stress.foreign, 1);
      tr_msg_free(m);
      continue;
    }
    if (from[id] == TR_PID_NONE) from[id] = tr_msg_from(m);
    if (seq != next[id] || tr_msg_from(m) != from[id])
      atomic_fetch_add(&stress.order_errors, 1);
    next[id] = seq + 1;
    total++;
    if ((next[id] % (WINDOW / 2)) == 0 && /* ack: the sender may go on */
        tr_send_tagged(from[id], "ack", "u", next[id]) != 0)
      atomic_fetch_add(&stress.call_errors, 1);
    tr_msg_free(m);
  }
  for (int i = 0; i < NSENDERS; i++) atomic_store(&stress.got[i], next[i]);
}

static void stress_run(unsigned nsched, int small) {
  tr_runtime_t *rt = new_rt(nsched, TR_PLACE_LOCAL);
  const char *e = getenv("TR_MULTI_MSGS");
  memset(&stress, 0, sizeof(stress));
  stress.small = small;
  stress.msgs = e ? strtoull(e, NULL, 10) : STRESS_MSGS_DEFAULT;
  stress.receiver = spawn_on(rt, 0, stress_receiver, NULL);
  for (int i = 0; i < NSENDERS; i++)
    spawn_on(rt, (unsigned)(1 + i % (nsched - 1)), stress_sender, (void *)(intptr_t)i);
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(atomic_load(&stress.call_errors), 0);
  ck_assert_int_eq(atomic_load(&stress.order_errors), 0);
  ck_assert_int_eq(atomic_load(&stress.foreign), 0);
  for (int i = 0; i < NSENDERS; i++)
    ck_assert_uint_eq(atomic_load(&stress.got[i]), stress.msgs);
  ck_assert_int_eq(__builtin_popcount((unsigned)atomic_load(&stress.sender_scheds)),
                   nsched - 1 < NSENDERS ? nsched - 1 : NSENDERS);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}

/* 8 senders on 8 schedulers, the receiver on a ninth. */
START_TEST(test_stress_n_to_1_nine_scheds) { stress_run(NSENDERS + 1, 0); }
END_TEST

/* The same on 2 schedulers: all senders on one, the receiver on the other. */
START_TEST(test_stress_n_to_1_two_scheds) { stress_run(2, 0); }
END_TEST

/* Messages of 1 to 8 bytes, which the receiving scheduler queues in runs
 * (mailbox/mailbox.c, inline_chain), broken by longer ones and by the
 * senders' interleaving: each must still arrive once, intact, with its
 * length, its sender, and in order. */
START_TEST(test_stress_n_to_1_small_msgs) { stress_run(_i == 0 ? 2 : 3, 1); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Stress: link and monitor storms while actors crash                       */
/* ------------------------------------------------------------------------ */

#define STORM_VICTIMS 300
#define STORM_WATCHERS 6

typedef struct {
  tr_pid_t victims[STORM_VICTIMS];
  _Atomic int downs;
  _Atomic int exits;
  _Atomic int dup_or_bad;
  _Atomic int watchers_done;
} storm_t;

static storm_t storm;

static void victim(void *arg) {
  tr_msg_t *m;
  int kind = (int)(intptr_t)arg % 3;
  TR_OK(tr_recv(&m, WAIT_MS));
  tr_msg_free(m);
  if (kind == 0) segv(); /* segv */
  if (kind == 1) tr_exit_error(3, "victim");
  /* kind 2: normal */
}

/* Monitors and links every victim (most on other schedulers), then counts:
 * exactly one DOWN per monitor and one EXIT per link of a victim that did
 * not exit normally... a trapping watcher gets EXIT for every reason. */
static void watcher(void *arg) {
  static _Atomic int go_sent;
  tr_ref_t refs[STORM_VICTIMS];
  unsigned char seen_down[STORM_VICTIMS] = {0}, seen_exit[STORM_VICTIMS] = {0};
  int ndown = 0, nexit = 0;
  (void)arg;
  tr_trap_exit(1);
  for (int i = 0; i < STORM_VICTIMS; i++) {
    TR_OK(tr_monitor(storm.victims[i], &refs[i]));
    TR_OK(tr_link(storm.victims[i]));
  }
  /* The last watcher to be set up releases the victims. */
  if (atomic_fetch_add(&go_sent, 1) + 1 == STORM_WATCHERS) {
    atomic_store(&go_sent, 0);
    for (int i = 0; i < STORM_VICTIMS; i++) TR_OK(tr_send_tagged(storm.victims[i], "go", NULL));
  }
  while (ndown < STORM_VICTIMS || nexit < STORM_VICTIMS) {
    tr_msg_t *m;
    int i;
    TR_OK(tr_recv(&m, WAIT_MS));
    for (i = 0; i < STORM_VICTIMS; i++)
      if (storm.victims[i] == tr_msg_from(m)) break;
    if (i == STORM_VICTIMS) {
      atomic_fetch_add(&storm.dup_or_bad, 1);
    } else if (tr_msg_kind(m) == TR_MSG_DOWN) {
      if (seen_down[i]++ || tr_msg_ref(m) != refs[i]) atomic_fetch_add(&storm.dup_or_bad, 1);
      ndown++;
    } else if (tr_msg_kind(m) == TR_MSG_EXIT) {
      if (seen_exit[i]++) atomic_fetch_add(&storm.dup_or_bad, 1);
      nexit++;
    }
    tr_msg_free(m);
  }
  atomic_fetch_add(&storm.downs, ndown);
  atomic_fetch_add(&storm.exits, nexit);
  /* Nothing more may come. */
  {
    tr_msg_t *m;
    if (tr_recv(&m, 20) == 0) {
      atomic_fetch_add(&storm.dup_or_bad, 1);
      tr_msg_free(m);
    }
  }
  atomic_fetch_add(&storm.watchers_done, 1);
}

static void storm_round(unsigned nsched) {
  tr_runtime_t *rt = new_rt(nsched, TR_PLACE_ROUND_ROBIN);
  memset(&storm, 0, sizeof(storm));
  for (int i = 0; i < STORM_VICTIMS; i++)
    TR_OK(tr_spawn(rt, victim, (void *)(intptr_t)i, NULL, &storm.victims[i]));
  for (int i = 0; i < STORM_WATCHERS; i++) TR_OK(tr_spawn(rt, watcher, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(atomic_load(&storm.watchers_done), STORM_WATCHERS);
  ck_assert_int_eq(atomic_load(&storm.dup_or_bad), 0);
  ck_assert_int_eq(atomic_load(&storm.downs), STORM_WATCHERS * STORM_VICTIMS);
  ck_assert_int_eq(atomic_load(&storm.exits), STORM_WATCHERS * STORM_VICTIMS);
  TR_OK(tr_runtime_free(rt));
}

START_TEST(test_link_monitor_storm) {
  for (int round = 0; round < 5; round++) storm_round(round % 2 ? 4 : 3);
}
END_TEST

/* Monitors and demonitors racing with deaths: a DOWN arrives iff the
 * monitor was not removed first, never twice, never after demonitor. */
static _Atomic int churn_bad;

static void churn_target(void *arg) {
  (void)arg;
  TR_OK(tr_sleep(1 + (uint64_t)(tr_self() % 3)));
  if (tr_self() & 1) segv();
}

static void churner(void *arg) {
  (void)arg;
  for (int i = 0; i < 200; i++) {
    tr_spawn_opts_t o;
    tr_pid_t t;
    tr_ref_t r1, r2;
    tr_msg_t *m;
    tr_spawn_opts_init(&o);
    o.placement = TR_PLACE_ROUND_ROBIN;
    TR_OK(tr_spawn(NULL, churn_target, NULL, &o, &t));
    TR_OK(tr_monitor(t, &r1));
    TR_OK(tr_monitor(t, &r2));
    if (i % 2) TR_OK(tr_yield());
    TR_OK(tr_demonitor(r1, TR_DEMONITOR_FLUSH));
    /* r2's DOWN comes exactly once; r1's never. */
    TR_OK(tr_recv(&m, WAIT_MS));
    if (tr_msg_kind(m) != TR_MSG_DOWN || tr_msg_ref(m) != r2) atomic_fetch_add(&churn_bad, 1);
    tr_msg_free(m);
    if (tr_recv(&m, 0) == 0) {
      atomic_fetch_add(&churn_bad, 1);
      tr_msg_free(m);
    }
  }
}

START_TEST(test_monitor_churn) {
  tr_runtime_t *rt = new_rt(4, TR_PLACE_ROUND_ROBIN);
  atomic_store(&churn_bad, 0);
  for (int i = 0; i < 8; i++) TR_OK(tr_spawn(rt, churner, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(atomic_load(&churn_bad), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* Spawn storms across schedulers: children linked to short-lived parents
 * on other schedulers die with them; nothing is left behind. */
static void grandchild(void *arg) {
  (void)arg;
  blocked_forever(NULL);
}

static void short_parent(void *arg) {
  tr_spawn_opts_t o;
  (void)arg;
  tr_spawn_opts_init(&o);
  o.placement = TR_PLACE_ROUND_ROBIN;
  o.flags = TR_SPAWN_LINK;
  for (int i = 0; i < 5; i++) TR_OK(tr_spawn(NULL, grandchild, NULL, &o, NULL));
  tr_exit_error(1, "parent goes");
}

START_TEST(test_spawn_link_storm) {
  tr_runtime_t *rt = new_rt(4, TR_PLACE_ROUND_ROBIN);
  for (int i = 0; i < 400; i++) TR_OK(tr_spawn(rt, short_parent, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt)); /* every grandchild died with its parent */
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Loop turns: a busy scheduler still serves its timers and sockets          */
/* ------------------------------------------------------------------------ */

#define FLOOD_MAX_MS 10000 /* the floods stop by themselves after this */
#define SLOW_FLOOD_MAX_MS 5000
#define SLEEPS 20

/* SLEEPS short sleeps, then "slept" to the actor that spawned it. */
static void sleeper(void *arg) {
  tr_pid_t to = *(tr_pid_t *)arg;
  for (int i = 0; i < SLEEPS; i++) TR_OK(tr_sleep(2));
  TR_OK(tr_send_tagged(to, "slept", NULL));
}

/* Ping-pongs with e until every sleeper reported or the flood's time is
 * up; returns how many reported. Replies and reports may interleave. */
static int flood_until_slept(tr_pid_t e, int sleepers, unsigned max_ms) {
  double end = tr_test_now_ms() + max_ms;
  int slept = 0;
  while (slept < sleepers && tr_test_now_ms() < end) {
    tr_msg_t *m;
    TR_OK(tr_send_tagged(e, "ping", NULL));
    for (;;) {
      TR_OK(tr_recv(&m, WAIT_MS));
      int pong = tr_msg_is_tag(m, "ping");
      if (tr_msg_is_tag(m, "slept")) slept++;
      tr_msg_free(m);
      if (pong) break;
    }
  }
  TR_OK(tr_send_tagged(e, "quit", NULL));
  return slept;
}

/* Senders on scheduler 1 keep scheduler 0's inbox from ever being empty
 * for long: batches of CREDIT messages, each batch let go by a credit from
 * the receiver, two senders so one sends while the other waits. */
#define CREDIT 256

/* Sends batches to the actor that spawned it until a credit says stop. */
static void credit_sender(void *arg) {
  tr_pid_t sink = *(tr_pid_t *)arg;
  tr_msg_t *m;
  for (;;) {
    int stop;
    for (int i = 0; i < CREDIT; i++) TR_OK(tr_send_tagged(sink, "x", NULL));
    TR_OK(tr_recv_tag(&m, "credit", WAIT_MS));
    stop = (int)msg_u64(m, 1);
    tr_msg_free(m);
    if (stop) return;
  }
}

static void cross_flood_main(void *arg) {
  tr_pid_t me = tr_self(), snd[2];
  tr_ref_t ref[2];
  double end = tr_test_now_ms() + FLOOD_MAX_MS;
  unsigned got[2] = {0, 0};
  int slept = 0;
  (void)arg;
  spawn_on(NULL, 0, sleeper, &me);
  for (int i = 0; i < 2; i++) {
    snd[i] = spawn_on(NULL, 1, credit_sender, &me);
    TR_OK(tr_monitor(snd[i], &ref[i]));
  }
  while (slept < 1 && tr_test_now_ms() < end) {
    tr_msg_t *m;
    TR_OK(tr_recv(&m, WAIT_MS));
    if (tr_msg_is_tag(m, "slept")) slept++;
    for (int i = 0; i < 2; i++)
      if (tr_msg_from(m) == snd[i] && ++got[i] % CREDIT == 0)
        TR_OK(tr_send_tagged(snd[i], "credit", "u", (uint64_t)0));
    tr_msg_free(m);
  }
  /* A batch may be on its way, or a sender waiting: either way one more
   * credit, saying stop, ends it (it reads me, on this stack, no more). */
  for (int i = 0; i < 2; i++) TR_OK(tr_send_tagged(snd[i], "credit", "u", (uint64_t)1));
  for (int i = 0; i < 2; i++) tr_msg_free(recv_kind(TR_MSG_DOWN));
  ck_assert_int_eq(slept, 1);
}

START_TEST(test_timers_fire_under_cross_flood) { run_main(2, cross_flood_main, NULL); }
END_TEST

/* On one scheduler, actors that work 300 us per message: a switch budget
 * of thousands of switches alone would keep the loop waiting most of a
 * second per turn, so SLEEPS sleeps would outlast the flood. */
static void slow_flood_main(void *arg) {
  static const unsigned work_us = 300;
  tr_pid_t me = tr_self(), e;
  (void)arg;
  TR_OK(tr_spawn(NULL, echo_loop, (void *)&work_us, NULL, &e));
  TR_OK(tr_spawn(NULL, sleeper, &me, NULL, NULL));
  ck_assert_int_eq(flood_until_slept(e, 1, SLOW_FLOOD_MAX_MS), 1);
}

START_TEST(test_timers_fire_among_slow_actors) { run_main(1, slow_flood_main, NULL); }
END_TEST

static Suite *multi_suite(void) {
  Suite *s = suite_create("multi");
  TCase *tc = tcase_create("basic");
  tcase_add_test(tc, test_config);
  tcase_add_test(tc, test_placement_from_host);
  tcase_add_test(tc, test_placement_least_loaded);
  tcase_add_test(tc, test_placement_default_round_robin);
  tcase_add_test(tc, test_ping_pong_across);
  tcase_add_test(tc, test_host_send_across);
  tcase_add_test(tc, test_spawn_link_monitor_across);
  tcase_add_test(tc, test_links_across);
  tcase_add_test(tc, test_exit_signals_across);
  tcase_add_test(tc, test_exit_pid_from_host);
  tcase_add_test(tc, test_monitors_across);
  tcase_add_test(tc, test_call_across);
  tcase_add_test(tc, test_registry_across);
  tcase_add_test(tc, test_registry_race);
  tcase_add_test(tc, test_timers_across);
  tcase_add_test(tc, test_supervisor_across);
  suite_add_tcase(s, tc);
  tc = tcase_create("lifecycle");
  tcase_add_test(tc, test_deadlock_across);
  tcase_add_test(tc, test_no_false_deadlock);
  tcase_add_test(tc, test_stop_across);
  tcase_add_test(tc, test_stop_from_host_across);
  tcase_add_test(tc, test_free_with_live_actors);
  tcase_add_test(tc, test_crash_isolated);
  tcase_add_test(tc, test_embedded_multi);
  tcase_add_test(tc, test_embedded_remote_only);
  suite_add_tcase(s, tc);
  tc = tcase_create("stress");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_message_sizes_across);
  tcase_add_test(tc, test_stress_n_to_1_nine_scheds);
  tcase_add_test(tc, test_stress_n_to_1_two_scheds);
  tcase_add_loop_test(tc, test_stress_n_to_1_small_msgs, 0, 2);
  tcase_add_test(tc, test_link_monitor_storm);
  tcase_add_test(tc, test_monitor_churn);
  tcase_add_test(tc, test_spawn_link_storm);
  suite_add_tcase(s, tc);
  tc = tcase_create("loop_turns");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_timers_fire_under_cross_flood);
  tcase_add_test(tc, test_timers_fire_among_slow_actors);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(multi_suite)
