/*
 * W2 — ring (Armstrong): 1000 actors in a ring pass a token (a hop
 * counter) for 1000 laps; each hop is a receive and a send (bench.md).
 *
 * --threads N runs N schedulers, each with a contiguous arc of the ring,
 * so that N hops per lap cross schedulers. One token is sequential: more
 * schedulers cannot make it faster, this measures what the crossings cost.
 */
#define BENCH_HONOURS_THREADS 1
#include "bench_util.h"

#include "troupe.h"

#define NODES 1000

static tr_pid_t ring[NODES];
static uint64_t total_hops, final_count, t0, t1;
static int nsched;

static void node(void *arg) {
  size_t me = (size_t)(uintptr_t)arg;
  tr_pid_t next = TR_PID_NONE;
  unsigned char buf[9];
  for (;;) {
    tr_msg_t *m;
    uint64_t hops;
    if (tr_recv(&m, -1) != 0) return;
    hops = bench_read_u64(tr_msg_data(m, NULL));
    tr_msg_free(m);
    if (hops == total_hops) { /* the last hop arrived: stop everyone */
      t1 = bench_now_ns();
      final_count = hops;
      for (size_t i = 0; i < NODES; i++)
        if (i != me) tr_exit_pid(NULL, ring[i], TR_REASON_SHUTDOWN);
      return;
    }
    /* Read once the token came: the starter filled ring[] before sending it
     * (a node on another scheduler may start before the ring is complete). */
    if (next == TR_PID_NONE) next = ring[(me + 1) % NODES];
    tr_send(next, buf, bench_pack_u64(buf, hops + 1));
  }
}

static void starter(void *arg) {
  unsigned char buf[9];
  tr_spawn_opts_t o;
  (void)arg;
  tr_spawn_opts_init(&o);
  o.stack_size = 64 * 1024;
  for (size_t i = 0; i < NODES; i++) {
    o.placement = TR_PLACE_SCHED(i * (size_t)nsched / NODES);
    tr_spawn(NULL, node, (void *)(uintptr_t)i, &o, &ring[i]);
  }
  tr_yield(); /* all nodes start and block in tr_recv (they read ring[] once
               * started, after every pid is known) */
  t0 = bench_now_ns();
  tr_send(ring[0], buf, bench_pack_u64(buf, 0));
}

int main(int argc, char **argv) {
  bench_args_t a;
  tr_runtime_t *rt;
  bench_parse(argc, argv, &a);
  tr_config_t cfg;
  total_hops = (uint64_t)NODES * (a.quick ? 100 : 1000);
  nsched = a.threads;
  tr_config_init(&cfg);
  cfg.schedulers = (unsigned)nsched;
  if (tr_runtime_new(&rt, &cfg) != 0) return 1;
  tr_spawn(rt, starter, NULL, NULL, NULL);
  if (tr_runtime_run(rt) != 0) return 1;
  tr_runtime_free(rt);
  if (final_count != total_hops) {
    fprintf(stderr, "W2: checksum mismatch %llu != %llu\n",
            (unsigned long long)final_count, (unsigned long long)total_hops);
    return 1;
  }
  bench_result("W2", a.threads, (double)(t1 - t0) / (double)total_hops, "ns/hop");
  return 0;
}
