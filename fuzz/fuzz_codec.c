/*
 * libFuzzer harness for mailbox/codec.c.
 *
 * For arbitrary bytes it checks that tr_msgpack_validate agrees with a
 * small, obviously-correct recursive reference validator below; for the
 * values both accept it checks that tr__codec_decode succeeds and equals
 * msgpack_unpack's result (where msgpack-c can decode it: nesting <= 32),
 * that the mailbox's way of decoding (tr__codec_validate_count, then
 * tr__codec_decode_into a pool of exactly that many objects) fills the
 * whole pool, nothing beyond it, and gives the same object, that
 * re-packing the decoded object gives bytes that validate and decode to
 * the same object, and that tr__codec_is_tag matches the decoded form.
 * tr__codec_is_tag also runs on every input, valid or not. The reader of
 * tr_msg_unpack (tr__tagged_unpack) runs on every input with patterns of up
 * to three letters, taken from the input and, for a decoded array, from its
 * elements: it must answer what a reference matcher over the decoded object
 * says, store what the decoder decoded, and never match invalid bytes.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Imailbox \
 *     $(pkg-config --cflags msgpack libuv) fuzz/fuzz_codec.c \
 *     mailbox/codec.c -o fuzz_codec -lmsgpackc
 *   ./fuzz_codec -max_total_time=180 fuzz/corpus/codec
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "troupe.h"
#include "../mailbox/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,       \
              #cond);                                                        \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* ---- reference validator: recursive, straight from the spec ------------ */

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

/* Skips one value at *p, at nesting `depth` (containers around it).
 * Returns 0 or -1; *maxd gets the deepest container nesting seen. */
static int ref_skip(const uint8_t **p, const uint8_t *end, int depth,
                    int *maxd) {
  const uint8_t *q = *p;
  uint64_t n = 0, body = 0;
  int w = 0, cont = 0, map = 0;
  uint8_t b;

  if (q >= end) return -1;
  b = *q++;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
    body = 0;
  } else if (b >= 0xa0 && b <= 0xbf) {
    body = b & 0x1f;
  } else if (b >= 0x80 && b <= 0x9f) {
    cont = 1, map = b < 0x90, n = b & 0x0f;
  } else {
    switch (b) {
    case 0xc4: case 0xd9: w = 1; break;
    case 0xc5: case 0xda: w = 2; break;
    case 0xc6: case 0xdb: w = 4; break;
    case 0xc7: w = 1, body = 1; break;
    case 0xc8: w = 2, body = 1; break;
    case 0xc9: w = 4, body = 1; break;
    case 0xca: body = 4; break;
    case 0xcb: body = 8; break;
    case 0xcc: case 0xd0: body = 1; break;
    case 0xcd: case 0xd1: body = 2; break;
    case 0xce: case 0xd2: body = 4; break;
    case 0xcf: case 0xd3: body = 8; break;
    case 0xd4: body = 2; break;
    case 0xd5: body = 3; break;
    case 0xd6: body = 5; break;
    case 0xd7: body = 9; break;
    case 0xd8: body = 17; break;
    case 0xdc: cont = 1, w = 2; break;
    case 0xdd: cont = 1, w = 4; break;
    case 0xde: cont = 1, map = 1, w = 2; break;
    case 0xdf: cont = 1, map = 1, w = 4; break;
    default: return -1; /* 0xc1 */
    }
    if ((uint64_t)(end - q) < (uint64_t)w) return -1;
    if (cont)
      n = be(q, w);
    else
      body += be(q, w);
    q += w;
  }
  if (!cont) {
    if ((uint64_t)(end - q) < body) return -1;
    *p = q + body;
    return 0;
  }
  if (depth >= TR_CODEC_DEPTH_MAX) return -1;
  if (depth + 1 > *maxd) *maxd = depth + 1;
  for (uint64_t i = 0; i < n << map; i++)
    if (ref_skip(&q, end, depth + 1, maxd) != 0) return -1;
  *p = q;
  return 0;
}

/* ---- object comparison (floats bitwise, so NaN equals itself) ---------- */

static int same(const msgpack_object *a, const msgpack_object *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
  case MSGPACK_OBJECT_NIL: return 1;
  case MSGPACK_OBJECT_BOOLEAN: return a->via.boolean == b->via.boolean;
  case MSGPACK_OBJECT_POSITIVE_INTEGER: return a->via.u64 == b->via.u64;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: return a->via.i64 == b->via.i64;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    return memcmp(&a->via.f64, &b->via.f64, sizeof(double)) == 0;
  case MSGPACK_OBJECT_STR:
  case MSGPACK_OBJECT_BIN:
    return a->via.str.size == b->via.str.size &&
           (a->via.str.size == 0 ||
            memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
  case MSGPACK_OBJECT_EXT:
    return a->via.ext.type == b->via.ext.type &&
           a->via.ext.size == b->via.ext.size &&
           (a->via.ext.size == 0 ||
            memcmp(a->via.ext.ptr, b->via.ext.ptr, a->via.ext.size) == 0);
  case MSGPACK_OBJECT_ARRAY:
    if (a->via.array.size != b->via.array.size) return 0;
    for (uint32_t i = 0; i < a->via.array.size; i++)
      if (!same(&a->via.array.ptr[i], &b->via.array.ptr[i])) return 0;
    return 1;
  case MSGPACK_OBJECT_MAP:
    if (a->via.map.size != b->via.map.size) return 0;
    for (uint32_t i = 0; i < a->via.map.size; i++)
      if (!same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
          !same(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
        return 0;
    return 1;
  }
  return 0;
}

/* ---- the checks ---------------------------------------------------------- */

static void check_against_msgpack(const uint8_t *data, size_t size,
                                  const msgpack_object *mine) {
  msgpack_zone zone;
  msgpack_object ref;
  size_t off = 0;
  msgpack_zone_init(&zone, 2048);
  CHECK(msgpack_unpack((const char *)data, size, &off, &zone, &ref) ==
        MSGPACK_UNPACK_SUCCESS);
  CHECK(off == size);
  CHECK(same(mine, &ref));
  msgpack_zone_destroy(&zone);
}

/* The counted decode into a pool with a guard object on each side: the
 * count is exact (every pool object written, no guard touched). For
 * invalid bytes the count is refused like the validator refuses them. */
static void check_counted(const uint8_t *data, size_t size, int valid,
                          const msgpack_object *mine) {
  uint64_t n = 99;
  msgpack_object *buf, obj;
  unsigned char guard[sizeof(msgpack_object)];
  int rc = tr__codec_validate_count(data, size, &n);
  if (!valid) {
    CHECK(rc == TR_EBADMSG && n == 0);
    return;
  }
  CHECK(rc == 0 && n < size);
  buf = malloc((size_t)(n + 2) * sizeof *buf);
  CHECK(buf != NULL);
  memset(buf, 0xa5, (size_t)(n + 2) * sizeof *buf);
  memset(guard, 0xa5, sizeof guard);
  CHECK(tr__codec_decode_into(data, &obj, n > 0 ? buf + 1 : NULL) == 0);
  CHECK(memcmp(&buf[0], guard, sizeof guard) == 0);
  CHECK(memcmp(&buf[n + 1], guard, sizeof guard) == 0);
  for (uint64_t i = 1; i <= n; i++)
    CHECK(memcmp(&buf[i], guard, sizeof guard) != 0);
  CHECK(same(&obj, mine));
  free(buf);
}

static void check_repack(const msgpack_object *mine) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_zone *z = NULL;
  msgpack_object again;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  CHECK(msgpack_pack_object(&pk, *mine) == 0);
  CHECK(tr_msgpack_validate(sb.data, sb.size) == 0);
  CHECK(tr__codec_decode(sb.data, sb.size, &z, &again) == 0);
  CHECK(same(mine, &again));
  msgpack_zone_free(z);
  msgpack_sbuffer_destroy(&sb);
}

static void check_is_tag(const uint8_t *data, size_t size,
                         const msgpack_object *o) {
  const msgpack_object *first;
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0 ||
      o->via.array.ptr[0].type != MSGPACK_OBJECT_STR) {
    CHECK(!tr__codec_is_tag(data, size, "", 0));
    CHECK(!tr__codec_is_tag(data, size, "\x01", 1));
    return;
  }
  first = &o->via.array.ptr[0];
  CHECK(tr__codec_is_tag(data, size, first->via.str.ptr, first->via.str.size));
  if (first->via.str.size > 0)
    CHECK(!tr__codec_is_tag(data, size, first->via.str.ptr,
                            first->via.str.size - 1));
  else
    CHECK(!tr__codec_is_tag(data, size, "x", 1));
}

/* ---- tr__tagged_unpack against a reference matcher ---------------------- */

#define UNPACK_CAP 8 /* the capacity given to I */

typedef struct unpack_out {
  int64_t i[3];
  uint64_t u[3];
  double d[3];
  int b[3];
  const char *s[3];
  const void *r[3];
  size_t len[3];
  int64_t arr[3][UNPACK_CAP];
  tr_pid_t pid[3];
} unpack_out_t;

static int unpack_call(const uint8_t *data, size_t size, const char *tag,
                       const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = tr__tagged_unpack(data, size, tag, fmt, ap);
  va_end(ap);
  return rc;
}

static const char letters[] = "iudbnSBIp";
enum { L_i, L_u, L_d, L_b, L_n, L_S, L_B, L_I, L_p };

/* The arguments of a letter for output slot k, each after a comma. */
#define A_i(k) , &out->i[k]
#define A_u(k) , &out->u[k]
#define A_d(k) , &out->d[k]
#define A_b(k) , &out->b[k]
#define A_n(k)
#define A_S(k) , &out->s[k], &out->len[k]
#define A_B(k) , &out->r[k], &out->len[k]
#define A_I(k) , out->arr[k], (size_t)UNPACK_CAP, &out->len[k]
#define A_p(k) , &out->pid[k]
/* One case per pattern of up to three letters, each a call with the
 * arguments its letters take. */
#define KEY(n, x, y, z) ((n) * 1000 + (x) * 100 + (y) * 10 + (z))
#define EACH_1(X) X(i) X(u) X(d) X(b) X(n) X(S) X(B) X(I) X(p)
#define EACH_2(X, l1)                                                        \
  X(l1, i) X(l1, u) X(l1, d) X(l1, b) X(l1, n) X(l1, S) X(l1, B) X(l1, I)    \
  X(l1, p)
#define EACH_3(X, l1, l2)                                                    \
  X(l1, l2, i) X(l1, l2, u) X(l1, l2, d) X(l1, l2, b) X(l1, l2, n)           \
  X(l1, l2, S) X(l1, l2, B) X(l1, l2, I) X(l1, l2, p)
#define CASE_1(l1)                                                           \
  case KEY(1, L_##l1, 0, 0):                                                 \
    return unpack_call(data, size, tag, #l1 A_##l1(0));
#define CASE_2(l1, l2)                                                       \
  case KEY(2, L_##l1, L_##l2, 0):                                            \
    return unpack_call(data, size, tag, #l1 #l2 A_##l1(0) A_##l2(1));
#define CASE_3(l1, l2, l3)                                                   \
  case KEY(3, L_##l1, L_##l2, L_##l3):                                       \
    return unpack_call(data, size, tag, #l1 #l2 #l3 A_##l1(0) A_##l2(1)      \
                                            A_##l3(2));
#define CASES_2(l1) EACH_2(CASE_2, l1)
#define CASES_3B(l1, l2) EACH_3(CASE_3, l1, l2)
#define CASES_3(l1) EACH_2(CASES_3B, l1)

/* tr__tagged_unpack(data, size, tag, fmt, <the outputs fmt names>). */
static int unpack_fmt(const uint8_t *data, size_t size, const char *tag,
                      const char *fmt, unpack_out_t *out) {
  int k[3] = {0, 0, 0};
  size_t n = strlen(fmt);
  CHECK(n <= 3);
  for (size_t j = 0; j < n; j++)
    k[j] = (int)(strchr(letters, fmt[j]) - letters);
  switch (KEY((int)n, k[0], k[1], k[2])) {
  case KEY(0, 0, 0, 0): return unpack_call(data, size, tag, fmt);
    EACH_1(CASE_1)
    EACH_1(CASES_2)
    EACH_1(CASES_3)
  default: CHECK(0);
  }
  return 0;
}

static int fits_i(const msgpack_object *e) {
  return e->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
         (e->type == MSGPACK_OBJECT_POSITIVE_INTEGER && e->via.u64 <= INT64_MAX);
}

static int is_pid(const msgpack_object *e) {
  return e->type == MSGPACK_OBJECT_EXT && e->via.ext.type == TR_EXT_PID &&
         e->via.ext.size == 8;
}

/* What the reader must answer for fmt on a body that decoded to o. */
static int ref_unpack(const msgpack_object *o, const char *tag,
                      const char *fmt) {
  size_t n = strlen(fmt), tl = strlen(tag);
  const msgpack_object *e;
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n + 1)
    return TR_EBADMSG;
  e = o->via.array.ptr;
  if (e[0].type != MSGPACK_OBJECT_STR || e[0].via.str.size != tl ||
      (tl > 0 && memcmp(e[0].via.str.ptr, tag, tl) != 0))
    return TR_EBADMSG;
  for (size_t k = 0; k < n; k++) {
    const msgpack_object *x = &e[k + 1];
    int ok = 0, nil = x->type == MSGPACK_OBJECT_NIL;
    switch (fmt[k]) {
    case 'i': ok = fits_i(x); break;
    case 'u': ok = x->type == MSGPACK_OBJECT_POSITIVE_INTEGER; break;
    case 'd':
      ok = x->type == MSGPACK_OBJECT_FLOAT32 ||
           x->type == MSGPACK_OBJECT_FLOAT64;
      break;
    case 'b': ok = x->type == MSGPACK_OBJECT_BOOLEAN; break;
    case 'n': ok = nil; break;
    case 'S': ok = nil || x->type == MSGPACK_OBJECT_STR; break;
    case 'B': ok = nil || x->type == MSGPACK_OBJECT_BIN; break;
    case 'I':
      ok = nil || (x->type == MSGPACK_OBJECT_ARRAY &&
                   x->via.array.size <= UNPACK_CAP);
      for (uint32_t j = 0; ok && !nil && j < x->via.array.size; j++)
        ok = fits_i(&x->via.array.ptr[j]);
      break;
    default: ok = is_pid(x); break;
    }
    if (!ok) return TR_EBADMSG;
  }
  return 0;
}

/* After a match: the outputs hold what the decoder decoded (str and bin
 * pointing to the same bytes). */
static void check_outputs(const msgpack_object *o, const char *fmt,
                          const unpack_out_t *out) {
  for (size_t k = 0; fmt[k] != '\0'; k++) {
    const msgpack_object *x = &o->via.array.ptr[k + 1];
    int nil = x->type == MSGPACK_OBJECT_NIL;
    tr_pid_t pid;
    switch (fmt[k]) {
    case 'i': CHECK(out->i[k] == x->via.i64); break;
    case 'u': CHECK(out->u[k] == x->via.u64); break;
    case 'd':
      CHECK(memcmp(&out->d[k], &x->via.f64, sizeof(double)) == 0);
      break;
    case 'b': CHECK(out->b[k] == (x->via.boolean ? 1 : 0)); break;
    case 'n': break;
    case 'S':
      CHECK(nil ? out->s[k] == NULL && out->len[k] == 0
                : out->s[k] == x->via.str.ptr &&
                      out->len[k] == x->via.str.size);
      break;
    case 'B':
      CHECK(nil ? out->r[k] == NULL && out->len[k] == 0
                : out->r[k] == (const void *)x->via.bin.ptr &&
                      out->len[k] == x->via.bin.size);
      break;
    case 'I':
      CHECK(out->len[k] == (nil ? 0 : x->via.array.size));
      for (size_t j = 0; j < out->len[k]; j++)
        CHECK(out->arr[k][j] == x->via.array.ptr[j].via.i64);
      break;
    default:
      CHECK(tr_obj_pid(x, &pid) == 0 && out->pid[k] == pid);
      break;
    }
  }
}

/* A pattern that matches each element of the array o where one can, with
 * choices (i or u, which letter reads nil) taken from sel. */
static void derive_fmt(const msgpack_object *o, unsigned sel, char *fmt) {
  uint32_t n = o->via.array.size - 1;
  for (uint32_t k = 0; k < n; k++, sel >>= 2) {
    const msgpack_object *x = &o->via.array.ptr[k + 1];
    switch (x->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      fmt[k] = fits_i(x) && (sel & 1) ? 'i' : 'u';
      break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fmt[k] = 'i'; break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: fmt[k] = 'd'; break;
    case MSGPACK_OBJECT_BOOLEAN: fmt[k] = 'b'; break;
    case MSGPACK_OBJECT_NIL: fmt[k] = "nSBI"[sel & 3]; break;
    case MSGPACK_OBJECT_STR: fmt[k] = 'S'; break;
    case MSGPACK_OBJECT_BIN: fmt[k] = 'B'; break;
    case MSGPACK_OBJECT_ARRAY: fmt[k] = 'I'; break;
    case MSGPACK_OBJECT_EXT: fmt[k] = 'p'; break;
    default: fmt[k] = letters[sel % 9]; break; /* a map: nothing matches */
    }
  }
  fmt[n] = '\0';
}

/* o is the decoded value when the bytes are valid, else NULL. */
static void check_unpack(const uint8_t *data, size_t size,
                         const msgpack_object *o) {
  unpack_out_t out;
  char fmt[4], tag[32] = "a";
  size_t n = data[size - 1] % 4;
  int rc;
  /* the tag: the body's first string when it is a short one (a NUL inside
   * it ends the C string early, so that it does not match) */
  if (o != NULL && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0 &&
      o->via.array.ptr[0].type == MSGPACK_OBJECT_STR &&
      o->via.array.ptr[0].via.str.size < sizeof tag) {
    const msgpack_object *t = &o->via.array.ptr[0];
    if (t->via.str.size > 0) memcpy(tag, t->via.str.ptr, t->via.str.size);
    tag[t->via.str.size] = '\0';
  }
  /* a pattern from the input's last bytes */
  for (size_t k = 0; k < n; k++)
    fmt[k] = letters[data[(size - 2 - k) % size] % 9];
  fmt[n] = '\0';
  memset(&out, 0xa5, sizeof out);
  rc = unpack_fmt(data, size, tag, fmt, &out);
  CHECK(rc == 0 || rc == TR_EBADMSG);
  if (o == NULL) {
    CHECK(rc == TR_EBADMSG); /* invalid bytes never match */
    return;
  }
  CHECK(rc == ref_unpack(o, tag, fmt));
  if (rc == 0) check_outputs(o, fmt, &out);
  /* a pattern from the elements, which mostly matches */
  if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= 1 &&
      o->via.array.size <= 4) {
    derive_fmt(o, data[0], fmt);
    memset(&out, 0xa5, sizeof out);
    rc = unpack_fmt(data, size, tag, fmt, &out);
    CHECK(rc == ref_unpack(o, tag, fmt));
    if (rc == 0) check_outputs(o, fmt, &out);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *p = data;
  int maxd = 0, ref_ok, rc;
  msgpack_zone *z = (msgpack_zone *)&maxd;
  msgpack_object o;

  (void)tr__codec_is_tag(data, size, "a", 1); /* must be safe on anything */
  rc = tr_msgpack_validate(data, size);
  if (size == 0) {
    CHECK(rc == TR_EINVAL);
    return 0;
  }
  ref_ok = ref_skip(&p, data + size, 0, &maxd) == 0 && p == data + size;
  CHECK(rc == (ref_ok ? 0 : TR_EBADMSG));
  rc = tr__codec_decode(data, size, &z, &o);
  if (!ref_ok) {
    CHECK(rc == TR_EBADMSG && z == NULL);
    check_counted(data, size, 0, NULL);
    check_unpack(data, size, NULL);
    return 0;
  }
  CHECK(rc == 0);
  check_counted(data, size, 1, &o);
  CHECK((z == NULL) == (maxd == 0 || (o.type == MSGPACK_OBJECT_ARRAY
                                          ? o.via.array.size == 0
                                          : o.via.map.size == 0)));
  if (maxd <= 32) check_against_msgpack(data, size, &o);
  check_repack(&o);
  check_is_tag(data, size, &o);
  check_unpack(data, size, &o);
  msgpack_zone_free(z);
  return 0;
}
