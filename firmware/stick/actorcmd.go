package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/tpm/measure"
)

// actors runs WebAssembly actors on the stick: fetched from the box by CID
// (verified), measured into PCR 10 with their grants, then loaded. Until
// the stick loads its manifest's actors at boot (the API issue), the
// operator console loads them.
type actors struct {
	rt *runtime.Runtime
	t  *trust
	// fetch returns verified content by CID from the box.
	fetch func(ctx context.Context, c cid.Cid) ([]byte, error)
}

func (a *actors) commands() map[string]command {
	return map[string]command{
		"load":   {help: "NAME CID [GRANT,...]: fetch an actor from the box, measure it into PCR 10, serve it", run: a.cmdLoad},
		"invoke": {help: "NAME OPERATION [PAYLOAD]: call an actor (payload as text; 0x... for hex)", run: a.cmdInvoke},
		"actors": {help: "list the actors served, with their counters", run: a.cmdActors},
	}
}

func (a *actors) cmdLoad(w io.Writer, args []string) {
	if len(args) < 2 || len(args) > 3 {
		fmt.Fprintln(w, "load: usage: load NAME CID [GRANT,...]")
		return
	}
	// Fail closed: an actor nobody can attest is never served.
	if err := a.t.measured(); err != nil {
		fmt.Fprintf(w, "load: REFUSED: %v: the stick serves no actors\n", err)
		return
	}
	c, err := cid.Decode(args[1])
	if err != nil {
		fmt.Fprintf(w, "load: bad CID: %v\n", err)
		return
	}
	var grants []string
	if len(args) == 3 {
		grants = strings.Split(args[2], ",")
	}
	start := time.Now()
	module, err := a.fetch(context.Background(), c)
	if err != nil {
		fmt.Fprintf(w, "load: FAILED: fetch %s: %v\n", c, err)
		return
	}
	fetched := time.Since(start)
	p, err := a.rt.Prepare(context.Background(), runtime.Spec{Name: args[0], CID: c, Grants: grants, Module: module})
	if err != nil {
		fmt.Fprintf(w, "load: FAILED: %v\n", err)
		return
	}
	// Measure after the checks and before the actor can serve: the event
	// log names exactly the actors that served.
	if err := a.t.m.MeasureActor(measure.PCRRuntime, measure.Actor{Name: args[0], CID: c, Capabilities: grants}); err != nil {
		p.Abort()
		fmt.Fprintf(w, "load: FAILED: measure: %v\n", err)
		return
	}
	if err := p.Commit(); err != nil {
		fmt.Fprintf(w, "load: FAILED: %v\n", err)
		return
	}
	in, _ := a.rt.Actor(args[0])
	fmt.Fprintf(w, "load: %s %s %d bytes, fetched in %d ms, loaded in %d ms (%s), measured into PCR %d, grants [%s]\n",
		args[0], c, len(module), fetched.Milliseconds(), (time.Since(start) - fetched).Milliseconds(), in.Engine,
		measure.PCRRuntime, strings.Join(grants, ","))
}

func (a *actors) cmdInvoke(w io.Writer, args []string) {
	if len(args) < 2 {
		fmt.Fprintln(w, "invoke: usage: invoke NAME OPERATION [PAYLOAD]")
		return
	}
	payload := []byte(strings.Join(args[2:], " "))
	if s := string(payload); strings.HasPrefix(s, "0x") {
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			fmt.Fprintf(w, "invoke: bad hex payload: %v\n", err)
			return
		}
		payload = b
	}
	start := time.Now()
	out, err := a.rt.Invoke(context.Background(), args[0], args[1], payload)
	el := time.Since(start)
	if err != nil {
		fmt.Fprintf(w, "invoke: %s.%s FAILED in %d us: %v\n", args[0], args[1], el.Microseconds(), err)
		return
	}
	shown := string(out)
	if !utf8.Valid(out) || strings.ContainsAny(shown, "\n\r\x00") {
		shown = "0x" + hex.EncodeToString(out)
	}
	fmt.Fprintf(w, "invoke: %s.%s %d bytes in %d us: %s\n", args[0], args[1], len(out), el.Microseconds(), shown)
}

func (a *actors) cmdActors(w io.Writer, _ []string) {
	list := a.rt.Actors()
	fmt.Fprintf(w, "actors: %d served\n", len(list))
	for _, in := range list {
		fmt.Fprintf(w, "actors: %s %s %s calls=%d failures=%d faults=%d busy=%d denied=%v\n",
			in.Name, in.CID, in.Engine, in.Stats.Calls, in.Stats.Failures, in.Stats.Faults, in.Stats.Busy, in.Stats.Denied)
	}
}
