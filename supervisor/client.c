/*
 * The public supervisor API, caller side: starting supervisors (from an
 * actor, from outside any actor, or by turning the caller into one), the
 * init ack, and the run-time calls.
 *
 * A supervisor started by tr_sup_start / tr_sup_start_link runs sup_boot:
 * it gets its validated configuration as its first message (so that
 * nothing leaks if it is killed before it ever runs) and acks its init to
 * the starter, who waits for that ack or the supervisor's DOWN.
 */
#include "sup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The error of an actor-only call made outside actors. */
static int not_actor(void) {
  tr__sched_t *s = tr__tls_sched;
  return s != NULL && s->in_cleanup ? TR_ECLEANUP : TR_ENOTACTOR;
}

/* ---- init ack ----------------------------------------------------------- */

int tr_sup_init_ack(int status) {
  tr__actor_t *a = tr__current();
  tr_pid_t to;
  if (a == NULL) return not_actor();
  if (status > 0 && status != TR_INIT_IGNORE) return TR_EINVAL;
  to = a->parent;
  a->parent = TR_PID_NONE;
  if (to != TR_PID_NONE) tr__sup_send_ack(to, status, NULL);
  if (status == TR_INIT_IGNORE) tr_exit(TR_REASON_NORMAL);
  if (status < 0) tr_exit_error(status, "init failed (code %d)", status);
  return 0;
}

/* ---- the supervisor actor's entry points -------------------------------- */

/* Reports an init failure before any state exists, and ends the actor. */
_Noreturn static void early_fail(tr_pid_t ack_to, sup_box_t *box, int rc,
                                 const tr_sup_error_t *err) {
  tr_reason_t r;
  if (ack_to != TR_PID_NONE) tr__sup_send_ack(ack_to, rc, err);
  if (box != NULL) {
    box->adopted = 1;
    box->err = rc;
    box->detail = *err;
    box->done = 1;
    tr__sup_box_release(box);
  }
  tr__reason_set(&r, TR_REASON_ERROR);
  r.code = rc;
  snprintf(r.text, sizeof(r.text), "%.*s", (int)sizeof(r.text) - 1, err->message);
  tr__sup_exit(&r);
}

/* Builds the state of a supervisor running in the calling actor and hands
 * it to its cleanup. specs is taken over. */
_Noreturn static void become(const tr_sup_flags_t *f, tr_child_spec_t *specs,
                             size_t n, tr_pid_t ack_to, tr_pid_t parent,
                             sup_box_t *box) {
  tr_sup_error_t err;
  sup_t *sup = tr__sup_new(f);
  if (sup == NULL || tr_defer(tr__sup_free, sup) != 0) {
    free(sup);
    free(specs);
    tr__sup_error(&err, NULL, -1, NULL, "out of memory");
    early_fail(ack_to, box, TR_ENOMEM, &err);
  }
  sup->ack_to = ack_to;
  sup->parent = parent;
  sup->box = box;
  if (box != NULL) box->adopted = 1;
  tr__sup_run(sup, specs, n);
}

static void sup_boot(void *unused) {
  tr__actor_t *a = tr__current();
  tr_pid_t ack_to = a->parent, parent;
  tr_sup_flags_t f;
  tr_sup_error_t err;
  char name[TR_NAME_MAX];
  tr_child_spec_t *specs = NULL;
  sup_box_t *box = NULL;
  tr_msg_t *m;
  size_t n = 0;
  int linked = 0, rc;
  (void)unused;
  a->parent = TR_PID_NONE;
  rc = tr_recv_tag(&m, SUP_TAG_INIT, -1);
  if (rc == 0) {
    rc = tr__sup_parse_init(m, &f, name, &specs, &n, &box, &linked);
    tr_msg_free(m);
  }
  if (rc != 0) {
    tr__sup_error(&err, NULL, -1, NULL, "bad init message: %s", tr_strerror(rc));
    early_fail(ack_to, box, rc, &err);
  }
  f.name = name[0] ? name : NULL;
  /* OTP: start_link makes the caller the parent; start makes it itself. */
  parent = linked ? ack_to : (ack_to != TR_PID_NONE ? tr_self() : TR_PID_NONE);
  become(&f, specs, n, ack_to, parent, box);
}

int tr_sup_enter(const tr_sup_flags_t *flags, const tr_child_spec_t *specs,
                 size_t n) {
  tr__actor_t *a = tr__current();
  tr_sup_flags_t f;
  tr_sup_error_t err;
  tr_child_spec_t *copy;
  tr_pid_t ack_to;
  int rc;
  if (a == NULL) return not_actor();
  ack_to = a->parent;
  a->parent = TR_PID_NONE;
  if ((rc = tr__sup_check_all(flags, specs, n, &f, &copy, &err)) != 0)
    early_fail(ack_to, NULL, rc, &err);
  become(&f, copy, n, ack_to, ack_to, NULL);
}

void tr_sup_main(void *def) {
  const tr_sup_def_t *d = def;
  tr_sup_error_t err;
  if (d == NULL) {
    tr_pid_t to = tr__current() ? tr__current()->parent : TR_PID_NONE;
    tr__sup_error(&err, NULL, -1, NULL, "tr_sup_main: no tr_sup_def_t");
    if (to != TR_PID_NONE) early_fail(to, NULL, TR_EINVAL, &err);
    return;
  }
  tr_sup_enter(d->flags, d->specs, d->n);
}

/* ---- starting from an actor --------------------------------------------- */

/* Fills *err for a start that failed without a detailed ack. */
static void start_error(tr_sup_error_t *err, const tr_sup_error_t *detail,
                        const tr_reason_t *why) {
  char line[TR_REASON_TEXT_MAX + 64];
  if (err == NULL) return;
  if (detail->message[0] != '\0') {
    *err = *detail;
    return;
  }
  tr_reason_format(why, line, sizeof(line));
  tr__sup_error(err, NULL, -1, why, "supervisor exited during init: %s", line);
}

static int start_in_actor(const tr_sup_flags_t *flags,
                          const tr_child_spec_t *specs, size_t n, int linked,
                          tr_pid_t *pid, tr_sup_error_t *err) {
  tr_sup_flags_t f;
  tr_sup_error_t detail;
  tr_child_spec_t *copy;
  tr_spawn_opts_t o;
  tr_reason_t why;
  tr_ref_t ref;
  tr_pid_t p;
  int rc;
  if ((rc = tr__sup_check_all(flags, specs, n, &f, &copy, err)) != 0) return rc;
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_MONITOR | (linked ? TR_SPAWN_LINK : 0);
  o.monitor_ref = &ref;
  o.name = f.name;
  if ((rc = tr__spawn(NULL, sup_boot, NULL, &o, tr_self(), &p)) == 0) {
    rc = tr__sup_send_init(tr_runtime_current(), p, &f, copy, n, NULL, linked);
    if (rc != 0) { /* it has not run: end it quietly */
      tr_unlink(p);
      tr_demonitor(ref, TR_DEMONITOR_FLUSH);
      tr_exit_pid(NULL, p, TR_REASON_KILL);
    }
  }
  free(copy);
  if (rc != 0) {
    tr__sup_error(err, NULL, -1, NULL, "cannot start the supervisor: %s",
                  tr_strerror(rc));
    return rc;
  }
  memset(&detail, 0, sizeof(detail));
  rc = tr__sup_await_ack(p, ref, &why, &detail);
  if (rc == TR_INIT_OK) {
    tr_demonitor(ref, TR_DEMONITOR_FLUSH);
    if (pid) *pid = p;
    return 0;
  }
  start_error(err, &detail, &why);
  return TR_ESTART;
}

int tr_sup_start_link(const tr_sup_flags_t *flags, const tr_child_spec_t *specs,
                      size_t n, tr_pid_t *pid, tr_sup_error_t *err) {
  if (pid) *pid = TR_PID_NONE;
  if (tr__current() == NULL) return not_actor();
  return start_in_actor(flags, specs, n, 1, pid, err);
}

/* ---- starting from outside any actor ------------------------------------ */

typedef struct {
  tr_runtime_t *rt;
  sup_box_t *box;
  tr_pid_t pid;
} drive_t;

static int drive_done(void *arg) {
  drive_t *d = arg;
  return d->box->done || tr__lookup(&d->rt->sched, d->pid) == NULL;
}

/* Runs the runtime (every scheduler) until the supervisor has reported its
 * init, died, or nothing can make progress. The supervisor runs on
 * scheduler 0, the caller's, so that the box is only touched there. */
static void drive(tr_runtime_t *rt, sup_box_t *box, tr_pid_t pid) {
  drive_t d = {rt, box, pid};
  if (!drive_done(&d)) tr__runtime_drive(rt, drive_done, &d);
}

static int outside_check(tr_runtime_t *rt, tr_sup_error_t *err) {
  tr__sched_t *s = tr__tls_sched;
  int rc = 0;
  if (rt == NULL) rc = TR_EINVAL;
  else if (s != NULL && s->in_cleanup) rc = TR_ECLEANUP;
  else if (s != NULL && s != &rt->sched) rc = TR_EWRONGTHREAD;
  else if (rt->attached) rc = TR_ENOTSUP;
  else if (rt->running || rt->sched.in_drain) rc = TR_EBUSY;
  else if (rt->stopping) rc = TR_ESTOPPED;
  if (rc != 0)
    tr__sup_error(err, NULL, -1, NULL,
                  "tr_sup_start outside an actor: %s (start it from an actor "
                  "instead)", tr_strerror(rc));
  return rc;
}

/* The outcome once the drive is over; releases the caller's box share. */
static int outside_result(tr_runtime_t *rt, sup_box_t *box, tr_pid_t p,
                          tr_pid_t *pid, tr_sup_error_t *err) {
  int rc;
  if (box->done) {
    rc = box->err;
    if (rc == 0 && pid) *pid = p;
    if (rc != 0 && err) *err = box->detail;
  } else if (tr__lookup(&rt->sched, p) == NULL) {
    if (!box->adopted) box->refs--; /* killed before it ever ran */
    rc = rt->stopping ? TR_ESTOPPED : TR_ESTART;
    tr__sup_error(err, NULL, -1, NULL, "supervisor exited during init");
  } else {
    rc = TR_EDEADLK;
    tr__sup_error(err, NULL, -1, NULL,
                  "supervisor start cannot finish: a child never acked its init");
  }
  tr__sup_box_release(box);
  return rc;
}

static int start_outside(tr_runtime_t *rt, const tr_sup_flags_t *flags,
                         const tr_child_spec_t *specs, size_t n, tr_pid_t *pid,
                         tr_sup_error_t *err) {
  tr_sup_flags_t f;
  tr_child_spec_t *copy;
  tr_spawn_opts_t o;
  sup_box_t *box;
  tr_pid_t p;
  int rc;
  if ((rc = outside_check(rt, err)) != 0) return rc;
  if ((rc = tr__sup_check_all(flags, specs, n, &f, &copy, err)) != 0) return rc;
  if ((box = calloc(1, sizeof(*box))) == NULL) {
    free(copy);
    return TR_ENOMEM;
  }
  box->refs = 2;
  tr_spawn_opts_init(&o);
  o.name = f.name;
  o.placement = TR_PLACE_SCHED(0);
  if ((rc = tr_spawn(rt, sup_boot, NULL, &o, &p)) == 0 &&
      (rc = tr__sup_send_init(rt, p, &f, copy, n, box, 0)) != 0)
    tr_exit_pid(rt, p, TR_REASON_KILL);
  free(copy);
  if (rc != 0) {
    free(box);
    tr__sup_error(err, NULL, -1, NULL, "cannot start the supervisor: %s",
                  tr_strerror(rc));
    return rc;
  }
  drive(rt, box, p);
  return outside_result(rt, box, p, pid, err);
}

int tr_sup_start(tr_runtime_t *rt, const tr_sup_flags_t *flags,
                 const tr_child_spec_t *specs, size_t n, tr_pid_t *pid,
                 tr_sup_error_t *err) {
  if (pid) *pid = TR_PID_NONE;
  if (tr__current() != NULL) {
    if (rt != NULL && rt != tr_runtime_current()) return TR_EINVAL;
    return start_in_actor(flags, specs, n, 0, pid, err);
  }
  return start_outside(rt, flags, specs, n, pid, err);
}

/* ---- run-time calls ----------------------------------------------------- */

static int id_call(tr_pid_t sup, int op, const char *id, uint64_t *x,
                   void *out, size_t outcap) {
  size_t len;
  uint64_t dummy = 0;
  if (id == NULL || (len = strlen(id)) == 0) return TR_EINVAL;
  if (len >= TR_SUP_ID_MAX) return TR_ENOENT;
  return tr__sup_call(sup, op, x ? x : &dummy, id, len, out, outcap, NULL);
}

/* A start-like call: sets *pid, and *err from a TR_ESTART reply. */
static int start_call(tr_pid_t sup, int op, uint64_t x, const void *in,
                      size_t inlen, tr_pid_t *pid, tr_sup_error_t *err) {
  tr_sup_error_t detail;
  int rc;
  memset(&detail, 0, sizeof(detail));
  rc = tr__sup_call(sup, op, &x, in, inlen, &detail, sizeof(detail), NULL);
  if (pid) *pid = (rc == 0 || rc == TR_EBUSY) ? x : TR_PID_NONE;
  if (rc == TR_ESTART && err) *err = detail;
  return rc;
}

static int match_down_ref(const tr_msg_t *m, void *arg) {
  return m->kind == TR_MSG_DOWN && m->ref == *(const tr_ref_t *)arg;
}

int tr_sup_stop(tr_pid_t sup) {
  tr_ref_t ref;
  tr_msg_t *m;
  uint64_t x = 0;
  int rc = tr_monitor(sup, &ref);
  if (rc != 0) return rc;
  rc = tr__sup_call(sup, SUP_OP_STOP, &x, NULL, 0, NULL, 0, NULL);
  if (rc == 0 && tr_recv_match(&m, match_down_ref, &ref, -1) == 0) {
    tr_msg_free(m); /* gone */
    return 0;
  }
  tr_demonitor(ref, TR_DEMONITOR_FLUSH);
  return rc;
}

int tr_sup_start_child(tr_pid_t sup, const tr_child_spec_t *spec,
                       tr_pid_t *pid, tr_sup_error_t *err) {
  tr_child_spec_t c;
  int rc;
  if (pid) *pid = TR_PID_NONE;
  if (spec == NULL) return TR_EINVAL;
  if ((rc = tr__sup_spec_check(spec, 0, -1, &c, err)) != 0) return rc;
  return start_call(sup, SUP_OP_START_CHILD, 0, &c, sizeof(c), pid, err);
}

int tr_sup_start_child_arg(tr_pid_t sup, void *arg, tr_pid_t *pid,
                           tr_sup_error_t *err) {
  if (pid) *pid = TR_PID_NONE;
  return start_call(sup, SUP_OP_START_ARG, (uint64_t)(uintptr_t)arg, NULL, 0,
                    pid, err);
}

int tr_sup_terminate_child(tr_pid_t sup, const char *id) {
  return id_call(sup, SUP_OP_TERMINATE, id, NULL, NULL, 0);
}

int tr_sup_terminate_child_pid(tr_pid_t sup, tr_pid_t child) {
  uint64_t x = child;
  return tr__sup_call(sup, SUP_OP_TERMINATE_PID, &x, NULL, 0, NULL, 0, NULL);
}

int tr_sup_restart_child(tr_pid_t sup, const char *id, tr_pid_t *pid,
                         tr_sup_error_t *err) {
  size_t len;
  if (pid) *pid = TR_PID_NONE;
  if (id == NULL || (len = strlen(id)) == 0) return TR_EINVAL;
  if (len >= TR_SUP_ID_MAX) return TR_ENOENT;
  return start_call(sup, SUP_OP_RESTART, 0, id, len, pid, err);
}

int tr_sup_delete_child(tr_pid_t sup, const char *id) {
  return id_call(sup, SUP_OP_DELETE, id, NULL, NULL, 0);
}

int tr_sup_which_children(tr_pid_t sup, tr_sup_child_info_t *buf, size_t cap,
                          size_t *count) {
  uint64_t x = cap;
  int rc;
  if ((cap > 0 && buf == NULL) || cap > SIZE_MAX / sizeof(*buf)) return TR_EINVAL;
  rc = tr__sup_call(sup, SUP_OP_WHICH, &x, NULL, 0, buf, cap * sizeof(*buf),
                    NULL);
  if (rc == 0 && count) *count = (size_t)x;
  return rc;
}

int tr_sup_child_info(tr_pid_t sup, const char *id, tr_sup_child_info_t *info) {
  if (info == NULL) return TR_EINVAL;
  return id_call(sup, SUP_OP_INFO, id, NULL, info, sizeof(*info));
}

int tr_sup_count_children(tr_pid_t sup, tr_sup_counts_t *counts) {
  uint64_t x = 0;
  if (counts == NULL) return TR_EINVAL;
  return tr__sup_call(sup, SUP_OP_COUNT, &x, NULL, 0, counts, sizeof(*counts),
                      NULL);
}

int tr_sup_get_childspec(tr_pid_t sup, const char *id, tr_child_spec_t *spec) {
  if (spec == NULL) return TR_EINVAL;
  return id_call(sup, SUP_OP_GET_SPEC, id, NULL, spec, sizeof(*spec));
}
