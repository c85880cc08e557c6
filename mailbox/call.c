/*
 * call/reply, as gen_server:call: the request carries a fresh ref, the
 * caller monitors the server for the duration, and waits selectively for
 * either the reply with that ref or the DOWN of that monitor. A reply that
 * arrives after a timeout is dropped on delivery (tr__deliver checks the
 * awaited ref), so it never pollutes the caller's mailbox.
 *
 * Across schedulers the same holds: the monitor request and then the call
 * go through the server's inbox in that order, the reply and any DOWN come
 * back through the caller's, and the awaited ref is checked there.
 */
#include "internal.h"

#include <string.h>

#include "codec.h"

typedef struct {
  tr_ref_t call_ref;
  tr_ref_t mon_ref;
} call_wait_t;

static int match_reply_or_down(const tr_msg_t *m, void *arg) {
  const call_wait_t *w = arg;
  return (m->kind == TR_MSG_REPLY && m->ref == w->call_ref) ||
         (m->kind == TR_MSG_DOWN && m->ref == w->mon_ref);
}

static int is_reply_for(const tr_msg_t *m, void *arg) {
  return m->kind == TR_MSG_REPLY && m->ref == *(const tr_ref_t *)arg;
}

static int send_call(tr__actor_t *a, tr__actor_t *srv, const void *req,
                     size_t len, tr_ref_t ref) {
  tr_msg_t *m;
  uint64_t children;
  int err = tr__codec_validate_count(req, len, &children);
  if (err != 0) return err;
  m = tr__msg_new(TR_MSG_CALL, req, len, 0);
  if (m == NULL) return TR_ENOMEM;
  m->from = a->pid;
  m->ref = ref;
  m->children = (uint32_t)children; /* tr_msg_obj need not count again */
  tr__deliver(srv, m);
  return 0;
}

/* Turns the message that ended the wait into the call's result. */
static int call_result(tr_msg_t *m, tr_msg_t **reply, tr_reason_t *why) {
  if (m->kind == TR_MSG_DOWN) {
    if (why) *why = *m->reason;
    tr_msg_free(m);
    return TR_EDOWN;
  }
  *reply = m;
  return 0;
}

int tr_call(tr_pid_t server, const void *req, size_t req_len,
            tr_msg_t **reply, int timeout_ms, tr_reason_t *why) {
  TR__ACTOR_OR_RETURN(a);
  tr__actor_t *srv;
  call_wait_t w;
  tr_msg_t *m = NULL;
  int err;
  if (reply == NULL || timeout_ms < -1) return TR_EINVAL;
  *reply = NULL;
  if (server == a->pid) return TR_ESELF;
  if (tr__pid_sched(server) != a->s->id && tr__pid_alive(a->s->rt, server)) {
    if ((err = tr_msgpack_validate(req, req_len)) != 0) return err;
    if ((err = tr_monitor(server, &w.mon_ref)) != 0) return err;
    w.call_ref = tr__make_ref(a->s);
    err = tr__send_remote(a->s, TR_MSG_CALL, a->pid, server, w.call_ref, req,
                          req_len);
    if (err != 0) goto out;
    goto wait;
  }
  srv = tr__lookup(a->s, server);
  if (srv == NULL) {
    int v = tr_msgpack_validate(req, req_len);
    if (v != 0) return v;
    if (why) {
      tr__reason_set(why, TR_REASON_NOPROC);
    }
    return TR_EDOWN;
  }
  if ((err = tr__monitor_make(a, srv, &w.mon_ref)) != 0) return err;
  w.call_ref = tr__make_ref(a->s);
  if ((err = send_call(a, srv, req, req_len, w.call_ref)) != 0) goto out;
wait:
  a->call_ref = w.call_ref;
  err = tr__recv_internal(a, &m, match_reply_or_down, &w, timeout_ms);
  a->call_ref = 0;
  if (err == 0) err = call_result(m, reply, why);
  /* A reply queued behind the DOWN (or the deadline) that ended the wait
   * would stay for good: tr_recv never returns a REPLY. Found by
   * fuzz/fuzz_call.c; rare, so the scan costs only failed calls. */
  if (err != 0) tr__mailbox_drop_match(a, is_reply_for, &w.call_ref);
out:
  tr_demonitor(w.mon_ref, TR_DEMONITOR_FLUSH);
  return err;
}

int tr_reply(const tr_msg_t *call, const void *data, size_t len) {
  TR__ACTOR_OR_RETURN(a);
  tr__actor_t *to;
  tr_msg_t *m;
  uint64_t children;
  int err;
  if (call == NULL || call->kind != TR_MSG_CALL) return TR_EINVAL;
  if ((err = tr__codec_validate_count(data, len, &children)) != 0) return err;
  if (tr__pid_sched(call->from) != a->s->id)
    return tr__send_remote(a->s, TR_MSG_REPLY, a->pid, call->from, call->ref,
                           data, len);
  to = tr__lookup(a->s, call->from);
  if (to == NULL) return 0; /* caller gone: like any send to a dead pid */
  m = tr__msg_new(TR_MSG_REPLY, data, len, 0);
  if (m == NULL) return TR_ENOMEM;
  m->from = a->pid;
  m->ref = call->ref;
  m->children = (uint32_t)children;
  tr__deliver(to, m);
  return 0;
}
