package ipfs

import (
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"
)

// Codecs this package reassembles (multicodec table).
const (
	CodecRaw   = cid.Raw         // 0x55
	CodecDagPB = cid.DagProtobuf // 0x70
)

// pbLink is a dag-pb PBLink.
type pbLink struct {
	Hash  cid.Cid
	Name  string
	Tsize uint64
}

// pbNode is a dag-pb PBNode (dag-pb specification): Links, then Data.
type pbNode struct {
	Links []pbLink
	Data  []byte
}

// unixfsData is the UnixFS Data message of a file node.
type unixfsData struct {
	Type       uint64
	Data       []byte
	FileSize   uint64
	HasSize    bool
	BlockSizes []uint64
}

// UnixFS data types.
const (
	unixfsRaw  = 0
	unixfsFile = 2
)

// protobuf wire reading, bounded by the slice.
type pbReader struct {
	b   []byte
	off int
}

func (r *pbReader) varint() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		return 0, fmt.Errorf("%w: protobuf varint", ErrMalformed)
	}
	r.off += n
	return v, nil
}

func (r *pbReader) bytes() ([]byte, error) {
	n, err := r.varint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.off) {
		return nil, fmt.Errorf("%w: protobuf field beyond the message", ErrMalformed)
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return v, nil
}

// field reads a field key: number and wire type.
func (r *pbReader) field() (num uint64, wire uint64, err error) {
	k, err := r.varint()
	if err != nil {
		return 0, 0, err
	}
	return k >> 3, k & 7, nil
}

func (r *pbReader) skip(wire uint64) error {
	switch wire {
	case 0:
		_, err := r.varint()
		return err
	case 2:
		_, err := r.bytes()
		return err
	}
	return fmt.Errorf("%w: protobuf wire type %d", ErrMalformed, wire)
}

// decodePBNode decodes a dag-pb block. Fields other than those of the
// dag-pb schema are refused (the spec's strictness).
func decodePBNode(b []byte) (*pbNode, error) {
	r := pbReader{b: b}
	n := &pbNode{}
	seenData := false
	for r.off < len(b) {
		num, wire, err := r.field()
		if err != nil {
			return nil, err
		}
		switch {
		case num == 2 && wire == 2 && !seenData:
			lb, err := r.bytes()
			if err != nil {
				return nil, err
			}
			l, err := decodePBLink(lb)
			if err != nil {
				return nil, err
			}
			n.Links = append(n.Links, l)
		case num == 1 && wire == 2 && !seenData:
			if n.Data, err = r.bytes(); err != nil {
				return nil, err
			}
			seenData = true
		default:
			return nil, fmt.Errorf("%w: dag-pb field %d/%d", ErrMalformed, num, wire)
		}
	}
	return n, nil
}

func decodePBLink(b []byte) (pbLink, error) {
	r := pbReader{b: b}
	var l pbLink
	hasHash := false
	for r.off < len(b) {
		num, wire, err := r.field()
		if err != nil {
			return l, err
		}
		switch {
		case num == 1 && wire == 2:
			h, err := r.bytes()
			if err != nil {
				return l, err
			}
			if l.Hash, err = cid.Cast(h); err != nil {
				return l, fmt.Errorf("%w: link hash: %v", ErrMalformed, err)
			}
			hasHash = true
		case num == 2 && wire == 2:
			name, err := r.bytes()
			if err != nil {
				return l, err
			}
			l.Name = string(name)
		case num == 3 && wire == 0:
			if l.Tsize, err = r.varint(); err != nil {
				return l, err
			}
		default:
			return l, fmt.Errorf("%w: dag-pb link field %d/%d", ErrMalformed, num, wire)
		}
	}
	if !hasHash {
		return l, fmt.Errorf("%w: dag-pb link without a hash", ErrMalformed)
	}
	return l, nil
}

func decodeUnixFS(b []byte) (*unixfsData, error) {
	r := pbReader{b: b}
	u := &unixfsData{}
	hasType := false
	for r.off < len(b) {
		num, wire, err := r.field()
		if err != nil {
			return nil, err
		}
		switch {
		case num == 1 && wire == 0:
			if u.Type, err = r.varint(); err != nil {
				return nil, err
			}
			hasType = true
		case num == 2 && wire == 2:
			if u.Data, err = r.bytes(); err != nil {
				return nil, err
			}
		case num == 3 && wire == 0:
			if u.FileSize, err = r.varint(); err != nil {
				return nil, err
			}
			u.HasSize = true
		case num == 4 && wire == 0:
			v, err := r.varint()
			if err != nil {
				return nil, err
			}
			u.BlockSizes = append(u.BlockSizes, v)
		default:
			if err := r.skip(wire); err != nil { // hashType, fanout, mode, mtime
				return nil, err
			}
		}
	}
	if !hasType {
		return nil, fmt.Errorf("%w: UnixFS data without a type", ErrMalformed)
	}
	return u, nil
}

// protobuf wire writing, for the nodes CIDOf builds.
func appendVarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendBytesField(b []byte, num uint64, v []byte) []byte {
	b = appendVarint(b, num<<3|2)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendVarintField(b []byte, num, v uint64) []byte {
	return appendVarint(appendVarint(b, num<<3), v)
}

// encodePBNode encodes a dag-pb node canonically: links in order, each
// Hash, Name, Tsize, then Data.
func encodePBNode(n *pbNode) []byte {
	var b []byte
	for _, l := range n.Links {
		var lb []byte
		lb = appendBytesField(lb, 1, l.Hash.Bytes())
		lb = appendBytesField(lb, 2, []byte(l.Name))
		lb = appendVarintField(lb, 3, l.Tsize)
		b = appendBytesField(b, 2, lb)
	}
	if n.Data != nil {
		b = appendBytesField(b, 1, n.Data)
	}
	return b
}

// encodeUnixFSFile encodes the UnixFS Data of a file node with children.
func encodeUnixFSFile(size uint64, blockSizes []uint64) []byte {
	var b []byte
	b = appendVarintField(b, 1, unixfsFile)
	b = appendVarintField(b, 3, size)
	for _, s := range blockSizes {
		b = appendVarintField(b, 4, s)
	}
	return b
}
