package qemu

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/verify"
)

// TestAttestation boots stage 0 and the stick under QEMU with a
// provisioned swtpm and, over the stick's serial console, does what an
// operator's verifier does: hand it a signed manifest, enrol its TPM (EK
// certificate, credential activation for the AK), ask for a quote on a
// fresh nonce and verify it against reference measurements computed on the
// host from the image bytes.
func TestAttestation(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU attestation test SKIPPED: %s", why)
	}
	gov := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b := Build{Root: root, Dir: dir, Version: "attest-test",
		GovernanceKey: hex.EncodeToString(gov.Public().(ed25519.PublicKey))}
	stickPath, err := b.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	container, err := WrapStick(stickPath, dir)
	if err != nil {
		t.Fatal(err)
	}
	stick, _ := os.ReadFile(stickPath)
	stage0, _ := os.ReadFile(b.Stage0())
	stickSum, stage0Sum := sha256.Sum256(stick), sha256.Sum256(stage0)

	signed, err := manifest.Sign(&manifest.Manifest{
		Schema: manifest.Schema, Version: 1,
		Firmware: manifest.Firmware{Stage0: hex.EncodeToString(stage0Sum[:]), Stick: hex.EncodeToString(stickSum[:])},
	}, gov)
	if err != nil {
		t.Fatal(err)
	}

	caDir := filepath.Join(t.TempDir(), "ca")
	tpm := &SWTPM{Dir: t.TempDir(), Provision: true, CADir: caDir}
	if err := tpm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tpm.Stop)
	bundle, err := swtpmtest.CABundle(caDir)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("no CA certificates")
	}

	var (
		channelDigest string
		pending       *verify.PendingEnrolment
		akPublic      []byte
		nonce         = []byte("fresh nonce " + time.Now().String())[:24]
		verdict       *verify.Verdict
		stale         *verify.Verdict
		problems      []string
	)
	decode := func(line, prefix string, v any) error {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, prefix))
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, v)
	}
	fail := func(format string, args ...any) string {
		problems = append(problems, fmt.Sprintf(format, args...))
		return "halt\n"
	}
	m := Machine{
		Kernel: b.Stage0(), StickImage: container, TPM: tpm,
		Interact: func(line string) string {
			switch {
			case strings.Contains(line, "FAILED") || strings.Contains(line, "refused") || strings.Contains(line, "NOT MEASURED"):
				return fail("stick: %s", line)
			case strings.HasPrefix(line, "channel: key sha256:"):
				channelDigest = strings.TrimPrefix(line, "channel: key sha256:")
				return "manifest " + base64.StdEncoding.EncodeToString(signed) + "\n"
			case strings.HasPrefix(line, "manifest: accepted version 1"):
				return "enrol\n"
			case strings.HasPrefix(line, "enrol: "):
				var req attest.Enrolment
				if err := decode(line, "enrol: ", &req); err != nil {
					return fail("enrol: %v", err)
				}
				ch, p, err := verify.Enrol(&req, roots)
				if err != nil {
					return fail("verify.Enrol: %v", err)
				}
				pending = p
				js, _ := json.Marshal(ch)
				return "activate " + base64.StdEncoding.EncodeToString(js) + "\n"
			case strings.HasPrefix(line, "activate: "):
				secret, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "activate: "))
				if err != nil {
					return fail("activate: %v", err)
				}
				if akPublic, err = pending.Finish(secret); err != nil {
					return fail("Finish: %v", err)
				}
				return "attest " + hex.EncodeToString(nonce) + "\n"
			case strings.HasPrefix(line, "attest: "):
				var ev attest.Evidence
				if err := decode(line, "attest: ", &ev); err != nil {
					return fail("attest: %v", err)
				}
				if d := sha256.Sum256(ev.ChannelKey); hex.EncodeToString(d[:]) != channelDigest {
					return fail("evidence carries channel key %x, the stick announced %s", d, channelDigest)
				}
				config := []byte("version=attest-test\nboard=qemu-virt-arm\n")
				ref := &verify.Reference{Events: verify.BootEvents(stickSum, config, signed)}
				exp := verify.Expect{AKPublic: akPublic, Nonce: nonce, ChannelKey: ev.ChannelKey, Reference: ref}
				verdict = verify.Verify(&ev, exp)
				exp.Nonce = []byte("an older nonce, replayed")
				stale = verify.Verify(&ev, exp)
				return "halt\n"
			}
			return ""
		},
	}
	res, err := m.Run(ctx, 3*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if verdict == nil {
		t.Fatalf("no attestation happened; console:\n%s", res.Console)
	}
	if !verdict.OK() {
		t.Errorf("verdict on the stick's quote:\n%s", verdict)
	} else {
		t.Logf("verdict:\n%s", verdict)
	}
	if stale.OK() {
		t.Error("a quote verified against another nonce")
	}
	if res.ExitCode != 0 {
		t.Errorf("exit status %d", res.ExitCode)
	}
}
