/* Check suite for crash capture (src/fault.c): every native fault kind
 * inside an actor becomes that actor's exit reason (kind, fault address,
 * PC) and the runtime carries on; faults that are not the actor's (outside
 * any actor, inside runtime code, inside libc code that may hold locks, in a
 * neighbour's stack slot, an external SIGABRT) kill the process with the
 * original signal; torture runs leak nothing; the crash report and the
 * stack reserve check. */
#undef NDEBUG /* failed assert() is one of the crash kinds */
#include <assert.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define TR_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TR_TEST_ASAN 1
#endif
#endif

/* Crash helpers must really fault: no sanitizer check may get there first,
 * and the compiler must not see (and rewrite) the undefined behaviour. */
#define CRASHER __attribute__((noinline, no_sanitize("address", "undefined")))

#define WAIT_MS 5000
#define STACK_64K ((size_t)64 * 1024)

/* ------------------------------------------------------------------------ */
/* The crashes                                                              */
/* ------------------------------------------------------------------------ */

typedef enum {
  C_OVERFLOW,
  C_NULL_READ,
  C_NULL_WRITE,
  C_FIELD_WRITE, /* a write through a NULL struct pointer, at offset 0x40 */
  C_RO_PAGE,
  C_RO_LITERAL,
  C_DIV0,
  C_BUS,
  C_TRAP,
  C_ABORT,
  C_ASSERT,
  C_STRLEN,
  C__COUNT
} crash_t;

static void *volatile null_ptr;     /* NULL the compiler cannot see */
static volatile int recurse_limit = INT32_MAX;
static char *ro_page;               /* a PROT_READ page */
static char *bus_map;               /* 2 pages of a file truncated to 0 */
static const char literal[] = "a string literal in .rodata";
static volatile uintptr_t entry_sp; /* a local's address at actor entry */
/* Results go here, so that no pure call (strlen) or unused division is
 * optimised away. */
static volatile intptr_t sink;

CRASHER static int recurse(int n) {
  volatile char buf[512];
  buf[0] = (char)n;
  buf[sizeof(buf) - 1] = (char)n;
  if (n >= recurse_limit) return 0;
  return recurse(n + 1) + buf[0] + buf[sizeof(buf) - 1]; /* not a tail call */
}

CRASHER static int null_read(void) { return *(volatile int *)null_ptr; }

CRASHER static void null_write(void) { *(volatile int *)null_ptr = 1; }

struct wide {
  char pad[0x40];
  int field;
};
CRASHER static void field_write(void) {
  ((volatile struct wide *)null_ptr)->field = 1;
}

CRASHER static void ro_write(char *p) { *(volatile char *)p = 'x'; }

CRASHER static int div0(void) {
  volatile int a = 1, b = 0;
  sink = a / b;
  return (int)sink;
}

CRASHER static int bus_read(void) { return *(volatile char *)bus_map; }

CRASHER static void trap(void) { __builtin_trap(); }

CRASHER static size_t strlen_null(void) {
  sink = (intptr_t)strlen(*(const char *volatile *)&null_ptr);
  return (size_t)sink;
}

CRASHER static void failed_assert(void) {
  volatile int zero = 0;
  assert(zero == 1);
}

static int crash(crash_t kind) {
  switch (kind) {
  case C_OVERFLOW: return recurse(0);
  case C_NULL_READ: return null_read();
  case C_NULL_WRITE: null_write(); break;
  case C_FIELD_WRITE: field_write(); break;
  case C_RO_PAGE: ro_write(ro_page); break;
  case C_RO_LITERAL: ro_write((char *)(uintptr_t)literal); break;
  case C_DIV0: return div0();
  case C_BUS: return bus_read();
  case C_TRAP: trap(); break;
  case C_ABORT: abort();
  case C_ASSERT: failed_assert(); break;
  case C_STRLEN: return (int)strlen_null();
  default: break;
  }
  return 0;
}

static void noop(void *arg) { (void)arg; }

static void crasher(void *arg) {
  volatile int here = 0;
  entry_sp = (uintptr_t)&here;
  sink = crash((crash_t)(intptr_t)arg);
  ck_abort_msg("crash kind %d did not crash", (int)(intptr_t)arg);
}

/* Where the function containing pc starts, per the symbol table. */
static int pc_in_fn(uintptr_t pc, const void *fn) {
  return pc >= (uintptr_t)fn && pc < (uintptr_t)fn + 4096;
}

static int pc_in_lib(uintptr_t pc, const char *lib) {
  Dl_info di;
  return dladdr((void *)pc, &di) != 0 && di.dli_fname != NULL &&
         strstr(di.dli_fname, lib) != NULL;
}

/* ------------------------------------------------------------------------ */
/* Fixtures: a read-only page and a truncated file mapping                  */
/* ------------------------------------------------------------------------ */

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static void maps_setup(void) {
  char path[] = "/tmp/troupe-bus-XXXXXX";
  int fd;
  ro_page = mmap(NULL, page_size(), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(ro_page, MAP_FAILED);
  ro_page[0] = 'r';
  ck_assert_int_eq(mprotect(ro_page, page_size(), PROT_READ), 0);
  fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  unlink(path);
  ck_assert_int_eq(ftruncate(fd, (off_t)(2 * page_size())), 0);
  bus_map = mmap(NULL, 2 * page_size(), PROT_READ | PROT_WRITE, MAP_SHARED,
                 fd, 0);
  ck_assert_ptr_ne(bus_map, MAP_FAILED);
  ck_assert_int_eq(ftruncate(fd, 0), 0); /* now every page is past EOF */
  close(fd);
}

static void maps_teardown(void) {
  if (ro_page != NULL) munmap(ro_page, page_size());
  if (bus_map != NULL) munmap(bus_map, 2 * page_size());
  ro_page = bus_map = NULL;
}

/* ------------------------------------------------------------------------ */
/* Echo: proves the runtime still runs actors and delivers messages         */
/* ------------------------------------------------------------------------ */

static void echo(void *arg) {
  tr_msg_t *m;
  (void)arg;
  for (;;) {
    TR_OK(tr_recv(&m, -1));
    if (tr_msg_is_tag(m, "quit")) {
      tr_msg_free(m);
      return;
    }
    TR_OK(tr_send_tagged(tr_msg_from(m), "pong", NULL));
    tr_msg_free(m);
  }
}

static void ping(tr_pid_t p) {
  tr_msg_t *m = NULL;
  int err;
  TR_OK(tr_send_tagged(p, "ping", NULL));
  err = tr_recv_tag(&m, "pong", WAIT_MS);
  ck_assert_msg(err == 0, "no pong: %s", tr_err_name(err));
  ck_assert_uint_eq(tr_msg_from(m), p);
  tr_msg_free(m);
}

/* Spawns a fresh echo, pings it and lets it go. */
static void fresh_echo_works(void) {
  tr_pid_t e;
  TR_OK(tr_spawn(NULL, echo, NULL, NULL, &e));
  ping(e);
  TR_OK(tr_send_tagged(e, "quit", NULL));
}

/* Spawns fn(arg) monitored (stack_size 0: default), returns its DOWN
 * reason. */
static tr_reason_t crash_and_wait(tr_actor_fn fn, void *arg,
                                  size_t stack_size) {
  tr_spawn_opts_t o;
  tr_ref_t ref = 0;
  tr_pid_t p;
  tr_msg_t *m = NULL;
  tr_reason_t r;
  int err;
  tr_spawn_opts_init(&o);
  o.stack_size = stack_size;
  o.flags = TR_SPAWN_MONITOR;
  o.monitor_ref = &ref;
  TR_OK(tr_spawn(NULL, fn, arg, &o, &p));
  err = tr_recv(&m, WAIT_MS);
  ck_assert_msg(err == 0, "no DOWN: %s", tr_err_name(err));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  ck_assert_uint_eq(tr_msg_from(m), p);
  TR_OK(tr_msg_reason(m, &r));
  tr_msg_free(m);
  ck_assert(!tr_is_alive(p));
  return r;
}

/* ------------------------------------------------------------------------ */
/* One crash per test, then the runtime keeps going                         */
/* ------------------------------------------------------------------------ */

static struct {
  crash_t kind;
  size_t stack;
  tr_reason_t reason;
  uintptr_t ro_page, bus_map; /* where the fixtures were mapped */
  int done;
} one;

static void one_crash_root(void *arg) {
  tr_pid_t bystander;
  (void)arg;
  TR_OK(tr_spawn(NULL, echo, NULL, NULL, &bystander));
  ping(bystander);
  one.reason = crash_and_wait(crasher, (void *)(intptr_t)one.kind, one.stack);
  ping(bystander); /* an actor that was there before still works */
  fresh_echo_works();
  TR_OK(tr_send_tagged(bystander, "quit", NULL));
  one.done = 1;
}

/* Runs one crash of `kind` in a fresh runtime and returns its reason. */
static tr_reason_t run_one(crash_t kind, size_t stack) {
  tr_runtime_t *rt = NULL;
  memset(&one, 0, sizeof(one));
  one.kind = kind;
  one.stack = stack;
  maps_setup();
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, one_crash_root, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 0);
  TR_OK(tr_runtime_free(rt));
  one.ro_page = (uintptr_t)ro_page;
  one.bus_map = (uintptr_t)bus_map;
  maps_teardown();
  ck_assert_msg(one.done, "root actor did not finish");
  return one.reason;
}

static void expect_kind(const tr_reason_t *r, tr_reason_kind_t kind) {
  char line[256];
  tr_reason_format(r, line, sizeof(line));
  ck_assert_msg(r->kind == kind, "reason %s, expected %s", line,
                tr_reason_name(kind));
  ck_assert(tr_reason_is_crash(r->kind));
  ck_assert_uint_ne(r->pc, 0);
}

START_TEST(test_stack_overflow) {
  tr_reason_t r = run_one(C_OVERFLOW, STACK_64K);
  uintptr_t depth = entry_sp - r.addr;
  expect_kind(&r, TR_REASON_STACK_OVERFLOW);
  /* MADV_GUARD_INSTALL guards fault with MAPERR, mprotect ones ACCERR. */
  ck_assert(r.code == SEGV_MAPERR || r.code == SEGV_ACCERR);
  /* The fault is just below the lowest usable byte of the 64 KiB stack. */
  ck_assert_msg(depth > STACK_64K - 4096 && depth <= STACK_64K + 65536,
                "overflow address %#lx is %#lx below the entry frame",
                (unsigned long)r.addr, (unsigned long)depth);
  ck_assert(pc_in_fn(r.pc, (const void *)recurse));
}
END_TEST

START_TEST(test_stack_overflow_default_stack) {
  tr_reason_t r = run_one(C_OVERFLOW, 0);
  uintptr_t depth = entry_sp - r.addr;
  expect_kind(&r, TR_REASON_STACK_OVERFLOW);
  ck_assert(depth > TR_STACK_SIZE_DEFAULT - 4096 &&
            depth <= TR_STACK_SIZE_DEFAULT + 65536);
}
END_TEST

START_TEST(test_null_read) {
  tr_reason_t r = run_one(C_NULL_READ, 0);
  expect_kind(&r, TR_REASON_SEGV);
  ck_assert_uint_eq(r.addr, 0);
  ck_assert_int_eq(r.code, SEGV_MAPERR);
  ck_assert(pc_in_fn(r.pc, (const void *)null_read));
}
END_TEST

START_TEST(test_null_write) {
  tr_reason_t r = run_one(C_NULL_WRITE, 0);
  expect_kind(&r, TR_REASON_SEGV);
  ck_assert_uint_eq(r.addr, 0);
  ck_assert_int_eq(r.code, SEGV_MAPERR);
  ck_assert(pc_in_fn(r.pc, (const void *)null_write));
  r = run_one(C_FIELD_WRITE, 0);
  expect_kind(&r, TR_REASON_SEGV);
  ck_assert_uint_eq(r.addr, offsetof(struct wide, field));
  ck_assert(pc_in_fn(r.pc, (const void *)field_write));
}
END_TEST

START_TEST(test_write_read_only) {
  tr_reason_t r = run_one(C_RO_PAGE, 0);
  expect_kind(&r, TR_REASON_SEGV);
  ck_assert_int_eq(r.code, SEGV_ACCERR);
  ck_assert_uint_eq(r.addr, one.ro_page);
  ck_assert(pc_in_fn(r.pc, (const void *)ro_write));
  r = run_one(C_RO_LITERAL, 0);
  expect_kind(&r, TR_REASON_SEGV);
  ck_assert_int_eq(r.code, SEGV_ACCERR);
  ck_assert_uint_eq(r.addr, (uintptr_t)literal);
}
END_TEST

START_TEST(test_divide_by_zero) {
  tr_reason_t r = run_one(C_DIV0, 0);
  expect_kind(&r, TR_REASON_FPE);
  ck_assert_int_eq(r.code, FPE_INTDIV);
  ck_assert(pc_in_fn(r.pc, (const void *)div0));
#if defined(__x86_64__)
  ck_assert_uint_eq(r.addr, r.pc); /* si_addr: the faulting instruction */
#endif
}
END_TEST

START_TEST(test_bus_truncated_mapping) {
  tr_reason_t r = run_one(C_BUS, 0);
  expect_kind(&r, TR_REASON_BUS);
  ck_assert_int_eq(r.code, BUS_ADRERR);
  ck_assert_uint_eq(r.addr, one.bus_map);
  ck_assert(pc_in_fn(r.pc, (const void *)bus_read));
}
END_TEST

START_TEST(test_builtin_trap) {
  tr_reason_t r = run_one(C_TRAP, 0);
#if defined(__aarch64__)
  expect_kind(&r, TR_REASON_TRAP);
#else
  expect_kind(&r, TR_REASON_ILL);
  ck_assert_int_eq(r.code, ILL_ILLOPN);
  ck_assert_uint_eq(r.addr, r.pc);
#endif
  ck_assert(pc_in_fn(r.pc, (const void *)trap));
}
END_TEST

START_TEST(test_abort) {
  tr_reason_t r = run_one(C_ABORT, 0);
  expect_kind(&r, TR_REASON_ABORT);
  ck_assert_uint_eq(r.addr, 0);
  ck_assert_int_eq(r.code, SI_TKILL);
}
END_TEST

START_TEST(test_failed_assert) {
  tr_reason_t r = run_one(C_ASSERT, 0);
  expect_kind(&r, TR_REASON_ABORT);
  ck_assert_uint_eq(r.addr, 0);
}
END_TEST

/* strlen is a pure libc function: a fault in it, called by actor code, is
 * the caller's and recoverable. */
START_TEST(test_strlen_null_is_recoverable) {
  tr_reason_t r = run_one(C_STRLEN, 0);
  expect_kind(&r, TR_REASON_SEGV);
  ck_assert_uint_eq(r.addr, 0);
  ck_assert_msg(pc_in_lib(r.pc, "libc.so"), "pc %#lx not in libc",
                (unsigned long)r.pc);
}
END_TEST

/* A fault in a tr_recv_match predicate is the actor's own. */
CRASHER static int bad_predicate(const tr_msg_t *m, void *arg) {
  (void)m;
  (void)arg;
  return *(volatile int *)null_ptr;
}

static void predicate_crasher(void *arg) {
  tr_msg_t *m = NULL;
  (void)arg;
  TR_OK(tr_send_tagged(tr_self(), "x", NULL));
  tr_recv_match(&m, bad_predicate, NULL, -1);
  ck_abort_msg("predicate did not crash");
}

static void predicate_root(void *arg) {
  (void)arg;
  one.reason = crash_and_wait(predicate_crasher, NULL, 0);
  fresh_echo_works();
  one.done = 1;
}

START_TEST(test_fault_in_recv_predicate_is_the_actors) {
  memset(&one, 0, sizeof(one));
  tr_test_run(predicate_root, NULL);
  ck_assert(one.done);
  expect_kind(&one.reason, TR_REASON_SEGV);
  ck_assert_uint_eq(one.reason.addr, 0);
  ck_assert(pc_in_fn(one.reason.pc, (const void *)bad_predicate));
}
END_TEST

/* Every kind in turn in one runtime, with one bystander throughout. */
static void all_kinds_root(void *arg) {
  static const struct {
    crash_t c;
    tr_reason_kind_t k;
  } kinds[] = {{C_OVERFLOW, TR_REASON_STACK_OVERFLOW},
               {C_NULL_READ, TR_REASON_SEGV},
               {C_NULL_WRITE, TR_REASON_SEGV},
               {C_RO_PAGE, TR_REASON_SEGV},
               {C_DIV0, TR_REASON_FPE},
               {C_BUS, TR_REASON_BUS},
#if defined(__aarch64__)
               {C_TRAP, TR_REASON_TRAP},
#else
               {C_TRAP, TR_REASON_ILL},
#endif
               {C_ABORT, TR_REASON_ABORT},
               {C_ASSERT, TR_REASON_ABORT},
               {C_STRLEN, TR_REASON_SEGV}};
  tr_pid_t bystander;
  (void)arg;
  TR_OK(tr_spawn(NULL, echo, NULL, NULL, &bystander));
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    tr_reason_t r =
        crash_and_wait(crasher, (void *)(intptr_t)kinds[i].c, STACK_64K);
    expect_kind(&r, kinds[i].k);
    ping(bystander);
  }
  TR_OK(tr_send_tagged(bystander, "quit", NULL));
  one.done = 1;
}

START_TEST(test_all_kinds_in_one_runtime) {
  memset(&one, 0, sizeof(one));
  maps_setup();
  tr_test_run(all_kinds_root, NULL);
  maps_teardown();
  ck_assert(one.done);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Signal masks: async signals blocked in actors, faults never              */
/* ------------------------------------------------------------------------ */

static sigset_t mask_before_crash, mask_after_crash;

static void record_mask(void *arg) {
  pthread_sigmask(SIG_SETMASK, NULL, (sigset_t *)arg);
}

static void mask_root(void *arg) {
  tr_pid_t p;
  tr_ref_t r;
  tr_msg_t *m;
  (void)arg;
  TR_OK(tr_spawn_monitor(record_mask, &mask_before_crash, &p, &r));
  TR_OK(tr_recv(&m, WAIT_MS));
  tr_msg_free(m);
  /* The fault handler runs with everything blocked and siglongjmps without
   * restoring the mask: the runtime must restore it. */
  crash_and_wait(crasher, (void *)(intptr_t)C_NULL_READ, 0);
  crash_and_wait(crasher, (void *)(intptr_t)C_ABORT, 0);
  TR_OK(tr_spawn_monitor(record_mask, &mask_after_crash, &p, &r));
  TR_OK(tr_recv(&m, WAIT_MS));
  tr_msg_free(m);
  one.done = 1;
}

START_TEST(test_signal_masks) {
  static const int async_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGCHLD,
                                   SIGALRM, SIGPIPE};
  static const int fault_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
  sigset_t host_before, host_after;
  pthread_sigmask(SIG_SETMASK, NULL, &host_before);
  memset(&one, 0, sizeof(one));
  tr_test_run(mask_root, NULL);
  ck_assert(one.done);
  pthread_sigmask(SIG_SETMASK, NULL, &host_after);
  for (size_t i = 0; i < sizeof(async_sigs) / sizeof(async_sigs[0]); i++) {
    ck_assert_int_eq(sigismember(&mask_before_crash, async_sigs[i]), 1);
    ck_assert_int_eq(sigismember(&mask_after_crash, async_sigs[i]), 1);
  }
  for (size_t i = 0; i < sizeof(fault_sigs) / sizeof(fault_sigs[0]); i++) {
    ck_assert_int_eq(sigismember(&mask_before_crash, fault_sigs[i]), 0);
    ck_assert_int_eq(sigismember(&mask_after_crash, fault_sigs[i]), 0);
  }
  /* The host thread gets its own mask back. */
  for (int sig = 1; sig < SIGRTMIN; sig++)
    ck_assert_int_eq(sigismember(&host_after, sig),
                     sigismember(&host_before, sig));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Crash report                                                             */
/* ------------------------------------------------------------------------ */

static char log_lines[8][1024];
static int log_n;
static tr_log_level_t log_level;

static void capture_log(void *arg, tr_log_level_t level, const char *line) {
  ck_assert_ptr_eq(arg, (void *)log_lines);
  if (log_n < 8) snprintf(log_lines[log_n], sizeof(log_lines[0]), "%s", line);
  log_n++;
  log_level = level;
}

static tr_pid_t reported_pid;

static void exit_with_error(void *arg) {
  (void)arg;
  tr_exit_error(3, "not a crash");
}

static void report_root(void *arg) {
  tr_spawn_opts_t o;
  tr_ref_t ref;
  tr_msg_t *m;
  (void)arg;
  tr_spawn_opts_init(&o);
  o.name = "crashy";
  o.stack_size = STACK_64K;
  o.flags = TR_SPAWN_MONITOR;
  o.monitor_ref = &ref;
  TR_OK(tr_spawn(NULL, crasher, (void *)(intptr_t)C_OVERFLOW, &o,
                 &reported_pid));
  TR_OK(tr_recv(&m, WAIT_MS));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  tr_msg_free(m);
  /* A normal exit and an error exit are not crashes: no report. */
  ck_assert_uint_eq(crash_and_wait(noop, NULL, 0).kind, TR_REASON_NORMAL);
  ck_assert_uint_eq(crash_and_wait(exit_with_error, NULL, 0).kind,
                    TR_REASON_ERROR);
}

static void noisy_root(void *arg) {
  (void)arg;
  crash_and_wait(noop, NULL, 0);
  crash_and_wait(crasher, (void *)(intptr_t)C_NULL_READ, 0);
}

START_TEST(test_crash_report_through_logger) {
  tr_runtime_t *rt = NULL;
  tr_config_t cfg;
  char want[64];
  tr_config_init(&cfg);
  cfg.logger = capture_log;
  cfg.logger_arg = log_lines;
  log_n = 0;
  TR_OK(tr_runtime_new(&rt, &cfg));
  TR_OK(tr_spawn(rt, report_root, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(log_n, 1);
  ck_assert_int_eq(log_level, TR_LOG_ERROR);
  snprintf(want, sizeof(want), "pid=%#llx ", (unsigned long long)reported_pid);
  ck_assert_msg(strstr(log_lines[0], want) != NULL, "%s", log_lines[0]);
  ck_assert_msg(strstr(log_lines[0], "name=crashy") != NULL, "%s", log_lines[0]);
  ck_assert_msg(strstr(log_lines[0], "reason=stack_overflow") != NULL, "%s",
                log_lines[0]);
  ck_assert_msg(strstr(log_lines[0], "addr=0x") != NULL, "%s", log_lines[0]);
  ck_assert_msg(strstr(log_lines[0], "pc=0x") != NULL, "%s", log_lines[0]);
  ck_assert_msg(strchr(log_lines[0], '\n') == NULL, "one line");
  /* crash_reports = 0 silences them. */
  cfg.crash_reports = 0;
  log_n = 0;
  TR_OK(tr_runtime_new(&rt, &cfg));
  TR_OK(tr_spawn(rt, noisy_root, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(log_n, 0);
  /* With reports on, a NULL read is reported as segv with addr=0. */
  cfg.crash_reports = 1;
  TR_OK(tr_runtime_new(&rt, &cfg));
  TR_OK(tr_spawn(rt, noisy_root, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  TR_OK(tr_runtime_free(rt));
  ck_assert_int_eq(log_n, 1);
  ck_assert_msg(strstr(log_lines[0], "reason=segv") != NULL, "%s", log_lines[0]);
  ck_assert_msg(strstr(log_lines[0], "name=-") != NULL, "%s", log_lines[0]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The stack reserve at runtime entry points                                */
/* ------------------------------------------------------------------------ */

typedef enum { E_SEND, E_RECV, E_SPAWN } entry_t;
#define RESERVE_CALL_AT ((size_t)12 * 1024) /* reserve: min(size/4, 16K) */

static volatile size_t left_at_call;

static int call_entry(entry_t e) {
  tr_msg_t *m = NULL;
  switch (e) {
  case E_SEND: return tr_send(tr_self(), "\x90", 1); /* [] */
  case E_RECV: return tr_recv(&m, 0);
  case E_SPAWN: return tr_spawn(NULL, echo, NULL, NULL, NULL);
  }
  return 0;
}

/* Recurses until less than RESERVE_CALL_AT of the 64 KiB stack is left,
 * then calls into the runtime. */
CRASHER static int dig(entry_t e, int n) {
  volatile char buf[256];
  size_t used = entry_sp - (uintptr_t)buf;
  buf[0] = (char)n;
  if (STACK_64K - used < RESERVE_CALL_AT) {
    left_at_call = STACK_64K - used;
    call_entry(e);
    return -1; /* the runtime let us through */
  }
  return dig(e, n + 1) + buf[0];
}

static void digger(void *arg) {
  volatile int here = 0;
  entry_sp = (uintptr_t)&here;
  dig((entry_t)(intptr_t)arg, 0);
  ck_abort_msg("entry point %d did not enforce the reserve",
               (int)(intptr_t)arg);
}

static tr_reason_t reserve_reasons[3];
static void reserve_root(void *arg) {
  (void)arg;
  for (int e = E_SEND; e <= E_SPAWN; e++) {
    reserve_reasons[e] = crash_and_wait(digger, (void *)(intptr_t)e, STACK_64K);
    fresh_echo_works();
  }
  one.done = 1;
}

START_TEST(test_reserve_check_at_entry_points) {
  memset(&one, 0, sizeof(one));
  tr_test_run(reserve_root, NULL);
  ck_assert(one.done);
  ck_assert_uint_lt(left_at_call, RESERVE_CALL_AT);
  for (int e = E_SEND; e <= E_SPAWN; e++) {
    tr_reason_t *r = &reserve_reasons[e];
    ck_assert_msg(r->kind == TR_REASON_STACK_OVERFLOW, "entry %d: %s", e,
                  tr_reason_name(r->kind));
    ck_assert_msg(strstr(r->text, "reserve") != NULL, "entry %d: text '%s'", e,
                  r->text);
  }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Not ours: the process dies with the original signal                      */
/* ------------------------------------------------------------------------ */

static void run_actor(tr_actor_fn fn) {
  tr_runtime_t *rt = NULL;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, fn, NULL, NULL, NULL));
  tr_runtime_run(rt);
  tr_runtime_free(rt);
}

#ifndef TR_TEST_ASAN /* ASan's own free() reports the bad pointer instead */
static void fault_in_free(void *arg) {
  (void)arg;
  /* glibc's free reads the chunk header at p - 8: page 0, SEGV in libc. */
  free(*(void *volatile *)&(void *){(void *)0x1000});
}
START_TEST(test_fault_in_free_is_fatal) {
  run_actor(fault_in_free);
  ck_abort_msg("survived a fault inside free()");
}
END_TEST
#endif

static void fault_in_stdio(void *arg) {
  (void)arg;
  /* fputs takes the stream's lock through the bad FILE: SEGV in libc. */
  fputs("x", *(FILE *volatile *)&(FILE *){(FILE *)0x1000});
}
START_TEST(test_fault_in_locking_libc_is_fatal) {
  run_actor(fault_in_stdio);
  ck_abort_msg("survived a fault inside fputs()");
}
END_TEST

static void fault_in_runtime(void *arg) {
  (void)arg;
  tr_send(tr_self(), *(void *volatile *)&(void *){(void *)0x1000}, 16);
}
START_TEST(test_fault_in_runtime_is_fatal) {
  run_actor(fault_in_runtime);
  ck_abort_msg("survived a fault inside tr_send");
}
END_TEST

static void cleanup_faults(void *arg) {
  (void)arg;
  null_read();
}
static void defer_fault(void *arg) {
  (void)arg;
  TR_OK(tr_defer(cleanup_faults, NULL));
}
START_TEST(test_fault_in_cleanup_is_fatal) {
  run_actor(defer_fault);
  ck_abort_msg("survived a fault in a cleanup callback");
}
END_TEST

/* The neighbour writes into our guard page: the address is in another
 * actor's slot, which is never the writer's to recover from. */
static volatile uintptr_t victim_entry;
static void victim(void *arg) {
  volatile int here = 0;
  tr_msg_t *m;
  (void)arg;
  victim_entry = (uintptr_t)&here;
  tr_recv(&m, -1);
}
CRASHER static void poke(uintptr_t addr) { *(volatile char *)addr = 1; }
static void neighbour(void *arg) {
  tr_spawn_opts_t o;
  (void)arg;
  tr_spawn_opts_init(&o);
  o.stack_size = STACK_64K;
  o.placement = TR_PLACE_LOCAL; /* a neighbour in the same stack pool */
  TR_OK(tr_spawn(NULL, victim, NULL, &o, NULL));
  TR_OK(tr_yield());
  ck_assert_uint_ne(victim_entry, 0);
  poke(victim_entry - STACK_64K - 256); /* in the victim's guard */
}
START_TEST(test_fault_in_neighbour_slot_is_fatal) {
  run_actor(neighbour);
  ck_abort_msg("survived a write into a neighbour's guard");
}
END_TEST

START_TEST(test_fault_outside_actor_before_run) {
  tr_runtime_t *rt = NULL;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, noop, NULL, NULL, NULL));
  null_read();
  ck_abort_msg("survived a fault in host code");
}
END_TEST

START_TEST(test_fault_outside_actor_after_run) {
  tr_runtime_t *rt = NULL;
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, noop, NULL, NULL, NULL));
  TR_OK(tr_runtime_run(rt));
  null_write();
  ck_abort_msg("survived a fault in host code");
}
END_TEST

static void self_kill_abrt(void *arg) {
  (void)arg;
  kill(getpid(), SIGABRT); /* SI_USER: not a fault of this actor */
}
START_TEST(test_external_abrt_kill_is_not_an_actor_exit) {
  run_actor(self_kill_abrt);
  ck_abort_msg("survived an external SIGABRT");
}
END_TEST

static void self_sigqueue_abrt(void *arg) {
  union sigval v = {0};
  (void)arg;
  sigqueue(getpid(), SIGABRT, v); /* SI_QUEUE */
}
START_TEST(test_external_abrt_sigqueue_is_not_an_actor_exit) {
  run_actor(self_sigqueue_abrt);
  ck_abort_msg("survived an external SIGABRT");
}
END_TEST

static void abrt_from_other_process(void *arg) {
  pid_t me = getpid(), child;
  (void)arg;
  child = fork();
  if (child == 0) {
    kill(me, SIGABRT);
    _exit(0);
  }
  ck_assert_int_gt(child, 0);
  for (;;) { /* spin inside actor code until the signal lands */
  }
}
START_TEST(test_external_abrt_from_other_process) {
  run_actor(abrt_from_other_process);
  ck_abort_msg("survived an external SIGABRT");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Torture                                                                  */
/* ------------------------------------------------------------------------ */

enum { TORTURE_N = 10000 };

typedef struct {
  long rss_kib;
  int vmas, fds;
  size_t heap; /* bytes malloc'd and not freed */
} usage_t;

#ifdef TR_TEST_ASAN
/* From <sanitizer/allocator_interface.h> (not installed by GCC). */
size_t __sanitizer_get_current_allocated_bytes(void);

/* Under ASan, RSS and the VMA count also measure the sanitizer's own memory:
 * its shadow, and the size-class regions of its allocator, which the
 * quarantine makes grow long after our heap use is steady. Those ranges
 * (x86-64 defaults) are left out; heap use is checked through the
 * allocator's live-bytes count instead. */
static int sanitizer_owned(uintptr_t lo) {
#if defined(__x86_64__)
  return (lo >= UINT64_C(0x7fff8000) && lo < UINT64_C(0x10007fff8000)) ||
         (lo >= UINT64_C(0x600000000000) && lo < UINT64_C(0x640000000000));
#else
  (void)lo;
  return 0;
#endif
}

static void usage_maps(usage_t *u) {
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512];
  int owned = 0;
  long kib;
  unsigned long lo, hi;
  char perms[8];
  ck_assert_ptr_nonnull(f);
  u->rss_kib = 0;
  u->vmas = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (sscanf(line, "%lx-%lx %7s ", &lo, &hi, perms) == 3) {
      owned = sanitizer_owned(lo);
      u->vmas += !owned;
    } else if (sscanf(line, "Rss: %ld kB", &kib) == 1 && !owned) {
      u->rss_kib += kib;
    }
  }
  fclose(f);
}
#else
#include <malloc.h>
#endif

static usage_t usage_now(void) {
  usage_t u;
#ifdef TR_TEST_ASAN
  usage_maps(&u);
  u.heap = __sanitizer_get_current_allocated_bytes();
#else
  u.rss_kib = tr_test_rss_kib();
  u.vmas = tr_test_vma_count();
  u.heap = mallinfo2().uordblks;
#endif
  u.fds = tr_test_fd_count();
  return u;
}

static const struct {
  crash_t c;
  tr_reason_kind_t k;
} mixed[] = {{C_NULL_READ, TR_REASON_SEGV},
             {C_DIV0, TR_REASON_FPE},
#if defined(__aarch64__)
             {C_TRAP, TR_REASON_TRAP},
#else
             {C_TRAP, TR_REASON_ILL},
#endif
             {C_ABORT, TR_REASON_ABORT},
             {C_OVERFLOW, TR_REASON_STACK_OVERFLOW},
             {C_BUS, TR_REASON_BUS}};
#define NMIXED (sizeof(mixed) / sizeof(mixed[0]))
#define MIXED_OVERFLOW 4 /* mixed[4] is the stack overflow */

static usage_t torture_before, torture_after;
static int torture_counts[TR_REASON__COUNT];

static void torture_root(void *arg) {
  int mixed_run = (int)(intptr_t)arg;
  /* Warm-up: one of each, so lazily made state exists for the baseline. */
  for (size_t i = 0; i < NMIXED; i++)
    crash_and_wait(crasher, (void *)(intptr_t)mixed[i].c, STACK_64K);
  fresh_echo_works();
  torture_before = usage_now();
  for (int i = 0; i < TORTURE_N; i++) {
    size_t k = mixed_run ? (size_t)i % NMIXED : MIXED_OVERFLOW;
    tr_reason_t r =
        crash_and_wait(crasher, (void *)(intptr_t)mixed[k].c, STACK_64K);
    if (r.kind != mixed[k].k)
      ck_abort_msg("crash %d: reason %s, expected %s", i,
                   tr_reason_name(r.kind), tr_reason_name(mixed[k].k));
    torture_counts[r.kind]++;
  }
  torture_after = usage_now();
  fresh_echo_works();
  one.done = 1;
}

static void torture(int mixed_run) {
  memset(&one, 0, sizeof(one));
  memset(torture_counts, 0, sizeof(torture_counts));
  maps_setup();
  /* One scheduler: mapping counts of one thread's allocator and stacks
   * (another thread's first crashes would grow its malloc arena). */
  tr_test_run1(torture_root, (void *)(intptr_t)mixed_run);
  maps_teardown();
  ck_assert(one.done);
  if (!tr_test_on_tsan()) { /* TSan's shadow memory: RSS and mappings grow */
    ck_assert_msg(torture_after.rss_kib - torture_before.rss_kib < 16 * 1024,
                  "RSS grew from %ld to %ld KiB", torture_before.rss_kib,
                  torture_after.rss_kib);
    ck_assert_int_eq(torture_after.vmas, torture_before.vmas);
  }
  ck_assert_int_eq(torture_after.fds, torture_before.fds);
  ck_assert_msg(torture_after.heap < torture_before.heap + 64 * 1024,
                "heap in use grew from %zu to %zu bytes", torture_before.heap,
                torture_after.heap);
}

START_TEST(test_torture_stack_overflows) {
  torture(0);
  ck_assert_int_eq(torture_counts[TR_REASON_STACK_OVERFLOW], TORTURE_N);
}
END_TEST

START_TEST(test_torture_mixed) {
  int total = 0;
  torture(1);
  for (size_t i = 0; i < NMIXED; i++) {
    int want = TORTURE_N / (int)NMIXED + ((int)i < TORTURE_N % (int)NMIXED);
    ck_assert_int_eq(torture_counts[mixed[i].k], want);
    total += torture_counts[mixed[i].k];
  }
  ck_assert_int_eq(total, TORTURE_N);
}
END_TEST

/* Regression (bench/chaos): an overflowed stack was touched all the way
 * down; it went back to the warm cache and then under the next actor, so
 * overflows interleaved with long-lived actors grew RSS by a whole stack
 * each (1 MiB here: 96 MiB in all). Overflowed stacks are released at
 * once now. */
#define WARM_N 96
#define STACK_1M ((size_t)1024 * 1024)

static void holder(void *arg) {
  tr_msg_t *m;
  (void)arg;
  if (tr_recv(&m, -1) == 0) tr_msg_free(m);
}

static long warm_growth_kib;

static void warm_root(void *arg) {
  tr_spawn_opts_t o;
  tr_pid_t held[WARM_N];
  long before;
  (void)arg;
  tr_spawn_opts_init(&o);
  o.stack_size = STACK_1M;
  crash_and_wait(crasher, (void *)(intptr_t)C_OVERFLOW, STACK_1M); /* warm-up */
  before = usage_now().rss_kib;
  for (int i = 0; i < WARM_N; i++) {
    tr_reason_t r = crash_and_wait(crasher, (void *)(intptr_t)C_OVERFLOW, STACK_1M);
    ck_assert_int_eq(r.kind, TR_REASON_STACK_OVERFLOW);
    TR_OK(tr_spawn(NULL, holder, NULL, &o, &held[i])); /* takes the slot */
    TR_OK(tr_yield());
  }
  warm_growth_kib = usage_now().rss_kib - before;
  for (int i = 0; i < WARM_N; i++) TR_OK(tr_send(held[i], "\xc0", 1));
}

START_TEST(test_overflowed_stacks_not_kept_warm) {
  maps_setup();
  tr_test_run(warm_root, NULL);
  maps_teardown();
  if (!tr_test_on_tsan()) /* TSan's shadow of the overflowed stacks stays */
    ck_assert_msg(warm_growth_kib < 16 * 1024, "RSS grew by %ld KiB", warm_growth_kib);
}
END_TEST

static Suite *suite_fault(void) {
  Suite *s = suite_create("fault");
  TCase *tc = tcase_create("kinds");
  tcase_add_test(tc, test_stack_overflow);
  tcase_add_test(tc, test_stack_overflow_default_stack);
  tcase_add_test(tc, test_null_read);
  tcase_add_test(tc, test_null_write);
  tcase_add_test(tc, test_write_read_only);
  tcase_add_test(tc, test_divide_by_zero);
  tcase_add_test(tc, test_bus_truncated_mapping);
  tcase_add_test(tc, test_builtin_trap);
  tcase_add_test(tc, test_abort);
  tcase_add_test(tc, test_failed_assert);
  tcase_add_test(tc, test_strlen_null_is_recoverable);
  tcase_add_test(tc, test_fault_in_recv_predicate_is_the_actors);
  tcase_add_test(tc, test_all_kinds_in_one_runtime);
  tcase_add_test(tc, test_signal_masks);
  tcase_add_test(tc, test_crash_report_through_logger);
  tcase_add_test(tc, test_reserve_check_at_entry_points);
  tcase_add_test(tc, test_overflowed_stacks_not_kept_warm);
  suite_add_tcase(s, tc);

  tc = tcase_create("fatal");
#ifndef TR_TEST_ASAN
  tcase_add_test_raise_signal(tc, test_fault_in_free_is_fatal, SIGSEGV);
#endif
  tcase_add_test_raise_signal(tc, test_fault_in_locking_libc_is_fatal, SIGSEGV);
  tcase_add_test_raise_signal(tc, test_fault_in_runtime_is_fatal, SIGSEGV);
  tcase_add_test_raise_signal(tc, test_fault_in_cleanup_is_fatal, SIGSEGV);
  tcase_add_test_raise_signal(tc, test_fault_in_neighbour_slot_is_fatal,
                              SIGSEGV);
  tcase_add_test_raise_signal(tc, test_fault_outside_actor_before_run, SIGSEGV);
  tcase_add_test_raise_signal(tc, test_fault_outside_actor_after_run, SIGSEGV);
  tcase_add_test_raise_signal(tc, test_external_abrt_kill_is_not_an_actor_exit,
                              SIGABRT);
  tcase_add_test_raise_signal(
      tc, test_external_abrt_sigqueue_is_not_an_actor_exit, SIGABRT);
  tcase_add_test_raise_signal(tc, test_external_abrt_from_other_process,
                              SIGABRT);
  suite_add_tcase(s, tc);

  tc = tcase_create("torture");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_torture_stack_overflows);
  tcase_add_test(tc, test_torture_mixed);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(suite_fault)
