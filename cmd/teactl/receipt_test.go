package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/stick/hostedtest"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// TestReceiptForgedHosted: against the hosted stick on swtpm, a genuine
// receipt verifies offline; receipts forged by an attacker who holds the
// stick's TPM afterwards (the AK certifies their own key; their own keys
// event extended after the stick's) and receipts checked against another
// boot or another stick are refused.
func TestReceiptForgedHosted(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	node := kubotest.Start(t)
	os.WriteFile(p("echo.wasm"), actortest.GoActor(t, "echo"), 0o644)
	echo := strings.TrimSpace(mustOK(t, teactl("actor", "publish", p("echo.wasm"), "--box-api", node.API), "publish").stdout)
	mustOK(t, teactl("key", "generate", p("gov.key")), "key generate")
	var pub struct {
		PublicKey string `json:"public_key"`
	}
	json.Unmarshal([]byte(mustOK(t, teactl("--json", "key", "public", p("gov.key")), "key public").stdout), &pub)
	img, _ := os.ReadFile(hostedStick(t))
	sum := sha256.Sum256(img)
	mustOK(t, teactl("manifest", "new", "--version", "1", "--stage0-sha256", strings.Repeat("0", 64), "--stick-sha256", hex.EncodeToString(sum[:]), "-o", p("draft.json")), "manifest new")
	mustOK(t, teactl("manifest", "add", p("draft.json"), "--name", "echo", "--cid", echo, "--grant", "log"), "manifest add")
	mustOK(t, teactl("manifest", "sign", p("draft.json"), "--key", p("gov.key"), "-o", p("v1.json")), "manifest sign")

	ca := t.TempDir()
	args := []string{"-governance-key", pub.PublicKey, "-box", node.Gateway, "-box-api", node.API, "-manifest", p("v1.json")}
	start := func(sw *swtpmtest.Server) *hostedtest.Stick {
		st := hostedtest.Start(t, hostedStick(t), append([]string{"-tpm", sw.Socket}, args...)...)
		st.WaitFor("READY", 5*time.Minute) // it boots v1.json after its API is up
		return st
	}
	swA := swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: ca})
	bundle, err := swA.CABundle()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("ca.pem"), bundle, 0o644)
	stA := start(swA)
	mustOK(t, teactl("stick", "enroll", stA.URL, "--ca", p("ca.pem"), "-o", p("a.json")), "enroll A")
	stB := start(swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: ca}))
	mustOK(t, teactl("stick", "enroll", stB.URL, "--ca", p("ca.pem"), "-o", p("b.json")), "enroll B")

	invoke := func(url, id, out string) {
		mustOK(t, teactl("actor", "invoke", url, "echo", "echo", "hello stick", "--identity", p(id), "--pub", p("gov.key"), "--min-version", "1", "-o", p(out)), "invoke")
	}
	invoke(stA.URL, "a.json", "genuine.json")
	invoke(stB.URL, "b.json", "b-receipt.json")
	verifyArgs := func(file, id string, extra ...string) []string {
		return append([]string{"receipt", "verify", p(file), "--identity", p(id), "--pub", p("gov.key")}, extra...)
	}
	r := mustOK(t, teactl(verifyArgs("genuine.json", "a.json", "--release", p("v1.json"))...), "genuine receipt")
	if !strings.Contains(r.stdout, "measured in a verified boot") || !strings.Contains(r.stdout, "served manifest version 1, TPM rollback counter 1 (certified by the AK in that boot)") {
		t.Errorf("receipt verify: %s", r.stdout)
	}
	mustOK(t, teactl(verifyArgs("b-receipt.json", "b.json")...), "stick B's genuine receipt")
	genuine := readReceiptFile(t, p("genuine.json"))
	other := readReceiptFile(t, p("b-receipt.json"))

	// Another stick: B's receipt with A's identity, A's receipt with B's
	// evidence.
	wantFail(t, teactl(verifyArgs("b-receipt.json", "a.json")...), exitCheck, "AK is the enrolled AK", "another stick's receipt")
	writeJSONFile(t, p("a-with-b-evidence.json"), map[string]any{"format": genuine.Format, "receipt": genuine.Receipt, "evidence": other.Evidence})
	wantFail(t, teactl(verifyArgs("a-with-b-evidence.json", "a.json")...), exitCheck, "AK is the enrolled AK", "another stick's evidence")
	wantFail(t, teactl(verifyArgs("a-with-b-evidence.json", "b.json")...), exitCheck, "signature does not verify", "another stick's evidence, its identity")

	// The stick lets go of its TPM; the attacker takes it, PCRs intact.
	stA.Stop()
	f := newForger(t, swA.Socket)
	in := []byte("hello stick")
	f.write(p("forged-certified.json"), genuine, in, in, f.certified(genuine))
	f.write(p("forged-extended.json"), genuine, in, in, f.extendedAfter(genuine))
	wantFail(t, teactl(verifyArgs("forged-certified.json", "a.json")...), exitCheck, "signature does not verify with the result key", "own key certified by the AK")
	wantFail(t, teactl(verifyArgs("forged-extended.json", "a.json")...), exitCheck, "boot actor measured after the separator", "own keys event after the genuine boot's")

	// Another boot of stick A (same TPM, same AK): its evidence does not
	// carry the first boot's result key.
	swA.Stop()
	swA2 := swtpmtest.Start(t, swtpmtest.Options{StateDir: swA.StateDir, CADir: ca})
	stA2 := start(swA2)
	invoke(stA2.URL, "a.json", "second-boot.json")
	second := readReceiptFile(t, p("second-boot.json"))
	writeJSONFile(t, p("first-receipt-second-boot.json"), map[string]any{"format": genuine.Format, "receipt": genuine.Receipt, "evidence": second.Evidence})
	mustOK(t, teactl(verifyArgs("second-boot.json", "a.json")...), "second boot's own receipt")
	wantFail(t, teactl(verifyArgs("first-receipt-second-boot.json", "a.json")...), exitCheck, "signature does not verify", "evidence of another boot")
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
