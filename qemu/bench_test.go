package qemu

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs/kubotest"
)

// BenchmarkMeasuredBoot prices measured boot: wall time from QEMU start to
// the stick being ready to serve (its channel key line, printed once the
// TPM work is done), with a provisioned swtpm, for the normal images and
// for benchmark-only nomeasure images, in one run; it reports both and
// their ratio (goal: at most 1.1).
func BenchmarkMeasuredBoot(b *testing.B) {
	if why := CompilerMissing(root); why != "" {
		b.Skipf("SKIPPED (targets qemu and qemu-riscv64): %s", why)
	}
	for _, target := range Targets {
		b.Run(target.Name, func(b *testing.B) { measuredBoot(b, target) })
	}
}

// measuredBoot is BenchmarkMeasuredBoot on one target's machine.
func measuredBoot(b *testing.B, target Target) {
	ctx := context.Background()
	variants := []struct {
		name string
		tags string
	}{{"measured", ""}, {"unmeasured", "nomeasure"}}
	type machine struct {
		stage0, container string
		tpmDir            string
	}
	ms := make([]machine, len(variants))
	for i, v := range variants {
		dir := b.TempDir()
		bld := Build{Root: root, Dir: dir, Target: target.Name, Version: "bench", Tags: v.tags}
		stick, err := bld.Image(ctx)
		if err != nil {
			b.Fatal(err)
		}
		c, err := WrapStick(stick, dir)
		if err != nil {
			b.Fatal(err)
		}
		ms[i] = machine{stage0: bld.Stage0(), container: c, tpmDir: b.TempDir()}
	}
	boot := func(m machine, wantMeasured bool) time.Duration {
		tpm := &SWTPM{Dir: m.tpmDir, Provision: true}
		if err := tpm.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer tpm.Stop()
		var ready time.Duration
		start := time.Now()
		res, err := Machine{Target: &target, Kernel: m.stage0, StickImage: m.container, TPM: tpm, NoNet: true,
			Interact: func(line string) string {
				if strings.HasPrefix(line, "channel: key") {
					ready = time.Since(start)
					return "halt\n"
				}
				return ""
			}}.Run(ctx, time.Minute, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := res.Find("tpm: measured boot:"); ok != wantMeasured || ready == 0 {
			b.Fatalf("measured=%v, want %v; console:\n%s", ok, wantMeasured, res.Console)
		}
		return ready
	}
	// provision both TPMs outside the timing
	boot(ms[0], true)
	boot(ms[1], false)
	var measured, unmeasured time.Duration
	b.ResetTimer()
	// alternate which goes first, so neither always boots on a warmer host
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			measured += boot(ms[0], true)
			unmeasured += boot(ms[1], false)
		} else {
			unmeasured += boot(ms[1], false)
			measured += boot(ms[0], true)
		}
		i++
	}
	n := float64(b.N)
	b.ReportMetric(float64(measured.Milliseconds())/n, "measured-ms")
	b.ReportMetric(float64(unmeasured.Milliseconds())/n, "unmeasured-ms")
	b.ReportMetric(float64(measured)/float64(unmeasured), "measured/unmeasured")
}

// BenchmarkStickFetch measures how fast the stick under QEMU takes content
// from a kubo gateway on the host: TCP over virtio-net and gVisor through
// guestfwd, CAR parsing and verification of every block on the emulated
// Cortex-A7, reported in MB/s from the time the stick prints.
func BenchmarkStickFetch(b *testing.B) {
	if why := CompilerMissing(root); why != "" {
		b.Skipf("SKIPPED: %s", why)
	}
	// an image that runs until told to halt
	stick, err := Build{Root: root, Dir: b.TempDir(), Version: "bench"}.Image(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	node := kubotest.Start(b)
	const size = 8 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*13 + i/7919)
	}
	c := node.Publish(b, data)
	re := regexp.MustCompile(`^fetch: \S+ (\d+) bytes sha256:\S+ in (\d+) ms$`)
	var ms int
	for b.Loop() {
		res, err := Machine{Kernel: stick, BoxGateway: strings.TrimPrefix(node.Gateway, "http://"),
			InputAfter: "https on :80", Input: "fetch " + c.String() + "\nhalt\n"}.Run(context.Background(), 3*time.Minute, nil)
		if err != nil {
			b.Fatal(err)
		}
		l, ok := res.Find("fetch: ")
		m := re.FindStringSubmatch(l.Text)
		if !ok || m == nil || m[1] != strconv.Itoa(size) {
			b.Fatalf("no fetch line; console:\n%s", res.Console)
		}
		n, _ := strconv.Atoi(m[2])
		ms += n
	}
	b.ReportMetric(float64(size)*float64(b.N)/(float64(ms)/1000)/1e6, "stick-fetch-MB/s")
}
