/* Check suite for hibernation (tr_hibernate, actors/hibernate.c): restart
 * in the given function with the mail still queued, the stack given back
 * and reused, what survives (links, monitors, name), exit signals and
 * crashes of hibernated and woken actors, wakes from another scheduler,
 * and the footprint of 100,000 hibernated actors. */
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "testutil.h"
#include "internal.h" /* the stack pool's stats, the actor record */

#define WAIT_MS 5000

/* Crash helpers must really fault: no sanitizer check may get there first. */
#define CRASHER __attribute__((noinline, no_sanitize("address", "undefined")))
static void *volatile null_ptr;

static const unsigned char ONE[] = {0x01};
static const unsigned char TWO[] = {0x02};

static size_t stacks_in_use(void) {
  tr__stack_stats_t st;
  tr__stack_pool_stats(tr__tls_sched->stacks, &st);
  return st.in_use;
}

static int msg_u8(const tr_msg_t *m) {
  size_t len = 0;
  const unsigned char *p = tr_msg_data(m, &len);
  return len == 1 ? p[0] : -1;
}

static tr_reason_t recv_sys(tr_msg_kind_t kind) {
  tr_msg_t *m = NULL;
  tr_reason_t r;
  TR_OK(tr_recv(&m, WAIT_MS));
  ck_assert_int_eq(tr_msg_kind(m), kind);
  TR_OK(tr_msg_reason(m, &r));
  tr_msg_free(m);
  return r;
}

/* ---- restart with arg, mail still queued, stack released and reused ---- */

typedef struct {
  tr_pid_t pid;
  char *lo_before, *lo_after; /* stack slot before and after */
  size_t in_use_hib;          /* stacks in use while it hibernated */
  size_t in_use_woken;        /* ... once it woke */
  int woke;
  void *arg_seen;
  int first;                  /* first message it received after waking */
  int queued_at_wake;
} restart_t;

static void restart_woken(void *arg) {
  restart_t *t = arg;
  tr_msg_t *m = NULL;
  t->woke++;
  t->arg_seen = arg;
  t->lo_after = tr__current()->stack.lo;
  t->in_use_woken = stacks_in_use();
  t->queued_at_wake = (int)tr_mailbox_len();
  TR_OK(tr_recv(&m, WAIT_MS));
  t->first = msg_u8(m);
  tr_msg_free(m);
}

static void restart_actor(void *arg) {
  restart_t *t = arg;
  t->lo_before = tr__current()->stack.lo;
  ck_assert_int_eq(tr_hibernate(NULL, arg), TR_EINVAL);
  tr_hibernate(restart_woken, arg);
  ck_abort_msg("tr_hibernate returned");
}

static void restart_parent(void *arg) {
  restart_t *t = arg;
  size_t before = stacks_in_use();
  TR_OK(tr_spawn(NULL, restart_actor, t, NULL, &t->pid));
  TR_OK(tr_yield()); /* it runs and hibernates */
  ck_assert_ptr_nonnull(t->lo_before);
  ck_assert_int_eq(t->woke, 0);
  t->in_use_hib = stacks_in_use();
  ck_assert_uint_eq(t->in_use_hib, before); /* its stack is back */
  ck_assert(tr_is_alive(t->pid));
  ck_assert_uint_eq(tr_runtime_actor_count(tr_runtime_current()), 2);
  TR_OK(tr_yield()); /* no mail: it stays hibernated */
  ck_assert_int_eq(t->woke, 0);
  TR_OK(tr_send(t->pid, TWO, sizeof(TWO)));
  TR_OK(tr_yield());
  ck_assert_int_eq(t->woke, 1);
}

START_TEST(test_restart_in_fn) {
  restart_t t;
  memset(&t, 0, sizeof(t));
  t.first = -1;
  tr_test_run1(restart_parent, &t);
  ck_assert_int_eq(t.woke, 1);
  ck_assert_ptr_eq(t.arg_seen, &t);
  ck_assert_int_eq(t.queued_at_wake, 1);
  ck_assert_int_eq(t.first, 2);
  ck_assert_uint_eq(t.in_use_woken, t.in_use_hib + 1);
  /* LIFO: the slot it gave back is the one it wakes on. */
  ck_assert_ptr_eq(t.lo_after, t.lo_before);
}
END_TEST

/* Mail already queued: it restarts at once, the message still there. */
static void queued_actor(void *arg) {
  restart_t *t = arg;
  t->lo_before = tr__current()->stack.lo;
  TR_OK(tr_send(tr_self(), ONE, sizeof(ONE)));
  tr_hibernate(restart_woken, arg);
}

START_TEST(test_restart_at_once_with_mail) {
  restart_t t;
  memset(&t, 0, sizeof(t));
  t.first = -1;
  tr_test_run1(queued_actor, &t);
  ck_assert_int_eq(t.woke, 1);
  ck_assert_int_eq(t.queued_at_wake, 1);
  ck_assert_int_eq(t.first, 1);
}
END_TEST

/* Hibernating again and again: each restart runs fn anew. */
static void again_fn(void *arg) {
  int *n = arg;
  tr_msg_t *m = NULL;
  TR_OK(tr_recv(&m, WAIT_MS));
  tr_msg_free(m);
  if (++*n < 5) tr_hibernate(again_fn, arg);
}

static void again_parent(void *arg) {
  tr_pid_t pid;
  size_t before = stacks_in_use();
  TR_OK(tr_spawn(NULL, again_fn, arg, NULL, &pid));
  for (int i = 0; i < 5; i++) {
    TR_OK(tr_send(pid, ONE, sizeof(ONE)));
    TR_OK(tr_yield());
    if (i < 4) ck_assert_uint_eq(stacks_in_use(), before);
  }
  ck_assert(!tr_is_alive(pid)); /* fn returned: a normal exit */
}

START_TEST(test_hibernate_repeatedly) {
  int n = 0;
  tr_test_run1(again_parent, &n);
  ck_assert_int_eq(n, 5);
}
END_TEST

/* ---- links, monitors and name survive; exit signals ------------------- */

static void exit_shutdown(void *arg) {
  tr_msg_t *m = NULL;
  (void)arg;
  TR_OK(tr_recv(&m, WAIT_MS));
  ck_assert_int_eq(msg_u8(m), 1);
  tr_msg_free(m);
  tr_exit(TR_REASON_SHUTDOWN);
}

static void named_sleeper(void *arg) {
  TR_OK(tr_register("hib_named", tr_self()));
  tr_hibernate(exit_shutdown, arg);
}

static void survive_parent(void *arg) {
  tr_pid_t pid, found = TR_PID_NONE;
  tr_ref_t ref;
  tr_reason_t r;
  (void)arg;
  tr_trap_exit(1);
  TR_OK(tr_spawn_monitor(named_sleeper, NULL, &pid, &ref));
  TR_OK(tr_link(pid));
  TR_OK(tr_yield());
  TR_OK(tr_whereis("hib_named", &found));
  ck_assert_uint_eq(found, pid);
  ck_assert(tr_is_alive(pid));
  TR_OK(tr_send_named("hib_named", ONE, sizeof(ONE)));
  r = recv_sys(TR_MSG_EXIT);
  ck_assert_int_eq(r.kind, TR_REASON_SHUTDOWN);
  r = recv_sys(TR_MSG_DOWN);
  ck_assert_int_eq(r.kind, TR_REASON_SHUTDOWN);
  ck_assert_int_eq(tr_whereis("hib_named", &found), TR_ENOENT);
}

START_TEST(test_links_monitors_name_survive) {
  tr_test_run1(survive_parent, NULL);
}
END_TEST

static void never(void *arg) {
  (void)arg;
  ck_abort_msg("a killed hibernated actor woke");
}

static void plain_sleeper(void *arg) { tr_hibernate(never, arg); }

static void kill_parent(void *arg) {
  tr_pid_t pid;
  tr_ref_t ref;
  tr_reason_t r;
  size_t before = stacks_in_use();
  (void)arg;
  TR_OK(tr_spawn_monitor(plain_sleeper, NULL, &pid, &ref));
  TR_OK(tr_yield());
  TR_OK(tr_exit_pid(NULL, pid, TR_REASON_KILL));
  r = recv_sys(TR_MSG_DOWN);
  ck_assert_int_eq(r.kind, TR_REASON_KILLED);
  TR_OK(tr_spawn_monitor(plain_sleeper, NULL, &pid, &ref));
  TR_OK(tr_yield());
  TR_OK(tr_exit_pid(NULL, pid, TR_REASON_NORMAL)); /* ignored */
  TR_OK(tr_exit_pid(NULL, pid, TR_REASON_SHUTDOWN));
  r = recv_sys(TR_MSG_DOWN);
  ck_assert_int_eq(r.kind, TR_REASON_SHUTDOWN);
  ck_assert_uint_eq(stacks_in_use(), before);
}

START_TEST(test_exit_signal_kills_hibernated) {
  tr_test_run1(kill_parent, NULL);
}
END_TEST

typedef struct {
  tr_pid_t parent;
  tr_reason_t got;
  int kind;
} trap_t;

static void trap_woken(void *arg) {
  trap_t *t = arg;
  tr_msg_t *m = NULL;
  TR_OK(tr_recv(&m, WAIT_MS));
  t->kind = tr_msg_kind(m);
  TR_OK(tr_msg_reason(m, &t->got));
  ck_assert_uint_eq(tr_msg_from(m), t->parent);
  tr_msg_free(m);
}

static void trap_sleeper(void *arg) {
  tr_trap_exit(1);
  tr_hibernate(trap_woken, arg);
}

static void trap_parent(void *arg) {
  trap_t *t = arg;
  tr_pid_t pid;
  tr_ref_t ref;
  tr_reason_t r;
  t->parent = tr_self();
  TR_OK(tr_spawn_monitor(trap_sleeper, t, &pid, &ref));
  TR_OK(tr_yield());
  TR_OK(tr_exit_pid(NULL, pid, TR_REASON_SHUTDOWN));
  r = recv_sys(TR_MSG_DOWN);
  ck_assert_int_eq(r.kind, TR_REASON_NORMAL); /* trap_woken returned */
}

START_TEST(test_trapping_wakes_with_exit) {
  trap_t t;
  memset(&t, 0, sizeof(t));
  tr_test_run1(trap_parent, &t);
  ck_assert_int_eq(t.kind, TR_MSG_EXIT);
  ck_assert_int_eq(t.got.kind, TR_REASON_SHUTDOWN);
}
END_TEST

/* ---- a crash after the restart is an ordinary crash --------------------- */

CRASHER static void crash_woken(void *arg) {
  (void)arg;
  *(volatile int *)null_ptr = 1;
}

static void crash_sleeper(void *arg) { tr_hibernate(crash_woken, arg); }

static void quiet_log(void *arg, tr_log_level_t level, const char *line) {
  (void)arg;
  (void)level;
  (void)line;
}

static void crash_parent(void *arg) {
  tr_reason_t *out = arg;
  tr_pid_t pid;
  tr_ref_t ref;
  TR_OK(tr_spawn_monitor(crash_sleeper, NULL, &pid, &ref));
  TR_OK(tr_yield());
  TR_OK(tr_send(pid, ONE, sizeof(ONE)));
  *out = recv_sys(TR_MSG_DOWN);
}

START_TEST(test_crash_after_wake) {
  tr_runtime_t *rt = NULL;
  tr_config_t cfg = *tr_test_cfg1();
  tr_reason_t r;
  /* valgrind reports the deliberate fault as an error before troupe's
   * handler sees it (the other suites skip their crashes there too). */
  if (tr_test_on_valgrind()) return;
  memset(&r, 0, sizeof(r));
  cfg.logger = quiet_log;
  TR_OK(tr_runtime_new(&rt, &cfg));
  TR_OK(tr_spawn(rt, crash_parent, &r, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(r.kind, TR_REASON_SEGV);
  ck_assert_uint_eq(r.addr, 0);
  ck_assert_uint_ne(r.pc, 0);
}
END_TEST

/* ---- a message from another scheduler wakes it ------------------------- */

typedef struct {
  _Atomic unsigned woke_on;
  tr_pid_t main;
} remote_t;

static void remote_woken(void *arg) {
  remote_t *t = arg;
  tr_msg_t *m = NULL;
  TR_OK(tr_recv(&m, WAIT_MS));
  ck_assert_int_eq(msg_u8(m), 2);
  tr_msg_free(m);
  atomic_store(&t->woke_on, (unsigned)tr_sched_self() + 1);
  TR_OK(tr_send(t->main, ONE, sizeof(ONE)));
}

static void remote_sleeper(void *arg) {
  remote_t *t = arg;
  TR_OK(tr_send(t->main, ONE, sizeof(ONE))); /* about to hibernate */
  tr_hibernate(remote_woken, arg);
}

static void remote_parent(void *arg) {
  remote_t *t = arg;
  tr_spawn_opts_t o;
  tr_pid_t pid;
  tr_msg_t *m = NULL;
  t->main = tr_self();
  tr_spawn_opts_init(&o);
  o.placement = TR_PLACE_SCHED(1);
  TR_OK(tr_spawn(NULL, remote_sleeper, t, &o, &pid));
  ck_assert_uint_eq(tr_pid_scheduler(pid), 1);
  TR_OK(tr_recv(&m, WAIT_MS));
  tr_msg_free(m);
  TR_OK(tr_sleep(20)); /* it has hibernated by now (or wakes at once) */
  TR_OK(tr_send(pid, TWO, sizeof(TWO)));
  TR_OK(tr_recv(&m, WAIT_MS));
  tr_msg_free(m);
}

START_TEST(test_wake_from_other_scheduler) {
  tr_runtime_t *rt = NULL;
  tr_config_t cfg;
  remote_t t;
  memset(&t, 0, sizeof(t));
  tr_config_init(&cfg);
  cfg.schedulers = 2;
  TR_OK(tr_runtime_new(&rt, &cfg));
  TR_OK(tr_spawn(rt, remote_parent, &t, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_uint_eq(atomic_load(&t.woke_on), 2); /* scheduler 1 */
}
END_TEST

/* ---- outside an actor ----------------------------------------------------- */

START_TEST(test_outside_actor) {
  tr_runtime_t *rt = NULL;
  ck_assert_int_eq(tr_hibernate(never, NULL), TR_ENOTACTOR);
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  ck_assert_int_eq(tr_hibernate(never, NULL), TR_ENOTACTOR);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ---- footprint ------------------------------------------------------------ */

#define MANY (tr_test_on_valgrind() || tr_test_on_tsan() ? 2000 : 100000)
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FOOTPRINT_CHECKED 0
#else
#define FOOTPRINT_CHECKED 1
#endif

typedef struct {
  tr_pid_t *pids;
  int hibernated, woke, wrong;
  size_t alive_seen, in_use_seen;
  long rss_before, rss_hib; /* KiB */
} crowd_t;

static crowd_t crowd;

static void crowd_woken(void *arg) {
  tr_msg_t *m = NULL;
  if (tr_recv(&m, -1) != 0 || msg_u8(m) != 1) crowd.wrong++;
  else crowd.woke++;
  tr_msg_free(m);
  (void)arg;
}

static void crowd_member(void *arg) {
  crowd.hibernated++;
  tr_hibernate(crowd_woken, arg);
  crowd.wrong++;
}

static void crowd_releaser(void *arg) {
  (void)arg;
  /* Spawned last: every member ran once and hibernated by now. */
  crowd.alive_seen = tr_runtime_actor_count(tr_runtime_current());
  crowd.in_use_seen = stacks_in_use();
  crowd.rss_hib = tr_test_rss_kib();
  for (int i = 0; i < MANY; i++)
    if (tr_send(crowd.pids[i], ONE, sizeof(ONE)) != 0) crowd.wrong++;
}

START_TEST(test_100k_hibernated_footprint) {
  tr_runtime_t *rt = NULL;
  long per;
  memset(&crowd, 0, sizeof(crowd));
  crowd.pids = calloc(MANY, sizeof(tr_pid_t));
  ck_assert_ptr_nonnull(crowd.pids);
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  crowd.rss_before = tr_test_rss_kib();
  for (int i = 0; i < MANY; i++)
    if (tr_spawn(rt, crowd_member, NULL, NULL, &crowd.pids[i])) crowd.wrong++;
  TR_OK(tr_spawn(rt, crowd_releaser, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(crowd.wrong, 0);
  ck_assert_int_eq(crowd.hibernated, MANY);
  ck_assert_int_eq(crowd.woke, MANY);
  ck_assert_uint_eq(crowd.alive_seen, MANY + 1);
  ck_assert_uint_eq(crowd.in_use_seen, 1); /* the releaser's own */
  per = (crowd.rss_hib - crowd.rss_before) * 1024 / MANY;
  /* A hibernated actor costs its record and table entries, no stack page
   * (W5-hib, doc/performance.md). Sanitizers add their own memory. */
  if (FOOTPRINT_CHECKED && !tr_test_on_valgrind())
    ck_assert_msg(per <= 512, "%ld bytes per hibernated actor", per);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
  free(crowd.pids);
}
END_TEST

static Suite *suite_hibernate(void) {
  Suite *s = suite_create("hibernate");
  TCase *basic = tcase_create("basic");
  TCase *signals = tcase_create("signals");
  TCase *scale = tcase_create("scale");

  tcase_add_test(basic, test_restart_in_fn);
  tcase_add_test(basic, test_restart_at_once_with_mail);
  tcase_add_test(basic, test_hibernate_repeatedly);
  tcase_add_test(basic, test_outside_actor);
  tcase_add_test(basic, test_wake_from_other_scheduler);
  suite_add_tcase(s, basic);
  tcase_add_test(signals, test_links_monitors_name_survive);
  tcase_add_test(signals, test_exit_signal_kills_hibernated);
  tcase_add_test(signals, test_trapping_wakes_with_exit);
  tcase_add_test(signals, test_crash_after_wake);
  suite_add_tcase(s, signals);
  tcase_set_timeout(scale, 120);
  tcase_add_test(scale, test_100k_hibernated_footprint);
  suite_add_tcase(s, scale);
  return s;
}

TR_TEST_MAIN(suite_hibernate)
