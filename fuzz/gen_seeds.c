/* Writes the seed inputs of fuzz/corpus/spec and fuzz/corpus/config (their
 * layout is C structs, so the compiler writes them):
 *   cc -Iinclude $(pkg-config --cflags libuv msgpack) fuzz/gen_seeds.c \
 *     .libs/libtroupe_core.a $(pkg-config --libs libuv msgpack) -lpthread
 *   ./a.out .
 * The other seeds are short hand-made byte strings (see each harness for
 * the layout it reads). Not a harness: fuzz/run.sh builds fuzz_*.c only. */
#include <stdio.h>
#include <string.h>
#include "troupe.h"
static FILE *f;
static void u8(int v) { fputc(v, f); }
static void raw(const void *p, size_t n) { fwrite(p, 1, n, f); }
static void str(const char *s) { u8((int)strlen(s)); raw(s, strlen(s)); }
static void open_(const char *d, const char *n) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", d, n);
  f = fopen(p, "wb");
}
static void spec_seed(const char *dir, const char *name, int strategy, int n, int restart, int shutdown, int noack, int start) {
  tr_sup_flags_t fl; tr_child_spec_t s;
  open_(dir, name);
  str("id");
  tr_sup_flags_init(&fl); fl.strategy = strategy; fl.intensity = 3; fl.period_ms = 1000;
  if (strategy == 1) { fl.backoff.min_ms = 1; fl.backoff.max_ms = 4; fl.backoff.jitter = 0.5; }
  raw(&fl, sizeof fl); u8(7); u8(strategy == 2); if (strategy == 2) str("supname");
  u8(1); u8(1); u8(n);
  for (int i = 0; i < n; i++) {
    char id[8]; tr_child_spec_init(&s, "c", NULL, NULL); snprintf(id, 8, "c%d", i); strcpy(s.id, id);
    s.restart = restart; s.shutdown = shutdown; s.flags = noack ? TR_CHILD_NO_ACK : 0; s.type = i & 1;
    raw(&s, sizeof s); if (i == 0) u8(7); u8(1); u8(i % 5); u8(0); u8(0);
  }
  u8(start); fclose(f);
}
static void cfg_seed(const char *dir, const char *name, int attach, size_t max, int policy, unsigned flags, int sends) {
  tr_config_t c; tr_spawn_opts_t o;
  open_(dir, name);
  u8(attach); tr_config_init(&c); c.stack_size = 64 * 1024; raw(&c, sizeof c); u8(7); u8(1); u8(0); u8(0); u8(0);
  tr_spawn_opts_init(&o); o.mailbox_max = max; o.mailbox_policy = policy; o.flags = flags; raw(&o, sizeof o);
  u8(7); u8(1); str("child"); u8(flags ? 1 : 0); u8(0); u8(0); u8(sends); u8(1); fclose(f);
}
int main(int argc, char **argv) {
  const char *top = argv[1]; char d[512];
  (void)argc;
  snprintf(d, 512, "%s/fuzz/corpus/spec", top);
  spec_seed(d, "one_for_one_2", 0, 2, 0, 0, 0, 1);
  spec_seed(d, "one_for_all_backoff", 1, 3, 1, 100, 0, 1);
  spec_seed(d, "rest_for_one_named", 2, 3, 2, -1, 1, 1);
  spec_seed(d, "simple_template", 3, 1, 0, -2, 0, 1);
  spec_seed(d, "validate_only", 0, 5, 0, 0, 0, 0);
  snprintf(d, 512, "%s/fuzz/corpus/config", top);
  cfg_seed(d, "defaults", 0, 0, 0, 0, 3);
  cfg_seed(d, "limit_drop_oldest", 0, 4, 1, 0, 20);
  cfg_seed(d, "limit_exit_link", 0, 2, 2, TR_SPAWN_LINK, 9);
  cfg_seed(d, "attached", 1, 3, 0, 0, 5);
  return 0;
}
