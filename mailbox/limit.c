/*
 * Overload protection: an optional per-actor mailbox limit with a policy
 * (drop the newest message, drop the oldest one, or end the actor with
 * reason mailbox_overflow), and mailbox observation (tr_mailbox_len_of,
 * tr_mailbox_stats).
 *
 * Only USER, TIMER and CALL messages are ever dropped or counted against a
 * full mailbox's policy: EXIT and DOWN carry supervision and awaited
 * replies finish a tr_call, so they are always queued (they may take the
 * queue past the limit). The state is allocated only for actors that set a
 * limit; delivery to every other actor pays one pointer test.
 *
 * Dropping the oldest message removes a queued message under a receiver
 * that may be blocked in a selective receive with a scan position in its
 * queue: `removed` counts such removals so that the receive can tell its
 * position may be gone and rescan (mailbox.c, recv_impl). The running actor
 * never loses a queued message this way (its scan may be in progress): a
 * message it sends to its own full mailbox is dropped instead.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct tr__mbox_limit {
  size_t max;       /* 0: no limit (state kept for the counters) */
  uint64_t dropped; /* messages dropped by the policy */
  uint64_t removed; /* queued messages removed (DROP_OLDEST) */
  tr_mailbox_policy_t policy;
};

static int policy_ok(tr_mailbox_policy_t p) {
  return (unsigned)p <= (unsigned)TR_MAILBOX_EXIT;
}

static int droppable(const tr_msg_t *m) {
  return m->kind == TR_MSG_USER || m->kind == TR_MSG_TIMER ||
         m->kind == TR_MSG_CALL;
}

static int set_limit(tr__actor_t *a, size_t max, tr_mailbox_policy_t policy) {
  if (!policy_ok(policy)) return TR_EINVAL;
  if (a->mbox_limit == NULL) {
    if (max == 0) return 0;
    if ((a->mbox_limit = calloc(1, sizeof(*a->mbox_limit))) == NULL)
      return TR_ENOMEM;
  }
  a->mbox_limit->max = max;
  a->mbox_limit->policy = policy;
  return 0;
}

/* ---- spawn options ------------------------------------------------------- */

/* True if the caller's options struct is big enough to hold the limit. */
static int opts_have_limit(const tr_spawn_opts_t *o) {
  return o != NULL && (o->size == 0 ||
                       o->size >= offsetof(tr_spawn_opts_t, mailbox_policy) +
                                      sizeof(o->mailbox_policy));
}

int tr__mbox_opts_check(const tr_spawn_opts_t *o) {
  if (!opts_have_limit(o)) return 0;
  return policy_ok(o->mailbox_policy) ? 0 : TR_EINVAL;
}

int tr__mbox_opts_apply(tr__actor_t *a, const tr_spawn_opts_t *o) {
  if (!opts_have_limit(o) || o->mailbox_max == 0) return 0;
  return set_limit(a, o->mailbox_max, o->mailbox_policy);
}

void tr__mbox_limit_free(tr__actor_t *a) {
  free(a->mbox_limit);
  a->mbox_limit = NULL;
}

uint64_t tr__mbox_removed(const tr__actor_t *a) {
  return a->mbox_limit != NULL ? a->mbox_limit->removed : 0;
}

/* ---- delivery ------------------------------------------------------------ */

/* Unlinks and frees the oldest droppable queued message; 0 if there is
 * none. */
static int drop_oldest(tr__actor_t *a) {
  tr_msg_t *prev = NULL, *m;
  for (m = a->mq_head; m != NULL; prev = m, m = m->next)
    if (droppable(m)) break;
  if (m == NULL) return 0;
  if (prev) prev->next = m->next;
  else a->mq_head = m->next;
  if (a->mq_tail == m) a->mq_tail = prev;
  a->mq_len--;
  a->mbox_limit->removed++;
  tr__msg_destroy(m);
  return 1;
}

int tr__mbox_admit(tr__actor_t *a, tr_msg_t *m) {
  struct tr__mbox_limit *l = a->mbox_limit;
  tr_reason_t r;
  if (l->max == 0 || a->mq_len < l->max || !droppable(m)) return 1;
  if (l->policy == TR_MAILBOX_DROP_OLDEST && a != a->s->current) {
    while (a->mq_len >= l->max && drop_oldest(a)) l->dropped++;
    if (a->mq_len < l->max) return 1;
  }
  l->dropped++;
  tr__msg_destroy(m);
  if (l->policy == TR_MAILBOX_EXIT) {
    tr__reason_set(&r, TR_REASON_MAILBOX_OVERFLOW);
    r.code = (int)(l->max > INT32_MAX ? INT32_MAX : l->max);
    tr__actor_kill(a->s, a, &r);
  }
  return 0;
}

/* ---- API ----------------------------------------------------------------- */

int tr_mailbox_limit(size_t max, tr_mailbox_policy_t policy) {
  TR__ACTOR_OR_RETURN(a);
  return set_limit(a, max, policy);
}

/* The live local actor pid names, for the observation calls. */
static int observe(tr_pid_t pid, tr__actor_t **out) {
  tr__sched_t *s = tr__tls_sched;
  if (s == NULL) return TR_EWRONGTHREAD;
  if ((*out = tr__lookup(s, pid)) == NULL) return TR_ENOPROC;
  return 0;
}

int tr_mailbox_len_of(tr_pid_t pid, size_t *len) {
  tr__actor_t *a;
  int err;
  if (len == NULL) return TR_EINVAL;
  *len = 0;
  if (tr__pid_is_remote(pid)) { /* another scheduler's: ask it */
    tr_mailbox_stats_t st;
    if ((err = tr__mbox_stats_remote(pid, &st)) == 0) *len = st.len;
    return err;
  }
  if ((err = observe(pid, &a)) != 0) return err;
  *len = a->mq_len;
  return 0;
}

int tr_mailbox_stats(tr_pid_t pid, tr_mailbox_stats_t *st) {
  tr__actor_t *a;
  int err;
  if (st == NULL) return TR_EINVAL;
  memset(st, 0, sizeof(*st));
  if (tr__pid_is_remote(pid)) return tr__mbox_stats_remote(pid, st);
  if ((err = observe(pid, &a)) != 0) return err;
  st->len = a->mq_len;
  if (a->mbox_limit != NULL) {
    st->max = a->mbox_limit->max;
    st->policy = a->mbox_limit->policy;
    st->dropped = a->mbox_limit->dropped;
  }
  return 0;
}
