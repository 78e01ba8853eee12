//go:build tamago && riscv64

// RISC-V privileged instructions as raw encodings (The RISC-V Instruction
// Set Manual, Volume II: Privileged Architecture 20211203: 3.1.7 mtvec,
// 3.1.14 mepc, 3.3.2 MRET, 3.3.3 WFI; Volume I 2.8 CSR instructions,
// 3.2 Zifencei FENCE.I).

#include "textflag.h"

// func probe32(addr uintptr) (val uint32, ok bool)
//
// Points mtvec at probeTrap for the one load, which probeTrap skips if it
// faults (interrupts are off: nothing else traps meanwhile).
TEXT ·probe32(SB),NOSPLIT|NOFRAME,$0-13
	MOV	addr+0(FP), A0
	MOV	$·probeTrap(SB), T0
	MOV	$1, A2
	MOV	$0, A1
	WORD	$0x30529373 // csrrw t1, mtvec, t0
	WORD	$0x0ff0000f // fence iorw,iorw
	WORD	$0x00056583 // lwu a1, 0(a0): 4 bytes, probeTrap skips it
	WORD	$0x0ff0000f // fence iorw,iorw
	WORD	$0x30531073 // csrw mtvec, t1
	MOVW	A1, val+8(FP)
	MOVB	A2, ok+12(FP)
	RET

// probeTrap is the trap vector during probe32's load: it marks the load
// failed and returns past it (mtvec needs 4-byte alignment: Go aligns
// functions to 8 bytes on riscv64).
TEXT ·probeTrap(SB),NOSPLIT|NOFRAME,$0
	WORD	$0x341023f3 // csrr t2, mepc
	WORD	$0x00438393 // addi t2, t2, 4
	WORD	$0x34139073 // csrw mepc, t2
	MOV	$0, A2
	MOV	$0, A1
	WORD	$0x30200073 // mret

// func jump(entry, handoff uint64)
//
// Makes the loaded image visible to instruction fetch (FENCE.I) and jumps
// to entry with a0 = handoff, in machine mode with interrupts off.
TEXT ·jump(SB),NOSPLIT|NOFRAME,$0-16
	MOV	entry+0(FP), T0
	MOV	handoff+8(FP), A0
	WORD	$0x0ff0000f // fence iorw,iorw
	WORD	$0x0000100f // fence.i
	JMP	(T0)

// func halt()
TEXT ·halt(SB),NOSPLIT|NOFRAME,$0
loop:
	WORD	$0x10500073 // wfi
	JMP	loop

// func waitTimer(mtimecmp uintptr, when uint64)
//
// Sets the hart's timer compare register to when and waits for the timer
// interrupt to become pending: mie.MTIE is set around WFI while
// mstatus.MIE stays clear, so the pending interrupt ends the WFI without
// a trap (Volume II, 3.3.3: WFI resumes on a locally enabled pending
// interrupt whatever the global enable). MTIP stays pending afterwards,
// with MTIE clear again.
TEXT ·waitTimer(SB),NOSPLIT|NOFRAME,$0-16
	MOV	mtimecmp+0(FP), A0
	MOV	when+8(FP), A1
	MOV	A1, (A0)
	WORD	$0x0ff0000f // fence iorw,iorw
	MOV	$0x80, T0
	WORD	$0x3042a073 // csrrs x0, mie, t0 (MTIE)
	WORD	$0x10500073 // wfi
	WORD	$0x3042b073 // csrrc x0, mie, t0
	RET
