package measure

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The hand-off block stage 0 leaves for the stick:
//
//	offset size field
//	0      4    magic "TSEL"
//	4      2    version (1), little-endian
//	6      2    reserved, zero
//	8      4    length of the log, little-endian
//	12     4    CRC-32 (IEEE) of the log, little-endian
//	16     n    the event log (eventlog format)
//
// The checksum only catches corruption in memory; trust comes from the
// log replaying to the TPM's PCRs, which Resume checks.
const (
	HandoffMagic      = "TSEL"
	HandoffVersion    = 1
	HandoffHeaderSize = 16
	// MaxHandoffLog bounds the log stage 0 may hand over.
	MaxHandoffLog = 1 << 20
)

// ErrHandoff means a hand-off block is malformed.
var ErrHandoff = errors.New("measure: bad hand-off block")

// EncodeHandoff wraps an event log in a hand-off block.
func EncodeHandoff(log []byte) []byte {
	b := make([]byte, HandoffHeaderSize, HandoffHeaderSize+len(log))
	copy(b, HandoffMagic)
	binary.LittleEndian.PutUint16(b[4:], HandoffVersion)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(log)))
	binary.LittleEndian.PutUint32(b[12:], crc32.ChecksumIEEE(log))
	return append(b, log...)
}

// HandoffSize returns the total size of the hand-off block starting at b
// (header plus log), for a loader that must copy it out of memory first.
func HandoffSize(hdr []byte) (int, error) {
	if len(hdr) < HandoffHeaderSize || string(hdr[:4]) != HandoffMagic {
		return 0, fmt.Errorf("%w: no magic", ErrHandoff)
	}
	n := binary.LittleEndian.Uint32(hdr[8:])
	if n > MaxHandoffLog {
		return 0, fmt.Errorf("%w: log of %d bytes", ErrHandoff, n)
	}
	return HandoffHeaderSize + int(n), nil
}

// ParseHandoff checks a hand-off block and returns its log. Bytes after
// the block are ignored (the block may sit in a larger memory region).
func ParseHandoff(b []byte) ([]byte, error) {
	size, err := HandoffSize(b)
	if err != nil {
		return nil, err
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != HandoffVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrHandoff, v, HandoffVersion)
	}
	if r := binary.LittleEndian.Uint16(b[6:]); r != 0 {
		return nil, fmt.Errorf("%w: reserved field %#x", ErrHandoff, r)
	}
	if len(b) < size {
		return nil, fmt.Errorf("%w: %d bytes, header announces %d", ErrHandoff, len(b), size)
	}
	log := b[HandoffHeaderSize:size]
	if sum := binary.LittleEndian.Uint32(b[12:]); sum != crc32.ChecksumIEEE(log) {
		return nil, fmt.Errorf("%w: checksum %#08x, log sums to %#08x", ErrHandoff, sum, crc32.ChecksumIEEE(log))
	}
	return log, nil
}
