package ipfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// Client talks to the box's IPFS node: its trustless gateway for reads and
// its RPC API for writes.
type Client struct {
	// Gateway is the gateway's base URL, e.g. http://10.0.0.2:8080.
	Gateway string
	// API is the RPC API's base URL, e.g. http://10.0.0.2:5001.
	API string
	// HTTP is the HTTP client (default: one with no overall timeout; each
	// fetch is bounded by Timeout).
	HTTP *http.Client
	// Limits bound each fetch (default DefaultLimits).
	Limits Limits
	// Timeout bounds one fetch or put, retries included (default 2 min).
	Timeout time.Duration
	// CAR makes Fetch ask for the whole DAG as one CAR response instead of
	// block by block (one request: better on slow links; kubo serves CARs
	// about 3x slower than block by block in parallel on loopback).
	CAR bool
	// Parallel is how many blocks Fetch asks for at once (default 8).
	Parallel int
	// Retries on connection faults (default 3), with exponential backoff
	// from Backoff (default 200 ms).
	Retries int
	Backoff time.Duration
	Log     *slog.Logger
}

// BlockStore is what the actor runtime needs from the box: verified blocks
// in and out.
type BlockStore interface {
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	Put(ctx context.Context, codec uint64, data []byte) (cid.Cid, error)
}

var _ BlockStore = (*Client)(nil)

func (cl *Client) limits() Limits {
	if cl.Limits == (Limits{}) {
		return DefaultLimits
	}
	return cl.Limits
}

func (cl *Client) http() *http.Client {
	if cl.HTTP != nil {
		return cl.HTTP
	}
	return http.DefaultClient
}

func (cl *Client) log() *slog.Logger {
	if cl.Log != nil {
		return cl.Log
	}
	return slog.Default().With("component", "net")
}

// retryable reports connection faults worth another try; verification
// failures and refusals are final.
func retryable(err error) bool {
	var cf connFault
	return errors.As(err, &cf)
}

// connFault marks an error reaching the node (connection refused, reset,
// closed before an answer): worth a retry, unlike an answer that failed
// verification.
type connFault struct{ err error }

func (c connFault) Error() string { return c.err.Error() }
func (c connFault) Unwrap() error { return c.err }

// withRetry runs f, retrying connection faults with backoff.
func (cl *Client) withRetry(ctx context.Context, what string, f func(ctx context.Context) error) error {
	timeout := cl.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	retries, backoff := cl.Retries, cl.Backoff
	if retries == 0 {
		retries = 3
	}
	if backoff == 0 {
		backoff = 200 * time.Millisecond
	}
	var err error
	for attempt := 0; ; attempt++ {
		err = f(ctx)
		if err == nil || !retryable(err) || attempt == retries || ctx.Err() != nil {
			break
		}
		cl.log().Warn("retrying", "what", what, "attempt", attempt+1, "err", err)
		select {
		case <-time.After(backoff << attempt):
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil && err != nil && !errors.Is(err, ErrMismatch) {
		return fmt.Errorf("%w: %s: %v", ErrLimit, what, err)
	}
	return err
}

// gateway asks the gateway for c (query and Accept select the response
// format). A failure to reach it is a connFault, worth a retry.
func (cl *Client) gateway(ctx context.Context, c cid.Cid, query, accept string) (*http.Response, error) {
	u := strings.TrimRight(cl.Gateway, "/") + "/ipfs/" + c.String() + query
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := cl.http().Do(req)
	if err != nil {
		return nil, connFault{err}
	}
	return resp, nil
}

// car fetches the CAR of c's whole DAG and returns its verified blocks.
func (cl *Client) car(ctx context.Context, c cid.Cid) (map[cid.Cid][]byte, error) {
	lim := cl.limits()
	var blocks map[cid.Cid][]byte
	err := cl.withRetry(ctx, "fetch "+c.String(), func(ctx context.Context) error {
		resp, err := cl.gateway(ctx, c, "?format=car&dag-scope=all", "application/vnd.ipld.car;version=1;order=dfs;dups=n")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("%w: %s: %s: %s", ErrGateway, c, resp.Status, bytes.TrimSpace(msg))
		}
		cr, err := NewCARReader(resp.Body, lim)
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		if len(cr.Roots) != 1 || !cr.Roots[0].Equals(c) {
			return fmt.Errorf("%w: %s: CAR roots %v", ErrMalformed, c, cr.Roots)
		}
		blocks = map[cid.Cid][]byte{}
		var total int64
		for {
			bc, data, err := cr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("fetch %s: %w", c, err)
			}
			total += int64(len(data))
			if total > lim.MaxBytes+int64(lim.MaxBlocks)*1024 {
				return fmt.Errorf("%w: fetch %s: response over %d bytes", ErrLimit, c, lim.MaxBytes)
			}
			blocks[bc] = data
		}
	})
	return blocks, err
}

// Fetch returns the content c names: the block itself for a raw CID, the
// reassembled file for a UnixFS file. Every block is verified against its
// CID before its bytes are used, and nothing is returned unless all of it
// verified.
func (cl *Client) Fetch(ctx context.Context, c cid.Cid) ([]byte, error) {
	if !cl.CAR {
		// Most content on the box was added as `ipfs add --cid-version 1
		// --raw-leaves` (teactl publishes so): download the bytes plainly
		// and rebuild that DAG; if its root is c, every block is what c
		// names. Otherwise (other chunking, or tampering) walk the DAG
		// block by block, which verifies each block on its own.
		if data, err := cl.fetchRebuilt(ctx, c); err == nil {
			return data, nil
		} else if !errors.Is(err, errRebuildMismatch) {
			return nil, err
		}
	}
	var blocks map[cid.Cid][]byte
	var err error
	if cl.CAR {
		blocks, err = cl.car(ctx, c)
	} else {
		blocks, err = cl.walk(ctx, c)
	}
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if size := announcedSize(c, blocks); size > 0 && size <= uint64(cl.limits().MaxBytes) {
		out.Grow(int(size))
	}
	if err := assemble(c, blocks, &out, cl.limits(), 0); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// errRebuildMismatch means the plainly downloaded bytes do not rebuild to
// the CID asked for; Fetch then verifies block by block.
var errRebuildMismatch = errors.New("ipfs: content does not rebuild to its CID with ipfs add's defaults")

// fetchRebuilt downloads c's content plainly and checks that the DAG `ipfs
// add --cid-version 1 --raw-leaves` builds from it has root c.
func (cl *Client) fetchRebuilt(ctx context.Context, c cid.Cid) ([]byte, error) {
	if c.Type() != CodecRaw && c.Type() != CodecDagPB || c.Prefix().Version != 1 {
		return nil, errRebuildMismatch
	}
	lim := cl.limits()
	var data []byte
	err := cl.withRetry(ctx, "fetch "+c.String(), func(ctx context.Context) error {
		resp, err := cl.gateway(ctx, c, "", "")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			// not a file the gateway renders (e.g. a directory): let the
			// block walk say what it is
			return errRebuildMismatch
		}
		if resp.ContentLength > lim.MaxBytes {
			return fmt.Errorf("%w: fetch %s: %d bytes, limit %d", ErrLimit, c, resp.ContentLength, lim.MaxBytes)
		}
		var buf bytes.Buffer
		if resp.ContentLength > 0 {
			// ReadFrom wants MinRead bytes free before each read: without
			// them the last read would double the buffer (32 MiB for a
			// 16 MiB file, a copy of all of it, on a stick with 512 MiB).
			buf.Grow(int(resp.ContentLength) + bytes.MinRead)
		}
		n, err := buf.ReadFrom(io.LimitReader(resp.Body, lim.MaxBytes+1))
		if err != nil {
			return connFault{err}
		}
		if n > lim.MaxBytes {
			return fmt.Errorf("%w: fetch %s: over %d bytes", ErrLimit, c, lim.MaxBytes)
		}
		data = buf.Bytes()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if root, _ := Add(data); !root.Equals(c) {
		return nil, errRebuildMismatch
	}
	return data, nil
}

// walk fetches c's DAG level by level, each level's blocks in parallel,
// each verified by Get.
func (cl *Client) walk(ctx context.Context, root cid.Cid) (map[cid.Cid][]byte, error) {
	lim := cl.limits()
	timeout := cl.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	par := cl.Parallel
	if par == 0 {
		par = 8
	}
	blocks := map[cid.Cid][]byte{}
	var total int64
	level := []cid.Cid{root}
	for depth := 0; len(level) > 0; depth++ {
		if depth > 32 {
			return nil, fmt.Errorf("%w: fetch %s: DAG deeper than 32", ErrLimit, root)
		}
		if len(blocks)+len(level) > lim.MaxBlocks {
			return nil, fmt.Errorf("%w: fetch %s: more than %d blocks", ErrLimit, root, lim.MaxBlocks)
		}
		for _, c := range level {
			if c.Type() != CodecRaw && c.Type() != CodecDagPB {
				return nil, fmt.Errorf("%w: %s has codec %#x", ErrCodec, c, c.Type())
			}
		}
		got, err := cl.getMany(ctx, level, par)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", root, err)
		}
		var next []cid.Cid
		for i, c := range level {
			blocks[c] = got[i]
			total += int64(len(got[i]))
			if total > lim.MaxBytes+int64(lim.MaxBlocks)*1024 {
				return nil, fmt.Errorf("%w: fetch %s: over %d bytes", ErrLimit, root, lim.MaxBytes)
			}
			if c.Type() != CodecDagPB {
				continue
			}
			n, err := decodePBNode(got[i])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c, err)
			}
			for _, l := range n.Links {
				if _, seen := blocks[l.Hash]; !seen {
					next = append(next, l.Hash)
				}
			}
		}
		level = next
	}
	return blocks, nil
}

// getMany gets blocks with par requests at a time; the first error wins.
func (cl *Client) getMany(ctx context.Context, cids []cid.Cid, par int) ([][]byte, error) {
	out := make([][]byte, len(cids))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	next := make(chan int)
	for w := 0; w < min(par, len(cids)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b, err := cl.Get(ctx, cids[i])
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				out[i] = b
			}
		}()
	}
	for i := range cids {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}

// announcedSize is the file size the root node claims (checked later by
// assemble), to size the output once.
func announcedSize(c cid.Cid, blocks map[cid.Cid][]byte) uint64 {
	if c.Type() != CodecDagPB {
		return uint64(len(blocks[c]))
	}
	n, err := decodePBNode(blocks[c])
	if err != nil {
		return 0
	}
	u, err := decodeUnixFS(n.Data)
	if err != nil || !u.HasSize {
		return 0
	}
	return u.FileSize
}

// assemble writes the file under c, walking links in order.
func assemble(c cid.Cid, blocks map[cid.Cid][]byte, out *bytes.Buffer, lim Limits, depth int) error {
	if depth > 32 {
		return fmt.Errorf("%w: %s: DAG deeper than 32", ErrLimit, c)
	}
	data, ok := blocks[c]
	if !ok {
		return fmt.Errorf("%w: %s", ErrMissing, c)
	}
	switch c.Type() {
	case CodecRaw:
		if int64(out.Len()+len(data)) > lim.MaxBytes {
			return fmt.Errorf("%w: %s: file over %d bytes", ErrLimit, c, lim.MaxBytes)
		}
		out.Write(data)
		return nil
	case CodecDagPB:
		n, err := decodePBNode(data)
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		u, err := decodeUnixFS(n.Data)
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		if u.Type != unixfsFile && u.Type != unixfsRaw {
			return fmt.Errorf("%w: %s is UnixFS type %d", ErrNotFile, c, u.Type)
		}
		start := out.Len()
		if int64(out.Len()+len(u.Data)) > lim.MaxBytes {
			return fmt.Errorf("%w: %s: file over %d bytes", ErrLimit, c, lim.MaxBytes)
		}
		out.Write(u.Data)
		for _, l := range n.Links {
			if err := assemble(l.Hash, blocks, out, lim, depth+1); err != nil {
				return err
			}
		}
		if u.HasSize && uint64(out.Len()-start) != u.FileSize {
			return fmt.Errorf("%w: %s: file size %d, content %d", ErrMalformed, c, u.FileSize, out.Len()-start)
		}
		return nil
	}
	return fmt.Errorf("%w: %s has codec %#x", ErrCodec, c, c.Type())
}

// Get returns the verified block c.
func (cl *Client) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	var data []byte
	err := cl.withRetry(ctx, "get "+c.String(), func(ctx context.Context) error {
		resp, err := cl.gateway(ctx, c, "?format=raw", "application/vnd.ipld.raw")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: %s: %s", ErrMissing, c, resp.Status)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w: %s: %s", ErrGateway, c, resp.Status)
		}
		max := cl.limits().MaxBlockSize
		if resp.ContentLength > int64(max) {
			return fmt.Errorf("%w: block %s of %d bytes, limit %d", ErrLimit, c, resp.ContentLength, max)
		}
		var b []byte
		if resp.ContentLength >= 0 {
			// one allocation of the announced size; a body that is
			// shorter fails, a longer one fails verification
			b = make([]byte, resp.ContentLength)
			if _, err := io.ReadFull(resp.Body, b); err != nil {
				return fmt.Errorf("%w: block %s: %v", ErrMalformed, c, err)
			}
		} else {
			if b, err = io.ReadAll(io.LimitReader(resp.Body, int64(max)+1)); err != nil {
				return err
			}
			if len(b) > max {
				return fmt.Errorf("%w: block %s over %d bytes", ErrLimit, c, max)
			}
		}
		if err := Verify(c, b); err != nil {
			return err
		}
		data = b
		return nil
	})
	return data, err
}

// Put stores data as one block with the given codec on the node and
// returns its CID, after checking the node stored it under the CID
// computed here.
func (cl *Client) Put(ctx context.Context, codec uint64, data []byte) (cid.Cid, error) {
	want := sumCID(codec, data)
	if len(data) > cl.limits().MaxBlockSize {
		return cid.Undef, fmt.Errorf("%w: block of %d bytes", ErrLimit, len(data))
	}
	codecName := map[uint64]string{CodecRaw: "raw", CodecDagPB: "dag-pb"}[codec]
	if codecName == "" {
		return cid.Undef, fmt.Errorf("%w: %#x", ErrCodec, codec)
	}
	err := cl.withRetry(ctx, "put "+want.String(), func(ctx context.Context) error {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", "block")
		fw.Write(data)
		mw.Close()
		u := strings.TrimRight(cl.API, "/") + "/api/v0/block/put?cid-codec=" + url.QueryEscape(codecName) + "&mhtype=sha2-256&pin=false"
		req, err := http.NewRequestWithContext(ctx, "POST", u, &body)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := cl.http().Do(req)
		if err != nil {
			return connFault{err}
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("%w: put: %s: %s", ErrGateway, resp.Status, bytes.TrimSpace(msg))
		}
		var r struct{ Key string }
		if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&r); err != nil {
			return fmt.Errorf("%w: put answer: %v", ErrGateway, err)
		}
		got, err := cid.Decode(r.Key)
		if err != nil || !got.Equals(want) {
			return fmt.Errorf("%w: computed %s, node says %q", ErrCIDChanged, want, r.Key)
		}
		return nil
	})
	if err != nil {
		return cid.Undef, err
	}
	return want, nil
}
