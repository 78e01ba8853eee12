package qemu

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

	"github.com/teastick/teastick/image/manifest"
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
	return buildImages(t, ctx, "attest-test", "")
}

// buildImages builds stage 0 and a stick image with extra build tags that
// accepts manifests signed by testGovernance, and wraps the stick in its
// container.
func buildImages(t testing.TB, ctx context.Context, version, tags string) attestImages {
	t.Helper()
	return buildImagesFrom(t, ctx, Build{Root: root, Dir: t.TempDir(), Version: version, Tags: tags,
		GovernanceKey: hex.EncodeToString(testGovernance.Public().(ed25519.PublicKey))})
}

// buildImagesFrom is buildImages for the Build b (NativeImage's, say).
func buildImagesFrom(t testing.TB, ctx context.Context, b Build) attestImages {
	t.Helper()
	dir := b.Dir
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

// signManifest signs a manifest for the images with stage0 and stick as
// digests, naming actors, with testGovernance.
func signManifest(t testing.TB, version uint64, stage0, stick [32]byte, actors ...manifest.Actor) []byte {
	t.Helper()
	signed, err := manifest.Sign(&manifest.Manifest{
		Schema: manifest.Schema, Version: version,
		Firmware: manifest.Firmware{Stage0: hex.EncodeToString(stage0[:]), Stick: hex.EncodeToString(stick[:])},
		Actors:   actors,
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

// converse boots the machine and runs a ConsoleVerifier over its console.
func converse(t *testing.T, ctx context.Context, m Machine, signed []byte, roots *x509.CertPool, ref *verify.Reference) *conversation {
	t.Helper()
	nonce := sha256.Sum256([]byte(t.Name() + time.Now().String()))
	v := &ConsoleVerifier{Manifest: signed, Roots: roots, Reference: ref, Nonce: nonce[:]}
	m.Interact = v.Line
	res, err := m.Run(ctx, 3*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &conversation{verdict: v.Verdict, stale: v.Stale, problems: v.Problems, res: res}
}

func provisionedTPM(t testing.TB, ctx context.Context) (*SWTPM, *x509.CertPool) {
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
	ref := &verify.Reference{Stage0: img.stage0Sum, Events: verify.BootEvents(img.stickSum, []byte(attestConfig), signed)}

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
	ref := &verify.Reference{Stage0: img.stage0Sum, Events: verify.BootEvents(img.stickSum, []byte(attestConfig), genuine)}

	t.Run("stick refuses the genuine release's manifest", func(t *testing.T) {
		tpm, roots := provisionedTPM(t, ctx)
		c := converse(t, ctx, Machine{Kernel: img.build.Stage0(), StickImage: container, TPM: tpm}, genuine, roots, ref)
		if !matchLine(c.res, `^manifest: refused: wrong image: this stick runs image sha256:`+hex.EncodeToString(tamperedSum[:])+`, the manifest allows sha256:`+hex.EncodeToString(img.stickSum[:])+`$`) {
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
			if f.PCR == 4 && f.Event == 1 { // after stage 0's own event
				named = true
			}
		}
		if !named {
			t.Errorf("verdict does not name PCR 4 event 1:\n%s", c.verdict)
		} else {
			t.Logf("verdict:\n%s", c.verdict)
		}
	})
}

// TestAttestationOtherStage0 boots the genuine stick image from a stage 0
// built with another VERSION (so its code and read-only data differ): the
// stick serves, its event log is the truth, and the verifier holding the
// genuine release's reference refuses it, naming the stage 0 check on
// PCR 0, while PCR 4's stick event still matches.
func TestAttestationOtherStage0(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	img := buildAttestImages(t, ctx)
	other := img.build
	other.Dir, other.Version = t.TempDir(), "attest-test-other-stage0"
	otherStage0, err := other.BuildStage0(ctx)
	if err != nil {
		t.Fatal(err)
	}
	otherBytes, _ := os.ReadFile(otherStage0)
	otherSum := sha256.Sum256(otherBytes)
	if otherSum == img.stage0Sum {
		t.Fatal("the other stage 0 is the genuine one")
	}
	signed := signManifest(t, 1, img.stage0Sum, img.stickSum)
	ref := &verify.Reference{Stage0: img.stage0Sum, Events: verify.BootEvents(img.stickSum, []byte(attestConfig), signed)}
	tpm, roots := provisionedTPM(t, ctx)
	c := converse(t, ctx, Machine{Kernel: otherStage0, StickImage: img.container, TPM: tpm}, signed, roots, ref)
	if !matchLine(c.res, `^stage0: measured itself into PCR 0: \d+ bytes sha256:`+hex.EncodeToString(otherSum[:])+`$`) {
		t.Errorf("the other stage 0 did not measure itself; console:\n%s", c.res.Console)
	}
	if c.verdict == nil {
		t.Fatalf("no attestation happened: %v; console:\n%s", c.problems, c.res.Console)
	}
	if c.verdict.OK() {
		t.Fatalf("a stick booted by another stage 0 passed attestation:\n%s", c.verdict)
	}
	t.Logf("verdict:\n%s", c.verdict)
	for _, f := range c.verdict.Failed() {
		if f.Name != verify.CheckStage0 {
			t.Errorf("unexpected failed check %s", f)
		} else if f.PCR != 0 || f.Event != 0 || !strings.Contains(f.Detail, hex.EncodeToString(otherSum[:])) {
			t.Errorf("stage 0 check does not name PCR 0 event 0 and the other stage 0's digest: %s", f)
		}
	}
	if len(c.verdict.Failed()) == 0 {
		t.Error("no failed check")
	}
}
