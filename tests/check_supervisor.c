/*
 * Supervisors: every OTP rule the runtime promises (doc/supervision.md).
 *
 * Each test runs a fresh runtime in its own process (Check's fork mode):
 * workers crash for real there (NULL dereference, stack overflow, divide
 * by zero, abort). Children report what happens to them as messages to
 * the test actor ("ev" start/stop), so orders are asserted as observed, and
 * every check waits for a call to the supervisor (answered after it has
 * handled the exits before it), never for time.
 */
#include "testutil.h"

#include <signal.h>
#include <stdint.h>

/* ---- workers ------------------------------------------------------------- */

enum { X_NORMAL, X_SHUTDOWN, X_ERROR, X_KILLED, X_SEGV, X_STACK, X_FPE, X_ABORT,
       X__COUNT };
static const tr_reason_kind_t x_kind[X__COUNT] = {
    TR_REASON_NORMAL, TR_REASON_SHUTDOWN, TR_REASON_ERROR, TR_REASON_KILLED,
    TR_REASON_SEGV, TR_REASON_STACK_OVERFLOW, TR_REASON_FPE, TR_REASON_ABORT};

enum { INIT_OK, INIT_IGNORE, INIT_ERROR, INIT_CRASH, INIT_RETURN };

typedef struct {
  char name[16];
  int trap;            /* trap exits: report "stop" when asked to stop */
  int init;            /* INIT_* */
  int ignore_shutdown; /* keep running after the supervisor's shutdown */
  int fail_from, fail_to; /* starts numbered in [from, to] ack an error */
  int starts;
} wcfg_t;

#define NW 8
static wcfg_t W[NW];
static tr_pid_t g_rec; /* the test actor: receives "ev" and "rep" */

static void ev(const char *what, const char *name) {
  tr_send_tagged(g_rec, "ev", "ss", what, name);
}

static volatile int g_zero, g_seven = 7;
static volatile int *volatile g_null;

/* Recurses until the guard page stops it (the depth check never ends it:
 * g_depth_limit is never reached, but the compiler cannot know). */
static volatile int g_depth_limit = -1;

__attribute__((noinline, no_sanitize("undefined", "address"))) static int
recurse(int n) {
  volatile char pad[512];
  pad[0] = (char)n;
  if (n == g_depth_limit) return 0;
  return recurse(n + 1) + pad[0];
}

__attribute__((no_sanitize("undefined", "address"))) static void die(int how) {
  /* valgrind reports a deliberate fault as an error, then loses track of
   * the stack the fault handler unwinds: there, a crash is an exit with
   * the same reason (no fault address). */
  if (tr_test_on_valgrind() && how >= X_SEGV) tr_exit(x_kind[how]);
  switch (how) {
  case X_NORMAL: tr_exit(TR_REASON_NORMAL); break;
  case X_SHUTDOWN: tr_exit(TR_REASON_SHUTDOWN); break;
  case X_ERROR: tr_exit_error(42, "worker gave up"); break;
  case X_SEGV: *g_null = 1; break;
  case X_STACK: recurse(0); break;
  case X_FPE: g_zero = g_seven / g_zero; break;
  case X_ABORT: abort(); break;
  default: break;
  }
  tr_exit(TR_REASON_NORMAL);
}

static void worker_loop(wcfg_t *w) {
  for (;;) {
    tr_msg_t *m;
    tr_reason_t r;
    if (tr_recv(&m, -1) != 0) continue;
    if (tr_msg_kind(m) == TR_MSG_EXIT) {
      tr_msg_reason(m, &r);
      tr_msg_free(m);
      ev("stop", w->name);
      if (!w->ignore_shutdown) tr_exit(r.kind);
      continue;
    }
    if (tr_msg_kind(m) == TR_MSG_CALL) tr_reply(m, "\xc0", 1);
    if (tr_msg_is_tag(m, "die")) {
      int how = (int)tr_msg_obj(m)->via.array.ptr[1].via.i64;
      tr_msg_free(m);
      die(how);
    }
    tr_msg_free(m);
  }
}

static void worker(void *arg) {
  wcfg_t *w = arg;
  int n = ++w->starts;
  ev("start", w->name);
  if (w->trap) tr_trap_exit(1);
  if (w->fail_from && n >= w->fail_from && (!w->fail_to || n <= w->fail_to))
    tr_sup_init_ack(-77);
  switch (w->init) {
  case INIT_IGNORE: tr_sup_init_ack(TR_INIT_IGNORE); break;
  case INIT_ERROR: tr_sup_init_ack(-77); break;
  case INIT_CRASH: die(X_SEGV); break;
  case INIT_RETURN: return;
  default: break;
  }
  tr_sup_init_ack(TR_INIT_OK);
  worker_loop(w);
}

static void wset(int i, const char *name) {
  memset(&W[i], 0, sizeof(W[i]));
  snprintf(W[i].name, sizeof(W[i].name), "%s", name);
  W[i].trap = 1;
}

static tr_child_spec_t wspec(int i, tr_restart_t restart) {
  tr_child_spec_t s;
  tr_child_spec_init(&s, W[i].name, worker, &W[i]);
  s.restart = restart;
  return s;
}

/* ---- the test actor's helpers -------------------------------------------- */

static char g_log[8192];

/* Moves the queued "ev" messages into g_log ("start:a stop:b ") and
 * returns it; the next call starts afresh. */
static const char *events(void) {
  static char out[sizeof(g_log)];
  tr_msg_t *m;
  g_log[0] = '\0';
  while (tr_recv_tag(&m, "ev", 0) == 0) {
    const msgpack_object *o = tr_msg_obj(m);
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof(g_log) - n, "%.*s:%.*s ",
             (int)o->via.array.ptr[1].via.str.size, o->via.array.ptr[1].via.str.ptr,
             (int)o->via.array.ptr[2].via.str.size, o->via.array.ptr[2].via.str.ptr);
    tr_msg_free(m);
  }
  memcpy(out, g_log, sizeof(out));
  return out;
}

static void begin(void) {
  g_rec = tr_self();
  g_log[0] = '\0';
}

static tr_sup_child_info_t info(tr_pid_t sup, const char *id) {
  tr_sup_child_info_t i;
  TR_OK(tr_sup_child_info(sup, id, &i));
  return i;
}

static int match_down(const tr_msg_t *m, void *arg) {
  return tr_msg_kind(m) == TR_MSG_DOWN && tr_msg_ref(m) == *(tr_ref_t *)arg;
}

static tr_reason_t wait_down(tr_ref_t ref) {
  tr_msg_t *m;
  tr_reason_t r;
  TR_OK(tr_recv_match(&m, match_down, &ref, -1));
  TR_OK(tr_msg_reason(m, &r));
  tr_msg_free(m);
  return r;
}

/* Makes pid exit as `how` and waits until it is gone. The supervisor has
 * its EXIT queued by then, so its next call is answered after the
 * restart. */
static tr_reason_t make_exit(tr_pid_t pid, int how) {
  tr_ref_t ref;
  ck_assert(pid != TR_PID_NONE);
  TR_OK(tr_monitor(pid, &ref));
  if (how == X_KILLED) TR_OK(tr_exit_pid(NULL, pid, TR_REASON_KILL));
  else TR_OK(tr_send_tagged(pid, "die", "i", (int64_t)how));
  return wait_down(ref);
}

static tr_sup_flags_t flags_of(tr_sup_strategy_t st, unsigned intensity) {
  tr_sup_flags_t f;
  tr_sup_flags_init(&f);
  f.strategy = st;
  f.intensity = intensity;
  f.period_ms = 60000;
  return f;
}

static tr_reason_t stop_monitored(tr_pid_t sup) {
  tr_ref_t ref;
  TR_OK(tr_monitor(sup, &ref));
  TR_OK(tr_sup_stop(sup));
  return wait_down(ref);
}

/* Report hook: forwards events to the test actor as
 * ["rep", kind, child_id, reason kind or -1]. */
static void report_to_rec(void *arg, const tr_sup_event_t *e) {
  (void)arg;
  tr_send_tagged(g_rec, "rep", "isi", (int64_t)e->kind, e->child_id,
                 (int64_t)(e->reason ? (int)e->reason->kind : -1));
}

/* Takes the next "rep" of the given kind and returns its reason kind. */
static int next_report(tr_sup_event_kind_t kind, const char *id) {
  tr_msg_t *m;
  for (;;) {
    const msgpack_object *o;
    TR_OK(tr_recv_tag(&m, "rep", 0));
    o = tr_msg_obj(m);
    if (o->via.array.ptr[1].via.i64 == (int64_t)kind &&
        o->via.array.ptr[2].via.str.size == strlen(id) &&
        memcmp(o->via.array.ptr[2].via.str.ptr, id, strlen(id)) == 0) {
      int r = (int)o->via.array.ptr[3].via.i64;
      tr_msg_free(m);
      return r;
    }
    tr_msg_free(m);
  }
}

/* ---- strategy x restart type x exit reason ------------------------------- */

static const char *const strat_names[] = {"one_for_one", "one_for_all",
                                          "rest_for_one", "simple_one_for_one"};
static int g_case;

static int wants_restart(tr_restart_t r, int how) {
  if (r == TR_PERMANENT) return 1;
  if (r == TR_TEMPORARY) return 0;
  return how != X_NORMAL && how != X_SHUTDOWN;
}

static const char *expected_log(tr_sup_strategy_t st, int restart) {
  if (!restart) return "";
  switch (st) {
  case TR_ONE_FOR_ONE: return "start:b ";
  case TR_ONE_FOR_ALL: return "stop:c stop:a start:a start:b start:c ";
  case TR_REST_FOR_ONE: return "stop:c start:b start:c ";
  default: return "start:b ";
  }
}

static tr_pid_t matrix_start(tr_sup_strategy_t st, tr_restart_t rt) {
  tr_sup_flags_t f = flags_of(st, 10);
  tr_child_spec_t s[3];
  tr_pid_t sup, p;
  wset(0, "a");
  wset(1, "b");
  wset(2, "c");
  if (st == TR_SIMPLE_ONE_FOR_ONE) {
    s[0] = wspec(0, rt);
    snprintf(s[0].id, sizeof(s[0].id), "tmpl");
    TR_OK(tr_sup_start_link(&f, s, 1, &sup, NULL));
    for (int i = 0; i < 3; i++) TR_OK(tr_sup_start_child_arg(sup, &W[i], &p, NULL));
  } else {
    s[0] = wspec(0, TR_PERMANENT);
    s[1] = wspec(1, rt);
    s[2] = wspec(2, TR_PERMANENT);
    TR_OK(tr_sup_start_link(&f, s, 3, &sup, NULL));
  }
  ck_assert_str_eq(events(), "start:a start:b start:c ");
  return sup;
}

/* The pids of the three children in start order (NONE where absent). */
static size_t matrix_pids(tr_pid_t sup, tr_sup_child_info_t *v) {
  size_t n = 0;
  TR_OK(tr_sup_which_children(sup, v, 3, &n));
  return n;
}

static void matrix_body(void *arg) {
  int c = g_case, how = c % X__COUNT;
  tr_restart_t rt = (tr_restart_t)((c / X__COUNT) % 3);
  tr_sup_strategy_t st = (tr_sup_strategy_t)(c / X__COUNT / 3);
  int simple = st == TR_SIMPLE_ONE_FOR_ONE, restart = wants_restart(rt, how);
  tr_sup_child_info_t before[3], after[3];
  tr_reason_t why;
  tr_pid_t sup;
  size_t n;
  (void)arg;
  begin();
  sup = matrix_start(st, rt);
  ck_assert_uint_eq(matrix_pids(sup, before), 3);
  why = make_exit(before[1].pid, how);
  ck_assert_int_eq(why.kind, x_kind[how]);
  n = matrix_pids(sup, after);
  ck_assert_msg(strcmp(events(), expected_log(st, restart)) == 0,
                "%s restart=%d exit=%s: events \"%s\"", strat_names[st], rt,
                tr_reason_name(x_kind[how]), g_log);
  if (!restart && (rt == TR_TEMPORARY || simple)) {
    ck_assert_uint_eq(n, 2); /* the record is gone */
    ck_assert(after[0].pid == before[0].pid && after[1].pid == before[2].pid);
  } else {
    tr_sup_child_info_t *b = &after[1];
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(b->exits, 1);
    ck_assert_int_eq(b->last_exit.kind, x_kind[how]);
    ck_assert_uint_eq(b->restarts, restart ? 1 : 0);
    ck_assert_int_eq(b->state, restart ? TR_CHILD_RUNNING : TR_CHILD_STOPPED);
    ck_assert(restart ? (b->pid != TR_PID_NONE && b->pid != before[1].pid)
                      : b->pid == TR_PID_NONE);
    if (how == X_SEGV) ck_assert_uint_lt(b->last_exit.addr, 4096);
    /* siblings: restarted exactly when the strategy says so */
    ck_assert(restart && st == TR_ONE_FOR_ALL ? after[0].pid != before[0].pid
                                               : after[0].pid == before[0].pid);
    ck_assert(restart && (st == TR_ONE_FOR_ALL || st == TR_REST_FOR_ONE)
                  ? after[2].pid != before[2].pid
                  : after[2].pid == before[2].pid);
  }
}

START_TEST(test_strategy_matrix) {
  g_case = _i;
  tr_test_run(matrix_body, NULL);
}
END_TEST

/* one_for_all drops temporary siblings it stops for the group restart. */
static void temp_sibling_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ALL, 5);
  tr_child_spec_t s[3];
  tr_sup_child_info_t v[3];
  tr_pid_t sup;
  size_t n;
  (void)arg;
  begin();
  wset(0, "a");
  wset(1, "t");
  wset(2, "c");
  s[0] = wspec(0, TR_PERMANENT);
  s[1] = wspec(1, TR_TEMPORARY);
  s[2] = wspec(2, TR_PERMANENT);
  TR_OK(tr_sup_start_link(&f, s, 3, &sup, NULL));
  events();
  make_exit(info(sup, "c").pid, X_ERROR);
  TR_OK(tr_sup_which_children(sup, v, 3, &n));
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(v[0].id, "a");
  ck_assert_str_eq(v[1].id, "c");
  ck_assert_str_eq(events(), "stop:t stop:a start:a start:c ");
}

START_TEST(test_one_for_all_drops_temporary) { tr_test_run(temp_sibling_body, NULL); }
END_TEST

/* ---- restart intensity ---------------------------------------------------- */

static void intensity_body(void *arg) {
  unsigned limit = (unsigned)(uintptr_t)arg;
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, limit);
  tr_child_spec_t s[2];
  tr_sup_counts_t cnt;
  tr_ref_t ref;
  tr_reason_t r;
  tr_pid_t sup;
  begin();
  wset(0, "keep");
  wset(1, "crash");
  s[0] = wspec(0, TR_PERMANENT);
  s[1] = wspec(1, TR_PERMANENT);
  TR_OK(tr_sup_start(NULL, &f, s, 2, &sup, NULL));
  TR_OK(tr_monitor(sup, &ref));
  for (unsigned i = 0; i < limit; i++) { /* exactly at the limit: fine */
    make_exit(info(sup, "crash").pid, X_SEGV);
    TR_OK(tr_sup_count_children(sup, &cnt));
    ck_assert_uint_eq(cnt.restarts, i + 1);
    ck_assert_uint_eq(cnt.active, 2);
  }
  events();
  make_exit(info(sup, "crash").pid, X_SEGV); /* one past it */
  r = wait_down(ref);
  ck_assert_int_eq(r.kind, TR_REASON_SHUTDOWN);
  ck_assert_str_eq(events(), "stop:keep ");
  ck_assert(!tr_is_alive(sup));
}

START_TEST(test_intensity_at_and_past_limit) {
  tr_test_run(intensity_body, (void *)(uintptr_t)3);
}
END_TEST

START_TEST(test_intensity_zero) { tr_test_run(intensity_body, (void *)(uintptr_t)0); }
END_TEST

/* Restarts older than the period no longer count. */
static void period_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s;
  tr_sup_counts_t cnt;
  tr_pid_t sup;
  (void)arg;
  begin();
  wset(0, "w");
  s = wspec(0, TR_PERMANENT);
  f.period_ms = 100;
  TR_OK(tr_sup_start_link(&f, &s, 1, &sup, NULL));
  for (int i = 0; i < 3; i++) {
    make_exit(info(sup, "w").pid, X_ERROR);
    TR_OK(tr_sup_count_children(sup, &cnt));
    ck_assert_uint_eq(cnt.active, 1);
    tr_sleep(250); /* well past the period */
  }
  ck_assert_uint_eq(cnt.restarts, 3);
}

START_TEST(test_intensity_period_slides) { tr_test_run(period_body, NULL); }
END_TEST

/* A start that keeps failing is retried; every attempt counts. */
static void retry_fail_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 3);
  tr_child_spec_t s;
  tr_ref_t ref;
  tr_pid_t sup;
  (void)arg;
  begin();
  wset(0, "w");
  W[0].fail_from = 2; /* the first start works, every later one fails */
  s = wspec(0, TR_PERMANENT);
  TR_OK(tr_sup_start(NULL, &f, &s, 1, &sup, NULL));
  TR_OK(tr_monitor(sup, &ref));
  make_exit(info(sup, "w").pid, X_ERROR);
  ck_assert_int_eq(wait_down(ref).kind, TR_REASON_SHUTDOWN);
  /* 1 start + 3 failed restarts allowed by intensity 3; the 4th is refused */
  ck_assert_int_eq(W[0].starts, 4);
}

START_TEST(test_failed_restarts_count) { tr_test_run(retry_fail_body, NULL); }
END_TEST

static void retry_ok_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 10);
  tr_child_spec_t s;
  tr_sup_child_info_t i;
  tr_pid_t sup;
  (void)arg;
  begin();
  wset(0, "w");
  W[0].fail_from = 2;
  W[0].fail_to = 3; /* two failed restarts, then it works */
  s = wspec(0, TR_PERMANENT);
  TR_OK(tr_sup_start_link(&f, &s, 1, &sup, NULL));
  make_exit(info(sup, "w").pid, X_ERROR);
  do { /* the retries go through the mailbox: poll the state */
    i = info(sup, "w");
  } while (i.state != TR_CHILD_RUNNING);
  ck_assert_int_eq(W[0].starts, 4);
  ck_assert_uint_eq(i.failed_starts, 2);
  ck_assert_uint_eq(i.restarts, 1);
}

START_TEST(test_failed_restart_retried) { tr_test_run(retry_ok_body, NULL); }
END_TEST

/* ---- escalation ------------------------------------------------------------ */

static tr_child_spec_t esc_leaf_specs[1];
static tr_sup_flags_t esc_leaf_flags, esc_mid_flags;
static tr_child_spec_t esc_mid_specs[1];
static const tr_sup_def_t esc_leaf = {&esc_leaf_flags, esc_leaf_specs, 1};
static const tr_sup_def_t esc_mid = {&esc_mid_flags, esc_mid_specs, 1};

static tr_child_spec_t sup_spec(const char *id, const tr_sup_def_t *def) {
  tr_child_spec_t s;
  tr_child_spec_init(&s, id, tr_sup_main, (void *)def);
  s.type = TR_SUPERVISOR;
  return s;
}

static tr_pid_t child_of(tr_pid_t sup, const char *id) { return info(sup, id).pid; }

static void escalation_body(void *arg) {
  tr_sup_flags_t rf = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t rs;
  tr_pid_t root, mid, leaf;
  tr_sup_child_info_t i;
  tr_ref_t ref, lref, mref;
  (void)arg;
  begin();
  wset(0, "w");
  esc_leaf_flags = flags_of(TR_ONE_FOR_ONE, 0); /* any crash escalates */
  esc_mid_flags = flags_of(TR_ONE_FOR_ONE, 0);
  esc_leaf_specs[0] = wspec(0, TR_PERMANENT);
  esc_mid_specs[0] = sup_spec("leaf", &esc_leaf);
  rs = sup_spec("mid", &esc_mid);
  TR_OK(tr_sup_start(NULL, &rf, &rs, 1, &root, NULL));
  TR_OK(tr_monitor(root, &ref));
  mid = child_of(root, "mid");
  leaf = child_of(mid, "leaf");
  ck_assert_str_eq(events(), "start:w ");
  /* w crashes: leaf gives up, then mid, and root restarts mid (and all) */
  TR_OK(tr_monitor(leaf, &lref));
  TR_OK(tr_monitor(mid, &mref));
  make_exit(child_of(leaf, "w"), X_FPE);
  ck_assert_int_eq(wait_down(lref).kind, TR_REASON_SHUTDOWN);
  ck_assert_int_eq(wait_down(mref).kind, TR_REASON_SHUTDOWN);
  i = info(root, "mid");
  ck_assert_uint_eq(i.restarts, 1);
  ck_assert_int_eq(i.last_exit.kind, TR_REASON_SHUTDOWN);
  ck_assert(i.pid != mid && !tr_is_alive(mid) && !tr_is_alive(leaf));
  ck_assert_str_eq(events(), "start:w ");
  /* second time within the period: root (intensity 1) gives up too */
  make_exit(child_of(child_of(i.pid, "leaf"), "w"), X_ABORT);
  ck_assert_int_eq(wait_down(ref).kind, TR_REASON_SHUTDOWN);
}

START_TEST(test_escalation_two_levels) { tr_test_run(escalation_body, NULL); }
END_TEST

/* ---- order of start and termination --------------------------------------- */

static void order_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s[4];
  const char *names[] = {"a", "b", "c", "d"};
  tr_reason_t r;
  tr_pid_t sup;
  (void)arg;
  begin();
  for (int i = 0; i < 4; i++) {
    wset(i, names[i]);
    s[i] = wspec(i, TR_PERMANENT);
  }
  TR_OK(tr_sup_start(NULL, &f, s, 4, &sup, NULL));
  ck_assert_str_eq(events(), "start:a start:b start:c start:d ");
  r = stop_monitored(sup);
  ck_assert_int_eq(r.kind, TR_REASON_NORMAL);
  ck_assert_str_eq(events(), "stop:d stop:c stop:b stop:a ");
}

START_TEST(test_start_order_and_reverse_stop) { tr_test_run(order_body, NULL); }
END_TEST

/* The parent's exit stops the tree in reverse order, with its reason. */
static void parent_actor(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s[3];
  tr_pid_t sup;
  (void)arg;
  for (int i = 0; i < 3; i++) s[i] = wspec(i, TR_PERMANENT);
  TR_OK(tr_sup_start_link(&f, s, 3, &sup, NULL));
  tr_send_tagged(g_rec, "sup", "p", sup);
  tr_exit_error(7, "parent leaves");
}

static void parent_exit_body(void *arg) {
  tr_msg_t *m;
  tr_pid_t sup;
  tr_ref_t ref;
  tr_reason_t r;
  (void)arg;
  begin();
  wset(0, "a");
  wset(1, "b");
  wset(2, "c");
  TR_OK(tr_spawn(NULL, parent_actor, NULL, NULL, NULL));
  TR_OK(tr_recv_tag(&m, "sup", -1));
  TR_OK(tr_obj_pid(&tr_msg_obj(m)->via.array.ptr[1], &sup));
  tr_msg_free(m);
  TR_OK(tr_monitor(sup, &ref));
  r = wait_down(ref);
  ck_assert_int_eq(r.kind, TR_REASON_ERROR);
  ck_assert_int_eq(r.code, 7);
  ck_assert_str_eq(events(), "start:a start:b start:c stop:c stop:b stop:a ");
}

START_TEST(test_parent_exit_stops_tree) { tr_test_run(parent_exit_body, NULL); }
END_TEST

/* An exit signal from anyone but the parent is ignored (OTP); kill is not. */
static void foreign_exit_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s;
  tr_sup_counts_t cnt;
  tr_pid_t sup, w;
  tr_ref_t ref, wref;
  (void)arg;
  begin();
  wset(0, "w");
  W[0].trap = 0;
  s = wspec(0, TR_PERMANENT);
  TR_OK(tr_sup_start(NULL, &f, &s, 1, &sup, NULL));
  TR_OK(tr_exit_pid(NULL, sup, TR_REASON_SHUTDOWN));
  TR_OK(tr_sup_count_children(sup, &cnt));
  ck_assert_uint_eq(cnt.active, 1);
  w = child_of(sup, "w");
  TR_OK(tr_monitor(sup, &ref));
  TR_OK(tr_monitor(w, &wref));
  TR_OK(tr_exit_pid(NULL, sup, TR_REASON_KILL));
  ck_assert_int_eq(wait_down(ref).kind, TR_REASON_KILLED);
  ck_assert_int_eq(wait_down(wref).kind, TR_REASON_KILLED); /* via the link */
}

START_TEST(test_foreign_exit_ignored_kill_kills) { tr_test_run(foreign_exit_body, NULL); }
END_TEST

/* ---- the shutdown protocol ------------------------------------------------- */

static void shutdown_body(void *arg) {
  int brutal = (int)(uintptr_t)arg;
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s[2];
  tr_pid_t sup, stubborn, polite;
  tr_ref_t r1, r2;
  (void)arg;
  begin();
  f.report = report_to_rec;
  wset(0, "polite");
  wset(1, "stubborn");
  W[1].ignore_shutdown = 1;
  s[0] = wspec(0, TR_PERMANENT);
  s[1] = wspec(1, TR_PERMANENT);
  s[0].shutdown = brutal ? TR_SHUTDOWN_BRUTAL_KILL : 2000;
  s[1].shutdown = brutal ? TR_SHUTDOWN_BRUTAL_KILL : 50;
  TR_OK(tr_sup_start_link(&f, s, 2, &sup, NULL));
  events();
  polite = child_of(sup, "polite");
  stubborn = child_of(sup, "stubborn");
  TR_OK(tr_monitor(stubborn, &r1));
  TR_OK(tr_monitor(polite, &r2));
  TR_OK(tr_sup_terminate_child(sup, "stubborn"));
  ck_assert_int_eq(wait_down(r1).kind, TR_REASON_KILLED);
  TR_OK(tr_sup_terminate_child(sup, "polite"));
  ck_assert_int_eq(wait_down(r2).kind,
                   brutal ? TR_REASON_KILLED : TR_REASON_SHUTDOWN);
  if (brutal) {
    /* never asked: killed outright, no chance to see an EXIT */
    ck_assert_str_eq(events(), "");
    ck_assert_int_eq(next_report(TR_SUP_CHILD_STOPPED, "stubborn"), TR_REASON_KILLED);
    ck_assert_int_eq(next_report(TR_SUP_CHILD_STOPPED, "polite"), TR_REASON_KILLED);
  } else {
    /* stubborn saw shutdown, ignored it and was killed after 50 ms */
    ck_assert_str_eq(events(), "stop:stubborn stop:polite ");
    ck_assert_int_eq(next_report(TR_SUP_SHUTDOWN_ERROR, "stubborn"), TR_REASON_KILLED);
    ck_assert_int_eq(next_report(TR_SUP_CHILD_STOPPED, "polite"), TR_REASON_SHUTDOWN);
  }
  ck_assert_int_eq(info(sup, "stubborn").state, TR_CHILD_STOPPED);
}

START_TEST(test_shutdown_timeout_then_kill) { tr_test_run(shutdown_body, (void *)0); }
END_TEST

START_TEST(test_brutal_kill) { tr_test_run(shutdown_body, (void *)1); }
END_TEST

/* A nested supervisor (shutdown infinity) stops bottom-up, in order. */
static tr_child_spec_t nest_specs[2];
static tr_sup_flags_t nest_flags;
static const tr_sup_def_t nest_def = {&nest_flags, nest_specs, 2};

static void nested_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s[3], got;
  tr_sup_counts_t cnt;
  tr_pid_t sup;
  (void)arg;
  begin();
  wset(0, "w1");
  wset(1, "x");
  wset(2, "y");
  wset(3, "w2");
  nest_flags = flags_of(TR_REST_FOR_ONE, 1);
  nest_specs[0] = wspec(1, TR_PERMANENT);
  nest_specs[1] = wspec(2, TR_PERMANENT);
  s[0] = wspec(0, TR_PERMANENT);
  s[1] = sup_spec("sub", &nest_def);
  s[2] = wspec(3, TR_PERMANENT);
  TR_OK(tr_sup_start(NULL, &f, s, 3, &sup, NULL));
  TR_OK(tr_sup_get_childspec(sup, "sub", &got));
  ck_assert_int_eq(got.shutdown, TR_SHUTDOWN_INFINITY);
  ck_assert_int_eq(got.type, TR_SUPERVISOR);
  TR_OK(tr_sup_get_childspec(sup, "w1", &got));
  ck_assert_int_eq(got.shutdown, 5000);
  TR_OK(tr_sup_count_children(sup, &cnt));
  ck_assert_uint_eq(cnt.specs, 3);
  ck_assert_uint_eq(cnt.supervisors, 1);
  ck_assert_uint_eq(cnt.workers, 2);
  ck_assert_str_eq(events(), "start:w1 start:x start:y start:w2 ");
  stop_monitored(sup);
  ck_assert_str_eq(events(), "stop:w2 stop:y stop:x stop:w1 ");
}

START_TEST(test_nested_supervisor_infinity) { tr_test_run(nested_body, NULL); }
END_TEST

/* ---- init ack: ok / ignore / error / crash -------------------------------- */

static void ignore_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s[3];
  tr_sup_child_info_t v[3];
  tr_pid_t sup;
  size_t n;
  (void)arg;
  begin();
  wset(0, "a");
  wset(1, "ign");
  wset(2, "tmp");
  W[1].init = INIT_IGNORE;
  W[2].init = INIT_IGNORE;
  s[0] = wspec(0, TR_PERMANENT);
  s[1] = wspec(1, TR_PERMANENT);
  s[2] = wspec(2, TR_TEMPORARY);
  TR_OK(tr_sup_start_link(&f, s, 3, &sup, NULL));
  TR_OK(tr_sup_which_children(sup, v, 3, &n));
  ck_assert_uint_eq(n, 2); /* the ignored temporary spec is not kept */
  ck_assert_str_eq(v[1].id, "ign");
  ck_assert(v[1].pid == TR_PID_NONE);
  ck_assert_int_eq(v[1].state, TR_CHILD_STOPPED);
  ck_assert_str_eq(events(), "start:a start:ign start:tmp ");
}

START_TEST(test_init_ignore) { tr_test_run(ignore_body, NULL); }
END_TEST

static int match_exit_any(const tr_msg_t *m, void *arg) {
  (void)arg;
  return tr_msg_kind(m) == TR_MSG_EXIT;
}

static void init_fail_body(void *arg) {
  int mode = (int)(uintptr_t)arg;
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s[3];
  tr_sup_error_t err;
  tr_pid_t sup = 1;
  tr_msg_t *m;
  size_t before;
  begin();
  tr_trap_exit(1);
  wset(0, "a");
  wset(1, "b");
  wset(2, "c");
  W[1].init = mode;
  for (int i = 0; i < 3; i++) s[i] = wspec(i, TR_PERMANENT);
  before = tr_runtime_actor_count(tr_runtime_current());
  ck_assert_int_eq(tr_sup_start_link(&f, s, 3, &sup, &err), TR_ESTART);
  ck_assert(sup == TR_PID_NONE);
  ck_assert_str_eq(err.id, "b");
  ck_assert_msg(strstr(err.message, "\"b\"") != NULL, "message: %s", err.message);
  if (mode == INIT_ERROR) {
    ck_assert_int_eq(err.reason.kind, TR_REASON_ERROR);
    ck_assert_int_eq(err.reason.code, -77);
  } else if (mode == INIT_CRASH) {
    ck_assert_int_eq(err.reason.kind, TR_REASON_SEGV);
  } else {
    ck_assert_int_eq(err.reason.kind, TR_REASON_NORMAL);
  }
  /* a was stopped, c never started; no EXIT of the supervisor is left */
  ck_assert_str_eq(events(), "start:a start:b stop:a ");
  ck_assert_int_eq(tr_recv_match(&m, match_exit_any, NULL, 0), TR_ETIMEDOUT);
  ck_assert_uint_eq(tr_runtime_actor_count(tr_runtime_current()), before);
}

START_TEST(test_init_error) { tr_test_run(init_fail_body, (void *)INIT_ERROR); }
END_TEST

START_TEST(test_init_crash) { tr_test_run(init_fail_body, (void *)INIT_CRASH); }
END_TEST

START_TEST(test_init_exit_before_ack) { tr_test_run(init_fail_body, (void *)INIT_RETURN); }
END_TEST

/* A caller that does not trap exits is killed by a failing start_link. */
static void doomed_starter(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s = wspec(0, TR_PERMANENT);
  (void)arg;
  tr_sup_start_link(&f, &s, 1, NULL, NULL);
  tr_send_tagged(g_rec, "survived", NULL);
}

static void init_fail_link_body(void *arg) {
  tr_pid_t p;
  tr_ref_t ref;
  tr_msg_t *m;
  (void)arg;
  begin();
  wset(0, "bad");
  W[0].init = INIT_ERROR;
  TR_OK(tr_spawn(NULL, doomed_starter, NULL, NULL, &p));
  TR_OK(tr_monitor(p, &ref));
  ck_assert_int_eq(wait_down(ref).kind, TR_REASON_SHUTDOWN);
  ck_assert_int_eq(tr_recv_tag(&m, "survived", 0), TR_ETIMEDOUT);
}

START_TEST(test_init_error_kills_linked_caller) { tr_test_run(init_fail_link_body, NULL); }
END_TEST

/* A supervisor child whose own spec is bad fails its parent's start. */
static tr_child_spec_t bad_nested_specs[2];
static const tr_sup_def_t bad_nested = {NULL, bad_nested_specs, 2};

static void nested_invalid_body(void *arg) {
  tr_child_spec_t s;
  tr_sup_error_t err;
  tr_pid_t sup;
  (void)arg;
  begin();
  wset(0, "dup");
  bad_nested_specs[0] = wspec(0, TR_PERMANENT);
  bad_nested_specs[1] = wspec(0, TR_PERMANENT); /* duplicate id */
  s = sup_spec("inner", &bad_nested);
  ck_assert_int_eq(tr_sup_start(NULL, NULL, &s, 1, &sup, &err), TR_ESTART);
  ck_assert_str_eq(err.id, "inner");
  ck_assert_int_eq(err.reason.kind, TR_REASON_ERROR);
  ck_assert_int_eq(err.reason.code, TR_EINVAL);
  ck_assert_msg(strstr(err.reason.text, "duplicate id") != NULL, "%s",
                err.reason.text);
  ck_assert_str_eq(events(), "");
}

START_TEST(test_nested_invalid_spec) { tr_test_run(nested_invalid_body, NULL); }
END_TEST

/* ---- invalid flags and specs ----------------------------------------------- */

typedef struct {
  const char *what;
  int index; /* expected err.index */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"duplicate id", 1},  {"no start function", 0}, {"id is empty", 0},
    {"restart", 0},       {"shutdown", 1},          {"type", 0},
    {"stack_size", 0},    {"unknown flags", 0},     {"size", 0},
    {"strategy", -1},     {"period_ms", -1},        {"exactly one", -1},
    {"exactly one", -1},  {"backoff.max_ms", -1},   {"jitter", -1},
    {"name", -1},         {"id is not NUL", 0},
};
#define N_BAD (int)(sizeof(bad_cases) / sizeof(bad_cases[0]))

static void bad_setup(int c, tr_sup_flags_t *f, tr_child_spec_t *s, size_t *n) {
  static char longname[TR_NAME_MAX + 8];
  *f = flags_of(TR_ONE_FOR_ONE, 1);
  s[0] = wspec(0, TR_PERMANENT);
  s[1] = wspec(1, TR_PERMANENT);
  *n = 2;
  switch (c) {
  case 0: snprintf(s[1].id, sizeof(s[1].id), "%s", s[0].id); break;
  case 1: s[0].start = NULL; break;
  case 2: s[0].id[0] = '\0'; break;
  case 3: s[0].restart = (tr_restart_t)7; break;
  case 4: s[1].shutdown = -3; break;
  case 5: s[0].type = (tr_child_type_t)9; break;
  case 6: s[0].stack_size = 100; break;
  case 7: s[0].flags = 0x80; break;
  case 8: s[0].size = s[1].size = 12; break;
  case 9: f->strategy = (tr_sup_strategy_t)11; break;
  case 10: f->period_ms = 0; break;
  case 11: f->strategy = TR_SIMPLE_ONE_FOR_ONE; break; /* two specs */
  case 12: f->strategy = TR_SIMPLE_ONE_FOR_ONE; *n = 0; break;
  case 13: f->backoff.min_ms = 100; f->backoff.max_ms = 10; break;
  case 14: f->backoff.jitter = 2.0; break;
  case 15:
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    f->name = longname;
    break;
  case 16: memset(s[0].id, 'x', sizeof(s[0].id)); break;
  default: break;
  }
}

static void invalid_body(void *arg) {
  int c = g_case;
  tr_sup_flags_t f;
  tr_child_spec_t s[2];
  tr_sup_error_t err;
  tr_pid_t sup = 1;
  size_t n, before;
  (void)arg;
  begin();
  wset(0, "one");
  wset(1, "two");
  bad_setup(c, &f, s, &n);
  before = tr_runtime_actor_count(tr_runtime_current());
  memset(&err, 0, sizeof(err));
  ck_assert_int_eq(tr_sup_start(NULL, &f, s, n, &sup, &err), TR_EINVAL);
  ck_assert(sup == TR_PID_NONE);
  ck_assert_msg(strstr(err.message, bad_cases[c].what) != NULL,
                "case %d: message \"%s\" lacks \"%s\"", c, err.message,
                bad_cases[c].what);
  ck_assert_int_eq(err.index, bad_cases[c].index);
  ck_assert_uint_eq(tr_runtime_actor_count(tr_runtime_current()), before);
  ck_assert_str_eq(events(), ""); /* nothing started */
  /* the same checks guard start_link and start_child */
  ck_assert_int_eq(tr_sup_start_link(&f, s, n, &sup, NULL), TR_EINVAL);
}

START_TEST(test_invalid_specs) {
  g_case = _i;
  tr_test_run(invalid_body, NULL);
}
END_TEST

START_TEST(test_spec_init_rejects_bad_ids) {
  tr_child_spec_t s;
  char big[TR_SUP_ID_MAX + 1];
  memset(big, 'i', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  ck_assert_int_eq(tr_child_spec_init(&s, NULL, worker, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_child_spec_init(&s, "", worker, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_child_spec_init(&s, big, worker, NULL), TR_EINVAL);
  TR_OK(tr_child_spec_init(&s, "ok", worker, NULL));
  ck_assert_int_eq(s.restart, TR_PERMANENT);
  ck_assert_int_eq(s.shutdown, TR_SHUTDOWN_DEFAULT);
  ck_assert_int_eq(s.type, TR_WORKER);
  ck_assert_int_eq(tr_sup_init_ack(TR_INIT_OK), TR_ENOTACTOR);
  ck_assert_str_eq(tr_err_name(TR_ESTART), "TR_ESTART");
}
END_TEST

/* ---- the run-time API and its errors ---------------------------------------- */

/* An empty one_for_one supervisor, then a (permanent), b (transient) and
 * tmp (temporary) added with start_child; "bad" fails its init. */
static tr_pid_t dyn_setup(void) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 5);
  tr_child_spec_t s;
  tr_pid_t sup;
  size_t n;
  begin();
  wset(0, "a");
  wset(1, "b");
  wset(2, "tmp");
  wset(3, "bad");
  W[3].init = INIT_ERROR;
  TR_OK(tr_sup_start_link(&f, NULL, 0, &sup, NULL));
  TR_OK(tr_sup_which_children(sup, NULL, 0, &n));
  ck_assert_uint_eq(n, 0);
  s = wspec(0, TR_PERMANENT);
  TR_OK(tr_sup_start_child(sup, &s, NULL, NULL));
  s = wspec(1, TR_TRANSIENT);
  TR_OK(tr_sup_start_child(sup, &s, NULL, NULL));
  s = wspec(2, TR_TEMPORARY);
  TR_OK(tr_sup_start_child(sup, &s, NULL, NULL));
  return sup;
}

static void dyn_start_body(void *arg) {
  tr_pid_t sup = dyn_setup(), p, p2;
  tr_child_spec_t s = wspec(0, TR_PERMANENT), got;
  tr_sup_error_t err;
  (void)arg;
  p = info(sup, "a").pid;
  ck_assert(tr_is_alive(p));
  ck_assert_int_eq(tr_sup_start_child(sup, &s, &p2, NULL), TR_EBUSY);
  ck_assert(p2 == p); /* already_started, with its pid */
  s.start = NULL;
  ck_assert_int_eq(tr_sup_start_child(sup, &s, &p2, &err), TR_EINVAL);
  ck_assert(strstr(err.message, "no start function") != NULL);
  ck_assert_int_eq(tr_sup_start_child(sup, NULL, &p2, &err), TR_EINVAL);
  s = wspec(3, TR_PERMANENT);
  ck_assert_int_eq(tr_sup_start_child(sup, &s, &p2, &err), TR_ESTART);
  ck_assert(p2 == TR_PID_NONE);
  ck_assert_str_eq(err.id, "bad");
  ck_assert_int_eq(err.reason.code, -77);
  ck_assert_int_eq(tr_sup_get_childspec(sup, "bad", &got), TR_ENOENT); /* not kept */
  ck_assert_int_eq(tr_sup_start_child_arg(sup, NULL, &p2, NULL), TR_ENOTSUP);
  ck_assert_str_eq(events(), "start:a start:b start:tmp start:bad ");
  TR_OK(tr_sup_terminate_child(sup, "a"));
  s = wspec(0, TR_PERMANENT);
  ck_assert_int_eq(tr_sup_start_child(sup, &s, &p2, NULL), TR_EEXIST); /* present */
}

START_TEST(test_dynamic_start_child) { tr_test_run(dyn_start_body, NULL); }
END_TEST

static void dyn_lifecycle_body(void *arg) {
  tr_pid_t sup = dyn_setup(), p = TR_PID_NONE, p2;
  tr_child_spec_t s, got;
  tr_sup_child_info_t i;
  (void)arg;
  p = info(sup, "a").pid;
  events();
  /* terminate_child: spec kept (temporary: dropped) */
  TR_OK(tr_sup_terminate_child(sup, "a"));
  ck_assert(!tr_is_alive(p));
  ck_assert_int_eq(info(sup, "a").state, TR_CHILD_STOPPED);
  TR_OK(tr_sup_terminate_child(sup, "a")); /* not running: fine */
  ck_assert_int_eq(tr_sup_terminate_child(sup, "zz"), TR_ENOENT);
  ck_assert_int_eq(tr_sup_terminate_child(sup, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_sup_terminate_child_pid(sup, p), TR_ENOENT);
  TR_OK(tr_sup_terminate_child(sup, "tmp"));
  ck_assert_int_eq(tr_sup_child_info(sup, "tmp", &i), TR_ENOENT);
  ck_assert_str_eq(events(), "stop:a stop:tmp ");
  /* restart_child */
  ck_assert_int_eq(tr_sup_restart_child(sup, "b", &p2, NULL), TR_EBUSY);
  ck_assert_int_eq(tr_sup_restart_child(sup, "zz", &p2, NULL), TR_ENOENT);
  TR_OK(tr_sup_restart_child(sup, "a", &p2, NULL));
  ck_assert(tr_is_alive(p2) && p2 != p);
  ck_assert(info(sup, "a").pid == p2);
  /* delete_child */
  ck_assert_int_eq(tr_sup_delete_child(sup, "a"), TR_EBUSY);
  ck_assert_int_eq(tr_sup_delete_child(sup, "zz"), TR_ENOENT);
  TR_OK(tr_sup_terminate_child(sup, "a"));
  TR_OK(tr_sup_delete_child(sup, "a"));
  ck_assert_int_eq(tr_sup_get_childspec(sup, "a", &got), TR_ENOENT);
  s = wspec(0, TR_PERMANENT);
  TR_OK(tr_sup_start_child(sup, &s, &p, NULL)); /* the id is free again */
  /* a transient child that ends normally keeps its spec, restartable */
  make_exit(info(sup, "b").pid, X_NORMAL);
  ck_assert_int_eq(info(sup, "b").state, TR_CHILD_STOPPED);
  TR_OK(tr_sup_restart_child(sup, "b", &p2, NULL));
  ck_assert(tr_is_alive(p2));
}

START_TEST(test_dynamic_terminate_restart_delete) {
  tr_test_run(dyn_lifecycle_body, NULL);
}
END_TEST

static void dyn_query_body(void *arg) {
  tr_pid_t sup = dyn_setup(), b, t;
  tr_sup_child_info_t v[4];
  tr_sup_counts_t cnt;
  tr_child_spec_t got;
  size_t n;
  (void)arg;
  b = info(sup, "b").pid;
  t = info(sup, "tmp").pid;
  TR_OK(tr_sup_which_children(sup, v, 1, &n)); /* a short buffer */
  ck_assert_uint_eq(n, 3);
  ck_assert_str_eq(v[0].id, "a");
  TR_OK(tr_sup_which_children(sup, v, 4, &n));
  ck_assert_uint_eq(n, 3);
  ck_assert_str_eq(v[1].id, "b");
  ck_assert(v[1].pid == b && v[1].state == TR_CHILD_RUNNING);
  ck_assert(v[2].pid == t && v[2].restart == TR_TEMPORARY);
  ck_assert_int_eq(tr_sup_which_children(sup, NULL, 2, &n), TR_EINVAL);
  TR_OK(tr_sup_count_children(sup, &cnt));
  ck_assert_uint_eq(cnt.specs, 3);
  ck_assert_uint_eq(cnt.active, 3);
  ck_assert_uint_eq(cnt.workers, 3);
  ck_assert_uint_eq(cnt.supervisors, 0);
  TR_OK(tr_sup_get_childspec(sup, "b", &got));
  ck_assert_int_eq(got.restart, TR_TRANSIENT);
  ck_assert_int_eq(got.shutdown, 5000);
  ck_assert(got.start == worker && got.arg == &W[1]);
  ck_assert_int_eq(tr_sup_get_childspec(sup, "zz", &got), TR_ENOENT);
  ck_assert_int_eq(tr_sup_child_info(sup, "zz", &v[0]), TR_ENOENT);
  /* stop; then every call says the supervisor is gone */
  TR_OK(tr_sup_stop(sup));
  ck_assert(!tr_is_alive(sup) && !tr_is_alive(b) && !tr_is_alive(t));
  ck_assert_int_eq(tr_sup_count_children(sup, &cnt), TR_EDOWN);
  ck_assert_int_eq(tr_sup_which_children(sup, v, 4, &n), TR_EDOWN);
  ck_assert_int_eq(tr_sup_stop(sup), TR_EDOWN);
  ck_assert_int_eq(tr_sup_terminate_child(sup, "a"), TR_EDOWN);
}

START_TEST(test_dynamic_queries_and_stop) { tr_test_run(dyn_query_body, NULL); }
END_TEST

/* restarting: a restart pending under backoff */
static void restarting_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 5);
  tr_child_spec_t s;
  tr_sup_child_info_t i;
  tr_pid_t sup, p;
  (void)arg;
  begin();
  wset(0, "w");
  f.backoff.min_ms = 60000;
  f.backoff.max_ms = 60000;
  s = wspec(0, TR_PERMANENT);
  TR_OK(tr_sup_start_link(&f, &s, 1, &sup, NULL));
  make_exit(info(sup, "w").pid, X_ERROR);
  i = info(sup, "w");
  ck_assert_int_eq(i.state, TR_CHILD_RESTARTING);
  ck_assert(i.pid == TR_PID_NONE);
  ck_assert_int_eq(tr_sup_restart_child(sup, "w", &p, NULL), UV_EAGAIN);
  ck_assert_int_eq(tr_sup_delete_child(sup, "w"), UV_EAGAIN);
  /* terminate_child cancels the pending restart */
  TR_OK(tr_sup_terminate_child(sup, "w"));
  ck_assert_int_eq(info(sup, "w").state, TR_CHILD_STOPPED);
  TR_OK(tr_sup_restart_child(sup, "w", &p, NULL));
  ck_assert(tr_is_alive(p));
  ck_assert_int_eq(tr_sup_delete_child(sup, "w"), TR_EBUSY);
}

START_TEST(test_restarting_errors) { tr_test_run(restarting_body, NULL); }
END_TEST

/* Backoff delays the restart (the child is restarting meanwhile). */
static void backoff_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ALL, 5);
  tr_child_spec_t s[2];
  tr_sup_child_info_t v[2];
  tr_msg_t *m;
  tr_pid_t sup;
  size_t n;
  (void)arg;
  begin();
  wset(0, "a");
  wset(1, "b");
  f.backoff.min_ms = 30;
  f.backoff.max_ms = 30;
  f.backoff.jitter = 0.5;
  s[0] = wspec(0, TR_PERMANENT);
  s[1] = wspec(1, TR_PERMANENT);
  TR_OK(tr_sup_start_link(&f, s, 2, &sup, NULL));
  events();
  make_exit(info(sup, "b").pid, X_SEGV);
  TR_OK(tr_sup_which_children(sup, v, 2, &n));
  /* the group went down at once; b waits for its delay */
  ck_assert_int_eq(v[0].state, TR_CHILD_STOPPED);
  ck_assert_int_eq(v[1].state, TR_CHILD_RESTARTING);
  ck_assert_str_eq(events(), "stop:a ");
  TR_OK(tr_recv_tag(&m, "ev", -1)); /* a starts again when the delay is over */
  tr_msg_free(m);
  TR_OK(tr_recv_tag(&m, "ev", -1));
  tr_msg_free(m);
  TR_OK(tr_sup_which_children(sup, v, 2, &n));
  ck_assert_int_eq(v[0].state, TR_CHILD_RUNNING);
  ck_assert_int_eq(v[1].state, TR_CHILD_RUNNING);
  ck_assert_uint_eq(v[1].restarts, 1);
}

START_TEST(test_backoff) { tr_test_run(backoff_body, NULL); }
END_TEST

/* Reports: a crash gives child_terminated then child_restarted. */
static void report_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 5);
  tr_child_spec_t s;
  tr_pid_t sup;
  (void)arg;
  begin();
  wset(0, "w");
  f.report = report_to_rec;
  s = wspec(0, TR_PERMANENT);
  TR_OK(tr_sup_start_link(&f, &s, 1, &sup, NULL));
  ck_assert_int_eq(next_report(TR_SUP_CHILD_STARTED, "w"), -1);
  make_exit(info(sup, "w").pid, X_STACK);
  info(sup, "w");
  ck_assert_int_eq(next_report(TR_SUP_CHILD_EXITED, "w"), TR_REASON_STACK_OVERFLOW);
  ck_assert_int_eq(next_report(TR_SUP_CHILD_RESTARTED, "w"), -1);
}

START_TEST(test_reports) { tr_test_run(report_body, NULL); }
END_TEST

/* ---- simple_one_for_one ------------------------------------------------------ */

static void sofo_api_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_SIMPLE_ONE_FOR_ONE, 5);
  tr_child_spec_t s, got;
  tr_sup_child_info_t v[3];
  tr_sup_counts_t cnt;
  tr_pid_t sup, p[3];
  size_t n;
  (void)arg;
  begin();
  wset(0, "x");
  wset(1, "y");
  wset(2, "z");
  s = wspec(0, TR_TRANSIENT);
  snprintf(s.id, sizeof(s.id), "tmpl");
  TR_OK(tr_sup_start_link(&f, &s, 1, &sup, NULL));
  for (int i = 0; i < 3; i++) TR_OK(tr_sup_start_child_arg(sup, &W[i], &p[i], NULL));
  ck_assert_str_eq(events(), "start:x start:y start:z ");
  ck_assert_int_eq(tr_sup_start_child(sup, &s, NULL, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_sup_terminate_child(sup, "tmpl"), TR_ENOTSUP);
  ck_assert_int_eq(tr_sup_restart_child(sup, "tmpl", NULL, NULL), TR_ENOTSUP);
  ck_assert_int_eq(tr_sup_delete_child(sup, "tmpl"), TR_ENOTSUP);
  ck_assert_int_eq(tr_sup_child_info(sup, "tmpl", &v[0]), TR_ENOTSUP);
  TR_OK(tr_sup_get_childspec(sup, "tmpl", &got));
  ck_assert_int_eq(got.restart, TR_TRANSIENT);
  ck_assert_int_eq(tr_sup_terminate_child_pid(sup, sup), TR_ENOENT);
  TR_OK(tr_sup_terminate_child_pid(sup, p[1]));
  ck_assert_int_eq(tr_sup_terminate_child_pid(sup, p[1]), TR_ENOENT);
  ck_assert_str_eq(events(), "stop:y ");
  TR_OK(tr_sup_count_children(sup, &cnt));
  ck_assert_uint_eq(cnt.specs, 1);
  ck_assert_uint_eq(cnt.active, 2);
  ck_assert_uint_eq(cnt.workers, 2);
  TR_OK(tr_sup_which_children(sup, v, 3, &n));
  ck_assert_uint_eq(n, 2);
  ck_assert(v[0].pid == p[0] && v[1].pid == p[2]);
  ck_assert_str_eq(v[0].id, "tmpl");
  /* an ignoring child is not kept */
  W[1].init = INIT_IGNORE;
  TR_OK(tr_sup_start_child_arg(sup, &W[1], &p[1], NULL));
  ck_assert(p[1] == TR_PID_NONE);
  TR_OK(tr_sup_count_children(sup, &cnt));
  ck_assert_uint_eq(cnt.workers, 2);
  /* the dynamic children stop all at once on exit */
  stop_monitored(sup);
  ck_assert(!tr_is_alive(p[0]) && !tr_is_alive(p[2]));
}

START_TEST(test_simple_one_for_one_api) { tr_test_run(sofo_api_body, NULL); }
END_TEST

/* 10,000 workers; 1,000 crash at once; all come back, counts right. */
#define BIG (tr_test_on_tsan() ? 4000 : 10000)
#define CRASH (BIG / 10)

static void mini_worker(void *arg) {
  (void)arg;
  tr_sup_init_ack(TR_INIT_OK);
  for (;;) {
    tr_msg_t *m;
    if (tr_recv(&m, -1) != 0) continue;
    if (tr_msg_is_tag(m, "die")) tr_exit_error(9, "told to");
    tr_msg_free(m);
  }
}

static void big_body(void *arg) {
  tr_sup_flags_t f = flags_of(TR_SIMPLE_ONE_FOR_ONE, CRASH);
  tr_sup_child_info_t *v = calloc(BIG + 1, sizeof(*v));
  tr_pid_t *old = calloc(BIG, sizeof(*old)), sup;
  tr_ref_t *refs = calloc(CRASH, sizeof(*refs));
  tr_sup_counts_t cnt;
  tr_child_spec_t s;
  size_t n;
  uint64_t restarts = 0;
  (void)arg;
  ck_assert(v && old && refs);
  tr_child_spec_init(&s, "mini", mini_worker, NULL);
  s.stack_size = TR_STACK_SIZE_MIN;
  TR_OK(tr_sup_start_link(&f, &s, 1, &sup, NULL));
  for (int i = 0; i < BIG; i++) TR_OK(tr_sup_start_child_arg(sup, NULL, &old[i], NULL));
  for (int i = 0; i < CRASH; i++) { /* every 10th, all signalled at once */
    TR_OK(tr_monitor(old[i * 10], &refs[i]));
    TR_OK(tr_send_tagged(old[i * 10], "die", NULL));
  }
  for (int i = 0; i < CRASH; i++) ck_assert_int_eq(wait_down(refs[i]).kind, TR_REASON_ERROR);
  TR_OK(tr_sup_which_children(sup, v, BIG + 1, &n));
  ck_assert_uint_eq(n, BIG);
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(v[i].state, TR_CHILD_RUNNING);
    ck_assert(tr_is_alive(v[i].pid));
    restarts += v[i].restarts;
    ck_assert_uint_eq(v[i].restarts, v[i].exits);
    if (v[i].exits) {
      ck_assert_int_eq(v[i].last_exit.kind, TR_REASON_ERROR);
      ck_assert_int_eq(v[i].last_exit.code, 9);
    }
  }
  ck_assert_uint_eq(restarts, CRASH);
  TR_OK(tr_sup_count_children(sup, &cnt));
  ck_assert_uint_eq(cnt.active, BIG);
  ck_assert_uint_eq(cnt.workers, BIG);
  ck_assert_uint_eq(cnt.specs, 1);
  ck_assert_uint_eq(cnt.restarts, CRASH); /* exactly at the intensity */
  for (int i = 0; i < BIG; i++) ck_assert(tr_is_alive(old[i]) == (i % 10 != 0 || i >= CRASH * 10));
  stop_monitored(sup);
  ck_assert_uint_eq(tr_runtime_actor_count(tr_runtime_current()), 1);
  free(v);
  free(old);
  free(refs);
}

START_TEST(test_ten_thousand_workers) { tr_test_run(big_body, NULL); }
END_TEST

/* ---- starting from outside any actor ------------------------------------------ */

START_TEST(test_start_outside_actor) {
  tr_runtime_t *rt;
  tr_sup_flags_t f = flags_of(TR_ONE_FOR_ONE, 1);
  tr_child_spec_t s[2];
  tr_sup_error_t err;
  tr_pid_t sup, who;
  g_rec = TR_PID_NONE; /* events go nowhere */
  wset(0, "a");
  wset(1, "b");
  W[0].trap = W[1].trap = 0;
  s[0] = wspec(0, TR_PERMANENT);
  s[1] = wspec(1, TR_PERMANENT);
  f.name = "top_sup";
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_sup_start(rt, &f, s, 2, &sup, &err));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 3);
  TR_OK(tr_whereis("top_sup", &who));
  ck_assert(who == sup);
  ck_assert_int_eq(W[0].starts, 1);
  ck_assert_int_eq(W[1].starts, 1);
  /* the name is taken now */
  ck_assert_int_eq(tr_sup_start(rt, &f, s, 2, &who, &err), TR_EEXIST);
  /* a failing child fails the start, synchronously */
  W[1].init = INIT_ERROR;
  f.name = NULL;
  ck_assert_int_eq(tr_sup_start(rt, &f, s, 2, &who, &err), TR_ESTART);
  ck_assert_str_eq(err.id, "b");
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 3);
  /* tr_runtime_stop shuts the tree down in order */
  TR_OK(tr_runtime_stop(rt));
  TR_OK(tr_runtime_run(rt));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

START_TEST(test_start_attached_unsupported) {
  uv_loop_t loop;
  tr_runtime_t *rt;
  tr_sup_error_t err;
  tr_pid_t sup;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  TR_OK(tr_runtime_attach(&rt, &loop, NULL));
  ck_assert_int_eq(tr_sup_start(rt, NULL, NULL, 0, &sup, &err), TR_ENOTSUP);
  ck_assert(strstr(err.message, "from an actor") != NULL);
  ck_assert_int_eq(tr_sup_start(NULL, NULL, NULL, 0, &sup, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_sup_start_link(NULL, NULL, 0, &sup, NULL), TR_ENOTACTOR);
  TR_OK(tr_runtime_free(rt));
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0) {
  }
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- suite ------------------------------------------------------------------ */

static Suite *suite_supervisor(void) {
  Suite *s = suite_create("supervisor");
  TCase *tc = tcase_create("rules");
  TCase *big = tcase_create("scale");
  tcase_set_timeout(tc, 60);
  tcase_set_timeout(big, 300);
  tcase_add_loop_test(tc, test_strategy_matrix, 0, 4 * 3 * X__COUNT);
  tcase_add_test(tc, test_one_for_all_drops_temporary);
  tcase_add_test(tc, test_intensity_at_and_past_limit);
  tcase_add_test(tc, test_intensity_zero);
  tcase_add_test(tc, test_intensity_period_slides);
  tcase_add_test(tc, test_failed_restarts_count);
  tcase_add_test(tc, test_failed_restart_retried);
  tcase_add_test(tc, test_escalation_two_levels);
  tcase_add_test(tc, test_start_order_and_reverse_stop);
  tcase_add_test(tc, test_parent_exit_stops_tree);
  tcase_add_test(tc, test_foreign_exit_ignored_kill_kills);
  tcase_add_test(tc, test_shutdown_timeout_then_kill);
  tcase_add_test(tc, test_brutal_kill);
  tcase_add_test(tc, test_nested_supervisor_infinity);
  tcase_add_test(tc, test_init_ignore);
  tcase_add_test(tc, test_init_error);
  tcase_add_test(tc, test_init_crash);
  tcase_add_test(tc, test_init_exit_before_ack);
  tcase_add_test(tc, test_init_error_kills_linked_caller);
  tcase_add_test(tc, test_nested_invalid_spec);
  tcase_add_loop_test(tc, test_invalid_specs, 0, N_BAD);
  tcase_add_test(tc, test_spec_init_rejects_bad_ids);
  tcase_add_test(tc, test_dynamic_start_child);
  tcase_add_test(tc, test_dynamic_terminate_restart_delete);
  tcase_add_test(tc, test_dynamic_queries_and_stop);
  tcase_add_test(tc, test_restarting_errors);
  tcase_add_test(tc, test_backoff);
  tcase_add_test(tc, test_reports);
  tcase_add_test(tc, test_simple_one_for_one_api);
  tcase_add_test(tc, test_start_outside_actor);
  tcase_add_test(tc, test_start_attached_unsupported);
  tcase_add_test(big, test_ten_thousand_workers);
  suite_add_tcase(s, tc);
  suite_add_tcase(s, big);
  return s;
}

TR_TEST_MAIN(suite_supervisor)
