/* Check suite: the runtime attached to a host's libuv loop while actors do
 * I/O. The host's timer keeps its cadence, the host's own handles keep
 * working, and after stop + free the host's uv_loop_close returns 0 — also
 * when actors are killed with I/O in flight.
 *
 * Every runtime here has one scheduler (tr_test_cfg1): the actors hand
 * I/O handles to each other, and a handle lives on its scheduler's loop.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <fcntl.h>
#include <stdint.h>
#include <uv.h>

#include "testutil.h"

#define LOOP4 "127.0.0.1"
#define ID(x) ((void *)(uintptr_t)(x))
#define IO(p) ((tr_io_t)(uintptr_t)(p))

#define TICK_MS 10
#define NCLIENTS 20
#define ROUNDS 300

/* ---- the host -------------------------------------------------------------- */

typedef struct host {
  uv_loop_t loop;
  uv_timer_t tick;
  tr_runtime_t *rt;
  uint64_t last, max_gap;
  int ticks;
  int stop_at_tick;  /* tr_runtime_stop at this tick (0: when work done) */
  int stopped;
  /* the host's own TCP echo server, on the same loop */
  uv_tcp_t srv;
  int port;
} host_t;

static host_t host;
static int clients_done, rounds_ok, host_echoes;

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void tick_cb(uv_timer_t *t) {
  host_t *h = t->data;
  uint64_t now = now_ms();
  if (h->last != 0 && now - h->last > h->max_gap) h->max_gap = now - h->last;
  h->last = now;
  h->ticks++;
  if (!h->stopped && (h->ticks == h->stop_at_tick ||
                      (h->stop_at_tick == 0 && clients_done == NCLIENTS))) {
    h->stopped = 1;
    TR_OK(tr_runtime_stop(h->rt));
  }
  if (h->stopped && tr_runtime_actor_count(h->rt) == 0) {
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_close((uv_handle_t *)&h->srv, NULL);
  }
}

/* The host's plain libuv echo server. */
static void h_alloc(uv_handle_t *hd, size_t sz, uv_buf_t *b) {
  (void)hd;
  b->base = malloc(sz);
  b->len = sz;
}
static void h_closed(uv_handle_t *hd) { free(hd); }
static void h_written(uv_write_t *w, int st) {
  (void)st;
  free(w->data);
  free(w);
}
static void h_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  if (n > 0) {
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t wb = uv_buf_init(b->base, (unsigned)n);
    w->data = b->base;
    host_echoes++;
    if (uv_write(w, s, &wb, 1, h_written) == 0) return;
    free(w);
  }
  free(b->base);
  if (n < 0) uv_close((uv_handle_t *)s, h_closed);
}
static void h_conn(uv_stream_t *srv, int st) {
  uv_tcp_t *c = malloc(sizeof(*c));
  ck_assert_int_eq(st, 0);
  uv_tcp_init(srv->loop, c);
  ck_assert_int_eq(uv_accept(srv, (uv_stream_t *)c), 0);
  uv_read_start((uv_stream_t *)c, h_alloc, h_read);
}

static void host_init(int stop_at_tick) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  memset(&host, 0, sizeof(host));
  ck_assert_int_eq(uv_loop_init(&host.loop), 0);
  uv_timer_init(&host.loop, &host.tick);
  host.tick.data = &host;
  host.stop_at_tick = stop_at_tick;
  uv_timer_start(&host.tick, tick_cb, TICK_MS, TICK_MS);
  uv_tcp_init(&host.loop, &host.srv);
  uv_ip4_addr(LOOP4, 0, &a);
  ck_assert_int_eq(uv_tcp_bind(&host.srv, (struct sockaddr *)&a, 0), 0);
  ck_assert_int_eq(uv_listen((uv_stream_t *)&host.srv, 128, h_conn), 0);
  uv_tcp_getsockname(&host.srv, (struct sockaddr *)&ss, &len);
  host.port = tr_addr_port(&ss);
  TR_OK(tr_runtime_attach(&host.rt, &host.loop, tr_test_cfg1()));
}

/* Runs the loop to the end, frees the runtime, closes the loop. */
static void host_finish(void) {
  uint64_t t0 = now_ms();
  ck_assert_int_eq(uv_run(&host.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_lt(now_ms() - t0, 30000);
  TR_OK(tr_runtime_free(host.rt));
  ck_assert_int_eq(uv_loop_close(&host.loop), 0);
}

/* ---- actors ------------------------------------------------------------------ */

static tr_io_t srv;

static void echo_conn(void *arg) {
  tr_io_t c = IO(arg);
  char buf[4096];
  int n;
  while ((n = tr_tcp_read(c, buf, sizeof(buf), -1)) > 0)
    if (tr_tcp_write(c, buf, (size_t)n, -1) != 0) break;
}

static void acceptor(void *arg) {
  tr_io_t c;
  tr_pid_t pid;
  (void)arg;
  while (tr_tcp_accept(srv, &c, -1) == 0) {
    TR_OK(tr_spawn(NULL, echo_conn, ID(c), NULL, &pid));
    TR_OK(tr_io_give(c, pid));
  }
}

/* Round trips with the actor echo server, then one with the host's. */
static void client(void *arg) {
  char out[1024], in[1024];
  tr_io_t c, hc;
  size_t got;
  int port = (int)(uintptr_t)arg;
  memset(out, 'a' + (int)(tr_self() % 26), sizeof(out));
  TR_OK(tr_tcp_connect(&c, LOOP4, port, 5000));
  for (int i = 0; i < ROUNDS; i++) {
    TR_OK(tr_tcp_write(c, out, sizeof(out), 5000));
    TR_OK(tr_tcp_read_exactly(c, in, sizeof(in), &got, 5000));
    if (memcmp(in, out, sizeof(in)) == 0) rounds_ok++;
  }
  TR_OK(tr_tcp_connect(&hc, LOOP4, host.port, 5000));
  TR_OK(tr_tcp_write(hc, "host", 4, 5000));
  TR_OK(tr_tcp_read_exactly(hc, in, 4, &got, 5000));
  ck_assert(memcmp(in, "host", 4) == 0);
  clients_done++;
}

/* Top-level: starts the server and the clients, then waits to be stopped. */
static void app(void *arg) {
  tr_pid_t acc;
  int port;
  (void)arg;
  TR_OK(tr_tcp_listen(&srv, LOOP4, 0, 128));
  port = tr_io_port(srv);
  TR_OK(tr_spawn_link(acceptor, NULL, &acc));
  TR_OK(tr_io_give(srv, acc));
  for (int i = 0; i < NCLIENTS; i++)
    TR_OK(tr_spawn(NULL, client, ID(port), NULL, NULL));
  for (;;) {
    tr_msg_t *m;
    tr_recv(&m, -1); /* until the stop's shutdown signal */
    tr_msg_free(m);
  }
}

START_TEST(embed_cadence_and_close) {
  uint64_t t0;
  host_init(0);
  TR_OK(tr_spawn(host.rt, app, NULL, NULL, NULL));
  t0 = now_ms();
  host_finish();
  ck_assert_int_eq(clients_done, NCLIENTS);
  ck_assert_int_eq(rounds_ok, NCLIENTS * ROUNDS);
  ck_assert_int_eq(host_echoes, NCLIENTS);
  /* The host's timer kept its cadence while actors did I/O. */
  /* (TSan runs everything several times slower.) */
  ck_assert_msg(host.max_gap <= (tr_test_on_tsan() ? 200u : 60u), "host timer gap %llu ms",
                (unsigned long long)host.max_gap);
  ck_assert_int_ge(host.ticks, (int)((now_ms() - t0) / TICK_MS) / 2);
}
END_TEST

/* ---- killed with I/O in flight ------------------------------------------------- */

static unsigned char *big;
#define BIG ((size_t)16 * 1024 * 1024)

static void blocked_read(void *arg) {
  tr_io_t c;
  char b[8];
  TR_OK(tr_tcp_connect(&c, LOOP4, (int)(uintptr_t)arg, 2000));
  tr_tcp_read(c, b, sizeof(b), -1);
}

static void blocked_write(void *arg) {
  tr_io_t c;
  TR_OK(tr_tcp_connect(&c, LOOP4, (int)(uintptr_t)arg, 2000));
  tr_tcp_write(c, big, BIG, -1);
}

static void timed_out_write(void *arg) {
  tr_io_t c;
  TR_OK(tr_tcp_connect(&c, LOOP4, (int)(uintptr_t)arg, 2000));
  ck_assert_int_eq(tr_tcp_write(c, big, BIG, 20), TR_ETIMEDOUT);
  tr_sleep(100000); /* the write is still in flight */
}

static void holder(void *arg) {
  tr_io_t c;
  (void)arg;
  /* accepts forever and keeps (never reads) what it accepted */
  while (tr_tcp_accept(srv, &c, -1) == 0) {
  }
}

static void busy_app(void *arg) {
  tr_pid_t h;
  int port;
  tr_io_t u, f;
  (void)arg;
  TR_OK(tr_tcp_listen(&srv, LOOP4, 0, 128));
  port = tr_io_port(srv);
  TR_OK(tr_spawn_link(holder, NULL, &h));
  TR_OK(tr_io_give(srv, h));
  TR_OK(tr_spawn_link(blocked_read, ID(port), NULL));
  TR_OK(tr_spawn_link(blocked_write, ID(port), NULL));
  TR_OK(tr_spawn_link(timed_out_write, ID(port), NULL));
  TR_OK(tr_udp_open(&u, LOOP4, 0));
  TR_OK(tr_fs_open(&f, "/dev/null", O_RDONLY, 0));
  tr_sleep(100000);
}

START_TEST(embed_stop_with_io_in_flight) {
  int fds;
  TR_OK(tr_runtime_new(&host.rt, tr_test_cfg1())); /* libuv's process-wide fds */
  TR_OK(tr_runtime_free(host.rt));
  fds = tr_test_fd_count();
  big = calloc(1, BIG);
  host_init(20); /* stop after 200 ms */
  TR_OK(tr_spawn(host.rt, busy_app, NULL, NULL, NULL));
  host_finish();
  ck_assert_int_eq(tr_test_fd_count(), fds);
  free(big);
}
END_TEST

/* tr_runtime_free without a stop, while actors still hold I/O. */
START_TEST(embed_free_with_io_in_flight) {
  uint64_t t0;
  int fds;
  TR_OK(tr_runtime_new(&host.rt, tr_test_cfg1()));
  TR_OK(tr_runtime_free(host.rt));
  fds = tr_test_fd_count();
  big = calloc(1, BIG);
  host_init(-1); /* never stops by itself */
  TR_OK(tr_spawn(host.rt, busy_app, NULL, NULL, NULL));
  t0 = now_ms();
  while (now_ms() - t0 < 200) uv_run(&host.loop, UV_RUN_ONCE);
  TR_OK(tr_runtime_free(host.rt));
  uv_close((uv_handle_t *)&host.tick, NULL);
  uv_close((uv_handle_t *)&host.srv, NULL);
  ck_assert_int_eq(uv_run(&host.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&host.loop), 0);
  ck_assert_int_eq(tr_test_fd_count(), fds);
  free(big);
}
END_TEST

static Suite *io_embed_suite(void) {
  Suite *s = suite_create("io_embed");
  TCase *tc = tcase_create("embed");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, embed_cadence_and_close);
  tcase_add_test(tc, embed_stop_with_io_in_flight);
  tcase_add_test(tc, embed_free_with_io_in_flight);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(io_embed_suite)
