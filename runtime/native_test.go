package runtime_test

import (
	"context"
	"errors"
	"testing"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
)

// An entry marked native whose CID this binary holds no translation of
// runs in the interpreter, and says so; without its module bytes it
// cannot run at all.
func TestNativeFallback(t *testing.T) {
	r, _ := newRuntime(t, runtime.Config{Engine: runtime.EngineInterpreter})
	// spin with a custom section: a CID nothing translated.
	m := append(append([]byte(nil), actortest.Wat(t, "spin")...), 0, 4, 3, 'x', 'y', 'z')
	c := actortest.CID(m)
	if err := r.Load(context.Background(), runtime.Spec{Name: "s", CID: c, Module: m, Native: true}); err != nil {
		t.Fatal(err)
	}
	in, err := r.Actor("s")
	if err != nil || in.Engine != "interpreter" {
		t.Fatalf("engine %q, %v: want interpreter", in.Engine, err)
	}
	if _, err := invoke(r, "s", "ping", nil); err != nil {
		t.Fatal(err)
	}
	err = r.Load(context.Background(), runtime.Spec{Name: "t", CID: c, Native: true})
	if !errors.Is(err, runtime.ErrCIDMismatch) {
		t.Fatalf("no translation and no bytes: %v, want ErrCIDMismatch", err)
	}
}
