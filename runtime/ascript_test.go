package runtime_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
)

// An actor built with an existing waPC guest library runs unchanged: the
// AssemblyScript guest (@wapc/as-guest 0.3.1, assemblyscript 0.20.13,
// from the npm registry; runtime/testdata/ascript) echoes, hashes through
// the crypto capability, is refused an ungranted one, and reports its
// own errors, on both engines and under concurrent calls.
func TestAssemblyScriptGuest(t *testing.T) {
	module := actortest.AssemblyScript(t)
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			r, logs := newRuntime(t, runtime.Config{Engine: e})
			load(t, r, "as", module, []string{"crypto.sha256"}, runtime.Limits{MaxConcurrent: 4})

			out, err := invoke(r, "as", "echo", []byte("hello from AssemblyScript"))
			if err != nil || string(out) != "hello from AssemblyScript" {
				t.Fatalf("echo: %q %v", out, err)
			}
			data := bytes.Repeat([]byte("teastick"), 4096)
			want := sha256.Sum256(data)
			if out, err := invoke(r, "as", "hash", data); err != nil || !bytes.Equal(out, want[:]) {
				t.Fatalf("hash: %x %v, want %x", out, err, want)
			}
			if _, err := invoke(r, "as", "kv", []byte("key")); !errors.Is(err, runtime.ErrActor) || !strings.Contains(err.Error(), "not granted") {
				t.Errorf("ungranted kv.get: %v", err)
			}
			if !strings.Contains(logs.String(), "capability not granted") {
				t.Errorf("the denial was not logged:\n%s", logs)
			}
			if _, err := invoke(r, "as", "fail", nil); !errors.Is(err, runtime.ErrActor) || !strings.Contains(err.Error(), "failed as asked") {
				t.Errorf("fail: %v", err)
			}
			if _, err := invoke(r, "as", "nope", nil); !errors.Is(err, runtime.ErrActor) {
				t.Errorf("unknown operation: %v", err)
			}

			// Many calls, some concurrent: the guest's allocator and GC
			// keep up, and every answer is its own.
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range 200 {
						p := fmt.Appendf(nil, "call %d of %d", n, i)
						out, err := r.Invoke(t.Context(), "as", "echo", p)
						if errors.Is(err, runtime.ErrBusy) {
							continue
						}
						if err != nil || !bytes.Equal(out, p) {
							errs <- fmt.Errorf("echo %q: %q %v", p, out, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
