/*
 * libFuzzer harness: call/reply envelopes.
 *
 * A caller makes tr_calls (request bodies and timeouts from the input) to
 * a server whose behaviour the input picks (reply with a fuzzed body,
 * reply twice, never reply, exit instead); meanwhile an injector delivers
 * forged envelopes — CALL, REPLY, USER, TIMER and EXIT messages with fuzzed
 * bodies, senders and refs, including refs close to the ones the runtime is
 * about to hand out — straight into both mailboxes (tr__deliver), between
 * yields. Checked:
 *  - tr_call returns the validator's verdict for a bad request, else 0 (a
 *    REPLY), TR_EDOWN or TR_ETIMEDOUT, and nothing else;
 *  - tr_reply returns the validator's verdict, and 0 for a CALL whose
 *    caller is gone or forged;
 *  - no REPLY is ever left stranded in a mailbox (every queued message is
 *    one tr_recv can return), and tr_recv never returns a REPLY;
 *  - nothing leaks and nothing crashes (ASan, UBSan).
 * Forged DOWN messages are left out on purpose: a DOWN carrying the ref of
 * a call's own monitor cannot be made through the API.
 */
#include "fuzz_util.h"
#include "internal.h"

static tr_runtime_t *g_rt;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  tr_config_t cfg = fz_config();
  (void)argc;
  (void)argv;
  return tr_runtime_new(&g_rt, &cfg) == 0 ? 0 : 1;
}

typedef struct {
  fz_t f;              /* the rest of the input: bodies and the script */
  int server_mode;     /* 0 reply, 1 reply twice, 2 never, 3 exit */
  tr_pid_t server, caller, injector;
  int calls_done;
} world_t;

static const uint8_t NIL = 0xc0;

/* A body from the input: valid or not (len 0 means NULL). */
static const uint8_t *body(fz_t *f, size_t *len) {
  const uint8_t *p = fz_slice(f, 64, len);
  return *len ? p : NULL;
}

/* Counts what tr_recv can take now and checks the mailbox holds nothing
 * else (no stranded REPLY). Frees what it takes. */
static void drain_visible(void) {
  size_t queued = tr_mailbox_len(), seen = 0;
  tr_msg_t *m;
  while (tr_recv(&m, 0) == 0) {
    CHECK(tr_msg_kind(m) != TR_MSG_REPLY);
    CHECK(tr_msg_obj(m) != NULL);
    tr_msg_free(m);
    seen++;
  }
  CHECK(seen == queued);
  CHECK(tr_mailbox_len() == 0);
}

/* ---- the server ------------------------------------------------------------ */

static void server(void *arg) {
  world_t *w = arg;
  tr_msg_t *m;
  while (tr_recv(&m, -1) == 0) {
    if (tr_msg_kind(m) == TR_MSG_CALL) {
      size_t len;
      const uint8_t *b = body(&w->f, &len);
      int v = tr_msgpack_validate(b, len), rc;
      if (w->server_mode == 3) tr_exit_error(1, "server gives up");
      if (w->server_mode != 2) {
        rc = tr_reply(m, b, len);
        CHECK(rc == v);
        if (rc != 0) CHECK(tr_reply(m, &NIL, 1) == 0);
        if (w->server_mode == 1) CHECK(tr_reply(m, &NIL, 1) == 0);
      }
    }
    if (tr_msg_is_tag(m, "stop")) {
      tr_msg_free(m);
      return;
    }
    tr_msg_free(m);
  }
}

/* ---- the caller ------------------------------------------------------------ */

static const int timeouts[] = {0, 1, 2, 5};

static void caller(void *arg) {
  world_t *w = arg;
  int n = 1 + fz_u8(&w->f) % 4;
  for (int i = 0; i < n; i++) {
    size_t len;
    const uint8_t *req = body(&w->f, &len);
    int v = tr_msgpack_validate(req, len);
    tr_msg_t *reply = (tr_msg_t *)&w; /* must be overwritten */
    tr_reason_t why;
    int rc = tr_call(w->server, req, len, &reply,
                     timeouts[fz_u8(&w->f) % 4], &why);
    if (v != 0) {
      CHECK(rc == v);
    } else {
      CHECK_RC(rc, 0, TR_EDOWN, TR_ETIMEDOUT);
    }
    if (rc == 0) {
      CHECK(reply != NULL && tr_msg_kind(reply) == TR_MSG_REPLY);
      CHECK(tr_msg_obj(reply) != NULL);
      tr_msg_free(reply);
    } else {
      CHECK(reply == NULL);
    }
    drain_visible();
  }
  w->calls_done = 1;
}

/* ---- the injector ---------------------------------------------------------- */

/* A sender: one of the three actors, none, or a made-up pid. */
static tr_pid_t pick_pid(world_t *w, uint8_t b, fz_t *f) {
  switch (b % 5) {
  case 0: return w->server;
  case 1: return w->caller;
  case 2: return w->injector;
  case 3: return TR_PID_NONE;
  default: return fz_u64(f);
  }
}

/* A ref: zero, made up, or near the next refs the runtime will make. */
static tr_ref_t pick_ref(uint8_t b, fz_t *f) {
  tr__sched_t *s = tr__tls_sched;
  switch (b % 4) {
  case 0: return 0;
  case 1: return fz_u64(f);
  default: {
    int delta = (int)(fz_u8(f) % 8) - 2;
    return TR__REF_COUNTER_BIT | ((uint64_t)s->id << 48) |
           (uint64_t)((int64_t)s->next_ref + delta);
  }
  }
}

static const tr_msg_kind_t forged_kinds[] = {TR_MSG_USER, TR_MSG_CALL,
                                             TR_MSG_REPLY, TR_MSG_TIMER,
                                             TR_MSG_EXIT};

static void forge(world_t *w, tr_pid_t to) {
  fz_t *f = &w->f;
  uint8_t k = fz_u8(f), who = fz_u8(f), rk = fz_u8(f);
  tr_msg_kind_t kind = forged_kinds[k % 5];
  size_t len;
  const uint8_t *b = body(f, &len);
  tr__actor_t *a = tr__lookup(tr__tls_sched, to);
  tr_msg_t *m;
  if (a == NULL) return;
  if (b == NULL || tr_msgpack_validate(b, len) != 0) { /* only valid bodies */
    b = &NIL;
    len = 1;
  }
  m = tr__msg_new(kind, b, len, kind == TR_MSG_EXIT);
  CHECK(m != NULL);
  m->from = pick_pid(w, who, f);
  m->ref = kind == TR_MSG_EXIT ? 0 : pick_ref(rk, f);
  if (kind == TR_MSG_EXIT) {
    memset(m->reason, 0, sizeof(*m->reason));
    m->reason->kind = (tr_reason_kind_t)(rk % TR_REASON__COUNT);
  }
  tr__deliver(a, m);
}

static void injector(void *arg) {
  world_t *w = arg;
  fz_t *f = &w->f;
  for (int k = 0; k < 64 && f->n > 0 && !w->calls_done; k++) {
    switch (fz_u8(f) % 6) {
    case 0: forge(w, w->caller); break;
    case 1: forge(w, w->server); break;
    case 2: tr_yield(); break;
    case 3: tr_sleep(1); break;
    case 4: if ((fz_u8(f) & 7) == 0) tr_exit_pid(NULL, w->server, TR_REASON_KILL); break;
    default: tr_send_tagged(w->server, "x", "i", (int64_t)k); break;
    }
    tr_yield();
  }
  while (!w->calls_done && tr_is_alive(w->caller)) tr_sleep(1);
  tr_send_tagged(w->server, "stop", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static world_t w;
  memset(&w, 0, sizeof(w));
  w.f.p = data;
  w.f.n = size;
  w.server_mode = fz_u8(&w.f) % 4;
  CHECK(tr_spawn(g_rt, server, &w, NULL, &w.server) == 0);
  CHECK(tr_spawn(g_rt, caller, &w, NULL, &w.caller) == 0);
  CHECK(tr_spawn(g_rt, injector, &w, NULL, &w.injector) == 0);
  CHECK(tr_runtime_run(g_rt) == 0);
  CHECK(tr_runtime_actor_count(g_rt) == 0);
  return 0;
}
