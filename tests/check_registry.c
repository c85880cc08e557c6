/* Check suite for the registry (actors/registry.c): register, whereis,
 * unregister, send_named, names freed on exit, spawn-time names. */
#include <stdint.h>
#include <stdio.h>

#include "testutil.h"

static const unsigned char ONE[] = {0x01};

/* Parks until it gets any message, then reports who sent it. */
typedef struct {
  tr_pid_t from;
  int got;
} parked_t;

static void parked(void *arg) {
  parked_t *p = arg;
  tr_msg_t *m;
  if (tr_recv(&m, -1) != 0) return;
  if (p != NULL) {
    p->from = tr_msg_from(m);
    p->got++;
  }
  tr_msg_free(m);
}

/* Kills pid and waits for the DOWN of the monitor ref. */
static void kill_and_wait(tr_pid_t pid, tr_ref_t ref) {
  tr_msg_t *m;
  TR_OK(tr_exit_pid(NULL, pid, TR_REASON_KILL));
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  tr_msg_free(m);
}

static tr_reason_kind_t wait_down(tr_ref_t ref) {
  tr_msg_t *m;
  tr_reason_t r;
  TR_OK(tr_recv(&m, 5000));
  ck_assert_int_eq(tr_msg_kind(m), TR_MSG_DOWN);
  ck_assert_uint_eq(tr_msg_ref(m), ref);
  TR_OK(tr_msg_reason(m, &r));
  tr_msg_free(m);
  return r.kind;
}

/* ------------------------------------------------------------------------ */

static void basic_actor(void *arg) {
  parked_t p = {0, 0};
  tr_pid_t child, w = 1;
  tr_ref_t ref;
  (void)arg;
  TR_OK(tr_spawn_monitor(parked, &p, &child, &ref));

  TR_OK(tr_register("alpha", child));
  TR_OK(tr_whereis("alpha", &w));
  ck_assert_uint_eq(w, child);
  ck_assert_int_eq(tr_register("alpha", tr_self()), TR_EEXIST); /* taken */
  ck_assert_int_eq(tr_register("alpha", child), TR_EEXIST);
  ck_assert_int_eq(tr_register("beta", child), TR_ENAMED); /* has one */
  TR_OK(tr_whereis("alpha", &w));
  ck_assert_uint_eq(w, child); /* failed calls changed nothing */
  w = 1;
  ck_assert_int_eq(tr_whereis("beta", &w), TR_ENOENT);
  ck_assert_uint_eq(w, TR_PID_NONE);

  /* Self registration and lookups of two names side by side. */
  TR_OK(tr_register("me", tr_self()));
  TR_OK(tr_whereis("me", &w));
  ck_assert_uint_eq(w, tr_self());

  TR_OK(tr_unregister("alpha"));
  w = 1;
  ck_assert_int_eq(tr_whereis("alpha", &w), TR_ENOENT);
  ck_assert_uint_eq(w, TR_PID_NONE);
  ck_assert_int_eq(tr_unregister("alpha"), TR_ENOENT);
  ck_assert_int_eq(tr_unregister("never-was"), TR_ENOENT);
  TR_OK(tr_register("beta", child)); /* the child may take a new name */
  TR_OK(tr_whereis("me", &w));
  ck_assert_uint_eq(w, tr_self());

  /* send_named reaches the registered actor. */
  ck_assert_int_eq(tr_send_named("nobody", ONE, sizeof(ONE)), TR_ENOENT);
  ck_assert_int_eq(tr_send_named("alpha", ONE, sizeof(ONE)), TR_ENOENT);
  ck_assert_int_eq(tr_send_named("beta", ONE, 0), TR_EINVAL);
  TR_OK(tr_send_named("beta", ONE, sizeof(ONE)));
  ck_assert_int_eq(wait_down(ref), TR_REASON_NORMAL);
  ck_assert_int_eq(p.got, 1);
  ck_assert_uint_eq(p.from, tr_self());
  ck_assert_uint_eq(tr_mailbox_len(), 0); /* nothing went astray to us */
  TR_OK(tr_unregister("me"));
  ck_assert_int_eq(tr_whereis("me", &w), TR_ENOENT);
}

START_TEST(test_register_whereis_unregister) { tr_test_run(basic_actor, NULL); }
END_TEST

static void invalid_actor(void *arg) {
  char n63[64], n64[65];
  tr_pid_t w = 5, dead;
  tr_ref_t ref;
  (void)arg;
  memset(n63, 'x', 63);
  n63[63] = '\0';
  memset(n64, 'y', 64);
  n64[64] = '\0';
  ck_assert_int_eq(tr_register("", tr_self()), TR_EINVAL);
  ck_assert_int_eq(tr_register(NULL, tr_self()), TR_EINVAL);
  ck_assert_int_eq(tr_register(n64, tr_self()), TR_EINVAL);
  ck_assert_int_eq(tr_whereis(n64, &w), TR_EINVAL);
  ck_assert_int_eq(tr_whereis(NULL, &w), TR_EINVAL);
  ck_assert_int_eq(tr_whereis("x", NULL), TR_EINVAL);
  ck_assert_int_eq(tr_unregister(NULL), TR_EINVAL);
  ck_assert_int_eq(tr_unregister(""), TR_EINVAL);
  ck_assert_int_eq(tr_unregister(n64), TR_EINVAL);
  ck_assert_int_eq(tr_send_named(NULL, ONE, sizeof(ONE)), TR_EINVAL);
  /* TR_NAME_MAX counts the NUL: 63 bytes is the longest name. */
  TR_OK(tr_register(n63, tr_self()));
  TR_OK(tr_whereis(n63, &w));
  ck_assert_uint_eq(w, tr_self());
  TR_OK(tr_unregister(n63));

  /* Dead pids and NONE. */
  TR_OK(tr_spawn_monitor(parked, NULL, &dead, &ref));
  kill_and_wait(dead, ref);
  ck_assert_int_eq(tr_register("ghost", dead), TR_ENOPROC);
  ck_assert_int_eq(tr_register("ghost", TR_PID_NONE), TR_ENOPROC);
  ck_assert_int_eq(tr_whereis("ghost", &w), TR_ENOENT);
}

START_TEST(test_register_invalid) { tr_test_run(invalid_actor, NULL); }
END_TEST

/* Registers itself under the name in arg, then ends as arg says. */
typedef struct {
  const char *name;
  int how; /* 0 return, 1 tr_exit_error, 2 park until killed */
  int registered;
} self_namer_t;

static void self_namer(void *arg) {
  self_namer_t *s = arg;
  tr_msg_t *m;
  if (tr_register(s->name, tr_self()) == 0) s->registered = 1;
  if (s->how == 1) tr_exit_error(3, "gone");
  if (s->how == 2) tr_recv_tag(&m, "never", -1);
}

static void freed_actor(void *arg) {
  self_namer_t s[3] = {{"svc0", 0, 0}, {"svc1", 1, 0}, {"svc2", 2, 0}};
  tr_pid_t pid[3], again, w;
  tr_ref_t ref[3], r2;
  parked_t p = {0, 0};
  (void)arg;
  for (int i = 0; i < 3; i++) TR_OK(tr_spawn_monitor(self_namer, &s[i], &pid[i], &ref[i]));
  TR_OK(tr_yield()); /* all three register; svc2 parks */
  for (int i = 0; i < 3; i++) ck_assert_int_eq(s[i].registered, 1);
  TR_OK(tr_whereis("svc2", &w));
  ck_assert_uint_eq(w, pid[2]);
  ck_assert_int_eq(wait_down(ref[0]), TR_REASON_NORMAL);
  ck_assert_int_eq(wait_down(ref[1]), TR_REASON_ERROR);
  kill_and_wait(pid[2], ref[2]);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(tr_whereis(s[i].name, &w), TR_ENOENT);
    ck_assert_uint_eq(w, TR_PID_NONE);
  }
  /* Each name can be taken again, by a new actor and by an old one. */
  TR_OK(tr_spawn_monitor(parked, &p, &again, &r2));
  TR_OK(tr_register("svc0", again));
  ck_assert_int_eq(tr_register("svc1", again), TR_ENAMED);
  TR_OK(tr_register("svc1", tr_self()));
  ck_assert_int_eq(tr_register("svc2", pid[2]), TR_ENOPROC);
  TR_OK(tr_send_named("svc0", ONE, sizeof(ONE)));
  ck_assert_int_eq(wait_down(r2), TR_REASON_NORMAL);
  ck_assert_int_eq(p.got, 1);
  ck_assert_int_eq(tr_whereis("svc0", &w), TR_ENOENT);
}

/* One scheduler: plain state shared by its actors. */
START_TEST(test_name_freed_on_exit) { tr_test_run1(freed_actor, NULL); }
END_TEST

typedef struct {
  tr_pid_t seen;
  int rc;
} host_named_t;

static void host_named(void *arg) {
  host_named_t *h = arg;
  h->rc = tr_whereis("from_host", &h->seen);
}

START_TEST(test_register_from_host) {
  tr_runtime_t *rt = NULL;
  host_named_t h = {0, 1};
  tr_pid_t pid, w = 9;
  /* A thread that runs no runtime has no registry. */
  ck_assert_int_eq(tr_register("x", 1), TR_EWRONGTHREAD);
  ck_assert_int_eq(tr_whereis("x", &w), TR_EWRONGTHREAD);
  ck_assert_int_eq(tr_unregister("x"), TR_EWRONGTHREAD);
  TR_OK(tr_runtime_new(&rt, NULL));
  TR_OK(tr_spawn(rt, host_named, &h, NULL, &pid));
  TR_OK(tr_register("from_host", pid));
  TR_OK(tr_whereis("from_host", &w));
  ck_assert_uint_eq(w, pid);
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(h.rc, 0);
  ck_assert_uint_eq(h.seen, pid);
  ck_assert_int_eq(tr_whereis("from_host", &w), TR_ENOENT);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */

static int spawned_runs;
static void counted(void *arg) {
  (void)arg;
  spawned_runs++;
}

static void spawn_name_actor(void *arg) {
  tr_spawn_opts_t o;
  tr_pid_t pid = TR_PID_NONE, pid2 = 42, w;
  tr_ref_t ref = 0;
  tr_runtime_t *rt = tr_runtime_current();
  size_t before;
  char n64[65];
  (void)arg;
  tr_spawn_opts_init(&o);
  o.name = "worker";
  o.flags = TR_SPAWN_MONITOR;
  o.monitor_ref = &ref;
  TR_OK(tr_spawn(NULL, counted, NULL, &o, &pid));
  TR_OK(tr_whereis("worker", &w));
  ck_assert_uint_eq(w, pid);

  /* Taken name: TR_EEXIST and nothing started (no monitor either). */
  before = tr_runtime_actor_count(rt);
  tr_spawn_opts_init(&o);
  o.name = "worker";
  ck_assert_int_eq(tr_spawn(NULL, counted, NULL, &o, &pid2), TR_EEXIST);
  o.flags = TR_SPAWN_MONITOR | TR_SPAWN_LINK;
  o.monitor_ref = &ref;
  ck_assert_int_eq(tr_spawn(NULL, counted, NULL, &o, &pid2), TR_EEXIST);
  TR_OK(tr_register("mine", tr_self()));
  tr_spawn_opts_init(&o);
  o.name = "mine";
  ck_assert_int_eq(tr_spawn(NULL, counted, NULL, &o, NULL), TR_EEXIST);
  o.name = "";
  ck_assert_int_eq(tr_spawn(NULL, counted, NULL, &o, NULL), TR_EINVAL);
  memset(n64, 'z', 64);
  n64[64] = '\0';
  o.name = n64;
  ck_assert_int_eq(tr_spawn(NULL, counted, NULL, &o, NULL), TR_EINVAL);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), before);
  ck_assert_uint_eq(pid2, 42);

  ck_assert_int_eq(wait_down(ref), TR_REASON_NORMAL);
  ck_assert_uint_eq(tr_mailbox_len(), 0); /* no DOWN for the failed spawns */
  ck_assert_int_eq(spawned_runs, 1);
  ck_assert_int_eq(tr_whereis("worker", &w), TR_ENOENT);
  /* Free again: a spawn may take it. */
  tr_spawn_opts_init(&o);
  o.name = "worker";
  TR_OK(tr_spawn(NULL, counted, NULL, &o, NULL));
}

START_TEST(test_spawn_with_name) {
  /* One scheduler: a named child must not have run and exited before whereis. */
  spawned_runs = 0;
  tr_test_run1(spawn_name_actor, NULL);
  ck_assert_int_eq(spawned_runs, 2);
}
END_TEST

START_TEST(test_spawn_with_taken_name_from_host) {
  tr_runtime_t *rt = NULL;
  tr_spawn_opts_t o;
  tr_pid_t pid;
  spawned_runs = 0;
  TR_OK(tr_runtime_new(&rt, NULL));
  tr_spawn_opts_init(&o);
  o.name = "solo";
  TR_OK(tr_spawn(rt, counted, NULL, &o, &pid));
  ck_assert_int_eq(tr_spawn(rt, counted, NULL, &o, NULL), TR_EEXIST);
  ck_assert_uint_eq(tr_runtime_actor_count(rt), 1);
  TR_OK(tr_runtime_run(rt));
  ck_assert_int_eq(spawned_runs, 1);
  TR_OK(tr_runtime_free(rt));
}
END_TEST

/* ------------------------------------------------------------------------ */

#define NAMES 3000

/* Many names with removals in between: every lookup must stay right. */
static void many_names_actor(void *arg) {
  static tr_pid_t pid[NAMES];
  static tr_ref_t ref[NAMES];
  char name[32];
  tr_pid_t w;
  int bad = 0;
  (void)arg;
  for (int i = 0; i < NAMES; i++) {
    TR_OK(tr_spawn_monitor(parked, NULL, &pid[i], &ref[i]));
    snprintf(name, sizeof(name), "n%d", i);
    if (tr_register(name, pid[i]) != 0) bad++;
  }
  TR_OK(tr_yield());
  for (int i = 0; i < NAMES; i += 3) {
    snprintf(name, sizeof(name), "n%d", i);
    if (tr_unregister(name) != 0) bad++;
  }
  for (int i = 1; i < NAMES; i += 5)
    if (tr_exit_pid(NULL, pid[i], TR_REASON_KILL) != 0) bad++;
  for (int i = 0; i < NAMES; i++) {
    int gone = i % 3 == 0 || i % 5 == 1;
    int rc;
    snprintf(name, sizeof(name), "n%d", i);
    rc = tr_whereis(name, &w);
    if (gone ? (rc != TR_ENOENT || w != TR_PID_NONE) : (rc != 0 || w != pid[i]))
      bad++;
  }
  ck_assert_int_eq(bad, 0);
  /* Release the rest by name. */
  for (int i = 0; i < NAMES; i++) {
    snprintf(name, sizeof(name), "n%d", i);
    if (i % 3 == 0) {
      if (i % 5 != 1 && tr_send(pid[i], ONE, sizeof(ONE)) != 0) bad++;
    } else if (i % 5 != 1 && tr_send_named(name, ONE, sizeof(ONE)) != 0) {
      bad++;
    }
  }
  for (int i = 0; i < NAMES; i++) {
    tr_msg_t *m;
    if (tr_recv(&m, 5000) != 0 || tr_msg_kind(m) != TR_MSG_DOWN) bad++;
    tr_msg_free(m);
  }
  ck_assert_int_eq(bad, 0);
  for (int i = 0; i < NAMES; i++) {
    snprintf(name, sizeof(name), "n%d", i);
    if (tr_whereis(name, &w) != TR_ENOENT) bad++;
  }
  ck_assert_int_eq(bad, 0);
}

/* One scheduler: exit signals must take effect before whereis. */
START_TEST(test_many_names) { tr_test_run1(many_names_actor, NULL); }
END_TEST

static Suite *suite_registry(void) {
  Suite *s = suite_create("registry");
  TCase *tc = tcase_create("registry");
  tcase_add_test(tc, test_register_whereis_unregister);
  tcase_add_test(tc, test_register_invalid);
  tcase_add_test(tc, test_name_freed_on_exit);
  tcase_add_test(tc, test_register_from_host);
  tcase_add_test(tc, test_spawn_with_name);
  tcase_add_test(tc, test_spawn_with_taken_name_from_host);
  tcase_add_test(tc, test_many_names);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(suite_registry)
