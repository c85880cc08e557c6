/*
 * Name resolution for actors: getaddrinfo on libuv's threadpool. The
 * result belongs to the op until the caller takes it, so a lookup that
 * outlives its caller (timeout, death) frees its own result.
 */
#include "io.h"

#include <string.h>

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  tr__io_op_t *op = req->data;
  op->result = res;
  tr__io_op_complete(op, status);
}

static void gai_orphaned(tr__io_op_t *op) {
  if (op->result != NULL) uv_freeaddrinfo(op->result);
  op->result = NULL;
}

int tr_getaddrinfo(const char *node, const char *service,
                   const struct addrinfo *hints, struct addrinfo **res,
                   int timeout_ms) {
  TR__ACTOR_OR_RETURN(a);
  tr__io_op_t *op;
  int err;
  if (res == NULL || (node == NULL && service == NULL)) return TR_EINVAL;
  *res = NULL;
  if ((op = tr__io_op_new(a->s, 0)) == NULL) return TR_ENOMEM;
  op->on_free = gai_orphaned;
  err = uv_getaddrinfo(a->s->loop, &op->req.gai, gai_cb, node, service, hints);
  if (err != 0) {
    tr__io_op_free(op);
    return err;
  }
  tr__io_op_attach(op, a);
  if ((err = tr__io_op_wait(a, op, tr__io_deadline(timeout_ms))) != 0) {
    uv_cancel(&op->req.req); /* frees a threadpool slot if not started */
    tr__io_op_detach(op);
    return err;
  }
  if ((err = op->status) == 0) {
    *res = op->result;
    op->result = NULL;
  }
  tr__io_op_finish(op);
  return err;
}

void tr_freeaddrinfo(struct addrinfo *ai) {
  if (ai != NULL) uv_freeaddrinfo(ai);
}
