//go:build tamago && arm && stage0

#include "textflag.h"

// The bounds of stage 0's code, read-only data and function table as the
// Go linker laid them out (cmd/link/internal/ld/data.go defines these
// symbols; assembly may refer to linker-defined symbols).

// func textRange() (start, end uintptr)
TEXT ·textRange(SB),NOSPLIT,$0-8
	MOVW	$runtime·text(SB), R0
	MOVW	R0, start+0(FP)
	MOVW	$runtime·etext(SB), R0
	MOVW	R0, end+4(FP)
	RET

// func rodataRange() (start, end uintptr)
TEXT ·rodataRange(SB),NOSPLIT,$0-8
	MOVW	$runtime·rodata(SB), R0
	MOVW	R0, start+0(FP)
	MOVW	$runtime·erodata(SB), R0
	MOVW	R0, end+4(FP)
	RET

// func pclntabRange() (start, end uintptr)
TEXT ·pclntabRange(SB),NOSPLIT,$0-8
	MOVW	$runtime·pclntab(SB), R0
	MOVW	R0, start+0(FP)
	MOVW	$runtime·epclntab(SB), R0
	MOVW	R0, end+4(FP)
	RET
