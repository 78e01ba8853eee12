package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Build describes a stick image built through the repository's Makefile, so
// that tests build exactly what `make` builds.
type Build struct {
	// Root is the repository root (where the Makefile is).
	Root string
	// Target is the Makefile's TARGET (default "qemu", the arm board).
	Target string
	// Dir receives the image (BUILD_DIR).
	Dir string
	// Version is stamped into the image.
	Version string
	// ExitAfter makes a test build exit after that many heartbeats (one
	// a second, printed or not).
	ExitAfter int
	// GovernanceKey is the hex Ed25519 public key built into the stick.
	GovernanceKey string
	// Net is the stick's address configuration: "" (static) or "dhcp".
	Net string
	// Tags are extra build tags (BUILD_TAGS), e.g. nomeasure for the
	// measured boot benchmark.
	Tags string
}

// CompilerMissing reports why the TamaGo compiler is unavailable, or "" when
// it is installed. It asks the Makefile, which owns the toolchain rules.
func CompilerMissing(root string) string {
	cmd := exec.Command("make", "-s", "--no-print-directory", "-C", root, "tamago-present")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return msg
	}
	return ""
}

// Image builds the stick image and returns its path.
func (b Build) Image(ctx context.Context) (string, error) {
	dir, err := filepath.Abs(b.Dir)
	if err != nil {
		return "", err
	}
	args := []string{"-s", "--no-print-directory", "-C", b.Root, "image", "BUILD_DIR=" + dir,
		"EXIT_AFTER=" + strconv.Itoa(b.ExitAfter), "TARGET=" + b.target()}
	if b.Net != "" {
		args = append(args, "NET="+b.Net)
	}
	if b.Tags != "" {
		args = append(args, "BUILD_TAGS="+b.Tags)
	}
	if b.GovernanceKey != "" {
		args = append(args, "GOVERNANCE_KEY="+b.GovernanceKey)
	}
	if b.Version != "" {
		args = append(args, "VERSION="+b.Version)
	}
	out, err := exec.CommandContext(ctx, "make", args...).CombinedOutput()
	if err != nil && goCommandCrashed(out) {
		// tamago-go1.26.0's go command resolves GOOSPKG from concurrent
		// package loads and, rarely, crashes sorting go.mod's
		// requirements (seen once here); a second run is a new process.
		out, err = exec.CommandContext(ctx, "make", args...).CombinedOutput()
	}
	if err != nil {
		return "", fmt.Errorf("qemu: building the stick image: %w\n%s", err, out)
	}
	return filepath.Join(dir, "stick-"+b.target()+".elf"), nil
}

// BuildStage0 builds only stage 0 (with b's Version) and returns its path.
func (b Build) BuildStage0(ctx context.Context) (string, error) {
	path := b.Stage0()
	args := []string{"-s", "--no-print-directory", "-C", b.Root, path, "BUILD_DIR=" + filepath.Dir(path), "TARGET=" + b.target()}
	if b.Tags != "" {
		args = append(args, "BUILD_TAGS="+b.Tags)
	}
	if b.Version != "" {
		args = append(args, "VERSION="+b.Version)
	}
	out, err := exec.CommandContext(ctx, "make", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("qemu: building stage 0: %w\n%s", err, out)
	}
	return path, nil
}

// Stage0 returns the path of the stage 0 image built next to the stick by
// Image.
func (b Build) Stage0() string {
	dir, _ := filepath.Abs(b.Dir)
	return filepath.Join(dir, "boot-"+b.target()+".elf")
}

func (b Build) target() string {
	if b.Target == "" {
		return ARM.Name
	}
	return b.Target
}

// goCommandCrashed recognises a crash of the go command itself (a Go panic
// inside cmd/go), as opposed to a build error in our code.
func goCommandCrashed(out []byte) bool {
	return bytes.Contains(out, []byte("panic: ")) && bytes.Contains(out, []byte("cmd/go/internal/"))
}
