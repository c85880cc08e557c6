/*
 * Hibernation (Erlang's erlang:hibernate/3): an idle actor gives its stack
 * back to the pool while it waits for mail, and restarts in a given
 * function on a fresh stack when mail arrives. Everything else it holds
 * (mailbox, links, monitors, name, timers, defers, arena, trap_exit) lives
 * in its record and stays.
 *
 * The stack cannot be released by the code running on it: the actor
 * switches to its scheduler's own stack (tr__sched_hibernate) and main
 * releases it in tr__reap (tr__hib_release). The wake paths all go through
 * tr__sched_wake, which gives a hibernated actor with mail a new stack
 * and a new context starting in the same top frame as a spawn.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

int tr_hibernate(tr_actor_fn fn, void *arg) {
  TR__ACTOR_OR_RETURN(a);
  if (fn == NULL) return TR_EINVAL;
  tr__check_pending_exit(a);
  a->fn = fn;
  a->arg = arg;
  a->hib = 1;
  tr__sched_hibernate(a->s, a);
}

/* Main, just back from the hibernating actor: nothing runs on its stack
 * any more. The record keeps the stack's size class for the wake. */
void tr__hib_release(tr__sched_t *s) {
  tr__actor_t *a = s->hib_pending;
  size_t size = a->stack.size;
  s->hib_pending = NULL;
  tr__fiber_destroy(a);
  tr__stack_put(s->stacks, &a->stack);
  memset(&a->stack, 0, sizeof(a->stack));
  a->stack.size = size;
  memset(&a->ctx, 0, sizeof(a->ctx));
  a->stack_limit = 0;
  a->fault_env = NULL; /* pointed into the old stack */
  a->in_runtime = 0;   /* tr_hibernate never left the runtime */
  if (a->mq_head != NULL) tr__sched_wake(s, a); /* mail already queued */
}

/* A wake reached hibernated a (waiting, not running). Only mail ends
 * hibernation. Without a stack a exits with an error reason that says so;
 * the runtime goes on. */
int tr__hib_wake(tr__sched_t *s, tr__actor_t *a) {
  tr_reason_t r;
  int err;
  if (a->mq_head == NULL) return 1;
  if ((err = tr__actor_stack_new(s, a, a->stack.size)) == 0) {
    a->hib = 0;
    return 0;
  }
  tr__reason_set(&r, TR_REASON_ERROR);
  r.code = err;
  snprintf(r.text, sizeof(r.text), "no stack to wake from hibernation: %s",
           tr_strerror(err));
  tr__actor_kill(s, a, &r);
  return 1;
}
