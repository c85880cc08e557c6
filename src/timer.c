/*
 * Timers: one binary min-heap per scheduler, keyed by due time, and one
 * uv_timer_t armed for the earliest entry. Receive timeouts and sleeps use
 * the timer embedded in each actor (no allocation); send_after timers are
 * allocated, named by a ref (an index+generation handle, so a stale ref
 * never cancels a newer timer), and cancelled when their target exits.
 *
 * A send_after timer always lives on its target's scheduler, so that it is
 * cancelled with the target. Aimed at another scheduler's actor it is sent
 * there (TR__SIG_TIMER_ARM) with a counter ref that names that scheduler
 * and is found in its rtimers map; tr_cancel_timer from another scheduler
 * than the timer's asks that scheduler and waits for the answer, so that it
 * still tells a cancelled timer (0) from a fired one (TR_ENOENT).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

uint64_t tr__now_ms(void) { return uv_hrtime() / 1000000u; }

/* ---- heap --------------------------------------------------------------- */

static void heap_set(tr__sched_t *s, size_t i, tr__timer_t *t) {
  s->heap[i] = t;
  t->heap_idx = i;
}

static void sift_up(tr__sched_t *s, size_t i) {
  tr__timer_t *t = s->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (s->heap[p]->due_ms <= t->due_ms) break;
    heap_set(s, i, s->heap[p]);
    i = p;
  }
  heap_set(s, i, t);
}

static void sift_down(tr__sched_t *s, size_t i) {
  tr__timer_t *t = s->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= s->heap_len) break;
    if (c + 1 < s->heap_len && s->heap[c + 1]->due_ms < s->heap[c]->due_ms) c++;
    if (t->due_ms <= s->heap[c]->due_ms) break;
    heap_set(s, i, s->heap[c]);
    i = c;
  }
  heap_set(s, i, t);
}

static void heap_remove(tr__sched_t *s, tr__timer_t *t) {
  size_t i = t->heap_idx;
  tr__timer_t *last = s->heap[--s->heap_len];
  t->heap_idx = SIZE_MAX;
  if (last == t) return;
  heap_set(s, i, last);
  sift_up(s, i);
  sift_down(s, last->heap_idx);
}

/* Points the uv timer at the earliest entry (only when that changed). */
static void rearm(tr__sched_t *s) {
  uint64_t due, now;
  if (s->handles_closing) return;
  if (s->heap_len == 0) {
    if (s->armed_ms) uv_timer_stop(&s->uv_timer);
    s->armed_ms = 0;
    return;
  }
  due = s->heap[0]->due_ms;
  if (due == s->armed_ms) return;
  now = tr__now_ms();
  s->armed_ms = due;
  uv_timer_start(&s->uv_timer, tr__timer_cb, due > now ? due - now : 0, 0);
}

/* Inserts t due at due_ms. Aborts only if the heap cannot grow (the runtime
 * would otherwise lose a wake-up). */
void tr__timer_arm(tr__sched_t *s, tr__timer_t *t, uint64_t due_ms) {
  if (t->heap_idx != SIZE_MAX) heap_remove(s, t);
  if (s->heap_len == s->heap_cap) {
    size_t ncap = s->heap_cap ? s->heap_cap * 2 : 64;
    tr__timer_t **n = realloc(s->heap, ncap * sizeof(*n));
    if (n == NULL) abort();
    s->heap = n;
    s->heap_cap = ncap;
  }
  t->due_ms = due_ms;
  heap_set(s, s->heap_len++, t);
  sift_up(s, t->heap_idx);
  rearm(s);
}

void tr__timer_disarm(tr__sched_t *s, tr__timer_t *t) {
  if (t->heap_idx == SIZE_MAX) return;
  heap_remove(s, t);
  rearm(s);
}

/* ---- firing ------------------------------------------------------------- */

static void send_timer_unlink(tr__timer_t *t) {
  tr__actor_t *a = t->target;
  if (t->t_prev) t->t_prev->t_next = t->t_next;
  else a->timers = t->t_next;
  if (t->t_next) t->t_next->t_prev = t->t_prev;
}

static void send_timer_free(tr__sched_t *s, tr__timer_t *t) {
  if (t->ref & TR__REF_COUNTER_BIT) tr__map_del(&s->rtimers, t->ref);
  else tr__slots_release(&s->timer_refs, (uint32_t)(t->ref & TR__IDX_MASK));
  if (t->msg) tr__msg_destroy(t->msg);
  free(t);
}

static void fire(tr__sched_t *s, tr__timer_t *t) {
  if (t->type == TR__TIMER_WAIT) {
    t->target->timed_out = 1;
    tr__sched_wake(s, t->target);
    return;
  }
  send_timer_unlink(t);
  tr__deliver(t->target, t->msg);
  t->msg = NULL;
  send_timer_free(s, t);
}

void tr__timer_cb(uv_timer_t *h) {
  tr__sched_t *s = h->data;
  uint64_t now = tr__now_ms();
  s->armed_ms = 0;
  while (s->heap_len > 0 && s->heap[0]->due_ms <= now) {
    tr__timer_t *t = s->heap[0];
    heap_remove(s, t);
    fire(s, t);
  }
  rearm(s);
  if (!s->rt->attached) {
    /* Standalone: tr_runtime_run drains once uv_run returns. libuv < 1.45
     * runs due timers before polling, so without this a wake-up here would
     * wait in the poll for the next timer or I/O event. */
    if (s->rq_head != NULL) uv_stop(s->loop);
    return;
  }
  tr__sched_drain(s); /* embedded: run the woken actors now */
  tr__runtime_check_stop(s);
}

/* ---- API ---------------------------------------------------------------- */

int tr_sleep(uint64_t ms) {
  TR__ACTOR_OR_RETURN(a);
  tr__sched_t *s = a->s;
  if (ms == 0) return tr_yield();
  if (ms > UINT64_MAX / 2) return TR_EINVAL;
  a->timed_out = 0;
  tr__timer_arm(s, &a->wait_timer, tr__now_ms() + ms);
  while (!a->timed_out) {
    a->state = TR__ST_WAITING;
    tr__sched_block(s, a); /* messages may wake us: keep sleeping */
    tr__check_pending_exit(a);
  }
  return 0;
}

/* The scheduler a timer ref belongs to. */
static unsigned timer_ref_sched(tr_ref_t ref) {
  if (ref & TR__REF_COUNTER_BIT) return (unsigned)(ref >> 56) & 0x3f;
  return (unsigned)(ref >> TR__IDX_BITS) & 0x3f;
}

/* Finds the pending send_after timer ref on s (its own scheduler). */
static tr__timer_t *timer_find(tr__sched_t *s, tr_ref_t ref) {
  uint32_t idx = (uint32_t)(ref & TR__IDX_MASK);
  tr__timer_t *t;
  if (ref & TR__REF_COUNTER_BIT) {
    if (!(ref & TR__REF_RTIMER_BIT)) return NULL;
    return tr__map_get(&s->rtimers, ref);
  }
  if (idx >= s->timer_refs.cap) return NULL;
  t = s->timer_refs.ptr[idx];
  return (t != NULL && t->ref == ref) ? t : NULL;
}

static void timer_attach(tr__sched_t *s, tr__timer_t *t, tr__actor_t *target,
                         uint64_t due) {
  t->type = TR__TIMER_SEND;
  t->target = target;
  t->heap_idx = SIZE_MAX;
  t->t_next = target->timers;
  if (target->timers) target->timers->t_prev = t;
  target->timers = t;
  tr__timer_arm(s, t, due);
}

/* send_after aimed at another scheduler's actor. */
static int send_after_remote(tr__sched_t *s, tr_pid_t to, uint64_t ms,
                             const void *data, size_t len, tr_ref_t *ref) {
  tr__sched_t *dst = tr__pid_owner(s->rt, to);
  tr_msg_t *m;
  tr_ref_t r;
  if (dst == NULL || !tr__pid_alive(s->rt, to)) return 0; /* dead: no-op */
  if ((m = tr__msg_new(TR_MSG_TIMER, data, len, 0)) == NULL) return TR_ENOMEM;
  r = tr__make_ref(s) | TR__REF_RTIMER_BIT | ((uint64_t)dst->id << 56);
  m->kind = TR__SIG_TIMER_ARM;
  m->ref = r;
  m->to = to;
  m->from = tr__now_ms() + ms; /* the due time, while in transit */
  tr__sig_push(dst, m);
  if (ref) *ref = r;
  return 0;
}

void tr__sig_timer_arm_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__actor_t *target = tr__lookup(s, m->to);
  tr__timer_t *t;
  uint64_t due = m->from;
  m->kind = TR_MSG_TIMER;
  m->from = TR_PID_NONE;
  m->prev = NULL;
  if (target == NULL || (t = calloc(1, sizeof(*t))) == NULL) {
    tr__msg_destroy(m); /* dead target: as if cancelled with it */
    return;
  }
  t->ref = m->ref;
  t->msg = m;
  if (tr__map_put(&s->rtimers, t->ref, t) != 0) {
    tr__log(s, TR_LOG_ERROR, "troupe: out of memory arming a timer");
    abort();
  }
  timer_attach(s, t, target, due);
}

void tr__sig_timer_cancel_apply(tr__sched_t *s, tr_msg_t *m) {
  tr__timer_t *t = timer_find(s, m->ref);
  uint64_t token;
  memcpy(&token, m->data, sizeof(token));
  if (t != NULL) {
    tr__timer_disarm(s, t);
    send_timer_unlink(t);
    send_timer_free(s, t);
  }
  tr__rpc_answer(s->rt, m->from, token, t != NULL ? 0 : TR_ENOENT, TR_PID_NONE);
}

int tr_send_after(tr_pid_t to, uint64_t ms, const void *data, size_t len,
                  tr_ref_t *ref) {
  TR__ACTOR_OR_RETURN(a);
  tr__sched_t *s = a->s;
  tr__actor_t *target;
  tr__timer_t *t;
  uint32_t idx, gen;
  int err;
  if (ms > UINT64_MAX / 2) return TR_EINVAL;
  if ((err = tr_msgpack_validate(data, len)) != 0) return err;
  if (ref) *ref = 0;
  if (tr__pid_sched(to) != s->id)
    return send_after_remote(s, to, ms, data, len, ref);
  if ((target = tr__lookup(s, to)) == NULL) return 0; /* dead: no-op */
  if ((t = calloc(1, sizeof(*t))) == NULL) return TR_ENOMEM;
  if ((t->msg = tr__msg_new(TR_MSG_TIMER, data, len, 0)) == NULL) goto fail;
  if (tr__slots_alloc(&s->timer_refs, t, &idx, &gen) != 0) goto fail;
  t->ref = ((uint64_t)gen << 30) | ((uint64_t)s->id << TR__IDX_BITS) | idx;
  t->msg->ref = t->ref;
  timer_attach(s, t, target, tr__now_ms() + ms);
  if (ref) *ref = t->ref;
  return 0;
fail:
  if (t->msg) tr__msg_destroy(t->msg);
  free(t);
  return TR_ENOMEM;
}

int tr_cancel_timer(tr_ref_t ref) {
  TR__ACTOR_OR_RETURN(a);
  tr__sched_t *s = a->s;
  tr__timer_t *t;
  unsigned owner;
  if ((ref & TR__REF_COUNTER_BIT) && !(ref & TR__REF_RTIMER_BIT))
    return TR_ENOENT;
  if ((owner = timer_ref_sched(ref)) != s->id) {
    uint64_t token;
    if (owner >= s->rt->nsched) return TR_ENOENT;
    token = a->rpc_token = ++s->next_token;
    a->rpc_done = 0;
    tr__sig_send_to(s->rt->scheds[owner], TR__SIG_TIMER_CANCEL, TR_PID_NONE,
                    a->pid, ref, NULL, &token, sizeof(token), 0);
    tr__rpc_wait(a);
    return a->rpc_res.err;
  }
  if ((t = timer_find(s, ref)) == NULL) return TR_ENOENT;
  tr__timer_disarm(s, t);
  send_timer_unlink(t);
  send_timer_free(s, t);
  return 0;
}

/* Cancels the send_after timers aimed at a (it is exiting). */
void tr__timers_release(tr__actor_t *a) {
  tr__sched_t *s = a->s;
  tr__timer_t *t;
  while ((t = a->timers) != NULL) {
    tr__timer_disarm(s, t);
    send_timer_unlink(t);
    send_timer_free(s, t);
  }
}

void tr__timers_destroy(tr__sched_t *s) {
  free(s->heap);
  s->heap = NULL;
  s->heap_len = s->heap_cap = 0;
}
