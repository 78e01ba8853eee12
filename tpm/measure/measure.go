// Package measure is teastick's measured boot: stage 0 and the stick extend
// what they load into TPM PCRs and log each extend in a TCG crypto-agile
// event log (package eventlog). It fails closed: once an extend fails the
// Measurer refuses everything after it, and nothing unextended is logged.
package measure

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/tpm/eventlog"
)

// The PCR plan (PC Client allocation, PFP 3.3.4). PCRs 16 and 23 are
// resettable at locality 0 and never used.
const (
	// PCRImage holds the stick image, measured by stage 0 (EV_IPL).
	PCRImage = 4
	// PCRConfig holds the stick's configuration and the signed release
	// manifest (EV_EVENT_TAG), then a separator.
	PCRConfig = 8
	// PCRBootActors holds the actors loaded at boot (EV_EVENT_TAG), then a
	// separator before the stick serves.
	PCRBootActors = 9
	// PCRRuntime holds actors loaded or upgraded while serving.
	PCRRuntime = 10
	// MaxPCR is the highest PCR of the plan; PCRs 0..MaxPCR are quoted.
	MaxPCR = PCRRuntime
)

// HandoffPCRs get a separator from stage 0 when it hands over to the stick
// (PFP: separators on PCRs 0-7 end the pre-OS phase).
var HandoffPCRs = []uint32{0, 1, 2, 3, 4, 5, 6, 7}

var (
	// ErrFailed means an earlier measurement failed: the Measurer is
	// closed and the stick must not serve.
	ErrFailed = errors.New("measure: an earlier measurement failed")
	// ErrBanks means PCR banks other than SHA-256 are active: the log
	// could not explain them.
	ErrBanks = errors.New("measure: PCR banks other than SHA-256 are active")
	// ErrReplay means a log does not replay to the TPM's PCRs.
	ErrReplay = errors.New("measure: event log does not replay to the TPM's PCRs")
	// ErrPCR means a PCR outside the plan was asked for.
	ErrPCR = errors.New("measure: PCR not in the plan")
)

// Startup sends TPM2_Startup(CLEAR); TPM_RC_INITIALIZE (already started,
// e.g. by swtpm's startup-clear flag) counts as success.
func Startup(tpm transport.TPM) error {
	_, err := tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute(tpm)
	if err != nil && !errors.Is(err, tpm2.TPMRCInitialize) {
		return fmt.Errorf("measure: TPM2_Startup: %w", err)
	}
	return nil
}

// CheckBanks returns ErrBanks unless SHA-256 is the only active PCR bank.
func CheckBanks(tpm transport.TPM) error {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 16}.Execute(tpm)
	if err != nil {
		return fmt.Errorf("measure: read PCR banks: %w", err)
	}
	sel, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return fmt.Errorf("measure: read PCR banks: %w", err)
	}
	sha256Active := false
	var other []tpm2.TPMAlgID
	for _, s := range sel.PCRSelections {
		if !slices.ContainsFunc(s.PCRSelect, func(b byte) bool { return b != 0 }) {
			continue
		}
		if s.Hash == tpm2.TPMAlgSHA256 {
			sha256Active = true
		} else {
			other = append(other, s.Hash)
		}
	}
	if len(other) > 0 {
		return fmt.Errorf("%w: %v (provision the TPM with swtpm_setup --pcr-banks sha256)", ErrBanks, other)
	}
	if !sha256Active {
		return fmt.Errorf("%w: SHA-256 bank inactive", ErrBanks)
	}
	return nil
}

// ReadPCRs reads SHA-256 PCRs, at most 8 per TPM2_PCR_Read.
func ReadPCRs(tpm transport.TPM, pcrs []uint32) (eventlog.PCRs, error) {
	out := eventlog.PCRs{}
	for i := 0; i < len(pcrs); i += 8 {
		chunk := pcrs[i:min(i+8, len(pcrs))]
		idx := make([]uint, len(chunk))
		for j, p := range chunk {
			idx[j] = uint(p)
		}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(idx...)}}}}.Execute(tpm)
		if err != nil {
			return nil, fmt.Errorf("measure: PCR_Read %v: %w", chunk, err)
		}
		if len(rsp.PCRValues.Digests) != len(chunk) {
			return nil, fmt.Errorf("measure: PCR_Read %v returned %d digests", chunk, len(rsp.PCRValues.Digests))
		}
		// Digests come in ascending PCR order (TPM 2.0 Part 3, PCR_Read).
		sorted := slices.Clone(chunk)
		slices.Sort(sorted)
		for j, d := range rsp.PCRValues.Digests {
			if len(d.Buffer) != sha256.Size {
				return nil, fmt.Errorf("measure: PCR %d: %d-byte digest", sorted[j], len(d.Buffer))
			}
			out[sorted[j]] = [sha256.Size]byte(d.Buffer)
		}
	}
	return out, nil
}

// PlanPCRs are the PCRs 0..MaxPCR.
func PlanPCRs() []uint32 {
	p := make([]uint32, MaxPCR+1)
	for i := range p {
		p[i] = uint32(i)
	}
	return p
}

// Measurer extends PCRs and keeps the event log. It is safe for concurrent
// use.
type Measurer struct {
	tpm transport.TPM
	log *slog.Logger

	mu     sync.Mutex
	raw    []byte
	events []eventlog.Event
	pcrs   eventlog.PCRs // the replay of events, kept as extends happen
	err    error
}

// New starts the TPM (TPM2_Startup(CLEAR)), checks that SHA-256 is the only
// active bank and begins an empty log. Stage 0 calls it.
func New(tpm transport.TPM, log *slog.Logger) (*Measurer, error) {
	tpm = Retrying(tpm)
	if err := Startup(tpm); err != nil {
		return nil, err
	}
	if err := CheckBanks(tpm); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Measurer{tpm: tpm, log: log.With("component", "tpm"), raw: eventlog.Header(), pcrs: eventlog.PCRs{}}, nil
}

// Resume continues the log stage 0 handed over: it parses the hand-off
// block and checks the log replays to the TPM's PCRs 0..MaxPCR (PCRs no
// event touches must be zero). The stick calls it; any error means the
// stick must not serve.
func Resume(tpm transport.TPM, handoff []byte, log *slog.Logger) (*Measurer, error) {
	tpm = Retrying(tpm)
	raw, err := ParseHandoff(handoff)
	if err != nil {
		return nil, err
	}
	parsed, err := eventlog.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("measure: hand-off log: %w", err)
	}
	if len(parsed.Algs) != 1 {
		return nil, fmt.Errorf("measure: hand-off log declares %d banks, want SHA-256 only", len(parsed.Algs))
	}
	if err := CheckBanks(tpm); err != nil {
		return nil, err
	}
	if err := checkReplay(tpm, parsed.Events); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Measurer{tpm: tpm, log: log.With("component", "tpm"), raw: raw, events: parsed.Events, pcrs: eventlog.Replay(parsed.Events)}, nil
}

func checkReplay(tpm transport.TPM, events []eventlog.Event) error {
	want := eventlog.Replay(events)
	got, err := ReadPCRs(tpm, PlanPCRs())
	if err != nil {
		return err
	}
	for _, p := range PlanPCRs() {
		if got[p] != want[p] {
			return fmt.Errorf("%w: PCR %d is %x, log replays to %x", ErrReplay, p, got[p], want[p])
		}
	}
	for p := range want {
		if p > MaxPCR {
			return fmt.Errorf("%w: event on PCR %d outside the plan", ErrReplay, p)
		}
	}
	return nil
}

// Verify checks that the log still replays to the TPM's PCRs.
func (m *Measurer) Verify() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	return checkReplay(m.tpm, m.events)
}

// Err returns the failure that closed the Measurer, or nil.
func (m *Measurer) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Extend extends digest into pcr and, only when the TPM accepted it, logs
// the event. A failure closes the Measurer (fail closed).
func (m *Measurer) Extend(pcr uint32, typ eventlog.EventType, digest [sha256.Size]byte, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return fmt.Errorf("%w: %w", ErrFailed, m.err)
	}
	if pcr > MaxPCR {
		return fmt.Errorf("%w: %d", ErrPCR, pcr)
	}
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest[:]}}},
	}.Execute(m.tpm)
	if err != nil {
		m.err = fmt.Errorf("measure: extend PCR %d (%v): %w", pcr, typ, err)
		m.log.Error("measurement failed, fail closed", "pcr", pcr, "type", typ.String(), "err", err)
		return m.err
	}
	e := eventlog.Event{PCR: pcr, Type: typ, Digest: digest, Data: bytes.Clone(data)}
	m.events = append(m.events, e)
	m.raw = eventlog.AppendEvent(m.raw, e)
	v := m.pcrs[pcr]
	m.pcrs[pcr] = sha256.Sum256(append(v[:], digest[:]...))
	m.log.Debug("measured", "pcr", pcr, "type", typ.String(), "digest", fmt.Sprintf("%x", digest[:8]))
	return nil
}

// MeasureImage measures the stick image into PCR 4 as EV_IPL; desc (for
// example "teastick v1.2.0") becomes the event data.
func (m *Measurer) MeasureImage(image []byte, desc string) error {
	return m.Extend(PCRImage, eventlog.EV_IPL, sha256.Sum256(image), []byte(desc))
}

// Separator extends EV_SEPARATOR into each PCR.
func (m *Measurer) Separator(pcrs ...uint32) error {
	d := sha256.Sum256(eventlog.Separator)
	for _, p := range pcrs {
		if err := m.Extend(p, eventlog.EV_SEPARATOR, d, eventlog.Separator); err != nil {
			return err
		}
	}
	return nil
}

// tagged extends a TCG_PCClientTaggedEvent whose digest is the SHA-256 of
// the whole tagged event data, so a verifier can check data and digest
// agree.
func (m *Measurer) tagged(pcr uint32, tag uint32, payload []byte) error {
	data := eventlog.Tagged(tag, payload)
	return m.Extend(pcr, eventlog.EV_EVENT_TAG, sha256.Sum256(data), data)
}

// MeasureConfig measures the stick's configuration into PCR 8.
func (m *Measurer) MeasureConfig(config []byte) error {
	return m.tagged(PCRConfig, eventlog.TagConfig, config)
}

// MeasureManifest measures the signed release manifest into PCR 8.
func (m *Measurer) MeasureManifest(manifest []byte) error {
	return m.tagged(PCRConfig, eventlog.TagManifest, manifest)
}

// MeasureUpgrade measures a signed manifest accepted while serving into
// PCR 10, before the actors it changes.
func (m *Measurer) MeasureUpgrade(manifest []byte) error {
	return m.tagged(PCRRuntime, eventlog.TagManifest, manifest)
}

// MeasureActor measures an actor into PCR 9 (boot) or 10 (run time).
func (m *Measurer) MeasureActor(pcr uint32, a Actor) error {
	if pcr != PCRBootActors && pcr != PCRRuntime {
		return fmt.Errorf("%w: actors go to PCR %d or %d, not %d", ErrPCR, PCRBootActors, PCRRuntime, pcr)
	}
	enc, err := a.MarshalBinary()
	if err != nil {
		return err
	}
	return m.tagged(pcr, eventlog.TagActor, enc)
}

// Log returns a copy of the event log bytes.
func (m *Measurer) Log() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.raw)
}

// Events returns a copy of the logged events.
func (m *Measurer) Events() []eventlog.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]eventlog.Event(nil), m.events...)
}

// PCRs returns PCRs 0..MaxPCR as the log replays them, which equal the
// TPM's while this Measurer is the only one extending (Resume checked the
// start). An attester can send them without reading the TPM; a verifier
// trusts them only if they hash to the quoted digest.
func (m *Measurer) PCRs() eventlog.PCRs {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := eventlog.PCRs{}
	for _, p := range PlanPCRs() {
		out[p] = m.pcrs[p]
	}
	return out
}

// Handoff returns the hand-off block carrying the log to the stick.
func (m *Measurer) Handoff() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFailed, m.err)
	}
	return EncodeHandoff(m.raw), nil
}
