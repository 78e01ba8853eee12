package core

import (
	"errors"
	"fmt"
	"sync"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/nvcounter"
)

// ErrRollbackCounter: the stick cannot use the TPM's rollback counter
// (nvcounter): it was defined by someone else, or the TPM failed to define
// or read it. Without it the stick accepts no manifest: it could not tell
// an old one from a new one across reboots.
var ErrRollbackCounter = errors.New("rollback counter unusable")

// floor is the stick's rollback floor: the TPM NV counter holding the
// highest manifest version this TPM ever accepted (nvcounter), read at
// New and raised (under the upgrade lock) before a manifest is measured.
type floor struct {
	mu    sync.Mutex
	c     *nvcounter.Counter
	err   error
	value uint64 // c's value, for checks that take no TPM command
	// cert is the AK's certification of the counter since it last
	// moved, made at the first attestation after that (certifyFloor).
	cert *attest.NVCertification
}

// openFloor opens the rollback counter on the stick's TPM, defining it on
// first boot.
func (s *Stick) openFloor() {
	c, err := nvcounter.Open(s.tpm)
	s.floor.mu.Lock()
	defer s.floor.mu.Unlock()
	if err != nil {
		s.floor.err = fmt.Errorf("%w: %w", ErrRollbackCounter, err)
		s.logf("rollback: REFUSING MANIFESTS: %v", err)
		return
	}
	s.floor.c, s.floor.value = c, c.Value()
	s.logf("rollback: TPM counter %#x at %d: the lowest manifest version this stick takes", uint32(nvcounter.Index), c.Value())
}

// RollbackCounter is the rollback floor as last read or raised; the error
// says why there is none (no TPM, or ErrRollbackCounter).
func (s *Stick) RollbackCounter() (uint64, error) {
	if s.tpm == nil {
		return 0, ErrNoTPM
	}
	s.floor.mu.Lock()
	defer s.floor.mu.Unlock()
	return s.floor.value, s.floor.err
}

// checkFloor refuses a manifest below the rollback floor (manifest.ErrStale:
// whatever the running manifest, after any number of reboots), or too far
// above it to raise it at once (nvcounter.ErrStep).
func (s *Stick) checkFloor(m *manifest.Manifest) error {
	if s.tpm == nil {
		return nil
	}
	v, err := s.RollbackCounter()
	if err != nil {
		return err
	}
	if m.Version < v {
		return fmt.Errorf("%w: offered %d, the TPM's rollback counter is %d", manifest.ErrStale, m.Version, v)
	}
	if m.Version-v > nvcounter.MaxStep {
		// Refused before an upgrade fetches anything; Raise would.
		return fmt.Errorf("%w: version %d, counter %d (at most %d at once)", nvcounter.ErrStep, m.Version, v, nvcounter.MaxStep)
	}
	return nil
}

// raiseFloor raises the rollback floor to m's version before m is
// measured or applied (the caller holds the upgrade lock). When it fails
// the manifest is not accepted; the counter may have moved part of the
// way, which only refuses versions below where it stopped.
func (s *Stick) raiseFloor(m *manifest.Manifest) error {
	if s.tpm == nil {
		return nil
	}
	s.floor.mu.Lock()
	defer s.floor.mu.Unlock()
	if s.floor.err != nil {
		return s.floor.err
	}
	v, err := s.floor.c.Raise(m.Version)
	if err != nil {
		return fmt.Errorf("rollback counter: raise to %d: %w", m.Version, err)
	}
	s.floor.value, s.floor.cert = v, nil
	return nil
}

// certifyFloor returns the AK's certification of the rollback counter
// (TPM2_NV_Certify, qualifying data attest.CounterQualifying of this
// boot's channel key), made once after each time the counter moved and
// kept: an attestation costs no TPM signature beyond its quote (RATIONALE
// "The rollback floor is a TPM counter raised one by one"). Nil when the
// stick has no usable counter (the verifier then fails the attestation).
func (s *Stick) certifyFloor() (*attest.NVCertification, error) {
	s.floor.mu.Lock()
	defer s.floor.mu.Unlock()
	if s.floor.c == nil {
		return nil, nil
	}
	if s.floor.cert == nil {
		cert, err := s.att.CertifyNV(nvcounter.Index, s.floor.c.Name(), 8, attest.CounterQualifying(s.channelDER))
		if err != nil {
			return nil, err
		}
		s.floor.cert = cert
	}
	return s.floor.cert, nil
}
