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
}

// ErrActor means an actor encoding is malformed or an actor is invalid.
var ErrActor = errors.New("measure: bad actor")

// actorVersion is the first byte of the canonical actor encoding.
const actorVersion = 1

// MarshalBinary returns the canonical encoding measured for an actor:
//
//	u8 version (1)
//	u16 len, name (UTF-8)
//	u16 len, CID in binary form (cid.Bytes)
//	u16 count, then per capability: u16 len, name
//
// big-endian lengths, capabilities sorted and without duplicates, so the
// same grant always gives the same bytes.
func (a Actor) MarshalBinary() ([]byte, error) {
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
	return b, nil
}

// UnmarshalBinary decodes the canonical encoding and rejects anything
// MarshalBinary would not produce.
func (a *Actor) UnmarshalBinary(b []byte) error {
	r := bytes.NewReader(b)
	fail := func(what string) error { return fmt.Errorf("%w: %s", ErrActor, what) }
	v, err := r.ReadByte()
	if err != nil || v != actorVersion {
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
	if r.Len() != 0 {
		return fail("trailing bytes")
	}
	*a = Actor{Name: string(name), CID: c, Capabilities: caps}
	return nil
}
