// Package manifest is the signed release record: which firmware a stick may
// run (its reference measurements), which actors it serves (name, CID,
// granted capabilities, limits) and a version that only goes up. It stands
// in for the on-chain record of the design.
//
// # Encoding
//
// A manifest file is JSON:
//
//	{"signed": {...}, "signature": {"alg": "ed25519", "key": "<hex>", "sig": "<base64>"}}
//
// The signature covers the exact bytes of the "signed" value. Those bytes
// must be canonical: the compact encoding/json rendering of the Manifest
// struct (fields in declaration order, no insignificant white space, no
// HTML escaping, lists in the order given). Parse re-encodes what it read
// and refuses any difference, so there is exactly one byte string per
// manifest and nothing in a signed part can go unseen: unknown fields,
// duplicate fields and alternative spellings are all refused.
//
// The outer wrapper is not signed and may be spaced or ordered any way;
// what the stick measures (PCR 8 at boot, PCR 10 for an upgrade) is the
// file's canonical form, CanonicalFile, so two files carrying the same
// signed manifest measure the same.
package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/netstack/ipfs"
)

// Schema names this format.
const Schema = "teastick/manifest/v1"

// MaxSize bounds a manifest file.
const MaxSize = 256 << 10

// Limits on contents.
const (
	MaxActors = 64
	MaxGrants = 32
)

// Errors, for errors.Is.
var (
	ErrMalformed    = errors.New("manifest: malformed")
	ErrNotCanonical = errors.New("manifest: signed part is not in canonical form")
	ErrSignature    = errors.New("manifest: bad signature")
	ErrUnknownKey   = errors.New("manifest: signed by an unknown key")
	ErrStale        = errors.New("manifest: version not newer than the running one")
	ErrInvalid      = errors.New("manifest: invalid contents")
)

// Manifest is the signed part.
type Manifest struct {
	Schema   string   `json:"schema"`
	Version  uint64   `json:"version"`
	Firmware Firmware `json:"firmware"`
	Actors   []Actor  `json:"actors"`
}

// Firmware holds the reference measurements of the images a release
// allows: SHA-256 digests, lowercase hex.
type Firmware struct {
	// Stage0 is the digest of the stage 0 ELF.
	Stage0 string `json:"stage0_sha256"`
	// Stick is the digest of the stick ELF, which stage 0 measures.
	Stick string `json:"stick_sha256"`
}

// Actor is one actor the stick serves.
type Actor struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
	// Native asks for the actor to run natively: from the release-time
	// translation of exactly this CID compiled into the stick image, when
	// the image holds one (its native table), else in the interpreter.
	// Absent when false: the canonical form of an entry that does not
	// ask is what it was before the field existed, and an explicit
	// "native":false is not canonical.
	Native bool     `json:"native,omitempty"`
	Grants []string `json:"grants"`
	Limits Limits   `json:"limits"`
}

// Limits bound one actor; zero means the runtime's default.
type Limits struct {
	MemoryPages   uint32 `json:"memory_pages"`
	TimeoutMillis uint32 `json:"timeout_ms"`
	MaxRequest    uint32 `json:"max_request"`
	MaxResponse   uint32 `json:"max_response"`
	MaxConcurrent uint32 `json:"max_concurrent"`
}

// Signature is the signature block.
type Signature struct {
	Alg string `json:"alg"`
	// Key is the hex SHA-256 of the signing public key.
	Key string `json:"key"`
	Sig string `json:"sig"`
}

type file struct {
	Signed    json.RawMessage `json:"signed"`
	Signature Signature       `json:"signature"`
}

var (
	nameRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	grantRE = regexp.MustCompile(`^[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)*$`)
	hexRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// KeyID is the identifier of a governance public key: hex SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:])
}

// Canonical returns the canonical encoding of m.
func (m *Manifest) Canonical() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	mm := *m
	// nil and empty lists encode differently; the canonical form is []
	if mm.Actors == nil {
		mm.Actors = []Actor{}
	}
	mm.Actors = slices.Clone(mm.Actors)
	for i := range mm.Actors {
		if mm.Actors[i].Grants == nil {
			mm.Actors[i].Grants = []string{}
		}
	}
	if err := enc.Encode(&mm); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Validate checks the contents.
func (m *Manifest) Validate() error {
	if m.Schema != Schema {
		return fmt.Errorf("%w: schema %q, want %q", ErrInvalid, m.Schema, Schema)
	}
	if m.Version == 0 {
		return fmt.Errorf("%w: version must be at least 1", ErrInvalid)
	}
	for _, d := range []struct{ name, v string }{{"stage0_sha256", m.Firmware.Stage0}, {"stick_sha256", m.Firmware.Stick}} {
		if !hexRE.MatchString(d.v) {
			return fmt.Errorf("%w: firmware %s must be 64 lowercase hex digits", ErrInvalid, d.name)
		}
	}
	if len(m.Actors) > MaxActors {
		return fmt.Errorf("%w: %d actors, at most %d", ErrInvalid, len(m.Actors), MaxActors)
	}
	seen := map[string]bool{}
	for i, a := range m.Actors {
		if !nameRE.MatchString(a.Name) {
			return fmt.Errorf("%w: actor %d: name %q (lowercase letters, digits, '-', at most 32)", ErrInvalid, i, a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("%w: actor %q listed twice", ErrInvalid, a.Name)
		}
		seen[a.Name] = true
		if a.CID == "" {
			if a.Native {
				return fmt.Errorf("%w: actor %q: native without a CID (only a module named by its CID is translated)", ErrInvalid, a.Name)
			}
			return fmt.Errorf("%w: actor %q: no cid", ErrInvalid, a.Name)
		}
		c, err := cid.Decode(a.CID)
		if err != nil {
			return fmt.Errorf("%w: actor %q: cid %q: %v", ErrInvalid, a.Name, a.CID, err)
		}
		if c.String() != a.CID {
			return fmt.Errorf("%w: actor %q: cid %q is not in its canonical form %q", ErrInvalid, a.Name, a.CID, c.String())
		}
		if err := ipfs.CheckCID(c); err != nil {
			return fmt.Errorf("%w: actor %q: %v", ErrInvalid, a.Name, err)
		}
		if len(a.Grants) > MaxGrants {
			return fmt.Errorf("%w: actor %q: %d grants, at most %d", ErrInvalid, a.Name, len(a.Grants), MaxGrants)
		}
		for j, g := range a.Grants {
			if !grantRE.MatchString(g) || len(g) > 64 {
				return fmt.Errorf("%w: actor %q: grant %q", ErrInvalid, a.Name, g)
			}
			if j > 0 && a.Grants[j-1] >= g {
				return fmt.Errorf("%w: actor %q: grants must be sorted and unique", ErrInvalid, a.Name)
			}
		}
	}
	return nil
}

// Native returns the entries marked native, in manifest order.
func (m *Manifest) Native() []Actor {
	var n []Actor
	for _, a := range m.Actors {
		if a.Native {
			n = append(n, a)
		}
	}
	return n
}

// Actor returns the named actor.
func (m *Manifest) Actor(name string) (Actor, bool) {
	for _, a := range m.Actors {
		if a.Name == name {
			return a, true
		}
	}
	return Actor{}, false
}

// Sign validates m and returns the manifest file signed with key.
func Sign(m *Manifest, key ed25519.PrivateKey) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	signed, err := m.Canonical()
	if err != nil {
		return nil, err
	}
	return encodeFile(signed, Signature{
		Alg: "ed25519",
		Key: KeyID(key.Public().(ed25519.PublicKey)),
		Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, signed)),
	})
}

// CanonicalFile returns the canonical form of a manifest file: the bytes
// Sign would write for the same signed part and signature block, that is
// {"signed":<canonical signed part>,"signature":{"alg":..,"key":..,"sig":..}}
// in compact encoding/json form (keys in that order, no insignificant
// white space, no HTML escaping) and one trailing newline. Two files that
// carry the same signed manifest and signature have the same canonical
// form however their outer wrapper is spaced or ordered, and a file as
// Sign wrote it is already canonical. This is what the stick measures
// (PCR 8 at boot, PCR 10 for an upgrade) and what a verifier's reference
// is computed from. It parses like Parse and does not check the
// signature.
func CanonicalFile(b []byte) ([]byte, error) {
	_, sig, signed, err := Parse(b)
	if err != nil {
		return nil, err
	}
	return encodeFile(signed, *sig)
}

// encodeFile is the canonical manifest file of a signed part (already
// canonical) and its signature block.
func encodeFile(signed []byte, sig Signature) ([]byte, error) {
	f := file{Signed: signed, Signature: sig}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// no indentation: the encoder would re-indent the signed bytes too
	if err := enc.Encode(&f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Parse reads a manifest file without checking its signature: for showing
// one. Verify is what the stick and the tools use to trust one.
func Parse(b []byte) (*Manifest, *Signature, []byte, error) {
	if len(b) > MaxSize {
		return nil, nil, nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxSize)
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, nil, nil, fmt.Errorf("%w: data after the manifest", ErrMalformed)
	}
	if len(f.Signed) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: no signed part", ErrMalformed)
	}
	var m Manifest
	dec = json.NewDecoder(bytes.NewReader(f.Signed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: signed part: %v", ErrMalformed, err)
	}
	canon, err := m.Canonical()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !bytes.Equal(canon, f.Signed) {
		return nil, nil, nil, ErrNotCanonical
	}
	if err := m.Validate(); err != nil {
		return nil, nil, nil, err
	}
	return &m, &f.Signature, []byte(f.Signed), nil
}

// Verify parses a manifest file and checks its signature against the
// trusted governance keys.
func Verify(b []byte, trusted ...ed25519.PublicKey) (*Manifest, error) {
	m, sig, signed, err := Parse(b)
	if err != nil {
		return nil, err
	}
	if sig.Alg != "ed25519" {
		return nil, fmt.Errorf("%w: algorithm %q", ErrSignature, sig.Alg)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sig.Sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature encoding", ErrSignature)
	}
	for _, k := range trusted {
		if KeyID(k) != sig.Key {
			continue
		}
		if !ed25519.Verify(k, signed, raw) {
			return nil, ErrSignature
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownKey, sig.Key)
}

// CheckUpgrade refuses a manifest that does not move the version forward.
func CheckUpgrade(running, next *Manifest) error {
	if running != nil && next.Version <= running.Version {
		return fmt.Errorf("%w: offered %d, running %d", ErrStale, next.Version, running.Version)
	}
	return nil
}
