/* Check suite for tr_msg_unpack (the one-pass reader in mailbox/codec.c):
 * round trips of every letter through tr_send_tagged, integer forms and
 * ranges, tag / arity / type mismatches, integer arrays against their
 * capacity, hostile and cut-short bodies, the message after a failed
 * unpack, and invalid arguments. */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "testutil.h"
#include "../mailbox/codec.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Starts ["tag", ...] with n elements after the tag. */
static void buf_tagged(buf_t *b, const char *tag, uint32_t n) {
  buf_init(b);
  msgpack_pack_array(&b->pk, n + 1);
  msgpack_pack_str_with_body(&b->pk, tag, strlen(tag));
}

/* Actor-only: sends len bytes to self and receives them back. */
static tr_msg_t *echo(const void *body, size_t len) {
  tr_msg_t *m = NULL;
  TR_OK(tr_send(tr_self(), body, len));
  TR_OK(tr_recv(&m, 0));
  return m;
}

static tr_msg_t *echo_buf(buf_t *b) {
  tr_msg_t *m = echo(b->sb.data, b->sb.size);
  buf_free(b);
  return m;
}

/* The core on raw bytes, for bodies tr_send would refuse (cut short). */
static int unpack_raw(const void *data, size_t len, const char *tag,
                      const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = tr__tagged_unpack(data, len, tag, fmt, ap);
  va_end(ap);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

static void every_letter_actor(void *arg) {
  static const int64_t vals[5] = {0, -1, 127, INT64_MIN, INT64_MAX};
  static const unsigned char bin[4] = {0, 0xff, 0xc1, 7};
  const char name[] = "a string\0with a NUL";
  tr_msg_t *m;
  int64_t i = 0, out[8];
  uint64_t u = 0;
  double d = 0;
  int b = -1;
  const char *s1 = NULL, *s2 = NULL;
  size_t l1 = 0, l2 = 0, lb = 0, n = 0;
  const void *pb = NULL;
  tr_pid_t pid = 0;
  (void)arg;

  TR_OK(tr_send_tagged(tr_self(), "every", "iudbnsSBIp", (int64_t)-5,
                       UINT64_MAX, 2.5, 1, "c string", name, sizeof name - 1,
                       bin, sizeof bin, vals, (size_t)5, tr_self()));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(
      tr_msg_unpack(m, "every", "iudbnSSBIp", &i, &u, &d, &b, &s1, &l1, &s2,
                    &l2, &pb, &lb, out, (size_t)8, &n, &pid),
      0);
  ck_assert_int_eq(i, -5);
  ck_assert(u == UINT64_MAX);
  ck_assert(d == 2.5);
  ck_assert_int_eq(b, 1);
  ck_assert_uint_eq(l1, 8); /* s packs a str: read back with S */
  ck_assert(memcmp(s1, "c string", 8) == 0);
  ck_assert_uint_eq(l2, sizeof name - 1);
  ck_assert(memcmp(s2, name, l2) == 0);
  ck_assert_uint_eq(lb, sizeof bin);
  ck_assert(memcmp(pb, bin, lb) == 0);
  ck_assert_uint_eq(n, 5);
  ck_assert(memcmp(out, vals, sizeof vals) == 0);
  ck_assert(pid == tr_self());
  /* the string points into the message body */
  {
    size_t len;
    const char *body = tr_msg_data(m, &len);
    ck_assert(s2 > body && s2 + l2 <= body + len);
  }
  tr_msg_free(m);

  /* NULL pointers pack nil: S and B give (NULL, 0), I a count of 0 */
  TR_OK(tr_send_tagged(tr_self(), "nils", "sSBI", (const char *)NULL,
                       (const char *)NULL, (size_t)0, (const void *)NULL,
                       (size_t)0, (const int64_t *)NULL, (size_t)0));
  TR_OK(tr_recv(&m, 0));
  s1 = s2 = "x";
  pb = "x";
  l1 = l2 = lb = n = 9;
  ck_assert_int_eq(tr_msg_unpack(m, "nils", "SSBI", &s1, &l1, &s2, &l2, &pb,
                                 &lb, out, (size_t)8, &n),
                   0);
  ck_assert_ptr_null(s1);
  ck_assert_ptr_null(s2);
  ck_assert_ptr_null(pb);
  ck_assert_uint_eq(l1 + l2 + lb + n, 0);
  /* and nil still matches n */
  ck_assert_int_eq(tr_msg_unpack(m, "nils", "nnnn"), 0);
  tr_msg_free(m);

  /* empty string, empty bin and empty array are not nil */
  TR_OK(tr_send_tagged(tr_self(), "empty", "SBI", "", (size_t)0, "",
                       (size_t)0, vals, (size_t)0));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_unpack(m, "empty", "SBI", &s1, &l1, &pb, &lb,
                                 (int64_t *)NULL, (size_t)0, &n),
                   0);
  ck_assert_ptr_nonnull(s1);
  ck_assert_ptr_nonnull(pb);
  ck_assert_uint_eq(l1 + lb + n, 0);
  ck_assert_int_eq(tr_msg_unpack(m, "empty", "nnn"), TR_EBADMSG);
  tr_msg_free(m);

  /* no arguments: fmt NULL or "" */
  TR_OK(tr_send_tagged(tr_self(), "bare", NULL));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_unpack(m, "bare", NULL), 0);
  ck_assert_int_eq(tr_msg_unpack(m, "bare", ""), 0);
  ck_assert_int_eq(tr_test_unpack_v(m, "bare", NULL), 0);
  ck_assert_int_eq(tr_msg_unpack(m, "bare", "n", &i), TR_EBADMSG);
  tr_msg_free(m);

  /* the _v form */
  TR_OK(tr_send_tagged(tr_self(), "v", "ii", (int64_t)1, (int64_t)-2));
  TR_OK(tr_recv(&m, 0));
  i = 0;
  {
    int64_t j = 0;
    ck_assert_int_eq(tr_test_unpack_v(m, "v", "ii", &i, &j), 0);
    ck_assert(i == 1 && j == -2);
  }
  tr_msg_free(m);
}

START_TEST(roundtrip_every_letter) { tr_test_run1(every_letter_actor, NULL); }
END_TEST

/* Doubles, floats and special values; d takes float32 as well. */
static void doubles_actor(void *arg) {
  const double v[] = {0.0, -0.0, 1e300, -DBL_MIN, DBL_MAX, INFINITY, NAN};
  buf_t b;
  tr_msg_t *m;
  double d;
  (void)arg;
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
    TR_OK(tr_send_tagged(tr_self(), "d", "d", v[k]));
    TR_OK(tr_recv(&m, 0));
    ck_assert_int_eq(tr_msg_unpack(m, "d", "d", &d), 0);
    ck_assert(memcmp(&d, &v[k], sizeof d) == 0); /* bit for bit */
    tr_msg_free(m);
  }
  buf_tagged(&b, "f", 2);
  msgpack_pack_float(&b.pk, 1.5f);
  msgpack_pack_float(&b.pk, -INFINITY);
  m = echo_buf(&b);
  {
    double e;
    ck_assert_int_eq(tr_msg_unpack(m, "f", "dd", &d, &e), 0);
    ck_assert(d == 1.5 && isinf(e) && e < 0);
  }
  tr_msg_free(m);
  /* an integer is not a double, nor a double an integer */
  buf_tagged(&b, "x", 1);
  msgpack_pack_int64(&b.pk, 3);
  m = echo_buf(&b);
  ck_assert_int_eq(tr_msg_unpack(m, "x", "d", &d), TR_EBADMSG);
  tr_msg_free(m);
  buf_tagged(&b, "x", 1);
  msgpack_pack_double(&b.pk, 3.0);
  m = echo_buf(&b);
  {
    int64_t i;
    uint64_t u;
    ck_assert_int_eq(tr_msg_unpack(m, "x", "i", &i), TR_EBADMSG);
    ck_assert_int_eq(tr_msg_unpack(m, "x", "u", &u), TR_EBADMSG);
  }
  tr_msg_free(m);
}

START_TEST(doubles_and_floats) { tr_test_run1(doubles_actor, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Integers                                                                 */
/* ------------------------------------------------------------------------ */

/* A value as (negative?, magnitude bits): what fits i and what fits u. */
typedef struct ival {
  int neg;    /* value < 0 (then bits is the int64) */
  uint64_t bits;
} ival_t;

static const ival_t ivals[] = {
    {0, 0},
    {0, 1},
    {0, 127},
    {0, 128},
    {0, 255},
    {0, 256},
    {0, 32767},
    {0, 32768},
    {0, 65535},
    {0, 65536},
    {0, INT32_MAX},
    {0, (uint64_t)INT32_MAX + 1},
    {0, UINT32_MAX},
    {0, (uint64_t)UINT32_MAX + 1},
    {0, INT64_MAX},
    {0, (uint64_t)INT64_MAX + 1},
    {0, UINT64_MAX},
    {1, (uint64_t)-1},
    {1, (uint64_t)-32},
    {1, (uint64_t)-33},
    {1, (uint64_t)-128},
    {1, (uint64_t)-129},
    {1, (uint64_t)-32768},
    {1, (uint64_t)-32769},
    {1, (uint64_t)INT32_MIN},
    {1, (uint64_t)INT32_MIN - 1},
    {1, (uint64_t)INT64_MIN},
};
#define N_IVALS (sizeof ivals / sizeof ivals[0])

/* Packs v in form `form` (0: msgpack-c's smallest, 1..4: uint 8/16/32/64,
 * 5..8: int 8/16/32/64) if that form can hold it; 0 if it cannot. */
static int pack_form(msgpack_packer *pk, const ival_t *v, int form) {
  int64_t s = (int64_t)v->bits;
  uint64_t u = v->bits;
  switch (form) {
  case 0:
    return (v->neg ? msgpack_pack_int64(pk, s) : msgpack_pack_uint64(pk, u)) == 0;
  case 1: return !v->neg && u <= UINT8_MAX && msgpack_pack_fix_uint8(pk, (uint8_t)u) == 0;
  case 2: return !v->neg && u <= UINT16_MAX && msgpack_pack_fix_uint16(pk, (uint16_t)u) == 0;
  case 3: return !v->neg && u <= UINT32_MAX && msgpack_pack_fix_uint32(pk, (uint32_t)u) == 0;
  case 4: return !v->neg && msgpack_pack_fix_uint64(pk, u) == 0;
  case 5:
    return (v->neg ? s >= INT8_MIN : u <= INT8_MAX) &&
           msgpack_pack_fix_int8(pk, (int8_t)s) == 0;
  case 6:
    return (v->neg ? s >= INT16_MIN : u <= INT16_MAX) &&
           msgpack_pack_fix_int16(pk, (int16_t)s) == 0;
  case 7:
    return (v->neg ? s >= INT32_MIN : u <= INT32_MAX) &&
           msgpack_pack_fix_int32(pk, (int32_t)s) == 0;
  default:
    return (v->neg || u <= INT64_MAX) && msgpack_pack_fix_int64(pk, s) == 0;
  }
}

static void int_forms_actor(void *arg) {
  int forms = 0;
  (void)arg;
  for (size_t k = 0; k < N_IVALS; k++) {
    const ival_t *v = &ivals[k];
    int fits_i = v->neg || v->bits <= INT64_MAX, fits_u = !v->neg;
    for (int form = 0; form <= 8; form++) {
      buf_t b;
      tr_msg_t *m;
      int64_t i = 42, arr[2] = {42, 42};
      uint64_t u = 42;
      size_t n = 99;
      buf_tagged(&b, "int", 2);
      if (!pack_form(&b.pk, v, form)) {
        buf_free(&b);
        continue;
      }
      forms++;
      msgpack_pack_array(&b.pk, 1); /* the same value in an I array */
      pack_form(&b.pk, v, form);
      m = echo_buf(&b);
      ck_assert_msg(tr_msg_unpack(m, "int", "iI", &i, arr, (size_t)2, &n) ==
                        (fits_i ? 0 : TR_EBADMSG),
                    "value %zu form %d as i", k, form);
      if (fits_i) {
        ck_assert(i == (int64_t)v->bits && arr[0] == (int64_t)v->bits);
        ck_assert_uint_eq(n, 1);
      } else {
        ck_assert(i == 42); /* nothing written for the offending element */
      }
      /* u: the array must hold int64s, so only the first element */
      ck_assert_msg(tr_msg_unpack(m, "int", "uI", &u, arr, (size_t)2, &n) ==
                        (fits_u && fits_i ? 0 : TR_EBADMSG),
                    "value %zu form %d as u", k, form);
      if (fits_u) ck_assert(u == v->bits);
      tr_msg_free(m);
    }
  }
  ck_assert_int_ge(forms, 80); /* every form was tried with several values */
}

START_TEST(integer_forms_and_ranges) { tr_test_run1(int_forms_actor, NULL); }
END_TEST

/* Through tr_send_tagged: the extremes of both letters. */
static void int_extremes_actor(void *arg) {
  tr_msg_t *m;
  int64_t a, b;
  uint64_t c, d;
  (void)arg;
  TR_OK(tr_send_tagged(tr_self(), "x", "iiuu", INT64_MIN, INT64_MAX,
                       (uint64_t)0, UINT64_MAX));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_unpack(m, "x", "iiuu", &a, &b, &c, &d), 0);
  ck_assert(a == INT64_MIN && b == INT64_MAX && c == 0 && d == UINT64_MAX);
  /* INT64_MIN does not fit u; UINT64_MAX does not fit i */
  ck_assert_int_eq(tr_msg_unpack(m, "x", "uiuu", &c, &b, &c, &d), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "x", "iiui", &a, &b, &c, &a), TR_EBADMSG);
  /* non-negative signed values fit both */
  ck_assert_int_eq(tr_msg_unpack(m, "x", "iuuu", &a, &c, &c, &d), 0);
  ck_assert(c == 0);
  ck_assert_int_eq(tr_msg_unpack(m, "x", "iuiu", &a, &c, &b, &d), 0);
  ck_assert(c == INT64_MAX && b == 0);
  tr_msg_free(m);
}

START_TEST(integer_extremes) { tr_test_run1(int_extremes_actor, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Mismatches                                                               */
/* ------------------------------------------------------------------------ */

static void mismatch_actor(void *arg) {
  tr_msg_t *m;
  int64_t i = 7, j = 7, arr[4];
  uint64_t u;
  double d;
  int b;
  const char *s;
  size_t n, l;
  const void *pb;
  tr_pid_t pid;
  (void)arg;

  TR_OK(tr_send_tagged(tr_self(), "tag", "iS", (int64_t)1, "xy", (size_t)2));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "iS", &i, &s, &l), 0);
  /* tag: other, prefix, longer, different case, empty */
  ck_assert_int_eq(tr_msg_unpack(m, "tab", "iS", &i, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "ta", "iS", &i, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tags", "iS", &i, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "TAG", "iS", &i, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "", "iS", &i, &s, &l), TR_EBADMSG);
  /* arity: fewer and more letters than elements */
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "i", &i), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", NULL), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "iSi", &i, &s, &l, &j), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "iSn", &i, &s, &l), TR_EBADMSG);
  /* types: each letter against an int and against a str */
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "dS", &d, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "bS", &b, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "nS", &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "SS", &s, &l, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "BS", &pb, &l, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "IS", arr, (size_t)4, &n, &s, &l),
                   TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "pS", &pid, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "ii", &i, &j), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "iu", &i, &u), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "iB", &i, &pb, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "iI", &i, arr, (size_t)4, &n),
                   TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "ip", &i, &pid), TR_EBADMSG);
  /* outputs after the offending element are not written */
  j = 7;
  i = 7;
  ck_assert_int_eq(tr_msg_unpack(m, "tag", "ui", &u, &j), TR_EBADMSG);
  ck_assert_int_eq(j, 7);
  tr_msg_free(m);

  /* a bin is not a str, nor a str a bin */
  TR_OK(tr_send_tagged(tr_self(), "r", "SB", "s", (size_t)1, "b", (size_t)1));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_unpack(m, "r", "SB", &s, &l, &pb, &n), 0);
  ck_assert_int_eq(tr_msg_unpack(m, "r", "BS", &pb, &n, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "r", "SS", &s, &l, &s, &l), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "r", "BB", &pb, &l, &pb, &n), TR_EBADMSG);
  tr_msg_free(m);

  /* bools and nil are not ints, nor each other */
  TR_OK(tr_send_tagged(tr_self(), "bn", "bbn", 0, 1));
  TR_OK(tr_recv(&m, 0));
  {
    int b2 = 5;
    ck_assert_int_eq(tr_msg_unpack(m, "bn", "bbn", &b, &b2), 0);
    ck_assert(b == 0 && b2 == 1);
  }
  ck_assert_int_eq(tr_msg_unpack(m, "bn", "ibn", &i, &b), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "bn", "bbb", &b, &b, &b), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "bn", "bbi", &b, &b, &i), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "bn", "nbn", &b), TR_EBADMSG);
  tr_msg_free(m);
}

START_TEST(wrong_tag_arity_and_type) { tr_test_run1(mismatch_actor, NULL); }
END_TEST

static void int_array_actor(void *arg) {
  int64_t vals[40], out[40];
  tr_msg_t *m;
  size_t n;
  buf_t b;
  (void)arg;
  for (int k = 0; k < 40; k++) vals[k] = (k % 3 == 0 ? -1 : 1) * ((int64_t)1 << k);

  TR_OK(tr_send_tagged(tr_self(), "a", "I", vals, (size_t)40));
  TR_OK(tr_recv(&m, 0));
  /* exactly the capacity */
  ck_assert_int_eq(tr_msg_unpack(m, "a", "I", out, (size_t)40, &n), 0);
  ck_assert_uint_eq(n, 40);
  ck_assert(memcmp(out, vals, sizeof vals) == 0);
  /* over it: an error, with the length it needs */
  n = 0;
  ck_assert_int_eq(tr_msg_unpack(m, "a", "I", out, (size_t)39, &n), TR_EBADMSG);
  ck_assert_uint_eq(n, 40);
  ck_assert_int_eq(tr_msg_unpack(m, "a", "I", (int64_t *)NULL, (size_t)0, &n),
                   TR_EBADMSG);
  ck_assert_uint_eq(n, 40);
  tr_msg_free(m);

  /* an array of 16+ elements (array16 header) of small values, last in the
   * body: the reader's careful path near the end */
  for (int k = 0; k < 40; k++) vals[k] = k - 20;
  TR_OK(tr_send_tagged(tr_self(), "a", "I", vals, (size_t)40));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_unpack(m, "a", "I", out, (size_t)40, &n), 0);
  ck_assert(n == 40 && memcmp(out, vals, sizeof vals) == 0);
  tr_msg_free(m);

  /* every integer form, in runs and alone, with room after the array (a
   * long string follows it): the reader's path without per-element length
   * checks */
  {
    static const int64_t mixed[] = {
        (int64_t)1 << 40, (int64_t)1 << 41, -1, (int64_t)1 << 42, 200, -200,
        INT64_MAX, 70000, -70000, (int64_t)1 << 33, (int64_t)4000000000,
        -((int64_t)1 << 40), INT64_MIN, 5, (int64_t)1 << 50, 40000, -40000};
    const size_t nm = sizeof mixed / sizeof mixed[0];
    char pad[300];
    const char *s;
    size_t l;
    memset(pad, 'p', sizeof pad);
    TR_OK(tr_send_tagged(tr_self(), "m", "IS", mixed, nm, pad, sizeof pad));
    TR_OK(tr_recv(&m, 0));
    ck_assert_int_eq(tr_msg_unpack(m, "m", "IS", out, (size_t)40, &n, &s, &l), 0);
    ck_assert(n == nm && memcmp(out, mixed, sizeof mixed) == 0);
    ck_assert(l == sizeof pad);
    tr_msg_free(m);
    /* and a uint64 above INT64_MAX inside a run of uint64s */
    buf_tagged(&b, "m", 2);
    msgpack_pack_array(&b.pk, 3);
    msgpack_pack_uint64(&b.pk, (uint64_t)1 << 40);
    msgpack_pack_uint64(&b.pk, (uint64_t)1 << 63);
    msgpack_pack_uint64(&b.pk, (uint64_t)1 << 41);
    msgpack_pack_str_with_body(&b.pk, pad, sizeof pad);
    m = echo_buf(&b);
    ck_assert_int_eq(tr_msg_unpack(m, "m", "IS", out, (size_t)40, &n, &s, &l),
                     TR_EBADMSG);
    tr_msg_free(m);
  }

  /* elements that are not int64s: uint64 above INT64_MAX, a str, nil */
  buf_tagged(&b, "a", 1);
  msgpack_pack_array(&b.pk, 2);
  msgpack_pack_int64(&b.pk, 1);
  msgpack_pack_uint64(&b.pk, (uint64_t)INT64_MAX + 1);
  m = echo_buf(&b);
  ck_assert_int_eq(tr_msg_unpack(m, "a", "I", out, (size_t)4, &n), TR_EBADMSG);
  tr_msg_free(m);
  buf_tagged(&b, "a", 1);
  msgpack_pack_array(&b.pk, 2);
  msgpack_pack_int64(&b.pk, 1);
  msgpack_pack_str_with_body(&b.pk, "x", 1);
  m = echo_buf(&b);
  ck_assert_int_eq(tr_msg_unpack(m, "a", "I", out, (size_t)4, &n), TR_EBADMSG);
  tr_msg_free(m);
  buf_tagged(&b, "a", 1);
  msgpack_pack_array(&b.pk, 1);
  msgpack_pack_nil(&b.pk);
  m = echo_buf(&b);
  ck_assert_int_eq(tr_msg_unpack(m, "a", "I", out, (size_t)4, &n), TR_EBADMSG);
  tr_msg_free(m);
  /* a map is not an array */
  buf_tagged(&b, "a", 1);
  msgpack_pack_map(&b.pk, 1);
  msgpack_pack_int64(&b.pk, 1);
  msgpack_pack_int64(&b.pk, 2);
  m = echo_buf(&b);
  ck_assert_int_eq(tr_msg_unpack(m, "a", "I", out, (size_t)4, &n), TR_EBADMSG);
  tr_msg_free(m);
  /* an array32 header (a form msgpack-c never uses for 2 elements) */
  {
    static const unsigned char body[] = {0x92, 0xa1, 'a', 0xdd, 0, 0, 0, 2,
                                         0x01, 0xd0, 0x80};
    m = echo(body, sizeof body);
    ck_assert_int_eq(tr_msg_unpack(m, "a", "I", out, (size_t)4, &n), 0);
    ck_assert(n == 2 && out[0] == 1 && out[1] == -128);
    tr_msg_free(m);
  }
}

START_TEST(int_array_capacity_and_elements) {
  tr_test_run1(int_array_actor, NULL);
}
END_TEST

/* Pids: ext TR_EXT_PID of 8 bytes in any ext form; nothing else. */
static void pid_actor(void *arg) {
  static const unsigned char ext8[] = {0x92, 0xa1, 'p', 0xc7, 8, TR_EXT_PID,
                                       1, 2, 3, 4, 5, 6, 7, 8};
  static const unsigned char ext32[] = {0x92, 0xa1, 'p', 0xc9, 0, 0, 0, 8,
                                        TR_EXT_PID, 0, 0, 0, 0, 0, 0, 0, 9};
  static const unsigned char other_type[] = {0x92, 0xa1, 'p', 0xd7, 2,
                                             1, 2, 3, 4, 5, 6, 7, 8};
  static const unsigned char seven[] = {0x92, 0xa1, 'p', 0xc7, 7, TR_EXT_PID,
                                        1, 2, 3, 4, 5, 6, 7};
  /* a 7-byte pid ext followed by an int: the 8 bytes would be there */
  static const unsigned char seven_then[] = {0x93, 0xa1, 'p', 0xc7, 7,
                                             TR_EXT_PID, 1, 2, 3, 4, 5, 6, 7,
                                             0x01};
  static const unsigned char sixteen[] = {0x92, 0xa1, 'p', 0xd8, TR_EXT_PID,
                                          0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 1};
  tr_msg_t *m;
  tr_pid_t pid = 0;
  (void)arg;
  m = echo(ext8, sizeof ext8);
  ck_assert_int_eq(tr_msg_unpack(m, "p", "p", &pid), 0);
  ck_assert(pid == UINT64_C(0x0102030405060708));
  tr_msg_free(m);
  m = echo(ext32, sizeof ext32);
  ck_assert_int_eq(tr_msg_unpack(m, "p", "p", &pid), 0);
  ck_assert(pid == 9);
  tr_msg_free(m);
  m = echo(other_type, sizeof other_type);
  ck_assert_int_eq(tr_msg_unpack(m, "p", "p", &pid), TR_EBADMSG);
  tr_msg_free(m);
  m = echo(seven, sizeof seven);
  ck_assert_int_eq(tr_msg_unpack(m, "p", "p", &pid), TR_EBADMSG);
  tr_msg_free(m);
  m = echo(seven_then, sizeof seven_then);
  {
    int64_t i;
    ck_assert_int_eq(tr_msg_unpack(m, "p", "pi", &pid, &i), TR_EBADMSG);
  }
  tr_msg_free(m);
  /* as raw bytes, with the array saying 2: a reader that took 8 bytes of
   * a 7-byte ext would end exactly at the end */
  ck_assert_int_eq(unpack_raw((const unsigned char[]){0x92, 0xa1, 'p', 0xc7, 7,
                                                      TR_EXT_PID, 1, 2, 3, 4,
                                                      5, 6, 7, 0x01},
                              14, "p", "p", &pid),
                   TR_EBADMSG);
  m = echo(sixteen, sizeof sixteen);
  ck_assert_int_eq(tr_msg_unpack(m, "p", "p", &pid), TR_EBADMSG);
  tr_msg_free(m);
}

START_TEST(pid_forms) { tr_test_run1(pid_actor, NULL); }
END_TEST

/* EXIT and DOWN bodies are tagged arrays too. */
static void dying(void *arg) {
  (void)arg;
  tr_exit_error(-77, "%s", "unpack test");
}

static void system_msgs_actor(void *arg) {
  tr_msg_t *m;
  tr_pid_t child, from = 0;
  uint64_t ref = 0;
  const char *why;
  size_t wl;
  tr_ref_t mref;
  (void)arg;
  TR_OK(tr_trap_exit(1));
  TR_OK(tr_spawn_link(dying, NULL, &child));
  TR_OK(tr_recv(&m, -1));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_EXIT);
  ck_assert_int_eq(tr_msg_unpack(m, "EXIT", "pS", &from, &why, &wl), 0);
  ck_assert(from == child && wl == 5 && memcmp(why, "error", 5) == 0);
  tr_msg_free(m);
  TR_OK(tr_spawn_monitor(dying, NULL, &child, &mref));
  TR_OK(tr_recv(&m, -1));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_int_eq(tr_msg_unpack(m, "DOWN", "upS", &ref, &from, &why, &wl), 0);
  ck_assert(ref == mref && from == child);
  tr_msg_free(m);
}

START_TEST(exit_and_down_bodies) { tr_test_run1(system_msgs_actor, NULL); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Hostile bodies                                                           */
/* ------------------------------------------------------------------------ */

/* Valid msgpack of the wrong shape, each sent with tr_send; none matches
 * ["t", int, str] and the message can still be decoded afterwards. */
#define B(lit) lit, sizeof(lit) - 1 /* bytes of a literal, without its NUL */
static void hostile_actor(void *arg) {
  static const struct {
    const char *what;
    const char *bytes;
    size_t len;
  } bodies[] = {
      {"an int", B("\x01")},
      {"nil", B("\xc0")},
      {"a str", B("\xa1t")},
      {"an empty array", B("\x90")},
      {"an empty map", B("\x80")},
      {"[tag] alone", B("\x91\xa1t")},
      {"a map {t: 1}", B("\x81\xa1t\x01")},
      {"[bin tag, ...]", B("\x93\xc4\x01t\x01\xa1x")},
      {"[int, ...]", B("\x93\x01\x01\xa1x")},
      {"[t, {1: 2}, s]", B("\x93\xa1t\x81\x01\x02\xa1x")},
      {"[t, [1], s]", B("\x93\xa1t\x91\x01\xa1x")},
      {"[t, 1, {s: {s: {}}}]", B("\x93\xa1t\x01\x81\xa1s\x81\xa1s\x80")},
      {"[t, 1, [s]]", B("\x93\xa1t\x01\x91\xa1x")},
      {"[t, 1, s, extra]", B("\x94\xa1t\x01\xa1x\xc0")},
      {"[t, 1]", B("\x92\xa1t\x01")},
      {"[t, 1.0, s]", B("\x93\xa1t\xcb\x3f\xf0\0\0\0\0\0\0\xa1x")},
      {"[t, true, s]", B("\x93\xa1t\xc3\xa1x")},
      {"[t, ext, s]", B("\x93\xa1t\xd4\x01\x01\xa1x")},
      {"[t, 1, bin]", B("\x93\xa1t\x01\xc4\x01x")},
      {"array16 of 3", B("\xdc\x00\x03\xa1t\x01\xa1x")},
      {"[\"t\\0\", 1, s]", B("\x93\xa2t\0\x01\xa1x")},
  };
  (void)arg;
  for (size_t k = 0; k < sizeof bodies / sizeof bodies[0]; k++) {
    tr_msg_t *m = echo(bodies[k].bytes, bodies[k].len);
    int64_t i = 0;
    const char *s = NULL;
    size_t l = 0;
    int rc = tr_msg_unpack(m, "t", "iS", &i, &s, &l);
    const msgpack_object *o;
    /* one of them does match: the array16 header is a legal form */
    ck_assert_msg(rc == (k == 19 ? 0 : TR_EBADMSG), "%s: %d", bodies[k].what, rc);
    o = tr_msg_obj(m); /* untouched: still decodes */
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(tr_msgpack_validate(tr_msg_data(m, NULL), bodies[k].len), 0);
    tr_msg_free(m);
  }
}

START_TEST(hostile_valid_bodies) { tr_test_run1(hostile_actor, NULL); }
END_TEST

/* Every prefix of a body that matches, and every body with one byte
 * changed, in an allocation of exactly its size (so that ASan and
 * valgrind catch a read past the end): no read past the end, and no
 * match for any prefix. */
START_TEST(cut_short_and_flipped_bodies) {
  static const int64_t vals[4] = {1, -300, INT64_MAX, 70000};
  void *data;
  size_t len;
  int64_t i, out[4];
  uint64_t u;
  double d;
  int b;
  const char *s;
  const void *pb;
  size_t l, lb, n;
  tr_pid_t pid;
  TR_OK(tr_pack_tagged(&data, &len, "cut", "iudbnSBIp", (int64_t)-70000,
                       UINT64_MAX, 0.25, 1, "string", (size_t)6, "bin",
                       (size_t)3, vals, (size_t)4, (tr_pid_t)12345));
  ck_assert_int_eq(unpack_raw(data, len, "cut", "iudbnSBIp", &i, &u, &d, &b,
                              &s, &l, &pb, &lb, out, (size_t)4, &n, &pid),
                   0);
  for (size_t cut = 0; cut < len; cut++) {
    unsigned char *p = malloc(cut > 0 ? cut : 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p, data, cut);
    ck_assert_int_eq(unpack_raw(p, cut, "cut", "iudbnSBIp", &i, &u, &d, &b,
                                &s, &l, &pb, &lb, out, (size_t)4, &n, &pid),
                     TR_EBADMSG);
    free(p);
  }
  for (size_t at = 0; at < len; at++) {
    for (int x = 1; x < 256; x += 37) {
      unsigned char *p = malloc(len);
      int rc;
      ck_assert_ptr_nonnull(p);
      memcpy(p, data, len);
      p[at] ^= (unsigned char)x;
      rc = unpack_raw(p, len, "cut", "iudbnSBIp", &i, &u, &d, &b, &s, &l, &pb,
                      &lb, out, (size_t)4, &n, &pid);
      ck_assert(rc == 0 || rc == TR_EBADMSG);
      if (rc == 0) ck_assert_int_eq(tr_msgpack_validate(p, len), 0);
      free(p);
    }
  }
  /* lengths that claim more than the body holds */
  {
    static const unsigned char big_str[] = {0x92, 0xa1, 't', 0xdb, 0xff,
                                            0xff, 0xff, 0xff, 'x'};
    static const unsigned char big_arr[] = {0x92, 0xa1, 't', 0xdd, 0xff,
                                            0xff, 0xff, 0xff, 0x01};
    static const unsigned char big_top[] = {0xdd, 0xff, 0xff, 0xff, 0xff,
                                            0xa1, 't'};
    ck_assert_int_eq(unpack_raw(big_str, sizeof big_str, "t", "S", &s, &l),
                     TR_EBADMSG);
    ck_assert_int_eq(unpack_raw(big_arr, sizeof big_arr, "t", "I", out,
                                (size_t)4, &n),
                     TR_EBADMSG);
    n = 0;
    ck_assert_int_eq(unpack_raw(big_arr, sizeof big_arr, "t", "I",
                                (int64_t *)NULL, SIZE_MAX, &n),
                     TR_EINVAL); /* NULL with a capacity */
    ck_assert_int_eq(unpack_raw(big_top, sizeof big_top, "t", "n"),
                     TR_EBADMSG);
  }
  /* trailing bytes after the array */
  {
    unsigned char *p = malloc(len + 1);
    memcpy(p, data, len);
    p[len] = 0xc0;
    ck_assert_int_eq(unpack_raw(p, len + 1, "cut", "iudbnSBIp", &i, &u, &d,
                                &b, &s, &l, &pb, &lb, out, (size_t)4, &n, &pid),
                     TR_EBADMSG);
    free(p);
  }
  free(data);
}
END_TEST

/* After any failed unpack the message is whole: it decodes, and the right
 * pattern still matches. */
static void still_readable_actor(void *arg) {
  tr_msg_t *m;
  int64_t i;
  const char *s;
  size_t l;
  const msgpack_object *o;
  (void)arg;
  TR_OK(tr_send_tagged(tr_self(), "keep", "iS", (int64_t)-9, "yes", (size_t)3));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_unpack(m, "keep", "Si", &s, &l, &i), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "keep", "i?", &i), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "other", "iS", &i, &s, &l), TR_EBADMSG);
  o = tr_msg_obj(m);
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(o->via.array.size, 3);
  ck_assert_int_eq(o->via.array.ptr[1].via.i64, -9);
  ck_assert_int_eq(tr_msg_unpack(m, "keep", "iS", &i, &s, &l), 0);
  ck_assert(i == -9 && l == 3 && memcmp(s, "yes", 3) == 0);
  ck_assert(tr_msg_is_tag(m, "keep"));
  tr_msg_free(m);
}

START_TEST(message_readable_after_failure) {
  tr_test_run1(still_readable_actor, NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Invalid arguments                                                        */
/* ------------------------------------------------------------------------ */

static void invalid_args_actor(void *arg) {
  tr_msg_t *m;
  int64_t i, out[2];
  uint64_t u;
  double d;
  int b;
  const char *s;
  const void *pb;
  size_t l, n;
  tr_pid_t pid;
  (void)arg;
  TR_OK(tr_send_tagged(tr_self(), "t", "i", (int64_t)1));
  TR_OK(tr_recv(&m, 0));
  ck_assert_int_eq(tr_msg_unpack(NULL, "t", "i", &i), TR_EINVAL);
  ck_assert_int_eq(tr_test_unpack_v(NULL, "t", "i", &i), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, NULL, "i", &i), TR_EINVAL);
  /* unknown letters, and s (no NUL in the body) */
  ck_assert_int_eq(tr_msg_unpack(m, "t", "x", &i), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "s", &s), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "%", &i), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "\x80", &i), TR_EINVAL);
  /* NULL pointers, one letter at a time */
  ck_assert_int_eq(tr_msg_unpack(m, "t", "i", (int64_t *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "u", (uint64_t *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "d", (double *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "b", (int *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "p", (tr_pid_t *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "S", (const char **)NULL, &l), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "S", &s, (size_t *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "B", (const void **)NULL, &l), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "B", &pb, (size_t *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "I", (int64_t *)NULL, (size_t)1, &n),
                   TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "I", out, (size_t)2, (size_t *)NULL),
                   TR_EINVAL);
  /* invalid arguments win over a mismatch, wherever they are */
  ck_assert_int_eq(tr_msg_unpack(m, "other", "i", (int64_t *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "ui", &u, (int64_t *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "dS", &d, &s, (size_t *)NULL), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "bz", &b), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "inns", &i, &s), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "iip", &i, &i, (tr_pid_t *)NULL),
                   TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "iB", &i, &pb, (size_t *)NULL),
                   TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "iI", &i, (int64_t *)NULL, (size_t)3, &n),
                   TR_EINVAL);
  /* the valid ones still mismatch */
  ck_assert_int_eq(tr_msg_unpack(m, "t", "iip", &i, &i, &pid), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "ui", &u, &i), TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "iI", &i, (int64_t *)NULL, (size_t)0, &n),
                   TR_EBADMSG);
  ck_assert_int_eq(tr_msg_unpack(m, "t", "i", &i), 0);
  tr_msg_free(m);
  /* the core: NULL data */
  ck_assert_int_eq(unpack_raw(NULL, 0, "t", NULL), TR_EINVAL);
  ck_assert_int_eq(unpack_raw(NULL, 5, "t", "i", &i), TR_EINVAL);
  ck_assert_int_eq(unpack_raw("", 0, "t", NULL), TR_EBADMSG);
}

START_TEST(null_and_invalid_arguments) { tr_test_run1(invalid_args_actor, NULL); }
END_TEST

/* Outside an actor: it only reads a message, so it needs none; a NULL
 * message is TR_EINVAL anywhere. */
START_TEST(outside_actors) {
  int64_t i;
  ck_assert_int_eq(tr_msg_unpack(NULL, "t", "i", &i), TR_EINVAL);
  ck_assert_int_eq(tr_msg_unpack(NULL, NULL, NULL), TR_EINVAL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Against the decoder                                                      */
/* ------------------------------------------------------------------------ */

/* Random tagged messages: what tr_msg_unpack stores equals what tr_msg_obj
 * decodes. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* A random integer of a random magnitude. */
static int64_t rnd_int(void) {
  int bits = (int)(rnd() % 64);
  int64_t v = (int64_t)(rnd() >> (63 - bits));
  return rnd() & 1 ? v : -v;
}

static void random_actor(void *arg) {
  (void)arg;
  for (int round = 0; round < 3000; round++) {
    int64_t iv = rnd_int(), arr[40], iout, aout[40];
    uint64_t uv = (uint64_t)rnd_int(), uout;
    double dv = (double)rnd_int() / 7.0, dout;
    int bv = (int)(rnd() & 1), bout;
    size_t slen = rnd() % 300, blen = rnd() % 70, alen = rnd() % 41;
    size_t sl, bl, al;
    char str[300], bin[70];
    const char *sout;
    const void *bout_p;
    tr_pid_t pv = (tr_pid_t)rnd(), pout;
    tr_msg_t *m;
    const msgpack_object *o, *e;
    for (size_t c = 0; c < slen; c++) str[c] = (char)rnd();
    for (size_t c = 0; c < blen; c++) bin[c] = (char)rnd();
    for (size_t c = 0; c < alen; c++) arr[c] = rnd_int();
    TR_OK(tr_send_tagged(tr_self(), "rand", "uiSdIBbpn", uv, iv, str, slen,
                         dv, arr, alen, bin, blen, bv, pv));
    TR_OK(tr_recv(&m, 0));
    ck_assert_int_eq(tr_msg_unpack(m, "rand", "uiSdIBbpn", &uout, &iout,
                                   &sout, &sl, &dout, aout, (size_t)40, &al,
                                   &bout_p, &bl, &bout, &pout),
                     0);
    o = tr_msg_obj(m);
    ck_assert_ptr_nonnull(o);
    e = o->via.array.ptr;
    ck_assert(e[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[1].via.u64 == uout);
    ck_assert(e[2].via.i64 == iout && iout == iv);
    ck_assert(e[3].via.str.size == sl && sl == slen);
    ck_assert(sout == e[3].via.str.ptr); /* both point into the body */
    ck_assert(memcmp(&e[4].via.f64, &dout, sizeof dout) == 0);
    ck_assert(e[5].via.array.size == al && al == alen);
    for (size_t c = 0; c < al; c++) ck_assert(e[5].via.array.ptr[c].via.i64 == aout[c]);
    ck_assert(bout_p == (const void *)e[6].via.bin.ptr && bl == blen);
    ck_assert(bout == bv && e[7].via.boolean == (bv != 0));
    {
      tr_pid_t want;
      TR_OK(tr_obj_pid(&e[8], &want));
      ck_assert(pout == want && pout == pv);
    }
    tr_msg_free(m);
  }
}

START_TEST(random_messages_match_decoder) { tr_test_run1(random_actor, NULL); }
END_TEST

static Suite *unpack_suite(void) {
  Suite *s = suite_create("unpack");
  TCase *tc = tcase_create("roundtrip");
  tcase_add_test(tc, roundtrip_every_letter);
  tcase_add_test(tc, doubles_and_floats);
  tcase_add_test(tc, integer_forms_and_ranges);
  tcase_add_test(tc, integer_extremes);
  tcase_add_test(tc, pid_forms);
  tcase_add_test(tc, exit_and_down_bodies);
  tcase_add_test(tc, random_messages_match_decoder);
  suite_add_tcase(s, tc);
  tc = tcase_create("mismatch");
  tcase_add_test(tc, wrong_tag_arity_and_type);
  tcase_add_test(tc, int_array_capacity_and_elements);
  tcase_add_test(tc, message_readable_after_failure);
  suite_add_tcase(s, tc);
  tc = tcase_create("hostile");
  tcase_add_test(tc, hostile_valid_bodies);
  tcase_add_test(tc, cut_short_and_flipped_bodies);
  tcase_add_test(tc, null_and_invalid_arguments);
  tcase_add_test(tc, outside_actors);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(unpack_suite)
