/*
 * W7 — payload ping-pong: two actors bounce a ~230-byte structured message
 * ["payload", seq, a, b, c, name, [16 ints]]; each side decodes it, checks
 * it, increments seq and re-encodes it, as the Go peer clones its struct
 * (bench.md). Reported per one-way message.
 */
#include "bench_util.h"

#include "troupe.h"

typedef struct {
  unsigned char data[512];
  size_t len;
} fixbuf_t;

static int fixbuf_write(void *data, const char *buf, size_t len) {
  fixbuf_t *b = data;
  if (b->len + len > sizeof(b->data)) return -1;
  memcpy(b->data + b->len, buf, len);
  b->len += len;
  return 0;
}

static const char NAME[] = "troupe-payload-troupe-payload-troupe-payload-troupe-pay";

/* Encodes the payload with sequence number seq. */
static void encode(fixbuf_t *b, uint64_t seq, int64_t a, int64_t bb, int64_t c,
                   const int64_t *vals) {
  msgpack_packer pk;
  b->len = 0;
  msgpack_packer_init(&pk, b, fixbuf_write);
  msgpack_pack_array(&pk, 7);
  msgpack_pack_str_with_body(&pk, "payload", 7);
  msgpack_pack_uint64(&pk, seq);
  msgpack_pack_int64(&pk, a);
  msgpack_pack_int64(&pk, bb);
  msgpack_pack_int64(&pk, c);
  msgpack_pack_str_with_body(&pk, NAME, sizeof(NAME) - 1);
  msgpack_pack_array(&pk, 16);
  for (int i = 0; i < 16; i++) msgpack_pack_int64(&pk, vals[i]);
}

static uint64_t rounds, t0, t1, final_seq;
static tr_pid_t peer_pid;
static int bad;

/* Receives, checks and answers with seq + 1; returns the seq received. */
static uint64_t bounce(tr_pid_t to, int reply) {
  tr_msg_t *m;
  const msgpack_object *o;
  const msgpack_object *f;
  int64_t vals[16];
  uint64_t seq;
  fixbuf_t out;
  if (tr_recv(&m, -1) != 0) return 0;
  o = tr_msg_obj(m);
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 7) {
    bad = 1;
    tr_msg_free(m);
    return 0;
  }
  f = o->via.array.ptr;
  seq = f[1].via.u64;
  for (int i = 0; i < 16; i++) vals[i] = f[6].via.array.ptr[i].via.i64;
  if (f[5].via.str.size != sizeof(NAME) - 1) bad = 1;
  if (reply) {
    encode(&out, seq + 1, f[2].via.i64, f[3].via.i64, f[4].via.i64, vals);
    tr_send(to ? to : tr_msg_from(m), out.data, out.len);
  }
  tr_msg_free(m);
  return seq;
}

static void ponger(void *arg) {
  (void)arg;
  for (uint64_t i = 0; i < rounds; i++) bounce(TR_PID_NONE, 1);
}

static void pinger(void *arg) {
  int64_t vals[16];
  fixbuf_t out;
  (void)arg;
  for (int i = 0; i < 16; i++) vals[i] = ((int64_t)1 << 40) + i;
  encode(&out, 0, 1, 2, 3, vals);
  fprintf(stderr, "W7 troupe: payload %zu bytes\n", out.len);
  t0 = bench_now_ns();
  tr_send(peer_pid, out.data, out.len);
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
