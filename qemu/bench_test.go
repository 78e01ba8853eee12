package qemu

import (
	"context"
	"strings"
	"testing"
	"time"
)

// BenchmarkMeasuredBoot prices measured boot: wall time from QEMU start to
// the stick being ready to serve (its channel key line, printed once the
// TPM work is done), with a provisioned swtpm, for the normal images and
// for benchmark-only nomeasure images, in one run; it reports both and
// their ratio (goal: at most 1.1).
func BenchmarkMeasuredBoot(b *testing.B) {
	if why := CompilerMissing(root); why != "" {
		b.Skipf("SKIPPED: %s", why)
	}
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
		bld := Build{Root: root, Dir: dir, Version: "bench", Tags: v.tags}
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
		res, err := Machine{Kernel: m.stage0, StickImage: m.container, TPM: tpm, NoNet: true,
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
