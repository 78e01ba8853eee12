package image_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/qemu"
)

// TestReproducible builds the images twice, the second time from a copy of
// the source tree at another path with an empty build cache, and requires
// byte-identical results: the reference measurement of a release is the
// digest of the stick ELF, so anyone must be able to rebuild it.
func TestReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds the toolchain's standard library: not in -short")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if why := qemu.CompilerMissing(root); why != "" {
		t.Skipf("reproducibility test SKIPPED: %s", why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	// a copy of the tracked files at another path
	copyRoot := filepath.Join(t.TempDir(), "elsewhere", "teastick")
	files, err := exec.Command("git", "-C", root, "ls-files", "-co", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(files)), "\n") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree
			}
			t.Fatal(err)
		}
		dst := filepath.Join(copyRoot, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	a := qemu.Build{Root: root, Dir: t.TempDir(), Version: "repro"}
	if _, err := a.Image(ctx); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOCACHE", t.TempDir())
	b := qemu.Build{Root: copyRoot, Dir: t.TempDir(), Version: "repro"}
	if _, err := b.Image(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"stick-qemu.elf", "boot-qemu.elf"} {
		x, err := os.ReadFile(filepath.Join(a.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between builds: %x vs %x", name, sha256.Sum256(x), sha256.Sum256(y))
		} else {
			t.Logf("%s: %d bytes, sha256 %x in both builds", name, len(x), sha256.Sum256(x))
		}
		if bytes.Contains(x, []byte(root)) || bytes.Contains(y, []byte(copyRoot)) {
			t.Errorf("%s contains the build path", name)
		}
	}
}
