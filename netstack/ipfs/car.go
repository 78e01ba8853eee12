// Package ipfs fetches content by CID from the box's IPFS node through its
// trustless gateway (CAR responses, IPFS HTTP Gateway specification) and
// verifies every block against its CID before use: the box is not trusted.
// It reassembles raw blocks and UnixFS files (dag-pb), puts blocks back
// through the node's RPC API, and computes the CIDs kubo gives for
// `ipfs add --cid-version 1 --raw-leaves`.
//
// The parsers (CARv1, the header's dag-cbor, dag-pb, UnixFS) are written
// here, small and bounded, and fuzzed: the stick does not link the IPFS
// libraries.
package ipfs

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// Errors, for errors.Is. Every error about a block names its CID.
var (
	ErrMalformed  = errors.New("ipfs: malformed data")
	ErrMismatch   = errors.New("ipfs: block does not match its CID")
	ErrMissing    = errors.New("ipfs: block missing")
	ErrLimit      = errors.New("ipfs: limit exceeded")
	ErrHash       = errors.New("ipfs: unsupported hash function")
	ErrCodec      = errors.New("ipfs: unsupported codec")
	ErrNotFile    = errors.New("ipfs: not a file")
	ErrGateway    = errors.New("ipfs: gateway error")
	ErrCIDChanged = errors.New("ipfs: the node stored the data under another CID")
)

// Limits bound what a fetch accepts, the work it may do and the memory it
// may hold. A zero field takes DefaultLimits' value.
type Limits struct {
	// MaxBytes bounds the file; a root that announces more is refused
	// before anything else is fetched.
	MaxBytes int64
	// MaxBlockSize bounds one block.
	MaxBlockSize int
	// MaxBlocks bounds the blocks read: CAR sections (dropped ones
	// included) or blocks fetched one by one.
	MaxBlocks int
	// MaxNodes bounds the nodes visited while reassembling: a node
	// linked n times counts n times, so a small DAG whose nodes link
	// many times to the next (work growing as k^depth) is refused.
	MaxNodes int
	// Window bounds the bytes of blocks held besides the file: blocks
	// that arrived before their turn, and the decoded dag-pb nodes kept
	// for nodes linked more than once.
	Window int
}

// StickRAM is the RAM of the stick (the USB armory Mk II and the QEMU
// stick): DefaultLimits are derived from it.
const StickRAM = 512 << 20

// DefaultLimits are LimitsForRAM(StickRAM).
var DefaultLimits = LimitsForRAM(StickRAM)

// LimitsForRAM derives fetch limits from the RAM of the machine the fetch
// runs on: a file may take a quarter of it (the actor that asked gets a
// copy in its linear memory, and the Go heap grows to twice what is live
// before it collects), and the blocks held besides the file a thirty-second.
// Blocks are at most 2 MiB (the trustless gateway's and bitswap's largest).
func LimitsForRAM(ram uint64) Limits {
	ram = max(ram, 16<<20)
	return Limits{
		MaxBytes:     int64(ram / 4),
		MaxBlockSize: int(min(2<<20, ram/64)),
		MaxBlocks:    1 << 16,
		MaxNodes:     1 << 16,
		Window:       int(ram / 32),
	}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxBytes > 0 {
		d.MaxBytes = l.MaxBytes
	}
	if l.MaxBlockSize > 0 {
		d.MaxBlockSize = l.MaxBlockSize
	}
	if l.MaxBlocks > 0 {
		d.MaxBlocks = l.MaxBlocks
	}
	if l.MaxNodes > 0 {
		d.MaxNodes = l.MaxNodes
	}
	if l.Window > 0 {
		d.Window = l.Window
	}
	return d
}

// CheckCID refuses a CID whose multihash is not a full 32-byte SHA2-256
// digest. A weaker function, or SHA2-256 cut short (a multihash declares
// its own digest length, and one byte is matched by other content in a few
// hundred tries), would let the box swap content behind the CID. Every
// place that takes a CID as the name of content checks it here.
func CheckCID(c cid.Cid) error {
	if !c.Defined() {
		return fmt.Errorf("%w: no CID", ErrMalformed)
	}
	p := c.Prefix()
	if p.MhType != multihash.SHA2_256 {
		return fmt.Errorf("%w: %s uses multihash %#x", ErrHash, c, p.MhType)
	}
	if p.MhLength != sha256.Size {
		return fmt.Errorf("%w: %s has a %d-byte sha2-256 digest, want %d", ErrHash, c, p.MhLength, sha256.Size)
	}
	return nil
}

// Verify checks that data is the block c names. Only full SHA2-256
// multihashes are accepted (CheckCID).
func Verify(c cid.Cid, data []byte) error {
	if err := CheckCID(c); err != nil {
		return err
	}
	p := c.Prefix()
	got, err := p.Sum(data)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, c, err)
	}
	if !got.Equals(c) {
		return fmt.Errorf("%w: %s (data hashes to %s)", ErrMismatch, c, got)
	}
	return nil
}

// CARReader reads a CARv1 stream (header, then varint-framed CID and data
// sections) and verifies each block as it reads it.
type CARReader struct {
	r      *bufio.Reader
	lim    Limits
	Roots  []cid.Cid
	blocks int
}

// NewCARReader reads the CAR header.
func NewCARReader(r io.Reader, lim Limits) (*CARReader, error) {
	cr := &CARReader{r: bufio.NewReaderSize(r, 64<<10), lim: lim.withDefaults()}
	hdr, err := cr.section(4096)
	if err != nil {
		return nil, fmt.Errorf("ipfs: CAR header: %w", err)
	}
	if hdr == nil {
		return nil, fmt.Errorf("%w: empty CAR", ErrMalformed)
	}
	roots, version, err := parseCARHeader(hdr)
	if err != nil {
		return nil, err
	}
	if version != 1 {
		return nil, fmt.Errorf("%w: CAR version %d", ErrMalformed, version)
	}
	cr.Roots = roots
	return cr, nil
}

// section reads one varint-length-prefixed section; nil at a clean end.
func (cr *CARReader) section(max int) ([]byte, error) {
	n, err := binary.ReadUvarint(cr.r)
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: section length: %v", ErrMalformed, err)
	}
	if n == 0 || n > uint64(max) {
		return nil, fmt.Errorf("%w: section of %d bytes (limit %d)", ErrLimit, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(cr.r, b); err != nil {
		return nil, fmt.Errorf("%w: truncated section: %v", ErrMalformed, err)
	}
	return b, nil
}

// Next returns the next verified block, or io.EOF at the end.
func (cr *CARReader) Next() (cid.Cid, []byte, error) {
	c, n, err := cr.nextHeader()
	if err != nil {
		return cid.Undef, nil, err
	}
	data, err := cr.readBlock(c, n, nil)
	if err != nil {
		return cid.Undef, nil, err
	}
	return c, data, nil
}

// maxCIDLen bounds a section's CID: version, codec, hash function and
// length varints and a digest of at most 64 bytes.
const maxCIDLen = 96

// nextHeader reads the next section's length and CID (CARv1 specification,
// "Data"); readBlock or skip must follow with the n data bytes. io.EOF at
// a clean end.
func (cr *CARReader) nextHeader() (c cid.Cid, n int, err error) {
	size, err := binary.ReadUvarint(cr.r)
	if err == io.EOF {
		return cid.Undef, 0, io.EOF
	}
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("%w: section length: %v", ErrMalformed, err)
	}
	if size == 0 || size > uint64(cr.lim.MaxBlockSize+maxCIDLen) {
		return cid.Undef, 0, fmt.Errorf("%w: section of %d bytes (limit %d)", ErrLimit, size, cr.lim.MaxBlockSize+maxCIDLen)
	}
	cr.blocks++
	if cr.blocks > cr.lim.MaxBlocks {
		return cid.Undef, 0, fmt.Errorf("%w: more than %d blocks", ErrLimit, cr.lim.MaxBlocks)
	}
	head, _ := cr.r.Peek(int(min(size, maxCIDLen)))
	k, c, err := cid.CidFromBytes(head)
	if err != nil {
		if len(head) < int(min(size, maxCIDLen)) {
			return cid.Undef, 0, fmt.Errorf("%w: truncated section", ErrMalformed)
		}
		return cid.Undef, 0, fmt.Errorf("%w: block CID: %v", ErrMalformed, err)
	}
	cr.r.Discard(k)
	n = int(size) - k
	if n > cr.lim.MaxBlockSize {
		return cid.Undef, 0, fmt.Errorf("%w: block %s of %d bytes (limit %d)", ErrLimit, c, n, cr.lim.MaxBlockSize)
	}
	return c, n, nil
}

// readBlock reads the n data bytes of block c into buf (grown if short)
// and verifies them.
func (cr *CARReader) readBlock(c cid.Cid, n int, buf []byte) ([]byte, error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(cr.r, buf); err != nil {
		return nil, fmt.Errorf("%w: block %s: truncated section: %v", ErrMalformed, c, err)
	}
	if err := Verify(c, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// skip drops n data bytes without keeping or hashing them.
func (cr *CARReader) skip(n int) error {
	if _, err := cr.r.Discard(n); err != nil {
		return fmt.Errorf("%w: truncated section: %v", ErrMalformed, err)
	}
	return nil
}

// parseCARHeader decodes the dag-cbor header {"roots": [CID...],
// "version": 1} (CARv1 specification). Only the shapes a CAR header uses
// are accepted.
func parseCARHeader(b []byte) (roots []cid.Cid, version uint64, err error) {
	d := cborDecoder{b: b}
	n, err := d.head(5) // map
	if err != nil {
		return nil, 0, err
	}
	if n > 8 {
		return nil, 0, fmt.Errorf("%w: CAR header map of %d entries", ErrMalformed, n)
	}
	seenVersion := false
	for i := uint64(0); i < n; i++ {
		key, err := d.text()
		if err != nil {
			return nil, 0, err
		}
		switch key {
		case "version":
			if version, err = d.head(0); err != nil {
				return nil, 0, err
			}
			seenVersion = true
		case "roots":
			cnt, err := d.head(4) // array
			if err != nil {
				return nil, 0, err
			}
			if cnt > 64 {
				return nil, 0, fmt.Errorf("%w: %d roots", ErrMalformed, cnt)
			}
			for j := uint64(0); j < cnt; j++ {
				tag, err := d.head(6)
				if err != nil || tag != 42 {
					return nil, 0, fmt.Errorf("%w: root is not a CID (tag 42)", ErrMalformed)
				}
				raw, err := d.bytes()
				if err != nil {
					return nil, 0, err
				}
				if len(raw) < 2 || raw[0] != 0 {
					return nil, 0, fmt.Errorf("%w: CID without the identity multibase prefix", ErrMalformed)
				}
				c, err := cid.Cast(raw[1:])
				if err != nil {
					return nil, 0, fmt.Errorf("%w: root CID: %v", ErrMalformed, err)
				}
				roots = append(roots, c)
			}
		default:
			return nil, 0, fmt.Errorf("%w: CAR header key %q", ErrMalformed, key)
		}
	}
	if !seenVersion || d.off != len(b) {
		return nil, 0, fmt.Errorf("%w: CAR header", ErrMalformed)
	}
	return roots, version, nil
}

// cborDecoder reads the few CBOR items a CAR header holds (RFC 8949).
type cborDecoder struct {
	b   []byte
	off int
}

// head reads an item head of major type want and returns its argument.
func (d *cborDecoder) head(want byte) (uint64, error) {
	if d.off >= len(d.b) {
		return 0, fmt.Errorf("%w: CBOR truncated", ErrMalformed)
	}
	ib := d.b[d.off]
	d.off++
	if ib>>5 != want {
		return 0, fmt.Errorf("%w: CBOR major type %d, want %d", ErrMalformed, ib>>5, want)
	}
	info := ib & 0x1f
	switch {
	case info < 24:
		return uint64(info), nil
	case info <= 27:
		n := 1 << (info - 24)
		if d.off+n > len(d.b) {
			return 0, fmt.Errorf("%w: CBOR truncated", ErrMalformed)
		}
		var v uint64
		for _, c := range d.b[d.off : d.off+n] {
			v = v<<8 | uint64(c)
		}
		d.off += n
		return v, nil
	}
	return 0, fmt.Errorf("%w: CBOR indefinite or reserved length", ErrMalformed)
}

func (d *cborDecoder) take(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, fmt.Errorf("%w: CBOR truncated", ErrMalformed)
	}
	v := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return v, nil
}

func (d *cborDecoder) text() (string, error) {
	n, err := d.head(3)
	if err != nil {
		return "", err
	}
	b, err := d.take(n)
	return string(b), err
}

func (d *cborDecoder) bytes() ([]byte, error) {
	n, err := d.head(2)
	if err != nil {
		return nil, err
	}
	return d.take(n)
}
