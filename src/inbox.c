/*
 * Cross-scheduler signals: each scheduler owns one lock-free MPSC inbox
 * (Vyukov's intrusive queue) that any thread may push to and only the
 * owning thread drains. Everything one scheduler does to another's actors
 * travels through it as a "signal": a message to deliver (user, call,
 * reply; a small one travels inside the batch, see below) or a tr_msg_t of
 * an internal kind (exit signal, link, monitor, DOWN, spawn, timer, stop,
 * ...). The owner applies signals on its own stack exactly as the local
 * code would, so actors are only ever touched by their own thread.
 *
 * Batches: a scheduler thread does not push each signal on its own. It
 * appends it to its outbox for the destination scheduler (a block of
 * entries), and pushes the whole batch as one queue node when the next
 * entry does not fit, when the running actor blocks, yields or exits, when
 * the scheduler finishes a drain (before it could sleep), and at once when
 * the destination is waiting for work; host code pushes at once. One push
 * then costs one swap for a whole batch, and the owner walks entries laid
 * out in order instead of chasing a pointer through a cache miss per
 * signal.
 *
 * Ordering: signals from one thread to one scheduler are applied in push
 * order (the outbox and the queue are FIFO); a sender uses the local path
 * for actors of its own scheduler and its outbox for all others, so each
 * (sender, receiver) pair always takes the same path and per-pair order
 * holds.
 *
 * Wake-ups are coalesced through `wake`, the owner's sleep state: 0 while
 * it runs (it will look at its inbox before it sleeps again: producers
 * just push), 1 when it is about to block in its loop, 2 when it is about
 * to block idle. A producer that finds it nonzero swaps it to 0 and is the
 * only one to send the uv_async. The owner sets the state, then looks at
 * the queue once more before blocking; producers link, then read the
 * state; both with sequentially consistent operations, so one of them
 * always sees the other (no lost wake-up), and a busy owner costs
 * producers no system call at all.
 *
 * Deadlock detection across schedulers (rt->busy): each scheduler counts
 * one unless it went to sleep idle (nothing runnable, nothing in its loop
 * that could wake it). The producer that wakes an idle scheduler counts it
 * again before it pushes on, and a producer is itself counted while it
 * runs, so busy reaches 0 only when every scheduler is idle with nothing
 * on its way.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Signals applied per call before the owner looks at other work. */
#define TR__INBOX_BATCH 4096

/* Batches (struct tr__batch, src/internal.h, where the send path's inline
 * half lives and the entry format is spelled out). A batch of signals
 * from one thread to one scheduler is the queue node. Its entries are
 * 8-byte words, in the order they were sent: a tr_msg_t pointer (an
 * internal signal, or a message too big to travel inline), or an inline
 * message, a small message carried in the batch itself, whose to and from
 * are left out when they are those of the inline message before it.
 *
 * Small messages are the common cross-scheduler traffic: carried inline,
 * several share a cache line (four one-word messages of a run from one
 * sender to one receiver) and the lines stream in order, instead of two
 * lines of a separate buffer per message moving to the receiver's core
 * and back when the buffer is reused. The receiver copies each into a
 * buffer of its own (recycled by its own core) as it applies the batch.
 * Batches go back to the scheduler that made them (`home`) on a lock-free
 * stack, so that a one-way flow does not malloc on one thread and free on
 * the other. */

/* Recycled batches a scheduler keeps at most (the rest are freed). */
#define TR__BATCH_CACHE_MAX 256

/* ---- the queue ---------------------------------------------------------- */

void tr__inbox_init(tr__inbox_t *q) {
  atomic_init(&q->stub.qnext, NULL);
  atomic_init(&q->head, &q->stub);
  atomic_init(&q->wake, 0);
  q->tail = &q->stub;
}

/* The link is a seq_cst store: it must be visible before the producer
 * reads the owner's sleep state (see above). */
static inline void q_push(tr__inbox_t *q, tr__qnode_t *n) {
  tr__qnode_t *prev;
  atomic_store_explicit(&n->qnext, NULL, memory_order_relaxed);
  prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
  atomic_store_explicit(&prev->qnext, n, memory_order_seq_cst);
}

/* Owner only: would q_pop return a signal now? (Not while the only
 * producer is between its swap and its link: it wakes the owner after.) */
static inline int q_ready(tr__inbox_t *q) {
  tr__qnode_t *tail = q->tail;
  tr__qnode_t *next = atomic_load(&tail->qnext);
  if (tail == &q->stub) {
    if (next == NULL) return 0;
    tail = next;
    next = atomic_load(&next->qnext);
  }
  return next != NULL || atomic_load(&q->head) == tail;
}

/* Owner only. NULL when empty, or when a producer is between its swap and
 * its link (it wakes the owner afterwards, see wake()). */
static inline tr__qnode_t *q_pop(tr__inbox_t *q) {
  tr__qnode_t *tail = q->tail, *head;
  tr__qnode_t *next = atomic_load_explicit(&tail->qnext, memory_order_acquire);
  if (tail == &q->stub) {
    if (next == NULL) return NULL;
    q->tail = next;
    tail = next;
    next = atomic_load_explicit(&next->qnext, memory_order_acquire);
  }
  if (next != NULL) {
    q->tail = next;
    return tail;
  }
  head = atomic_load_explicit(&q->head, memory_order_acquire);
  if (tail != head) return NULL;
  q_push(q, &q->stub);
  next = atomic_load_explicit(&tail->qnext, memory_order_acquire);
  if (next != NULL) {
    q->tail = next;
    return tail;
  }
  return NULL;
}

/* ---- wake-ups and the busy count ---------------------------------------- */

static void wake(tr__sched_t *s) {
  tr__inbox_t *q = &s->inbox;
  int old;
  if (atomic_load(&q->wake) == 0) return; /* it runs: it will look */
  if ((old = atomic_exchange(&q->wake, 0)) == 0) return;
  if (old == 2) atomic_fetch_add(&s->rt->busy, 1); /* it was idle */
  pthread_mutex_lock(&s->async_mu);
  if (s->async_open) uv_async_send(&s->async);
  pthread_mutex_unlock(&s->async_mu);
}

void tr__poke(tr__sched_t *s) { wake(s); }

void tr__sched_awake(tr__sched_t *s) {
  tr__inbox_t *q = &s->inbox;
  int old;
  if (!s->sleep_idle && atomic_load_explicit(&q->wake, memory_order_relaxed) == 0)
    return;
  old = atomic_exchange(&q->wake, 0);
  if (s->sleep_idle) {
    s->sleep_idle = 0;
    if (old == 2) atomic_fetch_add(&s->rt->busy, 1); /* nobody woke us */
  }
}

int tr__sched_sleep(tr__sched_t *s, int idle, int *all_idle) {
  tr__inbox_t *q = &s->inbox;
  tr_runtime_t *rt = s->rt;
  *all_idle = 0;
  atomic_store(&q->wake, idle ? 2 : 1);
  if (s->in_batch != NULL || q_ready(q)) {
    /* Signals came in: stay awake. A producer that saw us idle counted
     * us again; we never left, so undo that. */
    if (atomic_exchange(&q->wake, 0) == 0 && idle)
      atomic_fetch_sub(&rt->busy, 1);
    return 0;
  }
  if (idle) {
    s->sleep_idle = 1;
    if (atomic_fetch_sub(&rt->busy, 1) == 1) {
      *all_idle = 1;
      if (s != &rt->sched) tr__poke(&rt->sched); /* it decides: deadlock */
    }
  }
  return 1;
}

int tr__inbox_pending(tr__sched_t *s) {
  return s->in_batch != NULL || q_ready(&s->inbox);
}

/* ---- batches ----------------------------------------------------------- */

static tr__batch_t *batch_alloc(size_t cap, unsigned home) {
  tr__batch_t *b = malloc(sizeof(*b) + cap);
  if (b == NULL) {
    tr__log(tr__tls_sched, TR_LOG_ERROR, "troupe: out of memory for a signal batch");
    abort(); /* a lost EXIT or DOWN would break supervision */
  }
  b->used = b->next = 0;
  b->to = b->from = TR_PID_NONE;
  b->cap = (uint32_t)cap;
  b->home = (uint8_t)home;
  return b;
}

/* Keeps b on s's free list, or frees it when the list is full. */
static void batch_keep(tr__sched_t *s, tr__batch_t *b) {
  if (s->batch_nfree >= TR__BATCH_CACHE_MAX) {
    free(b);
    return;
  }
  b->fnext = s->batch_free;
  s->batch_free = b;
  s->batch_nfree++;
}

/* A batch for s to fill: recycled if one is free or came back. */
static tr__batch_t *batch_get(tr__sched_t *s) {
  tr__batch_t *b = s->batch_free;
  if (b == NULL &&
      atomic_load_explicit(&s->batch_back, memory_order_relaxed) != NULL) {
    tr__batch_t *n;
    b = atomic_exchange_explicit(&s->batch_back, NULL, memory_order_acquire);
    for (; b != NULL; b = n) {
      n = b->fnext;
      batch_keep(s, b);
    }
    b = s->batch_free;
  }
  if (b == NULL) return batch_alloc(TR__BATCH_BYTES, s->id);
  s->batch_free = b->fnext;
  s->batch_nfree--;
  b->used = b->next = 0;
  b->to = b->from = TR_PID_NONE;
  for (unsigned i = 0; i < TR__BATCH_PREFETCH_W; i += 64)
    tr__prefetch_w(b->buf + i);
  return b;
}

/* s has applied b: it goes back to the scheduler that made it. */
static void batch_done(tr__sched_t *s, tr__batch_t *b) {
  tr__sched_t *h;
  tr__batch_t *old;
  if (b->home == s->id) {
    batch_keep(s, b);
    return;
  }
  if (b->home >= s->rt->nsched) { /* made by a thread with no scheduler */
    free(b);
    return;
  }
  h = s->rt->scheds[b->home];
  old = atomic_load_explicit(&h->batch_back, memory_order_relaxed);
  do {
    b->fnext = old;
  } while (!atomic_compare_exchange_weak_explicit(
      &h->batch_back, &old, b, memory_order_release, memory_order_relaxed));
}

void tr__batch_cache_destroy(tr__sched_t *s) {
  tr__batch_t *b, *n;
  for (b = s->batch_free; b != NULL; b = n) {
    n = b->fnext;
    free(b);
  }
  s->batch_free = NULL;
  s->batch_nfree = 0;
  for (b = atomic_exchange(&s->batch_back, NULL); b != NULL; b = n) {
    n = b->fnext;
    free(b);
  }
}

/* ---- pushing ------------------------------------------------------------ */

/* Pushes s's outbox for dst (if any) onto dst's inbox. */
static void outbox_flush(tr__sched_t *s, tr__sched_t *dst) {
  tr__batch_t *b = s->out[dst->id];
  if (b == NULL) return;
  s->out[dst->id] = NULL;
  s->out_mask &= ~(UINT64_C(1) << dst->id);
  q_push(&dst->inbox, &b->qn);
  wake(dst);
}

void tr__outbox_flush_all(tr__sched_t *s) {
  while (s->out_mask != 0) {
    unsigned id = (unsigned)__builtin_ctzll(s->out_mask);
    outbox_flush(s, s->rt->scheds[id]);
  }
}

/* tr__batch_room when the calling thread has no outbox with room. */
tr__batch_t *tr__batch_room_slow(tr__sched_t *dst, size_t need,
                                 tr__sched_t **sp) {
  tr__sched_t *s = tr__tls_sched;
  tr__batch_t *b;
  if (s == NULL || s->rt != dst->rt) { /* a thread with no scheduler */
    *sp = NULL;
    return batch_alloc(need, TR__MSG_NOHOME);
  }
  *sp = s;
  if (s->out[dst->id] != NULL) outbox_flush(s, dst); /* full: on its way */
  b = s->out[dst->id] = batch_get(s);
  s->out_mask |= UINT64_C(1) << dst->id;
  return b;
}

void tr__batch_push_now(tr__sched_t *s, tr__sched_t *dst, tr__batch_t *b) {
  if (s == NULL) {
    q_push(&dst->inbox, &b->qn);
    wake(dst);
    return;
  }
  outbox_flush(s, dst);
}

void tr__sig_push(tr__sched_t *dst, tr_msg_t *m) {
  tr__sched_t *s;
  tr__batch_t *b = tr__batch_room(NULL, dst, sizeof(uint64_t), &s);
  memcpy(b->buf + b->used, &m, sizeof(m)); /* bit 0 clear: aligned */
  b->used += sizeof(uint64_t);
  tr__batch_pushed(NULL, s, dst, b);
}

void tr__sig_send_to(tr__sched_t *dst, int kind, tr_pid_t to, tr_pid_t from,
                     tr_ref_t ref, const tr_reason_t *r, const void *body,
                     size_t len, int flag) {
  tr_msg_t *m = tr__msg_new(TR_MSG_USER, body, len, r != NULL);
  if (m == NULL) {
    tr__log(tr__tls_sched, TR_LOG_ERROR,
            "troupe: out of memory sending a signal to scheduler %u", dst->id);
    abort();
  }
  m->kind = (uint8_t)kind;
  m->to = to;
  m->from = from;
  m->ref = ref;
  m->decoded = (uint8_t)flag;
  if (r != NULL) *m->reason = *r;
  tr__sig_push(dst, m);
}

void tr__sig_send(tr_runtime_t *rt, int kind, tr_pid_t to, tr_pid_t from,
                  tr_ref_t ref, const tr_reason_t *r, const void *body,
                  size_t len, int flag) {
  tr__sched_t *dst = tr__pid_owner(rt, to);
  if (dst == NULL) return; /* a pid of no scheduler: nobody to tell */
  tr__sig_send_to(dst, kind, to, from, ref, r, body, len, flag);
}

/* ---- applying ----------------------------------------------------------- */

/* Applies one signal on its target scheduler s; consumes m. */
static void apply(tr__sched_t *s, tr_msg_t *m) {
  tr__actor_t *a;
  switch (m->kind) {
  case TR_MSG_USER:
  case TR_MSG_CALL:
  case TR_MSG_REPLY:
    a = tr__lookup(s, m->to);
    m->prev = NULL;
    if (a == NULL) tr__msg_destroy(m); /* dead or stale: a silent no-op */
    else tr__deliver(a, m);
    return;
  case TR__SIG_TIMER_ARM:
    tr__sig_timer_arm_apply(s, m); /* keeps m as the timer's message */
    return;
  case TR__SIG_EXIT: tr__sig_exit_apply(s, m); break;
  case TR__SIG_LINK: tr__sig_link_apply(s, m); break;
  case TR__SIG_UNLINK: tr__sig_unlink_apply(s, m); break;
  case TR__SIG_MONITOR: tr__sig_monitor_apply(s, m); break;
  case TR__SIG_DEMONITOR: tr__sig_demonitor_apply(s, m); break;
  case TR__SIG_DOWN: tr__sig_down_apply(s, m); break;
  case TR__SIG_SPAWN: tr__sig_spawn_apply(s, m); break;
  case TR__SIG_RPC_REPLY: tr__sig_rpc_reply_apply(s, m); break;
  case TR__SIG_MBOX_STATS: tr__sig_mbox_stats_apply(s, m); break;
  case TR__SIG_TIMER_CANCEL: tr__sig_timer_cancel_apply(s, m); break;
  case TR__SIG_STOP: tr__sig_stop_apply(s); break;
  case TR__SIG_KILL_ALL: tr__sig_kill_all_apply(s); break;
  case TR__SIG_HOST_ACK: {
    tr__host_wait_t *w;
    tr__rpc_res_t res = {0, TR_PID_NONE};
    memcpy(&w, m->data, sizeof(w));
    /* What the signals before did is complete when the host resumes:
     * killed actors are reaped (apply runs on the scheduler stack). */
    if (s->current == NULL && !s->in_cleanup) tr__reap(s);
    tr__host_done(s->rt, w, &res);
    break;
  }
  default:
    break;
  }
  tr__msg_destroy(m);
}

/* Prefetch distance in a batch, in bytes of entries: pointer entries
 * point at messages another core wrote, each a cache miss unless
 * requested ahead; inline ones stream with the batch. */
#define TR__PREFETCH_BYTES 96

static inline void prefetch_ahead(tr__batch_t *b, uint32_t upto) {
  while (b->ahead < b->used && b->ahead < upto) {
    const uint64_t *w = (const uint64_t *)(const void *)(b->buf + b->ahead);
    if ((w[0] & TR__ENT_INLINE) == 0) {
      const char *m = (const char *)(uintptr_t)w[0];
      __builtin_prefetch(m, 1);
      __builtin_prefetch(m + 64, 1); /* the header's second line */
    }
    b->ahead += (uint32_t)tr__ent_size(w[0]);
  }
  __builtin_prefetch(b->buf + upto + 256);
}

size_t tr__inbox_apply(tr__sched_t *s) {
  tr__inbox_t *q = &s->inbox;
  size_t count = 0;
  tr__sched_awake(s);
  while (count < TR__INBOX_BATCH) {
    tr__batch_t *b = s->in_batch;
    if (b == NULL) {
      tr__qnode_t *n = q_pop(q);
      if (n == NULL) break;
      b = s->in_batch = (tr__batch_t *)(void *)n;
      b->ahead = 0;
      b->to = b->from = TR_PID_NONE; /* where the sender started */
    }
    while (b->next < b->used && count < TR__INBOX_BATCH) {
      const uint64_t *w = (const uint64_t *)(const void *)(b->buf + b->next);
      if (w[0] & TR__ENT_INLINE) {
        /* a run of inline messages (the common flow) only streams */
        count += tr__deliver_inline_run(s, b, TR__INBOX_BATCH - count);
        continue;
      }
      /* a pointer entry's message was written by another core: it and
       * the ones after it are requested ahead */
      prefetch_ahead(b, b->next + TR__PREFETCH_BYTES);
      b->next += (uint32_t)sizeof(uint64_t); /* as far as it got, should
                                              * apply look again */
      count++;
      apply(s, (tr_msg_t *)(uintptr_t)w[0]);
    }
    if (b->next < b->used) break; /* the rest next time */
    s->in_batch = NULL;
    batch_done(s, b);
  }
  if (count != 0) s->signals_seen = 1;
  return count;
}

static void discard_msg(tr__sched_t *s, tr_msg_t *m) {
  if (m->kind == TR__SIG_HOST_ACK) {
    tr__host_wait_t *w;
    tr__rpc_res_t res = {TR_ESTOPPED, TR_PID_NONE};
    memcpy(&w, m->data, sizeof(w));
    tr__host_done(s->rt, w, &res);
  }
  free(m->pool); /* decode storage: NULL in transit, else a plain block */
  free(m);
}

/* Teardown: b's messages are dropped and b is freed (its home may be gone
 * already). */
static void discard_batch(tr__sched_t *s, tr__batch_t *b) {
  uint32_t at = b->next;
  while (at < b->used) {
    const uint64_t *w = (const uint64_t *)(const void *)(b->buf + at);
    if ((w[0] & TR__ENT_INLINE) == 0) discard_msg(s, (tr_msg_t *)(uintptr_t)w[0]);
    at += (uint32_t)tr__ent_size(w[0]);
  }
  free(b);
}

void tr__inbox_discard(tr__sched_t *s) {
  tr__qnode_t *n;
  if (s->in_batch != NULL) discard_batch(s, s->in_batch);
  s->in_batch = NULL;
  while ((n = q_pop(&s->inbox)) != NULL) discard_batch(s, (tr__batch_t *)(void *)n);
  for (unsigned i = 0; i < TR__MAX_SCHEDULERS; i++) {
    if (s->out[i] != NULL) discard_batch(s, s->out[i]);
    s->out[i] = NULL;
  }
  s->out_mask = 0;
}

/* The uv_async of a scheduler: its inbox has signals. Standalone loops
 * drain when uv_run returns; an attached scheduler drains right here. */
void tr__async_cb(uv_async_t *h) {
  tr__sched_t *s = h->data;
  tr_runtime_t *rt = s->rt;
  if (!rt->attached) {
    uv_stop(s->loop); /* the run loop drains as uv_run returns */
    return;
  }
  if (s->in_drain || s->current != NULL) return;
  tr__sched_drain(s);
  tr__runtime_check_stop(s);
}

/* ---- the alive table ---------------------------------------------------- */

int tr__pid_alive(tr_runtime_t *rt, tr_pid_t pid) {
  tr__sched_t *s = tr__pid_owner(rt, pid);
  _Atomic uint64_t *slot;
  if (s == NULL || pid == TR_PID_NONE) return 0;
  slot = tr__alive_slot(s, (uint32_t)(pid & TR__IDX_MASK));
  if (slot == NULL) return 0;
  return (atomic_load_explicit(slot, memory_order_acquire) & ~TR__ALIVE_NAMED) ==
         pid;
}

/* ---- u64 -> pointer map ------------------------------------------------- */

static inline size_t map_hash(uint64_t k, size_t cap) {
  k ^= k >> 33;
  k *= UINT64_C(0xff51afd7ed558ccd);
  k ^= k >> 33;
  return (size_t)k & (cap - 1);
}

static int map_grow(tr__map_t *m) {
  size_t ncap = m->cap ? m->cap * 2 : 64, ocap = m->cap;
  uint64_t *ok = m->keys, *nk = calloc(ncap, sizeof(*nk));
  void **ov = m->vals, **nv = calloc(ncap, sizeof(*nv));
  if (nk == NULL || nv == NULL) {
    free(nk);
    free(nv);
    return TR_ENOMEM;
  }
  m->keys = nk;
  m->vals = nv;
  m->cap = ncap;
  for (size_t i = 0; i < ocap; i++) {
    if (ok[i] == 0) continue;
    size_t j = map_hash(ok[i], ncap);
    while (nk[j] != 0) j = (j + 1) & (ncap - 1);
    nk[j] = ok[i];
    nv[j] = ov[i];
  }
  free(ok);
  free(ov);
  return 0;
}

int tr__map_put(tr__map_t *m, uint64_t key, void *val) {
  size_t i;
  int err;
  if ((m->len + 1) * 2 > m->cap && (err = map_grow(m)) != 0) return err;
  i = map_hash(key, m->cap);
  while (m->keys[i] != 0 && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
  if (m->keys[i] == 0) m->len++;
  m->keys[i] = key;
  m->vals[i] = val;
  return 0;
}

void *tr__map_get(const tr__map_t *m, uint64_t key) {
  size_t i;
  if (m->cap == 0 || key == 0) return NULL;
  i = map_hash(key, m->cap);
  while (m->keys[i] != 0) {
    if (m->keys[i] == key) return m->vals[i];
    i = (i + 1) & (m->cap - 1);
  }
  return NULL;
}

void *tr__map_del(tr__map_t *m, uint64_t key) {
  size_t i, j, mask;
  void *val;
  if (m->cap == 0 || key == 0) return NULL;
  mask = m->cap - 1;
  i = map_hash(key, m->cap);
  while (m->keys[i] != key) {
    if (m->keys[i] == 0) return NULL;
    i = (i + 1) & mask;
  }
  val = m->vals[i];
  m->keys[i] = 0;
  m->vals[i] = NULL;
  m->len--;
  /* Backward-shift the cluster after i. */
  for (j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
    size_t h = map_hash(m->keys[j], m->cap);
    /* Move j to i if its home h is not in the cyclic range (i, j]. */
    if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
      m->keys[i] = m->keys[j];
      m->vals[i] = m->vals[j];
      m->keys[j] = 0;
      m->vals[j] = NULL;
      i = j;
    }
  }
  return val;
}

void tr__map_destroy(tr__map_t *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof(*m));
}
