/*
 * libFuzzer harness: the supervisor's wire format (supervisor/wire.c,
 * server.c), from both ends.
 *
 * Server side: a real supervisor tree (strategy, children and their
 * behaviour from the input) receives what any actor could send it — CALLs
 * with raw fuzzed bodies, well-formed ["$sup", op, x, bin] requests with
 * fuzzed op, x and bin (a bin the size of a child spec is a fuzzed spec),
 * stray USER and TIMER messages shaped like its own retries and acks —
 * mixed with the public run-time API called with fuzzed ids, pids and
 * sizes, and children killed with fuzzed reasons. The supervisor must
 * answer every CALL with a well-formed [code, x, bin] (never hang), stay up
 * unless asked to stop or its intensity ran out, and stop cleanly at the
 * end, leaving no actor behind.
 *
 * Client side: a fake supervisor answers the public tr_sup_* calls with
 * fuzzed replies; every call must return 0 or a negative code, never copy
 * more than the caller's buffer, and never hang.
 *
 * Decoders alone: tr__sup_parse_init and tr__sup_parse_call on the input
 * when it is one msgpack value.
 *
 * A child spec carries code and argument pointers, which the runtime passes
 * through and never dereferences (as tr_spawn does fn and arg): the
 * harness sets `start` to one of its own functions or NULL, never to
 * fuzzed bytes.
 */
#include "fuzz_util.h"
#include "../supervisor/sup.h"

static tr_runtime_t *g_rt;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  tr_config_t cfg = fz_config();
  (void)argc;
  (void)argv;
  return tr_runtime_new(&g_rt, &cfg) == 0 ? 0 : 1;
}

/* ---- children ---------------------------------------------------------------- */

/* Behaviour by arg: 0 ack and serve; 1 ignore; 2 error; 3 die before the
 * ack; 4 ack, then exit at the first message. */
static void worker(void *arg) {
  uintptr_t how = (uintptr_t)arg % 5;
  tr_msg_t *m;
  switch (how) {
  case 1: tr_sup_init_ack(TR_INIT_IGNORE); return;
  case 2: tr_sup_init_ack(-7); return;
  case 3: return;
  default: tr_sup_init_ack(TR_INIT_OK); break;
  }
  while (tr_recv(&m, -1) == 0) {
    if (tr_msg_kind(m) == TR_MSG_CALL) tr_reply(m, "\xc0", 1);
    tr_msg_free(m);
    if (how == 4) return;
  }
}

/* ---- the server side ----------------------------------------------------------- */

typedef struct {
  fz_t f;
  tr_pid_t sup;
  int stopped; /* a STOP request was answered 0 */
} world_t;

/* Checks the shape of a supervisor reply: [int code <= 0, uint x, bin]. */
static void check_reply(tr_msg_t *r) {
  const msgpack_object *o = tr_msg_obj(r);
  CHECK(o != NULL && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3);
  CHECK(o->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o->via.array.ptr[0].type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
  CHECK(o->via.array.ptr[0].via.i64 <= 0);
  CHECK(o->via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER);
  CHECK(o->via.array.ptr[2].type == MSGPACK_OBJECT_BIN);
}

static int reply_code(tr_msg_t *r) {
  return (int)tr_msg_obj(r)->via.array.ptr[0].via.i64;
}

/* Sends one CALL body to the supervisor and checks the answer. */
static void call_sup(world_t *w, const void *body, size_t len, int op) {
  tr_msg_t *r = NULL;
  int rc;
  if (tr_msgpack_validate(body, len) != 0) return;
  rc = tr_call(w->sup, body, len, &r, 5000, NULL);
  CHECK_RC(rc, 0, TR_EDOWN); /* answered, or gone: never silent */
  if (rc != 0) return;
  check_reply(r);
  if (op == SUP_OP_STOP && reply_code(r) == 0) w->stopped = 1;
  tr_msg_free(r);
}

/* ["$sup", op, x, bin], with a child spec's pointers made safe. */
static void packed_call(world_t *w) {
  fz_t *f = &w->f;
  uint8_t bin[sizeof(tr_child_spec_t) + 8];
  int op = fz_u8(f) % 14;
  uint64_t x = fz_u8(f) & 1 ? fz_u64(f) : fz_u8(f);
  size_t binlen;
  void *data;
  size_t len;
  if (fz_u8(f) & 1) {
    tr_child_spec_t s;
    fz_take(f, &s, sizeof(s));
    s.start = fz_u8(f) & 3 ? worker : NULL;
    s.arg = (void *)(uintptr_t)(fz_u8(f) % 5);
    memcpy(bin, &s, sizeof(s));
    binlen = fz_u8(f) & 7 ? sizeof(s) : fz_u8(f) % sizeof(bin);
  } else {
    const uint8_t *p = fz_slice(f, sizeof(bin), &binlen);
    memcpy(bin, p, binlen);
  }
  if (tr_pack_tagged(&data, &len, SUP_TAG_CALL, "iuB", (int64_t)op, x,
                     (const void *)bin, binlen) != 0)
    return;
  call_sup(w, data, len, op);
  free(data);
}

static void stray_message(world_t *w, int timer) {
  fz_t *f = &w->f;
  static const char *const tags[] = {SUP_TAG_RETRY, SUP_TAG_ACK, SUP_TAG_INIT,
                                     SUP_TAG_CALL};
  void *data;
  size_t len;
  if (tr_pack_tagged(&data, &len, tags[fz_u8(f) % 4], "ui", fz_u64(f) % 8,
                     (int64_t)(int8_t)fz_u8(f)) != 0)
    return;
  if (timer) tr_send_after(w->sup, fz_u8(f) % 3, data, len, NULL);
  else tr_send(w->sup, data, len);
  free(data);
}

/* A running child's pid (or TR_PID_NONE). */
static tr_pid_t some_child(world_t *w, uint8_t pick) {
  tr_sup_child_info_t info[8];
  size_t n = 0;
  if (tr_sup_which_children(w->sup, info, 8, &n) != 0 || n == 0) return TR_PID_NONE;
  return info[pick % (n < 8 ? n : 8)].pid;
}

static void api_call(world_t *w) {
  fz_t *f = &w->f;
  char id[TR_SUP_ID_MAX + 8];
  tr_sup_child_info_t info[4];
  tr_sup_counts_t counts;
  tr_child_spec_t spec;
  tr_sup_error_t err;
  tr_pid_t pid;
  size_t n;
  int rc = 0;
  fz_str(f, id, sizeof(id));
  switch (fz_u8(f) % 10) {
  case 0: rc = tr_sup_which_children(w->sup, info, fz_u8(f) % 5, &n); break;
  case 1: rc = tr_sup_child_info(w->sup, id, info); break;
  case 2: rc = tr_sup_terminate_child(w->sup, id); break;
  case 3: rc = tr_sup_restart_child(w->sup, id, &pid, &err); break;
  case 4: rc = tr_sup_delete_child(w->sup, id); break;
  case 5: rc = tr_sup_count_children(w->sup, &counts); break;
  case 6: rc = tr_sup_get_childspec(w->sup, id, &spec); break;
  case 7:
    rc = tr_sup_start_child_arg(w->sup, (void *)(uintptr_t)fz_u8(f), &pid, &err);
    break;
  case 8:
    rc = tr_sup_terminate_child_pid(w->sup, fz_u8(f) & 1 ? some_child(w, fz_u8(f))
                                                          : fz_u64(f));
    break;
  default:
    if (tr_child_spec_init(&spec, id, worker, (void *)(uintptr_t)(fz_u8(f) % 5)) == 0) {
      spec.restart = (tr_restart_t)(fz_u8(f) % 3);
      spec.shutdown = fz_u8(f) & 1 ? TR_SHUTDOWN_BRUTAL_KILL : 50;
      rc = tr_sup_start_child(w->sup, &spec, &pid, &err);
    }
    break;
  }
  CHECK(rc <= 0);
  CHECK(rc != TR_ETIMEDOUT);
}

static void kill_child(world_t *w) {
  tr_pid_t c = some_child(w, fz_u8(&w->f));
  tr_reason_kind_t k = (tr_reason_kind_t)(fz_u8(&w->f) % TR_REASON__COUNT);
  if (c != TR_PID_NONE) tr_exit_pid(NULL, c, k);
}

/* Starts the tree the input describes. */
static int start_tree(world_t *w) {
  fz_t *f = &w->f;
  tr_sup_flags_t fl;
  tr_child_spec_t specs[3];
  size_t n;
  tr_sup_flags_init(&fl);
  fl.strategy = (tr_sup_strategy_t)(fz_u8(f) % 4);
  fl.intensity = fz_u8(f) % 50;
  fl.period_ms = 1 + fz_u16(f);
  n = fl.strategy == TR_SIMPLE_ONE_FOR_ONE ? 1 : fz_u8(f) % 4;
  for (size_t i = 0; i < n; i++) {
    char id[8];
    snprintf(id, sizeof(id), "c%zu", i);
    tr_child_spec_init(&specs[i], id, worker, (void *)(uintptr_t)(fz_u8(f) % 5));
    specs[i].restart = (tr_restart_t)(fz_u8(f) % 3);
    specs[i].shutdown = fz_u8(f) & 1 ? TR_SHUTDOWN_BRUTAL_KILL : 100;
    specs[i].type = (tr_child_type_t)(fz_u8(f) % 2);
  }
  return tr_sup_start_link(&fl, specs, n, &w->sup, NULL);
}

static void driver(void *arg) {
  world_t *w = arg;
  fz_t *f = &w->f;
  tr_msg_t *m;
  tr_trap_exit(1);
  if (start_tree(w) != 0) return; /* a child failed its init: fine */
  for (int k = 0; k < 32 && f->n > 0 && !w->stopped && tr_is_alive(w->sup); k++) {
    switch (fz_u8(f) % 7) {
    case 0: {
      size_t len;
      const uint8_t *b = fz_slice(f, 128, &len);
      if (len) call_sup(w, b, len, -1);
      break;
    }
    case 1: packed_call(w); break;
    case 2: stray_message(w, 0); break;
    case 3: stray_message(w, 1); break;
    case 4: api_call(w); break;
    case 5: kill_child(w); break;
    default: tr_sleep(fz_u8(f) % 2); break;
    }
  }
  if (tr_is_alive(w->sup)) CHECK_RC(tr_sup_stop(w->sup), 0, TR_EDOWN);
  while (tr_recv(&m, 0) == 0) tr_msg_free(m); /* its EXIT */
}

/* ---- the client side ------------------------------------------------------------ */

typedef struct {
  fz_t f;
  tr_pid_t fake;
} fake_t;

/* Answers every CALL with a fuzzed body (or a well-formed one with fuzzed
 * fields); exits after answering a STOP. */
static void fake_sup(void *arg) {
  fake_t *k = arg;
  tr_msg_t *m;
  while (tr_recv(&m, -1) == 0) {
    int op = 0;
    uint64_t x;
    const void *bin;
    size_t binlen;
    if (tr_msg_kind(m) == TR_MSG_CALL) {
      size_t len;
      const uint8_t *b = fz_slice(&k->f, 96, &len);
      tr__sup_parse_call(m, &op, &x, &bin, &binlen);
      if (fz_u8(&k->f) & 1 || tr_reply(m, b, len) != 0) {
        uint8_t blob[sizeof(tr_sup_child_info_t) * 2];
        size_t bl = fz_u16(&k->f) % sizeof(blob);
        fz_take(&k->f, blob, bl);
        tr__sup_reply(m, -(int)(fz_u8(&k->f) % 100), fz_u64(&k->f), blob, bl);
      }
    }
    tr_msg_free(m);
    if (op == SUP_OP_STOP) return;
  }
}

static void client(void *arg) {
  fake_t *k = arg;
  tr_sup_child_info_t info[3];
  tr_sup_counts_t counts;
  tr_child_spec_t spec;
  tr_sup_error_t err;
  tr_pid_t pid;
  size_t n = 99;
  int rc;
  /* canaries after each output buffer catch an overlong copy */
  struct {
    tr_sup_child_info_t info[2];
    uint64_t canary;
  } small = {.canary = 0x5a5a5a5a5a5a5a5aull};
  CHECK(tr_spawn_link(fake_sup, k, &k->fake) == 0);
  tr_child_spec_init(&spec, "x", worker, NULL);
  rc = tr_sup_which_children(k->fake, small.info, 2, &n);
  CHECK(rc <= 0 && small.canary == 0x5a5a5a5a5a5a5a5aull);
  CHECK(tr_sup_child_info(k->fake, "x", info) <= 0);
  CHECK(tr_sup_count_children(k->fake, &counts) <= 0);
  CHECK(tr_sup_get_childspec(k->fake, "x", &spec) <= 0);
  CHECK(tr_sup_start_child(k->fake, &spec, &pid, &err) <= 0);
  CHECK(tr_sup_start_child_arg(k->fake, NULL, &pid, &err) <= 0);
  CHECK(tr_sup_restart_child(k->fake, "x", &pid, &err) <= 0);
  CHECK(tr_sup_terminate_child(k->fake, "x") <= 0);
  CHECK(tr_sup_delete_child(k->fake, "x") <= 0);
  CHECK(tr_sup_terminate_child_pid(k->fake, pid) <= 0);
  CHECK(tr_sup_stop(k->fake) <= 0);
}

/* ---- decoders alone -------------------------------------------------------------- */

static void parse_only(const uint8_t *data, size_t size) {
  tr_msg_t *m;
  tr_sup_flags_t fl;
  char name[TR_NAME_MAX];
  tr_child_spec_t *specs = NULL;
  sup_box_t *box;
  size_t n;
  int linked, op;
  uint64_t x;
  const void *bin;
  size_t binlen;
  if (size == 0 || tr_msgpack_validate(data, size) != 0) return;
  m = tr__msg_new(TR_MSG_USER, data, size, 0);
  CHECK(m != NULL);
  if (tr__sup_parse_init(m, &fl, name, &specs, &n, &box, &linked) == 0)
    CHECK(strlen(name) < TR_NAME_MAX && (n == 0) == (specs == NULL));
  free(specs);
  if (tr__sup_parse_call(m, &op, &x, &bin, &binlen) == 0)
    CHECK(binlen <= size && (binlen == 0 || bin != NULL));
  tr_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static world_t w;
  static fake_t k;
  uint8_t mode = size ? data[0] : 0;
  parse_only(data, size);
  memset(&w, 0, sizeof(w));
  w.f.p = data + (size ? 1 : 0);
  w.f.n = size ? size - 1 : 0;
  if (mode & 1) {
    k.f = w.f;
    CHECK(tr_spawn(g_rt, client, &k, NULL, NULL) == 0);
  } else {
    CHECK(tr_spawn(g_rt, driver, &w, NULL, NULL) == 0);
  }
  CHECK(tr_runtime_run(g_rt) == 0);
  CHECK(tr_runtime_actor_count(g_rt) == 0);
  return 0;
}
