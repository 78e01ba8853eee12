package qemu

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/nativediff"
)

// TestStickNativeDifferential runs the native engine's differential suite
// (runtime/nativediff, which runtime's TestNativeDifferential runs on the
// host) on the stick under QEMU, where the translations are compiled for
// the board (32-bit arm by default: the word accesses and comparisons
// translate rewrites for it run only there): every WAT fixture, every
// example actor and the AssemblyScript guest are built with their real
// toolchains, those the runtime accepts are translated into the image
// (NativeImageOf, as a release's are), all are published to a real kubo
// node as the box, and the console's nativediff command fetches them by
// CID and runs every case in the interpreter and natively on the stick.
// Each case must agree (or be refused alike), and the stick must report
// every case, none failed and none skipped.
func TestStickNativeDifferential(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU native differential test SKIPPED: %s", why)
	}
	target := nativeTarget(t)
	t.Logf("target %s (%s)", target.Name, NativeTargetEnv)
	ctx := context.Background()
	names := nativediff.Names()
	code := map[string][]byte{}
	translated := map[string][]byte{}
	for _, n := range names {
		m := actortest.Named(t, n)
		code[n] = m
		// What the runtime refuses has nothing to translate (as
		// runtime/internal/nativegen): the suite checks both engines
		// refuse it alike.
		pctx, cancel := context.WithTimeout(ctx, nativediff.PrepareTimeout(n))
		_, err := runtime.PrepareNative(pctx, n, actortest.CID(m), m, runtime.Limits{})
		cancel()
		if err == nil {
			translated[n] = m
		} else {
			t.Logf("%s: refused, not translated: %v", n, err)
		}
	}
	b := NativeImageOf(t, ctx, Build{Dir: t.TempDir(), Target: target.Name, Version: "nativediff"}, translated)
	start := time.Now()
	stick, err := b.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stick image with %d translations built in %v", len(translated), time.Since(start).Round(time.Second))
	node := kubotest.Start(t)
	var args []string
	for _, n := range names {
		args = append(args, n+"="+node.Publish(t, code[n]).String())
	}
	res, err := Machine{Target: &target, Kernel: stick, BoxGateway: strings.TrimPrefix(node.Gateway, "http://"),
		Interact: func(line string) string {
			if strings.HasPrefix(line, "nativediff: ") {
				t.Log(line) // as it comes: the suite takes minutes
			}
			switch {
			case strings.Contains(line, "https on :80"):
				return "nativediff " + strings.Join(args, " ") + "\n"
			case strings.HasPrefix(line, "nativediff: done: "), strings.HasPrefix(line, "nativediff: usage"),
				strings.HasPrefix(line, "nativediff: FAILED"), strings.HasPrefix(line, "nativediff: bad CID"),
				strings.HasPrefix(line, "console: unknown command"):
				return "halt\n"
			}
			return ""
		}}.Run(ctx, 40*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range res.Lines {
		if strings.HasPrefix(l.Text, "nativediff: ") {
			got = append(got, l.Text)
		}
	}
	head := regexp.MustCompile(fmt.Sprintf(`^nativediff: %d modules fetched, %d translations in this image, on tamago/(arm|riscv64)$`, len(names), len(translated)))
	if len(got) == 0 || !head.MatchString(got[0]) {
		t.Fatalf("first line %q, want %s; console:\n%s", first(got), head, res.Console)
	}
	for _, l := range got {
		if strings.Contains(l, " FAILED: ") {
			t.Error(l)
		}
	}
	// One line per case, in the suite's order, each agreeing with every
	// call or refused alike.
	cases, suite := got[1:], nativediff.Cases()
	if n := len(suite); len(cases) != n+1 {
		t.Fatalf("%d case lines, want %d and the summary", len(cases)-1, n)
	}
	for i, c := range suite {
		re := regexp.MustCompile(`^nativediff: ` + regexp.QuoteMeta(c.Module) + `( granted \S+)? (agrees: ` + fmt.Sprint(len(c.Calls)) + ` calls|refused alike) in [0-9]+ ms`)
		if !re.MatchString(cases[i]) {
			t.Errorf("case %d (%s): %q", i, c.Module, cases[i])
		}
		if _, ok := translated[c.Module]; ok != strings.Contains(cases[i], " agrees: ") {
			t.Errorf("case %d (%s): %q, translated into the image: %t (want agrees exactly when it was)", i, c.Module, cases[i], ok)
		}
	}
	done := regexp.MustCompile(fmt.Sprintf(`^nativediff: done: %d cases, 0 failed, 0 skipped \(no module given\), in [0-9]+ ms$`, len(suite)))
	if !done.MatchString(cases[len(cases)-1]) {
		t.Errorf("summary %q", cases[len(cases)-1])
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
