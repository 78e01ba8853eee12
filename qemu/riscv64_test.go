package qemu

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/teastick/teastick/image/bootimg"
)

// riscv64Images are the test builds for TARGET=qemu-riscv64.
func riscv64Images(t testing.TB) images { return testImagesFor(t, RISCV64.Name, 15*time.Minute) }

// TestBootRISCV64 boots the riscv64 images on QEMU's riscv64 virt
// machine: the stick alone to its banner, and stage 0 measuring itself
// and the stick into swtpm's TPM before starting it.
func TestBootRISCV64(t *testing.T) {
	img := riscv64Images(t)
	file, err := os.ReadFile(img.stage0)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(file)
	stage0Digest := hex.EncodeToString(sum[:])
	stick, err := os.ReadFile(img.stick)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(stick)
	corrupt[1] = 'X' // ELF magic
	container, err := os.ReadFile(img.container)
	if err != nil {
		t.Fatal(err)
	}
	banner := []string{
		`^teastick boot-test$`,
		`^board: qemu-virt-riscv64 cpu: rv64gc$`,
		`^ram: 512 MiB at 0x80000000$`,
		`^entropy: virtio-rng \(slot \d+\) -> chacha20 drbg$`,
		`^devices: .*rng@0x1000[1-8]000\(slot \d+, v2\)`,
		`^irq: none: this board polls its devices$`,
		`^net: virtio-net slot \d+ mac 52:54:00:12:34:56, 10\.0\.2\.15/24 via 10\.0\.2\.2, https on :80$`,
		`^teastick: test build, exiting$`,
	}
	tests := []bootCase{
		{
			name:     "stick boots to banner without a TPM",
			machine:  func(*testing.T) Machine { return Machine{Target: &RISCV64, Kernel: img.stick} },
			exitCode: 0,
			want:     append([]string{`^tpm: virtrv64: no TIS TPM at 0x4000000`}, banner...),
			reject:   []string{`^heartbeat`}, // the quiet console, as on arm
		},
		{
			name: "stick boots to banner on QEMU's default legacy (version 1) virtio-mmio",
			machine: func(*testing.T) Machine {
				return Machine{Target: &RISCV64, Kernel: img.stick, LegacyVirtio: true}
			},
			exitCode: 0,
			want:     legacyBanner(banner),
		},
		{
			name:     "no entropy device: the stick refuses to boot",
			machine:  func(*testing.T) Machine { return Machine{Target: &RISCV64, Kernel: img.stick, NoRNG: true} },
			exitCode: 3,
			want:     []string{`^teastick: FATAL: no entropy source`},
		},
		// TestBoot's stage 0 and TPM cases, on this board
		{
			name:     "stage 0 without a stick image stops",
			machine:  func(*testing.T) Machine { return Machine{Target: &RISCV64, Kernel: img.stage0} },
			exitCode: 4,
			want:     []string{`^stage0: FATAL: no stick image at 0xb0000000: bootimg: not a stick image`},
			reject:   []string{`^teastick boot-test`},
		},
		{
			name: "stage 0 refuses a malformed stick image",
			machine: func(t *testing.T) Machine {
				return Machine{Target: &RISCV64, Kernel: img.stage0, StickImage: writeFile(t, "bad.img", bootimg.Wrap(corrupt))}
			},
			exitCode: 5,
			want:     []string{`^stage0: FATAL: stick image rejected: bootimg: unusable ELF image`},
			reject:   []string{`^teastick boot-test`},
		},
		{
			name: "stage 0 refuses a truncated container",
			machine: func(t *testing.T) Machine {
				return Machine{Target: &RISCV64, Kernel: img.stage0, StickImage: writeFile(t, "short.img", container[:len(container)/2])}
			},
			exitCode: 4,
			want:     []string{`^stage0: FATAL: no stick image .*bootimg: image damaged \(digest mismatch\)`},
			reject:   []string{`^teastick boot-test`},
		},
		{
			name: "stick without stage 0 is not measured",
			machine: func(t *testing.T) Machine {
				return Machine{Target: &RISCV64, Kernel: img.stick, TPM: startTPM(t, true)}
			},
			exitCode: 0,
			want: []string{
				`^tpm: TIS at 0x4000000 did_vid 0x00011014$`,
				`^tpm: NOT MEASURED: no measured-boot hand-off from stage 0: .*: serving no actors$`,
				`^teastick: test build, exiting$`,
			},
			reject: []string{`^tpm: measured boot`, `FAULT`, `REFUSING`}, // the unstarted TPM is left alone
		},
		{
			name: "measured boot: stage 0 measures itself and the stick into the TPM",
			machine: func(t *testing.T) Machine {
				return Machine{Target: &RISCV64, Kernel: img.stage0, StickImage: img.container, TPM: startTPM(t, true)}
			},
			exitCode: 0,
			want: append([]string{
				`^stage0: measured itself into PCR 0: \d+ bytes sha256:` + stage0Digest + `$`,
				`^stage0: measured the stick into PCR 4, separators on PCRs 0-7, \d+-byte event log handed over$`,
				`^stage0: loaded \d+ segments, starting the stick at 0x8[0-9a-f]{7}$`,
				`^tpm: TIS at 0x4000000 did_vid 0x00011014$`,
				`^tpm: measured boot: \d+ events replay to the TPM's PCRs$`,
			}, banner...),
		},
	}
	runBootCases(t, tests, 3*time.Minute, "panic", "exception")
}
