package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// A release bundle: built from the images and a draft, verified with the
// governance public key alone, refused when any part is changed, and used
// as the reference when attesting a stick booted from it.
func TestRelease(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	stage0, err := os.Executable() // any Go binary: build information is what the bundle reads
	if err != nil {
		t.Fatal(err)
	}
	stick := hostedStick(t)
	node := kubotest.Start(t)
	os.WriteFile(p("echo.wasm"), actortest.GoActor(t, "echo"), 0o644)
	echo := strings.TrimSpace(mustOK(t, teactl("actor", "publish", p("echo.wasm"), "--box-api", node.API), "publish").stdout)
	mustOK(t, teactl("key", "generate", p("gov.key")), "key")
	mustOK(t, teactl("key", "generate", p("other.key")), "key")
	mustOK(t, teactl("manifest", "new", "--version", "1", "--stage0-sha256", strings.Repeat("0", 64), "--stick-sha256", strings.Repeat("0", 64), "-o", p("draft.json")), "new")
	mustOK(t, teactl("manifest", "add", p("draft.json"), "--name", "echo", "--cid", echo, "--grant", "log"), "add")

	build := []string{"release", "build", p("draft.json"), "--stage0", stage0, "--stick", stick, "--image-version", "teactl-test", "--board", "linux-hosted", "--key", p("gov.key")}
	r := mustOK(t, teactl(append(build, "-o", p("rel"))...), "release build")
	if strings.Contains(r.stderr, "WARNING") {
		t.Errorf("a clean build warned: %s", r.stderr)
	}
	wantFail(t, teactl(append(build, "-o", p("rel"))...), exitIO, "never overwritten", "release build over a bundle")
	r = mustOK(t, teactl("release", "verify", p("rel"), "--pub", p("gov.key")), "release verify")
	if !strings.Contains(r.stdout, "release OK") || !strings.Contains(r.stdout, "PCR 4 ") || !strings.Contains(r.stdout, "PCR 8 ") {
		t.Errorf("release verify:\n%s", r.stdout)
	}
	var ref struct {
		StickBuild struct {
			Toolchain string
			GOOS      string
		} `json:"stick_build"`
		PCRs map[string]string
	}
	if err := json.Unmarshal([]byte(mustOK(t, teactl("--json", "release", "verify", p("rel"), "--pub", p("gov.key")), "verify --json").stdout), &ref); err != nil ||
		!strings.HasPrefix(ref.StickBuild.Toolchain, "go1.") || ref.StickBuild.GOOS == "" || len(ref.PCRs) != 9 {
		t.Errorf("reference: %+v %v", ref, err)
	}
	wantFail(t, teactl("release", "verify", p("rel"), "--pub", p("other.key")), exitCheck, "unknown key", "another governance key")
	wantFail(t, teactl("release", "verify", p("nothing"), "--pub", p("gov.key")), exitIO, "no such file", "no bundle")

	// Any changed part is refused.
	for _, tc := range []struct {
		file string
		edit func([]byte) []byte
		want string
	}{
		{"stick.elf", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, "the stick image hashes to"},
		{"boot.elf", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, "stage 0 hashes to"},
		{"reference.json", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"board": "linux-hosted"`, `"board": "linux-hosted "`, 1))
		}, "differs"},
		{"manifest.json", func(b []byte) []byte { return []byte(strings.Replace(string(b), `"version":1`, `"version":2`, 1)) }, "bad signature"},
	} {
		cp := p("copy-" + tc.file)
		exec.Command("cp", "-r", p("rel"), cp).Run()
		b, _ := os.ReadFile(filepath.Join(cp, tc.file))
		os.WriteFile(filepath.Join(cp, tc.file), tc.edit(b), 0o644)
		wantFail(t, teactl("release", "verify", cp, "--pub", p("gov.key")), exitCheck, tc.want, "changed "+tc.file)
	}

	// The hosted stick runs the bundle's stick image, but no stage 0
	// loaded it (PCR 0 holds the all-zero "no stage 0"), so against a
	// bundle whose boot.elf is a real file it fails the stage 0 check,
	// and only that one. (The QEMU stick, which boot.elf does load,
	// attests OK against its bundle: qemu_test.go.)
	ca := t.TempDir()
	var pub struct {
		PublicKey string `json:"public_key"`
	}
	json.Unmarshal([]byte(teactl("--json", "key", "public", p("gov.key")).stdout), &pub)
	url := startStick(t, ca, "-governance-key", pub.PublicKey, "-box", node.Gateway, "-box-api", node.API, "-manifest", filepath.Join(p("rel"), "manifest.json"))
	b, _ := swtpmtest.CABundle(ca)
	os.WriteFile(p("ca.pem"), b, 0o644)
	mustOK(t, teactl("stick", "enroll", url, "--ca", p("ca.pem"), "-o", p("id.json")), "enroll")
	r = teactl("stick", "attest", url, "--identity", p("id.json"), "--pub", p("gov.key"), "--release", p("rel"))
	wantFail(t, r, exitCheck, "FAIL stage 0 measurement (PCR 0) [PCR 0 event 0]: the stick booted from stage 0 sha256:"+strings.Repeat("0", 64), "attest a hosted stick against a bundle with a stage 0")
	if n := strings.Count(r.stdout, "\nFAIL "); n != 1 {
		t.Errorf("attest against the bundle: %d failed checks, want only the stage 0 one:\n%s", n, r.stdout)
	}
	wantFail(t, teactl("stick", "attest", url, "--identity", p("id.json"), "--pub", p("gov.key"), "--release", p("copy-stick.elf")), exitCheck, "hashes to", "attest against a tampered bundle")

	// An image built with a weakening tag: loud, and recorded.
	weak := filepath.Join(t.TempDir(), "stick-nomeasure")
	if out, err := exec.Command("go", "build", "-trimpath", "-tags", "nomeasure", "-o", weak, "../../firmware/stick").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags nomeasure: %v\n%s", err, out)
	}
	build[6] = weak
	r = mustOK(t, teactl(append(build, "-o", p("weak"))...), "release build nomeasure")
	if !strings.Contains(r.stderr, "WARNING") || !strings.Contains(r.stderr, "nomeasure") {
		t.Errorf("no loud warning: %q", r.stderr)
	}
	if r := mustOK(t, teactl("release", "verify", p("weak"), "--pub", p("gov.key")), "verify weak"); !strings.Contains(r.stderr, "never flash") {
		t.Errorf("verify of a weakened release: %q", r.stderr)
	}
}
