/*
 * Links, monitors and exit signals, with Erlang's semantics:
 *  - links are bidirectional; when one side exits, the other gets an exit
 *    signal carrying the reason;
 *  - an exit signal `kill` sent with tr_exit_pid is untrappable and kills
 *    with reason `killed`; `normal` is ignored by a non-trapping target; any
 *    other reason kills a non-trapping target with that same reason; a
 *    trapping target gets an EXIT message instead;
 *  - a monitor is one-way and fires exactly one DOWN {ref, pid, reason}.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- exit signals ------------------------------------------------------- */

void tr__exit_signal(tr__sched_t *s, tr__actor_t *to, tr_pid_t from,
                     const tr_reason_t *r, int from_link) {
  tr_reason_t killed;
  if (to == NULL || to->state == TR__ST_DEAD) return;
  if (r->kind == TR_REASON_KILL && !from_link) {
    tr__reason_set(&killed, TR_REASON_KILLED);
    tr__actor_kill(s, to, &killed);
    return;
  }
  if (to->trap_exit) {
    tr__deliver_exit(to, from, r);
    return;
  }
  if (r->kind == TR_REASON_NORMAL) return;
  tr__actor_kill(s, to, r);
}

/* Applies a kill that may have hit the caller itself, then reaps if we are
 * on the scheduler stack outside the drain loop (host code). */
static void settle(tr__sched_t *s) {
  tr__actor_t *a = s->current;
  if (a != NULL) {
    tr__check_pending_exit(a);
    return;
  }
  if (!s->in_drain && !s->in_cleanup) tr__reap(s);
}

int tr_exit_pid(tr_runtime_t *rt, tr_pid_t pid, tr_reason_kind_t kind) {
  tr__sched_t *s = tr__tls_sched;
  tr__actor_t *self = tr__current();
  tr_reason_t r;
  if ((unsigned)kind >= TR_REASON__COUNT) return TR_EINVAL;
  if (self != NULL) rt = self->s->rt;
  if (rt == NULL) return TR_EINVAL;
  if (s == NULL) s = &rt->sched;
  if (s != &rt->sched) return TR_EWRONGTHREAD;
  tr__reason_set(&r, kind);
  tr__exit_signal(s, tr__lookup(s, pid), self ? self->pid : TR_PID_NONE, &r, 0);
  settle(s);
  return 0;
}

int tr_trap_exit(int on) {
  TR__ACTOR_OR_RETURN(a);
  int prev = a->trap_exit;
  a->trap_exit = on ? 1 : 0;
  return prev;
}

/* ---- links -------------------------------------------------------------- */

static int links_has(const tr__actor_t *a, tr_pid_t p) {
  for (uint32_t i = 0; i < a->nlinks; i++)
    if (a->links[i] == p) return 1;
  return 0;
}

static int links_add(tr__actor_t *a, tr_pid_t p) {
  if (links_has(a, p)) return 0;
  if (a->nlinks == a->caplinks) {
    uint32_t ncap = a->caplinks ? a->caplinks * 2 : 4;
    tr_pid_t *n = realloc(a->links, ncap * sizeof(*n));
    if (n == NULL) return TR_ENOMEM;
    a->links = n;
    a->caplinks = ncap;
  }
  a->links[a->nlinks++] = p;
  return 0;
}

static void links_del(tr__actor_t *a, tr_pid_t p) {
  for (uint32_t i = 0; i < a->nlinks; i++) {
    if (a->links[i] == p) {
      a->links[i] = a->links[--a->nlinks];
      return;
    }
  }
}

int tr__link_pair(tr__actor_t *a, tr__actor_t *b) {
  int err = links_add(a, b->pid);
  if (err != 0) return err;
  if ((err = links_add(b, a->pid)) != 0) links_del(a, b->pid);
  return err;
}

int tr_link(tr_pid_t pid) {
  TR__ACTOR_OR_RETURN(a);
  tr__actor_t *b;
  tr_reason_t r;
  if (pid == a->pid) return 0;
  b = tr__lookup(a->s, pid);
  if (b == NULL) {
    tr__reason_set(&r, TR_REASON_NOPROC);
    tr__exit_signal(a->s, a, pid, &r, 1);
    tr__check_pending_exit(a);
    return 0;
  }
  return tr__link_pair(a, b);
}

int tr_unlink(tr_pid_t pid) {
  TR__ACTOR_OR_RETURN(a);
  tr__actor_t *b = tr__lookup(a->s, pid);
  links_del(a, pid);
  if (b != NULL) links_del(b, a->pid);
  return 0;
}

/* Sends a's exit signal along every link. */
void tr__links_notify(tr__actor_t *a) {
  tr__sched_t *s = a->s;
  for (uint32_t i = 0; i < a->nlinks; i++) {
    tr__actor_t *b = tr__lookup(s, a->links[i]);
    if (b == NULL) continue;
    links_del(b, a->pid);
    tr__exit_signal(s, b, a->pid, &a->reason, 1);
  }
  a->nlinks = 0;
}

/* ---- monitors ----------------------------------------------------------- */

static void mon_unlink_watcher(tr__monitor_t *m) {
  tr__actor_t *w = m->watcher;
  if (m->w_prev) m->w_prev->w_next = m->w_next;
  else w->monitors = m->w_next;
  if (m->w_next) m->w_next->w_prev = m->w_prev;
}

static void mon_unlink_target(tr__monitor_t *m) {
  tr__actor_t *t = m->target;
  if (m->t_prev) m->t_prev->t_next = m->t_next;
  else t->monitored_by = m->t_next;
  if (m->t_next) m->t_next->t_prev = m->t_prev;
}

int tr__monitor_make(tr__actor_t *w, tr__actor_t *t, tr_ref_t *ref) {
  tr__monitor_t *m = malloc(sizeof(*m));
  if (m == NULL) return TR_ENOMEM;
  m->ref = tr__make_ref(w->s);
  m->watcher = w;
  m->target = t;
  m->w_prev = NULL;
  m->w_next = w->monitors;
  if (w->monitors) w->monitors->w_prev = m;
  w->monitors = m;
  m->t_prev = NULL;
  m->t_next = t->monitored_by;
  if (t->monitored_by) t->monitored_by->t_prev = m;
  t->monitored_by = m;
  *ref = m->ref;
  return 0;
}

int tr_monitor(tr_pid_t pid, tr_ref_t *ref) {
  TR__ACTOR_OR_RETURN(a);
  tr__actor_t *t;
  tr_reason_t r;
  if (ref == NULL) return TR_EINVAL;
  t = tr__lookup(a->s, pid);
  if (t == NULL) {
    *ref = tr__make_ref(a->s);
    tr__reason_set(&r, TR_REASON_NOPROC);
    tr__deliver_down(a, *ref, pid, &r);
    return 0;
  }
  return tr__monitor_make(a, t, ref);
}

static int is_down_for(const tr_msg_t *m, void *arg) {
  return m->kind == TR_MSG_DOWN && m->ref == *(tr_ref_t *)arg;
}


int tr_demonitor(tr_ref_t ref, unsigned flags) {
  TR__ACTOR_OR_RETURN(a);
  tr__monitor_t *m;
  if (flags & ~(unsigned)TR_DEMONITOR_FLUSH) return TR_EINVAL;
  for (m = a->monitors; m != NULL; m = m->w_next) {
    if (m->ref == ref) {
      mon_unlink_watcher(m);
      mon_unlink_target(m);
      free(m);
      break;
    }
  }
  if (flags & TR_DEMONITOR_FLUSH) tr__mailbox_drop_match(a, is_down_for, &ref);
  return 0;
}

/* Fires DOWN for every monitor on a, and drops the monitors a held. */
void tr__monitors_release(tr__actor_t *a) {
  tr__monitor_t *m;
  while ((m = a->monitored_by) != NULL) {
    mon_unlink_target(m);
    mon_unlink_watcher(m);
    tr__deliver_down(m->watcher, m->ref, a->pid, &a->reason);
    free(m);
  }
  while ((m = a->monitors) != NULL) {
    mon_unlink_watcher(m);
    mon_unlink_target(m);
    free(m);
  }
}
