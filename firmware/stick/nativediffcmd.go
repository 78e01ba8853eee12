package main

import (
	"context"
	"fmt"
	"io"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/runtime/native"
	"github.com/teastick/teastick/runtime/nativediff"
)

func init() {
	registered["nativediff"] = command{
		help: "NAME=CID ...: the native engine's differential suite (runtime/nativediff) on the modules named, fetched from the box: each case in the interpreter and from this image's translations, which must agree",
		run:  cmdNativeDiff,
	}
}

// cmdNativeDiff fetches the suite's modules from the box by CID (each
// block verified, as every fetch) and runs every case whose module it was
// given, in runtimes of its own (nothing it loads is served, measured or
// reachable through the API), one case at a time. A case whose module
// the runtime accepts but this image holds no translation of fails: the
// suite is for images built with the suite's translations
// (TestStickNativeDifferential). The console waits for it.
func cmdNativeDiff(w io.Writer, args []string) {
	if len(args) == 0 {
		fmt.Fprintln(w, "nativediff: usage: nativediff NAME=CID ... (names: "+strings.Join(nativediff.Names(), " ")+")")
		return
	}
	if benchFetch == nil {
		fmt.Fprintln(w, "nativediff: FAILED: no box to fetch modules from")
		return
	}
	known := map[string]bool{}
	for _, n := range nativediff.Names() {
		known[n] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	modules := map[string][]byte{}
	for _, a := range args {
		name, s, ok := strings.Cut(a, "=")
		if !ok || !known[name] {
			fmt.Fprintf(w, "nativediff: usage: %q is not NAME=CID with a NAME of the suite\n", a)
			return
		}
		c, err := cid.Decode(s)
		if err != nil {
			fmt.Fprintf(w, "nativediff: bad CID for %s: %v\n", name, err)
			return
		}
		b, err := benchFetch(ctx, c)
		if err != nil {
			fmt.Fprintf(w, "nativediff: FAILED: fetch %s %s: %v\n", name, c, err)
			return
		}
		modules[name] = b
	}
	fmt.Fprintf(w, "nativediff: %d modules fetched, %d translations in this image, on %s/%s\n",
		len(modules), len(native.All()), goruntime.GOOS, goruntime.GOARCH)
	start := time.Now()
	var ran, failed, skipped int
	for _, c := range nativediff.Cases() {
		m, ok := modules[c.Module]
		if !ok {
			skipped++
			continue
		}
		ran++
		t0 := time.Now()
		res := nativediff.Run(ctx, c, m, nil)
		d := time.Since(t0).Milliseconds()
		grants := ""
		if len(c.Grants) > 0 {
			grants = " granted " + strings.Join(c.Grants, ",")
		}
		switch {
		case len(res.Mismatches) > 0:
			failed++
			for _, mm := range res.Mismatches {
				fmt.Fprintf(w, "nativediff: %s%s FAILED: %s\n", c.Module, grants, mm)
			}
		case res.Refused != nil:
			fmt.Fprintf(w, "nativediff: %s%s refused alike in %d ms: %v\n", c.Module, grants, d, res.Refused)
		default:
			fmt.Fprintf(w, "nativediff: %s%s agrees: %d calls in %d ms (slowest finished call %d ms, deadline %d ms)\n",
				c.Module, grants, res.Calls, d, res.Slowest.Milliseconds(), res.Deadline.Milliseconds())
		}
	}
	fmt.Fprintf(w, "nativediff: done: %d cases, %d failed, %d skipped (no module given), in %d ms\n",
		ran, failed, skipped, time.Since(start).Milliseconds())
}
