// Package target is the board the build's TARGET names: firmware/stick and
// firmware/boot use Board and never import a board package themselves.
//
// The Makefile maps TARGET to one build tag (qemu: qemu_virt_arm, qemu-riscv64: qemu_virt_riscv64,
// usbarmory: usbarmory_mk2), and one
// file per board, constrained by that tag, sets Board; importing the board
// package there also wires its TamaGo runtime hooks. A GOOS=tamago build
// without a board tag fails to compile (none.go).
package target
