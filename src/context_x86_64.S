/*
 * Context switch for x86-64 System V (see context.h).
 *
 * A suspended context is its stack pointer; the stack holds, from sp up:
 *
 *    0  MXCSR (4 bytes), x87 control word (2 bytes), 2 bytes of zero
 *    8  r15
 *   16  r14
 *   24  r13
 *   32  r12
 *   40  rbx
 *   48  rbp
 *   56  resume address (the return address of tr__ctx_switch's call)
 *
 * The saved sp is 16-byte aligned (call pushed 8, we push 56). Only the
 * callee-saved state of the psABI is kept: the caller of tr__ctx_switch has
 * already spilled everything else. We resume with `pop; jmp *` rather than
 * `ret`: the return-stack predictor would guess the wrong target anyway (we
 * return to a different call site than the one that called us), and a plain
 * indirect jump also works for the first entry into tr__ctx_trampoline.
 *
 * Not compatible with CET IBT/shadow stacks (indirect jump to return sites);
 * this file deliberately has no .note.gnu.property, so the linker drops the
 * CET marking from the output.
 */
#if defined(__x86_64__) && defined(__ELF__)

#define FRAME 64 /* bytes tr__ctx_switch keeps on a suspended stack */

	.text

/* void tr__ctx_switch(tr__ctx_t *from, tr__ctx_t *to)
 * rdi = from, rsi = to. Cost: 7 stores, 7 loads, stmxcsr/fnstcw/ldmxcsr/
 * fldcw, one indirect jump; no syscalls. */
	.globl	tr__ctx_switch
	.hidden	tr__ctx_switch
	.type	tr__ctx_switch, @function
	.p2align 4
tr__ctx_switch:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbp, 0
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r15, 0
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)

	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	/* The new stack has the same layout, so the CFI above describes it. */

	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	.cfi_restore r15
	popq	%r14
	.cfi_adjust_cfa_offset -8
	.cfi_restore r14
	popq	%r13
	.cfi_adjust_cfa_offset -8
	.cfi_restore r13
	popq	%r12
	.cfi_adjust_cfa_offset -8
	.cfi_restore r12
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbx
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbp
	popq	%rcx
	.cfi_adjust_cfa_offset -8
	.cfi_register rip, rcx
	jmpq	*%rcx
	.cfi_endproc
	.size	tr__ctx_switch, .-tr__ctx_switch

/* First code of every context: tr__ctx_make left fn in rbx and arg in r12,
 * and sp 16-byte aligned, so `call` enters fn with sp % 16 == 8 as the ABI
 * wants. rip is undefined here, which ends every unwind (gdb, libgcc,
 * backtrace()) cleanly; rbp is 0 for frame-pointer walkers. fn never
 * returns; if it does, ud2 raises SIGILL. */
	.globl	tr__ctx_trampoline
	.hidden	tr__ctx_trampoline
	.type	tr__ctx_trampoline, @function
	.p2align 4
tr__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r12, %rdi
	callq	*%rbx
	ud2
	.cfi_endproc
	.size	tr__ctx_trampoline, .-tr__ctx_trampoline

/* void tr__ctx_make(tr__ctx_t *ctx, void *stack_lo, size_t size,
 *                   void (*fn)(void *), void *arg)
 * rdi = ctx, rsi = stack_lo, rdx = size, rcx = fn, r8 = arg.
 * Writes the FRAME bytes below the 16-aligned top of the stack, in the
 * layout tr__ctx_switch pops, with the caller's MXCSR and x87 control word
 * and tr__ctx_trampoline as resume address. Nothing is allocated. */
	.globl	tr__ctx_make
	.hidden	tr__ctx_make
	.type	tr__ctx_make, @function
	.p2align 4
tr__ctx_make:
	.cfi_startproc
	leaq	(%rsi,%rdx), %rax
	andq	$-16, %rax
	subq	$FRAME, %rax
	movq	$0, (%rax)
	stmxcsr	(%rax)
	fnstcw	4(%rax)
	movq	$0, 8(%rax)		/* r15 */
	movq	$0, 16(%rax)		/* r14 */
	movq	$0, 24(%rax)		/* r13 */
	movq	%r8, 32(%rax)		/* r12 = arg */
	movq	%rcx, 40(%rax)		/* rbx = fn */
	movq	$0, 48(%rax)		/* rbp = 0: end of the frame chain */
	leaq	tr__ctx_trampoline(%rip), %rcx
	movq	%rcx, 56(%rax)
	movq	%rax, (%rdi)
	ret
	.cfi_endproc
	.size	tr__ctx_make, .-tr__ctx_make

#endif /* __x86_64__ && __ELF__ */

#if defined(__ELF__)
	.section .note.GNU-stack,"",@progbits
#endif
