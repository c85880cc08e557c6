/*
 * Machine context switch between coroutine stacks.
 *
 * Two implementations share this interface: hand-written assembly for
 * x86-64 SysV and aarch64 (context_x86_64.S, context_aarch64.S), and a
 * ucontext fallback (context_ucontext.c) selected by
 * --with-context=ucontext, which defines TR_CONTEXT_UCONTEXT.
 */
#ifndef TR_CONTEXT_H
#define TR_CONTEXT_H

#include <stddef.h>

#ifdef TR_CONTEXT_UCONTEXT
#include <ucontext.h>
#endif

typedef struct tr__ctx {
#ifdef TR_CONTEXT_UCONTEXT
  ucontext_t uc;
#else
  void *sp; /* saved stack pointer; everything else lives on the stack */
#endif
} tr__ctx_t;

/* Prepares ctx so that the first tr__ctx_switch() into it calls fn(arg) on
 * the stack [stack_lo, stack_lo + size). fn must never return: it ends by
 * switching away for good. The floating-point control state (MXCSR and x87
 * control word / FPCR) of the new context is copied from the caller. */
void tr__ctx_make(tr__ctx_t *ctx, void *stack_lo, size_t size,
                  void (*fn)(void *), void *arg);

/* Saves the callee-saved registers, stack pointer and FP control state into
 * from and resumes to. Returns when something switches back to from. */
void tr__ctx_switch(tr__ctx_t *from, tr__ctx_t *to);

#endif
