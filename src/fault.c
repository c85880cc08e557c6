/*
 * Crash capture (the design card: sigaltstack + siglongjmp to the actor's
 * top frame).
 *
 * Handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT (and SIGTRAP on
 * aarch64) run on a per-scheduler-thread alternate stack. The handler only
 * decides and records: is an actor running on this thread, on its own
 * stack, outside runtime code, with a PC outside text that may hold locks,
 * and was the signal raised by the fault itself (si_code > 0, or an ABRT
 * the thread raised itself)? If so it records the reason and siglongjmps to
 * the sigsetjmp(env, 0) in the actor's top frame (actors/actor.c). Anything
 * else is not ours: it goes to the previous handler, or the default action
 * kills the process with the original signal.
 */
#include "internal.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "fault.h"

#if defined(__has_include)
#if __has_include(<gnu/lib-names.h>)
#include <gnu/lib-names.h> /* LIBC_SO */
#endif
#endif
#ifndef LIBC_SO
#define LIBC_SO "libc.so.6"
#endif

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

/* ---- signals we handle -------------------------------------------------- */

static const int fault_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
#if defined(__aarch64__)
                                 SIGTRAP
#endif
};
#define NSIGS (sizeof(fault_sigs) / sizeof(fault_sigs[0]))

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int install_count;
static struct sigaction prev_action[NSIG];

/* ---- text ranges: where a fault is never recoverable ------------------- */

typedef struct {
  uintptr_t lo, hi;
} range_t;

#define MAX_RANGES 128
static range_t fatal_text[MAX_RANGES];
static int n_fatal_text;
static range_t pure_text[MAX_RANGES];
static int n_pure_text;

static int in_ranges(const range_t *r, int n, uintptr_t pc) {
  for (int i = 0; i < n; i++)
    if (pc >= r[i].lo && pc < r[i].hi) return 1;
  return 0;
}

/* Libraries whose code may hold locks or is the runtime itself. */
static int is_fatal_lib(const char *name) {
  static const char *const libs[] = {"/libc.so", "/ld-linux", "/libuv.so",
                                     "/libmsgpackc.so", "/libtroupe.so",
                                     "/libasan.so", "/libubsan.so",
                                     "/libtsan.so", "/libgcc_s.so",
                                     "/libpthread.so"};
  for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++)
    if (strstr(name, libs[i]) != NULL) return 1;
  return 0;
}

static int collect_text(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  (void)data;
  if (info->dlpi_name == NULL || !is_fatal_lib(info->dlpi_name)) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    if (n_fatal_text == MAX_RANGES) return 1;
    fatal_text[n_fatal_text].lo = info->dlpi_addr + ph->p_vaddr;
    fatal_text[n_fatal_text].hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    n_fatal_text++;
  }
  return 0;
}

/* libgcc's FDE lookup gives the start of the function containing a PC; used
 * at start-up only (it takes locks), to measure the allowlisted functions. */
struct dwarf_eh_bases {
  void *tbase;
  void *dbase;
  void *func;
};
extern const void *_Unwind_Find_FDE(void *pc, struct dwarf_eh_bases *bases);

static void *fde_func(uintptr_t pc) {
  struct dwarf_eh_bases b;
  memset(&b, 0, sizeof(b));
  if (_Unwind_Find_FDE((void *)pc, &b) == NULL) return NULL;
  return b.func;
}

/* Records the exact text of one function as recoverable (once). */
static void add_pure(void *fn) {
  void *start;
  uintptr_t end;
  if (fn == NULL || n_pure_text == MAX_RANGES) return;
  if ((start = fde_func((uintptr_t)fn)) == NULL) return;
  for (int i = 0; i < n_pure_text; i++)
    if (pure_text[i].lo == (uintptr_t)start) return;
  for (end = (uintptr_t)fn; end < (uintptr_t)fn + 65536; end += 16)
    if (fde_func(end) != start) break;
  pure_text[n_pure_text].lo = (uintptr_t)start;
  pure_text[n_pure_text].hi = end;
  n_pure_text++;
}

/* libc functions that take no locks and keep no state: a fault inside them
 * (strlen(NULL) called by actor code) is the caller's fault and safe to
 * recover from. Everything else in libc (malloc, stdio, ...) is fatal.
 * Each name is looked up twice: the global definition (which may be a
 * sanitizer's interceptor) and libc's own (the IFUNC-selected variant the
 * interceptor calls), so that both are covered with or without ASan. */
static void collect_pure(void) {
  static const char *const pure[] = {
      "strlen", "strnlen", "strcmp", "strncmp", "strcasecmp", "strncasecmp",
      "strcpy", "strncpy", "stpcpy", "stpncpy", "strcat", "strncat",
      "strchr", "strrchr", "strchrnul", "strstr", "strspn", "strcspn",
      "strpbrk", "memcpy", "memmove", "memset", "memcmp", "memchr",
      "memrchr", "rawmemchr", "bcmp", "wcslen", "wcscmp", "wmemset",
      "__memcpy_chk", "__memmove_chk", "__memset_chk", "__strcpy_chk"};
  void *libc = dlopen(LIBC_SO, RTLD_LAZY | RTLD_NOLOAD);
  for (size_t i = 0; i < sizeof(pure) / sizeof(pure[0]); i++) {
    add_pure(dlsym(RTLD_DEFAULT, pure[i]));
    if (libc != NULL) add_pure(dlsym(libc, pure[i]));
  }
  if (libc != NULL) dlclose(libc);
}

int tr__fault_pc_fatal(uintptr_t pc) {
  return in_ranges(fatal_text, n_fatal_text, pc) &&
         !in_ranges(pure_text, n_pure_text, pc);
}

/* ---- async-signal-safe diagnostics -------------------------------------- */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s) {
  while (*s && at + 1 < cap) buf[at++] = *s++;
  return at;
}

static size_t put_hex(char *buf, size_t at, size_t cap, uintptr_t v) {
  char tmp[2 + 2 * sizeof(v)];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  at = put_str(buf, at, cap, "0x");
  while (n > 0 && at + 1 < cap) buf[at++] = tmp[--n];
  return at;
}

static const char *verdict_text(tr__fault_verdict_t v) {
  switch (v) {
  case TR__FAULT_NO_ACTOR: return "outside any actor";
  case TR__FAULT_ASYNC: return "sent by another process or kill()";
  case TR__FAULT_RUNTIME: return "inside troupe runtime code";
  case TR__FAULT_FOREIGN_SP: return "not on the actor's stack";
  case TR__FAULT_NEIGHBOUR: return "in another actor's stack slot";
  case TR__FAULT_LOCKED_TEXT: return "in library code that may hold locks";
  default: return "";
  }
}

static void fatal_note(int sig, const siginfo_t *info, uintptr_t pc,
                       tr__fault_verdict_t v) {
  char buf[256];
  size_t n = put_str(buf, 0, sizeof(buf), "troupe: fatal signal ");
  n = put_str(buf, n, sizeof(buf), sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
  n = put_str(buf, n, sizeof(buf), " addr=");
  n = put_hex(buf, n, sizeof(buf), (uintptr_t)info->si_addr);
  n = put_str(buf, n, sizeof(buf), " pc=");
  n = put_hex(buf, n, sizeof(buf), pc);
  n = put_str(buf, n, sizeof(buf), ": ");
  n = put_str(buf, n, sizeof(buf), verdict_text(v));
  n = put_str(buf, n, sizeof(buf), "; not recoverable\n");
  if (write(STDERR_FILENO, buf, n) < 0) { /* nothing more we can do */
  }
}

/* Hands the signal on: to the previous handler, or to the default action
 * with the original signal (core dump where the system allows). */
static void chain(int sig, siginfo_t *info, void *uc) {
  const struct sigaction *p = &prev_action[sig];
  if ((p->sa_flags & SA_SIGINFO) && p->sa_sigaction != NULL) {
    p->sa_sigaction(sig, info, uc);
    return;
  }
  if (!(p->sa_flags & SA_SIGINFO) && p->sa_handler != SIG_DFL &&
      p->sa_handler != SIG_IGN) {
    p->sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
  /* A fault re-executes and kills; a raised or sent signal is re-raised
   * (it is blocked in here and fires when the handler returns). */
  if (info->si_code <= 0 || sig == SIGABRT || sig == SIGTRAP) raise(sig);
}

/* ---- the handler -------------------------------------------------------- */

static void context_regs(const void *ucv, uintptr_t *pc, uintptr_t *sp,
                         uintptr_t *fp) {
  const ucontext_t *uc = ucv;
#if defined(__x86_64__)
  *pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  *sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
  *fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
  *pc = (uintptr_t)uc->uc_mcontext.pc;
  *sp = (uintptr_t)uc->uc_mcontext.sp;
  *fp = (uintptr_t)uc->uc_mcontext.regs[29];
#else
  *pc = *sp = *fp = 0;
#endif
}

static tr_reason_kind_t kind_of(int sig) {
  switch (sig) {
  case SIGSEGV: return TR_REASON_SEGV;
  case SIGBUS: return TR_REASON_BUS;
  case SIGFPE: return TR_REASON_FPE;
  case SIGILL: return TR_REASON_ILL;
  case SIGABRT: return TR_REASON_ABORT;
  default: return TR_REASON_TRAP;
  }
}

static tr__fault_verdict_t judge(int sig, const siginfo_t *info,
                                 const tr__actor_t *a, uintptr_t pc,
                                 uintptr_t sp) {
  tr__sched_t *s;
  if (a == NULL || a->fault_env == NULL) return TR__FAULT_NO_ACTOR;
  s = a->s;
  if (sig == SIGABRT) {
    if (info->si_code != SI_TKILL || info->si_pid != getpid())
      return TR__FAULT_ASYNC;
  } else if (info->si_code <= 0) {
    return TR__FAULT_ASYNC;
  }
  if (a->in_runtime) return TR__FAULT_RUNTIME;
  if (!tr__stack_in_slot(&a->stack, sp)) return TR__FAULT_FOREIGN_SP;
  if ((sig == SIGSEGV || sig == SIGBUS) &&
      !tr__stack_in_slot(&a->stack, (uintptr_t)info->si_addr) &&
      tr__stack_pool_contains(s->stacks, (uintptr_t)info->si_addr))
    return TR__FAULT_NEIGHBOUR;
  if (sig != SIGABRT && tr__fault_pc_fatal(pc)) return TR__FAULT_LOCKED_TEXT;
  return TR__FAULT_OURS;
}

/* Follows the frame-pointer chain while it stays on the actor's stack. */
static void record_backtrace(const tr__actor_t *a, tr__exit_t *e, uintptr_t fp) {
  uintptr_t lo = (uintptr_t)a->stack.lo, hi = lo + a->stack.size;
  size_t n = 0;
  while (n + 1 < sizeof(e->bt) / sizeof(e->bt[0]) && fp >= lo &&
         fp + 2 * sizeof(uintptr_t) <= hi && (fp & (sizeof(uintptr_t) - 1)) == 0) {
    const uintptr_t *frame = (const uintptr_t *)fp;
    if (frame[1] == 0) break;
    e->bt[n++] = frame[1];
    if (frame[0] <= fp) break;
    fp = frame[0];
  }
  e->bt[n] = 0;
}

/* Fills the scheduler's exit record (no allocation in a signal handler);
 * back in its top frame the actor takes it (tr__actor_exit_faulted). */
static void record(tr__actor_t *a, int sig, const siginfo_t *info,
                   uintptr_t pc, uintptr_t fp) {
  tr__exit_t *e = &a->s->exit_rec;
  tr_reason_t *r = &e->reason;
  uintptr_t addr = (uintptr_t)info->si_addr;
  memset(r, 0, sizeof(*r));
  r->kind = kind_of(sig);
  if ((sig == SIGSEGV || sig == SIGBUS) && tr__stack_in_guard(&a->stack, addr))
    r->kind = TR_REASON_STACK_OVERFLOW;
  r->code = info->si_code;
  r->addr = sig == SIGABRT ? 0 : addr;
  r->pc = pc;
  record_backtrace(a, e, fp);
}

static void fault_handler(int sig, siginfo_t *info, void *uc) {
  int saved_errno = errno;
  tr__sched_t *s = tr__tls_sched;
  tr__actor_t *a = s != NULL ? s->current : NULL;
  uintptr_t pc, sp, fp;
  tr__fault_verdict_t v;
  context_regs(uc, &pc, &sp, &fp);
  v = judge(sig, info, a, pc, sp);
  if (v == TR__FAULT_OURS) {
    record(a, sig, info, pc, fp);
    siglongjmp(*a->fault_env, 1);
  }
  if (v != TR__FAULT_ASYNC) fatal_note(sig, info, pc, v);
  errno = saved_errno;
  chain(sig, info, uc);
}

/* ---- installation ------------------------------------------------------- */

static int install_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = fault_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigfillset(&sa.sa_mask);
  for (size_t i = 0; i < NSIGS; i++) {
    if (sigaction(fault_sigs[i], &sa, &prev_action[fault_sigs[i]]) != 0)
      return -errno;
  }
  return 0;
}

static void restore_handlers(void) {
  for (size_t i = 0; i < NSIGS; i++)
    sigaction(fault_sigs[i], &prev_action[fault_sigs[i]], NULL);
}

/* Size of the alternate stack: what the kernel says signal delivery needs
 * (AT_MINSIGSTKSZ grows with AVX-512 state), times four, with a floor. */
static size_t altstack_size(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t need = (size_t)getauxval(AT_MINSIGSTKSZ);
  size_t sz = need * 4;
  if (sz < 64 * 1024) sz = 64 * 1024;
  return (sz + page - 1) & ~(page - 1);
}

/* Maps [guard page][altstack] and makes it this thread's sigaltstack. */
static int altstack_init(tr__sched_t *s) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), sz = altstack_size();
  stack_t ss;
  char *mem = mmap(NULL, sz + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return TR_ENOMEM;
  if (mprotect(mem, page, PROT_NONE) != 0) {
    munmap(mem, sz + page);
    return TR_ENOMEM;
  }
  ss.ss_sp = mem + page;
  ss.ss_size = sz;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, &s->prev_altstack) != 0) {
    munmap(mem, sz + page);
    return -errno;
  }
  s->altstack = mem;
  s->altstack_size = sz + page;
  return 0;
}

/* The mask actors run with: the thread's mask plus every asynchronous
 * signal, so no signal handler ever runs on an actor's stack. Fault
 * signals stay deliverable. */
static void actor_mask_init(tr__sched_t *s) {
  pthread_sigmask(SIG_SETMASK, NULL, &s->loop_mask);
  sigfillset(&s->sigmask);
  for (size_t i = 0; i < NSIGS; i++) sigdelset(&s->sigmask, fault_sigs[i]);
  sigdelset(&s->sigmask, SIGTRAP);
  sigdelset(&s->sigmask, SIGSYS);
}

int tr__fault_init(tr__sched_t *s, int install) {
  int err = 0;
  actor_mask_init(s);
  if (!install) return 0;
  pthread_mutex_lock(&install_lock);
  if (install_count == 0) {
    dl_iterate_phdr(collect_text, NULL);
    collect_pure();
    err = install_handlers();
  }
  if (err == 0) install_count++;
  pthread_mutex_unlock(&install_lock);
  if (err != 0) return err;
  if ((err = altstack_init(s)) != 0) tr__fault_fini(s);
  s->faults_installed = 1;
  return err;
}

void tr__fault_fini(tr__sched_t *s) {
  if (s->altstack != NULL) {
    sigaltstack(&s->prev_altstack, NULL);
    munmap(s->altstack, s->altstack_size);
    s->altstack = NULL;
  }
  if (!s->faults_installed) return;
  s->faults_installed = 0;
  pthread_mutex_lock(&install_lock);
  if (--install_count == 0) restore_handlers();
  pthread_mutex_unlock(&install_lock);
}

/* ---- crash report ------------------------------------------------------- */

static size_t symbolize(char *buf, size_t cap, uintptr_t pc) {
  Dl_info di;
  if (dladdr((void *)pc, &di) && di.dli_sname != NULL)
    return (size_t)snprintf(buf, cap, "%s+%#lx", di.dli_sname,
                            (unsigned long)(pc - (uintptr_t)di.dli_saddr));
  if (dladdr((void *)pc, &di) && di.dli_fname != NULL)
    return (size_t)snprintf(buf, cap, "%s+%#lx", di.dli_fname,
                            (unsigned long)(pc - (uintptr_t)di.dli_fbase));
  return (size_t)snprintf(buf, cap, "%#lx", (unsigned long)pc);
}

/* One structured line per crashed actor, through the configured logger. */
void tr__crash_report(tr__sched_t *s, tr__actor_t *a) {
  char sym[128], bt[512], name[TR_NAME_MAX];
  const tr_reason_t *r = tr__actor_reason(a);
  const uintptr_t *frames = a->exit != NULL ? a->exit->bt : NULL;
  size_t n = 0;
  if (!s->rt->cfg.crash_reports || s->rt->cfg.logger == NULL) return;
  tr__registry_name_of(s->rt, a->pid, name, sizeof(name));
  symbolize(sym, sizeof(sym), r->pc);
  bt[0] = 0;
  for (int i = 0; frames != NULL && frames[i] != 0 && n + 1 < sizeof(bt); i++) {
    if (i) n += (size_t)snprintf(bt + n, sizeof(bt) - n, " ");
    if (n < sizeof(bt)) n += symbolize(bt + n, sizeof(bt) - n, frames[i]);
  }
  tr__log(s, TR_LOG_ERROR,
          "crash pid=%#llx name=%s reason=%s addr=%#lx pc=%#lx at=%s bt=[%s]",
          (unsigned long long)a->pid, name[0] ? name : "-",
          tr_reason_name(r->kind), (unsigned long)r->addr,
          (unsigned long)r->pc, sym, bt);
}
