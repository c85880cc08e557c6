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
 * tr__codec_is_tag also runs on every input, valid or not.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Imailbox \
 *     $(pkg-config --cflags msgpack libuv) fuzz/fuzz_codec.c \
 *     mailbox/codec.c -o fuzz_codec -lmsgpackc
 *   ./fuzz_codec -max_total_time=180 fuzz/corpus/codec
 */
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
  msgpack_zone_free(z);
  return 0;
}
