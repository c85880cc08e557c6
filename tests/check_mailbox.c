/* Check suite for mailboxes (mailbox/mailbox.c): validated sends, tagged
 * and object sends, per-pair FIFO order, receive timeouts, selective
 * receive, message ownership and the accessors. */
#include <math.h>
#include <stdint.h>
#include <time.h>

#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static const unsigned char ONE[] = {0x01};

/* The integer that follows the tag of a ["tag", int] message. */
static int64_t tagged_int(tr_msg_t *m) {
  const msgpack_object *o = tr_msg_obj(m);
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_ge(o->via.array.size, 2);
  return o->via.array.ptr[1].via.i64;
}

static int str_eq(const msgpack_object *o, const char *s, size_t n) {
  return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
         memcmp(o->via.str.ptr, s, n) == 0;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
  tr_pid_t sink;
  int sink_got;      /* messages the sink received */
  int sink_first_ok; /* the first one was the valid "end" marker */
} bad_t;

static void bad_sink(void *arg) {
  bad_t *t = arg;
  tr_msg_t *m;
  while (tr_recv(&m, 50) == 0) {
    if (t->sink_got++ == 0) t->sink_first_ok = tr_msg_is_tag(m, "end");
    tr_msg_free(m);
  }
}

static void bad_sender(void *arg) {
  bad_t *t = arg;
  static const unsigned char truncated[] = {0x92, 0x01};  /* [1, ? */
  static const unsigned char trailing[] = {0x01, 0x02};   /* two values */
  static const unsigned char never_used[] = {0xc1};
  static const unsigned char short_str[] = {0xa5, 'a', 'b'};
  static const unsigned char short_u32[] = {0xce, 0, 0};
  const tr_pid_t to[2] = {tr_self(), t->sink};

  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(tr_send(to[i], truncated, sizeof(truncated)), TR_EBADMSG);
    ck_assert_int_eq(tr_send(to[i], trailing, sizeof(trailing)), TR_EBADMSG);
    ck_assert_int_eq(tr_send(to[i], never_used, sizeof(never_used)), TR_EBADMSG);
    ck_assert_int_eq(tr_send(to[i], short_str, sizeof(short_str)), TR_EBADMSG);
    ck_assert_int_eq(tr_send(to[i], short_u32, sizeof(short_u32)), TR_EBADMSG);
    ck_assert_int_eq(tr_send(to[i], NULL, 4), TR_EINVAL);
    ck_assert_int_eq(tr_send(to[i], ONE, 0), TR_EINVAL);
  }
  ck_assert_uint_eq(tr_mailbox_len(), 0);
  {
    tr_msg_t *m = (tr_msg_t *)&m;
    ck_assert_int_eq(tr_recv(&m, 0), TR_ETIMEDOUT);
    ck_assert_ptr_null(m);
  }
  TR_OK(tr_send_tagged(t->sink, "end", ""));
}

START_TEST(test_send_validates) {
  tr_runtime_t *rt = NULL;
  bad_t t = {0, 0, 0};
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, bad_sink, &t, NULL, &t.sink));
  TR_OK(tr_spawn(rt, bad_sender, &t, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(t.sink_got, 1);
  ck_assert_int_eq(t.sink_first_ok, 1);
}
END_TEST

/* A lone fixed-width number (lead 0xca..0xd3) is checked without the
 * validator's full pass: exactly its width is accepted and decodes as
 * msgpack-c decodes it, a byte short or a byte over is TR_EBADMSG. */
static void numbers_actor(void *arg) {
  static const size_t width[10] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
  (void)arg;
  for (unsigned lead = 0xca; lead <= 0xd3; lead++) {
    for (unsigned fill = 0; fill < 2; fill++) { /* small, then top bit set */
      unsigned char buf[10];
      size_t w = width[lead - 0xca];
      msgpack_unpacked ref;
      size_t off = 0;
      tr_msg_t *m;
      buf[0] = (unsigned char)lead;
      for (size_t i = 0; i < w; i++)
        buf[1 + i] = (unsigned char)(fill ? 0x80 + i : (i + 1 == w ? 0x2a : 0));
      ck_assert_int_eq(tr_send(tr_self(), buf, w), TR_EBADMSG);
      ck_assert_int_eq(tr_send(tr_self(), buf, w + 2), TR_EBADMSG);
      TR_OK(tr_send(tr_self(), buf, w + 1));
      TR_OK(tr_recv(&m, 0));
      msgpack_unpacked_init(&ref);
      ck_assert_int_eq(msgpack_unpack_next(&ref, (const char *)buf, w + 1, &off),
                       MSGPACK_UNPACK_SUCCESS);
      ck_assert_ptr_nonnull(tr_msg_obj(m));
      ck_assert(msgpack_object_equal(*tr_msg_obj(m), ref.data));
      msgpack_unpacked_destroy(&ref);
      tr_msg_free(m);
    }
  }
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_send_lone_numbers) { tr_test_run(numbers_actor, NULL); }
END_TEST

static void big_sender(void *arg) {
  size_t n = TR_MSG_MAX + 1;
  unsigned char *buf = malloc(n);
  (void)arg;
  ck_assert_ptr_nonnull(buf);
  memset(buf, 0xc0, n); /* nil nil nil ...: too big before anything else */
  ck_assert_int_eq(tr_send(tr_self(), buf, n), TR_EMSGSIZE);
  free(buf);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_send_too_big) { tr_test_run(big_sender, NULL); }
END_TEST

static void obj_actor(void *arg) {
  msgpack_object inner[6], kv_key, root;
  msgpack_object_kv kv;
  tr_msg_t *m;
  const msgpack_object *got;
  (void)arg;

  inner[0].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
  inner[0].via.u64 = 1;
  inner[1].type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
  inner[1].via.i64 = -2;
  inner[2].type = MSGPACK_OBJECT_STR;
  inner[2].via.str.ptr = "str";
  inner[2].via.str.size = 3;
  inner[3].type = MSGPACK_OBJECT_BOOLEAN;
  inner[3].via.boolean = true;
  inner[4].type = MSGPACK_OBJECT_NIL;
  inner[5].type = MSGPACK_OBJECT_FLOAT64;
  inner[5].via.f64 = 2.5;
  kv_key.type = MSGPACK_OBJECT_STR;
  kv_key.via.str.ptr = "k";
  kv_key.via.str.size = 1;
  kv.key = kv_key;
  kv.val.type = MSGPACK_OBJECT_ARRAY;
  kv.val.via.array.size = 6;
  kv.val.via.array.ptr = inner;
  root.type = MSGPACK_OBJECT_MAP;
  root.via.map.size = 1;
  root.via.map.ptr = &kv;

  TR_OK(tr_send_obj(tr_self(), &root));
  ck_assert_int_eq(tr_send_obj(tr_self(), NULL), TR_EINVAL);
  ck_assert_uint_eq(tr_mailbox_len(), 1);
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_USER);
  ck_assert_uint_eq(tr_msg_from(m), tr_self());
  got = tr_msg_obj(m);
  ck_assert_ptr_nonnull(got);
  ck_assert(msgpack_object_equal(*got, root));
  ck_assert_ptr_eq(tr_msg_obj(m), got); /* decoded once, stable */
  tr_msg_free(m);
}

START_TEST(test_send_obj) { tr_test_run(obj_actor, NULL); }
END_TEST

static void tagged_actor(void *arg) {
  static const unsigned char blob[] = {0, 1, 2, 0xff};
  tr_msg_t *m;
  const msgpack_object *o, *a;
  tr_pid_t pid;
  tr_pid_t me = tr_self();
  size_t len;
  (void)arg;

  TR_OK(tr_send_tagged(me, "all", "iiudbbnsssSBp", (int64_t)-5, (int64_t)INT64_MAX,
                       (uint64_t)UINT64_MAX, 3.25, 1, 0, "hello", "", (const char *)NULL,
                       "a\0b", (size_t)3, blob, sizeof(blob), me));
  /* An unknown letter: TR_EINVAL and nothing sent. */
  ck_assert_int_eq(tr_send_tagged(me, "bad", "ix", (int64_t)1, 2), TR_EINVAL);
  ck_assert_uint_eq(tr_mailbox_len(), 1);
  TR_OK(tr_recv(&m, 0));
  ck_assert(tr_msg_is_tag(m, "all"));
  ck_assert(!tr_msg_is_tag(m, "al"));
  ck_assert(!tr_msg_is_tag(m, "alll"));
  o = tr_msg_obj(m);
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(o->via.array.size, 14);
  a = o->via.array.ptr;
  ck_assert(str_eq(&a[0], "all", 3));
  ck_assert_int_eq(a[1].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
  ck_assert_int_eq(a[1].via.i64, -5);
  ck_assert_int_eq(a[2].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  ck_assert_uint_eq(a[2].via.u64, (uint64_t)INT64_MAX);
  ck_assert_int_eq(a[3].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  ck_assert_uint_eq(a[3].via.u64, UINT64_MAX);
  ck_assert(a[4].type == MSGPACK_OBJECT_FLOAT64 || a[4].type == MSGPACK_OBJECT_FLOAT);
  ck_assert(a[4].via.f64 == 3.25);
  ck_assert_int_eq(a[5].type, MSGPACK_OBJECT_BOOLEAN);
  ck_assert(a[5].via.boolean == true);
  ck_assert_int_eq(a[6].type, MSGPACK_OBJECT_BOOLEAN);
  ck_assert(a[6].via.boolean == false);
  ck_assert_int_eq(a[7].type, MSGPACK_OBJECT_NIL);
  ck_assert(str_eq(&a[8], "hello", 5));
  ck_assert(str_eq(&a[9], "", 0));
  ck_assert_int_eq(a[10].type, MSGPACK_OBJECT_NIL); /* s with NULL */
  ck_assert(str_eq(&a[11], "a\0b", 3));
  ck_assert_int_eq(a[12].type, MSGPACK_OBJECT_BIN);
  ck_assert_uint_eq(a[12].via.bin.size, sizeof(blob));
  ck_assert(memcmp(a[12].via.bin.ptr, blob, sizeof(blob)) == 0);
  ck_assert_int_eq(a[13].type, MSGPACK_OBJECT_EXT);
  ck_assert_int_eq(a[13].via.ext.type, TR_EXT_PID);
  TR_OK(tr_obj_pid(&a[13], &pid));
  ck_assert_uint_eq(pid, me);
  /* The raw body is what tr_pack_tagged produces for the same input. */
  {
    void *data = NULL;
    size_t plen = 0;
    const void *raw = tr_msg_data(m, &len);
    TR_OK(tr_pack_tagged(&data, &plen, "all", "iiudbbnsssSBp", (int64_t)-5,
                         (int64_t)INT64_MAX, (uint64_t)UINT64_MAX, 3.25, 1, 0,
                         "hello", "", (const char *)NULL, "a\0b", (size_t)3, blob,
                         sizeof(blob), me));
    ck_assert_uint_eq(len, plen);
    ck_assert(memcmp(raw, data, len) == 0);
    free(data);
  }
  tr_msg_free(m);

  /* No arguments at all: a one-element array. */
  TR_OK(tr_send_tagged(me, "solo", ""));
  TR_OK(tr_recv(&m, 0));
  o = tr_msg_obj(m);
  ck_assert_uint_eq(o->via.array.size, 1);
  ck_assert(tr_msg_is_tag(m, "solo"));
  tr_msg_free(m);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_send_tagged_letters) { tr_test_run(tagged_actor, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* FIFO                                                                     */
/* ------------------------------------------------------------------------ */

#define FIFO_N 10000

typedef struct {
  tr_pid_t rx;
  tr_pid_t tx[2];
  uint64_t next[2]; /* next value expected from each sender */
  int out_of_order;
  int unknown;
  int send_failed;
} fifo_t;

static void fifo_rx(void *arg) {
  fifo_t *f = arg;
  tr_msg_t *m;
  for (int n = 0; n < 2 * FIFO_N; n++) {
    if (tr_recv(&m, 5000) != 0) break;
    int k = tr_msg_from(m) == f->tx[0] ? 0 : tr_msg_from(m) == f->tx[1] ? 1 : -1;
    if (k < 0) f->unknown++;
    else if (tr_test_msg_u64(m) != f->next[k]++) f->out_of_order++;
    tr_msg_free(m);
  }
}

static void fifo_tx(void *arg) {
  fifo_t *f = arg;
  unsigned char buf[9];
  for (uint64_t i = 0; i < FIFO_N; i++) {
    if (tr_send(f->rx, buf, tr_test_pack_u64(buf, i)) != 0) f->send_failed++;
    if (i % 97 == 0 && tr_yield() != 0) f->send_failed++; /* interleave */
  }
}

START_TEST(test_fifo_per_pair) {
  tr_runtime_t *rt = NULL;
  fifo_t f;
  memset(&f, 0, sizeof(f));
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, fifo_rx, &f, NULL, &f.rx));
  TR_OK(tr_spawn(rt, fifo_tx, &f, NULL, &f.tx[0]));
  TR_OK(tr_spawn(rt, fifo_tx, &f, NULL, &f.tx[1]));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(f.send_failed, 0);
  ck_assert_int_eq(f.unknown, 0);
  ck_assert_int_eq(f.out_of_order, 0);
  ck_assert_uint_eq(f.next[0], FIFO_N);
  ck_assert_uint_eq(f.next[1], FIFO_N);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Receive timeouts                                                         */
/* ------------------------------------------------------------------------ */

typedef struct {
  double waited_forever_ms; /* how long tr_recv(-1) blocked */
  double timed_out_ms;      /* how long tr_recv(80) took to time out */
  double sender_sent_at;    /* when the delayed sender sent */
  double got_at;
  tr_pid_t rx;
} timeout_t;

static void delayed_sender(void *arg) {
  timeout_t *t = arg;
  TR_OK(tr_sleep(40));
  if (t->sender_sent_at == 0) t->sender_sent_at = tr_test_now_ms();
  TR_OK(tr_send(t->rx, ONE, sizeof(ONE)));
}

static void timeout_actor(void *arg) {
  timeout_t *t = arg;
  tr_msg_t *m = (tr_msg_t *)&m;
  double t0;

  /* Poll on an empty mailbox. */
  t0 = tr_test_now_ms();
  ck_assert_int_eq(tr_recv(&m, 0), TR_ETIMEDOUT);
  ck_assert_ptr_null(m);
  ck_assert_double_lt(tr_test_now_ms() - t0, tr_test_on_valgrind() ? 1000 : 50);
  ck_assert_int_eq(tr_recv(&m, -2), TR_EINVAL);
  ck_assert_int_eq(tr_recv(NULL, 0), TR_EINVAL);
  ck_assert_int_eq(tr_recv(NULL, -1), TR_EINVAL);

  /* A finite wait times out after roughly that long. */
  t0 = tr_test_now_ms();
  ck_assert_int_eq(tr_recv(&m, 80), TR_ETIMEDOUT);
  t->timed_out_ms = tr_test_now_ms() - t0;
  ck_assert_ptr_null(m);

  /* Poll with something queued returns it at once. */
  TR_OK(tr_send(tr_self(), ONE, sizeof(ONE)));
  TR_OK(tr_recv(&m, 0));
  ck_assert_uint_eq(tr_test_msg_u64(m), 1);
  tr_msg_free(m);

  /* -1 waits for as long as it takes. */
  TR_OK(tr_spawn(NULL, delayed_sender, t, NULL, NULL));
  t0 = tr_test_now_ms();
  TR_OK(tr_recv(&m, -1));
  t->got_at = tr_test_now_ms();
  t->waited_forever_ms = t->got_at - t0;
  ck_assert_uint_eq(tr_test_msg_u64(m), 1);
  tr_msg_free(m);

  /* A finite wait that a message ends early. */
  TR_OK(tr_spawn(NULL, delayed_sender, t, NULL, NULL));
  t0 = tr_test_now_ms();
  TR_OK(tr_recv(&m, 5000));
  ck_assert_double_lt(tr_test_now_ms() - t0, 2000);
  tr_msg_free(m);
  /* And its timer is gone: a later poll is a plain poll. */
  ck_assert_int_eq(tr_recv(&m, 0), TR_ETIMEDOUT);
}

START_TEST(test_recv_timeouts) {
  tr_runtime_t *rt = NULL;
  timeout_t t;
  memset(&t, 0, sizeof(t));
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, timeout_actor, &t, NULL, &t.rx));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_double_ge(t.timed_out_ms, 80 - 1);
  ck_assert_double_lt(t.timed_out_ms, 80 + 1000);
  ck_assert_double_ge(t.waited_forever_ms, 40 - 1);
  ck_assert_double_ge(t.got_at, t.sender_sent_at);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Selective receive                                                        */
/* ------------------------------------------------------------------------ */

static int match_int(const tr_msg_t *m, void *arg) {
  /* tr_msg_obj needs a mutable message; read the raw body instead. */
  size_t len;
  const unsigned char *d = tr_msg_data(m, &len);
  const unsigned char *want = arg;
  /* ["x", n] with n < 128: 0x92 0xa1 'x' n */
  return len == 4 && d[0] == 0x92 && d[3] == *want;
}

static void selective_actor(void *arg) {
  tr_pid_t me = tr_self();
  tr_msg_t *m;
  unsigned char want;
  (void)arg;
  TR_OK(tr_send_tagged(me, "a", "i", (int64_t)1));
  TR_OK(tr_send_tagged(me, "b", "i", (int64_t)2));
  TR_OK(tr_send_tagged(me, "a", "i", (int64_t)3));
  TR_OK(tr_send_tagged(me, "c", "i", (int64_t)4));
  TR_OK(tr_send_tagged(me, "b", "i", (int64_t)5));
  TR_OK(tr_send_tagged(me, "c", "i", (int64_t)6));
  ck_assert_uint_eq(tr_mailbox_len(), 6);

  TR_OK(tr_recv_tag(&m, "b", 0));
  ck_assert_int_eq(tagged_int(m), 2);
  tr_msg_free(m);
  want = 4;
  TR_OK(tr_recv_match(&m, match_int, &want, 0));
  ck_assert_int_eq(tagged_int(m), 4);
  tr_msg_free(m);
  ck_assert_uint_eq(tr_mailbox_len(), 4);

  /* No match: timeout, nothing consumed or reordered. */
  ck_assert_int_eq(tr_recv_tag(&m, "zzz", 0), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_recv_tag(&m, "zzz", 20), TR_ETIMEDOUT);
  want = 99;
  ck_assert_int_eq(tr_recv_match(&m, match_int, &want, 10), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_recv_tag(&m, "", 0), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_recv_tag(&m, NULL, 0), TR_EINVAL);
  ck_assert_int_eq(tr_recv_match(&m, NULL, NULL, 0), TR_EINVAL);
  ck_assert_int_eq(tr_recv_tag(NULL, "a", 0), TR_EINVAL);
  ck_assert_int_eq(tr_recv_tag(&m, "a", -7), TR_EINVAL);
  ck_assert_uint_eq(tr_mailbox_len(), 4);

  /* The rest in arrival order. */
  for (int64_t want_v = 1; want_v <= 6; want_v++) {
    if (want_v == 2 || want_v == 4) continue;
    TR_OK(tr_recv(&m, 0));
    ck_assert_int_eq(tagged_int(m), want_v);
    tr_msg_free(m);
  }
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_selective_order) { tr_test_run(selective_actor, NULL); }
END_TEST

typedef struct {
  tr_pid_t rx;
  int64_t got[8];
  int n;
} sel_wait_t;

static void sel_feeder(void *arg) {
  sel_wait_t *t = arg;
  for (int64_t i = 1; i <= 3; i++) {
    TR_OK(tr_send_tagged(t->rx, "noise", "i", i));
    TR_OK(tr_yield());
  }
  TR_OK(tr_sleep(10));
  TR_OK(tr_send_tagged(t->rx, "noise", "i", (int64_t)4));
  TR_OK(tr_send_tagged(t->rx, "go", "i", (int64_t)100));
  TR_OK(tr_send_tagged(t->rx, "noise", "i", (int64_t)5));
}

/* Blocks in a selective receive while non-matching messages trickle in. */
static void sel_waiter(void *arg) {
  sel_wait_t *t = arg;
  tr_msg_t *m;
  TR_OK(tr_spawn(NULL, sel_feeder, t, NULL, NULL));
  TR_OK(tr_recv_tag(&m, "go", 5000));
  t->got[t->n++] = tagged_int(m);
  tr_msg_free(m);
  TR_OK(tr_sleep(5)); /* let the last noise arrive */
  while (tr_recv(&m, 0) == 0) {
    ck_assert(tr_msg_is_tag(m, "noise"));
    t->got[t->n++] = tagged_int(m);
    tr_msg_free(m);
  }
}

START_TEST(test_selective_wait) {
  sel_wait_t t;
  tr_runtime_t *rt = NULL;
  memset(&t, 0, sizeof(t));
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, sel_waiter, &t, NULL, &t.rx));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(t.n, 6);
  ck_assert_int_eq(t.got[0], 100);
  for (int i = 1; i < 6; i++) ck_assert_int_eq(t.got[i], i);
}
END_TEST

#define SCAN_N 1000000

typedef struct {
  int send_failed;
  int out_of_order;
  uint64_t received;
  size_t len_before, len_after_match;
  int matched_ok;
} scan_t;

/* Fills its own mailbox with SCAN_N non-matching messages and one matching
 * one, takes the match, then drains the rest checking their order. */
static void scan_actor(void *arg) {
  scan_t *t = arg;
  tr_pid_t me = tr_self();
  unsigned char buf[9];
  tr_msg_t *m;
  for (uint64_t i = 0; i < SCAN_N; i++)
    if (tr_send(me, buf, tr_test_pack_u64(buf, i)) != 0) t->send_failed++;
  TR_OK(tr_send_tagged(me, "needle", "i", (int64_t)7));
  t->len_before = tr_mailbox_len();
  TR_OK(tr_recv_tag(&m, "needle", 0));
  t->matched_ok = tagged_int(m) == 7;
  tr_msg_free(m);
  t->len_after_match = tr_mailbox_len();
  while (tr_recv(&m, 0) == 0) {
    if (tr_test_msg_u64(m) != t->received) t->out_of_order++;
    t->received++;
    tr_msg_free(m);
  }
}

START_TEST(test_selective_million) {
  scan_t t;
  memset(&t, 0, sizeof(t));
  tr_test_run(scan_actor, &t);
  ck_assert_int_eq(t.send_failed, 0);
  ck_assert_uint_eq(t.len_before, SCAN_N + 1);
  ck_assert_int_eq(t.matched_ok, 1);
  ck_assert_uint_eq(t.len_after_match, SCAN_N);
  ck_assert_uint_eq(t.received, SCAN_N);
  ck_assert_int_eq(t.out_of_order, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Ownership                                                                */
/* ------------------------------------------------------------------------ */

/* Receives messages and keeps them, leaves more queued, then exits in the
 * way arg says; the runtime must free all of them (ASan/valgrind check). */
static void hoarder(void *arg) {
  int how = (int)(intptr_t)arg;
  tr_msg_t *m, *held[100];
  for (int i = 0; i < 200; i++)
    TR_OK(tr_send_tagged(tr_self(), "keep", "iS", (int64_t)i, "payload", (size_t)7));
  for (int i = 0; i < 100; i++) {
    TR_OK(tr_recv(&held[i], 0));
    ck_assert_ptr_nonnull(tr_msg_obj(held[i])); /* decoded: owns a zone */
  }
  ck_assert_uint_eq(tr_mailbox_len(), 100);
  /* Freeing from the middle and both ends keeps the others intact. */
  tr_msg_free(held[50]);
  tr_msg_free(held[0]);
  tr_msg_free(held[99]);
  for (int i = 1; i < 99; i++)
    if (i != 50) ck_assert_int_eq(tagged_int(held[i]), i);
  if (how == 1) tr_exit_error(1, "with messages held");
  if (how == 2) tr_recv_tag(&m, "never", -1); /* killed here */
}

static void hoard_driver(void *arg) {
  tr_pid_t p[3];
  tr_ref_t r[3];
  tr_msg_t *m;
  (void)arg;
  for (int i = 0; i < 3; i++)
    TR_OK(tr_spawn_monitor(hoarder, (void *)(intptr_t)i, &p[i], &r[i]));
  TR_OK(tr_yield());
  TR_OK(tr_exit_pid(NULL, p[2], TR_REASON_KILL));
  for (int i = 0; i < 3; i++) {
    TR_OK(tr_recv(&m, 5000));
    ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
    tr_msg_free(m);
  }
}

START_TEST(test_unfreed_released_on_exit) {
  tr_runtime_t *rt = NULL;
  tr_test_run(hoard_driver, NULL);
  /* Also with the actors still alive when the runtime is freed. */
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, hoarder, (void *)(intptr_t)2, NULL, NULL));
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 1);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

START_TEST(test_accessors_null) {
  size_t len = 99;
  tr_reason_t r;
  tr_msg_free(NULL);
  ck_assert_int_eq(tr_msg_kind(NULL), TR_MSG_USER);
  ck_assert_uint_eq(tr_msg_from(NULL), TR_PID_NONE);
  ck_assert_uint_eq(tr_msg_ref(NULL), 0);
  ck_assert_ptr_null(tr_msg_data(NULL, &len));
  ck_assert_uint_eq(len, 0);
  ck_assert_ptr_null(tr_msg_data(NULL, NULL));
  ck_assert_ptr_null(tr_msg_obj(NULL));
  ck_assert_int_eq(tr_msg_reason(NULL, &r), TR_EINVAL);
  ck_assert_int_eq(tr_msg_is_tag(NULL, "x"), 0);
}
END_TEST

static void accessor_actor(void *arg) {
  tr_msg_t *m;
  tr_reason_t r;
  size_t len = 0;
  const unsigned char *d;
  (void)arg;
  TR_OK(tr_send_tagged(tr_self(), "t", "i", (int64_t)3));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_USER);
  ck_assert_uint_eq(tr_msg_from(m), tr_self());
  ck_assert_uint_eq(tr_msg_ref(m), 0);
  d = tr_msg_data(m, &len);
  ck_assert_uint_eq(len, 4);
  ck_assert(d[0] == 0x92 && d[1] == 0xa1 && d[2] == 't' && d[3] == 3);
  ck_assert_ptr_eq(tr_msg_data(m, NULL), d);
  ck_assert_int_eq(tr_msg_reason(m, &r), TR_EINVAL); /* not EXIT/DOWN */
  ck_assert_int_eq(tr_msg_reason(m, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_is_tag(m, NULL), 0);
  tr_msg_free(m);
}

START_TEST(test_accessors) { tr_test_run(accessor_actor, NULL); }
END_TEST

static void len_actor(void *arg) {
  tr_msg_t *m;
  (void)arg;
  ck_assert_uint_eq(tr_mailbox_len(), 0);
  for (int i = 0; i < 3; i++) TR_OK(tr_send(tr_self(), ONE, sizeof(ONE)));
  ck_assert_uint_eq(tr_mailbox_len(), 3);
  TR_OK(tr_recv(&m, 0));
  ck_assert_uint_eq(tr_mailbox_len(), 2); /* held messages do not count */
  tr_msg_free(m);
  ck_assert_uint_eq(tr_mailbox_len(), 2);
  TR_OK(tr_recv(&m, 0));
  tr_msg_free(m);
  TR_OK(tr_recv(&m, 0));
  tr_msg_free(m);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_mailbox_len) {
  ck_assert_uint_eq(tr_mailbox_len(), 0); /* outside an actor */
  tr_test_run(len_actor, NULL);
}
END_TEST

static void quick_exit_actor(void *arg) { (void)arg; }

static void dead_target_actor(void *arg) {
  tr_pid_t dead;
  tr_ref_t ref;
  tr_msg_t *m;
  msgpack_object nil;
  (void)arg;
  nil.type = MSGPACK_OBJECT_NIL;
  TR_OK(tr_spawn_monitor(quick_exit_actor, NULL, &dead, &ref));
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  tr_msg_free(m);
  ck_assert(!tr_is_alive(dead));
  ck_assert_int_eq(tr_send(dead, ONE, sizeof(ONE)), 0);
  ck_assert_int_eq(tr_send_obj(dead, &nil), 0);
  ck_assert_int_eq(tr_send_tagged(dead, "t", "i", (int64_t)1), 0);
  /* Validation still comes first. */
  ck_assert_int_eq(tr_send(dead, ONE, 0), TR_EINVAL);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_send_to_dead) { tr_test_run(dead_target_actor, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Sends from outside, timers                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
  int n;
  tr_pid_t from[2];
  uint64_t val[2];
} host_rx_t;

static void host_rx(void *arg) {
  host_rx_t *t = arg;
  tr_msg_t *m;
  while (tr_recv(&m, 0) == 0) {
    t->from[t->n] = tr_msg_from(m);
    t->val[t->n] = tr_test_msg_u64(m);
    t->n++;
    tr_msg_free(m);
  }
}

START_TEST(test_runtime_send) {
  tr_runtime_t *rt = NULL;
  host_rx_t t;
  tr_pid_t pid;
  unsigned char buf[9];
  static const unsigned char bad[] = {0x92, 0x01};
  memset(&t, 0, sizeof(t));
  ck_assert_int_eq(tr_runtime_send(NULL, 1, ONE, sizeof(ONE)), TR_EINVAL);
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, host_rx, &t, NULL, &pid));
  TR_OK(tr_runtime_send(rt, pid, buf, tr_test_pack_u64(buf, 11)));
  ck_assert_int_eq(tr_runtime_send(rt, pid, bad, sizeof(bad)), TR_EBADMSG);
  TR_OK(tr_runtime_send(rt, pid, buf, tr_test_pack_u64(buf, 22)));
  TR_OK(tr_runtime_run(rt));
  /* Dead now: a silent no-op. */
  ck_assert_int_eq(tr_runtime_send(rt, pid, ONE, sizeof(ONE)), 0);
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(t.n, 2);
  ck_assert_uint_eq(t.from[0], TR_PID_NONE);
  ck_assert_uint_eq(t.from[1], TR_PID_NONE);
  ck_assert_uint_eq(t.val[0], 11);
  ck_assert_uint_eq(t.val[1], 22);
}
END_TEST

static void timer_kind_actor(void *arg) {
  tr_ref_t ref = 0;
  tr_msg_t *m;
  size_t len;
  const unsigned char *d;
  unsigned char body[9];
  size_t blen = tr_test_pack_u64(body, 4242);
  (void)arg;
  TR_OK(tr_send_after(tr_self(), 5, body, blen, &ref));
  ck_assert_uint_ne(ref, 0);
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_TIMER);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  ck_assert_uint_eq(tr_msg_from(m), TR_PID_NONE); /* only USER/CALL have one */
  d = tr_msg_data(m, &len);
  ck_assert_uint_eq(len, blen);
  ck_assert(memcmp(d, body, blen) == 0);
  ck_assert_uint_eq(tr_test_msg_u64(m), 4242);
  tr_msg_free(m);
}

START_TEST(test_timer_kind) { tr_test_run(timer_kind_actor, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Decoded bodies (tr_msg_obj): counted on send, decoded into recycled      */
/* storage, each message's objects its own until tr_msg_free                */
/* ------------------------------------------------------------------------ */

/* Body shapes whose decodes need differently sized storage: none, a few
 * objects, W7's payload (23, in the largest recycled class), a map with
 * nested containers and a bin, more objects than any recycled class holds,
 * nesting deeper than the decoder's local stack, and an empty array. */
enum { SH_SCALAR, SH_SMALL, SH_PAYLOAD, SH_MAP, SH_WIDE, SH_DEEP, SH_EMPTY,
       SH_COUNT };
#define WIDE_N 100
#define DEEP_N 20

static const char PAYLOAD_NAME[] =
    "troupe-payload-troupe-payload-troupe-payload-troupe-pay";

/* The body of shape `sh` built from `seed`; the caller frees sb. */
static void shape_pack(msgpack_sbuffer *sb, int sh, uint64_t seed) {
  msgpack_packer pk;
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  switch (sh) {
  case SH_SCALAR: msgpack_pack_uint64(&pk, seed); break;
  case SH_SMALL:
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, seed);
    msgpack_pack_int64(&pk, -(int64_t)seed - 1);
    msgpack_pack_double(&pk, (double)seed / 2);
    break;
  case SH_PAYLOAD:
    msgpack_pack_array(&pk, 7);
    msgpack_pack_str_with_body(&pk, "payload", 7);
    msgpack_pack_uint64(&pk, seed);
    for (int i = 1; i <= 3; i++) msgpack_pack_int64(&pk, i);
    msgpack_pack_str_with_body(&pk, PAYLOAD_NAME, sizeof PAYLOAD_NAME - 1);
    msgpack_pack_array(&pk, 16);
    for (int i = 0; i < 16; i++)
      msgpack_pack_int64(&pk, ((int64_t)1 << 40) + (int64_t)seed + i);
    break;
  case SH_MAP: /* {"k": [seed, nil, {"x": seed + 1}], "b": bin(4)} */
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, seed);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_uint64(&pk, seed + 1);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_bin_with_body(&pk, &seed, 4);
    break;
  case SH_WIDE:
    msgpack_pack_array(&pk, WIDE_N);
    for (int i = 0; i < WIDE_N; i++) msgpack_pack_uint64(&pk, seed * 3 + i);
    break;
  case SH_DEEP:
    for (int i = 0; i < DEEP_N; i++) msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, seed);
    break;
  default: msgpack_pack_array(&pk, 0); break;
  }
}

static int is_uint(const msgpack_object *o, uint64_t v) {
  return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == v;
}

/* Whether o is exactly the decoded body of shape sh built from seed. */
static int shape_ok(const msgpack_object *o, int sh, uint64_t seed) {
  const msgpack_object *a;
  const msgpack_object_kv *kv;
  if (o == NULL) return 0;
  switch (sh) {
  case SH_SCALAR: return is_uint(o, seed);
  case SH_SMALL:
    a = o->via.array.ptr;
    return o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3 &&
           is_uint(&a[0], seed) && a[1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
           a[1].via.i64 == -(int64_t)seed - 1 && a[2].via.f64 == (double)seed / 2;
  case SH_PAYLOAD:
    a = o->via.array.ptr;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 7 ||
        !str_eq(&a[0], "payload", 7) || !is_uint(&a[1], seed) ||
        !is_uint(&a[2], 1) || !is_uint(&a[3], 2) || !is_uint(&a[4], 3) ||
        !str_eq(&a[5], PAYLOAD_NAME, sizeof PAYLOAD_NAME - 1) ||
        a[6].type != MSGPACK_OBJECT_ARRAY || a[6].via.array.size != 16)
      return 0;
    for (int i = 0; i < 16; i++)
      if (!is_uint(&a[6].via.array.ptr[i], ((uint64_t)1 << 40) + seed + i))
        return 0;
    return 1;
  case SH_MAP:
    kv = o->via.map.ptr;
    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != 2 ||
        !str_eq(&kv[0].key, "k", 1) || !str_eq(&kv[1].key, "b", 1) ||
        kv[0].val.type != MSGPACK_OBJECT_ARRAY || kv[0].val.via.array.size != 3)
      return 0;
    a = kv[0].val.via.array.ptr;
    return is_uint(&a[0], seed) && a[1].type == MSGPACK_OBJECT_NIL &&
           a[2].type == MSGPACK_OBJECT_MAP && a[2].via.map.size == 1 &&
           str_eq(&a[2].via.map.ptr[0].key, "x", 1) &&
           is_uint(&a[2].via.map.ptr[0].val, seed + 1) &&
           kv[1].val.type == MSGPACK_OBJECT_BIN && kv[1].val.via.bin.size == 4 &&
           memcmp(kv[1].val.via.bin.ptr, &seed, 4) == 0;
  case SH_WIDE:
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != WIDE_N) return 0;
    for (int i = 0; i < WIDE_N; i++)
      if (!is_uint(&o->via.array.ptr[i], seed * 3 + i)) return 0;
    return 1;
  case SH_DEEP:
    for (int i = 0; i < DEEP_N; i++) {
      if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 1) return 0;
      o = o->via.array.ptr;
    }
    return is_uint(o, seed);
  default:
    return o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0;
  }
}

static void shape_send(tr_pid_t to, int sh, uint64_t seed) {
  msgpack_sbuffer sb;
  shape_pack(&sb, sh, seed);
  TR_OK(tr_send(to, sb.data, sb.size));
  msgpack_sbuffer_destroy(&sb);
}

/* Sends the SH_PAYLOAD body with tr_send_tagged (the I letter for the
 * nested int64 array), as the W7 benchmark does. */
static int payload_send_tagged(tr_pid_t to, uint64_t seed) {
  int64_t v[16];
  for (int i = 0; i < 16; i++) v[i] = ((int64_t)1 << 40) + (int64_t)seed + i;
  return tr_send_tagged(to, "payload", "uiiiSI", seed, (int64_t)1, (int64_t)2,
                        (int64_t)3, PAYLOAD_NAME, sizeof PAYLOAD_NAME - 1, v,
                        (size_t)16);
}


/* A held message with the shape and seed it must still decode to. */
typedef struct {
  tr_msg_t *m;
  const msgpack_object *o;
  int sh;
  uint64_t seed;
} held_t;

static void held_recv(held_t *h, int sh, uint64_t seed) {
  TR_OK(tr_recv(&h->m, 0));
  h->o = tr_msg_obj(h->m);
  h->sh = sh;
  h->seed = seed;
  ck_assert_msg(shape_ok(h->o, sh, seed), "shape %d seed %llu decoded wrong",
                sh, (unsigned long long)seed);
  ck_assert_ptr_eq(tr_msg_obj(h->m), h->o); /* decoded once */
}

static void held_check(const held_t *h) {
  ck_assert_msg(shape_ok(h->o, h->sh, h->seed),
                "held shape %d seed %llu clobbered", h->sh,
                (unsigned long long)h->seed);
}

static void obj_lifetime_actor(void *arg) {
  held_t first[SH_COUNT], ring[5] = {{0}};
  (void)arg;
  /* Every shape decoded and held at once: all stay intact. */
  for (int sh = 0; sh < SH_COUNT; sh++) shape_send(tr_self(), sh, 100 + sh);
  for (int sh = 0; sh < SH_COUNT; sh++) held_recv(&first[sh], sh, 100 + sh);
  for (int sh = 0; sh < SH_COUNT; sh++) held_check(&first[sh]);
  /* Free every other one; then many messages of every shape come and go,
   * reusing the storage of those freed, while the odd ones and a ring of
   * recent ones are still held. */
  for (int sh = 0; sh < SH_COUNT; sh += 2) tr_msg_free(first[sh].m);
  for (uint64_t i = 0; i < 700; i++) {
    held_t h;
    int sh = (int)(i * 5 % SH_COUNT);
    shape_send(tr_self(), sh, 1000 + i);
    held_recv(&h, sh, 1000 + i);
    if (i % 3 == 0) { /* keep it a while */
      held_t *slot = &ring[i / 3 % 5];
      if (slot->m != NULL) {
        held_check(slot);
        tr_msg_free(slot->m);
      }
      *slot = h;
    } else {
      tr_msg_free(h.m);
    }
    for (int k = 1; k < SH_COUNT; k += 2) held_check(&first[k]);
    for (int k = 0; k < 5; k++)
      if (ring[k].m != NULL) held_check(&ring[k]);
  }
  for (int k = 1; k < SH_COUNT; k += 2) tr_msg_free(first[k].m);
  for (int k = 0; k < 5; k++) tr_msg_free(ring[k].m);
}

START_TEST(test_obj_shapes_and_lifetime) { tr_test_run(obj_lifetime_actor, NULL); }
END_TEST

static void obj_recycle_actor(void *arg) {
  held_t a, b;
  const msgpack_object *storage;
  void *volatile decoy;
  (void)arg;
  /* Both queued before either is received: nothing is allocated between
   * freeing a and decoding b. */
  shape_send(tr_self(), SH_PAYLOAD, 1);
  shape_send(tr_self(), SH_PAYLOAD, 2);
  held_recv(&a, SH_PAYLOAD, 1);
  storage = a.o->via.array.ptr;
  tr_msg_free(a.m);
  /* Were the storage (the payload's 23 element objects) malloc'd and
   * freed, this would take it back (kept in a volatile so that the
   * compiler cannot drop the malloc). */
  decoy = malloc(23 * sizeof(msgpack_object));
  held_recv(&b, SH_PAYLOAD, 2);
  /* The decode reused a's storage rather than allocating its own. */
  ck_assert_ptr_eq(b.o->via.array.ptr, storage);
  tr_msg_free(b.m);
  free(decoy);
}

static void tagged_payload_actor(void *arg) {
  static const int64_t three[] = {1, 2, 3};
  held_t a;
  tr_msg_t *m;
  msgpack_sbuffer sb;
  const void *raw;
  size_t len;
  void *storage;
  (void)arg;
  /* The body is byte for byte what msgpack-c packs for the same value. */
  TR_OK(payload_send_tagged(tr_self(), 5));
  TR_OK(tr_recv(&m, 0));
  raw = tr_msg_data(m, &len);
  shape_pack(&sb, SH_PAYLOAD, 5);
  ck_assert_uint_eq(len, sb.size);
  ck_assert(memcmp(raw, sb.data, len) == 0);
  msgpack_sbuffer_destroy(&sb);
  ck_assert(shape_ok(tr_msg_obj(m), SH_PAYLOAD, 5));
  tr_msg_free(m);
  /* Its decode takes the recycled storage a validated body of the same
   * shape used: the count the packing took is the validator's. */
  shape_send(tr_self(), SH_PAYLOAD, 6);
  held_recv(&a, SH_PAYLOAD, 6);
  storage = a.o->via.array.ptr;
  tr_msg_free(a.m);
  TR_OK(payload_send_tagged(tr_self(), 7));
  held_recv(&a, SH_PAYLOAD, 7);
  ck_assert_ptr_eq(a.o->via.array.ptr, storage);
  tr_msg_free(a.m);
  /* Bad arguments: an error and nothing sent, to live and dead pids. */
  ck_assert_int_eq(tr_send_tagged(tr_self(), "t", "iI", (int64_t)1,
                                  (const int64_t *)NULL, (size_t)2),
                   TR_EINVAL);
  ck_assert_int_eq(tr_send_tagged(tr_self(), "t", "I", three, SIZE_MAX),
                   TR_EMSGSIZE);
  ck_assert_int_eq(tr_send_tagged(TR_PID_NONE, "t", "I", three,
                                  (size_t)TR_MSG_MAX + 1),
                   TR_EMSGSIZE);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
  TR_OK(tr_send_tagged(TR_PID_NONE, "t", "I", three, (size_t)3));
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_send_tagged_int_array) {
  tr_test_run1(tagged_payload_actor, NULL);
}
END_TEST

/* Small bodies are packed in one pass on the stack, larger ones (and bad
 * arguments) take the sizing and writing passes: either way the body is
 * tr_pack_tagged's (itself msgpack-c's, check_codec), and its decode, sized
 * by the count the send took, is msgpack-c's. */
static void same_as_packed(int line, int send_rc, int pack_rc, void *data,
                           size_t len) {
  tr_msg_t *m;
  const void *raw;
  const msgpack_object *o;
  msgpack_zone zone;
  msgpack_object ref;
  size_t rlen, off = 0;
  ck_assert_msg(send_rc == 0 && pack_rc == 0, "line %d: %d %d", line,
                send_rc, pack_rc);
  TR_OK(tr_recv(&m, 0));
  raw = tr_msg_data(m, &rlen);
  ck_assert_msg(rlen == len && memcmp(raw, data, len) == 0,
                "line %d: body differs (%zu and %zu bytes)", line, rlen, len);
  o = tr_msg_obj(m);
  ck_assert_ptr_nonnull(o);
  msgpack_zone_init(&zone, 4096);
  ck_assert(msgpack_unpack(raw, rlen, &off, &zone, &ref) ==
            MSGPACK_UNPACK_SUCCESS);
  ck_assert_msg(msgpack_object_equal(*o, ref), "line %d: decode differs", line);
  msgpack_zone_destroy(&zone);
  free(data);
  tr_msg_free(m);
}

#define SAME_AS_PACKED(tag, fmt, ...)                                        \
  do {                                                                       \
    void *pk_data_ = NULL;                                                   \
    size_t pk_len_ = 0;                                                      \
    int pk_rc_ = tr_pack_tagged(&pk_data_, &pk_len_, tag, fmt, __VA_ARGS__); \
    same_as_packed(__LINE__, tr_send_tagged(tr_self(), tag, fmt, __VA_ARGS__), \
                   pk_rc_, pk_data_, pk_len_);                               \
  } while (0)

static void one_pass_actor(void *arg) {
  static char text[70001];
  static int64_t ints[80];
  static const int64_t edges[] = {
      0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296,
      INT64_MAX, -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,
      (int64_t)INT32_MIN - 1, INT64_MIN};
  const size_t ne = sizeof edges / sizeof edges[0];
  (void)arg;
  memset(text, 'x', sizeof text - 1);
  for (int k = 0; k < 80; k++)
    ints[k] = edges[k % ne] ^ (k % 3 == 0 ? 0 : (int64_t)k << 35);
  /* tags of every str form, one too long for the stack buffer */
  {
    static const size_t tag_lens[] = {0, 1, 31, 32, 255, 256, 500, 600};
    for (size_t k = 0; k < sizeof tag_lens / sizeof tag_lens[0]; k++) {
      char tag[601];
      memset(tag, 't', tag_lens[k]);
      tag[tag_lens[k]] = '\0';
      SAME_AS_PACKED(tag, "i", (int64_t)k);
    }
  }
  /* every integer form, alone and in arrays of every header form */
  for (size_t k = 0; k < ne; k++)
    SAME_AS_PACKED("int", "iu", edges[k], (uint64_t)edges[k]);
  SAME_AS_PACKED("u", "uuu", (uint64_t)INT64_MAX + 1, UINT64_MAX, (uint64_t)0);
  /* every form after every form (the writer keeps runs of one form) */
  for (size_t a = 0; a < ne; a++) {
    for (size_t b = 0; b < ne; b++) {
      const int64_t seq[5] = {edges[a], edges[b], edges[b], edges[a], edges[b]};
      SAME_AS_PACKED("pair", "I", seq, (size_t)5);
    }
  }
  {
    static const size_t counts[] = {0, 1, 2, 15, 16, 17, 40, 49, 50, 80};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
      SAME_AS_PACKED("ints", "I", ints, counts[k]);
      SAME_AS_PACKED("ints", "Ii", ints + 80 - counts[k], counts[k], (int64_t)-7);
    }
  }
  /* strings and bins of every header form, around the stack buffer's size */
  {
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 400, 480, 490,
                                  495, 500, 505, 511, 512, 600, 65535, 65536,
                                  70000};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
      char save = text[lens[k]];
      SAME_AS_PACKED("s", "S", text, lens[k]);
      SAME_AS_PACKED("b", "B", text, lens[k]);
      SAME_AS_PACKED("sb", "iSnB", (int64_t)lens[k], text, lens[k] / 2, text,
                     lens[k] / 2);
      text[lens[k]] = '\0'; /* and as a C string */
      SAME_AS_PACKED("c", "s", text);
      text[lens[k]] = save;
    }
  }
  /* every other letter, NULLs that pack nil */
  SAME_AS_PACKED("all", "dbbnpsSBI", -0.5, 1, 0, tr_self(), (const char *)NULL,
                 (const char *)NULL, (size_t)0, (const void *)NULL, (size_t)0,
                 (const int64_t *)NULL, (size_t)0);
  /* 14 letters fit a fixarray header; 15 and more take the two passes */
  SAME_AS_PACKED("n14", "nnnnnnnnnnnnnn", 0);
  SAME_AS_PACKED("n15", "nnnnnnnnnnnnnnn", 0);
  SAME_AS_PACKED("i20", "iiiiiiiiiiiiiiiiiiii", (int64_t)1, (int64_t)2,
                 (int64_t)3, (int64_t)4, (int64_t)5, (int64_t)6, (int64_t)7,
                 (int64_t)8, (int64_t)9, (int64_t)10, (int64_t)11, (int64_t)12,
                 (int64_t)13, (int64_t)14, (int64_t)15, (int64_t)16,
                 (int64_t)17, (int64_t)18, (int64_t)19, (int64_t)20);
  /* many scalars after a string that leaves little room */
  SAME_AS_PACKED("tight", "Siiiiu", text, (size_t)470, INT64_MIN, INT64_MIN,
                 INT64_MIN, INT64_MIN, UINT64_MAX);
  /* errors found by the passes after the one-pass writer gave up */
  ck_assert_int_eq(tr_send_tagged(tr_self(), "e", "iS", (int64_t)1,
                                  (const char *)NULL, (size_t)3),
                   TR_EINVAL);
  ck_assert_int_eq(tr_send_tagged(tr_self(), "e", "iB", (int64_t)1,
                                  (const void *)NULL, (size_t)1),
                   TR_EINVAL);
  ck_assert_int_eq(tr_send_tagged(tr_self(), "e", "iq", (int64_t)1), TR_EINVAL);
  ck_assert_int_eq(tr_send_tagged(tr_self(), NULL, "i", (int64_t)1), TR_EINVAL);
  ck_assert_int_eq(tr_send_tagged(tr_self(), "e", "S", text, SIZE_MAX),
                   TR_EMSGSIZE);
  ck_assert_uint_eq(tr_mailbox_len(), 0);
}

START_TEST(test_send_tagged_one_pass_and_two) {
  tr_test_run1(one_pass_actor, NULL);
}
END_TEST

/* Decoding allocates nothing in the steady state: the storage of a freed
 * message's decode is what the next decode of that size gets (per
 * scheduler, so one scheduler here). */
START_TEST(test_obj_storage_recycled) { tr_test_run1(obj_recycle_actor, NULL); }
END_TEST

typedef struct {
  tr_pid_t rx;
  int ok; /* bodies received and decoded right */
} cross_t;

static void cross_tx(void *arg) {
  cross_t *t = arg;
  for (int sh = 0; sh < SH_COUNT; sh++) shape_send(t->rx, sh, 7 + sh);
  TR_OK(payload_send_tagged(t->rx, 99)); /* packed straight into a message */
}

static void cross_rx(void *arg) {
  cross_t *t = arg;
  tr_msg_t *m;
  tr_ref_t ref;
  msgpack_sbuffer sb;
  /* From another scheduler (counted by the sender, through the inbox),
   * then a TIMER whose body nobody counted. */
  for (int sh = 0; sh < SH_COUNT; sh++) {
    TR_OK(tr_recv(&m, 5000));
    t->ok += shape_ok(tr_msg_obj(m), sh, 7 + sh);
    tr_msg_free(m);
  }
  TR_OK(tr_recv(&m, 5000));
  t->ok += shape_ok(tr_msg_obj(m), SH_PAYLOAD, 99);
  tr_msg_free(m);
  shape_pack(&sb, SH_PAYLOAD, 42);
  TR_OK(tr_send_after(tr_self(), 1, sb.data, sb.size, &ref));
  msgpack_sbuffer_destroy(&sb);
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_TIMER);
  t->ok += shape_ok(tr_msg_obj(m), SH_PAYLOAD, 42);
  tr_msg_free(m);
}

/* Bodies that crossed schedulers, and bodies of system paths that are not
 * counted on send, decode like any other. */
START_TEST(test_obj_across_schedulers_and_timers) {
  tr_runtime_t *rt;
  tr_config_t cfg;
  tr_spawn_opts_t o;
  cross_t t = {0};
  tr_config_init(&cfg);
  cfg.schedulers = 2;
  TR_OK(tr_runtime_new(&rt, &cfg));
  tr_spawn_opts_init(&o);
  o.placement = TR_PLACE_SCHED(0);
  TR_OK(tr_spawn(rt, cross_rx, &t, &o, &t.rx));
  o.placement = TR_PLACE_SCHED(1);
  TR_OK(tr_spawn(rt, cross_tx, &t, &o, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(t.ok, SH_COUNT + 2);
}
END_TEST

static Suite *suite_mailbox(void) {
  Suite *s = suite_create("mailbox");
  TCase *send = tcase_create("send");
  TCase *recv = tcase_create("recv");
  TCase *own = tcase_create("ownership");

  tcase_add_test(send, test_send_validates);
  tcase_add_test(send, test_send_too_big);
  tcase_add_test(send, test_send_lone_numbers);
  tcase_add_test(send, test_send_obj);
  tcase_add_test(send, test_send_tagged_letters);
  tcase_add_test(send, test_send_tagged_int_array);
  tcase_add_test(send, test_send_tagged_one_pass_and_two);
  tcase_add_test(send, test_fifo_per_pair);
  tcase_add_test(send, test_send_to_dead);
  tcase_add_test(send, test_runtime_send);
  tcase_add_test(send, test_timer_kind);
  suite_add_tcase(s, send);

  tcase_set_timeout(recv, 120);
  tcase_add_test(recv, test_recv_timeouts);
  tcase_add_test(recv, test_selective_order);
  tcase_add_test(recv, test_selective_wait);
  tcase_add_test(recv, test_selective_million);
  suite_add_tcase(s, recv);

  tcase_add_test(own, test_unfreed_released_on_exit);
  tcase_add_test(own, test_accessors_null);
  tcase_add_test(own, test_accessors);
  tcase_add_test(own, test_mailbox_len);
  tcase_add_test(own, test_obj_shapes_and_lifetime);
  tcase_add_test(own, test_obj_storage_recycled);
  tcase_add_test(own, test_obj_across_schedulers_and_timers);
  suite_add_tcase(s, own);
  return s;
}

TR_TEST_MAIN(suite_mailbox)
