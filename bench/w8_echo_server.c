/* W8 (TCP echo): troupe's echo server for bench/run.sh and the W8 load
 * client (bench/peers/libuv/w8_client.c).
 *
 *   w8_echo_server [--port P] [--threads T] [--host IP]
 *
 * One acceptor actor, one actor per connection, written as blocking code:
 * read what is there, write it back — every byte, no framing. --port 0
 * (the default) picks a free port. Prints "W8 troupe: listening on P" on
 * stderr and runs until killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe.h>

#include "bench_util.h"

static const char *host = "127.0.0.1";
static int port;

static void conn_main(void *arg) {
  tr_io_t c = (tr_io_t)(uintptr_t)arg;
  char buf[16384];
  int n;
  while ((n = tr_tcp_read(c, buf, sizeof(buf), -1)) > 0)
    if (tr_tcp_write(c, buf, (size_t)n, -1) != 0) break;
}

static void acceptor_main(void *arg) {
  tr_spawn_opts_t opts;
  tr_io_t srv, c;
  tr_pid_t pid;
  int err;
  (void)arg;
  if ((err = tr_tcp_listen(&srv, host, port, 1024)) != 0) {
    fprintf(stderr, "W8 troupe: listen on %s:%d: %s\n", host, port,
            tr_strerror(err));
    exit(1);
  }
  fprintf(stderr, "W8 troupe: listening on %d\n", tr_io_port(srv));
  printf("%d\n", tr_io_port(srv));
  fflush(stdout);
  tr_spawn_opts_init(&opts);
  opts.stack_size = 64 * 1024;
  for (;;) {
    if ((err = tr_tcp_accept(srv, &c, -1)) != 0) {
      fprintf(stderr, "W8 troupe: accept: %s\n", tr_strerror(err));
      tr_sleep(10);
      continue;
    }
    tr_tcp_nodelay(c, 1);
    if (tr_spawn(NULL, conn_main, (void *)(uintptr_t)c, &opts, &pid) != 0 ||
        tr_io_give(c, pid) != 0)
      tr_io_close(c);
  }
}

int main(int argc, char **argv) {
  bench_args_t args;
  tr_runtime_t *rt;
  int err;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
  }
  bench_parse(argc, argv, &args);
  if ((err = tr_runtime_new(&rt, NULL)) == 0 &&
      (err = tr_spawn(rt, acceptor_main, NULL, NULL, NULL)) == 0)
    err = tr_runtime_run(rt);
  tr_runtime_free(rt);
  if (err != 0) fprintf(stderr, "W8 troupe: %s\n", tr_strerror(err));
  return err != 0;
}
