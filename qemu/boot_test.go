package qemu

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

const root = ".."

var (
	imageOnce sync.Once
	imagePath string
	imageErr  error
)

// testImage builds the test image once per test binary: it exits after two
// heartbeats through semihosting.
func testImage(t testing.TB) string {
	t.Helper()
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU boot test SKIPPED: %s", why)
	}
	imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "teastick-boot-")
		if err != nil {
			imageErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		imagePath, imageErr = Build{Root: root, Dir: dir, Version: "boot-test", ExitAfter: 2}.Image(ctx)
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imagePath
}

func TestBoot(t *testing.T) {
	image := testImage(t)
	tests := []struct {
		name     string
		machine  Machine
		exitCode int
		want     []string
		reject   []string
	}{
		{
			name:     "boots to banner and heartbeats",
			machine:  Machine{Kernel: image},
			exitCode: 0,
			want: []string{
				`^teastick boot-test$`,
				`^board: qemu-virt-arm cpu: cortex-a7$`,
				`^ram: 512 MiB at 0x40000000$`,
				`^entropy: virtio-rng \(slot \d+\) -> chacha20 drbg$`,
				`^devices: .*rng@0x[0-9a-f]+\(slot \d+, v2\)`,
				`^boot: banner at \d+ ms$`,
				`^heartbeat 1 uptime \d+ ms$`,
				`^heartbeat 2 uptime \d+ ms$`,
				`^teastick: test build, exiting$`,
			},
			reject: []string{`FATAL`, `panic`, `exception`},
		},
		{
			name:     "refuses to run without an entropy source",
			machine:  Machine{Kernel: image, NoRNG: true},
			exitCode: 3,
			want:     []string{`^teastick: FATAL: no entropy source: .*virtio-rng`},
			reject:   []string{`^teastick boot-test`, `heartbeat`},
		},
		{
			name:     "refuses a legacy virtio transport",
			machine:  Machine{Kernel: image, LegacyVirtio: true},
			exitCode: 3,
			want: []string{
				`legacy \(version 1\) virtio-mmio device`,
				`^teastick: FATAL: no entropy source`,
			},
			reject: []string{`heartbeat`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.machine.Run(context.Background(), 90*time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != tc.exitCode {
				t.Errorf("exit status %d, want %d", res.ExitCode, tc.exitCode)
			}
			for _, w := range tc.want {
				if !matchLine(res, w) {
					t.Errorf("console has no line matching %q", w)
				}
			}
			for _, r := range tc.reject {
				if matchLine(res, r) {
					t.Errorf("console has a line matching %q", r)
				}
			}
			if t.Failed() {
				t.Logf("console:\n%s", res.Console)
			}
		})
	}
}

func matchLine(res *Result, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, l := range res.Lines {
		if re.MatchString(l.Text) {
			return true
		}
	}
	return false
}

// The banner line carries the guest's own clock; the benchmark reports it
// with the host's wall time from QEMU start to the banner and the image size.
func BenchmarkBootToBanner(b *testing.B) {
	image := testImage(b)
	st, err := os.Stat(image)
	if err != nil {
		b.Fatal(err)
	}
	bannerRE := regexp.MustCompile(`^boot: banner at (\d+) ms$`)
	var wall, guest time.Duration
	for b.Loop() {
		res, err := Machine{Kernel: image}.Run(context.Background(), 90*time.Second, nil)
		if err != nil {
			b.Fatal(err)
		}
		l, ok := res.Find("boot: banner at")
		if !ok {
			b.Fatalf("no banner:\n%s", res.Console)
		}
		wall += l.At
		if m := bannerRE.FindStringSubmatch(l.Text); m != nil {
			ms, _ := strconv.Atoi(m[1])
			guest += time.Duration(ms) * time.Millisecond
		}
	}
	b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms-to-banner")
	b.ReportMetric(float64(guest.Milliseconds())/float64(b.N), "guest-ms-to-banner")
	b.ReportMetric(float64(st.Size()), "image-bytes")
}
