/* Shared helpers for the Check suites. */
#ifndef TR_TESTUTIL_H
#define TR_TESTUTIL_H

#include <check.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "troupe.h"

/* Valgrind builds (--enable-valgrind) can tell when they run under it:
 * tests that need what valgrind does not model (floating-point control
 * modes, tens of thousands of mappings, minutes of load) skip themselves
 * or scale down there. */
#if defined(__has_include)
#if __has_include("config.h")
#include "config.h"
#endif
#endif
#ifdef TR_VALGRIND
#include <valgrind/valgrind.h>
#define tr_test_on_valgrind() (RUNNING_ON_VALGRIND != 0)
#else
#define tr_test_on_valgrind() 0
#endif

/* Nonzero when Check runs the tests in this process (CK_FORK=no, as the
 * valgrind pass does): a test whose point is to kill its process (a
 * signal or exit test) skips itself then — Check does not check the
 * expected signal or exit status without fork. */
static inline int tr_test_nofork(void) {
  const char *f = getenv("CK_FORK");
  return f != NULL && strcmp(f, "no") == 0;
}

/* Asserts that an int-returning troupe call succeeded, naming the error. */
#define TR_OK(expr)                                                          \
  do {                                                                       \
    int tr_ok_rc_ = (expr);                                                  \
    ck_assert_msg(tr_ok_rc_ >= 0, "%s failed: %s (%d)", #expr,               \
                  tr_strerror(tr_ok_rc_), tr_ok_rc_);                        \
  } while (0)

/* Runs fn(arg) as the only top-level actor of a fresh standalone runtime
 * until every actor has exited; asserts that run returned 0. */
static inline void tr_test_run(tr_actor_fn fn, void *arg) {
  tr_runtime_t *rt = NULL;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, fn, arg, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
}

/* Tests whose subject is single-scheduler behaviour run on one scheduler
 * whatever TR_SCHEDULERS and TR_PLACEMENT say (the suite also runs with 2
 * and 4 schedulers and round-robin placement, where a spawned child may
 * run at once on another thread): the exact order in which runnable
 * actors interleave, a child that has not run yet when its spawner goes
 * on, an exit signal that takes effect before tr_exit_pid returns, I/O
 * handles handed between actors (a handle lives on its scheduler's loop),
 * the runtime's internals, or plain (non-atomic) state shared by actors.
 * tests/check_multi.c covers all of it across schedulers. */
static inline const tr_config_t *tr_test_cfg1(void) {
  static tr_config_t cfg;
  tr_config_init(&cfg);
  cfg.schedulers = 1;
  return &cfg;
}

/* tr_test_run on one scheduler (see tr_test_cfg1). */
static inline void tr_test_run1(tr_actor_fn fn, void *arg) {
  tr_runtime_t *rt = NULL;
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, fn, arg, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
}

/* ThreadSanitizer builds (--enable-tsan): TSan counts every actor as a
 * thread (at most 8128 at once) and maps shadow memory for every stack, so
 * tests that keep thousands of actors alive scale down there, and RSS and
 * mapping counts are not checked. */
#if defined(__SANITIZE_THREAD__)
#define tr_test_on_tsan() 1
#else
#define tr_test_on_tsan() 0
#endif

/* A msgpack packer writing into a growing buffer (b.sb.data, b.sb.size). */
typedef struct buf {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} buf_t;

static inline void buf_init(buf_t *b) {
  msgpack_sbuffer_init(&b->sb);
  msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

static inline void buf_free(buf_t *b) { msgpack_sbuffer_destroy(&b->sb); }

/* tr_msg_unpack_v called through a variadic front, as a caller would. */
static inline int tr_test_unpack_v(const tr_msg_t *m, const char *tag,
                                   const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = tr_msg_unpack_v(m, tag, fmt, ap);
  va_end(ap);
  return rc;
}

/* Milliseconds on the monotonic clock. */
static inline double tr_test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Packs an unsigned integer into buf (at most 9 bytes) as a msgpack body;
 * returns its length. By hand: a msgpack_sbuffer would malloc 8 KiB per
 * message. */
static inline size_t tr_test_pack_u64(unsigned char *buf, uint64_t v) {
  if (v < 128) {
    buf[0] = (unsigned char)v; /* positive fixint */
    return 1;
  }
  buf[0] = 0xcf; /* uint 64, big-endian */
  for (int i = 0; i < 8; i++) buf[1 + i] = (unsigned char)(v >> (56 - 8 * i));
  return 9;
}

/* The unsigned integer body of m, or UINT64_MAX if it is something else. */
static inline uint64_t tr_test_msg_u64(const tr_msg_t *m) {
  const msgpack_object *o = tr_msg_obj(m);
  if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return UINT64_MAX;
  return o->via.u64;
}

/* Number of open file descriptors of this process. */
static inline int tr_test_fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the DIR's own fd */
}

/* Number of lines (VMAs) in /proc/self/maps. */
static inline int tr_test_vma_count(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  int n = 0, c;
  if (f == NULL) return -1;
  while ((c = fgetc(f)) != EOF)
    if (c == '\n') n++;
  fclose(f);
  return n;
}

/* Resident set size in KiB (from /proc/self/statm). */
static inline long tr_test_rss_kib(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
  fclose(f);
  return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Standard main: runs the suite returned by make_suite, exits non-zero on
 * any failure. */
#define TR_TEST_MAIN(make_suite)                                             \
  int main(void) {                                                           \
    SRunner *sr = srunner_create(make_suite());                              \
    int failed;                                                              \
    srunner_run_all(sr, CK_NORMAL);                                          \
    failed = srunner_ntests_failed(sr);                                      \
    srunner_free(sr);                                                        \
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                        \
  }

#endif
