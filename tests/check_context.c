/* Check suite for the machine context switch (src/context_*.{S,c}). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <execinfo.h>
#include <fenv.h>
#include <stdalign.h>
#include <stdint.h>
#include <sys/mman.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "context.h"
#include "testutil.h"

#define STACK_SIZE ((size_t)256 * 1024)
#define BIG_STACK ((size_t)8 * 1024 * 1024)

/* ---- helpers ------------------------------------------------------------ */

typedef struct tstack {
  char *map, *lo;
  size_t len, size;
  unsigned vg_id; /* valgrind builds: the registered stack */
} tstack_t;

/* A stack with one PROT_NONE page below it, so overflow faults loudly. */
static tstack_t tstack_new(size_t size) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  tstack_t s;

  s.len = size + pg;
  s.map = mmap(NULL, s.len, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ck_assert(s.map != MAP_FAILED);
  ck_assert_int_eq(mprotect(s.map, pg, PROT_NONE), 0);
  s.lo = s.map + pg;
  s.size = size;
#ifdef TR_VALGRIND
  s.vg_id = VALGRIND_STACK_REGISTER(s.lo, s.lo + s.size);
#endif
  return s;
}

static void tstack_free(tstack_t *s) {
#ifdef TR_VALGRIND
  VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
  munmap(s->map, s->len);
}

static tr__ctx_t main_ctx;
static tr__ctx_t co_ctx;

/* Ends a coroutine body: hands control back to main for good. */
static void park(tr__ctx_t *self) {
  for (;;) tr__ctx_switch(self, &main_ctx);
}

/* ---- switching and arguments -------------------------------------------- */

static long pp_count;

static void pp_fn(void *arg) {
  long *count = arg;

  for (;;) {
    ++*count;
    tr__ctx_switch(&co_ctx, &main_ctx);
  }
}

START_TEST(test_pingpong) {
  tstack_t s = tstack_new(STACK_SIZE);
  long i;

  pp_count = 0;
  tr__ctx_make(&co_ctx, s.lo, s.size, pp_fn, &pp_count);
  ck_assert_int_eq(pp_count, 0); /* make does not run fn */
  for (i = 0; i < 100000; i++) {
    tr__ctx_switch(&main_ctx, &co_ctx);
    ck_assert_int_eq(pp_count, i + 1);
  }
  tstack_free(&s);
}
END_TEST

static tr__ctx_t rr_ctx[3];
static char rr_log[32];
static int rr_len;

static void rr_fn(void *arg) {
  int id = (int)(intptr_t)arg;

  for (;;) {
    rr_log[rr_len++] = (char)('a' + id);
    tr__ctx_switch(&rr_ctx[id], id == 2 ? &main_ctx : &rr_ctx[id + 1]);
  }
}

START_TEST(test_round_robin) {
  tstack_t s[3];
  int i;

  rr_len = 0;
  for (i = 0; i < 3; i++) {
    s[i] = tstack_new(STACK_SIZE);
    tr__ctx_make(&rr_ctx[i], s[i].lo, s[i].size, rr_fn, (void *)(intptr_t)i);
  }
  for (i = 0; i < 3; i++) tr__ctx_switch(&main_ctx, &rr_ctx[0]);
  rr_log[rr_len] = '\0';
  ck_assert_str_eq(rr_log, "abcabcabc");
  for (i = 0; i < 3; i++) tstack_free(&s[i]);
}
END_TEST

static void *arg_seen[2];

static void arg_fn(void *arg) {
  arg_seen[arg == (void *)(uintptr_t)UINT64_C(0x1) ? 1 : 0] = arg;
  park(&co_ctx);
}

START_TEST(test_args_arrive) {
  /* Both 32-bit halves nonzero (the ucontext variant splits pointers). */
  void *big = (void *)(uintptr_t)UINT64_C(0xfedcba9876543210);
  tstack_t s = tstack_new(STACK_SIZE);

  tr__ctx_make(&co_ctx, s.lo, s.size, arg_fn, big);
  tr__ctx_switch(&main_ctx, &co_ctx);
  ck_assert_ptr_eq(arg_seen[0], big);
  tr__ctx_make(&co_ctx, s.lo, s.size, arg_fn, (void *)(uintptr_t)1);
  tr__ctx_switch(&main_ctx, &co_ctx);
  ck_assert_ptr_eq(arg_seen[1], (void *)(uintptr_t)1);
  tstack_free(&s);
}
END_TEST

/* ---- callee-saved registers --------------------------------------------- */

/* switch_marked(from, to, out, pattern): loads pattern + k into every
 * callee-saved register, calls tr__ctx_switch(from, to), and stores what
 * the registers hold after it returned into out[]. */
#define NMARKED_MAX 19
void switch_marked(tr__ctx_t *from, tr__ctx_t *to, uint64_t *out,
                   uint64_t pattern);

#if defined(__x86_64__)
#define NMARKED 6 /* rbx rbp r12 r13 r14 r15 */
__asm__(
    ".text\n"
    ".globl switch_marked\n"
    ".hidden switch_marked\n"
    ".type switch_marked, @function\n"
    "switch_marked:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n"
    "  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  pushq %rdx\n" /* out; 7 pushes keep the call aligned */
    "  leaq 0(%rcx), %rbx\n  leaq 1(%rcx), %rbp\n  leaq 2(%rcx), %r12\n"
    "  leaq 3(%rcx), %r13\n  leaq 4(%rcx), %r14\n  leaq 5(%rcx), %r15\n"
    "  call tr__ctx_switch\n"
    "  popq %rax\n"
    "  movq %rbx, 0(%rax)\n  movq %rbp, 8(%rax)\n  movq %r12, 16(%rax)\n"
    "  movq %r13, 24(%rax)\n  movq %r14, 32(%rax)\n  movq %r15, 40(%rax)\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n"
    "  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size switch_marked, .-switch_marked\n");
#elif defined(__aarch64__)
#define NMARKED 19 /* x19-x29, d8-d15 */
__asm__(
    ".text\n"
    ".globl switch_marked\n"
    ".hidden switch_marked\n"
    ".type switch_marked, %function\n"
    "switch_marked:\n"
    "  stp x29, x30, [sp, #-176]!\n"
    "  stp x19, x20, [sp, #16]\n  stp x21, x22, [sp, #32]\n"
    "  stp x23, x24, [sp, #48]\n  stp x25, x26, [sp, #64]\n"
    "  stp x27, x28, [sp, #80]\n  stp d8, d9, [sp, #96]\n"
    "  stp d10, d11, [sp, #112]\n  stp d12, d13, [sp, #128]\n"
    "  stp d14, d15, [sp, #144]\n  str x2, [sp, #160]\n"
    "  add x19, x3, #0\n  add x20, x3, #1\n  add x21, x3, #2\n"
    "  add x22, x3, #3\n  add x23, x3, #4\n  add x24, x3, #5\n"
    "  add x25, x3, #6\n  add x26, x3, #7\n  add x27, x3, #8\n"
    "  add x28, x3, #9\n  add x29, x3, #10\n"
    "  add x9, x3, #11\n  fmov d8, x9\n  add x9, x3, #12\n  fmov d9, x9\n"
    "  add x9, x3, #13\n  fmov d10, x9\n  add x9, x3, #14\n  fmov d11, x9\n"
    "  add x9, x3, #15\n  fmov d12, x9\n  add x9, x3, #16\n  fmov d13, x9\n"
    "  add x9, x3, #17\n  fmov d14, x9\n  add x9, x3, #18\n  fmov d15, x9\n"
    "  bl tr__ctx_switch\n"
    "  ldr x9, [sp, #160]\n"
    "  stp x19, x20, [x9, #0]\n  stp x21, x22, [x9, #16]\n"
    "  stp x23, x24, [x9, #32]\n  stp x25, x26, [x9, #48]\n"
    "  stp x27, x28, [x9, #64]\n  str x29, [x9, #80]\n"
    "  stp d8, d9, [x9, #88]\n  stp d10, d11, [x9, #104]\n"
    "  stp d12, d13, [x9, #120]\n  stp d14, d15, [x9, #136]\n"
    "  ldp x19, x20, [sp, #16]\n  ldp x21, x22, [sp, #32]\n"
    "  ldp x23, x24, [sp, #48]\n  ldp x25, x26, [sp, #64]\n"
    "  ldp x27, x28, [sp, #80]\n  ldp d8, d9, [sp, #96]\n"
    "  ldp d10, d11, [sp, #112]\n  ldp d12, d13, [sp, #128]\n"
    "  ldp d14, d15, [sp, #144]\n"
    "  ldp x29, x30, [sp], #176\n"
    "  ret\n"
    ".size switch_marked, .-switch_marked\n");
#else
#error "check_context: no register test for this architecture"
#endif

#define PAT_MAIN UINT64_C(0x1111000000000000)
#define PAT_CO UINT64_C(0x7777000000000000)

static uint64_t co_regs[NMARKED_MAX];
static int co_regs_ok;

static void marked_fn(void *arg) {
  (void)arg;
  int k, round;

  for (round = 0;; round++) {
    switch_marked(&co_ctx, &main_ctx, co_regs, PAT_CO + (uint64_t)round * 32);
    for (k = 0; k < NMARKED; k++)
      if (co_regs[k] != PAT_CO + (uint64_t)round * 32 + (uint64_t)k)
        co_regs_ok = 0;
  }
}

START_TEST(test_callee_saved_asm) {
  tstack_t s = tstack_new(STACK_SIZE);
  uint64_t regs[NMARKED_MAX];
  int k, round;

  co_regs_ok = 1;
  tr__ctx_make(&co_ctx, s.lo, s.size, marked_fn, NULL);
  for (round = 0; round < 3; round++) {
    switch_marked(&main_ctx, &co_ctx, regs, PAT_MAIN + (uint64_t)round * 32);
    for (k = 0; k < NMARKED; k++)
      ck_assert_msg(regs[k] == PAT_MAIN + (uint64_t)round * 32 + (uint64_t)k,
                    "register %d: %#llx", k, (unsigned long long)regs[k]);
  }
  ck_assert_int_eq(co_regs_ok, 1);
  tstack_free(&s);
}
END_TEST

/* Fills callee-saved registers with garbage before switching away. */
static void clobber_fn(void *arg) {
  (void)arg;
  for (;;) {
#if defined(__x86_64__)
    __asm__ volatile("movq $-1, %%rbx\n movq $-2, %%r12\n movq $-3, %%r13\n"
                     "movq $-4, %%r14\n movq $-5, %%r15\n"
                     ::: "rbx", "r12", "r13", "r14", "r15");
#elif defined(__aarch64__)
    __asm__ volatile("mov x19, #-1\n mov x20, #-1\n mov x21, #-1\n"
                     "mov x22, #-1\n mov x23, #-1\n mov x24, #-1\n"
                     "mov x25, #-1\n mov x26, #-1\n mov x27, #-1\n"
                     "mov x28, #-1\n movi d8, #-1\n movi d9, #-1\n"
                     "movi d10, #-1\n movi d11, #-1\n movi d12, #-1\n"
                     "movi d13, #-1\n movi d14, #-1\n movi d15, #-1\n"
                     ::: "x19", "x20", "x21", "x22", "x23", "x24", "x25",
                     "x26", "x27", "x28", "d8", "d9", "d10", "d11", "d12",
                     "d13", "d14", "d15");
#endif
    tr__ctx_switch(&co_ctx, &main_ctx);
  }
}

/* Many values live across the switch: at -O2 they sit in callee-saved
 * registers, so a switch that loses one corrupts the sums. */
START_TEST(test_callee_saved_locals) {
  volatile uint64_t seed = 0x9e3779b97f4a7c15u;
  volatile double fseed = 1.25;
  uint64_t a = seed, b = a * 3, c = b ^ 7, d = c + 11, e = d * 5, f = e ^ a;
  double fa = fseed, fb = fa * 2, fc = fb + 3, fd = fc * 4, fe = fd - 5;
  tstack_t s = tstack_new(STACK_SIZE);
  int i;

  tr__ctx_make(&co_ctx, s.lo, s.size, clobber_fn, NULL);
  for (i = 0; i < 100; i++) {
    tr__ctx_switch(&main_ctx, &co_ctx);
    a += 1, b += 2, c += 3, d += 4, e += 5, f += 6;
    fa += 1, fb += 2, fc += 3, fd += 4, fe += 5;
  }
  ck_assert_uint_eq(a, seed + 100);
  ck_assert_uint_eq(b, seed * 3 + 200);
  ck_assert_uint_eq(c, ((seed * 3) ^ 7) + 300);
  ck_assert_uint_eq(d, ((seed * 3) ^ 7) + 11 + 400);
  ck_assert_uint_eq(e, (((seed * 3) ^ 7) + 11) * 5 + 500);
  ck_assert_uint_eq(f, (((((seed * 3) ^ 7) + 11) * 5) ^ seed) + 600);
  ck_assert(fa == 101.25 && fb == 202.5 && fc == 305.5);
  ck_assert(fd == 4 * 5.5 + 400 && fe == 4 * 5.5 - 5 + 500);
  tstack_free(&s);
}
END_TEST

/* ---- floating-point control state --------------------------------------- */

/* Rounding direction seen by SSE/NEON double division: +1 up, -1 down,
 * 0 nearest. The volatile temporaries stop the compiler from rewriting
 * -(x / y) into (-x) / y. */
__attribute__((noinline)) static int dir_double(void) {
  volatile double one = 1.0, mone = -1.0, three = 3.0, q;
  double a = one / three, b;

  q = mone / three;
  b = -q;
  return a > b ? 1 : a < b ? -1 : 0;
}

#if defined(__x86_64__)
/* The same for x87 (long double) arithmetic. */
__attribute__((noinline)) static int dir_x87(void) {
  volatile long double one = 1.0L, mone = -1.0L, three = 3.0L, q;
  long double a = one / three, b;

  q = mone / three;
  b = -q;
  return a > b ? 1 : a < b ? -1 : 0;
}

static unsigned short x87_cw(void) {
  unsigned short cw;
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  return cw;
}

static void x87_set_cw(unsigned short cw) {
  __asm__ volatile("fldcw %0" : : "m"(cw));
}

#define MXCSR_CONTROL 0xffc0u /* without the sticky exception flags */
#define MXCSR_RC_UP 0x4000u
#define MXCSR_FTZ 0x8000u
#define X87_RC_MASK 0x0c00u
#define X87_RC_DOWN 0x0400u
#endif

typedef struct fp_seen {
  int dir_d, dir_x87, round;
  unsigned mxcsr, cw;
} fp_seen_t;

static fp_seen_t fp_seen[2];

static void fp_record(fp_seen_t *r) {
  r->dir_d = dir_double();
  r->round = fegetround();
#if defined(__x86_64__)
  r->dir_x87 = dir_x87();
  r->mxcsr = _mm_getcsr();
  r->cw = x87_cw();
#endif
}

/* SSE/NEON rounds up; on x86-64 the x87 unit rounds down and FTZ is on. */
static void fp_fn(void *arg) {
  (void)arg;
  fesetround(FE_UPWARD);
#if defined(__x86_64__)
  x87_set_cw((unsigned short)((x87_cw() & ~X87_RC_MASK) | X87_RC_DOWN));
  _mm_setcsr(_mm_getcsr() | MXCSR_FTZ);
#endif
  fp_record(&fp_seen[0]);
  tr__ctx_switch(&co_ctx, &main_ctx);
  fp_record(&fp_seen[1]);
  park(&co_ctx);
}

static void assert_fp_default(void) {
  ck_assert_int_eq(fegetround(), FE_TONEAREST);
  ck_assert_int_eq(dir_double(), 0);
#if defined(__x86_64__)
  ck_assert_int_eq(dir_x87(), 0);
  ck_assert_uint_eq(x87_cw() & X87_RC_MASK, 0);
  ck_assert_uint_eq(_mm_getcsr() & (MXCSR_FTZ | 0x6000u), 0);
#endif
}

START_TEST(test_fp_control_per_context) {
  tstack_t s;
  int k;
  if (tr_test_on_valgrind()) return; /* it does not model rounding modes */
  s = tstack_new(STACK_SIZE);

  ck_assert_int_eq(fesetround(FE_TONEAREST), 0);
  tr__ctx_make(&co_ctx, s.lo, s.size, fp_fn, NULL);
  tr__ctx_switch(&main_ctx, &co_ctx);
  assert_fp_default(); /* the coroutine's modes did not leak back */
  tr__ctx_switch(&main_ctx, &co_ctx);
  assert_fp_default();
  for (k = 0; k < 2; k++) { /* before and after a round trip */
    ck_assert_int_eq(fp_seen[k].dir_d, 1);
#if defined(__x86_64__)
    ck_assert_int_eq(fp_seen[k].round, FE_DOWNWARD); /* glibc: x87 RC */
    ck_assert_int_eq(fp_seen[k].dir_x87, -1);
    ck_assert_uint_eq(fp_seen[k].mxcsr & 0x6000u, MXCSR_RC_UP);
    ck_assert_uint_ne(fp_seen[k].mxcsr & MXCSR_FTZ, 0);
    ck_assert_uint_eq(fp_seen[k].cw & X87_RC_MASK, X87_RC_DOWN);
#else
    ck_assert_int_eq(fp_seen[k].round, FE_UPWARD);
#endif
  }
#if defined(__x86_64__)
  ck_assert_uint_eq(fp_seen[0].mxcsr & MXCSR_CONTROL,
                    fp_seen[1].mxcsr & MXCSR_CONTROL);
  ck_assert_uint_eq(fp_seen[0].cw, fp_seen[1].cw);
#endif
  tstack_free(&s);
}
END_TEST

static void fp_inherit_fn(void *arg) {
  (void)arg;
  fp_record(&fp_seen[0]);
  park(&co_ctx);
}

START_TEST(test_fp_control_inherited) {
  tstack_t s;
  if (tr_test_on_valgrind()) return; /* it does not model rounding modes */
  s = tstack_new(STACK_SIZE);

  memset(fp_seen, 0, sizeof fp_seen);
  ck_assert_int_eq(fesetround(FE_DOWNWARD), 0);
  tr__ctx_make(&co_ctx, s.lo, s.size, fp_inherit_fn, NULL);
  ck_assert_int_eq(fesetround(FE_TONEAREST), 0);
  tr__ctx_switch(&main_ctx, &co_ctx);
  assert_fp_default();
  ck_assert_int_eq(fp_seen[0].round, FE_DOWNWARD);
  ck_assert_int_eq(fp_seen[0].dir_d, -1);
#if defined(__x86_64__)
  ck_assert_int_eq(fp_seen[0].dir_x87, -1);
#endif
  tstack_free(&s);
}
END_TEST

/* ---- stack alignment, depth, unwinding ---------------------------------- */

typedef struct align_res {
  uintptr_t frame, local, wide;
  float sse;
  char text[64];
} align_res_t;

/* Stack pointer at the entry of the coroutine function (align_probe). */
uintptr_t align_entry_sp;
void align_probe(void *arg);
void align_body(void *arg);

#if defined(__x86_64__)
__asm__(".text\n.globl align_probe\n.hidden align_probe\n"
        ".type align_probe, @function\n"
        "align_probe:\n"
        "  movq %rsp, align_entry_sp(%rip)\n"
        "  jmp align_body\n"
        ".size align_probe, .-align_probe\n");
#elif defined(__aarch64__)
__asm__(".text\n.globl align_probe\n.hidden align_probe\n"
        ".type align_probe, %function\n"
        "align_probe:\n"
        "  mov x9, sp\n"
        "  adrp x10, align_entry_sp\n"
        "  str x9, [x10, :lo12:align_entry_sp]\n"
        "  b align_body\n"
        ".size align_probe, .-align_probe\n");
#endif

__attribute__((noinline)) static void *escape(void *p) {
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

/* Uses 16-byte vector spills (movaps on x86-64): faults if misaligned. */
__attribute__((noinline)) static float sse_work(float x) {
  typedef float v4sf __attribute__((vector_size(16)));
  volatile v4sf v = {x, x + 1, x + 2, x + 3};
  v4sf w = v;

  w = w * w;
  v = w;
  w = v;
  return w[0] + w[1] + w[2] + w[3];
}

__attribute__((visibility("hidden"), noinline)) void align_body(void *arg) {
  align_res_t *r = arg;
  alignas(16) char buf[16];
  __int128 wide = 1;

  r->frame = (uintptr_t)__builtin_frame_address(0);
  r->local = (uintptr_t)escape(buf);
  r->wide = (uintptr_t)escape(&wide);
  r->sse = sse_work(1.0f);
  snprintf(r->text, sizeof r->text, "%.3f %.2Lf", 1.5, (long double)2.25);
  park(&co_ctx);
}

START_TEST(test_entry_alignment) {
  tstack_t s = tstack_new(STACK_SIZE);
  align_res_t r;
  int off;

  memset(&r, 0, sizeof r);
  for (off = 0; off < 16; off += 8) { /* odd stack sizes are fine too */
    tr__ctx_make(&co_ctx, s.lo, s.size - (size_t)off - 8, align_probe, &r);
    tr__ctx_switch(&main_ctx, &co_ctx);
#if defined(__x86_64__)
    ck_assert_uint_eq(align_entry_sp % 16, 8); /* as if entered by call */
#else
    ck_assert_uint_eq(align_entry_sp % 16, 0);
#endif
    ck_assert_uint_lt(align_entry_sp, (uintptr_t)(s.lo + s.size));
    ck_assert_uint_gt(align_entry_sp, (uintptr_t)s.lo);
    ck_assert_uint_eq(r.frame % 16, 0);
    ck_assert_uint_eq(r.local % 16, 0);
    ck_assert_uint_eq(r.wide % 16, 0);
    ck_assert(r.sse == 1.0f + 4.0f + 9.0f + 16.0f);
    ck_assert_str_eq(r.text, "1.500 2.25");
  }
  tstack_free(&s);
}
END_TEST

/* Not a tail call: the addition after the call keeps every frame live. */
__attribute__((noinline)) static uint64_t recurse(unsigned depth,
                                                  uintptr_t *lowest) {
  volatile unsigned char pad[400];

  pad[0] = (unsigned char)depth;
  pad[399] = (unsigned char)(depth * 7);
  if (depth == 0) {
    *lowest = (uintptr_t)&pad[0];
    return 1;
  }
  return recurse(depth - 1, lowest) * 3 + pad[0] + pad[399];
}

#define DEPTH 5000

static uint64_t deep_result;
static uintptr_t deep_lowest;

static void deep_fn(void *arg) {
  (void)arg;
  deep_result = recurse(DEPTH, &deep_lowest);
  park(&co_ctx);
}

START_TEST(test_deep_recursion) {
  tstack_t s = tstack_new(BIG_STACK);
  uintptr_t lowest;
  uint64_t want = recurse(DEPTH, &lowest); /* on the main stack */

  tr__ctx_make(&co_ctx, s.lo, s.size, deep_fn, NULL);
  tr__ctx_switch(&main_ctx, &co_ctx);
  ck_assert_uint_eq(deep_result, want);
  ck_assert_uint_gt(deep_lowest, (uintptr_t)s.lo);
  ck_assert_uint_lt(deep_lowest, (uintptr_t)s.lo + s.size - 2000000);
  tstack_free(&s);
}
END_TEST

#ifndef TR_CONTEXT_UCONTEXT
/* First instruction of every assembly context (context_*.S). */
extern char tr__ctx_trampoline[] __attribute__((visibility("hidden")));
#endif

static void *bt_frames[64];
static int bt_n;

static void bt_fn(void *arg) {
  (void)arg;
  bt_n = backtrace(bt_frames, 64);
  park(&co_ctx);
}

/* The unwinder stops at the bottom of a coroutine stack instead of
 * wandering into whatever lies above it. */
START_TEST(test_unwind_stops) {
  tstack_t s = tstack_new(STACK_SIZE);

  /* Garbage above the stack top, where a bogus unwind would go next. */
  memset(s.lo, 0xff, s.size);
  tr__ctx_make(&co_ctx, s.lo, s.size - 4096, bt_fn, NULL);
  tr__ctx_switch(&main_ctx, &co_ctx);
  ck_assert_int_ge(bt_n, 2);
  ck_assert_int_le(bt_n, 4);
#ifndef TR_CONTEXT_UCONTEXT
  ck_assert_uint_gt((uintptr_t)bt_frames[bt_n - 1],
                    (uintptr_t)tr__ctx_trampoline);
  ck_assert_uint_lt((uintptr_t)bt_frames[bt_n - 1],
                    (uintptr_t)tr__ctx_trampoline + 16);
#endif
  tstack_free(&s);
}
END_TEST

static Suite *suite_context(void) {
  Suite *s = suite_create("context");
  TCase *tc = tcase_create("switch");
  TCase *fp = tcase_create("fp");
  TCase *st = tcase_create("stack");

  tcase_add_test(tc, test_pingpong);
  tcase_add_test(tc, test_round_robin);
  tcase_add_test(tc, test_args_arrive);
  tcase_add_test(tc, test_callee_saved_asm);
  tcase_add_test(tc, test_callee_saved_locals);
  suite_add_tcase(s, tc);
  tcase_add_test(fp, test_fp_control_per_context);
  tcase_add_test(fp, test_fp_control_inherited);
  suite_add_tcase(s, fp);
  tcase_add_test(st, test_entry_alignment);
  tcase_add_test(st, test_deep_recursion);
  tcase_add_test(st, test_unwind_stops);
  suite_add_tcase(s, st);
  return s;
}

TR_TEST_MAIN(suite_context)
