package release

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/netstack/boxlink"
	"github.com/teastick/teastick/tpm/eventlog"
)

// testStage0 is this test binary, a Go binary with build information,
// standing in for boot.elf.
func testStage0(t *testing.T) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signFor signs with gov a manifest of version naming stage0's and
// stick's digests and actors.
func signFor(t *testing.T, gov ed25519.PrivateKey, version uint64, stage0, stick []byte, actors ...manifest.Actor) []byte {
	t.Helper()
	s0, st := sha256.Sum256(stage0), sha256.Sum256(stick)
	b, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: version,
		Firmware: manifest.Firmware{Stage0: hex.EncodeToString(s0[:]), Stick: hex.EncodeToString(st[:])}, Actors: actors}, gov)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReferenceStage0 makes a bundle and checks its reference begins PCR 0
// with stage 0's measurement of itself, the digest of boot.elf, and that
// the PCR 0 value it publishes is that event then the separator.
func TestReferenceStage0(t *testing.T) {
	stage0 := testStage0(t)
	stick := append(bytes.Clone(stage0), 0) // another file, with build information
	s0 := sha256.Sum256(stage0)
	gov := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	signed := signFor(t, gov, 1, stage0, stick)
	r, err := Make(stage0, stick, signed, "release-test", "linux-hosted")
	if err != nil {
		t.Fatal(err)
	}
	first := r.Events[0]
	if first.PCR != 0 || first.Type != eventlog.EV_S_CRTM_CONTENTS.String() || first.Digest != hex.EncodeToString(s0[:]) {
		t.Fatalf("first reference event %+v, want PCR 0 EV_S_CRTM_CONTENTS %x", first, s0)
	}
	sep := sha256.Sum256(eventlog.Separator)
	p0 := eventlog.Replay([]eventlog.Event{{PCR: 0, Digest: s0}, {PCR: 0, Digest: sep}})[0]
	if got := r.PCRs["0"]; got != hex.EncodeToString(p0[:]) {
		t.Errorf("PCR 0 %s, want %x", got, p0)
	}

	dir := filepath.Join(t.TempDir(), "rel")
	if err := Write(dir, stage0, stick, signed, r); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Verify(dir, gov.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// buildWithTags builds an empty host program with the build tags a stick
// image of some board carries, and returns the executable: what BoardOf
// reads the board from.
func buildWithTags(t *testing.T, tags string) []byte {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module boardtag\n\ngo 1.22\n"), 0o644)
	out := filepath.Join(dir, "stick.elf")
	cmd := exec.Command("go", "build", "-tags", tags, "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	stick, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return stick
}

// TestBoardFromTags makes a reference for a stick image built with a
// board's tag: the reference must name that board, and naming another is
// refused, since its configuration event could never match.
func TestBoardFromTags(t *testing.T) {
	stick := buildWithTags(t, "qemu_virt_riscv64")
	board, err := BoardOf(stick)
	if err != nil {
		t.Fatal(err)
	}
	if board != "qemu-virt-riscv64" {
		t.Fatalf("BoardOf = %q, want qemu-virt-riscv64", board)
	}
	stage0 := testStage0(t)
	gov := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	signed := signFor(t, gov, 1, stage0, stick)
	r, err := Make(stage0, stick, signed, "v", board)
	if err != nil {
		t.Fatal(err)
	}
	if r.Board != board {
		t.Errorf("reference board %q, want %q", r.Board, board)
	}
	if _, err := Make(stage0, stick, signed, "v", "qemu-virt-arm"); !errors.Is(err, ErrBundle) {
		t.Errorf("another board: Make = %v, want ErrBundle", err)
	}
}

// TestBoxFiles: a bundle carries the box's networkd files, listed with
// their SHA-256 in reference.json, exactly as netstack/boxlink makes them;
// a changed, missing or unlisted file is refused.
func TestBoxFiles(t *testing.T) {
	stage0 := testStage0(t)
	stick := append(bytes.Clone(stage0), 0)
	gov := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := gov.Public().(ed25519.PublicKey)
	signed := signFor(t, gov, 1, stage0, stick)
	r, err := Make(stage0, stick, signed, "release-test", "linux-hosted")
	if err != nil {
		t.Fatal(err)
	}
	want := boxlink.NetworkdFiles()
	if len(r.BoxFiles) != len(want) {
		t.Fatalf("box_files %v, want %d files", r.BoxFiles, len(want))
	}
	write := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "rel")
		if err := Write(dir, stage0, stick, signed, r); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := write(t)
	for _, f := range want {
		got, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256(got)
		if !bytes.Equal(got, f.Content) || r.BoxFiles[f.Name] != hex.EncodeToString(d[:]) {
			t.Errorf("%s: %d bytes listed as %s, want boxlink's %d bytes", f.Name, len(got), r.BoxFiles[f.Name], len(f.Content))
		}
	}
	if _, _, err := Verify(dir, pub); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	network := filepath.Join(boxlink.NetworkdDir, boxlink.NetworkFile)
	for _, tc := range []struct {
		name   string
		change func(dir string)
	}{
		{"a default route added", func(dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, network), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("Gateway=10.0.0.1\n")
			f.Close()
		}},
		{"the .link file missing", func(dir string) { os.Remove(filepath.Join(dir, boxlink.NetworkdDir, boxlink.LinkFile)) }},
		{"box_files emptied", func(dir string) {
			var ref map[string]any
			b, _ := os.ReadFile(filepath.Join(dir, ReferenceFile))
			json.Unmarshal(b, &ref)
			ref["box_files"] = map[string]string{}
			b, _ = json.Marshal(ref)
			os.WriteFile(filepath.Join(dir, ReferenceFile), b, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t)
			tc.change(dir)
			if _, _, err := Verify(dir, pub); err == nil {
				t.Fatal("Verify accepted the bundle")
			} else {
				t.Log(err)
			}
		})
	}
}

// TestBoardOfUSBArmory checks a stick image built with the Mk II's tags
// (the Makefile's TARGET=usbarmory row, with the RAM tags beside the
// board's) names the USB armory Mk II.
func TestBoardOfUSBArmory(t *testing.T) {
	stick := buildWithTags(t, "usbarmory_mk2 linkramstart linkramsize")
	if board, err := BoardOf(stick); err != nil || board != "usbarmory-mk2" {
		t.Fatalf("BoardOf = %q, %v; want usbarmory-mk2", board, err)
	}
}
