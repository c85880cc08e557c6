/*
 * The registry: names for live actors (register / unregister / whereis).
 * An open-addressing hash table per scheduler, keyed by the name string
 * that the actor owns (a->name); a name is dropped when its actor exits.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: names are short. */
static size_t hash_name(const char *n) {
  uint64_t h = 1469598103934665603ull;
  for (; *n; n++) h = (h ^ (unsigned char)*n) * 1099511628211ull;
  return (size_t)h;
}

static tr__sched_t *registry_sched(void) { return tr__tls_sched; }

static int name_ok(const char *name) {
  size_t n;
  if (name == NULL) return 0;
  n = strnlen(name, TR_NAME_MAX);
  return n > 0 && n < TR_NAME_MAX;
}

/* Index of name's slot, or of the empty slot where it would go. */
static size_t find_slot(tr__sched_t *s, const char *name) {
  size_t mask = s->names_cap - 1, i = hash_name(name) & mask;
  while (s->names[i] != NULL && strcmp(s->names[i]->name, name) != 0)
    i = (i + 1) & mask;
  return i;
}

static int grow(tr__sched_t *s) {
  size_t ncap = s->names_cap ? s->names_cap * 2 : 64, oldcap = s->names_cap;
  tr__actor_t **old = s->names, **n = calloc(ncap, sizeof(*n));
  if (n == NULL) return TR_ENOMEM;
  s->names = n;
  s->names_cap = ncap;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i] != NULL) s->names[find_slot(s, old[i]->name)] = old[i];
  free(old);
  return 0;
}

int tr_register(const char *name, tr_pid_t pid) {
  tr__sched_t *s = registry_sched();
  tr__actor_t *a;
  size_t i;
  int err;
  if (s == NULL) return TR_EWRONGTHREAD;
  if (!name_ok(name)) return TR_EINVAL;
  if ((a = tr__lookup(s, pid)) == NULL) return TR_ENOPROC;
  if (s->names_cap && s->names[find_slot(s, name)] != NULL) return TR_EEXIST;
  if (a->name != NULL) return TR_ENAMED;
  if ((s->names_len + 1) * 2 > s->names_cap && (err = grow(s)) != 0) return err;
  if ((a->name = strdup(name)) == NULL) return TR_ENOMEM;
  i = find_slot(s, name);
  s->names[i] = a;
  s->names_len++;
  return 0;
}

/* Removes slot i, re-seating the cluster after it (backward-shift delete). */
static void remove_slot(tr__sched_t *s, size_t i) {
  size_t mask = s->names_cap - 1, j = i;
  s->names[i] = NULL;
  s->names_len--;
  for (;;) {
    j = (j + 1) & mask;
    if (s->names[j] == NULL) return;
    tr__actor_t *a = s->names[j];
    s->names[j] = NULL;
    s->names[find_slot(s, a->name)] = a;
  }
}

int tr_unregister(const char *name) {
  tr__sched_t *s = registry_sched();
  size_t i;
  tr__actor_t *a;
  if (s == NULL) return TR_EWRONGTHREAD;
  if (!name_ok(name)) return TR_EINVAL;
  if (s->names_cap == 0 || (a = s->names[i = find_slot(s, name)]) == NULL)
    return TR_ENOENT;
  remove_slot(s, i);
  free(a->name);
  a->name = NULL;
  return 0;
}

int tr_whereis(const char *name, tr_pid_t *pid) {
  tr__sched_t *s = registry_sched();
  tr__actor_t *a;
  if (s == NULL) return TR_EWRONGTHREAD;
  if (!name_ok(name) || pid == NULL) return TR_EINVAL;
  if (s->names_cap == 0 || (a = s->names[find_slot(s, name)]) == NULL ||
      a->state == TR__ST_DEAD) {
    *pid = TR_PID_NONE;
    return TR_ENOENT;
  }
  *pid = a->pid;
  return 0;
}

void tr__registry_remove_actor(tr__actor_t *a) {
  tr__sched_t *s = a->s;
  if (a->name == NULL) return;
  remove_slot(s, find_slot(s, a->name));
  free(a->name);
  a->name = NULL;
}

void tr__registry_destroy(tr__sched_t *s) {
  free(s->names);
  s->names = NULL;
  s->names_cap = s->names_len = 0;
}
