/*
 * The supervisor actor: starts its children in order, then waits for exit
 * signals (as EXIT messages: it traps exits), calls and restart timers.
 *
 * On a child's exit (OTP's do_restart): permanent restarts always,
 * transient unless the reason is normal or shutdown, temporary never (its
 * record goes). A restart first counts against the intensity — more than
 * `intensity` restarts within `period_ms` stop all children in reverse
 * order and end the supervisor with `shutdown` — then applies the strategy:
 * one_for_one restarts the child; one_for_all stops all others in reverse
 * order and starts all in order; rest_for_one does the same for the child
 * and those started after it. A failed start leaves that child restarting
 * and queues another attempt (a message to itself, or a timer under
 * backoff), which counts again: a child that cannot start exhausts the
 * intensity and escalates.
 *
 * An exit signal from the parent (or from the runtime, e.g.
 * tr_runtime_stop) stops the children and ends the supervisor with the same
 * reason; EXITs from anyone else are ignored, as in OTP.
 */
#include "sup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- state -------------------------------------------------------------- */

sup_t *tr__sup_new(const tr_sup_flags_t *f) {
  sup_t *sup = calloc(1, sizeof(*sup));
  if (sup == NULL) return NULL;
  sup->flags = *f;
  if (f->name != NULL) snprintf(sup->name, sizeof(sup->name), "%s", f->name);
  sup->flags.name = sup->name[0] ? sup->name : NULL;
  sup->self = tr_self();
  sup->rng = (uv_hrtime() ^ (sup->self * UINT64_C(0x9E3779B97F4A7C15))) | 1;
  return sup;
}

void tr__sup_box_release(sup_box_t *box) {
  if (box != NULL && --box->refs == 0) free(box);
}

void tr__sup_free(void *p) {
  sup_t *sup = p;
  sup_child_t *c, *n;
  for (c = sup->head; c != NULL; c = n) {
    n = c->next;
    free(c);
  }
  tr__sup_box_release(sup->box);
  free(sup->hash);
  free(sup->ring);
  free(sup);
}

/* ---- reports ------------------------------------------------------------ */

static tr_log_level_t report_level(tr_sup_event_kind_t kind,
                                   const tr_reason_t *r) {
  switch (kind) {
  case TR_SUP_CHILD_EXITED:
    return (r->kind == TR_REASON_NORMAL || r->kind == TR_REASON_SHUTDOWN)
               ? TR_LOG_INFO : TR_LOG_ERROR;
  case TR_SUP_START_ERROR:
  case TR_SUP_SHUTDOWN_ERROR:
  case TR_SUP_MAX_INTENSITY: return TR_LOG_ERROR;
  default: return TR_LOG_DEBUG;
  }
}

static const char *const event_names[] = {
    "child_started", "child_terminated", "child_restarted", "child_stopped",
    "start_error",   "shutdown_error",   "reached_max_restart_intensity"};

static void report_log(const tr_sup_event_t *ev) {
  char why[192] = "";
  if (ev->reason) tr_reason_format(ev->reason, why, sizeof(why));
  tr__log(tr__tls_sched, report_level(ev->kind, ev->reason),
          "supervisor %s%s%#llx: %s child=%s pid=%#llx%s%s",
          ev->sup_name, ev->sup_name[0] ? " " : "", (unsigned long long)ev->sup,
          event_names[ev->kind], ev->child_id, (unsigned long long)ev->child,
          why[0] ? " reason=" : "", why);
}

void tr__sup_report(sup_t *sup, tr_sup_event_kind_t kind,
                    const sup_child_t *c, tr_pid_t pid, const tr_reason_t *r) {
  tr_sup_event_t ev;
  ev.kind = kind;
  ev.sup = sup->self;
  ev.sup_name = sup->name;
  ev.child_id = c ? c->spec.id : "";
  ev.child = pid;
  ev.reason = r;
  ev.restarts = c ? c->restarts : 0;
  if (sup->flags.report) sup->flags.report(sup->flags.report_arg, &ev);
  else report_log(&ev);
}

void tr__sup_fill_info(const sup_t *sup, const sup_child_t *c,
                       tr_sup_child_info_t *info) {
  (void)sup;
  memset(info, 0, sizeof(*info));
  memcpy(info->id, c->spec.id, sizeof(info->id));
  info->pid = c->pid;
  info->state = c->state;
  info->type = c->spec.type;
  info->restart = c->spec.restart;
  info->restarts = c->restarts;
  info->failed_starts = c->failed_starts;
  info->exits = c->exits;
  info->last_exit = c->last_exit;
}

/* ---- intensity and backoff ---------------------------------------------- */

static int ring_grow(sup_t *sup) {
  size_t ncap = sup->rcap ? sup->rcap * 2 : 8;
  uint64_t *n = malloc(ncap * sizeof(*n));
  if (n == NULL) return TR_ENOMEM;
  for (size_t i = 0; i < sup->rlen; i++)
    n[i] = sup->ring[(sup->rhead + i) % sup->rcap];
  free(sup->ring);
  sup->ring = n;
  sup->rcap = ncap;
  sup->rhead = 0;
  return 0;
}

/* Records a restart now; nonzero when that makes more than `intensity`
 * restarts within the period (OTP's add_restart). Only times within the
 * period are kept, so the ring holds at most intensity + 1 entries. */
static int intensity_exceeded(sup_t *sup) {
  uint64_t now = tr__now_ms();
  while (sup->rlen > 0 && now - sup->ring[sup->rhead] > sup->flags.period_ms) {
    sup->rhead = (sup->rhead + 1) % sup->rcap;
    sup->rlen--;
  }
  if (sup->rlen == sup->rcap && ring_grow(sup) != 0) return 1;
  sup->ring[(sup->rhead + sup->rlen) % sup->rcap] = now;
  sup->rlen++;
  return sup->rlen > sup->flags.intensity;
}

static double rand01(sup_t *sup) {
  uint64_t x = sup->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  sup->rng = x;
  return (double)(x >> 11) / (double)(UINT64_C(1) << 53);
}

/* Delay before the next restart of c: 0 without backoff, else
 * min_ms * 2^n capped at max_ms, cut by up to `jitter` of itself. */
static uint64_t backoff_delay(sup_t *sup, sup_child_t *c) {
  uint64_t d;
  unsigned n = c->backoff_n < 32 ? c->backoff_n : 32;
  if (sup->flags.backoff.min_ms == 0) return 0;
  d = (uint64_t)sup->flags.backoff.min_ms << n;
  if (d > sup->flags.backoff.max_ms) d = sup->flags.backoff.max_ms;
  d -= (uint64_t)((double)d * sup->flags.backoff.jitter * rand01(sup));
  c->backoff_n++;
  return d > 0 ? d : 1;
}

/* ---- restarts ----------------------------------------------------------- */

_Noreturn static void shutdown_with(sup_t *sup, const tr_reason_t *r) {
  tr__sup_stop_all(sup);
  tr__sup_exit(r);
}

/* Queues another restart attempt of c: at once (through the mailbox, so
 * that other work interleaves) or after delay_ms. */
static void queue_retry(sup_t *sup, sup_child_t *c, uint64_t delay_ms) {
  void *data;
  size_t len;
  c->state = TR_CHILD_RESTARTING;
  if (tr_pack_tagged(&data, &len, SUP_TAG_RETRY, "u", c->key) != 0) abort();
  if (delay_ms > 0) tr_send_after(sup->self, delay_ms, data, len, NULL);
  else tr_send(sup->self, data, len);
  free(data);
}

static void start_failed(sup_t *sup, sup_child_t *c, const tr_reason_t *why) {
  c->failed_starts++;
  tr__sup_report(sup, TR_SUP_START_ERROR, c, TR_PID_NONE, why);
  queue_retry(sup, c, backoff_delay(sup, c));
}

/* Starts every stopped child from c to the end (or just c); the first
 * failure leaves the rest stopped and queues a retry of the one that
 * failed. Returns 0 if all started. */
static int start_run(sup_t *sup, sup_child_t *c, int only_c) {
  tr_reason_t why;
  for (sup_child_t *next; c != NULL; c = only_c ? NULL : next) {
    int rc;
    next = c->next;
    if (c->pid != TR_PID_NONE) continue;
    rc = tr__sup_child_start(sup, c, &why);
    if (rc == TR_ESTART) {
      start_failed(sup, c, &why);
      return rc;
    }
    c->restarts++;
    if (rc == TR_INIT_OK)
      tr__sup_report(sup, TR_SUP_CHILD_RESTARTED, c, c->pid, NULL);
    else if (sup->flags.strategy == TR_SIMPLE_ONE_FOR_ONE)
      tr__sup_child_del(sup, c); /* ignored: a dynamic child is not kept */
    else
      c->state = TR_CHILD_STOPPED;
  }
  return 0;
}

/* OTP's restart(Strategy, Child): c is dead and due for a restart. */
static void restart_now(sup_t *sup, sup_child_t *c) {
  tr_reason_t r;
  if (intensity_exceeded(sup)) {
    tr__sup_report(sup, TR_SUP_MAX_INTENSITY, NULL, TR_PID_NONE, NULL);
    tr__reason_set(&r, TR_REASON_SHUTDOWN);
    snprintf(r.text, sizeof(r.text), "reached_max_restart_intensity");
    shutdown_with(sup, &r);
  }
  sup->restarts++;
  switch (sup->flags.strategy) {
  case TR_ONE_FOR_ALL:
    tr__sup_stop_from(sup, sup->head, 1);
    start_run(sup, sup->head, 0);
    break;
  case TR_REST_FOR_ONE:
    tr__sup_stop_from(sup, c, 1);
    start_run(sup, c, 0);
    break;
  default:
    start_run(sup, c, 1);
    break;
  }
}

static int wants_restart(tr_restart_t restart, tr_reason_kind_t why) {
  if (restart == TR_PERMANENT) return 1;
  if (restart == TR_TEMPORARY) return 0;
  return why != TR_REASON_NORMAL && why != TR_REASON_SHUTDOWN;
}

/* A child exited on its own with reason r. */
static void child_exited(sup_t *sup, sup_child_t *c, const tr_reason_t *r) {
  tr_pid_t old = c->pid;
  uint64_t delay;
  tr__sup_hash_del(sup, c);
  c->pid = TR_PID_NONE;
  c->exits++;
  c->last_exit = *r;
  tr__sup_report(sup, TR_SUP_CHILD_EXITED, c, old, r);
  if (!wants_restart(c->spec.restart, r->kind)) {
    if (c->spec.restart == TR_TEMPORARY ||
        sup->flags.strategy == TR_SIMPLE_ONE_FOR_ONE)
      tr__sup_child_del(sup, c);
    else
      c->state = TR_CHILD_STOPPED;
    return;
  }
  c->state = TR_CHILD_RESTARTING;
  if (tr__now_ms() - c->started_ms >= sup->flags.period_ms) c->backoff_n = 0;
  if ((delay = backoff_delay(sup, c)) == 0) {
    restart_now(sup, c);
    return;
  }
  /* Backing off: the group goes down now, and comes back with c. */
  if (sup->flags.strategy == TR_ONE_FOR_ALL) tr__sup_stop_from(sup, sup->head, 1);
  if (sup->flags.strategy == TR_REST_FOR_ONE) tr__sup_stop_from(sup, c, 1);
  c->state = TR_CHILD_RESTARTING;
  queue_retry(sup, c, delay);
}

/* ---- messages ----------------------------------------------------------- */

static void on_exit_msg(sup_t *sup, tr_msg_t *m) {
  tr_pid_t from = tr_msg_from(m);
  tr_reason_t r;
  sup_child_t *c;
  tr_msg_reason(m, &r);
  if (from == sup->parent || from == TR_PID_NONE) shutdown_with(sup, &r);
  if ((c = tr__sup_by_pid(sup, from)) != NULL) child_exited(sup, c, &r);
  /* anyone else: ignored, as OTP does */
}

static void on_retry(sup_t *sup, tr_msg_t *m) {
  const msgpack_object *o;
  sup_child_t *c;
  /* our own retries: a message from ourselves, or a timer (no sender) */
  if (tr_msg_kind(m) == TR_MSG_USER && tr_msg_from(m) != sup->self) return;
  if (!tr_msg_is_tag(m, SUP_TAG_RETRY)) return;
  o = tr_msg_obj(m);
  if (o == NULL || o->via.array.size != 2 ||
      o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return;
  c = tr__sup_by_key(sup, o->via.array.ptr[1].via.u64);
  if (c == NULL || c->state != TR_CHILD_RESTARTING) return;
  /* A retry at once waits for one round of everything else that can run
   * (what made the start fail, e.g. an old child still holding a name,
   * must get a turn), as OTP's try_again_restart does. Our own message
   * alone would not: the child we spawn and its exit run ahead of older
   * runnable actors (doc/design.md, "Run-queue order"). */
  if (tr_msg_kind(m) == TR_MSG_USER) tr_yield();
  if (c->state == TR_CHILD_RESTARTING) restart_now(sup, c);
}

_Noreturn static void serve(sup_t *sup) {
  for (;;) {
    tr_msg_t *m;
    if (tr_recv(&m, -1) != 0) continue;
    switch (tr_msg_kind(m)) {
    case TR_MSG_EXIT: on_exit_msg(sup, m); break;
    case TR_MSG_CALL: tr__sup_handle_call(sup, m); break;
    case TR_MSG_USER:
    case TR_MSG_TIMER: on_retry(sup, m); break;
    default: break; /* stray DOWN: nothing to do */
    }
    tr_msg_free(m);
  }
}

/* ---- init --------------------------------------------------------------- */

static int register_name(sup_t *sup, tr_sup_error_t *err) {
  tr_pid_t who;
  int rc;
  if (sup->flags.name == NULL) return 0;
  if (tr_whereis(sup->name, &who) == 0 && who == sup->self) return 0;
  if ((rc = tr_register(sup->name, sup->self)) != 0)
    tr__sup_error(err, NULL, -1, NULL, "cannot register supervisor as \"%s\": %s",
                  sup->name, tr_strerror(rc));
  return rc;
}

/* Starts the static children in order; on a failure stops those started,
 * in reverse order. */
static int start_children(sup_t *sup, tr_child_spec_t *specs, size_t n,
                          tr_sup_error_t *err) {
  tr_reason_t why;
  char line[TR_REASON_TEXT_MAX + 64];
  for (size_t i = 0; i < n; i++) {
    sup_child_t *c = tr__sup_child_add(sup, &specs[i], specs[i].arg);
    int rc = c ? tr__sup_child_start(sup, c, &why) : TR_ENOMEM;
    if (rc == TR_INIT_OK) {
      tr__sup_report(sup, TR_SUP_CHILD_STARTED, c, c->pid, NULL);
      continue;
    }
    if (rc == TR_INIT_IGNORE) {
      if (c->spec.restart == TR_TEMPORARY) tr__sup_child_del(sup, c);
      continue;
    }
    if (c == NULL) tr__reason_set(&why, TR_REASON_ERROR);
    else tr__sup_report(sup, TR_SUP_START_ERROR, c, TR_PID_NONE, &why);
    tr_reason_format(&why, line, sizeof(line));
    tr__sup_error(err, specs[i].id, -1, &why,
                  "failed_to_start_child \"%s\": %s", specs[i].id, line);
    tr__sup_stop_from(sup, sup->head, 0);
    return TR_ESTART;
  }
  return 0;
}

static void box_done(sup_t *sup, int rc, const tr_sup_error_t *err) {
  if (sup->box == NULL) return;
  sup->box->err = rc;
  if (err) sup->box->detail = *err;
  sup->box->done = 1;
  tr__sup_box_release(sup->box);
  sup->box = NULL;
}

/* Init failed: tell whoever waits and end with shutdown (a failed child
 * start, as OTP's {shutdown, {failed_to_start_child, Id, Reason}}) or
 * error (bad arguments, name taken). */
_Noreturn static void init_failed(sup_t *sup, int rc, const tr_sup_error_t *err) {
  tr_reason_t r;
  if (sup->ack_to != TR_PID_NONE) tr__sup_send_ack(sup->ack_to, rc, err);
  box_done(sup, rc, err);
  tr__reason_set(&r, rc == TR_ESTART ? TR_REASON_SHUTDOWN : TR_REASON_ERROR);
  r.code = rc;
  snprintf(r.text, sizeof(r.text), "%.*s", (int)sizeof(r.text) - 1, err->message);
  tr__sup_exit(&r);
}

_Noreturn void tr__sup_run(sup_t *sup, tr_child_spec_t *specs, size_t n) {
  tr_sup_error_t err;
  int rc;
  memset(&err, 0, sizeof(err));
  tr_trap_exit(1);
  if (sup->flags.strategy == TR_SIMPLE_ONE_FOR_ONE) sup->tmpl = specs[0];
  rc = register_name(sup, &err);
  if (rc == 0 && sup->flags.strategy != TR_SIMPLE_ONE_FOR_ONE)
    rc = start_children(sup, specs, n, &err);
  free(specs);
  if (rc != 0) init_failed(sup, rc, &err);
  if (sup->ack_to != TR_PID_NONE) tr__sup_send_ack(sup->ack_to, TR_INIT_OK, NULL);
  box_done(sup, 0, NULL);
  serve(sup);
}
