/*
 * The run-time API, supervisor side: one handler per call, each answering
 * with [code, x, bin] (see wire.c). Errors follow OTP's: already_present
 * (TR_EEXIST), already_started / running (TR_EBUSY), restarting
 * (UV_EAGAIN), not_found (TR_ENOENT), simple_one_for_one (TR_ENOTSUP).
 * Manual starts and restarts do not count against the intensity.
 */
#include "sup.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  sup_t *sup;
  tr_msg_t *call;
  uint64_t x;
  const void *bin;
  size_t len;
  char id[TR_SUP_ID_MAX]; /* bin as a child id, "" if it is not one */
} req_t;

static int is_simple(const sup_t *sup) {
  return sup->flags.strategy == TR_SIMPLE_ONE_FOR_ONE;
}

static void answer(req_t *q, int code, uint64_t x, const void *bin, size_t n) {
  tr__sup_reply(q->call, code, x, bin, n);
}

static void answer_code(req_t *q, int code) { answer(q, code, 0, NULL, 0); }

/* Looks the request's id up; answers and returns NULL if it cannot be
 * used: simple_one_for_one (TR_ENOTSUP) or unknown (TR_ENOENT). */
static sup_child_t *static_child(req_t *q) {
  sup_child_t *c;
  if (is_simple(q->sup)) {
    answer_code(q, TR_ENOTSUP);
    return NULL;
  }
  if (q->id[0] == '\0' || (c = tr__sup_by_id(q->sup, q->id)) == NULL) {
    answer_code(q, TR_ENOENT);
    return NULL;
  }
  return c;
}

/* Starts c (a new record or a stopped one) for a call and answers; the
 * record is dropped if it should not stay (failed new child, ignored
 * temporary or dynamic child). */
static void start_and_answer(req_t *q, sup_child_t *c, int fresh) {
  tr_sup_error_t err;
  tr_reason_t why;
  char line[TR_REASON_TEXT_MAX + 64];
  int rc = tr__sup_child_start(q->sup, c, &why);
  tr_pid_t pid = c->pid;
  if (rc == TR_INIT_OK) {
    tr__sup_report(q->sup, TR_SUP_CHILD_STARTED, c, pid, NULL);
    answer(q, 0, pid, NULL, 0);
    return;
  }
  if (rc == TR_ESTART) {
    tr__sup_report(q->sup, TR_SUP_START_ERROR, c, TR_PID_NONE, &why);
    tr_reason_format(&why, line, sizeof(line));
    tr__sup_error(&err, c->spec.id, -1, &why, "child \"%s\" failed to start: %s",
                  c->spec.id, line);
    answer(q, TR_ESTART, 0, &err, sizeof(err));
  } else {
    answer(q, 0, TR_PID_NONE, NULL, 0);
  }
  if ((fresh && rc == TR_ESTART) || c->spec.restart == TR_TEMPORARY ||
      is_simple(q->sup))
    tr__sup_child_del(q->sup, c);
  else
    c->state = TR_CHILD_STOPPED;
}

/* ---- handlers ----------------------------------------------------------- */

static void op_stop(req_t *q) {
  tr_reason_t r;
  tr__sup_stop_all(q->sup);
  answer_code(q, 0);
  tr__reason_set(&r, TR_REASON_NORMAL);
  tr__sup_exit(&r);
}

static void op_start_child(req_t *q) {
  tr_child_spec_t in, spec;
  sup_child_t *c;
  if (is_simple(q->sup) || q->len != sizeof(spec)) {
    answer_code(q, TR_EINVAL);
    return;
  }
  /* Any actor can send this request: the spec is checked again here (an
   * id without its NUL, an out-of-range field). */
  memcpy(&in, q->bin, sizeof(in));
  if (tr__sup_spec_check(&in, 0, -1, &spec, NULL) != 0) {
    answer_code(q, TR_EINVAL);
    return;
  }
  if ((c = tr__sup_by_id(q->sup, spec.id)) != NULL) {
    if (c->pid != TR_PID_NONE) answer(q, TR_EBUSY, c->pid, NULL, 0);
    else answer_code(q, TR_EEXIST);
    return;
  }
  if ((c = tr__sup_child_add(q->sup, &spec, spec.arg)) == NULL) {
    answer_code(q, TR_ENOMEM);
    return;
  }
  start_and_answer(q, c, 1);
}

static void op_start_arg(req_t *q) {
  sup_child_t *c;
  if (!is_simple(q->sup)) {
    answer_code(q, TR_ENOTSUP);
    return;
  }
  c = tr__sup_child_add(q->sup, &q->sup->tmpl, (void *)(uintptr_t)q->x);
  if (c == NULL) {
    answer_code(q, TR_ENOMEM);
    return;
  }
  start_and_answer(q, c, 1);
}

static void op_terminate(req_t *q) {
  sup_child_t *c = static_child(q);
  if (c == NULL) return;
  tr__sup_child_stop(q->sup, c);
  if (c->spec.restart == TR_TEMPORARY) tr__sup_child_del(q->sup, c);
  answer_code(q, 0);
}

static void op_terminate_pid(req_t *q) {
  sup_child_t *c = is_simple(q->sup) ? tr__sup_by_pid(q->sup, q->x) : NULL;
  if (c == NULL) {
    answer_code(q, TR_ENOENT);
    return;
  }
  tr__sup_child_stop(q->sup, c);
  tr__sup_child_del(q->sup, c);
  answer_code(q, 0);
}

/* Common checks of restart_child and delete_child. */
static sup_child_t *idle_child(req_t *q) {
  sup_child_t *c = static_child(q);
  if (c == NULL) return NULL;
  if (c->pid != TR_PID_NONE) {
    answer_code(q, TR_EBUSY);
    return NULL;
  }
  if (c->state == TR_CHILD_RESTARTING) {
    answer_code(q, UV_EAGAIN);
    return NULL;
  }
  return c;
}

static void op_restart(req_t *q) {
  sup_child_t *c = idle_child(q);
  if (c != NULL) start_and_answer(q, c, 0);
}

static void op_delete(req_t *q) {
  sup_child_t *c = idle_child(q);
  if (c == NULL) return;
  tr__sup_child_del(q->sup, c);
  answer_code(q, 0);
}

static void op_which(req_t *q) {
  size_t n = q->sup->nchildren < q->x ? q->sup->nchildren : (size_t)q->x, i = 0;
  tr_sup_child_info_t *v = n ? malloc(n * sizeof(*v)) : NULL;
  if (n > 0 && v == NULL) {
    answer_code(q, TR_ENOMEM);
    return;
  }
  for (sup_child_t *c = q->sup->head; c != NULL && i < n; c = c->next)
    tr__sup_fill_info(q->sup, c, &v[i++]);
  answer(q, 0, q->sup->nchildren, v, n * sizeof(*v));
  free(v);
}

static void op_info(req_t *q) {
  tr_sup_child_info_t info;
  sup_child_t *c = static_child(q);
  if (c == NULL) return;
  tr__sup_fill_info(q->sup, c, &info);
  answer(q, 0, 0, &info, sizeof(info));
}

static void op_count(req_t *q) {
  tr_sup_counts_t n;
  memset(&n, 0, sizeof(n));
  for (sup_child_t *c = q->sup->head; c != NULL; c = c->next) {
    n.specs++;
    if (c->pid != TR_PID_NONE) n.active++;
    if (c->spec.type == TR_SUPERVISOR) n.supervisors++;
    else n.workers++;
  }
  if (is_simple(q->sup)) n.specs = 1; /* the template, as OTP counts */
  n.restarts = q->sup->restarts;
  answer(q, 0, 0, &n, sizeof(n));
}

static void op_get_spec(req_t *q) {
  const tr_child_spec_t *spec = NULL;
  sup_child_t *c;
  if (is_simple(q->sup)) {
    if (strcmp(q->id, q->sup->tmpl.id) == 0) spec = &q->sup->tmpl;
  } else if ((c = tr__sup_by_id(q->sup, q->id)) != NULL) {
    spec = &c->spec;
  }
  if (spec == NULL || q->id[0] == '\0') answer_code(q, TR_ENOENT);
  else answer(q, 0, 0, spec, sizeof(*spec));
}

/* ---- dispatch ----------------------------------------------------------- */

void tr__sup_handle_call(sup_t *sup, tr_msg_t *m) {
  req_t q;
  int op;
  memset(&q, 0, sizeof(q));
  q.sup = sup;
  q.call = m;
  if (tr__sup_parse_call(m, &op, &q.x, &q.bin, &q.len) != 0) {
    answer_code(&q, TR_EBADMSG);
    return;
  }
  if (q.len > 0 && q.len < sizeof(q.id) && memchr(q.bin, 0, q.len) == NULL)
    memcpy(q.id, q.bin, q.len);
  switch (op) {
  case SUP_OP_STOP: op_stop(&q); break;
  case SUP_OP_START_CHILD: op_start_child(&q); break;
  case SUP_OP_START_ARG: op_start_arg(&q); break;
  case SUP_OP_TERMINATE: op_terminate(&q); break;
  case SUP_OP_TERMINATE_PID: op_terminate_pid(&q); break;
  case SUP_OP_RESTART: op_restart(&q); break;
  case SUP_OP_DELETE: op_delete(&q); break;
  case SUP_OP_WHICH: op_which(&q); break;
  case SUP_OP_INFO: op_info(&q); break;
  case SUP_OP_COUNT: op_count(&q); break;
  case SUP_OP_GET_SPEC: op_get_spec(&q); break;
  default: answer_code(&q, TR_EINVAL); break;
  }
}
