package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/qemu"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// repoRoot is the repository, from this package's directory.
const repoRoot = "../.."

// readmeBlock returns the README's code block right after marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := bytes.Cut(readme, []byte(marker+"\n```sh\n"))
	if !ok {
		t.Fatalf("README has no block after %q", marker)
	}
	block, _, _ := bytes.Cut(after, []byte("```"))
	return string(block)
}

// readerEnv is the environment of a fresh shell of a reader who has Go
// set up: an empty home, the PATH, Go's caches and the user cache (so that
// the shell does not download or rebuild what this machine has, the
// TamaGo compiler included), a temporary directory of
// the test's, and the variables the README tells the reader to set.
func readerEnv(t *testing.T, vars map[string]string) []string {
	t.Helper()
	env := []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "TMPDIR=" + t.TempDir(), "LANG=C.UTF-8"}
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	env = append(env, "GOCACHE="+f[0], "GOMODCACHE="+f[1], "GOPATH="+f[2])
	// The user cache, where `go tool tamago` keeps the TamaGo compiler
	// the reader installed (README: The TamaGo compiler).
	if dir, err := os.UserCacheDir(); err == nil {
		env = append(env, "XDG_CACHE_HOME="+dir)
	}
	for _, k := range []string{"GOFLAGS", "GOPROXY", "GOTOOLCHAIN"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// runShell runs script with bash -e (a failing line stops it, as it
// would stop a reader) in dir, in its own process group, which it kills
// when the script ends or fails (a stick it left in the background).
func runShell(t *testing.T, dir, script string, env []string, timeout time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-x", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	return out.String(), err
}

// TestReadmeWalkthrough runs the README's operator walk-through as a
// reader does: the block as written, through bash, from the repository,
// in a fresh environment that has only what the README tells the reader
// to set ($BOX and $BOX_API of a real kubo node, $TPM a provisioned swtpm
// and $CA its CA bundle).
func TestReadmeWalkthrough(t *testing.T) {
	out := runWalkthrough(t, repoRoot, readmeBlock(t, "<!-- walkthrough -->"))
	// The block ran to its end: the upgrade was accepted.
	if !strings.Contains(out, "+ teactl stick upgrade") || !strings.Contains(out, "+ kill %1") {
		t.Fatalf("the walk-through did not run to its end:\n%s", out)
	}
	t.Logf("walk-through:\n%s", out)
}

// TestReadmeRelease runs the walk-through, then the README's release block
// in the same shell, as the README tells the reader to, in a clean copy of
// the tree (the block builds the images with the walk-through's key into
// build/). It needs the TamaGo compiler.
func TestReadmeRelease(t *testing.T) {
	if why := qemu.CompilerMissing(repoRoot); why != "" {
		t.Skipf("README release test SKIPPED: %s", why)
	}
	release := readmeBlock(t, "<!-- release -->")
	out := runWalkthrough(t, qemu.CleanTree(t, repoRoot), readmeBlock(t, "<!-- walkthrough -->")+release)
	for _, want := range []string{"+ teactl release verify", "release OK: manifest version 1 signed by the governance key, images match it"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the release block did not print %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "WARNING") {
		t.Fatalf("the README's release is a weakened build:\n%s", out)
	}
	t.Logf("release block:\n%s", out)
}

// runWalkthrough runs script through bash in dir, with what the README
// tells the reader to set: a real kubo node and a provisioned swtpm.
func runWalkthrough(t *testing.T, dir, script string) string {
	t.Helper()
	node := kubotest.Start(t)
	ca := t.TempDir()
	tpm := swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: ca})
	bundle, err := swtpmtest.CABundle(ca)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	env := readerEnv(t, map[string]string{"BOX": node.Gateway, "BOX_API": node.API, "TPM": tpm.Socket, "CA": caFile})
	out, err := runShell(t, dir, script, env, 15*time.Minute)
	if err != nil {
		t.Fatalf("the walk-through failed: %v\n%s", err, out)
	}
	return out
}
