//go:build tamago && arm

package virt

import "github.com/teastick/teastick/board/armv7"

// Jump starts a loaded image (stage 0 starting the stick): armv7.Jump on
// this board's core. It does not return.
func Jump(to, handoffAddr uint32) {
	armv7.Jump(ARM, to, handoffAddr)
}
