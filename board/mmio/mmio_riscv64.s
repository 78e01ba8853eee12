//go:build tamago && riscv64

// RV64 register access
//
// The RISC-V Instruction Set Manual, Volume I: Unprivileged ISA
// (20191213), 2.7 Memory Ordering Instructions: FENCE IORW,IORW
// (pred = succ = 0b1111) orders every device and memory access before it
// against every one after it; it is encoded as 0x0ff0000f.

#include "textflag.h"

// func Read8(addr uintptr) uint8
TEXT ·Read8(SB),NOSPLIT,$0-9
	MOV	addr+0(FP), A0
	WORD	$0x0ff0000f // fence iorw,iorw
	MOVBU	(A0), A1
	WORD	$0x0ff0000f // fence iorw,iorw
	MOVB	A1, ret+8(FP)
	RET

// func Write8(addr uintptr, val uint8)
TEXT ·Write8(SB),NOSPLIT,$0-9
	MOV	addr+0(FP), A0
	MOVBU	val+8(FP), A1
	WORD	$0x0ff0000f // fence iorw,iorw
	MOVB	A1, (A0)
	WORD	$0x0ff0000f // fence iorw,iorw
	RET

// func Read16(addr uintptr) uint16
TEXT ·Read16(SB),NOSPLIT,$0-10
	MOV	addr+0(FP), A0
	WORD	$0x0ff0000f // fence iorw,iorw
	MOVHU	(A0), A1
	WORD	$0x0ff0000f // fence iorw,iorw
	MOVH	A1, ret+8(FP)
	RET

// func Read32(addr uintptr) uint32
TEXT ·Read32(SB),NOSPLIT,$0-12
	MOV	addr+0(FP), A0
	WORD	$0x0ff0000f // fence iorw,iorw
	MOVWU	(A0), A1
	WORD	$0x0ff0000f // fence iorw,iorw
	MOVW	A1, ret+8(FP)
	RET

// func Write32(addr uintptr, val uint32)
TEXT ·Write32(SB),NOSPLIT,$0-12
	MOV	addr+0(FP), A0
	MOVWU	val+8(FP), A1
	WORD	$0x0ff0000f // fence iorw,iorw
	MOVW	A1, (A0)
	WORD	$0x0ff0000f // fence iorw,iorw
	RET

// func Barrier()
TEXT ·Barrier(SB),NOSPLIT,$0-0
	WORD	$0x0ff0000f // fence iorw,iorw
	RET

// func Pointer(addr uintptr) unsafe.Pointer
TEXT ·Pointer(SB),NOSPLIT,$0-16
	MOV	addr+0(FP), A0
	MOV	A0, ret+8(FP)
	RET
