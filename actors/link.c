/*
 * Links, monitors and exit signals, with Erlang's semantics:
 *  - links are bidirectional; when one side exits, the other gets an exit
 *    signal carrying the reason;
 *  - an exit signal `kill` sent with tr_exit_pid is untrappable and kills
 *    with reason `killed`; `normal` is ignored by a non-trapping target; any
 *    other reason kills a non-trapping target with that same reason; a
 *    trapping target gets an EXIT message instead;
 *  - a monitor is one-way and fires exactly one DOWN {ref, pid, reason}.
 *
 * Across schedulers each side keeps its own bookkeeping, keyed by pid, and
 * the other side's part travels as a signal (src/inbox.c):
 *  - a link is a pid in each actor's `links`. tr_link adds the caller's side
 *    and sends LINK; the target adds its side, or answers with an exit
 *    signal `noproc` if it is dead. A link exit signal is only applied if
 *    the receiver still has the link (so an unlink wins over a racing exit);
 *  - a monitor is a watcher record (target NULL) and, on the target's
 *    scheduler, a target record (watcher NULL, found by ref in s->rmon).
 *    MONITOR to a dead pid is answered with DOWN `noproc`; a DOWN is only
 *    delivered if the watcher still has the record (so none arrives after
 *    tr_demonitor returned), exactly once.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Is pid an actor of another scheduler than s's? */
static inline int is_remote(const tr__sched_t *s, tr_pid_t pid) {
  return tr__pid_sched(pid) != s->id;
}

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
  if (s->rt != rt) return TR_EWRONGTHREAD;
  tr__reason_set(&r, kind);
  if (is_remote(s, pid)) {
    tr__sched_t *dst = tr__pid_owner(rt, pid);
    if (dst == NULL) return 0; /* no such scheduler: a dead pid */
    tr__sig_send_to(dst, TR__SIG_EXIT, pid, self ? self->pid : TR_PID_NONE, 0,
                    &r, NULL, 0, 0);
    /* Host code: the signal takes effect before we return, as locally. */
    if (self == NULL && s->current == NULL && !s->in_drain && !s->in_cleanup)
      tr__host_sync(rt, dst);
    return 0;
  }
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

static int links_del(tr__actor_t *a, tr_pid_t p) {
  for (uint32_t i = 0; i < a->nlinks; i++) {
    if (a->links[i] == p) {
      a->links[i] = a->links[--a->nlinks];
      return 1;
    }
  }
  return 0;
}

int tr__link_add(tr__actor_t *a, tr_pid_t pid) { return links_add(a, pid); }

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
  int err;
  if (pid == a->pid) return 0;
  /* A remote pid already known dead is answered at once, as a local one;
   * one that dies meanwhile is answered by its scheduler. */
  if (is_remote(a->s, pid) && tr__pid_alive(a->s->rt, pid)) {
    if (links_has(a, pid)) return 0;
    if ((err = links_add(a, pid)) != 0) return err;
    tr__sig_send(a->s->rt, TR__SIG_LINK, pid, a->pid, 0, NULL, NULL, 0, 0);
    return 0;
  }
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
  tr__actor_t *b;
  if (is_remote(a->s, pid)) {
    if (links_del(a, pid))
      tr__sig_send(a->s->rt, TR__SIG_UNLINK, pid, a->pid, 0, NULL, NULL, 0, 0);
    return 0;
  }
  b = tr__lookup(a->s, pid);
  links_del(a, pid);
  if (b != NULL) links_del(b, a->pid);
  return 0;
}

/* Sends a's exit signal along every link. */
void tr__links_notify(tr__actor_t *a) {
  tr__sched_t *s = a->s;
  for (uint32_t i = 0; i < a->nlinks; i++) {
    tr__actor_t *b;
    if (is_remote(s, a->links[i])) {
      tr__sig_send(s->rt, TR__SIG_EXIT, a->links[i], a->pid, 0,
                   tr__actor_reason(a), NULL, 0, 1);
      continue;
    }
    if ((b = tr__lookup(s, a->links[i])) == NULL) continue;
    links_del(b, a->pid);
    tr__exit_signal(s, b, a->pid, tr__actor_reason(a), 1);
  }
  a->nlinks = 0;
}

/* EXIT from another scheduler: a link's (only if the link is still there)
 * or tr_exit_pid's. */
void tr__sig_exit_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__actor_t *to = tr__lookup(s, m->to);
  if (to == NULL) return;
  if (m->decoded && !links_del(to, m->from)) return; /* unlinked meanwhile */
  tr__exit_signal(s, to, m->from, m->reason, m->decoded);
}

void tr__sig_link_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__actor_t *b = tr__lookup(s, m->to);
  tr_reason_t r;
  if (b == NULL) {
    tr__reason_set(&r, TR_REASON_NOPROC);
    tr__sig_send(s->rt, TR__SIG_EXIT, m->from, m->to, 0, &r, NULL, 0, 1);
    return;
  }
  if (links_add(b, m->from) != 0) {
    tr__log(s, TR_LOG_ERROR, "troupe: out of memory recording a link");
    abort();
  }
}

void tr__sig_unlink_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__actor_t *b = tr__lookup(s, m->to);
  if (b != NULL) links_del(b, m->from);
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

static void mon_link_watcher(tr__monitor_t *m, tr__actor_t *w) {
  m->watcher = w;
  m->wpid = w->pid;
  m->w_prev = NULL;
  m->w_next = w->monitors;
  if (w->monitors) w->monitors->w_prev = m;
  w->monitors = m;
}

static void mon_link_target(tr__monitor_t *m, tr__actor_t *t) {
  m->target = t;
  m->tpid = t->pid;
  m->t_prev = NULL;
  m->t_next = t->monitored_by;
  if (t->monitored_by) t->monitored_by->t_prev = m;
  t->monitored_by = m;
}

int tr__monitor_make(tr__actor_t *w, tr__actor_t *t, tr_ref_t *ref) {
  tr__monitor_t *m = calloc(1, sizeof(*m));
  if (m == NULL) return TR_ENOMEM;
  m->ref = tr__make_ref(w->s);
  mon_link_watcher(m, w);
  mon_link_target(m, t);
  *ref = m->ref;
  return 0;
}

/* The watcher's record of a monitor on a remote pid, and the request. */
int tr__monitor_remote(tr__actor_t *w, tr_pid_t pid, tr_ref_t ref) {
  tr__monitor_t *m = calloc(1, sizeof(*m));
  if (m == NULL) return TR_ENOMEM;
  m->ref = ref;
  m->tpid = pid;
  mon_link_watcher(m, w);
  return 0;
}

/* The target's record of a monitor held by a remote watcher. */
int tr__monitor_target_add(tr__actor_t *t, tr_pid_t wpid, tr_ref_t ref) {
  tr__monitor_t *m = calloc(1, sizeof(*m));
  int err;
  if (m == NULL) return TR_ENOMEM;
  m->ref = ref;
  m->wpid = wpid;
  if ((err = tr__map_put(&t->s->rmon, ref, m)) != 0) {
    free(m);
    return err;
  }
  mon_link_target(m, t);
  return 0;
}

int tr_monitor(tr_pid_t pid, tr_ref_t *ref) {
  TR__ACTOR_OR_RETURN(a);
  tr__actor_t *t;
  tr_reason_t r;
  int err;
  if (ref == NULL) return TR_EINVAL;
  if (is_remote(a->s, pid) && tr__pid_alive(a->s->rt, pid)) {
    tr_ref_t mref = tr__make_ref(a->s);
    if ((err = tr__monitor_remote(a, pid, mref)) != 0) return err;
    tr__sig_send(a->s->rt, TR__SIG_MONITOR, pid, a->pid, mref, NULL, NULL, 0, 0);
    *ref = mref;
    return 0;
  }
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
      if (m->target != NULL) mon_unlink_target(m);
      else
        tr__sig_send(a->s->rt, TR__SIG_DEMONITOR, m->tpid, a->pid, ref, NULL,
                     NULL, 0, 0);
      free(m);
      break;
    }
  }
  if (flags & TR_DEMONITOR_FLUSH) tr__mailbox_drop_match(a, is_down_for, &ref);
  return 0;
}

/* Fires DOWN for every monitor on a, and drops the monitors a held. */
void tr__monitors_release(tr__actor_t *a) {
  tr__sched_t *s = a->s;
  tr__monitor_t *m;
  while ((m = a->monitored_by) != NULL) {
    mon_unlink_target(m);
    if (m->watcher != NULL) {
      mon_unlink_watcher(m);
      tr__deliver_down(m->watcher, m->ref, a->pid, tr__actor_reason(a));
    } else {
      tr__map_del(&s->rmon, m->ref);
      tr__sig_send(s->rt, TR__SIG_DOWN, m->wpid, a->pid, m->ref,
                   tr__actor_reason(a), NULL, 0, 0);
    }
    free(m);
  }
  while ((m = a->monitors) != NULL) {
    mon_unlink_watcher(m);
    if (m->target != NULL) mon_unlink_target(m);
    else
      tr__sig_send(s->rt, TR__SIG_DEMONITOR, m->tpid, a->pid, m->ref, NULL,
                   NULL, 0, 0);
    free(m);
  }
}

void tr__sig_monitor_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__actor_t *t = tr__lookup(s, m->to);
  tr_reason_t r;
  if (t == NULL) {
    tr__reason_set(&r, TR_REASON_NOPROC);
    tr__sig_send(s->rt, TR__SIG_DOWN, m->from, m->to, m->ref, &r, NULL, 0, 0);
    return;
  }
  if (tr__monitor_target_add(t, m->from, m->ref) != 0) {
    tr__log(s, TR_LOG_ERROR, "troupe: out of memory recording a monitor");
    abort();
  }
}

void tr__sig_demonitor_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__monitor_t *mon = tr__map_get(&s->rmon, m->ref);
  if (mon == NULL || mon->wpid != m->from || mon->target == NULL) return;
  tr__map_del(&s->rmon, m->ref);
  mon_unlink_target(mon);
  free(mon);
}

/* DOWN from another scheduler: delivered if the watcher still holds the
 * monitor (it may have demonitored meanwhile). */
void tr__sig_down_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__actor_t *w = tr__lookup(s, m->to);
  tr__monitor_t *mon;
  if (w == NULL) return;
  for (mon = w->monitors; mon != NULL; mon = mon->w_next) {
    if (mon->ref == m->ref && mon->target == NULL) {
      mon_unlink_watcher(mon);
      free(mon);
      tr__deliver_down(w, m->ref, m->from, m->reason);
      return;
    }
  }
}
