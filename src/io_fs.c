/*
 * Files for actors, on libuv's threadpool: open, read, write, close, stat,
 * fstat, unlink.
 *
 * A threadpool thread may still be reading into or writing from a request's
 * buffer after its actor died, so the buffer is always the op's own (never
 * the caller's, never an actor's arena): reads are copied out when the
 * caller resumes, writes are copied in before the request starts. A file
 * handle closed while a request still runs on its descriptor keeps the
 * descriptor open until that request is done, so a reused fd number never
 * receives a stale read or write.
 */
#include "io.h"

#include <limits.h>
#include <string.h>

static void fs_cb(uv_fs_t *req) {
  tr__io_op_t *op = req->data;
  tr__io_op_complete(op, req->result < 0 ? (int)req->result : 0);
}

/* An open that completed after its caller left: close what it opened. */
static void open_orphaned(tr__io_op_t *op) {
  if (op->done && op->req.fs.result >= 0) {
    uv_fs_t req;
    uv_fs_close(op->s->loop, &req, (uv_file)op->req.fs.result, NULL);
    uv_fs_req_cleanup(&req);
  }
}

/* A fs op on f (NULL: none), cap bytes of buffer. */
static tr__io_op_t *fs_op(tr__actor_t *a, tr__io_handle_t *f, size_t cap) {
  tr__io_op_t *op = tr__io_op_new(a->s, cap);
  if (op == NULL) return NULL;
  op->fs = 1;
  op->h = f;
  return op;
}

/* Waits for a submitted fs op (err: uv_fs_* result). On return the op is
 * linked to a, or already gone when submission failed. */
static int fs_submit(tr__actor_t *a, tr__io_op_t *op, int err) {
  if (err < 0) {
    op->h = NULL;
    tr__io_op_free(op); /* uv_fs_req_cleanup is safe on a failed request */
    return err;
  }
  if (op->h != NULL) op->h->inflight++;
  tr__io_op_attach(op, a);
  return tr__io_op_wait(a, op, 0);
}

static int file_get(tr__actor_t *a, tr_io_t id, tr__io_handle_t **f) {
  return tr__io_handle_get(a->s, a, id, TR__IO_FILE, f);
}

int tr_fs_open(tr_io_t *out, const char *path, int flags, int mode) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *f;
  tr__io_op_t *op;
  int err;
  if (out == NULL || path == NULL) return TR_EINVAL;
  *out = TR_IO_NONE;
  if ((op = fs_op(a, NULL, 0)) == NULL) return TR_ENOMEM;
  op->on_free = open_orphaned;
  err = uv_fs_open(a->s->loop, &op->req.fs, path, flags, mode, fs_cb);
  if ((err = fs_submit(a, op, err)) != 0) return err; /* only if not linked */
  if ((err = op->status) == 0) err = tr__io_handle_new(a, TR__IO_FILE, &f);
  if (err == 0) {
    f->fd = (uv_file)op->req.fs.result;
    op->on_free = NULL; /* the handle owns the descriptor now */
    *out = f->id;
  }
  tr__io_op_finish(op);
  return err;
}

int tr_fs_read(tr_io_t id, void *buf, size_t len, int64_t offset) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *f;
  tr__io_op_t *op;
  uv_buf_t b;
  int err, n;
  if (buf == NULL || len == 0) return TR_EINVAL;
  if ((err = file_get(a, id, &f)) != 0) return err;
  if (len > TR__IO_CHUNK) len = TR__IO_CHUNK;
  if ((op = fs_op(a, f, len)) == NULL) return TR_ENOMEM;
  b = uv_buf_init(op->buf, (unsigned)len);
  err = uv_fs_read(a->s->loop, &op->req.fs, f->fd, &b, 1, offset, fs_cb);
  if ((err = fs_submit(a, op, err)) != 0) return err;
  if ((err = op->status) == 0) {
    n = (int)op->req.fs.result;
    tr__io_user_copy(a, buf, op->buf, (size_t)n);
    err = n;
  }
  tr__io_op_finish(op);
  return err;
}

/* Writes one chunk; returns the count written or an error. */
static int fs_write_chunk(tr__actor_t *a, tr__io_handle_t *f, const char *p,
                          size_t n, int64_t offset) {
  tr__io_op_t *op = fs_op(a, f, n);
  uv_buf_t b;
  int err;
  if (op == NULL) return TR_ENOMEM;
  tr__io_user_copy(a, op->buf, p, n);
  b = uv_buf_init(op->buf, (unsigned)n);
  err = uv_fs_write(a->s->loop, &op->req.fs, f->fd, &b, 1, offset, fs_cb);
  if ((err = fs_submit(a, op, err)) != 0) return err;
  err = op->status == 0 ? (int)op->req.fs.result : op->status;
  tr__io_op_finish(op);
  return err;
}

int tr_fs_write(tr_io_t id, const void *buf, size_t len, int64_t offset) {
  TR__ACTOR_OR_RETURN(a);
  const char *p = buf;
  tr__io_handle_t *f;
  int err;
  if (buf == NULL && len > 0) return TR_EINVAL;
  if ((err = file_get(a, id, &f)) != 0) return err;
  while (len > 0) {
    size_t n = len < TR__IO_CHUNK ? len : TR__IO_CHUNK;
    int w = fs_write_chunk(a, f, p, n, offset);
    if (w < 0) return w;
    if (w == 0) return UV_EIO; /* no progress: a full device, say */
    p += w;
    len -= (size_t)w;
    if (offset >= 0) offset += w;
  }
  return 0;
}

int tr_fs_close(tr_io_t id) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *f;
  tr__io_op_t *op;
  uv_file fd;
  int err;
  if ((err = file_get(a, id, &f)) != 0) return err;
  if (f->inflight > 0) { /* a timed-out request still uses the fd */
    tr__io_handle_close(f, 0);
    return 0;
  }
  fd = f->fd;
  f->fd = -1;
  tr__io_handle_close(f, 0); /* the id is stale from here on */
  if ((op = fs_op(a, NULL, 0)) == NULL) {
    uv_fs_t req;
    err = uv_fs_close(a->s->loop, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    return err;
  }
  err = uv_fs_close(a->s->loop, &op->req.fs, fd, fs_cb);
  if ((err = fs_submit(a, op, err)) != 0) return err;
  err = op->status;
  tr__io_op_finish(op);
  return err;
}

static void stat_out(tr__actor_t *a, tr__io_op_t *op, uv_stat_t *st) {
  tr__io_user_copy(a, st, &op->req.fs.statbuf, sizeof(*st));
}

int tr_fs_stat(const char *path, uv_stat_t *st) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_op_t *op;
  int err;
  if (path == NULL || st == NULL) return TR_EINVAL;
  if ((op = fs_op(a, NULL, 0)) == NULL) return TR_ENOMEM;
  err = uv_fs_stat(a->s->loop, &op->req.fs, path, fs_cb);
  if ((err = fs_submit(a, op, err)) != 0) return err;
  if ((err = op->status) == 0) stat_out(a, op, st);
  tr__io_op_finish(op);
  return err;
}

int tr_fs_fstat(tr_io_t id, uv_stat_t *st) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_handle_t *f;
  tr__io_op_t *op;
  int err;
  if (st == NULL) return TR_EINVAL;
  if ((err = file_get(a, id, &f)) != 0) return err;
  if ((op = fs_op(a, f, 0)) == NULL) return TR_ENOMEM;
  err = uv_fs_fstat(a->s->loop, &op->req.fs, f->fd, fs_cb);
  if ((err = fs_submit(a, op, err)) != 0) return err;
  if ((err = op->status) == 0) stat_out(a, op, st);
  tr__io_op_finish(op);
  return err;
}

int tr_fs_unlink(const char *path) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_op_t *op;
  int err;
  if (path == NULL) return TR_EINVAL;
  if ((op = fs_op(a, NULL, 0)) == NULL) return TR_ENOMEM;
  err = uv_fs_unlink(a->s->loop, &op->req.fs, path, fs_cb);
  if ((err = fs_submit(a, op, err)) != 0) return err;
  err = op->status;
  tr__io_op_finish(op);
  return err;
}
