package benchmode_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/benchmode"
)

// examples are the four Go examples bench mode measures.
func examples(t *testing.T) benchmode.Modules {
	return benchmode.Modules{
		Echo:      benchmode.Module{Code: actortest.GoActor(t, "echo")},
		Kernel:    benchmode.Module{Code: actortest.GoActor(t, "kernel")},
		Notary:    benchmode.Module{Code: actortest.GoActor(t, "notary")},
		Wordcount: benchmode.Module{Code: actortest.GoActor(t, "wordcount")},
	}
}

// TestRun runs bench mode on the host with wazero's interpreter (the
// stick's engine) and checks that every figure is printed, sane.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four Go actors and runs them for seconds")
	}
	mods := examples(t)
	// A CID given, as the stick's command gives it.
	mods.Edge = benchmode.Module{CID: actortest.CID(actortest.Wat(t, "edge")), Code: actortest.Wat(t, "edge")}
	rt := runtime.New(runtime.Config{Engine: runtime.EngineInterpreter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer rt.Close()
	var out bytes.Buffer
	err := benchmode.Run(context.Background(), io.MultiWriter(&out, testWriter{t}), rt, mods)
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if strings.Contains(text, "FAILED") {
		t.Errorf("a figure failed:\n%s", text)
	}
	const f = `([0-9]+(?:\.[0-9]+)?)`
	figures := []struct {
		re     string
		lo, hi []float64 // bounds of each captured number
	}{
		{`^bench: runtime interpreter on \w+/\w+$`, nil, nil},
		{`^bench: empty-invoke edge ` + f + ` us/op \(n=200, (?:interpreter|compiler|native)\)$`, []float64{0.1}, []float64{100_000}},
		{`^bench: empty-invoke echo ` + f + ` us/op \(n=200, (?:interpreter|compiler|native)\)$`, []float64{0.1}, []float64{100_000}},
		// The interpreter runs the kernel well over twice as slow as Go.
		// The meter's figure is the metered actor's time over the
		// unmetered one's, less one, in percent: bounded loosely, as
		// noise on a shared machine goes either way.
		{`^bench: kernel native ` + f + ` ms actor ` + f + ` ms ratio ` + f + `x unmetered ` + f + ` ms ratio ` + f + `x meter (-?[0-9]+(?:\.[0-9]+)?)% \(n=32 rounds=2 runs=3, actor (?:interpreter|compiler|native), unmetered (?:interpreter|compiler|native)\)$`,
			[]float64{0.001, 0.01, 2, 0.01, 2, -50}, []float64{10_000, 60_000, 100_000, 60_000, 100_000, 1000}},
		// Aimed at 1 ms; loose bounds, a loaded host stretches it. The
		// time given to the rest is at least zero, and the ratio without
		// it more than the Go kernel's nothing.
		{`^bench: meter yields every ` + f + ` ms of the kernel \(` + f + ` yields a run, ` + f + ` ms a run given to the rest of the stick: ratio ` + f + `x without it\)$`,
			[]float64{0.01, 1, 0, 0.01}, []float64{100, 1e7, 60_000, 100_000}},
		// The hash runs natively either way: the capability costs the
		// copies, not another hash.
		{`^bench: sha256-1MiB native ` + f + ` ms capability ` + f + ` ms ratio ` + f + `x \(runs=3, (?:interpreter|compiler|native)\)$`,
			[]float64{0.01, 0.01, 0.5}, []float64{10_000, 60_000, 1000}},
		{`^bench: sha256-1MiB edge native ` + f + ` ms capability ` + f + ` ms ratio ` + f + `x \(runs=3, (?:interpreter|compiler|native)\)$`,
			[]float64{0.01, 0.01, 0.5}, []float64{10_000, 60_000, 1000}},
		{`^bench: cold-start echo ` + f + ` ms, again ` + f + ` ms \(` + f + ` bytes, (?:interpreter|compiler)\)$`, []float64{1, 1, 10_000}, []float64{60_000, 60_000, 1e9}},
		{`^bench: cold-start kernel ` + f + ` ms, again ` + f + ` ms \(` + f + ` bytes, (?:interpreter|compiler)\)$`, []float64{1, 1, 10_000}, []float64{60_000, 60_000, 1e9}},
		{`^bench: cold-start notary ` + f + ` ms, again ` + f + ` ms \(` + f + ` bytes, (?:interpreter|compiler)\)$`, []float64{1, 1, 10_000}, []float64{60_000, 60_000, 1e9}},
		{`^bench: cold-start wordcount ` + f + ` ms, again ` + f + ` ms \(` + f + ` bytes, (?:interpreter|compiler)\)$`, []float64{1, 1, 10_000}, []float64{60_000, 60_000, 1e9}},
		// The budget is 256 KiB; allow noise from the GC either
		// way, but not a linear memory counted as heap.
		{`^bench: idle-instance-heap echo (-?[0-9]+(?:\.[0-9]+)?) KiB beyond linear memory \(n=4, linear ` + f + ` KiB each, (?:interpreter|compiler|native)\)$`,
			[]float64{-64, 64}, []float64{1024, 1 << 20}},
		{`^bench: done in ` + f + ` ms$`, []float64{1}, []float64{600_000}},
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) != len(figures) {
		t.Errorf("%d lines, want %d", len(lines), len(figures))
	}
	for _, fig := range figures {
		re := regexp.MustCompile(fig.re)
		var m []string
		for _, l := range lines {
			if m = re.FindStringSubmatch(l); m != nil {
				break
			}
		}
		if m == nil {
			t.Errorf("no line matching %q", fig.re)
			continue
		}
		for i, s := range m[1:] {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil || x < fig.lo[i] || x > fig.hi[i] {
				t.Errorf("%q: figure %d is %s, want %g..%g", m[0], i+1, s, fig.lo[i], fig.hi[i])
			}
		}
	}
}

// TestRunMissingModule: a figure without its module fails alone.
func TestRunMissingModule(t *testing.T) {
	rt := runtime.New(runtime.Config{Engine: runtime.EngineInterpreter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer rt.Close()
	edge := actortest.Wat(t, "edge")
	var out bytes.Buffer
	err := benchmode.RunOptions(context.Background(), &out, rt, benchmode.Modules{Edge: benchmode.Module{Code: edge}},
		benchmode.Options{EmptyCalls: 5})
	if err == nil {
		t.Fatal("no error without the example actors")
	}
	for _, want := range []string{
		"bench: runtime interpreter on ",
		"bench: empty-invoke edge ",
		"bench: kernel FAILED: no kernel module",
		"bench: cold-start wordcount FAILED: no wordcount module",
		"bench: done in ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	if len(rt.Actors()) != 0 {
		t.Errorf("actors left loaded: %v", rt.Actors())
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
