/*
 * Crash-to-DOWN latency: the time from a fault inside an actor to its
 * monitor holding the DOWN message — signal delivery on the sigaltstack,
 * the jump back to the top frame, reaping, and the wake-up of the watcher.
 * Measured for a stack overflow (the guard-page path) and a NULL store.
 * Prints median and p99 in microseconds.
 */
#include "bench_util.h"

#include "troupe.h"

static uint64_t fault_at; /* set by the victim just before it faults */
static volatile int *volatile null_ptr;

__attribute__((noinline)) static int recurse(volatile char *prev) {
  volatile char pad[256];
  pad[0] = prev ? prev[0] : 1;
  if (pad[0] == 0) return 0;
  if (prev == NULL) fault_at = bench_now_ns();
  return recurse(pad) + pad[1];
}

static void overflow_victim(void *arg) {
  (void)arg;
  recurse(NULL);
}

static void null_victim(void *arg) {
  (void)arg;
  fault_at = bench_now_ns();
  *null_ptr = 1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  tr_actor_fn victim;
  tr_reason_kind_t expect;
  size_t n;
  uint64_t *lat;
  int bad;
} job_t;

static void watcher(void *arg) {
  job_t *j = arg;
  tr_spawn_opts_t o;
  tr_spawn_opts_init(&o);
  o.stack_size = 64 * 1024; /* overflow cost scales with the stack touched */
  o.flags = TR_SPAWN_MONITOR;
  for (size_t i = 0; i < j->n; i++) {
    tr_ref_t ref;
    tr_msg_t *m;
    tr_reason_t r;
    o.monitor_ref = &ref;
    tr_spawn(NULL, j->victim, NULL, &o, NULL);
    tr_recv(&m, -1);
    j->lat[i] = bench_now_ns() - fault_at;
    if (tr_msg_kind(m) != TR_MSG_DOWN || tr_msg_reason(m, &r) != 0 ||
        r.kind != j->expect)
      j->bad = 1;
    tr_msg_free(m);
  }
}

static void measure(const char *name, tr_actor_fn victim,
                    tr_reason_kind_t expect, size_t n, int threads) {
  tr_runtime_t *rt;
  job_t j = {victim, expect, n, calloc(n, sizeof(uint64_t)), 0};
  char w[64];
  if (j.lat == NULL || tr_runtime_new(&rt, NULL) != 0) exit(1);
  tr_spawn(rt, watcher, &j, NULL, NULL);
  if (tr_runtime_run(rt) != 0 || j.bad) {
    fprintf(stderr, "%s: wrong exit reason\n", name);
    exit(1);
  }
  tr_runtime_free(rt);
  qsort(j.lat, n, sizeof(uint64_t), cmp_u64);
  snprintf(w, sizeof(w), "%s", name);
  bench_result(w, threads, (double)j.lat[n / 2] / 1000.0, "us-median");
  snprintf(w, sizeof(w), "%s-p99", name);
  bench_result(w, threads, (double)j.lat[n * 99 / 100] / 1000.0, "us-p99");
  free(j.lat);
}

int main(int argc, char **argv) {
  bench_args_t a;
  size_t n;
  bench_parse(argc, argv, &a);
  n = a.quick ? 2000 : 20000;
  measure("CRASH-so", overflow_victim, TR_REASON_STACK_OVERFLOW, n, a.threads);
  measure("CRASH-segv", null_victim, TR_REASON_SEGV, n, a.threads);
  return 0;
}
