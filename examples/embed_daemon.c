/*
 * embed_daemon: a plain libuv program that embeds a supervised actor tree.
 *
 *   embed_daemon [--port P]
 *
 * The host owns the loop, a heartbeat timer and the SIGINT/SIGTERM
 * handlers; troupe runs its scheduler on that loop (tr_runtime_attach).
 * The tree serves a tiny TCP "visit counter": every connection gets one
 * line, "visit N\n", and is closed.
 *
 *   root (one_for_one) ─┬─ counter   owns the count, answers tr_call
 *                       ├─ visits    simple_one_for_one, temporary visitors
 *                       └─ acceptor  listens, starts a visitor per connection
 *
 * On SIGTERM the host asks for an orderly stop (tr_runtime_stop): the root
 * supervisor terminates its children in reverse start order — acceptor,
 * visits, counter — each says so on stdout, then the host closes its own
 * handles, frees the runtime, closes the loop and prints what
 * uv_loop_close returned. Exit status 0 when that was 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe.h>

static int port;

static void say(const char *what) {
  printf("embed_daemon: %s\n", what);
  fflush(stdout);
}

/* Printed by each worker as the runtime reaps it, in shutdown order. */
static void said_stopped(void *what) {
  char line[64];
  snprintf(line, sizeof(line), "stopped %s", (const char *)what);
  say(line);
}

/* ---- the actors ------------------------------------------------------------ */

static void counter_main(void *arg) {
  uint64_t visits = 0;
  tr_msg_t *m;
  (void)arg;
  tr_defer(said_stopped, "counter");
  tr_register("counter", tr_self());
  tr_sup_init_ack(TR_INIT_OK);
  while (tr_recv(&m, -1) == 0) {
    if (tr_msg_kind(m) == TR_MSG_CALL) {
      unsigned char reply[9] = {0xcf}; /* msgpack uint64 */
      visits++;
      for (int i = 0; i < 8; i++) reply[1 + i] = (unsigned char)(visits >> (56 - 8 * i));
      tr_reply(m, reply, sizeof(reply));
    }
    tr_msg_free(m);
  }
}

/* One connection: ask the counter, answer, close. */
static void visitor_main(void *arg) {
  char line[64];
  tr_pid_t counter;
  tr_msg_t *m, *reply;
  tr_io_t c;
  (void)arg;
  tr_sup_init_ack(TR_INIT_OK);
  if (tr_recv_tag(&m, "conn", 5000) != 0) return;
  c = tr_msg_obj(m)->via.array.ptr[1].via.u64;
  tr_msg_free(m);
  if (tr_whereis("counter", &counter) != 0 ||
      tr_call(counter, "\xc0", 1, &reply, 1000, NULL) != 0)
    return; /* the socket closes with us */
  snprintf(line, sizeof(line), "visit %llu\n",
           (unsigned long long)tr_msg_obj(reply)->via.u64);
  tr_msg_free(reply);
  tr_tcp_write(c, line, strlen(line), 1000);
  tr_tcp_shutdown(c, 1000);
}

static void acceptor_main(void *arg) {
  char line[64];
  tr_pid_t visits, pid;
  tr_io_t srv, c;
  int err;
  (void)arg;
  tr_defer(said_stopped, "acceptor");
  if ((err = tr_whereis("visits", &visits)) != 0 ||
      (err = tr_tcp_listen(&srv, "127.0.0.1", port, 128)) != 0) {
    tr_sup_init_ack(err);
    return;
  }
  if (port == 0) port = tr_io_port(srv);
  snprintf(line, sizeof(line), "listening on 127.0.0.1:%d", port);
  say(line);
  tr_sup_init_ack(TR_INIT_OK);
  while (tr_tcp_accept(srv, &c, -1) == 0) {
    if (tr_sup_start_child_arg(visits, NULL, &pid, NULL) != 0 ||
        tr_io_give(c, pid) != 0) {
      tr_io_close(c);
      continue;
    }
    tr_send_tagged(pid, "conn", "u", (uint64_t)c);
  }
}

/* The visits supervisor, as a child of root, announcing its own end. */
static tr_sup_flags_t visits_flags;
static tr_child_spec_t visitor_tpl;

/* Visitor reports: only failures, not one line per visit. */
static void visits_report(void *arg, const tr_sup_event_t *ev) {
  char why[160];
  (void)arg;
  if (ev->kind == TR_SUP_CHILD_STARTED ||
      (ev->kind == TR_SUP_CHILD_EXITED && ev->reason != NULL &&
       ev->reason->kind == TR_REASON_NORMAL))
    return;
  if (ev->reason != NULL) tr_reason_format(ev->reason, why, sizeof(why));
  else why[0] = 0;
  fprintf(stderr, "embed_daemon: visitor %#llx: %s\n",
          (unsigned long long)ev->child, why);
}

static void visits_main(void *arg) {
  (void)arg;
  tr_defer(said_stopped, "visits");
  tr_sup_enter(&visits_flags, &visitor_tpl, 1);
}

static tr_sup_flags_t root_flags;
static tr_child_spec_t root_kids[3];
static const tr_sup_def_t root_def = {&root_flags, root_kids, 3};

static void build_tree(void) {
  tr_sup_flags_init(&visits_flags);
  visits_flags.strategy = TR_SIMPLE_ONE_FOR_ONE;
  visits_flags.name = "visits";
  visits_flags.report = visits_report;
  tr_child_spec_init(&visitor_tpl, "visitor", visitor_main, NULL);
  visitor_tpl.restart = TR_TEMPORARY;

  tr_sup_flags_init(&root_flags);
  root_flags.strategy = TR_ONE_FOR_ONE;
  root_flags.intensity = 3;
  root_flags.name = "root";
  tr_child_spec_init(&root_kids[0], "counter", counter_main, NULL);
  tr_child_spec_init(&root_kids[1], "visits", visits_main, NULL);
  root_kids[1].type = TR_SUPERVISOR;
  tr_child_spec_init(&root_kids[2], "acceptor", acceptor_main, NULL);
}

/* ---- the host ---------------------------------------------------------------- */

static uv_loop_t loop;
static uv_timer_t heartbeat;
static uv_signal_t sigs[2];
static tr_runtime_t *rt;
static int stopping;
static unsigned long beats;

static void heartbeat_cb(uv_timer_t *t) {
  beats++;
  /* Once the tree is gone, the host closes its own handles: uv_run ends. */
  if (stopping && tr_runtime_actor_count(rt) == 0) {
    uv_close((uv_handle_t *)t, NULL);
    for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&sigs[i], NULL);
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  if (stopping) return;
  stopping = 1;
  say(signum == SIGTERM ? "SIGTERM: stopping the actor tree"
                        : "SIGINT: stopping the actor tree");
  tr_runtime_stop(rt);
}

int main(int argc, char **argv) {
  tr_config_t cfg;
  char line[80];
  int err;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--port P]\n", argv[0]);
      return 2;
    }
  }
  uv_loop_init(&loop);
  uv_timer_init(&loop, &heartbeat);
  uv_timer_start(&heartbeat, heartbeat_cb, 50, 50);
  for (int i = 0; i < 2; i++) {
    uv_signal_init(&loop, &sigs[i]);
    uv_signal_start(&sigs[i], on_signal, i == 0 ? SIGTERM : SIGINT);
  }

  tr_config_init(&cfg);
  cfg.logger = tr_log_stderr;
  /* Visit actors start next to the acceptor: it hands them their socket,
   * and a socket lives on its scheduler's loop. */
  cfg.placement = TR_PLACE_LOCAL;
  if ((err = tr_runtime_attach(&rt, &loop, &cfg)) != 0) {
    fprintf(stderr, "embed_daemon: attach: %s\n", tr_strerror(err));
    return 1;
  }
  build_tree();
  /* The root supervisor is a top-level actor: tr_runtime_stop shuts it
   * down, and it stops its children in reverse order. */
  if ((err = tr_spawn(rt, tr_sup_main, (void *)&root_def, NULL, NULL)) != 0) {
    fprintf(stderr, "embed_daemon: spawn: %s\n", tr_strerror(err));
    return 1;
  }

  uv_run(&loop, UV_RUN_DEFAULT);

  tr_runtime_free(rt);
  err = uv_loop_close(&loop);
  snprintf(line, sizeof(line), "host timer beat %lu times; uv_loop_close returned %d",
           beats, err);
  say(line);
  return err == 0 ? 0 : 1;
}
