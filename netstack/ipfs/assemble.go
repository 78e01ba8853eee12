package ipfs

import (
	"context"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
)

// maxDepth bounds a DAG's depth: kubo's balanced DAG of 174 links per node
// is 4 deep for 256 GiB.
const maxDepth = 32

// blockSource yields the verified blocks an assembly asks for, in the order
// of a depth-first walk of the DAG.
type blockSource interface {
	// block returns the verified block c; its bytes are valid until the
	// next call.
	block(ctx context.Context, c cid.Cid) ([]byte, error)
}

// span is where a raw leaf already sits in the file.
type span struct{ off, n int }

// inner is a decoded dag-pb node, kept for nodes linked more than once.
type inner struct {
	links   []pbLink
	data    []byte // UnixFS Data bytes of the node itself
	size    uint64 // UnixFS filesize
	hasSize bool
}

// frame is a dag-pb node whose links are being walked.
type frame struct {
	c       cid.Cid
	links   []pbLink
	next    int
	start   int // len(out) when the node began
	size    uint64
	hasSize bool
}

// assembler reassembles the UnixFS file under root by walking its DAG
// depth first, as blocks come, so that it holds the file and a bounded
// window, never the whole DAG twice. Its work is bounded: every node
// visited counts against MaxNodes (a node linked n times n times: a small
// DAG cannot make it walk k^depth nodes), a node's bytes are decoded once
// and count against Window while kept, a repeated leaf is copied from
// where it already sits in the file, and the file never grows past its
// announced size or MaxBytes. The context is checked every 64 nodes.
type assembler struct {
	lim   Limits
	root  cid.Cid
	out   []byte
	limit int  // the announced size, or MaxBytes
	exact bool // limit is the root's announced size
	nodes int
	held  int // bytes of decoded nodes kept, and of blocks in a source's window

	leaves map[cid.Cid]span
	inners map[cid.Cid]*inner
	known  map[cid.Cid]bool // linked from a decoded node: part of the DAG
	stack  []frame
}

func newAssembler(root cid.Cid, lim Limits) *assembler {
	return &assembler{lim: lim, root: root, limit: int(lim.MaxBytes),
		leaves: map[cid.Cid]span{}, inners: map[cid.Cid]*inner{}, known: map[cid.Cid]bool{}}
}

// needed reports whether c is a block of the DAG the walk has not had yet:
// what a source keeps when it arrives early. Everything else is dropped.
func (a *assembler) needed(c cid.Cid) bool {
	if !a.known[c] {
		return false
	}
	if _, ok := a.leaves[c]; ok {
		return false
	}
	_, ok := a.inners[c]
	return !ok
}

// upcoming returns up to n CIDs the walk visits next, in order (the
// remaining links of the nodes on the stack, innermost first), for a
// source to ask for ahead.
func (a *assembler) upcoming(n int) []cid.Cid {
	var out []cid.Cid
	for i := len(a.stack) - 1; i >= 0 && len(out) < n; i-- {
		f := &a.stack[i]
		for _, l := range f.links[f.next:] {
			if len(out) == n {
				break
			}
			out = append(out, l.Hash)
		}
	}
	return out
}

// run walks the DAG and returns the file.
func (a *assembler) run(ctx context.Context, src blockSource) ([]byte, error) {
	if err := a.visit(ctx, src, a.root); err != nil {
		return nil, err
	}
	for len(a.stack) > 0 {
		f := &a.stack[len(a.stack)-1]
		if f.next == len(f.links) {
			if f.hasSize && uint64(len(a.out)-f.start) != f.size {
				return nil, fmt.Errorf("%w: %s: file size %d, content %d", ErrMalformed, f.c, f.size, len(a.out)-f.start)
			}
			a.stack = a.stack[:len(a.stack)-1]
			continue
		}
		c := f.links[f.next].Hash
		f.next++
		if err := a.visit(ctx, src, c); err != nil {
			return nil, err
		}
	}
	if a.exact && len(a.out) != a.limit {
		return nil, fmt.Errorf("%w: %s: file size %d, content %d", ErrMalformed, a.root, a.limit, len(a.out))
	}
	if a.out == nil {
		a.out = []byte{}
	}
	return a.out, nil
}

// visit writes a leaf, or a node's data and pushes its links.
func (a *assembler) visit(ctx context.Context, src blockSource, c cid.Cid) error {
	a.nodes++
	if a.nodes > a.lim.MaxNodes {
		return fmt.Errorf("%w: fetch %s: more than %d nodes visited (a DAG that links the same nodes over and over)", ErrLimit, a.root, a.lim.MaxNodes)
	}
	if a.nodes%64 == 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fetch %s: after %d nodes: %w", a.root, a.nodes, err)
		}
	}
	if len(a.stack) >= maxDepth {
		return fmt.Errorf("%w: fetch %s: DAG deeper than %d", ErrLimit, a.root, maxDepth)
	}
	switch c.Type() {
	case CodecRaw:
		if s, ok := a.leaves[c]; ok {
			return a.write(c, a.out[s.off:s.off+s.n])
		}
		data, err := src.block(ctx, c)
		if err != nil {
			return err
		}
		if len(a.stack) == 0 && a.out == nil {
			a.out = make([]byte, 0, len(data))
		}
		off := len(a.out)
		if err := a.write(c, data); err != nil {
			return err
		}
		a.leaves[c] = span{off, len(data)}
		return nil
	case CodecDagPB:
		n, ok := a.inners[c]
		if !ok {
			data, err := src.block(ctx, c)
			if err != nil {
				return err
			}
			if n, err = decodeInner(c, data); err != nil {
				return err
			}
			a.held += len(data)
			if a.held > a.lim.Window {
				return fmt.Errorf("%w: fetch %s: more than %d bytes of nodes and early blocks held", ErrLimit, a.root, a.lim.Window)
			}
			a.inners[c] = n
			for _, l := range n.links {
				a.known[l.Hash] = true
			}
		}
		if len(a.stack) == 0 && a.out == nil {
			// The root: a file larger than the limit is refused before
			// anything else is fetched; the file gets one allocation of
			// the size it announces, which it may not exceed.
			if n.hasSize {
				if n.size > uint64(a.lim.MaxBytes) {
					return fmt.Errorf("%w: fetch %s: file of %d bytes, limit %d", ErrLimit, c, n.size, a.lim.MaxBytes)
				}
				a.limit, a.exact = int(n.size), true
				a.out = make([]byte, 0, n.size)
			}
		}
		start := len(a.out)
		if err := a.write(c, n.data); err != nil {
			return err
		}
		a.stack = append(a.stack, frame{c: c, links: n.links, start: start, size: n.size, hasSize: n.hasSize})
		return nil
	}
	return fmt.Errorf("%w: %s has codec %#x", ErrCodec, c, c.Type())
}

func (a *assembler) write(c cid.Cid, b []byte) error {
	if len(a.out)+len(b) > a.limit {
		if a.exact {
			return fmt.Errorf("%w: %s: content beyond the %d bytes the root %s announces", ErrMalformed, c, a.limit, a.root)
		}
		return fmt.Errorf("%w: %s: file over %d bytes", ErrLimit, c, a.limit)
	}
	a.out = append(a.out, b...)
	return nil
}

// decodeInner decodes a UnixFS file node, copying what it keeps (the
// block's bytes may be a source's scratch buffer).
func decodeInner(c cid.Cid, data []byte) (*inner, error) {
	n, err := decodePBNode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	u, err := decodeUnixFS(n.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	if u.Type != unixfsFile && u.Type != unixfsRaw {
		return nil, fmt.Errorf("%w: %s is UnixFS type %d", ErrNotFile, c, u.Type)
	}
	for _, l := range n.Links {
		if t := l.Hash.Type(); t != CodecRaw && t != CodecDagPB {
			return nil, fmt.Errorf("%w: %s links to %s of codec %#x", ErrCodec, c, l.Hash, t)
		}
	}
	return &inner{links: n.Links, data: append([]byte(nil), u.Data...), size: u.FileSize, hasSize: u.HasSize}, nil
}

// carSource reads blocks from a CAR stream in the order they come. A block
// the walk needs now is returned; one it needs later is kept (within the
// window); any other block, unrelated to the DAG or already had, is
// dropped unread. kubo sends blocks in the walk's order (order=dfs), so
// nothing waits in the window.
type carSource struct {
	cr      *CARReader
	a       *assembler
	lim     Limits
	window  map[cid.Cid][]byte
	scratch []byte
	dropped int // bytes
	drops   int // blocks
}

func (s *carSource) block(ctx context.Context, c cid.Cid) ([]byte, error) {
	if b, ok := s.window[c]; ok {
		delete(s.window, c)
		s.a.held -= len(b)
		return b, nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", s.a.root, err)
		}
		bc, n, err := s.cr.nextHeader()
		if err == io.EOF {
			if s.drops > 0 {
				return nil, fmt.Errorf("%w: %s: not in the CAR after %d blocks dropped (unrelated, or before the node that links them: the walk wants order=dfs)", ErrMissing, c, s.drops)
			}
			return nil, fmt.Errorf("%w: %s: not in the CAR", ErrMissing, c)
		}
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", s.a.root, err)
		}
		switch {
		case bc.Equals(c):
			b, err := s.cr.readBlock(bc, n, s.scratch)
			if err != nil {
				return nil, err
			}
			s.scratch = b
			return b, nil
		case s.a.needed(bc) && s.window[bc] == nil:
			if s.a.held+n > s.lim.Window {
				return nil, fmt.Errorf("%w: fetch %s: block %s came %d bytes ahead of its turn (window %d)", ErrLimit, s.a.root, bc, s.a.held, s.lim.Window)
			}
			b, err := s.cr.readBlock(bc, n, nil)
			if err != nil {
				return nil, err
			}
			s.window[bc] = b
			s.a.held += n
		default:
			s.dropped += n
			s.drops++
			if int64(s.dropped) > s.lim.MaxBytes {
				return nil, fmt.Errorf("%w: fetch %s: more than %d bytes of blocks unrelated to it", ErrLimit, s.a.root, s.lim.MaxBytes)
			}
			if err := s.cr.skip(n); err != nil {
				return nil, fmt.Errorf("fetch %s: %w", s.a.root, err)
			}
		}
	}
}

// getSource gets blocks one by one from the gateway, each verified, asking
// for the next few the walk needs in parallel and keeping them in the
// window until their turn.
type getSource struct {
	cl      *Client
	a       *assembler
	lim     Limits
	par     int
	window  map[cid.Cid][]byte
	fetched int
}

func (s *getSource) block(ctx context.Context, c cid.Cid) ([]byte, error) {
	if b, ok := s.window[c]; ok {
		delete(s.window, c)
		s.a.held -= len(b)
		return b, nil
	}
	batch := []cid.Cid{c}
	room := s.lim.Window - s.a.held
	for _, u := range s.a.upcoming(4 * s.par) {
		if len(batch) == s.par || room < s.lim.MaxBlockSize {
			break
		}
		if !s.a.needed(u) || s.window[u] != nil || contains(batch, u) {
			continue
		}
		batch = append(batch, u)
		room -= s.lim.MaxBlockSize
	}
	s.fetched += len(batch)
	if s.fetched > s.lim.MaxBlocks {
		return nil, fmt.Errorf("%w: fetch %s: more than %d blocks", ErrLimit, s.a.root, s.lim.MaxBlocks)
	}
	got, err := s.cl.getMany(ctx, batch, s.par)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", s.a.root, err)
	}
	for i, u := range batch[1:] {
		s.window[u] = got[i+1]
		s.a.held += len(got[i+1])
	}
	return got[0], nil
}

func contains(cs []cid.Cid, c cid.Cid) bool {
	for _, x := range cs {
		if x.Equals(c) {
			return true
		}
	}
	return false
}
