/*
 * The runtime: configuration, standalone and embedded start, run, the
 * orderly stop, and teardown.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tr_config_init(tr_config_t *cfg) {
  if (cfg == NULL) return;
  memset(cfg, 0, sizeof(*cfg));
  cfg->size = sizeof(*cfg);
  cfg->schedulers = 1;
  cfg->stack_size = TR_STACK_SIZE_DEFAULT;
  cfg->stack_cache = 1024;
  cfg->stop_timeout_ms = 5000;
  cfg->crash_reports = 1;
  cfg->catch_faults = 1;
}

/* Copies the caller's config, which may be older (smaller) than ours. */
static int config_copy(tr_config_t *dst, const tr_config_t *src) {
  tr_config_init(dst);
  if (src == NULL) return 0;
  if (src->size < offsetof(tr_config_t, catch_faults) || src->size > sizeof(*dst))
    return TR_EINVAL;
  memcpy(dst, src, src->size);
  dst->size = sizeof(*dst);
  if (dst->schedulers == 0) dst->schedulers = 1;
  if (dst->schedulers != 1) return TR_ENOTSUP;
  if (dst->stack_size == 0) dst->stack_size = TR_STACK_SIZE_DEFAULT;
  if (dst->stack_size < TR_STACK_SIZE_MIN || dst->stack_size > TR_STACK_SIZE_MAX)
    return TR_EINVAL;
  return 0;
}

void tr_log_stderr(void *arg, tr_log_level_t level, const char *line) {
  (void)arg;
  (void)level;
  fprintf(stderr, "%s\n", line);
}

void tr__log(tr__sched_t *s, tr_log_level_t level, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  if (s == NULL || s->rt->cfg.logger == NULL) return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  s->rt->cfg.logger(s->rt->cfg.logger_arg, level, line);
}

static int runtime_create(tr_runtime_t **out, uv_loop_t *loop,
                          const tr_config_t *cfg) {
  tr_runtime_t *rt;
  int err;
  if (out == NULL) return TR_EINVAL;
  *out = NULL;
  if ((rt = calloc(1, sizeof(*rt))) == NULL) return TR_ENOMEM;
  if ((err = config_copy(&rt->cfg, cfg)) != 0) goto fail;
  if (loop == NULL) {
    if ((err = uv_loop_init(&rt->own_loop)) != 0) goto fail;
    loop = &rt->own_loop;
  } else {
    rt->attached = 1;
  }
  if ((err = tr__sched_init(&rt->sched, rt, loop)) != 0) goto fail_loop;
  if ((err = tr__fault_init(&rt->sched, rt->cfg.catch_faults)) != 0)
    goto fail_sched;
  if (tr__tls_sched == NULL) tr__tls_sched = &rt->sched;
  *out = rt;
  return 0;
fail_sched:
  tr__sched_close_handles(&rt->sched);
  while (rt->sched.handles_open > 0) uv_run(loop, UV_RUN_NOWAIT);
  tr__sched_destroy(&rt->sched);
fail_loop:
  if (!rt->attached) uv_loop_close(&rt->own_loop);
fail:
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
  return rt != NULL ? rt->sched.live : 0;
}

tr_runtime_t *tr_runtime_current(void) {
  return tr__tls_sched != NULL ? tr__tls_sched->rt : NULL;
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
    uv_stop(s->loop); /* let tr_runtime_run reap now, not after the next
                       * event (see tr__timer_cb) */
  }
}

/* Called on the scheduler stack after actors ran: advances an ongoing stop
 * (once the top-level actors are gone, stragglers are killed) and, for an
 * attached runtime, closes the handles once no actor is left. */
void tr__runtime_check_stop(tr__sched_t *s) {
  tr_runtime_t *rt = s->rt;
  if (!rt->stopping || rt->stop_done) return;
  if (s->top_head == NULL && s->live > 0) {
    tr__kill_all(s, TR_REASON_KILLED);
    tr__sched_drain(s);
  }
  if (s->live > 0) return;
  rt->stop_done = 1;
  uv_timer_stop(&s->stop_timer);
  if (rt->attached) tr__sched_close_handles(s);
}

int tr_runtime_stop(tr_runtime_t *rt) {
  tr__sched_t *s;
  tr_reason_t r;
  if (rt == NULL) return TR_EINVAL;
  s = &rt->sched;
  if (tr__tls_sched != NULL && tr__tls_sched != s) return TR_EWRONGTHREAD;
  if (rt->stopping) return 0;
  rt->stopping = 1;
  tr__reason_set(&r, TR_REASON_SHUTDOWN);
  /* Youngest first: later top-level actors may depend on earlier ones. */
  for (tr__actor_t *a = s->top_head; a != NULL; a = a->top_next)
    tr__exit_signal(s, a, TR_PID_NONE, &r, 0);
  if (!s->handles_closing && s->live > 0)
    uv_timer_start(&s->stop_timer, stop_timeout_cb, rt->cfg.stop_timeout_ms, 0);
  if (s->current == NULL && !s->in_drain) {
    tr__sched_drain(s);
    tr__runtime_check_stop(s);
  }
  return 0;
}

/* ---- standalone run ----------------------------------------------------- */

int tr_runtime_run(tr_runtime_t *rt) {
  tr__sched_t *s;
  int err = 0;
  if (rt == NULL) return TR_EINVAL;
  if (rt->attached) return TR_ENOTSUP;
  if (rt->running) return TR_EBUSY;
  s = &rt->sched;
  rt->running = 1;
  for (;;) {
    tr__sched_drain(s);
    tr__runtime_check_stop(s);
    if (s->live == 0) break;
    if (s->rq_head == NULL && !uv_loop_alive(s->loop)) {
      err = TR_EDEADLK;
      break;
    }
    uv_run(s->loop, s->rq_head != NULL ? UV_RUN_NOWAIT : UV_RUN_ONCE);
  }
  uv_timer_stop(&s->stop_timer);
  rt->running = 0;
  return err;
}

/* ---- teardown ----------------------------------------------------------- */

int tr_runtime_free(tr_runtime_t *rt) {
  tr__sched_t *s;
  if (rt == NULL) return 0;
  s = &rt->sched;
  if (rt->running || s->in_drain || s->current != NULL || s->in_cleanup)
    return TR_EBUSY;
  if (tr__tls_sched != NULL && tr__tls_sched != s && tr__tls_sched->rt != rt &&
      tr__tls_sched->in_drain)
    return TR_EBUSY;
  rt->freeing = 1;
  rt->stopping = 1;
  tr__kill_all(s, TR_REASON_KILLED);
  tr__sched_drain(s);
  tr__reap(s);
  tr__sched_close_handles(s);
  while (s->handles_open > 0) uv_run(s->loop, UV_RUN_NOWAIT);
  tr__fault_fini(s);
  tr__sched_destroy(s);
  if (!rt->attached) uv_loop_close(&rt->own_loop);
  if (tr__tls_sched == s) tr__tls_sched = NULL;
  free(rt);
  return 0;
}
