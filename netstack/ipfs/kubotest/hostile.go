package kubotest

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/teastick/teastick/netstack/ipfs"
)

// Amplified builds a FAULT-INJECTION DAG: depth dag-pb UnixFS file nodes,
// each linking k times to the next, the last k times to the raw leaf. Its
// blocks are a few KB, but a walk that follows every link visits k^depth
// nodes (and the file it describes is k^depth times the leaf). No node
// announces a file size, so nothing refuses it before walking. Blocks come
// root first (the order of a depth-first walk that sends each block once).
func Amplified(k, depth int, leaf []byte) (cid.Cid, []ipfs.Block) {
	next := sum(cid.Raw, leaf)
	blocks := []ipfs.Block{{CID: next, Data: leaf}}
	// UnixFS Data {Type: File} (unixfs.proto field 1, varint 2)
	data := []byte{0x08, 0x02}
	for range depth {
		var node []byte
		for range k {
			// PBLink {Hash: next} (dag-pb spec: PBNode field 2, PBLink field 1)
			link := appendBytes(nil, 1, next.Bytes())
			node = appendBytes(node, 2, link)
		}
		node = appendBytes(node, 1, data)
		next = sum(cid.DagProtobuf, node)
		blocks = append([]ipfs.Block{{CID: next, Data: node}}, blocks...)
	}
	return next, blocks
}

func sum(codec uint64, data []byte) cid.Cid {
	h, _ := multihash.Sum(data, multihash.SHA2_256, -1)
	return cid.NewCidV1(codec, h)
}

func appendBytes(b []byte, field uint64, v []byte) []byte {
	b = binary.AppendUvarint(b, field<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// Put stores blocks on the node as they are (block/put with their codec),
// for DAGs `ipfs add` would not build.
func (n *Node) Put(t testing.TB, blocks []ipfs.Block) {
	t.Helper()
	cl := &ipfs.Client{API: n.API, Gateway: n.Gateway}
	for _, b := range blocks {
		got, err := cl.Put(context.Background(), b.CID.Type(), b.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equals(b.CID) {
			t.Fatalf("put %s: node stored %s", b.CID, got)
		}
	}
}

// CAR encodes a CARv1 stream (CARv1 specification): the dag-cbor header
// {"roots": [root], "version": 1}, then each block as a varint-framed CID
// and data section, in the order given. Fault-injection boxes build their
// answers with it.
func CAR(root cid.Cid, blocks []ipfs.Block) []byte {
	var h []byte
	h = append(h, 0xa2) // map(2)
	h = append(h, 0x65)
	h = append(h, "roots"...)
	h = append(h, 0x81, 0xd8, 0x2a) // array(1), tag(42)
	cb := append([]byte{0}, root.Bytes()...)
	h = append(h, 0x58, byte(len(cb)))
	h = append(h, cb...)
	h = append(h, 0x67)
	h = append(h, "version"...)
	h = append(h, 0x01)
	out := binary.AppendUvarint(nil, uint64(len(h)))
	out = append(out, h...)
	for _, b := range blocks {
		out = append(out, Section(b)...)
	}
	return out
}

// Section encodes one CAR block section.
func Section(b ipfs.Block) []byte {
	c := b.CID.Bytes()
	out := binary.AppendUvarint(nil, uint64(len(c)+len(b.Data)))
	out = append(out, c...)
	return append(out, b.Data...)
}
