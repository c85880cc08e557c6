/*
 * W3 — spawn+exit: one actor spawns N short-lived actors (each adds its id
 * to a sum and exits), with a warm stack pool; then skynet: a 10-ary tree
 * of actors with 10^6 leaves summing 0..999999 through messages
 * (bench.md).
 */
#include "bench_util.h"

#include "troupe.h"

static uint64_t sum, spawned_n, t0, t1;

static void child(void *arg) { sum += (uint64_t)(uintptr_t)arg; }

static void spawner(void *arg) {
  (void)arg;
  /* Warm the pool: the first spawns carve and fault in fresh stacks. */
  for (int i = 0; i < 64; i++) tr_spawn(NULL, child, (void *)0, NULL, NULL);
  tr_yield();
  sum = 0;
  t0 = bench_now_ns();
  for (uint64_t i = 0; i < spawned_n; i++) {
    tr_spawn(NULL, child, (void *)(uintptr_t)i, NULL, NULL);
    if ((i & 31) == 31) tr_yield(); /* let the children run and exit */
  }
  tr_yield();
  t1 = bench_now_ns();
}

/* ---- skynet ---- */

typedef struct {
  uint64_t num, size;
  tr_pid_t parent;
} sky_t;

static void skynet(void *arg) {
  sky_t me = *(sky_t *)arg;
  unsigned char buf[9];
  uint64_t total = 0;
  free(arg);
  if (me.size > 1) {
    uint64_t step = me.size / 10;
    for (uint64_t i = 0; i < 10; i++) {
      sky_t *c = malloc(sizeof(*c));
      c->num = me.num + i * step;
      c->size = step;
      c->parent = tr_self();
      tr_spawn(NULL, skynet, c, NULL, NULL);
    }
    for (int i = 0; i < 10; i++) {
      tr_msg_t *m;
      tr_recv(&m, -1);
      total += bench_read_u64(tr_msg_data(m, NULL));
      tr_msg_free(m);
    }
  } else {
    total = me.num;
  }
  if (me.parent) tr_send(me.parent, buf, bench_pack_u64(buf, total));
  else sum = total;
}

static void sky_root(void *arg) {
  sky_t *c = malloc(sizeof(*c));
  c->num = 0;
  c->size = (uint64_t)(uintptr_t)arg;
  c->parent = TR_PID_NONE;
  t0 = bench_now_ns();
  tr_spawn(NULL, skynet, c, NULL, NULL);
}

static void run(tr_actor_fn fn, void *arg, const tr_config_t *cfg) {
  tr_runtime_t *rt;
  if (tr_runtime_new(&rt, cfg) != 0) exit(1);
  tr_spawn(rt, fn, arg, NULL, NULL);
  if (tr_runtime_run(rt) != 0) exit(1);
  t1 = t1 ? t1 : bench_now_ns();
  tr_runtime_free(rt);
}

int main(int argc, char **argv) {
  bench_args_t a;
  tr_config_t cfg;
  uint64_t leaves;
  long rss0;
  bench_parse(argc, argv, &a);
  spawned_n = a.quick ? 100000 : 500000;
  run(spawner, NULL, NULL);
  if (sum != spawned_n * (spawned_n - 1) / 2) {
    fprintf(stderr, "W3: checksum mismatch\n");
    return 1;
  }
  bench_result("W3", a.threads, (double)(t1 - t0) / (double)spawned_n, "ns/actor");

  leaves = a.quick ? 100000 : 1000000;
  tr_config_init(&cfg);
  cfg.stack_size = 16 * 1024; /* skynet's actors are tiny */
  sum = 0;
  t1 = 0;
  rss0 = bench_rss_kib();
  run(sky_root, (void *)(uintptr_t)leaves, &cfg);
  if (sum != leaves * (leaves - 1) / 2) {
    fprintf(stderr, "W3-skynet: checksum mismatch %llu\n", (unsigned long long)sum);
    return 1;
  }
  fprintf(stderr, "W3-skynet: peak RSS growth %ld KiB\n", bench_rss_kib() - rss0);
  bench_result("W3-skynet", a.threads, (double)(t1 - t0) / 1e6, "ms");
  return 0;
}
