/* The counter server of doc/getting-started.md (kept identical). */
#include <stdio.h>
#include <string.h>
#include <troupe.h>

/* Packs one unsigned integer into buf (msgpack), returns its length. */
static size_t pack_u(unsigned char *buf, uint64_t v) {
  msgpack_sbuffer sb; msgpack_packer pk; size_t n;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_uint64(&pk, v);
  n = sb.size; memcpy(buf, sb.data, n);
  msgpack_sbuffer_destroy(&sb);
  return n;
}

static void counter(void *arg) {
  uint64_t total = 0;
  tr_msg_t *m;
  tr_register("counter", tr_self());
  while (tr_recv(&m, -1) == 0) {
    if (tr_msg_kind(m) == TR_MSG_CALL) {          /* add n, reply the total */
      unsigned char out[16];
      total += tr_msg_obj(m)->via.u64;
      tr_reply(m, out, pack_u(out, total));
    }
    tr_msg_free(m);
  }
}

static void client(void *arg) {
  tr_pid_t srv;
  tr_msg_t *reply;
  unsigned char req[16];
  tr_yield();                                     /* let the counter register */
  tr_whereis("counter", &srv);
  for (uint64_t i = 1; i <= 3; i++) {
    int err = tr_call(srv, req, pack_u(req, i), &reply, 1000, NULL);
    if (err != 0) { printf("call: %s\n", tr_strerror(err)); return; }
    printf("total %llu\n", (unsigned long long)tr_msg_obj(reply)->via.u64);
    tr_msg_free(reply);
  }
  tr_exit_pid(NULL, srv, TR_REASON_SHUTDOWN);
}

int main(void) {
  tr_runtime_t *rt;
  tr_runtime_new(&rt, NULL);
  tr_spawn(rt, counter, NULL, NULL, NULL);
  tr_spawn(rt, client, NULL, NULL, NULL);
  tr_runtime_run(rt);
  return tr_runtime_free(rt);
}
