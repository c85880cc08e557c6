/*
 * Supervisor internals shared by the supervisor/ sources. Not API.
 *
 *   spec.c        flags and child specs: defaults, validation, messages
 *   wire.c        the messages: init, init ack, calls and replies
 *   children.c    the child table, starting a child, the shutdown protocol
 *   supervisor.c  the supervisor actor: init, restarts, intensity, exit
 *   server.c      the run-time API, supervisor side (call handlers)
 *   client.c      the public API, caller side
 *
 * A supervisor's state lives on the heap, owned by the supervisor actor and
 * freed by a tr_defer cleanup whatever ends it. Children are kept in start
 * order in a doubly linked list, and running ones in a pid hash (a
 * simple_one_for_one supervisor may have tens of thousands).
 */
#ifndef TR_SUP_H
#define TR_SUP_H

#include "internal.h"

#include <msgpack.h>

/* Message tags (user messages between supervisors, children and callers). */
#define SUP_TAG_INIT "$sup_init"   /* starter -> new supervisor: its config */
#define SUP_TAG_ACK "$tr_ack"      /* child -> parent: init result */
#define SUP_TAG_CALL "$sup"        /* run-time API request (a CALL) */
#define SUP_TAG_RETRY "$sup_retry" /* supervisor -> itself: restart again */

enum {
  SUP_OP_STOP = 1,
  SUP_OP_START_CHILD,
  SUP_OP_START_ARG,
  SUP_OP_TERMINATE,
  SUP_OP_TERMINATE_PID,
  SUP_OP_RESTART,
  SUP_OP_DELETE,
  SUP_OP_WHICH,
  SUP_OP_INFO,
  SUP_OP_COUNT,
  SUP_OP_GET_SPEC
};

typedef struct sup_child sup_child_t;
struct sup_child {
  tr_child_spec_t spec;   /* validated; shutdown never TR_SHUTDOWN_DEFAULT */
  void *arg;              /* what start() gets (simple_one_for_one: extra) */
  tr_pid_t pid;           /* TR_PID_NONE unless running */
  tr_child_state_t state;
  uint64_t key;           /* unique per record: names pending retries */
  uint64_t restarts, failed_starts, exits;
  tr_reason_t last_exit;
  uint64_t started_ms;    /* when it last started (backoff reset) */
  unsigned backoff_n;     /* delayed restarts in a row */
  tr_ref_t mref;          /* monitor while being stopped */
  int stopping;           /* in a batch stop, not yet DOWN */
  sup_child_t *prev, *next; /* start order */
  sup_child_t *hnext;       /* pid hash chain */
};

/* The result of a start made from outside any actor: shared by the caller,
 * which drives the loop, and the supervisor, which fills it in. */
typedef struct sup_box {
  int refs;               /* owners left: caller and supervisor */
  int adopted;            /* the supervisor took its reference */
  int done;
  int err;
  tr_sup_error_t detail;
} sup_box_t;

typedef struct sup {
  tr_sup_flags_t flags;   /* validated; flags.name points at name[] */
  char name[TR_NAME_MAX];
  tr_pid_t self;
  tr_pid_t parent;        /* OTP parent: its exit signal stops us */
  tr_pid_t ack_to;        /* who awaits our init ack, or NONE */
  sup_box_t *box;         /* outside-actor start, or NULL */
  tr_child_spec_t tmpl;   /* simple_one_for_one template */
  sup_child_t *head, *tail;
  size_t nchildren;
  sup_child_t **hash;     /* running children by pid */
  size_t hcap, hlen;
  uint64_t *ring;         /* restart times (ms) within the period */
  size_t rhead, rlen, rcap;
  uint64_t next_key;
  uint64_t restarts;      /* total, for count_children */
  uint64_t rng;           /* xorshift state for backoff jitter */
} sup_t;

/* ---- spec.c ---- */

/* Fills err (may be NULL): id, index, optional reason, formatted message. */
void tr__sup_error(tr_sup_error_t *err, const char *id, int index,
                   const tr_reason_t *why, const char *fmt, ...)
    TR_PRINTF(5, 6);
/* Copies flags (NULL: defaults) into *out and validates them. */
int tr__sup_flags_check(const tr_sup_flags_t *flags, tr_sup_flags_t *out,
                        tr_sup_error_t *err);
/* Copies specs[i] (array stride specs[0].size) into *out, defaults for
 * fields the caller's struct lacks, then validates it and resolves its
 * shutdown. index is for messages (-1: a lone spec). */
int tr__sup_spec_check(const tr_child_spec_t *specs, size_t i, int index,
                       tr_child_spec_t *out, tr_sup_error_t *err);
/* Validates flags and all n specs (ids unique, simple_one_for_one has
 * exactly one). On success *copy is a malloc'd array of n checked specs
 * (NULL when n is 0), the caller's to free. */
int tr__sup_check_all(const tr_sup_flags_t *flags, const tr_child_spec_t *specs,
                      size_t n, tr_sup_flags_t *fout, tr_child_spec_t **copy,
                      tr_sup_error_t *err);

/* ---- wire.c ---- */

/* ["$sup_init", bin flags, name|nil, bin specs, box, linked] to pid. */
int tr__sup_send_init(tr_runtime_t *rt, tr_pid_t pid, const tr_sup_flags_t *f,
                      const tr_child_spec_t *specs, size_t n, sup_box_t *box,
                      int linked);
/* Parses an init message; *specs is malloc'd (caller frees). */
int tr__sup_parse_init(tr_msg_t *m, tr_sup_flags_t *f, char *name,
                       tr_child_spec_t **specs, size_t *n, sup_box_t **box,
                       int *linked);
/* Sends ["$tr_ack", status] (+ bin detail) to pid. */
int tr__sup_send_ack(tr_pid_t to, int status, const tr_sup_error_t *detail);
/* Waits for pid's init ack or its death (EXIT, or DOWN for mref if
 * nonzero). Returns TR_INIT_OK, TR_INIT_IGNORE, or TR_ESTART with *why
 * (and *detail when the ack carried one) filled in. After anything but OK
 * the child is dead and its EXIT/DOWN consumed. */
int tr__sup_await_ack(tr_pid_t pid, tr_ref_t mref, tr_reason_t *why,
                      tr_sup_error_t *detail);
/* A run-time API call: ["$sup", op, x, bin] -> [code, x, bin]. On return
 * *x and up to outcap bytes of the reply bin (out may be NULL) are set;
 * *outlen gets the bin's full length. Returns the supervisor's code. */
int tr__sup_call(tr_pid_t sup, int op, uint64_t *x, const void *in,
                 size_t inlen, void *out, size_t outcap, size_t *outlen);
/* Decodes a request (server side). */
int tr__sup_parse_call(tr_msg_t *m, int *op, uint64_t *x, const void **bin,
                       size_t *binlen);
/* Answers a request with [code, x, bin]. */
int tr__sup_reply(const tr_msg_t *call, int code, uint64_t x, const void *bin,
                  size_t binlen);
/* Ends the calling actor with reason r. */
_Noreturn void tr__sup_exit(const tr_reason_t *r);

/* ---- children.c ---- */

sup_child_t *tr__sup_child_add(sup_t *sup, const tr_child_spec_t *spec,
                               void *arg);
void tr__sup_child_del(sup_t *sup, sup_child_t *c);
sup_child_t *tr__sup_by_pid(sup_t *sup, tr_pid_t pid);
sup_child_t *tr__sup_by_id(sup_t *sup, const char *id);
sup_child_t *tr__sup_by_key(sup_t *sup, uint64_t key);
void tr__sup_hash_put(sup_t *sup, sup_child_t *c);
void tr__sup_hash_del(sup_t *sup, sup_child_t *c);
/* Spawns c linked and waits for its ack. Returns TR_INIT_OK (running),
 * TR_INIT_IGNORE or TR_ESTART (why filled in). */
int tr__sup_child_start(sup_t *sup, sup_child_t *c, tr_reason_t *why);
/* Stops running child c with its shutdown; c is then STOPPED. */
void tr__sup_child_stop(sup_t *sup, sup_child_t *c);
/* Stops every running child from the tail back to first (inclusive), one
 * by one; temporary ones are dropped when drop_temporary. */
void tr__sup_stop_from(sup_t *sup, sup_child_t *first, int drop_temporary);
/* Stops every child, as the supervisor's own exit does: in reverse start
 * order, or all at once for simple_one_for_one. */
void tr__sup_stop_all(sup_t *sup);

/* ---- supervisor.c ---- */

void tr__sup_report(sup_t *sup, tr_sup_event_kind_t kind,
                    const sup_child_t *c, tr_pid_t pid, const tr_reason_t *r);
void tr__sup_fill_info(const sup_t *sup, const sup_child_t *c,
                       tr_sup_child_info_t *info);
/* Runs a supervisor in the calling actor: init, ack, loop. */
_Noreturn void tr__sup_run(sup_t *sup, tr_child_spec_t *specs, size_t n);
sup_t *tr__sup_new(const tr_sup_flags_t *f);
/* Frees a supervisor's state (its tr_defer cleanup). */
void tr__sup_free(void *p);
void tr__sup_box_release(sup_box_t *box);

/* ---- server.c ---- */

/* Handles a run-time API call. */
void tr__sup_handle_call(sup_t *sup, tr_msg_t *m);

#endif
