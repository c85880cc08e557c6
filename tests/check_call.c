/* Check suite for call/reply (mailbox/call.c): round trips, a server that
 * dies, dead pids, timeouts and late replies, self calls, ordering of other
 * messages, and tr_reply's own errors. */
#include <stdint.h>
#include <time.h>

#include "testutil.h"

static const unsigned char ONE[] = {0x01};

/* ------------------------------------------------------------------------ */
/* A server: answers n with n * n after delay_ms; 0 stops it; 13 kills it
 * with an error before replying.                                           */
/* ------------------------------------------------------------------------ */

typedef struct {
  uint64_t delay_first_ms; /* sleep before answering the first call */
  int calls;               /* CALL messages seen */
  int user;                /* USER messages seen */
  int bad_reply_rc;        /* tr_reply on a USER message */
  tr_pid_t last_from;
  tr_ref_t refs[8];
  int replies_sent;
} server_t;

static void square_server(void *arg) {
  server_t *sv = arg;
  tr_msg_t *m;
  unsigned char buf[9];
  for (;;) {
    if (tr_recv(&m, -1) != 0) return;
    if (tr_msg_kind(m) == TR_MSG_USER) {
      sv->user++;
      sv->bad_reply_rc = tr_reply(m, ONE, sizeof(ONE));
      tr_msg_free(m);
      continue;
    }
    ck_assert_int_eq(tr_msg_kind(m), TR_MSG_CALL);
    uint64_t n = tr_test_msg_u64(m);
    sv->last_from = tr_msg_from(m);
    if (sv->calls < 8) sv->refs[sv->calls] = tr_msg_ref(m);
    if (sv->calls++ == 0 && sv->delay_first_ms) TR_OK(tr_sleep(sv->delay_first_ms));
    if (n == 13) tr_exit_error(13, "unlucky %d", 13);
    TR_OK(tr_reply(m, buf, tr_test_pack_u64(buf, n * n)));
    sv->replies_sent++;
    tr_msg_free(m);
    if (n == 0) return;
  }
}

/* Calls srv with n and returns the reply's value. */
static uint64_t call_u64(tr_pid_t srv, uint64_t n, int timeout_ms) {
  unsigned char buf[9];
  tr_msg_t *reply = NULL;
  uint64_t v;
  TR_OK(tr_call(srv, buf, tr_test_pack_u64(buf, n), &reply, timeout_ms, NULL));
  ck_assert_ptr_nonnull(reply);
  ck_assert_int_eq(tr_msg_kind(reply), TR_MSG_REPLY);
  ck_assert_uint_eq(tr_msg_from(reply), srv);
  v = tr_test_msg_u64(reply);
  tr_msg_free(reply);
  return v;
}

static void roundtrip_client(void *arg) {
  server_t sv;
  tr_pid_t srv;
  tr_ref_t mref;
  tr_msg_t *m;
  tr_reason_t why;
  (void)arg;
  memset(&sv, 0, sizeof(sv));
  TR_OK(tr_spawn_monitor(square_server, &sv, &srv, &mref));
  ck_assert_uint_eq(call_u64(srv, 7, -1), 49);
  ck_assert_uint_eq(call_u64(srv, 12, 5000), 144);
  ck_assert_uint_eq(call_u64(srv, 1u << 20, 5000), (uint64_t)1 << 40);
  ck_assert_int_eq(sv.calls, 3);
  ck_assert_uint_eq(sv.last_from, tr_self());
  /* Each call carried its own non-zero ref. */
  ck_assert_uint_ne(sv.refs[0], 0);
  ck_assert_uint_ne(sv.refs[0], sv.refs[1]);
  ck_assert_uint_ne(sv.refs[1], sv.refs[2]);
  /* The call's monitor and the reply are gone: nothing left behind. */
  ck_assert_uint_eq(tr_mailbox_len(), 0);

  /* Argument errors. */
  {
    static const unsigned char bad[] = {0x92, 0x01};
    tr_msg_t *reply = (tr_msg_t *)&reply;
    ck_assert_int_eq(tr_call(srv, bad, sizeof(bad), &reply, 100, &why), TR_EBADMSG);
    ck_assert_int_eq(tr_call(srv, ONE, sizeof(ONE), NULL, 100, &why), TR_EINVAL);
    ck_assert_int_eq(tr_call(srv, ONE, sizeof(ONE), &reply, -2, &why), TR_EINVAL);
    ck_assert_int_eq(sv.calls, 3); /* none of those reached the server */
  }

  /* A successful call leaves no monitor: the server's later death sends
   * us only the DOWN of our own spawn_monitor. */
  ck_assert_uint_eq(call_u64(srv, 0, 5000), 0);
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), mref);
  tr_msg_free(m);
  ck_assert_int_eq(tr_recv(&m, 30), TR_ETIMEDOUT);
}

START_TEST(test_roundtrip) { tr_test_run(roundtrip_client, NULL); }
END_TEST

static void dying_server_client(void *arg) {
  server_t sv;
  tr_pid_t srv;
  unsigned char buf[9];
  tr_msg_t *reply = (tr_msg_t *)&reply;
  tr_reason_t why;
  (void)arg;
  memset(&sv, 0, sizeof(sv));
  memset(&why, 0, sizeof(why));
  TR_OK(tr_spawn(NULL, square_server, &sv, NULL, &srv));
  ck_assert_uint_eq(call_u64(srv, 3, 5000), 9);
  ck_assert_int_eq(tr_call(srv, buf, tr_test_pack_u64(buf, 13), &reply, -1, &why), TR_EDOWN);
  ck_assert_ptr_null(reply);
  ck_assert_int_eq(why.kind, TR_REASON_ERROR);
  ck_assert_int_eq(why.code, 13);
  ck_assert_str_eq(why.text, "unlucky 13");
  ck_assert_int_eq(sv.replies_sent, 1);
  ck_assert(!tr_is_alive(srv));
  /* The DOWN that ended the call was consumed, not left queued. */
  ck_assert_uint_eq(tr_mailbox_len(), 0);

  /* A call to the now dead pid fails at once with noproc. */
  {
    double t0 = tr_test_now_ms();
    memset(&why, 0, sizeof(why));
    ck_assert_int_eq(tr_call(srv, ONE, sizeof(ONE), &reply, -1, &why), TR_EDOWN);
    ck_assert_int_eq(why.kind, TR_REASON_NOPROC);
    ck_assert_ptr_null(reply);
    ck_assert_int_eq(tr_call(srv, ONE, sizeof(ONE), &reply, 5000, NULL), TR_EDOWN);
    ck_assert_double_lt(tr_test_now_ms() - t0, 1000);
  }
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_server_dies) { tr_test_run(dying_server_client, NULL); }
END_TEST

/* A server killed by a third party while the caller waits. */
static void killer(void *arg) {
  tr_pid_t victim = *(tr_pid_t *)arg;
  TR_OK(tr_sleep(20));
  TR_OK(tr_exit_pid(NULL, victim, TR_REASON_KILL));
}

static void silent_server(void *arg) {
  tr_msg_t *m;
  (void)arg;
  for (;;) {
    TR_OK(tr_recv(&m, -1)); /* takes calls, never answers */
    tr_msg_free(m);
  }
}

static void killed_server_client(void *arg) {
  tr_pid_t srv;
  tr_msg_t *reply;
  tr_reason_t why;
  (void)arg;
  TR_OK(tr_spawn(NULL, silent_server, NULL, NULL, &srv));
  TR_OK(tr_spawn(NULL, killer, &srv, NULL, NULL));
  ck_assert_int_eq(tr_call(srv, ONE, sizeof(ONE), &reply, -1, &why), TR_EDOWN);
  ck_assert_int_eq(why.kind, TR_REASON_KILLED);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_server_killed_during_call) { tr_test_run(killed_server_client, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Timeouts and late replies                                                */
/* ------------------------------------------------------------------------ */

static void timeout_client(void *arg) {
  server_t sv;
  tr_pid_t srv;
  unsigned char buf[9];
  tr_msg_t *reply = (tr_msg_t *)&reply, *m;
  double t0, dt;
  (void)arg;
  memset(&sv, 0, sizeof(sv));
  sv.delay_first_ms = 100;
  TR_OK(tr_spawn(NULL, square_server, &sv, NULL, &srv));
  t0 = tr_test_now_ms();
  ck_assert_int_eq(tr_call(srv, buf, tr_test_pack_u64(buf, 5), &reply, 30, NULL),
                   TR_ETIMEDOUT);
  dt = tr_test_now_ms() - t0;
  ck_assert_ptr_null(reply);
  ck_assert_double_ge(dt, 30 - 1);
  ck_assert_double_lt(dt, 30 + 1000);
  ck_assert_int_eq(sv.replies_sent, 0);
  /* The late reply (25) arrives while we wait for something else... */
  ck_assert_int_eq(tr_recv(&m, 300), TR_ETIMEDOUT);
  ck_assert_int_eq(sv.replies_sent, 1);
  /* ...and is dropped: never in the mailbox. */
  ck_assert_uint_eq(tr_mailbox_len(), 0);
  /* The server is fine; a new call gets its own answer. */
  ck_assert_uint_eq(call_u64(srv, 6, 5000), 36);
  ck_assert_uint_eq(call_u64(srv, 0, 5000), 0);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

/* One scheduler: plain state shared by its actors. */
START_TEST(test_timeout_late_reply_dropped) { tr_test_run1(timeout_client, NULL); }
END_TEST

/* A late reply that arrives during the next call must not answer it. */
static void late_during_next_client(void *arg) {
  server_t sv;
  tr_pid_t srv;
  unsigned char buf[9];
  tr_msg_t *reply;
  (void)arg;
  memset(&sv, 0, sizeof(sv));
  sv.delay_first_ms = 50;
  TR_OK(tr_spawn(NULL, square_server, &sv, NULL, &srv));
  ck_assert_int_eq(tr_call(srv, buf, tr_test_pack_u64(buf, 4), &reply, 10, NULL),
                   TR_ETIMEDOUT);
  /* Still waiting for the server's sleep: this call is queued behind the
   * first one, whose reply (16) comes first. */
  ck_assert_uint_eq(call_u64(srv, 9, 5000), 81);
  ck_assert_int_eq(sv.replies_sent, 2);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
  ck_assert_uint_eq(call_u64(srv, 0, 5000), 0);
}

START_TEST(test_late_reply_during_next_call) { tr_test_run(late_during_next_client, NULL); }
END_TEST

static void zero_timeout_client(void *arg) {
  server_t sv;
  tr_pid_t srv;
  tr_msg_t *reply, *m;
  unsigned char buf[9];
  (void)arg;
  memset(&sv, 0, sizeof(sv));
  TR_OK(tr_spawn(NULL, square_server, &sv, NULL, &srv));
  /* 0 polls: the server has not run yet, so the call times out at once. */
  ck_assert_int_eq(tr_call(srv, buf, tr_test_pack_u64(buf, 2), &reply, 0, NULL), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_recv(&m, 50), TR_ETIMEDOUT);
  ck_assert_int_eq(sv.calls, 1);
  ck_assert_int_eq(sv.replies_sent, 1);
  ck_assert_uint_eq(call_u64(srv, 0, 5000), 0);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

/* One scheduler: plain state shared by its actors. */
START_TEST(test_zero_timeout) { tr_test_run1(zero_timeout_client, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Self, ordering, reply errors                                             */
/* ------------------------------------------------------------------------ */

static void self_client(void *arg) {
  tr_msg_t *reply = NULL;
  tr_reason_t why;
  (void)arg;
  ck_assert_int_eq(tr_call(tr_self(), ONE, sizeof(ONE), &reply, -1, &why), TR_ESELF);
  ck_assert_ptr_null(reply);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_call_self) { tr_test_run(self_client, NULL); }
END_TEST

typedef struct {
  tr_pid_t client;
} meddler_t;

/* Answers one call, but first sends the caller an unrelated message. */
static void meddling_server(void *arg) {
  meddler_t *md = arg;
  tr_msg_t *m;
  unsigned char buf[9];
  TR_OK(tr_recv(&m, -1));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_CALL);
  TR_OK(tr_send_tagged(md->client, "m", "i", (int64_t)3));
  TR_OK(tr_send_tagged(md->client, "m", "i", (int64_t)4));
  TR_OK(tr_yield());
  TR_OK(tr_reply(m, buf, tr_test_pack_u64(buf, 77)));
  tr_msg_free(m);
}

static void order_client(void *arg) {
  meddler_t md;
  tr_pid_t srv;
  tr_msg_t *m;
  (void)arg;
  md.client = tr_self();
  TR_OK(tr_send_tagged(tr_self(), "m", "i", (int64_t)1));
  TR_OK(tr_send_tagged(tr_self(), "m", "i", (int64_t)2));
  TR_OK(tr_spawn(NULL, meddling_server, &md, NULL, &srv));
  ck_assert_uint_eq(call_u64(srv, 1, 5000), 77);
  ck_assert_uint_eq(tr_mailbox_len(), 4);
  for (int64_t i = 1; i <= 4; i++) {
    const msgpack_object *o;
    TR_OK(tr_recv(&m, 0));
    ck_assert(tr_msg_is_tag(m, "m"));
    o = tr_msg_obj(m);
    ck_assert_int_eq(o->via.array.ptr[1].via.i64, i);
    tr_msg_free(m);
  }
  /* No DOWN from the call's monitor once the server exits. */
  ck_assert_int_eq(tr_recv(&m, 30), TR_ETIMEDOUT);
}

START_TEST(test_other_messages_keep_order) { tr_test_run(order_client, NULL); }
END_TEST

static void reply_errors_client(void *arg) {
  server_t sv;
  tr_pid_t srv;
  (void)arg;
  memset(&sv, 0, sizeof(sv));
  sv.bad_reply_rc = 1;
  TR_OK(tr_spawn(NULL, square_server, &sv, NULL, &srv));
  TR_OK(tr_send(srv, ONE, sizeof(ONE))); /* a USER message */
  ck_assert_uint_eq(call_u64(srv, 0, 5000), 0);
  ck_assert_int_eq(sv.user, 1);
  ck_assert_int_eq(sv.bad_reply_rc, TR_EINVAL);
  ck_assert_int_eq(tr_reply(NULL, ONE, sizeof(ONE)), TR_EINVAL);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_reply_non_call) { tr_test_run(reply_errors_client, NULL); }
END_TEST

/* The caller gives up and exits; the server answers afterwards. */
typedef struct {
  tr_pid_t srv;
  int reply_rc;
  int bad_body_rc;
  int caller_rc;
} dead_caller_t;

static void patient_server(void *arg) {
  dead_caller_t *d = arg;
  tr_msg_t *m, *down;
  tr_ref_t ref;
  static const unsigned char bad[] = {0xc1};
  TR_OK(tr_recv(&m, -1));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_CALL);
  TR_OK(tr_monitor(tr_msg_from(m), &ref));
  TR_OK(tr_recv(&down, 5000));
  ck_assert_int_eq(tr_msg_kind(down), TR_MSG_DOWN);
  tr_msg_free(down);
  d->bad_body_rc = tr_reply(m, bad, sizeof(bad));
  d->reply_rc = tr_reply(m, ONE, sizeof(ONE));
  tr_msg_free(m);
}

static void impatient_caller(void *arg) {
  dead_caller_t *d = arg;
  tr_msg_t *reply;
  d->caller_rc = tr_call(d->srv, ONE, sizeof(ONE), &reply, 10, NULL);
}

START_TEST(test_reply_to_dead_caller) {
  tr_runtime_t *rt = NULL;
  dead_caller_t d = {0, 1, 1, 1};
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, patient_server, &d, NULL, &d.srv));
  TR_OK(tr_spawn(rt, impatient_caller, &d, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(d.caller_rc, TR_ETIMEDOUT);
  ck_assert_int_eq(d.bad_body_rc, TR_EBADMSG);
  ck_assert_int_eq(d.reply_rc, 0);
}
END_TEST

/* Regression (fuzz/fuzz_call.c): a server that answers the same CALL twice
 * in one go, before the caller ran, queued both REPLYs; the caller took the
 * first and the second stayed in its mailbox for good — never receivable,
 * yet counted by tr_mailbox_len. One reply per call is accepted now. */
static void double_replier(void *arg) {
  tr_msg_t *m;
  (void)arg;
  if (tr_recv(&m, -1) != 0) return;
  TR_OK(tr_reply(m, ONE, sizeof(ONE)));
  TR_OK(tr_reply(m, ONE, sizeof(ONE))); /* dropped on delivery */
  tr_msg_free(m);
}

static void double_reply_client(void *arg) {
  tr_pid_t srv;
  tr_msg_t *reply;
  int *left = arg;
  TR_OK(tr_spawn_link(double_replier, NULL, &srv));
  TR_OK(tr_call(srv, ONE, sizeof(ONE), &reply, 1000, NULL));
  tr_msg_free(reply);
  TR_OK(tr_sleep(5));
  *left = (int)tr_mailbox_len();
  ck_assert_int_eq(tr_recv(&reply, 0), TR_ETIMEDOUT);
}

START_TEST(test_double_reply_not_stranded) {
  int left = -1;
  tr_test_run(double_reply_client, &left);
  ck_assert_int_eq(left, 0);
}
END_TEST

/* Regression (fuzz/fuzz_call.c): a REPLY for a call accepted after the
 * DOWN that ended the call stayed in the caller's mailbox for good (never
 * receivable, yet counted). Made with the runtime's internals: the REPLY
 * is delivered between the server's DOWN and the caller's resumption. */
#include "internal.h"

static tr_pid_t g_caller, g_injector;

static void exits_on_call(void *arg) {
  tr_msg_t *m;
  (void)arg;
  if (tr_recv(&m, -1) != 0) return;
  tr_msg_free(m);
  TR_OK(tr_send(g_injector, ONE, sizeof(ONE))); /* runs before the caller */
}

static void injector(void *arg) {
  tr_msg_t *m;
  tr__actor_t *c;
  tr_msg_t *r;
  (void)arg;
  TR_OK(tr_recv(&m, -1));
  tr_msg_free(m);
  c = tr__lookup(tr__tls_sched, g_caller);
  ck_assert_ptr_nonnull(c);
  ck_assert_uint_ne(c->call_ref, 0); /* DOWN queued, caller not yet run */
  r = tr__msg_new(TR_MSG_REPLY, ONE, sizeof(ONE), 0);
  r->ref = c->call_ref;
  tr__deliver(c, r);
}

static void down_then_reply_client(void *arg) {
  tr_pid_t srv;
  tr_msg_t *reply;
  int *left = arg;
  g_caller = tr_self();
  TR_OK(tr_spawn_link(injector, NULL, &g_injector));
  TR_OK(tr_spawn(NULL, exits_on_call, NULL, NULL, &srv));
  ck_assert_int_eq(tr_call(srv, ONE, sizeof(ONE), &reply, 1000, NULL), TR_EDOWN);
  *left = (int)tr_mailbox_len();
}

START_TEST(test_reply_behind_down_not_stranded) {
  /* One scheduler: it reaches into the caller through the runtime's internals. */
  int left = -1;
  tr_test_run1(down_then_reply_client, &left);
  ck_assert_int_eq(left, 0);
}
END_TEST

static Suite *suite_call(void) {
  Suite *s = suite_create("call");
  TCase *tc = tcase_create("call");
  tcase_add_test(tc, test_roundtrip);
  tcase_add_test(tc, test_server_dies);
  tcase_add_test(tc, test_server_killed_during_call);
  tcase_add_test(tc, test_timeout_late_reply_dropped);
  tcase_add_test(tc, test_late_reply_during_next_call);
  tcase_add_test(tc, test_zero_timeout);
  tcase_add_test(tc, test_call_self);
  tcase_add_test(tc, test_other_messages_keep_order);
  tcase_add_test(tc, test_reply_non_call);
  tcase_add_test(tc, test_reply_to_dead_caller);
  tcase_add_test(tc, test_double_reply_not_stranded);
  tcase_add_test(tc, test_reply_behind_down_not_stranded);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(suite_call)
