/*
 * TCP for actors: listen, accept, connect, read (blocking, exact, or into
 * the mailbox), write with backpressure, shutdown.
 *
 * Reading: uv_read_start runs only while the owner waits to read or has
 * just been handed data. Data lands in the scheduler's scratch buffer and
 * is appended to the handle's read-ahead; when data arrives and nobody is
 * waiting for it, or 64 KiB are held, reading stops (uv_read_stop) — so a
 * connection never buffers more than that, and a busy echo loop keeps its
 * epoll registration instead of toggling it on every read.
 *
 * Writing: uv_try_write straight from the caller's buffer first (no copy,
 * nothing retained); what the kernel does not take is copied, 256 KiB at a
 * time, into an op that uv_write owns, and the caller waits for each.
 */
#include "io.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static void tcp_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static int tcp_get(tr__actor_t *a, tr_io_t id, int kind,
                   tr__io_handle_t **h) {
  return tr__io_handle_get(a->s, a, id, kind, h);
}

/* A TCP handle owned by a, initialised on the loop. */
static int tcp_new(tr__actor_t *a, int kind, tr__io_handle_t **out) {
  tr__io_handle_t *h;
  int err = tr__io_handle_new(a, kind, &h);
  if (err != 0) return err;
  if ((err = uv_tcp_init(a->s->loop, &h->uv.tcp)) != 0) {
    tr__io_handle_close(h, 0);
    return err;
  }
  h->uv_inited = 1;
  *out = h;
  return 0;
}

/* ---- listen / accept ---------------------------------------------------- */

static void connection_cb(uv_stream_t *srv, int status) {
  tr__io_handle_t *h = srv->data;
  if (status < 0) h->accept_err = status;
  if (h->waiter == NULL) return; /* libuv keeps the connection for later */
  tr__io_wake(h->s, h->waiter);
  tr__io_kick(h->s);
}

int tr_tcp_listen(tr_io_t *srv, const char *ip, int port, int backlog) {
  TR__ACTOR_OR_RETURN(a);
  struct sockaddr_storage ss;
  tr__io_handle_t *h;
  int err;
  if (srv == NULL) return TR_EINVAL;
  *srv = TR_IO_NONE;
  if ((err = tr__io_addr(ip, port, &ss)) != 0) return err;
  if ((err = tcp_new(a, TR__IO_TCP_LISTEN, &h)) != 0) return err;
  err = uv_tcp_bind(&h->uv.tcp, (const struct sockaddr *)&ss, 0);
  if (err == 0)
    err = uv_listen(&h->uv.stream, backlog > 0 ? backlog : 511, connection_cb);
  if (err != 0) {
    tr__io_handle_close(h, 0);
    return err;
  }
  *srv = h->id;
  return 0;
}

int tr_tcp_accept(tr_io_t srv, tr_io_t *conn, int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  uint64_t deadline = tr__io_deadline(timeout_ms);
  tr__io_handle_t *h, *c;
  int err;
  if (conn == NULL) return TR_EINVAL;
  *conn = TR_IO_NONE;
  if ((err = tcp_get(a, srv, TR__IO_TCP_LISTEN, &h)) != 0) return err;
  if ((err = tcp_new(a, TR__IO_TCP, &c)) != 0) return err;
  while ((err = uv_accept(&h->uv.stream, &c->uv.stream)) == UV_EAGAIN) {
    if (h->accept_err != 0) {
      err = h->accept_err;
      h->accept_err = 0;
      break;
    }
    if ((err = tr__io_wait_handle(a, &h, deadline)) != 0) break;
  }
  tr__io_suspend_done(a);
  if (err != 0) {
    tr__io_handle_close(c, 0);
    return err;
  }
  *conn = c->id;
  return 0;
}

/* ---- connect ------------------------------------------------------------ */

static void connect_cb(uv_connect_t *req, int status) {
  tr__io_op_t *op = req->data;
  tr__io_op_complete(op, status);
}

int tr_tcp_connect_addr(tr_io_t *conn, const struct sockaddr *addr,
                        int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  uint64_t deadline = tr__io_deadline(timeout_ms);
  tr__io_handle_t *c;
  tr__io_op_t *op;
  int err;
  if (conn == NULL || addr == NULL) return TR_EINVAL;
  *conn = TR_IO_NONE;
  if ((err = tcp_new(a, TR__IO_TCP, &c)) != 0) return err;
  if ((op = tr__io_op_new(a->s, 0)) == NULL) {
    tr__io_handle_close(c, 0);
    return TR_ENOMEM;
  }
  if ((err = uv_tcp_connect(&op->req.connect, &c->uv.tcp, addr, connect_cb))) {
    tr__io_op_free(op);
    tr__io_handle_close(c, 0);
    return err;
  }
  tr__io_op_attach(op, a);
  err = tr__io_op_wait(a, op, deadline);
  if (err == 0) {
    err = op->status;
    tr__io_op_finish(op);
  } else {
    tr__io_op_detach(op); /* closing c cancels it: UV_ECANCELED */
  }
  if (err != 0) {
    tr__io_handle_close(c, 0);
    return err;
  }
  *conn = c->id;
  return 0;
}

int tr_tcp_connect(tr_io_t *conn, const char *ip, int port, int timeout_ms) {
  struct sockaddr_storage ss;
  int err;
  if (ip == NULL) return TR_EINVAL;
  if ((err = tr__io_addr(ip, port, &ss)) != 0) return err;
  return tr_tcp_connect_addr(conn, (const struct sockaddr *)&ss, timeout_ms);
}

/* ---- reading ------------------------------------------------------------ */

static int read_start(tr__io_handle_t *h) {
  int err;
  if (h->reading || h->rerr != 0) return 0;
  err = uv_read_start(&h->uv.stream, tr__io_alloc_cb, tcp_read_cb);
  if (err != 0) return err;
  h->reading = 1;
  return 0;
}

static void read_stop(tr__io_handle_t *h) {
  if (!h->reading) return;
  uv_read_stop(&h->uv.stream);
  h->reading = 0;
}

/* Packs ["tcp", id, <bin>] / ["tcp_closed", id] / ["tcp_error", id, code]
 * and delivers it to the owner. */
static void deliver_async(tr__io_handle_t *h) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t n = h->rlen - h->roff;
  tr_msg_t *m = NULL;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  if (n > 0) {
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "tcp", 3);
    msgpack_pack_uint64(&pk, h->id);
    msgpack_pack_bin_with_body(&pk, h->rbuf + h->roff, n);
  } else if (h->rerr == UV_EOF) {
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "tcp_closed", 10);
    msgpack_pack_uint64(&pk, h->id);
  } else {
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "tcp_error", 9);
    msgpack_pack_uint64(&pk, h->id);
    msgpack_pack_int(&pk, h->rerr);
  }
  if (sb.data != NULL) m = tr__msg_new(TR_MSG_USER, sb.data, sb.size, 0);
  msgpack_sbuffer_destroy(&sb);
  if (m == NULL) return; /* out of memory: stays armed, retried on next data */
  h->async = 0;
  if (n > 0) tr__io_rbuf_consume(h, n);
  tr__deliver(h->owner, m);
}

static void tcp_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  tr__io_handle_t *h = st->data;
  tr__sched_t *s = h->s;
  if (nread == 0) return; /* EAGAIN */
  if (nread > 0) {
    if (tr__io_rbuf_append(h, buf->base, (size_t)nread) != 0)
      h->rerr = TR_ENOMEM;
  } else {
    h->rerr = (int)nread;
  }
  if (h->async) deliver_async(h);
  if (h->rerr != 0 || h->rlen - h->roff >= TR__IO_RBUF_MAX ||
      (h->waiter == NULL && h->rlen > h->roff))
    read_stop(h); /* nobody to hand it to: keep it, read no further */
  tr__io_wake(s, h->waiter);
  tr__io_kick(s); /* attached: run the reader (or mailbox owner) now */
}

/* Waits until h has data or an error. */
static int read_fill(tr__actor_t *a, tr__io_handle_t *h, uint64_t deadline) {
  int err = 0;
  while (h->rlen == h->roff && h->rerr == 0) {
    if ((err = read_start(h)) != 0) break;
    if ((err = tr__io_wait_handle(a, &h, deadline)) != 0) break;
  }
  tr__io_suspend_done(a);
  return err;
}

/* Copies up to len buffered bytes to the caller. */
static size_t read_take(tr__actor_t *a, tr__io_handle_t *h, char *buf,
                        size_t len) {
  size_t n = h->rlen - h->roff;
  if (n > len) n = len;
  tr__io_user_copy(a, buf, h->rbuf + h->roff, n);
  tr__io_rbuf_consume(h, n);
  return n;
}

static int stream_for_read(tr__actor_t *a, tr_io_t id, tr__io_handle_t **h) {
  int err = tcp_get(a, id, TR__IO_TCP, h);
  if (err == 0 && (*h)->async) err = TR_EBUSY;
  return err;
}

int tr_tcp_read(tr_io_t id, void *buf, size_t len, int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *h;
  int err;
  if (buf == NULL || len == 0) return TR_EINVAL;
  if ((err = stream_for_read(a, id, &h)) != 0) return err;
  if (len > INT_MAX) len = INT_MAX;
  if (h->rlen == h->roff && h->rerr == 0 &&
      (err = read_fill(a, h, tr__io_deadline(timeout_ms))) != 0)
    return err;
  if (h->rlen > h->roff) return (int)read_take(a, h, buf, len);
  return h->rerr;
}

int tr_tcp_read_exactly(tr_io_t id, void *buf, size_t len, size_t *got,
                        int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  uint64_t deadline = tr__io_deadline(timeout_ms);
  tr__io_handle_t *h;
  size_t done = 0;
  int err = 0;
  if (got) *got = 0;
  if (buf == NULL && len > 0) return TR_EINVAL;
  if ((err = stream_for_read(a, id, &h)) != 0) return err;
  while (done < len) {
    if ((err = read_fill(a, h, deadline)) != 0) break;
    if (h->rlen == h->roff) {
      err = h->rerr;
      break;
    }
    done += read_take(a, h, (char *)buf + done, len - done);
    if (got) *got = done;
  }
  return err;
}

int tr_tcp_read_async(tr_io_t id) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *h;
  int err;
  if ((err = stream_for_read(a, id, &h)) != 0) return err;
  h->async = 1;
  if (h->rlen > h->roff || h->rerr != 0) {
    deliver_async(h);
    return h->async ? TR_ENOMEM : 0;
  }
  if ((err = read_start(h)) != 0) h->async = 0;
  return err;
}

/* ---- writing ------------------------------------------------------------ */

static void write_cb(uv_write_t *req, int status) {
  tr__io_op_t *op = req->data;
  tr__io_op_complete(op, status);
}

/* Hands one chunk to uv_write through a copy and waits for it. */
static int write_chunk(tr__actor_t *a, tr__io_handle_t *h, const char *p,
                       size_t n, uint64_t deadline) {
  tr__io_op_t *op = tr__io_op_new(a->s, n);
  uv_buf_t b;
  int err;
  if (op == NULL) return TR_ENOMEM;
  tr__io_user_copy(a, op->buf, p, n);
  b = uv_buf_init(op->buf, (unsigned)n);
  if ((err = uv_write(&op->req.write, &h->uv.stream, &b, 1, write_cb)) != 0) {
    tr__io_op_free(op);
    return err;
  }
  op->h = h;
  tr__io_op_attach(op, a);
  if ((err = tr__io_op_wait(a, op, deadline)) != 0) {
    tr__io_op_detach(op); /* completes in the background */
    return err;
  }
  err = op->status;
  tr__io_op_finish(op);
  return err;
}

int tr_tcp_write(tr_io_t id, const void *buf, size_t len, int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  uint64_t deadline = tr__io_deadline(timeout_ms);
  const char *p = buf;
  tr__io_handle_t *h;
  int err;
  if (buf == NULL && len > 0) return TR_EINVAL;
  if ((err = tcp_get(a, id, TR__IO_TCP, &h)) != 0) return err;
  while (len > 0) {
    size_t n = len < TR__IO_CHUNK ? len : TR__IO_CHUNK;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = uv_try_write(&h->uv.stream, &b, 1);
    if (w > 0) {
      p += w;
      len -= (size_t)w;
      continue;
    }
    if (w != UV_EAGAIN && w != UV_ENOSYS) return w;
    if ((err = write_chunk(a, h, p, n, deadline)) != 0) return err;
    p += n;
    len -= n;
  }
  return 0;
}

/* ---- shutdown, options, addresses --------------------------------------- */

static void shutdown_cb(uv_shutdown_t *req, int status) {
  tr__io_op_t *op = req->data;
  tr__io_op_complete(op, status);
}

int tr_tcp_shutdown(tr_io_t id, int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *h;
  tr__io_op_t *op;
  int err;
  if ((err = tcp_get(a, id, TR__IO_TCP, &h)) != 0) return err;
  if ((op = tr__io_op_new(a->s, 0)) == NULL) return TR_ENOMEM;
  if ((err = uv_shutdown(&op->req.shutdown, &h->uv.stream, shutdown_cb))) {
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

int tr_tcp_close_reset(tr_io_t id) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *h;
  int err;
  if ((err = tcp_get(a, id, TR__IO_TCP, &h)) != 0) return err;
  tr__io_handle_close(h, 1);
  return 0;
}

int tr_tcp_nodelay(tr_io_t id, int on) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *h;
  int err;
  if ((err = tcp_get(a, id, TR__IO_TCP, &h)) != 0) return err;
  return uv_tcp_nodelay(&h->uv.tcp, on != 0);
}

static int sock_addr(tr_io_t id, struct sockaddr_storage *ss, int peer) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *h;
  int len = (int)sizeof(*ss), err;
  if (ss == NULL) return TR_EINVAL;
  if ((err = tcp_get(a, id, 0, &h)) != 0) return err;
  memset(ss, 0, sizeof(*ss));
  if (h->kind == TR__IO_UDP)
    return peer ? uv_udp_getpeername(&h->uv.udp, (struct sockaddr *)ss, &len)
                : uv_udp_getsockname(&h->uv.udp, (struct sockaddr *)ss, &len);
  if (h->kind == TR__IO_FILE) return TR_EINVAL;
  return peer ? uv_tcp_getpeername(&h->uv.tcp, (struct sockaddr *)ss, &len)
              : uv_tcp_getsockname(&h->uv.tcp, (struct sockaddr *)ss, &len);
}

int tr_io_sockname(tr_io_t id, struct sockaddr_storage *addr) {
  return sock_addr(id, addr, 0);
}

int tr_io_peername(tr_io_t id, struct sockaddr_storage *addr) {
  return sock_addr(id, addr, 1);
}

int tr_io_port(tr_io_t id) {
  struct sockaddr_storage ss;
  int err = sock_addr(id, &ss, 0);
  return err != 0 ? err : tr_addr_port(&ss);
}
