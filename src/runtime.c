/*
 * The runtime: configuration, standalone and embedded start, the scheduler
 * threads, run, the orderly stop, and teardown.
 *
 * Threads. Scheduler 0 runs on the host's thread: inside tr_runtime_run
 * (standalone) or from the host's loop callbacks (embedded). Schedulers
 * 1..n-1 each run on a thread of their own, started by tr_runtime_new /
 * tr_runtime_attach, with their own uv_loop_t. Standalone, those threads
 * are parked outside tr_runtime_run (no actor runs, as with one scheduler):
 * host code that needs an answer from a parked scheduler (a remote spawn,
 * an exit signal that must take effect at once) has it apply its inbox
 * while the host waits ("service"). Embedded, they run from attach to free.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifdef TR_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* The default number of schedulers: TR_SCHEDULERS=<n> (1..64), else the
 * online CPUs (at most 64). */
static unsigned default_schedulers(void) {
  const char *e = getenv("TR_SCHEDULERS");
  char *end;
  unsigned long n;
  long cpus;
  if (e != NULL && *e != '\0') {
    n = strtoul(e, &end, 10);
    if (*end == '\0' && n >= 1 && n <= TR_SCHEDULERS_MAX) return (unsigned)n;
  }
  cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1) return 1;
  return cpus > TR_SCHEDULERS_MAX ? TR_SCHEDULERS_MAX : (unsigned)cpus;
}

void tr_config_init(tr_config_t *cfg) {
  if (cfg == NULL) return;
  memset(cfg, 0, sizeof(*cfg));
  cfg->size = sizeof(*cfg);
  cfg->schedulers = default_schedulers();
  cfg->stack_size = TR_STACK_SIZE_DEFAULT;
  cfg->stack_cache = 1024;
  cfg->stop_timeout_ms = 5000;
  cfg->crash_reports = 1;
  cfg->catch_faults = 1;
  cfg->placement = TR_PLACE_DEFAULT;
}

/* The default placement: TR_PLACEMENT=local|round_robin|least_loaded. */
static int default_placement(void) {
  const char *e = getenv("TR_PLACEMENT");
  if (e == NULL) return TR_PLACE_LOCAL;
  if (strcasecmp(e, "round_robin") == 0) return TR_PLACE_ROUND_ROBIN;
  if (strcasecmp(e, "least_loaded") == 0) return TR_PLACE_LEAST_LOADED;
  return TR_PLACE_LOCAL;
}

/* Copies the caller's config, which may be older (smaller) than ours. */
static int config_copy(tr_config_t *dst, const tr_config_t *src) {
  tr_config_init(dst);
  if (src != NULL) {
    if (src->size < offsetof(tr_config_t, catch_faults) ||
        src->size > sizeof(*dst))
      return TR_EINVAL;
    memcpy(dst, src, src->size);
    dst->size = sizeof(*dst);
  }
  if (dst->schedulers == 0) dst->schedulers = default_schedulers();
  if (dst->schedulers > TR_SCHEDULERS_MAX) return TR_EINVAL;
  if (dst->placement == TR_PLACE_DEFAULT) dst->placement = default_placement();
  if (!(dst->placement >= TR_PLACE_LOCAL &&
        dst->placement <= TR_PLACE_LEAST_LOADED) &&
      !(dst->placement >= TR_PLACE_SCHED(0) &&
        dst->placement < TR_PLACE_SCHED(dst->schedulers)))
    return TR_EINVAL;
  if (dst->stack_size == 0) dst->stack_size = TR_STACK_SIZE_DEFAULT;
  if (dst->stack_size < TR_STACK_SIZE_MIN || dst->stack_size > TR_STACK_SIZE_MAX)
    return TR_EINVAL;
  return 0;
}

void tr_log_stderr(void *arg, tr_log_level_t level, const char *line) {
  (void)arg;
  (void)level;
  if (line != NULL) fprintf(stderr, "%s\n", line);
}

/* The logger is called with a lock held, so that it sees one line at a
 * time whichever scheduler thread logs. */
void tr__log(tr__sched_t *s, tr_log_level_t level, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  tr_runtime_t *rt;
  if (s == NULL || s->rt->cfg.logger == NULL) return;
  rt = s->rt;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&rt->log_mu);
  rt->cfg.logger(rt->cfg.logger_arg, level, line);
  pthread_mutex_unlock(&rt->log_mu);
}

/* ---- live counts -------------------------------------------------------- */

void tr__live_inc(tr__sched_t *s) {
  if (s->live++ == 0) atomic_fetch_add(&s->rt->scheds_live, 1);
  atomic_store_explicit(&s->live_pub, s->live, memory_order_relaxed);
}

static void kick(tr__sched_t *s);

void tr__live_dec(tr__sched_t *s) {
  tr_runtime_t *rt = s->rt;
  s->live--;
  atomic_store_explicit(&s->live_pub, s->live, memory_order_relaxed);
  if (s->live == 0 && atomic_fetch_sub(&rt->scheds_live, 1) == 1 &&
      s != &rt->sched) {
    /* Scheduler 0 sees that everything ended. Attached, it must hear it
     * even if it never ran an actor (the host spawned only on other
     * schedulers): its async keeps the host's loop alive until it does,
     * and a poke only reaches a scheduler that said it would sleep. */
    if (rt->attached) kick(&rt->sched);
    else tr__poke(&rt->sched);
  }
}

/* ---- host waits ----------------------------------------------------------- */

void tr__host_done(tr_runtime_t *rt, tr__host_wait_t *w, const tr__rpc_res_t *res) {
  pthread_mutex_lock(&rt->mu);
  w->res = *res;
  w->done = 1;
  pthread_cond_broadcast(&rt->cv);
  pthread_mutex_unlock(&rt->mu);
}

void tr__host_wait(tr_runtime_t *rt, tr__sched_t *k, tr__host_wait_t *w) {
  if (tr__tls_sched != NULL && tr__tls_sched->rt == rt)
    tr__outbox_flush_all(tr__tls_sched);
  pthread_mutex_lock(&rt->mu);
  while (!w->done) {
    if (!rt->run_active && k != NULL && k->has_thread && !k->service_req) {
      k->service_req = 1;
      pthread_cond_broadcast(&rt->cv);
    }
    pthread_cond_wait(&rt->cv, &rt->mu);
  }
  pthread_mutex_unlock(&rt->mu);
}

/* Applies scheduler 0's inbox from host code on its stack, so that what
 * other schedulers sent while the host waited takes effect now. */
static void host_apply0(tr_runtime_t *rt) {
  tr__sched_t *s = &rt->sched;
  tr__sched_t *prev = tr__tls_sched;
  if ((prev != NULL && prev != s) || s->current != NULL || s->in_drain ||
      s->in_cleanup)
    return;
  tr__tls_sched = s;
  while (tr__inbox_apply(s) > 0) {
  }
  tr__reap(s);
  tr__outbox_flush_all(s);
  tr__tls_sched = prev;
  tr__sched_settle(s);
}

void tr__host_sync(tr_runtime_t *rt, tr__sched_t *k) {
  tr__host_wait_t w;
  tr__host_wait_t *wp = &w;
  memset(&w, 0, sizeof(w));
  tr__sig_send_to(k, TR__SIG_HOST_ACK, TR_PID_NONE, TR_PID_NONE, 0, NULL, &wp,
                  sizeof(wp), 0);
  tr__host_wait(rt, k, &w);
  host_apply0(rt);
}

/* ---- scheduler threads ---------------------------------------------------- */

/* Wakes s's thread out of uv_run without a signal (any thread). */
static void kick(tr__sched_t *s) {
  pthread_mutex_lock(&s->async_mu);
  if (s->async_open) uv_async_send(&s->async);
  pthread_mutex_unlock(&s->async_mu);
}

/* How long a scheduler with nothing to do polls its inbox before it
 * sleeps. While other threads keep sending, a sleep and its wake-up cost a
 * system call on each side and tens of microseconds; but a spin also takes
 * a CPU another thread may need (and under KVM a PAUSE loop exits to the
 * host after a few microseconds). Measured on the 2-vCPU test machine:
 * 20 us keeps W4's receiver from sleeping between bursts, longer made the
 * ring (W2) slower. */
#define TR__SPIN_NS 20000
#define TR__POLL_NS 500000 /* longest a busy scheduler leaves its loop alone */

/* Polls the inbox a little, if signals came in since it last looked (a
 * scheduler that only runs its own actors never spins); nonzero if more
 * arrived. */
static int spin_for_signals(tr__sched_t *s) {
  uint64_t until;
  if (s->rt->nsched == 1 || !s->signals_seen) return 0;
  s->signals_seen = 0;
  until = uv_hrtime() + TR__SPIN_NS;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (tr__inbox_pending(s)) return 1;
      tr__cpu_relax();
    }
    if (uv_hrtime() >= until) return 0;
  }
}

/* Gives the loop a non-blocking turn (I/O callbacks, due timers) if there
 * are runnable actors, or if it had none for TR__POLL_NS: a steady stream
 * of cross-scheduler signals keeps a scheduler draining without ever
 * sleeping in its loop, and would starve its sockets and timers. Nonzero
 * if it ran the loop. The caller must then go round again rather than
 * sleep: the turn may have consumed a kick (park, stop) that came after
 * it last looked at run_flag, and uv_run(UV_RUN_ONCE) would wait for a
 * kick that is gone. */
static int poll_if_due(tr__sched_t *s) {
  uint64_t now;
  if (s->rq_head == NULL) {
    now = uv_hrtime();
    if (now - s->polled_ns < TR__POLL_NS) return 0;
  }
  uv_run(s->loop, UV_RUN_NOWAIT);
  s->polled_ns = uv_hrtime();
  return 1;
}

/* A running scheduler thread: drains, then waits in its loop. Returns when
 * the runtime parks or quits the threads. */
static void thread_run(tr__sched_t *s) {
  tr_runtime_t *rt = s->rt;
  int all_idle;
  for (;;) {
    tr__sched_drain(s);
    tr__runtime_check_stop(s);
    if (!atomic_load(&rt->run_flag)) break;
    if (poll_if_due(s)) continue; /* and look at run_flag again */
    if (spin_for_signals(s)) continue;
    if (!tr__sched_sleep(s, !uv_loop_alive(s->loop), &all_idle)) continue;
    uv_ref((uv_handle_t *)&s->async);
    uv_run(s->loop, UV_RUN_ONCE);
    s->polled_ns = uv_hrtime();
    uv_unref((uv_handle_t *)&s->async);
    tr__sched_awake(s);
  }
}

/* A parked thread applies its inbox on the host's request (no actor runs). */
static void thread_service(tr__sched_t *s) {
  while (tr__inbox_apply(s) > 0) {
  }
  tr__reap(s);
  tr__outbox_flush_all(s);
}

static void *sched_thread(void *arg) {
  tr__sched_t *s = arg;
  tr_runtime_t *rt = s->rt;
  int err;
  tr__tls_sched = s;
#ifdef TR_TSAN
  s->tsan_main = __tsan_get_current_fiber();
#endif
  err = tr__fault_init(s, rt->cfg.catch_faults);
  pthread_mutex_lock(&rt->mu);
  s->service_done = err != 0 ? 2 : 1; /* ready */
  pthread_cond_broadcast(&rt->cv);
  if (err != 0) {
    pthread_mutex_unlock(&rt->mu);
    return NULL;
  }
  for (;;) {
    while (!rt->quit && !s->service_req && !rt->run_active)
      pthread_cond_wait(&rt->cv, &rt->mu);
    if (rt->quit) break;
    if (!rt->run_active) {
      s->service_req = 0;
      pthread_mutex_unlock(&rt->mu);
      thread_service(s);
      pthread_mutex_lock(&rt->mu);
      s->service_done++;
      pthread_cond_broadcast(&rt->cv);
      continue;
    }
    s->parked = 0;
    pthread_mutex_unlock(&rt->mu);
    thread_run(s);
    pthread_mutex_lock(&rt->mu);
    s->parked = 1;
    pthread_cond_broadcast(&rt->cv);
  }
  pthread_mutex_unlock(&rt->mu);
  /* Quit: every actor is gone; close the loop's handles on this thread. */
  tr__reap(s);
  tr__sched_close_handles(s);
  while (s->handles_open > 0) uv_run(s->loop, UV_RUN_NOWAIT);
  tr__fault_fini(s);
  return NULL;
}

/* Unparks the threads (standalone run) and waits until they park again. */
static void threads_unpark(tr_runtime_t *rt) {
  if (rt->nsched == 1 || rt->attached) return;
  pthread_mutex_lock(&rt->mu);
  rt->run_active = 1;
  atomic_store(&rt->run_flag, 1);
  pthread_cond_broadcast(&rt->cv);
  pthread_mutex_unlock(&rt->mu);
}

static void threads_park(tr_runtime_t *rt) {
  if (rt->nsched == 1 || rt->attached) return;
  pthread_mutex_lock(&rt->mu);
  rt->run_active = 0;
  atomic_store(&rt->run_flag, 0);
  pthread_mutex_unlock(&rt->mu);
  for (unsigned i = 1; i < rt->nsched; i++) kick(rt->scheds[i]);
  pthread_mutex_lock(&rt->mu);
  for (unsigned i = 1; i < rt->nsched; i++)
    while (!rt->scheds[i]->parked) pthread_cond_wait(&rt->cv, &rt->mu);
  pthread_mutex_unlock(&rt->mu);
}

/* Starts the threads of schedulers 1..n-1 with every asynchronous signal
 * blocked (libuv delivers signals through its loop, on the host thread). */
static int threads_start(tr_runtime_t *rt) {
  sigset_t all, old;
  int err = 0;
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  sigdelset(&all, SIGABRT);
  sigdelset(&all, SIGTRAP);
  sigdelset(&all, SIGSYS);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  for (unsigned i = 1; i < rt->nsched && err == 0; i++) {
    tr__sched_t *s = rt->scheds[i];
    s->parked = !rt->attached;
    if ((err = pthread_create(&s->thread, NULL, sched_thread, s)) != 0) {
      err = -err;
      break;
    }
    s->has_thread = 1;
    pthread_mutex_lock(&rt->mu);
    while (s->service_done == 0) pthread_cond_wait(&rt->cv, &rt->mu);
    if (s->service_done == 2) err = TR_ENOMEM;
    s->service_done = 0;
    pthread_mutex_unlock(&rt->mu);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return err;
}

static void threads_quit(tr_runtime_t *rt) {
  pthread_mutex_lock(&rt->mu);
  rt->quit = 1;
  rt->run_active = 0;
  atomic_store(&rt->run_flag, 0);
  pthread_cond_broadcast(&rt->cv);
  pthread_mutex_unlock(&rt->mu);
  for (unsigned i = 1; i < rt->nsched; i++) {
    tr__sched_t *s = rt->scheds[i];
    if (!s->has_thread) continue;
    kick(s);
    pthread_join(s->thread, NULL);
    s->has_thread = 0;
  }
}

/* ---- creation ------------------------------------------------------------- */

static void runtime_destroy(tr_runtime_t *rt);

static int runtime_create(tr_runtime_t **out, uv_loop_t *loop,
                          const tr_config_t *cfg) {
  tr_runtime_t *rt;
  int err;
  if (out == NULL) return TR_EINVAL;
  *out = NULL;
  if ((rt = calloc(1, sizeof(*rt))) == NULL) return TR_ENOMEM;
  if ((err = config_copy(&rt->cfg, cfg)) != 0) {
    free(rt);
    return err;
  }
  rt->placement = rt->cfg.placement;
  pthread_mutex_init(&rt->mu, NULL);
  pthread_cond_init(&rt->cv, NULL);
  pthread_mutex_init(&rt->log_mu, NULL);
  if ((err = tr__registry_init(rt)) != 0) goto fail_locks;
  rt->scheds = calloc(rt->cfg.schedulers, sizeof(*rt->scheds));
  if (rt->scheds == NULL) {
    err = TR_ENOMEM;
    goto fail_reg;
  }
  if (loop == NULL) {
    if ((err = uv_loop_init(&rt->own_loop)) != 0) goto fail_reg;
    loop = &rt->own_loop;
  } else {
    rt->attached = 1;
  }
  rt->run_active = rt->attached;
  atomic_store(&rt->run_flag, rt->attached);
  if ((err = tr__sched_init(&rt->sched, rt, loop)) != 0) goto fail_loop;
  rt->scheds[0] = &rt->sched;
  rt->nsched = 1;
  /* Every scheduler counts as busy until it first goes to sleep idle. */
  atomic_store(&rt->busy, (long)rt->cfg.schedulers);
  if ((err = tr__fault_init(&rt->sched, rt->cfg.catch_faults)) != 0) {
    runtime_destroy(rt);
    return err;
  }
  for (unsigned i = 1; i < rt->cfg.schedulers; i++) {
    tr__sched_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
      runtime_destroy(rt);
      return TR_ENOMEM;
    }
    if ((err = tr__sched_init(s, rt, NULL)) != 0) {
      if (s->loop == &s->own_loop) uv_loop_close(&s->own_loop);
      free(s);
      runtime_destroy(rt);
      return err;
    }
    s->id = i;
    rt->scheds[rt->nsched++] = s;
  }
  if ((err = threads_start(rt)) != 0) {
    runtime_destroy(rt);
    return err;
  }
  if (tr__tls_sched == NULL) tr__tls_sched = &rt->sched;
  *out = rt;
  return 0;
fail_loop:
  if (!rt->attached) uv_loop_close(&rt->own_loop);
fail_reg:
  free(rt->scheds);
  tr__registry_destroy(rt);
fail_locks:
  pthread_mutex_destroy(&rt->mu);
  pthread_cond_destroy(&rt->cv);
  pthread_mutex_destroy(&rt->log_mu);
  free(rt);
  return err;
}

int tr_runtime_new(tr_runtime_t **rt, const tr_config_t *cfg) {
  return runtime_create(rt, NULL, cfg);
}

int tr_runtime_attach(tr_runtime_t **rt, uv_loop_t *loop,
                      const tr_config_t *cfg) {
  if (loop == NULL) return TR_EINVAL;
  return runtime_create(rt, loop, cfg);
}

uv_loop_t *tr_runtime_loop(tr_runtime_t *rt) {
  return rt != NULL ? rt->sched.loop : NULL;
}

size_t tr_runtime_actor_count(const tr_runtime_t *rt) {
  size_t n = 0;
  if (rt == NULL) return 0;
  for (unsigned i = 0; i < rt->nsched; i++)
    n += atomic_load_explicit(&rt->scheds[i]->live_pub, memory_order_relaxed);
  return n;
}

tr_runtime_t *tr_runtime_current(void) {
  return tr__tls_sched != NULL ? tr__tls_sched->rt : NULL;
}

unsigned tr_runtime_scheduler_count(const tr_runtime_t *rt) {
  return rt != NULL ? rt->nsched : 0;
}

int tr_sched_self(void) {
  return tr__tls_sched != NULL ? (int)tr__tls_sched->id : -1;
}

/* ---- stop --------------------------------------------------------------- */

static void stop_timeout_cb(uv_timer_t *h) {
  tr__sched_t *s = h->data;
  tr__log(s, TR_LOG_WARN, "troupe: stop timeout, killing %zu actor(s)",
          s->live);
  tr__kill_all(s, TR_REASON_KILLED);
  if (s->rt->attached) {
    tr__sched_drain(s);
    tr__runtime_check_stop(s);
  } else {
    uv_stop(s->loop); /* let the run loop reap now, not after the next
                       * event (see tr__timer_cb) */
  }
}

/* Called on the scheduler stack after actors ran: advances an ongoing stop
 * (once the top-level actors are gone everywhere, stragglers are killed)
 * and, once no actor is left anywhere, finishes it (scheduler 0; for an
 * attached runtime that closes the handles on the host's loop). */
void tr__runtime_check_stop(tr__sched_t *s) {
  tr_runtime_t *rt = s->rt;
  if (!rt->stopping || rt->stop_done) return;
  if (atomic_load(&rt->top_live) == 0 && s->live > 0) {
    tr__kill_all(s, TR_REASON_KILLED);
    tr__sched_drain(s);
  }
  if (s->live == 0 && !s->handles_closing) uv_timer_stop(&s->stop_timer);
  if (s != &rt->sched || atomic_load(&rt->scheds_live) > 0) return;
  rt->stop_done = 1;
  uv_timer_stop(&s->stop_timer);
  if (rt->attached) tr__sched_close_handles(s);
}

/* The stop on one scheduler: exit signal `shutdown` to its top-level
 * actors, youngest first, and the grace timer. */
void tr__sig_stop_apply(tr__sched_t *s) {
  tr_reason_t r;
  tr__reason_set(&r, TR_REASON_SHUTDOWN);
  /* Youngest first: later top-level actors may depend on earlier ones. */
  for (tr__actor_t *a = s->top_head; a != NULL; a = a->top_next)
    tr__exit_signal(s, a, TR_PID_NONE, &r, 0);
  if (!s->handles_closing && s->live > 0)
    uv_timer_start(&s->stop_timer, stop_timeout_cb, s->rt->cfg.stop_timeout_ms, 0);
}

int tr_runtime_stop(tr_runtime_t *rt) {
  tr__sched_t *cur = tr__tls_sched, *s;
  if (rt == NULL) return TR_EINVAL;
  if (cur != NULL && cur->rt != rt) return TR_EWRONGTHREAD;
  if (atomic_exchange(&rt->stopping, 1)) return 0;
  s = cur != NULL ? cur : &rt->sched;
  for (unsigned i = 0; i < rt->nsched; i++)
    if (rt->scheds[i] != s)
      tr__sig_send_to(rt->scheds[i], TR__SIG_STOP, TR_PID_NONE, TR_PID_NONE,
                      0, NULL, NULL, 0, 0);
  tr__sig_stop_apply(s);
  if (s->current == NULL && !s->in_drain) {
    /* Host code: the other schedulers take the stop now too. */
    if (s == &rt->sched)
      for (unsigned i = 1; i < rt->nsched; i++) tr__host_sync(rt, rt->scheds[i]);
    tr__sched_drain(s);
    tr__runtime_check_stop(s);
  }
  return 0;
}

/* ---- standalone run ----------------------------------------------------- */

int tr__runtime_drive(tr_runtime_t *rt, int (*until)(void *), void *arg) {
  tr__sched_t *s = &rt->sched;
  int err = 0, all_idle;
  rt->running = 1;
  threads_unpark(rt);
  tr__sched_awake(s);
  for (;;) {
    tr__sched_drain(s);
    tr__runtime_check_stop(s);
    if (atomic_load(&rt->scheds_live) == 0) break;
    if (until != NULL && until(arg)) break;
    if (poll_if_due(s)) continue; /* and look at run_flag again */
    if (spin_for_signals(s)) continue;
    if (!tr__sched_sleep(s, !uv_loop_alive(s->loop), &all_idle)) continue;
    if (all_idle) { /* every scheduler idle, nothing on its way */
      /* The last actors may have ended since we looked: that is done. */
      if (atomic_load(&rt->scheds_live) == 0) break;
      err = TR_EDEADLK;
      break;
    }
    uv_ref((uv_handle_t *)&s->async);
    uv_run(s->loop, UV_RUN_ONCE);
    s->polled_ns = uv_hrtime();
    uv_unref((uv_handle_t *)&s->async);
    tr__sched_awake(s);
  }
  threads_park(rt);
  /* What the parked schedulers sent last (exit signals, DOWNs) lands. */
  host_apply0(rt);
  rt->running = 0;
  return err;
}

int tr_runtime_run(tr_runtime_t *rt) {
  int err;
  if (rt == NULL) return TR_EINVAL;
  if (rt->attached) return TR_ENOTSUP;
  if (rt->running) return TR_EBUSY;
  err = tr__runtime_drive(rt, NULL, NULL);
  uv_timer_stop(&rt->sched.stop_timer);
  return err;
}

/* ---- teardown ----------------------------------------------------------- */

/* tr_runtime_free on one scheduler: every actor dies, now. */
void tr__sig_kill_all_apply(tr__sched_t *s) {
  tr__kill_all(s, TR_REASON_KILLED);
  tr__reap(s);
}

/* Frees everything that is left; no scheduler thread runs any more. */
static void runtime_destroy(tr_runtime_t *rt) {
  threads_quit(rt);
  for (unsigned i = rt->nsched; i-- > 0;) {
    tr__sched_t *s = rt->scheds[i];
    if (s == &rt->sched) {
      tr__sched_close_handles(s);
      while (s->handles_open > 0) uv_run(s->loop, UV_RUN_NOWAIT);
      tr__fault_fini(s);
    }
    tr__inbox_discard(s);
    tr__sched_destroy(s);
    if (s != &rt->sched) {
      uv_loop_close(&s->own_loop);
      free(s);
    }
  }
  if (!rt->attached) uv_loop_close(&rt->own_loop);
  if (tr__tls_sched == &rt->sched) tr__tls_sched = NULL;
  tr__registry_destroy(rt);
  free(rt->scheds);
  pthread_mutex_destroy(&rt->mu);
  pthread_cond_destroy(&rt->cv);
  pthread_mutex_destroy(&rt->log_mu);
  free(rt);
}

int tr_runtime_free(tr_runtime_t *rt) {
  tr__sched_t *s;
  if (rt == NULL) return 0;
  s = &rt->sched;
  if (rt->running || s->in_drain || s->current != NULL || s->in_cleanup)
    return TR_EBUSY;
  if (tr__tls_sched != NULL && tr__tls_sched != s && tr__tls_sched->rt == rt)
    return TR_EWRONGTHREAD;
  if (tr__tls_sched != NULL && tr__tls_sched != s && tr__tls_sched->rt != rt &&
      tr__tls_sched->in_drain)
    return TR_EBUSY;
  rt->freeing = 1;
  rt->stopping = 1;
  for (unsigned i = 1; i < rt->nsched; i++)
    tr__sig_send_to(rt->scheds[i], TR__SIG_KILL_ALL, TR_PID_NONE, TR_PID_NONE,
                    0, NULL, NULL, 0, 0);
  tr__kill_all(s, TR_REASON_KILLED);
  tr__sched_drain(s);
  tr__reap(s);
  /* Signals the deaths cause go one or two hops (an exit signal to a dead
   * pid, a link answered with noproc): three rounds settle them. */
  for (int round = 0; round < 3 && rt->nsched > 1; round++) {
    for (unsigned i = 1; i < rt->nsched; i++) tr__host_sync(rt, rt->scheds[i]);
    host_apply0(rt);
  }
  runtime_destroy(rt);
  return 0;
}
