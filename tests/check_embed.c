/* Check suite for embedded mode (tr_runtime_attach): the host's loop and
 * its own handles keep working while actors run; tr_runtime_stop shuts the
 * host-spawned actors down youngest first and kills stragglers after
 * stop_timeout_ms; once the runtime is freed the host can close its loop.
 *
 * Every runtime here has one scheduler (tr_test_cfg1): the tests follow
 * scheduler 0 on the host's loop step by step, with plain shared state
 * (tests/check_multi.c runs the embedded mode with threads).
 */
#include <stdint.h>

#include "testutil.h"

#define WAIT_MS 5000

static uv_loop_t loop;
static tr_runtime_t *rt;

/* A shared log of events, in order. */
static char order[64];
static void log_event(char c) {
  size_t n = strlen(order);
  ck_assert_uint_lt(n + 1, sizeof(order));
  order[n] = c;
  order[n + 1] = '\0';
}
static void log_deferred(void *arg) { log_event((char)(intptr_t)arg); }

/* Actors that reached their first line. */
static int started;

/* Lets the loop run actors until n of them have started (and blocked). */
static void run_until_started(int n) {
  for (int i = 0; started < n && i < 10000; i++) uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(started, n);
}

static void host_setup(void) {
  memset(order, 0, sizeof(order));
  started = 0;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  rt = NULL;
}

/* Frees the runtime, then the loop must close cleanly. */
static void host_teardown(void) {
  TR_OK(tr_runtime_free(rt));
  rt = NULL;
  uv_run(&loop, UV_RUN_DEFAULT); /* host handles being closed */
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* ------------------------------------------------------------------------ */
/* The host's timer keeps firing while actors run                           */
/* ------------------------------------------------------------------------ */

static uv_timer_t host_timer;
static volatile unsigned ticks;
static int actors_done, stop_called, host_closed;

static void host_tick(uv_timer_t *t) {
  ticks++;
  if (actors_done && !stop_called) {
    stop_called = 1;
    TR_OK(tr_runtime_stop(rt));
  }
  if (stop_called && tr_runtime_actor_count(rt) == 0 && !host_closed) {
    host_closed = 1;
    uv_close((uv_handle_t *)t, NULL);
  }
}

static unsigned sleep_ticks[3];
static unsigned long busy_rounds;

static void ponger(void *arg) {
  tr_msg_t *m;
  (void)arg;
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_is_tag(m, "stop")) {
      tr_msg_free(m);
      return;
    }
    TR_OK(tr_send(tr_msg_from(m), "\xc0", 1)); /* nil */
    tr_msg_free(m);
  }
}

static void pinger(void *arg) {
  tr_pid_t peer = (tr_pid_t)(uintptr_t)arg;
  tr_msg_t *m;
  unsigned start = ticks;
  /* Busy: ping-pong until the host's timer has fired three times (it must
   * get loop turns while actors keep each other runnable). */
  while (ticks < start + 3) {
    TR_OK(tr_send(peer, "\xc0", 1));
    TR_OK(tr_recv(&m, WAIT_MS));
    tr_msg_free(m);
    busy_rounds++;
    ck_assert_uint_lt(busy_rounds, 100u * 1000 * 1000);
  }
  /* Idle: the host ticks while we sleep. */
  for (int i = 0; i < 3; i++) {
    unsigned before = ticks;
    TR_OK(tr_sleep(20));
    sleep_ticks[i] = ticks - before;
  }
  TR_OK(tr_send_tagged(peer, "stop", NULL));
  actors_done = 1;
}

START_TEST(test_host_timer_fires_while_actors_run) {
  tr_pid_t po;
  host_setup();
  ticks = 0;
  actors_done = stop_called = host_closed = 0;
  busy_rounds = 0;
  TR_OK(tr_runtime_attach(&rt, &loop, tr_test_cfg1()));
  ck_assert_ptr_eq(tr_runtime_loop(rt), &loop);
  ck_assert_int_eq(uv_timer_init(&loop, &host_timer), 0);
  ck_assert_int_eq(uv_timer_start(&host_timer, host_tick, 1, 1), 0);
  TR_OK(tr_spawn(rt, ponger, NULL, NULL, &po));
  TR_OK(tr_spawn(rt, pinger, (void *)(uintptr_t)po, NULL, NULL));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 2);
  uv_run(&loop, UV_RUN_DEFAULT); /* the host's own loop */
  ck_assert(actors_done && stop_called && host_closed);
  ck_assert_uint_gt(busy_rounds, 0);
  for (int i = 0; i < 3; i++)
    ck_assert_msg(sleep_ticks[i] >= 1, "no host tick during sleep %d", i);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  host_teardown();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stop: shutdown to host-spawned actors, youngest first                    */
/* ------------------------------------------------------------------------ */

static void blocker(void *arg) {
  tr_msg_t *m;
  started++;
  TR_OK(tr_defer(log_deferred, arg));
  tr_recv(&m, -1);
  ck_abort_msg("blocker survived shutdown");
}

static void blocker_with_child(void *arg) {
  TR_OK(tr_spawn(NULL, blocker, (void *)(intptr_t)'c', NULL, NULL));
  blocker(arg);
}

/* Traps exits; on the shutdown EXIT logs its letter (upper case) and
 * exits with shutdown. */
static void trapper(void *arg) {
  tr_msg_t *m;
  tr_reason_t r;
  tr_trap_exit(1);
  started++;
  TR_OK(tr_recv(&m, -1));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_EXIT);
  ck_assert_uint_eq(tr_msg_from(m), TR_PID_NONE);
  TR_OK(tr_msg_reason(m, &r));
  ck_assert_int_eq(r.kind, TR_REASON_SHUTDOWN);
  tr_msg_free(m);
  log_event((char)(intptr_t)arg);
  tr_exit(TR_REASON_SHUTDOWN);
}

static void stop_idle_cb(uv_timer_t *t) {
  TR_OK(tr_runtime_stop(rt));
  TR_OK(tr_runtime_stop(rt)); /* idempotent */
  uv_close((uv_handle_t *)t, NULL);
}

/* Runs the host loop: n actors start and block; then a host callback asks
 * for the stop. */
static void run_until_stopped(int n) {
  uv_timer_t t;
  run_until_started(n);
  ck_assert_int_eq(uv_timer_init(&loop, &t), 0);
  ck_assert_int_eq(uv_timer_start(&t, stop_idle_cb, 0, 0), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
}

START_TEST(test_stop_shuts_down_youngest_first) {
  /* One scheduler: the global youngest-first stop order. */
  host_setup();
  TR_OK(tr_runtime_attach(&rt, &loop, tr_test_cfg1()));
  /* Non-trapping: killed by shutdown in stop order; their cleanups log.
   * The actor-spawned child is not top level: killed once they are gone. */
  TR_OK(tr_spawn(rt, blocker_with_child, (void *)(intptr_t)'a', NULL, NULL));
  TR_OK(tr_spawn(rt, blocker, (void *)(intptr_t)'b', NULL, NULL));
  TR_OK(tr_spawn(rt, blocker, (void *)(intptr_t)'d', NULL, NULL));
  run_until_stopped(4);
  ck_assert_str_eq(order, "dbac");
  host_teardown();

  /* Trapping: each gets an EXIT shutdown, and they run youngest first. */
  host_setup();
  TR_OK(tr_runtime_attach(&rt, &loop, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, trapper, (void *)(intptr_t)'A', NULL, NULL));
  TR_OK(tr_spawn(rt, trapper, (void *)(intptr_t)'B', NULL, NULL));
  TR_OK(tr_spawn(rt, trapper, (void *)(intptr_t)'C', NULL, NULL));
  run_until_stopped(3);
  ck_assert_str_eq(order, "CBA");
  /* Stopped: no new top-level actors. */
  ck_assert_int_eq(tr_spawn(rt, trapper, NULL, NULL, NULL), TR_ESTOPPED);
  host_teardown();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stop timeout: what ignores shutdown is killed                            */
/* ------------------------------------------------------------------------ */

static uint64_t stop_at, killed_at;
static int warned;

static void count_warn(void *arg, tr_log_level_t level, const char *line) {
  (void)arg;
  if (level == TR_LOG_WARN && strstr(line, "stop timeout") != NULL) warned++;
}

static void note_killed(void *arg) {
  (void)arg;
  killed_at = uv_now(&loop);
  log_event('k');
}

static void stubborn(void *arg) {
  tr_msg_t *m;
  (void)arg;
  tr_trap_exit(1);
  TR_OK(tr_defer(note_killed, NULL));
  started++;
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_kind(m) == TR_MSG_EXIT) log_event('x'); /* and ignore it */
    tr_msg_free(m);
  }
}

static void stop_stubborn_cb(uv_timer_t *t) {
  stop_at = uv_now(&loop);
  TR_OK(tr_runtime_stop(rt));
  uv_close((uv_handle_t *)t, NULL);
}

START_TEST(test_stop_timeout_kills_stragglers) {
  tr_config_t cfg;
  uv_timer_t t;
  host_setup();
  tr_config_init(&cfg);
  cfg.schedulers = 1;
  cfg.stop_timeout_ms = 30;
  cfg.logger = count_warn;
  warned = 0;
  TR_OK(tr_runtime_attach(&rt, &loop, &cfg));
  TR_OK(tr_spawn(rt, stubborn, NULL, NULL, NULL));
  run_until_started(1);
  ck_assert_int_eq(uv_timer_init(&loop, &t), 0);
  ck_assert_int_eq(uv_timer_start(&t, stop_stubborn_cb, 0, 0), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_str_eq(order, "xk"); /* got shutdown, ignored it, was killed */
  ck_assert_int_eq(warned, 1);
  ck_assert_msg(killed_at >= stop_at + 30, "killed %llu ms after stop",
                (unsigned long long)(killed_at - stop_at));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  host_teardown();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Teardown without stop, API limits                                        */
/* ------------------------------------------------------------------------ */

static void stop_from_actor(void *arg) {
  (void)arg;
  TR_OK(tr_sleep(5));
  log_event('s');
  TR_OK(tr_runtime_stop(tr_runtime_current()));
  log_event('t'); /* stop returns at once; our own shutdown comes next */
  tr_yield();
  ck_abort_msg("stopper survived its own shutdown");
}

START_TEST(test_stop_from_inside_an_actor) {
  host_setup();
  TR_OK(tr_runtime_attach(&rt, &loop, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, blocker, (void *)(intptr_t)'b', NULL, NULL));
  TR_OK(tr_spawn(rt, stop_from_actor, NULL, NULL, NULL));
  uv_run(&loop, UV_RUN_DEFAULT); /* returns: the runtime closed its handles */
  ck_assert_str_eq(order, "stb");
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  host_teardown();
}
END_TEST

START_TEST(test_free_without_stop_closes_everything) {
  host_setup();
  TR_OK(tr_runtime_attach(&rt, &loop, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, blocker, (void *)(intptr_t)'a', NULL, NULL));
  TR_OK(tr_spawn(rt, blocker, (void *)(intptr_t)'b', NULL, NULL));
  run_until_started(2); /* they start and block */
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 2);
  host_teardown(); /* free kills them, runs cleanups, closes handles */
  ck_assert_uint_eq(strlen(order), 2);
}
END_TEST

static void noop(void *arg) { (void)arg; }

START_TEST(test_run_on_attached_is_enotsup) {
  tr_runtime_t *bad = (tr_runtime_t *)1;
  host_setup();
  ck_assert_int_eq(tr_runtime_attach(&bad, NULL, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_runtime_attach(NULL, &loop, NULL), TR_EINVAL);
  TR_OK(tr_runtime_attach(&rt, &loop, tr_test_cfg1()));
  ck_assert_int_eq(tr_runtime_run(rt), TR_ENOTSUP);
  TR_OK(tr_spawn(rt, noop, NULL, NULL, NULL));
  ck_assert_int_eq(tr_runtime_run(rt), TR_ENOTSUP);
  ck_assert_ptr_eq(tr_runtime_current(), rt);
  uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  host_teardown();
}
END_TEST

static Suite *suite_embed(void) {
  Suite *s = suite_create("embed");
  TCase *tc = tcase_create("embed");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_host_timer_fires_while_actors_run);
  tcase_add_test(tc, test_stop_shuts_down_youngest_first);
  tcase_add_test(tc, test_stop_timeout_kills_stragglers);
  tcase_add_test(tc, test_stop_from_inside_an_actor);
  tcase_add_test(tc, test_free_without_stop_closes_everything);
  tcase_add_test(tc, test_run_on_attached_is_enotsup);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(suite_embed)
