/*
 * echo_server: a supervised TCP echo server, one actor per connection.
 *
 *   echo_server [--port P] [--max-conns N] [--host IP]
 *
 * The tree (rest_for_one, so a new connection supervisor gets a new
 * acceptor):
 *
 *   echo_sup ─┬─ conns     simple_one_for_one, temporary "conn" children
 *             └─ acceptor  owns the listening socket; accepts, starts a
 *                          conn child, gives it the socket
 *
 * A conn actor echoes every byte it reads, in straight-line blocking code.
 * A line reading `crash` makes it recurse until it overflows its stack: the
 * guard page turns that into an ordinary exit (stack_overflow), the runtime
 * closes that actor's socket, and the server and every other client carry
 * on. SIGINT/SIGTERM stop the tree in order (acceptor, then connections)
 * and the program exits 0. Prints "echo_server: listening on IP:PORT".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe.h>

static const char *host = "127.0.0.1";
static int port;          /* 0 until the first listen picked one */
static int max_conns = 1000;

/* ---- a connection ------------------------------------------------------- */

static volatile int depth_sink;

/* Deliberately unbounded: each frame keeps 1 KiB live until the guard. */
static int __attribute__((noinline)) overflow(int n) {
  volatile char frame[1024];
  frame[0] = (char)n;
  frame[sizeof(frame) - 1] = (char)n;
  if (n == -1) return 0; /* never: keeps the compiler from proving a loop */
  return overflow(n + 1) + frame[0] + frame[sizeof(frame) - 1];
}

/* Tracks the current line; returns 1 when a line `crash` just ended. */
static int saw_crash(char *line, size_t *len, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n') {
      if (*len > 0 && line[*len - 1] == '\r') (*len)--;
      if (*len == 5 && memcmp(line, "crash", 5) == 0) return 1;
      *len = 0;
    } else if (*len < 16) {
      line[(*len)++] = p[i];
    }
  }
  return 0;
}

static void conn_main(void *arg) {
  char buf[4096], line[16];
  size_t linelen = 0;
  tr_msg_t *m;
  tr_io_t c;
  int n;
  (void)arg;
  tr_sup_init_ack(TR_INIT_OK);
  /* The acceptor gives us the socket, then tells us which one it is. */
  if (tr_recv_tag(&m, "conn", 5000) != 0) return;
  c = tr_msg_obj(m)->via.array.ptr[1].via.u64;
  tr_msg_free(m);
  while ((n = tr_tcp_read(c, buf, sizeof(buf), -1)) > 0) {
    if (saw_crash(line, &linelen, buf, (size_t)n))
      depth_sink = overflow(0);
    if (tr_tcp_write(c, buf, (size_t)n, 30000) != 0) break;
  }
  /* TR_EOF or an error: returning closes the socket (we own it). */
}

/* ---- the acceptor -------------------------------------------------------- */

static void refuse(tr_io_t c) {
  static const char busy[] = "server busy\n";
  tr_tcp_write(c, busy, sizeof(busy) - 1, 1000);
  tr_io_close(c);
}

/* Starts a conn child for c and hands c over. */
static void hand_off(tr_pid_t conns, tr_io_t c) {
  tr_sup_counts_t counts;
  tr_pid_t pid;
  int err;
  if (tr_sup_count_children(conns, &counts) == 0 &&
      counts.active >= (size_t)max_conns) {
    refuse(c);
    return;
  }
  if ((err = tr_sup_start_child_arg(conns, NULL, &pid, NULL)) != 0 ||
      (err = tr_io_give(c, pid)) != 0) {
    fprintf(stderr, "echo_server: cannot start a connection: %s\n",
            tr_strerror(err));
    tr_io_close(c);
    return;
  }
  tr_send_tagged(pid, "conn", "u", (uint64_t)c);
}

static void acceptor_main(void *arg) {
  tr_pid_t conns;
  tr_io_t srv, c;
  int err;
  (void)arg;
  if ((err = tr_whereis("echo_conns", &conns)) != 0 ||
      (err = tr_tcp_listen(&srv, host, port, 1024)) != 0) {
    fprintf(stderr, "echo_server: listen on %s:%d: %s\n", host, port,
            tr_strerror(err));
    tr_sup_init_ack(err);
    return;
  }
  if (port == 0) port = tr_io_port(srv); /* restarts reuse it */
  printf("echo_server: listening on %s:%d\n", host, port);
  fflush(stdout);
  tr_sup_init_ack(TR_INIT_OK);
  for (;;) {
    if ((err = tr_tcp_accept(srv, &c, -1)) != 0) {
      fprintf(stderr, "echo_server: accept: %s\n", tr_strerror(err));
      tr_sleep(100); /* e.g. out of fds: back off, keep serving */
      continue;
    }
    tr_tcp_nodelay(c, 1);
    hand_off(conns, c);
  }
}

/* ---- the tree and main ------------------------------------------------------ */

/* Connection reports: only the interesting ones (a crash), not one line per
 * connection opened and closed. */
static void conn_report(void *arg, const tr_sup_event_t *ev) {
  char why[160];
  (void)arg;
  if (ev->kind != TR_SUP_CHILD_EXITED || ev->reason == NULL ||
      ev->reason->kind == TR_REASON_NORMAL || ev->reason->kind == TR_REASON_SHUTDOWN)
    return;
  tr_reason_format(ev->reason, why, sizeof(why));
  fprintf(stderr, "echo_server: connection %#llx ended: %s\n",
          (unsigned long long)ev->child, why);
}

static tr_runtime_t *rt;
static uv_signal_t sigs[2];

static void on_signal(uv_signal_t *h, int signum) {
  fprintf(stderr, "echo_server: %s, stopping\n",
          signum == SIGTERM ? "SIGTERM" : "SIGINT");
  tr_runtime_stop(rt);
  for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&sigs[i], NULL);
  (void)h;
}

static int parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--max-conns") == 0 && i + 1 < argc)
      max_conns = atoi(argv[++i]);
    else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
    else return -1;
  }
  return port < 0 || port > 65535 || max_conns < 1 ? -1 : 0;
}

int main(int argc, char **argv) {
  tr_sup_flags_t top, conn_flags;
  tr_child_spec_t conn_tpl, kids[2];
  tr_sup_def_t conns_def;
  tr_sup_error_t why;
  tr_config_t cfg;
  int err;

  if (parse_args(argc, argv) != 0) {
    fprintf(stderr, "usage: %s [--port P] [--max-conns N] [--host IP]\n", argv[0]);
    return 2;
  }
  tr_config_init(&cfg);
  cfg.logger = tr_log_stderr; /* one line per crashed connection */
  /* Connection actors start next to the acceptor: it hands them their
   * socket, and a socket lives on its scheduler's loop. */
  cfg.placement = TR_PLACE_LOCAL;
  cfg.stop_timeout_ms = 3000;
  if ((err = tr_runtime_new(&rt, &cfg)) != 0) goto fail;

  /* conns: simple_one_for_one over temporary conn actors; crashes of
   * connections are expected, so they do not count toward intensity
   * (temporary children are never restarted). */
  tr_sup_flags_init(&conn_flags);
  conn_flags.strategy = TR_SIMPLE_ONE_FOR_ONE;
  conn_flags.name = "echo_conns";
  conn_flags.report = conn_report;
  tr_child_spec_init(&conn_tpl, "conn", conn_main, NULL);
  conn_tpl.restart = TR_TEMPORARY;
  conn_tpl.shutdown = 1000;
  conns_def.flags = &conn_flags;
  conns_def.specs = &conn_tpl;
  conns_def.n = 1;

  tr_sup_flags_init(&top);
  top.strategy = TR_REST_FOR_ONE;
  top.intensity = 5;
  top.period_ms = 10000;
  top.name = "echo_sup";
  tr_child_spec_init(&kids[0], "conns", tr_sup_main, &conns_def);
  kids[0].type = TR_SUPERVISOR;
  tr_child_spec_init(&kids[1], "acceptor", acceptor_main, NULL);
  kids[1].shutdown = 1000;

  if ((err = tr_sup_start(rt, &top, kids, 2, NULL, &why)) != 0) {
    fprintf(stderr, "echo_server: start: %s\n",
            why.message[0] ? why.message : tr_strerror(err));
    tr_runtime_free(rt);
    return 1;
  }
  for (int i = 0; i < 2; i++) {
    uv_signal_init(tr_runtime_loop(rt), &sigs[i]);
    uv_signal_start(&sigs[i], on_signal, i == 0 ? SIGTERM : SIGINT);
    uv_unref((uv_handle_t *)&sigs[i]); /* not a reason to keep running */
  }
  err = tr_runtime_run(rt);
  for (int i = 0; i < 2; i++)
    if (!uv_is_closing((uv_handle_t *)&sigs[i]))
      uv_close((uv_handle_t *)&sigs[i], NULL);
  tr_runtime_free(rt);
  if (err != 0) goto fail;
  fprintf(stderr, "echo_server: stopped\n");
  return 0;
fail:
  fprintf(stderr, "echo_server: %s\n", tr_strerror(err));
  return 1;
}
