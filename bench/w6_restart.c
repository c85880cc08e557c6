/*
 * W6 — supervisor restart latency: a one_for_one supervisor with one
 * permanent worker that answers calls; each cycle crashes the worker and
 * times crash -> restarted worker answers a call (bench.md), like the
 * Erlang peer (bench_erl.erl: exit(Old, crash), poll whereis, call ping).
 *
 * Two crash kinds: an exit signal with an abnormal reason (tr_exit_pid with
 * TR_REASON_ERROR), and a stack overflow — the worker recurses into the
 * guard page of its (default, 256 KiB) stack, the fault is caught and the
 * worker exits with reason stack_overflow. A fresh supervisor serves each
 * batch of 1000 restarts (as the peer does per 100), outside the timings.
 *
 *   RESULT W6 troupe 1 <median> us/restart-median       exit reason
 *   RESULT W6-p99 troupe 1 <p99> us/restart-p99
 *   RESULT W6-so troupe 1 <median> us/restart-median    stack overflow
 *   RESULT W6-so-p99 troupe 1 <p99> us/restart-p99
 */
#include "bench_util.h"

#include "troupe.h"

#define CHILD "w6_child"
#define BATCH 1000
#define OP_OVERFLOW 2 /* msgpack fixint 2: recurse until the guard page */

static volatile int g_never = -1;

__attribute__((noinline, no_sanitize("undefined", "address"))) static int
recurse(int n) {
  volatile char frame[512];
  frame[0] = (char)n;
  if (n == g_never) return 0;
  return recurse(n + 1) + frame[0];
}

static void child(void *arg) {
  (void)arg;
  tr_register(CHILD, tr_self());
  tr_sup_init_ack(TR_INIT_OK);
  for (;;) {
    tr_msg_t *m;
    const unsigned char *d;
    if (tr_recv(&m, -1) != 0) continue;
    d = tr_msg_data(m, NULL);
    if (tr_msg_kind(m) == TR_MSG_CALL) tr_reply(m, "\x01", 1); /* pong */
    else if (d[0] == OP_OVERFLOW) recurse(0);
    tr_msg_free(m);
  }
}

typedef struct {
  int overflow;      /* crash by stack overflow instead of an exit signal */
  size_t n;
  uint64_t *ns;      /* one latency per cycle */
  uint64_t pongs;
} w6_t;

static tr_pid_t whereis_child(void) {
  tr_pid_t p = TR_PID_NONE;
  tr_whereis(CHILD, &p);
  return p;
}

/* One cycle: crash the worker, wait for its successor, call it. */
static uint64_t cycle(w6_t *w) {
  tr_pid_t old = whereis_child(), now;
  unsigned char op = OP_OVERFLOW;
  tr_msg_t *reply;
  uint64_t t0 = bench_now_ns();
  if (w->overflow) tr_send(old, &op, 1);
  else tr_exit_pid(NULL, old, TR_REASON_ERROR);
  while ((now = whereis_child()) == TR_PID_NONE || now == old) tr_yield();
  if (tr_call(now, "\x00", 1, &reply, -1, NULL) == 0) {
    w->pongs += *(const unsigned char *)tr_msg_data(reply, NULL);
    tr_msg_free(reply);
  }
  return bench_now_ns() - t0;
}

static void driver(void *arg) {
  w6_t *w = arg;
  tr_sup_flags_t f;
  tr_child_spec_t s;
  tr_pid_t sup;
  tr_sup_flags_init(&f);
  f.intensity = BATCH * 2;
  f.period_ms = 60000;
  tr_child_spec_init(&s, "child", child, NULL);
  s.shutdown = TR_SHUTDOWN_BRUTAL_KILL;
  for (size_t i = 0; i < w->n;) {
    if (tr_sup_start(NULL, &f, &s, 1, &sup, NULL) != 0) exit(1);
    for (size_t k = 0; k < BATCH && i < w->n; k++) w->ns[i++] = cycle(w);
    tr_sup_stop(sup);
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void run(int overflow, size_t n, double *median, double *p99) {
  tr_runtime_t *rt;
  w6_t w = {overflow, n, calloc(n, sizeof(uint64_t)), 0};
  if (w.ns == NULL || tr_runtime_new(&rt, NULL) != 0) exit(1);
  tr_spawn(rt, driver, &w, NULL, NULL);
  if (tr_runtime_run(rt) != 0) exit(1);
  tr_runtime_free(rt);
  if (w.pongs != n) {
    fprintf(stderr, "W6: checksum mismatch: %llu answers for %zu restarts\n",
            (unsigned long long)w.pongs, n);
    exit(1);
  }
  qsort(w.ns, n, sizeof(*w.ns), cmp_u64);
  /* the same ranks as the Erlang peer */
  *median = (double)w.ns[(n + 1) / 2 - 1] / 1000.0;
  *p99 = (double)w.ns[(n * 99 + 99) / 100 < n ? (n * 99 + 99) / 100 - 1 : n - 1] /
         1000.0;
  free(w.ns);
}

int main(int argc, char **argv) {
  bench_args_t a;
  size_t n;
  double med, p99;
  bench_parse(argc, argv, &a);
  n = a.quick ? 10000 : 100000;
  run(0, 2000, &med, &p99); /* warm-up */
  run(0, n, &med, &p99);
  bench_result("W6", a.threads, med, "us/restart-median");
  bench_result("W6-p99", a.threads, p99, "us/restart-p99");
  run(1, n, &med, &p99);
  bench_result("W6-so", a.threads, med, "us/restart-median");
  bench_result("W6-so-p99", a.threads, p99, "us/restart-p99");
  return 0;
}
