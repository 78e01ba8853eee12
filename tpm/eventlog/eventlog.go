// Package eventlog writes, parses and replays the TCG crypto-agile event log
// (TCG PC Client Platform Firmware Profile Specification (PFP), version 1.05,
// section 10 "Event Logging"): a TCG_PCR_EVENT header carrying the Spec ID
// Event03, then TCG_PCR_EVENT2 entries. teastick logs the SHA-256 bank only.
// All integers are little-endian (PFP 10.2).
package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// EventType is a PFP event type (PFP 10.4.1, table "Event Types").
type EventType uint32

// The event types teastick uses, values from PFP 10.4.1.
const (
	EV_NO_ACTION EventType = 0x00000003 // not extended: the Spec ID header
	EV_SEPARATOR EventType = 0x00000004 // end of a boot phase
	EV_EVENT_TAG EventType = 0x00000006 // TCG_PCClientTaggedEvent: config, manifest, actors
	EV_IPL       EventType = 0x0000000D // the initial program loaded: the stick image
	// EV_S_CRTM_CONTENTS: the contents of the static root of trust for
	// measurement, measured into PCR 0 before anything else (PFP 3.3.4.1
	// PCR[0], 10.4.1): stage 0's own image.
	EV_S_CRTM_CONTENTS EventType = 0x00000007
)

func (t EventType) String() string {
	switch t {
	case EV_NO_ACTION:
		return "EV_NO_ACTION"
	case EV_SEPARATOR:
		return "EV_SEPARATOR"
	case EV_EVENT_TAG:
		return "EV_EVENT_TAG"
	case EV_IPL:
		return "EV_IPL"
	case EV_S_CRTM_CONTENTS:
		return "EV_S_CRTM_CONTENTS"
	}
	return fmt.Sprintf("EV_%#x", uint32(t))
}

// TPM_ALG_SHA256 and its digest size (TCG Algorithm Registry).
const (
	TPM_ALG_SHA256 = 0x000B
	DigestSize     = sha256.Size
)

// Limits on parsed logs: a log arrives from an untrusted place.
const (
	MaxEventData = 1 << 20
	MaxEvents    = 1 << 16
	MaxAlgs      = 16
)

var (
	// ErrMalformed means the log bytes do not follow the format.
	ErrMalformed = errors.New("eventlog: malformed log")
	// ErrNoSHA256 means the log or an event carries no SHA-256 digest.
	ErrNoSHA256 = errors.New("eventlog: no SHA-256 digest")
)

// Event is one TCG_PCR_EVENT2 with its SHA-256 digest.
type Event struct {
	PCR    uint32
	Type   EventType
	Digest [DigestSize]byte
	Data   []byte
}

// Separator is the event data of an EV_SEPARATOR for a successful phase
// end (PFP 10.4.1: 4 bytes of zero, the digest is their hash).
var Separator = []byte{0, 0, 0, 0}

// Log is a parsed event log.
type Log struct {
	// Algs are the digest algorithms the Spec ID header declares
	// (algorithm id to digest size).
	Algs []Alg
	// Events are the TCG_PCR_EVENT2 entries in order, SHA-256 digests.
	Events []Event
}

// Alg is one TCG_EfiSpecIdEventAlgorithmSize.
type Alg struct {
	ID   uint16
	Size uint16
}

// specIDSignature is the Spec ID Event03 signature, NUL included.
var specIDSignature = []byte("Spec ID Event03\x00")

// Header returns the TCG_PCR_EVENT header with TCG_EfiSpecIDEvent (PFP
// 10.4.5.1) declaring the SHA-256 bank only.
func Header() []byte {
	var spec []byte
	spec = append(spec, specIDSignature...)
	spec = binary.LittleEndian.AppendUint32(spec, 0) // platformClass: client
	spec = append(spec, 0, 2, 0)                     // specVersionMinor, Major, specErrata
	spec = append(spec, 2)                           // uintnSize: UINT64
	spec = binary.LittleEndian.AppendUint32(spec, 1) // numberOfAlgorithms
	spec = binary.LittleEndian.AppendUint16(spec, TPM_ALG_SHA256)
	spec = binary.LittleEndian.AppendUint16(spec, DigestSize)
	spec = append(spec, 0) // vendorInfoSize

	var b []byte
	b = binary.LittleEndian.AppendUint32(b, 0) // pcrIndex
	b = binary.LittleEndian.AppendUint32(b, uint32(EV_NO_ACTION))
	b = append(b, make([]byte, 20)...) // SHA-1 sized digest, zero
	b = binary.LittleEndian.AppendUint32(b, uint32(len(spec)))
	return append(b, spec...)
}

// AppendEvent appends e as a TCG_PCR_EVENT2 with one SHA-256 digest.
func AppendEvent(b []byte, e Event) []byte {
	b = binary.LittleEndian.AppendUint32(b, e.PCR)
	b = binary.LittleEndian.AppendUint32(b, uint32(e.Type))
	b = binary.LittleEndian.AppendUint32(b, 1) // TPML_DIGEST_VALUES.count
	b = binary.LittleEndian.AppendUint16(b, TPM_ALG_SHA256)
	b = append(b, e.Digest[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Data)))
	return append(b, e.Data...)
}

// Encode returns a whole log: the header then events.
func Encode(events []Event) []byte {
	b := Header()
	for _, e := range events {
		b = AppendEvent(b, e)
	}
	return b
}

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = fmt.Errorf("%w: %d bytes needed at offset %d, %d left", ErrMalformed, n, r.off, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

// Parse parses a crypto-agile log. Every event must carry a digest for each
// declared algorithm, SHA-256 among them; digests of other algorithms are
// checked for size and dropped.
func Parse(b []byte) (*Log, error) {
	r := &reader{b: b}
	if pcr, typ := r.u32(), EventType(r.u32()); r.err == nil && (pcr != 0 || typ != EV_NO_ACTION) {
		return nil, fmt.Errorf("%w: header is PCR %d %v, want PCR 0 EV_NO_ACTION", ErrMalformed, pcr, typ)
	}
	r.take(20)
	spec := &reader{b: r.take(int(r.u32()))}
	if r.err != nil {
		return nil, r.err
	}
	if sig := spec.take(16); spec.err == nil && !bytes.Equal(sig, specIDSignature) {
		return nil, fmt.Errorf("%w: header signature %q, want Spec ID Event03", ErrMalformed, sig)
	}
	spec.u32() // platformClass
	spec.take(3)
	spec.u8() // uintnSize
	n := spec.u32()
	if n == 0 || n > MaxAlgs {
		return nil, fmt.Errorf("%w: %d algorithms", ErrMalformed, n)
	}
	log := &Log{}
	sizes := map[uint16]int{}
	for i := uint32(0); i < n; i++ {
		a := Alg{ID: spec.u16(), Size: spec.u16()}
		if _, dup := sizes[a.ID]; dup {
			return nil, fmt.Errorf("%w: algorithm %#04x declared twice", ErrMalformed, a.ID)
		}
		if a.ID == TPM_ALG_SHA256 && a.Size != DigestSize {
			return nil, fmt.Errorf("%w: SHA-256 digest size %d", ErrMalformed, a.Size)
		}
		sizes[a.ID] = int(a.Size)
		log.Algs = append(log.Algs, a)
	}
	spec.take(int(spec.u8())) // vendorInfo
	if spec.err != nil {
		return nil, fmt.Errorf("eventlog: Spec ID event: %w", spec.err)
	}
	if _, ok := sizes[TPM_ALG_SHA256]; !ok {
		return nil, fmt.Errorf("%w: header declares no SHA-256 bank", ErrNoSHA256)
	}
	for r.off < len(r.b) {
		if len(log.Events) >= MaxEvents {
			return nil, fmt.Errorf("%w: more than %d events", ErrMalformed, MaxEvents)
		}
		i := len(log.Events)
		e := Event{PCR: r.u32(), Type: EventType(r.u32())}
		count := r.u32()
		if r.err == nil && count != uint32(len(sizes)) {
			return nil, fmt.Errorf("%w: event %d has %d digests, header declares %d", ErrMalformed, i, count, len(sizes))
		}
		seen := map[uint16]bool{}
		for j := uint32(0); j < count && r.err == nil; j++ {
			alg := r.u16()
			size, ok := sizes[alg]
			if r.err == nil && (!ok || seen[alg]) {
				return nil, fmt.Errorf("%w: event %d: unexpected digest algorithm %#04x", ErrMalformed, i, alg)
			}
			seen[alg] = true
			d := r.take(size)
			if alg == TPM_ALG_SHA256 && d != nil {
				copy(e.Digest[:], d)
			}
		}
		size := r.u32()
		if size > MaxEventData {
			return nil, fmt.Errorf("%w: event %d: %d bytes of data", ErrMalformed, i, size)
		}
		e.Data = bytes.Clone(r.take(int(size)))
		if r.err != nil {
			return nil, fmt.Errorf("eventlog: event %d: %w", i, r.err)
		}
		if e.PCR > 23 {
			return nil, fmt.Errorf("%w: event %d: PCR %d", ErrMalformed, i, e.PCR)
		}
		log.Events = append(log.Events, e)
	}
	return log, nil
}

// PCRs are SHA-256 PCR values by index.
type PCRs map[uint32][DigestSize]byte

// Replay computes the PCR values the events produce from reset (all zero;
// teastick uses no PCR whose reset value differs). EV_NO_ACTION events are
// not extended (PFP 10.4.1). Only PCRs some event touches appear.
func Replay(events []Event) PCRs {
	pcrs := PCRs{}
	for _, e := range events {
		if e.Type == EV_NO_ACTION {
			continue
		}
		v := pcrs[e.PCR]
		pcrs[e.PCR] = sha256.Sum256(append(v[:], e.Digest[:]...))
	}
	return pcrs
}

// Tagged event data (PFP 10.4.2.1 TCG_PCClientTaggedEvent): taggedEventID,
// taggedEventDataSize, taggedEventData. teastick's tag IDs spell "ts" in
// their high bytes.
const (
	TagConfig   uint32 = 0x74730001 // the stick's configuration
	TagManifest uint32 = 0x74730002 // the signed release manifest
	TagActor    uint32 = 0x74730003 // an actor: name, CID, capabilities
	TagKeys     uint32 = 0x74730004 // the stick's channel and result keys of this boot
)

// Tagged encodes a TCG_PCClientTaggedEvent.
func Tagged(id uint32, data []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// ParseTagged decodes a TCG_PCClientTaggedEvent that fills data exactly.
func ParseTagged(data []byte) (id uint32, payload []byte, err error) {
	if len(data) < 8 {
		return 0, nil, fmt.Errorf("%w: tagged event of %d bytes", ErrMalformed, len(data))
	}
	id = binary.LittleEndian.Uint32(data)
	n := binary.LittleEndian.Uint32(data[4:])
	if uint64(n) != uint64(len(data)-8) {
		return 0, nil, fmt.Errorf("%w: tagged event announces %d bytes, has %d", ErrMalformed, n, len(data)-8)
	}
	return id, data[8:], nil
}
