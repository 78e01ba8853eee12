package nvcounter_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/nvcounter"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

func started(t *testing.T, opts swtpmtest.Options) (*swtpmtest.Server, transport.TPM) {
	t.Helper()
	sw := swtpmtest.Start(t, opts)
	tpm := sw.OpenT(t)
	if err := measure.Startup(tpm); err != nil {
		t.Fatal(err)
	}
	return sw, tpm
}

func open(t *testing.T, tpm transport.TPM) *nvcounter.Counter {
	t.Helper()
	c, err := nvcounter.Open(tpm)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The floor survives a restart of the TPM (swtpm killed, state kept) and
// never falls.
func TestRaiseSurvivesRestart(t *testing.T) {
	state := t.TempDir()
	sw, tpm := started(t, swtpmtest.Options{StateDir: state})
	c := open(t, tpm)
	t.Logf("a fresh TPM's counter starts at %d", c.Value())
	if c.Value() == 0 {
		t.Fatalf("initialized counter reads 0")
	}
	if v, err := c.Raise(5); err != nil || v != 5 {
		t.Fatalf("Raise(5) = %d, %v", v, err)
	}
	sw.Stop()

	_, tpm = started(t, swtpmtest.Options{StateDir: state})
	c = open(t, tpm)
	if c.Value() != 5 {
		t.Fatalf("after restart the counter reads %d, want 5", c.Value())
	}
	if v, err := c.Raise(3); err != nil || v != 5 {
		t.Fatalf("Raise(3) = %d, %v; want 5 (never lowered)", v, err)
	}
}

// Deleting the index (the owner's authorization is empty on swtpm) and
// letting the stick define it anew does not lower the floor: the TPM
// initializes a new counter to the largest value any counter had.
func TestUndefineDoesNotLower(t *testing.T) {
	_, tpm := started(t, swtpmtest.Options{})
	c := open(t, tpm)
	if _, err := c.Raise(7); err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.NVUndefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: nvcounter.Index, Name: c.Name()},
	}).Execute(tpm); err != nil {
		t.Fatal(err)
	}
	if c := open(t, tpm); c.Value() < 7 {
		t.Fatalf("redefined counter reads %d, below the old floor 7", c.Value())
	}
}

func TestStep(t *testing.T) {
	_, tpm := started(t, swtpmtest.Options{})
	c := open(t, tpm)
	v := c.Value()
	if _, err := c.Raise(v + nvcounter.MaxStep + 1); !errors.Is(err, nvcounter.ErrStep) {
		t.Fatalf("Raise past MaxStep: %v, want ErrStep", err)
	}
	if got, _ := c.Refresh(); got != v {
		t.Fatalf("refused raise moved the counter from %d to %d", v, got)
	}
}

// An index someone else defined at Index first, with the owner's empty
// authorization, is not trusted, whatever its attributes.
func TestForeignIndex(t *testing.T) {
	counter := nvcounter.Public(false)
	for _, tc := range []struct {
		name string
		pub  func() tpm2.TPMSNVPublic
	}{
		{"ordinary index", func() tpm2.TPMSNVPublic {
			p := counter
			p.Attributes.NT = tpm2.TPMNTOrdinary
			return p
		}},
		{"counter written by the owner only", func() tpm2.TPMSNVPublic {
			p := counter
			p.Attributes.AuthWrite, p.Attributes.OwnerWrite = false, true
			return p
		}},
		{"counter with an auth policy", func() tpm2.TPMSNVPublic {
			p := counter
			p.AuthPolicy = tpm2.TPM2BDigest{Buffer: make([]byte, 32)}
			return p
		}},
		{"counter with SHA-1 names", func() tpm2.TPMSNVPublic {
			p := counter
			p.NameAlg = tpm2.TPMAlgSHA1
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, tpm := started(t, swtpmtest.Options{})
			if _, err := (tpm2.NVDefineSpace{
				AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
				PublicInfo: tpm2.New2B(tc.pub()),
			}).Execute(tpm); err != nil {
				t.Fatal(err)
			}
			if _, err := nvcounter.Open(tpm); !errors.Is(err, nvcounter.ErrForeignIndex) {
				t.Fatalf("Open over a foreign index: %v, want ErrForeignIndex", err)
			}
		})
	}
}

// faultyTPM fails every TPM2_NV_Increment after the first ok ones.
type faultyTPM struct {
	transport.TPM
	ok int
}

func (f *faultyTPM) Send(cmd []byte) ([]byte, error) {
	if len(cmd) >= 10 && tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10])) == tpm2.TPMCCNVIncrement {
		if f.ok == 0 {
			return nil, errors.New("faultyTPM: NV_Increment lost")
		}
		f.ok--
	}
	return f.TPM.Send(cmd)
}

// A raise the TPM fails part of the way reports the error and leaves the
// floor between where it was and where it was going.
func TestRaiseFault(t *testing.T) {
	_, tpm := started(t, swtpmtest.Options{})
	v := open(t, tpm).Value()
	f := &faultyTPM{TPM: tpm, ok: 2}
	c := open(t, f)
	if _, err := c.Raise(v + 5); err == nil {
		t.Fatal("Raise through a failing TPM succeeded")
	}
	if got := open(t, tpm).Value(); got != v+2 {
		t.Fatalf("counter %d after 2 good increments from %d", got, v)
	}
}
