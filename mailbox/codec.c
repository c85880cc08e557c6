/*
 * codec — msgpack validation, tagged packing and unpacking, pid ext, tag
 * test and decode.
 *
 * Validation is a table-driven, iterative skip-scanner: one loop iteration
 * per value, each iteration consumes at least one byte, so the cost is
 * O(len) whatever counts the input claims, and nesting is tracked with an
 * explicit stack of "elements left" counters (32 on the C stack, up to
 * TR_CODEC_DEPTH_MAX on the heap), never with recursion.
 */
#include "troupe.h"
#include "codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
#else
#define likely(x) (x)
#define unlikely(x) (x)
#define ALWAYS_INLINE inline
#define NOINLINE
#endif

/* Maps live as 2n consecutive objects (key, value, key, value...). */
_Static_assert(sizeof(msgpack_object_kv) == 2 * sizeof(msgpack_object),
               "msgpack_object_kv must be two packed msgpack_objects");

/* ------------------------------------------------------------------------ */
/* Byte classes                                                             */
/* ------------------------------------------------------------------------ */

/* Each lead byte maps to a class (top 3 bits) and a number v (low 5 bits):
 *   FIX  v payload bytes follow (ints, floats, nil, bool, fixstr, fixext)
 *   STR  a v-byte big-endian length, then that many bytes (str, bin)
 *   EXT  a v-byte length, a type byte, then that many bytes
 *   FARR a fixarray/fixmap with v elements (a map's pairs count twice)
 *   ARR  a v-byte count of elements;  MAP  a v-byte count of pairs
 *   BAD  0xc1, never used. */
enum { K_FIX, K_STR, K_EXT, K_FARR, K_ARR, K_MAP, K_BAD = 7 };
#define CL(k, v) ((uint8_t)(((k) << 5) | (v)))

/* clang-format off */
#define SH(b, base) (((b) - (base)) & 7) /* masked: no negative shift */
#define CLASS_OF(b)                                                          \
  ((b) <= 0x7f ? CL(K_FIX, 0) :                                              \
   (b) <= 0x8f ? CL(K_FARR, 2 * ((b) & 0x0f)) :                              \
   (b) <= 0x9f ? CL(K_FARR, (b) & 0x0f) :                                    \
   (b) <= 0xbf ? CL(K_FIX, (b) & 0x1f) :                                     \
   (b) == 0xc1 ? CL(K_BAD, 0) :                                              \
   (b) <= 0xc3 ? CL(K_FIX, 0) :                                              \
   (b) <= 0xc6 ? CL(K_STR, 1 << SH(b, 0xc4)) :                               \
   (b) <= 0xc9 ? CL(K_EXT, 1 << SH(b, 0xc7)) :                               \
   (b) == 0xca ? CL(K_FIX, 4) :                                              \
   (b) == 0xcb ? CL(K_FIX, 8) :                                              \
   (b) <= 0xcf ? CL(K_FIX, 1 << SH(b, 0xcc)) :                               \
   (b) <= 0xd3 ? CL(K_FIX, 1 << SH(b, 0xd0)) :                               \
   (b) <= 0xd8 ? CL(K_FIX, 1 + (1 << SH(b, 0xd4))) :                         \
   (b) <= 0xdb ? CL(K_STR, 1 << SH(b, 0xd9)) :                               \
   (b) <= 0xdd ? CL(K_ARR, 2 << SH(b, 0xdc)) :                               \
   (b) <= 0xdf ? CL(K_MAP, 2 << SH(b, 0xde)) :                               \
   CL(K_FIX, 0))
#define C4(b) \
  CLASS_OF(b), CLASS_OF((b) + 1), CLASS_OF((b) + 2), CLASS_OF((b) + 3)
#define C16(b) C4(b), C4((b) + 4), C4((b) + 8), C4((b) + 12)
#define C64(b) C16(b), C16((b) + 16), C16((b) + 32), C16((b) + 48)
static const uint8_t byte_class[256] = {C64(0x00), C64(0x40), C64(0x80),
                                        C64(0xc0)};
#undef C4
/* The whole size of a FIX value (lead byte and payload) by its lead byte;
 * 0 for the other classes. */
#define STEP_OF(b) (CLASS_OF(b) < 32 ? CLASS_OF(b) + 1 : 0)
#define C4(b) STEP_OF(b), STEP_OF((b) + 1), STEP_OF((b) + 2), STEP_OF((b) + 3)
static const uint8_t fix_step[256] = {C64(0x00), C64(0x40), C64(0x80),
                                      C64(0xc0)};
/* clang-format on */

/* Big-endian unsigned of w (1, 2 or 4) bytes. */
static ALWAYS_INLINE uint32_t load_be(const uint8_t *p, unsigned w) {
  if (w == 1) return p[0];
  if (w == 2) return (uint32_t)p[0] << 8 | p[1];
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static ALWAYS_INLINE uint64_t load_be64(const uint8_t *p) {
  return (uint64_t)load_be(p, 4) << 32 | load_be(p + 4, 4);
}

static void store_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */
/* ------------------------------------------------------------------------ */

#define SCAN_LOCAL_DEPTH 32

/* Moves a full local stack of "elements left" counters to the heap, sized
 * for TR_CODEC_DEPTH_MAX. Only bodies nested deeper than 32 get here. NULL
 * when out of memory. */
static NOINLINE uint32_t *scan_stack_grow(const uint32_t *local) {
  uint32_t *heap = malloc(TR_CODEC_DEPTH_MAX * sizeof *heap);
  if (heap != NULL) memcpy(heap, local, SCAN_LOCAL_DEPTH * sizeof *heap);
  return heap;
}

/* Skips a value whose lead byte (already consumed) has a class other than
 * FIX, with p just past it: str/bin/ext are skipped whole and give 0, a
 * container's header is skipped and gives its element count (a map's pairs
 * counted twice) plus 1; -1 if malformed or cut short. A count larger than
 * the bytes left is malformed: each element needs at least one byte. */
static ALWAYS_INLINE int64_t scan_var(const uint8_t **pp, const uint8_t *end,
                                      unsigned c) {
  const uint8_t *p = *pp;
  unsigned v = c & 31;
  size_t left = (size_t)(end - p);
  uint64_t n;

  switch (c >> 5) {
  case K_STR:
  case K_EXT:
    if (left < v) return -1;
    n = (uint64_t)load_be(p, v) + v + ((c >> 5) == K_EXT);
    if (left < n) return -1;
    *pp = p + n;
    return 0;
  case K_FARR:
    n = v;
    break;
  case K_ARR:
  case K_MAP:
    if (left < v) return -1;
    n = (uint64_t)load_be(p, v) << ((c >> 5) == K_MAP);
    p += v;
    left -= v;
    break;
  default:
    return -1;
  }
  if (n > left) return -1;
  *pp = p;
  return (int64_t)n + 1;
}

/* The largest FIX step: a lead byte and 31 payload bytes (fixstr). */
#define FIX_STEP_MAX 32

/* The scanner shared by validation and decoding: checks that [p, end) is
 * exactly one well-formed value no deeper than TR_CODEC_DEPTH_MAX. When
 * children is not NULL, stores in it the number of element objects the
 * containers hold (what the decoder must allocate).
 * `top` counts the values still to read at the current level (the top level
 * reads one); stk keeps the counts of the enclosing levels. Below `safe`,
 * a FIX value cannot run past end, so runs of them (ints, floats, nil,
 * bools, short strings) are skipped with one bounds check each. */
static ALWAYS_INLINE int scan(const uint8_t *p, const uint8_t *end,
                              uint64_t *children) {
  uint32_t local[SCAN_LOCAL_DEPTH], *stk = local, top = 1;
  size_t depth = 0; /* open containers */
  uint64_t kids = 0;
  const uint8_t *safe = end - p > FIX_STEP_MAX ? end - FIX_STEP_MAX : p;
  int rc = TR_EBADMSG;

  for (;;) {
    unsigned c;
    int64_t r;
    while (likely(p < safe) && (c = fix_step[*p]) != 0) {
      p += c;
      if (--top == 0) goto level_done;
    }
    if (unlikely(p == end)) goto out;
    c = byte_class[*p++];
    if (likely(c < 32)) { /* FIX: c payload bytes */
      if (unlikely((size_t)(end - p) < c)) goto out;
      p += c;
    } else if ((r = scan_var(&p, end, c)) != 0) {
      if (r < 0 || depth == TR_CODEC_DEPTH_MAX) goto out;
      if (r > 1) { /* a non-empty container: descend */
        if (unlikely(depth == SCAN_LOCAL_DEPTH && stk == local)) {
          if ((stk = scan_stack_grow(local)) == NULL) {
            stk = local;
            rc = TR_ENOMEM;
            goto out;
          }
        }
        stk[depth++] = top;
        top = (uint32_t)(r - 1);
        kids += top;
        continue;
      }
    }
    if (--top != 0) continue;
  level_done: /* a level is complete, and with it maybe its parents */
    do {
      if (depth == 0) goto done;
      top = stk[--depth];
    } while (--top == 0);
  }
done:
  rc = p == end ? 0 : TR_EBADMSG;
  if (children != NULL) *children = kids;
out:
  if (unlikely(stk != local)) free(stk);
  return rc;
}

static ALWAYS_INLINE int check_args(const void *data, size_t len) {
  if (unlikely(data == NULL || len == 0)) return TR_EINVAL;
  if (unlikely(len > TR_MSG_MAX)) return TR_EMSGSIZE;
  return 0;
}

/* Cost: O(len), about 2 ns per value; no allocation unless the value nests
 * deeper than 32 levels (then one 4 KiB malloc, TR_ENOMEM if it fails). */
TR_EXTERN int tr_msgpack_validate(const void *data, size_t len) {
  int rc = check_args(data, len);
  if (unlikely(rc != 0)) return rc;
  return scan(data, (const uint8_t *)data + len, NULL);
}

int tr__codec_validate_count(const void *data, size_t len, uint64_t *children) {
  int rc = check_args(data, len);
  *children = 0;
  if (unlikely(rc != 0)) return rc;
  rc = scan(data, (const uint8_t *)data + len, children);
  if (unlikely(rc != 0)) *children = 0;
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Tag test                                                                 */
/* ------------------------------------------------------------------------ */

int tr__codec_is_tag(const void *data, size_t len, const char *tag,
                     size_t tag_len) {
  const uint8_t *p = data, *end;
  unsigned c, v;
  size_t n;

  /* The array header: fixarray 0x91..0x9f, or array16/32 with count > 0. */
  if (unlikely(p == NULL || len < 2 || tag == NULL)) return 0;
  end = p + len;
  c = byte_class[*p++];
  v = c & 31;
  if (c == CL(K_ARR, 2) || c == CL(K_ARR, 4)) {
    if ((size_t)(end - p) <= v || load_be(p, v) == 0) return 0;
    p += v;
  } else if ((c >> 5) != K_FARR || (p[-1] & 0xf0) != 0x90 || v == 0) {
    return 0;
  }
  /* The first element's str header: fixstr or str8/16/32 (not bin). */
  c = byte_class[*p];
  v = c & 31;
  if ((*p & 0xe0) == 0xa0) {
    n = v;
    p++;
  } else if (*p >= 0xd9 && *p <= 0xdb) {
    if ((size_t)(end - ++p) < v) return 0;
    n = load_be(p, v);
    p += v;
  } else {
    return 0;
  }
  return n == tag_len && (size_t)(end - p) >= n && memcmp(p, tag, n) == 0;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

/* Big-endian loads for the decoder (one load and a byte swap each). */
static ALWAYS_INLINE uint16_t be16(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, sizeof v);
  return __builtin_bswap16(v);
}
static ALWAYS_INLINE uint32_t be32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return __builtin_bswap32(v);
}
static ALWAYS_INLINE uint64_t be64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return __builtin_bswap64(v);
}

static ALWAYS_INLINE void set_uint(msgpack_object *o, uint64_t u) {
  o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
  o->via.u64 = u;
}

/* A signed integer: NEGATIVE if below zero, else POSITIVE (as msgpack-c). */
static ALWAYS_INLINE void set_int(msgpack_object *o, int64_t i) {
  o->type = i < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER
                  : MSGPACK_OBJECT_POSITIVE_INTEGER;
  o->via.i64 = i;
}

static ALWAYS_INLINE void set_raw(msgpack_object *o, msgpack_object_type t,
                                  const uint8_t *p, uint32_t n) {
  o->type = t;
  o->via.str.size = n; /* str, bin: same layout */
  o->via.str.ptr = (const char *)p;
}

static ALWAYS_INLINE void set_ext(msgpack_object *o, const uint8_t *p,
                                  uint32_t n) {
  o->type = MSGPACK_OBJECT_EXT;
  o->via.ext.type = (int8_t)p[0];
  o->via.ext.size = n;
  o->via.ext.ptr = (const char *)p + 1;
}

static ALWAYS_INLINE void set_float(msgpack_object *o, const uint8_t *p,
                                    int wide) {
  if (wide) {
    uint64_t bits = be64(p);
    o->type = MSGPACK_OBJECT_FLOAT64;
    memcpy(&o->via.f64, &bits, sizeof bits);
  } else {
    uint32_t bits = be32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    o->type = MSGPACK_OBJECT_FLOAT32;
    o->via.f64 = f;
  }
}

/* Where the decoder resumes in an open container. */
typedef struct frame {
  msgpack_object *cur, *end;
} frame_t;

#define DECODE_LOCAL_DEPTH 16

/* Decodes one value from validated bytes at p into *root, taking element
 * objects from pool (exactly as many as the scan counted), in one pass:
 * the objects of a container are filled in order, a nested container
 * remembers where its parent resumes. One jump per value on its lead byte;
 * no bounds checks (the bytes were validated). */
static int fill(const uint8_t *p, msgpack_object *root, msgpack_object *pool) {
  frame_t local[DECODE_LOCAL_DEPTH], *fr = local;
  size_t depth = 0;
  msgpack_object *o = root, *end = root + 1;
  uint32_t n;

  for (;;) {
    while (o != end) {
      uint8_t b = *p++;
      switch (b) {
      case 0x00 ... 0x7f:
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = b;
        break;
      case 0xe0 ... 0xff:
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t)b;
        break;
      case 0xc0:
        o->type = MSGPACK_OBJECT_NIL;
        break;
      case 0xc2:
      case 0xc3:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = b == 0xc3;
        break;
      case 0xcc: set_uint(o, p[0]); p += 1; break;
      case 0xcd: set_uint(o, be16(p)); p += 2; break;
      case 0xce: set_uint(o, be32(p)); p += 4; break;
      case 0xcf: set_uint(o, be64(p)); p += 8; break;
      case 0xd0: set_int(o, (int8_t)p[0]); p += 1; break;
      case 0xd1: set_int(o, (int16_t)be16(p)); p += 2; break;
      case 0xd2: set_int(o, (int32_t)be32(p)); p += 4; break;
      case 0xd3: set_int(o, (int64_t)be64(p)); p += 8; break;
      case 0xca: set_float(o, p, 0); p += 4; break;
      case 0xcb: set_float(o, p, 1); p += 8; break;
      case 0xa0 ... 0xbf:
        n = b & 0x1f;
        set_raw(o, MSGPACK_OBJECT_STR, p, n);
        p += n;
        break;
      case 0xd9: n = p[0]; p += 1; set_raw(o, MSGPACK_OBJECT_STR, p, n); p += n; break;
      case 0xda: n = be16(p); p += 2; set_raw(o, MSGPACK_OBJECT_STR, p, n); p += n; break;
      case 0xdb: n = be32(p); p += 4; set_raw(o, MSGPACK_OBJECT_STR, p, n); p += n; break;
      case 0xc4: n = p[0]; p += 1; set_raw(o, MSGPACK_OBJECT_BIN, p, n); p += n; break;
      case 0xc5: n = be16(p); p += 2; set_raw(o, MSGPACK_OBJECT_BIN, p, n); p += n; break;
      case 0xc6: n = be32(p); p += 4; set_raw(o, MSGPACK_OBJECT_BIN, p, n); p += n; break;
      case 0xd4 ... 0xd8: /* fixext 1..16: a type byte, then the data */
        n = 1u << (b - 0xd4);
        set_ext(o, p, n);
        p += 1 + n;
        break;
      case 0xc7: n = p[0]; p += 1; set_ext(o, p, n); p += 1 + n; break;
      case 0xc8: n = be16(p); p += 2; set_ext(o, p, n); p += 1 + n; break;
      case 0xc9: n = be32(p); p += 4; set_ext(o, p, n); p += 1 + n; break;
      case 0x90 ... 0x9f: n = b & 0x0f; goto array;
      case 0xdc: n = be16(p); p += 2; goto array;
      case 0xdd: n = be32(p); p += 4; goto array;
      case 0x80 ... 0x8f: n = b & 0x0f; goto map;
      case 0xde: n = be16(p); p += 2; goto map;
      case 0xdf: n = be32(p); p += 4; goto map;
      default: /* 0xc1: validated bytes never hold it */
        if (fr != local) free(fr);
        return TR_EBADMSG;
      array:
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = n;
        o->via.array.ptr = n > 0 ? pool : NULL;
        goto open;
      map:
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = n;
        o->via.map.ptr = n > 0 ? (msgpack_object_kv *)pool : NULL;
        n *= 2;
      open:
        if (n == 0) break;
        if (unlikely(depth == DECODE_LOCAL_DEPTH && fr == local)) {
          if ((fr = malloc(TR_CODEC_DEPTH_MAX * sizeof *fr)) == NULL)
            return TR_ENOMEM;
          memcpy(fr, local, sizeof local);
        }
        fr[depth++] = (frame_t){o + 1, end};
        o = pool;
        end = pool + n;
        pool += n;
        continue;
      }
      o++;
    }
    if (depth == 0) break;
    depth--;
    o = fr[depth].cur;
    end = fr[depth].end;
  }
  if (fr != local) free(fr);
  return 0;
}

int tr__codec_decode_into(const void *data, msgpack_object *obj,
                          msgpack_object *pool) {
  return fill(data, obj, pool);
}

int tr__codec_decode(const void *data, size_t len, msgpack_zone **zone,
                     msgpack_object *obj) {
  uint64_t children = 0;
  size_t bytes;
  msgpack_object *pool;
  int rc;

  if (zone == NULL || obj == NULL) return TR_EINVAL;
  *zone = NULL;
  if ((rc = check_args(data, len)) != 0) return rc;
  if ((rc = scan(data, (const uint8_t *)data + len, &children)) != 0)
    return rc;
  if (children == 0) return fill(data, obj, NULL);
  /* children <= len <= TR_MSG_MAX, so this cannot overflow. One chunk sized
   * for exactly the element objects (plus alignment slack): the whole decode
   * is two mallocs and wastes nothing, where the default 8 KiB chunk would
   * waste most of 8 KiB per held message. */
  bytes = (size_t)children * sizeof(msgpack_object);
  if ((*zone = msgpack_zone_new(bytes + MSGPACK_ZONE_ALIGN)) == NULL)
    return TR_ENOMEM;
  pool = msgpack_zone_malloc(*zone, bytes);
  if (pool == NULL || (rc = fill(data, obj, pool)) != 0) {
    msgpack_zone_free(*zone);
    *zone = NULL;
    return pool == NULL ? TR_ENOMEM : rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Pids                                                                     */
/* ------------------------------------------------------------------------ */

TR_EXTERN int tr_pack_pid(msgpack_packer *pk, tr_pid_t pid) {
  uint8_t be[8];
  if (pk == NULL) return TR_EINVAL;
  store_be64(be, pid);
  if (msgpack_pack_ext(pk, sizeof be, TR_EXT_PID) != 0 ||
      msgpack_pack_ext_body(pk, be, sizeof be) != 0)
    return TR_ENOMEM;
  return 0;
}

TR_EXTERN int tr_obj_pid(const msgpack_object *obj, tr_pid_t *pid) {
  if (obj == NULL || pid == NULL || obj->type != MSGPACK_OBJECT_EXT ||
      obj->via.ext.type != TR_EXT_PID || obj->via.ext.size != 8)
    return TR_EINVAL;
  *pid = load_be64((const uint8_t *)obj->via.ext.ptr);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Tagged packing                                                           */
/* ------------------------------------------------------------------------ */

/* Bytes of the header msgpack-c writes for a str, bin or array of n. */
static size_t str_head(size_t n) {
  return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}
static size_t bin_head(size_t n) { return n < 256 ? 2 : n < 65536 ? 3 : 5; }
static size_t arr_head(size_t n) { return n < 16 ? 1 : n < 65536 ? 3 : 5; }

/* Bounds on the packed size (lo counts every integer as 1 byte, hi as 9)
 * and the element objects a decode of the result needs. */
typedef struct size_bounds {
  size_t lo, hi, children;
} size_bounds_t;

/* Checks a (pointer, count) argument of S, B or I: a NULL pointer packs nil
 * and needs count 0; the count must fit a message. */
static int check_raw(const void *ptr, size_t n) {
  if (ptr == NULL) return n == 0 ? 0 : TR_EINVAL;
  return n > TR_MSG_MAX ? TR_EMSGSIZE : 0;
}

/* Consumes the arguments of fmt letter f from *ap and adds their packed
 * size to *sz. */
static int size_arg(char f, va_list *ap, size_bounds_t *sz) {
  size_t lo = 1, hi = 1, n;
  const void *ptr;
  int rc;
  switch (f) {
  case 'i': (void)va_arg(*ap, int64_t); hi = 9; break;
  case 'u': (void)va_arg(*ap, uint64_t); hi = 9; break;
  case 'd': (void)va_arg(*ap, double); lo = hi = 9; break;
  case 'b': (void)va_arg(*ap, int); break;
  case 'p': (void)va_arg(*ap, tr_pid_t); lo = hi = 10; break;
  case 'n': break;
  case 's':
    if ((ptr = va_arg(*ap, const char *)) == NULL) break;
    n = strlen(ptr);
    if ((rc = check_raw(ptr, n)) != 0) return rc;
    lo = hi = str_head(n) + n;
    break;
  case 'S':
  case 'B':
  case 'I':
    ptr = va_arg(*ap, const void *);
    n = va_arg(*ap, size_t);
    if ((rc = check_raw(ptr, n)) != 0) return rc;
    if (ptr == NULL) break;
    if (f == 'I') {
      lo = arr_head(n) + n;
      hi = arr_head(n) + 9 * n;
      sz->children += n;
    } else {
      lo = hi = (f == 'S' ? str_head(n) : bin_head(n)) + n;
    }
    break;
  default:
    return TR_EINVAL;
  }
  sz->lo += lo;
  sz->hi += hi;
  return sz->lo > TR_MSG_MAX ? TR_EMSGSIZE : 0;
}

int tr__tagged_size(const char *tag, const char *fmt, va_list ap, size_t *hi,
                    uint32_t *children) {
  size_bounds_t sz;
  size_t tn, nargs;
  va_list aq;
  int rc = 0;
  *hi = 0;
  *children = 0;
  if (tag == NULL) return TR_EINVAL;
  if (fmt == NULL) fmt = "";
  tn = strlen(tag);
  nargs = strlen(fmt);
  if (tn > TR_MSG_MAX) return TR_EMSGSIZE;
  sz.lo = sz.hi = arr_head(nargs + 1) + str_head(tn) + tn;
  sz.children = nargs + 1;
  va_copy(aq, ap);
  for (; rc == 0 && *fmt != '\0'; fmt++) rc = size_arg(*fmt, &aq, &sz);
  va_end(aq);
  if (rc == 0 && sz.lo > TR_MSG_MAX) rc = TR_EMSGSIZE;
  if (rc != 0) return rc;
  *hi = sz.hi;
  *children = (uint32_t)sz.children; /* < lo <= TR_MSG_MAX */
  return 0;
}

/* Writers: msgpack-c's encodings (always the smallest form), straight into
 * memory whose room the sizing pass guaranteed. */
static ALWAYS_INLINE uint8_t *put_be(uint8_t *p, uint8_t lead, uint64_t v,
                                     unsigned w) {
  uint16_t v16;
  uint32_t v32;
  *p++ = lead;
  switch (w) { /* one byte-swapped store */
  case 1: *p = (uint8_t)v; break;
  case 2: v16 = __builtin_bswap16((uint16_t)v); memcpy(p, &v16, 2); break;
  case 4: v32 = __builtin_bswap32((uint32_t)v); memcpy(p, &v32, 4); break;
  default: v = __builtin_bswap64(v); memcpy(p, &v, 8); break;
  }
  return p + w;
}

/* u >= 128: uint8/16/32/64. */
static ALWAYS_INLINE uint8_t *put_uint_wide(uint8_t *p, uint64_t u) {
  if (u >> 16 == 0) return u < 256 ? put_be(p, 0xcc, u, 1) : put_be(p, 0xcd, u, 2);
  return u >> 32 == 0 ? put_be(p, 0xce, u, 4) : put_be(p, 0xcf, u, 8);
}

static ALWAYS_INLINE uint8_t *put_uint(uint8_t *p, uint64_t u) {
  if (u < 128) {
    *p = (uint8_t)u;
    return p + 1;
  }
  return put_uint_wide(p, u);
}

static ALWAYS_INLINE uint8_t *put_int(uint8_t *p, int64_t d) {
  if ((uint64_t)d + 32 < 160) { /* -32..127: positive or negative fixint */
    *p = (uint8_t)d;
    return p + 1;
  }
  if (d > 0) return put_uint_wide(p, (uint64_t)d);
  if (d >= -128) return put_be(p, 0xd0, (uint64_t)d, 1);
  if (d >= -32768) return put_be(p, 0xd1, (uint64_t)d, 2);
  if (d >= INT32_MIN) return put_be(p, 0xd2, (uint64_t)d, 4);
  return put_be(p, 0xd3, (uint64_t)d, 8);
}

/* A str (0xa0/0xd9), bin (0xc4) or array (0x90/0xdc) header for n. */
static uint8_t *put_head(uint8_t *p, char f, size_t n) {
  unsigned base = f == 'B' ? 0xc4 : f == 'I' ? 0xdb : 0xd9;
  if (f == 'S' && n < 32) {
    *p = (uint8_t)(0xa0 | n);
    return p + 1;
  }
  if (f == 'I' && n < 16) {
    *p = (uint8_t)(0x90 | n);
    return p + 1;
  }
  if (f != 'I' && n < 256) return put_be(p, (uint8_t)base, n, 1);
  if (n < 65536) return put_be(p, (uint8_t)(base + 1), n, 2);
  return put_be(p, (uint8_t)(base + 2), n, 4);
}

static uint8_t *put_raw(uint8_t *p, char f, const void *ptr, size_t n) {
  if (ptr == NULL) {
    *p = 0xc0;
    return p + 1;
  }
  p = put_head(p, f, n);
  if (f == 'I') {
    const int64_t *v = ptr;
    for (size_t i = 0; i < n; i++) p = put_int(p, v[i]);
    return p;
  }
  memcpy(p, ptr, n);
  return p + n;
}

/* Packs the arguments of fmt letter f from *ap (already checked). */
static uint8_t *put_arg(uint8_t *p, char f, va_list *ap) {
  const void *ptr;
  double d;
  uint64_t bits;
  size_t n;
  switch (f) {
  case 'i': return put_int(p, va_arg(*ap, int64_t));
  case 'u': return put_uint(p, va_arg(*ap, uint64_t));
  case 'd':
    d = va_arg(*ap, double);
    memcpy(&bits, &d, sizeof bits);
    return put_be(p, 0xcb, bits, 8);
  case 'b': *p = va_arg(*ap, int) ? 0xc3 : 0xc2; return p + 1;
  case 'p': *p++ = 0xd7; return put_be(p, TR_EXT_PID, va_arg(*ap, tr_pid_t), 8);
  case 's':
    ptr = va_arg(*ap, const char *);
    return put_raw(p, 'S', ptr, ptr != NULL ? strlen(ptr) : 0);
  case 'S':
  case 'B':
  case 'I':
    ptr = va_arg(*ap, const void *);
    n = va_arg(*ap, size_t);
    return put_raw(p, f, ptr, n);
  default: /* 'n' */
    *p = 0xc0;
    return p + 1;
  }
}

size_t tr__tagged_write(void *buf, const char *tag, const char *fmt,
                        va_list ap) {
  uint8_t *p = buf;
  va_list aq;
  if (fmt == NULL) fmt = "";
  p = put_head(p, 'I', strlen(fmt) + 1);
  p = put_raw(p, 'S', tag, strlen(tag));
  va_copy(aq, ap);
  for (; *fmt != '\0'; fmt++) p = put_arg(p, *fmt, &aq);
  va_end(aq);
  return (size_t)(p - (uint8_t *)buf);
}

/* The integers of an I array: runs of the two forms that need no choice
 * of width, positive fixints and uint64s (every value >= 2^32), are
 * written with one test each; the rest go through put_int. */
static ALWAYS_INLINE uint8_t *put_ints(uint8_t *p, const int64_t *v,
                                       size_t n) {
  const uint64_t wide = (uint64_t)1 << 32;
  size_t i = 0;
  for (;;) {
    for (; i < n && (uint64_t)v[i] < 128; i++) *p++ = (uint8_t)v[i];
    for (; i + 1 < n && (uint64_t)v[i] - wide < ((uint64_t)1 << 63) - wide &&
           (uint64_t)v[i + 1] - wide < ((uint64_t)1 << 63) - wide;
         i += 2) {
      p = put_be(p, 0xcf, (uint64_t)v[i], 8);
      p = put_be(p, 0xcf, (uint64_t)v[i + 1], 8);
    }
    for (; i < n && (uint64_t)v[i] - wide < ((uint64_t)1 << 63) - wide; i++)
      p = put_be(p, 0xcf, (uint64_t)v[i], 8);
    if (i == n) return p;
    p = put_int(p, v[i++]);
  }
}

/* A str (bin 0) or bin (bin 1) of n bytes, header and body: put_raw for
 * a non-NULL ptr, inlined. */
static ALWAYS_INLINE uint8_t *put_bytes(uint8_t *p, int bin, const void *ptr,
                                        size_t n) {
  if (!bin && n < 32) {
    *p++ = (uint8_t)(0xa0 | n);
  } else if (n < 256) {
    p[0] = bin ? 0xc4 : 0xd9;
    p[1] = (uint8_t)n;
    p += 2;
  } else {
    p = n < 65536 ? put_be(p, bin ? 0xc5 : 0xda, n, 2)
                  : put_be(p, bin ? 0xc6 : 0xdb, n, 4);
  }
  memcpy(p, ptr, n);
  return p + n;
}

size_t tr__tagged_write_small(void *buf, size_t cap, const char *tag,
                              const char *fmt, va_list ap,
                              uint32_t *children) {
  uint8_t *p = buf, *end = p + cap, *head = p;
  const void *ptr;
  size_t tn, n, nargs = 0, kids = 0;
  uint64_t bits;
  double d;
  va_list aq;
  if (tag == NULL || cap < 16 || (tn = strlen(tag)) > cap - 16) return 0;
  if (fmt == NULL) fmt = "";
  p = put_bytes(p + 1, 0, tag, tn); /* the array header comes last */
  va_copy(aq, ap);
  for (; *fmt != '\0'; fmt++, nargs++) {
    /* room for any scalar (a pid takes 10 bytes) and for a str, bin or
     * array header (at most 5) */
    if (end - p < 10) goto no;
    switch (*fmt) {
    case 'i': p = put_int(p, va_arg(aq, int64_t)); break;
    case 'u': p = put_uint(p, va_arg(aq, uint64_t)); break;
    case 'd':
      d = va_arg(aq, double);
      memcpy(&bits, &d, sizeof bits);
      p = put_be(p, 0xcb, bits, 8);
      break;
    case 'b': *p++ = va_arg(aq, int) ? 0xc3 : 0xc2; break;
    case 'n': *p++ = 0xc0; break;
    case 'p':
      *p++ = 0xd7;
      p = put_be(p, TR_EXT_PID, va_arg(aq, tr_pid_t), 8);
      break;
    case 's':
      ptr = va_arg(aq, const char *);
      n = ptr != NULL ? strlen(ptr) : 0;
      if (n > (size_t)(end - p) - 5) goto no;
      p = put_raw(p, 'S', ptr, n);
      break;
    case 'S':
    case 'B':
      ptr = va_arg(aq, const void *);
      n = va_arg(aq, size_t);
      if (ptr == NULL) {
        if (n != 0) goto no; /* an error: the caller's passes report it */
        *p++ = 0xc0;
      } else if (n > (size_t)(end - p) - 5) {
        goto no;
      } else {
        p = put_bytes(p, *fmt == 'B', ptr, n);
      }
      break;
    case 'I':
      ptr = va_arg(aq, const int64_t *);
      n = va_arg(aq, size_t);
      if (ptr == NULL) {
        if (n != 0) goto no;
        *p++ = 0xc0;
        break;
      }
      if (n > ((size_t)(end - p) - 5) / 9) goto no; /* 9: the widest int */
      kids += n;
      if (n < 16) *p++ = (uint8_t)(0x90 | n);
      else p = n < 65536 ? put_be(p, 0xdc, n, 2) : put_be(p, 0xdd, n, 4);
      p = put_ints(p, ptr, n);
      break;
    default: goto no; /* an unknown letter: the caller's passes report it */
    }
  }
  va_end(aq);
  if (nargs >= 15) return 0; /* the header would not be a fixarray */
  *head = (uint8_t)(0x90 | (nargs + 1));
  *children = (uint32_t)(nargs + 1 + kids);
  return (size_t)(p - head);
no:
  va_end(aq);
  return 0;
}

/* Grows sb so that `need` more bytes fit without another realloc. */
static int sbuf_reserve(msgpack_sbuffer *sb, size_t need) {
  char *p;
  if (sb->alloc - sb->size >= need) return 0;
  if ((p = realloc(sb->data, sb->size + need)) == NULL) return TR_ENOMEM;
  sb->data = p;
  sb->alloc = sb->size + need;
  return 0;
}

int tr__pack_tagged_sbuf(msgpack_sbuffer *sb, const char *tag, const char *fmt,
                         va_list ap) {
  size_t hi, n;
  uint32_t children;
  int rc;

  if (sb == NULL) return TR_EINVAL;
  rc = tr__tagged_size(tag, fmt, ap, &hi, &children);
  if (rc == 0) rc = sbuf_reserve(sb, hi);
  if (rc != 0) return rc;
  n = tr__tagged_write(sb->data + sb->size, tag, fmt, ap);
  if (n > TR_MSG_MAX) return TR_EMSGSIZE;
  sb->size += n;
  return 0;
}

TR_EXTERN int tr_pack_tagged_v(void **data, size_t *len, const char *tag,
                               const char *fmt, va_list ap) {
  msgpack_sbuffer sb;
  int rc;

  if (data != NULL) *data = NULL;
  if (len != NULL) *len = 0;
  if (data == NULL || len == NULL) return TR_EINVAL;
  msgpack_sbuffer_init(&sb);
  if ((rc = tr__pack_tagged_sbuf(&sb, tag, fmt, ap)) != 0) {
    msgpack_sbuffer_destroy(&sb);
    return rc;
  }
  *data = sb.data;
  *len = sb.size;
  return 0;
}

TR_EXTERN int tr_pack_tagged(void **data, size_t *len, const char *tag,
                             const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = tr_pack_tagged_v(data, len, tag, fmt, ap);
  va_end(ap);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Tagged unpacking                                                         */
/* ------------------------------------------------------------------------ */

/* The reader of tr__tagged_unpack: one pass over the raw bytes, one switch
 * per element on its fmt letter and one on its lead byte. Every length is
 * checked against end before it is used: the bytes need not have been
 * validated. The readers give the position just past what they read, NULL
 * when the bytes there are not what was asked for or are cut short. */

/* Integer forms by lead byte, for the jump of int_fast. */
enum { IK_NONE, IK_FIX, IK_U8, IK_U16, IK_U32, IK_U64, IK_I8, IK_I16, IK_I32,
       IK_I64 };
/* clang-format off */
#define IK_OF(b)                                                             \
  ((b) <= 0x7f || (b) >= 0xe0 ? IK_FIX :                                     \
   (b) >= 0xcc && (b) <= 0xcf ? IK_U8 + ((b) & 3) :                          \
   (b) >= 0xd0 && (b) <= 0xd3 ? IK_I8 + ((b) & 3) : IK_NONE)
#undef C4
#define C4(b) IK_OF(b), IK_OF((b) + 1), IK_OF((b) + 2), IK_OF((b) + 3)
static const uint8_t int_kind[256] = {C64(0x00), C64(0x40), C64(0x80),
                                      C64(0xc0)};
#undef C4
/* clang-format on */

/* Reads one integer, in any of msgpack's integer forms, at p into *v (its
 * two's-complement bits), with at least 9 bytes readable at p (the longest
 * form): no length checks. Whether a value with the top bit set is negative
 * or above INT64_MAX depends on the form: int_signed tells. */
static ALWAYS_INLINE const uint8_t *int_fast(const uint8_t *p, uint64_t *v) {
  switch (int_kind[p[0]] & 15) { /* one jump: every case is listed */
  case IK_FIX: *v = (uint64_t)(int64_t)(int8_t)p[0]; return p + 1;
  case IK_U8: *v = p[1]; return p + 2;
  case IK_U16: *v = be16(p + 1); return p + 3;
  case IK_U32: *v = be32(p + 1); return p + 5;
  case IK_U64: *v = be64(p + 1); return p + 9;
  case IK_I8: *v = (uint64_t)(int64_t)(int8_t)p[1]; return p + 2;
  case IK_I16: *v = (uint64_t)(int64_t)(int16_t)be16(p + 1); return p + 3;
  case IK_I32: *v = (uint64_t)(int64_t)(int32_t)be32(p + 1); return p + 5;
  case IK_I64: *v = be64(p + 1); return p + 9;
  case IK_NONE:
  case 10 ... 15: return NULL;
  }
  return NULL; /* not reached */
}

/* Nonzero if the integer whose lead byte is b has a signed form (then a
 * value with the top bit set is negative; else it is above INT64_MAX). */
static ALWAYS_INLINE int int_signed(uint8_t b) { return b >= 0xd0; }

/* int_fast near the end: the bytes left are copied into a zeroed 9-byte
 * buffer, and the integer must not have needed more than those. Returned
 * by value (two registers), so that the caller's value needs no memory. */
typedef struct int_read {
  const uint8_t *p;
  uint64_t v;
} int_read_t;

static NOINLINE int_read_t int_near_end(const uint8_t *p, const uint8_t *end) {
  uint8_t tmp[9] = {0};
  size_t left = (size_t)(end - p);
  int_read_t r = {NULL, 0};
  const uint8_t *q;
  if (left == 0 || left >= sizeof tmp) return r; /* (int_fast's job) */
  memcpy(tmp, p, left);
  q = int_fast(tmp, &r.v);
  if (q != NULL && (size_t)(q - tmp) <= left) r.p = p + (q - tmp);
  return r;
}

static ALWAYS_INLINE const uint8_t *take_int(const uint8_t *p,
                                             const uint8_t *end, uint64_t *v) {
  int_read_t r;
  if (likely(p != end) && *p <= 0x7f) { /* the common small value */
    *v = *p;
    return p + 1;
  }
  if (likely(end - p >= 9)) return int_fast(p, v);
  r = int_near_end(p, end);
  *v = r.v;
  return r.p;
}

/* A str (bin 0) or bin (bin 1): its body and length, which lie before end. */
static ALWAYS_INLINE const uint8_t *take_raw(const uint8_t *p,
                                             const uint8_t *end, int bin,
                                             const uint8_t **body,
                                             size_t *n) {
  size_t left = (size_t)(end - p), len;
  unsigned lead = bin ? 0xc4 : 0xd9, w;
  uint8_t b;
  if (unlikely(left == 0)) return NULL;
  b = *p++;
  left--;
  if (!bin && (b & 0xe0) == 0xa0) { /* fixstr */
    len = b & 0x1f;
  } else {
    if (b < lead || b > lead + 2) return NULL;
    w = 1u << (b - lead);
    if (left < w) return NULL;
    len = load_be(p, w);
    p += w;
    left -= w;
  }
  if (left < len) return NULL;
  *body = p;
  *n = len;
  return p + len;
}

/* take_raw, or nil as (NULL, 0): what S and B with NULL pack. */
static ALWAYS_INLINE const uint8_t *take_raw_or_nil(const uint8_t *p,
                                                    const uint8_t *end,
                                                    int bin,
                                                    const uint8_t **body,
                                                    size_t *n) {
  if (p != end && *p == 0xc0) {
    *body = NULL;
    *n = 0;
    return p + 1;
  }
  return take_raw(p, end, bin, body, n);
}

/* An array header: its element count. */
static ALWAYS_INLINE const uint8_t *take_array(const uint8_t *p,
                                               const uint8_t *end,
                                               size_t *n) {
  uint8_t b;
  if (unlikely(p == end)) return NULL;
  b = *p++;
  if ((b & 0xf0) == 0x90) {
    *n = b & 0x0f;
    return p;
  }
  if (b == 0xdc && end - p >= 2) {
    *n = be16(p);
    return p + 2;
  }
  if (b == 0xdd && end - p >= 4) {
    *n = be32(p);
    return p + 4;
  }
  return NULL;
}

/* A pid: ext TR_EXT_PID of 8 bytes, in any of the ext forms. */
static const uint8_t *take_pid(const uint8_t *p, const uint8_t *end,
                               tr_pid_t *pid) {
  size_t left = (size_t)(end - p), len;
  if (left < 10) return NULL; /* the shortest form: lead, type, 8 bytes */
  switch (*p++) {
  case 0xd7: len = 8; break;
  case 0xc7: len = *p++; break;
  case 0xc8: len = be16(p); p += 2; break;
  case 0xc9:
    if (left < 14) return NULL;
    len = be32(p);
    p += 4;
    break;
  default: return NULL;
  }
  if (len != 8 || end - p < 9 || (int8_t)p[0] != TR_EXT_PID) return NULL;
  *pid = be64(p + 1);
  return p + 9;
}

/* A float32 or float64. */
static ALWAYS_INLINE const uint8_t *take_double(const uint8_t *p,
                                                const uint8_t *end,
                                                double *d) {
  if (end - p >= 9 && *p == 0xcb) {
    uint64_t bits = be64(p + 1);
    memcpy(d, &bits, sizeof *d);
    return p + 9;
  }
  if (end - p >= 5 && *p == 0xca) {
    uint32_t bits = be32(p + 1);
    float f;
    memcpy(&f, &bits, sizeof f);
    *d = f;
    return p + 5;
  }
  return NULL;
}

/* Takes (and drops) the arguments of fmt letter f from *ap: TR_EINVAL for
 * an unknown letter (or 's': the body's strings have no terminating NUL)
 * or a NULL pointer (I accepts a NULL array with capacity 0), else 0. The
 * checks the main loop makes, for the letters after a mismatch. */
static int skip_args(char f, va_list *ap) {
  const void *a, *b;
  size_t cap;
  switch (f) {
  case 'i': return va_arg(*ap, int64_t *) != NULL ? 0 : TR_EINVAL;
  case 'u':
  case 'p': return va_arg(*ap, uint64_t *) != NULL ? 0 : TR_EINVAL;
  case 'd': return va_arg(*ap, double *) != NULL ? 0 : TR_EINVAL;
  case 'b': return va_arg(*ap, int *) != NULL ? 0 : TR_EINVAL;
  case 'n': return 0;
  case 'S':
  case 'B':
    a = f == 'S' ? (const void *)va_arg(*ap, const char **)
                 : (const void *)va_arg(*ap, const void **);
    return a != NULL && va_arg(*ap, size_t *) != NULL ? 0 : TR_EINVAL;
  case 'I':
    a = va_arg(*ap, int64_t *);
    cap = va_arg(*ap, size_t);
    b = va_arg(*ap, size_t *);
    return (a != NULL || cap == 0) && b != NULL ? 0 : TR_EINVAL;
  default: return TR_EINVAL;
  }
}

int tr__tagged_unpack(const void *data, size_t len, const char *tag,
                      const char *fmt, va_list ap) {
  const uint8_t *p = data, *q, *end, *body;
  size_t n, bn, cap;
  uint64_t v;
  int64_t *pi;
  size_t *pn;
  va_list aq;
  char f;

  if (data == NULL || tag == NULL) return TR_EINVAL;
  if (fmt == NULL) fmt = "";
  end = p + len;
  va_copy(aq, ap);
  /* ["tag", ...]: then n - 1 elements, one per letter */
  if ((p = take_array(p, end, &n)) == NULL || n == 0 ||
      (p = take_raw(p, end, 0, &body, &bn)) == NULL || bn != strlen(tag) ||
      memcmp(body, tag, bn) != 0)
    goto mismatch;
  for (n--; (f = *fmt) != '\0'; fmt++, n--) {
    if (n == 0) goto mismatch; /* more letters than elements */
    switch (f) {
    case 'i':
      if ((pi = va_arg(aq, int64_t *)) == NULL) goto einval;
      if ((q = take_int(p, end, &v)) == NULL ||
          (v >> 63 && !int_signed(*p)))
        goto mismatch_next;
      *pi = (int64_t)v;
      break;
    case 'u': {
      uint64_t *pu = va_arg(aq, uint64_t *);
      if (pu == NULL) goto einval;
      if ((q = take_int(p, end, &v)) == NULL || (v >> 63 && int_signed(*p)))
        goto mismatch_next;
      *pu = v;
      break;
    }
    case 'd': {
      double *pd = va_arg(aq, double *);
      if (pd == NULL) goto einval;
      if ((q = take_double(p, end, pd)) == NULL) goto mismatch_next;
      break;
    }
    case 'b': {
      int *pb = va_arg(aq, int *);
      if (pb == NULL) goto einval;
      if (p == end || (*p != 0xc2 && *p != 0xc3)) goto mismatch_next;
      *pb = *p == 0xc3;
      q = p + 1;
      break;
    }
    case 'n':
      if (p == end || *p != 0xc0) goto mismatch_next;
      q = p + 1;
      break;
    case 'p': {
      tr_pid_t *pp = va_arg(aq, tr_pid_t *);
      if (pp == NULL) goto einval;
      if ((q = take_pid(p, end, pp)) == NULL) goto mismatch_next;
      break;
    }
    case 'S': {
      const char **ps = va_arg(aq, const char **);
      if ((pn = va_arg(aq, size_t *)) == NULL || ps == NULL) goto einval;
      if ((q = take_raw_or_nil(p, end, 0, &body, pn)) == NULL)
        goto mismatch_next;
      *ps = (const char *)body;
      break;
    }
    case 'B': {
      const void **pr = va_arg(aq, const void **);
      if ((pn = va_arg(aq, size_t *)) == NULL || pr == NULL) goto einval;
      if ((q = take_raw_or_nil(p, end, 1, &body, pn)) == NULL)
        goto mismatch_next;
      *pr = body;
      break;
    }
    case 'I':
      pi = va_arg(aq, int64_t *);
      cap = va_arg(aq, size_t);
      pn = va_arg(aq, size_t *);
      if ((pi == NULL && cap != 0) || pn == NULL) goto einval;
      if (p != end && *p == 0xc0) { /* what I with NULL packs */
        *pn = 0;
        q = p + 1;
        break;
      }
      if ((q = take_array(p, end, &bn)) == NULL) goto mismatch_next;
      if (bn > cap) {
        *pn = bn; /* the capacity it needs */
        goto mismatch_next;
      }
      if ((uint64_t)(end - q) >= (uint64_t)bn * 9) {
        /* every element has the 9 bytes int_fast may read */
        for (size_t k = 0; k < bn;) {
          const uint8_t *at;
          uint64_t x;
          /* a run of uint64s (the form of every value >= 2^32: ids,
           * timestamps, hashes) takes one test of its lead byte each,
           * two elements at a time */
          for (; k + 1 < bn && q[0] == 0xcf && q[9] == 0xcf; k += 2, q += 18) {
            uint64_t x1;
            x = be64(q + 1);
            x1 = be64(q + 10);
            if ((x | x1) >> 63) goto mismatch_next;
            pi[k] = (int64_t)x;
            pi[k + 1] = (int64_t)x1;
          }
          for (; k < bn && *q == 0xcf; k++, q += 9) {
            if ((x = be64(q + 1)) >> 63) goto mismatch_next;
            pi[k] = (int64_t)x;
          }
          if (k == bn) break;
          at = q;
          if (*q <= 0x7f) { /* positive fixint */
            x = *q++;
          } else if ((q = int_fast(q, &x)) == NULL ||
                     (x >> 63 && !int_signed(*at))) {
            goto mismatch_next;
          }
          pi[k++] = (int64_t)x;
        }
      } else {
        for (size_t k = 0; k < bn; k++) {
          const uint8_t *at = q;
          if ((q = take_int(q, end, &v)) == NULL ||
              (v >> 63 && !int_signed(*at)))
            goto mismatch_next;
          pi[k] = (int64_t)v;
        }
      }
      *pn = bn;
      break;
    default: goto einval; /* 's' or an unknown letter */
    }
    p = q;
  }
  if (n != 0 || p != end) goto mismatch; /* elements or bytes left over */
  va_end(aq);
  return 0;

mismatch_next: /* the arguments of *fmt are taken */
  fmt++;
mismatch:
  /* The rest of fmt and its arguments are still checked, so that a bad
   * letter or pointer is TR_EINVAL whatever the body holds. */
  for (; *fmt != '\0'; fmt++) {
    if (skip_args(*fmt, &aq) != 0) goto einval;
  }
  va_end(aq);
  return TR_EBADMSG;
einval:
  va_end(aq);
  return TR_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Packing a msgpack_object without recursion                               */
/* ------------------------------------------------------------------------ */

/* msgpack_pack_object recurses once per nesting level, which a hostile or
 * merely deep object could turn into a stack overflow on a small actor
 * stack, inside library code. This walks the object with an explicit,
 * heap-allocated stack instead and refuses nesting deeper than
 * TR_CODEC_DEPTH_MAX (the validator's own limit). */
typedef struct {
  const msgpack_object *items; /* array elements, or map key/value pairs */
  uint32_t n, i;               /* items (pairs count twice) and next one */
  int is_map;
} pack_frame_t;

/* A str, bin or ext body: NULL only when empty (then replaced, so that no
 * NULL reaches memcpy), never more than a message can hold. */
static int raw_ok(const char **ptr, uint32_t size) {
  if (size > TR_MSG_MAX) return TR_EMSGSIZE;
  if (*ptr == NULL) {
    if (size > 0) return TR_EINVAL;
    *ptr = "";
  }
  return 0;
}

static int pack_scalar(msgpack_packer *pk, const msgpack_object *o) {
  msgpack_object flat = *o;
  int rc = 0;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL:
  case MSGPACK_OBJECT_BOOLEAN:
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: break;
  case MSGPACK_OBJECT_STR: rc = raw_ok(&flat.via.str.ptr, flat.via.str.size); break;
  case MSGPACK_OBJECT_BIN: rc = raw_ok(&flat.via.bin.ptr, flat.via.bin.size); break;
  case MSGPACK_OBJECT_EXT: rc = raw_ok(&flat.via.ext.ptr, flat.via.ext.size); break;
  default: return TR_EINVAL; /* not a msgpack-c type */
  }
  if (rc != 0) return rc;
  return msgpack_pack_object(pk, flat) == 0 ? 0 : TR_ENOMEM;
}

static const msgpack_object *frame_next(pack_frame_t *f) {
  const msgpack_object_kv *kv;
  uint32_t i = f->i++;
  if (!f->is_map) return &f->items[i];
  kv = (const msgpack_object_kv *)(const void *)f->items;
  return (i & 1) ? &kv[i / 2].val : &kv[i / 2].key;
}

/* Opens a container: writes its header and pushes a frame. */
static int pack_open(msgpack_packer *pk, const msgpack_object *o,
                     pack_frame_t *stack, int *depth) {
  pack_frame_t *f;
  if (*depth >= TR_CODEC_DEPTH_MAX) return TR_EBADMSG;
  f = &stack[(*depth)++];
  if (o->type == MSGPACK_OBJECT_ARRAY) {
    if (msgpack_pack_array(pk, o->via.array.size) != 0) return TR_ENOMEM;
    f->items = o->via.array.ptr;
    f->n = o->via.array.size;
    f->is_map = 0;
  } else {
    if (msgpack_pack_map(pk, o->via.map.size) != 0) return TR_ENOMEM;
    if (o->via.map.size > UINT32_MAX / 2) return TR_EINVAL;
    f->items = (const msgpack_object *)(const void *)o->via.map.ptr;
    f->n = o->via.map.size * 2;
    f->is_map = 1;
  }
  f->i = 0;
  if (f->n > 0 && f->items == NULL) return TR_EINVAL;
  return 0;
}

static int pack_one(msgpack_packer *pk, const msgpack_object *o,
                    pack_frame_t *stack, int *depth) {
  if (o->type == MSGPACK_OBJECT_ARRAY || o->type == MSGPACK_OBJECT_MAP)
    return pack_open(pk, o, stack, depth);
  return pack_scalar(pk, o);
}

int tr__codec_pack_object(msgpack_sbuffer *sb, const msgpack_object *obj) {
  msgpack_packer pk;
  pack_frame_t *stack;
  int depth = 0, err;
  if (sb == NULL || obj == NULL) return TR_EINVAL;
  stack = malloc(TR_CODEC_DEPTH_MAX * sizeof(*stack));
  if (stack == NULL) return TR_ENOMEM;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  err = pack_one(&pk, obj, stack, &depth);
  while (err == 0 && depth > 0) {
    pack_frame_t *f = &stack[depth - 1];
    if (f->i == f->n) {
      depth--;
      continue;
    }
    err = pack_one(&pk, frame_next(f), stack, &depth);
  }
  free(stack);
  return err;
}
