package ipfs

import (
	"context"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// Chunking of kubo's `ipfs add` defaults: fixed 256 KiB chunks, a balanced
// DAG of at most 174 links per node.
const (
	ChunkSize = 256 << 10
	MaxLinks  = 174
)

// Block is one block of a DAG.
type Block struct {
	CID  cid.Cid
	Data []byte
}

func sumCID(codec uint64, data []byte) cid.Cid {
	h, _ := multihash.Sum(data, multihash.SHA2_256, -1)
	return cid.NewCidV1(codec, h)
}

type dagNode struct {
	c        cid.Cid
	fileSize uint64 // bytes of file content below
	dagSize  uint64 // bytes of all blocks below, this one included
}

// Add splits data as `ipfs add --cid-version 1 --raw-leaves` does and
// returns the root CID and every block (leaves first, root last).
func Add(data []byte) (cid.Cid, []Block) {
	root, blocks, _ := add(context.Background(), data)
	return root, blocks
}

// add is Add that stops when ctx is done (hashing 128 MiB takes seconds on
// the stick), checking it every 16 chunks.
func add(ctx context.Context, data []byte) (cid.Cid, []Block, error) {
	var blocks []Block
	var leaves []dagNode
	for off := 0; off < len(data) || off == 0; off += ChunkSize {
		if off%(16*ChunkSize) == 0 {
			if err := ctx.Err(); err != nil {
				return cid.Undef, nil, err
			}
		}
		end := min(off+ChunkSize, len(data))
		chunk := data[off:end]
		c := sumCID(CodecRaw, chunk)
		blocks = append(blocks, Block{c, chunk})
		leaves = append(leaves, dagNode{c: c, fileSize: uint64(len(chunk)), dagSize: uint64(len(chunk))})
		if end == len(data) {
			break
		}
	}
	root, parents := buildTree(leaves)
	return root, append(blocks, parents...), nil
}

// buildTree builds the balanced dag-pb tree over the leaves and returns the
// root and the parent blocks.
func buildTree(level []dagNode) (cid.Cid, []Block) {
	var blocks []Block
	for len(level) > 1 {
		var next []dagNode
		for i := 0; i < len(level); i += MaxLinks {
			kids := level[i:min(i+MaxLinks, len(level))]
			n := &pbNode{}
			var size, dagSize uint64
			sizes := make([]uint64, len(kids))
			for j, k := range kids {
				n.Links = append(n.Links, pbLink{Hash: k.c, Name: "", Tsize: k.dagSize})
				sizes[j] = k.fileSize
				size += k.fileSize
				dagSize += k.dagSize
			}
			n.Data = encodeUnixFSFile(size, sizes)
			enc := encodePBNode(n)
			c := sumCID(CodecDagPB, enc)
			blocks = append(blocks, Block{c, enc})
			next = append(next, dagNode{c: c, fileSize: size, dagSize: dagSize + uint64(len(enc))})
		}
		level = next
	}
	return level[0].c, blocks
}
