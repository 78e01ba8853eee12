//go:build !tamago

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/verify"
)

// The hosted stick boots v2; swtpm and the stick are restarted with the
// TPM's state kept: the stick refuses to boot v1 (stale), takes v2, and
// its attestation certifies the rollback counter at 2.
func TestHostedRollbackAcrossRestart(t *testing.T) {
	state, ca := t.TempDir(), t.TempDir()
	gov := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	img, err := os.ReadFile(hostedStick(t))
	if err != nil {
		t.Fatal(err)
	}
	image := sha256.Sum256(img)
	dir := t.TempDir()
	file := func(version uint64) (string, []byte) {
		b, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: version,
			Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: hex.EncodeToString(image[:])}}, gov)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "v"+string(rune('0'+version))+".json")
		os.WriteFile(p, b, 0o644)
		return p, b
	}
	v1, _ := file(1)
	v2, v2raw := file(2)
	args := func(sw *swtpmtest.Server, m string) []string {
		return []string{"-tpm", sw.Socket, "-governance-key", hex.EncodeToString(gov.Public().(ed25519.PublicKey)), "-manifest", m}
	}

	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true, StateDir: state, CADir: ca})
	st := startStick(t, args(sw, v2)...)
	st.WaitFor("READY: manifest version 2", time.Minute)
	st.Stop()
	sw.Stop()

	sw = swtpmtest.Start(t, swtpmtest.Options{StateDir: state, CADir: ca})
	st = startStick(t, args(sw, v1)...)
	if l := st.WaitFor("manifest: refused:", time.Minute); !strings.Contains(l, "rollback counter is 2") {
		t.Fatalf("v1 after v2 and a restart: %q", l)
	}
	ctx := context.Background()
	c := &client.Client{URL: st.URL, Timeout: time.Minute}
	s, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Manifest != nil || s.TPM.RollbackCounter != 2 {
		t.Fatalf("status after the refusal: manifest %+v, rollback counter %d", s.Manifest, s.TPM.RollbackCounter)
	}
	if _, err := c.Manifest(ctx, v2raw); err != nil {
		t.Fatalf("v2 after the restart: %v", err)
	}
	bundle, _ := swtpmtest.CABundle(ca)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	ak := enrol(t, c, roots)
	nonce := sha256.Sum256([]byte(t.Name()))
	a, peer, err := c.Attest(ctx, nonce[:])
	if err != nil {
		t.Fatal(err)
	}
	v := &verify.Verdict{}
	if n := v.CheckRollback(ak, a.RollbackCounter, peer, a.Evidence.Quote, 2, 0); n != 2 || !v.OK() {
		t.Fatalf("rollback counter %d:\n%s", n, v)
	}
}
