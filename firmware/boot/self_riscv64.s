//go:build tamago && riscv64 && stage0

#include "textflag.h"

// The bounds of stage 0's code, read-only data and function table as the
// Go linker laid them out (cmd/link/internal/ld/data.go defines these
// symbols; assembly may refer to linker-defined symbols).

// func textRange() (start, end uintptr)
TEXT ·textRange(SB),NOSPLIT,$0-16
	MOV	$runtime·text(SB), A0
	MOV	A0, start+0(FP)
	MOV	$runtime·etext(SB), A0
	MOV	A0, end+8(FP)
	RET

// func rodataRange() (start, end uintptr)
TEXT ·rodataRange(SB),NOSPLIT,$0-16
	MOV	$runtime·rodata(SB), A0
	MOV	A0, start+0(FP)
	MOV	$runtime·erodata(SB), A0
	MOV	A0, end+8(FP)
	RET

// func pclntabRange() (start, end uintptr)
TEXT ·pclntabRange(SB),NOSPLIT,$0-16
	MOV	$runtime·pclntab(SB), A0
	MOV	A0, start+0(FP)
	MOV	$runtime·epclntab(SB), A0
	MOV	A0, end+8(FP)
	RET
