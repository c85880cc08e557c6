/*
 * Timers: one binary min-heap per scheduler, keyed by due time, and one
 * uv_timer_t armed for the earliest entry. Receive timeouts and sleeps use
 * the timer embedded in each actor (no allocation); send_after timers are
 * allocated, named by a ref (an index+generation handle, so a stale ref
 * never cancels a newer timer), and cancelled when their target exits.
 */
#include "internal.h"

#include <stdlib.h>

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
  tr__slots_release(&s->timer_refs, (uint32_t)(t->ref & TR__IDX_MASK));
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
  if ((target = tr__lookup(s, to)) == NULL) return 0; /* dead: no-op */
  if ((t = calloc(1, sizeof(*t))) == NULL) return TR_ENOMEM;
  if ((t->msg = tr__msg_new(TR_MSG_TIMER, data, len, 0)) == NULL) goto fail;
  if (tr__slots_alloc(&s->timer_refs, t, &idx, &gen) != 0) goto fail;
  t->ref = ((uint64_t)gen << 32) | idx;
  t->msg->ref = t->ref;
  t->type = TR__TIMER_SEND;
  t->target = target;
  t->heap_idx = SIZE_MAX;
  t->t_next = target->timers;
  if (target->timers) target->timers->t_prev = t;
  target->timers = t;
  tr__timer_arm(s, t, tr__now_ms() + ms);
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
  uint32_t idx = (uint32_t)(ref & TR__IDX_MASK);
  tr__timer_t *t;
  if (ref & TR__REF_COUNTER_BIT || idx >= s->timer_refs.cap) return TR_ENOENT;
  t = s->timer_refs.ptr[idx];
  if (t == NULL || t->ref != ref) return TR_ENOENT;
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
