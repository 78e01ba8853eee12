package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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

// TestMain removes the hosted sticks the tests built.
func TestMain(m *testing.M) { hostedtest.Main(m) }

// hostedStick builds the hosted stick once, as a developer does.
func hostedStick(t testing.TB) string { return hostedtest.Build(t, "teactl-test") }

// startStick runs a hosted stick with its own provisioned swtpm (its EK
// certificate signed by the CA in caDir) and returns its API URL.
func startStick(t testing.TB, caDir string, args ...string) string {
	t.Helper()
	tpm := swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: caDir})
	return hostedtest.Start(t, hostedStick(t), append([]string{"-tpm", tpm.Socket}, args...)...).URL
}

func mustOK(t *testing.T, r result, what string) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	return r
}

func wantFail(t *testing.T, r result, code int, substr, what string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout+r.stderr, substr) {
		t.Errorf("%s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", what, r.code, code, substr, r.stdout, r.stderr)
	}
}

// TestStickCommands runs teactl as an operator does against a real kubo
// node and hosted sticks on swtpm: publish, sign, enroll, attest, invoke
// with receipts, offline receipt checks, upgrade; and the ways each goes
// wrong.
func TestStickCommands(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	node := kubotest.Start(t)

	// Publish: a real actor, and what must be refused.
	os.WriteFile(p("echo.wasm"), actortest.GoActor(t, "echo"), 0o644)
	os.WriteFile(p("edge.wasm"), actortest.Wat(t, "edge"), 0o644)
	os.WriteFile(p("noexport.wasm"), actortest.Wat(t, "noexport"), 0o644)
	os.WriteFile(p("text.wasm"), []byte("not a module at all"), 0o644)
	echo := strings.TrimSpace(mustOK(t, teactl("actor", "publish", p("echo.wasm"), "--box-api", node.API), "publish echo").stdout)
	edge := strings.TrimSpace(mustOK(t, teactl("actor", "publish", p("edge.wasm"), "--box-api", node.API), "publish edge").stdout)
	if echo != actortest.CID(actortest.GoActor(t, "echo")).String() {
		t.Fatalf("publish printed %q", echo)
	}
	wantFail(t, teactl("actor", "publish", p("text.wasm"), "--box-api", node.API), exitCheck, "not a WebAssembly module", "publish text")
	wantFail(t, teactl("actor", "publish", p("noexport.wasm"), "--box-api", node.API), exitCheck, "__guest_call", "publish without the entry point")
	wantFail(t, teactl("actor", "publish", p("echo.wasm"), "--box-api", "http://127.0.0.1:1", "--timeout", "5s"), exitIO, "block 1 of", "publish to no box")

	// Sign v1 (echo) and v2 (echo moves to edge) for the hosted image.
	mustOK(t, teactl("key", "generate", p("gov.key")), "key generate")
	mustOK(t, teactl("key", "generate", p("other.key")), "key generate")
	var pub struct {
		PublicKey string `json:"public_key"`
	}
	json.Unmarshal([]byte(mustOK(t, teactl("--json", "key", "public", p("gov.key")), "key public").stdout), &pub)
	img, _ := os.ReadFile(hostedStick(t))
	sum := sha256.Sum256(img)
	for _, m := range []struct {
		v, cid, out string
	}{{"1", echo, "v1.json"}, {"2", edge, "v2.json"}} {
		draft := p("draft" + m.v)
		mustOK(t, teactl("manifest", "new", "--version", m.v, "--stage0-sha256", strings.Repeat("0", 64), "--stick-sha256", hex.EncodeToString(sum[:]), "-o", draft), "manifest new")
		mustOK(t, teactl("manifest", "add", draft, "--name", "echo", "--cid", m.cid, "--grant", "log"), "manifest add")
		mustOK(t, teactl("manifest", "sign", draft, "--key", p("gov.key"), "-o", p(m.out)), "manifest sign")
	}

	caA, caB := t.TempDir(), t.TempDir()
	govArgs := []string{"-governance-key", pub.PublicKey, "-box", node.Gateway, "-box-api", node.API, "-manifest", p("v1.json")}
	urlA := startStick(t, caA, govArgs...)
	urlB := startStick(t, caB, govArgs...)
	bundle := func(ca string) string {
		b, err := swtpmtest.CABundle(ca)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, filepath.Base(ca)+".pem")
		os.WriteFile(f, b, 0o644)
		return f
	}

	// Enrol: only against the right manufacturer CA.
	wantFail(t, teactl("stick", "enroll", urlA, "--ca", bundle(caB), "-o", p("wrong.json")), exitCheck, "EK certificate", "enroll against another CA")
	mustOK(t, teactl("stick", "enroll", urlA, "--ca", bundle(caA), "-o", p("a.json")), "enroll A")
	mustOK(t, teactl("stick", "enroll", urlB, "--ca", bundle(caB), "-o", p("b.json")), "enroll B")
	if st, _ := os.Stat(p("a.json")); st.Mode().Perm() != 0o600 {
		t.Errorf("identity mode %v", st.Mode().Perm())
	}

	// Attest, and what must fail.
	r := mustOK(t, teactl("stick", "attest", urlA, "--identity", p("a.json"), "--pub", p("gov.key"), "--release", p("v1.json")), "attest A")
	if !strings.Contains(r.stdout, "attestation OK") {
		t.Errorf("attest output:\n%s", r.stdout)
	}
	// The same signed release in a re-spaced file with its wrapper's keys
	// reordered is the same release: the stick measured the canonical form.
	v1, _ := os.ReadFile(p("v1.json"))
	var wrapper struct {
		Signed    json.RawMessage `json:"signed"`
		Signature struct{ Alg, Key, Sig string }
	}
	if err := json.Unmarshal(v1, &wrapper); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("v1-respaced.json"), fmt.Appendf(nil, "{\n  \"signature\": {\"sig\": %q, \"key\": %q, \"alg\": %q},\n  \"signed\": %s\n}\n",
		wrapper.Signature.Sig, wrapper.Signature.Key, wrapper.Signature.Alg, wrapper.Signed), 0o644)
	mustOK(t, teactl("stick", "attest", urlA, "--identity", p("a.json"), "--pub", p("gov.key"), "--release", p("v1-respaced.json")), "attest A against its release re-spaced")
	wantFail(t, teactl("stick", "attest", urlA, "--identity", p("a.json"), "--pub", p("other.key")), exitCheck, "attestation FAILED", "wrong governance key")
	wantFail(t, teactl("stick", "attest", urlA, "--identity", p("a.json"), "--pub", p("gov.key"), "--release", p("v2.json")), exitCheck, "does not run the given release", "mismatched release")
	wantFail(t, teactl("stick", "attest", urlB, "--identity", p("a.json"), "--pub", p("gov.key")), exitCheck, "attestation FAILED", "another stick's attestation")
	var js struct {
		OK     bool
		Checks []struct {
			Name string
			Pass bool
		}
	}
	r = mustOK(t, teactl("--json", "stick", "attest", urlA, "--identity", p("a.json"), "--pub", p("gov.key")), "attest --json")
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || !js.OK || len(js.Checks) == 0 {
		t.Errorf("--json attest: %v %s", err, r.stdout)
	}

	// Invoke with receipts, and check them offline.
	if r := mustOK(t, teactl("stick", "attest", urlA, "--identity", p("a.json"), "--pub", p("gov.key")), "attest A"); !strings.Contains(r.stdout, "ok   rollback counter certified by the AK: counter 1") {
		t.Errorf("attest does not report the rollback counter:\n%s", r.stdout)
	}

	// Invoke checks the stick against a release or a minimum version,
	// never only against what the stick says it runs.
	wantFail(t, teactl("actor", "invoke", urlA, "echo", "echo", "hi", "--identity", p("a.json"), "--pub", p("gov.key")), exitUsage, "--release", "invoke with no reference")
	wantFail(t, teactl("actor", "invoke", urlA, "echo", "echo", "hi", "--identity", p("a.json"), "--pub", p("gov.key"), "--min-version", "2"), exitCheck, "release version 2", "invoke above the served version")
	wantFail(t, teactl("stick", "attest", urlA, "--identity", p("a.json"), "--pub", p("gov.key"), "--release", p("v2.json")), exitCheck, "FAIL manifest not older than the rollback counter and the release: served manifest version 1, rollback counter 1, release version 2", "attest against a newer release")

	// Invoke with receipts, and check them offline.
	r = mustOK(t, teactl("actor", "invoke", urlA, "echo", "echo", "hello stick", "--identity", p("a.json"), "--pub", p("gov.key"), "--release", p("v1.json"), "-o", p("r.json")), "invoke")
	if r.stdout != "hello stick\n" || !strings.Contains(r.stderr, "receipt OK") {
		t.Errorf("invoke: %q %q", r.stdout, r.stderr)
	}
	os.WriteFile(p("in"), []byte("hello stick"), 0o644)
	os.WriteFile(p("wrong-in"), []byte("hello stick!"), 0o644)
	mustOK(t, teactl("receipt", "verify", p("r.json"), "--identity", p("a.json"), "--pub", p("gov.key"), "--input", p("in"), "--output", p("in")), "receipt verify")
	wantFail(t, teactl("receipt", "verify", p("r.json"), "--identity", p("a.json"), "--pub", p("gov.key"), "--input", p("wrong-in"), "--output", p("in")), exitCheck, "input does not match", "receipt for other input")
	wantFail(t, teactl("receipt", "verify", p("r.json"), "--identity", p("b.json"), "--pub", p("gov.key")), exitCheck, "", "receipt against another stick")
	raw, _ := os.ReadFile(p("r.json"))
	var rf map[string]any
	json.Unmarshal(raw, &rf)
	rec := rf["receipt"].(map[string]any)
	rec["counter"] = rec["counter"].(float64) + 1 // one flipped bit: counter 1 -> 2
	flipped, _ := json.Marshal(rf)
	os.WriteFile(p("flipped.json"), flipped, 0o644)
	wantFail(t, teactl("receipt", "verify", p("flipped.json"), "--identity", p("a.json"), "--pub", p("gov.key")), exitCheck, "signature", "receipt with a flipped bit")
	wantFail(t, teactl("actor", "invoke", urlA, "nobody", "echo", "--identity", p("a.json"), "--pub", p("gov.key"), "--min-version", "1"), exitCheck, "404 unknown_actor", "unknown actor")

	// Upgrade, and the old release no longer matches.
	r = mustOK(t, teactl("stick", "upgrade", urlA, p("v2.json"), "--identity", p("a.json"), "--pub", p("gov.key")), "upgrade")
	if !strings.Contains(r.stdout, "attestation OK") {
		t.Errorf("upgrade output:\n%s\n%s", r.stdout, r.stderr)
	}
	wantFail(t, teactl("stick", "upgrade", urlA, p("v1.json"), "--identity", p("a.json"), "--pub", p("gov.key")), exitCheck, "409 stale_manifest", "downgrade")
	wantFail(t, teactl("stick", "attest", urlA, "--identity", p("a.json"), "--pub", p("gov.key"), "--release", p("v1.json")), exitCheck, "does not run the given release", "expired release")
	r = mustOK(t, teactl("actor", "invoke", urlA, "echo", "echo", "after", "--identity", p("a.json"), "--pub", p("gov.key"), "--release", p("v2.json")), "invoke after upgrade")
	if !strings.Contains(r.stderr, edge) {
		t.Errorf("after the upgrade the receipt names %q", r.stderr)
	}

	// A stick waiting for its first manifest gets it from stick upgrade.
	urlC := startStick(t, caA, "-governance-key", pub.PublicKey, "-box", node.Gateway, "-box-api", node.API)
	mustOK(t, teactl("stick", "enroll", urlC, "--ca", bundle(caA), "-o", p("c.json")), "enroll C")
	r = mustOK(t, teactl("stick", "upgrade", urlC, p("v1.json"), "--identity", p("c.json"), "--pub", p("gov.key")), "first manifest")
	if !strings.Contains(r.stderr, "giving it its first") || !strings.Contains(r.stdout, "attestation OK") {
		t.Errorf("first manifest:\n%s\n%s", r.stdout, r.stderr)
	}

	// An unreachable stick: a clear message, exit 3, no hang.
	start := time.Now()
	wantFail(t, teactl("stick", "attest", "https://127.0.0.1:1", "--identity", p("a.json"), "--pub", p("gov.key"), "--timeout", "5s"), exitIO, "unreachable", "unreachable stick")
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("unreachable stick took %v", d)
	}
}
