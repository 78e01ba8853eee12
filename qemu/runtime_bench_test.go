package qemu

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
)

// BenchmarkRuntimeOnStick runs the actor runtime's benchmarks on the stick
// under QEMU (wazero's interpreter on the emulated Cortex-A7): a real kubo
// node as the box holds the example actors and the edge fixture, and the
// console's bench command (firmware/stick/benchcmd.go, runtime/benchmode)
// fetches them by CID and measures every figure in one run. The stick
// boots without stage 0 or a TPM: bench mode runs actors in a runtime of
// its own, which measurement does not gate.
func BenchmarkRuntimeOnStick(b *testing.B) {
	if why := CompilerMissing(root); why != "" {
		b.Skipf("QEMU runtime benchmark SKIPPED (targets qemu and qemu-riscv64): %s", why)
	}
	for _, target := range Targets {
		b.Run(target.Name, func(b *testing.B) { runtimeOnStick(b, target) })
	}
}

// runtimeOnStick is BenchmarkRuntimeOnStick on one target's machine.
func runtimeOnStick(b *testing.B, target Target) {
	stick, err := Build{Root: root, Dir: b.TempDir(), Target: target.Name, Version: "bench"}.Image(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	benchOnStick(b, target, stick, false)
}

// BenchmarkNativeRuntimeOnStick is BenchmarkRuntimeOnStick on a stick
// image with the example actors translated and compiled in (NativeImage,
// as make qemu NATIVE=1 builds it), its bench command asked to run them
// natively ("bench native"): every figure names the engine its actor ran
// on (the edge fixture and the unmetered kernel stay in the interpreter,
// and so does the notary's SHA-256 figure, loaded under another memory
// limit than it was translated with). On arm unless NativeTargetEnv
// names another target: the image takes minutes per actor to compile.
func BenchmarkNativeRuntimeOnStick(b *testing.B) {
	if why := CompilerMissing(root); why != "" {
		b.Skipf("QEMU native runtime benchmark SKIPPED: %s", why)
	}
	ctx := context.Background()
	target := nativeTarget(b)
	b.Logf("target %s (%s)", target.Name, NativeTargetEnv)
	bld, _ := NativeImage(b, ctx, Build{Dir: b.TempDir(), Target: target.Name, Version: "bench"}, "echo", "kernel", "notary", "wordcount")
	start := time.Now()
	stick, err := bld.Image(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("native image built in %v", time.Since(start).Round(time.Second))
	benchOnStick(b, target, stick, true)
}

// benchOnStick runs the console's bench command on the stick image and
// reports its figures; native asks for "bench native".
func benchOnStick(b *testing.B, target Target, stick string, native bool) {
	cmd := "bench "
	if native {
		cmd = "bench native "
	}
	node := kubotest.Start(b)
	put := func(data []byte) string { return node.Publish(b, data).String() }
	cids := []string{
		put(actortest.GoActor(b, "echo")),
		put(actortest.GoActor(b, "kernel")),
		put(actortest.GoActor(b, "notary")),
		put(actortest.GoActor(b, "wordcount")),
		put(actortest.Wat(b, "edge")),
	}
	const f = `([0-9]+(?:\.[0-9]+)?)`
	figures := []struct {
		re    string
		units []string // one per captured number
	}{
		{`^bench: receipt-sign ` + f + ` us/op `, []string{"receipt-sign-us/op"}},
		{`^bench: empty-invoke edge ` + f + ` us/op `, []string{"edge-empty-us/op"}},
		{`^bench: empty-invoke echo ` + f + ` us/op `, []string{"echo-empty-us/op"}},
		{`^bench: kernel native ` + f + ` ms actor ` + f + ` ms ratio ` + f + `x `,
			[]string{"kernel-native-ms", "kernel-actor-ms", "kernel-x-native"}},
		{`^bench: meter yields every ` + f + ` ms of the kernel \(` + f + ` yields a run, ` + f + ` ms a run given to the rest of the stick: ratio ` + f + `x without it`,
			[]string{"kernel-yield-every-ms", "kernel-yields/run", "kernel-given-ms", "kernel-x-native-own"}},
		{`^bench: sha256-1MiB native ` + f + ` ms capability ` + f + ` ms ratio ` + f + `x `,
			[]string{"sha256-native-ms", "sha256-capability-ms", "sha256-x-native"}},
		{`^bench: sha256-1MiB edge native ` + f + ` ms capability ` + f + ` ms ratio ` + f + `x `,
			[]string{"sha256-edge-native-ms", "sha256-edge-capability-ms", "sha256-edge-x-native"}},
		{`^bench: cold-start echo ` + f + ` ms, again ` + f + ` ms`, []string{"cold-echo-ms", "cold-echo-again-ms"}},
		{`^bench: cold-start kernel ` + f + ` ms, again ` + f + ` ms`, []string{"cold-kernel-ms", "cold-kernel-again-ms"}},
		{`^bench: cold-start notary ` + f + ` ms, again ` + f + ` ms`, []string{"cold-notary-ms", "cold-notary-again-ms"}},
		{`^bench: cold-start wordcount ` + f + ` ms, again ` + f + ` ms`, []string{"cold-wordcount-ms", "cold-wordcount-again-ms"}},
		{`^bench: idle-instance-heap echo (-?[0-9]+(?:\.[0-9]+)?) KiB beyond linear memory`, []string{"idle-heap-KiB"}},
	}
	sums := make([][]float64, len(figures))
	for i, fig := range figures {
		sums[i] = make([]float64, len(fig.units))
	}
	for b.Loop() {
		res, err := Machine{Target: &target, Kernel: stick, BoxGateway: strings.TrimPrefix(node.Gateway, "http://"),
			Interact: func(line string) string {
				switch {
				case strings.Contains(line, "https on :80"):
					return cmd + strings.Join(cids, " ") + "\n"
				case strings.HasPrefix(line, "bench: done in "), strings.HasPrefix(line, "bench: FAILED"),
					strings.HasPrefix(line, "bench: usage"), strings.HasPrefix(line, "bench: bad CID"):
					return "halt\n"
				}
				return ""
			}}.Run(context.Background(), 15*time.Minute, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range res.Lines {
			if strings.HasPrefix(l.Text, "bench: ") {
				b.Log(l.Text)
			}
		}
		if strings.Contains(res.Console, "bench: FAILED") || strings.Contains(res.Console, " FAILED: ") {
			b.Fatalf("bench failed; console:\n%s", res.Console)
		}
		for i, fig := range figures {
			re := regexp.MustCompile(fig.re)
			var m []string
			for _, l := range res.Lines {
				if m = re.FindStringSubmatch(l.Text); m != nil {
					break
				}
			}
			if m == nil {
				b.Fatalf("no line matching %q; console:\n%s", fig.re, res.Console)
			}
			for j, s := range m[1:] {
				x, _ := strconv.ParseFloat(s, 64)
				sums[i][j] += x
			}
		}
	}
	for i, fig := range figures {
		for j, unit := range fig.units {
			b.ReportMetric(sums[i][j]/float64(b.N), unit)
		}
	}
}
