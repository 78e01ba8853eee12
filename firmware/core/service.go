package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/tpm/attest"
)

// Errors of the service.
var (
	// ErrNoTPM: the stick has no TPM, so it cannot attest or enrol.
	ErrNoTPM = errors.New("no TPM")
	// ErrNotServed: the manifest names the actor but it did not load.
	ErrNotServed = errors.New("actor not served")
)

// Result is an actor's answer with its receipt.
type Result struct {
	Output  []byte           `json:"result"`
	Receipt *receipt.Receipt `json:"receipt"`
}

// Invoke calls an actor the manifest serves and signs a receipt over the
// call: actor, the CID of the version that ran, operation, input and output
// digests, the manifest version and a counter.
func (s *Stick) Invoke(ctx context.Context, name, op string, payload []byte) (*Result, error) {
	if _, err := s.servable(name); err != nil {
		return nil, err
	}
	s.m.invokes.Add(1)
	out, sv, err := s.rt.InvokeVersion(ctx, name, op, payload)
	if err != nil {
		s.m.invokeErrors.Add(1)
		return nil, err
	}
	r, err := s.results.Sign(name, sv.CID.String(), op, payload, out, s.receiptVersion(name, sv))
	if err != nil {
		s.m.invokeErrors.Add(1)
		return nil, fmt.Errorf("receipt: %w", err)
	}
	return &Result{Output: out, Receipt: r}, nil
}

// receiptVersion is the manifest version a receipt names for a call sv
// ran: the running manifest's when its entry for name is what ran (CID
// and grants), else the version of the manifest whose entry did (a call
// that began before an upgrade changed or dropped the actor, or the old
// version a failed upgrade kept). The receipt's manifest always names
// the actor, CID and grants that ran (RATIONALE.md, "Grants follow the
// manifest").
func (s *Stick) receiptVersion(name string, sv runtime.Served) uint64 {
	s.mu.Lock()
	m := s.manifest
	s.mu.Unlock()
	if m != nil {
		if a, ok := m.Actor(name); ok && sameCID(a.CID, sv.CID) && slices.Equal(a.Grants, sv.Grants) {
			return m.Version
		}
	}
	return sv.Tag
}

func sameCID(s string, c cid.Cid) bool {
	d, err := cid.Decode(s)
	return err == nil && d.Equals(c)
}

// servable says why actor name cannot be invoked now, or returns the
// manifest in force.
func (s *Stick) servable(name string) (*manifest.Manifest, error) {
	if err := s.Measured(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.manifest == nil {
		return nil, ErrNotReady
	}
	a, listed := s.actors[name]
	if !listed {
		return nil, fmt.Errorf("%w %q", runtime.ErrUnknownActor, name)
	}
	switch {
	case a.State == StateServing:
	case a.State == StateLoading:
		return nil, fmt.Errorf("%w: %s is still loading (fetching and compiling it; try again shortly)", ErrNotServed, name)
	case a.Error != "":
		return nil, fmt.Errorf("%w: %s is %s: %s", ErrNotServed, name, a.State, a.Error)
	default:
		return nil, fmt.Errorf("%w: %s is %s", ErrNotServed, name, a.State)
	}
	return s.manifest, nil
}

// Attestation is the answer to an attestation request: the quote over the
// PCRs with the event log (bound to the nonce and the channel key), the
// result key's certification by the same AK, and the signed manifests the
// stick accepted, boot first.
type Attestation struct {
	Evidence  *attest.Evidence      `json:"evidence"`
	ResultKey *attest.Certification `json:"result_key"`
	Manifests [][]byte              `json:"manifests"`
	// RollbackCounter is the AK's certification of the TPM's rollback
	// counter (nvcounter) in this boot, bound to the channel key
	// (attest.CounterQualifying), made after the counter last moved;
	// absent when the stick has no usable counter.
	RollbackCounter *attest.NVCertification `json:"rollback_counter,omitempty"`
}

// Nonce bounds.
const (
	MinNonce = 8
	MaxNonce = 64
)

// ErrNonce: the nonce is not MinNonce to MaxNonce bytes.
var ErrNonce = fmt.Errorf("nonce must be %d to %d bytes", MinNonce, MaxNonce)

// Certification certifies the result key with the AK (once per boot).
func (s *Stick) Certification() (*attest.Certification, error) {
	if s.att == nil {
		return nil, ErrNoTPM
	}
	if err := s.tpm.Fault(); err != nil {
		return nil, err
	}
	s.certOnce.Do(func() {
		s.cert, s.certErr = s.att.Certify(s.results.Public(), receipt.Qualifying())
	})
	return s.cert, s.tpmErr(s.certErr)
}

// tpmErr is err, or the TPM's fault when the TPM faulted: an error from
// a TPM that stopped answering says so, not what the command was for (a
// failed NV read is "TPM fault", not "no EK certificate in NV").
func (s *Stick) tpmErr(err error) error {
	if err == nil || s.tpm == nil {
		return err
	}
	if f := s.tpm.Fault(); f != nil {
		return f
	}
	return err
}

// Attest quotes the PCRs for a verifier's nonce.
func (s *Stick) Attest(nonce []byte) (*Attestation, error) {
	if len(nonce) < MinNonce || len(nonce) > MaxNonce {
		return nil, ErrNonce
	}
	if s.att == nil {
		return nil, ErrNoTPM
	}
	if err := s.Measured(); err != nil {
		return nil, err
	}
	if err := s.tpm.Fault(); err != nil {
		return nil, err
	}
	cert, err := s.Certification()
	if err != nil {
		if errors.Is(err, ErrTPMFault) {
			return nil, err
		}
		return nil, fmt.Errorf("certify result key: %w", err)
	}
	ev, err := s.att.Attest(nonce, s.channelDER, s.cfg.Measurer.Log(), s.cfg.Measurer.PCRs())
	if err != nil {
		return nil, s.tpmErr(err)
	}
	rc, err := s.certifyFloor()
	if err != nil {
		return nil, s.tpmErr(err)
	}
	s.m.attests.Add(1)
	s.mu.Lock()
	ms := slices.Clone(s.manifests)
	s.mu.Unlock()
	return &Attestation{Evidence: ev, ResultKey: cert, Manifests: ms, RollbackCounter: rc}, nil
}

// Enrol returns the enrolment request: EK certificate, EK and AK public.
func (s *Stick) Enrol() (*attest.Enrolment, error) {
	if s.att == nil {
		return nil, ErrNoTPM
	}
	if err := s.tpm.Fault(); err != nil {
		return nil, err
	}
	// Gathered once per boot: the EK certificate, the EK (an RSA
	// primary the TPM derives anew on each request, tens of
	// milliseconds on swtpm, seconds on some discrete TPMs) and the AK
	// do not change while the stick runs, and anyone who reaches the
	// API may ask.
	s.enrolMu.Lock()
	defer s.enrolMu.Unlock()
	if s.enrolment == nil {
		e, err := s.att.Enrol()
		if err != nil {
			return nil, s.tpmErr(err)
		}
		s.enrolment = e
	}
	return s.enrolment, nil
}

// Activate answers a verifier's credential challenge.
func (s *Stick) Activate(credentialBlob, encryptedSecret []byte) ([]byte, error) {
	if s.att == nil {
		return nil, ErrNoTPM
	}
	if err := s.tpm.Fault(); err != nil {
		return nil, err
	}
	secret, err := s.att.ActivateCredential(credentialBlob, encryptedSecret)
	return secret, s.tpmErr(err)
}

// Status is what GET /v1/status reports.
type Status struct {
	Version     string          `json:"version"`
	Board       string          `json:"board"`
	UptimeMS    int64           `json:"uptime_ms"`
	Measured    bool            `json:"measured"`
	NotMeasured string          `json:"not_measured,omitempty"`
	Ready       bool            `json:"ready"`
	Manifest    *ManifestStatus `json:"manifest"`
	Actors      []ActorStatus   `json:"actors"`
	Attestation AttestStatus    `json:"attestation"`
	ChannelKey  string          `json:"channel_key_sha256"`
	Counters    Counters        `json:"counters"`
	TPM         TPMStatus       `json:"tpm"`
}

// TPMStatus says whether the stick's TPM answers. A status request probes
// it (TPM2_ReadClock), so the answer is as of that request.
type TPMStatus struct {
	Present bool   `json:"present"`
	OK      bool   `json:"ok"`
	Fault   string `json:"fault,omitempty"`
	// FaultUptimeMS is the uptime at which the fault was first seen.
	FaultUptimeMS int64 `json:"fault_uptime_ms,omitempty"`
	// RollbackCounter is the TPM's rollback floor (firmware/core
	// rollback.go): no manifest below it is accepted. RollbackError says
	// why the stick has none (and so accepts no manifest).
	RollbackCounter uint64 `json:"rollback_counter,omitempty"`
	RollbackError   string `json:"rollback_error,omitempty"`
}

// ManifestStatus names the running manifest.
type ManifestStatus struct {
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256"`
}

// AttestStatus says whether an attestation can succeed now.
type AttestStatus struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// Counters are the stick's totals since boot.
type Counters struct {
	Invocations     uint64 `json:"invocations"`
	InvokeErrors    uint64 `json:"invoke_errors"`
	Rejected        uint64 `json:"rejected_requests"`
	Overload        uint64 `json:"overload_responses"`
	Attestations    uint64 `json:"attestations"`
	Upgrades        uint64 `json:"upgrades"`
	UpgradeFailures uint64 `json:"upgrade_failures"`
	Receipts        uint64 `json:"receipts"`
}

// Status reports the stick's state.
func (s *Stick) Status() *Status {
	st := &Status{
		Version:    s.cfg.Version,
		Board:      s.cfg.Board,
		UptimeMS:   s.cfg.Uptime().Milliseconds(),
		ChannelKey: fmt.Sprintf("%x", s.ChannelDigest()),
		Counters: Counters{
			Invocations: s.m.invokes.Load(), InvokeErrors: s.m.invokeErrors.Load(),
			Rejected: s.m.rejected.Load(), Overload: s.m.overload.Load(),
			Attestations: s.m.attests.Load(), Upgrades: s.m.upgrades.Load(),
			UpgradeFailures: s.m.upgradeFailures.Load(), Receipts: s.results.Count(),
		},
	}
	err := s.Measured()
	st.Measured = err == nil
	if err != nil {
		st.NotMeasured = err.Error()
	}
	var fault error
	if s.tpm != nil {
		if err == nil {
			fault = s.tpm.Probe(ProbeWait)
		} else {
			// Not started by a measured boot (New): not probed.
			fault = fmt.Errorf("not used: %w", err)
		}
		st.TPM = TPMStatus{Present: true, OK: fault == nil}
		if fault != nil {
			st.TPM.Fault = fault.Error()
		}
		if errors.Is(fault, ErrTPMFault) {
			st.TPM.FaultUptimeMS = s.tpm.faultUptime().Milliseconds()
		}
		if v, err := s.RollbackCounter(); err != nil {
			st.TPM.RollbackError = err.Error()
		} else {
			st.TPM.RollbackCounter = v
		}
	}
	switch {
	case s.att == nil:
		st.Attestation.Reason = ErrNoTPM.Error()
	case err != nil:
		st.Attestation.Reason = err.Error()
	case fault != nil:
		st.Attestation.Reason = fault.Error()
	default:
		st.Attestation.Ready = true
	}
	stats := map[string]runtime.Info{}
	for _, in := range s.rt.Actors() {
		stats[in.Name] = in
	}
	s.mu.Lock()
	st.Ready = s.ready
	if s.manifest != nil {
		sum := sha256.Sum256(s.manifests[len(s.manifests)-1])
		st.Manifest = &ManifestStatus{Version: s.manifest.Version, SHA256: hex.EncodeToString(sum[:])}
	}
	st.Actors = []ActorStatus{}
	now := time.Now()
	for _, a := range s.actors {
		st.Actors = append(st.Actors, a.withNextTry(now))
	}
	s.mu.Unlock()
	slices.SortFunc(st.Actors, func(a, b ActorStatus) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	for i := range st.Actors {
		a := &st.Actors[i]
		if in, ok := stats[a.Name]; ok {
			a.Engine = in.Engine
			a.Calls, a.Failed, a.Faults, a.Busy = in.Stats.Calls, in.Stats.Failures, in.Stats.Faults, in.Stats.Busy
			for _, n := range in.Stats.Denied {
				a.Denied += n
			}
			if a.State == StateFailed {
				continue
			}
			a.Serving = in.CID.String()
		}
	}
	return st
}
