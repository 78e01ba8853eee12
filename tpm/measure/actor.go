package measure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/ipfs/go-cid"
)

// Actor is what the stick measures about an actor it loads.
type Actor struct {
	// Name is the actor's name in the manifest.
	Name string
	// CID is the content identifier of its WebAssembly module.
	CID cid.Cid
	// Capabilities are the capabilities the manifest grants it.
	Capabilities []string
	// Engine is how the stick runs it.
	Engine Engine
}

// Engine is how the stick runs an actor, as the actor event records it.
type Engine uint8

const (
	// EngineWasm: the module's own bytes (the CID's) under wazero,
	// interpreted on the stick (compiled where wazero can, on a hosted
	// stick). Every version 1 event means this.
	EngineWasm Engine = 0
	// EngineNative: the release-time translation of the module (exactly
	// this CID) compiled into the stick image PCR 4 measures, found in
	// the image's native table. Only version 2 events say it.
	EngineNative Engine = 1
)

func (e Engine) String() string {
	switch e {
	case EngineWasm:
		return "wasm"
	case EngineNative:
		return "native"
	}
	return fmt.Sprintf("engine(%d)", uint8(e))
}

// ErrActor means an actor encoding is malformed or an actor is invalid.
var ErrActor = errors.New("measure: bad actor")

// Versions of the canonical actor encoding (its first byte).
const (
	actorVersion       = 1 // an actor under wazero (EngineWasm)
	actorVersionEngine = 2 // the same fields, then the engine
)

// MarshalBinary returns the canonical encoding measured for an actor, the
// payload of its EV_EVENT_TAG event (TCG PC Client PFP 10.4.2.1,
// TCG_PCClientTaggedEvent with taggedEventID eventlog.TagActor):
//
//	u8 version (1: EngineWasm, 2: any other engine)
//	u16 len, name (UTF-8)
//	u16 len, CID in binary form (cid.Bytes)
//	u16 count, then per capability: u16 len, name
//	version 2 only: u8 engine (1: EngineNative)
//
// big-endian lengths, capabilities sorted and without duplicates, so the
// same grant always gives the same bytes. An actor under wazero is
// encoded as version 1, exactly as before engines were recorded, so its
// events, references and receipts are unchanged; version 2 is used only
// for an engine other than EngineWasm, and a version 2 event naming
// EngineWasm is not canonical.
func (a Actor) MarshalBinary() ([]byte, error) {
	if a.Engine != EngineWasm && a.Engine != EngineNative {
		return nil, fmt.Errorf("%w: %v", ErrActor, a.Engine)
	}
	if a.Name == "" || len(a.Name) > 0xffff {
		return nil, fmt.Errorf("%w: name of %d bytes", ErrActor, len(a.Name))
	}
	if !a.CID.Defined() {
		return nil, fmt.Errorf("%w: %q has no CID", ErrActor, a.Name)
	}
	caps := slices.Clone(a.Capabilities)
	slices.Sort(caps)
	caps = slices.Compact(caps)
	if len(caps) > 0xffff {
		return nil, fmt.Errorf("%w: %d capabilities", ErrActor, len(caps))
	}
	b := []byte{actorVersion}
	if a.Engine != EngineWasm {
		b[0] = actorVersionEngine
	}
	str := func(s []byte) {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	str([]byte(a.Name))
	str(a.CID.Bytes())
	b = binary.BigEndian.AppendUint16(b, uint16(len(caps)))
	for _, c := range caps {
		if c == "" || len(c) > 0xffff {
			return nil, fmt.Errorf("%w: capability of %d bytes", ErrActor, len(c))
		}
		str([]byte(c))
	}
	if a.Engine != EngineWasm {
		b = append(b, byte(a.Engine))
	}
	return b, nil
}

// UnmarshalBinary decodes the canonical encoding and rejects anything
// MarshalBinary would not produce.
func (a *Actor) UnmarshalBinary(b []byte) error {
	r := bytes.NewReader(b)
	fail := func(what string) error { return fmt.Errorf("%w: %s", ErrActor, what) }
	v, err := r.ReadByte()
	if err != nil || (v != actorVersion && v != actorVersionEngine) {
		return fail("version")
	}
	str := func() ([]byte, bool) {
		var n uint16
		if binary.Read(r, binary.BigEndian, &n) != nil || int(n) > r.Len() {
			return nil, false
		}
		s := make([]byte, n)
		r.Read(s)
		return s, true
	}
	name, ok := str()
	if !ok || len(name) == 0 {
		return fail("name")
	}
	rawCID, ok := str()
	if !ok {
		return fail("CID")
	}
	n, c, err := cid.CidFromBytes(rawCID)
	if err != nil || n != len(rawCID) {
		return fail("CID")
	}
	var count uint16
	if binary.Read(r, binary.BigEndian, &count) != nil {
		return fail("capability count")
	}
	var caps []string
	for i := 0; i < int(count); i++ {
		s, ok := str()
		if !ok || len(s) == 0 {
			return fail("capability")
		}
		if i > 0 && string(s) <= caps[i-1] {
			return fail("capabilities not sorted and unique")
		}
		caps = append(caps, string(s))
	}
	engine := EngineWasm
	if v == actorVersionEngine {
		e, err := r.ReadByte()
		if err != nil || Engine(e) != EngineNative {
			// version 2 exists only for engines other than EngineWasm
			return fail("engine")
		}
		engine = Engine(e)
	}
	if r.Len() != 0 {
		return fail("trailing bytes")
	}
	*a = Actor{Name: string(name), CID: c, Capabilities: caps, Engine: engine}
	return nil
}
