/*
 * Crash capture: synchronous fault signals raised by actor code become exit
 * reasons (see doc/crash-handling.md for what is caught and what is not).
 */
#ifndef TR_FAULT_H
#define TR_FAULT_H

#include <stdint.h>

/* Why a fault was judged not to be the current actor's (diagnostics). */
typedef enum {
  TR__FAULT_OURS = 0,
  TR__FAULT_NO_ACTOR,    /* no actor running on this thread */
  TR__FAULT_ASYNC,       /* sent by kill()/sigqueue, not raised by a fault */
  TR__FAULT_RUNTIME,     /* inside troupe's own code */
  TR__FAULT_FOREIGN_SP,  /* the stack pointer is not on the actor's stack */
  TR__FAULT_NEIGHBOUR,   /* the address is in another actor's stack slot */
  TR__FAULT_LOCKED_TEXT  /* PC in libc/ld.so/libuv text that may hold locks */
} tr__fault_verdict_t;

/* Classifies pc: nonzero if it lies in text where a fault must be fatal
 * (libc outside the allowlisted pure string/memory functions, the dynamic
 * linker, libuv, msgpack, sanitizer runtimes, libtroupe itself). */
int tr__fault_pc_fatal(uintptr_t pc);

#endif
