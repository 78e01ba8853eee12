package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

type result struct {
	code           int
	stdout, stderr string
}

func teactl(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func rawCID(t *testing.T, data string) string {
	h, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h).String()
}

// TestManifestWorkflow is the operator's path: a key, a draft, actors, a
// signature, verification, and the ways it goes wrong.
func TestManifestWorkflow(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	os.WriteFile(p("boot.elf"), []byte("stage0 image"), 0o644)
	os.WriteFile(p("stick.elf"), []byte("stick image"), 0o644)

	r := teactl("key", "generate", p("gov.key"))
	if r.code != 0 {
		t.Fatalf("key generate: %+v", r)
	}
	st, err := os.Stat(p("gov.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	keyPEM, _ := os.ReadFile(p("gov.key"))
	blk, _ := pem.Decode(keyPEM)
	seedHex := hex.EncodeToString(blk.Bytes)
	if strings.Contains(r.stdout+r.stderr, seedHex) {
		t.Fatal("the private key was printed")
	}
	if r := teactl("key", "generate", p("gov.key")); r.code != exitIO || !strings.Contains(r.stderr, "never overwritten") {
		t.Fatalf("second key generate over the same file: %+v", r)
	}
	r = teactl("--json", "key", "public", p("gov.key"))
	var pub struct {
		PublicKey string `json:"public_key"`
		KeyID     string `json:"key_id"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &pub) != nil || len(pub.PublicKey) != 64 {
		t.Fatalf("key public --json: %+v", r)
	}
	teactl("key", "generate", p("other.key"))

	steps := []struct {
		name string
		args []string
		code int
		want string // in stdout (or stderr on failure)
	}{
		{"new draft", []string{"manifest", "new", "--version", "3", "--stage0", p("boot.elf"), "--stick", p("stick.elf"), "-o", p("draft.json")}, 0, "wrote draft"},
		{"add echo", []string{"manifest", "add", p("draft.json"), "--name", "echo", "--cid", rawCID(t, "echo"), "--grant", "log"}, 0, "added echo"},
		{"add notary, grants sorted", []string{"manifest", "add", p("draft.json"), "--name", "notary", "--cid", rawCID(t, "notary"), "--grant", "log", "--grant", "crypto.sign", "--timeout-ms", "250"}, 0, "grants [crypto.sign log]"},
		{"duplicate actor", []string{"manifest", "add", p("draft.json"), "--name", "echo", "--cid", rawCID(t, "x")}, exitCheck, `actor "echo" is already`},
		{"bad CID", []string{"manifest", "add", p("draft.json"), "--name", "bad", "--cid", "bafy-not-a-cid"}, exitCheck, "cid"},
		{"bad limit", []string{"manifest", "add", p("draft.json"), "--name", "x", "--cid", rawCID(t, "x"), "--timeout-ms", "-5"}, exitUsage, "not a 32-bit unsigned number"},
		{"show draft", []string{"manifest", "show", p("draft.json")}, 0, "draft (unsigned)"},
		{"sign", []string{"manifest", "sign", p("draft.json"), "--key", p("gov.key"), "-o", p("m.json")}, 0, "version 3, 2 actors"},
		{"verify", []string{"manifest", "verify", p("m.json"), "--pub", pub.PublicKey}, 0, "valid, version 3"},
		{"verify with the key file", []string{"manifest", "verify", p("m.json"), "--pub", p("gov.key")}, 0, "valid"},
		{"verify with the wrong key", []string{"manifest", "verify", p("m.json"), "--pub", p("other.key")}, exitCheck, "unknown key"},
		{"show signed", []string{"manifest", "show", p("m.json")}, 0, "actor    notary"},
		{"verify a missing file", []string{"manifest", "verify", p("nope.json"), "--pub", pub.PublicKey}, exitIO, "no such file"},
		{"unknown command", []string{"manifest", "frob"}, exitUsage, "unknown command"},
		{"missing flags", []string{"manifest", "sign", p("draft.json")}, exitUsage, "needs DRAFT, --key and -o"},
		{"help", []string{"manifest", "sign", "--help"}, 0, ""},
	}
	for _, s := range steps {
		r := teactl(s.args...)
		if r.code != s.code || !strings.Contains(r.stdout+r.stderr, s.want) {
			t.Fatalf("%s: teactl %s = %d\nstdout: %s\nstderr: %s\nwant %d with %q", s.name, strings.Join(s.args, " "), r.code, r.stdout, r.stderr, s.code, s.want)
		}
	}

	// one flipped bit anywhere in the signed file fails verification
	b, _ := os.ReadFile(p("m.json"))
	i := bytes.Index(b, []byte(`"version":3`))
	b[i+len(`"version":`)] = '4'
	os.WriteFile(p("tampered.json"), b, 0o644)
	if r := teactl("--json", "manifest", "verify", p("tampered.json"), "--pub", pub.PublicKey); r.code != exitCheck || !strings.Contains(r.stdout, `"valid": false`) {
		t.Fatalf("tampered manifest: %+v", r)
	}

	// a key others can read is refused
	os.Chmod(p("gov.key"), 0o644)
	if r := teactl("manifest", "sign", p("draft.json"), "--key", p("gov.key"), "-o", p("m2.json")); r.code != exitCheck || !strings.Contains(r.stderr, "readable by others") {
		t.Fatalf("sign with a world-readable key: %+v", r)
	}
}

func TestUsage(t *testing.T) {
	if r := teactl(); r.code != exitUsage || !strings.Contains(r.stderr, "usage: teactl") {
		t.Fatalf("no arguments: %+v", r)
	}
	if r := teactl("--help"); r.code != 0 || !strings.Contains(r.stderr, "Exit status") {
		t.Fatalf("--help: %+v", r)
	}
}
