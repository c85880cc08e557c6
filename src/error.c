/*
 * Error codes and exit reasons as text. The code table is the X-macro in
 * troupe.h, so names, values and messages cannot drift apart.
 */
#include "internal.h"

#include <stdio.h>

/* Nonzero for a code libuv names. libuv's uv_strerror / uv_err_name
 * allocate (and leak) a fresh string for any other code, so those never
 * reach it: a hostile or stray value gets a static "unknown" instead. */
static int uv_knows(int err) {
  switch (err) {
#define TR__UV_KNOWN(name, msg) case UV_##name:
    UV_ERRNO_MAP(TR__UV_KNOWN)
#undef TR__UV_KNOWN
    return 1;
  default: return 0;
  }
}

const char *tr_strerror(int err) {
  switch (err) {
#define TR__ERR_MSG(name, val, msg) case TR_##name: return msg;
    TR_ERRNO_MAP(TR__ERR_MSG)
#undef TR__ERR_MSG
  case 0: return "success";
  default: return uv_knows(err) ? uv_strerror(err) : "unknown error";
  }
}

const char *tr_err_name(int err) {
  switch (err) {
#define TR__ERR_NAME(name, val, msg) case TR_##name: return "TR_" #name;
    TR_ERRNO_MAP(TR__ERR_NAME)
#undef TR__ERR_NAME
  case 0: return "OK";
  default: return uv_knows(err) ? uv_err_name(err) : "UNKNOWN";
  }
}

static const char *const reason_names[TR_REASON__COUNT] = {
    [TR_REASON_NORMAL] = "normal",
    [TR_REASON_SHUTDOWN] = "shutdown",
    [TR_REASON_KILL] = "kill",
    [TR_REASON_KILLED] = "killed",
    [TR_REASON_NOPROC] = "noproc",
    [TR_REASON_ERROR] = "error",
    [TR_REASON_STACK_OVERFLOW] = "stack_overflow",
    [TR_REASON_SEGV] = "segv",
    [TR_REASON_BUS] = "bus",
    [TR_REASON_FPE] = "fpe",
    [TR_REASON_ILL] = "ill",
    [TR_REASON_ABORT] = "abort",
    [TR_REASON_TRAP] = "trap",
    [TR_REASON_MAILBOX_OVERFLOW] = "mailbox_overflow",
};

const char *tr_reason_name(tr_reason_kind_t kind) {
  if ((unsigned)kind >= TR_REASON__COUNT) return "unknown";
  return reason_names[kind];
}

int tr_reason_is_crash(tr_reason_kind_t kind) {
  return kind >= TR_REASON_STACK_OVERFLOW && kind <= TR_REASON_TRAP;
}

/* r->text is read up to its NUL or its end (a reason filled in by hand
 * may lack the NUL). buf may be NULL only with size 0 (measuring). */
int tr_reason_format(const tr_reason_t *r, char *buf, size_t size) {
  const int tmax = TR_REASON_TEXT_MAX;
  if (buf == NULL && size > 0) return TR_EINVAL;
  if (r == NULL) return snprintf(buf, size, "(null)");
  if (tr_reason_is_crash(r->kind))
    return snprintf(buf, size, "%s addr=%#lx pc=%#lx%s%.*s",
                    tr_reason_name(r->kind), (unsigned long)r->addr,
                    (unsigned long)r->pc, r->text[0] ? " " : "", tmax, r->text);
  if (r->kind == TR_REASON_ERROR)
    return snprintf(buf, size, "error code=%d%s%.*s", r->code,
                    r->text[0] ? " " : "", tmax, r->text);
  return snprintf(buf, size, "%s%s%.*s", tr_reason_name(r->kind),
                  r->text[0] ? " " : "", tmax, r->text);
}
