/*
 * Hostile API input: every public function of troupe.h called with what a
 * careless or hostile caller could pass — NULL pointers, zero and huge
 * sizes, never-valid pids (0, UINT64_MAX, random 64-bit values), stale pids
 * (an actor that exited), stale handles and refs, out-of-range enums, flags
 * and spec fields — in each context that matters:
 *
 *   THREAD   a thread that runs no runtime
 *   OUTSIDE  the runtime's thread, outside any actor (host code)
 *   ACTOR    inside an actor
 *   CLEANUP  inside a tr_defer cleanup callback (re-entrant calls)
 *
 * Each call must return its documented error code (TR_ENOTACTOR /
 * TR_ECLEANUP for actor-only calls outside an actor), not crash, and leak
 * nothing (the ASan and valgrind runs of this suite check that).
 *
 * The table has one row per public function, named after it; a row's
 * function makes every check for that function in every context. The test
 * "coverage" parses include/troupe.h and fails if a TR_EXTERN function has
 * no row, or a row names no public function. Each row runs as its own test
 * (a fresh runtime, in its own process in fork mode).
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <netdb.h>

#include "testutil.h"

#ifndef TR_TOP_SRCDIR
#define TR_TOP_SRCDIR "."
#endif

/* Huge allocations requested by hostile sizes must fail with NULL, not
 * stop the process (ASan's default). */
const char *__asan_default_options(void);
__attribute__((visibility("default"), used)) const char *
__asan_default_options(void) {
  return "allocator_may_return_null=1";
}

/* ------------------------------------------------------------------------ */
/* The checking machinery                                                   */
/* ------------------------------------------------------------------------ */

typedef enum { W_THREAD, W_OUTSIDE, W_ACTOR, W_CLEANUP, W__COUNT } where_t;

static const char *const where_name[W__COUNT] = {"thread", "outside", "actor",
                                                 "cleanup"};

typedef struct hctx {
  tr_runtime_t *rt;
  where_t w;
  tr_pid_t stale;   /* an actor that has exited */
  tr_pid_t live;    /* ACTOR: a live actor that answers calls with garbage */
  tr_pid_t sup;     /* ACTOR: a supervisor, if the row started one */
  tr_runtime_t *other; /* a second runtime (not the caller's) */
  int checks[W__COUNT];
  int fails;
  char log[8192];
} hctx_t;

static hctx_t *H;

/* Values no pid ever has, and values that look like pids of this runtime
 * (index in range, wrong generation). */
static const tr_pid_t bad_pids[] = {
    TR_PID_NONE, UINT64_MAX, UINT64_C(0x9e3779b97f4a7c15),
    UINT64_C(0x0000000100000001), UINT64_C(0x7fffffff00ffffff),
    UINT64_C(0x8000000000000000)};
#define NBAD (sizeof(bad_pids) / sizeof(bad_pids[0]))

static void h_fail(int line, const char *fmt, ...) TR_PRINTF(2, 3);
static void h_fail(int line, const char *fmt, ...) {
  size_t n = strlen(H->log);
  va_list ap;
  H->fails++;
  if (n + 200 > sizeof(H->log)) return;
  n += (size_t)snprintf(H->log + n, sizeof(H->log) - n, "  line %d [%s]: ",
                        line, where_name[H->w]);
  va_start(ap, fmt);
  n += (size_t)vsnprintf(H->log + n, sizeof(H->log) - n, fmt, ap);
  va_end(ap);
  snprintf(H->log + n, sizeof(H->log) - n, "\n");
}

static void h_eq(int line, const char *expr, long long got, long long want) {
  H->checks[H->w]++;
  if (got != want)
    h_fail(line, "%s = %lld (%s), want %lld (%s)", expr, got,
           tr_err_name((int)got), want, tr_err_name((int)want));
}

static void h_in(int line, const char *expr, long long got, long long a,
                 long long b) {
  H->checks[H->w]++;
  if (got != a && got != b)
    h_fail(line, "%s = %lld (%s), want %s or %s", expr, got,
           tr_err_name((int)got), tr_err_name((int)a), tr_err_name((int)b));
}

static void h_true(int line, const char *expr, int ok) {
  H->checks[H->w]++;
  if (!ok) h_fail(line, "%s is false", expr);
}

/* expr == want */
#define EQ(expr, want) h_eq(__LINE__, #expr, (long long)(expr), (long long)(want))
/* expr is one of two values (behaviour that legitimately depends on the
 * build, e.g. how many schedulers it supports) */
#define IN(expr, a, b) h_in(__LINE__, #expr, (long long)(expr), (a), (b))
#define OK(cond) h_true(__LINE__, #cond, !!(cond))

#define IN_ACTOR (H->w == W_ACTOR)
/* The error of an actor-only call made here. */
#define CTXERR (H->w == W_CLEANUP ? TR_ECLEANUP : TR_ENOTACTOR)
/* An actor-only call with valid arguments: `want` inside an actor, the
 * context's error anywhere else. */
#define AO(expr, want) EQ(expr, IN_ACTOR ? (long long)(want) : CTXERR)
/* True where a runtime drives this thread (OUTSIDE, ACTOR, CLEANUP). */
#define HAS_RT (H->w != W_THREAD)

typedef void (*row_fn)(hctx_t *c);
typedef struct {
  const char *name; /* the public function */
  row_fn fn;
} row_t;

/* ------------------------------------------------------------------------ */
/* Helpers for the rows                                                     */
/* ------------------------------------------------------------------------ */

static void nop_actor(void *arg) { (void)arg; }

static void idle_actor(void *arg) {
  tr_msg_t *m;
  (void)arg;
  while (tr_recv(&m, -1) == 0) tr_msg_free(m);
}

/* Answers every CALL with a body no troupe protocol expects. */
static void garbage_server(void *arg) {
  tr_msg_t *m;
  (void)arg;
  while (tr_recv(&m, -1) == 0) {
    if (tr_msg_kind(m) == TR_MSG_CALL) tr_reply(m, "\x93\xa1x\xc0\xc3", 5);
    tr_msg_free(m);
  }
}

static void sup_child(void *arg) {
  (void)arg;
  tr_sup_init_ack(TR_INIT_OK);
  idle_actor(NULL);
}

/* ACTOR: a one_for_one supervisor with one worker "w" (stopped after the
 * row). */
static tr_pid_t need_sup(hctx_t *c) {
  tr_child_spec_t spec;
  tr_sup_flags_t f;
  if (c->sup != TR_PID_NONE) return c->sup;
  tr_sup_flags_init(&f);
  tr_child_spec_init(&spec, "w", sup_child, NULL);
  if (tr_sup_start_link(&f, &spec, 1, &c->sup, NULL) != 0)
    h_fail(__LINE__, "cannot start the test supervisor");
  return c->sup;
}

/* ACTOR: a simple_one_for_one supervisor (stopped by the caller). */
static tr_pid_t simple_sup(void) {
  tr_child_spec_t spec;
  tr_sup_flags_t f;
  tr_pid_t sup = TR_PID_NONE;
  tr_sup_flags_init(&f);
  f.strategy = TR_SIMPLE_ONE_FOR_ONE;
  tr_child_spec_init(&spec, "t", sup_child, NULL);
  if (tr_sup_start_link(&f, &spec, 1, &sup, NULL) != 0)
    h_fail(__LINE__, "cannot start the simple supervisor");
  return sup;
}

/* ACTOR: a listener on 127.0.0.1, any port. */
static tr_io_t listener(void) {
  tr_io_t srv = TR_IO_NONE;
  if (tr_tcp_listen(&srv, "127.0.0.1", 0, 0) != 0)
    h_fail(__LINE__, "cannot listen");
  return srv;
}

/* ACTOR: the id of a handle that was closed. */
static tr_io_t stale_io(void) {
  tr_io_t h = listener();
  tr_io_close(h);
  return h;
}

/* ACTOR: a connected pair over loopback (a: connected, b: accepted). */
static void tcp_pair(tr_io_t *a, tr_io_t *b) {
  tr_io_t srv = listener();
  *a = *b = TR_IO_NONE;
  if (tr_tcp_connect(a, "127.0.0.1", tr_io_port(srv), 2000) != 0 ||
      tr_tcp_accept(srv, b, 2000) != 0)
    h_fail(__LINE__, "cannot make a TCP pair");
  tr_io_close(srv);
}

/* Ids that name no handle. */
static const tr_io_t bad_ios[] = {TR_IO_NONE, UINT64_MAX,
                                  UINT64_C(0x0000000100000001),
                                  UINT64_C(0x123456789abcdef0)};
#define NBADIO (sizeof(bad_ios) / sizeof(bad_ios[0]))

static char tmp_path[64];

/* A file path that does not exist (per process). */
static const char *missing_path(void) {
  snprintf(tmp_path, sizeof(tmp_path), "/tmp/troupe-hostile-%ld-missing",
           (long)getpid());
  return tmp_path;
}

/* A valid spec / flags, for rows that spoil one field. */
static tr_child_spec_t good_spec(void) {
  tr_child_spec_t s;
  tr_child_spec_init(&s, "x", sup_child, NULL);
  return s;
}

static const msgpack_object nil_obj = {.type = MSGPACK_OBJECT_NIL};

/* ------------------------------------------------------------------------ */
/* Rows: errors and reasons                                                 */
/* ------------------------------------------------------------------------ */

static void row_tr_strerror(hctx_t *c) {
  static const int codes[] = {0, 1, -1, INT_MIN, INT_MAX, -4999, -5000,
                              -5011, -9999, TR_EDOWN, UV_EAI_NONAME};
  (void)c;
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    const char *s = tr_strerror(codes[i]);
    OK(s != NULL && s[0] != '\0');
  }
  OK(strcmp(tr_strerror(TR_ENOPROC), "no such process") == 0);
  /* unknown codes give one static string (libuv's would leak per call) */
  OK(tr_strerror(INT_MIN) == tr_strerror(-9999));
}

static void row_tr_err_name(hctx_t *c) {
  static const int codes[] = {0, 1, -1, INT_MIN, INT_MAX, -5011, -9999};
  (void)c;
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    const char *s = tr_err_name(codes[i]);
    OK(s != NULL && s[0] != '\0');
  }
  OK(strcmp(tr_err_name(TR_ECLEANUP), "TR_ECLEANUP") == 0);
  OK(tr_err_name(INT_MIN) == tr_err_name(-9999));
}

static void row_tr_reason_name(hctx_t *c) {
  (void)c;
  OK(strcmp(tr_reason_name((tr_reason_kind_t)-1), "unknown") == 0);
  OK(strcmp(tr_reason_name(TR_REASON__COUNT), "unknown") == 0);
  OK(strcmp(tr_reason_name((tr_reason_kind_t)INT_MAX), "unknown") == 0);
  OK(strcmp(tr_reason_name(TR_REASON_MAILBOX_OVERFLOW), "mailbox_overflow") == 0);
}

static void row_tr_reason_format(hctx_t *c) {
  tr_reason_t r;
  char buf[256], tiny[4];
  (void)c;
  memset(&r, 'A', sizeof(r)); /* text not NUL-terminated, wild kind */
  EQ(tr_reason_format(&r, buf, sizeof(buf)) > 0, 1);
  OK(strlen(buf) < sizeof(buf));
  r.kind = TR_REASON_SEGV; /* a crash kind with an unterminated text */
  OK(tr_reason_format(&r, buf, sizeof(buf)) > 0);
  OK(memchr(buf, '\0', sizeof(buf)) != NULL);
  r.kind = TR_REASON_ERROR;
  OK(tr_reason_format(&r, tiny, sizeof(tiny)) >= (int)sizeof(tiny));
  EQ(tiny[3], '\0');
  EQ(tr_reason_format(NULL, buf, sizeof(buf)), 6); /* "(null)" */
  OK(tr_reason_format(&r, NULL, 0) > 0);           /* measures only */
  EQ(tr_reason_format(&r, NULL, 10), TR_EINVAL);
  EQ(tr_reason_format(NULL, NULL, 10), TR_EINVAL);
}

static void row_tr_reason_is_crash(hctx_t *c) {
  (void)c;
  EQ(tr_reason_is_crash((tr_reason_kind_t)-1), 0);
  EQ(tr_reason_is_crash(TR_REASON__COUNT), 0);
  EQ(tr_reason_is_crash(TR_REASON_MAILBOX_OVERFLOW), 0);
  EQ(tr_reason_is_crash(TR_REASON_KILLED), 0);
  EQ(tr_reason_is_crash(TR_REASON_SEGV) != 0, 1);
}

/* ------------------------------------------------------------------------ */
/* Rows: runtime                                                            */
/* ------------------------------------------------------------------------ */

static void row_tr_config_init(hctx_t *c) {
  tr_config_t cfg;
  (void)c;
  tr_config_init(NULL);
  memset(&cfg, 0xff, sizeof(cfg));
  tr_config_init(&cfg);
  EQ(cfg.size, sizeof(cfg));
  /* The default: TR_SCHEDULERS (the suite's multi-scheduler runs), else the
   * online CPUs. */
  EQ(cfg.schedulers, getenv("TR_SCHEDULERS") ? (unsigned)atoi(getenv("TR_SCHEDULERS"))
                                             : (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
}

static void row_tr_log_stderr(hctx_t *c) {
  (void)c;
  tr_log_stderr(NULL, (tr_log_level_t)-7, NULL); /* nothing to print */
  tr_log_stderr(NULL, (tr_log_level_t)99, "hostile test: a log line");
  OK(1);
}

/* Every way a config can be wrong; cfg_bad[i] spoils a default config. */
static void spoil_config(tr_config_t *cfg, int i) {
  tr_config_init(cfg);
  switch (i) {
  case 0: cfg->size = 0; break;
  case 1: cfg->size = 1; break;
  case 2: cfg->size = offsetof(tr_config_t, stop_timeout_ms); break; /* too small */
  case 3: cfg->size = sizeof(*cfg) + 1; break;
  case 4: cfg->size = SIZE_MAX; break;
  case 5: cfg->stack_size = 1; break;
  case 6: cfg->stack_size = TR_STACK_SIZE_MIN - 1; break;
  case 7: cfg->stack_size = TR_STACK_SIZE_MAX + 1; break;
  case 8: cfg->stack_size = SIZE_MAX; break;
#ifdef TR_SCHEDULERS_MAX /* multi-scheduler runtimes */
  case 9: cfg->schedulers = TR_SCHEDULERS_MAX + 1; break;
  case 10: cfg->placement = 99; break;
  case 11: cfg->placement = -1; break;
  case 12: cfg->placement = TR_PLACE_SCHED(TR_SCHEDULERS_MAX); break;
#endif
  default: break;
  }
}
#ifdef TR_SCHEDULERS_MAX
#define NCFG_BAD 13
#else
#define NCFG_BAD 9
#endif

static void row_tr_runtime_new(hctx_t *c) {
  tr_runtime_t *rt = (tr_runtime_t *)1;
  tr_config_t cfg;
  (void)c;
  EQ(tr_runtime_new(NULL, NULL), TR_EINVAL);
  for (int i = 0; i < NCFG_BAD; i++) {
    spoil_config(&cfg, i);
    rt = (tr_runtime_t *)1;
    EQ(tr_runtime_new(&rt, &cfg), TR_EINVAL);
    OK(rt == NULL);
  }
  tr_config_init(&cfg);
  cfg.schedulers = UINT_MAX; /* more than any build supports */
  IN(tr_runtime_new(&rt, &cfg), TR_ENOTSUP, TR_EINVAL);
  OK(rt == NULL);
  if (H->w == W_OUTSIDE) {
    /* odd but valid values are accepted */
    tr_config_init(&cfg);
    cfg.stack_cache = SIZE_MAX;
    cfg.stop_timeout_ms = UINT_MAX;
    cfg.crash_reports = -5;
    cfg.catch_faults = 7;
    EQ(tr_runtime_new(&rt, &cfg), 0);
    EQ(tr_runtime_free(rt), 0);
  }
}

static void row_tr_runtime_attach(hctx_t *c) {
  tr_runtime_t *rt = (tr_runtime_t *)1;
  tr_config_t cfg;
  uv_loop_t loop;
  (void)c;
  EQ(tr_runtime_attach(&rt, NULL, NULL), TR_EINVAL);
  /* a loop of our own, on a thread that runs no other runtime */
  if (H->w != W_THREAD) return;
  EQ(uv_loop_init(&loop), 0);
  EQ(tr_runtime_attach(NULL, &loop, NULL), TR_EINVAL);
  for (int i = 0; i < NCFG_BAD; i++) {
    spoil_config(&cfg, i);
    rt = (tr_runtime_t *)1;
    EQ(tr_runtime_attach(&rt, &loop, &cfg), TR_EINVAL);
    OK(rt == NULL);
  }
  EQ(tr_runtime_attach(&rt, &loop, NULL), 0);
  EQ(tr_runtime_run(rt), TR_ENOTSUP);
  EQ(tr_sup_start(rt, NULL, NULL, 0, NULL, NULL), TR_ENOTSUP);
  EQ(tr_runtime_free(rt), 0);
  EQ(uv_loop_close(&loop), 0); /* nothing of the runtime is left on it */
}

static void row_tr_runtime_run(hctx_t *c) {
  EQ(tr_runtime_run(NULL), TR_EINVAL);
  if (H->w == W_ACTOR || H->w == W_CLEANUP) EQ(tr_runtime_run(c->rt), TR_EBUSY);
}

static void row_tr_runtime_stop(hctx_t *c) {
  EQ(tr_runtime_stop(NULL), TR_EINVAL);
  if (H->w == W_CLEANUP) { /* the last thing: stopping twice is fine */
    EQ(tr_runtime_stop(c->rt), 0);
    EQ(tr_runtime_stop(c->rt), 0);
  }
}

static void row_tr_runtime_free(hctx_t *c) {
  EQ(tr_runtime_free(NULL), 0);
  if (H->w == W_ACTOR || H->w == W_CLEANUP) EQ(tr_runtime_free(c->rt), TR_EBUSY);
}

static void row_tr_runtime_loop(hctx_t *c) {
  OK(tr_runtime_loop(NULL) == NULL);
  if (HAS_RT) OK(tr_runtime_loop(c->rt) != NULL);
}

static void row_tr_runtime_actor_count(hctx_t *c) {
  EQ(tr_runtime_actor_count(NULL), 0);
  if (H->w == W_ACTOR) OK(tr_runtime_actor_count(c->rt) >= 1);
}

static void row_tr_runtime_current(hctx_t *c) {
  OK(tr_runtime_current() == (HAS_RT ? c->rt : NULL));
}

#ifdef TR_SCHEDULERS_MAX /* the multi-scheduler API */
static void row_tr_runtime_scheduler_count(hctx_t *c) {
  EQ(tr_runtime_scheduler_count(NULL), 0);
  if (HAS_RT) OK(tr_runtime_scheduler_count(c->rt) >= 1);
}

static void row_tr_sched_self(hctx_t *c) {
  (void)c;
  if (!HAS_RT) EQ(tr_sched_self(), -1);
  else if (H->w == W_OUTSIDE) EQ(tr_sched_self(), 0);
  else OK(tr_sched_self() >= 0 && tr_sched_self() < TR_SCHEDULERS_MAX);
}

static void row_tr_pid_scheduler(hctx_t *c) {
  /* any value is safe to ask about; a live pid names its own scheduler */
  for (size_t i = 0; i < NBAD; i++) (void)tr_pid_scheduler(bad_pids[i]);
  (void)tr_pid_scheduler(c->stale);
  if (IN_ACTOR) EQ(tr_pid_scheduler(tr_self()), (unsigned)tr_sched_self());
  else OK(1);
}
#endif

/* ------------------------------------------------------------------------ */
/* Rows: actors                                                             */
/* ------------------------------------------------------------------------ */

static void row_tr_spawn_opts_init(hctx_t *c) {
  tr_spawn_opts_t o;
  (void)c;
  tr_spawn_opts_init(NULL);
  memset(&o, 0xff, sizeof(o));
  tr_spawn_opts_init(&o);
  EQ(o.size, sizeof(o));
  EQ(o.flags, 0);
  EQ(o.mailbox_max, 0);
}

/* Options that no spawn accepts; the error is TR_EINVAL for each. */
static int spoil_opts(tr_spawn_opts_t *o, int i, tr_ref_t *ref) {
  static char longname[TR_NAME_MAX + 8];
  tr_spawn_opts_init(o);
  memset(longname, 'n', sizeof(longname) - 1);
  switch (i) {
  case 0: o->size = 1; break;
  case 1: o->size = sizeof(*o) + 1; break;
  case 2: o->size = SIZE_MAX; break;
  case 3: o->stack_size = 1; break;
  case 4: o->stack_size = TR_STACK_SIZE_MAX + 1; break;
  case 5: o->stack_size = SIZE_MAX; break;
  case 6: o->flags = 1u << 7; break;
  case 7: o->flags = UINT_MAX; break;
  case 8: o->name = ""; break;
  case 9: o->name = longname; break;
  case 10: o->flags = TR_SPAWN_MONITOR; o->monitor_ref = NULL; break;
  case 11: o->mailbox_max = 4; o->mailbox_policy = (tr_mailbox_policy_t)3; break;
  case 12: o->mailbox_policy = (tr_mailbox_policy_t)-1; break;
#ifdef TR_SCHEDULERS_MAX
  case 13: o->placement = 99; break;
  case 14: o->placement = -1; break;
  case 15: o->placement = TR_PLACE_SCHED(TR_SCHEDULERS_MAX); break;
#endif
  default: return 0;
  }
  (void)ref;
  return 1;
}

static void row_tr_spawn(hctx_t *c) {
  tr_spawn_opts_t o;
  tr_pid_t pid = 77;
  tr_ref_t ref;
  size_t before = HAS_RT ? tr_runtime_actor_count(c->rt) : 0;
  tr_runtime_t *rt = H->w == W_ACTOR ? NULL : c->rt;
  if (H->w == W_THREAD) {
    EQ(tr_spawn(NULL, nop_actor, NULL, NULL, &pid), TR_EINVAL);
    return; /* rt from a foreign thread: see the report (not detected) */
  }
  if (H->w == W_CLEANUP) {
    EQ(tr_spawn(c->rt, nop_actor, NULL, NULL, &pid), TR_ECLEANUP);
    EQ(tr_spawn(NULL, nop_actor, NULL, NULL, &pid), TR_ECLEANUP);
    EQ(tr_runtime_actor_count(c->rt), before);
    return;
  }
  if (H->w == W_OUTSIDE) EQ(tr_spawn(NULL, nop_actor, NULL, NULL, &pid), TR_EINVAL);
  EQ(tr_spawn(rt, NULL, NULL, NULL, &pid), TR_EINVAL);
  for (int i = 0; spoil_opts(&o, i, &ref); i++) {
    int rc = tr_spawn(rt, nop_actor, NULL, &o, &pid);
    /* MONITOR outside an actor is refused before its missing ref */
    h_eq(__LINE__, "tr_spawn(spoiled opts)", rc,
         i == 10 && !IN_ACTOR ? TR_ENOTACTOR : TR_EINVAL);
  }
  tr_spawn_opts_init(&o);
  o.flags = TR_SPAWN_LINK;
  EQ(tr_spawn(rt, nop_actor, NULL, &o, &pid), IN_ACTOR ? 0 : TR_ENOTACTOR);
  o.flags = TR_SPAWN_MONITOR;
  o.monitor_ref = &ref;
  EQ(tr_spawn(rt, nop_actor, NULL, &o, &pid), IN_ACTOR ? 0 : TR_ENOTACTOR);
  if (IN_ACTOR) {
    tr_msg_t *m;
    /* the DOWN of that monitored child */
    EQ(tr_recv(&m, 1000), 0);
    tr_msg_free(m);
    /* a runtime that is not the caller's */
    EQ(tr_spawn(c->other, nop_actor, NULL, NULL, &pid), TR_EINVAL);
    /* a taken name: nothing starts */
    EQ(tr_register("taken", tr_self()), 0);
    tr_spawn_opts_init(&o);
    o.name = "taken";
    before = tr_runtime_actor_count(c->rt);
    EQ(tr_spawn(NULL, nop_actor, NULL, &o, &pid), TR_EEXIST);
    EQ(tr_runtime_actor_count(c->rt), before);
    EQ(tr_spawn(NULL, nop_actor, NULL, NULL, NULL), 0); /* pid may be NULL */
  }
}

static void row_tr_spawn_link(hctx_t *c) {
  tr_pid_t pid;
  (void)c;
  EQ(tr_spawn_link(NULL, NULL, &pid), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_spawn_link(nop_actor, NULL, NULL), 0);
}

static void row_tr_spawn_monitor(hctx_t *c) {
  tr_pid_t pid;
  tr_ref_t ref;
  (void)c;
  EQ(tr_spawn_monitor(NULL, NULL, &pid, &ref), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_spawn_monitor(nop_actor, NULL, &pid, NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_spawn_monitor(nop_actor, NULL, NULL, &ref), 0);
}

static void row_tr_self(hctx_t *c) {
  (void)c;
  if (IN_ACTOR) OK(tr_self() != TR_PID_NONE);
  else EQ(tr_self(), TR_PID_NONE);
}

static void row_tr_yield(hctx_t *c) {
  (void)c;
  AO(tr_yield(), 0);
}

static void row_tr_hibernate(hctx_t *c) {
  (void)c;
  EQ(tr_hibernate(NULL, NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
  if (!IN_ACTOR) EQ(tr_hibernate(nop_actor, NULL), CTXERR);
  /* inside an actor it never returns: see tests/check_hibernate.c */
}

static void row_tr_exit(hctx_t *c) {
  (void)c;
  EQ(tr_exit((tr_reason_kind_t)-1), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_exit(TR_REASON__COUNT), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_exit((tr_reason_kind_t)INT_MAX), IN_ACTOR ? TR_EINVAL : CTXERR);
  if (!IN_ACTOR) EQ(tr_exit(TR_REASON_NORMAL), CTXERR);
}

static void row_tr_exit_error(hctx_t *c) {
  (void)c;
  if (!IN_ACTOR) {
    EQ(tr_exit_error(1, NULL), CTXERR);
    EQ(tr_exit_error(INT_MIN, "%s", "x"), CTXERR);
  }
  /* inside an actor it never returns: see test "exit_error_hostile" */
}

static void row_tr_exit_pid(hctx_t *c) {
  tr_runtime_t *rt = IN_ACTOR ? NULL : c->rt;
  EQ(tr_exit_pid(NULL, c->stale, (tr_reason_kind_t)-1), TR_EINVAL);
  EQ(tr_exit_pid(rt, c->stale, TR_REASON__COUNT), TR_EINVAL);
  if (!HAS_RT) {
    EQ(tr_exit_pid(NULL, c->stale, TR_REASON_KILL), TR_EINVAL);
    return;
  }
  if (!IN_ACTOR) EQ(tr_exit_pid(NULL, c->stale, TR_REASON_KILL), TR_EINVAL);
  for (size_t i = 0; i < NBAD; i++) EQ(tr_exit_pid(rt, bad_pids[i], TR_REASON_KILL), 0);
  EQ(tr_exit_pid(rt, c->stale, TR_REASON_KILL), 0);
  EQ(tr_exit_pid(rt, c->stale, TR_REASON_NORMAL), 0);
  if (IN_ACTOR) {
    EQ(tr_exit_pid(rt, tr_self(), TR_REASON_NORMAL), 0); /* ignored */
    EQ(tr_exit_pid(c->other, c->stale, TR_REASON_KILL), 0); /* rt ignored */
  }
}

static void row_tr_is_alive(hctx_t *c) {
  for (size_t i = 0; i < NBAD; i++) EQ(tr_is_alive(bad_pids[i]), 0);
  EQ(tr_is_alive(c->stale), 0);
  if (IN_ACTOR) EQ(tr_is_alive(tr_self()) != 0, 1);
}

static void row_tr_trap_exit(hctx_t *c) {
  (void)c;
  AO(tr_trap_exit(12345), 0);
  AO(tr_trap_exit(INT_MIN), 1); /* any nonzero is on */
  AO(tr_trap_exit(0), 1);
}

/* Inside an actor a link to a dead pid is an exit signal noproc; trapped
 * here so that the row's actor survives to count them. */
static void row_tr_link(hctx_t *c) {
  tr_msg_t *m;
  tr_reason_t why;
  int prev, n = 0;
  if (!IN_ACTOR) {
    EQ(tr_link(c->stale), CTXERR);
    EQ(tr_link(TR_PID_NONE), CTXERR);
    return;
  }
  prev = tr_trap_exit(1);
  for (size_t i = 0; i < NBAD; i++) EQ(tr_link(bad_pids[i]), 0);
  EQ(tr_link(c->stale), 0);
  EQ(tr_link(tr_self()), 0); /* a no-op */
  while (n < 100 && tr_recv(&m, 0) == 0) {
    EQ(tr_msg_kind(m), TR_MSG_EXIT);
    EQ(tr_msg_reason(m, &why), 0);
    EQ(why.kind, TR_REASON_NOPROC);
    tr_msg_free(m);
    n++;
  }
  EQ(n, (int)NBAD + 1);
  tr_trap_exit(prev);
}

static void row_tr_unlink(hctx_t *c) {
  for (size_t i = 0; i < NBAD; i++) AO(tr_unlink(bad_pids[i]), 0);
  AO(tr_unlink(c->stale), 0);
  if (IN_ACTOR) EQ(tr_unlink(tr_self()), 0);
}

static void row_tr_monitor(hctx_t *c) {
  tr_ref_t ref = 0;
  tr_msg_t *m;
  tr_reason_t why;
  EQ(tr_monitor(c->stale, NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_monitor(c->stale, &ref), 0);
  if (!IN_ACTOR) return;
  OK(ref != 0);
  EQ(tr_recv(&m, 0), 0); /* DOWN noproc at once */
  EQ(tr_msg_kind(m), TR_MSG_DOWN);
  EQ(tr_msg_ref(m), ref);
  EQ(tr_msg_reason(m, &why), 0);
  EQ(why.kind, TR_REASON_NOPROC);
  tr_msg_free(m);
  for (size_t i = 0; i < NBAD; i++) {
    EQ(tr_monitor(bad_pids[i], &ref), 0);
    EQ(tr_demonitor(ref, TR_DEMONITOR_FLUSH), 0);
  }
  EQ(tr_mailbox_len(), 0);
}

static void row_tr_demonitor(hctx_t *c) {
  (void)c;
  EQ(tr_demonitor(0, 1u << 5), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_demonitor(0, UINT_MAX), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_demonitor(0, 0), 0);
  AO(tr_demonitor(UINT64_MAX, TR_DEMONITOR_FLUSH), 0);
  AO(tr_demonitor(UINT64_C(0x8000000000000001), 0), 0);
}

/* ------------------------------------------------------------------------ */
/* Rows: resource ledger                                                    */
/* ------------------------------------------------------------------------ */

static void free_cb(void *p) { free(p); }

static void row_tr_defer(hctx_t *c) {
  (void)c;
  EQ(tr_defer(NULL, NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
  if (IN_ACTOR) {
    EQ(tr_defer(free_cb, malloc(16)), 0); /* freed at exit: ASan checks */
    EQ(tr_defer(free_cb, NULL), 0);
  } else {
    EQ(tr_defer(free_cb, NULL), CTXERR);
  }
}

static void row_tr_arena_alloc(hctx_t *c) {
  (void)c;
  OK(tr_arena_alloc(0) == NULL);
  OK(tr_arena_alloc(SIZE_MAX) == NULL);
  OK(tr_arena_alloc(SIZE_MAX - 15) == NULL);
  OK(tr_arena_alloc(SIZE_MAX - 16) == NULL); /* no such memory */
  if (!tr_test_on_valgrind()) /* valgrind reports the size as an error */
    OK(tr_arena_alloc(SIZE_MAX / 2) == NULL);
  if (IN_ACTOR) {
    char *p = tr_arena_alloc(1);
    OK(p != NULL && ((uintptr_t)p & 15) == 0);
  } else {
    OK(tr_arena_alloc(16) == NULL);
  }
}

/* ------------------------------------------------------------------------ */
/* Rows: messages                                                           */
/* ------------------------------------------------------------------------ */

static const unsigned char bad_msgpack[][3] = {
    {0xc1, 0, 0},     /* never used */
    {0x92, 0x01, 0},  /* [1, ? (with len 2) */
    {0xa5, 'a', 'b'}, /* str 5 with 2 bytes */
};

/* The send rows: the arguments checked before the context, then after. */
static void sends_common(int (*send)(tr_pid_t, const void *, size_t),
                         tr_pid_t to) {
  static unsigned char deep[1100];
  memset(deep, 0x91, sizeof(deep)); /* 1099 nested arrays then 0x91... */
  deep[sizeof(deep) - 1] = 0xc0;
  if (!IN_ACTOR) {
    EQ(send(to, "\x01", 1), CTXERR);
    return;
  }
  EQ(send(to, NULL, 1), TR_EINVAL);
  EQ(send(to, NULL, 0), TR_EINVAL);
  EQ(send(to, "\x01", 0), TR_EINVAL);
  EQ(send(to, "\x01", TR_MSG_MAX + 1), TR_EMSGSIZE);
  EQ(send(to, "\x01", SIZE_MAX), TR_EMSGSIZE);
  EQ(send(to, bad_msgpack[0], 1), TR_EBADMSG);
  EQ(send(to, bad_msgpack[1], 2), TR_EBADMSG);
  EQ(send(to, bad_msgpack[2], 3), TR_EBADMSG);
  EQ(send(to, "\x01\x02", 2), TR_EBADMSG); /* two values */
  EQ(send(to, deep, sizeof(deep)), TR_EBADMSG); /* deeper than 1024 */
  EQ(send(to, "\x01", 1), 0);
}

static void row_tr_send(hctx_t *c) {
  for (size_t i = 0; i < NBAD; i++) AO(tr_send(bad_pids[i], "\x01", 1), 0);
  AO(tr_send(c->stale, "\x01", 1), 0);
  sends_common(tr_send, c->stale);
}

static void row_tr_send_obj(hctx_t *c) {
  msgpack_object o, items[2];
  EQ(tr_send_obj(c->stale, NULL), TR_EINVAL);
  AO(tr_send_obj(c->stale, &nil_obj), 0);
  for (size_t i = 0; i < NBAD; i++) AO(tr_send_obj(bad_pids[i], &nil_obj), 0);
  if (!IN_ACTOR) return;
  memset(&o, 0, sizeof(o));
  o.type = MSGPACK_OBJECT_ARRAY; /* 5 elements, no storage */
  o.via.array.size = 5;
  o.via.array.ptr = NULL;
  EQ(tr_send_obj(c->stale, &o), TR_EINVAL);
  o.type = MSGPACK_OBJECT_MAP;
  o.via.map.size = 3;
  o.via.map.ptr = NULL;
  EQ(tr_send_obj(c->stale, &o), TR_EINVAL);
  o.type = MSGPACK_OBJECT_STR; /* 5 bytes, no storage */
  o.via.str.size = 5;
  o.via.str.ptr = NULL;
  EQ(tr_send_obj(c->stale, &o), TR_EINVAL);
  o.type = MSGPACK_OBJECT_BIN;
  EQ(tr_send_obj(c->stale, &o), TR_EINVAL);
  o.type = MSGPACK_OBJECT_EXT;
  o.via.ext.size = 9;
  o.via.ext.ptr = NULL;
  EQ(tr_send_obj(c->stale, &o), TR_EINVAL);
  o.type = MSGPACK_OBJECT_STR; /* claims more than a message may hold */
  o.via.str.size = UINT32_MAX;
  o.via.str.ptr = "x";
  EQ(tr_send_obj(c->stale, &o), TR_EMSGSIZE);
  o.type = (msgpack_object_type)77; /* no such type */
  EQ(tr_send_obj(c->stale, &o), TR_EINVAL);
  items[0] = nil_obj;
  items[1].type = (msgpack_object_type)-1; /* a bad element inside */
  o.type = MSGPACK_OBJECT_ARRAY;
  o.via.array.size = 2;
  o.via.array.ptr = items;
  EQ(tr_send_obj(c->stale, &o), TR_EINVAL);
  /* self-referencing: deeper than any message may nest */
  o.via.array.size = 1;
  o.via.array.ptr = &o;
  EQ(tr_send_obj(c->stale, &o), TR_EBADMSG);
  o.type = MSGPACK_OBJECT_STR;
  o.via.str.size = 0;
  o.via.str.ptr = NULL; /* empty: fine */
  EQ(tr_send_obj(c->stale, &o), 0);
}

static void row_tr_send_tagged(hctx_t *c) {
  char big[2];
  big[0] = 'x';
  EQ(tr_send_tagged(c->stale, NULL, NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_send_tagged(c->stale, "t", NULL), 0);
  AO(tr_send_tagged(TR_PID_NONE, "t", "s", (const char *)NULL), 0);
  if (!IN_ACTOR) return;
  EQ(tr_send_tagged(c->stale, "t", "?"), TR_EINVAL);
  EQ(tr_send_tagged(c->stale, "t", "i%", (int64_t)1), TR_EINVAL);
  EQ(tr_send_tagged(c->stale, "t", "S", (const char *)NULL, (size_t)3), TR_EINVAL);
  EQ(tr_send_tagged(c->stale, "t", "B", (const void *)NULL, (size_t)1), TR_EINVAL);
  EQ(tr_send_tagged(c->stale, "t", "S", big, (size_t)TR_MSG_MAX + 1), TR_EMSGSIZE);
  EQ(tr_send_tagged(c->stale, "t", "B", big, SIZE_MAX), TR_EMSGSIZE);
  EQ(tr_send_tagged(c->stale, "t", "I", (const int64_t *)NULL, (size_t)2), TR_EINVAL);
  EQ(tr_send_tagged(c->stale, "t", "I", (const int64_t *)(const void *)big, SIZE_MAX),
     TR_EMSGSIZE);
  EQ(tr_send_tagged(c->stale, "t", "I", (const int64_t *)NULL, (size_t)0), 0);
  EQ(tr_send_tagged(c->stale, "t", "S", (const char *)NULL, (size_t)0), 0);
  EQ(tr_send_tagged(c->stale, "", ""), 0); /* an empty tag is a string */
}

static int send_tagged_v_wrap(tr_pid_t to, const char *tag, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = tr_send_tagged_v(to, tag, fmt, ap);
  va_end(ap);
  return rc;
}

static void row_tr_send_tagged_v(hctx_t *c) {
  char b = 'x';
  EQ(send_tagged_v_wrap(c->stale, NULL, NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(send_tagged_v_wrap(c->stale, "t", "iu", (int64_t)-1, UINT64_MAX), 0);
  if (!IN_ACTOR) return;
  EQ(send_tagged_v_wrap(c->stale, "t", "Z"), TR_EINVAL);
  EQ(send_tagged_v_wrap(c->stale, "t", "B", &b, SIZE_MAX), TR_EMSGSIZE);
}

static void row_tr_send_named(hctx_t *c) {
  static char longname[TR_NAME_MAX * 2];
  (void)c;
  memset(longname, 'q', sizeof(longname) - 1);
  AO(tr_send_named("nobody", "\x01", 1), TR_ENOENT);
  if (!IN_ACTOR) {
    EQ(tr_send_named(NULL, "\x01", 1), CTXERR);
    return;
  }
  EQ(tr_send_named(NULL, "\x01", 1), TR_EINVAL);
  EQ(tr_send_named("", "\x01", 1), TR_EINVAL);
  EQ(tr_send_named(longname, "\x01", 1), TR_EINVAL);
  EQ(tr_register("me", tr_self()), 0);
  EQ(tr_send_named("me", NULL, 1), TR_EINVAL);
  EQ(tr_send_named("me", "\xc1", 1), TR_EBADMSG);
  EQ(tr_send_named("me", "\x01", TR_MSG_MAX + 1), TR_EMSGSIZE);
  EQ(tr_send_named("me", "\x01", 1), 0);
  EQ(tr_mailbox_len(), 1);
}

static void row_tr_runtime_send(hctx_t *c) {
  EQ(tr_runtime_send(NULL, c->stale, "\x01", 1), TR_EINVAL);
  if (!HAS_RT) return; /* rt from a foreign thread: see the report */
  EQ(tr_runtime_send(c->rt, c->stale, NULL, 1), TR_EINVAL);
  EQ(tr_runtime_send(c->rt, c->stale, "\x01", 0), TR_EINVAL);
  EQ(tr_runtime_send(c->rt, c->stale, "\x01", SIZE_MAX), TR_EMSGSIZE);
  EQ(tr_runtime_send(c->rt, c->stale, "\xc1", 1), TR_EBADMSG);
  EQ(tr_runtime_send(c->rt, c->stale, "\x01", 1), 0);
  for (size_t i = 0; i < NBAD; i++)
    EQ(tr_runtime_send(c->rt, bad_pids[i], "\x01", 1), 0);
  if (H->w == W_OUTSIDE) { /* another runtime's handle from this thread */
    EQ(tr_runtime_send(c->other, c->stale, "\x01", 1), TR_EWRONGTHREAD);
  }
}

static void row_tr_pack_tagged(hctx_t *c) {
  void *data = (void *)1;
  size_t len = 99;
  char b = 'b';
  (void)c;
  EQ(tr_pack_tagged(NULL, &len, "t", NULL), TR_EINVAL);
  EQ(len, 0);
  EQ(tr_pack_tagged(&data, NULL, "t", NULL), TR_EINVAL);
  OK(data == NULL);
  EQ(tr_pack_tagged(&data, &len, NULL, NULL), TR_EINVAL);
  OK(data == NULL && len == 0);
  EQ(tr_pack_tagged(&data, &len, "t", "x"), TR_EINVAL);
  EQ(tr_pack_tagged(&data, &len, "t", "B", (const void *)NULL, (size_t)5), TR_EINVAL);
  EQ(tr_pack_tagged(&data, &len, "t", "B", &b, SIZE_MAX), TR_EMSGSIZE);
  EQ(tr_pack_tagged(&data, &len, "t", "I", (const int64_t *)NULL, (size_t)5), TR_EINVAL);
  EQ(tr_pack_tagged(&data, &len, "t", "I", (const int64_t *)(const void *)&b, SIZE_MAX),
     TR_EMSGSIZE);
  OK(data == NULL);
  EQ(tr_pack_tagged(&data, &len, "t", "nsp", (const char *)NULL, UINT64_MAX), 0);
  EQ(tr_msgpack_validate(data, len), 0);
  free(data);
}

static int pack_tagged_v_wrap(void **d, size_t *l, const char *tag,
                              const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = tr_pack_tagged_v(d, l, tag, fmt, ap);
  va_end(ap);
  return rc;
}

static void row_tr_pack_tagged_v(hctx_t *c) {
  void *data;
  size_t len;
  (void)c;
  EQ(pack_tagged_v_wrap(NULL, NULL, NULL, NULL), TR_EINVAL);
  EQ(pack_tagged_v_wrap(&data, &len, NULL, "i", (int64_t)1), TR_EINVAL);
  EQ(pack_tagged_v_wrap(&data, &len, "t", "S", (const char *)NULL, SIZE_MAX), TR_EINVAL);
  OK(data == NULL);
}

static void row_tr_pack_pid(hctx_t *c) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  (void)c;
  EQ(tr_pack_pid(NULL, 1), TR_EINVAL);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  EQ(tr_pack_pid(&pk, UINT64_MAX), 0);
  EQ(tr_pack_pid(&pk, TR_PID_NONE), 0);
  EQ(sb.size, 20);
  msgpack_sbuffer_destroy(&sb);
}

static void row_tr_obj_pid(hctx_t *c) {
  msgpack_object o;
  tr_pid_t pid = 5;
  (void)c;
  EQ(tr_obj_pid(NULL, &pid), TR_EINVAL);
  EQ(tr_obj_pid(&nil_obj, NULL), TR_EINVAL);
  EQ(tr_obj_pid(&nil_obj, &pid), TR_EINVAL);
  memset(&o, 0, sizeof(o));
  o.type = MSGPACK_OBJECT_EXT;
  o.via.ext.type = TR_EXT_PID;
  o.via.ext.size = 7; /* not 8 bytes */
  o.via.ext.ptr = "1234567";
  EQ(tr_obj_pid(&o, &pid), TR_EINVAL);
  o.via.ext.type = 2; /* another ext type */
  o.via.ext.size = 8;
  o.via.ext.ptr = "12345678";
  EQ(tr_obj_pid(&o, &pid), TR_EINVAL);
  EQ(pid, 5);
}

static void row_tr_msgpack_validate(hctx_t *c) {
  (void)c;
  EQ(tr_msgpack_validate(NULL, 0), TR_EINVAL);
  EQ(tr_msgpack_validate(NULL, 10), TR_EINVAL);
  EQ(tr_msgpack_validate("\x01", 0), TR_EINVAL);
  EQ(tr_msgpack_validate("\x01", SIZE_MAX), TR_EMSGSIZE);
  EQ(tr_msgpack_validate("\x01", TR_MSG_MAX + 1), TR_EMSGSIZE);
  EQ(tr_msgpack_validate("\xdd\xff\xff\xff\xff", 5), TR_EBADMSG); /* 4G elems */
  EQ(tr_msgpack_validate("\xdb\xff\xff\xff\xff", 5), TR_EBADMSG); /* 4G str */
  EQ(tr_msgpack_validate("\xc0", 1), 0);
}

static int match_never(const tr_msg_t *m, void *arg) {
  (void)m;
  (void)arg;
  return 0;
}

static void row_tr_recv(hctx_t *c) {
  tr_msg_t *m = (tr_msg_t *)1;
  (void)c;
  EQ(tr_recv(NULL, 0), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_recv(&m, -2), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_recv(&m, INT_MIN), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_recv(&m, 0), TR_ETIMEDOUT);
  AO(tr_recv(&m, 1), TR_ETIMEDOUT);
  if (IN_ACTOR) OK(m == NULL);
}

static void row_tr_recv_tag(hctx_t *c) {
  tr_msg_t *m;
  (void)c;
  EQ(tr_recv_tag(NULL, "t", 0), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_recv_tag(&m, NULL, 0), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_recv_tag(&m, "t", -5), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_recv_tag(&m, "", 0), TR_ETIMEDOUT);
  if (!IN_ACTOR) return;
  /* bodies that only look like tagged arrays */
  EQ(tr_send(tr_self(), "\x91\xc4\x01t", 4), 0); /* [bin "t"] */
  EQ(tr_send(tr_self(), "\x90", 1), 0);          /* [] */
  EQ(tr_send(tr_self(), "\xa1t", 2), 0);         /* "t" */
  EQ(tr_recv_tag(&m, "t", 0), TR_ETIMEDOUT);
  EQ(tr_mailbox_len(), 3);
  while (tr_recv(&m, 0) == 0) tr_msg_free(m);
}

static void row_tr_recv_match(hctx_t *c) {
  tr_msg_t *m;
  (void)c;
  EQ(tr_recv_match(NULL, match_never, NULL, 0), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_recv_match(&m, NULL, NULL, 0), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_recv_match(&m, match_never, NULL, -3), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_recv_match(&m, match_never, NULL, 0), TR_ETIMEDOUT);
  if (IN_ACTOR) {
    EQ(tr_send(tr_self(), "\x01", 1), 0);
    EQ(tr_recv_match(&m, match_never, NULL, 1), TR_ETIMEDOUT);
    EQ(tr_mailbox_len(), 1);
    EQ(tr_recv(&m, 0), 0);
    tr_msg_free(m);
  }
}

/* A received message, or NULL outside actors. */
static tr_msg_t *own_msg(const void *body, size_t len) {
  tr_msg_t *m = NULL;
  if (!IN_ACTOR) return NULL;
  if (tr_send(tr_self(), body, len) != 0 || tr_recv(&m, 0) != 0)
    h_fail(__LINE__, "cannot receive own message");
  return m;
}

static void row_tr_msg_free(hctx_t *c) {
  (void)c;
  tr_msg_free(NULL);
  tr_msg_free(own_msg("\x01", 1));
  OK(1);
}

static void row_tr_msg_kind(hctx_t *c) {
  tr_msg_t *m = own_msg("\x01", 1);
  (void)c;
  EQ(tr_msg_kind(NULL), TR_MSG_USER);
  if (m) EQ(tr_msg_kind(m), TR_MSG_USER);
  tr_msg_free(m);
}

static void row_tr_msg_from(hctx_t *c) {
  tr_msg_t *m = own_msg("\x01", 1);
  (void)c;
  EQ(tr_msg_from(NULL), TR_PID_NONE);
  if (m) EQ(tr_msg_from(m), tr_self());
  tr_msg_free(m);
}

static void row_tr_msg_ref(hctx_t *c) {
  tr_msg_t *m = own_msg("\x01", 1);
  (void)c;
  EQ(tr_msg_ref(NULL), 0);
  if (m) EQ(tr_msg_ref(m), 0);
  tr_msg_free(m);
}

static void row_tr_msg_data(hctx_t *c) {
  size_t len = 99;
  tr_msg_t *m = own_msg("\x01", 1);
  (void)c;
  OK(tr_msg_data(NULL, &len) == NULL);
  EQ(len, 0);
  OK(tr_msg_data(NULL, NULL) == NULL);
  if (m) {
    OK(tr_msg_data(m, NULL) != NULL);
    OK(tr_msg_data(m, &len) != NULL && len == 1);
  }
  tr_msg_free(m);
}

static void row_tr_msg_obj(hctx_t *c) {
  tr_msg_t *m = own_msg("\x92\x01\x90", 3);
  (void)c;
  OK(tr_msg_obj(NULL) == NULL);
  if (m) {
    const msgpack_object *o = tr_msg_obj(m);
    OK(o != NULL && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2);
    OK(tr_msg_obj(m) == o); /* decoded once */
  }
  tr_msg_free(m);
}

static void row_tr_msg_reason(hctx_t *c) {
  tr_reason_t r;
  tr_msg_t *m = own_msg("\x01", 1);
  (void)c;
  EQ(tr_msg_reason(NULL, &r), TR_EINVAL);
  EQ(tr_msg_reason(NULL, NULL), TR_EINVAL);
  if (m) {
    EQ(tr_msg_reason(m, &r), TR_EINVAL); /* a USER message has none */
    EQ(tr_msg_reason(m, NULL), TR_EINVAL);
  }
  tr_msg_free(m);
}

static void row_tr_msg_is_tag(hctx_t *c) {
  tr_msg_t *m = own_msg("\x92\xa1t\x01", 4);
  (void)c;
  EQ(tr_msg_is_tag(NULL, "t"), 0);
  EQ(tr_msg_is_tag(NULL, NULL), 0);
  if (m) {
    EQ(tr_msg_is_tag(m, NULL), 0);
    EQ(tr_msg_is_tag(m, ""), 0);
    EQ(tr_msg_is_tag(m, "tt"), 0);
    EQ(tr_msg_is_tag(m, "t"), 1);
  }
  tr_msg_free(m);
}

static void row_tr_msg_unpack(hctx_t *c) {
  tr_msg_t *m = own_msg("\x93\xa1t\x01\xc4\x01x", 7); /* ["t", 1, bin] */
  int64_t i = 5;
  const void *b;
  const char *s;
  size_t n;
  (void)c;
  EQ(tr_msg_unpack(NULL, "t", "iB", &i, &b, &n), TR_EINVAL);
  EQ(tr_msg_unpack(NULL, NULL, NULL), TR_EINVAL);
  if (m) {
    EQ(tr_msg_unpack(m, NULL, "iB", &i, &b, &n), TR_EINVAL);
    EQ(tr_msg_unpack(m, "t", "iB", (int64_t *)NULL, &b, &n), TR_EINVAL);
    EQ(tr_msg_unpack(m, "t", "iB", &i, &b, (size_t *)NULL), TR_EINVAL);
    EQ(tr_msg_unpack(m, "t", "i?", &i), TR_EINVAL);
    EQ(tr_msg_unpack(m, "t", "is", &i, &b), TR_EINVAL);
    EQ(tr_msg_unpack(m, "t", "iI", &i, (int64_t *)NULL, SIZE_MAX, &n), TR_EINVAL);
    EQ(tr_msg_unpack(m, "", "iB", &i, &b, &n), TR_EBADMSG);
    EQ(tr_msg_unpack(m, "t", "iS", &i, &s, &n), TR_EBADMSG);
    EQ(tr_msg_unpack(m, "t", "iBn", &i, &b, &n), TR_EBADMSG);
    EQ(tr_msg_unpack(m, "t", NULL), TR_EBADMSG);
    EQ(tr_msg_unpack(m, "t", "iB", &i, &b, &n), 0);
    OK(i == 1 && n == 1);
  }
  tr_msg_free(m);
}

static void row_tr_msg_unpack_v(hctx_t *c) {
  tr_msg_t *m = own_msg("\x91\xa1t", 3); /* ["t"] */
  uint64_t u;
  (void)c;
  EQ(tr_test_unpack_v(NULL, "t", NULL), TR_EINVAL);
  if (m) {
    EQ(tr_test_unpack_v(m, NULL, NULL), TR_EINVAL);
    EQ(tr_test_unpack_v(m, "t", "u", (uint64_t *)NULL), TR_EINVAL);
    EQ(tr_test_unpack_v(m, "t", "u", &u), TR_EBADMSG);
    EQ(tr_test_unpack_v(m, "t", ""), 0);
  }
  tr_msg_free(m);
}

static void row_tr_mailbox_len(hctx_t *c) {
  (void)c;
  EQ(tr_mailbox_len(), 0);
}

static void row_tr_mailbox_limit(hctx_t *c) {
  (void)c;
  EQ(tr_mailbox_limit(1, (tr_mailbox_policy_t)3), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_mailbox_limit(1, (tr_mailbox_policy_t)-1), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_mailbox_limit(SIZE_MAX, TR_MAILBOX_EXIT), 0);
  AO(tr_mailbox_limit(0, TR_MAILBOX_DROP_NEWEST), 0);
}

static void row_tr_mailbox_len_of(hctx_t *c) {
  size_t len = 5;
  int nort = HAS_RT ? TR_ENOPROC : TR_EWRONGTHREAD;
  EQ(tr_mailbox_len_of(c->stale, NULL), TR_EINVAL);
  EQ(tr_mailbox_len_of(c->stale, &len), nort);
  EQ(len, 0);
  for (size_t i = 0; i < NBAD; i++) EQ(tr_mailbox_len_of(bad_pids[i], &len), nort);
  if (IN_ACTOR) {
    EQ(tr_mailbox_len_of(tr_self(), &len), 0);
    EQ(tr_mailbox_len_of(c->live, &len), 0);
  }
}

static void row_tr_mailbox_stats(hctx_t *c) {
  tr_mailbox_stats_t st;
  int nort = HAS_RT ? TR_ENOPROC : TR_EWRONGTHREAD;
  memset(&st, 0xff, sizeof(st));
  EQ(tr_mailbox_stats(c->stale, NULL), TR_EINVAL);
  EQ(tr_mailbox_stats(c->stale, &st), nort);
  EQ(st.len, 0);
  EQ(st.dropped, 0);
  for (size_t i = 0; i < NBAD; i++) EQ(tr_mailbox_stats(bad_pids[i], &st), nort);
  if (IN_ACTOR) EQ(tr_mailbox_stats(tr_self(), &st), 0);
}

/* ------------------------------------------------------------------------ */
/* Rows: call / reply                                                       */
/* ------------------------------------------------------------------------ */

static void row_tr_call(hctx_t *c) {
  tr_msg_t *r = (tr_msg_t *)1;
  tr_reason_t why;
  EQ(tr_call(c->stale, "\x01", 1, NULL, 0, NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_call(c->stale, "\x01", 1, &r, -2, NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_call(c->stale, "\x01", 1, &r, 0, &why), TR_EDOWN);
  if (!IN_ACTOR) return;
  OK(r == NULL);
  EQ(why.kind, TR_REASON_NOPROC);
  for (size_t i = 0; i < NBAD; i++) EQ(tr_call(bad_pids[i], "\x01", 1, &r, -1, NULL), TR_EDOWN);
  EQ(tr_call(tr_self(), "\x01", 1, &r, -1, NULL), TR_ESELF);
  EQ(tr_call(c->live, NULL, 1, &r, -1, NULL), TR_EINVAL);
  EQ(tr_call(c->live, "\x01", 0, &r, -1, NULL), TR_EINVAL);
  EQ(tr_call(c->live, "\xc1", 1, &r, -1, NULL), TR_EBADMSG);
  EQ(tr_call(c->live, "\x01", SIZE_MAX, &r, -1, NULL), TR_EMSGSIZE);
  EQ(tr_call(c->stale, NULL, 1, &r, -1, NULL), TR_EINVAL);
  EQ(tr_mailbox_len(), 0); /* no monitor or DOWN left behind */
  EQ(tr_call(c->live, "\x01", 1, &r, 1000, NULL), 0);
  tr_msg_free(r);
}

static void row_tr_reply(hctx_t *c) {
  tr_msg_t *m = own_msg("\x01", 1);
  (void)c;
  EQ(tr_reply(NULL, "\x01", 1), IN_ACTOR ? TR_EINVAL : CTXERR);
  if (!IN_ACTOR) return;
  EQ(tr_reply(m, "\x01", 1), TR_EINVAL); /* not a CALL */
  tr_msg_free(m);
}

/* The server side of tr_reply with hostile data: a helper that calls us. */
static void caller_actor(void *arg) {
  tr_msg_t *r = NULL;
  tr_call(*(tr_pid_t *)arg, "\x01", 1, &r, 5000, NULL);
  tr_msg_free(r);
}

static void reply_hostile(hctx_t *c) {
  tr_pid_t me = tr_self(), caller;
  tr_msg_t *m;
  (void)c;
  EQ(tr_spawn_link(caller_actor, &me, &caller), 0);
  EQ(tr_recv(&m, 2000), 0);
  EQ(tr_msg_kind(m), TR_MSG_CALL);
  EQ(tr_reply(m, NULL, 1), TR_EINVAL);
  EQ(tr_reply(m, "\x01", 0), TR_EINVAL);
  EQ(tr_reply(m, "\xc1", 1), TR_EBADMSG);
  EQ(tr_reply(m, "\x01", SIZE_MAX), TR_EMSGSIZE);
  EQ(tr_reply(m, "\x01", 1), 0);
  EQ(tr_reply(m, "\x02", 1), 0); /* a second reply is dropped on delivery */
  tr_msg_free(m);
}

/* ------------------------------------------------------------------------ */
/* Rows: registry                                                           */
/* ------------------------------------------------------------------------ */

static char long_name[TR_NAME_MAX + 1];

static void row_tr_register(hctx_t *c) {
  tr_pid_t me = IN_ACTOR ? tr_self() : c->stale;
  memset(long_name, 'r', TR_NAME_MAX);
  if (!HAS_RT) {
    EQ(tr_register("n", c->stale), TR_EWRONGTHREAD);
    return;
  }
  EQ(tr_register(NULL, me), TR_EINVAL);
  EQ(tr_register("", me), TR_EINVAL);
  EQ(tr_register(long_name, me), TR_EINVAL);
  EQ(tr_register("n", c->stale), TR_ENOPROC);
  for (size_t i = 0; i < NBAD; i++) EQ(tr_register("n", bad_pids[i]), TR_ENOPROC);
  if (IN_ACTOR) {
    EQ(tr_register("n", me), 0);
    EQ(tr_register("n", c->live), TR_EEXIST);
    EQ(tr_register("m", me), TR_ENAMED);
  }
}

static void row_tr_unregister(hctx_t *c) {
  (void)c;
  if (!HAS_RT) {
    EQ(tr_unregister("n"), TR_EWRONGTHREAD);
    return;
  }
  memset(long_name, 'r', TR_NAME_MAX);
  EQ(tr_unregister(NULL), TR_EINVAL);
  EQ(tr_unregister(""), TR_EINVAL);
  EQ(tr_unregister(long_name), TR_EINVAL);
  EQ(tr_unregister("nobody"), TR_ENOENT);
}

static void row_tr_whereis(hctx_t *c) {
  tr_pid_t pid = 5;
  (void)c;
  if (!HAS_RT) {
    EQ(tr_whereis("n", &pid), TR_EWRONGTHREAD);
    return;
  }
  memset(long_name, 'r', TR_NAME_MAX);
  EQ(tr_whereis(NULL, &pid), TR_EINVAL);
  EQ(tr_whereis("n", NULL), TR_EINVAL);
  EQ(tr_whereis(long_name, &pid), TR_EINVAL);
  EQ(tr_whereis("nobody", &pid), TR_ENOENT);
  EQ(pid, TR_PID_NONE);
}

/* ------------------------------------------------------------------------ */
/* Rows: timers                                                             */
/* ------------------------------------------------------------------------ */

static void row_tr_sleep(hctx_t *c) {
  (void)c;
  EQ(tr_sleep(UINT64_MAX), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_sleep(UINT64_MAX / 2 + 1), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_sleep(0), 0);
  AO(tr_sleep(1), 0);
}

static void row_tr_send_after(hctx_t *c) {
  tr_ref_t ref = 7;
  EQ(tr_send_after(c->stale, UINT64_MAX, "\x01", 1, &ref), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_send_after(c->stale, 1, "\x01", 1, &ref), 0);
  if (!IN_ACTOR) return;
  EQ(ref, 0); /* a dead target: no timer */
  for (size_t i = 0; i < NBAD; i++) EQ(tr_send_after(bad_pids[i], 1, "\x01", 1, NULL), 0);
  EQ(tr_send_after(tr_self(), 1, NULL, 1, &ref), TR_EINVAL);
  EQ(tr_send_after(tr_self(), 1, "\x01", 0, &ref), TR_EINVAL);
  EQ(tr_send_after(tr_self(), 1, "\xc1", 1, &ref), TR_EBADMSG);
  EQ(tr_send_after(tr_self(), 1, "\x01", SIZE_MAX, &ref), TR_EMSGSIZE);
  /* a far timer that is pending when the actor exits: released with it */
  EQ(tr_send_after(tr_self(), UINT64_MAX / 2, "\x01", 1, &ref), 0);
  EQ(tr_send_after(c->live, UINT64_MAX / 2, "\x01", 1, NULL), 0);
}

static void row_tr_cancel_timer(hctx_t *c) {
  tr_ref_t ref;
  (void)c;
  AO(tr_cancel_timer(0), TR_ENOENT);
  AO(tr_cancel_timer(UINT64_MAX), TR_ENOENT);
  AO(tr_cancel_timer(UINT64_C(0x0000000100000001)), TR_ENOENT);
  AO(tr_cancel_timer(UINT64_C(0x8000000000000001)), TR_ENOENT);
  if (!IN_ACTOR) return;
  EQ(tr_send_after(tr_self(), 100000, "\x01", 1, &ref), 0);
  EQ(tr_cancel_timer(ref), 0);
  EQ(tr_cancel_timer(ref), TR_ENOENT); /* stale */
  EQ(tr_cancel_timer(ref + (UINT64_C(1) << 32)), TR_ENOENT);
}

/* ------------------------------------------------------------------------ */
/* Rows: I/O                                                                */
/* ------------------------------------------------------------------------ */

static void row_tr_io_close(hctx_t *c) {
  (void)c;
  /* callable on the runtime's thread outside actors too */
  for (size_t i = 0; i < NBADIO; i++)
    EQ(tr_io_close(bad_ios[i]), HAS_RT ? UV_EBADF : TR_ENOTACTOR);
  if (IN_ACTOR) {
    tr_io_t h = stale_io();
    EQ(tr_io_close(h), UV_EBADF);
  }
}

static void row_tr_io_give(hctx_t *c) {
  for (size_t i = 0; i < NBADIO; i++) AO(tr_io_give(bad_ios[i], c->stale), UV_EBADF);
  if (IN_ACTOR) {
    tr_io_t h = listener();
    EQ(tr_io_give(h, c->stale), TR_ENOPROC);
    for (size_t i = 0; i < NBAD; i++) EQ(tr_io_give(h, bad_pids[i]), TR_ENOPROC);
    EQ(tr_io_give(h, tr_self()), 0);
    EQ(tr_io_give(h, c->live), 0);
    EQ(tr_io_give(h, tr_self()), UV_EPERM); /* no longer ours */
    EQ(tr_io_close(h), UV_EPERM);
    EQ(tr_io_give(stale_io(), tr_self()), UV_EBADF);
  }
}

static void row_tr_io_owner(hctx_t *c) {
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) EQ(tr_io_owner(bad_ios[i]), TR_PID_NONE);
  if (IN_ACTOR) EQ(tr_io_owner(stale_io()), TR_PID_NONE);
}

static void sockaddr_rows(int (*fn)(tr_io_t, struct sockaddr_storage *)) {
  struct sockaddr_storage ss;
  for (size_t i = 0; i < NBADIO; i++) AO(fn(bad_ios[i], &ss), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t h = listener();
    tr_io_t f = TR_IO_NONE;
    EQ(fn(h, NULL), TR_EINVAL);
    EQ(fn(stale_io(), &ss), UV_EBADF);
    EQ(tr_fs_open(&f, "/dev/null", O_RDONLY, 0), 0);
    EQ(fn(f, &ss), TR_EINVAL); /* a file has no address */
    EQ(tr_fs_close(f), 0);
    tr_io_close(h);
  }
}

static void row_tr_io_sockname(hctx_t *c) {
  (void)c;
  sockaddr_rows(tr_io_sockname);
}

static void row_tr_io_peername(hctx_t *c) {
  (void)c;
  sockaddr_rows(tr_io_peername);
  if (IN_ACTOR) { /* a listener has no peer */
    struct sockaddr_storage ss;
    tr_io_t h = listener();
    EQ(tr_io_peername(h, &ss), UV_ENOTCONN);
    tr_io_close(h);
  }
}

static void row_tr_io_port(hctx_t *c) {
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_io_port(bad_ios[i]), UV_EBADF);
  if (IN_ACTOR) EQ(tr_io_port(stale_io()), UV_EBADF);
}

static void row_tr_ip_addr(hctx_t *c) {
  struct sockaddr_storage ss;
  (void)c;
  EQ(tr_ip_addr("127.0.0.1", 80, NULL), TR_EINVAL);
  EQ(tr_ip_addr("not an address", 80, &ss), TR_EINVAL);
  EQ(tr_ip_addr("", 80, &ss), TR_EINVAL);
  EQ(tr_ip_addr("127.0.0.1", -1, &ss), TR_EINVAL);
  EQ(tr_ip_addr("127.0.0.1", 65536, &ss), TR_EINVAL);
  EQ(tr_ip_addr("127.0.0.1", INT_MIN, &ss), TR_EINVAL);
  EQ(tr_ip_addr("999.1.1.1", 1, &ss), TR_EINVAL);
  EQ(tr_ip_addr(NULL, 0, &ss), 0); /* 0.0.0.0 */
  EQ(tr_ip_addr("::1", 65535, &ss), 0);
}

static void row_tr_addr_port(hctx_t *c) {
  struct sockaddr_storage ss;
  (void)c;
  EQ(tr_addr_port(NULL), TR_EINVAL);
  memset(&ss, 0, sizeof(ss));
  ss.ss_family = AF_UNIX;
  EQ(tr_addr_port(&ss), TR_EINVAL);
  ss.ss_family = 0xffff;
  EQ(tr_addr_port(&ss), TR_EINVAL);
}

static void row_tr_tcp_listen(hctx_t *c) {
  tr_io_t h = 5;
  (void)c;
  AO(tr_tcp_listen(NULL, "127.0.0.1", 0, 0), TR_EINVAL);
  if (!IN_ACTOR) {
    EQ(tr_tcp_listen(&h, "127.0.0.1", 0, 0), CTXERR);
    return;
  }
  EQ(tr_tcp_listen(&h, "bogus", 0, 0), TR_EINVAL);
  EQ(h, TR_IO_NONE);
  EQ(tr_tcp_listen(&h, "127.0.0.1", 65536, 0), TR_EINVAL);
  EQ(tr_tcp_listen(&h, "127.0.0.1", -5, 0), TR_EINVAL);
  EQ(tr_tcp_listen(&h, "127.0.0.1", 0, INT_MIN), 0); /* backlog <= 0: default */
  EQ(tr_io_close(h), 0);
  EQ(tr_tcp_listen(&h, "127.0.0.1", 0, INT_MAX), 0);
  {
    tr_io_t h2 = 5; /* the same port again */
    EQ(tr_tcp_listen(&h2, "127.0.0.1", tr_io_port(h), 0), UV_EADDRINUSE);
    EQ(h2, TR_IO_NONE);
  }
  EQ(tr_io_close(h), 0);
}

static void row_tr_tcp_accept(hctx_t *c) {
  tr_io_t conn = 5;
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_tcp_accept(bad_ios[i], &conn, 0), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t srv = listener(), a, b;
    EQ(tr_tcp_accept(srv, NULL, 0), TR_EINVAL);
    EQ(tr_tcp_accept(srv, &conn, 0), TR_ETIMEDOUT);
    EQ(conn, TR_IO_NONE);
    EQ(tr_tcp_accept(srv, &conn, 1), TR_ETIMEDOUT);
    tcp_pair(&a, &b);
    EQ(tr_tcp_accept(a, &conn, 0), TR_EINVAL); /* not a listener */
    EQ(tr_tcp_accept(stale_io(), &conn, 0), UV_EBADF);
    tr_io_close(a);
    tr_io_close(b);
    tr_io_close(srv);
  }
}

static void row_tr_tcp_connect(hctx_t *c) {
  tr_io_t conn = 5;
  (void)c;
  AO(tr_tcp_connect(&conn, "127.0.0.1", 1, 1000), UV_ECONNREFUSED);
  EQ(conn, IN_ACTOR ? TR_IO_NONE : 5);
  EQ(tr_tcp_connect(&conn, NULL, 80, 0), TR_EINVAL);
  EQ(tr_tcp_connect(&conn, "bogus", 80, 0), TR_EINVAL);
  EQ(tr_tcp_connect(&conn, "127.0.0.1", 70000, 0), TR_EINVAL);
  EQ(tr_tcp_connect(NULL, "127.0.0.1", 80, 0), IN_ACTOR ? TR_EINVAL : CTXERR);
}

static void row_tr_tcp_connect_addr(hctx_t *c) {
  struct sockaddr_storage ss;
  tr_io_t conn = 5;
  (void)c;
  tr_ip_addr("127.0.0.1", 1, &ss);
  EQ(tr_tcp_connect_addr(&conn, NULL, 0), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_tcp_connect_addr(NULL, (struct sockaddr *)&ss, 0), IN_ACTOR ? TR_EINVAL : CTXERR);
  if (!IN_ACTOR) return;
  ss.ss_family = AF_UNIX;
  EQ(tr_tcp_connect_addr(&conn, (struct sockaddr *)&ss, 1000), UV_EINVAL);
  EQ(conn, TR_IO_NONE);
  ss.ss_family = 0x7777;
  EQ(tr_tcp_connect_addr(&conn, (struct sockaddr *)&ss, 1000), UV_EINVAL);
}

static void row_tr_tcp_read(hctx_t *c) {
  char buf[16];
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_tcp_read(bad_ios[i], buf, sizeof(buf), 0), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t a, b, srv = listener();
    tcp_pair(&a, &b);
    EQ(tr_tcp_read(a, NULL, 4, 0), TR_EINVAL);
    EQ(tr_tcp_read(a, buf, 0, 0), TR_EINVAL);
    EQ(tr_tcp_read(a, buf, sizeof(buf), 0), TR_ETIMEDOUT);
    EQ(tr_tcp_write(b, "hi", 2, 1000), 0);
    EQ(tr_tcp_read(a, buf, SIZE_MAX, 1000), 2); /* capped, reads what came */
    EQ(tr_tcp_read(srv, buf, sizeof(buf), 0), TR_EINVAL);
    EQ(tr_tcp_read(stale_io(), buf, sizeof(buf), 0), UV_EBADF);
    EQ(tr_tcp_read_async(a), 0);
    EQ(tr_tcp_read(a, buf, sizeof(buf), 0), TR_EBUSY); /* one armed */
    tr_io_close(a);
    tr_io_close(b);
    tr_io_close(srv);
  }
}

static void row_tr_tcp_read_exactly(hctx_t *c) {
  char buf[8];
  size_t got = 99;
  (void)c;
  for (size_t i = 0; i < NBADIO; i++)
    AO(tr_tcp_read_exactly(bad_ios[i], buf, 4, &got, 0), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t a, b;
    tcp_pair(&a, &b);
    EQ(tr_tcp_read_exactly(a, NULL, 4, &got, 0), TR_EINVAL);
    EQ(got, 0);
    EQ(tr_tcp_read_exactly(a, NULL, 0, NULL, 0), 0); /* nothing to read */
    EQ(tr_tcp_write(b, "abc", 3, 1000), 0);
    EQ(tr_tcp_read_exactly(a, buf, 5, &got, 200), TR_ETIMEDOUT);
    EQ(got, 3);
    tr_io_close(b);
    EQ(tr_tcp_read_exactly(a, buf, 5, &got, 1000), TR_EOF);
    EQ(got, 0);
    tr_io_close(a);
  }
}

static void row_tr_tcp_read_async(hctx_t *c) {
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_tcp_read_async(bad_ios[i]), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t srv = listener();
    EQ(tr_tcp_read_async(srv), TR_EINVAL);
    EQ(tr_tcp_read_async(stale_io()), UV_EBADF);
    tr_io_close(srv);
  }
}

static void row_tr_tcp_write(hctx_t *c) {
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_tcp_write(bad_ios[i], "x", 1, 0), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t a, b, srv = listener();
    tcp_pair(&a, &b);
    EQ(tr_tcp_write(a, NULL, 3, 0), TR_EINVAL);
    EQ(tr_tcp_write(a, NULL, 0, 0), 0);
    EQ(tr_tcp_write(a, "x", 0, 0), 0);
    EQ(tr_tcp_write(srv, "x", 1, 0), TR_EINVAL);
    EQ(tr_tcp_write(stale_io(), "x", 1, 0), UV_EBADF);
    tr_io_close(a);
    tr_io_close(b);
    tr_io_close(srv);
  }
}

static void row_tr_tcp_shutdown(hctx_t *c) {
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_tcp_shutdown(bad_ios[i], 0), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t a, b, srv = listener();
    tcp_pair(&a, &b);
    EQ(tr_tcp_shutdown(srv, 0), TR_EINVAL);
    EQ(tr_tcp_shutdown(a, 1000), 0);
    EQ(tr_tcp_shutdown(a, 1000), UV_ENOTCONN); /* already shut */
    tr_io_close(a);
    tr_io_close(b);
    tr_io_close(srv);
  }
}

static void row_tr_tcp_close_reset(hctx_t *c) {
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_tcp_close_reset(bad_ios[i]), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t srv = listener();
    EQ(tr_tcp_close_reset(srv), TR_EINVAL);
    EQ(tr_tcp_close_reset(stale_io()), UV_EBADF);
    tr_io_close(srv);
  }
}

static void row_tr_tcp_nodelay(hctx_t *c) {
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_tcp_nodelay(bad_ios[i], 1), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t a, b;
    tcp_pair(&a, &b);
    EQ(tr_tcp_nodelay(a, INT_MIN), 0);
    EQ(tr_tcp_nodelay(stale_io(), 1), UV_EBADF);
    tr_io_close(a);
    tr_io_close(b);
  }
}

static void row_tr_udp_open(hctx_t *c) {
  tr_io_t h = 5;
  (void)c;
  AO(tr_udp_open(NULL, NULL, 0), TR_EINVAL);
  if (!IN_ACTOR) return;
  EQ(tr_udp_open(&h, "bogus", 0), TR_EINVAL);
  EQ(h, TR_IO_NONE);
  EQ(tr_udp_open(&h, "127.0.0.1", 65536), TR_EINVAL);
  EQ(tr_udp_open(&h, "127.0.0.1", -1), TR_EINVAL);
}

static void row_tr_udp_send(hctx_t *c) {
  struct sockaddr_storage ss;
  (void)c;
  tr_ip_addr("127.0.0.1", 9, &ss);
  for (size_t i = 0; i < NBADIO; i++)
    AO(tr_udp_send(bad_ios[i], "x", 1, (struct sockaddr *)&ss, 0), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t u = TR_IO_NONE, srv = listener();
    static char big[65537];
    EQ(tr_udp_open(&u, "127.0.0.1", 0), 0);
    EQ(tr_udp_send(u, NULL, 1, (struct sockaddr *)&ss, 0), TR_EINVAL);
    EQ(tr_udp_send(u, "x", 1, NULL, 0), TR_EINVAL);
    EQ(tr_udp_send(u, big, sizeof(big), (struct sockaddr *)&ss, 0), TR_EINVAL);
    EQ(tr_udp_send(u, big, SIZE_MAX, (struct sockaddr *)&ss, 0), TR_EINVAL);
    EQ(tr_udp_send(srv, "x", 1, (struct sockaddr *)&ss, 0), TR_EINVAL);
    EQ(tr_udp_send(stale_io(), "x", 1, (struct sockaddr *)&ss, 0), UV_EBADF);
    ss.ss_family = AF_UNIX;
    IN(tr_udp_send(u, "x", 1, (struct sockaddr *)&ss, 1000), UV_EINVAL, UV_EAFNOSUPPORT);
    tr_io_close(u);
    tr_io_close(srv);
  }
}

static void row_tr_udp_recv(hctx_t *c) {
  char buf[8];
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_udp_recv(bad_ios[i], buf, 8, NULL, 0), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t u = TR_IO_NONE, srv = listener();
    EQ(tr_udp_open(&u, "127.0.0.1", 0), 0);
    EQ(tr_udp_recv(u, NULL, 8, NULL, 0), TR_EINVAL);
    EQ(tr_udp_recv(u, buf, 8, NULL, 0), TR_ETIMEDOUT);
    EQ(tr_udp_recv(u, NULL, 0, NULL, 1), TR_ETIMEDOUT);
    EQ(tr_udp_recv(srv, buf, 8, NULL, 0), TR_EINVAL);
    EQ(tr_udp_recv(stale_io(), buf, 8, NULL, 0), UV_EBADF);
    tr_io_close(u);
    tr_io_close(srv);
  }
}

static void row_tr_fs_open(hctx_t *c) {
  tr_io_t f = 5;
  (void)c;
  AO(tr_fs_open(&f, missing_path(), O_RDONLY, 0), UV_ENOENT);
  EQ(tr_fs_open(NULL, "/dev/null", O_RDONLY, 0), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_fs_open(&f, NULL, O_RDONLY, 0), IN_ACTOR ? TR_EINVAL : CTXERR);
  if (!IN_ACTOR) return;
  EQ(f, TR_IO_NONE);
  EQ(tr_fs_open(&f, "", O_RDONLY, 0), UV_ENOENT);
  OK(tr_fs_open(&f, "/dev/null", -1, 0) < 0); /* every flag at once */
  EQ(f, TR_IO_NONE);
}

static void row_tr_fs_read(hctx_t *c) {
  static char buf[256 * 1024];
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_fs_read(bad_ios[i], buf, 8, 0), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t f = TR_IO_NONE, srv = listener();
    EQ(tr_fs_open(&f, "/dev/zero", O_RDONLY, 0), 0);
    EQ(tr_fs_read(f, NULL, 8, 0), TR_EINVAL);
    EQ(tr_fs_read(f, buf, 0, 0), TR_EINVAL);
    EQ(tr_fs_read(f, buf, SIZE_MAX, -1), (int)sizeof(buf)); /* capped */
    EQ(tr_fs_read(srv, buf, 8, 0), TR_EINVAL);
    EQ(tr_fs_close(f), 0);
    EQ(tr_fs_read(f, buf, 8, 0), UV_EBADF);
    tr_io_close(srv);
  }
}

static void row_tr_fs_write(hctx_t *c) {
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_fs_write(bad_ios[i], "x", 1, 0), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t f = TR_IO_NONE;
    EQ(tr_fs_open(&f, "/dev/null", O_WRONLY, 0), 0);
    EQ(tr_fs_write(f, NULL, 1, 0), TR_EINVAL);
    EQ(tr_fs_write(f, NULL, 0, 0), 0);
    EQ(tr_fs_write(f, "x", 1, INT64_MIN), 0); /* negative: the position */
    EQ(tr_fs_close(f), 0);
    EQ(tr_fs_write(f, "x", 1, 0), UV_EBADF);
    EQ(tr_fs_open(&f, "/dev/zero", O_RDONLY, 0), 0);
    EQ(tr_fs_write(f, "x", 1, 0), UV_EBADF); /* read-only: EBADF from write(2) */
    EQ(tr_fs_close(f), 0);
  }
}

static void row_tr_fs_close(hctx_t *c) {
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_fs_close(bad_ios[i]), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t srv = listener();
    EQ(tr_fs_close(srv), TR_EINVAL);
    EQ(tr_fs_close(stale_io()), UV_EBADF);
    tr_io_close(srv);
  }
}

static void row_tr_fs_stat(hctx_t *c) {
  uv_stat_t st;
  (void)c;
  AO(tr_fs_stat(missing_path(), &st), UV_ENOENT);
  EQ(tr_fs_stat(NULL, &st), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_fs_stat("/", NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
}

static void row_tr_fs_fstat(hctx_t *c) {
  uv_stat_t st;
  (void)c;
  for (size_t i = 0; i < NBADIO; i++) AO(tr_fs_fstat(bad_ios[i], &st), UV_EBADF);
  if (!IN_ACTOR) return;
  {
    tr_io_t f = TR_IO_NONE, srv = listener();
    EQ(tr_fs_open(&f, "/dev/null", O_RDONLY, 0), 0);
    EQ(tr_fs_fstat(f, NULL), TR_EINVAL);
    EQ(tr_fs_fstat(srv, &st), TR_EINVAL);
    EQ(tr_fs_close(f), 0);
    EQ(tr_fs_fstat(f, &st), UV_EBADF);
    tr_io_close(srv);
  }
}

static void row_tr_fs_unlink(hctx_t *c) {
  (void)c;
  AO(tr_fs_unlink(missing_path()), UV_ENOENT);
  EQ(tr_fs_unlink(NULL), IN_ACTOR ? TR_EINVAL : CTXERR);
  if (IN_ACTOR) EQ(tr_fs_unlink(""), UV_ENOENT);
}

static void row_tr_getaddrinfo(hctx_t *c) {
  struct addrinfo *res = (struct addrinfo *)1, hints;
  (void)c;
  memset(&hints, 0, sizeof(hints));
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  EQ(tr_getaddrinfo("127.0.0.1", "80", &hints, NULL, 1000), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_getaddrinfo(NULL, NULL, &hints, &res, 1000), IN_ACTOR ? TR_EINVAL : CTXERR);
  AO(tr_getaddrinfo("127.0.0.1", "80", &hints, &res, 5000), 0);
  if (!IN_ACTOR) return;
  tr_freeaddrinfo(res);
  EQ(tr_getaddrinfo("not-numeric", NULL, &hints, &res, 5000), UV_EAI_NONAME);
  OK(res == NULL);
  hints.ai_family = 12345; /* no such family */
  OK(tr_getaddrinfo("127.0.0.1", NULL, &hints, &res, 5000) < 0);
  OK(res == NULL);
}

static void row_tr_freeaddrinfo(hctx_t *c) {
  (void)c;
  tr_freeaddrinfo(NULL);
  OK(1);
}

/* ------------------------------------------------------------------------ */
/* Rows: supervisors                                                        */
/* ------------------------------------------------------------------------ */

static void row_tr_child_spec_init(hctx_t *c) {
  tr_child_spec_t s;
  char id[TR_SUP_ID_MAX + 1];
  (void)c;
  memset(id, 'i', sizeof(id) - 1);
  id[sizeof(id) - 1] = '\0';
  EQ(tr_child_spec_init(NULL, "x", sup_child, NULL), TR_EINVAL);
  EQ(tr_child_spec_init(&s, NULL, sup_child, NULL), TR_EINVAL);
  EQ(tr_child_spec_init(&s, "", sup_child, NULL), TR_EINVAL);
  EQ(tr_child_spec_init(&s, id, sup_child, NULL), TR_EINVAL); /* 64 bytes */
  id[TR_SUP_ID_MAX - 1] = '\0';
  EQ(tr_child_spec_init(&s, id, sup_child, NULL), 0); /* 63 bytes */
  EQ(tr_child_spec_init(&s, "x", NULL, NULL), 0); /* checked at start */
}

static void row_tr_sup_flags_init(hctx_t *c) {
  tr_sup_flags_t f;
  (void)c;
  tr_sup_flags_init(NULL);
  memset(&f, 0xff, sizeof(f));
  tr_sup_flags_init(&f);
  EQ(f.intensity, 1);
  EQ(f.period_ms, 5000);
  OK(f.name == NULL && f.report == NULL);
}

/* Every way a flags struct can be wrong (TR_EINVAL each). */
static int spoil_flags(tr_sup_flags_t *f, int i) {
  static char longname[TR_NAME_MAX + 4];
  memset(longname, 'f', sizeof(longname) - 1);
  tr_sup_flags_init(f);
  switch (i) {
  case 0: f->size = 1; break;
  case 1: f->size = sizeof(*f) + 1; break;
  case 2: f->size = SIZE_MAX; break;
  case 3: f->strategy = (tr_sup_strategy_t)4; break;
  case 4: f->strategy = (tr_sup_strategy_t)-1; break;
  case 5: f->period_ms = 0; break;
  case 6: f->backoff.min_ms = 10; f->backoff.max_ms = 9; break;
  case 7: f->backoff.jitter = -0.5; break;
  case 8: f->backoff.jitter = 1.5; break;
  case 9: f->backoff.jitter = NAN; break;
  case 10: f->backoff.jitter = INFINITY; break;
  case 11: f->name = ""; break;
  case 12: f->name = longname; break;
  default: return 0;
  }
  return 1;
}

/* Every way a spec can be wrong (TR_EINVAL each). */
static int spoil_spec(tr_child_spec_t *s, int i) {
  *s = good_spec();
  switch (i) {
  case 0: s->start = NULL; break;
  case 1: s->id[0] = '\0'; break;
  case 2: memset(s->id, 'z', sizeof(s->id)); break; /* no NUL */
  case 3: s->restart = (tr_restart_t)3; break;
  case 4: s->restart = (tr_restart_t)-1; break;
  case 5: s->type = (tr_child_type_t)2; break;
  case 6: s->shutdown = -3; break;
  case 7: s->shutdown = INT_MIN; break;
  case 8: s->stack_size = 1; break;
  case 9: s->stack_size = SIZE_MAX; break;
  case 10: s->flags = 1u << 9; break;
  case 11: s->size = 1; break;
  case 12: s->size = sizeof(*s) + 8; break;
  case 13: s->size = SIZE_MAX; break;
  default: return 0;
  }
  return 1;
}

/* The checks shared by tr_sup_start (inside actors) and start_link. */
static void sup_start_common(int (*start)(const tr_sup_flags_t *,
                                          const tr_child_spec_t *, size_t,
                                          tr_pid_t *, tr_sup_error_t *)) {
  tr_sup_flags_t f;
  tr_child_spec_t s[2];
  tr_sup_error_t err;
  tr_pid_t pid = 5;
  for (int i = 0; spoil_flags(&f, i); i++) {
    memset(&err, 0, sizeof(err));
    h_eq(__LINE__, "start(spoiled flags)", start(&f, NULL, 0, &pid, &err), TR_EINVAL);
    OK(pid == TR_PID_NONE && err.message[0] != '\0');
  }
  for (int i = 0; spoil_spec(&s[0], i); i++) {
    memset(&err, 0, sizeof(err));
    h_eq(__LINE__, "start(spoiled spec)", start(NULL, s, 1, &pid, &err), TR_EINVAL);
    OK(err.message[0] != '\0');
  }
  s[0] = good_spec();
  s[1] = good_spec(); /* duplicate id */
  EQ(start(NULL, s, 2, &pid, &err), TR_EINVAL);
  EQ(err.index, 1);
  s[1].size = sizeof(s[1]) - 8; /* stride disagrees */
  EQ(start(NULL, s, 2, &pid, NULL), TR_EINVAL);
  s[0].size = sizeof(s[0]) - 3; /* a stride that would misalign s[1] */
  EQ(start(NULL, s, 2, &pid, NULL), TR_EINVAL);
  s[0].size = sizeof(s[0]);
  EQ(start(NULL, NULL, 1, &pid, NULL), TR_EINVAL);
  EQ(start(NULL, s, SIZE_MAX, &pid, NULL), TR_EINVAL);
  EQ(start(NULL, s, (size_t)INT32_MAX + 1, &pid, NULL), TR_EINVAL);
  tr_sup_flags_init(&f);
  f.strategy = TR_SIMPLE_ONE_FOR_ONE;
  EQ(start(&f, s, 0, &pid, NULL), TR_EINVAL);
  EQ(start(&f, s, 2, &pid, NULL), TR_EINVAL);
}

static int start_in_actor(const tr_sup_flags_t *f, const tr_child_spec_t *s,
                          size_t n, tr_pid_t *pid, tr_sup_error_t *err) {
  return tr_sup_start(NULL, f, s, n, pid, err);
}

static tr_runtime_t *g_outside_rt;

static int start_outside(const tr_sup_flags_t *f, const tr_child_spec_t *s,
                         size_t n, tr_pid_t *pid, tr_sup_error_t *err) {
  return tr_sup_start(g_outside_rt, f, s, n, pid, err);
}

static void init_fails(void *arg) {
  (void)arg;
  tr_sup_init_ack(-42);
}

static void row_tr_sup_start(hctx_t *c) {
  tr_pid_t pid = 5;
  tr_sup_error_t err;
  tr_child_spec_t s;
  if (H->w == W_THREAD) {
    EQ(tr_sup_start(NULL, NULL, NULL, 0, &pid, NULL), TR_EINVAL);
    EQ(pid, TR_PID_NONE);
    return;
  }
  if (H->w == W_CLEANUP) {
    EQ(tr_sup_start(c->rt, NULL, NULL, 0, &pid, &err), TR_ECLEANUP);
    EQ(tr_sup_start(NULL, NULL, NULL, 0, &pid, NULL), TR_EINVAL);
    return;
  }
  if (H->w == W_OUTSIDE) {
    EQ(tr_sup_start(NULL, NULL, NULL, 0, &pid, NULL), TR_EINVAL);
    g_outside_rt = c->rt;
    sup_start_common(start_outside);
    /* a child that fails its init: nothing is left running */
    tr_child_spec_init(&s, "bad", init_fails, NULL);
    EQ(tr_sup_start(c->rt, NULL, &s, 1, &pid, &err), TR_ESTART);
    EQ(strcmp(err.id, "bad"), 0);
    EQ(tr_runtime_actor_count(c->rt), 0);
    return;
  }
  sup_start_common(start_in_actor);
  EQ(tr_sup_start(c->other, NULL, NULL, 0, &pid, NULL), TR_EINVAL);
}

static void row_tr_sup_start_link(hctx_t *c) {
  tr_pid_t pid = 5;
  (void)c;
  if (!IN_ACTOR) {
    EQ(tr_sup_start_link(NULL, NULL, 0, &pid, NULL), CTXERR);
    EQ(pid, TR_PID_NONE);
    return;
  }
  sup_start_common(tr_sup_start_link);
}

typedef struct {
  const tr_sup_flags_t *flags;
  const tr_child_spec_t *specs;
  size_t n;
} enter_args_t;

static void enter_actor(void *arg) {
  enter_args_t *e = arg;
  tr_sup_enter(e->flags, e->specs, e->n);
}

/* Runs tr_sup_enter with hostile arguments in a monitored actor: it must
 * exit with reason error, code TR_EINVAL. */
static void enter_must_fail(const tr_sup_flags_t *f, const tr_child_spec_t *s,
                            size_t n, int line) {
  enter_args_t e = {f, s, n};
  tr_pid_t pid;
  tr_ref_t ref;
  tr_msg_t *m;
  tr_reason_t why;
  memset(&why, 0, sizeof(why));
  if (tr_spawn_monitor(enter_actor, &e, &pid, &ref) != 0 ||
      tr_recv(&m, 2000) != 0) {
    h_fail(line, "tr_sup_enter: no DOWN");
    return;
  }
  tr_msg_reason(m, &why);
  tr_msg_free(m);
  h_eq(line, "tr_sup_enter exit reason", why.kind, TR_REASON_ERROR);
  h_eq(line, "tr_sup_enter exit code", why.code, TR_EINVAL);
}

static void row_tr_sup_enter(hctx_t *c) {
  tr_sup_flags_t f;
  tr_child_spec_t s;
  (void)c;
  if (!IN_ACTOR) {
    EQ(tr_sup_enter(NULL, NULL, 0), CTXERR);
    return;
  }
  for (int i = 0; spoil_flags(&f, i); i++) enter_must_fail(&f, NULL, 0, __LINE__);
  for (int i = 0; spoil_spec(&s, i); i++) enter_must_fail(NULL, &s, 1, __LINE__);
  enter_must_fail(NULL, NULL, 3, __LINE__);
  enter_must_fail(NULL, &s, SIZE_MAX, __LINE__);
}

static void sup_main_actor(void *arg) {
  tr_sup_main(arg);
}

static void row_tr_sup_main(hctx_t *c) {
  (void)c;
  if (!IN_ACTOR) { /* outside an actor it has nothing to become */
    static const tr_sup_def_t def = {NULL, NULL, 0};
    tr_sup_main(NULL);
    tr_sup_main((void *)&def);
    OK(1);
    return;
  }
  {
    tr_pid_t pid;
    tr_ref_t ref;
    tr_msg_t *m;
    tr_reason_t why;
    /* no definition and no supervisor waiting: it just returns */
    EQ(tr_spawn_monitor(sup_main_actor, NULL, &pid, &ref), 0);
    EQ(tr_recv(&m, 2000), 0);
    EQ(tr_msg_reason(m, &why), 0);
    EQ(why.kind, TR_REASON_NORMAL);
    tr_msg_free(m);
  }
}

static void ack_actor(void *arg) {
  *(int *)arg = tr_sup_init_ack(TR_INIT_OK); /* no supervisor waits: a no-op */
  tr_sup_init_ack(-5); /* exits with reason error */
}

static void row_tr_sup_init_ack(hctx_t *c) {
  (void)c;
  EQ(tr_sup_init_ack(2), IN_ACTOR ? TR_EINVAL : CTXERR);
  EQ(tr_sup_init_ack(INT_MAX), IN_ACTOR ? TR_EINVAL : CTXERR);
  if (!IN_ACTOR) {
    EQ(tr_sup_init_ack(TR_INIT_OK), CTXERR);
    EQ(tr_sup_init_ack(-1), CTXERR);
    return;
  }
  {
    int rc = 1;
    tr_pid_t pid;
    tr_ref_t ref;
    tr_msg_t *m;
    tr_reason_t why;
    EQ(tr_spawn_monitor(ack_actor, &rc, &pid, &ref), 0);
    EQ(tr_recv(&m, 2000), 0);
    EQ(tr_msg_reason(m, &why), 0);
    EQ(why.kind, TR_REASON_ERROR);
    EQ(why.code, -5);
    EQ(rc, 0);
    tr_msg_free(m);
  }
}

/* The run-time calls: dead, never-valid and non-supervisor targets. */
#define SUP_TARGETS(call_with)                                     \
  do {                                                                       \
    AO(call_with(c->stale), TR_EDOWN);                                       \
    if (IN_ACTOR) {                                                          \
      for (size_t i_ = 0; i_ < NBAD; i_++) EQ(call_with(bad_pids[i_]), TR_EDOWN); \
      EQ(call_with(tr_self()), TR_ESELF);                                    \
      EQ(call_with(c->live), TR_EBADMSG); /* answers garbage */             \
    }                                                                        \
  } while (0)

static int stop_w(tr_pid_t p) { return tr_sup_stop(p); }

static void row_tr_sup_stop(hctx_t *c) {
  SUP_TARGETS(stop_w);
  if (IN_ACTOR) EQ(tr_mailbox_len(), 0); /* monitors cleaned up */
}

static tr_child_spec_t g_spec;
static int start_child_w(tr_pid_t p) { return tr_sup_start_child(p, &g_spec, NULL, NULL); }

static void row_tr_sup_start_child(hctx_t *c) {
  tr_child_spec_t s;
  tr_sup_error_t err;
  tr_pid_t pid = 5;
  g_spec = good_spec();
  EQ(tr_sup_start_child(c->stale, NULL, &pid, NULL), TR_EINVAL);
  EQ(pid, TR_PID_NONE);
  for (int i = 0; spoil_spec(&s, i); i++)
    h_eq(__LINE__, "start_child(spoiled)", tr_sup_start_child(c->stale, &s, &pid, &err), TR_EINVAL);
  SUP_TARGETS(start_child_w);
  if (IN_ACTOR) {
    tr_pid_t sup = need_sup(c), simple = simple_sup();
    s = good_spec();
    memcpy(s.id, "w", 2);
    EQ(tr_sup_start_child(sup, &s, &pid, NULL), TR_EBUSY); /* running */
    OK(pid != TR_PID_NONE);
    tr_child_spec_init(&s, "bad", init_fails, NULL);
    EQ(tr_sup_start_child(sup, &s, &pid, &err), TR_ESTART);
    EQ(strcmp(err.id, "bad"), 0);
    EQ(tr_sup_start_child(simple, &g_spec, &pid, NULL), TR_EINVAL);
    EQ(tr_sup_stop(simple), 0);
  }
}

static int start_arg_w(tr_pid_t p) { return tr_sup_start_child_arg(p, NULL, NULL, NULL); }

static void row_tr_sup_start_child_arg(hctx_t *c) {
  tr_pid_t pid = 5;
  SUP_TARGETS(start_arg_w);
  AO(tr_sup_start_child_arg(c->stale, (void *)1, &pid, NULL), TR_EDOWN);
  EQ(pid, TR_PID_NONE);
  if (IN_ACTOR) {
    tr_pid_t simple = simple_sup();
    EQ(tr_sup_start_child_arg(need_sup(c), NULL, &pid, NULL), TR_ENOTSUP);
    EQ(tr_sup_start_child_arg(simple, (void *)UINTPTR_MAX, &pid, NULL), 0);
    EQ(tr_sup_stop(simple), 0);
  }
}

static char id_too_long[TR_SUP_ID_MAX + 8];

/* Checks of the id-taking calls: id NULL/empty is TR_EINVAL anywhere, a
 * too long id TR_ENOENT. */
static void id_rows(int (*fn)(tr_pid_t, const char *), hctx_t *c) {
  memset(id_too_long, 'L', sizeof(id_too_long) - 1);
  EQ(fn(c->stale, NULL), TR_EINVAL);
  EQ(fn(c->stale, ""), TR_EINVAL);
  AO(fn(c->stale, "w"), TR_EDOWN);
  if (!IN_ACTOR) return;
  for (size_t i = 0; i < NBAD; i++) EQ(fn(bad_pids[i], "w"), TR_EDOWN);
  EQ(fn(tr_self(), "w"), TR_ESELF);
  EQ(fn(c->live, "w"), TR_EBADMSG);
  EQ(fn(need_sup(c), id_too_long), TR_ENOENT);
  EQ(fn(need_sup(c), "nobody"), TR_ENOENT);
  {
    tr_pid_t simple = simple_sup();
    EQ(fn(simple, "t"), TR_ENOTSUP);
    EQ(tr_sup_stop(simple), 0);
  }
}

static void row_tr_sup_terminate_child(hctx_t *c) {
  id_rows(tr_sup_terminate_child, c);
}

static int term_pid_w(tr_pid_t p) { return tr_sup_terminate_child_pid(p, TR_PID_NONE); }

static void row_tr_sup_terminate_child_pid(hctx_t *c) {
  SUP_TARGETS(term_pid_w);
  if (IN_ACTOR) {
    tr_pid_t simple = simple_sup();
    for (size_t i = 0; i < NBAD; i++) EQ(tr_sup_terminate_child_pid(simple, bad_pids[i]), TR_ENOENT);
    EQ(tr_sup_terminate_child_pid(simple, c->stale), TR_ENOENT);
    EQ(tr_sup_terminate_child_pid(need_sup(c), c->stale), TR_ENOENT);
    EQ(tr_sup_stop(simple), 0);
  }
}

static int restart_w(tr_pid_t p, const char *id) { return tr_sup_restart_child(p, id, NULL, NULL); }

static void row_tr_sup_restart_child(hctx_t *c) {
  tr_pid_t pid = 5;
  id_rows(restart_w, c);
  EQ(tr_sup_restart_child(c->stale, NULL, &pid, NULL), TR_EINVAL);
  EQ(pid, TR_PID_NONE);
  if (IN_ACTOR) EQ(tr_sup_restart_child(need_sup(c), "w", &pid, NULL), TR_EBUSY);
}

static void row_tr_sup_delete_child(hctx_t *c) {
  id_rows(tr_sup_delete_child, c);
  if (IN_ACTOR) EQ(tr_sup_delete_child(need_sup(c), "w"), TR_EBUSY);
}

static int which_w(tr_pid_t p) { return tr_sup_which_children(p, NULL, 0, NULL); }

static void row_tr_sup_which_children(hctx_t *c) {
  tr_sup_child_info_t one;
  size_t count = 99;
  EQ(tr_sup_which_children(c->stale, NULL, 1, &count), TR_EINVAL);
  EQ(tr_sup_which_children(c->stale, &one, SIZE_MAX, &count), TR_EINVAL);
  EQ(tr_sup_which_children(c->stale, &one, SIZE_MAX / sizeof(one) + 1, &count), TR_EINVAL);
  SUP_TARGETS(which_w);
  if (IN_ACTOR) {
    EQ(tr_sup_which_children(need_sup(c), NULL, 0, &count), 0);
    EQ(count, 1);
    EQ(tr_sup_which_children(need_sup(c), &one, 1, NULL), 0);
  }
}

static void row_tr_sup_child_info(hctx_t *c) {
  tr_sup_child_info_t info;
  EQ(tr_sup_child_info(c->stale, "w", NULL), TR_EINVAL);
  EQ(tr_sup_child_info(c->stale, NULL, &info), TR_EINVAL);
  AO(tr_sup_child_info(c->stale, "w", &info), TR_EDOWN);
  if (IN_ACTOR) {
    memset(id_too_long, 'L', sizeof(id_too_long) - 1);
    EQ(tr_sup_child_info(need_sup(c), id_too_long, &info), TR_ENOENT);
    EQ(tr_sup_child_info(c->live, "w", &info), TR_EBADMSG);
  }
}

static tr_sup_counts_t g_counts;
static int count_w(tr_pid_t p) { return tr_sup_count_children(p, &g_counts); }

static void row_tr_sup_count_children(hctx_t *c) {
  EQ(tr_sup_count_children(c->stale, NULL), TR_EINVAL);
  SUP_TARGETS(count_w);
}

static void row_tr_sup_get_childspec(hctx_t *c) {
  tr_child_spec_t s;
  EQ(tr_sup_get_childspec(c->stale, "w", NULL), TR_EINVAL);
  EQ(tr_sup_get_childspec(c->stale, NULL, &s), TR_EINVAL);
  AO(tr_sup_get_childspec(c->stale, "w", &s), TR_EDOWN);
  if (IN_ACTOR) {
    EQ(tr_sup_get_childspec(need_sup(c), "nobody", &s), TR_ENOENT);
    EQ(tr_sup_get_childspec(need_sup(c), "w", &s), 0);
    EQ(s.shutdown, 5000);
  }
}

/* ------------------------------------------------------------------------ */
/* The table                                                                */
/* ------------------------------------------------------------------------ */

#define ROW(f) {#f, row_##f}
static const row_t rows[] = {
    /* errors and reasons */
    ROW(tr_strerror), ROW(tr_err_name), ROW(tr_reason_name),
    ROW(tr_reason_format), ROW(tr_reason_is_crash),
    /* runtime */
    ROW(tr_config_init), ROW(tr_log_stderr), ROW(tr_runtime_new),
    ROW(tr_runtime_attach), ROW(tr_runtime_run), ROW(tr_runtime_stop),
    ROW(tr_runtime_free), ROW(tr_runtime_loop), ROW(tr_runtime_actor_count),
    ROW(tr_runtime_current),
#ifdef TR_SCHEDULERS_MAX
    ROW(tr_runtime_scheduler_count), ROW(tr_sched_self), ROW(tr_pid_scheduler),
#endif
    /* actors */
    ROW(tr_spawn_opts_init), ROW(tr_spawn), ROW(tr_spawn_link),
    ROW(tr_spawn_monitor), ROW(tr_self), ROW(tr_yield), ROW(tr_hibernate), ROW(tr_exit),
    ROW(tr_exit_error), ROW(tr_exit_pid), ROW(tr_is_alive), ROW(tr_trap_exit),
    ROW(tr_link), ROW(tr_unlink), ROW(tr_monitor), ROW(tr_demonitor),
    /* ledger */
    ROW(tr_defer), ROW(tr_arena_alloc),
    /* messages */
    ROW(tr_send), ROW(tr_send_obj), ROW(tr_send_tagged), ROW(tr_send_tagged_v),
    ROW(tr_send_named), ROW(tr_runtime_send), ROW(tr_pack_tagged),
    ROW(tr_pack_tagged_v), ROW(tr_pack_pid), ROW(tr_obj_pid),
    ROW(tr_msgpack_validate), ROW(tr_recv), ROW(tr_recv_tag),
    ROW(tr_recv_match), ROW(tr_msg_free), ROW(tr_msg_kind), ROW(tr_msg_from),
    ROW(tr_msg_ref), ROW(tr_msg_data), ROW(tr_msg_obj), ROW(tr_msg_reason),
    ROW(tr_msg_is_tag), ROW(tr_msg_unpack), ROW(tr_msg_unpack_v),
    ROW(tr_mailbox_len), ROW(tr_mailbox_limit),
    ROW(tr_mailbox_len_of), ROW(tr_mailbox_stats),
    /* call / reply */
    ROW(tr_call), ROW(tr_reply),
    /* registry */
    ROW(tr_register), ROW(tr_unregister), ROW(tr_whereis),
    /* timers */
    ROW(tr_sleep), ROW(tr_send_after), ROW(tr_cancel_timer),
    /* I/O */
    ROW(tr_io_close), ROW(tr_io_give), ROW(tr_io_owner), ROW(tr_io_sockname),
    ROW(tr_io_port), ROW(tr_io_peername), ROW(tr_ip_addr), ROW(tr_addr_port),
    ROW(tr_tcp_listen), ROW(tr_tcp_accept), ROW(tr_tcp_connect),
    ROW(tr_tcp_connect_addr), ROW(tr_tcp_read), ROW(tr_tcp_read_exactly),
    ROW(tr_tcp_read_async), ROW(tr_tcp_write), ROW(tr_tcp_shutdown),
    ROW(tr_tcp_close_reset), ROW(tr_tcp_nodelay), ROW(tr_udp_open),
    ROW(tr_udp_send), ROW(tr_udp_recv), ROW(tr_fs_open), ROW(tr_fs_read),
    ROW(tr_fs_write), ROW(tr_fs_close), ROW(tr_fs_stat), ROW(tr_fs_fstat),
    ROW(tr_fs_unlink), ROW(tr_getaddrinfo), ROW(tr_freeaddrinfo),
    /* supervisors */
    ROW(tr_child_spec_init), ROW(tr_sup_flags_init), ROW(tr_sup_start),
    ROW(tr_sup_start_link), ROW(tr_sup_enter), ROW(tr_sup_main),
    ROW(tr_sup_init_ack), ROW(tr_sup_stop), ROW(tr_sup_start_child),
    ROW(tr_sup_start_child_arg), ROW(tr_sup_terminate_child),
    ROW(tr_sup_terminate_child_pid), ROW(tr_sup_restart_child),
    ROW(tr_sup_delete_child), ROW(tr_sup_which_children),
    ROW(tr_sup_child_info), ROW(tr_sup_count_children),
    ROW(tr_sup_get_childspec),
};
#define NROWS ((int)(sizeof(rows) / sizeof(rows[0])))

/* ------------------------------------------------------------------------ */
/* Running a row in every context                                           */
/* ------------------------------------------------------------------------ */

static const row_t *g_row;

static void *thread_main(void *arg) {
  hctx_t *c = arg;
  c->w = W_THREAD;
  g_row->fn(c);
  return NULL;
}

static void cleanup_cb(void *arg) {
  hctx_t *c = arg;
  c->w = W_CLEANUP;
  g_row->fn(c);
}

static void row_actor(void *arg) {
  hctx_t *c = arg;
  tr_spawn_opts_t lo;
  tr_defer(cleanup_cb, c);
  /* On our scheduler: tr_io_give hands it a handle of our loop. */
  tr_spawn_opts_init(&lo);
  lo.flags = TR_SPAWN_LINK;
  lo.placement = TR_PLACE_LOCAL;
  if (tr_spawn(NULL, garbage_server, NULL, &lo, &c->live) != 0)
    h_fail(__LINE__, "cannot spawn the live actor");
  c->w = W_ACTOR;
  g_row->fn(c);
  if (strcmp(g_row->name, "tr_reply") == 0) reply_hostile(c);
  if (c->sup != TR_PID_NONE && tr_sup_stop(c->sup) != 0)
    h_fail(__LINE__, "cannot stop the test supervisor");
  tr_unlink(c->live);
  tr_exit_pid(NULL, c->live, TR_REASON_KILL);
}

static void run_row(const row_t *r, hctx_t *c) {
  pthread_t th;
  tr_config_t cfg;
  memset(c, 0, sizeof(*c));
  H = c;
  g_row = r;
  ck_assert_int_eq(pthread_create(&th, NULL, thread_main, c), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  tr_config_init(&cfg);
  cfg.stop_timeout_ms = 2000;
  TR_OK(tr_runtime_new(&c->rt, &cfg));
  TR_OK(tr_runtime_new(&c->other, NULL));
  TR_OK(tr_spawn(c->rt, nop_actor, NULL, NULL, &c->stale));
  TR_OK(tr_runtime_run(c->rt)); /* c->stale has exited */
  c->w = W_OUTSIDE;
  r->fn(c);
  TR_OK(tr_spawn(c->rt, row_actor, c, NULL, NULL));
  TR_OK(tr_runtime_run(c->rt));
  ck_assert_uint_eq(tr_runtime_actor_count(c->rt), 0);
  TR_OK(tr_runtime_free(c->rt));
  TR_OK(tr_runtime_free(c->other));
  H = NULL;
}

START_TEST(test_row) {
  static hctx_t c;
  int total = 0;
  run_row(&rows[_i], &c);
  for (int w = 0; w < W__COUNT; w++) total += c.checks[w];
  ck_assert_msg(c.fails == 0, "%s: %d of %d checks failed:\n%s", rows[_i].name,
                c.fails, total, c.log);
  ck_assert_msg(total > 0, "%s: the row checks nothing", rows[_i].name);
  if (getenv("TR_HOSTILE_COUNTS") != NULL)
    printf("row %-28s thread %3d outside %3d actor %3d cleanup %3d\n",
           rows[_i].name, c.checks[W_THREAD], c.checks[W_OUTSIDE],
           c.checks[W_ACTOR], c.checks[W_CLEANUP]);
  /* every row must say something about non-actor contexts, where a hostile
   * caller is most likely */
  ck_assert_msg(c.checks[W_THREAD] + c.checks[W_OUTSIDE] + c.checks[W_CLEANUP] > 0,
                "%s: no check outside actors", rows[_i].name);
}
END_TEST

/* tr_exit_error with hostile arguments ends the actor with reason error. */
static void exit_error_actor(void *arg) {
  static char fmt[4096];
  memset(fmt, 'e', sizeof(fmt) - 1);
  if (arg == NULL) tr_exit_error(INT_MIN, NULL);
  tr_exit_error(-1, "%s", fmt); /* text longer than the reason holds */
}

static void exit_error_parent(void *arg) {
  int *ok = arg;
  for (int i = 0; i < 2; i++) {
    tr_pid_t pid;
    tr_ref_t ref;
    tr_msg_t *m;
    tr_reason_t why;
    TR_OK(tr_spawn_monitor(exit_error_actor, i ? (void *)1 : NULL, &pid, &ref));
    TR_OK(tr_recv(&m, 2000));
    TR_OK(tr_msg_reason(m, &why));
    tr_msg_free(m);
    ck_assert_int_eq(why.kind, TR_REASON_ERROR);
    ck_assert_int_eq(why.code, i ? -1 : INT_MIN);
    ck_assert_uint_eq(strlen(why.text), i ? TR_REASON_TEXT_MAX - 1 : 0);
  }
  *ok = 1;
}

START_TEST(test_exit_error_hostile) {
  int ok = 0;
  tr_test_run(exit_error_parent, &ok);
  ck_assert_int_eq(ok, 1);
}
END_TEST

/* tr_exit with each valid kind from an actor: the reason it ends with. */
static void exit_kind_actor(void *arg) {
  tr_exit((tr_reason_kind_t)(intptr_t)arg);
}

static void exit_kind_parent(void *arg) {
  int *ok = arg;
  for (int k = 0; k < TR_REASON__COUNT; k++) {
    tr_pid_t pid;
    tr_ref_t ref;
    tr_msg_t *m;
    tr_reason_t why;
    TR_OK(tr_spawn_monitor(exit_kind_actor, (void *)(intptr_t)k, &pid, &ref));
    TR_OK(tr_recv(&m, 2000));
    TR_OK(tr_msg_reason(m, &why));
    tr_msg_free(m);
    ck_assert_int_eq(why.kind, k == TR_REASON_KILL ? TR_REASON_KILLED : k);
  }
  *ok = 1;
}

START_TEST(test_exit_every_kind) {
  int ok = 0;
  tr_test_run(exit_kind_parent, &ok);
  ck_assert_int_eq(ok, 1);
}
END_TEST

/* ---- coverage: every TR_EXTERN function of troupe.h has a row ------------ */

static char *read_header(void) {
  char path[4096];
  const char *top = getenv("srcdir");
  FILE *f;
  char *buf;
  long n;
  snprintf(path, sizeof(path), "%s/include/troupe.h", TR_TOP_SRCDIR);
  if ((f = fopen(path, "r")) == NULL && top != NULL) {
    snprintf(path, sizeof(path), "%s/include/troupe.h", top);
    f = fopen(path, "r");
  }
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  buf = malloc((size_t)n + 1);
  ck_assert_ptr_nonnull(buf);
  ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Appends the names of the functions declared with TR_EXTERN (a line that
 * starts with it, up to its ';') to names, newline-separated. */
static int header_functions(char *hdr, char names[][64], int cap) {
  int n = 0;
  for (char *p = hdr; (p = strstr(p, "TR_EXTERN")) != NULL; p++) {
    char *semi, *paren, *e, *b;
    if (p != hdr && p[-1] != '\n') continue; /* the macro's own #define */
    if (strncmp(p, "TR_EXTERN ", 10) != 0) continue;
    if ((semi = strchr(p, ';')) == NULL) break;
    if ((paren = memchr(p, '(', (size_t)(semi - p))) == NULL) continue;
    e = paren;
    while (e > p && e[-1] == ' ') e--;
    for (b = e; b > p && (isalnum((unsigned char)b[-1]) || b[-1] == '_'); b--) {
    }
    ck_assert_int_lt(n, cap);
    ck_assert_int_lt((int)(e - b), 64);
    memcpy(names[n], b, (size_t)(e - b));
    names[n][e - b] = '\0';
    n++;
  }
  return n;
}

START_TEST(test_coverage) {
  static char names[512][64];
  char *hdr = read_header();
  int n = header_functions(hdr, names, 512), missing = 0, extra = 0;
  char report[4096] = "";
  free(hdr);
  ck_assert_int_gt(n, 100);
  for (int i = 0; i < n; i++) {
    int found = 0;
    for (int j = 0; j < NROWS && !found; j++) found = strcmp(rows[j].name, names[i]) == 0;
    if (!found) {
      missing++;
      strncat(report, " ", sizeof(report) - strlen(report) - 1);
      strncat(report, names[i], sizeof(report) - strlen(report) - 1);
    }
  }
  for (int j = 0; j < NROWS; j++) {
    int found = 0;
    for (int i = 0; i < n && !found; i++) found = strcmp(rows[j].name, names[i]) == 0;
    if (!found) {
      extra++;
      strncat(report, " stale-row:", sizeof(report) - strlen(report) - 1);
      strncat(report, rows[j].name, sizeof(report) - strlen(report) - 1);
    }
  }
  ck_assert_msg(missing == 0 && extra == 0,
                "hostile table out of step with troupe.h:%s", report);
  ck_assert_int_eq(n, NROWS);
  printf("hostile table: %d rows for %d public functions\n", NROWS, n);
}
END_TEST

static Suite *hostile_suite(void) {
  Suite *s = suite_create("hostile");
  TCase *cov = tcase_create("coverage");
  TCase *tab = tcase_create("table");
  TCase *ex = tcase_create("exit");
  tcase_add_test(cov, test_coverage);
  tcase_add_loop_test(tab, test_row, 0, NROWS);
  tcase_set_timeout(tab, 60);
  tcase_add_test(ex, test_exit_error_hostile);
  tcase_add_test(ex, test_exit_every_kind);
  suite_add_tcase(s, cov);
  suite_add_tcase(s, tab);
  suite_add_tcase(s, ex);
  return s;
}

TR_TEST_MAIN(hostile_suite)
