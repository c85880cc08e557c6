/*
 * W1 — ping-pong: two actors bounce a small message (a msgpack fixint)
 * back and forth; each message is copied into the receiver's mailbox and
 * received with tr_recv, as an application would (bench.md).
 */
#include "bench_util.h"

#include "troupe.h"

static uint64_t rounds;
static tr_pid_t ponger_pid;
static uint64_t t0, t1, sum;

static void ponger(void *arg) {
  (void)arg;
  for (;;) {
    tr_msg_t *m;
    size_t len;
    const unsigned char *d;
    if (tr_recv(&m, -1) != 0) return;
    d = tr_msg_data(m, &len);
    if (d[0] == 0xc0) { /* nil: stop */
      tr_msg_free(m);
      return;
    }
    tr_send(tr_msg_from(m), d, len);
    tr_msg_free(m);
  }
}

static void pinger(void *arg) {
  unsigned char msg = 1; /* positive fixint 1 */
  unsigned char stop = 0xc0;
  (void)arg;
  t0 = bench_now_ns();
  for (uint64_t i = 0; i < rounds; i++) {
    tr_msg_t *m;
    const unsigned char *d;
    tr_send(ponger_pid, &msg, 1);
    tr_recv(&m, -1);
    d = tr_msg_data(m, NULL);
    sum += d[0];
    tr_msg_free(m);
  }
  t1 = bench_now_ns();
  tr_send(ponger_pid, &stop, 1);
}

static double run(uint64_t n) {
  tr_runtime_t *rt;
  rounds = n;
  sum = 0;
  if (tr_runtime_new(&rt, NULL) != 0) exit(1);
  tr_spawn(rt, ponger, NULL, NULL, &ponger_pid);
  tr_spawn(rt, pinger, NULL, NULL, NULL);
  if (tr_runtime_run(rt) != 0) exit(1);
  tr_runtime_free(rt);
  if (sum != n) {
    fprintf(stderr, "W1: checksum mismatch %llu != %llu\n",
            (unsigned long long)sum, (unsigned long long)n);
    exit(1);
  }
  return (double)(t1 - t0) / (double)n;
}

int main(int argc, char **argv) {
  bench_args_t a;
  bench_parse(argc, argv, &a);
  run(100000); /* warm-up */
  bench_result("W1", a.threads, run(a.quick ? 200000 : 2000000), "ns/roundtrip");
  return 0;
}
