//go:build !tamago

package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// The hosted stick with its swtpm killed: the next status request reports
// the TPM fault, the console says so, and attestation and enrolment answer
// 503 tpm_fault naming the TPM.
func TestHostedTPMLoss(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	st := startStick(t, "-tpm", sw.Socket)
	ctx := context.Background()
	c := &client.Client{URL: st.URL, Timeout: time.Minute}
	if _, err := c.Enrol(ctx); err != nil {
		t.Fatalf("enrol with the TPM: %v", err)
	}
	before, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !before.Measured || !before.TPM.Present || !before.TPM.OK {
		t.Fatalf("status with the TPM: measured %v, tpm %+v", before.Measured, before.TPM)
	}

	sw.Stop()

	after, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.TPM.OK || !strings.Contains(after.TPM.Fault, "TPM fault") || after.Attestation.Ready {
		t.Errorf("status after swtpm died: tpm %+v, attestation %+v", after.TPM, after.Attestation)
	}
	st.WaitFor("tpm: FAULT: TPM fault: the stick's TPM stopped answering", 10*time.Second)
	for name, call := range map[string]func() error{
		"attest": func() error { _, _, err := c.Attest(ctx, make([]byte, 16)); return err },
		"enrol":  func() error { _, err := c.Enrol(ctx); return err },
	} {
		var e *client.Error
		if err := call(); !errors.As(err, &e) || e.Status != 503 || e.Code != "tpm_fault" || !strings.Contains(e.Message, "TPM") {
			t.Errorf("%s after swtpm died: %v", name, err)
		}
	}
}
