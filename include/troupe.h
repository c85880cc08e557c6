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
  XX(EDOWN, (TR__ERRNO_BASE - 9), "the called process exited")

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
  unsigned schedulers;      /* scheduler threads; 1 (more is not yet built) */
  size_t stack_size;        /* default usable stack per actor, bytes */
  size_t stack_cache;       /* freed stacks kept warm before MADV_DONTNEED */
  unsigned stop_timeout_ms; /* grace period of tr_runtime_stop before kill */
  tr_log_fn logger;         /* NULL: crash reports go nowhere */
  void *logger_arg;
  int crash_reports;        /* nonzero: one log line per crashed actor */
  int catch_faults;         /* nonzero (default): install fault handlers */
} tr_config_t;

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

/* Standalone only: runs until every actor has exited (returns 0), until
 * tr_runtime_stop() finished (0), or until every live actor is blocked with
 * nothing that could wake it (TR_EDEADLK, actors left alive). Returns
 * TR_ENOTSUP for an attached runtime, TR_EBUSY if already running. */
TR_EXTERN int tr_runtime_run(tr_runtime_t *rt);

/* Asks for an orderly stop: actors spawned from outside any actor get exit
 * signal `shutdown`, youngest first; after stop_timeout_ms whatever is left
 * is killed. Returns at once; the loop carries the stop out. Idempotent. */
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

/* ------------------------------------------------------------------------ */
/* Actors                                                                   */
/* ------------------------------------------------------------------------ */

enum {
  TR_SPAWN_LINK = 1u << 0,    /* link spawner and child atomically */
  TR_SPAWN_MONITOR = 1u << 1, /* spawner monitors the child; ref out */
};

typedef struct tr_spawn_opts {
  size_t size;           /* sizeof(tr_spawn_opts_t) */
  size_t stack_size;     /* 0: the runtime default */
  const char *name;      /* register under this name (copied), or NULL */
  unsigned flags;        /* TR_SPAWN_* */
  tr_ref_t *monitor_ref; /* with TR_SPAWN_MONITOR: receives the ref */
} tr_spawn_opts_t;

TR_EXTERN void tr_spawn_opts_init(tr_spawn_opts_t *opts);

/* Starts fn(arg) as a new actor. rt may be NULL inside an actor (the
 * caller's runtime). arg is passed through, never owned. The child first
 * runs when the spawner blocks or yields. *pid (may be NULL) gets its pid.
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
 *   p tr_pid_t (msgpack ext type TR_EXT_PID)
 * An unknown format character is TR_EINVAL and nothing is sent. */
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
TR_EXTERN tr_msg_kind_t tr_msg_kind(const tr_msg_t *msg);
/* Sender (USER, CALL), exiting/down pid (EXIT, DOWN), NONE otherwise. */
TR_EXTERN tr_pid_t tr_msg_from(const tr_msg_t *msg);
/* Monitor ref (DOWN), timer ref (TIMER), call ref (CALL); 0 otherwise. */
TR_EXTERN tr_ref_t tr_msg_ref(const tr_msg_t *msg);
/* The raw msgpack body (never NULL for a valid msg). */
TR_EXTERN const void *tr_msg_data(const tr_msg_t *msg, size_t *len);
/* The decoded body, valid until tr_msg_free. NULL only if out of memory.
 * EXIT and DOWN bodies are ["EXIT", pid, "reason"] / ["DOWN", ref, pid,
 * "reason"]; tr_msg_reason gives the full reason. */
TR_EXTERN const msgpack_object *tr_msg_obj(tr_msg_t *msg);
/* EXIT and DOWN: copies the reason. TR_EINVAL for other kinds. */
TR_EXTERN int tr_msg_reason(const tr_msg_t *msg, tr_reason_t *reason);
/* Nonzero if the body is an array whose first element is the string tag. */
TR_EXTERN int tr_msg_is_tag(const tr_msg_t *msg, const char *tag);

/* Actor-only. Number of messages waiting in the caller's mailbox. */
TR_EXTERN size_t tr_mailbox_len(void);

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

#ifdef __cplusplus
}
#endif
#endif /* TROUPE_H */
