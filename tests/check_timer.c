/* Check suite for timers (src/timer.c): tr_sleep, tr_send_after and
 * tr_cancel_timer, ordering, cancellation when the target exits, scale. */
#include <stdint.h>
#include <time.h>

#include "testutil.h"
#include "internal.h" /* the scheduler's timer heap and ref table */

/* Upper slack for "roughly that long": generous, the machine may be busy. */
#define SLACK_MS 1000

static const unsigned char ONE[] = {0x01};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A one-character msgpack string body, e.g. "a" -> a1 61. */
static void body_char(unsigned char out[2], char c) {
  out[0] = 0xa1;
  out[1] = (unsigned char)c;
}

static char msg_char(tr_msg_t *m) {
  size_t len;
  const unsigned char *d = tr_msg_data(m, &len);
  return len == 2 && d[0] == 0xa1 ? (char)d[1] : '?';
}

/* ------------------------------------------------------------------------ */
/* Sleep                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
  double elapsed[3];
  int other_ran_during_sleep0;
  int counter;
} sleep_t;

static void bump(void *arg) { ((sleep_t *)arg)->counter++; }

static void sleeper(void *arg) {
  sleep_t *t = arg;
  static const uint64_t ms[3] = {1, 20, 60};
  /* sleep(0) is a yield: the actor spawned before it runs. */
  TR_OK(tr_spawn(NULL, bump, t, NULL, NULL));
  ck_assert_int_eq(t->counter, 0);
  TR_OK(tr_sleep(0));
  t->other_ran_during_sleep0 = t->counter;
  for (int i = 0; i < 3; i++) {
    double t0 = now_ms();
    TR_OK(tr_sleep(ms[i]));
    t->elapsed[i] = now_ms() - t0;
  }
  ck_assert_int_eq(tr_sleep(UINT64_MAX), TR_EINVAL);
}

START_TEST(test_sleep_durations) {
  /* One scheduler: the child must not run before sleep(0) yields. */
  sleep_t t;
  static const double ms[3] = {1, 20, 60};
  memset(&t, 0, sizeof(t));
  tr_test_run1(sleeper, &t);
  ck_assert_int_eq(t.other_ran_during_sleep0, 1);
  for (int i = 0; i < 3; i++) {
    ck_assert_double_ge(t.elapsed[i], ms[i] - 1);
    ck_assert_double_lt(t.elapsed[i], ms[i] + SLACK_MS);
  }
}
END_TEST

typedef struct {
  tr_pid_t sleeper;
  double slept;
  double sent_at_offset; /* when the poker sent, relative to sleep start */
  double t0;
  size_t len_after;
  int got_poke;
} poke_t;

static void poker(void *arg) {
  poke_t *p = arg;
  TR_OK(tr_sleep(10));
  p->sent_at_offset = now_ms() - p->t0;
  TR_OK(tr_send_tagged(p->sleeper, "poke", ""));
  TR_OK(tr_send_tagged(p->sleeper, "poke", ""));
}

static void deep_sleeper(void *arg) {
  poke_t *p = arg;
  tr_msg_t *m;
  TR_OK(tr_spawn(NULL, poker, p, NULL, NULL));
  p->t0 = now_ms();
  TR_OK(tr_sleep(60));
  p->slept = now_ms() - p->t0;
  p->len_after = tr_mailbox_len();
  while (tr_recv(&m, 0) == 0) {
    if (tr_msg_is_tag(m, "poke")) p->got_poke++;
    tr_msg_free(m);
  }
}

START_TEST(test_sleep_ignores_messages) {
  /* One scheduler: plain state shared by its actors. */
  poke_t p;
  tr_runtime_t *rt = NULL;
  memset(&p, 0, sizeof(p));
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, deep_sleeper, &p, NULL, &p.sleeper));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_double_lt(p.sent_at_offset, 60); /* the pokes came mid-sleep */
  ck_assert_double_ge(p.slept, 60 - 1);      /* and did not cut it short */
  ck_assert_uint_eq(p.len_after, 2);         /* both still queued */
  ck_assert_int_eq(p.got_poke, 2);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* send_after                                                               */
/* ------------------------------------------------------------------------ */

static void send_after_actor(void *arg) {
  tr_ref_t ref = 0, ref2 = 0;
  tr_msg_t *m;
  unsigned char b[2];
  static const unsigned char bad[] = {0x92, 0x01};
  double t0 = now_ms(), dt;
  (void)arg;
  body_char(b, 'x');
  TR_OK(tr_send_after(tr_self(), 30, b, sizeof(b), &ref));
  ck_assert_uint_ne(ref, 0);
  TR_OK(tr_send_after(tr_self(), 5000, b, sizeof(b), &ref2));
  ck_assert_uint_ne(ref2, ref);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
  TR_OK(tr_recv(&m, 5000));
  dt = now_ms() - t0;
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_TIMER);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  ck_assert_int_eq(msg_char(m), 'x');
  tr_msg_free(m);
  ck_assert_double_ge(dt, 30 - 1);
  ck_assert_double_lt(dt, 30 + SLACK_MS);
  TR_OK(tr_cancel_timer(ref2));
  /* ref may be NULL; a body is validated; huge delays are refused. */
  TR_OK(tr_send_after(tr_self(), 0, b, sizeof(b), NULL));
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_TIMER);
  ck_assert_uint_ne(tr_msg_ref(m), 0);
  tr_msg_free(m);
  ck_assert_int_eq(tr_send_after(tr_self(), 1, bad, sizeof(bad), &ref), TR_EBADMSG);
  ck_assert_int_eq(tr_send_after(tr_self(), 1, NULL, 0, &ref), TR_EINVAL);
  ck_assert_int_eq(tr_send_after(tr_self(), UINT64_MAX, b, sizeof(b), &ref),
                   TR_EINVAL);
  ck_assert_int_eq(tr_recv(&m, 20), TR_ETIMEDOUT); /* none of those fired */
}

START_TEST(test_send_after) { tr_test_run(send_after_actor, NULL); }
END_TEST

static void dead_target(void *arg) { (void)arg; }

static void send_after_dead_actor(void *arg) {
  tr_pid_t dead;
  tr_ref_t ref = 99, mref;
  tr_msg_t *m;
  (void)arg;
  TR_OK(tr_spawn_monitor(dead_target, NULL, &dead, &mref));
  TR_OK(tr_recv(&m, 5000));
  tr_msg_free(m);
  ck_assert_int_eq(tr_send_after(dead, 1, ONE, sizeof(ONE), &ref), 0);
  ck_assert_uint_eq(ref, 0); /* nothing to cancel */
  ck_assert_int_eq(tr_cancel_timer(ref), TR_ENOENT);
}

START_TEST(test_send_after_dead) { tr_test_run(send_after_dead_actor, NULL); }
END_TEST

static void order_actor(void *arg) {
  static const struct { uint64_t ms; char c; } plan[] = {
      {40, 'd'}, {10, 'b'}, {25, 'c'}, {0, 'a'}, {60, 'e'}};
  char got[8] = {0};
  unsigned char b[2];
  tr_msg_t *m;
  (void)arg;
  for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++) {
    body_char(b, plan[i].c);
    TR_OK(tr_send_after(tr_self(), plan[i].ms, b, sizeof(b), NULL));
  }
  for (int i = 0; i < 5; i++) {
    TR_OK(tr_recv(&m, 5000));
    got[i] = msg_char(m);
    tr_msg_free(m);
  }
  ck_assert_str_eq(got, "abcde");
}

START_TEST(test_timer_order) { tr_test_run(order_actor, NULL); }
END_TEST

/* A timer already due when the loop gets control must wake its target at
 * once, not when the next (later) timer or I/O event ends the loop's poll
 * (libuv < 1.45 runs due timers before it polls). */
static void due_now_actor(void *arg) {
  tr_ref_t background;
  tr_msg_t *m;
  double worst = 0;
  (void)arg;
  TR_OK(tr_send_after(tr_self(), 3000, ONE, sizeof(ONE), &background));
  for (int i = 0; i < 20; i++) {
    double t0 = now_ms(), dt;
    TR_OK(tr_send_after(tr_self(), 0, ONE, sizeof(ONE), NULL));
    TR_OK(tr_recv(&m, i % 2 ? -1 : 5000));
    ck_assert_int_eq(tr_msg_kind(m), TR_MSG_TIMER);
    tr_msg_free(m);
    dt = now_ms() - t0;
    if (dt > worst) worst = dt;
  }
  ck_assert_double_lt(worst, 500);
  TR_OK(tr_cancel_timer(background));
}

START_TEST(test_due_timer_wakes_at_once) { tr_test_run(due_now_actor, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Cancel                                                                   */
/* ------------------------------------------------------------------------ */

static void cancel_actor(void *arg) {
  tr_ref_t t1, t2, t3, t4, mref;
  tr_msg_t *m;
  unsigned char b[2];
  (void)arg;
  body_char(b, 'c');

  /* Before firing: cancelled, nothing delivered. */
  TR_OK(tr_send_after(tr_self(), 30, b, sizeof(b), &t1));
  ck_assert_int_eq(tr_cancel_timer(t1), 0);
  ck_assert_int_eq(tr_cancel_timer(t1), TR_ENOENT); /* twice */
  ck_assert_int_eq(tr_recv(&m, 80), TR_ETIMEDOUT);
  ck_assert_uint_eq(tr_mailbox_len(), 0);

  /* After firing. */
  TR_OK(tr_send_after(tr_self(), 1, b, sizeof(b), &t2));
  TR_OK(tr_recv(&m, 5000));
  ck_assert_uint_eq(tr_msg_ref(m), t2);
  tr_msg_free(m);
  ck_assert_int_eq(tr_cancel_timer(t2), TR_ENOENT);

  /* Fired but not yet received: still too late to cancel. */
  TR_OK(tr_send_after(tr_self(), 1, b, sizeof(b), &t3));
  TR_OK(tr_sleep(20));
  ck_assert_uint_eq(tr_mailbox_len(), 1);
  ck_assert_int_eq(tr_cancel_timer(t3), TR_ENOENT);
  ck_assert_uint_eq(tr_mailbox_len(), 1);
  TR_OK(tr_recv(&m, 0));
  ck_assert_uint_eq(tr_msg_ref(m), t3);
  tr_msg_free(m);

  /* A stale ref never cancels the timer that took over its slot. */
  TR_OK(tr_send_after(tr_self(), 20, b, sizeof(b), &t4));
  ck_assert_uint_ne(t4, t3);
  ck_assert_int_eq(tr_cancel_timer(t3), TR_ENOENT);
  ck_assert_int_eq(tr_cancel_timer(t2), TR_ENOENT);
  TR_OK(tr_recv(&m, 5000));
  ck_assert_uint_eq(tr_msg_ref(m), t4);
  tr_msg_free(m);

  /* Bogus refs. */
  ck_assert_int_eq(tr_cancel_timer(0), TR_ENOENT);
  ck_assert_int_eq(tr_cancel_timer(12345), TR_ENOENT);
  ck_assert_int_eq(tr_cancel_timer(UINT64_MAX), TR_ENOENT);
  ck_assert_int_eq(tr_cancel_timer(t4 + 1), TR_ENOENT);
  ck_assert_int_eq(tr_cancel_timer((tr_ref_t)tr_self()), TR_ENOENT);
  TR_OK(tr_monitor(tr_self() + 1000, &mref)); /* a monitor ref is no timer */
  ck_assert_int_eq(tr_cancel_timer(mref), TR_ENOENT);
  TR_OK(tr_recv(&m, 1000)); /* the noproc DOWN */
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  tr_msg_free(m);
  ck_assert_int_eq(tr_recv(&m, 30), TR_ETIMEDOUT);
}

START_TEST(test_cancel_timer) { tr_test_run(cancel_actor, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Timers of an actor that exits                                            */
/* ------------------------------------------------------------------------ */

typedef struct {
  tr_ref_t own[3];  /* timers the target aimed at itself */
  int how;          /* 0: returns, 1: parks until killed */
} target_t;

static void timer_target(void *arg) {
  target_t *t = arg;
  tr_msg_t *m;
  for (int i = 0; i < 3; i++)
    TR_OK(tr_send_after(tr_self(), 1000 + (uint64_t)i, ONE, sizeof(ONE), &t->own[i]));
  if (t->how == 1) tr_recv_tag(&m, "never", -1);
}

static void exit_driver(void *arg) {
  target_t t[2];
  tr_pid_t pid[2];
  tr_ref_t mref[2], mine[4], own_timer;
  tr_msg_t *m;
  double t0 = now_ms();
  (void)arg;
  memset(t, 0, sizeof(t));
  t[1].how = 1;
  for (int i = 0; i < 2; i++) TR_OK(tr_spawn_monitor(timer_target, &t[i], &pid[i], &mref[i]));
  TR_OK(tr_yield()); /* both set their timers; t[0] returns, t[1] parks */
  for (int i = 0; i < 4; i++)
    TR_OK(tr_send_after(pid[1], 2000, ONE, sizeof(ONE), &mine[i]));
  TR_OK(tr_send_after(tr_self(), 40, ONE, sizeof(ONE), &own_timer));
  TR_OK(tr_cancel_timer(mine[3])); /* one cancelled by hand */
  TR_OK(tr_exit_pid(NULL, pid[1], TR_REASON_KILL));
  for (int i = 0; i < 2; i++) {
    TR_OK(tr_recv(&m, 5000));
    ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
    tr_msg_free(m);
  }
  /* Every timer aimed at the dead actors is gone. */
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 3; i++) ck_assert_int_eq(tr_cancel_timer(t[k].own[i]), TR_ENOENT);
  for (int i = 0; i < 4; i++) ck_assert_int_eq(tr_cancel_timer(mine[i]), TR_ENOENT);
  /* Ours still fires, and long before the dead ones would have. */
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_TIMER);
  ck_assert_uint_eq(tr_msg_ref(m), own_timer);
  tr_msg_free(m);
  ck_assert_double_lt(now_ms() - t0, 900);
}

/* Timers still pending or holding a ref on rt's scheduler. */
static size_t timers_left(tr_runtime_t *rt) {
  size_t n = rt->sched.heap_len;
  for (uint32_t i = 0; i < rt->sched.timer_refs.cap; i++)
    if (rt->sched.timer_refs.ptr[i] != NULL) n++;
  return n;
}

START_TEST(test_timers_cancelled_on_exit) {
  tr_runtime_t *rt = NULL;
  double t0 = now_ms();
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, exit_driver, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  /* Nothing kept the runtime waiting for the dead timers, and none is
   * left in the heap or the ref table (their memory: ASan's leak check). */
  ck_assert_double_lt(now_ms() - t0, 900);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  ck_assert_uint_eq(timers_left(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Scale                                                                    */
/* ------------------------------------------------------------------------ */

#define SLEEPERS (tr_test_on_tsan() ? 4000 : 10000)

typedef struct {
  int woke;
  int early;
  int failed;
} crowd_t;

static crowd_t crowd;

static void crowd_sleeper(void *arg) {
  uint64_t ms = 1 + (uint64_t)(uintptr_t)arg % 50;
  double t0 = now_ms();
  if (tr_sleep(ms) != 0) {
    crowd.failed++;
    return;
  }
  if (now_ms() - t0 < (double)ms - 1) crowd.early++;
  crowd.woke++;
}

START_TEST(test_10k_sleepers) {
  /* One scheduler: plain counters shared by the sleepers. */
  tr_runtime_t *rt = NULL;
  memset(&crowd, 0, sizeof(crowd));
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  for (uintptr_t i = 0; i < SLEEPERS; i++)
    if (tr_spawn(rt, crowd_sleeper, (void *)i, NULL, NULL) != 0) crowd.failed++;
  ck_assert_int_eq(crowd.failed, 0);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), SLEEPERS);
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(crowd.failed, 0);
  ck_assert_int_eq(crowd.woke, SLEEPERS);
  ck_assert_int_eq(crowd.early, 0);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

static Suite *suite_timer(void) {
  Suite *s = suite_create("timer");
  TCase *tc = tcase_create("timer");
  TCase *scale = tcase_create("scale");
  tcase_add_test(tc, test_sleep_durations);
  tcase_add_test(tc, test_sleep_ignores_messages);
  tcase_add_test(tc, test_send_after);
  tcase_add_test(tc, test_send_after_dead);
  tcase_add_test(tc, test_timer_order);
  tcase_add_test(tc, test_due_timer_wakes_at_once);
  tcase_add_test(tc, test_cancel_timer);
  tcase_add_test(tc, test_timers_cancelled_on_exit);
  suite_add_tcase(s, tc);
  tcase_set_timeout(scale, 120);
  tcase_add_test(scale, test_10k_sleepers);
  suite_add_tcase(s, scale);
  return s;
}

TR_TEST_MAIN(suite_timer)
