/*
 * The supervisor's messages. They carry C structs as msgpack bin (the same
 * process and ABI on both ends): specs hold function and argument pointers
 * that are passed through, never dereferenced by the runtime, exactly as
 * tr_spawn passes fn and arg. Nothing points into the sender's memory.
 *
 *   ["$sup_init", bin flags, name|nil, bin specs, box, linked]
 *   ["$tr_ack", status]  or  ["$tr_ack", status, bin tr_sup_error_t]
 *   CALL ["$sup", op, x, bin]  ->  REPLY [code, x, bin]
 */
#include "sup.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mailbox/codec.h"

_Noreturn void tr__sup_exit(const tr_reason_t *r) {
  tr_reason_t k = *r;
  if (k.kind == TR_REASON_KILL) k.kind = TR_REASON_KILLED;
  tr__actor_exit_with(tr__current(), &k);
}

static void pack_init(msgpack_sbuffer *sb, const char *tag, size_t n) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, n);
  msgpack_pack_str_with_body(&pk, tag, strlen(tag));
}

static msgpack_packer packer(msgpack_sbuffer *sb) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  return pk;
}

static void pack_bin(msgpack_packer *pk, const void *p, size_t n) {
  msgpack_pack_bin(pk, n);
  if (n > 0) msgpack_pack_bin_body(pk, p, n);
}

/* ---- init --------------------------------------------------------------- */

int tr__sup_send_init(tr_runtime_t *rt, tr_pid_t pid, const tr_sup_flags_t *f,
                      const tr_child_spec_t *specs, size_t n, sup_box_t *box,
                      int linked) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  tr_sup_flags_t wf = *f;
  int err;
  wf.name = NULL; /* the name travels as a string */
  msgpack_sbuffer_init(&sb);
  pack_init(&sb, SUP_TAG_INIT, 6);
  pk = packer(&sb);
  pack_bin(&pk, &wf, sizeof(wf));
  if (f->name) msgpack_pack_str_with_body(&pk, f->name, strlen(f->name));
  else msgpack_pack_nil(&pk);
  pack_bin(&pk, specs, n * sizeof(*specs));
  msgpack_pack_uint64(&pk, (uint64_t)(uintptr_t)box);
  if (linked) msgpack_pack_true(&pk);
  else msgpack_pack_false(&pk);
  err = sb.data ? tr_runtime_send(rt, pid, sb.data, sb.size) : TR_ENOMEM;
  msgpack_sbuffer_destroy(&sb);
  return err;
}

static int bin_of(const msgpack_object *o, const void **p, size_t *n) {
  if (o->type != MSGPACK_OBJECT_BIN) return TR_EBADMSG;
  *p = o->via.bin.ptr;
  *n = o->via.bin.size;
  return 0;
}

int tr__sup_parse_init(tr_msg_t *m, tr_sup_flags_t *f, char *name,
                       tr_child_spec_t **specs, size_t *n, sup_box_t **box,
                       int *linked) {
  const msgpack_object *o = tr_msg_obj(m), *e;
  const void *p;
  size_t len;
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 6)
    return TR_EBADMSG;
  e = o->via.array.ptr;
  if (bin_of(&e[1], &p, &len) != 0 || len != sizeof(*f)) return TR_EBADMSG;
  memcpy(f, p, sizeof(*f));
  name[0] = '\0';
  if (e[2].type == MSGPACK_OBJECT_STR && e[2].via.str.size > 0 &&
      e[2].via.str.size < TR_NAME_MAX) {
    memcpy(name, e[2].via.str.ptr, e[2].via.str.size);
    name[e[2].via.str.size] = '\0';
  }
  if (bin_of(&e[3], &p, &len) != 0 || len % sizeof(**specs) != 0)
    return TR_EBADMSG;
  *n = len / sizeof(**specs);
  *specs = NULL;
  if (*n > 0) {
    if ((*specs = malloc(len)) == NULL) return TR_ENOMEM;
    memcpy(*specs, p, len);
  }
  *box = (sup_box_t *)(uintptr_t)e[4].via.u64;
  *linked = e[5].type == MSGPACK_OBJECT_BOOLEAN && e[5].via.boolean;
  return 0;
}

/* ---- init ack ----------------------------------------------------------- */

int tr__sup_send_ack(tr_pid_t to, int status, const tr_sup_error_t *detail) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int err;
  msgpack_sbuffer_init(&sb);
  pack_init(&sb, SUP_TAG_ACK, detail ? 3 : 2);
  pk = packer(&sb);
  msgpack_pack_int(&pk, status);
  if (detail) pack_bin(&pk, detail, sizeof(*detail));
  err = sb.data ? tr_send(to, sb.data, sb.size) : TR_ENOMEM;
  msgpack_sbuffer_destroy(&sb);
  return err;
}

typedef struct {
  tr_pid_t pid;
  tr_ref_t mref;
} ack_wait_t;

static int match_ack(const tr_msg_t *m, void *arg) {
  const ack_wait_t *w = arg;
  if (m->from != w->pid) return 0;
  switch (m->kind) {
  case TR_MSG_EXIT: return 1;
  case TR_MSG_DOWN: return m->ref == w->mref;
  case TR_MSG_USER:
    return tr__codec_is_tag(m->data, m->len, SUP_TAG_ACK, sizeof(SUP_TAG_ACK) - 1);
  default: return 0;
  }
}

static int match_gone(const tr_msg_t *m, void *arg) {
  const ack_wait_t *w = arg;
  if (m->from != w->pid) return 0;
  if (w->mref != 0) return m->kind == TR_MSG_DOWN && m->ref == w->mref;
  return m->kind == TR_MSG_EXIT;
}

static int match_exit(const tr_msg_t *m, void *arg) {
  return m->kind == TR_MSG_EXIT && m->from == ((const ack_wait_t *)arg)->pid;
}

/* Waits until the child is known dead (its DOWN if monitored, else its
 * EXIT), and drops a leftover EXIT, so that nothing of it stays queued. */
static void await_gone(ack_wait_t *w, tr_reason_t *why) {
  tr_msg_t *m;
  if (tr_recv_match(&m, match_gone, w, -1) == 0) {
    if (why) tr_msg_reason(m, why);
    tr_msg_free(m);
  }
  tr__mailbox_drop_match(tr__current(), match_exit, w);
}

/* Reads the status and the optional detail of an ack. */
static int ack_status(tr_msg_t *m, tr_sup_error_t *detail) {
  const msgpack_object *o = tr_msg_obj(m);
  const void *p;
  size_t len;
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2)
    return TR_EBADMSG;
  if (o->via.array.size >= 3 && detail != NULL &&
      bin_of(&o->via.array.ptr[2], &p, &len) == 0 && len == sizeof(*detail))
    memcpy(detail, p, len);
  return (int)o->via.array.ptr[1].via.i64;
}

/* Why an init failed, from an error ack: ERROR with the acked code, and
 * the detail's message (a supervisor child's failure) as text. */
static void ack_reason(tr_reason_t *why, int status, const tr_sup_error_t *d) {
  tr__reason_set(why, TR_REASON_ERROR);
  why->code = status < 0 ? status : TR_EBADMSG;
  if (d->message[0] != '\0')
    snprintf(why->text, sizeof(why->text), "%.*s", (int)sizeof(why->text) - 1,
             d->message);
  else
    snprintf(why->text, sizeof(why->text), "init failed (code %d)", why->code);
}

int tr__sup_await_ack(tr_pid_t pid, tr_ref_t mref, tr_reason_t *why,
                      tr_sup_error_t *detail) {
  ack_wait_t w = {pid, mref};
  tr_sup_error_t local;
  tr_msg_t *m;
  int status, rc = tr_recv_match(&m, match_ack, &w, -1);
  if (rc != 0) return rc;
  if (tr_msg_kind(m) != TR_MSG_USER) { /* died before acking */
    tr_msg_kind_t kind = tr_msg_kind(m);
    tr_msg_reason(m, why);
    tr_msg_free(m);
    if (kind == TR_MSG_EXIT && mref != 0) await_gone(&w, NULL);
    else tr__mailbox_drop_match(tr__current(), match_exit, &w);
    return TR_ESTART;
  }
  if (detail == NULL) detail = &local;
  memset(detail, 0, sizeof(*detail));
  status = ack_status(m, detail);
  tr_msg_free(m);
  if (status == TR_INIT_OK) return TR_INIT_OK;
  await_gone(&w, NULL);
  if (status == TR_INIT_IGNORE) return TR_INIT_IGNORE;
  ack_reason(why, status, detail);
  return TR_ESTART;
}

/* ---- calls -------------------------------------------------------------- */

int tr__sup_call(tr_pid_t sup, int op, uint64_t *x, const void *in,
                 size_t inlen, void *out, size_t outcap, size_t *outlen) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  tr_msg_t *reply = NULL;
  const msgpack_object *o;
  int rc;
  msgpack_sbuffer_init(&sb);
  pack_init(&sb, SUP_TAG_CALL, 4);
  pk = packer(&sb);
  msgpack_pack_int(&pk, op);
  msgpack_pack_uint64(&pk, *x);
  pack_bin(&pk, in, inlen);
  rc = sb.data ? tr_call(sup, sb.data, sb.size, &reply, -1, NULL) : TR_ENOMEM;
  msgpack_sbuffer_destroy(&sb);
  if (rc != 0) return rc;
  o = tr_msg_obj(reply);
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3 ||
      (o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
       o->via.array.ptr[0].type != MSGPACK_OBJECT_NEGATIVE_INTEGER) ||
      o->via.array.ptr[0].via.i64 < INT_MIN || o->via.array.ptr[0].via.i64 > 0 ||
      o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      o->via.array.ptr[2].type != MSGPACK_OBJECT_BIN) {
    tr_msg_free(reply);
    return TR_EBADMSG;
  }
  rc = (int)o->via.array.ptr[0].via.i64;
  *x = o->via.array.ptr[1].via.u64;
  if (outlen) *outlen = o->via.array.ptr[2].via.bin.size;
  if (out != NULL && o->via.array.ptr[2].via.bin.size > 0) {
    size_t n = o->via.array.ptr[2].via.bin.size;
    memcpy(out, o->via.array.ptr[2].via.bin.ptr, n < outcap ? n : outcap);
  }
  tr_msg_free(reply);
  return rc;
}

int tr__sup_parse_call(tr_msg_t *m, int *op, uint64_t *x, const void **bin,
                       size_t *binlen) {
  const msgpack_object *o = tr_msg_obj(m), *e;
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4)
    return TR_EBADMSG;
  e = o->via.array.ptr;
  if (e[0].type != MSGPACK_OBJECT_STR || e[0].via.str.size != 4 ||
      memcmp(e[0].via.str.ptr, SUP_TAG_CALL, 4) != 0)
    return TR_EBADMSG;
  if (e[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      e[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return TR_EBADMSG;
  *op = (int)e[1].via.u64;
  *x = e[2].via.u64;
  return bin_of(&e[3], bin, binlen);
}

int tr__sup_reply(const tr_msg_t *call, int code, uint64_t x, const void *bin,
                  size_t binlen) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int err;
  msgpack_sbuffer_init(&sb);
  pk = packer(&sb);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, code);
  msgpack_pack_uint64(&pk, x);
  pack_bin(&pk, bin, binlen);
  err = sb.data ? tr_reply(call, sb.data, sb.size) : TR_ENOMEM;
  msgpack_sbuffer_destroy(&sb);
  return err;
}
