//go:build tamago && arm

// ARMv7-A register access
//
// ARM Architecture Reference Manual ARMv7-A and ARMv7-R edition,
// A3.8.3 Memory barriers: DMB SY is encoded as 0xf57ff05f.

#include "textflag.h"

// func Read8(addr uintptr) uint8
TEXT ·Read8(SB),NOSPLIT,$0-5
	MOVW	addr+0(FP), R0
	WORD	$0xf57ff05f // dmb sy
	MOVBU	(R0), R1
	WORD	$0xf57ff05f // dmb sy
	MOVB	R1, ret+4(FP)
	RET

// func Write8(addr uintptr, val uint8)
TEXT ·Write8(SB),NOSPLIT,$0-5
	MOVW	addr+0(FP), R0
	MOVBU	val+4(FP), R1
	WORD	$0xf57ff05f // dmb sy
	MOVB	R1, (R0)
	WORD	$0xf57ff05f // dmb sy
	RET

// func Read16(addr uintptr) uint16
TEXT ·Read16(SB),NOSPLIT,$0-6
	MOVW	addr+0(FP), R0
	WORD	$0xf57ff05f // dmb sy
	MOVHU	(R0), R1
	WORD	$0xf57ff05f // dmb sy
	MOVH	R1, ret+4(FP)
	RET

// func Read32(addr uintptr) uint32
TEXT ·Read32(SB),NOSPLIT,$0-8
	MOVW	addr+0(FP), R0
	WORD	$0xf57ff05f // dmb sy
	MOVW	(R0), R1
	WORD	$0xf57ff05f // dmb sy
	MOVW	R1, ret+4(FP)
	RET

// func Write32(addr uintptr, val uint32)
TEXT ·Write32(SB),NOSPLIT,$0-8
	MOVW	addr+0(FP), R0
	MOVW	val+4(FP), R1
	WORD	$0xf57ff05f // dmb sy
	MOVW	R1, (R0)
	WORD	$0xf57ff05f // dmb sy
	RET

// func Barrier()
TEXT ·Barrier(SB),NOSPLIT,$0-0
	WORD	$0xf57ff05f // dmb sy
	RET

// func Pointer(addr uintptr) unsafe.Pointer
TEXT ·Pointer(SB),NOSPLIT,$0-8
	MOVW	addr+0(FP), R0
	MOVW	R0, ret+4(FP)
	RET
