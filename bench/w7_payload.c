/*
 * W7 — payload ping-pong: two actors bounce a ~230-byte structured message
 * ["payload", seq, a, b, c, name, [16 ints]]; each side decodes it, checks
 * it, increments seq and re-encodes it, as the Go peer clones its struct
 * (bench.md); the encoding is tr_send_tagged's, packed straight into the
 * message, and the decoding tr_msg_unpack's, read straight from it.
 * Reported per one-way message.
 */
#include "bench_util.h"

#include "troupe.h"

static const char NAME[] = "troupe-payload-troupe-payload-troupe-payload-troupe-pay";

/* Sends the payload with sequence number seq, packed by the runtime
 * straight into the message (the same bytes msgpack-c's packer writes). */
static int send_payload(tr_pid_t to, uint64_t seq, int64_t a, int64_t b,
                        int64_t c, const int64_t *vals) {
  return tr_send_tagged(to, "payload", "uiiiSI", seq, a, b, c, NAME,
                        sizeof(NAME) - 1, vals, (size_t)16);
}

static uint64_t rounds, t0, t1, final_seq;
static tr_pid_t peer_pid;
static int bad;

/* Receives, checks and answers with seq + 1; returns the seq received.
 * The message is read in one pass over its bytes (tr_msg_unpack checks
 * the tag, the arity and every type), straight into C variables. */
static uint64_t bounce(tr_pid_t to, int reply) {
  tr_msg_t *m;
  int64_t vals[16], a, b, c;
  const char *name;
  size_t name_len, nvals;
  uint64_t seq;
  if (tr_recv(&m, -1) != 0) return 0;
  if (tr_msg_unpack(m, "payload", "uiiiSI", &seq, &a, &b, &c, &name,
                    &name_len, vals, (size_t)16, &nvals) != 0 ||
      nvals != 16) {
    bad = 1;
    tr_msg_free(m);
    return 0;
  }
  if (name_len != sizeof(NAME) - 1) bad = 1;
  if (reply) send_payload(to ? to : tr_msg_from(m), seq + 1, a, b, c, vals);
  tr_msg_free(m);
  return seq;
}

static void ponger(void *arg) {
  (void)arg;
  for (uint64_t i = 0; i < rounds; i++) bounce(TR_PID_NONE, 1);
}

static void pinger(void *arg) {
  int64_t vals[16];
  void *body;
  size_t len;
  (void)arg;
  for (int i = 0; i < 16; i++) vals[i] = ((int64_t)1 << 40) + i;
  if (tr_pack_tagged(&body, &len, "payload", "uiiiSI", (uint64_t)0,
                     (int64_t)1, (int64_t)2, (int64_t)3, NAME, sizeof(NAME) - 1,
                     vals, (size_t)16) != 0)
    exit(1);
  fprintf(stderr, "W7 troupe: payload %zu bytes\n", len);
  free(body);
  t0 = bench_now_ns();
  send_payload(peer_pid, 0, 1, 2, 3, vals);
  for (uint64_t i = 0; i + 1 < rounds; i++) bounce(peer_pid, 1);
  final_seq = bounce(peer_pid, 0);
  t1 = bench_now_ns();
}

static double run(uint64_t n) {
  tr_runtime_t *rt;
  rounds = n;
  if (tr_runtime_new(&rt, NULL) != 0) exit(1);
  tr_spawn(rt, ponger, NULL, NULL, &peer_pid);
  tr_spawn(rt, pinger, NULL, NULL, NULL);
  if (tr_runtime_run(rt) != 0) exit(1);
  tr_runtime_free(rt);
  if (bad || final_seq != 2 * n - 1) {
    fprintf(stderr, "W7: checksum mismatch seq=%llu\n", (unsigned long long)final_seq);
    exit(1);
  }
  return (double)(t1 - t0) / (double)(2 * n);
}

int main(int argc, char **argv) {
  bench_args_t a;
  bench_parse(argc, argv, &a);
  run(10000);
  bench_result("W7", a.threads, run(a.quick ? 50000 : 500000), "ns/msg");
  return 0;
}
