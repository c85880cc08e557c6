/* Check suite for links, monitors and exit signals (actors/link.c), with
 * Erlang's rules: bidirectional links, trap_exit, kill vs killed, normal,
 * noproc, unlink, DOWN {ref, pid, reason}, demonitor (+flush),
 * spawn_link / spawn_monitor, and link storms. */
#include <stdint.h>

#include "testutil.h"

/* How long a test waits for something that must happen (a hang otherwise
 * turns into a clear failure), or for something that must not. */
#define WAIT_MS 5000
#define QUIET_MS 50

/* ------------------------------------------------------------------------ */
/* Message helpers                                                          */
/* ------------------------------------------------------------------------ */

static const msgpack_object *arg_obj(tr_msg_t *m, uint32_t i) {
  const msgpack_object *o = tr_msg_obj(m);
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_gt(o->via.array.size, i);
  return &o->via.array.ptr[i];
}

static int64_t arg_int(tr_msg_t *m, uint32_t i) {
  const msgpack_object *o = arg_obj(m, i);
  ck_assert(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
            o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
  return o->via.i64;
}

static tr_pid_t arg_pid(tr_msg_t *m, uint32_t i) {
  tr_pid_t p = TR_PID_NONE;
  TR_OK(tr_obj_pid(arg_obj(m, i), &p));
  return p;
}

static int arg_str_is(tr_msg_t *m, uint32_t i, const char *s) {
  const msgpack_object *o = arg_obj(m, i);
  return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
         memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

typedef struct {
  tr_msg_kind_t kind;
  tr_pid_t from;
  tr_ref_t ref; /* 0: any */
} sys_match_t;

static int match_sys(const tr_msg_t *m, void *arg) {
  const sys_match_t *w = arg;
  return tr_msg_kind(m) == w->kind && tr_msg_from(m) == w->from &&
         (w->ref == 0 || tr_msg_ref(m) == w->ref);
}

/* Receives the EXIT / DOWN from `from` (and ref, if nonzero) and returns its
 * reason; fails the test if it does not come. */
static tr_reason_t recv_sys(tr_msg_kind_t kind, tr_pid_t from, tr_ref_t ref) {
  sys_match_t w = {kind, from, ref};
  tr_msg_t *m = NULL;
  tr_reason_t r;
  int rc = tr_recv_match(&m, match_sys, &w, WAIT_MS);
  ck_assert_msg(rc == 0, "no %s from %#llx: %s",
                kind == TR_MSG_EXIT ? "EXIT" : "DOWN", (unsigned long long)from,
                tr_err_name(rc));
  TR_OK(tr_msg_reason(m, &r));
  tr_msg_free(m);
  return r;
}

static tr_reason_t recv_down(tr_pid_t from, tr_ref_t ref) {
  return recv_sys(TR_MSG_DOWN, from, ref);
}

static tr_reason_t recv_exit(tr_pid_t from) {
  return recv_sys(TR_MSG_EXIT, from, 0);
}

/* Asserts that nothing at all arrives for QUIET_MS. */
static void expect_quiet(void) {
  tr_msg_t *m = NULL;
  int rc = tr_recv(&m, QUIET_MS);
  if (rc == 0) {
    ck_abort_msg("unexpected message kind %d from %#llx", tr_msg_kind(m),
                 (unsigned long long)tr_msg_from(m));
  }
  ck_assert_int_eq(rc, TR_ETIMEDOUT);
}

static void expect_reason(tr_reason_t r, tr_reason_kind_t kind) {
  ck_assert_msg(r.kind == kind, "reason %s, expected %s",
                tr_reason_name(r.kind), tr_reason_name(kind));
}

static void expect_error(tr_reason_t r, int code) {
  char want[32];
  expect_reason(r, TR_REASON_ERROR);
  ck_assert_int_eq(r.code, code);
  snprintf(want, sizeof(want), "crash %d", code);
  ck_assert_str_eq(r.text, want);
}

/* ------------------------------------------------------------------------ */
/* The puppet: an actor driven by tagged commands from its owner            */
/* ------------------------------------------------------------------------ */
/*
 * Commands (every one but "crash"/"quit" answers ["ok", result]):
 *   ["ping"]              -> ["ok", 0]
 *   ["trap", on]          -> ["ok", previous trap_exit]
 *   ["link", pid]         -> ["ok", tr_link rc]
 *   ["unlink", pid]       -> ["ok", tr_unlink rc]
 *   ["exit_pid", pid, k]  -> ["ok", tr_exit_pid rc]
 *   ["crash", code]       -> exits with error(code, "crash <code>")
 *   ["quit"]              -> returns (normal exit)
 * An EXIT message it receives is reported as ["exit", from, kind, code].
 */

static void *owner_arg(void) { return (void *)(uintptr_t)tr_self(); }

static void puppet_cmd(tr_pid_t owner, tr_msg_t *m) {
  int64_t rc = 0;
  if (tr_msg_is_tag(m, "ping")) {
    rc = 0;
  } else if (tr_msg_is_tag(m, "trap")) {
    rc = tr_trap_exit((int)arg_int(m, 1));
  } else if (tr_msg_is_tag(m, "link")) {
    rc = tr_link(arg_pid(m, 1));
  } else if (tr_msg_is_tag(m, "unlink")) {
    rc = tr_unlink(arg_pid(m, 1));
  } else if (tr_msg_is_tag(m, "exit_pid")) {
    rc = tr_exit_pid(NULL, arg_pid(m, 1), (tr_reason_kind_t)arg_int(m, 2));
  } else if (tr_msg_is_tag(m, "crash")) {
    int code = (int)arg_int(m, 1);
    tr_msg_free(m);
    tr_exit_error(code, "crash %d", code);
  } else {
    ck_abort_msg("puppet: unknown command");
  }
  TR_OK(tr_send_tagged(owner, "ok", "i", rc));
}

static void puppet(void *arg) {
  tr_pid_t owner = (tr_pid_t)(uintptr_t)arg;
  for (;;) {
    tr_msg_t *m = NULL;
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_kind(m) == TR_MSG_EXIT) {
      tr_reason_t r;
      TR_OK(tr_msg_reason(m, &r));
      TR_OK(tr_send_tagged(owner, "exit", "pii", tr_msg_from(m),
                           (int64_t)r.kind, (int64_t)r.code));
    } else if (tr_msg_is_tag(m, "quit")) {
      tr_msg_free(m);
      return;
    } else {
      puppet_cmd(owner, m);
    }
    tr_msg_free(m);
  }
}

/* Starts a puppet owned by the caller, monitored through *ref if not NULL. */
static tr_pid_t start_puppet(tr_ref_t *ref) {
  tr_pid_t p = TR_PID_NONE;
  TR_OK(tr_spawn(NULL, puppet, owner_arg(), NULL, &p));
  ck_assert_uint_ne(p, TR_PID_NONE);
  if (ref != NULL) TR_OK(tr_monitor(p, ref));
  return p;
}

/* Waits for the answer to the previous command and returns its result. */
static int64_t wait_ok(void) {
  tr_msg_t *m = NULL;
  int64_t rc;
  int err = tr_recv_tag(&m, "ok", WAIT_MS);
  ck_assert_msg(err == 0, "no answer from puppet: %s", tr_err_name(err));
  rc = arg_int(m, 1);
  tr_msg_free(m);
  return rc;
}

static int64_t cmd_ping(tr_pid_t p) {
  TR_OK(tr_send_tagged(p, "ping", NULL));
  return wait_ok();
}
static int64_t cmd_trap(tr_pid_t p, int on) {
  TR_OK(tr_send_tagged(p, "trap", "i", (int64_t)on));
  return wait_ok();
}
static int64_t cmd_link(tr_pid_t p, tr_pid_t to) {
  TR_OK(tr_send_tagged(p, "link", "p", to));
  return wait_ok();
}
static int64_t cmd_unlink(tr_pid_t p, tr_pid_t to) {
  TR_OK(tr_send_tagged(p, "unlink", "p", to));
  return wait_ok();
}
static void cmd_crash(tr_pid_t p, int code) {
  TR_OK(tr_send_tagged(p, "crash", "i", (int64_t)code));
}
static void cmd_quit(tr_pid_t p) { TR_OK(tr_send_tagged(p, "quit", NULL)); }

/* Receives a puppet's ["exit", from, kind, code] report. */
static void expect_exit_report(tr_pid_t from, tr_reason_kind_t kind, int code) {
  tr_msg_t *m = NULL;
  int err = tr_recv_tag(&m, "exit", WAIT_MS);
  ck_assert_msg(err == 0, "no EXIT report: %s", tr_err_name(err));
  ck_assert_uint_eq(arg_pid(m, 1), from);
  ck_assert_msg(arg_int(m, 2) == kind, "EXIT reason %s, expected %s",
                tr_reason_name((tr_reason_kind_t)arg_int(m, 2)),
                tr_reason_name(kind));
  ck_assert_int_eq(arg_int(m, 3), code);
  tr_msg_free(m);
}

/* Runs fn as the one top-level actor and checks it reached its end. */
static int finished;
static void run_test(tr_actor_fn fn) {
  finished = 0;
  tr_test_run(fn, NULL);
  ck_assert_msg(finished, "test actor did not finish");
}

static void quit_all(const tr_pid_t *p, int n) {
  for (int i = 0; i < n; i++) cmd_quit(p[i]);
}

/* ------------------------------------------------------------------------ */
/* Links                                                                    */
/* ------------------------------------------------------------------------ */

static void links_bidirectional(void *arg) {
  tr_ref_t ra, rb;
  tr_pid_t a, b;
  (void)arg;
  /* a links to b; b crashes; a dies with b's reason. */
  a = start_puppet(&ra);
  b = start_puppet(&rb);
  ck_assert_int_eq(cmd_link(a, b), 0);
  cmd_crash(b, 7);
  expect_error(recv_down(b, rb), 7);
  expect_error(recv_down(a, ra), 7);
  /* a links to b; a (the linker) crashes; b dies too. */
  a = start_puppet(&ra);
  b = start_puppet(&rb);
  ck_assert_int_eq(cmd_link(a, b), 0);
  cmd_crash(a, 8);
  expect_error(recv_down(a, ra), 8);
  expect_error(recv_down(b, rb), 8);
  ck_assert(!tr_is_alive(a) && !tr_is_alive(b));
  finished = 1;
}
START_TEST(test_links_bidirectional) { run_test(links_bidirectional); }
END_TEST

static void chain_dies(int crash_idx, int code) {
  tr_pid_t p[3];
  tr_ref_t r[3];
  for (int i = 0; i < 3; i++) p[i] = start_puppet(&r[i]);
  ck_assert_int_eq(cmd_link(p[0], p[1]), 0);
  ck_assert_int_eq(cmd_link(p[1], p[2]), 0);
  cmd_crash(p[crash_idx], code);
  for (int i = 0; i < 3; i++) expect_error(recv_down(p[i], r[i]), code);
  for (int i = 0; i < 3; i++) ck_assert(!tr_is_alive(p[i]));
}

static void chain(void *arg) {
  (void)arg;
  chain_dies(2, 42); /* the end of A-B-C */
  chain_dies(0, 43); /* the start */
  chain_dies(1, 44); /* the middle */
  finished = 1;
}
START_TEST(test_chain_dies_together) { run_test(chain); }
END_TEST

static void crash_with(void *arg) {
  int code = (int)(intptr_t)arg;
  tr_exit_error(code, "crash %d", code);
}

static void trap_exit_message(void *arg) {
  tr_pid_t child;
  tr_msg_t *m = NULL;
  tr_reason_t r;
  (void)arg;
  ck_assert_int_eq(tr_trap_exit(1), 0);
  TR_OK(tr_spawn_link(crash_with, (void *)(intptr_t)5, &child));
  TR_OK(tr_recv(&m, WAIT_MS));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_EXIT);
  ck_assert_uint_eq(tr_msg_from(m), child);
  ck_assert_uint_eq(tr_msg_ref(m), 0);
  TR_OK(tr_msg_reason(m, &r));
  expect_error(r, 5);
  /* Body: ["EXIT", pid, "error"]. */
  ck_assert(tr_msg_is_tag(m, "EXIT"));
  ck_assert_uint_eq(tr_msg_obj(m)->via.array.size, 3);
  ck_assert_uint_eq(arg_pid(m, 1), child);
  ck_assert(arg_str_is(m, 2, "error"));
  tr_msg_free(m);
  /* Trapping, we are still alive and linked to nothing. */
  ck_assert_uint_eq(tr_mailbox_len(), 0);
  finished = 1;
}
START_TEST(test_trap_exit_turns_signal_into_message) {
  run_test(trap_exit_message);
}
END_TEST

static void trap_exit_prev(void *arg) {
  (void)arg;
  ck_assert_int_eq(tr_trap_exit(1), 0);
  ck_assert_int_eq(tr_trap_exit(5), 1); /* any nonzero is "on" */
  ck_assert_int_eq(tr_trap_exit(0), 1);
  ck_assert_int_eq(tr_trap_exit(0), 0);
  finished = 1;
}
START_TEST(test_trap_exit_returns_previous) {
  ck_assert_int_eq(tr_trap_exit(1), TR_ENOTACTOR);
  run_test(trap_exit_prev);
}
END_TEST

/* kill is untrappable and becomes `killed`; the links of the killed actor
 * then see `killed`, which they can trap. */
static void kill_vs_killed(void *arg) {
  tr_ref_t rt, r1, r2;
  tr_pid_t t, l1, l2;
  (void)arg;
  t = start_puppet(&rt);
  l1 = start_puppet(&r1);
  l2 = start_puppet(&r2);
  ck_assert_int_eq(cmd_trap(t, 1), 0);
  ck_assert_int_eq(cmd_trap(l1, 1), 0);
  ck_assert_int_eq(cmd_link(t, l1), 0);
  ck_assert_int_eq(cmd_link(t, l2), 0);
  TR_OK(tr_exit_pid(NULL, t, TR_REASON_KILL));
  expect_reason(recv_down(t, rt), TR_REASON_KILLED);
  expect_reason(recv_down(l2, r2), TR_REASON_KILLED); /* not trapping */
  expect_exit_report(t, TR_REASON_KILLED, 0);          /* trapped */
  ck_assert_int_eq(cmd_ping(l1), 0);
  ck_assert(tr_is_alive(l1));
  /* An actor that exits with `kill` itself exits with `killed`. */
  tr_pid_t k;
  tr_ref_t rk;
  k = start_puppet(&rk);
  TR_OK(tr_exit_pid(NULL, k, TR_REASON_KILL));
  expect_reason(recv_down(k, rk), TR_REASON_KILLED);
  cmd_quit(l1);
  expect_reason(recv_down(l1, r1), TR_REASON_NORMAL);
  finished = 1;
}
START_TEST(test_kill_is_untrappable_and_links_see_killed) {
  run_test(kill_vs_killed);
}
END_TEST

static void normal_signal(void *arg) {
  tr_ref_t rp, rq;
  tr_pid_t p, q;
  (void)arg;
  p = start_puppet(&rp);
  q = start_puppet(&rq);
  ck_assert_int_eq(cmd_trap(q, 1), 0);
  TR_OK(tr_exit_pid(NULL, p, TR_REASON_NORMAL));
  TR_OK(tr_exit_pid(NULL, q, TR_REASON_NORMAL));
  /* p ignores it; q gets an EXIT from us with reason normal. */
  ck_assert_int_eq(cmd_ping(p), 0);
  expect_exit_report(tr_self(), TR_REASON_NORMAL, 0);
  ck_assert_int_eq(cmd_ping(q), 0);
  ck_assert(tr_is_alive(p) && tr_is_alive(q));
  /* A linked actor that exits normally does not take a non-trapping
   * partner with it; a trapping partner is told. */
  ck_assert_int_eq(cmd_link(p, q), 0);
  tr_pid_t n;
  tr_ref_t rn;
  n = start_puppet(&rn);
  ck_assert_int_eq(cmd_link(n, p), 0);
  ck_assert_int_eq(cmd_link(n, q), 0);
  cmd_quit(n);
  expect_reason(recv_down(n, rn), TR_REASON_NORMAL);
  expect_exit_report(n, TR_REASON_NORMAL, 0);
  ck_assert_int_eq(cmd_ping(p), 0);
  quit_all((tr_pid_t[]){p, q}, 2);
  expect_reason(recv_down(p, rp), TR_REASON_NORMAL);
  expect_reason(recv_down(q, rq), TR_REASON_NORMAL);
  finished = 1;
}
START_TEST(test_normal_signal_ignored_unless_trapping) {
  run_test(normal_signal);
}
END_TEST

static void abnormal_signal(void *arg) {
  tr_ref_t rp, rq, rl, rm;
  tr_pid_t p, q, l, m;
  (void)arg;
  /* Any other reason kills a non-trapping target with that reason... */
  p = start_puppet(&rp);
  TR_OK(tr_exit_pid(NULL, p, TR_REASON_SHUTDOWN));
  expect_reason(recv_down(p, rp), TR_REASON_SHUTDOWN);
  /* ...and is an EXIT message for a trapping one. */
  q = start_puppet(&rq);
  ck_assert_int_eq(cmd_trap(q, 1), 0);
  TR_OK(tr_exit_pid(NULL, q, TR_REASON_SHUTDOWN));
  expect_exit_report(tr_self(), TR_REASON_SHUTDOWN, 0);
  /* A crash reason travels along a link unchanged (kind, code, text). */
  l = start_puppet(&rl);
  m = start_puppet(&rm);
  ck_assert_int_eq(cmd_link(l, m), 0);
  cmd_crash(m, 99);
  expect_error(recv_down(m, rm), 99);
  expect_error(recv_down(l, rl), 99);
  /* A puppet sends a signal to a peer: `from` is the sender. */
  ck_assert_int_eq(cmd_link(q, q), 0); /* self link: a no-op */
  p = start_puppet(&rp);
  TR_OK(tr_send_tagged(p, "exit_pid", "pi", q, (int64_t)TR_REASON_ERROR));
  ck_assert_int_eq(wait_ok(), 0);
  expect_exit_report(p, TR_REASON_ERROR, 0);
  /* Out-of-range kinds are refused; a dead pid is a no-op. */
  ck_assert_int_eq(tr_exit_pid(NULL, q, TR_REASON__COUNT), TR_EINVAL);
  ck_assert_int_eq(tr_exit_pid(NULL, m, TR_REASON_KILL), 0);
  quit_all((tr_pid_t[]){p, q}, 2);
  expect_reason(recv_down(p, rp), TR_REASON_NORMAL);
  expect_reason(recv_down(q, rq), TR_REASON_NORMAL);
  finished = 1;
}
START_TEST(test_abnormal_signal_kills_with_same_reason) {
  run_test(abnormal_signal);
}
END_TEST

static void noop_actor(void *arg) { (void)arg; }

/* Spawns an actor that exits at once and waits until it is gone. */
static tr_pid_t dead_pid(void) {
  tr_pid_t p;
  tr_ref_t r;
  TR_OK(tr_spawn_monitor(noop_actor, NULL, &p, &r));
  expect_reason(recv_down(p, r), TR_REASON_NORMAL);
  ck_assert(!tr_is_alive(p));
  return p;
}

static void link_dead(void *arg) {
  tr_pid_t dead = dead_pid(), p;
  tr_ref_t rp;
  tr_msg_t *m = NULL;
  tr_reason_t r;
  (void)arg;
  /* Trapping: tr_link returns 0 and an EXIT noproc is already queued. */
  ck_assert_int_eq(tr_trap_exit(1), 0);
  ck_assert_int_eq(tr_link(dead), 0);
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_EXIT);
  ck_assert_uint_eq(tr_msg_from(m), dead);
  TR_OK(tr_msg_reason(m, &r));
  expect_reason(r, TR_REASON_NOPROC);
  ck_assert(arg_str_is(m, 2, "noproc"));
  tr_msg_free(m);
  ck_assert_int_eq(tr_trap_exit(0), 1);
  /* Not trapping: the caller dies with noproc (no answer comes back). */
  p = start_puppet(&rp);
  TR_OK(tr_send_tagged(p, "link", "p", dead));
  expect_reason(recv_down(p, rp), TR_REASON_NOPROC);
  ck_assert_int_eq(tr_mailbox_len(), 0);
  finished = 1;
}
START_TEST(test_link_to_dead_pid_is_noproc) { run_test(link_dead); }
END_TEST

static void unlink_stops(void *arg) {
  tr_ref_t ra, rb;
  tr_pid_t a, b;
  (void)arg;
  /* a links, a unlinks, b crashes: a lives. */
  a = start_puppet(&ra);
  b = start_puppet(&rb);
  ck_assert_int_eq(cmd_link(a, b), 0);
  ck_assert_int_eq(cmd_unlink(a, b), 0);
  cmd_crash(b, 3);
  expect_error(recv_down(b, rb), 3);
  ck_assert_int_eq(cmd_ping(a), 0);
  /* a links, b unlinks (the other side), a crashes: b lives. */
  b = start_puppet(&rb);
  ck_assert_int_eq(cmd_link(a, b), 0);
  ck_assert_int_eq(cmd_unlink(b, a), 0);
  cmd_crash(a, 4);
  expect_error(recv_down(a, ra), 4);
  ck_assert_int_eq(cmd_ping(b), 0);
  /* Links are a set: linking twice and unlinking once leaves no link. */
  a = start_puppet(&ra);
  ck_assert_int_eq(cmd_link(a, b), 0);
  ck_assert_int_eq(cmd_link(a, b), 0);
  ck_assert_int_eq(cmd_link(b, a), 0);
  ck_assert_int_eq(cmd_unlink(a, b), 0);
  cmd_crash(a, 5);
  expect_error(recv_down(a, ra), 5);
  ck_assert_int_eq(cmd_ping(b), 0);
  /* Unlinking what is not linked, or a dead pid, is fine. */
  ck_assert_int_eq(tr_unlink(b), 0);
  ck_assert_int_eq(tr_unlink(a), 0);
  /* Trapping root: link, unlink, the peer crashes, no EXIT comes. */
  ck_assert_int_eq(tr_trap_exit(1), 0);
  ck_assert_int_eq(tr_link(b), 0);
  ck_assert_int_eq(tr_unlink(b), 0);
  cmd_crash(b, 6);
  expect_error(recv_down(b, rb), 6);
  expect_quiet();
  finished = 1;
}
START_TEST(test_unlink_stops_propagation) { run_test(unlink_stops); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Monitors                                                                 */
/* ------------------------------------------------------------------------ */

static void monitor_down(void *arg) {
  tr_ref_t ref = 0;
  tr_pid_t p;
  tr_msg_t *m = NULL;
  tr_reason_t r;
  const msgpack_object *o;
  (void)arg;
  p = start_puppet(NULL);
  TR_OK(tr_monitor(p, &ref));
  ck_assert_uint_ne(ref, 0);
  cmd_crash(p, 11);
  TR_OK(tr_recv(&m, WAIT_MS));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  ck_assert_uint_eq(tr_msg_from(m), p);
  TR_OK(tr_msg_reason(m, &r));
  expect_error(r, 11);
  /* Body: ["DOWN", ref, pid, "error"]. */
  ck_assert(tr_msg_is_tag(m, "DOWN"));
  ck_assert_uint_eq(tr_msg_obj(m)->via.array.size, 4);
  o = arg_obj(m, 1);
  ck_assert_int_eq(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  ck_assert_uint_eq(o->via.u64, ref);
  ck_assert_uint_eq(arg_pid(m, 2), p);
  ck_assert(arg_str_is(m, 3, "error"));
  tr_msg_free(m);
  /* The monitoring side is unaffected and nothing else arrives. */
  expect_quiet();
  /* NULL ref is refused. */
  ck_assert_int_eq(tr_monitor(tr_self(), NULL), TR_EINVAL);
  finished = 1;
}
START_TEST(test_monitor_down_carries_ref_pid_reason) {
  ck_assert_int_eq(tr_monitor(1, &(tr_ref_t){0}), TR_ENOTACTOR);
  run_test(monitor_down);
}
END_TEST

static void monitor_dead(void *arg) {
  tr_pid_t dead = dead_pid();
  tr_ref_t ref = 0, ref2 = 0;
  tr_msg_t *m = NULL;
  tr_reason_t r;
  (void)arg;
  TR_OK(tr_monitor(dead, &ref));
  ck_assert_uint_ne(ref, 0);
  TR_OK(tr_recv(&m, 0)); /* already there */
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  ck_assert_uint_eq(tr_msg_from(m), dead);
  TR_OK(tr_msg_reason(m, &r));
  expect_reason(r, TR_REASON_NOPROC);
  ck_assert(arg_str_is(m, 3, "noproc"));
  tr_msg_free(m);
  /* A never-valid pid too, each time with a fresh ref. */
  TR_OK(tr_monitor(TR_PID_NONE, &ref2));
  ck_assert_uint_ne(ref2, ref);
  expect_reason(recv_down(TR_PID_NONE, ref2), TR_REASON_NOPROC);
  expect_quiet();
  finished = 1;
}
START_TEST(test_monitor_dead_pid_is_immediate_noproc) {
  run_test(monitor_dead);
}
END_TEST

static void demonitor_stops(void *arg) {
  tr_ref_t r1, r2;
  tr_pid_t p;
  (void)arg;
  p = start_puppet(NULL);
  TR_OK(tr_monitor(p, &r1));
  TR_OK(tr_monitor(p, &r2));
  ck_assert_int_eq(tr_demonitor(r1, 0), 0);
  ck_assert_int_eq(tr_demonitor(r1, 0), 0);      /* again: unknown, no-op */
  ck_assert_int_eq(tr_demonitor(12345, 0), 0);   /* never existed */
  ck_assert_int_eq(tr_demonitor(r2, 2), TR_EINVAL); /* unknown flag */
  cmd_crash(p, 1);
  expect_error(recv_down(p, r2), 1);
  expect_quiet(); /* no DOWN for r1 */
  finished = 1;
}
START_TEST(test_demonitor_stops_down) {
  ck_assert_int_eq(tr_demonitor(1, 0), TR_ENOTACTOR);
  run_test(demonitor_stops);
}
END_TEST

static void demonitor_flush(void *arg) {
  tr_ref_t r1, r2, r3;
  tr_pid_t p;
  tr_msg_t *m = NULL;
  (void)arg;
  TR_OK(tr_send_tagged(tr_self(), "keep", NULL));
  p = start_puppet(NULL);
  TR_OK(tr_monitor(p, &r1));
  TR_OK(tr_monitor(p, &r2));
  TR_OK(tr_monitor(p, &r3));
  cmd_crash(p, 2);
  for (int i = 0; i < 1000 && tr_mailbox_len() < 4; i++) TR_OK(tr_sleep(1));
  ck_assert_uint_eq(tr_mailbox_len(), 4); /* keep + 3 DOWNs */
  /* FLUSH drops exactly the DOWN of r1; without it a queued DOWN stays. */
  TR_OK(tr_demonitor(r1, TR_DEMONITOR_FLUSH));
  ck_assert_uint_eq(tr_mailbox_len(), 3);
  TR_OK(tr_demonitor(r2, 0));
  ck_assert_uint_eq(tr_mailbox_len(), 3);
  TR_OK(tr_demonitor(12345, TR_DEMONITOR_FLUSH));
  ck_assert_uint_eq(tr_mailbox_len(), 3);
  TR_OK(tr_recv(&m, 0));
  ck_assert(tr_msg_is_tag(m, "keep"));
  tr_msg_free(m);
  /* The DOWNs of r2 and r3 remain (in either order). */
  int seen2 = 0, seen3 = 0;
  for (int i = 0; i < 2; i++) {
    TR_OK(tr_recv(&m, 0));
    ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
    seen2 += tr_msg_ref(m) == r2;
    seen3 += tr_msg_ref(m) == r3;
    tr_msg_free(m);
  }
  ck_assert(seen2 == 1 && seen3 == 1);
  expect_quiet();
  finished = 1;
}
START_TEST(test_demonitor_flush_drops_queued_down) {
  run_test(demonitor_flush);
}
END_TEST

/* A second watcher: monitors `arg` and forwards its DOWN's ref and reason. */
static tr_pid_t watch_owner;
static void watcher(void *arg) {
  tr_pid_t target = (tr_pid_t)(uintptr_t)arg;
  tr_ref_t ref;
  tr_reason_t r;
  TR_OK(tr_monitor(target, &ref));
  TR_OK(tr_send_tagged(watch_owner, "watching", NULL));
  r = recv_down(target, ref);
  TR_OK(tr_send_tagged(watch_owner, "down", "ui", ref, (int64_t)r.kind));
}

static void multi_monitors(void *arg) {
  enum { N = 3 };
  tr_ref_t refs[N];
  int seen[N] = {0};
  tr_pid_t p, w;
  tr_msg_t *m = NULL;
  (void)arg;
  watch_owner = tr_self();
  p = start_puppet(NULL);
  for (int i = 0; i < N; i++) TR_OK(tr_monitor(p, &refs[i]));
  ck_assert(refs[0] != refs[1] && refs[1] != refs[2] && refs[0] != refs[2]);
  TR_OK(tr_spawn(NULL, watcher, (void *)(uintptr_t)p, NULL, &w));
  TR_OK(tr_recv_tag(&m, "watching", WAIT_MS));
  tr_msg_free(m);
  cmd_crash(p, 77);
  for (int n = 0; n < N; n++) {
    TR_OK(tr_recv_match(&m, match_sys,
                        &(sys_match_t){TR_MSG_DOWN, p, 0}, WAIT_MS));
    for (int i = 0; i < N; i++)
      if (tr_msg_ref(m) == refs[i]) seen[i]++;
    tr_msg_free(m);
  }
  for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
  TR_OK(tr_recv_tag(&m, "down", WAIT_MS));
  ck_assert_int_eq(arg_int(m, 2), TR_REASON_ERROR);
  for (int i = 0; i < N; i++) ck_assert_uint_ne((tr_ref_t)arg_int(m, 1), refs[i]);
  tr_msg_free(m);
  expect_quiet();
  finished = 1;
}
START_TEST(test_multiple_monitors_fire_once_each) {
  run_test(multi_monitors);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* spawn_link / spawn_monitor                                               */
/* ------------------------------------------------------------------------ */

static void spawn_link_then_block(void *arg) {
  tr_pid_t child;
  tr_msg_t *m;
  (void)arg;
  TR_OK(tr_spawn_link(crash_with, (void *)(intptr_t)9, &child));
  tr_recv(&m, -1); /* dies here when the child does */
  ck_abort_msg("survived a linked crash");
}

static void block_forever(void *arg) {
  tr_msg_t *m;
  (void)arg;
  tr_recv(&m, -1);
}

static void spawn_link_monitor(void *arg) {
  tr_pid_t mid, c;
  tr_ref_t rm, rc = 0;
  tr_spawn_opts_t o;
  (void)arg;
  /* spawn_link: a non-trapping parent dies with the child's reason. */
  TR_OK(tr_spawn_monitor(spawn_link_then_block, NULL, &mid, &rm));
  ck_assert_uint_ne(rm, 0);
  expect_error(recv_down(mid, rm), 9);
  /* spawn_link: a trapping parent gets the EXIT. */
  ck_assert_int_eq(tr_trap_exit(1), 0);
  TR_OK(tr_spawn_link(crash_with, (void *)(intptr_t)10, &c));
  expect_error(recv_exit(c), 10);
  /* spawn_link: the child dies with the parent (killed). */
  TR_OK(tr_spawn_link(block_forever, NULL, &c));
  TR_OK(tr_monitor(c, &rc));
  TR_OK(tr_unlink(c));
  TR_OK(tr_exit_pid(NULL, c, TR_REASON_KILL));
  expect_reason(recv_down(c, rc), TR_REASON_KILLED);
  expect_quiet(); /* unlinked: no EXIT */
  /* spawn_monitor through tr_spawn options. */
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_MONITOR | TR_SPAWN_LINK;
  o.monitor_ref = &rc;
  TR_OK(tr_spawn(NULL, crash_with, (void *)(intptr_t)12, &o, &c));
  expect_error(recv_down(c, rc), 12);
  expect_error(recv_exit(c), 12);
  o.flags = TR_SPAWN_MONITOR;
  o.monitor_ref = NULL;
  ck_assert_int_eq(tr_spawn(NULL, noop_actor, NULL, &o, &c), TR_EINVAL);
  finished = 1;
}
START_TEST(test_spawn_link_and_spawn_monitor) {
  tr_runtime_t *rt = NULL;
  tr_spawn_opts_t o;
  tr_pid_t p;
  tr_ref_t r;
  ck_assert_int_eq(tr_spawn_link(noop_actor, NULL, &p), TR_ENOTACTOR);
  ck_assert_int_eq(tr_spawn_monitor(noop_actor, NULL, &p, &r), TR_ENOTACTOR);
  TR_OK(tr_runtime_new(&rt, NULL));
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_LINK;
  ck_assert_int_eq(tr_spawn(rt, noop_actor, NULL, &o, &p), TR_ENOTACTOR);
  o.flags = TR_SPAWN_MONITOR;
  o.monitor_ref = &r;
  ck_assert_int_eq(tr_spawn(rt, noop_actor, NULL, &o, &p), TR_ENOTACTOR);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
  run_test(spawn_link_monitor);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Exit signals to self and from outside actors                             */
/* ------------------------------------------------------------------------ */

static int after_self_signal;

static void self_signal(void *arg) {
  tr_reason_kind_t kind = (tr_reason_kind_t)(intptr_t)arg;
  tr_exit_pid(NULL, tr_self(), kind);
  after_self_signal++;
}

static void self_trapping_kill(void *arg) {
  (void)arg;
  tr_trap_exit(1);
  tr_exit_pid(NULL, tr_self(), TR_REASON_KILL);
  after_self_signal++;
}

static void exit_self(void *arg) {
  tr_pid_t p;
  tr_ref_t r;
  tr_reason_t why;
  (void)arg;
  after_self_signal = 0;
  /* Non-trapping: shutdown to self ends the caller at once. */
  TR_OK(tr_spawn_monitor(self_signal, (void *)(intptr_t)TR_REASON_SHUTDOWN,
                         &p, &r));
  expect_reason(recv_down(p, r), TR_REASON_SHUTDOWN);
  ck_assert_int_eq(after_self_signal, 0);
  /* normal to a non-trapping self is ignored (troupe.h: "NORMAL is ignored
   * unless the target traps exits"). */
  TR_OK(tr_spawn_monitor(self_signal, (void *)(intptr_t)TR_REASON_NORMAL, &p,
                         &r));
  expect_reason(recv_down(p, r), TR_REASON_NORMAL);
  ck_assert_int_eq(after_self_signal, 1);
  /* kill to a trapping self still kills, with `killed`. */
  TR_OK(tr_spawn_monitor(self_trapping_kill, NULL, &p, &r));
  expect_reason(recv_down(p, r), TR_REASON_KILLED);
  ck_assert_int_eq(after_self_signal, 1);
  /* Trapping: our own signal becomes an EXIT from ourselves. */
  ck_assert_int_eq(tr_trap_exit(1), 0);
  TR_OK(tr_exit_pid(NULL, tr_self(), TR_REASON_SHUTDOWN));
  why = recv_exit(tr_self());
  expect_reason(why, TR_REASON_SHUTDOWN);
  finished = 1;
}
START_TEST(test_exit_signal_to_self) { run_test(exit_self); }
END_TEST

static int outside_trapped;
static void trapper(void *arg) {
  tr_msg_t *m;
  (void)arg;
  tr_trap_exit(1);
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_kind(m) == TR_MSG_EXIT) outside_trapped++;
    tr_msg_free(m);
  }
}

START_TEST(test_exit_pid_from_outside_actors) {
  tr_runtime_t *rt = NULL;
  tr_pid_t a, b;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, trapper, NULL, NULL, &a));
  TR_OK(tr_spawn(rt, trapper, NULL, NULL, &b));
  ck_assert_int_eq(tr_exit_pid(NULL, a, TR_REASON_KILL), TR_EINVAL);
  /* Not started yet: kill takes effect at once, from host code. */
  TR_OK(tr_exit_pid(rt, a, TR_REASON_KILL));
  ck_assert(!tr_is_alive(a));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 1);
  outside_trapped = 0;
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK); /* b now traps */
  /* A trappable signal becomes an EXIT message for b. */
  TR_OK(tr_exit_pid(rt, b, TR_REASON_SHUTDOWN));
  ck_assert(tr_is_alive(b));
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  ck_assert_int_eq(outside_trapped, 1);
  /* kill is not trappable, from outside either. */
  TR_OK(tr_exit_pid(rt, b, TR_REASON_KILL));
  ck_assert(!tr_is_alive(b));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_exit_pid(rt, b, TR_REASON_KILL)); /* dead: no-op */
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Link storm                                                               */
/* ------------------------------------------------------------------------ */

enum { STORM = 1000 };

static void storm_worker(void *arg) {
  tr_pid_t hub = (tr_pid_t)(uintptr_t)arg;
  tr_msg_t *m;
  TR_OK(tr_link(hub));
  TR_OK(tr_send_tagged(watch_owner, "linked", NULL));
  tr_recv(&m, -1); /* dies with the hub */
  ck_abort_msg("storm worker survived the hub");
}

static void link_storm(void *arg) {
  static tr_pid_t workers[STORM];
  static tr_ref_t refs[STORM];
  tr_pid_t hub;
  tr_ref_t rh;
  tr_msg_t *m;
  int count = 0;
  (void)arg;
  watch_owner = tr_self();
  hub = start_puppet(&rh);
  for (int i = 0; i < STORM; i++)
    TR_OK(tr_spawn_monitor(storm_worker, (void *)(uintptr_t)hub, &workers[i],
                           &refs[i]));
  for (int i = 0; i < STORM; i++) {
    TR_OK(tr_recv_tag(&m, "linked", WAIT_MS));
    tr_msg_free(m);
  }
  ck_assert_uint_eq(tr_runtime_actor_count(tr_runtime_current()), STORM + 2);
  cmd_crash(hub, 66);
  expect_error(recv_down(hub, rh), 66);
  for (int i = 0; i < STORM; i++) {
    tr_reason_t r;
    TR_OK(tr_recv(&m, WAIT_MS));
    ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
    TR_OK(tr_msg_reason(m, &r));
    expect_error(r, 66);
    for (int j = 0; j < STORM; j++)
      if (workers[j] == tr_msg_from(m) && refs[j] == tr_msg_ref(m)) {
        workers[j] = TR_PID_NONE; /* each one exactly once */
        count++;
        break;
      }
    tr_msg_free(m);
  }
  ck_assert_int_eq(count, STORM);
  ck_assert_uint_eq(tr_runtime_actor_count(tr_runtime_current()), 1);
  expect_quiet();
  finished = 1;
}
START_TEST(test_link_storm) { run_test(link_storm); }
END_TEST

static Suite *suite_link(void) {
  Suite *s = suite_create("link");
  TCase *tc = tcase_create("links");
  tcase_add_test(tc, test_links_bidirectional);
  tcase_add_test(tc, test_chain_dies_together);
  tcase_add_test(tc, test_trap_exit_turns_signal_into_message);
  tcase_add_test(tc, test_trap_exit_returns_previous);
  tcase_add_test(tc, test_kill_is_untrappable_and_links_see_killed);
  tcase_add_test(tc, test_normal_signal_ignored_unless_trapping);
  tcase_add_test(tc, test_abnormal_signal_kills_with_same_reason);
  tcase_add_test(tc, test_link_to_dead_pid_is_noproc);
  tcase_add_test(tc, test_unlink_stops_propagation);
  suite_add_tcase(s, tc);
  tc = tcase_create("monitors");
  tcase_add_test(tc, test_monitor_down_carries_ref_pid_reason);
  tcase_add_test(tc, test_monitor_dead_pid_is_immediate_noproc);
  tcase_add_test(tc, test_demonitor_stops_down);
  tcase_add_test(tc, test_demonitor_flush_drops_queued_down);
  tcase_add_test(tc, test_multiple_monitors_fire_once_each);
  suite_add_tcase(s, tc);
  tc = tcase_create("signals");
  tcase_add_test(tc, test_spawn_link_and_spawn_monitor);
  tcase_add_test(tc, test_exit_signal_to_self);
  tcase_add_test(tc, test_exit_pid_from_outside_actors);
  tcase_add_test(tc, test_link_storm);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(suite_link)
