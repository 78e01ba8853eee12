//go:build tamago && arm

#include "textflag.h"

// func svc()
TEXT ·svc(SB),NOSPLIT,$0
	SWI	$0
	RET

// func exec()
//
// Runs as the supervisor call handler, in SVC mode with interrupts masked:
// turns off the MMU (caches were cleaned and disabled by the caller),
// invalidates the instruction cache and branch predictor, and jumps to the
// stick's entry point with R0 = hand-off address.
//
// ARM Architecture Reference Manual ARMv7-A and ARMv7-R edition,
// B4.1.130 SCTLR (M is bit 0), B4.2.1 ICIALLU, BPIALL.
TEXT ·exec(SB),NOSPLIT|NOFRAME,$0
	MOVW	·entry(SB), R3
	MOVW	·handoff(SB), R4

	MRC	15, 0, R0, C1, C0, 0
	BIC	$1, R0
	MCR	15, 0, R0, C1, C0, 0
	WORD	$0xf57ff06f // isb sy

	MOVW	$0, R0
	MCR	15, 0, R0, C7, C5, 0 // ICIALLU
	MCR	15, 0, R0, C7, C5, 6 // BPIALL
	WORD	$0xf57ff04f // dsb sy
	WORD	$0xf57ff06f // isb sy

	MOVW	R4, R0
	B	(R3)

// func AllowUnalignedAccess()
//
// Clears SCTLR.A (bit 1), the alignment check: with it clear, ARMv7-A
// performs LDR, STR, LDRH and STRH at any address in normal memory
// (ARM Architecture Reference Manual ARMv7-A and ARMv7-R edition,
// A3.2.1, B4.1.130). LDRD, STRD, LDM, STM and VFP accesses still need
// word alignment.
TEXT ·AllowUnalignedAccess(SB),NOSPLIT,$0
	MRC	15, 0, R0, C1, C0, 0
	BIC	$2, R0
	MCR	15, 0, R0, C1, C0, 0
	WORD	$0xf57ff06f // isb sy
	RET
