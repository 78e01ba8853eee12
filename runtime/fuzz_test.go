package runtime_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// FuzzModule loads arbitrary bytes as an actor (under their own CID, so
// the bytes reach the compiler) and calls whatever loads with an arbitrary
// operation and payload: errors, never a panic, never an instance beyond
// the pool.
func FuzzModule(f *testing.F) {
	for _, name := range []string{"edge", "noexport", "badsig", "badimport", "bigmem", "inittrap"} {
		m := actortest.Wat(f, name)
		f.Add(m, "echo", []byte("x"))
		f.Add(m, "loop", []byte{})
		f.Add(m, "call", hostCall("kv", "put", []byte{0, 1, 'k', 'v'}))
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00"), "echo", []byte{})
	f.Fuzz(func(t *testing.T, module []byte, op string, payload []byte) {
		r := runtime.New(runtime.Config{Engine: runtime.EngineInterpreter, Log: quiet})
		defer r.Close()
		lim := runtime.Limits{MemoryPages: 32, Timeout: 50 * time.Millisecond, MaxConcurrent: 2}
		err := r.Load(context.Background(), runtime.Spec{Name: "f", CID: runtime.RawCID(module), Grants: []string{"kv", "crypto", "log"}, Limits: lim, Module: module})
		if err != nil {
			if !errors.Is(err, runtime.ErrInvalidModule) {
				t.Fatalf("load: %v (not ErrInvalidModule)", err)
			}
			return
		}
		for range 2 {
			r.Invoke(context.Background(), "f", op, payload)
		}
		info, err := r.Actor("f")
		if err != nil || info.Stats.Idle > 2 || info.Stats.Calls != 2 {
			t.Fatalf("after calls: %+v %v", info.Stats, err)
		}
	})
}

// FuzzInvoke sends arbitrary operations and payloads to the edge actor.
func FuzzInvoke(f *testing.F) {
	for _, op := range []string{"echo", "trap", "huge", "oob", "request", "fail", "call", "nothing", "print", "klock", "sleep", "zopen", ""} {
		f.Add(op, []byte("payload"))
	}
	f.Add("call", hostCall("crypto", "verify.p256", make([]byte, 161)))
	f.Add("call", hostCall("ipfs", "get", []byte("bafkqaaa")))
	r := runtime.New(runtime.Config{Engine: runtime.EngineInterpreter, Log: quiet})
	f.Cleanup(func() { r.Close() })
	edge := actortest.Wat(f, "edge")
	lim := runtime.Limits{Timeout: 50 * time.Millisecond, MaxConcurrent: 1, MaxResponse: 1 << 16}
	if err := r.Load(context.Background(), runtime.Spec{Name: "edge", CID: runtime.RawCID(edge), Grants: []string{"crypto", "ipfs", "kv", "log", "random"}, Limits: lim, Module: edge}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, op string, payload []byte) {
		out, err := r.Invoke(context.Background(), "edge", op, payload)
		if err == nil && len(out) > 1<<16 {
			t.Fatalf("response of %d bytes past max_response", len(out))
		}
		if got, err := r.Invoke(context.Background(), "edge", "echo", []byte("still there")); err != nil || string(got) != "still there" {
			t.Fatalf("after %q: %q %v", op, got, err)
		}
	})
}

// Modules a few bytes long that claim huge vectors: each must be refused
// at once, without the decoder allocating what they claim (the first was
// found by FuzzModule and made wazero allocate gigabytes).
func TestAllocationBombs(t *testing.T) {
	leb := func(v uint64) []byte {
		var b []byte
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v != 0 {
				b = append(b, c|0x80)
				continue
			}
			return append(b, c)
		}
	}
	section := func(id byte, body ...byte) []byte {
		return append(append([]byte{id}, leb(uint64(len(body)))...), body...)
	}
	module := func(sections ...[]byte) []byte {
		m := []byte("\x00asm\x01\x00\x00\x00")
		for _, s := range sections {
			m = append(m, s...)
		}
		return m
	}
	huge := leb(0xfffffff0)
	typeVoid := section(1, 1, 0x60, 0, 0)
	funcs := section(3, 1, 0)
	for name, m := range map[string][]byte{
		"exports":      module(section(7, huge...)),
		"imports":      module(section(2, huge...)),
		"type params":  module(section(1, append([]byte{1, 0x60}, huge...)...)),
		"locals":       module(typeVoid, funcs, section(10, append(append([]byte{1, 8, 1}, leb(0xffffffff)...), 0x7f, 0x0b, 0x0b)...)),
		"data bytes":   module(section(11, append([]byte{1, 1}, huge...)...)),
		"element vec":  module(section(9, append([]byte{1, 1, 0x00}, huge...)...)),
		"section size": append(module(), append([]byte{7}, huge...)...),
	} {
		t.Run(name, func(t *testing.T) {
			r := runtime.New(runtime.Config{Engine: runtime.EngineInterpreter, Log: quiet})
			defer r.Close()
			err := r.Load(context.Background(), runtime.Spec{Name: "bomb", CID: runtime.RawCID(m), Module: m})
			if !errors.Is(err, runtime.ErrInvalidModule) {
				t.Fatalf("got %v", err)
			}
			t.Log(err)
		})
	}
}
