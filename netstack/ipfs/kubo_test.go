package ipfs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
)

func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131 + i/4099)
	}
	return b
}

// kuboAdd adds data through the node's RPC API as `ipfs add --cid-version
// 1 --raw-leaves` does and returns the CID kubo computed.
func kuboAdd(t testing.TB, node *kubotest.Node, data []byte) cid.Cid {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "data")
	fw.Write(data)
	mw.Close()
	resp, err := http.Post(node.API+"/api/v0/add?cid-version=1&raw-leaves=true&pin=false&quieter=true", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Hash string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	c, err := cid.Decode(r.Hash)
	if err != nil {
		t.Fatalf("kubo answered %q: %v", r.Hash, err)
	}
	return c
}

func TestCIDsMatchKubo(t *testing.T) {
	node := kubotest.Start(t)
	for _, n := range []int{0, 1, ipfs.ChunkSize, ipfs.ChunkSize + 1, 5*ipfs.ChunkSize + 7, ipfs.MaxLinks*ipfs.ChunkSize + 1} {
		data := content(n)
		want := kuboAdd(t, node, data)
		got, _ := ipfs.Add(data)
		if !got.Equals(want) {
			t.Errorf("%d bytes: computed %s, kubo %s", n, got, want)
		} else {
			t.Logf("%d bytes: %s", n, got)
		}
	}
}

func TestFetchAndPutWithKubo(t *testing.T) {
	node := kubotest.Start(t)
	cl := &ipfs.Client{Gateway: node.Gateway, API: node.API}
	car := &ipfs.Client{Gateway: node.Gateway, API: node.API, CAR: true}
	ctx := context.Background()
	// the last file repeats one leaf 8 times: kubo's CAR (dups=n) sends it
	// once
	for _, data := range [][]byte{content(10), content(ipfs.ChunkSize), content(3*ipfs.ChunkSize + 5), make([]byte, 8*ipfs.ChunkSize+3)} {
		c := kuboAdd(t, node, data)
		for _, cl := range []*ipfs.Client{cl, car} {
			got, err := cl.Fetch(ctx, c)
			if err != nil {
				t.Fatalf("%d bytes (CAR %v): %v", len(data), cl.CAR, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%d bytes (CAR %v): fetched content differs", len(data), cl.CAR)
			}
		}
	}
	block := []byte("a result the stick computed")
	c, err := cl.Put(ctx, ipfs.CodecRaw, block)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cl.Get(ctx, c)
	if err != nil || !bytes.Equal(got, block) {
		t.Fatalf("Get after Put: %q, %v", got, err)
	}
}

// BenchmarkVerifiedFetch compares fetching a 16 MiB file verified (the
// default: the bytes downloaded plainly and their DAG rebuilt, or block by
// block; and as one CAR) with downloading the same bytes plainly from the
// same gateway into memory, as Fetch returns them, in one run
// (verified/plain, the figure). verified/discarded compares with a
// download that keeps nothing: the difference is the cost of 16 MiB of
// fresh memory, not of verification.
func BenchmarkVerifiedFetch(b *testing.B) {
	node := kubotest.Start(b)
	data := content(16 << 20)
	c := kuboAdd(b, node, data)
	blocks := &ipfs.Client{Gateway: node.Gateway, API: node.API}
	car := &ipfs.Client{Gateway: node.Gateway, API: node.API, CAR: true}
	ctx := context.Background()
	var byBlock, byCAR, plain, discard time.Duration
	timed := func(dst *time.Duration, f func() (int, error)) {
		start := time.Now()
		n, err := f()
		*dst += time.Since(start)
		if err != nil || n != len(data) {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
	fetch := func(cl *ipfs.Client) func() (int, error) {
		return func() (int, error) {
			got, err := cl.Fetch(ctx, c)
			return len(got), err
		}
	}
	for b.Loop() {
		timed(&byBlock, fetch(blocks))
		timed(&byCAR, fetch(car))
		timed(&plain, func() (int, error) {
			resp, err := http.Get(node.Gateway + "/ipfs/" + c.String())
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			buf.Grow(int(resp.ContentLength) + bytes.MinRead)
			n, err := buf.ReadFrom(resp.Body)
			return int(n), err
		})
		timed(&discard, func() (int, error) {
			resp, err := http.Get(node.Gateway + "/ipfs/" + c.String())
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			return int(n), err
		})
	}
	b.ReportMetric(float64(byBlock)/float64(plain), "verified/plain")
	b.ReportMetric(float64(byCAR)/float64(plain), "verified-car/plain")
	b.ReportMetric(float64(byBlock)/float64(discard), "verified/discarded")
	b.ReportMetric(float64(len(data))*float64(b.N)/byBlock.Seconds()/1e6, "verified-MB/s")
}
