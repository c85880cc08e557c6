/*
 * chaos — a seeded chaos soak of a whole supervision tree.
 *
 *   bench/chaos [--duration S] [--seed N] [--groups G] [--teams T]
 *               [--workers W] [--tick-ms MS] [--burst B] [--fault-rate F]
 *               [--burst-every S] [--clients C] [--settle S] [--quiet]
 *
 * The tree (defaults: 1,000 workers, 1,072 actors in all):
 *
 *   root (one_for_one)
 *   |- g.0 .. g.G-1      groups: one_for_one / one_for_all / rest_for_one
 *   |  |- t.g.k          teams of W workers: one_for_one, one_for_all,
 *   |  |                 rest_for_one, or a unit (one_for_all) holding a
 *   |  |                 simple_one_for_one team and the worker that fills it
 *   |- tcp (rest_for_one)
 *      |- handlers       simple_one_for_one, temporary: one per connection
 *      |- acceptor       listens on 127.0.0.1, hands each connection over
 *      |- clients        one_for_one: C clients, echo round trips
 *
 * Load: every worker sends `burst` messages ["m", seq] to the next worker
 * of its team every tick; seq counts per (sender, receiver) pair, so the
 * receiver checks that each pair's messages arrive exactly once, in order,
 * without a gap. TCP clients write frames and read them back through their
 * handler, checking every byte.
 *
 * Faults (`fault-rate` per second, plus a burst into one team every
 * `burst-every` seconds to make it exceed its restart intensity): stack
 * overflow, NULL store (segv), divide by zero (fpe), illegal instruction,
 * abort, bus error, tr_exit_error, and kill — at random points: while
 * handling a message, inside a tr_recv_match predicate, in init (the next
 * restart of a team's worker crashes before its ack), while being shut
 * down (the worker traps exits and crashes on its supervisor's shutdown),
 * and during I/O (a client with a read in flight, a handler between a read
 * and its write, the acceptor holding a fresh connection), besides kills
 * of workers blocked in I/O and of supervisors.
 *
 * Checked at the end (after the faults stop and the tree settles):
 *  - every child of every supervisor is running, and the number of live
 *    actors equals what the tree specifies;
 *  - no message was duplicated, reordered or lost between live actors; no
 *    TCP byte was corrupted;
 *  - every injected fault is accounted for by a supervisor report (the
 *    child's exit with that reason, a failed restart, or the death of a
 *    supervisor above it that was itself a fault), every crash produced
 *    one crash report, and every supervisor escalated exactly when OTP's
 *    intensity rule says (more than `intensity` restarts within
 *    `period_ms`, checked per supervisor from its reports), and its
 *    per-child statistics (tr_sup_which_children) agree with its reports;
 *  - RSS stayed bounded (no growth beyond slack from warm-up to the end),
 *    and fds and VMAs return to their baseline once the runtime is freed.
 * Then the tree is stopped with some workers crashing during the shutdown,
 * and the runtime must end with no actor, fd or mapping left behind.
 *
 * Exits 0 when every invariant held. tests/check_chaos.c runs the same
 * engine for ~20 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "troupe.h"

/* Under AddressSanitizer the quarantine of freed memory and the
 * allocator's own mappings grow RSS and VMAs on purpose: the memory bounds
 * are left to LeakSanitizer there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHAOS_ASAN 1 /* a sanitizer's shadow memory: RSS and VMAs not ours */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHAOS_ASAN 1
#endif
#endif
#ifndef CHAOS_ASAN
#define CHAOS_ASAN 0
#endif

/* ------------------------------------------------------------------------ */
/* Options and results                                                      */
/* ------------------------------------------------------------------------ */

typedef struct chaos_opts {
  double duration_s;   /* the fault phase */
  uint64_t seed;
  int groups, teams, workers; /* groups, teams per group, workers per team */
  int tick_ms, burst;  /* each worker sends `burst` messages every tick */
  double fault_rate;   /* faults per second */
  int burst_every_s;   /* an escalation burst every n seconds (0: none) */
  int clients;         /* TCP clients */
  int tcp_interval_ms; /* pause between a client's round trips */
  int settle_s;        /* how long the tree may take to settle */
  long rss_slack_kib;  /* allowed RSS growth from warm-up to the end */
  int quiet;
} chaos_opts_t;

enum { FK_STACK, FK_SEGV, FK_FPE, FK_ILL, FK_ABORT, FK_BUS, FK_ERROR, FK_KILL,
       FK__N };
enum { FP_RECV, FP_PRED, FP_INIT, FP_SHUTDOWN, FP_IO, FP_KILL, FP__N };

static const char *const fk_name[FK__N] = {"stack_overflow", "segv", "fpe",
                                           "ill", "abort", "bus", "error",
                                           "kill"};
static const char *const fp_name[FP__N] = {"receive", "predicate", "init",
                                           "shutdown", "io", "kill"};
static const tr_reason_kind_t fk_reason[FK__N] = {
    TR_REASON_STACK_OVERFLOW, TR_REASON_SEGV, TR_REASON_FPE, TR_REASON_ILL,
    TR_REASON_ABORT, TR_REASON_BUS, TR_REASON_ERROR, TR_REASON_KILLED};

typedef struct chaos_result {
  uint64_t faults[FK__N][FP__N];
  uint64_t faults_total, faults_superseded, kills_in_start;
  uint64_t restarts, escalations, start_errors, shutdown_errors, exits;
  uint64_t crash_reports;
  uint64_t sent, received;
  uint64_t tcp_frames, tcp_bytes, tcp_reconnects, tcp_conn_errors;
  uint64_t sup_incarnations;
  size_t actors_expected, actors_live, peak_actors;
  long rss_start_kib, rss_warm_kib, rss_end_kib, rss_peak_kib;
  int fds_base, fds_peak, fds_end, vmas_base, vmas_peak, vmas_end;
  double elapsed_s;
  uint64_t violations;
  char first_violations[1024];
} chaos_result_t;

/* ------------------------------------------------------------------------ */
/* Global state                                                             */
/* ------------------------------------------------------------------------ */

#define SLOTS_MAX 256 /* workers per team */

typedef struct {
  atomic_int init_faults;        /* next restarts that crash in init */
  atomic_int slot[SLOTS_MAX];    /* simple teams: identities in use */
  int simple;
} team_t;

typedef struct {
  int g, k, i; /* i: worker index; -1 for a dynamic worker (claims a slot) */
} wid_t;

/* u64 -> u64 open-addressing map (key 0 is "empty"). */
typedef struct {
  uint64_t *k, *v;
  size_t cap, len;
} map_t;

/* Per supervisor incarnation: restart attempts, for the intensity rule. */
typedef struct {
  char name[24];
  int one_for_one; /* one_for_one or simple: an attempt never stops others */
  unsigned intensity, period_ms;
  uint64_t *att; /* attempt times (ns), oldest first */
  uint8_t *retry; /* att[i] is a retry's lower bound */
  size_t natt, capatt;
  int expect; /* 0, 1: next event must be MAX_INTENSITY, 2: must not */
  uint64_t restarted, exited, start_errors, dead;
} supst_t;

typedef struct {
  tr_pid_t pid, sup;
  uint64_t id; /* a killed supervisor's child id (id_key), else 0 */
  int fk, fp;
  uint64_t t_ms;
} fault_t;

static struct {
  chaos_opts_t o;
  chaos_result_t *r;
  tr_runtime_t *rt;
  team_t *teams;
  wid_t *wids;
  atomic_int stop_faults, shutting_down;
  atomic_uint_fast64_t sent, received, tcp_frames, tcp_bytes, tcp_reconnects,
      tcp_conn_errors, crash_lines;
  atomic_uint_fast64_t faults[FK__N][FP__N];
  atomic_int port;
  atomic_int *client_ok;
  volatile char *bus_page;
  pthread_mutex_t mu; /* everything below */
  map_t exits;        /* child pid -> reason kind + 1 (reported exits) */
  map_t sups;         /* sup pid -> supst_t * */
  map_t sup_parent;   /* supervisor pid -> its supervisor's pid */
  map_t killed;       /* pids killed by the controller */
  map_t init_errs[TR_REASON__COUNT]; /* sup pid -> failed restarts */
  map_t start_kills;  /* child id (id_key) -> starts failed as killed */
  fault_t *pending;
  size_t npending, cappending;
  uint64_t restarts, escalations, start_errors, shutdown_errors, exits_n,
      sup_incarnations, superseded, kills_in_start;
} G;

static uint64_t now_ns(void) { return uv_hrtime(); }
static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void violation(const char *fmt, ...) TR_PRINTF(1, 2);
static void violation(const char *fmt, ...) {
  chaos_result_t *r = G.r;
  size_t n = strlen(r->first_violations);
  va_list ap;
  r->violations++;
  if (n + 160 >= sizeof(r->first_violations)) return;
  va_start(ap, fmt);
  vsnprintf(r->first_violations + n, sizeof(r->first_violations) - n, fmt, ap);
  va_end(ap);
  n = strlen(r->first_violations);
  snprintf(r->first_violations + n, sizeof(r->first_violations) - n, "\n");
}

/* xorshift64* */
static uint64_t rnd(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * UINT64_C(2685821657736338717);
}

/* ---- the map ------------------------------------------------------------- */

static size_t map_slot(const map_t *m, uint64_t key) {
  size_t i = (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (m->cap - 1);
  while (m->k[i] != 0 && m->k[i] != key) i = (i + 1) & (m->cap - 1);
  return i;
}

static void map_put(map_t *m, uint64_t key, uint64_t val) {
  size_t i;
  if ((m->len + 1) * 2 > m->cap) {
    map_t n = {0};
    n.cap = m->cap ? m->cap * 2 : 64;
    n.k = calloc(n.cap, sizeof(*n.k));
    n.v = calloc(n.cap, sizeof(*n.v));
    if (n.k == NULL || n.v == NULL) abort();
    for (size_t j = 0; j < m->cap; j++)
      if (m->k[j] != 0) {
        size_t s = map_slot(&n, m->k[j]);
        n.k[s] = m->k[j];
        n.v[s] = m->v[j];
        n.len++;
      }
    free(m->k);
    free(m->v);
    *m = n;
  }
  i = map_slot(m, key);
  if (m->k[i] == 0) m->len++;
  m->k[i] = key;
  m->v[i] = val;
}

static int map_get(const map_t *m, uint64_t key, uint64_t *val) {
  size_t i;
  if (m->cap == 0 || key == 0) return 0;
  i = map_slot(m, key);
  if (m->k[i] != key) return 0;
  if (val) *val = m->v[i];
  return 1;
}

static void map_free(map_t *m) {
  free(m->k);
  free(m->v);
  memset(m, 0, sizeof(*m));
}

/* A child id as a map key (FNV-1a; never 0, the empty key). */
static uint64_t id_key(const char *id) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (; *id; id++) h = (h ^ (unsigned char)*id) * UINT64_C(0x100000001b3);
  return h ? h : 1;
}

/* ------------------------------------------------------------------------ */
/* Crashing                                                                 */
/* ------------------------------------------------------------------------ */

static volatile int g_zero, g_seven = 7;
static volatile int *volatile g_null;
static volatile int g_depth_limit = -1;

/* The faulting accesses are not instrumented by the sanitizers: TSan
 * would record the store to the faulting address from several scheduler
 * threads as a race (and its shadow of a NULL address is not mapped). */
#if defined(__SANITIZE_THREAD__)
#define CHAOS_NO_TSAN __attribute__((no_sanitize_thread))
#else
#define CHAOS_NO_TSAN
#endif

__attribute__((noinline, no_sanitize("undefined", "address"))) CHAOS_NO_TSAN
static int recurse(int n) {
  volatile char pad[512];
  pad[0] = (char)n;
  if (n == g_depth_limit) return 0;
  return recurse(n + 1) + pad[0];
}

__attribute__((noreturn, no_sanitize("undefined", "address"))) CHAOS_NO_TSAN
static void crash(int fk) {
  switch (fk) {
  case FK_STACK: recurse(0); break;
  case FK_SEGV: *g_null = 1; break;
  case FK_FPE: g_zero = g_seven / g_zero; break;
  case FK_ILL: __builtin_trap();
  case FK_ABORT: abort();
  case FK_BUS: G.bus_page[64] = 1; break;
  default: break;
  }
  tr_exit_error(-fk - 100, "chaos: injected error");
  abort(); /* not reached */
}

/* Records a fault the caller is about to suffer (or the controller is
 * about to inflict); id names a supervisor victim by its child id. */
static void record_fault(tr_pid_t pid, tr_pid_t sup, const char *id, int fk,
                         int fp) {
  fault_t *f;
  atomic_fetch_add(&G.faults[fk][fp], 1);
  pthread_mutex_lock(&G.mu);
  if (G.npending == G.cappending) {
    size_t ncap = G.cappending ? G.cappending * 2 : 256;
    fault_t *n = realloc(G.pending, ncap * sizeof(*n));
    if (n == NULL) abort();
    G.pending = n;
    G.cappending = ncap;
  }
  f = &G.pending[G.npending++];
  f->pid = pid;
  f->sup = sup;
  f->id = id ? id_key(id) : 0;
  f->fk = fk;
  f->fp = fp;
  f->t_ms = now_ms();
  pthread_mutex_unlock(&G.mu);
}

/* Suffers fault fk at point fp: records it, then crashes. */
__attribute__((noreturn)) static void suffer(tr_pid_t sup, int fk, int fp) {
  record_fault(tr_self(), sup, NULL, fk, fp);
  crash(fk);
}

/* A command ["crash", fk, fp]: 1 and the fields if m is one. */
static int crash_cmd(tr_msg_t *m, int *fk, int *fp) {
  const msgpack_object *o;
  if (!tr_msg_is_tag(m, "crash")) return 0;
  o = tr_msg_obj(m);
  if (o == NULL || o->via.array.size != 3) return 0;
  *fk = (int)o->via.array.ptr[1].via.u64 % FK__N;
  *fp = (int)o->via.array.ptr[2].via.u64 % FP__N;
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Supervisor reports: the accounting and the intensity rule                */
/* ------------------------------------------------------------------------ */

/* The intensity and period the tree gives a supervisor, by its name. */
static void sup_limits(const char *name, unsigned *intensity, unsigned *period) {
  *intensity = 5;
  *period = 1000;
  if (strcmp(name, "root") == 0) *intensity = 100000;
  else if (name[0] == 'g') { *intensity = 20; *period = 2000; }
  else if (strcmp(name, "tcp") == 0) *intensity = 50;
  else if (strcmp(name, "clients") == 0) *intensity = 200;
  else if (strcmp(name, "handlers") == 0) *intensity = 1000;
}

static const tr_sup_strategy_t group_strategy[4] = {
    TR_ONE_FOR_ONE, TR_ONE_FOR_ALL, TR_REST_FOR_ONE, TR_ONE_FOR_ONE};
static const tr_sup_strategy_t team_strategy[4] = {
    TR_ONE_FOR_ONE, TR_ONE_FOR_ALL, TR_REST_FOR_ONE, TR_SIMPLE_ONE_FOR_ONE};

/* The strategy the tree gives a supervisor, by its name. */
static tr_sup_strategy_t sup_strategy(const char *name) {
  int g = 0, k = 0;
  if (strcmp(name, "tcp") == 0) return TR_REST_FOR_ONE;
  if (strcmp(name, "handlers") == 0) return TR_SIMPLE_ONE_FOR_ONE;
  if (sscanf(name, "g.%d", &g) == 1) return group_strategy[g % 4];
  if (name[0] == 'u') return TR_ONE_FOR_ALL;
  if (sscanf(name, "t.%d.%d", &g, &k) == 2)
    return team_strategy[(g * G.o.teams + k) % 4];
  return TR_ONE_FOR_ONE; /* root, clients */
}

static supst_t *sup_state(const tr_sup_event_t *ev) {
  uint64_t p;
  supst_t *st;
  if (map_get(&G.sups, ev->sup, &p)) return (supst_t *)(uintptr_t)p;
  st = calloc(1, sizeof(*st));
  if (st == NULL) abort();
  sup_limits(ev->sup_name, &st->intensity, &st->period_ms);
  snprintf(st->name, sizeof(st->name), "%s", ev->sup_name);
  st->one_for_one = sup_strategy(ev->sup_name) == TR_ONE_FOR_ONE ||
                    sup_strategy(ev->sup_name) == TR_SIMPLE_ONE_FOR_ONE;
  map_put(&G.sups, ev->sup, (uint64_t)(uintptr_t)st);
  G.sup_incarnations++;
  return st;
}

static void push_attempt(supst_t *st, uint64_t t, int retry) {
  uint64_t keep = ((uint64_t)st->period_ms + 50) * 1000000u;
  size_t j = 0;
  for (size_t i = 0; i < st->natt; i++) /* drop what no window reaches */
    if (t - st->att[i] < keep) {
      st->att[j] = st->att[i];
      st->retry[j++] = st->retry[i];
    }
  st->natt = j;
  if (st->natt == st->capatt) {
    st->capatt = st->capatt ? st->capatt * 2 : 16;
    st->att = realloc(st->att, st->capatt * sizeof(*st->att));
    st->retry = realloc(st->retry, st->capatt);
    if (st->att == NULL || st->retry == NULL) abort();
  }
  st->att[st->natt] = t;
  st->retry[st->natt++] = (uint8_t)retry;
}

/* Does the child (by id) get restarted after an exit with reason kind? */
static int wants_restart(const char *id, tr_reason_kind_t kind) {
  if (strcmp(id, "h") == 0) return 0; /* handlers are temporary */
  if (id[0] == 'x') /* transient workers */
    return kind != TR_REASON_NORMAL && kind != TR_REASON_SHUTDOWN;
  return 1;
}

static int is_sup_id(const char *id) {
  return id[0] == 'g' || id[0] == 't' || id[0] == 'u' ||
         strcmp(id, "tcp") == 0 || strcmp(id, "handlers") == 0 ||
         strcmp(id, "clients") == 0;
}

/* Attempts (certain ones only, or with pending retries too) within
 * (t - window, t]. */
static unsigned attempts_in(const supst_t *st, uint64_t t, uint64_t window_ns,
                            int with_pending) {
  unsigned n = 0;
  for (size_t i = 0; i < st->natt; i++)
    if (t - st->att[i] < window_ns && (with_pending || !st->retry[i])) n++;
  return n;
}

/* A retry was just made (its outcome is being reported): the oldest
 * pending one becomes a certain attempt, now. */
static void retry_made(supst_t *st, uint64_t t) {
  for (size_t i = 0; i < st->natt; i++)
    if (st->retry[i]) {
      memmove(&st->att[i], &st->att[i + 1], (st->natt - i - 1) * sizeof(*st->att));
      memmove(&st->retry[i], &st->retry[i + 1], st->natt - i - 1);
      st->natt--;
      break;
    }
  push_attempt(st, t, 0);
}

/* The intensity rule, from the supervisor's own event stream. A restart
 * attempt follows each EXITED of a child that wants a restart, at once; a
 * START_ERROR queues a retry, made later. For one_for_one (and simple)
 * supervisors every attempt's outcome — MAX_INTENSITY, RESTARTED or
 * START_ERROR — is the next event: an outcome right after an EXITED is
 * that attempt's, any other one is a retry's, made just then. So the
 * attempts the supervisor has counted are known, and escalation is checked
 * both ways: it must escalate when more than `intensity` attempts fall
 * surely within `period_ms`, and must not when at most `intensity` could.
 * (An EXITED followed by no outcome was a child found dead while being
 * stopped: no attempt.) Under one_for_all / rest_for_one such exits cannot
 * be told from attempts, nor retries placed: there only "no escalation
 * without cause" is checked, counting every candidate. Times are seen off
 * the supervisor's own (by more than a scheduler tick on a loaded
 * machine), hence the 25 ms margins. */
static void intensity_rule(supst_t *st, const tr_sup_event_t *ev, uint64_t t) {
  const uint64_t ms = 1000000u, period = (uint64_t)st->period_ms * ms;
  int outcome = ev->kind == TR_SUP_MAX_INTENSITY ||
                ev->kind == TR_SUP_CHILD_RESTARTED || ev->kind == TR_SUP_START_ERROR;
  int judged = 0;
  if (st->expect != 0) {
    if (!outcome) {
      st->natt--; /* not an attempt after all */
    } else if (st->expect == 1 && ev->kind != TR_SUP_MAX_INTENSITY) {
      violation("supervisor %s did not escalate after more than %u restarts "
                "in %u ms", ev->sup_name, st->intensity, st->period_ms);
    } else if (st->expect == 2 && ev->kind == TR_SUP_MAX_INTENSITY) {
      violation("supervisor %s escalated within its intensity (%u in %u ms)",
                ev->sup_name, st->intensity, st->period_ms);
    }
    judged = outcome;
    st->expect = 0;
  }
  if (st->dead) return;
  if (outcome && !judged && st->one_for_one) {
    retry_made(st, t); /* the outcome of a retry made now */
    if (ev->kind == TR_SUP_MAX_INTENSITY &&
        attempts_in(st, t, period + 25 * ms, 0) <= st->intensity)
      violation("supervisor %s escalated at a retry within its intensity "
                "(%u in %u ms)", ev->sup_name, st->intensity, st->period_ms);
  } else if (ev->kind == TR_SUP_MAX_INTENSITY && !judged &&
             attempts_in(st, t, period + 25 * ms, 1) < st->intensity) {
    violation("supervisor %s escalated with at most %u restarts in %u ms",
              ev->sup_name, st->intensity, st->period_ms);
  }
  if (ev->kind == TR_SUP_CHILD_EXITED && wants_restart(ev->child_id, ev->reason->kind)) {
    unsigned lo, hi;
    push_attempt(st, t, 0);
    lo = attempts_in(st, t, period - 25 * ms, 0); /* surely in the window */
    hi = attempts_in(st, t, period + 25 * ms, 0); /* perhaps in it */
    if (st->one_for_one)
      st->expect = lo > st->intensity ? 1 : hi <= st->intensity ? 2 : 3;
  }
  if (ev->kind == TR_SUP_START_ERROR) push_attempt(st, t, 1); /* a retry follows */
}

static void account_event(supst_t *st, const tr_sup_event_t *ev) {
  tr_reason_kind_t k = ev->reason ? ev->reason->kind : TR_REASON_NORMAL;
  switch (ev->kind) {
  case TR_SUP_CHILD_STARTED:
  case TR_SUP_CHILD_RESTARTED:
    if (ev->kind == TR_SUP_CHILD_RESTARTED) {
      st->restarted++;
      G.restarts++;
    }
    if (is_sup_id(ev->child_id)) map_put(&G.sup_parent, ev->child, ev->sup);
    break;
  case TR_SUP_CHILD_EXITED:
    st->exited++;
    G.exits_n++;
    /* fall through */
  case TR_SUP_CHILD_STOPPED:
  case TR_SUP_SHUTDOWN_ERROR:
    if (ev->kind == TR_SUP_SHUTDOWN_ERROR) G.shutdown_errors++;
    map_put(&G.exits, ev->child, now_ms() << 8 | ((uint64_t)k + 1));
    break;
  case TR_SUP_START_ERROR: {
    uint64_t n = 0;
    st->start_errors++;
    G.start_errors++;
    map_get(&G.init_errs[k], ev->sup, &n);
    map_put(&G.init_errs[k], ev->sup, n + 1);
    if (k == TR_REASON_KILLED) { /* see fault_settled */
      n = 0;
      map_get(&G.start_kills, id_key(ev->child_id), &n);
      map_put(&G.start_kills, id_key(ev->child_id), n + 1);
    }
    break;
  }
  case TR_SUP_MAX_INTENSITY:
    G.escalations++;
    st->dead = 1;
    break;
  }
}

static void chaos_report(void *arg, const tr_sup_event_t *ev) {
  uint64_t t = now_ns();
  supst_t *st;
  (void)arg;
  pthread_mutex_lock(&G.mu);
  st = sup_state(ev);
  intensity_rule(st, ev, t);
  account_event(st, ev);
  pthread_mutex_unlock(&G.mu);
}

static void count_log(void *arg, tr_log_level_t level, const char *line) {
  (void)arg;
  (void)level;
  if (strstr(line, "crash") != NULL || strstr(line, "pc=") != NULL)
    atomic_fetch_add(&G.crash_lines, 1);
}

/* ---- settling the faults ------------------------------------------------- */

/* Was pid (or a supervisor above it) killed by the controller? Walks the
 * supervisor parents the reports revealed. */
static int killed_above(tr_pid_t sup) {
  uint64_t p = sup;
  for (int depth = 0; depth < 8 && p != 0; depth++) {
    if (map_get(&G.killed, p, NULL)) return 1;
    if (!map_get(&G.sup_parent, p, &p)) return 0;
  }
  return 0;
}

/* 1 if fault f is accounted for now; then it is consumed.
 *
 * A supervisor registers its name before it starts its children (they
 * find it by name, as in OTP), so a kill by name can hit one that is still
 * starting: then its parent reports no exit for that pid but a failed
 * start with reason killed (START_ERROR's child is TR_PID_NONE), under
 * the child id, which for a supervisor is its name. Such a kill is
 * accounted for by one such report, each report accounting for one kill.
 * Only controller kills produce them (the parent is blocked in the start;
 * a grandchild killed in its start fails the child's init, which acks an
 * error), and the id, not the parent pid looked up before the kill, pairs
 * them: the parent may be a newer incarnation than the one the controller
 * found. */
static int fault_settled(const fault_t *f) {
  uint64_t kind1, n;
  tr_reason_kind_t want = fk_reason[f->fk];
  if (f->fp == FP_INIT) {
    if (map_get(&G.init_errs[want], f->sup, &n) && n > 0) {
      map_put(&G.init_errs[want], f->sup, n - 1);
      return 1;
    }
    return killed_above(f->sup);
  }
  if (map_get(&G.exits, f->pid, &kind1)) {
    if ((kind1 & 0xff) - 1 == (uint64_t)want) return 1;
    /* it ended otherwise: another fault got there first */
    G.superseded++;
    return 1;
  }
  if (f->fk == FK_KILL && f->id != 0 && map_get(&G.start_kills, f->id, &n) &&
      n > 0) {
    map_put(&G.start_kills, f->id, n - 1);
    G.kills_in_start++;
    return 1;
  }
  return killed_above(f->sup);
}

/* Forgets exits older than a minute (no pending fault is that old). */
static void prune_exits(uint64_t now) {
  map_t keep = {0};
  if (G.exits.len < 4096) return;
  for (size_t i = 0; i < G.exits.cap; i++)
    if (G.exits.k[i] != 0 && now - (G.exits.v[i] >> 8) < 60000)
      map_put(&keep, G.exits.k[i], G.exits.v[i]);
  map_free(&G.exits);
  G.exits = keep;
}

/* Settles the pending faults; those older than max_age_ms that nothing
 * accounts for are violations. */
static void settle_faults(uint64_t max_age_ms) {
  uint64_t now = now_ms();
  size_t j = 0;
  pthread_mutex_lock(&G.mu);
  prune_exits(now);
  for (size_t i = 0; i < G.npending; i++) {
    fault_t *f = &G.pending[i];
    if (fault_settled(f)) continue;
    if (now - f->t_ms > max_age_ms) {
      violation("fault %s at %s of pid %#" PRIx64 " (sup %#" PRIx64
                ") is not accounted for",
                fk_name[f->fk], fp_name[f->fp], f->pid, f->sup);
      continue;
    }
    G.pending[j++] = *f;
  }
  G.npending = j;
  pthread_mutex_unlock(&G.mu);
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                  */
/* ------------------------------------------------------------------------ */

#define NSENDERS 8

typedef struct {
  tr_pid_t pid;
  uint64_t next;
} sender_t;

typedef struct {
  wid_t id;
  team_t *team;
  tr_pid_t sup;
  char partner[32];
  tr_pid_t ppid;
  uint64_t pseq;
  sender_t senders[NSENDERS];
  int nsenders;
  int pred_fk;     /* armed: crash inside the next predicate call */
  int shutdown_fk; /* armed: crash when told to shut down */
} wstate_t;

static void worker_name(char *buf, size_t n, int g, int k, int i) {
  snprintf(buf, n, "w.%d.%d.%d", g, k, i);
}

/* ["m", seq] packed by hand: fixarray 2, fixstr "m", uint64. */
static void send_burst(wstate_t *w) {
  tr_pid_t pid;
  unsigned char buf[12] = {0x92, 0xa1, 'm', 0xcf};
  if (tr_whereis(w->partner, &pid) != 0) return;
  if (pid != w->ppid) { /* a new partner incarnation: a new pair */
    w->ppid = pid;
    w->pseq = 0;
  }
  for (int b = 0; b < G.o.burst; b++) {
    uint64_t s = w->pseq++;
    for (int i = 0; i < 8; i++) buf[4 + i] = (unsigned char)(s >> (56 - 8 * i));
    if (tr_send(pid, buf, sizeof(buf)) != 0) abort();
    atomic_fetch_add(&G.sent, 1);
  }
}

static void check_seq(wstate_t *w, tr_msg_t *m) {
  size_t len;
  const unsigned char *d = tr_msg_data(m, &len);
  tr_pid_t from = tr_msg_from(m);
  uint64_t seq = 0;
  sender_t *s = NULL;
  if (len != 12 || d[3] != 0xcf) return;
  for (int i = 0; i < 8; i++) seq = seq << 8 | d[4 + i];
  atomic_fetch_add(&G.received, 1);
  for (int i = 0; i < w->nsenders; i++)
    if (w->senders[i].pid == from) s = &w->senders[i];
  if (s == NULL) { /* first from this sender: a new pair starts at 0 */
    if (w->nsenders < NSENDERS) s = &w->senders[w->nsenders++];
    else s = &w->senders[seq % NSENDERS]; /* evict a stale one */
    s->pid = from;
    s->next = 0;
  }
  if (seq != s->next) {
    pthread_mutex_lock(&G.mu);
    violation("%s: message %" PRIu64 " from %#" PRIx64 " where %" PRIu64
              " was due (%s)", w->partner, seq, from, s->next,
              seq < s->next ? "duplicate or reordered" : "lost");
    pthread_mutex_unlock(&G.mu);
  }
  s->next = seq + 1;
}

static int crash_pred(const tr_msg_t *m, void *arg) {
  wstate_t *w = arg;
  (void)m;
  if (w->pred_fk >= 0) suffer(w->sup, w->pred_fk, FP_PRED);
  return 1;
}

static void worker_exit_msg(wstate_t *w, tr_msg_t *m) {
  tr_reason_t r;
  tr_msg_reason(m, &r);
  tr_msg_free(m);
  if (w->shutdown_fk >= 0) suffer(w->sup, w->shutdown_fk, FP_SHUTDOWN);
  tr_exit(r.kind);
}

static void worker_msg(wstate_t *w, tr_msg_t *m) {
  int fk, fp;
  if (tr_msg_kind(m) == TR_MSG_EXIT) {
    worker_exit_msg(w, m);
    return;
  }
  if (tr_msg_kind(m) == TR_MSG_USER && crash_cmd(m, &fk, &fp)) {
    tr_msg_free(m);
    if (fk == FK_KILL) return;
    if (fp == FP_PRED) w->pred_fk = fk;
    else if (fp == FP_SHUTDOWN) {
      w->shutdown_fk = fk;
      tr_trap_exit(1);
    } else {
      suffer(w->sup, fk, FP_RECV);
    }
    return;
  }
  if (tr_msg_kind(m) == TR_MSG_USER) check_seq(w, m);
  tr_msg_free(m);
}

/* A dynamic worker's identity: the lowest free slot of its team. */
static void release_slot(void *p) { atomic_store((atomic_int *)p, 0); }

static int claim_slot(team_t *t) {
  for (int i = 0; i < G.o.workers; i++) {
    int free_ = 0;
    if (atomic_compare_exchange_strong(&t->slot[i], &free_, 1)) {
      tr_defer(release_slot, &t->slot[i]);
      return i;
    }
  }
  return -1;
}

static void worker(void *arg) {
  wid_t *id = arg;
  wstate_t w;
  char name[32], team[24];
  uint64_t next_tick;
  int i = id->i, n;
  memset(&w, 0, sizeof(w));
  w.id = *id;
  w.team = &G.teams[id->g * G.o.teams + id->k];
  w.pred_fk = w.shutdown_fk = -1;
  snprintf(team, sizeof(team), "t.%d.%d", id->g, id->k);
  if (tr_whereis(team, &w.sup) != 0) w.sup = TR_PID_NONE;
  if (i < 0 && (i = claim_slot(w.team)) < 0) tr_exit_error(1, "no free slot");
  if (id->i >= 0) { /* static teams: crash in init if the controller said so */
    n = atomic_load(&w.team->init_faults);
    while (n > 0 && !atomic_compare_exchange_weak(&w.team->init_faults, &n, n - 1)) {
    }
    if (n > 0) {
      uint64_t s = G.o.seed ^ tr_self();
      suffer(w.sup, (int)(rnd(&s) % FK_KILL), FP_INIT);
    }
  }
  worker_name(name, sizeof(name), id->g, id->k, i);
  worker_name(w.partner, sizeof(w.partner), id->g, id->k, (i + 1) % G.o.workers);
  /* The name comes after the ack: the controller finds its victims by name,
   * and on another scheduler it could otherwise kill a worker between the
   * two, which the supervisor reports as a start error, not an exit. */
  tr_sup_init_ack(TR_INIT_OK);
  if (tr_register(name, tr_self()) != 0) tr_exit_error(2, "name %s taken", name);
  next_tick = now_ms() + (uint64_t)(tr_self() % (unsigned)G.o.tick_ms);
  for (;;) {
    tr_msg_t *m;
    uint64_t now = now_ms();
    int wait = next_tick > now ? (int)(next_tick - now) : 0, rc;
    if (w.pred_fk >= 0) rc = tr_recv_match(&m, crash_pred, &w, wait);
    else rc = tr_recv(&m, wait);
    if (now_ms() >= next_tick) {
      send_burst(&w);
      next_tick += (uint64_t)G.o.tick_ms;
      if (next_tick < now_ms()) next_tick = now_ms() + (uint64_t)G.o.tick_ms;
    }
    if (rc == 0) worker_msg(&w, m);
  }
}

/* Fills a simple team with its workers (a sibling in the unit). */
static void populator(void *arg) {
  wid_t *id = arg;
  char team[24];
  tr_pid_t sup;
  tr_sup_counts_t c;
  tr_msg_t *m;
  snprintf(team, sizeof(team), "t.%d.%d", id->g, id->k);
  if (tr_whereis(team, &sup) != 0 || tr_sup_count_children(sup, &c) != 0)
    tr_exit_error(3, "no team %s", team);
  for (size_t n = c.active; n < (size_t)G.o.workers; n++)
    if (tr_sup_start_child_arg(sup, id, NULL, NULL) != 0)
      tr_exit_error(4, "cannot fill %s", team);
  tr_sup_init_ack(TR_INIT_OK);
  snprintf(team, sizeof(team), "u.%d.%d", id->g, id->k); /* its supervisor */
  if (tr_whereis(team, &sup) != 0) sup = TR_PID_NONE;
  while (tr_recv(&m, -1) == 0) {
    int fk, fp;
    if (crash_cmd(m, &fk, &fp) && fk != FK_KILL) {
      tr_msg_free(m);
      suffer(sup, fk, FP_RECV);
    }
    tr_msg_free(m);
  }
}

/* ------------------------------------------------------------------------ */
/* TCP: acceptor, handlers, clients                                         */
/* ------------------------------------------------------------------------ */

static tr_pid_t sup_of(const char *name) {
  tr_pid_t p = TR_PID_NONE;
  tr_whereis(name, &p);
  return p;
}

/* Pending crash commands of an I/O actor: returns the kind armed for the
 * I/O point, -1 if none; crashes at once for the receive point. */
static int io_commands(tr_pid_t sup, int armed) {
  tr_msg_t *m;
  int fk, fp;
  while (tr_recv_tag(&m, "crash", 0) == 0) {
    if (crash_cmd(m, &fk, &fp) && fk != FK_KILL) {
      tr_msg_free(m);
      if (fp == FP_IO) armed = fk;
      else suffer(sup, fk, FP_RECV);
      continue;
    }
    tr_msg_free(m);
  }
  return armed;
}

static void acceptor(void *arg) {
  tr_io_t srv, conn;
  tr_pid_t me_sup = sup_of("tcp"), h;
  int armed = -1, rc;
  (void)arg;
  if ((rc = tr_tcp_listen(&srv, "127.0.0.1", 0, 256)) != 0)
    tr_exit_error(rc, "listen: %s", tr_strerror(rc));
  atomic_store(&G.port, tr_io_port(srv));
  tr_sup_init_ack(TR_INIT_OK);
  for (;;) {
    armed = io_commands(me_sup, armed);
    rc = tr_tcp_accept(srv, &conn, 50);
    if (rc == TR_ETIMEDOUT) continue;
    if (rc != 0) tr_exit_error(rc, "accept: %s", tr_strerror(rc));
    if (armed >= 0) suffer(me_sup, armed, FP_IO); /* holding a fresh conn */
    if (tr_sup_start_child_arg(sup_of("handlers"), NULL, &h, NULL) != 0 ||
        tr_io_give(conn, h) != 0) {
      tr_io_close(conn);
      continue;
    }
    tr_send_tagged(h, "conn", "u", (uint64_t)conn);
  }
}

static void handler(void *arg) {
  tr_pid_t me_sup = sup_of("handlers");
  tr_msg_t *m;
  tr_io_t conn;
  int armed = -1;
  (void)arg;
  tr_sup_init_ack(TR_INIT_OK);
  if (tr_recv_tag(&m, "conn", 2000) != 0) return; /* the acceptor died */
  conn = tr_msg_obj(m)->via.array.ptr[1].via.u64;
  tr_msg_free(m);
  if (tr_tcp_read_async(conn) != 0) return;
  while (tr_recv(&m, -1) == 0) {
    int fk, fp;
    if (crash_cmd(m, &fk, &fp) && fk != FK_KILL) {
      tr_msg_free(m);
      if (fp == FP_IO) armed = fk;
      else suffer(me_sup, fk, FP_RECV);
      continue;
    }
    if (tr_msg_is_tag(m, "tcp")) {
      const msgpack_object *o = tr_msg_obj(m);
      const msgpack_object *bin = &o->via.array.ptr[2];
      if (armed >= 0) suffer(me_sup, armed, FP_IO); /* read, not answered */
      if (tr_tcp_write(conn, bin->via.bin.ptr, bin->via.bin.size, 2000) != 0 ||
          tr_tcp_read_async(conn) != 0) {
        tr_msg_free(m);
        return;
      }
    } else if (tr_msg_is_tag(m, "tcp_closed") || tr_msg_is_tag(m, "tcp_error")) {
      tr_msg_free(m);
      return;
    }
    tr_msg_free(m);
  }
}

#define FRAME_MAX 4096

/* A frame: [u32 len][u64 seq][u32 client] then a pattern of seq. */
static size_t make_frame(unsigned char *buf, uint64_t seq, int client,
                         uint64_t *rng) {
  size_t len = 16 + (size_t)(rnd(rng) % (FRAME_MAX - 16));
  for (int i = 0; i < 4; i++) buf[i] = (unsigned char)(len >> (24 - 8 * i));
  for (int i = 0; i < 8; i++) buf[4 + i] = (unsigned char)(seq >> (56 - 8 * i));
  for (int i = 0; i < 4; i++) buf[12 + i] = (unsigned char)(client >> (24 - 8 * i));
  for (size_t i = 16; i < len; i++) buf[i] = (unsigned char)(seq * 31 + i);
  return len;
}

static void client_drop(tr_io_t *conn, int idx) {
  if (*conn != TR_IO_NONE) tr_io_close(*conn);
  *conn = TR_IO_NONE;
  atomic_store(&G.client_ok[idx], 0);
}

/* One round trip; 0 on success. */
static int round_trip(tr_io_t conn, int idx, uint64_t seq, uint64_t *rng,
                      int armed, tr_pid_t sup, unsigned char *out,
                      unsigned char *in) {
  size_t len = make_frame(out, seq, idx, rng), got = 0;
  if (tr_tcp_write(conn, out, len, 2000) != 0) return -1;
  if (armed >= 0) { /* a read in flight when it dies */
    tr_tcp_read_async(conn);
    suffer(sup, armed, FP_IO);
  }
  if (tr_tcp_read_exactly(conn, in, len, &got, 2000) != 0) return -1;
  if (memcmp(in, out, len) != 0) {
    pthread_mutex_lock(&G.mu);
    violation("client %d: echo of frame %" PRIu64 " differs", idx, seq);
    pthread_mutex_unlock(&G.mu);
  }
  atomic_fetch_add(&G.tcp_frames, 1);
  atomic_fetch_add(&G.tcp_bytes, 2 * len);
  return 0;
}

static void client(void *arg) {
  int idx = (int)(intptr_t)arg, armed = -1;
  tr_pid_t me_sup = sup_of("clients");
  tr_io_t conn = TR_IO_NONE;
  uint64_t rng = G.o.seed ^ (uint64_t)(idx + 1) * 7919, seq = 0;
  unsigned char *out = tr_arena_alloc(2 * FRAME_MAX), *in = out + FRAME_MAX;
  if (out == NULL) tr_exit_error(TR_ENOMEM, "no buffers");
  tr_defer(release_slot, &G.client_ok[idx]);
  tr_sup_init_ack(TR_INIT_OK);
  for (;;) {
    int port = atomic_load(&G.port);
    armed = io_commands(me_sup, armed);
    if (conn == TR_IO_NONE) {
      if (port == 0 || tr_tcp_connect(&conn, "127.0.0.1", port, 1000) != 0) {
        conn = TR_IO_NONE;
        tr_sleep(10);
        continue;
      }
      atomic_fetch_add(&G.tcp_reconnects, 1);
    }
    if (round_trip(conn, idx, seq++, &rng, armed, me_sup, out, in) != 0) {
      atomic_fetch_add(&G.tcp_conn_errors, 1);
      client_drop(&conn, idx);
      continue;
    }
    atomic_store(&G.client_ok[idx], 1);
    tr_sleep((uint64_t)G.o.tcp_interval_ms);
  }
}

/* ------------------------------------------------------------------------ */
/* The tree                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct {
  tr_sup_flags_t flags;
  tr_child_spec_t *specs;
  size_t n;
  tr_sup_def_t def;
  char name[24];
} supdef_t;

static supdef_t *g_defs;
static size_t g_ndefs, g_capdefs;

static supdef_t *new_def(const char *name, tr_sup_strategy_t strategy, size_t n) {
  supdef_t *d;
  if (g_ndefs == g_capdefs) abort(); /* sized in advance */
  d = &g_defs[g_ndefs++];
  snprintf(d->name, sizeof(d->name), "%s", name);
  tr_sup_flags_init(&d->flags);
  d->flags.strategy = strategy;
  sup_limits(name, &d->flags.intensity, &d->flags.period_ms);
  d->flags.name = d->name;
  d->flags.report = chaos_report;
  d->specs = calloc(n ? n : 1, sizeof(*d->specs));
  d->n = n;
  d->def.flags = &d->flags;
  d->def.specs = d->specs;
  d->def.n = n;
  return d;
}

static void sup_spec(tr_child_spec_t *s, const char *id, supdef_t *d) {
  tr_child_spec_init(s, id, tr_sup_main, &d->def);
  s->type = TR_SUPERVISOR;
}

/* A team of W workers (static) or a unit around a simple team. */
static void team_spec(tr_child_spec_t *s, int g, int k) {
  const tr_sup_strategy_t *st = team_strategy;
  team_t *t = &G.teams[g * G.o.teams + k];
  char name[24];
  int kind = (g * G.o.teams + k) % 4;
  snprintf(name, sizeof(name), "t.%d.%d", g, k);
  if (kind < 3) {
    supdef_t *d = new_def(name, st[kind], (size_t)G.o.workers);
    for (int i = 0; i < G.o.workers; i++) {
      wid_t *id = &G.wids[(g * G.o.teams + k) * G.o.workers + i];
      char cid[16];
      *id = (wid_t){g, k, i};
      snprintf(cid, sizeof(cid), "%c%d", i % 5 == 4 ? 'x' : 'w', i);
      tr_child_spec_init(&d->specs[i], cid, worker, id);
      if (i % 5 == 4) d->specs[i].restart = TR_TRANSIENT;
    }
    sup_spec(s, name, d);
    return;
  }
  t->simple = 1;
  {
    supdef_t *team = new_def(name, TR_SIMPLE_ONE_FOR_ONE, 1), *unit;
    wid_t *id = &G.wids[(g * G.o.teams + k) * G.o.workers];
    char uname[24];
    *id = (wid_t){g, k, -1};
    tr_child_spec_init(&team->specs[0], "w", worker, id);
    snprintf(uname, sizeof(uname), "u.%d.%d", g, k);
    unit = new_def(uname, TR_ONE_FOR_ALL, 2);
    sup_spec(&unit->specs[0], name, team);
    tr_child_spec_init(&unit->specs[1], "pop", populator, id);
    sup_spec(s, uname, unit);
  }
}

static void build_tree(tr_sup_flags_t **root_flags, tr_child_spec_t **root_specs,
                       size_t *nroot) {
  const tr_sup_strategy_t *gs = group_strategy;
  supdef_t *root, *tcp, *handlers, *clients;
  g_capdefs = 8 + (size_t)G.o.groups * (1 + 2 * (size_t)G.o.teams);
  g_defs = calloc(g_capdefs, sizeof(*g_defs));
  root = new_def("root", TR_ONE_FOR_ONE, (size_t)G.o.groups + 1);
  for (int g = 0; g < G.o.groups; g++) {
    char name[24];
    supdef_t *gd;
    snprintf(name, sizeof(name), "g.%d", g);
    gd = new_def(name, gs[g % 4], (size_t)G.o.teams);
    for (int k = 0; k < G.o.teams; k++) team_spec(&gd->specs[k], g, k);
    sup_spec(&root->specs[g], name, gd);
  }
  tcp = new_def("tcp", TR_REST_FOR_ONE, 3);
  handlers = new_def("handlers", TR_SIMPLE_ONE_FOR_ONE, 1);
  tr_child_spec_init(&handlers->specs[0], "h", handler, NULL);
  handlers->specs[0].restart = TR_TEMPORARY;
  handlers->specs[0].shutdown = TR_SHUTDOWN_BRUTAL_KILL;
  /* The acceptor hands each handler its socket, which lives on the
   * acceptor's scheduler's loop: the handlers supervisor, its handlers and
   * the acceptor all start on the tcp supervisor's scheduler. */
  handlers->specs[0].placement = TR_PLACE_LOCAL;
  clients = new_def("clients", TR_ONE_FOR_ONE, (size_t)G.o.clients);
  for (int i = 0; i < G.o.clients; i++) {
    char id[16];
    snprintf(id, sizeof(id), "c%d", i);
    tr_child_spec_init(&clients->specs[i], id, client, (void *)(intptr_t)i);
  }
  sup_spec(&tcp->specs[0], "handlers", handlers);
  tcp->specs[0].placement = TR_PLACE_LOCAL;
  tr_child_spec_init(&tcp->specs[1], "acceptor", acceptor, NULL);
  tcp->specs[1].placement = TR_PLACE_LOCAL;
  sup_spec(&tcp->specs[2], "clients", clients);
  sup_spec(&root->specs[G.o.groups], "tcp", tcp);
  *root_flags = &root->flags;
  *root_specs = root->specs;
  *nroot = root->n;
}

/* The actors the tree specifies, controller included. */
static size_t expected_actors(void) {
  size_t n = 1 + 1 + (size_t)G.o.groups; /* controller, root, groups */
  for (int t = 0; t < G.o.groups * G.o.teams; t++)
    n += 1 + (size_t)G.o.workers + (G.teams[t].simple ? 2 : 0);
  return n + 4 + 2 * (size_t)G.o.clients; /* tcp, handlers, acceptor,
                                             clients + clients, handlers */
}

/* ------------------------------------------------------------------------ */
/* The controller                                                           */
/* ------------------------------------------------------------------------ */

typedef struct {
  size_t sups, children, not_running;
  int stats_ok;
} walk_t;

/* Walks the tree: counts, and compares each supervisor's per-child
 * statistics with its reports. */
static void walk(tr_pid_t sup, walk_t *w, int depth) {
  tr_sup_child_info_t *info;
  size_t n = 0, cap;
  uint64_t restarts = 0, exits = 0, p;
  if (depth > 8 || tr_sup_which_children(sup, NULL, 0, &n) != 0) {
    w->not_running++;
    return;
  }
  cap = n;
  info = calloc(cap ? cap : 1, sizeof(*info));
  if (tr_sup_which_children(sup, info, cap, &n) != 0) n = 0;
  if (n > cap) n = cap; /* children were added between the two calls */
  w->sups++;
  for (size_t i = 0; i < n; i++) {
    w->children++;
    restarts += info[i].restarts;
    exits += info[i].exits;
    if (info[i].state != TR_CHILD_RUNNING || !tr_is_alive(info[i].pid)) {
      w->not_running++;
      continue;
    }
    if (info[i].type == TR_SUPERVISOR) walk(info[i].pid, w, depth + 1);
  }
  pthread_mutex_lock(&G.mu);
  if (w->stats_ok && map_get(&G.sups, sup, &p)) {
    supst_t *st = (supst_t *)(uintptr_t)p;
    /* handlers' temporary children are dropped with their records */
    if (strcmp(st->name, "handlers") != 0 &&
        (restarts != st->restarted || exits != st->exited))
      violation("supervisor %#" PRIx64 ": stats say %" PRIu64 " restarts, %"
                PRIu64 " exits; reports say %" PRIu64 ", %" PRIu64,
                sup, restarts, exits, st->restarted, st->exited);
  }
  pthread_mutex_unlock(&G.mu);
  free(info);
}

static int tree_settled(tr_pid_t root) {
  walk_t w = {0, 0, 0, 0};
  tr_sup_counts_t hc;
  tr_pid_t h;
  walk(root, &w, 0);
  if (w.not_running > 0) return 0;
  for (int i = 0; i < G.o.clients; i++)
    if (!atomic_load(&G.client_ok[i])) return 0;
  if (tr_whereis("handlers", &h) != 0 || tr_sup_count_children(h, &hc) != 0)
    return 0;
  return hc.active == (size_t)G.o.clients;
}

/* ---- metrics -------------------------------------------------------------- */

static int count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  int n = 0, c;
  if (f == NULL) return -1;
  while ((c = fgetc(f)) != EOF)
    if (c == '\n') n++;
  fclose(f);
  return n;
}

static int fd_count(void) {
  int n = 0;
  char path[64];
  for (int fd = 0; fd < 4096; fd++) {
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (access(path, F_OK) == 0) n++;
  }
  return n;
}

static long rss_kib(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
  fclose(f);
  return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void sample(chaos_result_t *r) {
  long rss = rss_kib();
  int fds = fd_count(), vmas = count_lines("/proc/self/maps");
  size_t live = tr_runtime_actor_count(G.rt);
  if (rss > r->rss_peak_kib) r->rss_peak_kib = rss;
  if (fds > r->fds_peak) r->fds_peak = fds;
  if (vmas > r->vmas_peak) r->vmas_peak = vmas;
  if (live > r->peak_actors) r->peak_actors = live;
}

/* ---- faults ---------------------------------------------------------------- */

static void command(tr_pid_t pid, int fk, int fp) {
  tr_send_tagged(pid, "crash", "uu", (uint64_t)fk, (uint64_t)fp);
}

/* Kills pid, a child of sup; id: its child id when it is a supervisor. */
static void kill_pid(tr_pid_t pid, tr_pid_t sup, const char *id) {
  if (pid == TR_PID_NONE || !tr_is_alive(pid)) return;
  record_fault(pid, sup, id, FK_KILL, FP_KILL);
  pthread_mutex_lock(&G.mu);
  map_put(&G.killed, pid, now_ms());
  pthread_mutex_unlock(&G.mu);
  tr_exit_pid(NULL, pid, TR_REASON_KILL);
}

/* One fault on a random worker of team (g, k). */
static void fault_worker(uint64_t *rng, int g, int k, int fp) {
  char name[32], team[24];
  tr_pid_t pid, sup = TR_PID_NONE;
  int fk = (int)(rnd(rng) % FK__N);
  worker_name(name, sizeof(name), g, k, (int)(rnd(rng) % (unsigned)G.o.workers));
  snprintf(team, sizeof(team), "t.%d.%d", g, k);
  tr_whereis(team, &sup);
  if (tr_whereis(name, &pid) != 0) return;
  if (fk == FK_KILL) kill_pid(pid, sup, NULL);
  else command(pid, fk, fp);
}

static void fault_tcp(uint64_t *rng) {
  static const char *const who[3] = {"acceptor", "clients", "handlers"};
  int w = (int)(rnd(rng) % 10), fk = (int)(rnd(rng) % FK__N);
  int fp = rnd(rng) % 2 ? FP_IO : FP_RECV;
  tr_sup_child_info_t info[64];
  size_t n = 0;
  tr_pid_t sup, target = TR_PID_NONE;
  if (w == 0) { /* the acceptor: by the tcp supervisor's child list */
    if (tr_whereis("tcp", &sup) != 0 || tr_sup_child_info(sup, who[0], info) != 0)
      return;
    target = info[0].pid;
  } else {
    if (tr_whereis(who[w < 6 ? 1 : 2], &sup) != 0 ||
        tr_sup_which_children(sup, info, 64, &n) != 0 || n == 0)
      return;
    target = info[rnd(rng) % (n < 64 ? n : 64)].pid;
  }
  if (target == TR_PID_NONE) return;
  if (fk == FK_KILL) kill_pid(target, sup, NULL); /* often blocked in I/O */
  else command(target, fk, fp);
}

/* Kills a supervisor below the root: a team, unit or group — perhaps one
 * still starting its children (see fault_settled). */
static void fault_sup(uint64_t *rng) {
  int g = (int)(rnd(rng) % (unsigned)G.o.groups), k = (int)(rnd(rng) % (unsigned)G.o.teams);
  char name[24], parent[24];
  tr_pid_t pid, par = TR_PID_NONE;
  if (rnd(rng) % 4 == 0) {
    snprintf(name, sizeof(name), "g.%d", g);
    snprintf(parent, sizeof(parent), "root");
  } else {
    snprintf(name, sizeof(name), "%s.%d.%d",
             G.teams[g * G.o.teams + k].simple ? "u" : "t", g, k);
    snprintf(parent, sizeof(parent), "g.%d", g);
  }
  tr_whereis(parent, &par);
  if (tr_whereis(name, &pid) == 0) kill_pid(pid, par, name);
}

static void inject(uint64_t *rng) {
  int g = (int)(rnd(rng) % (unsigned)G.o.groups), k = (int)(rnd(rng) % (unsigned)G.o.teams);
  unsigned what = (unsigned)(rnd(rng) % 100);
  team_t *t = &G.teams[g * G.o.teams + k];
  if (what < 8) fault_tcp(rng);
  else if (what < 10) fault_sup(rng);
  else if (what < 16 && !t->simple) { /* the next restart crashes in init */
    atomic_fetch_add(&t->init_faults, 1);
    fault_worker(rng, g, k, FP_RECV);
  } else {
    static const int points[4] = {FP_RECV, FP_RECV, FP_PRED, FP_SHUTDOWN};
    fault_worker(rng, g, k, points[rnd(rng) % 4]);
  }
}

/* More faults than a team's intensity, at once, into a team whose
 * restarts stop no sibling (one_for_one or simple): it must escalate. */
static void burst(uint64_t *rng) {
  int g, k, tries = 0;
  do {
    g = (int)(rnd(rng) % (unsigned)G.o.groups);
    k = (int)(rnd(rng) % (unsigned)G.o.teams);
  } while ((g * G.o.teams + k) % 4 % 3 != 0 && ++tries < 64);
  for (int i = 0; i < 8; i++) fault_worker(rng, g, k, FP_RECV);
}

/* ---- phases ---------------------------------------------------------------- */

static uint64_t faults_so_far(void) {
  uint64_t n = 0;
  for (int k = 0; k < FK__N; k++)
    for (int p = 0; p < FP__N; p++) n += atomic_load(&G.faults[k][p]);
  return n;
}

static void chaos_phase(uint64_t *rng) {
  chaos_result_t *r = G.r;
  uint64_t start = now_ms(), end = start + (uint64_t)(G.o.duration_s * 1000);
  uint64_t next_sample = start, next_burst = start + 1000u * (uint64_t)G.o.burst_every_s;
  uint64_t warm_at = start + (end - start) / 10, gap_us;
  gap_us = G.o.fault_rate > 0 ? (uint64_t)(1e6 / G.o.fault_rate) : 0;
  while (now_ms() < end) {
    uint64_t now = now_ms();
    if (gap_us) inject(rng);
    if (G.o.burst_every_s > 0 && now >= next_burst) {
      burst(rng);
      next_burst += 1000u * (uint64_t)G.o.burst_every_s;
    }
    if (now >= next_sample) {
      sample(r);
      if (r->rss_warm_kib == 0 && now >= warm_at) r->rss_warm_kib = rss_kib();
      settle_faults(15000);
      next_sample += 1000;
      if (!G.o.quiet)
        fprintf(stderr, "chaos: %5.0fs actors %zu sent %" PRIu64 " faults %"
                PRIu64 " restarts %" PRIu64 " escalations %" PRIu64 "\n",
                (double)(now - start) / 1000.0, tr_runtime_actor_count(G.rt),
                (uint64_t)atomic_load(&G.sent), faults_so_far(), G.restarts,
                G.escalations);
    }
    tr_sleep(gap_us ? (gap_us + 999) / 1000 : 100);
  }
}

static void settle_phase(tr_pid_t root) {
  uint64_t deadline = now_ms() + 1000u * (uint64_t)G.o.settle_s;
  atomic_store(&G.stop_faults, 1);
  for (int t = 0; t < G.o.groups * G.o.teams; t++) atomic_store(&G.teams[t].init_faults, 0);
  while (!tree_settled(root)) {
    if (now_ms() > deadline) {
      walk_t w = {0, 0, 0, 0};
      walk(root, &w, 0);
      violation("the tree did not settle in %d s (%zu children not running)",
                G.o.settle_s, w.not_running);
      return;
    }
    tr_sleep(50);
  }
}

static void check_phase(tr_pid_t root) {
  chaos_result_t *r = G.r;
  walk_t w = {0, 0, 0, 1};
  tr_sleep(300); /* the last reports are in */
  walk(root, &w, 0);
  if (w.not_running > 0) violation("%zu children not running", w.not_running);
  r->actors_expected = expected_actors();
  r->actors_live = tr_runtime_actor_count(G.rt);
  if (r->actors_live != r->actors_expected)
    violation("%zu actors live, the tree specifies %zu", r->actors_live,
              r->actors_expected);
  settle_faults(0);
  r->rss_end_kib = rss_kib();
  if (!CHAOS_ASAN && r->rss_warm_kib > 0 &&
      r->rss_end_kib > r->rss_warm_kib + G.o.rss_slack_kib)
    violation("RSS grew from %ld to %ld KiB", r->rss_warm_kib, r->rss_end_kib);
  if (r->fds_peak > r->fds_base + 3 * G.o.clients + 32)
    violation("%d fds at the peak (baseline %d)", r->fds_peak, r->fds_base);
}

/* Stops the tree with some workers crashing as they are shut down. */
static void shutdown_phase(uint64_t *rng, tr_pid_t root) {
  tr_msg_t *m;
  int rc;
  for (int i = 0; i < 20; i++) {
    int g = (int)(rnd(rng) % (unsigned)G.o.groups), k = (int)(rnd(rng) % (unsigned)G.o.teams);
    char name[32];
    tr_pid_t pid;
    worker_name(name, sizeof(name), g, k, (int)(rnd(rng) % (unsigned)G.o.workers));
    if (tr_whereis(name, &pid) == 0) command(pid, (int)(rnd(rng) % FK_KILL), FP_SHUTDOWN);
  }
  tr_sleep(50);
  atomic_store(&G.shutting_down, 1);
  if ((rc = tr_sup_stop(root)) != 0) violation("tr_sup_stop(root): %s", tr_strerror(rc));
  while (tr_recv(&m, 0) == 0) tr_msg_free(m);
}

static void controller(void *arg) {
  uint64_t rng = G.o.seed * UINT64_C(0x9E3779B97F4A7C15) | 1;
  tr_sup_flags_t *rf;
  tr_child_spec_t *rs;
  tr_sup_error_t err;
  tr_pid_t root;
  size_t n;
  int rc;
  (void)arg;
  tr_trap_exit(1);
  build_tree(&rf, &rs, &n);
  if ((rc = tr_sup_start_link(rf, rs, n, &root, &err)) != 0) {
    violation("the tree did not start: %s (%s)", tr_strerror(rc), err.message);
    return;
  }
  G.r->rss_start_kib = rss_kib();
  settle_phase(root); /* boot: everyone connected */
  atomic_store(&G.stop_faults, 0);
  chaos_phase(&rng);
  settle_phase(root);
  check_phase(root);
  shutdown_phase(&rng, root);
}

/* ------------------------------------------------------------------------ */
/* Running                                                                  */
/* ------------------------------------------------------------------------ */

void chaos_opts_init(chaos_opts_t *o);
int chaos_run(const chaos_opts_t *o, chaos_result_t *r);
void chaos_print(FILE *out, const chaos_opts_t *o, const chaos_result_t *r);

void chaos_opts_init(chaos_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->duration_s = 60;
  o->seed = 42;
  o->groups = 4;
  o->teams = 5;
  o->workers = 50;
  o->tick_ms = 20;
  o->burst = 2;
  o->fault_rate = 20;
  o->burst_every_s = 5;
  o->clients = 16;
  o->tcp_interval_ms = 5;
  o->settle_s = 30;
  o->rss_slack_kib = 64 * 1024;
}

/* A page that faults with SIGBUS: a shared mapping of a file truncated
 * to nothing. */
static int bus_page_setup(void) {
  char path[] = "/tmp/troupe-chaos-XXXXXX";
  int fd = mkstemp(path);
  void *p;
  if (fd < 0) return -1;
  unlink(path);
  if (ftruncate(fd, 4096) != 0) {
    close(fd);
    return -1;
  }
  p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || ftruncate(fd, 0) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  G.bus_page = p;
  return 0;
}

static void global_free(void) {
  for (size_t i = 0; i < G.sups.cap; i++)
    if (G.sups.k[i] != 0) {
      supst_t *st = (supst_t *)(uintptr_t)G.sups.v[i];
      free(st->att);
      free(st->retry);
      free(st);
    }
  map_free(&G.sups);
  map_free(&G.exits);
  map_free(&G.sup_parent);
  map_free(&G.killed);
  map_free(&G.start_kills);
  for (int k = 0; k < TR_REASON__COUNT; k++) map_free(&G.init_errs[k]);
  free(G.pending);
  for (size_t i = 0; i < g_ndefs; i++) free(g_defs[i].specs);
  free(g_defs);
  g_defs = NULL;
  g_ndefs = g_capdefs = 0;
  free(G.teams);
  free(G.wids);
  free((void *)G.client_ok);
  if (G.bus_page) munmap((void *)G.bus_page, 4096);
}

static void collect(chaos_result_t *r) {
  for (int k = 0; k < FK__N; k++)
    for (int p = 0; p < FP__N; p++) {
      r->faults[k][p] = atomic_load(&G.faults[k][p]);
      r->faults_total += r->faults[k][p];
    }
  r->faults_superseded = G.superseded;
  r->kills_in_start = G.kills_in_start;
  r->restarts = G.restarts;
  r->escalations = G.escalations;
  r->start_errors = G.start_errors;
  r->shutdown_errors = G.shutdown_errors;
  r->exits = G.exits_n;
  r->sup_incarnations = G.sup_incarnations;
  r->crash_reports = atomic_load(&G.crash_lines);
  r->sent = atomic_load(&G.sent);
  r->received = atomic_load(&G.received);
  r->tcp_frames = atomic_load(&G.tcp_frames);
  r->tcp_bytes = atomic_load(&G.tcp_bytes);
  r->tcp_reconnects = atomic_load(&G.tcp_reconnects);
  r->tcp_conn_errors = atomic_load(&G.tcp_conn_errors);
}

static void final_checks(chaos_result_t *r) {
  uint64_t crashes = 0;
  for (int k = FK_STACK; k <= FK_BUS; k++)
    for (int p = 0; p < FP__N; p++) crashes += r->faults[k][p];
  if (r->crash_reports != crashes)
    violation("%" PRIu64 " crash reports for %" PRIu64 " crashes",
              r->crash_reports, crashes);
  if (r->received > r->sent) violation("more received than sent");
  for (int k = 0; k < FK__N; k++) {
    uint64_t n = 0;
    for (int p = 0; p < FP__N; p++) n += r->faults[k][p];
    if (n == 0 && r->elapsed_s > 10) violation("no %s fault was injected", fk_name[k]);
  }
  if (r->fds_end != r->fds_base)
    violation("%d fds after the runtime is freed, %d before", r->fds_end, r->fds_base);
  if (!CHAOS_ASAN && r->vmas_end > r->vmas_base + 16)
    violation("%d VMAs after the runtime is freed, %d before", r->vmas_end,
              r->vmas_base);
}

int chaos_run(const chaos_opts_t *o, chaos_result_t *r) {
  tr_config_t cfg;
  uint64_t t0 = now_ms();
  int rc;
  memset(r, 0, sizeof(*r));
  memset(&G, 0, sizeof(G));
  G.o = *o;
  G.r = r;
  if (G.o.workers > SLOTS_MAX || G.o.workers < 2 || G.o.groups < 1 ||
      G.o.teams < 1 || G.o.tick_ms < 1)
    return -1;
  pthread_mutex_init(&G.mu, NULL);
  G.teams = calloc((size_t)(G.o.groups * G.o.teams), sizeof(*G.teams));
  G.wids = calloc((size_t)(G.o.groups * G.o.teams * G.o.workers), sizeof(*G.wids));
  G.client_ok = calloc((size_t)G.o.clients + 1, sizeof(*G.client_ok));
  if (G.teams == NULL || G.wids == NULL || bus_page_setup() != 0) return -1;
  tr_config_init(&cfg);
  /* libuv sets up process-wide state (a signal pipe) with its first loop,
   * for good: a first runtime, freed at once, makes it part of the
   * baseline. */
  if (tr_runtime_new(&G.rt, &cfg) != 0 || tr_runtime_free(G.rt) != 0) return -1;
  r->fds_base = fd_count();
  r->vmas_base = count_lines("/proc/self/maps");
  cfg.logger = count_log;
  cfg.stop_timeout_ms = 10000;
  if ((rc = tr_runtime_new(&G.rt, &cfg)) != 0) return rc;
  if ((rc = tr_spawn(G.rt, controller, NULL, NULL, NULL)) == 0) rc = tr_runtime_run(G.rt);
  if (rc != 0) violation("tr_runtime_run: %s", tr_strerror(rc));
  if (tr_runtime_actor_count(G.rt) != 0)
    violation("%zu actors left after the run", tr_runtime_actor_count(G.rt));
  settle_faults(0);
  pthread_mutex_lock(&G.mu);
  if (G.npending > 0) violation("%zu faults never accounted for", G.npending);
  pthread_mutex_unlock(&G.mu);
  collect(r);
  if ((rc = tr_runtime_free(G.rt)) != 0) violation("tr_runtime_free: %s", tr_strerror(rc));
  r->elapsed_s = (double)(now_ms() - t0) / 1000.0;
  if (G.bus_page) munmap((void *)G.bus_page, 4096);
  G.bus_page = NULL;
  r->fds_end = fd_count();
  r->vmas_end = count_lines("/proc/self/maps");
  final_checks(r);
  global_free();
  pthread_mutex_destroy(&G.mu);
  return r->violations == 0 ? 0 : 1;
}

void chaos_print(FILE *out, const chaos_opts_t *o, const chaos_result_t *r) {
  fprintf(out, "chaos: seed %" PRIu64 ", %.0f s of faults, %.1f s in all\n",
          o->seed, o->duration_s, r->elapsed_s);
  fprintf(out, "tree: %zu actors (expected %zu, peak %zu), %d groups x %d teams x "
          "%d workers, %d TCP clients, %" PRIu64 " supervisor incarnations\n",
          r->actors_live, r->actors_expected, r->peak_actors, o->groups, o->teams,
          o->workers, o->clients, r->sup_incarnations);
  fprintf(out, "faults: %" PRIu64 " injected (%" PRIu64 " superseded by another, %"
          PRIu64 " kills of a supervisor still starting)\n",
          r->faults_total, r->faults_superseded, r->kills_in_start);
  for (int k = 0; k < FK__N; k++) {
    uint64_t n = 0;
    for (int p = 0; p < FP__N; p++) n += r->faults[k][p];
    fprintf(out, "  %-15s %8" PRIu64 "  (", fk_name[k], n);
    for (int p = 0, first = 1; p < FP__N; p++)
      if (r->faults[k][p]) {
        fprintf(out, "%s%s %" PRIu64, first ? "" : ", ", fp_name[p], r->faults[k][p]);
        first = 0;
      }
    fprintf(out, ")\n");
  }
  fprintf(out, "supervision: %" PRIu64 " restarts, %" PRIu64 " escalations, %" PRIu64
          " failed restarts, %" PRIu64 " shutdown errors, %" PRIu64 " exits, %"
          PRIu64 " crash reports\n", r->restarts, r->escalations, r->start_errors,
          r->shutdown_errors, r->exits, r->crash_reports);
  fprintf(out, "messages: %" PRIu64 " sent, %" PRIu64 " received\n", r->sent, r->received);
  fprintf(out, "tcp: %" PRIu64 " echo round trips, %.1f MiB, %" PRIu64 " connects, %"
          PRIu64 " broken connections\n", r->tcp_frames,
          (double)r->tcp_bytes / 1048576.0, r->tcp_reconnects, r->tcp_conn_errors);
  fprintf(out, "memory: RSS start %ld KiB, warm %ld KiB, end %ld KiB, peak %ld KiB\n",
          r->rss_start_kib, r->rss_warm_kib, r->rss_end_kib, r->rss_peak_kib);
  fprintf(out, "fds: %d before, peak %d, %d after; VMAs: %d before, peak %d, %d after%s\n",
          r->fds_base, r->fds_peak, r->fds_end, r->vmas_base, r->vmas_peak, r->vmas_end,
          CHAOS_ASAN ? " (ASan build: RSS and VMA bounds not checked)" : "");
  fprintf(out, "invariants: %s (%" PRIu64 " violations)\n",
          r->violations ? "VIOLATED" : "all held", r->violations);
  if (r->violations) fprintf(out, "%s", r->first_violations);
}

#ifndef CHAOS_NO_MAIN
static void usage(void) {
  fprintf(stderr,
          "usage: chaos [--duration S] [--seed N] [--groups G] [--teams T]\n"
          "             [--workers W] [--tick-ms MS] [--burst B] [--fault-rate F]\n"
          "             [--burst-every S] [--clients C] [--settle S] [--quiet]\n");
  exit(2);
}

int main(int argc, char **argv) {
  chaos_opts_t o;
  chaos_result_t r;
  int rc;
  chaos_opts_init(&o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--quiet") == 0) { o.quiet = 1; continue; }
    if (v == NULL) usage();
    if (strcmp(a, "--duration") == 0) o.duration_s = atof(v);
    else if (strcmp(a, "--seed") == 0) o.seed = strtoull(v, NULL, 0);
    else if (strcmp(a, "--groups") == 0) o.groups = atoi(v);
    else if (strcmp(a, "--teams") == 0) o.teams = atoi(v);
    else if (strcmp(a, "--workers") == 0) o.workers = atoi(v);
    else if (strcmp(a, "--tick-ms") == 0) o.tick_ms = atoi(v);
    else if (strcmp(a, "--burst") == 0) o.burst = atoi(v);
    else if (strcmp(a, "--fault-rate") == 0) o.fault_rate = atof(v);
    else if (strcmp(a, "--burst-every") == 0) o.burst_every_s = atoi(v);
    else if (strcmp(a, "--clients") == 0) o.clients = atoi(v);
    else if (strcmp(a, "--settle") == 0) o.settle_s = atoi(v);
    else usage();
    i++;
  }
  rc = chaos_run(&o, &r);
  if (rc < 0) {
    fprintf(stderr, "chaos: bad options or setup failed\n");
    return 2;
  }
  chaos_print(stdout, &o, &r);
  return rc == 0 ? 0 : 1;
}
#endif
