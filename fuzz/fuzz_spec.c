/*
 * libFuzzer harness: supervisor flags and child-spec validation.
 *
 * tr_sup_flags_t and an array of tr_child_spec_t are filled from the input
 * (every field, `size` included, so that versioned copies and strides are
 * exercised; pointer fields are set by the harness: a name string from the
 * input or NULL, `start` one of the harness's functions or NULL). The
 * validator (tr__sup_check_all, the one every start path uses) must answer
 * 0 or TR_EINVAL with a message, and what it accepts must satisfy every
 * rule of troupe.h. Accepted trees with a few children are then really
 * started (tr_sup_start_link) and stopped: the start must end in 0 or
 * TR_ESTART, the stop must leave no actor behind, whatever strategy,
 * intensity, period, backoff, shutdown and child behaviour the input chose.
 * tr_child_spec_init is fed fuzzed ids as well.
 */
#include <math.h>

#include "fuzz_util.h"
#include "../supervisor/sup.h"

static tr_runtime_t *g_rt;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  tr_config_t cfg = fz_config();
  (void)argc;
  (void)argv;
  return tr_runtime_new(&g_rt, &cfg) == 0 ? 0 : 1;
}

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
    tr_msg_free(m);
    if (how == 4) return;
  }
}

static void report(void *arg, const tr_sup_event_t *ev) {
  (void)arg;
  CHECK(ev->child_id != NULL && ev->sup_name != NULL);
  CHECK((unsigned)ev->kind <= TR_SUP_MAX_INTENSITY);
}

/* ---- what the validator must guarantee ------------------------------------ */

static void check_flags(const tr_sup_flags_t *f) {
  CHECK(f->size == sizeof(*f));
  CHECK((unsigned)f->strategy <= TR_SIMPLE_ONE_FOR_ONE);
  CHECK(f->period_ms > 0);
  CHECK(f->backoff.min_ms == 0 || f->backoff.max_ms >= f->backoff.min_ms);
  CHECK(f->backoff.jitter >= 0.0 && f->backoff.jitter <= 1.0);
  CHECK(f->name == NULL ||
        (f->name[0] != '\0' && strnlen(f->name, TR_NAME_MAX) < TR_NAME_MAX));
}

static void check_spec(const tr_child_spec_t *s) {
  CHECK(s->size == sizeof(*s));
  CHECK(memchr(s->id, 0, sizeof(s->id)) != NULL && s->id[0] != '\0');
  CHECK(s->start != NULL);
  CHECK((unsigned)s->restart <= TR_TEMPORARY);
  CHECK((unsigned)s->type <= TR_SUPERVISOR);
  CHECK(s->shutdown > 0 || s->shutdown == TR_SHUTDOWN_BRUTAL_KILL ||
        s->shutdown == TR_SHUTDOWN_INFINITY); /* DEFAULT resolved */
  CHECK(s->stack_size == 0 ||
        (s->stack_size >= TR_STACK_SIZE_MIN && s->stack_size <= TR_STACK_SIZE_MAX));
  CHECK((s->flags & ~(unsigned)TR_CHILD_NO_ACK) == 0);
}

/* ---- input -> flags and specs ------------------------------------------------ */

static size_t pick_size(fz_t *f, size_t real) {
  switch (fz_u8(f) % 8) {
  case 0: return 0;
  case 1: return fz_u16(f);
  case 2: return real - 8;
  default: return real;
  }
}

#define MAXN 5

typedef struct {
  tr_sup_flags_t flags;
  char name[TR_NAME_MAX + 16];
  tr_child_spec_t specs[MAXN];
  size_t n;
  int start;
} input_t;

static void read_input(fz_t *f, input_t *in) {
  fz_take(f, &in->flags, sizeof(in->flags));
  in->flags.size = pick_size(f, sizeof(in->flags));
  in->flags.name = fz_u8(f) & 1 ? fz_str(f, in->name, sizeof(in->name)) : NULL;
  in->flags.report = fz_u8(f) & 1 ? report : NULL;
  in->flags.report_arg = NULL;
  if (fz_u8(f) & 1) { /* keep timings small when they are to run */
    in->flags.period_ms %= 5000;
    in->flags.backoff.min_ms %= 20;
    in->flags.backoff.max_ms %= 50;
  }
  in->n = fz_u8(f) % (MAXN + 1);
  for (size_t i = 0; i < in->n; i++) {
    tr_child_spec_t *s = &in->specs[i];
    fz_take(f, s, sizeof(*s));
    s->size = i == 0 ? pick_size(f, sizeof(*s)) : in->specs[0].size;
    s->start = fz_u8(f) & 7 ? worker : NULL;
    s->arg = (void *)(uintptr_t)(fz_u8(f) % 5);
    if (fz_u8(f) & 1) s->id[fz_u8(f) % 4] = '\0'; /* short ids collide */
    if (fz_u8(f) & 1) s->shutdown %= 200;
  }
  in->start = fz_u8(f) & 1;
}

/* ---- starting an accepted tree --------------------------------------------- */

static void driver(void *arg) {
  input_t *in = arg;
  tr_sup_error_t err;
  tr_pid_t sup;
  tr_msg_t *m;
  int rc;
  tr_trap_exit(1);
  rc = tr_sup_start_link(&in->flags, in->specs, in->n, &sup, &err);
  CHECK_RC(rc, 0, TR_ESTART);
  if (rc == 0) {
    tr_sup_counts_t c;
    int r2 = tr_sup_count_children(sup, &c);
    CHECK_RC(r2, 0, TR_EDOWN); /* it may have hit its intensity already */
    CHECK_RC(tr_sup_stop(sup), 0, TR_EDOWN);
  }
  while (tr_recv(&m, 0) == 0) tr_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static input_t in;
  fz_t f = {data, size};
  tr_sup_flags_t fout;
  tr_child_spec_t *copy = NULL, s;
  tr_sup_error_t err;
  char id[TR_SUP_ID_MAX + 4];
  int rc;
  memset(&in, 0, sizeof(in));
  rc = tr_child_spec_init(&s, fz_str(&f, id, sizeof(id)), worker, NULL);
  CHECK(rc == ((id[0] && strlen(id) < TR_SUP_ID_MAX) ? 0 : TR_EINVAL));
  read_input(&f, &in);
  memset(&err, 0, sizeof(err));
  rc = tr__sup_check_all(&in.flags, in.n ? in.specs : NULL, in.n, &fout, &copy, &err);
  CHECK_RC(rc, 0, TR_EINVAL);
  if (rc != 0) {
    CHECK(err.message[0] != '\0' && copy == NULL);
    return 0;
  }
  check_flags(&fout);
  CHECK((copy == NULL) == (in.n == 0));
  CHECK(fout.strategy != TR_SIMPLE_ONE_FOR_ONE || in.n == 1);
  for (size_t i = 0; i < in.n; i++) {
    check_spec(&copy[i]);
    for (size_t j = 0; j < i; j++) CHECK(strcmp(copy[i].id, copy[j].id) != 0);
  }
  free(copy);
  if (in.start && in.n <= 3) {
    CHECK(tr_spawn(g_rt, driver, &in, NULL, NULL) == 0);
    CHECK(tr_runtime_run(g_rt) == 0);
    CHECK(tr_runtime_actor_count(g_rt) == 0);
  }
  return 0;
}
