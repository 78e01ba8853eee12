//go:build nativegen

package runtime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/native"

	_ "github.com/teastick/teastick/build/_native/rt"
)

// restored loads module natively under grants and reports whether its
// first instance started from the translation's snapshot, checking that
// such an instance's memory has the capacity one whose initializers ran
// would have (reserveMemory's room for New's memory).
func restored(t *testing.T, module []byte, grants []string) bool {
	t.Helper()
	r := New(Config{Engine: EngineInterpreter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { r.Close() })
	spec := Spec{Name: "a", CID: actortest.CID(module), Module: module, Grants: grants, Native: true}
	if err := r.Load(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	v, err := r.acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	defer v.release()
	if v.nat == nil {
		t.Fatal("not run natively: run make runtime-prep")
	}
	in := <-v.idle
	v.idle <- in
	if in.nat.restored {
		s, mem := v.nat.Snapshot, *in.nat.inst.Memory()
		want := max(uint64(s.Pages)<<16, room(int(v.nat.MinPages)<<16, v.limits.MemoryPages))
		if len(mem) != int(s.Pages)<<16 || uint64(cap(mem)) != want {
			t.Errorf("restored memory: len %d cap %d, want %d and %d", len(mem), cap(mem), s.Pages<<16, want)
		}
	}
	return in.nat.restored
}

// Native instances start from the snapshot unless the grant random would
// have answered their initializers, or the translation holds none.
func TestNativeStartsFromSnapshot(t *testing.T) {
	preinit, initprint := actortest.Wat(t, "preinit"), actortest.Wat(t, "initprint")
	echo := actortest.GoActor(t, "echo")
	for _, tc := range []struct {
		name   string
		module []byte
		grants []string
		want   bool
	}{
		{"preinit", preinit, nil, true},
		{"preinit granted random", preinit, []string{"random"}, false},
		{"go echo", echo, []string{"log"}, true},
		{"go echo granted random", echo, []string{"log", "random"}, false},
		{"initprint", initprint, []string{"log"}, false},
	} {
		if got := restored(t, tc.module, tc.grants); got != tc.want {
			t.Errorf("%s: started from the snapshot %t, want %t", tc.name, got, tc.want)
		}
	}
}

// A snapshot that does not fit the instance is refused as an invalid
// module, not applied (fault injection: the table's entry altered).
func TestNativeBadSnapshot(t *testing.T) {
	m := actortest.Wat(t, "preinit")
	a, ok := native.Lookup(actortest.CID(m))
	if !ok || a.Snapshot == nil {
		t.Fatal("preinit not translated with a snapshot: run make runtime-prep")
	}
	r := New(Config{Engine: EngineInterpreter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer r.Close()
	lim, _ := Limits{}.withDefaults()
	for _, tc := range []struct {
		name  string
		alter func(*native.Snapshot)
		want  string
	}{
		{"run past the memory", func(s *native.Snapshot) {
			s.Runs = append(slices.Clone(s.Runs), native.Run{Off: s.Pages<<16 - 2, Data: "xyz"})
		}, "outside its memory"},
		{"smaller than the initial memory", func(s *native.Snapshot) { s.Pages = 0 }, "snapshot of 0 pages"},
		{"above the limit", func(s *native.Snapshot) { s.Pages = lim.MemoryPages + 1 }, "under a limit"},
		{"no such global", func(s *native.Snapshot) {
			s.Globals = append(slices.Clone(s.Globals), native.Global{Index: 99})
		}, "no global to set"},
	} {
		bad, s := *a, *a.Snapshot
		tc.alter(&s)
		bad.Snapshot = &s
		_, err := r.newNativeVersion(context.Background(), Spec{Name: "a", CID: a.CID, Native: true}, lim, &bad)
		if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an invalid module saying %q", tc.name, err, tc.want)
		}
	}
}
