/*
 * Portable context switch on makecontext/swapcontext (see context.h),
 * built with --with-context=ucontext (TR_CONTEXT_UCONTEXT).
 *
 * Slower than the assembly: swapcontext also saves and restores the signal
 * mask, which costs an rt_sigprocmask syscall per switch. FP control state
 * matches the assembly: glibc's getcontext/swapcontext save and restore the
 * x87 environment and MXCSR on x86-64 (fnstenv/stmxcsr, fldenv/ldmxcsr) and
 * FPCR/FPSR on aarch64, and tr__ctx_make captures them from the caller with
 * getcontext, so a new context starts with the caller's FP control state.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#ifndef TR_CONTEXT_UCONTEXT
#define TR_CONTEXT_UCONTEXT 1
#endif

#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

#include "context.h"

/* makecontext passes only int arguments, so fn and arg travel as 32-bit
 * halves and are put back together here (correct on 32- and 64-bit). */
static void start(unsigned fn_hi, unsigned fn_lo, unsigned arg_hi,
                  unsigned arg_lo) {
  uint64_t f = ((uint64_t)fn_hi << 32) | fn_lo;
  uint64_t a = ((uint64_t)arg_hi << 32) | arg_lo;
  void (*fn)(void *) = (void (*)(void *))(uintptr_t)f;

  fn((void *)(uintptr_t)a);
  abort(); /* fn must never return (uc_link is NULL anyway) */
}

void tr__ctx_make(tr__ctx_t *ctx, void *stack_lo, size_t size,
                  void (*fn)(void *), void *arg) {
  uint64_t f = (uint64_t)(uintptr_t)fn;
  uint64_t a = (uint64_t)(uintptr_t)arg;

  /* getcontext only fails for invalid pointers; it also captures the
   * caller's signal mask and FP control state for the new context. */
  if (getcontext(&ctx->uc) != 0) abort();
  ctx->uc.uc_stack.ss_sp = stack_lo;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_stack.ss_flags = 0;
  ctx->uc.uc_link = NULL;
  makecontext(&ctx->uc, (void (*)(void))start, 4, (unsigned)(f >> 32),
              (unsigned)f, (unsigned)(a >> 32), (unsigned)a);
}

void tr__ctx_switch(tr__ctx_t *from, tr__ctx_t *to) {
  if (swapcontext(&from->uc, &to->uc) != 0) abort();
}
