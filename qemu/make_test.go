package qemu

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeMakeLine returns the line of the README's Commands block that is
// the bare image build (`make`, then its comment), as printed.
func readmeMakeLine(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := bytes.Cut(readme, []byte("## Commands\n"))
	if !ok {
		t.Fatal("README has no Commands section")
	}
	_, after, ok = bytes.Cut(after, []byte("```sh\n"))
	if !ok {
		t.Fatal("README's Commands section has no sh block")
	}
	block, _, _ := bytes.Cut(after, []byte("```"))
	for _, l := range strings.Split(string(block), "\n") {
		if cmd, _, _ := strings.Cut(l, "#"); strings.TrimSpace(cmd) == "make" {
			return l
		}
	}
	t.Fatalf("README's Commands block has no bare make line:\n%s", block)
	return ""
}

// TestReadmeMake runs the README's `make` line as printed in a clean copy
// of the tree and checks that both images came out: the stick and stage 0,
// 32-bit ARM ELF executables.
func TestReadmeMake(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("README make test SKIPPED: %s", why)
	}
	line := readmeMakeLine(t)
	dir := CleanTree(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", line)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	for _, img := range []string{"build/stick-qemu.elf", "build/boot-qemu.elf"} {
		f, err := elf.Open(filepath.Join(dir, img))
		if err != nil {
			t.Errorf("%s: %v\n%s", img, err, out)
			continue
		}
		if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_ARM || f.Type != elf.ET_EXEC {
			t.Errorf("%s: %v %v %v, want a 32-bit ARM executable", img, f.Class, f.Machine, f.Type)
		}
		f.Close()
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "teastick: built ") {
			t.Log(sc.Text())
		}
	}
}
