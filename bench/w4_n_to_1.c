/*
 * W4 — N:1 mailbox (CAF's mailbox_performance shape): 20 senders each send
 * 200,000 small messages to one receiver (bench.md).
 */
#include "bench_util.h"

#include "troupe.h"

#define SENDERS 20

static uint64_t per_sender, expected, received, sum, t0, t1;
static tr_pid_t receiver_pid;

static void receiver(void *arg) {
  (void)arg;
  while (received < expected) {
    tr_msg_t *m;
    const unsigned char *d;
    if (tr_recv(&m, -1) != 0) return;
    d = tr_msg_data(m, NULL);
    sum += d[0] < 0x80 ? d[0] : 0;
    received++;
    tr_msg_free(m);
  }
  t1 = bench_now_ns();
}

static void sender(void *arg) {
  unsigned char one = 1;
  (void)arg;
  for (uint64_t i = 0; i < per_sender; i++) {
    tr_send(receiver_pid, &one, 1);
    if ((i & 255) == 255) tr_yield(); /* senders share the thread fairly */
  }
}

static void boss(void *arg) {
  (void)arg;
  tr_spawn(NULL, receiver, NULL, NULL, &receiver_pid);
  t0 = bench_now_ns();
  for (int i = 0; i < SENDERS; i++) tr_spawn(NULL, sender, NULL, NULL, NULL);
}

int main(int argc, char **argv) {
  bench_args_t a;
  tr_runtime_t *rt;
  bench_parse(argc, argv, &a);
  per_sender = a.quick ? 20000 : 200000;
  expected = per_sender * SENDERS;
  if (tr_runtime_new(&rt, NULL) != 0) return 1;
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
