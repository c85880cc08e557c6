/* Check suite for the runtime (src/runtime.c, src/error.c): configuration,
 * new/free, run (0, TR_EDEADLK, twice), stop from actors and from outside,
 * error names and messages, exit reason names and formatting. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>

#include "testutil.h"

#define WAIT_MS 5000

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_config_defaults) {
  tr_config_t cfg;
  memset(&cfg, 0xa5, sizeof(cfg));
  tr_config_init(&cfg);
  ck_assert_uint_eq(cfg.size, sizeof(tr_config_t));
  /* The default: TR_SCHEDULERS if set (the suite's multi-scheduler runs),
   * else the online CPUs. */
  ck_assert_uint_eq(cfg.schedulers,
                    getenv("TR_SCHEDULERS") ? strtoul(getenv("TR_SCHEDULERS"), NULL, 10)
                                            : (unsigned long)sysconf(_SC_NPROCESSORS_ONLN));
  ck_assert_uint_eq(cfg.stack_size, TR_STACK_SIZE_DEFAULT);
  ck_assert_uint_eq(cfg.stack_cache, 1024);
  ck_assert_uint_eq(cfg.stop_timeout_ms, 5000);
  ck_assert_ptr_null((void *)cfg.logger);
  ck_assert_ptr_null(cfg.logger_arg);
  ck_assert_int_ne(cfg.crash_reports, 0);
  ck_assert_int_ne(cfg.catch_faults, 0);
  tr_config_init(NULL); /* accepted, no effect */
}
END_TEST

/* tr_runtime_new with cfg must fail with want, leaving *rt NULL. */
static void new_fails(const tr_config_t *cfg, int want) {
  tr_runtime_t *rt = (tr_runtime_t *)(uintptr_t)1;
  ck_assert_int_eq(tr_runtime_new(&rt, cfg), want);
  ck_assert_ptr_null(rt);
}

static void new_works(const tr_config_t *cfg) {
  tr_runtime_t *rt = NULL;
  TR_OK(tr_runtime_new(&rt, cfg));
  ck_assert_ptr_nonnull(rt);
  TR_OK(tr_runtime_free(rt));
}

START_TEST(test_invalid_configs) {
  tr_config_t cfg;
  tr_config_init(&cfg);
  cfg.stack_size = TR_STACK_SIZE_MIN - 1;
  new_fails(&cfg, TR_EINVAL);
  cfg.stack_size = TR_STACK_SIZE_MAX + 1;
  new_fails(&cfg, TR_EINVAL);
  cfg.stack_size = TR_STACK_SIZE_MIN;
  new_works(&cfg);
  cfg.stack_size = TR_STACK_SIZE_MAX;
  new_works(&cfg);
  cfg.stack_size = 0; /* the default */
  new_works(&cfg);

  tr_config_init(&cfg);
  cfg.schedulers = TR_SCHEDULERS_MAX + 1;
  new_fails(&cfg, TR_EINVAL);
  cfg.schedulers = 2;
  new_works(&cfg);
  cfg.schedulers = 0; /* the default */
  new_works(&cfg);

  tr_config_init(&cfg);
  cfg.size = 0;
  new_fails(&cfg, TR_EINVAL);
  cfg.size = sizeof(size_t);
  new_fails(&cfg, TR_EINVAL);
  cfg.size = sizeof(tr_config_t) + 8; /* from a newer header than ours */
  new_fails(&cfg, TR_EINVAL);

  ck_assert_int_eq(tr_runtime_new(NULL, NULL), TR_EINVAL);
  new_works(NULL);
}
END_TEST

/* A config from an older header (without catch_faults) gets the default. */
START_TEST(test_older_config_size) {
  tr_config_t cfg;
  tr_runtime_t *rt = NULL;
  tr_config_init(&cfg);
  cfg.size = offsetof(tr_config_t, catch_faults);
  cfg.catch_faults = 0; /* beyond size: must be ignored */
  TR_OK(tr_runtime_new(&rt, &cfg));
  TR_OK(tr_runtime_free(rt));
}
END_TEST

START_TEST(test_null_runtime_arguments) {
  ck_assert_int_eq(tr_runtime_free(NULL), 0);
  ck_assert_int_eq(tr_runtime_run(NULL), TR_EINVAL);
  ck_assert_int_eq(tr_runtime_stop(NULL), TR_EINVAL);
  ck_assert_ptr_null(tr_runtime_loop(NULL));
  ck_assert_uint_eq(tr_runtime_actor_count(NULL), 0);
  ck_assert_ptr_null(tr_runtime_current());
}
END_TEST

START_TEST(test_runtime_current_on_its_thread) {
  tr_runtime_t *rt = NULL;
  ck_assert_ptr_null(tr_runtime_current());
  TR_OK(tr_runtime_new(&rt, NULL));
  ck_assert_ptr_eq(tr_runtime_current(), rt);
  ck_assert_ptr_nonnull(tr_runtime_loop(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_ptr_null(tr_runtime_current());
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Run                                                                      */
/* ------------------------------------------------------------------------ */

START_TEST(test_run_without_actors) {
  tr_runtime_t *rt = NULL;
  TR_OK(tr_runtime_new(&rt, NULL));
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

static int ran;

static void wait_quit(void *arg) {
  tr_msg_t *m;
  char *buf;
  (void)arg;
  ran++;
  buf = malloc(100); /* freed by the cleanup, whatever ends us */
  ck_assert_ptr_nonnull(buf);
  TR_OK(tr_defer(free, buf));
  TR_OK(tr_recv(&m, -1));
  ck_assert(tr_msg_is_tag(m, "quit"));
  tr_msg_free(m);
}

START_TEST(test_run_deadlock) {
  /* One scheduler: plain state shared by its actors. */
  tr_runtime_t *rt = NULL;
  tr_pid_t p[3];
  void *quit;
  size_t qlen;
  ran = 0;
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  for (int i = 0; i < 3; i++) TR_OK(tr_spawn(rt, wait_quit, NULL, NULL, &p[i]));
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  ck_assert_int_eq(ran, 3);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 3);
  for (int i = 0; i < 3; i++) ck_assert(tr_is_alive(p[i]));
  /* Still deadlocked if nothing changed. */
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  /* A message from outside wakes one; the other two stay blocked. */
  TR_OK(tr_pack_tagged(&quit, &qlen, "quit", NULL));
  TR_OK(tr_runtime_send(rt, p[1], quit, qlen));
  ck_assert_int_eq(tr_runtime_run(rt), TR_EDEADLK);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 2);
  ck_assert(!tr_is_alive(p[1]));
  free(quit);
  /* Free cleans up the blocked ones (their cleanups run; ASan checks). */
  TR_OK(tr_runtime_free(rt));
}
END_TEST

static void sleeper(void *arg) {
  tr_msg_t *m;
  (void)arg;
  TR_OK(tr_sleep(10));
  ck_assert_int_eq(tr_recv(&m, 10), TR_ETIMEDOUT);
  ran++;
}

/* A pending timer is not a deadlock. */
START_TEST(test_run_waits_for_timers) {
  tr_runtime_t *rt = NULL;
  ran = 0;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, sleeper, NULL, NULL, NULL));
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  ck_assert_int_eq(ran, 1);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

static void count_run(void *arg) {
  (void)arg;
  ran++;
}

START_TEST(test_run_twice_with_new_actors) {
  /* One scheduler: plain state shared by its actors. */
  tr_runtime_t *rt = NULL;
  tr_pid_t a, b;
  ran = 0;
  TR_OK(tr_runtime_new(&rt, tr_test_cfg1()));
  TR_OK(tr_spawn(rt, count_run, NULL, NULL, &a));
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  ck_assert_int_eq(ran, 1);
  TR_OK(tr_spawn(rt, count_run, NULL, NULL, &b));
  TR_OK(tr_spawn(rt, count_run, NULL, NULL, NULL));
  ck_assert_uint_ne(a, b);
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  ck_assert_int_eq(ran, 3);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

static void reentrant(void *arg) {
  tr_runtime_t *rt = tr_runtime_current();
  (void)arg;
  ck_assert_ptr_nonnull(rt);
  ck_assert_int_eq(tr_runtime_run(rt), TR_EBUSY);
  ck_assert_int_eq(tr_runtime_free(rt), TR_EBUSY);
  ran++;
}

START_TEST(test_run_and_free_from_an_actor_are_busy) {
  ran = 0;
  tr_test_run(reentrant, NULL);
  ck_assert_int_eq(ran, 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stop                                                                     */
/* ------------------------------------------------------------------------ */

static void child_blocks(void *arg) {
  tr_msg_t *m;
  (void)arg;
  TR_OK(tr_defer(count_run, NULL));
  tr_recv(&m, -1);
}

static void stopper(void *arg) {
  (void)arg;
  TR_OK(tr_spawn(NULL, child_blocks, NULL, NULL, NULL)); /* not top level */
  TR_OK(tr_yield());
  TR_OK(tr_runtime_stop(tr_runtime_current()));
  TR_OK(tr_runtime_stop(tr_runtime_current())); /* idempotent */
  tr_yield(); /* our own shutdown lands here */
  ck_abort_msg("stopper survived stop");
}

START_TEST(test_stop_from_an_actor) {
  tr_runtime_t *rt = NULL;
  ran = 0;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, wait_quit, NULL, NULL, NULL));
  TR_OK(tr_spawn(rt, stopper, NULL, NULL, NULL));
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  ck_assert_int_eq(ran, 2); /* wait_quit ran; child_blocks' cleanup ran */
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  /* Stopped: new top-level actors are refused. */
  ck_assert_int_eq(tr_spawn(rt, count_run, NULL, NULL, NULL), TR_ESTOPPED);
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

static void stop_cb(uv_timer_t *t) {
  tr_runtime_t *rt = t->data;
  TR_OK(tr_runtime_stop(rt));
  uv_close((uv_handle_t *)t, NULL);
}

static void ignore_shutdown(void *arg) {
  tr_msg_t *m;
  (void)arg;
  tr_trap_exit(1);
  TR_OK(tr_defer(count_run, NULL));
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    tr_msg_free(m);
  }
}

START_TEST(test_stop_from_outside) {
  tr_runtime_t *rt = NULL;
  tr_config_t cfg;
  uv_timer_t t;
  ran = 0;
  tr_config_init(&cfg);
  cfg.schedulers = 1; /* a plain counter shared by the actors and cleanups */
  cfg.stop_timeout_ms = 20;
  TR_OK(tr_runtime_new(&rt, &cfg));
  TR_OK(tr_spawn(rt, wait_quit, NULL, NULL, NULL));
  TR_OK(tr_spawn(rt, ignore_shutdown, NULL, NULL, NULL));
  /* A host timer on the runtime's loop asks for the stop mid-run. */
  ck_assert_int_eq(uv_timer_init(tr_runtime_loop(rt), &t), 0);
  t.data = rt;
  ck_assert_int_eq(uv_timer_start(&t, stop_cb, 10, 0), 0);
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  ck_assert_int_eq(ran, 2); /* wait_quit started; the stubborn one's cleanup */
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

START_TEST(test_stop_before_run) {
  tr_runtime_t *rt = NULL;
  ran = 0;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, count_run, NULL, NULL, NULL));
  TR_OK(tr_spawn(rt, wait_quit, NULL, NULL, NULL));
  TR_OK(tr_runtime_stop(rt));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0); /* shut down unstarted */
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  ck_assert_int_eq(ran, 0);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors and reasons as text                                               */
/* ------------------------------------------------------------------------ */

static const struct {
  int code;
  const char *name, *msg;
} errs[] = {
#define ERR_ROW(name, val, msg) {TR_##name, "TR_" #name, msg},
    TR_ERRNO_MAP(ERR_ROW)
#undef ERR_ROW
};
#define NERRS (sizeof(errs) / sizeof(errs[0]))

START_TEST(test_strerror_and_names) {
  ck_assert_uint_ge(NERRS, 19);
  for (size_t i = 0; i < NERRS; i++) {
    ck_assert_int_lt(errs[i].code, 0);
    ck_assert_str_eq(tr_strerror(errs[i].code), errs[i].msg);
    ck_assert_str_eq(tr_err_name(errs[i].code), errs[i].name);
    for (size_t j = 0; j < i; j++) ck_assert_int_ne(errs[i].code, errs[j].code);
  }
  /* Codes that mirror errno are libuv's codes. */
  ck_assert_int_eq(TR_EINVAL, UV_EINVAL);
  ck_assert_int_eq(TR_ENOMEM, UV_ENOMEM);
  ck_assert_int_eq(TR_ETIMEDOUT, UV_ETIMEDOUT);
  ck_assert_int_eq(TR_EEXIST, UV_EEXIST);
  ck_assert_int_eq(TR_ENOENT, UV_ENOENT);
  ck_assert_int_eq(TR_EMSGSIZE, UV_EMSGSIZE);
  ck_assert_int_eq(TR_EBUSY, UV_EBUSY);
  ck_assert_int_eq(TR_ENOTSUP, UV_ENOTSUP);
  ck_assert_int_eq(TR_EBADMSG, -EBADMSG);
  ck_assert_int_eq(TR_EDEADLK, -EDEADLK);
  ck_assert_int_lt(TR_ENOTACTOR, TR__ERRNO_BASE);
  /* Anything else is libuv's. */
  ck_assert_str_eq(tr_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
  ck_assert_str_eq(tr_strerror(UV_ECONNREFUSED), "connection refused");
  ck_assert_str_eq(tr_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
  ck_assert_str_eq(tr_strerror(0), "success");
  ck_assert_str_eq(tr_err_name(0), "OK");
}
END_TEST

START_TEST(test_reason_names) {
  static const char *const names[TR_REASON__COUNT] = {
      "normal", "shutdown", "kill", "killed", "noproc", "error",
      "stack_overflow", "segv", "bus", "fpe", "ill", "abort", "trap",
      "mailbox_overflow"};
  ck_assert_int_eq(TR_REASON__COUNT, 14);
  for (int k = 0; k < TR_REASON__COUNT; k++) {
    ck_assert_str_eq(tr_reason_name((tr_reason_kind_t)k), names[k]);
    ck_assert_int_eq(tr_reason_is_crash((tr_reason_kind_t)k) != 0,
                     k >= TR_REASON_STACK_OVERFLOW && k <= TR_REASON_TRAP);
  }
  ck_assert_str_eq(tr_reason_name(TR_REASON__COUNT), "unknown");
  ck_assert_str_eq(tr_reason_name((tr_reason_kind_t)-1), "unknown");
  ck_assert_int_eq(tr_reason_is_crash(TR_REASON__COUNT), 0);
}
END_TEST

static tr_reason_t reason(tr_reason_kind_t kind, int code, uintptr_t addr,
                          uintptr_t pc, const char *text) {
  tr_reason_t r;
  memset(&r, 0, sizeof(r));
  r.kind = kind;
  r.code = code;
  r.addr = addr;
  r.pc = pc;
  snprintf(r.text, sizeof(r.text), "%s", text);
  return r;
}

static void expect_format(tr_reason_t r, const char *want) {
  char buf[256];
  int n = tr_reason_format(&r, buf, sizeof(buf));
  ck_assert_str_eq(buf, want);
  ck_assert_int_eq(n, (int)strlen(want));
}

START_TEST(test_reason_format) {
  char small[8];
  tr_reason_t r;
  expect_format(reason(TR_REASON_NORMAL, 0, 0, 0, ""), "normal");
  expect_format(reason(TR_REASON_SHUTDOWN, 0, 0, 0, "by host"),
                "shutdown by host");
  expect_format(reason(TR_REASON_KILLED, 0, 0, 0, ""), "killed");
  expect_format(reason(TR_REASON_NOPROC, 0, 0, 0, ""), "noproc");
  expect_format(reason(TR_REASON_ERROR, 42, 0, 0, "bad input"),
                "error code=42 bad input");
  expect_format(reason(TR_REASON_ERROR, -3, 0, 0, ""), "error code=-3");
  expect_format(reason(TR_REASON_STACK_OVERFLOW, 1, 0x7f00001000, 0x401234, ""),
                "stack_overflow addr=0x7f00001000 pc=0x401234");
  expect_format(reason(TR_REASON_STACK_OVERFLOW, 0, 0x1000, 0x2000,
                       "stack reserve exhausted at runtime entry"),
                "stack_overflow addr=0x1000 pc=0x2000 stack reserve exhausted "
                "at runtime entry");
  expect_format(reason(TR_REASON_SEGV, 1, 0x10, 0x4000, ""),
                "segv addr=0x10 pc=0x4000");
  expect_format(reason(TR_REASON_MAILBOX_OVERFLOW, 0, 0, 0, ""),
                "mailbox_overflow");
  /* Truncation: always NUL-terminated, returns the length it needed. */
  r = reason(TR_REASON_ERROR, 42, 0, 0, "bad input");
  memset(small, 'x', sizeof(small));
  ck_assert_int_eq(tr_reason_format(&r, small, sizeof(small)), 23);
  ck_assert_str_eq(small, "error c");
  ck_assert_int_eq(tr_reason_format(&r, NULL, 0), 23);
  small[0] = 'x';
  ck_assert_int_eq(tr_reason_format(&r, small, 1), 23);
  ck_assert_int_eq(small[0], '\0');
}
END_TEST

/* ------------------------------------------------------------------------ */
/* catch_faults = 0: no handlers, a crash is the process's                  */
/* ------------------------------------------------------------------------ */

static void *volatile null_ptr;

__attribute__((noinline, no_sanitize("address", "undefined"))) static void
null_read(void *arg) {
  (void)arg;
  (void)*(volatile int *)null_ptr;
}

START_TEST(test_catch_faults_off) {
  tr_config_t cfg;
  tr_runtime_t *rt = NULL;
  if (tr_test_nofork()) return; /* it kills its process */
  tr_config_init(&cfg);
  cfg.catch_faults = 0;
  TR_OK(tr_runtime_new(&rt, &cfg));
  TR_OK(tr_spawn(rt, null_read, NULL, NULL, NULL));
  tr_runtime_run(rt);
  ck_abort_msg("survived a crash without fault handlers");
}
END_TEST

static Suite *suite_runtime(void) {
  Suite *s = suite_create("runtime");
  TCase *tc = tcase_create("config");
  tcase_add_test(tc, test_config_defaults);
  tcase_add_test(tc, test_invalid_configs);
  tcase_add_test(tc, test_older_config_size);
  tcase_add_test(tc, test_null_runtime_arguments);
  tcase_add_test(tc, test_runtime_current_on_its_thread);
  suite_add_tcase(s, tc);
  tc = tcase_create("run");
  tcase_add_test(tc, test_run_without_actors);
  tcase_add_test(tc, test_run_deadlock);
  tcase_add_test(tc, test_run_waits_for_timers);
  tcase_add_test(tc, test_run_twice_with_new_actors);
  tcase_add_test(tc, test_run_and_free_from_an_actor_are_busy);
  tcase_add_test(tc, test_stop_from_an_actor);
  tcase_add_test(tc, test_stop_from_outside);
  tcase_add_test(tc, test_stop_before_run);
  tcase_add_test_raise_signal(tc, test_catch_faults_off, SIGSEGV);
  suite_add_tcase(s, tc);
  tc = tcase_create("text");
  tcase_add_test(tc, test_strerror_and_names);
  tcase_add_test(tc, test_reason_names);
  tcase_add_test(tc, test_reason_format);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(suite_runtime)
