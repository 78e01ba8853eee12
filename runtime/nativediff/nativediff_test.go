package nativediff_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/nativediff"
)

// Run's verdicts when this binary holds no translation (no nativegen
// package is linked into this test): a module both engines refuse
// passes as refused alike, and one the interpreter loads fails, named.
// runtime's TestNativeDifferentialCatches checks a translation that
// answers otherwise fails too.
func TestRunWithoutTranslations(t *testing.T) {
	ctx := context.Background()
	res := nativediff.Run(ctx, nativediff.Case{Module: "wat-badimport"}, actortest.Wat(t, "badimport"), nil)
	if res.Refused == nil || !strings.Contains(res.Refused.Error(), "import") || len(res.Mismatches) != 0 {
		t.Errorf("badimport: %+v, want refused alike", res)
	}
	res = nativediff.Run(ctx, nativediff.Case{Module: "wat-edge", Calls: []nativediff.Call{{Op: "echo"}}}, actortest.Wat(t, "edge"), nil)
	if res.Refused != nil || len(res.Mismatches) != 1 || !strings.Contains(res.Mismatches[0], "wat-edge") ||
		!strings.Contains(res.Mismatches[0], "holds no translation") || res.Calls != 0 {
		t.Errorf("edge untranslated: %+v, want one mismatch naming it", res)
	}
}

// Every case names a module actortest builds, and Names lists each once
// in the suite's order.
func TestCases(t *testing.T) {
	names := nativediff.Names()
	for i, c := range nativediff.Cases() {
		if !slices.Contains(names, c.Module) {
			t.Errorf("case %d: %s not in Names", i, c.Module)
		}
		if !strings.HasPrefix(c.Module, "wat-") && !strings.HasPrefix(c.Module, "go-") && c.Module != "ascript" {
			t.Errorf("case %d: %q is no name actortest.Named builds", i, c.Module)
		}
	}
	for i, n := range names {
		if slices.Index(names, n) != i {
			t.Errorf("%s listed twice", n)
		}
	}
}

// PrepareTimeout is a case's own init deadline where it sets one, else
// one past the runtime's, never a host's guess.
func TestPrepareTimeout(t *testing.T) {
	for m, want := range map[string]time.Duration{"wat-initspin": time.Second, "wat-initslow": time.Minute, "go-echo": time.Minute} {
		if got := nativediff.PrepareTimeout(m); got != want {
			t.Errorf("%s: %v, want %v", m, got, want)
		}
	}
}
