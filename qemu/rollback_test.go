package qemu

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/tpm/verify"
)

// TestRollbackAcrossReboot boots the stick under QEMU, gives it v1 then
// v2, and halts it; QEMU and swtpm start again on the same TPM state: the
// stick refuses v1 (409 stale_manifest) although it runs nothing yet,
// takes v2, and attests with the rollback counter at 2, certified by the
// AK, the quote verifying against v2's reference.
func TestRollbackAcrossReboot(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU rollback test SKIPPED: %s", why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	img := buildImages(t, ctx, "rollback-test", "")
	v1 := signManifest(t, 1, img.stage0Sum, img.stickSum)
	v2 := signManifest(t, 2, img.stage0Sum, img.stickSum)
	tpm, roots := provisionedTPM(t, ctx)
	config := []byte("version=rollback-test\nboard=qemu-virt-arm\n")

	boot := func(name string, session func(c *client.Client) error) {
		t.Helper()
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		problem := make(chan error, 1)
		res, err := Machine{Kernel: img.build.Stage0(), StickImage: img.container, TPM: tpm, HTTPPort: port,
			InputAfter: "manifest: none yet", Session: func(typeIn func(string)) {
				defer typeIn("halt\n")
				problem <- session(&client.Client{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Timeout: 3 * time.Minute})
			}}.Run(ctx, 10*time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-problem:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		default:
			t.Errorf("%s: the API session did not finish", name)
		}
		for _, l := range res.Lines {
			if len(l.Text) > 9 && (l.Text[:9] == "rollback:" || l.Text[:9] == "manifest:") {
				t.Logf("%s: %s", name, l.Text)
			}
		}
		if t.Failed() {
			t.Fatalf("%s: console:\n%s", name, res.Console)
		}
	}

	boot("first boot", func(c *client.Client) error {
		for _, m := range [][]byte{v1, v2} {
			if _, err := c.Manifest(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})

	// swtpm ends with QEMU (--terminate); the same state directory again.
	tpm.Stop()
	if err := tpm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	boot("after reboot", func(c *client.Client) error {
		var e *client.Error
		if _, err := c.Manifest(ctx, v1); !errors.As(err, &e) || e.Status != 409 || e.Code != "stale_manifest" {
			return fmt.Errorf("v1 after v2 and a reboot: %v, want 409 stale_manifest", err)
		}
		if _, err := c.Manifest(ctx, v2); err != nil {
			return fmt.Errorf("v2 after the reboot: %w", err)
		}
		req, err := c.Enrol(ctx)
		if err != nil {
			return err
		}
		ch, pending, err := verify.Enrol(req, roots)
		if err != nil {
			return err
		}
		secret, err := c.Activate(ctx, ch.CredentialBlob, ch.EncryptedSecret)
		if err != nil {
			return err
		}
		ak, err := pending.Finish(secret)
		if err != nil {
			return err
		}
		nonce := sha256.Sum256([]byte(t.Name() + time.Now().String()))
		a, peer, err := c.Attest(ctx, nonce[:])
		if err != nil {
			return err
		}
		ref := &verify.Reference{Stage0: img.stage0Sum, Events: verify.BootEvents(img.stickSum, config, v2)}
		v := verify.Verify(a.Evidence, verify.Expect{AKPublic: ak, Nonce: nonce[:], ChannelKey: peer, Reference: ref})
		n := v.CheckRollback(ak, a.RollbackCounter, peer, a.Evidence.Quote, 2, 2)
		if n != 2 || !v.OK() {
			return fmt.Errorf("rollback counter %d; verdict:\n%s", n, v)
		}
		t.Logf("verdict:\n%s", v)
		return nil
	})
}
