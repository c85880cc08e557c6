/*
 * A supervisor's children: the table (start-order list + pid hash),
 * starting one child (spawn linked, wait for its init ack) and OTP's
 * shutdown protocol:
 *
 *   monitor the child, unlink it; if its EXIT is already queued it is dead
 *   (take that reason). Otherwise brutal_kill: exit(kill) and wait for DOWN;
 *   timeout T: exit(shutdown), wait up to T for DOWN, then exit(kill) and
 *   wait; infinity: exit(shutdown) and wait.
 *
 * Static children stop one at a time, in reverse start order; the children
 * of a simple_one_for_one supervisor stop all at once (one deadline for the
 * lot), as OTP does for dynamic children.
 */
#include "sup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the table ---------------------------------------------------------- */

static size_t hslot(size_t cap, tr_pid_t pid) {
  return (size_t)((pid * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

/* Doubles the hash. On allocation failure the old (smaller) table stays:
 * chains just get longer. */
static void hash_grow(sup_t *sup) {
  size_t ncap = sup->hcap ? sup->hcap * 2 : 64;
  sup_child_t **n = calloc(ncap, sizeof(*n)), *c, *next;
  if (n == NULL) {
    if (sup->hcap == 0) abort(); /* cannot track a child: never lose one */
    return;
  }
  for (size_t i = 0; i < sup->hcap; i++) {
    for (c = sup->hash[i]; c != NULL; c = next) {
      size_t j = hslot(ncap, c->pid);
      next = c->hnext;
      c->hnext = n[j];
      n[j] = c;
    }
  }
  free(sup->hash);
  sup->hash = n;
  sup->hcap = ncap;
}

void tr__sup_hash_put(sup_t *sup, sup_child_t *c) {
  size_t i;
  if (sup->hlen >= sup->hcap) hash_grow(sup);
  i = hslot(sup->hcap, c->pid);
  c->hnext = sup->hash[i];
  sup->hash[i] = c;
  sup->hlen++;
}

void tr__sup_hash_del(sup_t *sup, sup_child_t *c) {
  sup_child_t **p;
  if (sup->hcap == 0 || c->pid == TR_PID_NONE) return;
  for (p = &sup->hash[hslot(sup->hcap, c->pid)]; *p != NULL; p = &(*p)->hnext) {
    if (*p == c) {
      *p = c->hnext;
      sup->hlen--;
      return;
    }
  }
}

sup_child_t *tr__sup_by_pid(sup_t *sup, tr_pid_t pid) {
  sup_child_t *c;
  if (sup->hcap == 0 || pid == TR_PID_NONE) return NULL;
  for (c = sup->hash[hslot(sup->hcap, pid)]; c != NULL; c = c->hnext)
    if (c->pid == pid) return c;
  return NULL;
}

sup_child_t *tr__sup_by_id(sup_t *sup, const char *id) {
  for (sup_child_t *c = sup->head; c != NULL; c = c->next)
    if (strcmp(c->spec.id, id) == 0) return c;
  return NULL;
}

sup_child_t *tr__sup_by_key(sup_t *sup, uint64_t key) {
  for (sup_child_t *c = sup->head; c != NULL; c = c->next)
    if (c->key == key) return c;
  return NULL;
}

/* Appends a child (not started) at the end of the start order. NULL when
 * out of memory. */
sup_child_t *tr__sup_child_add(sup_t *sup, const tr_child_spec_t *spec,
                               void *arg) {
  sup_child_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  c->spec = *spec;
  c->arg = arg;
  c->state = TR_CHILD_STOPPED;
  c->key = ++sup->next_key;
  tr__reason_set(&c->last_exit, TR_REASON_NORMAL);
  c->prev = sup->tail;
  if (sup->tail) sup->tail->next = c;
  else sup->head = c;
  sup->tail = c;
  sup->nchildren++;
  return c;
}

void tr__sup_child_del(sup_t *sup, sup_child_t *c) {
  tr__sup_hash_del(sup, c);
  if (c->prev) c->prev->next = c->next;
  else sup->head = c->next;
  if (c->next) c->next->prev = c->prev;
  else sup->tail = c->prev;
  sup->nchildren--;
  free(c);
}

/* ---- starting ----------------------------------------------------------- */

static void spawn_failed(tr_reason_t *why, int rc) {
  tr__reason_set(why, TR_REASON_ERROR);
  why->code = rc;
  snprintf(why->text, sizeof(why->text), "spawn failed: %s", tr_strerror(rc));
}

int tr__sup_child_start(sup_t *sup, sup_child_t *c, tr_reason_t *why) {
  tr_spawn_opts_t o;
  tr_pid_t pid;
  int rc;
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_LINK;
  o.stack_size = c->spec.stack_size;
  o.placement = c->spec.placement;
  /* The child learns whom to ack at creation (it may run at once on
   * another scheduler). */
  if ((rc = tr__spawn(NULL, c->spec.start, c->arg, &o, sup->self, &pid)) != 0) {
    spawn_failed(why, rc);
    return TR_ESTART;
  }
  if (!(c->spec.flags & TR_CHILD_NO_ACK)) {
    rc = tr__sup_await_ack(pid, 0, why, NULL);
    if (rc != TR_INIT_OK) return rc;
  }
  c->pid = pid;
  c->state = TR_CHILD_RUNNING;
  c->started_ms = tr__now_ms();
  tr__sup_hash_put(sup, c);
  return TR_INIT_OK;
}

/* ---- stopping one ------------------------------------------------------- */

static int match_exit_from(const tr_msg_t *m, void *arg) {
  return m->kind == TR_MSG_EXIT && m->from == *(const tr_pid_t *)arg;
}

static int match_down(const tr_msg_t *m, void *arg) {
  return m->kind == TR_MSG_DOWN && m->ref == *(const tr_ref_t *)arg;
}

/* Takes an EXIT of pid that is already queued: the child died by itself
 * before we asked it to stop. */
static int take_exit(tr_pid_t pid, tr_reason_t *how) {
  tr_msg_t *m;
  if (tr_recv_match(&m, match_exit_from, &pid, 0) != 0) return 0;
  tr_msg_reason(m, how);
  tr_msg_free(m);
  return 1;
}

static int wait_down(tr_ref_t ref, int timeout_ms, tr_reason_t *how) {
  tr_msg_t *m;
  int rc = tr_recv_match(&m, match_down, &ref, timeout_ms);
  if (rc != 0) return rc;
  if (how) tr_msg_reason(m, how);
  tr_msg_free(m);
  return 0;
}

/* Asks a live, monitored child to stop as its spec says; returns the
 * reason it ended with. */
static void shut(const tr_child_spec_t *spec, tr_pid_t pid, tr_ref_t ref,
                 tr_reason_t *how) {
  if (spec->shutdown == TR_SHUTDOWN_BRUTAL_KILL) {
    tr_exit_pid(NULL, pid, TR_REASON_KILL);
    wait_down(ref, -1, how);
    return;
  }
  tr_exit_pid(NULL, pid, TR_REASON_SHUTDOWN);
  if (wait_down(ref, spec->shutdown == TR_SHUTDOWN_INFINITY ? -1 : spec->shutdown,
                how) == 0)
    return;
  tr_exit_pid(NULL, pid, TR_REASON_KILL);
  wait_down(ref, -1, how);
}

static tr_reason_kind_t expected(const tr_child_spec_t *spec) {
  return spec->shutdown == TR_SHUTDOWN_BRUTAL_KILL ? TR_REASON_KILLED
                                                   : TR_REASON_SHUTDOWN;
}

/* Records and reports how a child we stopped ended. */
static void stopped(sup_t *sup, sup_child_t *c, tr_pid_t pid, int by_itself,
                    const tr_reason_t *how) {
  if (by_itself) { /* it had exited on its own: that is its exit */
    c->exits++;
    c->last_exit = *how;
    tr__sup_report(sup, TR_SUP_CHILD_EXITED, c, pid, how);
  } else if (how->kind == expected(&c->spec)) {
    tr__sup_report(sup, TR_SUP_CHILD_STOPPED, c, pid, how);
  } else {
    tr__sup_report(sup, TR_SUP_SHUTDOWN_ERROR, c, pid, how);
  }
}

void tr__sup_child_stop(sup_t *sup, sup_child_t *c) {
  tr_pid_t pid = c->pid;
  tr_reason_t how;
  tr_ref_t ref;
  int dead;
  c->state = TR_CHILD_STOPPED;
  if (pid == TR_PID_NONE) return;
  tr__sup_hash_del(sup, c);
  c->pid = TR_PID_NONE;
  tr_monitor(pid, &ref);
  tr_unlink(pid);
  if ((dead = take_exit(pid, &how)) != 0) wait_down(ref, -1, NULL);
  else shut(&c->spec, pid, ref, &how);
  stopped(sup, c, pid, dead, &how);
}

void tr__sup_stop_from(sup_t *sup, sup_child_t *first, int drop_temporary) {
  sup_child_t *c, *prev;
  for (c = sup->tail; c != NULL; c = prev) {
    int last = c == first;
    prev = c->prev;
    if (c->pid != TR_PID_NONE) tr__sup_child_stop(sup, c);
    else if (c->state == TR_CHILD_RESTARTING) c->state = TR_CHILD_STOPPED;
    if (drop_temporary && c->spec.restart == TR_TEMPORARY)
      tr__sup_child_del(sup, c);
    if (last) break;
  }
}

/* ---- stopping all dynamic children at once ------------------------------ */

typedef struct {
  sup_t *sup;
} batch_t;

static int match_batch_exit(const tr_msg_t *m, void *arg) {
  sup_child_t *c;
  if (m->kind != TR_MSG_EXIT) return 0;
  c = tr__sup_by_pid(((batch_t *)arg)->sup, m->from);
  return c != NULL && c->stopping == 1;
}

static int match_batch_down(const tr_msg_t *m, void *arg) {
  sup_child_t *c;
  if (m->kind != TR_MSG_DOWN) return 0;
  c = tr__sup_by_pid(((batch_t *)arg)->sup, m->from);
  return c != NULL && c->stopping && c->mref == m->ref;
}

/* Monitors and unlinks every running child; those already dead (EXIT
 * queued) are marked 2 and not signalled. Returns how many stop. */
static size_t batch_begin(sup_t *sup, batch_t *b) {
  size_t n = 0;
  tr_msg_t *m;
  for (sup_child_t *c = sup->tail; c != NULL; c = c->prev) {
    if (c->pid == TR_PID_NONE) continue;
    tr_monitor(c->pid, &c->mref);
    tr_unlink(c->pid);
    c->stopping = 1;
    n++;
  }
  while (tr_recv_match(&m, match_batch_exit, b, 0) == 0) {
    sup_child_t *c = tr__sup_by_pid(sup, tr_msg_from(m));
    tr_msg_reason(m, &c->last_exit);
    c->stopping = 2;
    tr_msg_free(m);
  }
  return n;
}

static void batch_signal(sup_t *sup, tr_reason_kind_t kind) {
  for (sup_child_t *c = sup->tail; c != NULL; c = c->prev)
    if (c->stopping == 1) tr_exit_pid(NULL, c->pid, kind);
}

/* Takes one DOWN of the batch (waiting up to timeout_ms). */
static int batch_down(sup_t *sup, batch_t *b, int timeout_ms) {
  tr_msg_t *m;
  tr_reason_t how;
  sup_child_t *c;
  tr_pid_t pid;
  int rc = tr_recv_match(&m, match_batch_down, b, timeout_ms);
  if (rc != 0) return rc;
  pid = tr_msg_from(m);
  c = tr__sup_by_pid(sup, pid);
  tr_msg_reason(m, &how);
  tr_msg_free(m);
  tr__sup_hash_del(sup, c);
  c->pid = TR_PID_NONE;
  c->state = TR_CHILD_STOPPED;
  if (c->stopping == 2) how = c->last_exit;
  stopped(sup, c, pid, c->stopping == 2, &how);
  c->stopping = 0;
  return 0;
}

static void stop_dynamic(sup_t *sup) {
  batch_t b = {sup};
  int t = sup->tmpl.shutdown;
  uint64_t deadline = tr__now_ms() + (t > 0 ? (uint64_t)t : 0);
  size_t left = batch_begin(sup, &b);
  batch_signal(sup, t == TR_SHUTDOWN_BRUTAL_KILL ? TR_REASON_KILL
                                                 : TR_REASON_SHUTDOWN);
  while (left > 0) {
    int wait = -1;
    if (t > 0) {
      uint64_t now = tr__now_ms();
      wait = now >= deadline ? 0 : (int)(deadline - now);
    }
    if (batch_down(sup, &b, wait) == 0) {
      left--;
    } else { /* the deadline passed: kill the rest, then wait for them */
      batch_signal(sup, TR_REASON_KILL);
      t = TR_SHUTDOWN_INFINITY;
    }
  }
}

void tr__sup_stop_all(sup_t *sup) {
  if (sup->flags.strategy == TR_SIMPLE_ONE_FOR_ONE) stop_dynamic(sup);
  else tr__sup_stop_from(sup, sup->head, 0);
}
