/*
 * W4 — N:1 mailbox (CAF's mailbox_performance shape): 20 senders each send
 * 200,000 small messages to one receiver (bench.md).
 *
 * --threads N runs N schedulers: the receiver on scheduler 0 and the
 * senders spread round-robin over the others (with N = 1, all on the one).
 * W4_SENDERS=all spreads them over every scheduler, the receiver's too.
 */
#define BENCH_HONOURS_THREADS 1
#include "bench_util.h"

#include "troupe.h"

#define SENDERS 20

static uint64_t per_sender, expected, received, sum, t0, t1;
static tr_pid_t receiver_pid;
static int nsched, senders_everywhere;

/* The counters live in locals: globals written per message would share a
 * cache line with what the senders read, on another core. */
static void receiver(void *arg) {
  uint64_t n = 0, s = 0, want = expected;
  (void)arg;
  while (n < want) {
    tr_msg_t *m;
    const unsigned char *d;
    if (tr_recv(&m, -1) != 0) break;
    d = tr_msg_data(m, NULL);
    s += d[0] < 0x80 ? d[0] : 0;
    n++;
    tr_msg_free(m);
  }
  t1 = bench_now_ns();
  received = n;
  sum = s;
}

static void sender(void *arg) {
  unsigned char one = 1;
  tr_pid_t to = receiver_pid;
  uint64_t n = per_sender;
  (void)arg;
  for (uint64_t i = 0; i < n; i++) {
    tr_send(to, &one, 1);
    if ((i & 255) == 255) tr_yield(); /* senders share the thread fairly */
  }
}

static void boss(void *arg) {
  tr_spawn_opts_t o;
  (void)arg;
  tr_spawn_opts_init(&o);
  tr_spawn(NULL, receiver, NULL, NULL, &receiver_pid);
  t0 = bench_now_ns();
  for (int i = 0; i < SENDERS; i++) {
    int on = nsched == 1 ? 0
             : senders_everywhere ? i % nsched
                                  : 1 + i % (nsched - 1);
    o.placement = TR_PLACE_SCHED(on);
    tr_spawn(NULL, sender, NULL, &o, NULL);
  }
}

int main(int argc, char **argv) {
  bench_args_t a;
  tr_runtime_t *rt;
  bench_parse(argc, argv, &a);
  tr_config_t cfg;
  per_sender = a.quick ? 20000 : 200000;
  expected = per_sender * SENDERS;
  nsched = a.threads;
  senders_everywhere = getenv("W4_SENDERS") && strcmp(getenv("W4_SENDERS"), "all") == 0;
  tr_config_init(&cfg);
  cfg.schedulers = (unsigned)nsched;
  if (tr_runtime_new(&rt, &cfg) != 0) return 1;
  tr_spawn(rt, boss, NULL, NULL, NULL);
  if (tr_runtime_run(rt) != 0) return 1;
  tr_runtime_free(rt);
  if (received != expected || sum != expected) {
    fprintf(stderr, "W4: checksum mismatch\n");
    return 1;
  }
  bench_result("W4", a.threads, (double)expected / ((double)(t1 - t0) / 1e9), "msgs/s");
  return 0;
}
