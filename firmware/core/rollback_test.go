package core

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/nvcounter"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/verify"
)

// v2 accepted, the TPM and the stick restarted with the TPM's state kept:
// v1 is refused (409 stale_manifest) although this boot accepted nothing
// yet, v2 is accepted, and the attestation certifies the counter.
func TestRollbackAcrossRestart(t *testing.T) {
	state, ca := t.TempDir(), t.TempDir()
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true, StateDir: state, CADir: ca})
	s, _ := newStick(t, measuredOn(t, sw))
	v1, v2 := sign(t, 1), sign(t, 2)
	for _, m := range [][]byte{v1, v2} {
		if err := s.Apply(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	sw.Stop()

	sw = swtpmtest.Start(t, swtpmtest.Options{StateDir: state, CADir: ca})
	s, log := newStick(t, measuredOn(t, sw))
	h := s.Handler()
	if code, out := call(t, h, "POST", "/v1/manifest", string(v1)); code != 409 || errCode(out) != "stale_manifest" {
		t.Fatalf("v1 after v2 and a restart: %d %v, want 409 stale_manifest\n%s", code, out, log)
	}
	if code, out := call(t, h, "POST", "/v1/manifest", string(sign(t, 2+nvcounter.MaxStep+1))); code != 409 || errCode(out) != "version_jump" {
		t.Fatalf("a version more than MaxStep above the counter: %d %v, want 409 version_jump", code, out)
	}
	if v := s.ManifestVersion(); v != 0 {
		t.Fatalf("running version %d after the refusals", v)
	}
	if code, out := call(t, h, "POST", "/v1/manifest", string(v2)); code != 200 {
		t.Fatalf("v2 after the restart: %d %v", code, out)
	}
	if v, err := s.RollbackCounter(); v != 2 || err != nil {
		t.Fatalf("rollback counter %d, %v; want 2", v, err)
	}
	if st := s.Status(); st.TPM.RollbackCounter != 2 {
		t.Errorf("status rollback counter %d, want 2", st.TPM.RollbackCounter)
	}

	bundle, _ := swtpmtest.CABundle(ca)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	ak := enrolAK(t, s, roots)
	nonce := sha256.Sum256([]byte(t.Name()))
	a, err := s.Attest(nonce[:16])
	if err != nil {
		t.Fatal(err)
	}
	v := &verify.Verdict{}
	if got := v.CheckRollback(ak, a.RollbackCounter, s.channelDER, a.Evidence.Quote, 2, 2); got != 2 || !v.OK() {
		t.Fatalf("certified counter %d:\n%s", got, v)
	}
	for _, tc := range []struct {
		name             string
		channel, quote   []byte
		served, released uint64
	}{
		{"another boot's channel key", []byte("another channel key"), a.Evidence.Quote, 2, 0},
		{"another boot's quote", s.channelDER, quoteOfAnotherBoot(t, a.Evidence.Quote), 2, 0},
		{"served below the counter", s.channelDER, a.Evidence.Quote, 1, 0},
		{"served below the release", s.channelDER, a.Evidence.Quote, 2, 3},
	} {
		v := &verify.Verdict{}
		v.CheckRollback(ak, a.RollbackCounter, tc.channel, tc.quote, tc.served, tc.released)
		if v.OK() {
			t.Errorf("%s passed:\n%s", tc.name, v)
		}
	}
	// The next attestation after the counter moved certifies its new
	// value.
	if err := s.Apply(context.Background(), sign(t, 3)); err != nil {
		t.Fatal(err)
	}
	if a, err = s.Attest(nonce[:16]); err != nil {
		t.Fatal(err)
	}
	v = &verify.Verdict{}
	if got := v.CheckRollback(ak, a.RollbackCounter, s.channelDER, a.Evidence.Quote, 3, 0); got != 3 || !v.OK() {
		t.Fatalf("after v3: certified counter %d:\n%s", got, v)
	}
}

// quoteOfAnotherBoot is q with its TPM reset count moved: what a quote of
// another boot of the same TPM carries (its signature no longer matters
// to CheckRollback, which compares clocks).
func quoteOfAnotherBoot(t *testing.T, q []byte) []byte {
	at, err := tpm2.Unmarshal[tpm2.TPMSAttest](q)
	if err != nil {
		t.Fatal(err)
	}
	at.ClockInfo.ResetCount++
	return tpm2.Marshal(*at)
}

// An index someone defined at the counter's handle before the stick did
// (the owner's authorization is empty) is not trusted: the stick accepts
// no manifest and says why.
func TestForeignRollbackIndex(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	tpm, err := sw.Open() // swtpm serves one connection at a time
	if err != nil {
		t.Fatal(err)
	}
	if err := measure.Startup(tpm); err != nil {
		t.Fatal(err)
	}
	pub := nvcounter.Public(false)
	pub.Attributes.AuthWrite, pub.Attributes.OwnerWrite = false, true // only the owner may raise it
	if _, err := (tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(pub),
	}).Execute(tpm); err != nil {
		t.Fatal(err)
	}
	tpm.Close()
	s, log := newStick(t, measuredOn(t, sw))
	if code, out := call(t, s.Handler(), "POST", "/v1/manifest", string(sign(t, 1))); code != 503 || errCode(out) != "rollback_counter" {
		t.Fatalf("manifest over a foreign counter index: %d %v, want 503 rollback_counter\n%s", code, out, log)
	}
	if st := s.Status(); st.TPM.RollbackError == "" || st.Manifest != nil {
		t.Errorf("status: rollback error %q, manifest %v", st.TPM.RollbackError, st.Manifest)
	}
}

// faultyNVTPM is a FAULT-INJECTION TPM: while armed it answers
// TPM2_NV_Increment with TPM_RC_NV_RATE (TPM 2.0 Part 2, 6.6.3: NV
// rate-limited), as a worn TPM may.
type faultyNVTPM struct {
	transport.TPM
	armed atomic.Bool
}

func (f *faultyNVTPM) Send(cmd []byte) ([]byte, error) {
	if f.armed.Load() && len(cmd) >= 10 && tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10])) == tpm2.TPMCCNVIncrement {
		rsp := make([]byte, 10)
		binary.BigEndian.PutUint16(rsp, uint16(tpm2.TPMSTNoSessions))
		binary.BigEndian.PutUint32(rsp[2:], 10)
		binary.BigEndian.PutUint32(rsp[6:], uint32(tpm2.TPMRCNVRate))
		return rsp, nil
	}
	return f.TPM.Send(cmd)
}

// A manifest whose version the TPM fails to record is not accepted:
// nothing measured, nothing running changes; once the TPM records it, it
// is.
func TestRaiseFaultAppliesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		boot []byte // accepted before the fault; nil: the fault hits the boot manifest
	}{
		{"boot", nil},
		{"upgrade", sign(t, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := measured(t)
			f := &faultyNVTPM{TPM: cfg.TPM}
			cfg.TPM = f
			s, _ := newStick(t, cfg)
			if tc.boot != nil {
				if err := s.Apply(context.Background(), tc.boot); err != nil {
					t.Fatal(err)
				}
			}
			before, version := len(cfg.Measurer.Events()), s.ManifestVersion()
			f.armed.Store(true)
			v3 := sign(t, 3)
			err := s.Apply(context.Background(), v3)
			if !errors.Is(err, tpm2.TPMRCNVRate) {
				t.Fatalf("Apply with the counter failing: %v, want TPM_RC_NV_RATE", err)
			}
			if got := len(cfg.Measurer.Events()); got != before || s.ManifestVersion() != version {
				t.Fatalf("after the failed raise: %d events (was %d), version %d (was %d)", got, before, s.ManifestVersion(), version)
			}
			f.armed.Store(false)
			if err := s.Apply(context.Background(), v3); err != nil {
				t.Fatalf("Apply once the TPM records it: %v", err)
			}
			if v, _ := s.RollbackCounter(); v != 3 || s.ManifestVersion() != 3 {
				t.Fatalf("counter %d, version %d, want 3", v, s.ManifestVersion())
			}
		})
	}
}
