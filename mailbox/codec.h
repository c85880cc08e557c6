/*
 * codec — msgpack helpers of the mailbox layer: validation of message bodies
 * (tr_msgpack_validate, public), tagged packing (tr_pack_tagged*, public),
 * pid ext (tr_pack_pid / tr_obj_pid, public) and the internal tagged
 * reader, tag test and decoder below. Nothing here touches the runtime: every function is pure
 * and thread-safe.
 *
 * tr_msgpack_validate costs O(len) (about 2 ns per value) and never recurses;
 * besides TR_EINVAL / TR_EBADMSG / TR_EMSGSIZE it can return TR_ENOMEM, only
 * for a value nested deeper than 32 levels when a 4 KiB malloc fails.
 */
#ifndef TR_CODEC_H
#define TR_CODEC_H

#include <stdarg.h>
#include <stddef.h>

#include <msgpack.h>

#include "troupe.h"

/* Deepest container nesting a valid body may have: N nested arrays or maps
 * (counting empty ones) are accepted iff N <= TR_CODEC_DEPTH_MAX. Bounds the
 * stack of any recursive walker of a decoded body (msgpack_pack_object,
 * msgpack_object_print, user code). Deeper input is TR_EBADMSG. */
#define TR_CODEC_DEPTH_MAX 1024

/* The sizing pass of tagged packing: checks tag, fmt (letters as for
 * tr_send_tagged; NULL means no arguments) and the arguments in ap (read
 * through a va_copy), and gives the most bytes the packed array can take
 * (*hi; the packed value itself may still exceed TR_MSG_MAX) and the
 * element objects a decode of it needs (*children). s, S, B and I with a
 * NULL pointer pack nil (S, B and I then need count 0, else TR_EINVAL).
 * Cost: one pass over fmt and the arguments (strlen of s strings).
 * Errors: TR_EINVAL (tag NULL, unknown letter, NULL with a count),
 * TR_EMSGSIZE (the value cannot fit TR_MSG_MAX); *hi and *children are 0. */
int tr__tagged_size(const char *tag, const char *fmt, va_list ap, size_t *hi,
                    uint32_t *children);

/* Packs ["tag", args...] into buf, which has room for the *hi bytes that
 * tr__tagged_size gave for the same tag, fmt and arguments (it must have
 * succeeded: nothing is checked again), with msgpack-c's encodings (the
 * smallest form of each integer). Returns the bytes written. ap is read
 * through a va_copy. Cost: one pass, a few instructions per value. */
size_t tr__tagged_write(void *buf, const char *tag, const char *fmt, va_list ap);

/* Both passes in one, for small bodies: packs ["tag", args...] into buf
 * (cap bytes), the same bytes as tr__tagged_write, counts the element
 * objects a decode needs into *children (as tr__tagged_size) and returns
 * the length. Returns 0 instead (buf then holds anything) when the body
 * might not fit (each argument must leave room for its widest form, an
 * integer 9 bytes), fmt has 15 letters or more (no fixarray header), or
 * an argument is invalid (tag NULL, an unknown letter, a NULL with a
 * count): the caller then takes the two passes, which report the errors.
 * ap is read through a va_copy. Cost: one pass; runs of positive fixints
 * and of uint64s in an I array take one test per element. */
size_t tr__tagged_write_small(void *buf, size_t cap, const char *tag,
                              const char *fmt, va_list ap,
                              uint32_t *children);

/* Appends the array ["tag", args...] described by fmt (as for
 * tr__tagged_size) to sb, reserving *hi bytes first (at most one realloc).
 * Errors: those of tr__tagged_size, TR_EINVAL for a NULL sb, TR_EMSGSIZE
 * (the value exceeds TR_MSG_MAX), TR_ENOMEM. On error sb->size is what it
 * was on entry (sb may have grown its allocation). */
int tr__pack_tagged_sbuf(msgpack_sbuffer *sb, const char *tag, const char *fmt,
                         va_list ap);

/* The reader of tr_msg_unpack: checks in one pass that the msgpack bytes
 * [data, data + len) are exactly the array ["tag", args...] that fmt
 * describes (letters and argument types as for tr_msg_unpack; NULL means
 * no arguments) and stores each element through the pointers in ap (read
 * through a va_copy). Safe on any bytes: nothing is read at or past
 * data + len. str and bin outputs point into data.
 * Errors: TR_EINVAL (data or tag NULL, an unknown letter or 's', a NULL
 * pointer argument), else TR_EBADMSG for anything that does not match
 * (tag, arity, a type or a range; bytes cut short or left over). Outputs
 * of the elements before the offending one may have been written. */
int tr__tagged_unpack(const void *data, size_t len, const char *tag,
                      const char *fmt, va_list ap);

/* Nonzero iff the msgpack bytes are an array of at least one element whose
 * first element is a str of exactly tag_len bytes equal to tag. Reads only
 * the array and str headers and the tag bytes, never past len, and does not
 * decode; safe on any bytes (meant for validated ones). Cost: O(tag_len). */
int tr__codec_is_tag(const void *data, size_t len, const char *tag,
                     size_t tag_len);

/* Decodes the single msgpack value in data into *obj (checking it as
 * tr_msgpack_validate does; errors as there). *zone is set to NULL first.
 * Scalars, str, bin, ext and empty containers need no memory: *zone stays
 * NULL. Non-empty arrays and maps get their element objects from a new zone
 * in *zone, sized exactly for them, which the caller frees with
 * msgpack_zone_free(*zone) (NULL accepted).
 * Ownership: str, bin and ext objects point INTO data (nothing is copied),
 * so data must outlive every use of *obj.
 * Objects match msgpack_unpack's (non-negative signed ints are POSITIVE,
 * float32 is FLOAT32 with the value in via.f64), except that an empty
 * container has ptr NULL, and nesting up to TR_CODEC_DEPTH_MAX works where
 * msgpack_unpack stops at 32 levels.
 * Cost: the two passes of tr__codec_validate_count and
 * tr__codec_decode_into; for containers two mallocs (zone and its one
 * chunk) and, only for nesting deeper than 16, one temporary one. The
 * mailbox does not use it (it counts on send and decodes into recycled
 * storage); it stays for callers that hold bytes nobody validated.
 * Errors: TR_EINVAL, TR_EBADMSG, TR_EMSGSIZE, TR_ENOMEM; *zone is NULL and
 * *obj unspecified then. */
int tr__codec_decode(const void *data, size_t len, msgpack_zone **zone,
                     msgpack_object *obj);

/* tr_msgpack_validate that also reports how many element objects a decode
 * of the value needs (0 for scalars and empty containers; always < len),
 * so that the count is taken once, on send. Same cost and errors; *children
 * is 0 on error. */
int tr__codec_validate_count(const void *data, size_t len, uint64_t *children);

/* Decodes bytes that passed tr__codec_validate_count into *obj, taking the
 * element objects from pool, which must have room for the `children` the
 * count gave (NULL when 0); exactly that many are written, in one pass
 * without bounds checks, so the bytes must be the validated ones, unchanged.
 * Allocates nothing unless the value nests deeper than 16 levels (then
 * TR_ENOMEM is possible). str, bin and ext objects point into data.
 * Cost: O(values), under 20 instructions per value. */
int tr__codec_decode_into(const void *data, msgpack_object *obj,
                          msgpack_object *pool);

/* Packs obj into sb without recursion (msgpack_pack_object recurses per
 * level). TR_EBADMSG for nesting deeper than TR_CODEC_DEPTH_MAX, TR_EINVAL
 * for inconsistent objects (a non-empty container with a NULL ptr),
 * TR_ENOMEM when out of memory. On error sb holds a partial value. */
int tr__codec_pack_object(msgpack_sbuffer *sb, const msgpack_object *obj);



#endif /* TR_CODEC_H */
