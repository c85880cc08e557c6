/*
 * The registry: names for live actors (register / unregister / whereis),
 * one per runtime, shared by all its schedulers and protected by a mutex.
 * Names map to pids; two open-addressing tables (by name, by pid) point at
 * the same entries.
 *
 * A name is dropped when its actor dies, by the actor's own thread: a pid
 * with a name carries TR__ALIVE_NAMED in its alive-table entry (set under
 * the lock, with a compare-and-swap that fails once the actor is dead), and
 * the thread that marks the actor dead swaps the entry to 0 and, if the bit
 * was there, removes the name. Either the registration comes first and the
 * owner sees the bit, or the owner comes first and registration fails with
 * TR_ENOPROC: a name never outlives its actor.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tr__name {
  char name[TR_NAME_MAX];
  tr_pid_t pid;
} tr__name_t;

/* FNV-1a: names are short. */
static size_t hash_name(const char *n) {
  uint64_t h = 1469598103934665603ull;
  for (; *n; n++) h = (h ^ (unsigned char)*n) * 1099511628211ull;
  return (size_t)h;
}

static size_t hash_pid(tr_pid_t p) {
  p ^= p >> 29;
  p *= UINT64_C(0xbf58476d1ce4e5b9);
  p ^= p >> 32;
  return (size_t)p;
}

static int name_ok(const char *name) {
  size_t n;
  if (name == NULL) return 0;
  n = strnlen(name, TR_NAME_MAX);
  return n > 0 && n < TR_NAME_MAX;
}

/* The caller's runtime, or NULL on a thread that runs none. */
static tr_runtime_t *caller_rt(void) {
  return tr__tls_sched != NULL ? tr__tls_sched->rt : NULL;
}

/* ---- the tables (rt->reg_mu held) --------------------------------------- */

static size_t slot_by_name(tr_runtime_t *rt, const char *name) {
  size_t mask = rt->names_cap - 1, i = hash_name(name) & mask;
  while (rt->names_by_name[i] != NULL &&
         strcmp(rt->names_by_name[i]->name, name) != 0)
    i = (i + 1) & mask;
  return i;
}

static size_t slot_by_pid(tr_runtime_t *rt, tr_pid_t pid) {
  size_t mask = rt->names_cap - 1, i = hash_pid(pid) & mask;
  while (rt->names_by_pid[i] != NULL && rt->names_by_pid[i]->pid != pid)
    i = (i + 1) & mask;
  return i;
}

static int grow(tr_runtime_t *rt) {
  size_t ncap = rt->names_cap ? rt->names_cap * 2 : 64, oldcap = rt->names_cap;
  tr__name_t **oldn = rt->names_by_name, **oldp = rt->names_by_pid;
  tr__name_t **n = calloc(ncap, sizeof(*n)), **p = calloc(ncap, sizeof(*p));
  if (n == NULL || p == NULL) {
    free(n);
    free(p);
    return TR_ENOMEM;
  }
  rt->names_by_name = n;
  rt->names_by_pid = p;
  rt->names_cap = ncap;
  for (size_t i = 0; i < oldcap; i++) {
    tr__name_t *e = oldn[i];
    if (e == NULL) continue;
    rt->names_by_name[slot_by_name(rt, e->name)] = e;
    rt->names_by_pid[slot_by_pid(rt, e->pid)] = e;
  }
  free(oldn);
  free(oldp);
  return 0;
}

/* Removes slot i of one table, re-seating the cluster after it. */
static void remove_name_slot(tr_runtime_t *rt, size_t i) {
  size_t mask = rt->names_cap - 1, j = i;
  rt->names_by_name[i] = NULL;
  for (;;) {
    tr__name_t *e;
    j = (j + 1) & mask;
    if ((e = rt->names_by_name[j]) == NULL) return;
    rt->names_by_name[j] = NULL;
    rt->names_by_name[slot_by_name(rt, e->name)] = e;
  }
}

static void remove_pid_slot(tr_runtime_t *rt, size_t i) {
  size_t mask = rt->names_cap - 1, j = i;
  rt->names_by_pid[i] = NULL;
  for (;;) {
    tr__name_t *e;
    j = (j + 1) & mask;
    if ((e = rt->names_by_pid[j]) == NULL) return;
    rt->names_by_pid[j] = NULL;
    rt->names_by_pid[slot_by_pid(rt, e->pid)] = e;
  }
}

static void remove_entry(tr_runtime_t *rt, tr__name_t *e) {
  remove_name_slot(rt, slot_by_name(rt, e->name));
  remove_pid_slot(rt, slot_by_pid(rt, e->pid));
  rt->names_len--;
  free(e);
}

static tr__name_t *find_name(tr_runtime_t *rt, const char *name) {
  return rt->names_cap ? rt->names_by_name[slot_by_name(rt, name)] : NULL;
}

/* The pid's alive entry, for the NAMED bit. */
static _Atomic uint64_t *alive_of(tr_runtime_t *rt, tr_pid_t pid) {
  tr__sched_t *s = tr__pid_owner(rt, pid);
  return s != NULL ? tr__alive_slot(s, (uint32_t)(pid & TR__IDX_MASK)) : NULL;
}

/* ---- API ---------------------------------------------------------------- */

int tr_register(const char *name, tr_pid_t pid) {
  tr_runtime_t *rt = caller_rt();
  _Atomic uint64_t *slot;
  tr__name_t *e;
  uint64_t expect;
  int err = 0;
  if (rt == NULL) return TR_EWRONGTHREAD;
  if (!name_ok(name)) return TR_EINVAL;
  if (pid == TR_PID_NONE || (slot = alive_of(rt, pid)) == NULL)
    return TR_ENOPROC;
  pthread_mutex_lock(&rt->reg_mu);
  expect = atomic_load(slot);
  if ((expect & ~TR__ALIVE_NAMED) != pid) {
    err = TR_ENOPROC;
  } else if ((e = find_name(rt, name)) != NULL && tr__pid_alive(rt, e->pid)) {
    err = TR_EEXIST;
  } else if (expect & TR__ALIVE_NAMED) {
    err = TR_ENAMED;
  } else {
    if (e != NULL) remove_entry(rt, e); /* its actor is dying */
    if ((rt->names_len + 1) * 2 > rt->names_cap && (err = grow(rt)) != 0) {
    } else if ((e = calloc(1, sizeof(*e))) == NULL) {
      err = TR_ENOMEM;
    } else if (!atomic_compare_exchange_strong(slot, &expect,
                                               pid | TR__ALIVE_NAMED)) {
      free(e); /* died just now */
      err = TR_ENOPROC;
    } else {
      strcpy(e->name, name);
      e->pid = pid;
      rt->names_by_name[slot_by_name(rt, name)] = e;
      rt->names_by_pid[slot_by_pid(rt, pid)] = e;
      rt->names_len++;
    }
  }
  pthread_mutex_unlock(&rt->reg_mu);
  return err;
}

int tr_unregister(const char *name) {
  tr_runtime_t *rt = caller_rt();
  _Atomic uint64_t *slot;
  tr__name_t *e;
  int err = 0;
  if (rt == NULL) return TR_EWRONGTHREAD;
  if (!name_ok(name)) return TR_EINVAL;
  pthread_mutex_lock(&rt->reg_mu);
  if ((e = find_name(rt, name)) == NULL) {
    err = TR_ENOENT;
  } else {
    if ((slot = alive_of(rt, e->pid)) != NULL) {
      uint64_t expect = e->pid | TR__ALIVE_NAMED;
      atomic_compare_exchange_strong(slot, &expect, e->pid);
    }
    remove_entry(rt, e);
  }
  pthread_mutex_unlock(&rt->reg_mu);
  return err;
}

int tr_whereis(const char *name, tr_pid_t *pid) {
  tr_runtime_t *rt = caller_rt();
  tr__name_t *e;
  tr_pid_t p = TR_PID_NONE;
  if (rt == NULL) return TR_EWRONGTHREAD;
  if (!name_ok(name) || pid == NULL) return TR_EINVAL;
  pthread_mutex_lock(&rt->reg_mu);
  if ((e = find_name(rt, name)) != NULL) p = e->pid;
  pthread_mutex_unlock(&rt->reg_mu);
  if (p == TR_PID_NONE || !tr__pid_alive(rt, p)) {
    *pid = TR_PID_NONE;
    return TR_ENOENT;
  }
  *pid = p;
  return 0;
}

/* ---- runtime side ------------------------------------------------------- */

void tr__registry_remove_pid(tr_runtime_t *rt, tr_pid_t pid) {
  pthread_mutex_lock(&rt->reg_mu);
  if (rt->names_cap != 0) {
    tr__name_t *e = rt->names_by_pid[slot_by_pid(rt, pid)];
    if (e != NULL) remove_entry(rt, e);
  }
  pthread_mutex_unlock(&rt->reg_mu);
}

/* a is dead (its alive entry is cleared by the caller, who saw NAMED). */
void tr__registry_remove_actor(tr__actor_t *a) {
  tr__registry_remove_pid(a->s->rt, a->pid);
}

void tr__registry_name_of(tr_runtime_t *rt, tr_pid_t pid, char *buf,
                          size_t size) {
  buf[0] = '\0';
  pthread_mutex_lock(&rt->reg_mu);
  if (rt->names_cap != 0) {
    tr__name_t *e = rt->names_by_pid[slot_by_pid(rt, pid)];
    if (e != NULL) snprintf(buf, size, "%s", e->name);
  }
  pthread_mutex_unlock(&rt->reg_mu);
}

int tr__registry_init(tr_runtime_t *rt) {
  return -pthread_mutex_init(&rt->reg_mu, NULL);
}

void tr__registry_destroy(tr_runtime_t *rt) {
  for (size_t i = 0; i < rt->names_cap; i++) free(rt->names_by_name[i]);
  free(rt->names_by_name);
  free(rt->names_by_pid);
  rt->names_by_name = rt->names_by_pid = NULL;
  rt->names_cap = rt->names_len = 0;
  pthread_mutex_destroy(&rt->reg_mu);
}
