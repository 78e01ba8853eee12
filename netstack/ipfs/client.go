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

func (cl *Client) limits() Limits { return cl.Limits.withDefaults() }

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
	// Cancelled by the caller (an API client that went away): no limit,
	// and context.Canceled for errors.Is.
	if errors.Is(ctx.Err(), context.Canceled) && err != nil && !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrLimit) {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s: cancelled: %w", what, err)
		}
		return fmt.Errorf("%s: cancelled: %w: %v", what, context.Canceled, err)
	}
	// Out of time (the Timeout, or the caller's deadline): a limit, and
	// the context's error for errors.Is.
	if ctx.Err() != nil && err != nil && !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrLimit) {
		if errors.Is(err, ctx.Err()) {
			return fmt.Errorf("%w: %s: %w", ErrLimit, what, err)
		}
		return fmt.Errorf("%w: %s: %w: %v", ErrLimit, what, ctx.Err(), err)
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

// fetchCAR fetches the CAR of c's whole DAG and reassembles the file as
// the blocks arrive.
func (cl *Client) fetchCAR(ctx context.Context, c cid.Cid) ([]byte, error) {
	lim := cl.limits()
	var out []byte
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
		a := newAssembler(c, lim)
		src := &carSource{cr: cr, a: a, lim: lim, window: map[cid.Cid][]byte{}}
		out, err = a.run(ctx, src)
		if src.drops > 0 {
			cl.log().Warn("dropped blocks unrelated to the DAG", "cid", c.String(), "blocks", src.drops, "bytes", src.dropped)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
	if t := c.Type(); t != CodecRaw && t != CodecDagPB {
		return nil, fmt.Errorf("%w: %s has codec %#x", ErrCodec, c, t)
	}
	var data []byte
	var err error
	if cl.CAR {
		data, err = cl.fetchCAR(ctx, c)
	} else {
		data, err = cl.fetchBlocks(ctx, c)
	}
	if err != nil && !strings.Contains(err.Error(), c.String()) {
		// The walk's errors name the block that failed; the caller
		// needs the content it asked for too.
		err = fmt.Errorf("fetch %s: %w", c, err)
	}
	return data, err
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
	root, _, err := add(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s: rebuilding its DAG: %w", ErrLimit, c, err)
	}
	if !root.Equals(c) {
		return nil, errRebuildMismatch
	}
	return data, nil
}

// fetchBlocks walks c's DAG depth first, getting the blocks one by one
// (each verified by Get), a few ahead in parallel.
func (cl *Client) fetchBlocks(ctx context.Context, root cid.Cid) ([]byte, error) {
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
	a := newAssembler(root, lim)
	return a.run(ctx, &getSource{cl: cl, a: a, lim: lim, par: par, window: map[cid.Cid][]byte{}})
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
	if len(data) > cl.limits().MaxBlockSize {
		return cid.Undef, fmt.Errorf("%w: block of %d bytes, limit %d", ErrLimit, len(data), cl.limits().MaxBlockSize)
	}
	want := sumCID(codec, data)
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
