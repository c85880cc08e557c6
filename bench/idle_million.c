/*
 * W5 — idle footprint: N actors blocked in tr_recv, each on its own guarded
 * stack. Reports delta RSS / delta N (bench.md), the VMA count (guards made
 * with MADV_GUARD_INSTALL add none), and that every actor is released.
 * W5-hib: the same with every actor hibernated (tr_hibernate), its stack
 * given back while it waits.
 *
 *   idle_million [--quick] [--count N]      (default: 100,000 and 1,000,000)
 */
#include "bench_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include "troupe.h"

static uint64_t woke;
static size_t target_count;
static long rss_before, rss_after;
static int vma_before, vma_after;

static void idler(void *arg) {
  tr_msg_t *m;
  (void)arg;
  if (tr_recv(&m, -1) == 0) {
    woke++;
    tr_msg_free(m);
  }
}

static void hib_woken(void *arg) { idler(arg); }

static void hib_idler(void *arg) { tr_hibernate(hib_woken, arg); }

static tr_actor_fn idle_fn = idler;

/* Spawns everything, then, once all are blocked, measures and wakes them. */
static void spawner(void *arg) {
  tr_pid_t *pids = arg;
  unsigned char nil = 0xc0;
  rss_before = bench_rss_kib();
  vma_before = bench_vma_count();
  for (size_t i = 0; i < target_count; i++) {
    int err = tr_spawn(NULL, idle_fn, NULL, NULL, &pids[i]);
    if (err != 0) {
      fprintf(stderr, "spawn %zu failed: %s\n", i, tr_strerror(err));
      exit(1);
    }
  }
  tr_yield(); /* every idler runs once and blocks (or hibernates) */
  rss_after = bench_rss_kib();
  vma_after = bench_vma_count();
  for (size_t i = 0; i < target_count; i++) tr_send(pids[i], &nil, 1);
}

static void measure(const char *workload, size_t n, int threads, int hib) {
  tr_runtime_t *rt;
  tr_pid_t *pids = malloc(n * sizeof(*pids));
  uint64_t t0 = bench_now_ns(), t1;
  target_count = n;
  woke = 0;
  idle_fn = hib ? hib_idler : idler;
  if (pids == NULL || tr_runtime_new(&rt, NULL) != 0) exit(1);
  tr_spawn(rt, spawner, pids, NULL, NULL);
  if (tr_runtime_run(rt) != 0) exit(1);
  t1 = bench_now_ns();
  if (woke != n || tr_runtime_actor_count(rt) != 0) {
    fprintf(stderr, "%s: checksum mismatch: %llu of %zu woke\n", workload,
            (unsigned long long)woke, n);
    exit(1);
  }
  tr_runtime_free(rt);
  free(pids);
  fprintf(stderr, "%s: %zu actors alive at once; RSS +%ld KiB; VMAs %d -> %d; "
                  "%.0f ms spawn+wake+exit; stack %u KiB reserved per actor\n",
          workload, n, rss_after - rss_before, vma_before, vma_after,
          (double)(t1 - t0) / 1e6, TR_STACK_SIZE_DEFAULT / 1024);
  bench_result(workload, threads,
               (double)(rss_after - rss_before) * 1024.0 / (double)n,
               "bytes/actor");
}

/* The hibernated modes run in a child forked before anything else ran, so
 * that neither measurement starts on a heap the other already grew. */
static void measure_hib_apart(size_t n, size_t n_1m, int threads) {
  int status = 0;
  pid_t child = fork();
  if (child == 0) {
    measure("W5-hib", n, threads, 1);
    if (n_1m) measure("W5-hib-1M", n_1m, threads, 1);
    fflush(NULL);
    _exit(0);
  }
  if (child < 0 || waitpid(child, &status, 0) != child || status != 0) exit(1);
}

int main(int argc, char **argv) {
  bench_args_t a;
  size_t only = 0;
  bench_parse(argc, argv, &a);
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "--count") == 0) only = (size_t)strtoull(argv[i + 1], NULL, 10);
  if (only) {
    measure_hib_apart(only, 0, a.threads);
    measure("W5", only, a.threads, 0);
    return 0;
  }
  measure_hib_apart(100000, a.quick ? 0 : 1000000, a.threads);
  measure("W5", 100000, a.threads, 0);
  if (!a.quick) measure("W5-1M", 1000000, a.threads, 0);
  return 0;
}
