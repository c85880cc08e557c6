/*
 * Context switch for aarch64 AAPCS64 (see context.h).
 *
 * A suspended context is its stack pointer; the stack holds, from sp up:
 *
 *     0  x19 x20     16  x21 x22     32  x23 x24     48  x25 x26
 *    64  x27 x28     80  x29 x30 (fp, resume address)
 *    96  d8  d9     112  d10 d11    128  d12 d13    144  d14 d15
 *   160  FPCR       168  padding (sp stays 16-byte aligned)
 *
 * Only callee-saved state is kept (AAPCS64: x19-x29, sp, and the low 64
 * bits of v8-v15); the caller of tr__ctx_switch has spilled the rest. FPSR
 * (sticky exception flags) is deliberately not switched, like glibc's
 * swapcontext it is status, not control. We resume with `ret`, which is
 * BTI-compatible (no landing pad needed at the resume site).
 */
#if defined(__aarch64__) && defined(__ELF__)

#define FRAME 176

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT == 1
#define BTI_C hint #34
#define TR_BTI_NOTE 1
#else
#define BTI_C
#define TR_BTI_NOTE 0
#endif

	.text

/* void tr__ctx_switch(tr__ctx_t *from, tr__ctx_t *to)
 * x0 = from, x1 = to. Cost: 11 paired stores + 11 paired loads, mrs/msr
 * FPCR, one return; no syscalls. */
	.globl	tr__ctx_switch
	.hidden	tr__ctx_switch
	.type	tr__ctx_switch, %function
	.p2align 4
tr__ctx_switch:
	.cfi_startproc
	BTI_C
	sub	sp, sp, #FRAME
	.cfi_def_cfa_offset FRAME
	stp	x19, x20, [sp, #0]
	.cfi_offset x19, -176
	.cfi_offset x20, -168
	stp	x21, x22, [sp, #16]
	.cfi_offset x21, -160
	.cfi_offset x22, -152
	stp	x23, x24, [sp, #32]
	.cfi_offset x23, -144
	.cfi_offset x24, -136
	stp	x25, x26, [sp, #48]
	.cfi_offset x25, -128
	.cfi_offset x26, -120
	stp	x27, x28, [sp, #64]
	.cfi_offset x27, -112
	.cfi_offset x28, -104
	stp	x29, x30, [sp, #80]
	.cfi_offset x29, -96
	.cfi_offset x30, -88
	stp	d8, d9, [sp, #96]
	.cfi_offset d8, -80
	.cfi_offset d9, -72
	stp	d10, d11, [sp, #112]
	.cfi_offset d10, -64
	.cfi_offset d11, -56
	stp	d12, d13, [sp, #128]
	.cfi_offset d12, -48
	.cfi_offset d13, -40
	stp	d14, d15, [sp, #144]
	.cfi_offset d14, -32
	.cfi_offset d15, -24
	mrs	x9, fpcr
	str	x9, [sp, #160]

	mov	x9, sp
	str	x9, [x0]
	ldr	x9, [x1]
	mov	sp, x9
	/* The new stack has the same layout, so the CFI above describes it. */

	ldr	x9, [sp, #160]
	msr	fpcr, x9
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #FRAME
	.cfi_def_cfa_offset 0
	.cfi_restore x19
	.cfi_restore x20
	.cfi_restore x21
	.cfi_restore x22
	.cfi_restore x23
	.cfi_restore x24
	.cfi_restore x25
	.cfi_restore x26
	.cfi_restore x27
	.cfi_restore x28
	.cfi_restore x29
	.cfi_restore x30
	.cfi_restore d8
	.cfi_restore d9
	.cfi_restore d10
	.cfi_restore d11
	.cfi_restore d12
	.cfi_restore d13
	.cfi_restore d14
	.cfi_restore d15
	ret
	.cfi_endproc
	.size	tr__ctx_switch, .-tr__ctx_switch

/* First code of every context: tr__ctx_make left arg in x19 and fn in x20,
 * x29 = 0 (end of the frame chain) and sp 16-byte aligned. The return
 * address column (x30) is undefined here, which ends every unwind cleanly.
 * fn never returns; if it does, brk raises SIGTRAP. */
	.globl	tr__ctx_trampoline
	.hidden	tr__ctx_trampoline
	.type	tr__ctx_trampoline, %function
	.p2align 4
tr__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	mov	x0, x19
	blr	x20
	brk	#0
	.cfi_endproc
	.size	tr__ctx_trampoline, .-tr__ctx_trampoline

/* void tr__ctx_make(tr__ctx_t *ctx, void *stack_lo, size_t size,
 *                   void (*fn)(void *), void *arg)
 * x0 = ctx, x1 = stack_lo, x2 = size, x3 = fn, x4 = arg.
 * Writes the FRAME bytes below the 16-aligned top of the stack, in the
 * layout tr__ctx_switch loads, with zeroed registers, the caller's FPCR and
 * tr__ctx_trampoline as resume address. Nothing is allocated. */
	.globl	tr__ctx_make
	.hidden	tr__ctx_make
	.type	tr__ctx_make, %function
	.p2align 4
tr__ctx_make:
	.cfi_startproc
	BTI_C
	add	x9, x1, x2
	and	x9, x9, #~15
	sub	x9, x9, #FRAME
	mov	x10, x9
	add	x11, x9, #FRAME
1:	stp	xzr, xzr, [x10], #16	/* zero the whole frame */
	cmp	x10, x11
	b.lo	1b
	stp	x4, x3, [x9, #0]	/* x19 = arg, x20 = fn */
	adr	x10, tr__ctx_trampoline
	str	x10, [x9, #88]		/* x30 = resume address */
	mrs	x10, fpcr
	str	x10, [x9, #160]
	str	x9, [x0]
	ret
	.cfi_endproc
	.size	tr__ctx_make, .-tr__ctx_make

#if TR_BTI_NOTE
/* Tell the linker this object is BTI-clean so the library keeps its
 * marking when the C code is built with -mbranch-protection. */
	.pushsection .note.gnu.property, "a"
	.p2align 3
	.word	4		/* namesz */
	.word	16		/* descsz */
	.word	5		/* NT_GNU_PROPERTY_TYPE_0 */
	.asciz	"GNU"
	.word	0xc0000000	/* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
	.word	4
	.word	1		/* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
	.word	0
	.popsection
#endif

#endif /* __aarch64__ && __ELF__ */

#if defined(__ELF__)
	.section .note.GNU-stack,"",%progbits
#endif
