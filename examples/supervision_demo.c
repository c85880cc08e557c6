/*
 * supervision_demo: a supervision tree that heals itself while you watch.
 *
 *   root (one_for_one)
 *   ├── ingest (one_for_all)    reader [NULL deref]  parser [divide by 0]  writer
 *   ├── storage (rest_for_one)  db [stack overflow]  pool (one_for_one)  api [abort]
 *   │                                                ├── conn1 [NULL deref]
 *   │                                                └── conn2
 *   └── flaky (one_for_one, at most 2 restarts per second)
 *       └── gremlin [any of the four, several times a second]
 *
 * Workers marked [..] crash for real at seeded random times; the runtime
 * turns each fault into an exit reason and the supervisors restart them.
 * The gremlin crashes faster than `flaky` allows, so `flaky` gives up and
 * escalates to `root`, which restarts the whole branch.
 *
 *   supervision_demo [--duration SECONDS] [--seed N]
 *
 * On a terminal the tree and the latest events are redrawn in place, in
 * colour; piped, the events are printed as plain lines with a snapshot of
 * the tree every two seconds. A summary follows the run. Exit status 0.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <troupe.h>

/* ---- options and output --------------------------------------------------- */

static unsigned g_duration_s = 8;
static uint64_t g_seed = 1;
static int g_tty, g_color;
static uint64_t g_t0;

#define C_RESET (g_color ? "\033[0m" : "")
#define C_DIM (g_color ? "\033[2m" : "")
#define C_BOLD (g_color ? "\033[1m" : "")
#define C_RED (g_color ? "\033[31m" : "")
#define C_GREEN (g_color ? "\033[32m" : "")
#define C_YELLOW (g_color ? "\033[33m" : "")
#define C_MAGENTA (g_color ? "\033[35m" : "")
#define C_CYAN (g_color ? "\033[36m" : "")

/* Output is built in a buffer and written at once (no flicker). */
static char g_out[32768];
static size_t g_outlen;

static void out(const char *fmt, ...) TR_PRINTF(1, 2);
static void out(const char *fmt, ...) {
  va_list ap;
  int n;
  if (g_outlen >= sizeof(g_out)) return;
  va_start(ap, fmt);
  n = vsnprintf(g_out + g_outlen, sizeof(g_out) - g_outlen, fmt, ap);
  va_end(ap);
  if (n > 0) g_outlen += (size_t)n < sizeof(g_out) - g_outlen ? (size_t)n
                                                             : sizeof(g_out) - g_outlen - 1;
}

static void flush_out(void) {
  fwrite(g_out, 1, g_outlen, stdout);
  fflush(stdout);
  g_outlen = 0;
}

static double now_s(void) { return (double)(uv_hrtime() - g_t0) / 1e9; }

/* Pids as Erlang prints them: <0.index.generation>. */
static const char *pid_str(tr_pid_t pid, char *buf, size_t n) {
  if (pid == TR_PID_NONE) snprintf(buf, n, "-");
  else snprintf(buf, n, "<0.%u.%u>", (unsigned)(pid & 0xffffff),
                (unsigned)(pid >> 32));
  return buf;
}

/* ---- seeded randomness -------------------------------------------------------- */

static uint64_t g_rng;

static uint64_t rnd(void) { /* xorshift64* */
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * UINT64_C(2685821657736338717);
}

static unsigned rnd_range(unsigned lo, unsigned hi) {
  return lo + (unsigned)(rnd() % (hi - lo + 1));
}

/* ---- workers -------------------------------------------------------------------- */

enum { K_NONE, K_SEGV, K_FPE, K_STACK, K_ABORT, K_ANY };

typedef struct {
  int kind;          /* how it crashes (K_NONE: it does not) */
  unsigned lo_ms, hi_ms; /* its lifetime is drawn from [lo, hi] */
} wdef_t;

static const wdef_t w_reader = {K_SEGV, 600, 2600};
static const wdef_t w_parser = {K_FPE, 1200, 3600};
static const wdef_t w_stable = {K_NONE, 0, 0};
static const wdef_t w_db = {K_STACK, 900, 3400};
static const wdef_t w_conn1 = {K_SEGV, 1500, 4000};
static const wdef_t w_api = {K_ABORT, 700, 3000};
static const wdef_t w_gremlin = {K_ANY, 120, 380};

static volatile int g_zero, g_seven = 7;
static volatile int *volatile g_null;
static volatile int g_never = -1;

/* No sanitizer instruments the crash helpers: under TSan every call of
 * deeper() would also call into the TSan runtime, and the overflow could
 * then hit the guard inside library code, which the runtime rightly
 * refuses to recover from (doc/crash-handling.md). */
__attribute__((noinline, no_sanitize("undefined", "address", "thread"))) static int
deeper(int n) {
  volatile char frame[256];
  frame[0] = (char)n;
  if (n == g_never) return 0;
  return deeper(n + 1) + frame[0];
}

__attribute__((no_sanitize("undefined", "address", "thread"))) static void
crash(int kind) {
  switch (kind) {
  case K_SEGV: *g_null = 42; break;            /* NULL dereference */
  case K_FPE: g_zero = g_seven / g_zero; break; /* integer divide by zero */
  case K_STACK: deeper(0); break;               /* runaway recursion */
  case K_ABORT: abort(); break;                 /* abort() / failed assert */
  default: break;
  }
}

static void worker(void *arg) {
  const wdef_t *w = arg;
  tr_sup_init_ack(TR_INIT_OK);
  if (w->kind == K_NONE) {
    for (;;) { /* a quiet worker: waits for messages that never come */
      tr_msg_t *m;
      if (tr_recv(&m, -1) == 0) tr_msg_free(m);
    }
  }
  tr_sleep(rnd_range(w->lo_ms, w->hi_ms));
  crash(w->kind == K_ANY ? (int)rnd_range(K_SEGV, K_ABORT) : w->kind);
}

/* ---- the tree --------------------------------------------------------------------- */

static void report(void *arg, const tr_sup_event_t *e);

#define SUP_FLAGS(nm, strat, inten, period)                                  \
  {.size = sizeof(tr_sup_flags_t), .strategy = strat, .intensity = inten,     \
   .period_ms = period, .name = nm, .report = report}
#define WORKER(nm, def)                                                      \
  {.size = sizeof(tr_child_spec_t), .id = nm, .start = worker,                \
   .arg = (void *)&def, .restart = TR_PERMANENT}
#define SUPERVISOR(nm, def)                                                  \
  {.size = sizeof(tr_child_spec_t), .id = nm, .start = tr_sup_main,           \
   .arg = (void *)&def, .restart = TR_PERMANENT, .type = TR_SUPERVISOR}

static const tr_sup_flags_t f_ingest = SUP_FLAGS("ingest", TR_ONE_FOR_ALL, 3, 5000);
static const tr_child_spec_t c_ingest[] = {
    WORKER("reader", w_reader), WORKER("parser", w_parser),
    WORKER("writer", w_stable)};
static const tr_sup_def_t d_ingest = {&f_ingest, c_ingest, 3};

static const tr_sup_flags_t f_pool = SUP_FLAGS("pool", TR_ONE_FOR_ONE, 3, 5000);
static const tr_child_spec_t c_pool[] = {WORKER("conn1", w_conn1),
                                         WORKER("conn2", w_stable)};
static const tr_sup_def_t d_pool = {&f_pool, c_pool, 2};

static const tr_sup_flags_t f_storage = SUP_FLAGS("storage", TR_REST_FOR_ONE, 4, 5000);
static const tr_child_spec_t c_storage[] = {
    WORKER("db", w_db), SUPERVISOR("pool", d_pool), WORKER("api", w_api)};
static const tr_sup_def_t d_storage = {&f_storage, c_storage, 3};

static const tr_sup_flags_t f_flaky = SUP_FLAGS("flaky", TR_ONE_FOR_ONE, 2, 1000);
static const tr_child_spec_t c_flaky[] = {WORKER("gremlin", w_gremlin)};
static const tr_sup_def_t d_flaky = {&f_flaky, c_flaky, 1};

static const tr_sup_flags_t f_root = SUP_FLAGS("root", TR_ONE_FOR_ONE, 30, 10000);
static const tr_child_spec_t c_root[] = {SUPERVISOR("ingest", d_ingest),
                                         SUPERVISOR("storage", d_storage),
                                         SUPERVISOR("flaky", d_flaky)};

static const char *strategy_of(const char *sup) {
  static const char *const names[][2] = {
      {"root", "one_for_one"},   {"ingest", "one_for_all"},
      {"storage", "rest_for_one"}, {"pool", "one_for_one"},
      {"flaky", "one_for_one"}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(names[i][0], sup) == 0) return names[i][1];
  return "?";
}

/* ---- events and statistics (filled in by the report hook) -------------------------- */

typedef struct {
  double t;
  tr_sup_event_kind_t kind;
  char sup[16], child[16];
  tr_pid_t pid;
  tr_reason_t reason;
} event_t;

#define NEV 512
static event_t g_ev[NEV];
static size_t g_nev;               /* events so far (ring index = n % NEV) */
static unsigned g_crashes[TR_REASON__COUNT];
static const char *const g_sups[] = {"root", "ingest", "storage", "pool", "flaky"};
#define NSUP (sizeof(g_sups) / sizeof(g_sups[0]))
static unsigned g_restarts[NSUP], g_escalations[NSUP];

static int sup_index(const char *name) {
  for (size_t i = 0; i < NSUP; i++)
    if (strcmp(g_sups[i], name) == 0) return (int)i;
  return 0;
}

/* Runs inside each supervisor: records, never blocks. */
static void report(void *arg, const tr_sup_event_t *e) {
  event_t *v = &g_ev[g_nev++ % NEV];
  int s = sup_index(e->sup_name);
  (void)arg;
  v->t = now_s();
  v->kind = e->kind;
  snprintf(v->sup, sizeof(v->sup), "%s", e->sup_name);
  snprintf(v->child, sizeof(v->child), "%s", e->child_id);
  v->pid = e->child;
  if (e->reason) v->reason = *e->reason;
  else memset(&v->reason, 0, sizeof(v->reason));
  if (e->kind == TR_SUP_CHILD_EXITED && tr_reason_is_crash(e->reason->kind))
    g_crashes[e->reason->kind]++;
  if (e->kind == TR_SUP_CHILD_RESTARTED) g_restarts[s]++;
  if (e->kind == TR_SUP_MAX_INTENSITY) g_escalations[s]++;
}

static void print_event(const event_t *v) {
  char p[32], why[160];
  tr_reason_format(&v->reason, why, sizeof(why));
  out("%s%7.3fs%s  %-8s ", C_DIM, v->t, C_RESET, v->sup);
  switch (v->kind) {
  case TR_SUP_CHILD_EXITED:
    out("%s%s %s %s: %s%s\n", tr_reason_is_crash(v->reason.kind) ? C_RED : C_YELLOW,
        v->child, pid_str(v->pid, p, sizeof(p)),
        tr_reason_is_crash(v->reason.kind) ? "crashed" : "exited", why, C_RESET);
    break;
  case TR_SUP_CHILD_RESTARTED:
    out("%srestarted %s as %s%s\n", C_GREEN, v->child, pid_str(v->pid, p, sizeof(p)),
        C_RESET);
    break;
  case TR_SUP_CHILD_STARTED:
    out("%sstarted %s %s%s\n", C_DIM, v->child, pid_str(v->pid, p, sizeof(p)), C_RESET);
    break;
  case TR_SUP_CHILD_STOPPED:
    out("%sstopped %s %s (%s)%s\n", C_DIM, v->child, pid_str(v->pid, p, sizeof(p)),
        why, C_RESET);
    break;
  case TR_SUP_MAX_INTENSITY:
    out("%s%stoo many restarts: shutting down, escalating to its parent%s\n",
        C_BOLD, C_MAGENTA, C_RESET);
    break;
  default:
    out("%s%s %s: %s%s\n", C_YELLOW, v->kind == TR_SUP_START_ERROR ? "start error"
                                                                   : "shutdown error",
        v->child, why, C_RESET);
    break;
  }
}

/* ---- the tree view ------------------------------------------------------------------- */

static void print_sup(tr_pid_t sup, const char *prefix);

static void print_child(const tr_sup_child_info_t *c, const char *prefix, int last) {
  char p[32], why[96], sub[64];
  const char *state = c->state == TR_CHILD_RUNNING      ? "running"
                      : c->state == TR_CHILD_RESTARTING ? "restarting"
                                                        : "stopped";
  out("%s%s %s%s%s ", prefix, last ? "└─" : "├─",
      c->type == TR_SUPERVISOR ? C_BOLD : "", c->id, C_RESET);
  if (c->type == TR_SUPERVISOR) out("%s%s%s ", C_CYAN, strategy_of(c->id), C_RESET);
  out("%s %s%s%s", pid_str(c->pid, p, sizeof(p)),
      c->state == TR_CHILD_RUNNING ? C_GREEN : C_YELLOW, state, C_RESET);
  if (c->restarts) out("  restarts %llu", (unsigned long long)c->restarts);
  if (c->exits) {
    snprintf(why, sizeof(why), "%s", tr_reason_name(c->last_exit.kind));
    out("  %slast exit: %s%s", tr_reason_is_crash(c->last_exit.kind) ? C_RED : C_DIM,
        why, C_RESET);
  }
  out("\n");
  if (c->type == TR_SUPERVISOR && c->pid != TR_PID_NONE) {
    snprintf(sub, sizeof(sub), "%s%s", prefix, last ? "   " : "│  ");
    print_sup(c->pid, sub);
  }
}

static void print_sup(tr_pid_t sup, const char *prefix) {
  tr_sup_child_info_t v[8];
  size_t n = 0;
  if (tr_sup_which_children(sup, v, 8, &n) != 0) return;
  for (size_t i = 0; i < n && i < 8; i++) print_child(&v[i], prefix, i + 1 == n);
}

static void print_tree(tr_pid_t root) {
  char p[32];
  out("%sroot%s %sone_for_one%s %s\n", C_BOLD, C_RESET, C_CYAN, C_RESET,
      pid_str(root, p, sizeof(p)));
  if (tr_is_alive(root)) print_sup(root, "");
}

/* ---- the viewer ------------------------------------------------------------------------ */

static tr_pid_t g_root;

/* Terminal: redraws tree + recent events in place. */
static void draw_dashboard(void) {
  size_t first = g_nev > 14 ? g_nev - 14 : 0;
  out("\033[H\033[J%stroupe supervision demo%s  seed %llu  %.1f / %u s\n\n", C_BOLD,
      C_RESET, (unsigned long long)g_seed, now_s(), g_duration_s);
  print_tree(g_root);
  out("\n%srecent events%s\n", C_BOLD, C_RESET);
  for (size_t i = first; i < g_nev; i++) print_event(&g_ev[i % NEV]);
  flush_out();
}

/* Pipe: appends new events; a tree snapshot every two seconds. */
static void append_log(size_t *seen, double *next_tree) {
  if (g_nev - *seen > NEV) *seen = g_nev - NEV;
  for (; *seen < g_nev; (*seen)++) print_event(&g_ev[*seen % NEV]);
  if (now_s() >= *next_tree) {
    out("%s---- tree at %.1fs ----%s\n", C_DIM, now_s(), C_RESET);
    print_tree(g_root);
    *next_tree += 2.0;
  }
  flush_out();
}

static void viewer(void *arg) {
  size_t seen = 0;
  double next_tree = 2.0;
  (void)arg;
  for (;;) {
    if (g_tty) draw_dashboard();
    else append_log(&seen, &next_tree);
    tr_sleep(g_tty ? 250 : 100);
  }
}

/* ---- the run ------------------------------------------------------------------------------ */

static void summary(void) {
  static const tr_reason_kind_t kinds[] = {TR_REASON_SEGV, TR_REASON_FPE,
                                           TR_REASON_STACK_OVERFLOW, TR_REASON_ABORT};
  unsigned total = 0;
  out("\n%s==== summary (seed %llu, %.1f s) ====%s\ncrashes by kind:\n", C_BOLD,
      (unsigned long long)g_seed, now_s(), C_RESET);
  for (size_t i = 0; i < 4; i++) {
    out("  %-15s %u\n", tr_reason_name(kinds[i]), g_crashes[kinds[i]]);
    total += g_crashes[kinds[i]];
  }
  out("  %-15s %u\nrestarts per supervisor (children restarted, escalations):\n",
      "total", total);
  for (size_t i = 0; i < NSUP; i++)
    out("  %-8s %-13s %4u restarted  %u escalation%s\n", g_sups[i],
        strategy_of(g_sups[i]), g_restarts[i], g_escalations[i],
        g_escalations[i] == 1 ? "" : "s");
  out("final tree:\n");
  print_tree(g_root);
  flush_out();
}

static void demo(void *arg) {
  tr_sup_error_t err;
  tr_pid_t view;
  tr_msg_t *m;
  (void)arg;
  tr_trap_exit(1); /* see the root go, should it ever give up */
  if (tr_sup_start_link(&f_root, c_root, 3, &g_root, &err) != 0) {
    fprintf(stderr, "supervision_demo: %s\n", err.message);
    return;
  }
  tr_spawn(NULL, viewer, NULL, NULL, &view);
  if (tr_recv(&m, (int)g_duration_s * 1000) == 0) tr_msg_free(m); /* root died */
  tr_exit_pid(NULL, view, TR_REASON_KILL);
  summary();
  if (tr_is_alive(g_root)) tr_sup_stop(g_root);
}

static int parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    char *end;
    if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
      unsigned long v = strtoul(argv[++i], &end, 10);
      if (*end || v == 0 || v > 3600) return -1;
      g_duration_s = (unsigned)v;
    } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      g_seed = strtoull(argv[++i], &end, 10);
      if (*end) return -1;
    } else {
      return -1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  tr_runtime_t *rt;
  int err;
  if (parse_args(argc, argv) != 0) {
    fprintf(stderr, "usage: %s [--duration SECONDS] [--seed N]\n", argv[0]);
    return 2;
  }
  g_tty = isatty(STDOUT_FILENO);
  g_color = g_tty && getenv("NO_COLOR") == NULL;
  g_rng = g_seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
  g_t0 = uv_hrtime();
  if (!g_tty)
    printf("troupe supervision demo: seed %llu, %u s; pids print as "
           "<0.index.generation>\n", (unsigned long long)g_seed, g_duration_s);
  if ((err = tr_runtime_new(&rt, NULL)) == 0 &&
      (err = tr_spawn(rt, demo, NULL, NULL, NULL)) == 0)
    err = tr_runtime_run(rt);
  tr_runtime_free(rt);
  if (err != 0) {
    fprintf(stderr, "supervision_demo: %s\n", tr_strerror(err));
    return 1;
  }
  return 0;
}
