/*
 * The libuv bridge, common part: handle ids and ownership, requests that
 * outlive the actor that made them, waiting with deadlines, and releasing
 * everything an actor owned when it exits.
 *
 * The rule this file enforces: libuv never holds a pointer into an actor's
 * stack. Data goes through runtime-owned buffers (a handle's read-ahead, an
 * op's buffer) and is copied to or from the caller while the caller runs.
 * A request whose actor gave up or died is "detached" and frees itself
 * when libuv completes it; a handle whose owner died is closed.
 */
#include "io.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-scheduler state ------------------------------------------------ */

/* libuv writes with write(2): a peer that went away raises SIGPIPE, which
 * would kill the process. Ignore it unless the host chose a disposition. */
static void ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL ||
      (sa.sa_flags & SA_SIGINFO))
    return;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

tr__io_sched_t *tr__io_sched(tr__sched_t *s) {
  tr__io_sched_t *io = s->io;
  if (TR__LIKELY(io != NULL)) return io;
  if ((io = calloc(1, sizeof(*io))) == NULL) return NULL;
  if ((io->scratch = malloc(TR__IO_RBUF_MAX)) == NULL) {
    free(io);
    return NULL;
  }
  ignore_sigpipe();
  s->io = io;
  return io;
}

void tr__io_destroy(tr__sched_t *s) {
  tr__io_sched_t *io = s->io;
  if (io == NULL) return;
  tr__slots_destroy(&io->ids);
  free(io->scratch);
  free(io);
  s->io = NULL;
}

static void buffered_add(tr__sched_t *s, size_t n) {
  tr__io_sched_t *io = s->io;
  io->buffered += n;
  if (io->buffered > io->buffered_peak) io->buffered_peak = io->buffered;
}

static void buffered_sub(tr__sched_t *s, size_t n) { s->io->buffered -= n; }

/* ---- handles ------------------------------------------------------------ */

static void owner_link(tr__io_handle_t *h, tr__actor_t *a) {
  h->owner = a;
  h->o_prev = NULL;
  h->o_next = a->io_handles;
  if (a->io_handles) a->io_handles->o_prev = h;
  a->io_handles = h;
}

static void owner_unlink(tr__io_handle_t *h) {
  tr__actor_t *a = h->owner;
  if (a == NULL) return;
  if (h->o_prev) h->o_prev->o_next = h->o_next;
  else a->io_handles = h->o_next;
  if (h->o_next) h->o_next->o_prev = h->o_prev;
  h->o_next = h->o_prev = NULL;
  h->owner = NULL;
}

int tr__io_handle_new(tr__actor_t *a, int kind, tr__io_handle_t **out) {
  tr__sched_t *s = a->s;
  tr__io_sched_t *io = tr__io_sched(s);
  tr__io_handle_t *h;
  uint32_t idx, gen;
  if (io == NULL || (h = calloc(1, sizeof(*h))) == NULL) return TR_ENOMEM;
  if (tr__slots_alloc(&io->ids, h, &idx, &gen) != 0) {
    free(h);
    return TR_ENOMEM;
  }
  h->kind = kind;
  h->s = s;
  h->fd = -1;
  h->id = ((uint64_t)gen << 32) | ((uint64_t)s->id << TR__IDX_BITS) | idx;
  h->uv.handle.data = h;
  owner_link(h, a);
  s->handles_open++;
  *out = h;
  return 0;
}

int tr__io_handle_get(tr__sched_t *s, tr__actor_t *a, tr_io_t id, int kind,
                      tr__io_handle_t **out) {
  uint32_t idx = (uint32_t)(id & TR__IDX_MASK);
  tr__io_handle_t *h;
  if (s == NULL || s->io == NULL || idx >= s->io->ids.cap) return UV_EBADF;
  h = s->io->ids.ptr[idx];
  if (h == NULL || h->id != id || h->closing) return UV_EBADF;
  if (a != NULL && h->owner != a) return UV_EPERM;
  if (kind != 0 && h->kind != kind) return TR_EINVAL;
  *out = h;
  return 0;
}

static void handle_free(tr__io_handle_t *h) {
  tr__sched_t *s = h->s;
  if (h->rbuf) {
    buffered_sub(s, h->rcap);
    free(h->rbuf);
  }
  s->handles_open--;
  free(h);
}

static void uv_closed_cb(uv_handle_t *uh) { handle_free(uh->data); }

static void file_close_cb(uv_fs_t *req) {
  tr__io_op_complete(req->data, (int)req->result);
}

/* Closes a file descriptor in the background (detached op). */
static void file_close_fd(tr__sched_t *s, uv_file fd) {
  tr__io_op_t *op = tr__io_op_new(s, 0);
  if (op == NULL || uv_fs_close(s->loop, &op->req.fs, fd, file_close_cb) != 0) {
    uv_fs_t req; /* out of memory: close synchronously instead */
    if (op != NULL) tr__io_op_free(op);
    uv_fs_close(s->loop, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    return;
  }
  op->fs = 1;
}

void tr__io_file_settle(tr__io_handle_t *h) {
  if (!h->closing || h->inflight > 0) return;
  if (h->fd >= 0) file_close_fd(h->s, h->fd);
  h->fd = -1;
  handle_free(h);
}

void tr__io_handle_close(tr__io_handle_t *h, int reset) {
  tr__sched_t *s = h->s;
  if (h->closing) return;
  h->closing = 1;
  tr__slots_release(&s->io->ids, (uint32_t)(h->id & TR__IDX_MASK));
  owner_unlink(h);
  tr__io_wake(s, h->waiter); /* its call sees the handle gone: UV_ECANCELED */
  h->waiter = NULL;
  if (h->kind == TR__IO_FILE) {
    tr__io_file_settle(h);
    return;
  }
  if (!h->uv_inited) {
    handle_free(h);
    return;
  }
  if (reset && h->kind == TR__IO_TCP &&
      uv_tcp_close_reset(&h->uv.tcp, uv_closed_cb) == 0)
    return;
  uv_close(&h->uv.handle, uv_closed_cb);
}

/* ---- read-ahead buffer -------------------------------------------------- */

char *tr__io_rbuf_reserve(tr__io_handle_t *h, size_t n) {
  char *p;
  if (h->roff > 0 && h->roff == h->rlen) h->roff = h->rlen = 0;
  if (h->rlen + n > h->rcap && h->roff > 0) {
    memmove(h->rbuf, h->rbuf + h->roff, h->rlen - h->roff);
    h->rlen -= h->roff;
    h->roff = 0;
  }
  if (h->rlen + n > h->rcap) {
    size_t ncap = h->rcap ? h->rcap : 4096;
    char *nb;
    while (ncap < h->rlen + n) ncap *= 2;
    if ((nb = realloc(h->rbuf, ncap)) == NULL) return NULL;
    buffered_add(h->s, ncap - h->rcap);
    h->rbuf = nb;
    h->rcap = ncap;
  }
  p = h->rbuf + h->rlen;
  h->rlen += n;
  return p;
}

int tr__io_rbuf_append(tr__io_handle_t *h, const void *p, size_t n) {
  char *dst = tr__io_rbuf_reserve(h, n);
  if (dst == NULL) return TR_ENOMEM;
  memcpy(dst, p, n);
  return 0;
}

/* Drops n bytes from the front; an emptied large buffer is given back. */
void tr__io_rbuf_consume(tr__io_handle_t *h, size_t n) {
  h->roff += n;
  if (h->roff < h->rlen) return;
  h->roff = h->rlen = 0;
  if (h->rcap > 4096) {
    buffered_sub(h->s, h->rcap);
    free(h->rbuf);
    h->rbuf = NULL;
    h->rcap = 0;
  }
}

void tr__io_alloc_cb(uv_handle_t *uh, size_t suggested, uv_buf_t *buf) {
  tr__io_handle_t *h = uh->data;
  size_t room = TR__IO_RBUF_MAX;
  (void)suggested;
  if (h->kind == TR__IO_TCP) {
    size_t held = h->rlen - h->roff;
    room = held < TR__IO_RBUF_MAX ? TR__IO_RBUF_MAX - held : 1;
  }
  buf->base = h->s->io->scratch;
  buf->len = room;
}

/* ---- ops ---------------------------------------------------------------- */

tr__io_op_t *tr__io_op_new(tr__sched_t *s, size_t cap) {
  tr__io_op_t *op;
  if (cap > SIZE_MAX - sizeof(*op)) return NULL;
  if (tr__io_sched(s) == NULL || (op = malloc(sizeof(*op) + cap)) == NULL)
    return NULL;
  memset(op, 0, sizeof(*op));
  op->s = s;
  op->cap = cap;
  op->req.req.data = op;
  buffered_add(s, cap);
  s->handles_open++;
  return op;
}

void tr__io_op_free(tr__io_op_t *op) {
  tr__sched_t *s = op->s;
  if (op->on_free) op->on_free(op);
  if (op->fs) uv_fs_req_cleanup(&op->req.fs);
  buffered_sub(s, op->cap);
  s->handles_open--;
  free(op);
}

void tr__io_op_attach(tr__io_op_t *op, tr__actor_t *a) {
  op->waiter = a;
  op->a_prev = NULL;
  op->a_next = a->io_ops;
  if (a->io_ops) a->io_ops->a_prev = op;
  a->io_ops = op;
}

static void op_unlink(tr__io_op_t *op) {
  tr__actor_t *a = op->waiter;
  if (a == NULL) return;
  if (op->a_prev) op->a_prev->a_next = op->a_next;
  else a->io_ops = op->a_next;
  if (op->a_next) op->a_next->a_prev = op->a_prev;
  op->a_next = op->a_prev = NULL;
  op->waiter = NULL;
}

int tr__io_op_wait(tr__actor_t *a, tr__io_op_t *op, uint64_t deadline) {
  int err = 0;
  while (!op->done && (err = tr__io_suspend(a, deadline)) == 0) {
  }
  tr__io_suspend_done(a);
  return op->done ? 0 : err;
}

void tr__io_op_finish(tr__io_op_t *op) {
  op_unlink(op);
  tr__io_op_free(op);
}

void tr__io_op_detach(tr__io_op_t *op) {
  op_unlink(op);
  if (op->done) tr__io_op_free(op);
}

void tr__io_op_complete(tr__io_op_t *op, int status) {
  tr__sched_t *s = op->s;
  tr__io_handle_t *h = op->h;
  op->done = 1;
  op->status = status;
  if (h != NULL && h->kind == TR__IO_FILE) {
    h->inflight--;
    op->h = NULL;
    tr__io_file_settle(h);
  }
  if (op->waiter == NULL) {
    tr__io_op_free(op);
    return;
  }
  tr__io_wake(s, op->waiter);
  tr__io_kick(s); /* op may be gone after this */
}

/* ---- waiting ------------------------------------------------------------ */

uint64_t tr__io_deadline(int timeout_ms) {
  if (timeout_ms < 0) return 0;
  if (timeout_ms == 0) return 1; /* already passed */
  return tr__now_ms() + (uint64_t)timeout_ms;
}

int tr__io_suspend(tr__actor_t *a, uint64_t deadline) {
  tr__sched_t *s = a->s;
  if (deadline != 0) {
    if (a->wait_timer.heap_idx == SIZE_MAX) {
      a->timed_out = 0;
      if (tr__now_ms() >= deadline) return TR_ETIMEDOUT;
      tr__timer_arm(s, &a->wait_timer, deadline);
    } else if (a->timed_out) {
      return TR_ETIMEDOUT;
    }
  }
  a->state = TR__ST_WAITING;
  tr__sched_block(s, a);
  tr__check_pending_exit(a);
  return 0;
}

void tr__io_suspend_done(tr__actor_t *a) {
  tr__timer_disarm(a->s, &a->wait_timer);
  a->timed_out = 0;
}

void tr__io_kick(tr__sched_t *s) {
  if (!s->rt->attached || s->in_drain || s->current != NULL ||
      s->rq_head == NULL)
    return;
  tr__sched_drain(s);
  tr__runtime_check_stop(s);
}

/* Blocks a until something happens on h. h may be closed meanwhile (by
 * host code, a cleanup, or tr_io_close elsewhere) and then freed: so h is
 * looked up again by id afterwards and never touched if it is gone. */
int tr__io_wait_handle(tr__actor_t *a, tr__io_handle_t **hp, uint64_t deadline) {
  tr__io_handle_t *h = *hp;
  tr_io_t id = h->id;
  int kind = h->kind, err;
  h->waiter = a;
  err = tr__io_suspend(a, deadline);
  if (tr__io_handle_get(a->s, a, id, kind, hp) != 0) {
    *hp = NULL;
    return UV_ECANCELED;
  }
  (*hp)->waiter = NULL;
  return err;
}

void tr__io_wake(tr__sched_t *s, tr__actor_t *a) {
  if (a == NULL || a->state != TR__ST_WAITING) return;
  tr__sched_wake(s, a);
}

void tr__io_user_copy(tr__actor_t *a, void *dst, const void *src, size_t n) {
  if (n == 0) return;
  a->in_runtime--;
  memcpy(dst, src, n);
  a->in_runtime++;
}

/* ---- actor exit ----------------------------------------------------------- */

/* Runs while a is reaped, on the scheduler stack: closes every handle a
 * owned and detaches every request it was waiting for. */
void tr__io_release(tr__actor_t *a) {
  tr__io_op_t *op;
  while ((op = a->io_ops) != NULL) tr__io_op_detach(op);
  while (a->io_handles != NULL) tr__io_handle_close(a->io_handles, 0);
}

/* ---- ownership API -------------------------------------------------------- */

/* The caller: the current actor, or NULL with *s set when called from the
 * runtime's thread outside any actor (cleanups, the host). */
static int io_caller(tr__sched_t **s, tr__actor_t **a) {
  *s = tr__tls_sched;
  *a = tr__current();
  return *s != NULL ? 0 : TR_ENOTACTOR;
}

int tr_io_close(tr_io_t id) {
  tr__sched_t *s;
  tr__actor_t *a;
  tr__io_handle_t *h;
  int err;
  if ((err = io_caller(&s, &a)) != 0) return err;
  if ((err = tr__io_handle_get(s, a, id, 0, &h)) != 0) return err;
  tr__io_handle_close(h, 0);
  return 0;
}

int tr_io_give(tr_io_t id, tr_pid_t to) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *h;
  tr__actor_t *b;
  int err;
  if ((err = tr__io_handle_get(a->s, a, id, 0, &h)) != 0) return err;
  if ((b = tr__lookup(a->s, to)) == NULL)
    /* A handle lives on its scheduler's loop: the new owner must too. */
    return tr__pid_sched(to) != a->s->id && tr__pid_alive(a->s->rt, to)
               ? TR_ENOTSUP
               : TR_ENOPROC;
  if (b == a) return 0;
  owner_unlink(h);
  owner_link(h, b);
  return 0;
}

tr_pid_t tr_io_owner(tr_io_t id) {
  tr__io_handle_t *h;
  if (tr__io_handle_get(tr__tls_sched, NULL, id, 0, &h) != 0) return TR_PID_NONE;
  return h->owner != NULL ? h->owner->pid : TR_PID_NONE;
}

/* ---- addresses ------------------------------------------------------------ */

int tr__io_addr(const char *ip, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (port < 0 || port > 65535) return TR_EINVAL;
  if (ip == NULL) ip = "0.0.0.0";
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return TR_EINVAL;
}

int tr_ip_addr(const char *ip, int port, struct sockaddr_storage *addr) {
  if (addr == NULL) return TR_EINVAL;
  return tr__io_addr(ip, port, addr);
}

int tr_addr_port(const struct sockaddr_storage *addr) {
  if (addr == NULL) return TR_EINVAL;
  if (addr->ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)addr)->sin_port);
  if (addr->ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
  return TR_EINVAL;
}

size_t tr__io_buffered(tr_runtime_t *rt, size_t *peak) {
  tr__io_sched_t *io = rt->sched.io;
  if (peak) *peak = io ? io->buffered_peak : 0;
  return io ? io->buffered : 0;
}
