package ipfs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
)

// fetchWithin runs f and fails the test if it has not returned after
// limit: the code before the bounds walked k^depth nodes and never
// returned.
func fetchWithin(t *testing.T, limit time.Duration, f func() ([]byte, error)) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := f()
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(limit):
		t.Fatalf("Fetch still walking after %v", limit)
		return nil, nil
	}
}

// carGateway is a FAULT-INJECTION box: it answers every CAR request with
// body, and every other request with 404.
func carGateway(t *testing.T, body []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") != "car" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.ipld.car")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// blocksGateway is a FAULT-INJECTION box serving blocks one by one
// (format=raw), and 404 for everything else.
func blocksGateway(t *testing.T, blocks []ipfs.Block) string {
	t.Helper()
	store := map[string][]byte{}
	for _, b := range blocks {
		store[b.CID.String()] = b.Data
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := store[strings.TrimPrefix(r.URL.Path, "/ipfs/")]
		if !ok || r.URL.Query().Get("format") != "raw" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A few KB of dag-pb whose nodes link 32 times to the next, 6 deep (a
// walk of 32^6 = 10^9 nodes, whose file is empty), is refused by the
// bound on nodes visited, from a CAR and block by block.
func TestFetchRefusesAmplifiedDAG(t *testing.T) {
	root, blocks := kubotest.Amplified(32, 6, []byte{})
	size := 0
	for _, b := range blocks {
		size += len(b.Data)
	}
	t.Logf("%d blocks, %d bytes, %s", len(blocks), size, root)
	for _, tc := range []struct {
		name string
		cl   *ipfs.Client
	}{
		{"CAR", &ipfs.Client{Gateway: carGateway(t, kubotest.CAR(root, blocks)), CAR: true}},
		{"block by block", &ipfs.Client{Gateway: blocksGateway(t, blocks)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cl.Timeout = time.Minute
			_, err := fetchWithin(t, time.Minute, func() ([]byte, error) {
				return tc.cl.Fetch(context.Background(), root)
			})
			if !errors.Is(err, ipfs.ErrLimit) || !strings.Contains(err.Error(), "nodes visited") {
				t.Fatalf("Fetch = %v, want the bound on nodes visited", err)
			}
		})
	}
}

// The same DAG in a real kubo: kubo serves its CAR (each block once), the
// client refuses it by the bound on nodes visited.
func TestFetchRefusesAmplifiedDAGFromKubo(t *testing.T) {
	node := kubotest.Start(t)
	root, blocks := kubotest.Amplified(32, 6, []byte{})
	node.Put(t, blocks)
	cl := &ipfs.Client{Gateway: node.Gateway, CAR: true, Timeout: time.Minute}
	_, err := fetchWithin(t, time.Minute, func() ([]byte, error) {
		return cl.Fetch(context.Background(), root)
	})
	if !errors.Is(err, ipfs.ErrLimit) || !strings.Contains(err.Error(), "nodes visited") {
		t.Fatalf("Fetch = %v, want the bound on nodes visited", err)
	}
}

func pseudoRandom(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// logTo returns a logger writing to buf.
func logTo(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A CAR padded with blocks unrelated to the DAG: they are dropped as they
// arrive, unread and unkept (3.5 MiB of them with a 1 MiB window), and the
// file comes out whole. Blocks of the DAG that come early are kept within
// the window, and refused beyond it.
func TestFetchCARPaddingAndWindow(t *testing.T) {
	file := pseudoRandom(4*ipfs.ChunkSize, 1) // 4 leaves and a root
	root, blocks := ipfs.Add(file)
	rootBlock, leaves := blocks[len(blocks)-1], blocks[:len(blocks)-1]
	var padding []ipfs.Block
	for i := range 14 {
		d := pseudoRandom(ipfs.ChunkSize, byte(10+i))
		h, _ := multihash.Sum(d, multihash.SHA2_256, -1)
		padding = append(padding, ipfs.Block{CID: cid.NewCidV1(cid.Raw, h), Data: d})
	}
	padded := []ipfs.Block{padding[0], padding[1], rootBlock}
	for i, l := range leaves {
		padded = append(padded, padding[2+3*i:5+3*i]...)
		padded = append(padded, l)
	}
	lim := ipfs.Limits{MaxBytes: 4 << 20, MaxBlockSize: 1 << 20, MaxBlocks: 64, Window: 1 << 20}
	tests := []struct {
		name   string
		order  []ipfs.Block
		window int
		want   error
		log    string
	}{
		{"padded with 14 unrelated blocks", padded, 1 << 20, nil, "blocks=14 bytes=3670016"},
		{"one leaf early, within the window", []ipfs.Block{rootBlock, leaves[1], leaves[0], leaves[2], leaves[3]}, 1 << 20, nil, ""},
		{"three leaves early, beyond the window", []ipfs.Block{rootBlock, leaves[3], leaves[2], leaves[1], leaves[0]}, 600 << 10, ipfs.ErrLimit, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			l := lim
			l.Window = tc.window
			cl := &ipfs.Client{Gateway: carGateway(t, kubotest.CAR(root, tc.order)), CAR: true, Limits: l,
				Timeout: 10 * time.Second, Log: logTo(&logs)}
			got, err := cl.Fetch(context.Background(), root)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Fetch = %v, want %v", err, tc.want)
			}
			if err == nil && !bytes.Equal(got, file) {
				t.Fatal("reassembled file differs")
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Fatalf("log %q, want %q", logs.String(), tc.log)
			}
		})
	}
}

// A root that announces a file larger than the limits derived from the
// stick's RAM is refused as soon as it arrives, with an error that says
// so: the box had written little of the endless response by then.
func TestFetchRefusedEarlyByRAMLimit(t *testing.T) {
	leaf := pseudoRandom(ipfs.ChunkSize, 3)
	h, _ := multihash.Sum(leaf, multihash.SHA2_256, -1)
	leafCID := cid.NewCidV1(cid.Raw, h)
	const links = 800 // 200 MiB
	var node, unixfs []byte
	unixfs = append(unixfs, 0x08, 0x02, 0x18) // Type File, filesize:
	unixfs = binary.AppendUvarint(unixfs, links*ipfs.ChunkSize)
	for range links {
		unixfs = append(unixfs, 0x20) // blocksizes
		unixfs = binary.AppendUvarint(unixfs, ipfs.ChunkSize)
	}
	for range links {
		l := append([]byte{0x0a, byte(len(leafCID.Bytes()))}, leafCID.Bytes()...)
		node = append(node, 0x12, byte(len(l)))
		node = append(node, l...)
	}
	node = append(node, 0x0a)
	node = binary.AppendUvarint(node, uint64(len(unixfs)))
	node = append(node, unixfs...)
	h, _ = multihash.Sum(node, multihash.SHA2_256, -1)
	root := cid.NewCidV1(cid.DagProtobuf, h)

	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// the root, then the same leaf over and over (dups=y), until
		// the client hangs up
		b := kubotest.CAR(root, []ipfs.Block{{CID: root, Data: node}})
		sec := kubotest.Section(ipfs.Block{CID: leafCID, Data: leaf})
		for i := 0; i < 2*links; i++ {
			n, err := w.Write(b)
			served.Add(int64(n))
			if err != nil {
				return
			}
			b = sec
		}
	}))
	defer srv.Close()
	lim := ipfs.LimitsForRAM(ipfs.StickRAM)
	cl := &ipfs.Client{Gateway: srv.URL, CAR: true, Limits: lim, Timeout: time.Minute}
	_, err := cl.Fetch(context.Background(), root)
	if !errors.Is(err, ipfs.ErrLimit) || !strings.Contains(err.Error(), "file of 209715200 bytes, limit 134217728") {
		t.Fatalf("Fetch = %v, want refused: file over the limit", err)
	}
	srv.CloseClientConnections()
	if n := served.Load(); n > 32<<20 {
		t.Fatalf("the box served %d MiB before the refusal", n>>20)
	}
}

// Limits follow the RAM: a quarter for the file, a thirty-second for what
// is held besides, blocks of at most 2 MiB.
func TestLimitsForRAM(t *testing.T) {
	for _, tc := range []struct {
		ram  uint64
		want ipfs.Limits
	}{
		{512 << 20, ipfs.Limits{MaxBytes: 128 << 20, MaxBlockSize: 2 << 20, MaxBlocks: 1 << 16, MaxNodes: 1 << 16, Window: 16 << 20}},
		{64 << 20, ipfs.Limits{MaxBytes: 16 << 20, MaxBlockSize: 1 << 20, MaxBlocks: 1 << 16, MaxNodes: 1 << 16, Window: 2 << 20}},
		{0, ipfs.Limits{MaxBytes: 4 << 20, MaxBlockSize: 256 << 10, MaxBlocks: 1 << 16, MaxNodes: 1 << 16, Window: 512 << 10}},
	} {
		if got := ipfs.LimitsForRAM(tc.ram); got != tc.want {
			t.Errorf("LimitsForRAM(%d MiB) = %+v, want %+v", tc.ram>>20, got, tc.want)
		}
	}
	if ipfs.DefaultLimits != ipfs.LimitsForRAM(ipfs.StickRAM) {
		t.Errorf("DefaultLimits %+v are not the stick's", ipfs.DefaultLimits)
	}
}
