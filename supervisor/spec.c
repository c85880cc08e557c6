/*
 * Supervisor flags and child specs: defaults, versioned copies (structs
 * that grow at the end, arrays read with the caller's stride) and
 * validation with a readable message. Everything is checked before anything
 * starts.
 */
#include "sup.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first published layouts: callers may pass these sizes or larger. */
#define SPEC_SIZE_V1 (offsetof(tr_child_spec_t, flags) + sizeof(unsigned))
#define FLAGS_SIZE_V1 (offsetof(tr_sup_flags_t, report_arg) + sizeof(void *))

void tr_sup_flags_init(tr_sup_flags_t *flags) {
  if (flags == NULL) return;
  memset(flags, 0, sizeof(*flags));
  flags->size = sizeof(*flags);
  flags->strategy = TR_ONE_FOR_ONE;
  flags->intensity = 1;
  flags->period_ms = 5000;
}

int tr_child_spec_init(tr_child_spec_t *spec, const char *id,
                       tr_actor_fn start, void *arg) {
  size_t len;
  if (spec == NULL) return TR_EINVAL;
  memset(spec, 0, sizeof(*spec));
  spec->size = sizeof(*spec);
  spec->start = start;
  spec->arg = arg;
  spec->restart = TR_PERMANENT;
  spec->shutdown = TR_SHUTDOWN_DEFAULT;
  spec->type = TR_WORKER;
  if (id == NULL || (len = strlen(id)) == 0 || len >= TR_SUP_ID_MAX)
    return TR_EINVAL;
  memcpy(spec->id, id, len + 1);
  return 0;
}

void tr__sup_error(tr_sup_error_t *err, const char *id, int index,
                   const tr_reason_t *why, const char *fmt, ...) {
  va_list ap;
  if (err == NULL) return;
  memset(err, 0, sizeof(*err));
  if (id != NULL) snprintf(err->id, sizeof(err->id), "%s", id);
  err->index = index;
  if (why != NULL) err->reason = *why;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
}

/* ---- flags -------------------------------------------------------------- */

static int flags_bad(tr_sup_error_t *err, const char *what) {
  tr__sup_error(err, NULL, -1, NULL, "supervisor flags: %s", what);
  return TR_EINVAL;
}

int tr__sup_flags_check(const tr_sup_flags_t *in, tr_sup_flags_t *out,
                        tr_sup_error_t *err) {
  size_t size;
  const tr_sup_flags_t *f = out;
  tr_sup_flags_init(out);
  if (in == NULL) return 0;
  size = in->size == 0 ? sizeof(*in) : in->size;
  if (size < FLAGS_SIZE_V1 || size > sizeof(*in))
    return flags_bad(err, "size is not that of any tr_sup_flags_t");
  memcpy(out, in, size);
  out->size = sizeof(*out);
  if ((unsigned)f->strategy > TR_SIMPLE_ONE_FOR_ONE)
    return flags_bad(err, "unknown strategy");
  if (f->period_ms == 0) return flags_bad(err, "period_ms must be > 0");
  if (f->backoff.min_ms > 0 && f->backoff.max_ms < f->backoff.min_ms)
    return flags_bad(err, "backoff.max_ms must be >= backoff.min_ms");
  if (!(f->backoff.jitter >= 0.0 && f->backoff.jitter <= 1.0))
    return flags_bad(err, "backoff.jitter must be within 0..1");
  if (f->name != NULL &&
      (f->name[0] == '\0' || strnlen(f->name, TR_NAME_MAX) >= TR_NAME_MAX))
    return flags_bad(err, "name must be 1 to TR_NAME_MAX - 1 bytes");
  return 0;
}

/* ---- specs -------------------------------------------------------------- */

static size_t spec_stride(const tr_child_spec_t *specs) {
  return specs->size == 0 ? sizeof(*specs) : specs->size;
}

static int spec_bad(tr_sup_error_t *err, const tr_child_spec_t *s, int index,
                    const char *what) {
  const char *id = memchr(s->id, 0, sizeof(s->id)) ? s->id : "";
  if (index >= 0)
    tr__sup_error(err, id, index, NULL, "child spec %d (\"%s\"): %s", index,
                  id, what);
  else
    tr__sup_error(err, id, index, NULL, "child spec \"%s\": %s", id, what);
  return TR_EINVAL;
}

/* Checks the fields of a copied spec and resolves its shutdown default. */
static int spec_fields(tr_child_spec_t *s, int index, tr_sup_error_t *err) {
  if (memchr(s->id, 0, sizeof(s->id)) == NULL)
    return spec_bad(err, s, index, "id is not NUL-terminated");
  if (s->id[0] == '\0') return spec_bad(err, s, index, "id is empty");
  if (s->start == NULL) return spec_bad(err, s, index, "no start function");
  if ((unsigned)s->restart > TR_TEMPORARY)
    return spec_bad(err, s, index, "restart is not permanent/transient/temporary");
  if ((unsigned)s->type > TR_SUPERVISOR)
    return spec_bad(err, s, index, "type is not worker/supervisor");
  if (s->shutdown < TR_SHUTDOWN_INFINITY)
    return spec_bad(err, s, index,
                    "shutdown must be ms > 0, BRUTAL_KILL, INFINITY or DEFAULT");
  if (s->stack_size != 0 && (s->stack_size < TR_STACK_SIZE_MIN ||
                             s->stack_size > TR_STACK_SIZE_MAX))
    return spec_bad(err, s, index, "stack_size out of range");
  if (s->flags & ~(unsigned)TR_CHILD_NO_ACK)
    return spec_bad(err, s, index, "unknown flags");
  if (s->shutdown == TR_SHUTDOWN_DEFAULT)
    s->shutdown = s->type == TR_SUPERVISOR ? TR_SHUTDOWN_INFINITY : 5000;
  return 0;
}

int tr__sup_spec_check(const tr_child_spec_t *specs, size_t i, int index,
                       tr_child_spec_t *out, tr_sup_error_t *err) {
  size_t stride = spec_stride(specs);
  const tr_child_spec_t *s;
  size_t size;
  tr_child_spec_init(out, "x", NULL, NULL);
  out->id[0] = '\0';
  /* The stride is checked before any element past the first is touched:
   * a size that is no struct's would misalign them (found by
   * fuzz/fuzz_spec.c under UBSan). */
  if (stride < SPEC_SIZE_V1 || stride > sizeof(*specs) ||
      stride % _Alignof(tr_child_spec_t) != 0)
    return spec_bad(err, out, index, "size is not that of any tr_child_spec_t");
  s = (const tr_child_spec_t *)(const void *)((const char *)specs + i * stride);
  size = s->size == 0 ? sizeof(*s) : s->size;
  if (size != stride || size < SPEC_SIZE_V1 || size > sizeof(*s))
    return spec_bad(err, out, index, "size is not that of any tr_child_spec_t");
  memcpy(out, s, size);
  out->size = sizeof(*out);
  return spec_fields(out, index, err);
}

static int ids_unique(const tr_child_spec_t *c, size_t n, tr_sup_error_t *err) {
  for (size_t i = 1; i < n; i++)
    for (size_t j = 0; j < i; j++)
      if (strcmp(c[i].id, c[j].id) == 0)
        return spec_bad(err, &c[i], (int)i, "duplicate id");
  return 0;
}

int tr__sup_check_all(const tr_sup_flags_t *flags, const tr_child_spec_t *specs,
                      size_t n, tr_sup_flags_t *fout, tr_child_spec_t **copy,
                      tr_sup_error_t *err) {
  tr_child_spec_t *c = NULL;
  int rc;
  *copy = NULL;
  if ((rc = tr__sup_flags_check(flags, fout, err)) != 0) return rc;
  if (n > 0 && specs == NULL) return flags_bad(err, "specs is NULL");
  if (n > INT32_MAX) return flags_bad(err, "too many specs");
  if (fout->strategy == TR_SIMPLE_ONE_FOR_ONE && n != 1)
    return flags_bad(err, "simple_one_for_one needs exactly one child spec");
  if (n > 0 && (c = calloc(n, sizeof(*c))) == NULL) {
    tr__sup_error(err, NULL, -1, NULL, "out of memory");
    return TR_ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    if ((rc = tr__sup_spec_check(specs, i, (int)i, &c[i], err)) != 0) goto fail;
  if ((rc = ids_unique(c, n, err)) != 0) goto fail;
  *copy = c;
  return 0;
fail:
  free(c);
  return rc;
}
