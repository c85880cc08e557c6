/*
 * hello_actors: a small tour of troupe. A coordinator spawns workers that
 * square numbers, talks to them with tagged messages and call/reply,
 * monitors one that crashes on a NULL dereference, and carries on.
 */
#include <stdio.h>
#include <stdlib.h>

#include <troupe.h>

static void squarer(void *arg) {
  (void)arg;
  for (;;) {
    tr_msg_t *m;
    if (tr_recv(&m, -1) != 0) return;
    const msgpack_object *o = tr_msg_obj(m);
    if (tr_msg_is_tag(m, "stop")) {
      tr_msg_free(m);
      return;
    }
    if (tr_msg_kind(m) == TR_MSG_CALL && o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
      char buf[16];
      msgpack_sbuffer sb;
      msgpack_packer pk;
      uint64_t n = o->via.u64;
      msgpack_sbuffer_init(&sb);
      msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
      msgpack_pack_uint64(&pk, n * n);
      tr_reply(m, sb.data, sb.size);
      msgpack_sbuffer_destroy(&sb);
      (void)buf;
    } else if (tr_msg_is_tag(m, "square") && o->via.array.size == 3) {
      tr_pid_t to;
      int64_t n = o->via.array.ptr[2].via.i64;
      tr_obj_pid(&o->via.array.ptr[1], &to);
      tr_send_tagged(to, "squared", "ii", n, n * n);
    }
    tr_msg_free(m);
  }
}

static void crasher(void *arg) {
  volatile int *p = arg; /* NULL */
  printf("  crasher: about to dereference NULL\n");
  *p = 42;
}

static void coordinator(void *arg) {
  tr_pid_t w[3], bad;
  tr_ref_t ref;
  tr_msg_t *m;
  (void)arg;
  for (int i = 0; i < 3; i++) tr_spawn_link(squarer, NULL, &w[i]);
  printf("coordinator %#llx started 3 workers\n", (unsigned long long)tr_self());

  for (int i = 0; i < 3; i++) tr_send_tagged(w[i], "square", "pi", tr_self(), (int64_t)(i + 2));
  for (int i = 0; i < 3; i++) {
    tr_recv_tag(&m, "squared", -1);
    const msgpack_object *o = tr_msg_obj(m);
    printf("  squared %lld -> %lld (from %#llx)\n", (long long)o->via.array.ptr[1].via.i64,
           (long long)o->via.array.ptr[2].via.i64, (unsigned long long)tr_msg_from(m));
    tr_msg_free(m);
  }

  unsigned char req = 12; /* msgpack positive fixint 12 */
  if (tr_call(w[0], &req, 1, &m, 1000, NULL) == 0) {
    printf("  call: 12 squared is %llu\n", (unsigned long long)tr_msg_obj(m)->via.u64);
    tr_msg_free(m);
  }

  tr_spawn_monitor(crasher, NULL, &bad, &ref);
  tr_recv(&m, -1);
  if (tr_msg_kind(m) == TR_MSG_DOWN) {
    tr_reason_t r;
    char line[160];
    tr_msg_reason(m, &r);
    tr_reason_format(&r, line, sizeof(line));
    printf("  DOWN from %#llx: %s\n  the process lives on.\n", (unsigned long long)tr_msg_from(m), line);
  }
  tr_msg_free(m);
  for (int i = 0; i < 3; i++) tr_send_tagged(w[i], "stop", NULL);
}

int main(void) {
  tr_runtime_t *rt;
  int err = tr_runtime_new(&rt, NULL);
  if (err == 0) err = tr_spawn(rt, coordinator, NULL, NULL, NULL);
  if (err == 0) err = tr_runtime_run(rt);
  tr_runtime_free(rt);
  if (err != 0) {
    fprintf(stderr, "hello_actors: %s\n", tr_strerror(err));
    return 1;
  }
  printf("all actors exited\n");
  return 0;
}
