package qemu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core/client"
)

// TestTPMLoss boots the stick under QEMU with a provisioned swtpm, hands it
// a manifest, enrols it, then kills swtpm under the running machine: the
// next status request reports the TPM fault, the console prints it, and
// attestation and enrolment answer 503 tpm_fault naming the TPM. QEMU's
// tpm-tis-device stays (its registers are QEMU's); what the stick's TIS
// driver sees from it is what this test checks the stick copes with.
func TestTPMLoss(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU TPM loss test SKIPPED: %s", why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	img := buildImages(t, ctx, "tpmloss-test", "")
	signed := signManifest(t, 1, img.stage0Sum, img.stickSum)
	tpm, _ := provisionedTPM(t, ctx)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var report []string
	logf := func(format string, args ...any) { report = append(report, fmt.Sprintf(format, args...)) }
	problem := make(chan error, 1)
	session := func(typeIn func(string)) {
		defer typeIn("halt\n")
		problem <- func() error {
			c := &client.Client{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Timeout: 3 * time.Minute}
			if _, err := c.Manifest(ctx, signed); err != nil {
				return fmt.Errorf("manifest: %w", err)
			}
			if _, err := c.Enrol(ctx); err != nil {
				return fmt.Errorf("enrol with the TPM: %w", err)
			}
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if !st.Measured || !st.TPM.OK || !st.Attestation.Ready {
				return fmt.Errorf("status with the TPM: measured %v, tpm %+v, attestation %+v", st.Measured, st.TPM, st.Attestation)
			}

			tpm.Stop()

			start := time.Now()
			st, err = c.Status(ctx)
			if err != nil {
				return fmt.Errorf("status without the TPM: %w", err)
			}
			logf("status after swtpm died: %d ms: tpm %+v, attestation %+v", time.Since(start).Milliseconds(), st.TPM, st.Attestation)
			if st.TPM.OK || !strings.Contains(st.TPM.Fault, "TPM fault") || st.Attestation.Ready {
				return fmt.Errorf("status after swtpm died: tpm %+v, attestation %+v", st.TPM, st.Attestation)
			}
			for name, call := range map[string]func() error{
				"attest": func() error { _, _, err := c.Attest(ctx, make([]byte, 16)); return err },
				"enrol":  func() error { _, err := c.Enrol(ctx); return err },
			} {
				start := time.Now()
				var e *client.Error
				err := call()
				logf("%s after swtpm died: %d ms: %v", name, time.Since(start).Milliseconds(), err)
				if !errors.As(err, &e) || e.Status != 503 || e.Code != "tpm_fault" || !strings.Contains(e.Message, "TPM") {
					return fmt.Errorf("%s after swtpm died: %v", name, err)
				}
			}
			return nil
		}()
	}
	res, err := Machine{Kernel: img.build.Stage0(), StickImage: img.container, TPM: tpm, HTTPPort: port,
		InputAfter: "manifest: none yet", Session: session}.Run(ctx, 10*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-problem:
		if err != nil {
			t.Error(err)
		}
	default:
		t.Error("the API session did not finish")
	}
	if !matchLine(res, `^tpm: FAULT: TPM fault: the stick's TPM stopped answering: `) {
		t.Error("the console does not report the TPM fault")
	}
	for _, l := range res.Lines {
		if strings.HasPrefix(l.Text, "tpm: ") || strings.HasPrefix(l.Text, "READY") {
			t.Log(l.Text)
		}
	}
	for _, l := range report {
		t.Log(l)
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
}
