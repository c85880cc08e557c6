/* Check suite for the libuv bridge (src/io_*.c): TCP, UDP, files and name
 * resolution from actors, over loopback only.
 *
 * Every runtime here has one scheduler (tr_test_cfg1): the actors hand
 * I/O handles to each other, and a handle lives on its scheduler's loop.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <fcntl.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <uv.h>

#include "testutil.h"

/* internal: bytes held in runtime I/O buffers (src/io.h) */
size_t tr__io_buffered(tr_runtime_t *rt, size_t *peak);

#define LOOP4 "127.0.0.1"
#define ID(x) ((void *)(uintptr_t)(x))
#define IO(p) ((tr_io_t)(uintptr_t)(p))

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

/* Open fds once libuv's process-wide state (the signal lock pipe, made by
 * the first loop) exists. */
static int fd_baseline(void) {
  tr_runtime_t *rt;
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_runtime_free(rt));
  return tr_test_fd_count();
}

/* Listens on 127.0.0.1, any port; returns the port. */
static int listen_any(tr_io_t *srv, int backlog) {
  int port;
  TR_OK(tr_tcp_listen(srv, LOOP4, 0, backlog));
  port = tr_io_port(*srv);
  ck_assert_int_gt(port, 0);
  return port;
}

static tr_pid_t spawn(tr_actor_fn fn, void *arg) {
  tr_pid_t pid;
  TR_OK(tr_spawn(NULL, fn, arg, NULL, &pid));
  return pid;
}

/* Spawns fn(conn) and makes it the owner of conn (before it first runs). */
static tr_pid_t spawn_owner(tr_actor_fn fn, tr_io_t conn) {
  tr_pid_t pid = spawn(fn, ID(conn));
  TR_OK(tr_io_give(conn, pid));
  return pid;
}

/* A connection actor: echoes every byte until the peer closes. */
static void echo_conn(void *arg) {
  tr_io_t c = IO(arg);
  char buf[4096];
  int n;
  while ((n = tr_tcp_read(c, buf, sizeof(buf), -1)) > 0)
    if (tr_tcp_write(c, buf, (size_t)n, -1) != 0) break;
  tr_io_close(c);
}

typedef struct {
  tr_io_t srv;
  int n; /* connections to serve */
} acceptor_arg_t;

/* Accepts n connections and hands each to an echo_conn actor. */
static void acceptor(void *arg) {
  acceptor_arg_t *aa = arg;
  for (int i = 0; i < aa->n; i++) {
    tr_io_t c;
    TR_OK(tr_tcp_accept(aa->srv, &c, 20000));
    spawn_owner(echo_conn, c);
  }
  tr_io_close(aa->srv);
}

/* Starts an echo server for n connections inside the calling actor's
 * runtime; the listener is owned by the acceptor. */
static int start_echo(acceptor_arg_t *aa, int n) {
  int port = listen_any(&aa->srv, 2048);
  tr_pid_t pid;
  aa->n = n;
  pid = spawn(acceptor, aa);
  TR_OK(tr_io_give(aa->srv, pid));
  return port;
}

/* ---- TCP basics ----------------------------------------------------------- */

static void t_echo(void *arg) {
  acceptor_arg_t aa;
  int port = start_echo(&aa, 1);
  struct sockaddr_storage peer, local;
  tr_io_t c;
  char buf[16];
  size_t got;
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, port, 2000));
  TR_OK(tr_tcp_nodelay(c, 1));
  TR_OK(tr_io_peername(c, &peer));
  TR_OK(tr_io_sockname(c, &local));
  ck_assert_int_eq(tr_addr_port(&peer), port);
  ck_assert_int_gt(tr_addr_port(&local), 0);
  ck_assert_int_eq(tr_io_owner(c), tr_self());
  TR_OK(tr_tcp_write(c, "hello", 5, 1000));
  TR_OK(tr_tcp_read_exactly(c, buf, 5, &got, 1000));
  ck_assert_uint_eq(got, 5);
  ck_assert(memcmp(buf, "hello", 5) == 0);
  TR_OK(tr_io_close(c));
  ck_assert_int_eq(tr_tcp_read(c, buf, 1, 0), UV_EBADF); /* stale id */
  ck_assert_int_eq(tr_io_close(c), UV_EBADF);
}

START_TEST(tcp_echo) { tr_test_run1(t_echo, NULL); }
END_TEST

static void t_ipv6(void *arg) {
  tr_io_t srv, c, s;
  char buf[4];
  int err = tr_tcp_listen(&srv, "::1", 0, 8);
  (void)arg;
  if (err == UV_EADDRNOTAVAIL || err == UV_EAFNOSUPPORT) return; /* no ::1 */
  TR_OK(err);
  TR_OK(tr_tcp_connect(&c, "::1", tr_io_port(srv), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  TR_OK(tr_tcp_write(c, "v6", 2, -1));
  ck_assert_int_eq(tr_tcp_read(s, buf, sizeof(buf), 2000), 2);
  ck_assert(memcmp(buf, "v6", 2) == 0);
}

START_TEST(tcp_ipv6) { tr_test_run1(t_ipv6, NULL); }
END_TEST

static void t_bad_args(void *arg) {
  tr_io_t h, h2;
  char buf[4];
  (void)arg;
  ck_assert_int_eq(tr_tcp_listen(&h, "not an ip", 0, 0), TR_EINVAL);
  ck_assert_int_eq(tr_tcp_listen(&h, LOOP4, 70000, 0), TR_EINVAL);
  TR_OK(tr_tcp_listen(&h, LOOP4, 0, 0));
  ck_assert_int_eq(tr_tcp_listen(&h2, LOOP4, tr_io_port(h), 0), UV_EADDRINUSE);
  ck_assert_uint_eq(h2, TR_IO_NONE);
  TR_OK(tr_io_close(h));
  ck_assert_int_eq(tr_tcp_read(12345, buf, sizeof(buf), 0), UV_EBADF);
  ck_assert_int_eq(tr_tcp_write(TR_IO_NONE, buf, 1, 0), UV_EBADF);
  TR_OK(tr_udp_open(&h, LOOP4, 0));
  ck_assert_int_eq(tr_tcp_read(h, buf, sizeof(buf), 0), TR_EINVAL); /* kind */
  ck_assert_int_eq(tr_tcp_read(h, NULL, 4, 0), TR_EINVAL);
}

START_TEST(tcp_bad_args) {
  char buf[4];
  tr_io_t h;
  ck_assert_int_eq(tr_tcp_read(1, buf, sizeof(buf), 0), TR_ENOTACTOR);
  ck_assert_int_eq(tr_tcp_listen(&h, LOOP4, 0, 0), TR_ENOTACTOR);
  ck_assert_int_eq(tr_fs_unlink("/nonexistent"), TR_ENOTACTOR);
  tr_test_run1(t_bad_args, NULL);
}
END_TEST

/* ---- timeouts --------------------------------------------------------------- */

static void t_accept_timeout(void *arg) {
  tr_io_t srv, c;
  uint64_t t0;
  (void)arg;
  listen_any(&srv, 8);
  t0 = now_ms();
  ck_assert_int_eq(tr_tcp_accept(srv, &c, 60), TR_ETIMEDOUT);
  ck_assert_uint_ge(now_ms() - t0, 55);
  ck_assert_uint_eq(c, TR_IO_NONE);
  ck_assert_int_eq(tr_tcp_accept(srv, &c, 0), TR_ETIMEDOUT);
}

START_TEST(tcp_accept_timeout) { tr_test_run1(t_accept_timeout, NULL); }
END_TEST

static void late_writer(void *arg) {
  tr_io_t c = IO(arg);
  tr_sleep(150);
  TR_OK(tr_tcp_write(c, "late", 4, -1));
  tr_sleep(50);
}

static void t_read_timeout(void *arg) {
  tr_io_t srv, c, s;
  char buf[8];
  uint64_t t0;
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  spawn_owner(late_writer, s);
  t0 = now_ms();
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 50), TR_ETIMEDOUT);
  ck_assert_uint_ge(now_ms() - t0, 45);
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 0), TR_ETIMEDOUT);
  /* Nothing is lost by a timeout: the late data still arrives. */
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 2000), 4);
  ck_assert(memcmp(buf, "late", 4) == 0);
  /* A message wakes the reader but does not end the read. */
  tr_send_tagged(tr_self(), "ping", NULL);
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 30), TR_ETIMEDOUT);
  ck_assert_uint_eq(tr_mailbox_len(), 1);
}

START_TEST(tcp_read_timeout) { tr_test_run1(t_read_timeout, NULL); }
END_TEST


/* A handle closed from elsewhere (here: another actor's cleanup callback)
 * while its owner is blocked reading on it: the read ends at once with
 * UV_ECANCELED and the owner never touches the freed handle. */
static tr_io_t closed_elsewhere;

static void close_blocked_handle(void *arg) {
  (void)arg;
  ck_assert_int_eq(tr_io_close(closed_elsewhere), 0);
}

static void closer(void *arg) {
  (void)arg;
  TR_OK(tr_defer(close_blocked_handle, NULL));
}

static void t_close_while_blocked(void *arg) {
  tr_io_t srv, c, s;
  char buf[8];
  uint64_t t0;
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  closed_elsewhere = c;
  spawn(closer, NULL);
  t0 = now_ms();
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 5000), UV_ECANCELED);
  ck_assert_uint_lt(now_ms() - t0, 2000);
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 0), UV_EBADF);
  /* The same for a blocked accept. */
  closed_elsewhere = srv;
  spawn(closer, NULL);
  ck_assert_int_eq(tr_tcp_accept(srv, &c, 5000), UV_ECANCELED);
  tr_io_close(s);
}

START_TEST(tcp_close_while_blocked) { tr_test_run1(t_close_while_blocked, NULL); }
END_TEST

/* connect timeout: a listener with a full accept queue drops SYNs. */
static void t_connect_timeout(void *arg) {
  tr_io_t srv, c[16];
  int port = listen_any(&srv, 1), i, err = 0;
  (void)arg;
  for (i = 0; i < 16; i++)
    if ((err = tr_tcp_connect(&c[i], LOOP4, port, 150)) != 0) break;
  ck_assert_msg(err == TR_ETIMEDOUT, "connect %d: %s", i, tr_err_name(err));
  ck_assert_uint_eq(c[i], TR_IO_NONE);
  ck_assert_int_eq(tr_tcp_connect(&c[i], LOOP4, port, 0), TR_ETIMEDOUT);
}

START_TEST(tcp_connect_timeout) { tr_test_run1(t_connect_timeout, NULL); }
END_TEST

static void t_refused(void *arg) {
  tr_io_t srv, c;
  int port = listen_any(&srv, 8);
  (void)arg;
  TR_OK(tr_io_close(srv));
  tr_sleep(10); /* let the close happen */
  ck_assert_int_eq(tr_tcp_connect(&c, LOOP4, port, 2000), UV_ECONNREFUSED);
  ck_assert_uint_eq(c, TR_IO_NONE);
}

START_TEST(tcp_refused) {
  int fds = fd_baseline();
  tr_test_run1(t_refused, NULL);
  ck_assert_int_eq(tr_test_fd_count(), fds);
}
END_TEST

/* ---- end of stream, resets, partial reads -------------------------------- */

static void eof_writer(void *arg) {
  tr_io_t c = IO(arg);
  TR_OK(tr_tcp_write(c, "abc", 3, -1));
  TR_OK(tr_tcp_shutdown(c, 2000));
  tr_sleep(100); /* keep the socket open: the reader sees FIN, not close */
}

static void t_eof(void *arg) {
  tr_io_t srv, c, s;
  char buf[8];
  size_t got;
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  spawn_owner(eof_writer, s);
  ck_assert_int_eq(tr_tcp_read_exactly(c, buf, 8, &got, 2000), TR_EOF);
  ck_assert_uint_eq(got, 3);
  ck_assert(memcmp(buf, "abc", 3) == 0);
  ck_assert_int_eq(tr_tcp_read(c, buf, 8, 2000), TR_EOF);
  ck_assert_int_eq(tr_tcp_read(c, buf, 8, 2000), TR_EOF); /* sticky */
  /* Half-close: we can still write to a peer that stopped writing. */
  TR_OK(tr_tcp_write(c, "x", 1, 1000));
}

START_TEST(tcp_eof) { tr_test_run1(t_eof, NULL); }
END_TEST

static void resetter(void *arg) {
  tr_io_t c = IO(arg);
  char b;
  TR_OK(tr_tcp_write(c, "zz", 2, -1));
  tr_sleep(50);
  ck_assert_int_eq(tr_tcp_read(c, &b, 1, 0), TR_ETIMEDOUT);
  TR_OK(tr_tcp_close_reset(c));
}

static void t_reset(void *arg) {
  tr_io_t srv, c, s;
  char buf[8];
  int err, n = 0;
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  spawn_owner(resetter, s);
  while ((err = tr_tcp_read(c, buf, sizeof(buf), 2000)) > 0) n += err;
  ck_assert_int_le(n, 2);
  ck_assert_msg(err == UV_ECONNRESET, "got %s", tr_err_name(err));
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 2000), UV_ECONNRESET);
  err = tr_tcp_write(c, "y", 1, 1000);
  ck_assert_msg(err == UV_EPIPE || err == UV_ECONNRESET, "write: %s",
                tr_err_name(err));
}

START_TEST(tcp_reset) { tr_test_run1(t_reset, NULL); }
END_TEST

static void trickle(void *arg) {
  tr_io_t c = IO(arg);
  TR_OK(tr_tcp_write(c, "0123", 4, -1));
  tr_sleep(40);
  TR_OK(tr_tcp_write(c, "45", 2, -1));
  tr_sleep(40);
  TR_OK(tr_tcp_write(c, "6789", 4, -1));
  tr_sleep(40);
  TR_OK(tr_tcp_write(c, "tail", 4, -1));
  tr_io_close(c);
}

static void t_partial(void *arg) {
  tr_io_t srv, c, s;
  char buf[64];
  size_t got;
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  spawn_owner(trickle, s);
  /* A read returns what is there, not what was asked for. */
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 2000), 4);
  ck_assert(memcmp(buf, "0123", 4) == 0);
  ck_assert_int_eq(tr_tcp_read(c, buf, 1, 2000), 1); /* smaller than there */
  ck_assert_int_eq(buf[0], '4');
  TR_OK(tr_tcp_read_exactly(c, buf, 5, &got, 2000)); /* spans two writes */
  ck_assert_uint_eq(got, 5);
  ck_assert(memcmp(buf, "56789", 5) == 0);
  /* the stream ends early: read_exactly reports what it got */
  ck_assert_int_eq(tr_tcp_read_exactly(c, buf, 8, &got, 2000), TR_EOF);
  ck_assert_uint_eq(got, 4);
  ck_assert(memcmp(buf, "tail", 4) == 0);
}

START_TEST(tcp_partial_reads) { tr_test_run1(t_partial, NULL); }
END_TEST

static void three_then_wait(void *arg) {
  tr_io_t c = IO(arg);
  TR_OK(tr_tcp_write(c, "abc", 3, -1));
  tr_sleep(300);
}

static void t_exactly_timeout(void *arg) {
  tr_io_t srv, c, s;
  char buf[8];
  size_t got = 99;
  uint64_t t0;
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  spawn_owner(three_then_wait, s);
  t0 = now_ms();
  /* the timeout bounds the whole call and keeps what arrived */
  ck_assert_int_eq(tr_tcp_read_exactly(c, buf, 8, &got, 100), TR_ETIMEDOUT);
  ck_assert_uint_ge(now_ms() - t0, 95);
  ck_assert_uint_eq(got, 3);
  ck_assert(memcmp(buf, "abc", 3) == 0);
  TR_OK(tr_tcp_read_exactly(c, buf, 0, NULL, 0)); /* nothing to read: done */
}

START_TEST(tcp_read_exactly_timeout) { tr_test_run1(t_exactly_timeout, NULL); }
END_TEST

/* ---- large writes to a slow reader ----------------------------------------- */

#define BIG (8u * 1024 * 1024)

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + (i >> 13)); }

static void slow_reader(void *arg) {
  tr_io_t c = IO(arg);
  static unsigned char buf[65536];
  size_t total = 0;
  int n, bad = 0;
  while ((n = tr_tcp_read(c, buf, sizeof(buf), 5000)) > 0) {
    for (int i = 0; i < n; i++) bad |= buf[i] != pattern(total + (size_t)i);
    total += (size_t)n;
    tr_sleep(2);
  }
  ck_assert_int_eq(n, TR_EOF);
  ck_assert_uint_eq(total, BIG);
  ck_assert_int_eq(bad, 0);
  TR_OK(tr_tcp_write(c, "k", 1, -1));
}

static void t_big_write(void *arg) {
  tr_io_t srv, c, s;
  unsigned char *data = malloc(BIG);
  char ack;
  size_t peak;
  (void)arg;
  for (size_t i = 0; i < BIG; i++) data[i] = pattern(i);
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  spawn_owner(slow_reader, s);
  TR_OK(tr_tcp_write(c, data, BIG, 30000));
  TR_OK(tr_tcp_shutdown(c, 5000));
  ck_assert_int_eq(tr_tcp_read(c, &ack, 1, 10000), 1);
  tr__io_buffered(tr_runtime_current(), &peak);
  /* The runtime held one write chunk plus read-ahead, never the 8 MB. */
  ck_assert_msg(peak <= 512 * 1024, "peak %zu bytes buffered", peak);
  free(data);
}

START_TEST(tcp_big_write_slow_reader) { tr_test_run1(t_big_write, NULL); }
END_TEST

static void t_write_timeout(void *arg) {
  tr_io_t srv, c, s;
  size_t len = 64u * 1024 * 1024;
  void *data = calloc(1, len);
  uint64_t t0 = now_ms();
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000)); /* s is never read */
  ck_assert_int_eq(tr_tcp_write(c, data, len, 100), TR_ETIMEDOUT);
  ck_assert_uint_ge(now_ms() - t0, 95);
  free(data); /* the write in flight has its own copy */
  TR_OK(tr_io_close(c));
}

START_TEST(tcp_write_timeout) {
  int fds = fd_baseline();
  tr_test_run1(t_write_timeout, NULL);
  ck_assert_int_eq(tr_test_fd_count(), fds);
}
END_TEST

/* ---- many connections -------------------------------------------------------- */

#define NCONN 1000
static int conn_ok;
static int conn_port;

static void client(void *arg) {
  char out[16] = {0}, in[16]; /* 15 bytes of text, then a defined NUL */
  tr_io_t c;
  size_t got;
  int err;
  snprintf(out, sizeof(out), "conn-%09d", (int)(uintptr_t)arg);
  if ((err = tr_tcp_connect(&c, LOOP4, conn_port, 20000)) != 0) {
    fprintf(stderr, "connect: %s\n", tr_strerror(err));
    return;
  }
  tr_sleep(50); /* keep all of them open at once */
  if (tr_tcp_write(c, out, 16, 10000) == 0 &&
      tr_tcp_read_exactly(c, in, 16, &got, 10000) == 0 &&
      memcmp(in, out, 16) == 0)
    conn_ok++;
}

static void t_many(void *arg) {
  static acceptor_arg_t aa; /* outlives this actor */
  (void)arg;
  conn_port = start_echo(&aa, NCONN);
  for (int i = 0; i < NCONN; i++) spawn(client, ID(i));
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

START_TEST(tcp_1000_connections) {
  struct rlimit rl;
  int fds;
  raise_nofile();
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 2 * NCONN + 64) {
    fprintf(stderr, "skipped: RLIMIT_NOFILE %lu\n", (unsigned long)rl.rlim_cur);
    return;
  }
  fds = fd_baseline();
  tr_test_run1(t_many, NULL);
  ck_assert_int_eq(conn_ok, NCONN);
  ck_assert_int_eq(tr_test_fd_count(), fds);
}
END_TEST

/* ---- reading into the mailbox --------------------------------------------------- */

static void async_peer(void *arg) {
  tr_io_t c = IO(arg);
  TR_OK(tr_tcp_write(c, "one", 3, -1));
  tr_sleep(30);
  TR_OK(tr_tcp_write(c, "two", 3, -1));
  tr_sleep(30);
  tr_io_close(c);
}

static void t_async(void *arg) {
  tr_io_t srv, c, s;
  tr_msg_t *m;
  const msgpack_object *o;
  char buf[4];
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  spawn_owner(async_peer, s);
  TR_OK(tr_tcp_read_async(c));
  ck_assert_int_eq(tr_tcp_read_async(c), TR_EBUSY);
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 0), TR_EBUSY);
  TR_OK(tr_send_tagged(tr_self(), "other", NULL));
  for (int i = 0; i < 2; i++) {
    TR_OK(tr_recv_tag(&m, "tcp", 2000));
    o = tr_msg_obj(m);
    ck_assert_uint_eq(o->via.array.size, 3);
    ck_assert_uint_eq(o->via.array.ptr[1].via.u64, c);
    ck_assert_int_eq(o->via.array.ptr[2].type, MSGPACK_OBJECT_BIN);
    ck_assert_uint_eq(o->via.array.ptr[2].via.bin.size, 3);
    ck_assert(memcmp(o->via.array.ptr[2].via.bin.ptr, i ? "two" : "one", 3) == 0);
    tr_msg_free(m);
    TR_OK(tr_tcp_read_async(c));
  }
  TR_OK(tr_recv_tag(&m, "tcp_closed", 2000));
  ck_assert_uint_eq(tr_msg_obj(m)->via.array.ptr[1].via.u64, c);
  tr_msg_free(m);
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 0), TR_EOF);
  TR_OK(tr_recv_tag(&m, "other", 0)); /* untouched, still queued */
  tr_msg_free(m);
}

START_TEST(tcp_read_async) { tr_test_run1(t_async, NULL); }
END_TEST

/* ---- ownership --------------------------------------------------------------------- */

static tr_io_t given;

static void holder(void *arg) {
  char buf[8];
  (void)arg;
  ck_assert_int_eq(tr_tcp_read(given, buf, sizeof(buf), 2000), 3);
  ck_assert_int_eq(tr_io_owner(given), tr_self());
  /* exits without closing: the runtime closes it */
}

static void t_give(void *arg) {
  tr_io_t srv, c, s;
  tr_pid_t pid;
  tr_ref_t ref;
  tr_msg_t *m;
  char buf[8];
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  given = s;
  TR_OK(tr_spawn_monitor(holder, NULL, &pid, &ref));
  TR_OK(tr_io_give(s, pid));
  ck_assert_int_eq(tr_io_owner(s), pid);
  ck_assert_int_eq(tr_tcp_write(s, "x", 1, 0), UV_EPERM);
  ck_assert_int_eq(tr_io_close(s), UV_EPERM);
  ck_assert_int_eq(tr_io_give(s, tr_self()), UV_EPERM);
  ck_assert_int_eq(tr_io_give(c, (tr_pid_t)12345), TR_ENOPROC);
  TR_OK(tr_tcp_write(c, "abc", 3, -1));
  TR_OK(tr_recv_tag(&m, "DOWN", 2000));
  tr_msg_free(m);
  ck_assert_int_eq(tr_tcp_read(c, buf, sizeof(buf), 2000), TR_EOF);
  ck_assert_int_eq(tr_io_owner(s), TR_PID_NONE);
  ck_assert_int_eq(tr_io_close(s), UV_EBADF);
}

START_TEST(io_give) { tr_test_run1(t_give, NULL); }
END_TEST

/* tr_io_close works from a tr_defer cleanup (outside any actor), before
 * the runtime closes the rest. */
static int cleanup_rc = 1, cleanup_owner_none;
static tr_io_t cleanup_h;

static void close_in_cleanup(void *arg) {
  (void)arg;
  ck_assert_int_eq(tr_self(), TR_PID_NONE);
  cleanup_rc = tr_io_close(cleanup_h);
  cleanup_owner_none = tr_io_owner(cleanup_h) == TR_PID_NONE;
}

static void t_defer_close(void *arg) {
  (void)arg;
  TR_OK(tr_udp_open(&cleanup_h, LOOP4, 0));
  TR_OK(tr_defer(close_in_cleanup, NULL));
}

START_TEST(io_close_from_cleanup) {
  tr_test_run1(t_defer_close, NULL);
  ck_assert_int_eq(cleanup_rc, 0);
  ck_assert(cleanup_owner_none);
}
END_TEST

/* An actor that opens one of everything and exits without closing. */
static char tmp_path[64];

static void leaker(void *arg) {
  tr_io_t srv, c, s, u, f;
  (void)arg;
  TR_OK(tr_tcp_connect(&c, LOOP4, listen_any(&srv, 8), 2000));
  TR_OK(tr_tcp_accept(srv, &s, 2000));
  TR_OK(tr_udp_open(&u, LOOP4, 0));
  TR_OK(tr_fs_open(&f, tmp_path, O_CREAT | O_RDWR, 0600));
  TR_OK(tr_tcp_read_async(c));
  if (arg != NULL) *(volatile int *)arg = 1; /* crash with all of it open */
}

START_TEST(io_closed_on_exit) {
  int fds = fd_baseline();
  snprintf(tmp_path, sizeof(tmp_path), "/tmp/troupe-io-%d", (int)getpid());
  tr_test_run1(leaker, NULL);
  ck_assert_int_eq(tr_test_fd_count(), fds);
  if (!tr_test_on_valgrind()) { /* it would report the deliberate fault */
    tr_test_run1(leaker, ID(8)); /* NULL-ish pointer: segv */
    ck_assert_int_eq(tr_test_fd_count(), fds);
  }
  unlink(tmp_path);
}
END_TEST

/* ---- UDP ------------------------------------------------------------------------------- */

static void t_udp(void *arg) {
  tr_io_t a, b;
  struct sockaddr_storage aaddr, baddr, from;
  char buf[16], big[100];
  uint64_t t0;
  (void)arg;
  TR_OK(tr_udp_open(&a, LOOP4, 0));
  TR_OK(tr_udp_open(&b, LOOP4, 0));
  TR_OK(tr_ip_addr(LOOP4, tr_io_port(a), &aaddr));
  TR_OK(tr_ip_addr(LOOP4, tr_io_port(b), &baddr));
  t0 = now_ms();
  ck_assert_int_eq(tr_udp_recv(b, buf, sizeof(buf), &from, 50), TR_ETIMEDOUT);
  ck_assert_uint_ge(now_ms() - t0, 45);
  TR_OK(tr_udp_send(a, "dgram", 5, (struct sockaddr *)&baddr, 1000));
  TR_OK(tr_udp_send(a, "", 0, (struct sockaddr *)&baddr, 1000));
  memset(big, 'B', sizeof(big));
  TR_OK(tr_udp_send(a, big, sizeof(big), (struct sockaddr *)&baddr, 1000));
  ck_assert_int_eq(tr_udp_recv(b, buf, sizeof(buf), &from, 1000), 5);
  ck_assert(memcmp(buf, "dgram", 5) == 0);
  ck_assert_int_eq(tr_addr_port(&from), tr_io_port(a));
  ck_assert_int_eq(tr_udp_recv(b, buf, sizeof(buf), NULL, 1000), 0);
  ck_assert_int_eq(tr_udp_recv(b, buf, sizeof(buf), NULL, 1000), TR_EMSGSIZE);
  ck_assert_int_eq(buf[15], 'B');
  /* and back */
  TR_OK(tr_udp_send(b, "pong", 4, (struct sockaddr *)&aaddr, 1000));
  ck_assert_int_eq(tr_udp_recv(a, buf, sizeof(buf), &from, 1000), 4);
  ck_assert_int_eq(tr_addr_port(&from), tr_io_port(b));
  /* many datagrams queue up to the read-ahead bound, in order */
  for (int i = 0; i < 50; i++)
    TR_OK(tr_udp_send(a, &i, sizeof(i), (struct sockaddr *)&baddr, 1000));
  for (int i = 0; i < 50; i++) {
    int v = -1;
    ck_assert_int_eq(tr_udp_recv(b, &v, sizeof(v), NULL, 1000), (int)sizeof(v));
    ck_assert_int_eq(v, i);
  }
  TR_OK(tr_io_close(a));
  TR_OK(tr_io_close(b));
}

START_TEST(udp_send_recv) { tr_test_run1(t_udp, NULL); }
END_TEST

/* ---- files ------------------------------------------------------------------------------ */

static void t_fs(void *arg) {
  char path[64], buf[32];
  size_t big = 3 * 256 * 1024 + 123;
  unsigned char *data = malloc(big), *back = malloc(big);
  uv_stat_t st;
  tr_io_t f;
  size_t off = 0;
  int n;
  (void)arg;
  snprintf(path, sizeof(path), "/tmp/troupe-fs-%d", (int)getpid());
  ck_assert_int_eq(tr_fs_open(&f, "/nonexistent/dir/x", O_RDONLY, 0), UV_ENOENT);
  ck_assert_uint_eq(f, TR_IO_NONE);
  TR_OK(tr_fs_open(&f, path, O_CREAT | O_TRUNC | O_RDWR, 0600));
  TR_OK(tr_fs_write(f, "hello world", 11, 0));
  ck_assert_int_eq(tr_fs_read(f, buf, sizeof(buf), 0), 11);
  ck_assert(memcmp(buf, "hello world", 11) == 0);
  ck_assert_int_eq(tr_fs_read(f, buf, 5, 6), 5);
  ck_assert(memcmp(buf, "world", 5) == 0);
  ck_assert_int_eq(tr_fs_read(f, buf, sizeof(buf), 11), 0); /* EOF */
  for (size_t i = 0; i < big; i++) data[i] = pattern(i);
  TR_OK(tr_fs_write(f, data, big, 11));
  TR_OK(tr_fs_fstat(f, &st));
  ck_assert_uint_eq(st.st_size, 11 + big);
  while (off < big && (n = tr_fs_read(f, back + off, big - off, (int64_t)(11 + off))) > 0)
    off += (size_t)n;
  ck_assert_uint_eq(off, big);
  ck_assert(memcmp(data, back, big) == 0);
  TR_OK(tr_fs_close(f));
  ck_assert_int_eq(tr_fs_read(f, buf, 1, 0), UV_EBADF);
  TR_OK(tr_fs_stat(path, &st));
  ck_assert_uint_eq(st.st_size, 11 + big);
  ck_assert(S_ISREG(st.st_mode));
  /* the file position (offset -1) */
  TR_OK(tr_fs_open(&f, path, O_RDONLY, 0));
  ck_assert_int_eq(tr_fs_read(f, buf, 6, -1), 6);
  ck_assert_int_eq(tr_fs_read(f, buf, 5, -1), 5);
  ck_assert(memcmp(buf, "world", 5) == 0);
  ck_assert_int_eq(tr_fs_write(f, "x", 1, 0), UV_EBADF); /* read-only fd */
  TR_OK(tr_fs_close(f));
  TR_OK(tr_fs_unlink(path));
  ck_assert_int_eq(tr_fs_stat(path, &st), UV_ENOENT);
  ck_assert_int_eq(tr_fs_unlink(path), UV_ENOENT);
  free(data);
  free(back);
}

START_TEST(fs_calls) {
  int fds = fd_baseline();
  tr_test_run1(t_fs, NULL);
  ck_assert_int_eq(tr_test_fd_count(), fds);
}
END_TEST

/* ---- names ----------------------------------------------------------------------------- */

static void t_dns(void *arg) {
  struct addrinfo hints, *res = NULL, *ai;
  int found = 0;
  (void)arg;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  TR_OK(tr_getaddrinfo("localhost", "80", &hints, &res, 5000));
  for (ai = res; ai != NULL; ai = ai->ai_next)
    if (ai->ai_family == AF_INET &&
        ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port) == 80)
      found = 1;
  ck_assert(found);
  tr_freeaddrinfo(res);
  hints.ai_flags = AI_NUMERICHOST;
  TR_OK(tr_getaddrinfo(LOOP4, NULL, &hints, &res, 5000));
  ck_assert_int_eq(res->ai_family, AF_INET);
  tr_freeaddrinfo(res);
  ck_assert_int_eq(tr_getaddrinfo("not-an-ip", NULL, &hints, &res, 5000),
                   UV_EAI_NONAME);
  ck_assert_ptr_null(res);
  ck_assert_int_eq(tr_getaddrinfo(NULL, NULL, &hints, &res, 0), TR_EINVAL);
  tr_freeaddrinfo(NULL);
}

START_TEST(dns_getaddrinfo) { tr_test_run1(t_dns, NULL); }
END_TEST

/* A lookup abandoned by its caller (timeout 0) completes into the runtime. */
static void t_dns_abandon(void *arg) {
  struct addrinfo *res = (void *)1;
  int err;
  (void)arg;
  for (int i = 0; i < 20; i++) {
    err = tr_getaddrinfo("localhost", NULL, NULL, &res, 0);
    ck_assert(err == TR_ETIMEDOUT || err == 0);
    if (err == 0) tr_freeaddrinfo(res);
  }
}

START_TEST(dns_abandoned) { tr_test_run1(t_dns_abandon, NULL); }
END_TEST

static Suite *io_suite(void) {
  Suite *s = suite_create("io");
  TCase *tc = tcase_create("tcp");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, tcp_echo);
  tcase_add_test(tc, tcp_ipv6);
  tcase_add_test(tc, tcp_bad_args);
  tcase_add_test(tc, tcp_accept_timeout);
  tcase_add_test(tc, tcp_read_timeout);
  tcase_add_test(tc, tcp_close_while_blocked);
  tcase_add_test(tc, tcp_connect_timeout);
  tcase_add_test(tc, tcp_refused);
  tcase_add_test(tc, tcp_eof);
  tcase_add_test(tc, tcp_reset);
  tcase_add_test(tc, tcp_partial_reads);
  tcase_add_test(tc, tcp_read_exactly_timeout);
  tcase_add_test(tc, tcp_big_write_slow_reader);
  tcase_add_test(tc, tcp_write_timeout);
  tcase_add_test(tc, tcp_1000_connections);
  tcase_add_test(tc, tcp_read_async);
  suite_add_tcase(s, tc);
  tc = tcase_create("ownership");
  tcase_add_test(tc, io_give);
  tcase_add_test(tc, io_close_from_cleanup);
  tcase_add_test(tc, io_closed_on_exit);
  suite_add_tcase(s, tc);
  tc = tcase_create("udp");
  tcase_add_test(tc, udp_send_recv);
  suite_add_tcase(s, tc);
  tc = tcase_create("fs");
  tcase_add_test(tc, fs_calls);
  suite_add_tcase(s, tc);
  tc = tcase_create("dns");
  tcase_add_test(tc, dns_getaddrinfo);
  tcase_add_test(tc, dns_abandoned);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(io_suite)
