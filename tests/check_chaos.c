/*
 * The chaos soak, short: the engine of bench/chaos.c (a tree of about
 * 1,070 actors over four supervisor levels, message and TCP load, random
 * faults of every kind at every point) for about 20 s with a fixed seed,
 * and every invariant it checks must hold. TR_CHAOS_SECONDS sets the fault
 * phase (default 12); TR_CHAOS_SEED the seed.
 */
#define CHAOS_NO_MAIN
#include "../bench/chaos.c"

#include "testutil.h"

START_TEST(test_chaos_soak) {
  chaos_opts_t o;
  chaos_result_t r;
  const char *secs = getenv("TR_CHAOS_SECONDS"), *seed = getenv("TR_CHAOS_SEED");
  int rc;
  chaos_opts_init(&o);
  /* TSan runs everything several times slower: a longer fault phase for
   * the same counts. */
  o.duration_s = secs ? atof(secs) : tr_test_on_tsan() ? 40 : 12;
  o.seed = seed ? strtoull(seed, NULL, 0) : 20261121;
  o.quiet = 1;
  o.burst_every_s = 3;
  rc = chaos_run(&o, &r);
  chaos_print(stdout, &o, &r);
  fflush(stdout);
  ck_assert_int_ge(rc, 0);
  ck_assert_msg(r.violations == 0, "%" PRIu64 " invariant violations:\n%s",
                r.violations, r.first_violations);
  ck_assert_uint_ge(r.actors_expected, 1000);
  ck_assert_uint_eq(r.actors_live, r.actors_expected);
  ck_assert_uint_gt(r.faults_total, 100);
  ck_assert_uint_gt(r.restarts, 100);
  ck_assert_uint_gt(r.escalations, 0);
  ck_assert_uint_gt(r.received, 10000);
  ck_assert_uint_gt(r.tcp_frames, 100);
}
END_TEST

static Suite *chaos_suite(void) {
  Suite *s = suite_create("chaos");
  TCase *tc = tcase_create("soak");
  tcase_add_test(tc, test_chaos_soak);
  tcase_set_timeout(tc, 600);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(chaos_suite)
