/*
 * UDP for actors: open (bind), send, receive.
 *
 * Receiving works like TCP reading: uv_udp_recv_start runs while the owner
 * waits; datagrams that arrive meanwhile are kept as records in the
 * handle's read-ahead (header + bytes), and receiving stops once one
 * arrives with nobody waiting or 64 KiB are held. Sends try
 * uv_udp_try_send first and fall back to a copied uv_udp_send.
 */
#include "io.h"

#include <stdlib.h>
#include <string.h>

typedef struct dgram {
  uint32_t len;
  int32_t flags;
  struct sockaddr_storage from;
} dgram_t;

#define DGRAM_SPAN(n) ((sizeof(dgram_t) + (n) + 7) & ~(size_t)7)

static void udp_recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags);

static void recv_stop(tr__io_handle_t *h) {
  if (!h->reading) return;
  uv_udp_recv_stop(&h->uv.udp);
  h->reading = 0;
}

/* Appends one datagram record; drops it when out of memory (UDP may). */
static void keep_dgram(tr__io_handle_t *h, const char *p, size_t n,
                       const struct sockaddr *addr, unsigned flags) {
  char *rec = tr__io_rbuf_reserve(h, DGRAM_SPAN(n));
  dgram_t d;
  if (rec == NULL) return;
  memset(&d, 0, sizeof(d));
  d.len = (uint32_t)n;
  d.flags = (int32_t)flags;
  if (addr != NULL)
    memcpy(&d.from, addr, addr->sa_family == AF_INET6
                              ? sizeof(struct sockaddr_in6)
                              : sizeof(struct sockaddr_in));
  memcpy(rec, &d, sizeof(d));
  memcpy(rec + sizeof(d), p, n);
}

static void udp_recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  tr__io_handle_t *h = u->data;
  if (nread == 0 && addr == NULL) return; /* nothing more to read */
  if (nread < 0) h->rerr = (int)nread;
  else keep_dgram(h, buf->base, (size_t)nread, addr, flags);
  if (h->waiter == NULL || h->rlen - h->roff >= TR__IO_RBUF_MAX) recv_stop(h);
  if (h->waiter != NULL) {
    tr__io_wake(h->s, h->waiter);
    tr__io_kick(h->s);
  }
}

int tr_udp_open(tr_io_t *out, const char *ip, int port) {
  TR__ACTOR_OR_RETURN(a);
  struct sockaddr_storage ss;
  tr__io_handle_t *h;
  int err;
  if (out == NULL) return TR_EINVAL;
  *out = TR_IO_NONE;
  if ((err = tr__io_addr(ip, port, &ss)) != 0) return err;
  if ((err = tr__io_handle_new(a, TR__IO_UDP, &h)) != 0) return err;
  if ((err = uv_udp_init(a->s->loop, &h->uv.udp)) != 0) {
    tr__io_handle_close(h, 0);
    return err;
  }
  h->uv_inited = 1;
  if ((err = uv_udp_bind(&h->uv.udp, (const struct sockaddr *)&ss, 0)) != 0) {
    tr__io_handle_close(h, 0);
    return err;
  }
  *out = h->id;
  return 0;
}

static void send_cb(uv_udp_send_t *req, int status) {
  tr__io_op_t *op = req->data;
  tr__io_op_complete(op, status);
}

int tr_udp_send(tr_io_t id, const void *buf, size_t len,
                const struct sockaddr *addr, int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *h;
  tr__io_op_t *op;
  uv_buf_t b;
  int err;
  if ((buf == NULL && len > 0) || addr == NULL || len > 65536) return TR_EINVAL;
  if ((err = tr__io_handle_get(a->s, a, id, TR__IO_UDP, &h)) != 0) return err;
  b = uv_buf_init((char *)buf, (unsigned)len);
  err = uv_udp_try_send(&h->uv.udp, &b, 1, addr);
  if (err >= 0) return 0;
  if (err != UV_EAGAIN) return err;
  if ((op = tr__io_op_new(a->s, len)) == NULL) return TR_ENOMEM;
  tr__io_user_copy(a, op->buf, buf, len);
  b = uv_buf_init(op->buf, (unsigned)len);
  if ((err = uv_udp_send(&op->req.udp, &h->uv.udp, &b, 1, addr, send_cb))) {
    tr__io_op_free(op);
    return err;
  }
  op->h = h;
  tr__io_op_attach(op, a);
  if ((err = tr__io_op_wait(a, op, tr__io_deadline(timeout_ms))) != 0) {
    tr__io_op_detach(op);
    return err;
  }
  err = op->status;
  tr__io_op_finish(op);
  return err;
}

/* Waits until a datagram or an error is there. */
static int recv_fill(tr__actor_t *a, tr__io_handle_t *h, uint64_t deadline) {
  int err = 0;
  while (h->rlen == h->roff && h->rerr == 0) {
    if (!h->reading) {
      err = uv_udp_recv_start(&h->uv.udp, tr__io_alloc_cb, udp_recv_cb);
      if (err != 0) break;
      h->reading = 1;
    }
    if ((err = tr__io_wait_handle(a, &h, deadline)) != 0) break;
  }
  tr__io_suspend_done(a);
  return err;
}

int tr_udp_recv(tr_io_t id, void *buf, size_t len,
                struct sockaddr_storage *from, int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *h;
  dgram_t d;
  size_t n;
  int err;
  if (buf == NULL && len > 0) return TR_EINVAL;
  if ((err = tr__io_handle_get(a->s, a, id, TR__IO_UDP, &h)) != 0) return err;
  if ((err = recv_fill(a, h, tr__io_deadline(timeout_ms))) != 0) return err;
  if (h->rlen == h->roff) {
    err = h->rerr; /* errors (e.g. ICMP refusals) are reported once */
    h->rerr = 0;
    return err;
  }
  memcpy(&d, h->rbuf + h->roff, sizeof(d));
  n = d.len < len ? d.len : len;
  tr__io_user_copy(a, buf, h->rbuf + h->roff + sizeof(d), n);
  if (from != NULL) tr__io_user_copy(a, from, &d.from, sizeof(d.from));
  tr__io_rbuf_consume(h, DGRAM_SPAN(d.len));
  return d.len > len ? TR_EMSGSIZE : (int)d.len;
}
