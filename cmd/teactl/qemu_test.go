package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/qemu"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/verify"
)

// TestStickCommandsQEMU runs teactl against the real image under QEMU
// (stage 0, the stick, swtpm, kubo through guestfwd): a release bundle of
// the built images, enrolment, the first manifest, attestation against the
// bundle, an invocation with its receipt checked online and offline.
func TestStickCommandsQEMU(t *testing.T) {
	root, _ := filepath.Abs("../..")
	if why := qemu.CompilerMissing(root); why != "" {
		t.Skipf("teactl against a QEMU stick SKIPPED: %s", why)
	}
	ctx := context.Background()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	mustOK(t, teactl("key", "generate", p("gov.key")), "key")
	var pub struct {
		PublicKey string `json:"public_key"`
	}
	json.Unmarshal([]byte(teactl("--json", "key", "public", p("gov.key")).stdout), &pub)

	b := qemu.Build{Root: root, Dir: t.TempDir(), Version: "teactl-qemu", GovernanceKey: pub.PublicKey}
	stick, err := b.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	container, err := qemu.WrapStick(stick, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	node := kubotest.Start(t)
	os.WriteFile(p("echo.wasm"), actortest.GoActor(t, "echo"), 0o644)
	echo := strings.TrimSpace(mustOK(t, teactl("actor", "publish", p("echo.wasm"), "--box-api", node.API), "publish").stdout)
	mustOK(t, teactl("manifest", "new", "--version", "1", "--stage0-sha256", strings.Repeat("0", 64), "--stick-sha256", strings.Repeat("0", 64), "-o", p("draft.json")), "new")
	mustOK(t, teactl("manifest", "add", p("draft.json"), "--name", "echo", "--cid", echo, "--grant", "log"), "add")
	mustOK(t, teactl("release", "build", p("draft.json"), "--stage0", b.Stage0(), "--stick", stick, "--image-version", "teactl-qemu",
		"--key", p("gov.key"), "-o", p("rel")), "release build")
	mustOK(t, teactl("release", "verify", p("rel"), "--pub", pub.PublicKey), "release verify")

	caDir := filepath.Join(t.TempDir(), "ca")
	tpm := &qemu.SWTPM{Dir: t.TempDir(), Provision: true, CADir: caDir}
	if err := tpm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tpm.Stop)
	bundle, err := swtpmtest.CABundle(caDir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("ca.pem"), bundle, 0o644)
	port, err := qemu.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://127.0.0.1:%d", port)

	var report []string
	outs := map[string]string{}
	done := make(chan struct{})
	session := func(typeIn func(string)) {
		defer close(done)
		defer typeIn("halt\n")
		step := func(what string, args ...string) bool {
			start := time.Now()
			r := teactl(args...)
			report = append(report, fmt.Sprintf("%s: exit %d in %d ms", what, r.code, time.Since(start).Milliseconds()))
			outs[what] = r.stdout
			if r.code != 0 {
				t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
				return false
			}
			return true
		}
		_ = step("enroll", "stick", "enroll", url, "--ca", p("ca.pem"), "-o", p("id.json")) &&
			step("first manifest", "stick", "upgrade", url, filepath.Join(p("rel"), "manifest.json"), "--identity", p("id.json"), "--pub", p("gov.key"), "--timeout", "10m") &&
			step("attest against the bundle", "stick", "attest", url, "--identity", p("id.json"), "--pub", p("gov.key"), "--release", p("rel")) &&
			step("invoke", "actor", "invoke", url, "echo", "echo", "hello from teactl", "--identity", p("id.json"), "--pub", p("gov.key"), "--min-version", "1", "-o", p("r.json")) &&
			step("receipt verify", "receipt", "verify", p("r.json"), "--identity", p("id.json"), "--pub", p("gov.key"), "--release", p("rel"))
	}
	res, err := qemu.Machine{Kernel: b.Stage0(), StickImage: container, TPM: tpm, HTTPPort: port,
		BoxGateway: strings.TrimPrefix(node.Gateway, "http://"), InputAfter: "manifest: none yet",
		Session: session}.Run(ctx, 20*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Error("the teactl session did not finish")
	}
	for _, l := range report {
		t.Log(l)
	}
	// The bundle's boot.elf is the stage 0 that booted: teactl says so.
	if out := outs["attest against the bundle"]; !strings.Contains(out, "ok   "+verify.CheckStage0+": stage 0 sha256:") {
		t.Errorf("teactl stick attest --release does not report the stage 0 check passing:\n%s", out)
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
		return
	}

	// The machine is off; an attacker takes its TPM (the same state: the
	// same EK and AK, PCRs reset by the power cycle) and forges receipts:
	// the AK certifies their own key, paired with the genuine evidence;
	// and a quote of nothing but their own keys event.
	tpm.Stop()
	sw := swtpmtest.Start(t, swtpmtest.Options{StateDir: tpm.Dir, CADir: caDir})
	f := newForger(t, sw.Socket)
	genuine := readReceiptFile(t, p("r.json"))
	in := []byte("hello from teactl")
	f.write(p("forged-certified.json"), genuine, in, in, f.certified(genuine))
	f.write(p("forged-noimage.json"), genuine, in, in, f.noImage(genuine))
	verifyArgs := func(file string) []string {
		return []string{"receipt", "verify", p(file), "--identity", p("id.json"), "--pub", p("gov.key"), "--release", p("rel")}
	}
	mustOK(t, teactl(verifyArgs("r.json")...), "the genuine receipt, after the machine is off")
	wantFail(t, teactl(verifyArgs("forged-certified.json")...), exitCheck, "signature does not verify with the result key", "own key certified by the stick's AK")
	wantFail(t, teactl(verifyArgs("forged-noimage.json")...), exitCheck, "reference measurement", "own keys event on a TPM with no boot")
}
