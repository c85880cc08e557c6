/*
 * troupe — an Erlang/OTP-style actor runtime for C.
 *
 * This header is the whole public API: anything not declared here is not
 * API. Every function returns 0 (or a non-negative value where stated) on
 * success and a negative error code on failure; tr_strerror() names it.
 * Error codes are negative errno values, so libuv's UV_E* codes pass through
 * unchanged; troupe's own conditions use codes below TR__ERRNO_BASE.
 *
 * Actors are stackful coroutines pinned to the scheduler thread that started
 * them. Functions marked "actor-only" must be called from inside an actor and
 * return TR_ENOTACTOR anywhere else.
 */
#ifndef TROUPE_H
#define TROUPE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TR_EXTERN __attribute__((visibility("default")))
#define TR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TR_EXTERN
#define TR_PRINTF(f, a)
#endif

#define TR_VERSION_MAJOR 0
#define TR_VERSION_MINOR 1
#define TR_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

#define TR__ERRNO_BASE (-5000)

/* XX(name, value, message). Values that mirror errno equal libuv's codes. */
#define TR_ERRNO_MAP(XX)                                                      \
  XX(EINVAL, -22, "invalid argument")                                         \
  XX(ENOMEM, -12, "out of memory")                                            \
  XX(ETIMEDOUT, -110, "timed out")                                            \
  XX(EEXIST, -17, "name already registered")                                  \
  XX(ENOENT, -2, "no such entry")                                             \
  XX(EBADMSG, -74, "malformed message")                                       \
  XX(EMSGSIZE, -90, "message too large")                                      \
  XX(EBUSY, -16, "resource busy")                                             \
  XX(ENOTSUP, -95, "operation not supported")                                 \
  XX(EDEADLK, -35, "every actor is blocked and nothing can wake them")        \
  XX(ENOTACTOR, (TR__ERRNO_BASE - 1), "called from outside an actor")         \
  XX(ENOPROC, (TR__ERRNO_BASE - 2), "no such process")                        \
  XX(ENAMED, (TR__ERRNO_BASE - 3), "process already has a registered name")   \
  XX(EMAPCOUNT, (TR__ERRNO_BASE - 4),                                         \
     "guard pages would exceed vm.max_map_count")                             \
  XX(ESTOPPED, (TR__ERRNO_BASE - 5), "runtime is stopping")                   \
  XX(ESELF, (TR__ERRNO_BASE - 6), "operation not allowed on self")            \
  XX(EWRONGTHREAD, (TR__ERRNO_BASE - 7),                                      \
     "called from a thread that does not run this runtime")                  \
  XX(ECLEANUP, (TR__ERRNO_BASE - 8),                                          \
     "not allowed from a cleanup callback")                                   \
  XX(EDOWN, (TR__ERRNO_BASE - 9), "the called process exited")             \
  XX(ESTART, (TR__ERRNO_BASE - 10), "a child failed to start")

enum {
#define TR__ERR_ENUM(name, val, msg) TR_##name = (val),
  TR_ERRNO_MAP(TR__ERR_ENUM)
#undef TR__ERR_ENUM
};

/* A static, human-readable description of err (troupe or libuv code). */
TR_EXTERN const char *tr_strerror(int err);
/* The symbolic name of err, e.g. "TR_ENOPROC" or "ECONNREFUSED". */
TR_EXTERN const char *tr_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Basic types                                                              */
/* ------------------------------------------------------------------------ */

/* A process identifier. 0 is never a valid pid. Pids carry a generation:
 * once an actor has exited, its pid never names another actor. */
typedef uint64_t tr_pid_t;
#define TR_PID_NONE ((tr_pid_t)0)

/* A unique reference (monitors, timers, calls). 0 is never a valid ref. */
typedef uint64_t tr_ref_t;

typedef struct tr_runtime_s tr_runtime_t;
typedef struct tr_msg_s tr_msg_t;

/* The body of an actor. Returning from it is a `normal` exit. */
typedef void (*tr_actor_fn)(void *arg);

/* ------------------------------------------------------------------------ */
/* Exit reasons                                                             */
/* ------------------------------------------------------------------------ */

typedef enum {
  TR_REASON_NORMAL = 0,
  TR_REASON_SHUTDOWN,       /* orderly stop requested */
  TR_REASON_KILL,           /* untrappable exit signal (only as a signal) */
  TR_REASON_KILLED,         /* what a `kill` signal becomes */
  TR_REASON_NOPROC,         /* the pid was already dead */
  TR_REASON_ERROR,          /* user error: code and text */
  TR_REASON_STACK_OVERFLOW, /* hit the guard page, or the runtime reserve */
  TR_REASON_SEGV,           /* invalid memory access */
  TR_REASON_BUS,            /* bus error (e.g. truncated mapping) */
  TR_REASON_FPE,            /* arithmetic fault (integer divide by zero) */
  TR_REASON_ILL,            /* illegal instruction (incl. __builtin_trap) */
  TR_REASON_ABORT,          /* abort() or a failed assert() */
  TR_REASON_TRAP,           /* breakpoint trap (aarch64 brk) */
  TR_REASON_MAILBOX_OVERFLOW,
  TR_REASON__COUNT
} tr_reason_kind_t;

#define TR_REASON_TEXT_MAX 96

typedef struct tr_reason {
  tr_reason_kind_t kind;
  int code;          /* ERROR: user code; faults: signal si_code */
  uintptr_t addr;    /* fault address (0 when none) */
  uintptr_t pc;      /* faulting instruction (0 when none) */
  char text[TR_REASON_TEXT_MAX]; /* NUL-terminated detail; may be "" */
} tr_reason_t;

/* "normal", "shutdown", "stack_overflow", ... (static strings). */
TR_EXTERN const char *tr_reason_name(tr_reason_kind_t kind);
/* Formats r as one line into buf (always NUL-terminated when size > 0).
 * Returns the length it needed, like snprintf. */
TR_EXTERN int tr_reason_format(const tr_reason_t *r, char *buf, size_t size);
/* True for kinds produced by a native fault (stack_overflow .. trap). */
TR_EXTERN int tr_reason_is_crash(tr_reason_kind_t kind);

/* ------------------------------------------------------------------------ */
/* Runtime                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum { TR_LOG_DEBUG, TR_LOG_INFO, TR_LOG_WARN, TR_LOG_ERROR } tr_log_level_t;

/* A logger receives one complete line (no trailing newline). */
typedef void (*tr_log_fn)(void *arg, tr_log_level_t level, const char *line);

/* Runtime options. Initialise with tr_config_init(); new fields are only
 * ever added at the end, and `size` tells the runtime which ones you have. */
typedef struct tr_config {
  size_t size;              /* sizeof(tr_config_t) as compiled by the caller */
  unsigned schedulers;      /* scheduler threads, 1..TR_SCHEDULERS_MAX; 0:
                             * the default (env TR_SCHEDULERS, else the
                             * online CPUs) */
  size_t stack_size;        /* default usable stack per actor, bytes */
  size_t stack_cache;       /* freed stacks kept warm before MADV_DONTNEED */
  unsigned stop_timeout_ms; /* grace period of tr_runtime_stop before kill */
  tr_log_fn logger;         /* NULL: crash reports go nowhere */
  void *logger_arg;
  int crash_reports;        /* nonzero: one log line per crashed actor */
  int catch_faults;         /* nonzero (default): install fault handlers */
  int placement;            /* TR_PLACE_* used for spawns that ask for
                             * TR_PLACE_DEFAULT; TR_PLACE_DEFAULT (0): env
                             * TR_PLACEMENT ("local", "round_robin",
                             * "least_loaded"), else TR_PLACE_LOCAL */
} tr_config_t;

#define TR_SCHEDULERS_MAX 64

#define TR_STACK_SIZE_DEFAULT (256 * 1024)
#define TR_STACK_SIZE_MIN (16 * 1024)
#define TR_STACK_SIZE_MAX (256 * 1024 * 1024)

TR_EXTERN void tr_config_init(tr_config_t *cfg);

/* A logger that writes each line to stderr, for tr_config_t.logger. */
TR_EXTERN void tr_log_stderr(void *arg, tr_log_level_t level, const char *line);

/* Creates a standalone runtime with its own loop; run it with
 * tr_runtime_run(). cfg may be NULL for defaults. On error *rt is NULL. */
TR_EXTERN int tr_runtime_new(tr_runtime_t **rt, const tr_config_t *cfg);

/* Creates a runtime whose scheduler runs on the host's loop. The host keeps
 * calling uv_run(); actors run from loop callbacks on that thread. The loop
 * stays the host's: the runtime only adds handles to it and closes them all
 * once stopped. */
TR_EXTERN int tr_runtime_attach(tr_runtime_t **rt, uv_loop_t *loop,
                                const tr_config_t *cfg);

/* Standalone only: runs every scheduler until every actor has exited
 * (returns 0), until tr_runtime_stop() finished (0), or until every live
 * actor is blocked with nothing that could wake it (TR_EDEADLK, actors left
 * alive). Scheduler 0 runs on the calling thread; the other schedulers'
 * threads run only while this runs (outside it they are parked). Returns
 * TR_ENOTSUP for an attached runtime, TR_EBUSY if already running. */
TR_EXTERN int tr_runtime_run(tr_runtime_t *rt);

/* Asks for an orderly stop: actors spawned from outside any actor get exit
 * signal `shutdown`, youngest first on each scheduler; once they are gone
 * everywhere, the rest are killed; after stop_timeout_ms whatever is left
 * is killed. Returns at once; the loops carry the stop out. Idempotent. */
TR_EXTERN int tr_runtime_stop(tr_runtime_t *rt);

/* Stops what is left, waits for the runtime's handles to close (driving the
 * loop if needed) and frees everything. NULL is accepted. Must be called on
 * the runtime's thread and not from inside one of its callbacks or actors
 * (TR_EBUSY then, nothing freed). */
TR_EXTERN int tr_runtime_free(tr_runtime_t *rt);

/* The loop scheduler 0 runs on. */
TR_EXTERN uv_loop_t *tr_runtime_loop(tr_runtime_t *rt);

/* Number of live actors. */
TR_EXTERN size_t tr_runtime_actor_count(const tr_runtime_t *rt);

/* The runtime of the calling actor or scheduler thread, or NULL. */
TR_EXTERN tr_runtime_t *tr_runtime_current(void);

/* Number of schedulers (threads) of rt; 0 for NULL. */
TR_EXTERN unsigned tr_runtime_scheduler_count(const tr_runtime_t *rt);

/* The scheduler running the caller (an actor, or a scheduler thread), or
 * -1 on a thread that runs none. Host code on the runtime's thread is on
 * scheduler 0. */
TR_EXTERN int tr_sched_self(void);

/* ------------------------------------------------------------------------ */
/* Actors                                                                   */
/* ------------------------------------------------------------------------ */

enum {
  TR_SPAWN_LINK = 1u << 0,    /* link spawner and child atomically */
  TR_SPAWN_MONITOR = 1u << 1, /* spawner monitors the child; ref out */
};

/* What a full mailbox does with one more USER, TIMER or CALL message (see
 * tr_mailbox_limit). */
typedef enum {
  TR_MAILBOX_DROP_NEWEST = 0, /* the arriving message is dropped */
  TR_MAILBOX_DROP_OLDEST,     /* the oldest queued one is dropped */
  TR_MAILBOX_EXIT             /* the actor exits with mailbox_overflow */
} tr_mailbox_policy_t;

typedef struct tr_spawn_opts {
  size_t size;           /* sizeof(tr_spawn_opts_t) */
  size_t stack_size;     /* 0: the runtime default */
  const char *name;      /* register under this name (copied), or NULL */
  unsigned flags;        /* TR_SPAWN_* */
  tr_ref_t *monitor_ref; /* with TR_SPAWN_MONITOR: receives the ref */
  size_t mailbox_max;    /* 0: no limit; else as tr_mailbox_limit */
  tr_mailbox_policy_t mailbox_policy;
  int placement;         /* TR_PLACE_* or TR_PLACE_SCHED(id) */
} tr_spawn_opts_t;

/* Spawn placement (tr_spawn_opts_t.placement, tr_config_t.placement). An
 * actor never leaves the scheduler (thread) it was placed on. A child
 * placed on another scheduler than the spawner's may run at once, in
 * parallel with its spawner; tr_spawn returns once it exists. */
enum {
  TR_PLACE_DEFAULT = 0,      /* the runtime's default (tr_config_t) */
  TR_PLACE_LOCAL = 1,        /* the spawner's scheduler (host code: 0) */
  TR_PLACE_ROUND_ROBIN = 2,  /* the next scheduler, in turn */
  TR_PLACE_LEAST_LOADED = 3  /* the scheduler with the fewest live actors */
};
/* Explicitly scheduler id (0 .. tr_runtime_scheduler_count() - 1; TR_EINVAL
 * beyond). */
#define TR_PLACE_SCHED(id) (0x100 + (int)(id))

TR_EXTERN void tr_spawn_opts_init(tr_spawn_opts_t *opts);

/* Starts fn(arg) as a new actor. rt may be NULL inside an actor (the
 * caller's runtime). arg is passed through, never owned. A child on the
 * spawner's scheduler first runs when the spawner blocks or yields, before
 * the actors that were runnable already (in spawn order, within a fairness
 * bound: doc/design.md); one placed on another scheduler may run at once,
 * in parallel (tr_spawn returns once it exists). *pid (may be NULL) gets
 * its pid.
 * LINK and MONITOR need an actor caller (TR_ENOTACTOR otherwise). If `name`
 * is taken, TR_EEXIST and nothing is started. */
TR_EXTERN int tr_spawn(tr_runtime_t *rt, tr_actor_fn fn, void *arg,
                       const tr_spawn_opts_t *opts, tr_pid_t *pid);
/* Actor-only shorthands for tr_spawn with TR_SPAWN_LINK / MONITOR. */
TR_EXTERN int tr_spawn_link(tr_actor_fn fn, void *arg, tr_pid_t *pid);
TR_EXTERN int tr_spawn_monitor(tr_actor_fn fn, void *arg, tr_pid_t *pid,
                               tr_ref_t *ref);

/* The calling actor's pid, or TR_PID_NONE outside an actor. */
TR_EXTERN tr_pid_t tr_self(void);

/* Actor-only: lets every other runnable actor run once, then resumes. */
TR_EXTERN int tr_yield(void);

/* Actor-only, as Erlang's erlang:hibernate/3: gives the caller's stack back
 * and waits for a message with no timeout; once its mailbox is non-empty
 * (at once if it already is) the actor restarts by calling fn(arg) on a
 * fresh stack, its messages still queued. Never returns on success: the
 * stack is discarded, so pointers into it become invalid; everything else
 * (mailbox, links, monitors, name, timers, defers, arena, trap_exit) stays.
 * Exit signals act as on an actor blocked in tr_recv. When fn returns the
 * actor exits normally. If no stack can be had at the wake, the actor exits
 * with an ERROR reason (code TR_ENOMEM or TR_EMAPCOUNT). Errors: TR_EINVAL
 * (fn NULL), TR_ENOTACTOR, TR_ECLEANUP. */
TR_EXTERN int tr_hibernate(tr_actor_fn fn, void *arg);

/* Ends the calling actor with `kind` (normal, shutdown, ...). Does not
 * return inside an actor; returns TR_ENOTACTOR outside one. */
TR_EXTERN int tr_exit(tr_reason_kind_t kind);
/* Ends the calling actor with an ERROR reason carrying code and a message
 * (truncated to TR_REASON_TEXT_MAX - 1 bytes). */
TR_EXTERN int tr_exit_error(int code, const char *fmt, ...) TR_PRINTF(2, 3);

/* Sends exit signal `kind` to pid, as Erlang's exit(Pid, Reason): KILL is
 * untrappable and kills with reason `killed`; NORMAL is ignored unless the
 * target traps exits; anything else kills a non-trapping target and is an
 * EXIT message for a trapping one. A dead pid is a no-op. Works from the
 * runtime's thread outside actors (rt may be NULL inside an actor). */
TR_EXTERN int tr_exit_pid(tr_runtime_t *rt, tr_pid_t pid, tr_reason_kind_t kind);

/* Nonzero if pid names a live actor of the caller's runtime. */
TR_EXTERN int tr_is_alive(tr_pid_t pid);

/* The scheduler a pid belongs to (its actor runs on that thread only). */
TR_EXTERN unsigned tr_pid_scheduler(tr_pid_t pid);

/* Actor-only. Sets trap_exit; returns the previous value (0 or 1). */
TR_EXTERN int tr_trap_exit(int on);

/* Actor-only. Links the caller with pid (idempotent). A dead pid gives the
 * caller an exit signal `noproc` (an EXIT message if trapping, else the
 * caller dies), and tr_link returns 0, as in Erlang. */
TR_EXTERN int tr_link(tr_pid_t pid);
/* Actor-only. Removes a link if there is one. */
TR_EXTERN int tr_unlink(tr_pid_t pid);

enum { TR_DEMONITOR_FLUSH = 1u << 0 };

/* Actor-only. Monitors pid: exactly one DOWN message {ref, pid, reason}
 * arrives when it exits, at once with `noproc` if it is already dead. */
TR_EXTERN int tr_monitor(tr_pid_t pid, tr_ref_t *ref);
/* Actor-only. Removes a monitor; with TR_DEMONITOR_FLUSH also drops a DOWN
 * for it that is already in the mailbox. Unknown refs are a no-op (0). */
TR_EXTERN int tr_demonitor(tr_ref_t ref, unsigned flags);

/* ------------------------------------------------------------------------ */
/* Resource ledger                                                          */
/* ------------------------------------------------------------------------ */

/* Actor-only. Registers fn(arg) to run when the actor exits for any reason
 * (normal, error, crash, kill), last registered first. Cleanups run on the
 * scheduler's own stack after the actor is gone: tr_self() is NONE there and
 * actor-only calls return TR_ECLEANUP. */
TR_EXTERN int tr_defer(void (*fn)(void *arg), void *arg);

/* Actor-only. Allocates size bytes (16-byte aligned) from the actor's arena;
 * everything is freed when the actor exits. NULL when out of memory or
 * outside an actor. */
TR_EXTERN void *tr_arena_alloc(size_t size);

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum {
  TR_MSG_USER = 0, /* tr_send and friends */
  TR_MSG_EXIT,     /* a trapped exit signal: from + reason */
  TR_MSG_DOWN,     /* a monitor fired: ref + from + reason */
  TR_MSG_TIMER,    /* tr_send_after: ref + user body */
  TR_MSG_CALL,     /* tr_call request: answer it with tr_reply */
  TR_MSG_REPLY     /* internal: consumed by tr_call */
} tr_msg_kind_t;

/* Largest message body accepted (bytes of msgpack). */
#define TR_MSG_MAX ((size_t)64 * 1024 * 1024)

/* Sends one msgpack value (len bytes, validated: exactly one well-formed
 * value) to pid. The bytes are copied. A dead or stale pid is a silent
 * no-op. From outside an actor use tr_runtime_send. */
TR_EXTERN int tr_send(tr_pid_t to, const void *data, size_t len);
/* Packs obj and sends it. */
TR_EXTERN int tr_send_obj(tr_pid_t to, const msgpack_object *obj);
/* Sends the tagged array ["tag", args...] described by fmt, one character
 * per argument:
 *   i int64_t   u uint64_t   d double   b int (bool)   n nil (no argument)
 *   s const char* (NUL-terminated string, NULL packs nil)
 *   S const char*, size_t (string with length)
 *   B const void*, size_t (binary)
 *   I const int64_t*, size_t (an array of that many integers)
 *   p tr_pid_t (msgpack ext type TR_EXT_PID)
 * S, B and I with a NULL pointer pack nil and need count 0. The runtime
 * packs the body itself (in one pass up to 512 bytes), so it needs no
 * validation pass; tr_msg_unpack reads it back. An unknown format
 * character or a NULL with a count is TR_EINVAL, a body over TR_MSG_MAX
 * TR_EMSGSIZE; nothing is sent then. */
TR_EXTERN int tr_send_tagged(tr_pid_t to, const char *tag, const char *fmt, ...);
TR_EXTERN int tr_send_tagged_v(tr_pid_t to, const char *tag, const char *fmt,
                               va_list ap);
/* Sends to the actor registered as name; TR_ENOENT if there is none. */
TR_EXTERN int tr_send_named(const char *name, const void *data, size_t len);
/* tr_send for code outside any actor, on the runtime's thread. */
TR_EXTERN int tr_runtime_send(tr_runtime_t *rt, tr_pid_t to, const void *data,
                              size_t len);

/* Packs ["tag", args...] (fmt as for tr_send_tagged) into a malloc'd buffer
 * the caller frees with free(). */
TR_EXTERN int tr_pack_tagged(void **data, size_t *len, const char *tag,
                             const char *fmt, ...);
TR_EXTERN int tr_pack_tagged_v(void **data, size_t *len, const char *tag,
                               const char *fmt, va_list ap);

/* The msgpack ext type troupe uses for pids (8 bytes, big-endian). */
#define TR_EXT_PID 1
/* Packs a pid as ext TR_EXT_PID. */
TR_EXTERN int tr_pack_pid(msgpack_packer *pk, tr_pid_t pid);
/* Reads a pid packed with tr_pack_pid (or 'p'). */
TR_EXTERN int tr_obj_pid(const msgpack_object *obj, tr_pid_t *pid);
/* Checks that data holds exactly one well-formed msgpack value. */
TR_EXTERN int tr_msgpack_validate(const void *data, size_t len);

/* Actor-only receive. timeout_ms: -1 waits forever, 0 polls, >0 waits up
 * to that long (TR_ETIMEDOUT). On success *msg is the caller's, to release
 * with tr_msg_free (messages still held when the actor exits are freed). */
TR_EXTERN int tr_recv(tr_msg_t **msg, int timeout_ms);
/* Receives the first message whose body is an array starting with the
 * string tag; others stay queued in arrival order. */
TR_EXTERN int tr_recv_tag(tr_msg_t **msg, const char *tag, int timeout_ms);
/* Receives the first message for which match(msg, arg) returns nonzero;
 * others stay queued in arrival order. match must not receive or block. */
typedef int (*tr_match_fn)(const tr_msg_t *msg, void *arg);
TR_EXTERN int tr_recv_match(tr_msg_t **msg, tr_match_fn match, void *arg,
                            int timeout_ms);

/* Releases a received message. NULL is accepted. */
TR_EXTERN void tr_msg_free(tr_msg_t *msg);
/* The kind of msg (TR_MSG_USER for NULL). */
TR_EXTERN tr_msg_kind_t tr_msg_kind(const tr_msg_t *msg);
/* Sender (USER, CALL), exiting/down pid (EXIT, DOWN), NONE otherwise. */
TR_EXTERN tr_pid_t tr_msg_from(const tr_msg_t *msg);
/* Monitor ref (DOWN), timer ref (TIMER), call ref (CALL); 0 otherwise. */
TR_EXTERN tr_ref_t tr_msg_ref(const tr_msg_t *msg);
/* The raw msgpack body (never NULL for a valid msg). */
TR_EXTERN const void *tr_msg_data(const tr_msg_t *msg, size_t *len);
/* The decoded body, valid until tr_msg_free; decoded once on first use
 * (so it may be called on the const message a tr_match_fn receives).
 * Its objects live in storage recycled after tr_msg_free: keep nothing
 * from them past the free. NULL only if out of memory or for a NULL msg.
 * EXIT and DOWN bodies are ["EXIT", pid, "reason"] / ["DOWN", ref, pid,
 * "reason"]; tr_msg_reason gives the full reason. */
TR_EXTERN const msgpack_object *tr_msg_obj(const tr_msg_t *msg);
/* EXIT and DOWN: copies the reason. TR_EINVAL for other kinds. */
TR_EXTERN int tr_msg_reason(const tr_msg_t *msg, tr_reason_t *reason);
/* Nonzero if the body is an array whose first element is the string tag. */
TR_EXTERN int tr_msg_is_tag(const tr_msg_t *msg, const char *tag);
/* The receiving mirror of tr_send_tagged: checks, in one pass over the raw
 * body and without decoding it into objects, that the body is exactly the
 * array ["tag", args...] described by fmt, and stores each element through
 * pointer arguments, one letter per element:
 *   i int64_t*   u uint64_t*   d double* (float32 or float64)   b int*
 *   n nil (no argument)
 *   S const char**, size_t* (str; points into the body, no NUL)
 *   B const void**, size_t* (bin; points into the body)
 *   I int64_t *out, size_t cap, size_t *count (an array of integers)
 *   p tr_pid_t* (ext TR_EXT_PID)
 * Integers may come in any msgpack form whose value fits the destination.
 * S and B take nil as (NULL, 0), I takes it as count 0 (what those letters
 * pack for NULL). 's' is not accepted: a string in the body has no NUL, use
 * S. Pointers into the body stay valid until tr_msg_free. fmt NULL means no
 * arguments. Returns 0 on a match; TR_EBADMSG if the tag, the element
 * count, a type or a range differs (an I array longer than cap sets *count
 * to its length) or the body is cut short; TR_EINVAL for a NULL msg, tag or
 * pointer argument (I's out may be NULL with cap 0) or an unknown letter,
 * whatever the body holds. On an error the outputs of elements before the
 * offending one may have been written, none after it; the message is
 * untouched (it can still be read with tr_msg_obj). Needs no actor. Cost:
 * one pass over the body, no allocation. */
TR_EXTERN int tr_msg_unpack(const tr_msg_t *msg, const char *tag,
                            const char *fmt, ...);
TR_EXTERN int tr_msg_unpack_v(const tr_msg_t *msg, const char *tag,
                              const char *fmt, va_list ap);

/* Actor-only. Number of messages waiting in the caller's mailbox. */
TR_EXTERN size_t tr_mailbox_len(void);

/* Actor-only. Limits the caller's mailbox to max queued messages (0: no
 * limit, the default; tr_spawn_opts_t sets one from the start). A USER,
 * TIMER or CALL message that arrives while max are queued is handled by
 * policy: DROP_NEWEST drops it; DROP_OLDEST drops the oldest queued USER,
 * TIMER or CALL message instead (the new one if the caller sent it to
 * itself); EXIT drops it and ends the actor with reason mailbox_overflow.
 * EXIT and DOWN messages and awaited replies are never dropped and may go
 * past the limit. Senders are not told (tr_send returns 0); a dropped CALL
 * is never answered, so call a limited actor with a timeout. A lower limit
 * applies from the next arrival on. TR_EINVAL for an unknown policy. */
TR_EXTERN int tr_mailbox_limit(size_t max, tr_mailbox_policy_t policy);

/* Number of messages queued for pid, a live actor of the caller's runtime.
 * From actors and the runtime's thread. TR_EINVAL if len is NULL,
 * TR_ENOPROC for a dead, stale or foreign pid (*len = 0), TR_EWRONGTHREAD
 * from a thread that runs no runtime. */
TR_EXTERN int tr_mailbox_len_of(tr_pid_t pid, size_t *len);

typedef struct tr_mailbox_stats {
  size_t len;                 /* messages queued now */
  size_t max;                 /* its limit, 0 if none */
  tr_mailbox_policy_t policy; /* the limit's policy */
  uint64_t dropped;           /* messages dropped by the limit so far */
} tr_mailbox_stats_t;

/* As tr_mailbox_len_of, with the limit and the count of dropped messages
 * (*st zeroed on error). */
TR_EXTERN int tr_mailbox_stats(tr_pid_t pid, tr_mailbox_stats_t *st);

/* ------------------------------------------------------------------------ */
/* Call / reply (gen_server:call)                                           */
/* ------------------------------------------------------------------------ */

/* Actor-only. Sends request (one msgpack value) to server as a CALL message
 * and waits for the reply. The server is monitored for the duration: if it
 * is or becomes dead the call fails at once with TR_EDOWN (reason in *why if
 * not NULL). TR_ETIMEDOUT after timeout_ms (-1: forever); a late reply is
 * dropped. Other messages stay queued. */
TR_EXTERN int tr_call(tr_pid_t server, const void *req, size_t req_len,
                      tr_msg_t **reply, int timeout_ms, tr_reason_t *why);
/* Answers a CALL message; the bytes are copied. */
TR_EXTERN int tr_reply(const tr_msg_t *call, const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */
/* ------------------------------------------------------------------------ */

#define TR_NAME_MAX 64 /* bytes including NUL */

/* Registers pid under name (copied). TR_EEXIST if the name is taken,
 * TR_ENAMED if pid already has a name, TR_ENOPROC if pid is dead,
 * TR_EINVAL for an empty or too long name. The name is freed when the
 * actor exits. Usable from actors and the runtime's thread. */
TR_EXTERN int tr_register(const char *name, tr_pid_t pid);
TR_EXTERN int tr_unregister(const char *name);
/* TR_ENOENT if no live actor has that name. */
TR_EXTERN int tr_whereis(const char *name, tr_pid_t *pid);

/* ------------------------------------------------------------------------ */
/* Timers                                                                   */
/* ------------------------------------------------------------------------ */

/* Actor-only. Suspends the caller for ms milliseconds (0 = yield). */
TR_EXTERN int tr_sleep(uint64_t ms);
/* Delivers a TIMER message with body data to pid after ms milliseconds.
 * *ref (may be NULL) identifies it for tr_cancel_timer. The timer is
 * cancelled if the target exits first. */
TR_EXTERN int tr_send_after(tr_pid_t to, uint64_t ms, const void *data,
                            size_t len, tr_ref_t *ref);
/* Cancels a pending timer: 0 if cancelled, TR_ENOENT if it already fired,
 * was cancelled, or never existed. */
TR_EXTERN int tr_cancel_timer(tr_ref_t ref);

/* ------------------------------------------------------------------------ */
/* I/O                                                                      */
/* ------------------------------------------------------------------------ */

/* Blocking-style I/O over the scheduler's libuv loop: each call suspends
 * only the calling actor (all are actor-only unless stated). See doc/io.md.
 *
 * A handle — TCP listener or connection, UDP socket, open file — is named
 * by a tr_io_t that carries a generation like a pid: once closed, its id
 * never names another handle (UV_EBADF). A handle belongs to the actor that
 * opened it; only the owner may use it (UV_EPERM otherwise), and it is
 * closed when the owner exits for any reason. tr_io_give hands it over.
 *
 * timeout_ms: -1 waits forever; 0 only does what needs no waiting; > 0
 * fails with TR_ETIMEDOUT after that long. Errors are libuv's codes (e.g.
 * UV_ECONNREFUSED, UV_ECONNRESET, UV_EPIPE); the end of a stream is TR_EOF.
 * libuv never holds a pointer to the caller's memory: reads land in a
 * runtime buffer (at most 64 KiB read ahead per connection) and are copied
 * out when the caller resumes; written data is copied before libuv sees it.
 * Requests still in flight when their actor gives up or dies complete into
 * the runtime. Sockets are written with write(2): the first I/O call sets
 * SIGPIPE to SIG_IGN unless the process already chose a disposition. */

typedef uint64_t tr_io_t;
#define TR_IO_NONE ((tr_io_t)0)
#define TR_EOF UV_EOF /* orderly end of stream (not UV_ECONNRESET) */

/* Closes any handle at once (the runtime finishes in the background):
 * an owner blocked on it is woken and its call returns UV_ECANCELED;
 * queued writes are dropped (use
 * tr_tcp_shutdown first for a graceful close). Also callable outside actors
 * on the runtime's thread (e.g. from a tr_defer cleanup). */
TR_EXTERN int tr_io_close(tr_io_t h);
/* Makes pid (a live actor of the caller's runtime) the owner of h; h then
 * lives and dies with pid, and the caller can no longer use it. TR_ENOPROC
 * if pid is dead (h stays the caller's); TR_ENOTSUP if pid runs on another
 * scheduler (a handle lives on its scheduler's loop: spawn the new owner
 * with TR_PLACE_LOCAL). A child spawned by the caller owns
 * h when it first runs if given before the caller blocks; otherwise tell
 * the new owner by message. */
TR_EXTERN int tr_io_give(tr_io_t h, tr_pid_t pid);
/* Owner of h, or TR_PID_NONE if h is not open. Runtime thread only. */
TR_EXTERN tr_pid_t tr_io_owner(tr_io_t h);
/* Local address / peer address of a TCP or UDP handle; tr_io_port returns
 * the local port (> 0) or an error. */
TR_EXTERN int tr_io_sockname(tr_io_t h, struct sockaddr_storage *addr);
TR_EXTERN int tr_io_port(tr_io_t h);
TR_EXTERN int tr_io_peername(tr_io_t h, struct sockaddr_storage *addr);

/* Fills addr from a numeric IPv4 or IPv6 address (NULL: 0.0.0.0) and a
 * port. Any thread. */
TR_EXTERN int tr_ip_addr(const char *ip, int port, struct sockaddr_storage *addr);
/* The port of an AF_INET/AF_INET6 address. */
TR_EXTERN int tr_addr_port(const struct sockaddr_storage *addr);

/* -- TCP -- */

/* Listens on ip:port (numeric address, NULL = 0.0.0.0, port 0 = any free;
 * read it back with tr_io_port). backlog <= 0 means 511. */
TR_EXTERN int tr_tcp_listen(tr_io_t *srv, const char *ip, int port, int backlog);
/* Waits for and accepts one connection on srv; *conn is owned by the
 * caller. At most one accepted connection waits inside the runtime. */
TR_EXTERN int tr_tcp_accept(tr_io_t srv, tr_io_t *conn, int timeout_ms);
/* Connects to ip:port (numeric) or to addr. A refused connection is
 * UV_ECONNREFUSED; on any error no handle is left open. */
TR_EXTERN int tr_tcp_connect(tr_io_t *conn, const char *ip, int port,
                             int timeout_ms);
TR_EXTERN int tr_tcp_connect_addr(tr_io_t *conn, const struct sockaddr *addr,
                                  int timeout_ms);
/* Reads what is available, up to len (> 0) bytes, waiting for at least
 * one. Returns the count (never 0), TR_EOF once the peer closed its side
 * (again on every later call), UV_ECONNRESET, TR_ETIMEDOUT, ... */
TR_EXTERN int tr_tcp_read(tr_io_t h, void *buf, size_t len, int timeout_ms);
/* Reads exactly len bytes (timeout_ms bounds the whole call). Returns 0,
 * or the error that stopped it (TR_EOF if the stream ended early) with
 * the bytes already read in buf and their count in *got (may be NULL). */
TR_EXTERN int tr_tcp_read_exactly(tr_io_t h, void *buf, size_t len,
                                  size_t *got, int timeout_ms);
/* Arms one read whose result arrives in the owner's mailbox instead, so
 * that an actor can wait for socket data and messages at once: a USER
 * message ["tcp", h, <bin>] with what was read (up to 64 KiB),
 * ["tcp_closed", h] at the end of stream or ["tcp_error", h, code].
 * One message per call; tr_tcp_read is TR_EBUSY while one is armed. */
TR_EXTERN int tr_tcp_read_async(tr_io_t h);
/* Writes all len bytes. Returns 0 once libuv has taken them (written to the
 * socket, or copied into a request in flight), so a slow peer slows the
 * writer down; the runtime holds at most 256 KiB of it at a time. On
 * TR_ETIMEDOUT or an error an unknown prefix may have been sent. */
TR_EXTERN int tr_tcp_write(tr_io_t h, const void *buf, size_t len,
                           int timeout_ms);
/* Sends FIN after the queued writes and waits until that is done. */
TR_EXTERN int tr_tcp_shutdown(tr_io_t h, int timeout_ms);
/* Closes h with a TCP reset (SO_LINGER 0) instead of a FIN. */
TR_EXTERN int tr_tcp_close_reset(tr_io_t h);
TR_EXTERN int tr_tcp_nodelay(tr_io_t h, int on);

/* -- UDP -- */

/* Opens a UDP socket bound to ip:port (NULL/0: any address, any port). */
TR_EXTERN int tr_udp_open(tr_io_t *h, const char *ip, int port);
/* Sends one datagram to addr; returns 0 once libuv has sent it. */
TR_EXTERN int tr_udp_send(tr_io_t h, const void *buf, size_t len,
                          const struct sockaddr *addr, int timeout_ms);
/* Receives one datagram: returns its length (0 for an empty one) and the
 * sender in *from (may be NULL). A datagram longer than len is cut to len
 * bytes and TR_EMSGSIZE is returned. */
TR_EXTERN int tr_udp_recv(tr_io_t h, void *buf, size_t len,
                          struct sockaddr_storage *from, int timeout_ms);

/* -- Files (libuv threadpool) -- */

/* Opens path (flags and mode as for open(2)); *f is owned by the caller. */
TR_EXTERN int tr_fs_open(tr_io_t *f, const char *path, int flags, int mode);
/* Reads up to len bytes at offset (-1: the file position). Returns the
 * count, 0 at end of file. At most 256 KiB per call. */
TR_EXTERN int tr_fs_read(tr_io_t f, void *buf, size_t len, int64_t offset);
/* Writes all len bytes at offset (-1: the file position). Returns 0. */
TR_EXTERN int tr_fs_write(tr_io_t f, const void *buf, size_t len,
                          int64_t offset);
/* Closes f and returns close(2)'s result (f is closed either way). */
TR_EXTERN int tr_fs_close(tr_io_t f);
TR_EXTERN int tr_fs_stat(const char *path, uv_stat_t *st);
TR_EXTERN int tr_fs_fstat(tr_io_t f, uv_stat_t *st);
TR_EXTERN int tr_fs_unlink(const char *path);

/* -- Names -- */

/* Resolves node/service like getaddrinfo(3) on the threadpool. *res is the
 * caller's, to release with tr_freeaddrinfo. Errors are UV_EAI_* codes. */
TR_EXTERN int tr_getaddrinfo(const char *node, const char *service,
                             const struct addrinfo *hints,
                             struct addrinfo **res, int timeout_ms);
/* NULL is accepted. Any thread. */
TR_EXTERN void tr_freeaddrinfo(struct addrinfo *ai);

/* ------------------------------------------------------------------------ */
/* Supervisors                                                              */
/* ------------------------------------------------------------------------ */

/* OTP supervisors; doc/supervision.md sets the rules beside OTP's. A
 * supervisor is an actor that traps exits, links its children, restarts
 * them by strategy, and terminates them with OTP's protocol (monitor,
 * exit(shutdown), wait up to the shutdown time, then kill), in reverse start
 * order. More than `intensity` restarts within `period_ms` make it stop all
 * children and exit with `shutdown`, which escalates to its own supervisor.
 *
 * A child's start function is its actor body. It reports the outcome of its
 * initialisation with tr_sup_init_ack (proc_lib:init_ack): the supervisor
 * waits for that ack — or for the child's exit, which is an init failure —
 * before it starts the next child. Option structs carry `size` (0 means
 * "this header's size") and only grow at the end; output structs do not. */

typedef enum {
  TR_ONE_FOR_ONE = 0,   /* restart the child that exited */
  TR_ONE_FOR_ALL,       /* stop all others, restart all */
  TR_REST_FOR_ONE,      /* stop those started after it, restart them and it */
  TR_SIMPLE_ONE_FOR_ONE /* one template, children added by start_child */
} tr_sup_strategy_t;

typedef enum {
  TR_PERMANENT = 0, /* always restarted */
  TR_TRANSIENT,     /* restarted unless it exits normal or shutdown */
  TR_TEMPORARY      /* never restarted; its spec is dropped when it ends */
} tr_restart_t;

typedef enum { TR_WORKER = 0, TR_SUPERVISOR } tr_child_type_t;

/* tr_child_spec_t.shutdown: milliseconds (> 0), or one of these. DEFAULT
 * is 5000 ms for a worker and INFINITY for a supervisor. */
#define TR_SHUTDOWN_DEFAULT 0
#define TR_SHUTDOWN_BRUTAL_KILL (-1)
#define TR_SHUTDOWN_INFINITY (-2)

#define TR_SUP_ID_MAX 64 /* bytes of a child id, including the NUL */

enum {
  /* The child counts as started once spawned; it need not (but may) call
   * tr_sup_init_ack — like a start function that spawn_links and returns
   * {ok, Pid} at once. */
  TR_CHILD_NO_ACK = 1u << 0
};

/* A child specification. Arrays of specs are read with stride specs[0].size,
 * so a caller built against an older, smaller struct keeps working. */
typedef struct tr_child_spec {
  size_t size;              /* sizeof(tr_child_spec_t), or 0 for the same */
  char id[TR_SUP_ID_MAX];   /* non-empty, unique within the supervisor */
  tr_actor_fn start;        /* the child's body: start(arg) */
  void *arg;                /* passed through, never owned */
  tr_restart_t restart;
  int shutdown;             /* TR_SHUTDOWN_* or milliseconds */
  tr_child_type_t type;
  size_t stack_size;        /* 0: the runtime default */
  unsigned flags;           /* TR_CHILD_* */
  int placement;            /* TR_PLACE_* for the child (tr_spawn_opts_t);
                             * TR_PLACE_LOCAL: the supervisor's scheduler
                             * (e.g. for a child handed I/O handles) */
} tr_child_spec_t;

/* Zeroes spec, sets size, copies id (TR_EINVAL if NULL, empty or longer
 * than TR_SUP_ID_MAX - 1 bytes) and sets start and arg; the rest is OTP's
 * defaults: permanent, TR_SHUTDOWN_DEFAULT, worker. */
TR_EXTERN int tr_child_spec_init(tr_child_spec_t *spec, const char *id,
                                 tr_actor_fn start, void *arg);

/* Report events, for tr_sup_flags_t.report (OTP's supervisor reports and
 * progress reports). */
typedef enum {
  TR_SUP_CHILD_STARTED,   /* started by init, start_child or restart_child */
  TR_SUP_CHILD_EXITED,    /* exited on its own (child_terminated) */
  TR_SUP_CHILD_RESTARTED, /* started again after an exit */
  TR_SUP_CHILD_STOPPED,   /* terminated by the supervisor; reason: how */
  TR_SUP_START_ERROR,     /* a (re)start failed; reason: why */
  TR_SUP_SHUTDOWN_ERROR,  /* did not end with the expected reason (e.g.
                           * killed after its shutdown timeout) */
  TR_SUP_MAX_INTENSITY    /* too many restarts: the supervisor shuts down */
} tr_sup_event_kind_t;

typedef struct tr_sup_event {
  tr_sup_event_kind_t kind;
  tr_pid_t sup;              /* the reporting supervisor */
  const char *sup_name;      /* its registered name, or "" */
  const char *child_id;      /* "" for MAX_INTENSITY */
  tr_pid_t child;            /* the child's pid (old pid for EXITED) */
  const tr_reason_t *reason; /* EXITED, STOPPED, errors; NULL otherwise */
  uint64_t restarts;         /* the child's restart count so far */
} tr_sup_event_t;

/* Called inside the supervisor actor; must not block or receive. The event
 * and its strings live for the call only. */
typedef void (*tr_sup_report_fn)(void *arg, const tr_sup_event_t *ev);

/* Supervisor flags. Initialise with tr_sup_flags_init (OTP defaults). */
typedef struct tr_sup_flags {
  size_t size;                  /* sizeof(tr_sup_flags_t), or 0 */
  tr_sup_strategy_t strategy;   /* default one_for_one */
  unsigned intensity;           /* restarts allowed per period, default 1 */
  unsigned period_ms;           /* > 0, default 5000 */
  struct {
    unsigned min_ms;            /* 0 (default): restart at once, as OTP */
    unsigned max_ms;            /* cap, >= min_ms */
    double jitter;              /* 0..1: each delay is cut by up to this share */
  } backoff;                    /* delay before restart n: min_ms * 2^n */
  const char *name;             /* register the supervisor as this (copied) */
  tr_sup_report_fn report;      /* NULL: reports go to the runtime logger */
  void *report_arg;
} tr_sup_flags_t;

TR_EXTERN void tr_sup_flags_init(tr_sup_flags_t *flags);

#define TR_SUP_ERROR_MAX 192

/* Why a start failed (output; may be passed as NULL). */
typedef struct tr_sup_error {
  char id[TR_SUP_ID_MAX];  /* the child at fault, "" if none */
  int index;               /* its index in specs for a bad spec, else -1 */
  tr_reason_t reason;      /* start failure: the child's exit reason, or
                            * ERROR with the code it acked */
  char message[TR_SUP_ERROR_MAX]; /* one readable line */
} tr_sup_error_t;

/* Starts a supervisor with the given children (flags NULL: defaults).
 * Everything is validated first: a bad flag or spec (duplicate id, no
 * start function, out-of-range value, simple_one_for_one without exactly
 * one spec) is TR_EINVAL and nothing starts. The children then start one
 * by one in order, each acknowledging its init; if one fails, those
 * already started are stopped in reverse order and the call returns
 * TR_ESTART with the child's id and reason in *err. Specs are copied.
 * Inside an actor (rt may be NULL) the supervisor is monitored, not linked;
 * its parent is itself, so only tr_sup_stop, `kill` or an exit signal from
 * the runtime (tr_runtime_stop) end it. Outside actors rt must be a
 * standalone runtime that is not running: the call runs it until the
 * supervisor has started (TR_ENOTSUP for an attached runtime, TR_EBUSY
 * while running); the supervisor is then top-level, so tr_runtime_stop
 * shuts the tree down in order. */
TR_EXTERN int tr_sup_start(tr_runtime_t *rt, const tr_sup_flags_t *flags,
                           const tr_child_spec_t *specs, size_t n,
                           tr_pid_t *pid, tr_sup_error_t *err);
/* Actor-only. As tr_sup_start, but linked to the caller, which becomes its
 * parent: an exit signal from the caller (its exit, or tr_exit_pid) stops
 * the tree and the supervisor exits with the same reason. If the start
 * fails the supervisor exits with `shutdown`, which kills a caller that
 * does not trap exits (as supervisor:start_link); a trapping caller gets
 * TR_ESTART and no EXIT message. */
TR_EXTERN int tr_sup_start_link(const tr_sup_flags_t *flags,
                                const tr_child_spec_t *specs, size_t n,
                                tr_pid_t *pid, tr_sup_error_t *err);

/* Actor-only. Turns the calling actor into a supervisor: the way to write
 * a supervisor child (its parent is the supervisor that started it). Acks
 * its init once its children have started, then supervises until it ends;
 * it never returns in an actor: the actor exits with the supervisor's
 * reason. Failures are acked as errors to the waiting parent; the actor
 * then exits with reason error (TR_EINVAL and the message) for invalid
 * arguments, or `shutdown` (the failed child in the text) when a child
 * failed to start. */
TR_EXTERN int tr_sup_enter(const tr_sup_flags_t *flags,
                           const tr_child_spec_t *specs, size_t n);

/* A supervisor described by data, for tr_sup_main. */
typedef struct tr_sup_def {
  const tr_sup_flags_t *flags;
  const tr_child_spec_t *specs;
  size_t n;
} tr_sup_def_t;

/* A ready-made start function: tr_sup_enter(def->flags, def->specs,
 * def->n). def (a const tr_sup_def_t *) must stay valid as long as the
 * child may be restarted — static data, typically. */
TR_EXTERN void tr_sup_main(void *def);

enum { TR_INIT_OK = 0, TR_INIT_IGNORE = 1 };

/* Actor-only. Reports the caller's init to the supervisor that started it:
 * TR_INIT_OK (returns 0 and the child carries on), TR_INIT_IGNORE (the
 * supervisor keeps the spec without a pid — drops it if temporary — and
 * the caller exits normal), or a negative error code (the start fails with
 * TR_ESTART and that code; the caller exits with reason error). Only the
 * first ack counts; without a supervisor waiting, OK is a no-op.
 * TR_EINVAL for a positive status other than IGNORE. */
TR_EXTERN int tr_sup_init_ack(int status);

/* ---- run-time API: actor-only calls to a running supervisor ------------
 * Each is a tr_call to the supervisor, answered in order with its other
 * work. TR_EDOWN if the supervisor is dead or exits during the call. */

/* Stops the tree (children in reverse order) and ends the supervisor with
 * reason normal; returns once it is gone. */
TR_EXTERN int tr_sup_stop(tr_pid_t sup);

/* Adds and starts a child (not for simple_one_for_one: TR_EINVAL). TR_EINVAL
 * for a bad spec, TR_EEXIST if a child with that id exists but is not
 * running (already_present), TR_EBUSY if it is running (already_started;
 * *pid gets its pid), TR_ESTART if it failed to start (the spec is not
 * kept). A child that acks ignore: 0 with *pid = TR_PID_NONE, spec kept
 * unless temporary. pid and err may be NULL. */
TR_EXTERN int tr_sup_start_child(tr_pid_t sup, const tr_child_spec_t *spec,
                                 tr_pid_t *pid, tr_sup_error_t *err);
/* simple_one_for_one: starts a child from the template, running
 * template.start(arg) — arg replaces the template's arg for this child and
 * its restarts. TR_ENOTSUP for other strategies. */
TR_EXTERN int tr_sup_start_child_arg(tr_pid_t sup, void *arg, tr_pid_t *pid,
                                     tr_sup_error_t *err);
/* Stops the child (shutdown protocol) and keeps its spec, except for a
 * temporary child. 0 if it was not running. TR_ENOENT: no such id;
 * TR_ENOTSUP under simple_one_for_one (use the pid variant). */
TR_EXTERN int tr_sup_terminate_child(tr_pid_t sup, const char *id);
/* simple_one_for_one: stops that child and drops it. TR_ENOENT if pid is
 * not one of its children (also for other strategies). */
TR_EXTERN int tr_sup_terminate_child_pid(tr_pid_t sup, tr_pid_t child);
/* Starts a child whose spec is kept but which is not running. TR_EBUSY if
 * running, UV_EAGAIN if a restart is pending (restarting), TR_ENOENT,
 * TR_ENOTSUP (simple_one_for_one), TR_ESTART (with *err). */
TR_EXTERN int tr_sup_restart_child(tr_pid_t sup, const char *id,
                                   tr_pid_t *pid, tr_sup_error_t *err);
/* Forgets the spec of a child that is not running. TR_EBUSY if running,
 * UV_EAGAIN if restarting, TR_ENOENT, TR_ENOTSUP (simple_one_for_one). */
TR_EXTERN int tr_sup_delete_child(tr_pid_t sup, const char *id);

typedef enum {
  TR_CHILD_RUNNING = 0,
  TR_CHILD_RESTARTING, /* a restart is pending (failed, or backing off) */
  TR_CHILD_STOPPED     /* spec kept, no process (OTP: undefined) */
} tr_child_state_t;

/* One child, as which_children and child_info report it. */
typedef struct tr_sup_child_info {
  char id[TR_SUP_ID_MAX];  /* simple_one_for_one: the template's id */
  tr_pid_t pid;            /* TR_PID_NONE unless running */
  tr_child_state_t state;
  tr_child_type_t type;
  tr_restart_t restart;
  uint64_t restarts;       /* successful restarts of this child */
  uint64_t failed_starts;  /* restart attempts that failed */
  uint64_t exits;          /* exits on its own (not stopped by us) */
  tr_reason_t last_exit;   /* the latest of those (kind normal if none);
                            * crashes carry the fault address and PC */
} tr_sup_child_info_t;

/* Copies up to cap children, in start order, into buf (the caller's) and
 * sets *count to how many there are (so a short buf can be grown). */
TR_EXTERN int tr_sup_which_children(tr_pid_t sup, tr_sup_child_info_t *buf,
                                    size_t cap, size_t *count);
/* One child by id (not simple_one_for_one: TR_ENOTSUP). TR_ENOENT. */
TR_EXTERN int tr_sup_child_info(tr_pid_t sup, const char *id,
                                tr_sup_child_info_t *info);

typedef struct tr_sup_counts {
  size_t specs;       /* children, running or not */
  size_t active;      /* running */
  size_t supervisors; /* of type supervisor, running or not */
  size_t workers;     /* of type worker, running or not */
  uint64_t restarts;  /* beyond OTP: restarts made since the start */
} tr_sup_counts_t;

TR_EXTERN int tr_sup_count_children(tr_pid_t sup, tr_sup_counts_t *counts);
/* Copies the spec of child id (shutdown resolved, e.g. 5000 or INFINITY).
 * Under simple_one_for_one the template's id gives the template. */
TR_EXTERN int tr_sup_get_childspec(tr_pid_t sup, const char *id,
                                   tr_child_spec_t *spec);

#ifdef __cplusplus
}
#endif
#endif /* TROUPE_H */
