// Package kubo pins the IPFS node the tests and the QEMU launcher use as
// the stick's box: kubo v0.42.0, built as a Go tool of this small module so
// that its large dependency graph stays out of the stick's go.mod.
//
//	go -C qemu/kubo build -o build/tools/ipfs github.com/ipfs/kubo/cmd/ipfs
//
// (v0.43.1 does not build from the module proxy: its go.mod replaces
// go-libp2p with a fork that is not served.)
package kubo
