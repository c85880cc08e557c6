/* Check suite: actors that crash, or are taken down by a crash, while they
 * have I/O in flight — a pending read, write, connect, fs request, name
 * lookup and timer. Nothing may complete into a dead stack (run this in the
 * sanitizer build), every fd comes back, and the loop keeps serving the
 * other actors. One test per crash kind (stack overflow, NULL write, divide
 * by zero, abort).
 *
 * Every runtime here has one scheduler (tr_test_cfg1): the actors hand
 * I/O handles to each other, and a handle lives on its scheduler's loop.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

#include "testutil.h"

#define CRASHER __attribute__((noinline, no_sanitize("address", "undefined")))
#define LOOP4 "127.0.0.1"
#define ID(x) ((void *)(uintptr_t)(x))
#define IO(p) ((tr_io_t)(uintptr_t)(p))
#define BIG ((size_t)32 * 1024 * 1024)

/* ---- the crashes ---------------------------------------------------------- */

enum { K_OVERFLOW, K_NULL, K_DIV0, K_ABORT, K__COUNT };
static const tr_reason_kind_t expected[K__COUNT] = {
    TR_REASON_STACK_OVERFLOW, TR_REASON_SEGV, TR_REASON_FPE, TR_REASON_ABORT};

static void *volatile null_ptr;
static volatile intptr_t sink_v;
static volatile int recurse_limit = INT32_MAX;

CRASHER static int recurse(int n) {
  volatile char buf[512];
  buf[0] = (char)n;
  buf[sizeof(buf) - 1] = (char)n;
  if (n >= recurse_limit) return 0;
  return recurse(n + 1) + buf[0] + buf[sizeof(buf) - 1]; /* not a tail call */
}

CRASHER static void crash(int kind) {
  volatile int a = 1, b = 0;
  switch (kind) {
  case K_OVERFLOW: sink_v = recurse(0); break;
  case K_NULL: *(volatile int *)null_ptr = 1; break;
  case K_DIV0: sink_v = a / b; break;
  default: abort();
  }
}

/* ---- the world the victims live in ------------------------------------------- */

static int kind;
static int echo_port, sink_port, full_port;
static tr_io_t echo_srv, sink_srv, full_srv;
static tr_pid_t echo_acc, sink_acc;
static char fifo[64];
static int pings, ping_errors, stop_pinger;
static unsigned char *big;

static void echo_conn(void *arg) {
  tr_io_t c = IO(arg);
  char buf[4096];
  int n;
  while ((n = tr_tcp_read(c, buf, sizeof(buf), -1)) > 0)
    if (tr_tcp_write(c, buf, (size_t)n, -1) != 0) break;
}

/* Accepts forever, one echo_conn per connection. */
static void echo_acceptor(void *arg) {
  tr_io_t c;
  tr_pid_t pid;
  (void)arg;
  while (tr_tcp_accept(echo_srv, &c, -1) == 0) {
    TR_OK(tr_spawn(NULL, echo_conn, ID(c), NULL, &pid));
    TR_OK(tr_io_give(c, pid));
  }
}

/* Accepts forever and keeps every connection without reading it. */
static void sink_acceptor(void *arg) {
  tr_io_t c;
  (void)arg;
  while (tr_tcp_accept(sink_srv, &c, -1) == 0) {
  }
}

/* Round trips on one connection until told to stop: the loop must keep
 * serving it while its neighbours crash. */
static void pinger(void *arg) {
  tr_io_t c;
  char buf[8];
  size_t got;
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, echo_port, 2000));
  while (!stop_pinger) {
    if (tr_tcp_write(c, "ping", 4, 1000) != 0 ||
        tr_tcp_read_exactly(c, buf, 4, &got, 1000) != 0 ||
        memcmp(buf, "ping", 4) != 0)
      ping_errors++;
    else
      pings++;
    tr_sleep(2);
  }
}

static void setup(void) {
  TR_OK(tr_tcp_listen(&echo_srv, LOOP4, 0, 128));
  TR_OK(tr_tcp_listen(&sink_srv, LOOP4, 0, 128));
  TR_OK(tr_tcp_listen(&full_srv, LOOP4, 0, 1));
  echo_port = tr_io_port(echo_srv);
  sink_port = tr_io_port(sink_srv);
  full_port = tr_io_port(full_srv);
  TR_OK(tr_spawn(NULL, echo_acceptor, NULL, NULL, &echo_acc));
  TR_OK(tr_io_give(echo_srv, echo_acc));
  TR_OK(tr_spawn(NULL, sink_acceptor, NULL, NULL, &sink_acc));
  TR_OK(tr_io_give(sink_srv, sink_acc));
  TR_OK(tr_spawn(NULL, pinger, NULL, NULL, NULL));
}

/* Fills full_srv's accept queue so that the next connect hangs. */
static void fill_backlog(void) {
  tr_io_t c;
  int err;
  for (int i = 0; i < 16; i++)
    if ((err = tr_tcp_connect(&c, LOOP4, full_port, 150)) != 0) break;
  ck_assert_int_eq(err, TR_ETIMEDOUT);
}

static tr_reason_t wait_down(tr_ref_t ref) {
  tr_msg_t *m;
  tr_reason_t r;
  for (;;) {
    TR_OK(tr_recv_tag(&m, "DOWN", 10000));
    if (tr_msg_ref(m) == ref) break;
    tr_msg_free(m);
  }
  TR_OK(tr_msg_reason(m, &r));
  tr_msg_free(m);
  return r;
}

/* ---- A: the actor itself crashes with requests in flight ------------------- */

static void self_victim(void *arg) {
  tr_io_t e, s, c, f;
  struct addrinfo *res = NULL;
  int err;
  (void)arg;
  TR_OK(tr_tcp_connect(&e, LOOP4, echo_port, 2000));
  TR_OK(tr_tcp_read_async(e)); /* pending read (nothing will come) */
  TR_OK(tr_tcp_connect(&s, LOOP4, sink_port, 2000));
  /* pending write: the sink never reads, so the rest stays queued */
  ck_assert_int_eq(tr_tcp_write(s, big, BIG, 50), TR_ETIMEDOUT);
  /* pending connect, given up at once */
  ck_assert_int_eq(tr_tcp_connect(&c, LOOP4, full_port, 0), TR_ETIMEDOUT);
  /* pending name lookup on the threadpool */
  err = tr_getaddrinfo("localhost", NULL, NULL, &res, 0);
  if (err == 0) tr_freeaddrinfo(res);
  else ck_assert_int_eq(err, TR_ETIMEDOUT);
  TR_OK(tr_fs_open(&f, fifo, O_RDWR, 0)); /* an open file */
  TR_OK(tr_send_after(tr_self(), 10000, "\xc0", 1, NULL)); /* pending timer */
  crash(kind);
}

/* ---- B: actors blocked in each call, taken down by a linked crash ---------- */

static tr_pid_t bomb_pid;

static void bomb(void *arg) {
  (void)arg;
  tr_sleep(150);
  crash(kind);
}

static void b_read(void *arg) {
  tr_io_t c;
  char buf[16];
  (void)arg;
  if (bomb_pid != TR_PID_NONE) tr_link(bomb_pid);
  TR_OK(tr_tcp_connect(&c, LOOP4, echo_port, 2000));
  tr_tcp_read(c, buf, sizeof(buf), -1);
  ck_abort_msg("read returned");
}

static void b_write(void *arg) {
  tr_io_t c;
  (void)arg;
  if (bomb_pid != TR_PID_NONE) tr_link(bomb_pid);
  TR_OK(tr_tcp_connect(&c, LOOP4, sink_port, 2000));
  tr_tcp_write(c, big, BIG, -1);
  ck_abort_msg("write returned");
}

static void b_connect(void *arg) {
  tr_io_t c;
  (void)arg;
  if (bomb_pid != TR_PID_NONE) tr_link(bomb_pid);
  tr_tcp_connect(&c, LOOP4, full_port, -1);
  ck_abort_msg("connect returned");
}

static void b_accept(void *arg) {
  tr_io_t srv, c;
  (void)arg;
  if (bomb_pid != TR_PID_NONE) tr_link(bomb_pid);
  TR_OK(tr_tcp_listen(&srv, LOOP4, 0, 8));
  tr_tcp_accept(srv, &c, -1);
  ck_abort_msg("accept returned");
}

static void b_fs(void *arg) {
  tr_io_t f;
  char b;
  (void)arg;
  if (bomb_pid != TR_PID_NONE) tr_link(bomb_pid);
  TR_OK(tr_fs_open(&f, fifo, O_RDWR, 0));
  tr_fs_read(f, &b, 1, -1); /* blocks a threadpool thread on the FIFO */
  ck_abort_msg("fs read returned");
}

static void b_udp(void *arg) {
  tr_io_t u;
  char buf[16];
  (void)arg;
  if (bomb_pid != TR_PID_NONE) tr_link(bomb_pid);
  TR_OK(tr_udp_open(&u, LOOP4, 0));
  tr_udp_recv(u, buf, sizeof(buf), NULL, -1);
  ck_abort_msg("udp recv returned");
}

static void b_sleep(void *arg) {
  (void)arg;
  if (bomb_pid != TR_PID_NONE) tr_link(bomb_pid);
  tr_sleep(100000);
  ck_abort_msg("sleep returned");
}

static const tr_actor_fn blocked[] = {b_read, b_write, b_connect, b_accept,
                                      b_fs, b_udp, b_sleep};
#define NBLOCKED (sizeof(blocked) / sizeof(blocked[0]))

/* Unblocks the FIFO read left behind by b_fs. */
static void release_fifo(void) {
  tr_io_t w;
  TR_OK(tr_fs_open(&w, fifo, O_WRONLY | O_NONBLOCK, 0));
  TR_OK(tr_fs_write(w, "!", 1, -1));
  TR_OK(tr_fs_close(w));
}

static void scenario(void *arg) {
  tr_ref_t ref, refs[NBLOCKED], bref;
  tr_reason_t r;
  tr_pid_t pid;
  int before;
  (void)arg;
  setup();
  fill_backlog();
  tr_sleep(20);
  before = pings;
  ck_assert_int_gt(before, 0);

  TR_OK(tr_spawn_monitor(self_victim, NULL, &pid, &ref));
  r = wait_down(ref);
  ck_assert_msg(r.kind == expected[kind], "self victim died with %s",
                tr_reason_name(r.kind));

  TR_OK(tr_spawn_monitor(bomb, NULL, &bomb_pid, &bref));
  for (size_t i = 0; i < NBLOCKED; i++)
    TR_OK(tr_spawn_monitor(blocked[i], NULL, &pid, &refs[i]));
  ck_assert_int_eq(wait_down(bref).kind, expected[kind]);
  for (size_t i = 0; i < NBLOCKED; i++) {
    r = wait_down(refs[i]);
    ck_assert_msg(r.kind == expected[kind], "blocked actor %zu died with %s",
                  i, tr_reason_name(r.kind));
  }
  release_fifo();

  /* The loop kept serving the pinger throughout, and still does. */
  tr_sleep(50);
  ck_assert_int_eq(ping_errors, 0);
  ck_assert_int_gt(pings, before + 5);
  stop_pinger = 1;
  tr_exit_pid(NULL, echo_acc, TR_REASON_KILL);
  tr_exit_pid(NULL, sink_acc, TR_REASON_KILL);
}

START_TEST(crash_with_io_in_flight) {
  tr_runtime_t *rt;
  int fds;
  kind = _i;
  big = calloc(1, BIG);
  snprintf(fifo, sizeof(fifo), "/tmp/troupe-fifo-%d", (int)getpid());
  unlink(fifo);
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1())); /* libuv's process-wide fds first */
  TR_OK(tr_runtime_free(rt));
  fds = tr_test_fd_count();
  tr_test_run1(scenario, NULL);
  ck_assert_int_eq(tr_test_fd_count(), fds);
  unlink(fifo);
  free(big);
}
END_TEST

/* Killing a whole runtime (tr_runtime_free) with I/O in flight. */
static void busy(void *arg) {
  (void)arg;
  setup();
  fill_backlog();
  TR_OK(tr_spawn(NULL, b_read, NULL, NULL, NULL));
  TR_OK(tr_spawn(NULL, b_write, NULL, NULL, NULL));
  TR_OK(tr_spawn(NULL, b_connect, NULL, NULL, NULL));
  TR_OK(tr_spawn(NULL, b_udp, NULL, NULL, NULL));
  tr_sleep(100000);
}

static void freer_timer(uv_timer_t *t) {
  tr_runtime_stop(t->data);
  uv_close((uv_handle_t *)t, NULL);
}

START_TEST(free_with_io_in_flight) {
  tr_runtime_t *rt;
  uv_timer_t t;
  int fds;
  big = calloc(1, BIG);
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_runtime_free(rt));
  fds = tr_test_fd_count();
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  bomb_pid = TR_PID_NONE;
  TR_OK(tr_spawn(rt, busy, NULL, NULL, NULL));
  uv_timer_init(tr_runtime_loop(rt), &t);
  t.data = rt;
  uv_timer_start(&t, freer_timer, 300, 0);
  uv_unref((uv_handle_t *)&t);
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(tr_test_fd_count(), fds);
  free(big);
}
END_TEST

static Suite *io_crash_suite(void) {
  Suite *s = suite_create("io_crash");
  TCase *tc = tcase_create("crash");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, crash_with_io_in_flight, 0, K__COUNT);
  tcase_add_test(tc, free_with_io_in_flight);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(io_crash_suite)
