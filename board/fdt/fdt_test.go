package fdt

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// dumpDTB asks QEMU for the devicetree of the arm virt machine the stick
// boots on, with extra devices.
func dumpDTB(t *testing.T, extra ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-arm"); err != nil {
		t.Fatalf("qemu-system-arm not found (Debian package qemu-system-arm; `make deps` installs it): %v", err)
	}
	out := filepath.Join(t.TempDir(), "virt.dtb")
	args := append([]string{"-machine", "virt,secure=on,dumpdtb=" + out, "-cpu", "cortex-a7", "-m", "1024M",
		"-nographic", "-monitor", "none", "-serial", "none",
		"-global", "virtio-mmio.force-legacy=false", "-device", "virtio-rng-device"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "qemu-system-arm", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu dumpdtb: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func startSWTPM(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("swtpm"); err != nil {
		t.Fatalf("swtpm not found (Debian package swtpm; `make deps` installs it): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir, "--ctrl", "type=unixio,path="+sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("swtpm did not start")
	return ""
}

func TestQEMUVirt(t *testing.T) {
	blob := dumpDTB(t)
	tree, err := Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	var memory *Node
	for _, n := range tree.Nodes {
		if n.Name() == "memory@40000000" {
			memory = n
		}
	}
	if memory == nil {
		t.Fatal("no memory@40000000 node")
	}
	reg, err := memory.Reg()
	if err != nil {
		t.Fatal(err)
	}
	if len(reg) != 1 || reg[0] != (Region{Addr: 0x40000000, Size: 1 << 30}) {
		t.Fatalf("memory %+v, want 1 GiB at 0x40000000", reg)
	}
	var uarts []uint64
	for _, n := range tree.Find("arm,pl011") {
		r, err := n.PhysRegions()
		if err != nil {
			t.Fatal(err)
		}
		uarts = append(uarts, r[0].Addr)
	}
	// the console, and the secure world's UART that secure=on adds
	if !slices.Contains(uarts, 0x09000000) || !slices.Contains(uarts, 0x09040000) {
		t.Fatalf("PL011s at %#x, want 0x9000000 and 0x9040000", uarts)
	}
	virtio := tree.Find("virtio,mmio")
	if len(virtio) != 32 {
		t.Fatalf("%d virtio-mmio slots, want 32", len(virtio))
	}
	if len(tree.Find("tcg,tpm-tis-mmio")) != 0 {
		t.Fatal("TPM found on a machine without one")
	}
}

func TestQEMUVirtTPM(t *testing.T) {
	sock := startSWTPM(t)
	tree, err := Parse(dumpDTB(t, "-chardev", "socket,id=chrtpm,path="+sock,
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis-device,tpmdev=tpm0"))
	if err != nil {
		t.Fatal(err)
	}
	tpm := tree.Find("tcg,tpm-tis-mmio")
	if len(tpm) != 1 {
		t.Fatalf("%d TIS TPMs, want 1", len(tpm))
	}
	reg, err := tpm[0].PhysRegions()
	if err != nil {
		t.Fatal(err)
	}
	if reg[0].Addr != 0x0c000000 || reg[0].Size != 0x5000 {
		t.Fatalf("TPM at %+v, want 0x5000 bytes at 0x0c000000", reg[0])
	}
}

func TestMalformed(t *testing.T) {
	good := dumpDTB(t)
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	offStruct := int(binary.BigEndian.Uint32(good[8:]))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMagic},
		{"zeros", make([]byte, 64), ErrMagic},
		{"truncated", good[:len(good)/2], ErrMalformed},
		{"huge total size", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 1<<31); return b }), ErrMalformed},
		{"old version", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[20:], 3); return b }), ErrMalformed},
		{"struct block beyond the blob", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[36:], 1<<30); return b }), ErrMalformed},
		{"unknown token", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offStruct:], 7); return b }), ErrMalformed},
		{"property outside a node", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offStruct:], tokenProp); return b }), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte{0xd0, 0x0d, 0xfe, 0xed})
	if b, err := os.ReadFile("testdata/virt.dtb"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := Parse(b)
		if err != nil {
			return
		}
		for _, n := range tree.Nodes {
			n.Reg()
			n.PhysRegions()
			n.Compatible("x")
			n.Name()
		}
	})
}
