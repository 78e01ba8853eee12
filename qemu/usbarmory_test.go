package qemu

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/teastick/teastick/image/bootimg"
	"github.com/teastick/teastick/image/imx"
	"github.com/teastick/teastick/tpm/measure"
)

// usbarmoryImages are the test builds for TARGET=usbarmory, the .imx
// among them.
func usbarmoryImages(t testing.TB) (images, string) {
	img := testImagesFor(t, USBArmory.Name, 15*time.Minute)
	return img, filepath.Join(img.dir, "teastick-usbarmory.imx")
}

// bootPayload checks the .imx as mkimage reads it (mkimage -l): its
// entry is stage 0's ELF entry, and the payload it loads holds what stage
// 0 expects where it expects it (image/imx's Mk II layout): stage 0's
// code and read-only data at their addresses as they run (what stage 0
// checks against its own ELF copy at boot), and, where the directory says,
// the copy of stage 0's ELF file and the stick's container. It returns
// the payload, its load address, stage 0's entry and where stage 0's
// .bss ends.
func bootPayload(t *testing.T, img images, imxPath string) (payload []byte, load, entry, bssEnd uint64) {
	t.Helper()
	if _, err := exec.LookPath("mkimage"); err != nil {
		t.Fatalf("mkimage not found (Debian package u-boot-tools; make deps installs it): %v", err)
	}
	out, err := exec.Command("mkimage", "-l", imxPath).CombinedOutput()
	if err != nil {
		t.Fatalf("mkimage -l: %v\n%s", err, out)
	}
	field := func(re string) uint64 {
		m := regexp.MustCompile(re).FindSubmatch(out)
		if m == nil {
			t.Fatalf("mkimage -l shows no %q:\n%s", re, out)
		}
		v, err := strconv.ParseUint(string(m[1]), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if !bytes.Contains(out, []byte("Freescale IMX Boot Image")) || !bytes.Contains(out, []byte("Mode:         DCD")) {
		t.Fatalf("mkimage -l does not see an i.MX boot image with a DCD:\n%s", out)
	}
	imxEntry := field(`Entry Point:\s+([0-9a-f]+)`)
	self := field(`HAB Blocks:\s+0x([0-9a-f]+)`)

	f, err := elf.Open(img.stage0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fileEnd uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			fileEnd = max(fileEnd, p.Vaddr+p.Filesz)
			bssEnd = max(bssEnd, p.Vaddr+p.Memsz)
		}
	}
	// the file starts with the IVT, loaded at self; mkimage puts the
	// payload 0xc00 behind it (its IVT, boot data and DCD)
	load = self + 0xc00
	if imxEntry != f.Entry {
		t.Errorf(".imx entry %#x, stage 0's ELF entry %#x", imxEntry, f.Entry)
	}
	file, err := os.ReadFile(imxPath)
	if err != nil {
		t.Fatal(err)
	}
	stage0, _ := os.ReadFile(img.stage0)
	stick, _ := os.ReadFile(img.stick)
	container := bootimg.Wrap(stick)
	if fileEnd <= load || fileEnd-load+0xc00 > uint64(len(file)) {
		t.Fatalf("the .imx (%d bytes, payload at %#x) does not hold stage 0's file bytes up to %#x", len(file), load, fileEnd)
	}
	payload = file[0xc00 : 0xc00+fileEnd-load]
	s0, c, err := imx.Mk2.Split(payload, load)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s0, stage0) {
		t.Errorf("the payload's stage 0 ELF copy (%d bytes) is not stage 0's ELF file (%d bytes)", len(s0), len(stage0))
	}
	if !bytes.Equal(c, container) {
		t.Errorf("the payload's container (%d bytes) is not the stick's (%d bytes)", len(c), len(container))
	}
	var running []measure.Region
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W != 0 {
			continue
		}
		running = append(running, measure.Region{Addr: p.Vaddr, Bytes: payload[p.Vaddr-load : p.Vaddr-load+p.Filesz]})
	}
	if err := measure.CheckStage0(stage0, running); err != nil {
		t.Errorf("stage 0's code in the payload is not its ELF's: %v", err)
	}
	t.Logf("mkimage -l: entry %#x, IVT at %#x; payload %d bytes at %#x; .imx %d bytes", imxEntry, self, len(payload), load, len(file))
	return payload, load, f.Entry, bssEnd
}

// garbage writes a file of n bytes of b: what DDR may hold at power-on.
func garbage(t *testing.T, name string, n uint64, b byte) string {
	return writeFile(t, name, bytes.Repeat([]byte{b}, int(n)))
}

// TestUSBArmoryImage checks the flashable image with mkimage -l against
// the ELFs it was made from.
func TestUSBArmoryImage(t *testing.T) {
	img, imxPath := usbarmoryImages(t)
	payload, _, _, bssEnd := bootPayload(t, img, imxPath)
	if bssEnd > imx.Mk2RAMEnd {
		t.Errorf("stage 0's .bss ends at %#x, beyond RAM", bssEnd)
	}
	t.Logf("payload %d bytes (stage 0's .bss, to %#x, not in it)", len(payload), bssEnd)
}

// TestBootUSBArmory boots the very payload bytes of the Mk II's .imx on
// QEMU's i.MX6UL evaluation kit, as the boot ROM would leave them: QEMU's
// loader puts the payload at its load address and starts the CPU at the
// IVT's entry (the DCD's DDR set-up has no part under QEMU, whose RAM
// works from the start). QEMU's RAM starts zeroed, DDR does not: the
// test fills what the payload leaves out with garbage (stage 0's .bss,
// heap and stack, the hand-off area, the stick's RAM up to the end of its
// .bss), which stage 0 and the stick must clear or overwrite before use.
// Stage 0 finds no TPM, so it measures nothing,
// but it checks and loads the stick from the payload; the stick says
// which board it is on, that it has no hardware entropy, no TPM and no USB
// host, and serves nothing; the test build exits.
func TestBootUSBArmory(t *testing.T) {
	img, imxPath := usbarmoryImages(t)
	payload, load, entry, _ := bootPayload(t, img, imxPath)
	if t.Failed() {
		t.FailNow()
	}
	path := writeFile(t, "payload.bin", payload)
	stick, _ := os.ReadFile(img.stick)
	sum := sha256.Sum256(stick)
	sf, err := elf.Open(img.stick)
	if err != nil {
		t.Fatal(err)
	}
	var stickEnd uint64
	for _, p := range sf.Progs {
		if p.Type == elf.PT_LOAD {
			stickEnd = max(stickEnd, p.Vaddr+p.Memsz)
		}
	}
	sf.Close()
	afterPayload := (load + uint64(len(payload)) + 0xfff) &^ 0xfff
	dirty := []string{
		"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", qemuEscape(garbage(t, "stick-ram.bin", stickEnd-imx.Mk2RAMStart, 0xc3)), imx.Mk2RAMStart),
		"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", qemuEscape(garbage(t, "handoff.bin", imx.Mk2HandoffSize, 0xa5)), imx.Mk2HandoffBase),
		"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", qemuEscape(garbage(t, "stage0-ram.bin", imx.Mk2HandoffBase-afterPayload, 0x5a)), afterPayload),
	}
	tests := []bootCase{{
		name: "boot image payload: stage 0 loads the stick, which is not measured and serves nothing",
		machine: func(*testing.T) Machine {
			return Machine{Target: &USBArmory, MemoryMiB: 512, NoRNG: true, NoNet: true, Extra: append([]string{
				"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", qemuEscape(path), load),
				"-device", fmt.Sprintf("loader,addr=%#x,cpu-num=0", entry),
			}, dirty...)}
		},
		exitCode: 0,
		want: []string{
			`^teastick stage0 boot-test$`,
			`^stage0: stick image \d+ bytes sha256:` + hex.EncodeToString(sum[:]) + `$`,
			`^stage0: NOT MEASURED: mk2: no TPM on I2C1 at 0x2e: .*no acknowledge.*: the stick will serve no actors$`,
			`^stage0: loaded \d+ segments, starting the stick at 0x8[0-9a-f]{7}$`,
			`^teastick boot-test$`,
			`^board: usbarmory-mk2 cpu: cortex-a7$`,
			`^ram: 464 MiB at 0x80000000$`,
			`^entropy: NONE: emulated i\.MX6 \(no RNGB\).*never measured and never serves$`,
			`^tpm: mk2: no TPM on I2C1 at 0x2e: `,
			`^net: mk2: no USB host: `,
			`^teastick: test build, exiting$`,
		},
		reject: []string{`https on`, `^tpm: measured boot`, `^stage0: measured`, `FATAL`},
	}}
	runBootCases(t, tests, 5*time.Minute, "panic", "exception")
}
