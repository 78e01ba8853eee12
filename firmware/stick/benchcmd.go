package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/firmware/receipt"
	actorruntime "github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/benchmode"
)

// benchFetch returns verified content by CID from the box; main sets it
// where it makes its box client. Nil: no box, and bench says so.
var benchFetch func(ctx context.Context, c cid.Cid) ([]byte, error)

func init() {
	registered["bench"] = command{
		help: "[native] ECHO KERNEL NOTARY WORDCOUNT [EDGE]: CIDs of the example actors (and edge.wat) on the box: measure the actor runtime (bench: lines); native: run them from the image's translations where it holds them",
		run:  cmdBench,
	}
}

// cmdBench fetches the benchmark's actors from the box and runs bench mode
// (runtime/benchmode) in a runtime of its own: what it loads is never
// served, measured or reachable through the API, and has no grant but
// crypto.sha256 (the notary's hash). The console waits for it.
func cmdBench(w io.Writer, args []string) {
	var opts benchmode.Options
	if len(args) > 0 && args[0] == "native" {
		opts.Native, args = true, args[1:]
	}
	if len(args) < 4 || len(args) > 5 {
		fmt.Fprintln(w, "bench: usage: bench [native] ECHO_CID KERNEL_CID NOTARY_CID WORDCOUNT_CID [EDGE_CID]")
		return
	}
	if benchFetch == nil {
		fmt.Fprintln(w, "bench: FAILED: no box to fetch actors from")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var mods benchmode.Modules
	for i, m := range []*benchmode.Module{&mods.Echo, &mods.Kernel, &mods.Notary, &mods.Wordcount, &mods.Edge}[:len(args)] {
		c, err := cid.Decode(args[i])
		if err != nil {
			fmt.Fprintf(w, "bench: bad CID %q: %v\n", args[i], err)
			return
		}
		start := time.Now()
		b, err := benchFetch(ctx, c)
		if err != nil {
			fmt.Fprintf(w, "bench: FAILED: fetch %s: %v\n", c, err)
			return
		}
		fmt.Fprintf(w, "bench: fetched %s %d bytes in %d ms\n", c, len(b), time.Since(start).Milliseconds())
		*m = benchmode.Module{CID: c, Code: b}
	}
	if err := benchReceipt(w); err != nil {
		fmt.Fprintf(w, "bench: FAILED: receipt: %v\n", err)
		return
	}
	rt := actorruntime.New(actorruntime.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer rt.Close()
	if err := benchmode.RunOptions(ctx, w, rt, mods, opts); err != nil {
		fmt.Fprintln(w, "bench: FAILED: see the figures above")
	}
}

// benchReceipt prices what every invocation through the API adds to the
// actor's call: signing its receipt with a result key of its own (the
// stick's is never used here), for a 64-byte input and output.
func benchReceipt(w io.Writer) error {
	const n = 50
	rs, err := receipt.NewSigner(nil)
	if err != nil {
		return err
	}
	p := bytes.Repeat([]byte("x"), 64)
	start := time.Now()
	for range n {
		if _, err := rs.Sign("echo", "bafybeibench", "echo", p, p, 1); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "bench: receipt-sign %d us/op (n=%d)\n", time.Since(start).Microseconds()/n, n)
	return nil
}
