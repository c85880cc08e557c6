/* Check suite for the guarded stack pool (src/stack.c). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "stack.h"
#include "testutil.h"

#ifdef TR_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define K64 ((size_t)64 * 1024)
#define M1 ((size_t)1024 * 1024)

static size_t page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static size_t expected_guard(void) {
#if defined(__aarch64__)
  size_t min = 65536;
#else
  size_t min = 4096;
#endif
  return page() > min ? page() : min;
}

static tr__stack_pool_t *pool_new(size_t cache_max) {
  tr__stack_pool_t *p = NULL;
  TR_OK(tr__stack_pool_new(&p, cache_max));
  ck_assert_ptr_nonnull(p);
  return p;
}

static tr__stack_stats_t stats(tr__stack_pool_t *p) {
  tr__stack_stats_t s;
  tr__stack_pool_stats(p, &s);
  return s;
}

/* Nonzero if a MADV_GUARD_INSTALL guard really faults here, checked
 * independently of stack.c: a child writes to one and must die of SIGSEGV.
 * True on Linux >= 6.13 (this project's CI runs 6.18). */
static int guard_install_faults(void) {
  char *p = mmap(NULL, 2 * page(), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int status = 0;
  pid_t pid;

  ck_assert(p != MAP_FAILED);
  if (madvise(p, page(), 102 /* MADV_GUARD_INSTALL */) != 0) {
    munmap(p, 2 * page());
    return 0;
  }
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    ((volatile char *)p)[0] = 1;
    _exit(0);
  }
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  munmap(p, 2 * page());
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

/* Address space of this process in KiB (first field of statm). */
static long vm_size_kib(void) {
  long pages = -1;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld", &pages) != 1) pages = -1;
  fclose(f);
  return pages < 0 ? -1 : pages * (long)(page() / 1024);
}

static void use_mprotect_guards(void) {
  setenv("TR_STACK_GUARD", "mprotect", 1);
}

START_TEST(test_lifo_reuse) {
  tr__stack_pool_t *p = pool_new(16);
  tr__stack_t a, b, c, d, e;

  TR_OK(tr__stack_get(p, K64, &a));
  TR_OK(tr__stack_get(p, K64, &b));
  ck_assert_ptr_ne(a.lo, b.lo);
  tr__stack_put(p, &b);
  TR_OK(tr__stack_get(p, K64, &c));
  ck_assert_ptr_eq(c.lo, b.lo);
  tr__stack_put(p, &c);
  tr__stack_put(p, &a);
  TR_OK(tr__stack_get(p, K64, &d));
  TR_OK(tr__stack_get(p, K64, &e));
  ck_assert_ptr_eq(d.lo, a.lo); /* last in, first out */
  ck_assert_ptr_eq(e.lo, b.lo);
  tr__stack_put(p, &d);
  tr__stack_put(p, &e);
  tr__stack_pool_free(p);
}
END_TEST

START_TEST(test_sizes) {
  static const struct { size_t ask, want; } cases[] = {
      {TR_STACK_SIZE_MIN, TR_STACK_SIZE_MIN},
      {TR_STACK_SIZE_MIN + 1, 2 * TR_STACK_SIZE_MIN},
      {100000, 128 * 1024},
      {K64, K64},
      {M1 + 4096, 2 * M1},
      {TR_STACK_SIZE_MAX, TR_STACK_SIZE_MAX},
  };
  tr__stack_pool_t *p = pool_new(4);
  tr__stack_t st[sizeof cases / sizeof cases[0]];
  size_t i, want;

  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TR_OK(tr__stack_get(p, cases[i].ask, &st[i]));
    want = cases[i].want < page() ? page() : cases[i].want;
    ck_assert_uint_eq(st[i].size, want);
    ck_assert_uint_eq(st[i].guard_size, expected_guard());
    ck_assert_ptr_eq(st[i].lo, st[i].guard + st[i].guard_size);
    ck_assert_uint_eq((uintptr_t)st[i].lo % page(), 0);
#ifndef TR_VALGRIND
    ck_assert_uint_eq(st[i].vg_id, 0);
#endif
    ck_assert(tr__stack_in_guard(&st[i], (uintptr_t)st[i].lo - 1));
    ck_assert(!tr__stack_in_guard(&st[i], (uintptr_t)st[i].lo));
    ck_assert(tr__stack_in_slot(&st[i], (uintptr_t)st[i].lo + want - 1));
    ck_assert(!tr__stack_in_slot(&st[i], (uintptr_t)st[i].lo + want));
  }
  ck_assert_uint_ne(st[0].cls, st[1].cls);
  ck_assert_uint_eq(stats(p).in_use, i);
  while (i-- > 0) tr__stack_put(p, &st[i]);
  tr__stack_pool_free(p);
}
END_TEST

START_TEST(test_invalid_sizes) {
  static const size_t bad[] = {0, 1, TR_STACK_SIZE_MIN - 1,
                               (size_t)TR_STACK_SIZE_MAX + 1, SIZE_MAX};
  tr__stack_pool_t *p = pool_new(4);
  tr__stack_t st;
  size_t i;

  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_int_eq(tr__stack_get(p, bad[i], &st), TR_EINVAL);
  ck_assert_uint_eq(stats(p).in_use, 0);
  ck_assert_uint_eq(stats(p).mapped, 0);
  tr__stack_pool_free(p);
  tr__stack_pool_free(NULL);
}
END_TEST

START_TEST(test_pool_contains) {
  tr__stack_pool_t *p = pool_new(4), *q = pool_new(4);
  tr__stack_t a, b;
  int local = 0;

  ck_assert(!tr__stack_pool_contains(p, (uintptr_t)&local));
  TR_OK(tr__stack_get(p, K64, &a));
  TR_OK(tr__stack_get(q, M1, &b));
  ck_assert(tr__stack_pool_contains(p, (uintptr_t)a.guard));
  ck_assert(tr__stack_pool_contains(p, (uintptr_t)a.lo + a.size - 1));
  ck_assert(!tr__stack_pool_contains(p, (uintptr_t)b.lo));
  ck_assert(tr__stack_pool_contains(q, (uintptr_t)b.lo));
  ck_assert(!tr__stack_pool_contains(p, (uintptr_t)&local));
  ck_assert(!tr__stack_pool_contains(NULL, (uintptr_t)a.lo));
  tr__stack_pool_free(p);
  tr__stack_pool_free(q);
}
END_TEST

START_TEST(test_writable_range) {
  static const size_t sizes[] = {TR_STACK_SIZE_MIN, K64, M1, 8 * M1};
  tr__stack_pool_t *p = pool_new(4);
  tr__stack_t st;
  size_t i, j;

  for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    TR_OK(tr__stack_get(p, sizes[i], &st));
    memset(st.lo, 0xa5, st.size);
    for (j = 0; j < st.size; j += 4096)
      ck_assert_uint_eq((unsigned char)st.lo[j], 0xa5);
    ck_assert_uint_eq((unsigned char)st.lo[st.size - 1], 0xa5);
    tr__stack_put(p, &st);
  }
  tr__stack_pool_free(p);
}
END_TEST

/* ---- guard faults (fork mode, expected to die with SIGSEGV) ------------- */

START_TEST(test_guard_top_faults) {
  tr__stack_pool_t *p = pool_new(4);
  tr__stack_t st;

  TR_OK(tr__stack_get(p, K64, &st));
  st.lo[0] = 1; /* lowest usable byte is fine */
  ((volatile char *)st.lo)[-1] = 1;
  ck_abort_msg("write below lo did not fault");
}
END_TEST

START_TEST(test_guard_bottom_faults) {
  tr__stack_pool_t *p = pool_new(4);
  tr__stack_t st;

  TR_OK(tr__stack_get(p, K64, &st));
  ((volatile char *)st.guard)[0] = 1;
  ck_abort_msg("write to the guard did not fault");
}
END_TEST

/* A slot released with MADV_DONTNEED comes back zeroed, guard intact. */
START_TEST(test_guard_after_reuse_faults) {
  tr__stack_pool_t *p = pool_new(0);
  tr__stack_t st, again;

  TR_OK(tr__stack_get(p, K64, &st));
  memset(st.lo, 0x5a, st.size);
  tr__stack_put(p, &st);
  ck_assert_uint_eq(stats(p).released, 1);
  TR_OK(tr__stack_get(p, K64, &again));
  ck_assert_ptr_eq(again.lo, st.lo);
  ck_assert_int_eq(again.lo[0], 0); /* pages were dropped */
  ck_assert_int_eq(again.lo[again.size - 1], 0);
  ((volatile char *)again.lo)[-1] = 1;
  ck_abort_msg("guard of a reused slot did not fault");
}
END_TEST

/* Guards survive MADV_DONTNEED even when it covers the guard itself. */
START_TEST(test_guard_survives_dontneed) {
  tr__stack_pool_t *p = pool_new(4);
  tr__stack_t st;

  TR_OK(tr__stack_get(p, K64, &st));
  ck_assert_int_eq(madvise(st.guard, st.guard_size + st.size, MADV_DONTNEED),
                   0);
  st.lo[0] = 1;
  ((volatile char *)st.lo)[-1] = 1;
  ck_abort_msg("guard did not survive MADV_DONTNEED");
}
END_TEST

START_TEST(test_mprotect_guard_faults) {
  tr__stack_pool_t *p;
  tr__stack_t st;

  use_mprotect_guards();
  p = pool_new(4);
  ck_assert_str_eq(tr__stack_guard_method(), "mprotect");
  TR_OK(tr__stack_get(p, K64, &st));
  st.lo[0] = 1;
  ((volatile char *)st.lo)[-1] = 1;
  ck_abort_msg("mprotect guard did not fault");
}
END_TEST

/* ---- scale, memory release, accounting ---------------------------------- */

START_TEST(test_guard_method) {
  const char *m = tr__stack_guard_method();
  const char *force = getenv("TR_STACK_GUARD");
  tr__stack_pool_t *p = pool_new(0);

  if (!(force && strcmp(force, "mprotect") == 0) && guard_install_faults()) {
    ck_assert_str_eq(m, "madv_guard_install");
    ck_assert_uint_eq(stats(p).guard_limit, SIZE_MAX);
  } else {
    ck_assert_str_eq(m, "mprotect");
    ck_assert_uint_lt(stats(p).guard_limit, SIZE_MAX);
  }
  tr__stack_pool_free(p);
}
END_TEST

#define MANY 100000

START_TEST(test_many_stacks_few_vmas) {
  tr__stack_pool_t *p = pool_new(64);
  tr__stack_t *st = calloc(MANY, sizeof *st);
  int vma0 = tr_test_vma_count(), vma1, rc = 0;
  long vm1;
  size_t i, n = 0, chunks;

  ck_assert_ptr_nonnull(st);
  for (n = 0; n < MANY && (rc = tr__stack_get(p, K64, &st[n])) == 0; n++)
    if (n % 1000 == 0) st[n].lo[st[n].size - 1] = 1;
  if (strcmp(tr__stack_guard_method(), "mprotect") == 0) {
    ck_assert_int_eq(rc, TR_EMAPCOUNT); /* capped, never a mystery ENOMEM */
    ck_assert_uint_eq(n, stats(p).guard_limit);
  } else {
    TR_OK(rc);
  }
  vma1 = tr_test_vma_count();
  chunks = stats(p).mapped / (64 * M1) + 1;
  ck_assert_uint_eq(stats(p).in_use, n);
  ck_assert_uint_eq(stats(p).guards, n);
  ck_assert_uint_ge(stats(p).mapped, n * (K64 + expected_guard()));
  if (strcmp(tr__stack_guard_method(), "madv_guard_install") == 0 &&
      !tr_test_on_tsan()) /* TSan maps shadow memory as the stacks are used */
    ck_assert_msg(vma1 - vma0 <= (int)chunks + 8,
                  "VMAs grew by %d for %zu stacks (%zu chunks)", vma1 - vma0,
                  n, chunks);
  for (i = 0; i < n; i++) tr__stack_put(p, &st[n - 1 - i]);
  ck_assert_uint_eq(stats(p).in_use, 0);
  ck_assert_uint_eq(stats(p).cached, 64);
  ck_assert_uint_eq(stats(p).released, n - 64);
  vm1 = vm_size_kib();
  tr__stack_pool_free(p); /* unmaps every chunk */
  ck_assert_int_ge(vm1 - vm_size_kib(), (long)(n * (K64 / 1024)));
  free(st);
}
END_TEST

START_TEST(test_rss_released_past_cache_max) {
  enum { N = 64, KEEP = 4 };
  tr__stack_pool_t *p = pool_new(KEEP);
  tr__stack_t st[N];
  long rss0, rss1, rss2;
  int i;

  rss0 = tr_test_rss_kib();
  for (i = 0; i < N; i++) {
    TR_OK(tr__stack_get(p, M1, &st[i]));
    memset(st[i].lo, 0x11, st[i].size);
  }
  rss1 = tr_test_rss_kib();
  ck_assert_int_ge(rss1 - rss0, (long)(N * M1 / 1024) * 9 / 10);
  for (i = 0; i < N; i++) tr__stack_put(p, &st[i]);
  rss2 = tr_test_rss_kib();
  ck_assert_uint_eq(stats(p).cached, KEEP);
  ck_assert_uint_eq(stats(p).released, N - KEEP);
  /* KEEP stacks stay resident, the rest went back to the kernel. (Not
   * under TSan: its shadow of the written stacks stays resident.) */
  if (!tr_test_on_tsan()) {
    ck_assert_msg(rss1 - rss2 >= (long)((N - KEEP) * M1 / 1024) * 9 / 10,
                  "rss %ld -> %ld -> %ld KiB", rss0, rss1, rss2);
    ck_assert_int_le(rss2 - rss0, (long)(KEEP * M1 / 1024) + 2048);
  }
  tr__stack_pool_free(p);
}
END_TEST

START_TEST(test_stats) {
  tr__stack_pool_t *p = pool_new(2);
  tr__stack_t st[4], x;
  tr__stack_stats_t s;
  int i;

  s = stats(p);
  ck_assert_uint_eq(s.in_use + s.cached + s.released + s.mapped + s.guards, 0);
  for (i = 0; i < 4; i++) TR_OK(tr__stack_get(p, K64, &st[i]));
  s = stats(p);
  ck_assert_uint_eq(s.in_use, 4);
  ck_assert_uint_eq(s.guards, 4);
  ck_assert_uint_ge(s.mapped, 4 * (K64 + expected_guard()));
  for (i = 0; i < 4; i++) tr__stack_put(p, &st[i]);
  s = stats(p);
  ck_assert_uint_eq(s.in_use, 0);
  ck_assert_uint_eq(s.cached, 2);
  ck_assert_uint_eq(s.released, 2);
  /* Warm slots are handed out first, most recent first. */
  TR_OK(tr__stack_get(p, K64, &x));
  ck_assert_ptr_eq(x.lo, st[1].lo);
  ck_assert_uint_eq(stats(p).cached, 1);
  TR_OK(tr__stack_get(p, K64, &x));
  ck_assert_ptr_eq(x.lo, st[0].lo);
  TR_OK(tr__stack_get(p, K64, &x));
  s = stats(p);
  ck_assert_uint_eq(s.cached, 0);
  ck_assert_uint_eq(s.released, 1);
  ck_assert_uint_eq(s.in_use, 3);
  ck_assert_uint_eq(s.guards, 4); /* reuse installs no new guard */
  TR_OK(tr__stack_get(p, 2 * M1, &x));
  ck_assert_uint_eq(stats(p).guards, 5);
  ck_assert_uint_eq(stats(p).in_use, 4);
  tr__stack_pool_free(p);
}
END_TEST

/* Touched (overflowed) stacks: a bounded hot set stays warm, the rest
 * goes back to the kernel, and a hot slot stays hot as it is reused. */
START_TEST(test_hot_set_bounded) {
  enum { N = 64 };
  const size_t budget_slots = TR__STACK_HOT_BYTES / K64;
  tr__stack_pool_t *p = pool_new(N);
  tr__stack_t st[N], x;
  tr__stack_stats_t s;
  long rss0, rss1;
  int i;

  ck_assert_uint_ge(budget_slots, 1);
  ck_assert_uint_lt(budget_slots, N);
  rss0 = tr_test_rss_kib();
  for (i = 0; i < N; i++) {
    TR_OK(tr__stack_get(p, K64, &st[i]));
    ck_assert_uint_eq(st[i].hot, 0);
    memset(st[i].lo, 0x22, st[i].size); /* as an overflow would */
  }
  for (i = 0; i < N; i++) tr__stack_put_touched(p, &st[i]);
  rss1 = tr_test_rss_kib();
  s = stats(p);
  ck_assert_uint_eq(s.hot, budget_slots);
  ck_assert_uint_eq(s.hot_bytes, budget_slots * K64);
  ck_assert_uint_eq(s.cached, budget_slots);
  ck_assert_uint_eq(s.released, N - budget_slots);
  if (!tr_test_on_tsan()) /* TSan's shadow of the stacks stays resident */
    ck_assert_msg(rss1 - rss0 <= (long)(TR__STACK_HOT_BYTES / 1024) + 2048,
                  "rss %ld -> %ld KiB", rss0, rss1);

  /* LIFO: the newest hot slot comes back first, still hot; touched again
   * it stays in the set without counting twice. Put untouched, it stays
   * hot too (its pages are still all resident). */
  TR_OK(tr__stack_get(p, K64, &x));
  ck_assert_uint_eq(x.hot, 1);
  ck_assert_ptr_eq(x.lo, st[budget_slots - 1].lo);
  tr__stack_put_touched(p, &x);
  ck_assert_uint_eq(stats(p).hot, budget_slots);
  TR_OK(tr__stack_get(p, K64, &x));
  ck_assert_uint_eq(x.hot, 1);
  tr__stack_put(p, &x);
  ck_assert_uint_eq(stats(p).hot, budget_slots);

  /* A hot slot that falls out of the cache leaves the set. */
  tr__stack_pool_free(p);
  p = pool_new(0);
  TR_OK(tr__stack_get(p, K64, &x));
  tr__stack_put_touched(p, &x);
  s = stats(p);
  ck_assert_uint_eq(s.hot, 0);
  ck_assert_uint_eq(s.hot_bytes, 0);
  ck_assert_uint_eq(s.released, 1);

  /* One slot bigger than the whole budget may still be hot. */
  tr__stack_pool_free(p);
  p = pool_new(4);
  TR_OK(tr__stack_get(p, 2 * TR__STACK_HOT_BYTES, &x));
  tr__stack_put_touched(p, &x);
  ck_assert_uint_eq(stats(p).hot, 1);
  TR_OK(tr__stack_get(p, 2 * TR__STACK_HOT_BYTES, &x));
  ck_assert_uint_eq(x.hot, 1);
  tr__stack_put(p, &x);
  tr__stack_pool_free(p);
}
END_TEST

/* Forced mprotect fallback: guards are capped below vm.max_map_count and
 * the cap is reported as TR_EMAPCOUNT; freeing a pool returns its share. */
START_TEST(test_mprotect_cap) {
  tr__stack_pool_t *p, *q;
  tr__stack_t st, *all;
  size_t n = 0, limit;
  long max = 65530;
  int rc = 0;
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");

  if (f != NULL) {
    ck_assert_int_eq(fscanf(f, "%ld", &max), 1);
    fclose(f);
  }
  if (RUNNING_ON_VALGRIND) return; /* valgrind cannot track 60k mappings */
  use_mprotect_guards();
  p = pool_new(0);
  ck_assert_str_eq(tr__stack_guard_method(), "mprotect");
  limit = stats(p).guard_limit;
  ck_assert_uint_gt(limit, 1000);
  ck_assert_uint_lt(limit, (size_t)max / 2);
  all = calloc(limit + 1, sizeof *all);
  ck_assert_ptr_nonnull(all);
  while (n <= limit && (rc = tr__stack_get(p, K64, &all[n])) == 0) n++;
  ck_assert_int_eq(rc, TR_EMAPCOUNT);
  ck_assert_uint_eq(n, limit);
  ck_assert_int_lt(tr_test_vma_count(), max - 1000);
  tr__stack_put(p, &all[n - 1]); /* reuse needs no new guard */
  TR_OK(tr__stack_get(p, K64, &st));
  q = pool_new(0); /* the ceiling is process-wide */
  ck_assert_int_eq(tr__stack_get(q, K64, &st), TR_EMAPCOUNT);
  tr__stack_pool_free(p);
  TR_OK(tr__stack_get(q, K64, &st));
  ck_assert_uint_eq(stats(q).guards, 1);
  tr__stack_pool_free(q);
  free(all);
}
END_TEST

/* Signal tests and the environment override need Check's fork mode. */
static int forking(void) {
  const char *e = getenv("CK_FORK");
  return e == NULL || strcmp(e, "no") != 0;
}

static Suite *suite_stack(void) {
  Suite *s = suite_create("stack");
  TCase *tc = tcase_create("pool");
  TCase *scale = tcase_create("scale");

  tcase_add_test(tc, test_lifo_reuse);
  tcase_add_test(tc, test_sizes);
  tcase_add_test(tc, test_invalid_sizes);
  tcase_add_test(tc, test_writable_range);
  tcase_add_test(tc, test_pool_contains);
  tcase_add_test(tc, test_guard_method);
  tcase_add_test(tc, test_stats);
  tcase_add_test(tc, test_hot_set_bounded);
  suite_add_tcase(s, tc);

  tcase_set_timeout(scale, 120);
  tcase_add_test(scale, test_many_stacks_few_vmas);
  tcase_add_test(scale, test_rss_released_past_cache_max);
  suite_add_tcase(s, scale);

  if (forking()) {
    TCase *guard = tcase_create("guard");
    TCase *mp = tcase_create("mprotect");

    tcase_add_test_raise_signal(guard, test_guard_top_faults, SIGSEGV);
    tcase_add_test_raise_signal(guard, test_guard_bottom_faults, SIGSEGV);
    tcase_add_test_raise_signal(guard, test_guard_after_reuse_faults,
                                SIGSEGV);
    tcase_add_test_raise_signal(guard, test_guard_survives_dontneed, SIGSEGV);
    tcase_add_test_raise_signal(guard, test_mprotect_guard_faults, SIGSEGV);
    suite_add_tcase(s, guard);
    /* A fresh process per test, so detection sees the override. */
    tcase_set_timeout(mp, 120);
    tcase_add_test(mp, test_mprotect_cap);
    suite_add_tcase(s, mp);
  }
  return s;
}

TR_TEST_MAIN(suite_stack)
