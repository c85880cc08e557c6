/*
 * libFuzzer harness: configuration structs from outside — tr_config_t into
 * tr_runtime_new / tr_runtime_attach, and tr_spawn_opts_t into tr_spawn
 * (from host code and from an actor).
 *
 * Every field comes from the input, `size` included (with a bias towards
 * real sizes so that the deeper checks are reached); pointer fields are the
 * harness's (logger: NULL or a counting one; name: a string from the input
 * or NULL; monitor_ref: NULL or a local). The checks: runtime_new answers 0
 * or one of its documented errors, and a runtime it returns runs an actor
 * spawned with fuzzed options, is freed without a leak, and (attached)
 * leaves its loop closable; spawn answers 0 or a documented error; an
 * actor whose mailbox limit was set from the options never holds more than
 * the limit (self-sends are dropped, never queued past it).
 */
#include "fuzz_util.h"

#include <unistd.h>

static int g_log_lines;

static void count_log(void *arg, tr_log_level_t level, const char *line) {
  (void)arg;
  (void)level;
  CHECK(line != NULL);
  g_log_lines++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

static size_t pick_size(fz_t *f, size_t real, size_t min_ok) {
  switch (fz_u8(f) % 8) {
  case 0: return 0;
  case 1: return fz_u16(f);
  case 2: return min_ok;
  case 3: return real + 8;
  default: return real;
  }
}

typedef struct {
  tr_spawn_opts_t opts;
  char name[TR_NAME_MAX + 8];
  tr_ref_t ref;
  unsigned sends;
} spawn_in_t;

static void read_opts(fz_t *f, spawn_in_t *in) {
  fz_take(f, &in->opts, sizeof(in->opts));
  in->opts.size = pick_size(f, sizeof(in->opts),
                            offsetof(tr_spawn_opts_t, mailbox_max));
  in->opts.name = fz_u8(f) & 1 ? fz_str(f, in->name, sizeof(in->name)) : NULL;
  in->opts.monitor_ref = fz_u8(f) & 1 ? &in->ref : NULL;
  if (fz_u8(f) & 1) in->opts.stack_size %= 1u << 20;
  if (fz_u8(f) & 1) in->opts.mailbox_max %= 16;
  in->sends = fz_u8(f) % 40;
}

static int has_limit(const tr_spawn_opts_t *o) {
  return o->size == 0 || o->size >= offsetof(tr_spawn_opts_t, mailbox_policy) +
                                         sizeof(o->mailbox_policy);
}

static void child(void *arg) {
  spawn_in_t *in = arg;
  tr_mailbox_stats_t st;
  for (unsigned i = 0; i < in->sends; i++)
    CHECK(tr_send_tagged(tr_self(), "n", "u", (uint64_t)i) == 0);
  CHECK(tr_mailbox_stats(tr_self(), &st) == 0);
  if (has_limit(&in->opts) && in->opts.mailbox_max > 0 &&
      in->opts.mailbox_policy != TR_MAILBOX_EXIT) {
    CHECK(st.len <= in->opts.mailbox_max);
    CHECK(st.max == in->opts.mailbox_max);
    CHECK(st.len + st.dropped == in->sends);
  } else if (!(has_limit(&in->opts) && in->opts.mailbox_max > 0)) {
    CHECK(st.len == in->sends && st.dropped == 0);
  }
  tr_yield(); /* an overflowed EXIT-policy actor ends here */
}

/* Spawns from inside an actor, where LINK and MONITOR are allowed. */
static void parent(void *arg) {
  spawn_in_t *in = arg;
  tr_pid_t pid;
  tr_msg_t *m;
  int rc;
  tr_trap_exit(1);
  rc = tr_spawn(NULL, child, in, &in->opts, &pid);
  CHECK_RC(rc, 0, TR_EINVAL, TR_EEXIST, TR_ENOMEM, TR_EMAPCOUNT);
  if (rc != 0) return;
  while (tr_is_alive(pid)) tr_yield();
  tr_yield(); /* reaped: its EXIT and DOWN are queued */
  while (tr_recv(&m, 0) == 0) tr_msg_free(m);
}

static int spawn_outside(tr_runtime_t *rt, spawn_in_t *in) {
  tr_pid_t pid;
  int rc = tr_spawn(rt, child, in, &in->opts, &pid);
  CHECK_RC(rc, 0, TR_EINVAL, TR_ENOTACTOR, TR_EEXIST, TR_ENOMEM, TR_EMAPCOUNT);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static spawn_in_t in;
  fz_t f = {data, size};
  tr_config_t cfg;
  tr_runtime_t *rt = (tr_runtime_t *)&f;
  uv_loop_t loop;
  int attach, rc;
  memset(&in, 0, sizeof(in));
  attach = fz_u8(&f) & 1;
  fz_take(&f, &cfg, sizeof(cfg));
  cfg.size = pick_size(&f, sizeof(cfg), offsetof(tr_config_t, catch_faults));
  cfg.logger = fz_u8(&f) & 1 ? count_log : NULL;
  cfg.logger_arg = NULL;
  cfg.catch_faults = 0; /* faults go to ASan (nothing crashes on purpose) */
  if (fz_u8(&f) & 1) cfg.stack_size %= 1u << 20;
  if (fz_u8(&f) & 1) cfg.stack_cache %= 64;
  if (fz_u8(&f) & 1) cfg.schedulers %= 4;
  read_opts(&f, &in);
  if (attach) {
    CHECK(uv_loop_init(&loop) == 0);
    rc = tr_runtime_attach(&rt, &loop, &cfg);
  } else {
    rc = tr_runtime_new(&rt, &cfg);
  }
  CHECK_RC(rc, 0, TR_EINVAL, TR_ENOTSUP, TR_ENOMEM);
  if (rc != 0) {
    CHECK(rt == NULL);
    if (attach) CHECK(uv_loop_close(&loop) == 0);
    return 0;
  }
  if (spawn_outside(rt, &in) == 0 || !attach) {
    if (!attach) {
      if (fz_u8(&f) & 1) CHECK(tr_spawn(rt, parent, &in, NULL, NULL) == 0);
      CHECK(tr_runtime_run(rt) == 0);
    } else {
      /* The host's loop stays alive while actors live on any scheduler
       * and returns once the last is gone, wherever it ran. */
      uv_run(&loop, UV_RUN_DEFAULT);
      CHECK(tr_runtime_actor_count(rt) == 0);
    }
  }
  CHECK(tr_runtime_free(rt) == 0);
  if (attach) {
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(uv_loop_close(&loop) == 0);
  }
  return 0;
}
