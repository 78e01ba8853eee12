package ipfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// carBytes encodes a CARv1 with the given root and blocks.
func carBytes(root cid.Cid, blocks []Block) []byte {
	// dag-cbor header {"roots": [root], "version": 1}
	var h []byte
	h = append(h, 0xa2)
	h = append(h, 0x65)
	h = append(h, "roots"...)
	h = append(h, 0x81, 0xd8, 0x2a)
	cb := append([]byte{0}, root.Bytes()...)
	h = append(h, 0x58, byte(len(cb)))
	h = append(h, cb...)
	h = append(h, 0x67)
	h = append(h, "version"...)
	h = append(h, 0x01)
	var out []byte
	out = binary.AppendUvarint(out, uint64(len(h)))
	out = append(out, h...)
	for _, b := range blocks {
		sec := append(b.CID.Bytes(), b.Data...)
		out = binary.AppendUvarint(out, uint64(len(sec)))
		out = append(out, sec...)
	}
	return out
}

// dfs orders blocks as a depth-first walk from root meets them (kubo's
// order=dfs), each block once.
func dfs(root cid.Cid, blocks []Block) []Block {
	byCID := map[cid.Cid][]byte{}
	for _, b := range blocks {
		byCID[b.CID] = b.Data
	}
	var out []Block
	seen := map[cid.Cid]bool{}
	var walk func(c cid.Cid)
	walk = func(c cid.Cid) {
		d, ok := byCID[c]
		if !ok || seen[c] {
			return
		}
		seen[c] = true
		out = append(out, Block{c, d})
		if c.Type() == CodecDagPB {
			n, err := decodePBNode(d)
			if err != nil {
				panic(err)
			}
			for _, l := range n.Links {
				walk(l.Hash)
			}
		}
	}
	walk(root)
	return out
}

func testFile(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i/977)
	}
	return b
}

// hostileGateway serves CARs that a fault function may corrupt.
func hostileGateway(t *testing.T, serve func(w http.ResponseWriter, r *http.Request)) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(serve))
	t.Cleanup(srv.Close)
	return &Client{Gateway: srv.URL, Timeout: 3 * time.Second, Backoff: time.Millisecond, CAR: true,
		Limits: Limits{MaxBytes: 4 << 20, MaxBlockSize: 1 << 20, MaxBlocks: 64}}
}

func TestFetchFromHostileGateway(t *testing.T) {
	file := testFile(3*ChunkSize + 1000) // 4 leaves and a root
	root, blocks := Add(file)
	blocks = dfs(root, blocks)
	sha512 := func() cid.Cid {
		h, _ := multihash.Sum(file[:100], multihash.SHA2_512, -1)
		return cid.NewCidV1(cid.Raw, h)
	}()
	cbor := func() cid.Cid {
		h, _ := multihash.Sum([]byte{0xa0}, multihash.SHA2_256, -1)
		return cid.NewCidV1(cid.DagCBOR, h)
	}()
	tests := []struct {
		name string
		root cid.Cid
		body func() []byte
		want error
	}{
		{"honest", root, func() []byte { return carBytes(root, blocks) }, nil},
		{"tampered leaf", root, func() []byte {
			bad := append([]Block(nil), blocks...)
			d := append([]byte(nil), bad[1].Data...)
			d[10] ^= 1
			bad[1] = Block{bad[1].CID, d}
			return carBytes(root, bad)
		}, ErrMismatch},
		{"missing leaf", root, func() []byte {
			return carBytes(root, append(append([]Block(nil), blocks[:2]...), blocks[3:]...))
		}, ErrMissing},
		{"truncated CAR", root, func() []byte {
			b := carBytes(root, blocks)
			return b[:len(b)-500]
		}, ErrMalformed},
		{"wrong root", root, func() []byte { return carBytes(blocks[len(blocks)-1].CID, blocks) }, ErrMalformed},
		{"unknown codec", cbor, func() []byte { return carBytes(cbor, []Block{{cbor, []byte{0xa0}}}) }, ErrCodec},
		{"other hash function", sha512, func() []byte { return carBytes(sha512, []Block{{sha512, file[:100]}}) }, ErrHash},
		{"block over the size limit", root, func() []byte {
			big := testFile(2 << 20)
			c := sumCID(cid.Raw, big)
			return carBytes(root, []Block{{c, big}})
		}, ErrLimit},
		{"endless response", root, func() []byte {
			var many []Block
			for i := 0; i < 100; i++ {
				d := []byte{byte(i), byte(i >> 8)}
				many = append(many, Block{sumCID(cid.Raw, d), d})
			}
			return carBytes(root, many)
		}, ErrLimit},
		{"not a CAR", root, func() []byte { return []byte("<html>hello</html>") }, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body()
			cl := hostileGateway(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/vnd.ipld.car")
				w.Write(body)
			})
			got, err := cl.Fetch(context.Background(), tc.root)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Fetch = %v, want %v", err, tc.want)
			}
			if err == nil && !bytes.Equal(got, file) {
				t.Fatal("reassembled file differs")
			}
			if err != nil && got != nil {
				t.Fatal("bytes handed out with an error")
			}
			if err != nil && tc.want != ErrMalformed && !strings.Contains(err.Error(), tc.root.String()) {
				t.Fatalf("error does not name the content asked for (%s): %v", tc.root, err)
			}
		})
	}
}

// blockGateway serves blocks one by one (application/vnd.ipld.raw), from a
// store a fault function may corrupt.
func blockGateway(t *testing.T, store map[string][]byte) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path[len("/ipfs/"):]
		b, ok := store[key]
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return &Client{Gateway: srv.URL, Timeout: 3 * time.Second, Backoff: time.Millisecond,
		Limits: Limits{MaxBytes: 4 << 20, MaxBlockSize: 1 << 20, MaxBlocks: 64}}
}

func TestFetchBlockByBlock(t *testing.T) {
	file := testFile(3*ChunkSize + 1000)
	root, blocks := Add(file)
	honest := func() map[string][]byte {
		m := map[string][]byte{}
		for _, b := range blocks {
			m[b.CID.String()] = b.Data
		}
		return m
	}
	tests := []struct {
		name  string
		store func() map[string][]byte
		want  error
	}{
		{"honest", honest, nil},
		{"tampered leaf", func() map[string][]byte {
			m := honest()
			d := append([]byte(nil), m[blocks[2].CID.String()]...)
			d[0] ^= 0x80
			m[blocks[2].CID.String()] = d
			return m
		}, ErrMismatch},
		{"tampered root", func() map[string][]byte {
			m := honest()
			m[root.String()] = append([]byte{0x0a, 0x00}, m[root.String()]...)
			return m
		}, ErrMismatch},
		{"missing leaf", func() map[string][]byte {
			m := honest()
			delete(m, blocks[1].CID.String())
			return m
		}, ErrMissing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := blockGateway(t, tc.store()).Fetch(context.Background(), root)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Fetch = %v, want %v", err, tc.want)
			}
			if err == nil && !bytes.Equal(got, file) {
				t.Fatal("reassembled file differs")
			}
			if err != nil && got != nil {
				t.Fatal("bytes handed out with an error")
			}
			if err != nil && !strings.Contains(err.Error(), root.String()) {
				t.Fatalf("error does not name the content asked for (%s): %v", root, err)
			}
		})
	}
}

func TestFetchStall(t *testing.T) {
	root, blocks := Add(testFile(100))
	cl := hostileGateway(t, func(w http.ResponseWriter, r *http.Request) {
		b := carBytes(root, blocks)
		w.Write(b[:20])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	cl.Timeout = 500 * time.Millisecond
	start := time.Now()
	if _, err := cl.Fetch(context.Background(), root); err == nil {
		t.Fatal("a stalled response was accepted")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("stall noticed after %v", time.Since(start))
	}
}

// A fetch that runs out of time is a limit; one its caller cancels (an
// API client that went away) is not: it says it was cancelled.
func TestFetchStallCancelled(t *testing.T) {
	root, blocks := Add(testFile(100))
	cl := hostileGateway(t, func(w http.ResponseWriter, r *http.Request) {
		b := carBytes(root, blocks)
		w.Write(b[:20])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	cl.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := cl.Fetch(ctx, root); !errors.Is(err, ErrLimit) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("out of time: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := cl.Fetch(ctx, root)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrLimit) || strings.Contains(err.Error(), "limit") ||
		!strings.Contains(err.Error(), root.String()) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestFetchRetriesConnectionFaults(t *testing.T) {
	file := testFile(1000)
	root, blocks := Add(file)
	var calls atomic.Int32
	cl := hostileGateway(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // the box drops the first connection
			return
		}
		w.Write(carBytes(root, blocks))
	})
	got, err := cl.Fetch(context.Background(), root)
	if err != nil {
		t.Fatalf("Fetch after a dropped connection: %v", err)
	}
	if !bytes.Equal(got, file) || calls.Load() != 2 {
		t.Fatalf("calls %d", calls.Load())
	}
}

func TestGatewayRefuses(t *testing.T) {
	root, _ := Add(testFile(10))
	cl := hostileGateway(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not found", http.StatusNotFound)
	})
	if _, err := cl.Fetch(context.Background(), root); !errors.Is(err, ErrGateway) {
		t.Fatalf("Fetch = %v, want ErrGateway", err)
	}
}

func FuzzCAR(f *testing.F) {
	root, blocks := Add(testFile(ChunkSize + 10))
	f.Add(carBytes(root, blocks))
	f.Add([]byte{0x01, 0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		cr, err := NewCARReader(bytes.NewReader(b), Limits{MaxBytes: 1 << 20, MaxBlockSize: 1 << 16, MaxBlocks: 16})
		if err != nil {
			return
		}
		for i := 0; i < 32; i++ {
			if i%2 == 1 {
				// every other section is dropped unread
				_, n, err := cr.nextHeader()
				if err != nil || cr.skip(n) != nil {
					return
				}
				continue
			}
			c, data, err := cr.Next()
			if err != nil {
				return
			}
			if Verify(c, data) != nil {
				t.Fatal("Next returned an unverified block")
			}
		}
	})
}

func FuzzDagPB(f *testing.F) {
	_, blocks := Add(testFile(3 * ChunkSize))
	f.Add(blocks[len(blocks)-1].Data)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodePBNode(b)
		if err != nil {
			return
		}
		if n.Data != nil {
			decodeUnixFS(n.Data)
		}
	})
}

// TestFetchRebuilt covers the plain-download path: content whose rebuilt
// DAG has the requested root is taken in one request; content that does
// not rebuild (tampered, or chunked otherwise) is never returned as such:
// the fetch falls back to verifying block by block.
func TestFetchRebuilt(t *testing.T) {
	file := testFile(3*ChunkSize + 1000)
	root, blocks := Add(file)
	store := map[string][]byte{}
	for _, b := range blocks {
		store[b.CID.String()] = b.Data
	}
	tampered := append([]byte(nil), file...)
	tampered[12345] ^= 1
	tests := []struct {
		name      string
		plain     []byte // what the gateway renders for /ipfs/root
		blocks    bool   // whether it serves honest blocks too
		want      error
		wantCalls int32
	}{
		{"honest plain file: one request", file, true, nil, 1},
		{"tampered plain file, honest blocks: falls back", tampered, true, nil, 1 + int32(len(blocks))},
		{"tampered plain file, no blocks", tampered, false, ErrMissing, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				key := r.URL.Path[len("/ipfs/"):]
				if r.URL.Query().Get("format") == "" && key == root.String() {
					w.Write(tc.plain)
					return
				}
				if b, ok := store[key]; ok && tc.blocks {
					w.Write(b)
					return
				}
				http.Error(w, "not found", http.StatusNotFound)
			}))
			defer srv.Close()
			cl := &Client{Gateway: srv.URL, Timeout: 3 * time.Second, Parallel: 1}
			got, err := cl.Fetch(context.Background(), root)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Fetch = %v, want %v", err, tc.want)
			}
			if err == nil && !bytes.Equal(got, file) {
				t.Fatal("returned content is not the genuine file")
			}
			if calls.Load() != tc.wantCalls {
				t.Fatalf("%d requests, want %d", calls.Load(), tc.wantCalls)
			}
		})
	}
}

// smallDAG builds a dag-pb file over small raw leaves (repeats allowed),
// blocks in DFS order.
func smallDAG(leaves ...string) (cid.Cid, []Block) {
	var blocks []Block
	var nodes []dagNode
	for _, l := range leaves {
		c := sumCID(CodecRaw, []byte(l))
		blocks = append(blocks, Block{c, []byte(l)})
		nodes = append(nodes, dagNode{c: c, fileSize: uint64(len(l)), dagSize: uint64(len(l))})
	}
	root, parents := buildTree(nodes)
	return root, dfs(root, append(blocks, parents...))
}

// FuzzAssembleCAR feeds arbitrary CAR streams to the depth-first
// assembler: it must never panic, never exceed its bounds, and only
// return files whose blocks all verified.
func FuzzAssembleCAR(f *testing.F) {
	root, blocks := smallDAG("ab", "cd", "ab", "efg")
	f.Add(carBytes(root, blocks))
	raw := sumCID(CodecRaw, []byte("raw root"))
	f.Add(carBytes(raw, []Block{{raw, []byte("raw root")}}))
	// a node linking 8 times to a node linking 8 times to an empty leaf
	leaf := sumCID(CodecRaw, nil)
	next, amp := leaf, []Block{{leaf, []byte{}}}
	for range 2 {
		n := &pbNode{Data: []byte{0x08, 0x02}}
		for range 8 {
			n.Links = append(n.Links, pbLink{Hash: next})
		}
		enc := encodePBNode(n)
		next = sumCID(CodecDagPB, enc)
		amp = append([]Block{{next, enc}}, amp...)
	}
	f.Add(carBytes(next, amp))
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := Limits{MaxBytes: 1 << 16, MaxBlockSize: 1 << 12, MaxBlocks: 64, MaxNodes: 256, Window: 1 << 13}
		cr, err := NewCARReader(bytes.NewReader(b), lim)
		if err != nil || len(cr.Roots) != 1 {
			return
		}
		a := newAssembler(cr.Roots[0], lim)
		src := &carSource{cr: cr, a: a, lim: lim, window: map[cid.Cid][]byte{}}
		out, err := a.run(context.Background(), src)
		if a.nodes > lim.MaxNodes+1 || a.held > lim.Window || len(out) > int(lim.MaxBytes) {
			t.Fatalf("bounds broken: %d nodes, %d held, %d bytes", a.nodes, a.held, len(out))
		}
		if err != nil && out != nil {
			t.Fatal("bytes handed out with an error")
		}
	})
}
