// Package nvcounter keeps the stick's rollback floor: the highest manifest
// version it ever accepted, in a TPM NV counter index (TPM_NT_COUNTER), so
// that it survives reboots and the TPM, not the stick's RAM, refuses an
// older governance-signed manifest.
//
// The counter's value is the floor itself. A TPM counter can only be
// incremented by one (TPM 2.0 Part 3, 31.8 TPM2_NV_Increment), so Raise
// increments it until it reaches the accepted version, at most MaxStep
// increments at once. A counter index is first initialized, by its first
// TPM2_NV_Increment, to the largest value any counter on the TPM ever had,
// deleted ones included (Part 3, 31.8; Part 1, "NV Counters"): deleting
// the index and defining it anew never lowers the floor.
//
// Who may raise it: the index is authorized by its own empty authValue
// (TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD), so anyone who can send commands
// to the TPM can increment it. That only denies service (manifests below
// the raised value are refused); nobody can lower it. The box reaches no
// TPM; on the hosted stick, whoever reaches swtpm's socket can.
package nvcounter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/tpm/measure"
)

// Index is the NV index of the rollback counter, in the owner range of NV
// indices (TCG "Registry of Reserved TPM 2.0 Handles and Localities",
// 2.2: 0x01000000-0x013FFFFF).
const Index tpm2.TPMHandle = 0x01007ea5

// MaxStep bounds the increments one Raise makes: a manifest whose version
// is more than MaxStep above the floor is refused (ErrStep). Each
// increment is an NV write, and NV wears out and is rate-limited on
// hardware TPMs (TPM_RC_NV_RATE); versions move by one in practice.
const MaxStep = 1024

// Errors.
var (
	// ErrForeignIndex: an index is defined at Index, but not as this
	// package defines it (another type, other attributes, an auth
	// policy, another size). The stick does not trust it.
	ErrForeignIndex = errors.New("nvcounter: the rollback counter index is not the one the stick defines")
	// ErrStep: a version too far above the floor to raise to at once.
	ErrStep = errors.New("nvcounter: version too far above the rollback counter")
)

// Public is the public area the stick defines at Index: an 8-byte counter
// (TPM_NT_COUNTER), SHA-256 names, read and incremented with the index's
// own empty authValue (AUTHREAD, AUTHWRITE), no authPolicy, no
// POLICY_DELETE (the owner may delete it; see the package comment on why
// that does not roll it back), NO_DA (an empty password is no secret to
// guard against dictionary attacks). Written is the TPMA_NV_WRITTEN bit
// the TPM sets at the first increment.
func Public(written bool) tpm2.TPMSNVPublic {
	return tpm2.TPMSNVPublic{
		NVIndex: Index,
		NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{
			NT:        tpm2.TPMNTCounter,
			AuthWrite: true,
			AuthRead:  true,
			NoDA:      true,
			Written:   written,
		},
		DataSize: 8,
	}
}

// Name is the TPM Name of the initialized counter index (nameAlg SHA-256
// || SHA-256(TPMS_NV_PUBLIC) with TPMA_NV_WRITTEN set; Part 1, 16 "Names"):
// what a TPM2_NV_Certify of the counter names.
func Name() []byte { return bytes.Clone(name()) }

var name = sync.OnceValue(func() []byte {
	pub := Public(true)
	n, err := tpm2.NVName(&pub)
	if err != nil {
		panic(fmt.Sprintf("nvcounter: name of the fixed public area: %v", err)) // a constant: cannot fail
	}
	return n.Buffer
})

// Counter is the rollback counter on one TPM.
type Counter struct {
	tpm   transport.TPM
	name  tpm2.TPM2BName
	value uint64
}

// Open finds the counter at Index, defining it (owner authorization, an
// empty password) when it is not there and initializing it when it was
// never incremented, and reads it. An index defined otherwise than Public
// is refused (ErrForeignIndex).
func Open(t transport.TPM) (*Counter, error) {
	t = measure.Retrying(t)
	rsp, err := tpm2.NVReadPublic{NVIndex: Index}.Execute(t)
	if errors.Is(err, tpm2.TPMRCHandle) {
		// Not defined (Part 3, 31.6): first boot on this TPM.
		if _, err := (tpm2.NVDefineSpace{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			PublicInfo: tpm2.New2B(Public(false)),
		}).Execute(t); err != nil {
			return nil, fmt.Errorf("nvcounter: define %#x: %w", uint32(Index), err)
		}
		rsp, err = tpm2.NVReadPublic{NVIndex: Index}.Execute(t)
	}
	if err != nil {
		return nil, fmt.Errorf("nvcounter: read public of %#x: %w", uint32(Index), err)
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("%w: public area: %v", ErrForeignIndex, err)
	}
	if err := check(pub, rsp.NVName.Buffer); err != nil {
		return nil, err
	}
	c := &Counter{tpm: t, name: rsp.NVName}
	if !pub.Attributes.Written {
		// Never incremented: reading fails (TPM_RC_NV_UNINITIALIZED)
		// until the first increment sets it to the TPM's largest
		// counter value, at least the floor any earlier index had.
		if err := c.increment(); err != nil {
			return nil, fmt.Errorf("nvcounter: initialize: %w", err)
		}
	}
	if c.value, err = c.read(); err != nil {
		return nil, err
	}
	return c, nil
}

// check compares a public area and its Name with Public.
func check(pub *tpm2.TPMSNVPublic, name []byte) error {
	want := Public(pub.Attributes.Written)
	if got := tpm2.Marshal(*pub); !bytes.Equal(got, tpm2.Marshal(want)) {
		return fmt.Errorf("%w: public area %x (attributes %#x), want %x (attributes %#x)", ErrForeignIndex,
			got, attrs(pub.Attributes), tpm2.Marshal(want), attrs(want.Attributes))
	}
	n, err := tpm2.NVName(&want)
	if err != nil || !bytes.Equal(n.Buffer, name) {
		return fmt.Errorf("%w: the TPM names it %x", ErrForeignIndex, name)
	}
	return nil
}

func attrs(a tpm2.TPMANV) uint32 {
	b := tpm2.Marshal(a)
	return binary.BigEndian.Uint32(b)
}

// Value is the floor as last read or raised.
func (c *Counter) Value() uint64 { return c.value }

// Name is the counter index's TPM Name as the TPM reported it.
func (c *Counter) Name() tpm2.TPM2BName { return c.name }

func (c *Counter) auth() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: Index, Name: c.name, Auth: tpm2.PasswordAuth(nil)}
}

func (c *Counter) increment() error {
	if _, err := (tpm2.NVIncrement{AuthHandle: c.auth(), NVIndex: tpm2.NamedHandle{Handle: Index, Name: c.name}}).Execute(c.tpm); err != nil {
		return fmt.Errorf("nvcounter: increment: %w", err)
	}
	// The Name covers TPMA_NV_WRITTEN: after the first increment it is
	// the initialized index's.
	c.name = tpm2.TPM2BName{Buffer: Name()}
	return nil
}

func (c *Counter) read() (uint64, error) {
	rsp, err := tpm2.NVRead{
		AuthHandle: c.auth(),
		NVIndex:    tpm2.NamedHandle{Handle: Index, Name: c.name},
		Size:       8,
	}.Execute(c.tpm)
	if err != nil {
		return 0, fmt.Errorf("nvcounter: read: %w", err)
	}
	if len(rsp.Data.Buffer) != 8 {
		return 0, fmt.Errorf("nvcounter: read %d bytes, want 8", len(rsp.Data.Buffer))
	}
	return binary.BigEndian.Uint64(rsp.Data.Buffer), nil
}

// Refresh reads the counter again (anyone holding the TPM may have raised
// it since).
func (c *Counter) Refresh() (uint64, error) {
	v, err := c.read()
	if err != nil {
		return 0, err
	}
	c.value = v
	return v, nil
}

// Raise increments the counter until it is at least to, and returns its
// value. It refuses (ErrStep) to make more than MaxStep increments. On an
// error the counter may have moved part of the way: the floor never
// falls, and the caller accepts nothing.
func (c *Counter) Raise(to uint64) (uint64, error) {
	v, err := c.Refresh()
	if err != nil {
		return 0, err
	}
	if v >= to {
		return v, nil
	}
	if to-v > MaxStep {
		return v, fmt.Errorf("%w: version %d, counter %d (at most %d at once)", ErrStep, to, v, MaxStep)
	}
	for n := to - v; n > 0; n-- {
		if err := c.increment(); err != nil {
			return 0, err
		}
	}
	if v, err = c.Refresh(); err != nil {
		return 0, err
	}
	if v < to {
		return v, fmt.Errorf("nvcounter: raised to %d, reads %d", to, v)
	}
	return v, nil
}
