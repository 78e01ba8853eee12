// Package drbg is the stick's deterministic random bit generator: ChaCha20
// with fast key erasure, seeded and periodically reseeded from a hardware
// entropy source.
//
// It backs the Go runtime's random hook (runtime/goos.GetRandomData) on bare
// metal, so it runs before the heap exists: no method allocates, and the
// zero value is a valid, unseeded generator.
//
// Construction (D. J. Bernstein, "Fast-key-erasure random-number
// generators", 2017): every call to Read runs the ChaCha20 block function
// (RFC 8439, section 2.3) under the current key; the first 32 bytes of the
// key stream immediately replace the key and the rest is output. A
// compromise of the state therefore never reveals earlier output. Reseeding
// folds fresh entropy into the key through one more block, so the state
// after a reseed depends on both the old key and the new entropy.
package drbg

import (
	"encoding/binary"
	"math/bits"
)

// KeySize is the size of the generator key and of a seed.
const KeySize = 32

// ReseedInterval is the number of output bytes after which Reader asks its
// Source for fresh entropy.
const ReseedInterval = 1 << 20

// blockSize is the ChaCha20 block size.
const blockSize = 64

// Generator is a ChaCha20 fast-key-erasure generator. It is not safe for
// concurrent use; callers serialise access.
type Generator struct {
	key     [8]uint32
	counter uint32
	seeded  bool
	// output since the last reseed
	since uint64
	buf   [blockSize]byte
}

// Seeded reports whether the generator has received a seed.
func (g *Generator) Seeded() bool { return g.seeded }

// NeedsReseed reports whether ReseedInterval bytes were produced since the
// last (re)seed.
func (g *Generator) NeedsReseed() bool { return !g.seeded || g.since >= ReseedInterval }

// Reseed mixes seed into the key. The first call makes the generator usable.
func (g *Generator) Reseed(seed *[KeySize]byte) {
	for i := range g.key {
		g.key[i] ^= binary.LittleEndian.Uint32(seed[4*i:])
	}
	// One block under the mixed key erases the plain XOR from the state.
	g.block(&g.buf)
	for i := range g.key {
		g.key[i] = binary.LittleEndian.Uint32(g.buf[4*i:])
	}
	clear(g.buf[:])
	g.seeded = true
	g.since = 0
}

// Read fills b with random bytes. It returns false, leaving b untouched, when
// the generator was never seeded.
func (g *Generator) Read(b []byte) bool {
	if !g.seeded {
		return false
	}
	for len(b) > 0 {
		g.block(&g.buf)
		// fast key erasure: the first 32 bytes become the next key
		for i := range g.key {
			g.key[i] = binary.LittleEndian.Uint32(g.buf[4*i:])
		}
		n := copy(b, g.buf[KeySize:])
		b = b[n:]
		g.since += uint64(n)
	}
	clear(g.buf[:])
	return true
}

// block computes one ChaCha20 block under the current key with a zero nonce
// and the running counter.
func (g *Generator) block(out *[blockSize]byte) {
	var in [16]uint32
	in[0], in[1], in[2], in[3] = 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574
	copy(in[4:12], g.key[:])
	in[12] = g.counter
	g.counter++
	Block(out, &in)
}

// Block is the ChaCha20 block function of RFC 8439, section 2.3: it runs 20
// rounds over the 16-word state in and writes the serialised sum to out.
func Block(out *[blockSize]byte, in *[16]uint32) {
	x := *in
	for i := 0; i < 10; i++ {
		// column rounds
		quarter(&x, 0, 4, 8, 12)
		quarter(&x, 1, 5, 9, 13)
		quarter(&x, 2, 6, 10, 14)
		quarter(&x, 3, 7, 11, 15)
		// diagonal rounds
		quarter(&x, 0, 5, 10, 15)
		quarter(&x, 1, 6, 11, 12)
		quarter(&x, 2, 7, 8, 13)
		quarter(&x, 3, 4, 9, 14)
	}
	for i := range x {
		binary.LittleEndian.PutUint32(out[4*i:], x[i]+in[i])
	}
}

func quarter(x *[16]uint32, a, b, c, d int) {
	x[a] += x[b]
	x[d] = bits.RotateLeft32(x[d]^x[a], 16)
	x[c] += x[d]
	x[b] = bits.RotateLeft32(x[b]^x[c], 12)
	x[a] += x[b]
	x[d] = bits.RotateLeft32(x[d]^x[a], 8)
	x[c] += x[d]
	x[b] = bits.RotateLeft32(x[b]^x[c], 7)
}

// Source is a hardware entropy source: it fills b completely or reports
// failure.
type Source interface {
	Fill(b []byte) bool
}

// Reader couples a Generator with its entropy Source and reseeds every
// ReseedInterval bytes.
type Reader struct {
	Gen    Generator
	Source Source
	seed   [KeySize]byte
}

// Init seeds the generator from the source. It reports false when the source
// gives nothing, in which case the caller must refuse to continue.
func (r *Reader) Init() bool {
	if r.Source == nil || !r.Source.Fill(r.seed[:]) {
		return false
	}
	r.Gen.Reseed(&r.seed)
	clear(r.seed[:])
	return true
}

// Read fills b, reseeding first when the interval has elapsed. A failed
// reseed keeps the generator running on its current key (which is still
// secret) but reports false so that the caller can log it.
func (r *Reader) Read(b []byte) (ok bool) {
	ok = true
	if r.Gen.NeedsReseed() {
		if r.Source != nil && r.Source.Fill(r.seed[:]) {
			r.Gen.Reseed(&r.seed)
			clear(r.seed[:])
		} else {
			ok = false
		}
	}
	if !r.Gen.Read(b) {
		return false
	}
	return ok
}
