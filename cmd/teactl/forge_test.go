package main

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/tpmsock"
)

// forger is an attacker who holds a stick's TPM after the stick let go of
// it (the hosted stick stopped, or the QEMU machine shut down): the AK
// has an empty authorization and no policy, so the attacker can have it
// certify any key and quote any PCRs they can extend.
type forger struct {
	t   *testing.T
	tpm transport.TPM
	att *attest.Attester
	own *receipt.Signer // the attacker's result key
}

func newForger(t *testing.T, socket string) *forger {
	t.Helper()
	c, err := tpmsock.Dial(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := measure.Startup(c); err != nil {
		t.Fatal(err)
	}
	own, err := receipt.NewSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &attest.Attester{TPM: c}
	t.Cleanup(func() { a.Close() })
	return &forger{t: t, tpm: c, att: a, own: own}
}

// certified is the attack of issue 14: the genuine evidence, and the AK's
// certification of the attacker's own key.
func (f *forger) certified(genuine *receipt.File) *receipt.Evidence {
	f.t.Helper()
	ev := *genuine.Evidence
	ev.Certification = f.cert()
	return &ev
}

func (f *forger) cert() *attest.Certification {
	f.t.Helper()
	c, err := f.att.Certify(f.own.Public(), receipt.Qualifying())
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// extendedAfter continues the genuine boot's log on a TPM that still
// holds its PCRs: the attacker's keys event is extended into PCR 9 after
// the stick's, and a fresh quote names both.
func (f *forger) extendedAfter(genuine *receipt.File) *receipt.Evidence {
	f.t.Helper()
	m, err := measure.Resume(f.tpm, measure.EncodeHandoff(genuine.Evidence.Attestation.EventLog), nil)
	if err != nil {
		f.t.Fatalf("the TPM does not hold the genuine boot's PCRs: %v", err)
	}
	return f.quote(genuine, m)
}

// noImage measures nothing but the attacker's keys event on a TPM just
// reset, and quotes it.
func (f *forger) noImage(genuine *receipt.File) *receipt.Evidence {
	f.t.Helper()
	m, err := measure.New(f.tpm, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.quote(genuine, m)
}

func (f *forger) quote(genuine *receipt.File, m *measure.Measurer) *receipt.Evidence {
	f.t.Helper()
	ck := genuine.Evidence.Attestation.ChannelKey
	if err := m.MeasureKeys(measure.Keys{Channel: ck, Result: f.own.Public()}); err != nil {
		f.t.Fatal(err)
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	a, err := f.att.Attest(nonce, ck, m.Log(), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	ev := *genuine.Evidence
	ev.Nonce, ev.Attestation, ev.Certification = nonce, a, f.cert()
	return &ev
}

// write signs the genuine receipt's statement (input and output given)
// with the attacker's key and writes it with ev to path. The file also
// carries the certification where format 2 verifiers looked for it: the
// attacker hands out whatever the verifier reads.
func (f *forger) write(path string, genuine *receipt.File, input, output []byte, ev *receipt.Evidence) {
	f.t.Helper()
	g := genuine.Receipt
	r, err := f.own.Sign(g.Actor, g.CID, g.Operation, input, output, g.ManifestVersion)
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := json.MarshalIndent(map[string]any{"format": receipt.FileFormat, "receipt": r, "evidence": ev, "certification": ev.Certification}, "", "  ")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func readReceiptFile(t *testing.T, path string) *receipt.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f receipt.File
	if err := json.Unmarshal(b, &f); err != nil || f.Receipt == nil || f.Evidence == nil {
		t.Fatalf("%s: not a receipt file with evidence (%v)", path, err)
	}
	return &f
}
