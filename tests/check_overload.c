/*
 * Overload protection (mailbox/limit.c): per-actor mailbox limits with the
 * three policies, the messages a limit never drops (EXIT, DOWN, awaited
 * replies), limits set at spawn, and mailbox observation
 * (tr_mailbox_len_of, tr_mailbox_stats).
 *
 * Messages are numbered ["n", i]; every test checks exactly which numbers
 * arrive, in which order, and what the stats counted.
 */
#include <pthread.h>
#include <stdint.h>

#include "testutil.h"

static int64_t num_of(tr_msg_t *m) {
  const msgpack_object *o = tr_msg_obj(m);
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2)
    return -1;
  return o->via.array.ptr[1].via.i64;
}

static void send_n(tr_pid_t to, int from, int count) {
  for (int i = from; i < from + count; i++)
    TR_OK(tr_send_tagged(to, "n", "i", (int64_t)i));
}

/* Receives every queued ["n", i] (polling) into got[]; returns how many. */
static int drain_nums(int64_t *got, int cap) {
  tr_msg_t *m;
  int n = 0;
  while (tr_recv(&m, 0) == 0) {
    if (n < cap) got[n] = num_of(m);
    n++;
    tr_msg_free(m);
  }
  return n;
}

/* ---- the three policies --------------------------------------------------- */

typedef struct {
  tr_mailbox_policy_t policy;
  size_t max;
  tr_pid_t parent;
  int64_t got[32];
  int ngot;
  tr_mailbox_stats_t st;
} lim_t;

/* Sets a limit, lets the parent flood it, then reports what arrived. */
static void limited(void *arg) {
  lim_t *t = arg;
  tr_msg_t *m;
  TR_OK(tr_mailbox_limit(t->max, t->policy));
  TR_OK(tr_send_tagged(t->parent, "ready", NULL));
  TR_OK(tr_recv_tag(&m, "go", -1)); /* the parent sent the flood first */
  tr_msg_free(m);
  TR_OK(tr_mailbox_stats(tr_self(), &t->st));
  t->ngot = drain_nums(t->got, 32);
}

static void flood_parent(void *arg) {
  lim_t *t = arg;
  tr_pid_t child;
  tr_ref_t ref;
  tr_msg_t *m;
  size_t len = 99;
  t->parent = tr_self();
  TR_OK(tr_spawn_monitor(limited, t, &child, &ref));
  TR_OK(tr_recv_tag(&m, "ready", -1));
  tr_msg_free(m);
  send_n(child, 0, 10); /* the child is waiting for "go": all queue up */
  if (t->policy != TR_MAILBOX_EXIT) {
    TR_OK(tr_mailbox_len_of(child, &len));
    ck_assert_uint_eq(len, t->max);
  }
  /* DROP_NEWEST drops "go" too; DROP_OLDEST makes room for it. */
  if (t->policy == TR_MAILBOX_DROP_NEWEST) {
    ck_assert_int_eq(tr_send_tagged(child, "go", NULL), 0); /* dropped */
    ck_assert_int_eq(tr_mailbox_len_of(child, &len), 0);
    ck_assert_uint_eq(len, t->max);
  } else {
    TR_OK(tr_send_tagged(child, "go", NULL));
  }
  if (t->policy == TR_MAILBOX_DROP_NEWEST) {
    /* the child never sees "go": end it and read its mailbox through the
     * stats instead */
    tr_mailbox_stats_t st;
    TR_OK(tr_mailbox_stats(child, &st));
    t->st = st;
    TR_OK(tr_exit_pid(NULL, child, TR_REASON_KILL));
  }
  TR_OK(tr_recv(&m, -1));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  {
    tr_reason_t why;
    TR_OK(tr_msg_reason(m, &why));
    if (t->policy == TR_MAILBOX_EXIT) {
      ck_assert_int_eq(why.kind, TR_REASON_MAILBOX_OVERFLOW);
      ck_assert_str_eq(tr_reason_name(why.kind), "mailbox_overflow");
    }
  }
  tr_msg_free(m);
  ck_assert_int_eq(tr_mailbox_len_of(child, &len), TR_ENOPROC);
  ck_assert_uint_eq(len, 0);
}

START_TEST(test_drop_newest) {
  lim_t t = {.policy = TR_MAILBOX_DROP_NEWEST, .max = 3};
  tr_test_run(flood_parent, &t);
  ck_assert_uint_eq(t.st.len, 3);
  ck_assert_uint_eq(t.st.max, 3);
  ck_assert_int_eq(t.st.policy, TR_MAILBOX_DROP_NEWEST);
  ck_assert_uint_eq(t.st.dropped, 8); /* 7 numbers and "go" */
}
END_TEST

START_TEST(test_drop_oldest) {
  lim_t t = {.policy = TR_MAILBOX_DROP_OLDEST, .max = 3};
  tr_test_run(flood_parent, &t);
  /* 0..9 then "go": the two newest numbers survive beside "go" */
  ck_assert_int_eq(t.ngot, 2);
  ck_assert_int_eq(t.got[0], 8);
  ck_assert_int_eq(t.got[1], 9);
  ck_assert_uint_eq(t.st.dropped, 8);
  ck_assert_uint_eq(t.st.len, 2);
}
END_TEST

START_TEST(test_exit_policy) {
  lim_t t = {.policy = TR_MAILBOX_EXIT, .max = 4};
  tr_test_run(flood_parent, &t);
  ck_assert_int_eq(t.ngot, 0); /* it never ran again */
}
END_TEST

/* ---- what is never dropped ------------------------------------------------ */

static void linked_dier(void *arg) {
  (void)arg;
  tr_exit_error(7, "bye");
}

typedef struct {
  int exits, downs, nums;
} sys_t;

/* A trapping actor with a full DROP_NEWEST mailbox still gets its EXIT and
 * DOWN messages. */
static void sys_keeper(void *arg) {
  sys_t *t = arg;
  tr_pid_t p1, p2;
  tr_ref_t ref;
  tr_msg_t *m;
  tr_trap_exit(1);
  TR_OK(tr_mailbox_limit(2, TR_MAILBOX_DROP_NEWEST));
  send_n(tr_self(), 0, 5);
  TR_OK(tr_spawn_link(linked_dier, NULL, &p1));
  TR_OK(tr_spawn_monitor(linked_dier, NULL, &p2, &ref));
  TR_OK(tr_sleep(20));
  ck_assert_uint_eq(tr_mailbox_len(), 4);
  while (tr_recv(&m, 0) == 0) {
    if (tr_msg_kind(m) == TR_MSG_EXIT) t->exits++;
    else if (tr_msg_kind(m) == TR_MSG_DOWN) t->downs++;
    else t->nums++;
    tr_msg_free(m);
  }
}

START_TEST(test_system_messages_kept) {
  sys_t t = {0};
  tr_test_run(sys_keeper, &t);
  ck_assert_int_eq(t.exits, 1);
  ck_assert_int_eq(t.downs, 1);
  ck_assert_int_eq(t.nums, 2);
}
END_TEST

static void echo_server(void *arg) {
  tr_msg_t *m;
  (void)arg;
  while (tr_recv(&m, -1) == 0) {
    if (tr_msg_kind(m) == TR_MSG_CALL) tr_reply(m, "\x2a", 1);
    tr_msg_free(m);
  }
}

/* An awaited reply reaches a caller whose mailbox is full under EXIT. */
static void full_caller(void *arg) {
  tr_pid_t srv;
  tr_msg_t *r;
  int *ok = arg;
  TR_OK(tr_spawn_link(echo_server, NULL, &srv));
  TR_OK(tr_mailbox_limit(1, TR_MAILBOX_EXIT));
  send_n(tr_self(), 0, 1); /* full */
  TR_OK(tr_call(srv, "\xc0", 1, &r, 1000, NULL));
  ck_assert_int_eq(*(const unsigned char *)tr_msg_data(r, NULL), 0x2a);
  tr_msg_free(r);
  ck_assert_uint_eq(tr_mailbox_len(), 1);
  *ok = 1;
  tr_exit(TR_REASON_SHUTDOWN); /* takes the server down with it */
}

START_TEST(test_reply_kept) {
  int ok = 0;
  tr_test_run(full_caller, &ok);
  ck_assert_int_eq(ok, 1);
}
END_TEST

/* ---- dropped CALLs and TIMERs --------------------------------------------- */

static void busy_server(void *arg) {
  tr_msg_t *m;
  (void)arg;
  TR_OK(tr_mailbox_limit(1, TR_MAILBOX_DROP_NEWEST));
  TR_OK(tr_sleep(200)); /* overloaded: answers nothing for a while */
  while (tr_recv(&m, 0) == 0) {
    if (tr_msg_kind(m) == TR_MSG_CALL) tr_reply(m, "\x01", 1);
    tr_msg_free(m);
  }
}

static void call_client(void *arg) {
  int *rcs = arg;
  tr_pid_t srv;
  tr_msg_t *r = NULL;
  TR_OK(tr_spawn_link(busy_server, NULL, &srv));
  TR_OK(tr_yield()); /* let it set its limit */
  TR_OK(tr_send_tagged(srv, "fill", NULL));
  rcs[0] = tr_call(srv, "\xc0", 1, &r, 50, NULL); /* dropped: times out */
  tr_msg_free(r);
  rcs[1] = tr_send_after(srv, 1, "\x01", 1, NULL);
}

START_TEST(test_dropped_call_times_out) {
  int rcs[2] = {1, 1};
  tr_test_run(call_client, rcs);
  ck_assert_int_eq(rcs[0], TR_ETIMEDOUT);
  ck_assert_int_eq(rcs[1], 0);
}
END_TEST

typedef struct {
  uint64_t dropped;
  int ngot;
} tmr_t;

static void timer_target(void *arg) {
  tmr_t *t = arg;
  tr_mailbox_stats_t st;
  int64_t got[8];
  TR_OK(tr_mailbox_limit(2, TR_MAILBOX_DROP_NEWEST));
  for (int i = 0; i < 5; i++)
    TR_OK(tr_send_after(tr_self(), 1, "\x01", 1, NULL));
  TR_OK(tr_sleep(30));
  TR_OK(tr_mailbox_stats(tr_self(), &st));
  t->dropped = st.dropped;
  t->ngot = drain_nums(got, 8);
}

START_TEST(test_timers_dropped) {
  tmr_t t = {0};
  tr_test_run(timer_target, &t);
  ck_assert_uint_eq(t.dropped, 3);
  ck_assert_int_eq(t.ngot, 2);
}
END_TEST

/* ---- selective receive under DROP_OLDEST ----------------------------------- */

/* The receiver blocks in a selective receive after scanning two queued
 * messages; the flood that follows drops exactly those (its scan position
 * included), then the wanted message arrives. ASan would catch a stale
 * position; the values show the rescan found the right message. */
typedef struct {
  tr_pid_t parent;
  int64_t want;
  int64_t rest[8];
  int nrest;
} sel_t;

static void sel_receiver(void *arg) {
  sel_t *t = arg;
  tr_msg_t *m;
  TR_OK(tr_mailbox_limit(3, TR_MAILBOX_DROP_OLDEST));
  TR_OK(tr_send_tagged(t->parent, "ready", NULL));
  TR_OK(tr_recv_tag(&m, "want", -1));
  t->want = num_of(m);
  tr_msg_free(m);
  t->nrest = drain_nums(t->rest, 8);
}

static void sel_parent(void *arg) {
  sel_t *t = arg;
  tr_pid_t child;
  tr_msg_t *m;
  t->parent = tr_self();
  TR_OK(tr_spawn_link(sel_receiver, t, &child));
  TR_OK(tr_recv_tag(&m, "ready", -1));
  tr_msg_free(m);
  send_n(child, 0, 2);
  TR_OK(tr_yield()); /* the child scans 0 and 1 and blocks */
  send_n(child, 2, 3); /* drops 0 and 1: [2, 3, 4] */
  TR_OK(tr_send_tagged(child, "want", "i", (int64_t)99)); /* drops 2 */
}

START_TEST(test_selective_rescan) {
  sel_t t = {0};
  tr_test_run(sel_parent, &t);
  ck_assert_int_eq(t.want, 99);
  ck_assert_int_eq(t.nrest, 2);
  ck_assert_int_eq(t.rest[0], 3);
  ck_assert_int_eq(t.rest[1], 4);
}
END_TEST

/* A message to one's own full DROP_OLDEST mailbox is the one dropped. */
static void self_sender(void *arg) {
  int64_t got[8];
  int *n = arg;
  TR_OK(tr_mailbox_limit(2, TR_MAILBOX_DROP_OLDEST));
  send_n(tr_self(), 0, 4);
  *n = drain_nums(got, 8);
  ck_assert_int_eq(got[0], 0);
  ck_assert_int_eq(got[1], 1);
}

START_TEST(test_self_send_drops_newest) {
  int n = 0;
  tr_test_run(self_sender, &n);
  ck_assert_int_eq(n, 2);
}
END_TEST

/* ---- changing the limit ---------------------------------------------------- */

static void relimit(void *arg) {
  int64_t got[16];
  tr_mailbox_stats_t st;
  int *n = arg;
  send_n(tr_self(), 0, 6); /* no limit yet */
  TR_OK(tr_mailbox_limit(2, TR_MAILBOX_DROP_NEWEST));
  ck_assert_uint_eq(tr_mailbox_len(), 6); /* applies from the next arrival */
  send_n(tr_self(), 6, 1);
  TR_OK(tr_mailbox_stats(tr_self(), &st));
  ck_assert_uint_eq(st.dropped, 1);
  TR_OK(tr_mailbox_limit(0, TR_MAILBOX_DROP_NEWEST)); /* lifted */
  send_n(tr_self(), 7, 1);
  TR_OK(tr_mailbox_stats(tr_self(), &st));
  ck_assert_uint_eq(st.max, 0);
  ck_assert_uint_eq(st.dropped, 1); /* the count stays */
  *n = drain_nums(got, 16);
  ck_assert_int_eq(got[6], 7);
  ck_assert_int_eq(tr_mailbox_limit(1, (tr_mailbox_policy_t)3), TR_EINVAL);
  ck_assert_int_eq(tr_mailbox_limit(1, (tr_mailbox_policy_t)-1), TR_EINVAL);
}

START_TEST(test_relimit) {
  int n = 0;
  tr_test_run(relimit, &n);
  ck_assert_int_eq(n, 7);
}
END_TEST

/* ---- limits from spawn options --------------------------------------------- */

static void idle_child(void *arg) {
  tr_msg_t *m;
  (void)arg;
  if (tr_recv_tag(&m, "never", -1) == 0) tr_msg_free(m);
}

static void spawn_limited(void *arg) {
  tr_spawn_opts_t o;
  tr_mailbox_stats_t st;
  tr_pid_t child;
  int *done = arg;
  tr_spawn_opts_init(&o);
  o.mailbox_max = 5;
  o.mailbox_policy = TR_MAILBOX_DROP_OLDEST;
  o.flags = TR_SPAWN_LINK;
  TR_OK(tr_spawn(NULL, idle_child, NULL, &o, &child));
  send_n(child, 0, 12);
  TR_OK(tr_mailbox_stats(child, &st));
  ck_assert_uint_eq(st.len, 5);
  ck_assert_uint_eq(st.max, 5);
  ck_assert_int_eq(st.policy, TR_MAILBOX_DROP_OLDEST);
  ck_assert_uint_eq(st.dropped, 7);
  o.mailbox_policy = (tr_mailbox_policy_t)17;
  ck_assert_int_eq(tr_spawn(NULL, idle_child, NULL, &o, NULL), TR_EINVAL);
  /* an older, smaller options struct has no limit fields: not read */
  o.size = offsetof(tr_spawn_opts_t, mailbox_max);
  TR_OK(tr_spawn(NULL, idle_child, NULL, &o, &child));
  send_n(child, 0, 12);
  TR_OK(tr_mailbox_stats(child, &st));
  ck_assert_uint_eq(st.len, 12);
  ck_assert_uint_eq(st.max, 0);
  o.size = sizeof(o) + 8; /* a newer one than this runtime knows */
  ck_assert_int_eq(tr_spawn(NULL, idle_child, NULL, &o, NULL), TR_EINVAL);
  *done = 1;
  tr_exit(TR_REASON_SHUTDOWN);
}

START_TEST(test_spawn_opts_limit) {
  tr_runtime_t *rt;
  int done = 0;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, spawn_limited, &done, NULL, NULL));
  TR_OK(tr_runtime_run(rt)); /* the linked children go with it */
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(done, 1);
}
END_TEST

/* ---- observation from outside actors --------------------------------------- */

static void *other_thread(void *arg) {
  size_t len = 7;
  tr_mailbox_stats_t st;
  tr_pid_t pid = *(tr_pid_t *)arg;
  intptr_t ok = tr_mailbox_len_of(pid, &len) == TR_EWRONGTHREAD && len == 0 &&
                tr_mailbox_stats(pid, &st) == TR_EWRONGTHREAD;
  return (void *)ok;
}

START_TEST(test_observe_outside) {
  tr_runtime_t *rt;
  tr_pid_t pid;
  size_t len = 1;
  tr_mailbox_stats_t st;
  pthread_t th;
  void *ok = NULL;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, idle_child, NULL, NULL, &pid));
  TR_OK(tr_mailbox_len_of(pid, &len));
  ck_assert_uint_eq(len, 0);
  TR_OK(tr_runtime_send(rt, pid, "\x01", 1));
  TR_OK(tr_runtime_send(rt, pid, "\x02", 1));
  TR_OK(tr_mailbox_len_of(pid, &len));
  ck_assert_uint_eq(len, 2);
  TR_OK(tr_mailbox_stats(pid, &st));
  ck_assert_uint_eq(st.len, 2);
  ck_assert_uint_eq(st.max, 0);
  ck_assert_int_eq(tr_mailbox_len_of(pid, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_mailbox_stats(pid, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_mailbox_len_of(TR_PID_NONE, &len), TR_ENOPROC);
  ck_assert_int_eq(tr_mailbox_len_of(UINT64_C(0xdeadbeefcafe), &len), TR_ENOPROC);
  ck_assert_int_eq(tr_mailbox_limit(1, TR_MAILBOX_EXIT), TR_ENOTACTOR);
  ck_assert_int_eq(pthread_create(&th, NULL, other_thread, &pid), 0);
  ck_assert_int_eq(pthread_join(th, &ok), 0);
  ck_assert_ptr_nonnull(ok);
  TR_OK(tr_exit_pid(rt, pid, TR_REASON_KILL));
  ck_assert_int_eq(tr_mailbox_len_of(pid, &len), TR_ENOPROC);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ---- a flood under EXIT, supervised ---------------------------------------- */

static int g_starts;

static void sup_worker(void *arg) {
  tr_msg_t *m;
  (void)arg;
  g_starts++;
  TR_OK(tr_mailbox_limit(8, TR_MAILBOX_EXIT));
  TR_OK(tr_register("w", tr_self()));
  TR_OK(tr_sup_init_ack(TR_INIT_OK));
  for (;;) { /* slow consumer */
    TR_OK(tr_sleep(5));
    if (tr_recv(&m, 0) == 0) tr_msg_free(m);
  }
}

static void flooder(void *arg) {
  tr_sup_flags_t f;
  tr_child_spec_t spec;
  tr_sup_child_info_t info;
  tr_pid_t sup, w;
  (void)arg;
  tr_sup_flags_init(&f);
  f.intensity = 10;
  tr_child_spec_init(&spec, "w", sup_worker, NULL);
  TR_OK(tr_sup_start_link(&f, &spec, 1, &sup, NULL));
  TR_OK(tr_whereis("w", &w));
  for (int i = 0; i < 20; i++) TR_OK(tr_send_tagged(w, "n", "i", (int64_t)i));
  TR_OK(tr_sleep(10)); /* its EXIT reaches the supervisor before our call */
  TR_OK(tr_sup_child_info(sup, "w", &info));
  ck_assert_uint_eq(info.restarts, 1);
  ck_assert_uint_eq(info.exits, 1);
  ck_assert_int_eq(info.last_exit.kind, TR_REASON_MAILBOX_OVERFLOW);
  ck_assert_int_eq(info.last_exit.code, 8);
  TR_OK(tr_sup_stop(sup));
}

START_TEST(test_supervised_overflow) {
  g_starts = 0;
  tr_test_run(flooder, NULL);
  ck_assert_int_eq(g_starts, 2);
}
END_TEST

static Suite *overload_suite(void) {
  Suite *s = suite_create("overload");
  TCase *p = tcase_create("policies");
  TCase *k = tcase_create("kept");
  TCase *o = tcase_create("observe");
  tcase_add_test(p, test_drop_newest);
  tcase_add_test(p, test_drop_oldest);
  tcase_add_test(p, test_exit_policy);
  tcase_add_test(p, test_timers_dropped);
  tcase_add_test(p, test_dropped_call_times_out);
  tcase_add_test(p, test_selective_rescan);
  tcase_add_test(p, test_self_send_drops_newest);
  tcase_add_test(p, test_relimit);
  tcase_add_test(p, test_spawn_opts_limit);
  tcase_add_test(p, test_supervised_overflow);
  tcase_add_test(k, test_system_messages_kept);
  tcase_add_test(k, test_reply_kept);
  tcase_add_test(o, test_observe_outside);
  suite_add_tcase(s, p);
  suite_add_tcase(s, k);
  suite_add_tcase(s, o);
  return s;
}

TR_TEST_MAIN(overload_suite)
