/* Check suite for mailbox/codec.c: validation, tagged packing, pid ext,
 * the raw tag test and the decoder. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <time.h>

#include "testutil.h"
#include "../mailbox/codec.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A pattern buffer for str/bin/ext bodies of any width. */
static char *pattern(size_t n) {
  char *p = malloc(n + 1);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < n; i++) p[i] = (char)('a' + i % 26);
  p[n] = '\0';
  return p;
}

#define BIG 70000 /* > 65535: forces the 32-bit forms */

/* Packs value number `which` (0 .. N_VALUES-1), one of every msgpack form,
 * and returns the lead byte msgpack-c must have chosen for it. */
static uint8_t pack_value(msgpack_packer *pk, int which) {
  char *s = pattern(BIG);
  uint8_t lead = 0;
  switch (which) {
  case 0: msgpack_pack_nil(pk); lead = 0xc0; break;
  case 1: msgpack_pack_true(pk); lead = 0xc3; break;
  case 2: msgpack_pack_false(pk); lead = 0xc2; break;
  case 3: msgpack_pack_uint8(pk, 7); lead = 0x07; break;
  case 4: msgpack_pack_uint8(pk, 200); lead = 0xcc; break;
  case 5: msgpack_pack_uint16(pk, 60000); lead = 0xcd; break;
  case 6: msgpack_pack_uint32(pk, 4000000000u); lead = 0xce; break;
  case 7: msgpack_pack_uint64(pk, UINT64_MAX); lead = 0xcf; break;
  case 8: msgpack_pack_int8(pk, -5); lead = 0xfb; break;
  case 9: msgpack_pack_int8(pk, -100); lead = 0xd0; break;
  case 10: msgpack_pack_int16(pk, -30000); lead = 0xd1; break;
  case 11: msgpack_pack_int32(pk, -2000000000); lead = 0xd2; break;
  case 12: msgpack_pack_int64(pk, INT64_MIN); lead = 0xd3; break;
  case 13: msgpack_pack_float(pk, 1.5f); lead = 0xca; break;
  case 14: msgpack_pack_double(pk, -2.25); lead = 0xcb; break;
  case 15: msgpack_pack_str_with_body(pk, s, 5); lead = 0xa5; break;
  case 16: msgpack_pack_str_with_body(pk, s, 0); lead = 0xa0; break;
  case 17: msgpack_pack_str_with_body(pk, s, 100); lead = 0xd9; break;
  case 18: msgpack_pack_str_with_body(pk, s, 300); lead = 0xda; break;
  case 19: msgpack_pack_str_with_body(pk, s, BIG); lead = 0xdb; break;
  case 20: msgpack_pack_bin_with_body(pk, s, 3); lead = 0xc4; break;
  case 21: msgpack_pack_bin_with_body(pk, s, 300); lead = 0xc5; break;
  case 22: msgpack_pack_bin_with_body(pk, s, BIG); lead = 0xc6; break;
  case 23: msgpack_pack_ext_with_body(pk, s, 1, 5); lead = 0xd4; break;
  case 24: msgpack_pack_ext_with_body(pk, s, 2, 5); lead = 0xd5; break;
  case 25: msgpack_pack_ext_with_body(pk, s, 4, -3); lead = 0xd6; break;
  case 26: msgpack_pack_ext_with_body(pk, s, 8, 5); lead = 0xd7; break;
  case 27: msgpack_pack_ext_with_body(pk, s, 16, 5); lead = 0xd8; break;
  case 28: msgpack_pack_ext_with_body(pk, s, 3, 5); lead = 0xc7; break;
  case 29: msgpack_pack_ext_with_body(pk, s, 300, 5); lead = 0xc8; break;
  case 30: msgpack_pack_ext_with_body(pk, s, BIG, 5); lead = 0xc9; break;
  case 31:
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, 1);
    msgpack_pack_str_with_body(pk, "x", 1);
    msgpack_pack_nil(pk);
    lead = 0x93;
    break;
  case 32: msgpack_pack_array(pk, 0); lead = 0x90; break;
  case 33:
    msgpack_pack_array(pk, 20);
    for (int i = 0; i < 20; i++) msgpack_pack_int(pk, i);
    lead = 0xdc;
    break;
  case 34:
    msgpack_pack_array(pk, BIG);
    for (int i = 0; i < BIG; i++) msgpack_pack_int(pk, i);
    lead = 0xdd;
    break;
  case 35:
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "k", 1);
    msgpack_pack_int(pk, -1);
    lead = 0x81;
    break;
  case 36: msgpack_pack_map(pk, 0); lead = 0x80; break;
  case 37:
    msgpack_pack_map(pk, 20);
    for (int i = 0; i < 20; i++) {
      msgpack_pack_int(pk, i);
      msgpack_pack_double(pk, i / 4.0);
    }
    lead = 0xde;
    break;
  case 38:
    msgpack_pack_map(pk, BIG);
    for (int i = 0; i < BIG; i++) {
      msgpack_pack_int(pk, i);
      msgpack_pack_nil(pk);
    }
    lead = 0xdf;
    break;
  case 39: /* nested: [{"a": [1, [true, {}]]}, [[[]]]] */
    msgpack_pack_array(pk, 2);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "a", 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_true(pk);
    msgpack_pack_map(pk, 0);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 0);
    lead = 0x92;
    break;
  }
  free(s);
  return lead;
}
#define N_VALUES 40

/* Packs one value of every form into an array: the "complex value". */
static void pack_all(buf_t *b) {
  msgpack_pack_array(&b->pk, N_VALUES);
  for (int i = 0; i < N_VALUES; i++) pack_value(&b->pk, i);
}

/* Like pack_all, but small: the 32-bit forms are written by hand with
 * small sizes (valid, if not minimal), so the value is about 1.3 KiB and
 * every prefix of it can be tried. */
static void pack_compact(buf_t *b) {
  static const struct {
    int which;
    const char *bytes;
    size_t len;
  } raw32[] = {
      {19, "\xdb\0\0\0\x03" "abc", 8},   {22, "\xc6\0\0\0\x02xy", 7},
      {30, "\xc9\0\0\0\x01\x05z", 7},   {34, "\xdd\0\0\0\x02\x01\xc0", 7},
      {38, "\xdf\0\0\0\x01\x01\xa1q", 8},
  };
  size_t k = 0;
  msgpack_sbuffer_write(&b->sb, "\xdd\0\0\0\x28", 5); /* array32 of 40 */
  for (int i = 0; i < N_VALUES; i++) {
    if (k < 5 && raw32[k].which == i) {
      msgpack_sbuffer_write(&b->sb, raw32[k].bytes, raw32[k].len);
      k++;
    } else {
      pack_value(&b->pk, i);
    }
  }
}

/* Structural equality that also compares floats bit for bit (NaN-safe). */
static int obj_same(const msgpack_object *a, const msgpack_object *b) {
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
      if (!obj_same(&a->via.array.ptr[i], &b->via.array.ptr[i])) return 0;
    return 1;
  case MSGPACK_OBJECT_MAP:
    if (a->via.map.size != b->via.map.size) return 0;
    for (uint32_t i = 0; i < a->via.map.size; i++)
      if (!obj_same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
          !obj_same(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
        return 0;
    return 1;
  }
  return 0;
}

/* Decodes validated data the mailbox's way: tr__codec_validate_count, then
 * tr__codec_decode_into a pool of exactly that many objects, which sits
 * between two guard objects. Asserts that the decode wrote every pool
 * object and neither guard (the count is exact, not merely enough) and
 * that the result equals `want`. */
static void assert_counted_decode_equals(const void *data, size_t len,
                                         const msgpack_object *want) {
  uint64_t n = 0;
  msgpack_object *buf, obj;
  unsigned char guard[sizeof(msgpack_object)];
  TR_OK(tr__codec_validate_count(data, len, &n));
  buf = malloc((size_t)(n + 2) * sizeof *buf);
  ck_assert_ptr_nonnull(buf);
  memset(buf, 0xa5, (size_t)(n + 2) * sizeof *buf);
  memset(guard, 0xa5, sizeof guard);
  TR_OK(tr__codec_decode_into(data, &obj, n > 0 ? buf + 1 : NULL));
  ck_assert_msg(memcmp(&buf[0], guard, sizeof guard) == 0, "pool underrun");
  ck_assert_msg(memcmp(&buf[n + 1], guard, sizeof guard) == 0, "pool overrun");
  for (uint64_t i = 1; i <= n; i++) /* no object left as it was: all used */
    ck_assert_msg(memcmp(&buf[i], guard, sizeof guard) != 0,
                  "pool object %llu of %llu unused", (unsigned long long)i,
                  (unsigned long long)n);
  ck_assert_msg(obj_same(&obj, want), "decode_into disagrees");
  free(buf);
}

/* Decodes data with tr__codec_decode, with the counted decode above and
 * with msgpack_unpack and asserts all three agree exactly. */
static void assert_decodes_like_msgpack(const void *data, size_t len) {
  msgpack_zone *z = NULL, ref_zone;
  msgpack_object mine, ref;
  size_t off = 0;
  TR_OK(tr__codec_decode(data, len, &z, &mine));
  msgpack_zone_init(&ref_zone, 8192);
  ck_assert_int_eq(msgpack_unpack(data, len, &off, &ref_zone, &ref),
                   MSGPACK_UNPACK_SUCCESS);
  ck_assert_uint_eq(off, len);
  ck_assert_msg(obj_same(&mine, &ref), "decoder disagrees with msgpack");
  assert_counted_decode_equals(data, len, &ref);
  msgpack_zone_destroy(&ref_zone);
  msgpack_zone_free(z);
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */
/* ------------------------------------------------------------------------ */

START_TEST(validate_every_type) {
  for (int i = 0; i < N_VALUES; i++) {
    buf_t b;
    buf_init(&b);
    uint8_t lead = pack_value(&b.pk, i);
    ck_assert_msg((uint8_t)b.sb.data[0] == lead, "value %d: lead %02x not %02x",
                  i, (uint8_t)b.sb.data[0], lead);
    ck_assert_msg(tr_msgpack_validate(b.sb.data, b.sb.size) == 0,
                  "value %d rejected", i);
    assert_decodes_like_msgpack(b.sb.data, b.sb.size);
    buf_free(&b);
  }
}
END_TEST

START_TEST(validate_hand_written) {
  static const struct {
    const char *bytes;
    size_t len;
  } ok[] = {
      {"\x00", 1},         {"\x7f", 1},        {"\xff", 1},
      {"\xe0", 1},         {"\xc0", 1},        {"\xa0", 1},
      {"\x80", 1},         {"\x90", 1},        {"\xd9\x00", 2},
      {"\xc4\x00", 2},     {"\xc7\x00\x05", 3}, /* ext8 of 0 bytes */
      {"\xdc\x00\x00", 3}, {"\xdd\x00\x00\x00\x00", 5},
      {"\xde\x00\x01\x01\x02", 5},
      {"\xdf\x00\x00\x00\x01\xc0\xc0", 7},
      {"\x82\x01\x02\x03\x04", 5},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    ck_assert_msg(tr_msgpack_validate(ok[i].bytes, ok[i].len) == 0,
                  "case %zu rejected", i);
}
END_TEST

START_TEST(validate_rejects_every_truncation) {
  buf_t b;
  buf_init(&b);
  pack_compact(&b);
  ck_assert_uint_lt(b.sb.size, 4096);
  ck_assert_int_eq(tr_msgpack_validate(b.sb.data, b.sb.size), 0);
  assert_decodes_like_msgpack(b.sb.data, b.sb.size);
  ck_assert_int_eq(tr_msgpack_validate(b.sb.data, 0), TR_EINVAL);
  for (size_t n = 1; n < b.sb.size; n++) {
    msgpack_zone *z = (msgpack_zone *)1;
    msgpack_object o;
    int rc = tr_msgpack_validate(b.sb.data, n);
    ck_assert_msg(rc == TR_EBADMSG, "prefix %zu/%zu: %d", n, b.sb.size, rc);
    ck_assert_int_eq(tr__codec_decode(b.sb.data, n, &z, &o), TR_EBADMSG);
    ck_assert_ptr_null(z);
  }
  buf_free(&b);
}
END_TEST

START_TEST(validate_rejects_trailing_bytes) {
  buf_t b;
  buf_init(&b);
  pack_all(&b);
  msgpack_pack_nil(&b.pk);
  ck_assert_int_eq(tr_msgpack_validate(b.sb.data, b.sb.size), TR_EBADMSG);
  ck_assert_int_eq(tr_msgpack_validate("\x01\x02", 2), TR_EBADMSG);
  ck_assert_int_eq(tr_msgpack_validate("\x90\x90", 2), TR_EBADMSG);
  ck_assert_int_eq(tr_msgpack_validate("\xa1x\x00", 3), TR_EBADMSG);
  buf_free(&b);
}
END_TEST

START_TEST(validate_rejects_c1) {
  ck_assert_int_eq(tr_msgpack_validate("\xc1", 1), TR_EBADMSG);
  ck_assert_int_eq(tr_msgpack_validate("\x92\x01\xc1", 3), TR_EBADMSG);
  ck_assert_int_eq(tr_msgpack_validate("\x81\xc1\x01", 3), TR_EBADMSG);
  /* 0xc1 as payload is fine. */
  ck_assert_int_eq(tr_msgpack_validate("\xa1\xc1", 2), 0);
  ck_assert_int_eq(tr_msgpack_validate("\xcc\xc1", 2), 0);
}
END_TEST

START_TEST(validate_rejects_huge_counts) {
  static const struct {
    const char *bytes;
    size_t len;
  } bad[] = {
      {"\xdd\xff\xff\xff\xff\x01\x02\x03", 8}, /* array32 of 4G */
      {"\xdf\xff\xff\xff\xff\x01\x02\x03", 8}, /* map32 of 4G pairs */
      {"\xdc\xff\xff\x01", 4},                 /* array16 of 65535 */
      {"\xde\x00\x02\x01\x02\x03", 6},         /* 2 pairs need 4 values */
      {"\x81\x01", 2},                         /* key without value */
      {"\x9f", 1},
      {"\xdb\xff\xff\xff\xff" "abc", 8},       /* str32 of 4 GiB */
      {"\xc6\xff\xff\xff\xff" "abc", 8},       /* bin32 */
      {"\xc9\xff\xff\xff\xff\x01" "ab", 8},    /* ext32 */
      {"\xc7\x01\x05", 3},                     /* ext8 missing its byte */
      {"\xd8\x05", 2},                         /* fixext16 short */
      {"\xdd\x00\x00\x00", 4},                 /* count itself truncated */
  };
  double t0 = now_s();
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(tr_msgpack_validate(bad[i].bytes, bad[i].len) == TR_EBADMSG,
                  "case %zu accepted", i);
  ck_assert_msg(now_s() - t0 < 0.01, "huge counts were walked");
}
END_TEST

/* n nested arrays written with lead byte `open` (+ extra count bytes); the
 * innermost one is empty. */
static uint8_t *nested(size_t n, const char *open, size_t open_len,
                       const char *empty, size_t empty_len, size_t *len) {
  uint8_t *p = malloc((n - 1) * open_len + empty_len);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i + 1 < n; i++) memcpy(p + i * open_len, open, open_len);
  memcpy(p + (n - 1) * open_len, empty, empty_len);
  *len = (n - 1) * open_len + empty_len;
  return p;
}

/* Depth of a decoded value, iteratively following first elements. */
static size_t first_chain_depth(const msgpack_object *o) {
  size_t d = 0;
  for (;;) {
    if (o->type == MSGPACK_OBJECT_ARRAY) {
      d++;
      if (o->via.array.size == 0) return d;
      o = &o->via.array.ptr[0];
    } else if (o->type == MSGPACK_OBJECT_MAP) {
      d++;
      if (o->via.map.size == 0) return d;
      o = &o->via.map.ptr[0].val;
    } else {
      return d;
    }
  }
}

START_TEST(validate_deep_nesting) {
  size_t len;
  uint8_t *p;
  double t0 = now_s();
  msgpack_zone *z;
  msgpack_object o;

  /* A million nested arrays, never closed and closed. */
  p = nested(1000000, "\x91", 1, "\x91", 1, &len);
  ck_assert_int_eq(tr_msgpack_validate(p, len), TR_EBADMSG);
  p[len - 1] = 0x90;
  ck_assert_int_eq(tr_msgpack_validate(p, len), TR_EBADMSG);
  ck_assert_int_eq(tr__codec_decode(p, len, &z, &o), TR_EBADMSG);
  free(p);
  p = nested(1000000, "\xdc\x00\x01", 3, "\x90", 1, &len);
  ck_assert_int_eq(tr_msgpack_validate(p, len), TR_EBADMSG);
  free(p);
  p = nested(1000000, "\x81\x01", 2, "\x80", 1, &len); /* {1: {1: ...}} */
  ck_assert_int_eq(tr_msgpack_validate(p, len), TR_EBADMSG);
  free(p);
  ck_assert_msg(now_s() - t0 < 1.0, "deep nesting took %.3f s", now_s() - t0);

  /* Exactly at the limit: accepted and decodable; one more: rejected. */
  p = nested(TR_CODEC_DEPTH_MAX, "\x92", 1, "\x90", 1, &len);
  p = realloc(p, len + TR_CODEC_DEPTH_MAX); /* second elements: 1s */
  memset(p + len, 0x01, TR_CODEC_DEPTH_MAX - 1);
  len += TR_CODEC_DEPTH_MAX - 1;
  ck_assert_int_eq(tr_msgpack_validate(p, len), 0);
  TR_OK(tr__codec_decode(p, len, &z, &o));
  ck_assert_ptr_nonnull(z);
  ck_assert_uint_eq(first_chain_depth(&o), TR_CODEC_DEPTH_MAX);
  ck_assert_uint_eq(o.via.array.ptr[1].via.u64, 1);
  msgpack_zone_free(z);
  free(p);
  p = nested(TR_CODEC_DEPTH_MAX + 1, "\x91", 1, "\x90", 1, &len);
  ck_assert_int_eq(tr_msgpack_validate(p, len), TR_EBADMSG);
  ck_assert_int_eq(tr_msgpack_validate(p + 1, len - 1), 0);
  free(p);
  p = nested(TR_CODEC_DEPTH_MAX, "\x81\xc0", 2, "\x80", 1, &len);
  ck_assert_int_eq(tr_msgpack_validate(p, len), 0);
  TR_OK(tr__codec_decode(p, len, &z, &o));
  ck_assert_uint_eq(first_chain_depth(&o), TR_CODEC_DEPTH_MAX);
  msgpack_zone_free(z);
  free(p);
}
END_TEST

START_TEST(validate_bad_args) {
  ck_assert_int_eq(tr_msgpack_validate(NULL, 5), TR_EINVAL);
  ck_assert_int_eq(tr_msgpack_validate(NULL, 0), TR_EINVAL);
  ck_assert_int_eq(tr_msgpack_validate("\x01", 0), TR_EINVAL);
  /* Rejected on length alone: the bytes are never read. */
  ck_assert_int_eq(tr_msgpack_validate("\x01", TR_MSG_MAX + 1), TR_EMSGSIZE);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Tagged packing                                                           */
/* ------------------------------------------------------------------------ */

/* Unpacks data with msgpack_unpack (the reference) into *o. */
static void ref_unpack(const void *data, size_t len, msgpack_zone *z,
                       msgpack_object *o) {
  size_t off = 0;
  ck_assert_int_eq(tr_msgpack_validate(data, len), 0);
  ck_assert_int_eq(msgpack_unpack(data, len, &off, z, o),
                   MSGPACK_UNPACK_SUCCESS);
  ck_assert_uint_eq(off, len);
}

static void assert_str(const msgpack_object *o, const char *s, size_t n) {
  ck_assert_int_eq(o->type, MSGPACK_OBJECT_STR);
  ck_assert_uint_eq(o->via.str.size, n);
  ck_assert_int_eq(memcmp(o->via.str.ptr, s, n), 0);
}

START_TEST(tagged_every_letter) {
  static const char bin[] = {0, 1, 2, (char)0xff, 0};
  void *data = NULL;
  size_t len = 0;
  msgpack_zone z;
  msgpack_object o;
  const msgpack_object *a;
  tr_pid_t pid;

  TR_OK(tr_pack_tagged(&data, &len, "all", "iiiuuddbbnssSSBBp", INT64_MIN,
                       INT64_MAX, (int64_t)-1, (uint64_t)UINT64_MAX,
                       (uint64_t)0, 3.141592653589793, -DBL_MAX, 1, 0,
                       "hello", (const char *)NULL, "a\0b\0", (size_t)4,
                       (const char *)NULL, (size_t)0, bin, sizeof bin,
                       (const void *)NULL, (size_t)0,
                       (tr_pid_t)0x0123456789abcdefULL));
  ck_assert_ptr_nonnull(data);
  msgpack_zone_init(&z, 2048);
  ref_unpack(data, len, &z, &o);
  ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(o.via.array.size, 18);
  a = o.via.array.ptr;
  assert_str(&a[0], "all", 3);
  ck_assert_int_eq(a[1].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
  ck_assert(a[1].via.i64 == INT64_MIN);
  ck_assert_int_eq(a[2].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  ck_assert(a[2].via.u64 == (uint64_t)INT64_MAX);
  ck_assert(a[3].via.i64 == -1);
  ck_assert_int_eq(a[4].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  ck_assert(a[4].via.u64 == UINT64_MAX);
  ck_assert(a[5].via.u64 == 0);
  ck_assert_int_eq(a[6].type, MSGPACK_OBJECT_FLOAT64);
  ck_assert(a[6].via.f64 == 3.141592653589793);
  ck_assert(a[7].via.f64 == -DBL_MAX);
  ck_assert_int_eq(a[8].type, MSGPACK_OBJECT_BOOLEAN);
  ck_assert(a[8].via.boolean == true);
  ck_assert(a[9].via.boolean == false);
  ck_assert_int_eq(a[10].type, MSGPACK_OBJECT_NIL);
  assert_str(&a[11], "hello", 5);
  ck_assert_int_eq(a[12].type, MSGPACK_OBJECT_NIL); /* s NULL */
  assert_str(&a[13], "a\0b\0", 4);
  ck_assert_int_eq(a[14].type, MSGPACK_OBJECT_NIL); /* S NULL, 0 */
  ck_assert_int_eq(a[15].type, MSGPACK_OBJECT_BIN);
  ck_assert_uint_eq(a[15].via.bin.size, sizeof bin);
  ck_assert_int_eq(memcmp(a[15].via.bin.ptr, bin, sizeof bin), 0);
  ck_assert_int_eq(a[16].type, MSGPACK_OBJECT_NIL); /* B NULL, 0 */
  TR_OK(tr_obj_pid(&a[17], &pid));
  ck_assert(pid == 0x0123456789abcdefULL);
  assert_decodes_like_msgpack(data, len);
  msgpack_zone_destroy(&z);
  free(data);
}
END_TEST

START_TEST(tagged_special_doubles_and_widths) {
  char *big = pattern(BIG);
  void *data;
  size_t len;
  msgpack_zone z;
  msgpack_object o;
  const msgpack_object *a;

  TR_OK(tr_pack_tagged(&data, &len, "d", "dddSSSBB", NAN, -0.0, INFINITY,
                       big, (size_t)31, big, (size_t)300, big, (size_t)BIG,
                       big, (size_t)255, big, (size_t)BIG));
  msgpack_zone_init(&z, 2048);
  ref_unpack(data, len, &z, &o);
  a = o.via.array.ptr;
  ck_assert(isnan(a[1].via.f64));
  ck_assert(a[2].via.f64 == 0.0 && signbit(a[2].via.f64));
  ck_assert(isinf(a[3].via.f64) && a[3].via.f64 > 0);
  assert_str(&a[4], big, 31);
  assert_str(&a[5], big, 300);
  assert_str(&a[6], big, BIG);
  ck_assert_uint_eq(a[7].via.bin.size, 255);
  ck_assert_uint_eq(a[8].via.bin.size, BIG);
  ck_assert_int_eq(memcmp(a[8].via.bin.ptr, big, BIG), 0);
  msgpack_zone_destroy(&z);
  free(data);
  free(big);
}
END_TEST

START_TEST(tagged_no_args_and_long_tag) {
  char *tag = pattern(300);
  char fmt[40];
  void *data;
  size_t len;
  msgpack_zone z;
  msgpack_object o;

  TR_OK(tr_pack_tagged(&data, &len, "ping", NULL));
  ck_assert_uint_eq(len, 6);
  ck_assert_int_eq(memcmp(data, "\x91\xa4ping", 6), 0);
  free(data);
  TR_OK(tr_pack_tagged(&data, &len, "", ""));
  ck_assert_uint_eq(len, 2);
  ck_assert_int_eq(memcmp(data, "\x91\xa0", 2), 0);
  free(data);
  /* array16 (>= 16 elements) and a str16 tag */
  memset(fmt, 'n', 20);
  fmt[20] = '\0';
  TR_OK(tr_pack_tagged(&data, &len, tag, fmt));
  msgpack_zone_init(&z, 2048);
  ref_unpack(data, len, &z, &o);
  ck_assert_uint_eq(o.via.array.size, 21);
  assert_str(&o.via.array.ptr[0], tag, 300);
  ck_assert_int_eq(o.via.array.ptr[20].type, MSGPACK_OBJECT_NIL);
  msgpack_zone_destroy(&z);
  free(data);
  free(tag);
}
END_TEST

/* Calls tr__pack_tagged_sbuf with a variable argument list. */
static int size_only(size_t *hi, uint32_t *kids, const char *tag,
                     const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = tr__tagged_size(tag, fmt, ap, hi, kids);
  va_end(ap);
  return rc;
}

static int pack_sbuf(msgpack_sbuffer *sb, const char *tag, const char *fmt,
                     ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = tr__pack_tagged_sbuf(sb, tag, fmt, ap);
  va_end(ap);
  return rc;
}

/* Packs ["payload", seq, a, b, c, name, [ints...]] with msgpack-c's packer:
 * the reference the I letter must match byte for byte. */
static void pack_ref_ints(msgpack_sbuffer *sb, uint64_t seq, const int64_t *v,
                          size_t n) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 7);
  msgpack_pack_str_with_body(&pk, "payload", 7);
  msgpack_pack_uint64(&pk, seq);
  msgpack_pack_int64(&pk, -1);
  msgpack_pack_int64(&pk, INT64_MIN);
  msgpack_pack_int64(&pk, 300);
  msgpack_pack_str_with_body(&pk, "name", 4);
  msgpack_pack_array(&pk, n);
  for (size_t i = 0; i < n; i++) msgpack_pack_int64(&pk, v[i]);
}

START_TEST(tagged_int_array_matches_msgpack_c) {
  /* Every width boundary of both signs, then arrays past the fixarray and
   * array16 headers. */
  static const int64_t edge[] = {0, 1, 127, 128, 255, 256, 65535, 65536,
                                 4294967295LL, 4294967296LL, INT64_MAX, -1,
                                 -32, -33, -128, -129, -32768, -32769,
                                 INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MIN};
  static const size_t counts[] = {0, 1, 15, 16, sizeof edge / sizeof edge[0],
                                  65535, 65536, 70000};
  int64_t *v = malloc(70000 * sizeof *v);
  ck_assert_ptr_nonnull(v);
  for (size_t i = 0; i < 70000; i++)
    v[i] = i < sizeof edge / sizeof edge[0] ? edge[i] : (int64_t)(i * 7919) - 300000;
  for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    msgpack_sbuffer ref;
    void *data = NULL;
    size_t len = 0, n = counts[k];
    uint64_t kids = 0;
    msgpack_sbuffer_init(&ref);
    pack_ref_ints(&ref, (uint64_t)1 << 40, v, n);
    TR_OK(tr_pack_tagged(&data, &len, "payload", "uiiiSI", (uint64_t)1 << 40,
                         (int64_t)-1, INT64_MIN, (int64_t)300, "name",
                         (size_t)4, v, n));
    ck_assert_uint_eq(len, ref.size);
    ck_assert_msg(memcmp(data, ref.data, len) == 0, "bytes differ for %zu", n);
    /* The sizing pass's count is the exact one validation takes. */
    TR_OK(tr__codec_validate_count(data, len, &kids));
    ck_assert_uint_eq(kids, 7 + n);
    if (n < 100) assert_decodes_like_msgpack(data, len);
    free(data);
    msgpack_sbuffer_destroy(&ref);
  }
  free(v);
}
END_TEST

START_TEST(tagged_int_array_size_and_errors) {
  static const int64_t three[] = {1, -2, 3};
  void *data = (void *)1;
  size_t len = 99, hi = 9;
  uint32_t kids = 9;
  msgpack_zone z;
  msgpack_object o;

  /* NULL with count 0 packs nil, as for S and B. */
  TR_OK(tr_pack_tagged(&data, &len, "t", "II", (const int64_t *)NULL,
                       (size_t)0, three, (size_t)0));
  msgpack_zone_init(&z, 256);
  ref_unpack(data, len, &z, &o);
  ck_assert_uint_eq(o.via.array.size, 3);
  ck_assert_int_eq(o.via.array.ptr[1].type, MSGPACK_OBJECT_NIL);
  ck_assert_int_eq(o.via.array.ptr[2].type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(o.via.array.ptr[2].via.array.size, 0);
  msgpack_zone_destroy(&z);
  free(data);
  /* NULL with a count, and a count no message can hold. */
  ck_assert_int_eq(tr_pack_tagged(&data, &len, "t", "I", (const int64_t *)NULL,
                                  (size_t)3),
                   TR_EINVAL);
  ck_assert_ptr_null(data);
  ck_assert_uint_eq(len, 0);
  ck_assert_int_eq(tr_pack_tagged(&data, &len, "t", "I", three,
                                  (size_t)TR_MSG_MAX + 1),
                   TR_EMSGSIZE);
  ck_assert_int_eq(tr_pack_tagged(&data, &len, "t", "I", three, SIZE_MAX),
                   TR_EMSGSIZE);
  ck_assert_ptr_null(data);
  /* The sizing pass: a bound, and the exact count; 0 and 0 on error. */
  TR_OK(size_only(&hi, &kids, "t", "iI", (int64_t)5, three, (size_t)3));
  ck_assert_uint_eq(kids, 3 + 3);
  ck_assert_uint_eq(hi, 1 + 2 + 9 + 1 + 27);
  ck_assert_int_eq(size_only(&hi, &kids, NULL, ""), TR_EINVAL);
  ck_assert_uint_eq(hi, 0);
  ck_assert_uint_eq(kids, 0);
}
END_TEST

START_TEST(tagged_rejects_without_leaking) {
  void *data = (void *)1;
  size_t len = 99;
  msgpack_sbuffer sb;
  char *big = pattern(1000);

  ck_assert_int_eq(tr_pack_tagged(&data, &len, "t", "ix", (int64_t)1, 2),
                   TR_EINVAL);
  ck_assert_ptr_null(data);
  ck_assert_uint_eq(len, 0);
  ck_assert_int_eq(tr_pack_tagged(&data, &len, NULL, "i", (int64_t)1),
                   TR_EINVAL);
  ck_assert_int_eq(tr_pack_tagged(NULL, &len, "t", ""), TR_EINVAL);
  ck_assert_int_eq(tr_pack_tagged(&data, NULL, "t", ""), TR_EINVAL);
  ck_assert_int_eq(tr_pack_tagged(&data, &len, "t", "S", (const char *)NULL,
                                  (size_t)3),
                   TR_EINVAL);
  ck_assert_int_eq(tr_pack_tagged(&data, &len, "t", "B", (const void *)NULL,
                                  (size_t)3),
                   TR_EINVAL);
  /* Over TR_MSG_MAX: refused before anything is read or allocated. */
  ck_assert_int_eq(tr_pack_tagged(&data, &len, "t", "B", big,
                                  (size_t)TR_MSG_MAX + 1),
                   TR_EMSGSIZE);
  ck_assert_int_eq(tr_pack_tagged(&data, &len, "t", "BB", big,
                                  (size_t)TR_MSG_MAX / 2, big,
                                  (size_t)TR_MSG_MAX / 2),
                   TR_EMSGSIZE);
  ck_assert_ptr_null(data);

  /* The unknown letter is found before any allocation... */
  msgpack_sbuffer_init(&sb);
  ck_assert_int_eq(pack_sbuf(&sb, "t", "SSq", big, (size_t)1000, big,
                             (size_t)1000, 1),
                   TR_EINVAL);
  ck_assert_ptr_null(sb.data);
  ck_assert_uint_eq(sb.size, 0);
  /* ...and an error leaves existing contents alone. */
  TR_OK(pack_sbuf(&sb, "first", "i", (int64_t)7));
  size_t first = sb.size;
  ck_assert_int_eq(pack_sbuf(&sb, "t", "S?", big, (size_t)1000), TR_EINVAL);
  ck_assert_uint_eq(sb.size, first);
  ck_assert_int_eq(pack_sbuf(NULL, "t", ""), TR_EINVAL);
  ck_assert_int_eq(tr__codec_is_tag(sb.data, sb.size, "first", 5), 1);
  msgpack_sbuffer_destroy(&sb);
  free(big);
}
END_TEST

START_TEST(tagged_sbuf_appends_with_one_allocation) {
  msgpack_sbuffer sb;
  void *data;
  size_t len;
  msgpack_sbuffer_init(&sb);
  TR_OK(pack_sbuf(&sb, "a", "iu", (int64_t)-1, (uint64_t)2));
  ck_assert_uint_le(sb.size, sb.alloc);
  ck_assert_uint_le(sb.alloc, 32); /* reserved close to exact */
  size_t one = sb.size;
  TR_OK(pack_sbuf(&sb, "b", "s", "xyz"));
  ck_assert_int_eq(tr_msgpack_validate(sb.data, one), 0);
  ck_assert_int_eq(tr_msgpack_validate(sb.data + one, sb.size - one), 0);
  ck_assert_int_eq(tr__codec_is_tag(sb.data + one, sb.size - one, "b", 1), 1);
  msgpack_sbuffer_destroy(&sb);
  /* Without numbers the reservation is exact: one allocation, no slack. */
  char *tag = pattern(300);
  msgpack_sbuffer_init(&sb);
  TR_OK(pack_sbuf(&sb, tag, "nnnnnnnnnnnnnnnnnnnnsB", "abc", tag, (size_t)300));
  ck_assert_uint_eq(sb.alloc, sb.size);
  ck_assert_uint_eq(sb.size, 3 + 3 + 300 + 20 + 4 + 3 + 300);
  msgpack_sbuffer_destroy(&sb);
  free(tag);
  /* The public buffer is the exact bytes, no 8 KiB sbuffer default. */
  TR_OK(tr_pack_tagged(&data, &len, "x", "p", (tr_pid_t)1));
  ck_assert_uint_eq(len, 1 + 2 + 10);
  ck_assert_int_eq(memcmp(data, "\x92\xa1x\xd7\x01\0\0\0\0\0\0\0\x01", len),
                   0);
  free(data);
}
END_TEST

START_TEST(tagged_too_big_after_packing_rolls_back) {
  /* The size pass counts integers as 1 byte; these are 9: the total only
   * exceeds TR_MSG_MAX once packed, and the append must be undone. */
  size_t n = TR_MSG_MAX - 30;
  char *big = calloc(1, n);
  msgpack_sbuffer sb;
  void *data = (void *)1;
  size_t len = 1;
  ck_assert_ptr_nonnull(big);
  msgpack_sbuffer_init(&sb);
  TR_OK(pack_sbuf(&sb, "first", ""));
  size_t first = sb.size;
  ck_assert_int_eq(pack_sbuf(&sb, "t", "Biiiii", big, n, INT64_MIN, INT64_MIN,
                             INT64_MIN, INT64_MIN, INT64_MIN),
                   TR_EMSGSIZE);
  ck_assert_uint_eq(sb.size, first);
  ck_assert_int_eq(tr__codec_is_tag(sb.data, sb.size, "first", 5), 1);
  msgpack_sbuffer_destroy(&sb);
  ck_assert_int_eq(tr_pack_tagged(&data, &len, "t", "Biiiii", big, n,
                                  INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN,
                                  INT64_MIN),
                   TR_EMSGSIZE);
  ck_assert_ptr_null(data);
  ck_assert_uint_eq(len, 0);
  /* Just under the limit is fine and validates. */
  TR_OK(tr_pack_tagged(&data, &len, "t", "Bi", big, n, (int64_t)1));
  ck_assert_uint_le(len, TR_MSG_MAX);
  ck_assert_int_eq(tr_msgpack_validate(data, len), 0);
  free(data);
  free(big);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Pids                                                                     */
/* ------------------------------------------------------------------------ */

START_TEST(pid_roundtrip_and_rejects) {
  buf_t b;
  msgpack_object o;
  tr_pid_t pid = 0;
  const char eight[8] = {0};

  buf_init(&b);
  TR_OK(tr_pack_pid(&b.pk, (tr_pid_t)0x0102030405060708ULL));
  ck_assert_uint_eq(b.sb.size, 10);
  ck_assert_int_eq(memcmp(b.sb.data, "\xd7\x01\x01\x02\x03\x04\x05\x06\x07\x08",
                          10),
                   0);
  o.type = MSGPACK_OBJECT_EXT;
  o.via.ext.type = TR_EXT_PID;
  o.via.ext.size = 8;
  o.via.ext.ptr = b.sb.data + 2;
  TR_OK(tr_obj_pid(&o, &pid));
  ck_assert(pid == 0x0102030405060708ULL);
  ck_assert_int_eq(tr_pack_pid(NULL, 1), TR_EINVAL);
  ck_assert_int_eq(tr_obj_pid(NULL, &pid), TR_EINVAL);
  ck_assert_int_eq(tr_obj_pid(&o, NULL), TR_EINVAL);
  o.via.ext.type = TR_EXT_PID + 1;
  ck_assert_int_eq(tr_obj_pid(&o, &pid), TR_EINVAL);
  o.via.ext.type = TR_EXT_PID;
  o.via.ext.size = 4;
  ck_assert_int_eq(tr_obj_pid(&o, &pid), TR_EINVAL);
  o.via.ext.size = 9;
  ck_assert_int_eq(tr_obj_pid(&o, &pid), TR_EINVAL);
  o.type = MSGPACK_OBJECT_BIN;
  o.via.bin.size = 8;
  o.via.bin.ptr = eight;
  ck_assert_int_eq(tr_obj_pid(&o, &pid), TR_EINVAL);
  o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
  o.via.u64 = 5;
  ck_assert_int_eq(tr_obj_pid(&o, &pid), TR_EINVAL);
  ck_assert(pid == 0x0102030405060708ULL); /* untouched on error */
  buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Tag test                                                                 */
/* ------------------------------------------------------------------------ */

#define IS_TAG(lit, tag) \
  tr__codec_is_tag(lit, sizeof(lit) - 1, tag, strlen(tag))

START_TEST(is_tag_cases) {
  ck_assert_int_eq(IS_TAG("\x91\xa4ping", "ping"), 1);
  ck_assert_int_eq(IS_TAG("\x92\xa4ping\x01", "ping"), 1);
  ck_assert_int_eq(IS_TAG("\x91\xa4ping", "pin"), 0);   /* prefix of it */
  ck_assert_int_eq(IS_TAG("\x91\xa4ping", "pings"), 0); /* longer */
  ck_assert_int_eq(IS_TAG("\x91\xa4ping", "pong"), 0);  /* same length */
  ck_assert_int_eq(IS_TAG("\x91\xa2pi", "ping"), 0);
  ck_assert_int_eq(IS_TAG("\x91\xa0", ""), 1);
  ck_assert_int_eq(IS_TAG("\x91\xa0", "x"), 0);
  /* not an array, empty arrays, non-str first element */
  ck_assert_int_eq(IS_TAG("\xa4ping", "ping"), 0);
  ck_assert_int_eq(IS_TAG("\x81\xa4ping\x01", "ping"), 0);
  ck_assert_int_eq(IS_TAG("\x90", ""), 0);
  ck_assert_int_eq(IS_TAG("\xdc\x00\x00", ""), 0);
  ck_assert_int_eq(IS_TAG("\xdd\x00\x00\x00\x00", ""), 0);
  ck_assert_int_eq(IS_TAG("\x92\x01\xa4ping", "ping"), 0);
  ck_assert_int_eq(IS_TAG("\x91\xc4\x04ping", "ping"), 0); /* bin */
  ck_assert_int_eq(IS_TAG("\x91\x91\xa4ping", "ping"), 0);
  ck_assert_int_eq(IS_TAG("\x01", ""), 0);
  /* every array and str width */
  ck_assert_int_eq(IS_TAG("\xdc\x00\x01\xa4ping", "ping"), 1);
  ck_assert_int_eq(IS_TAG("\xdd\x00\x00\x00\x01\xa4ping", "ping"), 1);
  ck_assert_int_eq(IS_TAG("\x91\xd9\x04ping", "ping"), 1);
  ck_assert_int_eq(IS_TAG("\x91\xda\x00\x04ping", "ping"), 1);
  ck_assert_int_eq(IS_TAG("\x91\xdb\x00\x00\x00\x04ping", "ping"), 1);
  ck_assert_int_eq(IS_TAG("\xdd\x00\x00\x00\x01\xdb\x00\x00\x00\x04ping",
                          "ping"), 1);
  ck_assert_int_eq(IS_TAG("\x91\xda\x00\x05ping", "ping"), 0);
  /* bytes that end early are never over-read */
  ck_assert_int_eq(IS_TAG("\x91\xa5ping", "pingx"), 0);
  ck_assert_int_eq(IS_TAG("\xdc\x00", ""), 0);
  ck_assert_int_eq(IS_TAG("\xdc\x00\x00\xa4ping", "ping"), 0); /* [] + junk */
  ck_assert_int_eq(IS_TAG("\xdd\0\0\0\0\xa4ping", "ping"), 0);
  ck_assert_int_eq(IS_TAG("\x91\xdb\x00\x00", ""), 0);
  ck_assert_int_eq(tr__codec_is_tag(NULL, 0, "x", 1), 0);
}
END_TEST

START_TEST(is_tag_long_strings) {
  char *tag = pattern(BIG);
  for (size_t n = 0; n < 3; n++) {
    size_t tl = n == 0 ? 100 : n == 1 ? 300 : BIG;
    void *data;
    size_t len;
    tag[tl] = '\0'; /* 18 elements: an array16 */
    TR_OK(tr_pack_tagged(&data, &len, tag, "nnnnnnnnnnnnnnnnn"));
    ck_assert_int_eq((uint8_t)((char *)data)[0], 0xdc);
    ck_assert_int_eq(tr__codec_is_tag(data, len, tag, tl), 1);
    ck_assert_int_eq(tr__codec_is_tag(data, len, tag, tl - 1), 0);
    tag[0] = 'z';
    ck_assert_int_eq(tr__codec_is_tag(data, len, tag, tl), 0);
    tag[0] = 'a';
    tag[tl] = 'a' + tl % 26;
    free(data);
  }
  free(tag);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

START_TEST(decode_scalars_without_zone) {
  static const char s[] = "\xa5hello";
  static const char e[] = "\xd6\x07\x01\x02\x03\x04";
  msgpack_zone *z = (msgpack_zone *)1;
  msgpack_object o;

  TR_OK(tr__codec_decode("\x2a", 1, &z, &o));
  ck_assert_ptr_null(z);
  ck_assert_int_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  ck_assert_uint_eq(o.via.u64, 42);
  TR_OK(tr__codec_decode("\xd0\x05", 2, &z, &o)); /* int8 5: positive */
  ck_assert_int_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  ck_assert_uint_eq(o.via.u64, 5);
  TR_OK(tr__codec_decode("\xd1\xff\x00", 3, &z, &o));
  ck_assert_int_eq(o.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
  ck_assert_int_eq(o.via.i64, -256);
  TR_OK(tr__codec_decode(s, sizeof s - 1, &z, &o));
  ck_assert_ptr_null(z);
  assert_str(&o, "hello", 5);
  ck_assert_ptr_eq(o.via.str.ptr, s + 1); /* points into data */
  TR_OK(tr__codec_decode(e, sizeof e - 1, &z, &o));
  ck_assert_ptr_null(z);
  ck_assert_int_eq(o.type, MSGPACK_OBJECT_EXT);
  ck_assert_int_eq(o.via.ext.type, 7);
  ck_assert_uint_eq(o.via.ext.size, 4);
  ck_assert_ptr_eq(o.via.ext.ptr, e + 2);
  TR_OK(tr__codec_decode("\xca\x3f\xc0\x00\x00", 5, &z, &o));
  ck_assert_int_eq(o.type, MSGPACK_OBJECT_FLOAT32);
  ck_assert(o.via.f64 == 1.5);
  TR_OK(tr__codec_decode("\x90", 1, &z, &o)); /* empty: no zone either */
  ck_assert_ptr_null(z);
  ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(o.via.array.size, 0);
  TR_OK(tr__codec_decode("\x80", 1, &z, &o));
  ck_assert_ptr_null(z);
  ck_assert_int_eq(o.type, MSGPACK_OBJECT_MAP);
  ck_assert_uint_eq(o.via.map.size, 0);
  ck_assert_int_eq(tr__codec_decode("\xc1", 1, &z, &o), TR_EBADMSG);
  ck_assert_ptr_null(z);
  ck_assert_int_eq(tr__codec_decode(NULL, 1, &z, &o), TR_EINVAL);
  ck_assert_int_eq(tr__codec_decode("\x01", 1, NULL, &o), TR_EINVAL);
  ck_assert_int_eq(tr__codec_decode("\x01", 1, &z, NULL), TR_EINVAL);
}
END_TEST

START_TEST(decode_arrays_and_maps) {
  void *data;
  size_t len;
  msgpack_zone *z = NULL;
  msgpack_object o;
  const msgpack_object *a, *inner;
  buf_t b;

  /* ["a", [1, -2, {"k": 3.5, "p": pid}], {}, []] */
  buf_init(&b);
  msgpack_pack_array(&b.pk, 4);
  msgpack_pack_str_with_body(&b.pk, "a", 1);
  msgpack_pack_array(&b.pk, 3);
  msgpack_pack_int(&b.pk, 1);
  msgpack_pack_int(&b.pk, -2);
  msgpack_pack_map(&b.pk, 2);
  msgpack_pack_str_with_body(&b.pk, "k", 1);
  msgpack_pack_double(&b.pk, 3.5);
  msgpack_pack_str_with_body(&b.pk, "p", 1);
  tr_pack_pid(&b.pk, 77);
  msgpack_pack_map(&b.pk, 0);
  msgpack_pack_array(&b.pk, 0);
  TR_OK(tr__codec_decode(b.sb.data, b.sb.size, &z, &o));
  ck_assert_ptr_nonnull(z);
  ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(o.via.array.size, 4);
  a = o.via.array.ptr;
  assert_str(&a[0], "a", 1);
  ck_assert_int_eq(a[1].type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(a[1].via.array.size, 3);
  inner = a[1].via.array.ptr;
  ck_assert_uint_eq(inner[0].via.u64, 1);
  ck_assert_int_eq(inner[1].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
  ck_assert_int_eq(inner[1].via.i64, -2);
  ck_assert_int_eq(inner[2].type, MSGPACK_OBJECT_MAP);
  ck_assert_uint_eq(inner[2].via.map.size, 2);
  assert_str(&inner[2].via.map.ptr[0].key, "k", 1);
  ck_assert(inner[2].via.map.ptr[0].val.via.f64 == 3.5);
  assert_str(&inner[2].via.map.ptr[1].key, "p", 1);
  tr_pid_t pid = 0;
  TR_OK(tr_obj_pid(&inner[2].via.map.ptr[1].val, &pid));
  ck_assert(pid == 77);
  ck_assert_int_eq(a[2].type, MSGPACK_OBJECT_MAP);
  ck_assert_uint_eq(a[2].via.map.size, 0);
  ck_assert_int_eq(a[3].type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(a[3].via.array.size, 0);
  assert_decodes_like_msgpack(b.sb.data, b.sb.size);
  msgpack_zone_free(z);
  buf_free(&b);

  /* Everything at once, against msgpack_unpack. */
  buf_init(&b);
  pack_all(&b);
  assert_decodes_like_msgpack(b.sb.data, b.sb.size);
  buf_free(&b);

  /* A tagged message decodes like it unpacks. */
  TR_OK(tr_pack_tagged(&data, &len, "t", "iSd", (int64_t)-9, "x\0y",
                       (size_t)3, 0.5));
  assert_decodes_like_msgpack(data, len);
  free(data);
  msgpack_zone_free(NULL);
}
END_TEST

/* Edge inputs kept from writing and running fuzz/fuzz_codec.c (its runs so
 * far, ~7 minutes and ~16M inputs, found no failure; add any future finding
 * here). */
START_TEST(fuzz_regressions) {
  static const struct {
    const char *bytes;
    size_t len;
    int rc;
  } cases[] = {
      {"\x91\xc7\x00\x00", 4, 0},                 /* [ext8 of 0 bytes] */
      {"\xdf\x80\x00\x00\x00\x01\x01", 7, TR_EBADMSG}, /* 2*count > 2^32 */
      {"\xdd\x00\x00\x00\x00\xc0", 6, TR_EBADMSG}, /* [] then junk */
      {"\x92\x90", 2, TR_EBADMSG},                  /* one element short */
      {"\xd4", 1, TR_EBADMSG},
      {"\xc7", 1, TR_EBADMSG},
      {"\xde\x00", 2, TR_EBADMSG},
      /* {fixstr 26 with 20 bytes left, ...}: runs of values skipped with
       * one bounds check each must stop a fixstr's 32 bytes from the end */
      {"\x82\xba\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\xa1m\xa1\x81\xc3", 22,
       TR_EBADMSG},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    msgpack_zone *z = NULL;
    msgpack_object o;
    ck_assert_msg(tr_msgpack_validate(cases[i].bytes, cases[i].len) ==
                      cases[i].rc,
                  "case %zu", i);
    ck_assert_int_eq(tr__codec_decode(cases[i].bytes, cases[i].len, &z, &o),
                     cases[i].rc);
    msgpack_zone_free(z);
  }
  /* [1, [1, ... []]] around 16 and 32 levels, where the decoder's and the
   * scanner's local stacks spill to the heap. */
  for (size_t n = 14; n <= 36; n++) {
    size_t len, depth = 1;
    uint8_t *p = nested(n, "\x92\x01", 2, "\x90", 1, &len);
    msgpack_zone *z = NULL;
    msgpack_object o;
    const msgpack_object *cur;
    ck_assert_int_eq(tr_msgpack_validate(p, len), 0);
    ck_assert_int_eq(tr_msgpack_validate(p, len - 1), TR_EBADMSG);
    TR_OK(tr__codec_decode(p, len, &z, &o));
    for (cur = &o; cur->via.array.size == 2; cur = &cur->via.array.ptr[1]) {
      ck_assert_uint_eq(cur->via.array.ptr[0].via.u64, 1);
      depth++;
    }
    ck_assert_int_eq(cur->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(cur->via.array.size, 0);
    ck_assert_uint_eq(depth, n);
    if (n <= 32) assert_decodes_like_msgpack(p, len);
    msgpack_zone_free(z);
    free(p);
  }
}
END_TEST


/* Builds a chain of `depth` nested one-element arrays around the int 7;
 * the objects live in the caller-provided array. */
static void nested_obj(msgpack_object *objs, int depth) {
  for (int i = 0; i < depth; i++) {
    objs[i].type = MSGPACK_OBJECT_ARRAY;
    objs[i].via.array.size = 1;
    objs[i].via.array.ptr = &objs[i + 1];
  }
  objs[depth].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
  objs[depth].via.u64 = 7;
}

START_TEST(pack_object_matches_msgpack_and_bounds_depth) {
  static msgpack_object objs[TR_CODEC_DEPTH_MAX + 2];
  msgpack_sbuffer ours, ref;
  msgpack_packer pk;
  msgpack_object_kv kv[2];
  msgpack_object map;
  /* A map with nested values packs exactly as msgpack-c packs it. */
  nested_obj(objs, 20);
  kv[0].key.type = MSGPACK_OBJECT_STR;
  kv[0].key.via.str.ptr = "k";
  kv[0].key.via.str.size = 1;
  kv[0].val = objs[0];
  kv[1].key.type = MSGPACK_OBJECT_NIL;
  kv[1].val.type = MSGPACK_OBJECT_BOOLEAN;
  kv[1].val.via.boolean = true;
  map.type = MSGPACK_OBJECT_MAP;
  map.via.map.size = 2;
  map.via.map.ptr = kv;
  msgpack_sbuffer_init(&ours);
  msgpack_sbuffer_init(&ref);
  ck_assert_int_eq(tr__codec_pack_object(&ours, &map), 0);
  msgpack_packer_init(&pk, &ref, msgpack_sbuffer_write);
  ck_assert_int_eq(msgpack_pack_object(&pk, map), 0);
  ck_assert_uint_eq(ours.size, ref.size);
  ck_assert(memcmp(ours.data, ref.data, ref.size) == 0);
  msgpack_sbuffer_destroy(&ours);
  msgpack_sbuffer_destroy(&ref);
  /* Exactly at the depth limit it packs and validates; one past, refused. */
  nested_obj(objs, TR_CODEC_DEPTH_MAX);
  msgpack_sbuffer_init(&ours);
  ck_assert_int_eq(tr__codec_pack_object(&ours, &objs[0]), 0);
  ck_assert_int_eq(tr_msgpack_validate(ours.data, ours.size), 0);
  msgpack_sbuffer_destroy(&ours);
  nested_obj(objs, TR_CODEC_DEPTH_MAX + 1);
  msgpack_sbuffer_init(&ours);
  ck_assert_int_eq(tr__codec_pack_object(&ours, &objs[0]), TR_EBADMSG);
  msgpack_sbuffer_destroy(&ours);
  /* A non-empty container without items is rejected, not dereferenced. */
  objs[0].via.array.ptr = NULL;
  msgpack_sbuffer_init(&ours);
  ck_assert_int_eq(tr__codec_pack_object(&ours, &objs[0]), TR_EINVAL);
  msgpack_sbuffer_destroy(&ours);
  ck_assert_int_eq(tr__codec_pack_object(NULL, &objs[0]), TR_EINVAL);
}
END_TEST

START_TEST(validate_count_and_decode_into_match_decode) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_zone *zone = NULL;
  msgpack_object a, b, pool[16];
  uint64_t children = 99;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  /* ["t", 1, {"k": [2, 3]}, -4]: 4 + 1 pair (2 objects) + 2 = 8 children */
  msgpack_pack_array(&pk, 4);
  msgpack_pack_str_with_body(&pk, "t", 1);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str_with_body(&pk, "k", 1);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, 2);
  msgpack_pack_int(&pk, 3);
  msgpack_pack_int(&pk, -4);
  ck_assert_int_eq(tr__codec_validate_count(sb.data, sb.size, &children), 0);
  ck_assert_uint_eq(children, 8);
  ck_assert_int_eq(tr__codec_decode(sb.data, sb.size, &zone, &a), 0);
  ck_assert_int_eq(tr__codec_decode_into(sb.data, &b, pool), 0);
  ck_assert(msgpack_object_equal(a, b));
  msgpack_zone_free(zone);
  /* Scalars need no pool; malformed input is refused like the validator. */
  ck_assert_int_eq(tr__codec_validate_count("\x2a", 1, &children), 0);
  ck_assert_uint_eq(children, 0);
  ck_assert_int_eq(tr__codec_decode_into("\x2a", &b, NULL), 0);
  ck_assert_uint_eq(b.via.u64, 42);
  ck_assert_int_eq(tr__codec_validate_count("\x92\x01", 2, &children), TR_EBADMSG);
  ck_assert_int_eq(tr__codec_validate_count(NULL, 0, &children), TR_EINVAL);
  msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* Arrays of n values of every FIX width (1 to 32 bytes each), for every n
 * up to 40: the validator skips such runs with one bounds check per value
 * while it is more than 32 bytes from the end, and with two after. Every
 * such body is accepted and decodes right; every prefix (read from a
 * buffer of exactly its size), a count one too high and a trailing byte
 * are refused. */
START_TEST(validate_runs_of_fixed_width_values) {
  static const char *const vals[] = {
      "\x05",                 "\xcc\xc8",          "\xcd\xea\x60",
      "\xce\xee\x6b\x28\x00", "\xcf\x01\x02\x03\x04\x05\x06\x07\x08",
      "\xd0\x9c",             "\xcb\x40\x09\x21\xf9\xf0\x1b\x86\x6e",
      "\xa3" "abc",           "\xc0",              "\xc3",
      "\xd8\x07" "0123456789abcdef", /* fixext 16 */
      "\xfb",
      "\xbf" "0123456789abcdefghijklmnopqrstu", /* fixstr 31: the widest */
  };
  static const size_t lens[] = {1, 2, 3, 5, 9, 2, 9, 4, 1, 1, 18, 1, 32};
  for (int n = 0; n <= 40; n++) {
    unsigned char body[3 + 40 * 32 + 1];
    size_t len = 0;
    uint64_t kids = 99;
    body[len++] = 0xdc; /* array 16 */
    body[len++] = 0;
    body[len++] = (unsigned char)n;
    for (int i = 0; i < n; i++) {
      size_t k = (size_t)(i * 7 + n) % 13;
      memcpy(body + len, vals[k], lens[k]);
      len += lens[k];
    }
    ck_assert_int_eq(tr__codec_validate_count(body, len, &kids), 0);
    ck_assert_uint_eq(kids, (uint64_t)n);
    assert_decodes_like_msgpack(body, len);
    for (size_t cut = 1; cut < len; cut++) {
      unsigned char *pre = malloc(cut); /* exact size: sanitizers and
                                         * valgrind see any over-read */
      ck_assert_ptr_nonnull(pre);
      memcpy(pre, body, cut);
      ck_assert_msg(tr__codec_validate_count(pre, cut, &kids) == TR_EBADMSG &&
                        kids == 0,
                    "n %d: prefix %zu of %zu accepted", n, cut, len);
      free(pre);
    }
    body[len] = 0xc0;
    ck_assert_int_eq(tr_msgpack_validate(body, len + 1), TR_EBADMSG);
    body[2] = (unsigned char)(n + 1);
    ck_assert_int_eq(tr_msgpack_validate(body, len), TR_EBADMSG);
  }
}
END_TEST

static Suite *codec_suite(void) {
  Suite *s = suite_create("codec");
  TCase *tc = tcase_create("validate");
  tcase_add_test(tc, validate_every_type);
  tcase_add_test(tc, validate_hand_written);
  tcase_add_test(tc, validate_rejects_every_truncation);
  tcase_add_test(tc, validate_rejects_trailing_bytes);
  tcase_add_test(tc, validate_rejects_c1);
  tcase_add_test(tc, validate_rejects_huge_counts);
  tcase_add_test(tc, validate_deep_nesting);
  tcase_add_test(tc, validate_bad_args);
  tcase_add_test(tc, validate_runs_of_fixed_width_values);
  suite_add_tcase(s, tc);
  tc = tcase_create("pack");
  tcase_add_test(tc, tagged_every_letter);
  tcase_add_test(tc, tagged_int_array_matches_msgpack_c);
  tcase_add_test(tc, tagged_int_array_size_and_errors);
  tcase_add_test(tc, tagged_special_doubles_and_widths);
  tcase_add_test(tc, tagged_no_args_and_long_tag);
  tcase_add_test(tc, tagged_rejects_without_leaking);
  tcase_add_test(tc, tagged_sbuf_appends_with_one_allocation);
  tcase_add_test(tc, tagged_too_big_after_packing_rolls_back);
  tcase_add_test(tc, pid_roundtrip_and_rejects);
  tcase_add_test(tc, pack_object_matches_msgpack_and_bounds_depth);
  suite_add_tcase(s, tc);
  tc = tcase_create("tag");
  tcase_add_test(tc, is_tag_cases);
  tcase_add_test(tc, is_tag_long_strings);
  suite_add_tcase(s, tc);
  tc = tcase_create("decode");
  tcase_add_test(tc, decode_scalars_without_zone);
  tcase_add_test(tc, decode_arrays_and_maps);
  tcase_add_test(tc, fuzz_regressions);
  tcase_add_test(tc, validate_count_and_decode_into_match_decode);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(codec_suite)
