// Package actortest builds the actors tests run, with the real toolchains:
// the example actors with Go (GOOS=wasip1), the edge-case fixtures in
// runtime/testdata with wabt's wat2wasm, and the AssemblyScript waPC guest
// with npm. Builds are cached for the life of the test process.
package actortest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/runtime/examples"
)

// Dir is the runtime package directory.
func Dir() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

var (
	mu    sync.Mutex
	cache = map[string][]byte{}
)

func build(t testing.TB, key string, f func(out string) *exec.Cmd) []byte {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if b, ok := cache[key]; ok {
		return b
	}
	// The bytes are cached, not the file: nothing outlives the build.
	tmp, err := os.MkdirTemp("", "actortest-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, filepath.Base(key)+".wasm")
	cmd := f(out)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("building %s: %s: %v\n%s", key, cmd, err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	cache[key] = b
	return b
}

// Wat compiles runtime/testdata/name.wat with wat2wasm (Debian's wabt,
// installed by `make deps`).
func Wat(t testing.TB, name string) []byte {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Fatal("wat2wasm not found: install Debian's wabt (make deps)")
	}
	src := filepath.Join(Dir(), "testdata", name+".wat")
	return build(t, "wat/"+name, func(out string) *exec.Cmd {
		return exec.Command("wat2wasm", src, "-o", out)
	})
}

// GoActor builds runtime/examples/name with the Go toolchain running the
// tests, as a WASI reactor.
func GoActor(t testing.TB, name string) []byte {
	t.Helper()
	return build(t, "go/"+name, func(out string) *exec.Cmd {
		return examples.Build(context.Background(), filepath.Join(goruntime.GOROOT(), "bin", "go"), Dir(), name, out)
	})
}

// AssemblyScript builds the waPC guest in runtime/testdata/ascript with
// the assemblyscript compiler and @wapc/as-guest from the npm registry.
func AssemblyScript(t testing.TB) []byte {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm not found: install Node.js and npm (make deps)")
	}
	return build(t, "ascript", func(out string) *exec.Cmd {
		cmd := exec.Command("sh", filepath.Join(Dir(), "testdata", "ascript", "build.sh"), out)
		cmd.Dir = filepath.Join(Dir(), "testdata", "ascript")
		return cmd
	})
}

// CID returns the CID teactl publishes module under: `ipfs add
// --cid-version 1 --raw-leaves` (raw for one block, dag-pb above).
func CID(module []byte) cid.Cid {
	c, _ := ipfs.Add(module)
	return c
}

// Named builds the module runtime/internal/nativegen names name: "wat-X"
// (Wat), "go-X" (GoActor) or "ascript" (AssemblyScript), the names the
// native engine's differential suite (runtime/nativediff) uses.
func Named(t testing.TB, name string) []byte {
	t.Helper()
	switch {
	case name == "ascript":
		return AssemblyScript(t)
	case strings.HasPrefix(name, "wat-"):
		return Wat(t, strings.TrimPrefix(name, "wat-"))
	case strings.HasPrefix(name, "go-"):
		return GoActor(t, strings.TrimPrefix(name, "go-"))
	}
	t.Fatalf("actortest: no module is named %q (wat-NAME, go-NAME or ascript)", name)
	return nil
}
