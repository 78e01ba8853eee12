package actor

import (
	"errors"
	"testing"
)

func TestDispatch(t *testing.T) {
	defer func(h []handler) { handlers = h }(handlers)
	handlers = nil
	Handle("a", func(p []byte) ([]byte, error) { return append([]byte("a:"), p...), nil })
	Handle("b", func(p []byte) ([]byte, error) { return nil, errors.New("b failed") })
	Handle("a", func(p []byte) ([]byte, error) { return append([]byte("a2:"), p...), nil })
	if len(handlers) != 2 {
		t.Fatalf("%d handlers after registering a twice, want 2", len(handlers))
	}
	if out, err := dispatch([]byte("a"), []byte("x")); err != nil || string(out) != "a2:x" {
		t.Errorf("a: %q %v, want the later handler's a2:x", out, err)
	}
	if _, err := dispatch([]byte("b"), nil); err == nil || err.Error() != "b failed" {
		t.Errorf("b: %v, want the handler's error", err)
	}
	for _, op := range []string{"c", "", "aa", "A"} {
		if _, err := dispatch([]byte(op), nil); err == nil || err.Error() != "unknown operation "+op {
			t.Errorf("%q: %v, want unknown operation", op, err)
		}
	}
}

func TestNotActor(t *testing.T) {
	if _, err := Call("log", "info", nil); !errors.Is(err, ErrNotActor) {
		t.Errorf("Call outside an actor: %v", err)
	}
	if _, err := SHA256([]byte("x")); !errors.Is(err, ErrNotActor) {
		t.Errorf("SHA256 outside an actor: %v", err)
	}
}
