/*
 * libFuzzer harness: message bodies from outside, through the runtime's
 * mailbox and its matchers.
 *
 * Each input is a list of message bodies and a script of receive
 * operations. The bodies are sent with tr_runtime_send (whose verdict must
 * equal tr_msgpack_validate's: only well-formed values get in); an actor
 * then runs the script — tr_recv, tr_recv_tag with fuzzed tags,
 * tr_recv_match with predicates that decode the body (tr_msg_obj) —
 * and every message it receives must be exactly the one a reference model
 * of the queue predicts: the first queued message the matcher accepts,
 * with the others left in arrival order. Received bodies are re-sent with
 * tr_send_obj (the non-recursive packer) and must come back equal. The
 * tag test (tr_msg_is_tag) is compared with the decoded form.
 */
#include "fuzz_util.h"
#include "../mailbox/codec.h"

#define MAXMSG 32
#define MAXOPS 48

typedef struct {
  uint8_t *data;
  size_t len;
} body_t;

typedef struct {
  body_t q[MAXMSG * 2]; /* the model of the queue, oldest first */
  int n;
  fz_t script;
} model_t;

static tr_runtime_t *g_rt;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  tr_config_t cfg = fz_config();
  (void)argc;
  (void)argv;
  return tr_runtime_new(&g_rt, &cfg) == 0 ? 0 : 1;
}

/* ---- the reference matchers (on a decoded copy) --------------------------- */

static int ref_is_tag(const body_t *b, const char *tag, size_t tn) {
  msgpack_zone *z = NULL;
  msgpack_object o;
  int r;
  if (tr__codec_decode(b->data, b->len, &z, &o) != 0) return 0;
  r = o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size > 0 &&
      o.via.array.ptr[0].type == MSGPACK_OBJECT_STR &&
      o.via.array.ptr[0].via.str.size == tn &&
      (tn == 0 || memcmp(o.via.array.ptr[0].via.str.ptr, tag, tn) == 0);
  msgpack_zone_free(z);
  return r;
}

typedef struct {
  int what; /* 0: type is t; 1: array of size t; 2: map of size t */
  unsigned t;
} pred_t;

static int pred_obj(const msgpack_object *o, const pred_t *p) {
  if (o == NULL) return 0;
  switch (p->what) {
  case 0: return (unsigned)o->type == p->t % 10;
  case 1: return o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == p->t;
  default: return o->type == MSGPACK_OBJECT_MAP && o->via.map.size == p->t;
  }
}

static int ref_pred(const body_t *b, const pred_t *p) {
  msgpack_zone *z = NULL;
  msgpack_object o;
  int r;
  if (tr__codec_decode(b->data, b->len, &z, &o) != 0) return 0;
  r = pred_obj(&o, p);
  msgpack_zone_free(z);
  return r;
}

static int match_pred(const tr_msg_t *m, void *arg) {
  return pred_obj(tr_msg_obj(m), arg);
}

/* ---- the model ------------------------------------------------------------ */

static void model_push(model_t *md, const void *data, size_t len) {
  CHECK(md->n < MAXMSG * 2);
  md->q[md->n].data = malloc(len);
  CHECK(md->q[md->n].data != NULL);
  memcpy(md->q[md->n].data, data, len);
  md->q[md->n].len = len;
  md->n++;
}

/* Checks that m is model entry i and removes that entry. */
static void model_take(model_t *md, int i, tr_msg_t *m) {
  size_t len;
  const void *d = tr_msg_data(m, &len);
  CHECK(i >= 0 && i < md->n);
  CHECK(len == md->q[i].len && memcmp(d, md->q[i].data, len) == 0);
  free(md->q[i].data);
  memmove(&md->q[i], &md->q[i + 1], (size_t)(md->n - i - 1) * sizeof(md->q[0]));
  md->n--;
}

static void model_clear(model_t *md) {
  for (int i = 0; i < md->n; i++) free(md->q[i].data);
  md->n = 0;
}

/* ---- the operations ------------------------------------------------------- */

static void check_is_tag(tr_msg_t *m, fz_t *f) {
  char tag[24];
  size_t len;
  const void *d = tr_msg_data(m, &len);
  body_t b = {(uint8_t *)(uintptr_t)d, len};
  fz_str(f, tag, sizeof(tag));
  CHECK(!!tr_msg_is_tag(m, tag) == ref_is_tag(&b, tag, strlen(tag)));
}

/* Re-sends m's decoded body to ourselves; the model gets what the packer
 * must produce. */
static void resend(model_t *md, tr_msg_t *m) {
  const msgpack_object *o = tr_msg_obj(m);
  msgpack_sbuffer sb;
  CHECK(o != NULL);
  msgpack_sbuffer_init(&sb);
  CHECK(tr__codec_pack_object(&sb, o) == 0);
  CHECK(tr_msgpack_validate(sb.data, sb.size) == 0);
  CHECK(tr_send_obj(tr_self(), o) == 0);
  model_push(md, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

static void op_recv_tag(model_t *md, fz_t *f) {
  char tag[24];
  tr_msg_t *m;
  int want = -1, rc;
  fz_str(f, tag, sizeof(tag));
  for (int i = 0; i < md->n && want < 0; i++)
    if (ref_is_tag(&md->q[i], tag, strlen(tag))) want = i;
  rc = tr_recv_tag(&m, tag, 0);
  if (want < 0) {
    CHECK(rc == TR_ETIMEDOUT && m == NULL);
    return;
  }
  CHECK(rc == 0);
  CHECK(tr_msg_is_tag(m, tag));
  model_take(md, want, m);
  if (fz_u8(f) & 1) resend(md, m);
  tr_msg_free(m);
}

static void op_recv_match(model_t *md, fz_t *f) {
  pred_t p;
  tr_msg_t *m;
  int want = -1, rc;
  p.what = fz_u8(f) % 3;
  p.t = fz_u8(f) % 16;
  for (int i = 0; i < md->n && want < 0; i++)
    if (ref_pred(&md->q[i], &p)) want = i;
  rc = tr_recv_match(&m, match_pred, &p, 0);
  if (want < 0) {
    CHECK(rc == TR_ETIMEDOUT);
    return;
  }
  CHECK(rc == 0);
  model_take(md, want, m);
  check_is_tag(m, f);
  if (fz_u8(f) & 1) resend(md, m);
  tr_msg_free(m);
}

static void op_recv(model_t *md, fz_t *f) {
  tr_msg_t *m;
  int rc = tr_recv(&m, 0);
  if (md->n == 0) {
    CHECK(rc == TR_ETIMEDOUT);
    return;
  }
  CHECK(rc == 0);
  CHECK(tr_msg_kind(m) == TR_MSG_USER);
  model_take(md, 0, m);
  check_is_tag(m, f);
  if (fz_u8(f) & 1) resend(md, m);
  tr_msg_free(m);
}

static void receiver(void *arg) {
  model_t *md = arg;
  fz_t *f = &md->script;
  tr_msg_t *m;
  for (int k = 0; k < MAXOPS && f->n > 0; k++) {
    switch (fz_u8(f) % 3) {
    case 0: op_recv_tag(md, f); break;
    case 1: op_recv_match(md, f); break;
    default: op_recv(md, f); break;
    }
    CHECK(tr_mailbox_len() == (size_t)md->n);
  }
  while (tr_recv(&m, 0) == 0) { /* the rest, in arrival order */
    model_take(md, 0, m);
    tr_msg_free(m);
  }
  CHECK(md->n == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static model_t md;
  fz_t f = {data, size};
  tr_pid_t pid;
  int nmsg = fz_u8(&f) % MAXMSG;
  CHECK(tr_spawn(g_rt, receiver, &md, NULL, &pid) == 0);
  for (int i = 0; i < nmsg; i++) {
    size_t len;
    const uint8_t *body = fz_slice(&f, 300, &len);
    int v = tr_msgpack_validate(len ? body : NULL, len);
    int rc = tr_runtime_send(g_rt, pid, len ? body : NULL, len);
    CHECK(rc == v);
    if (rc == 0) model_push(&md, body, len);
  }
  md.script = f;
  CHECK(tr_runtime_run(g_rt) == 0);
  model_clear(&md);
  return 0;
}
