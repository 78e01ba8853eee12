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

// attestImages builds stage 0 and the stick with the test governance key
// and returns the stick's container and both images' digests.
type attestImages struct {
	build               Build
	container           string
	stick               []byte
	stickSum, stage0Sum [32]byte
}

var testGovernance = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func buildAttestImages(t *testing.T, ctx context.Context) attestImages {
	t.Helper()
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU attestation test SKIPPED: %s", why)
	}
	dir := t.TempDir()
	b := Build{Root: root, Dir: dir, Version: "attest-test",
		GovernanceKey: hex.EncodeToString(testGovernance.Public().(ed25519.PublicKey))}
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
	return attestImages{build: b, container: container, stick: stick,
		stickSum: sha256.Sum256(stick), stage0Sum: sha256.Sum256(stage0)}
}

func signManifest(t *testing.T, version uint64, stage0, stick [32]byte) []byte {
	t.Helper()
	signed, err := manifest.Sign(&manifest.Manifest{
		Schema: manifest.Schema, Version: version,
		Firmware: manifest.Firmware{Stage0: hex.EncodeToString(stage0[:]), Stick: hex.EncodeToString(stick[:])},
	}, testGovernance)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// conversation is the outcome of a verifier's exchange with a stick.
type conversation struct {
	verdict, stale *verify.Verdict
	problems       []string
	res            *Result
}

// converse boots the machine and, over the stick's serial console, does
// what an operator's verifier does: hand it a signed manifest, enrol its
// TPM (EK certificate chained to roots, credential activation for the AK),
// ask for a quote on a fresh nonce and verify it against ref; the same
// evidence is also checked against a replayed nonce.
func converse(t *testing.T, ctx context.Context, m Machine, signed []byte, roots *x509.CertPool, ref *verify.Reference) *conversation {
	t.Helper()
	c := &conversation{}
	var (
		channelDigest string
		pending       *verify.PendingEnrolment
		akPublic      []byte
		nonce         = sha256.Sum256([]byte(t.Name() + time.Now().String()))
	)
	decode := func(line, prefix string, v any) error {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, prefix))
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, v)
	}
	fail := func(format string, args ...any) string {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
		return "halt\n"
	}
	m.Interact = func(line string) string {
		switch {
		case strings.Contains(line, "FAILED") || strings.Contains(line, "refused") || strings.Contains(line, "NOT MEASURED"):
			return fail("stick: %s", line)
		case strings.HasPrefix(line, "channel: key sha256:"):
			channelDigest = strings.TrimPrefix(line, "channel: key sha256:")
			return "manifest " + base64.StdEncoding.EncodeToString(signed) + "\n"
		case strings.HasPrefix(line, "manifest: boot measurements closed"):
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
			return "attest " + hex.EncodeToString(nonce[:]) + "\n"
		case strings.HasPrefix(line, "attest: "):
			var ev attest.Evidence
			if err := decode(line, "attest: ", &ev); err != nil {
				return fail("attest: %v", err)
			}
			if d := sha256.Sum256(ev.ChannelKey); hex.EncodeToString(d[:]) != channelDigest {
				return fail("evidence carries channel key %x, the stick announced %s", d, channelDigest)
			}
			exp := verify.Expect{AKPublic: akPublic, Nonce: nonce[:], ChannelKey: ev.ChannelKey, Reference: ref}
			c.verdict = verify.Verify(&ev, exp)
			exp.Nonce = []byte("an older nonce, replayed")
			c.stale = verify.Verify(&ev, exp)
			return "halt\n"
		}
		return ""
	}
	res, err := m.Run(ctx, 3*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.res = res
	return c
}

func provisionedTPM(t *testing.T, ctx context.Context) (*SWTPM, *x509.CertPool) {
	t.Helper()
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
	return tpm, roots
}

const attestConfig = "version=attest-test\nboard=qemu-virt-arm\n"

// TestAttestation boots stage 0 and the stick under QEMU with a
// provisioned swtpm and attests it end to end: the verdict must pass every
// check against reference measurements computed on the host from the image
// bytes, and fail for a replayed nonce.
func TestAttestation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	img := buildAttestImages(t, ctx)
	signed := signManifest(t, 1, img.stage0Sum, img.stickSum)
	tpm, roots := provisionedTPM(t, ctx)
	ref := &verify.Reference{Events: verify.BootEvents(img.stickSum, []byte(attestConfig), signed)}

	c := converse(t, ctx, Machine{Kernel: img.build.Stage0(), StickImage: img.container, TPM: tpm}, signed, roots, ref)
	for _, p := range c.problems {
		t.Error(p)
	}
	if c.verdict == nil {
		t.Fatalf("no attestation happened; console:\n%s", c.res.Console)
	}
	if !c.verdict.OK() {
		t.Errorf("verdict on the stick's quote:\n%s", c.verdict)
	} else {
		t.Logf("verdict:\n%s", c.verdict)
	}
	if c.stale.OK() {
		t.Error("a quote verified against another nonce")
	}
	if c.res.ExitCode != 0 {
		t.Errorf("exit status %d", c.res.ExitCode)
	}
}

// TestAttestationTamperedImage boots a stick image changed by one byte
// (its version string). The stick itself refuses the release manifest,
// which names the genuine image; given a manifest naming the changed image,
// it serves, and the verifier, holding the genuine release's reference,
// names PCR 4 and the image's event.
func TestAttestationTamperedImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	img := buildAttestImages(t, ctx)
	if bytes.Count(img.stick, []byte("attest-test")) == 0 {
		t.Fatal("version string not found in the image")
	}
	tampered := bytes.ReplaceAll(img.stick, []byte("attest-test"), []byte("attest-tesT"))
	tamperedSum := sha256.Sum256(tampered)
	dir := t.TempDir()
	elf := filepath.Join(dir, "tampered.elf")
	if err := os.WriteFile(elf, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	container, err := WrapStick(elf, dir)
	if err != nil {
		t.Fatal(err)
	}
	genuine := signManifest(t, 1, img.stage0Sum, img.stickSum)
	ref := &verify.Reference{Events: verify.BootEvents(img.stickSum, []byte(attestConfig), genuine)}

	t.Run("stick refuses the genuine release's manifest", func(t *testing.T) {
		tpm, roots := provisionedTPM(t, ctx)
		c := converse(t, ctx, Machine{Kernel: img.build.Stage0(), StickImage: container, TPM: tpm}, genuine, roots, ref)
		if !matchLine(c.res, `^manifest: refused: this stick runs image sha256:`+hex.EncodeToString(tamperedSum[:])+`, the manifest allows sha256:`+hex.EncodeToString(img.stickSum[:])+`$`) {
			t.Errorf("stick did not refuse; console:\n%s", c.res.Console)
		}
	})
	t.Run("verifier names PCR 4 and the image event", func(t *testing.T) {
		tpm, roots := provisionedTPM(t, ctx)
		forTampered := signManifest(t, 1, img.stage0Sum, tamperedSum)
		c := converse(t, ctx, Machine{Kernel: img.build.Stage0(), StickImage: container, TPM: tpm}, forTampered, roots, ref)
		if c.verdict == nil {
			t.Fatalf("no attestation happened: %v; console:\n%s", c.problems, c.res.Console)
		}
		if c.verdict.OK() {
			t.Fatal("the tampered stick passed attestation")
		}
		named := false
		for _, f := range c.verdict.Failed() {
			if f.PCR == 4 && f.Event == 0 {
				named = true
			}
		}
		if !named {
			t.Errorf("verdict does not name PCR 4 event 0:\n%s", c.verdict)
		} else {
			t.Logf("verdict:\n%s", c.verdict)
		}
	})
}
