//go:build tamago && arm

#include "textflag.h"

// func semihosting(op uint32, arg uint32) uint32
//
// Arm semihosting (Semihosting for AArch32 and AArch64, release 2.0): in A32
// state the call is SVC 0x123456 with the operation in R0 and its argument in
// R1; the result comes back in R0.
TEXT ·semihosting(SB),NOSPLIT,$0-12
	MOVW	op+0(FP), R0
	MOVW	arg+4(FP), R1
	WORD	$0xef123456 // svc 0x123456
	MOVW	R0, ret+8(FP)
	RET

// func halt()
TEXT ·halt(SB),NOSPLIT|NOFRAME,$0
	WORD	$0xf10c0080 // cpsid i
loop:
	WORD	$0xe320f003 // wfi
	B	loop
