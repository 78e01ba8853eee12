//go:build tamago && !qemu_virt_arm && !qemu_virt_riscv64 && !usbarmory_mk2

package target

// No board tag: build through the Makefile (make TARGET=...), which adds
// the tag of the TARGET's board.
var Board = build_with_make_TARGET_to_choose_a_board
