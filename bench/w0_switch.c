/*
 * W0 — raw switch: two coroutines yield to each other (bench.md).
 *
 * Reports two figures: the bare context switch (tr__ctx_switch, what
 * Boost.Context's continuation::resume measures), and tr_yield between two
 * actors (the switch plus the run-queue work an actor pays for).
 */
#include "bench_util.h"

#include "context.h"
#include "stack.h"
#include "troupe.h"

static tr__ctx_t main_ctx, co_ctx;
static volatile uint64_t co_count;

static void co_body(void *arg) {
  (void)arg;
  for (;;) {
    co_count++;
    tr__ctx_switch(&co_ctx, &main_ctx);
  }
}

static double raw_switch(uint64_t n) {
  tr__stack_pool_t *pool;
  tr__stack_t st;
  uint64_t t0, t1;
  if (tr__stack_pool_new(&pool, 16) != 0 ||
      tr__stack_get(pool, 64 * 1024, &st) != 0)
    exit(1);
  co_count = 0;
  tr__ctx_make(&co_ctx, st.lo, st.size, co_body, NULL);
  t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++) tr__ctx_switch(&main_ctx, &co_ctx);
  t1 = bench_now_ns();
  if (co_count != n) {
    fprintf(stderr, "W0: checksum mismatch %llu != %llu\n",
            (unsigned long long)co_count, (unsigned long long)n);
    exit(1);
  }
  tr__stack_put(pool, &st);
  tr__stack_pool_free(pool);
  return (double)(t1 - t0) / (double)(2 * n); /* two switches per round */
}

static uint64_t yields_per_actor, total_yields;
static uint64_t y_t0, y_t1;

static void yielder(void *arg) {
  (void)arg;
  if (y_t0 == 0) y_t0 = bench_now_ns();
  for (uint64_t i = 0; i < yields_per_actor; i++) {
    tr_yield();
    total_yields++;
  }
  y_t1 = bench_now_ns();
}

static double yield_switch(uint64_t n) {
  tr_runtime_t *rt;
  yields_per_actor = n / 2;
  if (tr_runtime_new(&rt, NULL) != 0) exit(1);
  tr_spawn(rt, yielder, NULL, NULL, NULL);
  tr_spawn(rt, yielder, NULL, NULL, NULL);
  if (tr_runtime_run(rt) != 0) exit(1);
  tr_runtime_free(rt);
  if (total_yields != 2 * yields_per_actor) {
    fprintf(stderr, "W0-yield: checksum mismatch\n");
    exit(1);
  }
  return (double)(y_t1 - y_t0) / (double)total_yields;
}

int main(int argc, char **argv) {
  bench_args_t a;
  uint64_t n;
  bench_parse(argc, argv, &a);
  n = a.quick ? 2000000 : 20000000;
  raw_switch(n / 10); /* warm-up */
  bench_result("W0", a.threads, raw_switch(n), "ns/switch");
  bench_result("W0-yield", a.threads, yield_switch(n), "ns/switch");
  return 0;
}
