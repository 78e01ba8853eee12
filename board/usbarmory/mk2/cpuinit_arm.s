//go:build tamago && arm && linkcpuinit

#include "textflag.h"

// cpuinit is the first code to run (runtime/goos.CPUInit jumps here):
// tamago's arm/init.s, which the linkcpuinit tag leaves out, preceded by
// clearing the program's .bss and .noptrbss. The boot ROM loads the boot
// payload only up to the end of stage 0's file: the 32 MiB of .bss behind
// it are whatever DDR held at power-on, and the Go runtime expects zeros.
//
// The bounds are the linker's (cmd/link/internal/ld/data.go defines
// runtime.bss and runtime.enoptrbss; .noptrbss follows .bss).
TEXT cpuinit(SB),NOSPLIT|NOFRAME,$0
	MOVW	$runtime·bss(SB), R0
	MOVW	$runtime·enoptrbss(SB), R1
	MOVW	$0, R2
clear:
	CMP	R1, R0
	B.HS	cleared
	MOVW.P	R2, 4(R0)
	B	clear
cleared:

	// set stack pointer
	MOVW	runtime∕goos·RamStart(SB), R13
	MOVW	runtime∕goos·RamSize(SB), R1
	MOVW	runtime∕goos·RamStackOffset(SB), R2
	ADD	R1, R13
	SUB	R2, R13
	MOVW	R13, R3

	// detect HYP mode and switch to SVC if necessary
	WORD	$0xe10f0000	// mrs r0, CPSR
	AND	$0x1f, R0, R0	// get processor mode

	CMP	$0x10, R0	// USR mode
	BL.EQ	_rt0_tamago_start(SB)

	CMP	$0x1a, R0	// HYP mode
	B.NE	after_eret

	BIC	$0x1f, R0
	ORR	$0x1d3, R0	// AIF masked, SVC mode
	MOVW	$12(R15), R14	// add lr, pc, #12 (after_eret)
	WORD	$0xe16ff000	// msr SPSR_fsxc, r0
	WORD	$0xe12ef30e	// msr ELR_hyp, lr
	WORD	$0xe160006e	// eret

after_eret:
	// enter System Mode
	WORD	$0xe321f0df	// msr CPSR_c, 0xdf

	MOVW	R3, R13
	B	_rt0_tamago_start(SB)
