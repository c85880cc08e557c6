/*
 * The libuv bridge (src/io_*.c): structures shared by the I/O files.
 * Nothing here is API; see the "I/O" section of troupe.h and doc/io.md.
 *
 * Two kinds of objects:
 *  - a handle (tr__io_handle_t) is a TCP listener or stream, a UDP socket or
 *    an open file. It is named by a tr_io_t id (index + generation), owned
 *    by one actor and linked into that actor's io_handles list; the owner's
 *    death closes it (tr__io_release).
 *  - an op (tr__io_op_t) is one libuv request in flight (write, connect,
 *    shutdown, UDP send, fs, getaddrinfo). It is heap-allocated and holds
 *    any data buffer libuv sees. While an actor waits for it, it is linked
 *    into that actor's io_ops list; when the actor gives up (timeout) or
 *    dies, it is detached (waiter = NULL) and its completion callback frees
 *    it. libuv never holds a pointer into an actor's stack.
 *
 * Every open handle and every op counts in sched->handles_open, so that
 * tr_runtime_free drives the loop until they are all gone.
 */
#ifndef TR_IO_H
#define TR_IO_H

#include "internal.h"

/* Read-ahead kept per stream handle once nobody is waiting: reading stops
 * when this much is buffered, and when data arrives with no reader. */
#define TR__IO_RBUF_MAX (64 * 1024)
/* Largest single libuv request buffer (writes, fs reads/writes). */
#define TR__IO_CHUNK (256 * 1024)

enum {
  TR__IO_TCP_LISTEN = 1,
  TR__IO_TCP,
  TR__IO_UDP,
  TR__IO_FILE
};

typedef struct tr__io_handle tr__io_handle_t;
typedef struct tr__io_op tr__io_op_t;

struct tr__io_handle {
  int kind;
  tr_io_t id;
  tr__sched_t *s;
  tr__actor_t *owner;            /* NULL once closing */
  tr__io_handle_t *o_next, *o_prev; /* in owner->io_handles */
  tr__actor_t *waiter;           /* actor blocked on this handle, or NULL */
  uint8_t closing;
  uint8_t reading;               /* uv_read_start / uv_udp_recv_start on */
  uint8_t async;                 /* TCP: one read armed for the mailbox */
  uint8_t uv_inited;             /* uv handle initialised: close with uv_close */
  int rerr;                      /* TCP: sticky EOF/error; UDP: one-shot */
  int accept_err;                /* listener: error from connection_cb */
  /* read-ahead (TCP bytes, or UDP datagram records): rbuf[roff, rlen) */
  char *rbuf;
  size_t roff, rlen, rcap;
  /* files */
  uv_file fd;
  unsigned inflight;             /* fs ops running on fd */
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_udp_t udp;
  } uv;
};

typedef void (*tr__io_op_free_fn)(tr__io_op_t *op);

struct tr__io_op {
  tr__sched_t *s;
  tr__actor_t *waiter;           /* NULL: detached, freed on completion */
  tr__io_op_t *a_next, *a_prev;  /* in waiter->io_ops */
  tr__io_handle_t *h;            /* handle it works on, or NULL */
  tr__io_op_free_fn on_free;     /* releases results nobody took */
  uint8_t done;
  uint8_t fs;                    /* req.fs needs uv_fs_req_cleanup */
  int status;
  void *result;                  /* getaddrinfo: struct addrinfo * */
  size_t cap;                    /* size of buf */
  union {
    uv_req_t req;
    uv_write_t write;
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    uv_udp_send_t udp;
    uv_fs_t fs;
    uv_getaddrinfo_t gai;
  } req;
  _Alignas(16) char buf[];       /* owned data buffer (cap bytes) */
};

/* Per-scheduler I/O state, created at first use. */
typedef struct tr__io_sched {
  tr__slots_t ids;               /* tr_io_t -> handle */
  char *scratch;                 /* alloc_cb buffer (reads happen one at a time) */
  size_t buffered;               /* bytes in runtime-owned I/O buffers now */
  size_t buffered_peak;
} tr__io_sched_t;

/* ---- io_core.c ---- */

/* s's I/O state, created on first use (which also sets SIGPIPE to SIG_IGN
 * if it has the default disposition). NULL only when out of memory. */
tr__io_sched_t *tr__io_sched(tr__sched_t *s);

/* Allocates a handle of `kind` owned by a, with a fresh id. */
int tr__io_handle_new(tr__actor_t *a, int kind, tr__io_handle_t **out);
/* Resolves id for actor a (NULL: any caller on the runtime thread) and
 * checks kind (0: any). UV_EBADF stale, UV_EPERM not the owner,
 * TR_EINVAL wrong kind. */
int tr__io_handle_get(tr__sched_t *s, tr__actor_t *a, tr_io_t id, int kind,
                      tr__io_handle_t **out);
/* Closes h (idempotent, never blocks). `reset`: TCP abortive close (RST). */
void tr__io_handle_close(tr__io_handle_t *h, int reset);
/* A file handle's last op finished after close: releases it. */
void tr__io_file_settle(tr__io_handle_t *h);

/* Read-ahead buffer management (counts in buffered). */
int tr__io_rbuf_append(tr__io_handle_t *h, const void *p, size_t n);
/* Appends n uninitialised bytes and returns them (NULL: out of memory). */
char *tr__io_rbuf_reserve(tr__io_handle_t *h, size_t n);
void tr__io_rbuf_consume(tr__io_handle_t *h, size_t n);

/* Ops. op_new reserves cap bytes of buffer. */
tr__io_op_t *tr__io_op_new(tr__sched_t *s, size_t cap);
/* An op that was never handed to libuv, or that completed: frees it. */
void tr__io_op_free(tr__io_op_t *op);
/* Links op to a as the waiting actor. */
void tr__io_op_attach(tr__io_op_t *op, tr__actor_t *a);
/* Waits until op completes or the deadline passes (TR_ETIMEDOUT). */
int tr__io_op_wait(tr__actor_t *a, tr__io_op_t *op, uint64_t deadline);
/* Blocks a on handle *hp (its waiter) until woken or the deadline. If the
 * handle was closed meanwhile, returns UV_ECANCELED and sets *hp to NULL. */
int tr__io_wait_handle(tr__actor_t *a, tr__io_handle_t **hp, uint64_t deadline);

/* The waiter took the result: unlinks and frees op. */
void tr__io_op_finish(tr__io_op_t *op);
/* The waiter gives up (timeout): the op completes into the runtime. */
void tr__io_op_detach(tr__io_op_t *op);
/* Completion, from a libuv callback: wakes the waiter (and, attached,
 * runs it at once) or frees a detached op. op may be gone on return. */
void tr__io_op_complete(tr__io_op_t *op, int status);

/* Deadlines: 0 = none (-1 ms), else absolute ms; timeout 0 is "now". */
uint64_t tr__io_deadline(int timeout_ms);
/* Suspends a once, until any wake-up. TR_ETIMEDOUT once the deadline
 * passed (the wait timer is armed for it and disarmed by done). */
int tr__io_suspend(tr__actor_t *a, uint64_t deadline);
void tr__io_suspend_done(tr__actor_t *a);

/* Wakes a if it waits (from a callback) and, on an attached runtime, runs
 * the woken actors now. */
void tr__io_wake(tr__sched_t *s, tr__actor_t *a);
void tr__io_kick(tr__sched_t *s);

/* Copies between runtime and caller memory as the actor's own code (a
 * fault there ends the actor, not the process). */
void tr__io_user_copy(tr__actor_t *a, void *dst, const void *src, size_t n);

/* Scratch buffer for alloc callbacks. */
void tr__io_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* Bytes in runtime-owned I/O buffers now, and the peak (for tests). */
size_t tr__io_buffered(tr_runtime_t *rt, size_t *peak);

/* Parses a numeric IPv4/IPv6 address. */
int tr__io_addr(const char *ip, int port, struct sockaddr_storage *ss);

#endif
