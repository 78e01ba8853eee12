package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	rvOnce     sync.Once
	rvBuilt    images
	rvBuiltErr error
)

// riscv64Images are the test builds for TARGET=qemu-riscv64: the stick
// exits after two heartbeats through the SiFive test device.
func riscv64Images(t testing.TB) images {
	t.Helper()
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU boot test SKIPPED (targets qemu and qemu-riscv64): %s", why)
	}
	rvOnce.Do(func() {
		dir, err := os.MkdirTemp("", "teastick-boot-rv64-")
		if err != nil {
			rvBuiltErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		b := Build{Root: root, Dir: dir, Target: RISCV64.Name, Version: "boot-test", ExitAfter: 2}
		rvBuilt.dir = dir
		rvBuilt.stick, rvBuiltErr = b.Image(ctx)
		if rvBuiltErr != nil {
			return
		}
		rvBuilt.stage0 = b.Stage0()
		rvBuilt.container, rvBuiltErr = WrapStick(rvBuilt.stick, dir)
	})
	if rvBuiltErr != nil {
		t.Fatal(rvBuiltErr)
	}
	return rvBuilt
}

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
	tests := []struct {
		name     string
		machine  func(t *testing.T) Machine
		exitCode int
		want     []string
	}{
		{
			name:     "stick boots to banner without a TPM",
			machine:  func(*testing.T) Machine { return Machine{Target: &RISCV64, Kernel: img.stick} },
			exitCode: 0,
			want:     append([]string{`^tpm: virtrv64: no TIS TPM at 0x4000000`}, banner...),
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
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.machine(t).Run(context.Background(), 3*time.Minute, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != tc.exitCode {
				t.Errorf("exit code %d, want %d", res.ExitCode, tc.exitCode)
			}
			for _, w := range tc.want {
				re := regexp.MustCompile(w)
				found := false
				for _, l := range res.Lines {
					found = found || re.MatchString(l.Text)
				}
				if !found {
					t.Errorf("console lacks %s", w)
				}
			}
			for _, bad := range []string{"panic", "exception"} {
				if strings.Contains(res.Console, bad) {
					t.Errorf("console shows %q", bad)
				}
			}
			t.Logf("console:\n%s", res.Console)
		})
	}
}
