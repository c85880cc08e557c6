/*
 * Mailboxes: each actor has a FIFO of copied msgpack messages. Senders
 * append; the owner receives, either the oldest message or the first one a
 * predicate accepts (selective receive), leaving the rest in arrival order.
 *
 * A received message belongs to the receiver until tr_msg_free; messages
 * still held when the actor exits are freed with it.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* ---- messages ----------------------------------------------------------- */

static const size_t msg_class_size[TR__MSG_CLASSES] = {128, 256, 512, 1024};

static inline unsigned msg_class(size_t total) {
  return total <= 128 ? 0 : total <= 256 ? 1 : total <= 512 ? 2
       : total <= 1024 ? 3 : TR__MSG_NOCLASS;
}

/* Buffers going home: a batch of pointers, pushed onto the home
 * scheduler's msg_back stack (all taken at once: no ABA). */
struct tr__msg_ret {
  struct tr__msg_ret *next;
  uint32_t n, cls;                   /* all of one class: the home need
                                      * not read the buffers to cache them */
  tr_msg_t *v[TR__MSG_RETURN_BATCH];
};

/* Pushes m (of class cls) onto s's cache, growing it if `grow` (buffers
 * that come home), else freeing m when the cache is at its limit. */
static inline void msg_cache_put(tr__sched_t *s, tr_msg_t *m, unsigned cls,
                                 int grow) {
  if (s->msg_cache[cls].n == s->msg_cache[cls].cap) {
    uint32_t ncap = s->msg_cache[cls].cap ? s->msg_cache[cls].cap * 2 : 256;
    tr_msg_t **v;
    if ((!grow && s->msg_cache[cls].cap >= TR__MSG_CACHE_MAX) ||
        (v = realloc(s->msg_cache[cls].v, ncap * sizeof(*v))) == NULL) {
      free(m);
      return;
    }
    s->msg_cache[cls].v = v;
    s->msg_cache[cls].cap = ncap;
  }
  s->msg_cache[cls].v[s->msg_cache[cls].n++] = m;
}

/* Takes the buffers other schedulers sent home. They are cached whatever
 * the cache's limit: they were ours and in flight, and a steady flow to
 * another scheduler needs that many again (freeing them here and
 * allocating anew is what the return trip avoids). */
static void msg_take_back(tr__sched_t *s) {
  struct tr__msg_ret *r =
      atomic_exchange_explicit(&s->msg_back, NULL, memory_order_acquire);
  while (r != NULL) {
    struct tr__msg_ret *n = r->next;
    for (uint32_t i = 0; i < r->n; i++) msg_cache_put(s, r->v[i], r->cls, 1);
    free(r);
    r = n;
  }
}

/* A buffer of at least `total` bytes: recycled from this thread's
 * scheduler when one of the right class is cached, else malloc'd.
 * Messages cross schedulers: a class buffer remembers its home, and the
 * scheduler that frees it sends it back there in batches (so that a
 * one-way flow does not turn into malloc on one thread and free on the
 * other, which contends on the allocator's arena locks). A buffer that
 * came back was last written by another core: the cache prefetches the
 * ones it will hand out next. */
#define TR__MSG_PREFETCH 4

/* msg_alloc's cache miss: buffers sent home, else malloc. s may be NULL
 * (a thread that is no scheduler's). */
static __attribute__((noinline)) tr_msg_t *msg_alloc_slow(tr__sched_t *s,
                                                         size_t total) {
  unsigned cls = msg_class(total);
  tr_msg_t *m;
  if (cls != TR__MSG_NOCLASS && s != NULL) {
    if (atomic_load_explicit(&s->msg_back, memory_order_relaxed) != NULL)
      msg_take_back(s);
    if (s->msg_cache[cls].n != 0) {
      m = s->msg_cache[cls].v[--s->msg_cache[cls].n];
    } else {
      m = malloc(msg_class_size[cls]);
    }
    if (m != NULL) {
      m->cls = (uint8_t)cls;
      m->home = (uint8_t)s->id;
    }
    return m;
  }
  m = malloc(cls != TR__MSG_NOCLASS ? msg_class_size[cls] : total);
  if (m != NULL) {
    m->cls = (uint8_t)cls;
    m->home = TR__MSG_NOHOME;
  }
  return m;
}

/* The cache hit inlined into the send paths (s: the calling thread's
 * scheduler, or NULL); everything else is msg_alloc_slow. */
static inline __attribute__((always_inline)) tr_msg_t *
msg_alloc(tr__sched_t *s, size_t total) {
  unsigned cls = msg_class(total);
  uint32_t n;
  tr_msg_t *m;
  if (TR__UNLIKELY(cls == TR__MSG_NOCLASS || s == NULL ||
                   (n = s->msg_cache[cls].n) == 0))
    return msg_alloc_slow(s, total);
  m = s->msg_cache[cls].v[--n];
  s->msg_cache[cls].n = n;
  if (n >= TR__MSG_PREFETCH) {
    char *p = (char *)s->msg_cache[cls].v[n - TR__MSG_PREFETCH];
    __builtin_prefetch(p, 1);
    __builtin_prefetch(p + 64, 1);
  }
  m->cls = (uint8_t)cls;
  m->home = (uint8_t)s->id;
  return m;
}

/* Queues m (a buffer of class cls of scheduler `home`) to go back there. */
static void msg_send_home(tr__sched_t *s, unsigned home, unsigned cls,
                          tr_msg_t *m) {
  struct tr__msg_ret *r = s->msg_out[home][cls], *old;
  tr__sched_t *h;
  if (r == NULL) {
    if ((r = malloc(sizeof(*r))) == NULL) {
      free(m); /* it cannot go home: it leaves the caches */
      return;
    }
    r->n = 0;
    r->cls = cls;
    s->msg_out[home][cls] = r;
  }
  r->v[r->n++] = m;
  if (r->n < TR__MSG_RETURN_BATCH) return;
  s->msg_out[home][cls] = NULL;
  h = s->rt->scheds[home];
  old = atomic_load_explicit(&h->msg_back, memory_order_relaxed);
  do {
    r->next = old;
  } while (!atomic_compare_exchange_weak_explicit(
      &h->msg_back, &old, r, memory_order_release, memory_order_relaxed));
}

/* Decode pools: the element objects tr_msg_obj fills for a message with
 * `n` of them (the count its sender's validation took). They come from
 * the same per-scheduler caches as message buffers when they fit a class
 * (up to 42 objects), so decoding a message allocates nothing in the
 * steady state; a pool is the message's until the message is freed, and
 * then goes back to the cache of the scheduler that frees it. Bigger pools
 * are malloc'd (their decode costs more than the malloc anyway). */
static msgpack_object *pool_alloc(tr__sched_t *s, uint32_t n) {
  size_t bytes = (size_t)n * sizeof(msgpack_object);
  unsigned cls = msg_class(bytes);
  if (cls == TR__MSG_NOCLASS) return malloc(bytes);
  if (s != NULL && s->msg_cache[cls].n != 0)
    return (msgpack_object *)(void *)s->msg_cache[cls].v[--s->msg_cache[cls].n];
  return malloc(msg_class_size[cls]); /* class-sized: it can be cached */
}

static void pool_free(tr__sched_t *s, msgpack_object *pool, uint32_t n) {
  unsigned cls = msg_class((size_t)n * sizeof(msgpack_object));
  if (cls == TR__MSG_NOCLASS || s == NULL) free(pool);
  else msg_cache_put(s, (tr_msg_t *)(void *)pool, cls, 0);
}

/* Sets up the header of a fresh buffer (no reason: the caller sets it). */
static inline __attribute__((always_inline)) void
msg_header(tr_msg_t *m, tr_msg_kind_t kind, tr_pid_t from, tr_ref_t ref,
           size_t len, uint32_t children) {
  m->next = m->prev = NULL;
  m->holder = NULL;
  m->from = from;
  m->ref = ref;
  m->reason = NULL;
  m->pool = NULL;
  m->kind = (uint8_t)kind;
  m->decoded = 0;
  m->children = children;
  m->len = len;
}

/* One allocation: header, room for a len-byte body and (EXIT/DOWN) the
 * reason, with the body's element count if the caller took it (else
 * TR__MSG_UNCOUNTED); the body is left for the caller to write. NULL when
 * out of memory. Inlined into the send paths. */
static inline __attribute__((always_inline)) tr_msg_t *
msg_init(tr__sched_t *s, tr_msg_kind_t kind, size_t len, int with_reason,
         uint32_t children) {
  size_t body = (len + 15) & ~(size_t)15;
  size_t total = sizeof(tr_msg_t) + body + (with_reason ? sizeof(tr_reason_t) : 0);
  tr_msg_t *m = msg_alloc(s, total);
  if (m == NULL) return NULL;
  msg_header(m, kind, TR_PID_NONE, 0, len, children);
  m->reason = with_reason ? (tr_reason_t *)(void *)(m->data + body) : NULL;
  return m;
}

/* msg_init with the body copied from data. */
static inline __attribute__((always_inline)) tr_msg_t *
msg_make(tr__sched_t *s, tr_msg_kind_t kind, const void *data, size_t len,
         int with_reason, uint32_t children) {
  tr_msg_t *m = msg_init(s, kind, len, with_reason, children);
  const char *d = data;
  if (m != NULL && len == 1) {
    m->data[0] = *d;
  } else if (m != NULL && len - 8 <= 8) { /* 8..16: two words, may overlap */
    memcpy(m->data, d, 8);
    memcpy(m->data + len - 8, d + len - 8, 8);
  } else if (m != NULL && len != 0) {
    memcpy(m->data, d, len);
  }
  return m;
}

tr_msg_t *tr__msg_new(tr_msg_kind_t kind, const void *data, size_t len,
                      int with_reason) {
  return msg_make(tr__tls_sched, kind, data, len, with_reason,
                  TR__MSG_UNCOUNTED);
}

static inline void deliver(tr__actor_t *a, tr_msg_t *m);
static inline void enqueue(tr__actor_t *a, tr_msg_t *first, tr_msg_t *last,
                           size_t n);

/* tr__deliver_inline_run's buffer when its cache is empty. */
static __attribute__((noinline, cold)) tr_msg_t *msg_alloc_copy(tr__sched_t *s,
                                                                size_t total) {
  tr_msg_t *m = msg_alloc_slow(s, total);
  if (m == NULL) {
    /* The sender was told it was sent: losing it silently is not an
     * option, and neither is a lost EXIT or DOWN behind it. */
    tr__log(s, TR_LOG_ERROR, "troupe: out of memory receiving a message");
    abort();
  }
  return m;
}

/* Head bits of the entries inline_chain takes: an inline user message
 * with the last one's to and from, no ref and a one-word body (an entry of
 * 16 bytes: 1 to 8 bytes of body). */
#define TR__CHAIN_MASK (UINT64_C(0xff) << 24 | UINT64_C(0xff) << 8 | \
                        TR__ENT_INLINE | TR__ENT_REF | TR__ENT_SAME)
#define TR__CHAIN_HEAD (UINT64_C(16) << 24 | (uint64_t)TR_MSG_USER << 8 | \
                        TR__ENT_INLINE | TR__ENT_SAME)
_Static_assert(sizeof(tr_msg_t) + 16 <= 128, "a one-word message is class 0");

/* tr__deliver_inline_run's common case: the entries of b from `at` on
 * that are one-word user messages to a (alive, no mailbox limit) from
 * `from`, at most up to `budget` counted in *count. They are built into a
 * chain in buffers of s's cache and queued with one append: per message,
 * only its header and its word are written. Stops at any other entry, or
 * when the cache has no buffer (the general path then mallocs one).
 * Returns where it stopped. */
static inline uint32_t inline_chain(tr__sched_t *s, tr__batch_t *b,
                                    tr__actor_t *a, uint32_t at,
                                    tr_pid_t from, size_t *count,
                                    size_t budget) {
  uint32_t used = b->used, n = s->msg_cache[0].n;
  tr_msg_t **v = s->msg_cache[0].v;
  tr_msg_t *first = NULL, *last = NULL;
  size_t c = *count, k = 0;
  while (at < used && c < budget && n != 0) {
    const uint64_t *w = (const uint64_t *)(const void *)(b->buf + at);
    uint64_t h = w[0];
    tr_msg_t *m;
    if ((h & TR__CHAIN_MASK) != TR__CHAIN_HEAD) break;
    __builtin_prefetch(b->buf + at + 256);
    m = v[--n];
    m->cls = 0;
    m->home = (uint8_t)s->id;
    msg_header(m, TR_MSG_USER, from, 0, (size_t)(h >> 16) & 0xff,
               (uint32_t)(h >> 32));
    memcpy(m->data, w + 1, 8);
    if (last != NULL) last->next = m;
    else first = m;
    last = m;
    at += 16;
    c++;
    k++;
  }
  s->msg_cache[0].n = n;
  *count = c;
  if (k != 0) enqueue(a, first, last, k);
  return at;
}

/* The receiving half of inline messages (src/internal.h): applies the run
 * of inline entries of b from b->next on, up to its first pointer entry,
 * its end or `budget` entries. Each message is copied into a buffer from
 * s's own cache and goes to its actor; nothing if that is dead. The body
 * is padded to 8 bytes in the batch and a buffer's body area to 16, so it
 * is copied in whole words. Written as one loop, not a call per entry,
 * with the receiver looked up once per run of entries to the same pid:
 * this is all a scheduler does per message for a busy receiver whose
 * senders are elsewhere. Returns the number of entries applied; b->next,
 * b->to and b->from tell where it stopped. */
size_t tr__deliver_inline_run(tr__sched_t *s, tr__batch_t *b, size_t budget) {
  uint32_t at = b->next, used = b->used;
  tr_pid_t to = b->to, from = b->from, cached = TR_PID_NONE;
  tr__actor_t *a = NULL;
  size_t count = 0;
  while (at < used && count < budget) {
    const uint64_t *w = (const uint64_t *)(const void *)(b->buf + at);
    uint64_t h = w[0];
    const uint64_t *body = w + 1;
    size_t len, total;
    unsigned cls;
    uint32_t n;
    tr_ref_t ref = 0;
    tr_msg_t *m;
    if ((h & TR__ENT_INLINE) == 0) break;
    __builtin_prefetch(b->buf + at + 256);
    at += (uint32_t)tr__ent_size(h);
    count++;
    if ((h & TR__ENT_SAME) == 0) {
      to = (tr_pid_t)w[1];
      from = (tr_pid_t)w[2];
      body += 2;
    }
    if (h & TR__ENT_REF) ref = (tr_ref_t)*body++;
    if (to != cached) {
      a = tr__lookup(s, to);
      cached = to;
    }
    if (a == NULL) continue; /* dead or stale: a silent no-op */
    len = (size_t)(h >> 16) & 0xff;
    total = sizeof(tr_msg_t) + ((len + 15) & ~(size_t)15);
    cls = msg_class(total);
    n = s->msg_cache[cls].n;
    if (TR__LIKELY(n != 0)) {
      m = s->msg_cache[cls].v[n - 1];
      s->msg_cache[cls].n = n - 1;
      m->cls = (uint8_t)cls;
      m->home = (uint8_t)s->id;
    } else {
      m = msg_alloc_copy(s, total);
    }
    msg_header(m, (tr_msg_kind_t)((h >> 8) & 0xff), from, ref, len,
               (uint32_t)(h >> 32));
    if (TR__LIKELY(len - 1 < 8)) { /* 1..8 bytes: one word */
      memcpy(m->data, body, 8);
    } else {
      for (size_t i = 0; i < len; i += 8) memcpy(m->data + i, body + i / 8, 8);
    }
    deliver(a, m);
    /* A mailbox limit's policy may have killed a: look it up again. */
    if (TR__UNLIKELY(a->mbox_limit != NULL)) {
      cached = TR_PID_NONE;
      continue;
    }
    /* The run that follows, while its entries are plain one-word user
     * messages to the same actor, is chained and queued at once. */
    if (a->state != TR__ST_DEAD)
      at = inline_chain(s, b, a, at, from, &count, budget);
  }
  b->next = at;
  b->to = to;
  b->from = from;
  return count;
}

void tr__msg_destroy(tr_msg_t *m) {
  tr__sched_t *s = tr__tls_sched;
  unsigned home = m->home;
  if (m->pool != NULL) pool_free(s, m->pool, m->children);
  if (m->cls == TR__MSG_NOCLASS || s == NULL) {
    free(m);
    return;
  }
  if (home != s->id && home < s->rt->nsched) {
    msg_send_home(s, home, m->cls, m);
    return;
  }
  m->home = (uint8_t)s->id; /* adopt a buffer made outside any scheduler */
  msg_cache_put(s, m, m->cls, 0);
}

/* Frees the scheduler's recycled buffers (runtime teardown). */
void tr__msg_cache_destroy(tr__sched_t *s) {
  struct tr__msg_ret *r, *n;
  for (unsigned c = 0; c < TR__MSG_CLASSES; c++) {
    for (uint32_t i = 0; i < s->msg_cache[c].n; i++) free(s->msg_cache[c].v[i]);
    free(s->msg_cache[c].v);
    s->msg_cache[c].v = NULL;
    s->msg_cache[c].n = s->msg_cache[c].cap = 0;
  }
  for (unsigned h = 0; h < TR__MAX_SCHEDULERS; h++) {
    for (unsigned c = 0; c < TR__MSG_CLASSES; c++) {
      if ((r = s->msg_out[h][c]) == NULL) continue;
      for (uint32_t i = 0; i < r->n; i++) free(r->v[i]);
      free(r);
      s->msg_out[h][c] = NULL;
    }
  }
  for (r = atomic_exchange(&s->msg_back, NULL); r != NULL; r = n) {
    n = r->next;
    for (uint32_t i = 0; i < r->n; i++) free(r->v[i]);
    free(r);
  }
}

/* ---- delivery ----------------------------------------------------------- */

/* Appends the chain first..last (n messages, linked through next) to a's
 * queue, waking a if it waits. */
static inline __attribute__((always_inline)) void
enqueue(tr__actor_t *a, tr_msg_t *first, tr_msg_t *last, size_t n) {
  last->next = NULL;
  if (a->mq_tail) a->mq_tail->next = first;
  else a->mq_head = first;
  a->mq_tail = last;
  a->mq_len += n;
  if (a->state == TR__ST_WAITING) tr__sched_wake_waiting(a->s, a);
}

static inline __attribute__((always_inline)) void deliver(tr__actor_t *a,
                                                         tr_msg_t *m) {
  if (TR__UNLIKELY(a->state == TR__ST_DEAD) ||
      (m->kind == TR_MSG_REPLY && (a->call_ref == 0 || m->ref != a->call_ref))) {
    tr__msg_destroy(m); /* dead receiver, or a reply nobody awaits */
    return;
  }
  if (m->kind == TR_MSG_REPLY) a->call_ref = 0; /* one reply per call */
  if (TR__UNLIKELY(a->mbox_limit != NULL) && !tr__mbox_admit(a, m)) return;
  enqueue(a, m, m, 1);
}

void tr__deliver(tr__actor_t *a, tr_msg_t *m) { deliver(a, m); }

void tr__mailbox_clear(tr__actor_t *a) {
  tr_msg_t *m, *n;
  for (m = a->mq_head; m != NULL; m = n) {
    n = m->next;
    tr__msg_destroy(m);
  }
  a->mq_head = a->mq_tail = NULL;
  a->mq_len = 0;
  if ((m = a->held1) != NULL) tr__msg_destroy(m);
  a->held1 = NULL;
  for (m = a->held; m != NULL; m = n) {
    n = m->next;
    tr__msg_destroy(m);
  }
  a->held = NULL;
  tr__mbox_limit_free(a);
}

/* A fixed buffer for the small system message bodies (no allocation). */
typedef struct {
  char buf[128];
  size_t len;
} sys_buf_t;

static int sys_write(void *data, const char *p, size_t n) {
  sys_buf_t *b = data;
  if (n > sizeof(b->buf) - b->len) return -1;
  memcpy(b->buf + b->len, p, n);
  b->len += n;
  return 0;
}

static void deliver_system(tr__actor_t *to, tr_msg_kind_t kind, tr_ref_t ref,
                           tr_pid_t from, const tr_reason_t *r) {
  sys_buf_t sb;
  msgpack_packer pk;
  const char *tag = kind == TR_MSG_EXIT ? "EXIT" : "DOWN";
  const char *why = tr_reason_name(r->kind);
  tr_msg_t *m;
  if (to == NULL || to->state == TR__ST_DEAD) return;
  sb.len = 0;
  msgpack_packer_init(&pk, &sb, sys_write);
  msgpack_pack_array(&pk, kind == TR_MSG_EXIT ? 3 : 4);
  msgpack_pack_str_with_body(&pk, tag, 4);
  if (kind == TR_MSG_DOWN) msgpack_pack_uint64(&pk, ref);
  tr_pack_pid(&pk, from);
  msgpack_pack_str_with_body(&pk, why, strlen(why));
  m = tr__msg_new(kind, sb.buf, sb.len, 1);
  if (m == NULL) {
    /* Out of memory: a lost EXIT/DOWN would break supervision, so the
     * runtime cannot go on silently. */
    tr__log(to->s, TR_LOG_ERROR, "troupe: out of memory delivering %s", tag);
    abort();
  }
  m->from = from;
  m->ref = ref;
  *m->reason = *r;
  tr__deliver(to, m);
}

void tr__deliver_exit(tr__actor_t *to, tr_pid_t from, const tr_reason_t *r) {
  deliver_system(to, TR_MSG_EXIT, 0, from, r);
}

void tr__deliver_down(tr__actor_t *to, tr_ref_t ref, tr_pid_t from,
                      const tr_reason_t *r) {
  deliver_system(to, TR_MSG_DOWN, ref, from, r);
}

/* ---- sending ------------------------------------------------------------ */

/* tr_msgpack_validate that also counts the element objects a decode of
 * the body needs: returns that count (stored with the message, so that
 * tr_msg_obj neither scans again nor guesses a size) or a negative error.
 * The one-byte values (small ints, nil, bools, empty containers) and lone
 * fixed-width numbers are answered inline: they are the common small
 * messages. */
static inline int64_t validate(const void *data, size_t len) {
  uint64_t n;
  int err;
  /* Bytes that follow the lead byte of a fixed-width number, 0xca..0xd3
   * (float 32/64, uint 8..64, int 8..64). */
  static const uint8_t num_width[10] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
  if (len == 1 && data != NULL) {
    unsigned b = *(const unsigned char *)data;
    if (b <= 0x80 || b >= 0xe0 || b == 0x90 || b == 0xa0 || b == 0xc0 ||
        b == 0xc2 || b == 0xc3)
      return 0;
  } else if (len <= 9 && data != NULL) { /* a lone number, also common */
    unsigned b = *(const unsigned char *)data;
    if (b >= 0xca && b <= 0xd3 && len == 1u + num_width[b - 0xca]) return 0;
  }
  err = tr__codec_validate_count(data, len, &n);
  return err != 0 ? err : (int64_t)n; /* n < len <= TR_MSG_MAX */
}

/* Sends to an actor of another scheduler: the message goes to that
 * scheduler's inbox, which applies it in order with everything else this
 * thread sent there. */
static int send_remote(tr__sched_t *s, tr_msg_kind_t kind, tr_pid_t from,
                       tr_pid_t to, tr_ref_t ref, const void *data, size_t len,
                       uint32_t children) {
  tr__sched_t *dst = tr__pid_owner(s->rt, to);
  tr_msg_t *m;
  if (dst == NULL) return 0; /* no such scheduler: a dead pid */
  if (len <= TR__INLINE_MAX) { /* dropped there if to is dead */
    tr__sig_push_inline(NULL, dst, kind, to, from, ref, data, len, children);
    return 0;
  }
  m = tr__msg_new(kind, data, len, 0);
  if (m == NULL) return TR_ENOMEM;
  m->from = from;
  m->ref = ref;
  m->to = to;
  m->children = children;
  tr__sig_push(dst, m);
  return 0;
}

int tr__send_remote(tr__sched_t *s, tr_msg_kind_t kind, tr_pid_t from,
                    tr_pid_t to, tr_ref_t ref, const void *data, size_t len) {
  return send_remote(s, kind, from, to, ref, data, len, TR__MSG_UNCOUNTED);
}

/* A user message to an actor of another scheduler: send_remote, with the
 * inline case written out here (no ref). */
static inline __attribute__((always_inline)) int
send_remote_user_inl(tr__sched_t *self, tr__sched_t *s, tr_pid_t from,
                     tr_pid_t to, const void *data, size_t len,
                     uint32_t children) {
  tr__sched_t *dst;
  if (TR__UNLIKELY(len > TR__INLINE_MAX))
    return send_remote(s, TR_MSG_USER, from, to, 0, data, len, children);
  if ((dst = tr__pid_owner(s->rt, to)) == NULL) return 0; /* a dead pid */
  tr__sig_push_inline(self, dst, TR_MSG_USER, to, from, 0, data, len,
                      children);
  return 0;
}

/* send_bytes' out-of-line copy (six arguments, so that the call is a
 * jump), which keeps the local path's frame small. */
static __attribute__((noinline)) int send_remote_user(tr__sched_t *s,
                                                      tr_pid_t from,
                                                      tr_pid_t to,
                                                      const void *data,
                                                      size_t len,
                                                      uint32_t children) {
  return send_remote_user_inl(NULL, s, from, to, data, len, children);
}

/* Sends validated bytes from sender `from` on scheduler s. */
static inline __attribute__((always_inline)) int send_bytes(tr__sched_t *s, tr_pid_t from, tr_pid_t to,
                      const void *data, size_t len) {
  tr__actor_t *a;
  tr_msg_t *m;
  int64_t children = validate(data, len);
  if (children < 0) return (int)children;
  if (TR__UNLIKELY(tr__pid_sched(to) != s->id))
    return send_remote_user(s, from, to, data, len, (uint32_t)children);
  a = tr__lookup(s, to);
  if (a == NULL) return 0; /* dead or stale pid: a silent no-op */
  m = msg_make(s, TR_MSG_USER, data, len, 0, (uint32_t)children);
  if (m == NULL) return TR_ENOMEM;
  m->from = from;
  deliver(a, m);
  return 0;
}

/* tr_send to an actor of another scheduler than s's, from a, its running
 * actor: the whole of it in one frame. */
static __attribute__((noinline)) int send_remote_entry(tr_pid_t to,
                                                       const void *data,
                                                       size_t len,
                                                       tr__actor_t *a,
                                                       tr__sched_t *s) {
  tr__actor_t *self __attribute__((cleanup(tr__actor_leave))) =
      tr__actor_enter_running(a);
  int64_t children = validate(data, len);
  if (children < 0) return (int)children;
  return send_remote_user_inl(s, s, self->pid, to, data, len,
                              (uint32_t)children);
}

/* tr_send to an actor of a's scheduler (a: the running actor). */
static __attribute__((noinline)) int send_local_entry(tr_pid_t to,
                                                      const void *data,
                                                      size_t len,
                                                      tr__actor_t *a) {
  tr__actor_t *self __attribute__((cleanup(tr__actor_leave))) =
      tr__actor_enter_running(a);
  return send_bytes(self->s, self->pid, to, data, len);
}

/* Only dispatches, with a jump to either path: their frames differ, and a
 * prologue spent on the wrong one costs a dozen instructions a message. */
int tr_send(tr_pid_t to, const void *data, size_t len) {
  tr__sched_t *s = tr__tls_sched;
  tr__actor_t *a;
  if (TR__UNLIKELY(s == NULL) || TR__UNLIKELY((a = s->current) == NULL))
    return tr__not_actor_error(s);
  /* (tr_send's arguments stay in their registers for either jump) */
  if (tr__pid_sched(to) != s->id) return send_remote_entry(to, data, len, a, s);
  return send_local_entry(to, data, len, a);
}

int tr_runtime_send(tr_runtime_t *rt, tr_pid_t to, const void *data,
                    size_t len) {
  tr__sched_t *cur = tr__tls_sched;
  tr__actor_t *self = tr__current();
  if (rt == NULL) return TR_EINVAL;
  if (cur != NULL && cur->rt != rt) return TR_EWRONGTHREAD;
  return send_bytes(cur != NULL ? cur : &rt->sched,
                    self ? self->pid : TR_PID_NONE, to, data, len);
}

int tr_send_obj(tr_pid_t to, const msgpack_object *obj) {
  msgpack_sbuffer sb;
  int err;
  if (obj == NULL) return TR_EINVAL;
  if (tr__current() == NULL) return tr_send(to, NULL, 0); /* the error */
  msgpack_sbuffer_init(&sb);
  err = tr__codec_pack_object(&sb, obj);
  if (err == 0) err = tr_send(to, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  return err;
}

/* Bodies up to this size are packed in one pass on the stack and copied
 * (well inside the stack reserve of the smallest stacks). */
#define TR__TAGGED_SMALL 512

/* Packs the tagged array straight into a message buffer: the runtime
 * wrote the bytes itself, so they need no validation pass. A small body
 * is packed in one pass into a stack buffer and copied into a message of
 * its exact size; a larger one (or a call with a bad argument) takes a
 * sizing pass, which also checks the arguments and counts the element
 * objects, then the writing pass into the message. A dead or stale pid is
 * checked after the arguments (their errors are reported either way) and
 * before the message is made. */
int tr_send_tagged_v(tr_pid_t to, const char *tag, const char *fmt,
                     va_list ap) {
  tr__sched_t *s, *dst = NULL;
  tr__actor_t *a = NULL;
  tr_msg_t *m;
  size_t hi = 0, len;
  uint32_t children;
  int err;
  uint8_t small[TR__TAGGED_SMALL];
  TR__ACTOR_OR_RETURN(self);
  len = tr__tagged_write_small(small, sizeof small, tag, fmt, ap, &children);
  if (len == 0 && (err = tr__tagged_size(tag, fmt, ap, &hi, &children)) != 0)
    return err;
  s = self->s;
  if (TR__UNLIKELY(tr__pid_sched(to) != s->id))
    dst = tr__pid_owner(s->rt, to);
  else
    a = tr__lookup(s, to);
  if (a == NULL && dst == NULL) return 0; /* dead or stale pid: a no-op */
  m = msg_init(s, TR_MSG_USER, len != 0 ? len : hi, 0, children);
  if (m == NULL) return TR_ENOMEM;
  if (len != 0) {
    memcpy(m->data, small, len);
  } else {
    len = tr__tagged_write(m->data, tag, fmt, ap);
    if (TR__UNLIKELY(len > TR_MSG_MAX)) {
      tr__msg_destroy(m);
      return TR_EMSGSIZE;
    }
  }
  m->len = len;
  m->from = self->pid;
  if (a != NULL) {
    tr__deliver(a, m);
  } else {
    m->to = to; /* dropped there if to is dead */
    tr__sig_push(dst, m);
  }
  return 0;
}

int tr_send_tagged(tr_pid_t to, const char *tag, const char *fmt, ...) {
  va_list ap;
  int err;
  va_start(ap, fmt);
  err = tr_send_tagged_v(to, tag, fmt, ap);
  va_end(ap);
  return err;
}

int tr_send_named(const char *name, const void *data, size_t len) {
  tr_pid_t pid;
  int err;
  if (tr__current() == NULL) return tr_send(TR_PID_NONE, data, len);
  if ((err = tr_whereis(name, &pid)) != 0) return err;
  return tr_send(pid, data, len);
}

/* ---- receiving ---------------------------------------------------------- */

/* a holds m until tr_msg_free: in the held1 slot if that is free (an actor
 * typically frees a message before it receives the next), else on the
 * held list. */
static inline void hold(tr__actor_t *a, tr_msg_t *m) {
  m->holder = a;
  if (TR__LIKELY(a->held1 == NULL)) {
    a->held1 = m;
    return;
  }
  m->prev = NULL;
  m->next = a->held;
  if (a->held) a->held->prev = m;
  a->held = m;
}

/* Unlinks m (whose predecessor is prev) from a's queue. */
static inline void unqueue(tr__actor_t *a, tr_msg_t *prev, tr_msg_t *m) {
  if (prev) prev->next = m->next;
  else a->mq_head = m->next;
  if (a->mq_tail == m) a->mq_tail = prev;
  a->mq_len--;
}

typedef int (*match_impl)(const tr_msg_t *m, void *arg);

static int match_any(const tr_msg_t *m, void *arg) {
  (void)arg;
  return m->kind != TR_MSG_REPLY;
}

/* Waits for a message (or the deadline). Returns 0 when woken by anything,
 * TR_ETIMEDOUT when the deadline passed. */
static int wait_msg(tr__actor_t *a, int timeout_ms, int *armed) {
  tr__sched_t *s = a->s;
  if (timeout_ms == 0 || a->timed_out) return TR_ETIMEDOUT;
  if (timeout_ms > 0 && !*armed) {
    a->timed_out = 0;
    tr__timer_arm(s, &a->wait_timer, tr__now_ms() + (uint64_t)timeout_ms);
    *armed = 1;
  }
  a->state = TR__ST_WAITING;
  tr__sched_block(s, a);
  tr__check_pending_exit(a);
  return 0;
}

/* The receive loop shared by every variant: scans new arrivals only, so a
 * selective receive over n queued messages costs O(n) in total. The user
 * predicate runs outside the "runtime code" region, so a fault in it is the
 * actor's own. */
static int recv_impl(tr__actor_t *a, tr_msg_t **out, match_impl match,
                     void *arg, int user_pred, int timeout_ms) {
  tr_msg_t *prev = NULL, *m = a->mq_head;
  int armed = 0, err = 0, ok;
  uint64_t removed;
  if (out == NULL || timeout_ms < -1) return TR_EINVAL;
  a->timed_out = 0;
  for (;;) {
    for (; m != NULL; prev = m, m = m->next) {
      if (user_pred) a->in_runtime--;
      ok = match(m, arg);
      if (user_pred) a->in_runtime++;
      if (ok) goto found;
    }
    removed = tr__mbox_removed(a);
    if ((err = wait_msg(a, timeout_ms, &armed)) != 0) break;
    if (TR__UNLIKELY(tr__mbox_removed(a) != removed))
      prev = NULL; /* a mailbox limit dropped queued messages: rescan */
    m = prev ? prev->next : a->mq_head;
  }
  if (armed) tr__timer_disarm(a->s, &a->wait_timer);
  *out = NULL;
  return err;
found:
  if (armed) tr__timer_disarm(a->s, &a->wait_timer);
  unqueue(a, prev, m);
  hold(a, m);
  *out = m;
  return 0;
}

/* tr_recv from a, the running actor, but no message at hand: takes the
 * oldest message, or waits forever for one, or leaves it to recv_impl. */
static __attribute__((noinline)) int recv_running(tr_msg_t **msg,
                                                  int timeout_ms,
                                                  tr__actor_t *a) {
  tr__actor_t *self __attribute__((cleanup(tr__actor_leave))) =
      tr__actor_enter_running(a);
  tr_msg_t *m;
  if (msg == NULL || timeout_ms < -1) return TR_EINVAL;
  for (;;) {
    m = self->mq_head;
    if (m == NULL && timeout_ms == -1) {
      self->state = TR__ST_WAITING;
      tr__sched_block(self->s, self);
      tr__check_pending_exit(self);
      continue;
    }
    if (m == NULL || m->kind == TR_MSG_REPLY) break;
    unqueue(self, NULL, m);
    hold(self, m);
    *msg = m;
    return 0;
  }
  return recv_impl(self, msg, match_any, NULL, 0, timeout_ms);
}

/* The oldest message, when there is one, is taken here in a few
 * instructions and no frame (no stack to reserve, nothing that can fault:
 * the stack check needs no runtime section); everything else jumps to
 * recv_running. */
int tr_recv(tr_msg_t **msg, int timeout_ms) {
  tr__sched_t *s = tr__tls_sched;
  tr__actor_t *a;
  tr_msg_t *m;
  if (TR__UNLIKELY(s == NULL) || TR__UNLIKELY((a = s->current) == NULL))
    return tr__not_actor_error(s);
  if ((m = a->mq_head) != NULL && TR__LIKELY(m->kind != TR_MSG_REPLY) &&
      TR__LIKELY(msg != NULL) && TR__LIKELY(timeout_ms >= -1) &&
      TR__LIKELY(tr__stack_pointer() >= a->stack_limit)) {
    unqueue(a, NULL, m);
    hold(a, m);
    *msg = m;
    return 0;
  }
  return recv_running(msg, timeout_ms, a);
}

typedef struct {
  const char *tag;
  size_t len;
} tag_arg_t;

static int match_tag(const tr_msg_t *m, void *arg) {
  const tag_arg_t *t = arg;
  return m->kind != TR_MSG_REPLY &&
         tr__codec_is_tag(m->data, m->len, t->tag, t->len);
}

int tr_recv_tag(tr_msg_t **msg, const char *tag, int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  tag_arg_t t;
  if (tag == NULL) return TR_EINVAL;
  t.tag = tag;
  t.len = strlen(tag);
  return recv_impl(a, msg, match_tag, &t, 0, timeout_ms);
}

typedef struct {
  tr_match_fn fn;
  void *arg;
} user_arg_t;

static int match_user(const tr_msg_t *m, void *arg) {
  const user_arg_t *u = arg;
  return m->kind != TR_MSG_REPLY && u->fn(m, u->arg);
}

int tr_recv_match(tr_msg_t **msg, tr_match_fn match, void *arg,
                  int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  user_arg_t u;
  if (match == NULL) return TR_EINVAL;
  u.fn = match;
  u.arg = arg;
  return recv_impl(a, msg, match_user, &u, 1, timeout_ms);
}

/* Internal selective receive with a runtime predicate (tr_call). */
int tr__recv_internal(tr__actor_t *a, tr_msg_t **msg, tr_match_fn match,
                      void *arg, int timeout_ms) {
  return recv_impl(a, msg, match, arg, 0, timeout_ms);
}

/* Frees every queued message that match accepts (demonitor flush). */
void tr__mailbox_drop_match(tr__actor_t *a, tr_match_fn match, void *arg) {
  tr_msg_t *prev = NULL, *m = a->mq_head, *next;
  for (; m != NULL; m = next) {
    next = m->next;
    if (match(m, arg)) {
      unqueue(a, prev, m);
      tr__msg_destroy(m);
    } else {
      prev = m;
    }
  }
}

size_t tr_mailbox_len(void) {
  tr__actor_t *a = tr__current();
  return a != NULL ? a->mq_len : 0;
}

/* ---- message accessors -------------------------------------------------- */

void tr_msg_free(tr_msg_t *m) {
  tr__actor_t *a;
  if (m == NULL) return;
  a = m->holder;
  if (a != NULL) {
    tr__sched_t *s = a->s; /* the calling thread's */
    unsigned cls = m->cls;
    if (TR__LIKELY(a->held1 == m)) {
      a->held1 = NULL;
    } else {
      if (m->prev) m->prev->next = m->next;
      else a->held = m->next;
      if (m->next) m->next->prev = m->prev;
    }
    /* The common case inline: a buffer of this scheduler's cache, with
     * no decode storage, back into the cache. */
    if (m->home == s->id && m->pool == NULL &&
        s->msg_cache[cls].n < s->msg_cache[cls].cap) {
      s->msg_cache[cls].v[s->msg_cache[cls].n++] = m; /* msg_cache_put's
                             * room case: the whole of it, inlined, costs
                             * W1 4 instructions a message more */
      return;
    }
  }
  tr__msg_destroy(m);
}

tr_msg_kind_t tr_msg_kind(const tr_msg_t *m) {
  return m ? (tr_msg_kind_t)m->kind : TR_MSG_USER;
}

tr_pid_t tr_msg_from(const tr_msg_t *m) { return m ? m->from : TR_PID_NONE; }

tr_ref_t tr_msg_ref(const tr_msg_t *m) { return m ? m->ref : 0; }

const void *tr_msg_data(const tr_msg_t *m, size_t *len) {
  if (m == NULL) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = m->len;
  return m->data;
}

/* Decodes m's body into m->obj and a pool of m->children objects. A body
 * whose sender did not count it (system messages, paths that bypass
 * send_bytes) is validated and counted here first. */
static int msg_decode(tr_msg_t *m) {
  tr__sched_t *s = tr__tls_sched;
  msgpack_object *pool = NULL;
  uint64_t n;
  int err;
  if (TR__UNLIKELY(m->children == TR__MSG_UNCOUNTED)) {
    if ((err = tr__codec_validate_count(m->data, m->len, &n)) != 0) return err;
    m->children = (uint32_t)n;
  }
  if (m->children != 0 && (pool = pool_alloc(s, m->children)) == NULL)
    return TR_ENOMEM;
  if ((err = tr__codec_decode_into(m->data, &m->obj, pool)) != 0) {
    if (pool != NULL) pool_free(s, pool, m->children);
    return err;
  }
  m->pool = pool;
  m->decoded = 1;
  return 0;
}

const msgpack_object *tr_msg_obj(const tr_msg_t *cm) {
  tr_msg_t *m = (tr_msg_t *)(uintptr_t)cm; /* the decode cache is not API state */
  if (m == NULL) return NULL;
  if (!m->decoded && msg_decode(m) != 0) return NULL;
  return &m->obj;
}

int tr_msg_reason(const tr_msg_t *m, tr_reason_t *reason) {
  if (m == NULL || reason == NULL || m->reason == NULL) return TR_EINVAL;
  *reason = *m->reason;
  return 0;
}

int tr_msg_is_tag(const tr_msg_t *m, const char *tag) {
  if (m == NULL || tag == NULL) return 0;
  return tr__codec_is_tag(m->data, m->len, tag, strlen(tag));
}

/* Reads the raw body: no decode, so nothing of m changes. */
int tr_msg_unpack_v(const tr_msg_t *m, const char *tag, const char *fmt,
                    va_list ap) {
  if (m == NULL) return TR_EINVAL;
  return tr__tagged_unpack(m->data, m->len, tag, fmt, ap);
}

int tr_msg_unpack(const tr_msg_t *m, const char *tag, const char *fmt, ...) {
  va_list ap;
  int err;
  va_start(ap, fmt);
  err = tr_msg_unpack_v(m, tag, fmt, ap);
  va_end(ap);
  return err;
}
