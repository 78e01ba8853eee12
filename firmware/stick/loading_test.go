//go:build !tamago

package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/verify"
)

// faultyGateway is a FAULT-INJECTION proxy in front of kubo's gateway:
// requests naming a stalled CID wait until it is released (or the client
// gives up), requests naming a failing CID get 502 until it is released;
// everything else passes through.
type faultyGateway struct {
	mu      sync.Mutex
	stalled map[string]chan struct{}
	failing map[string]bool
}

func (g *faultyGateway) start(t *testing.T, gateway string) string {
	t.Helper()
	target, err := url.Parse(gateway)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		var stall chan struct{}
		fail := false
		for c, ch := range g.stalled {
			if strings.Contains(r.URL.Path, c) {
				stall = ch
			}
		}
		for c := range g.failing {
			fail = fail || strings.Contains(r.URL.Path, c)
		}
		g.mu.Unlock()
		if fail {
			http.Error(w, "faulty box: 502", http.StatusBadGateway)
			return
		}
		if stall != nil {
			select {
			case <-stall:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

func (g *faultyGateway) release(c string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.stalled[c]; ok {
		close(ch)
		delete(g.stalled, c)
	}
	delete(g.failing, c)
}

// withSection is module with a custom section named tag appended
// (WebAssembly core spec 5.5.3): the same actor under another CID.
func withSection(module []byte, tag string) []byte {
	section := append([]byte{byte(len(tag))}, tag...)
	out := append([]byte(nil), module...)
	return append(append(out, 0, byte(len(section))), section...)
}

// TestHostedIndependentLoading: the hosted stick with a real kubo behind a
// faulty gateway and swtpm. One actor's blocks stall, another's fail: the
// healthy actor serves while the stalled one loads, and attests with PCR 9
// still open; the failing one is retried until the box answers, and
// serves; once the stalled one comes, READY, and the attestation verifies
// against the manifest's CIDs and refuses a reference without the retried
// one.
func TestHostedIndependentLoading(t *testing.T) {
	e := newE2E(t)
	ctx := context.Background()
	edge := actortest.Wat(t, "edge")
	slow := e.node.Publish(t, withSection(edge, "slow")).String()
	flaky := e.node.Publish(t, withSection(edge, "flaky")).String()
	g := &faultyGateway{stalled: map[string]chan struct{}{slow: make(chan struct{})}, failing: map[string]bool{flaky: true}}
	box := g.start(t, e.node.Gateway)
	v1 := e.manifest(t, 1, e.gov,
		manifest.Actor{Name: "slow", CID: slow},
		manifest.Actor{Name: "echo", CID: e.echo, Grants: []string{"log"}},
		manifest.Actor{Name: "flaky", CID: flaky},
	)
	st := startStick(t, append(e.args(box), "-manifest", writeFile(t, v1))...)
	c := &client.Client{URL: st.URL}
	status := func() map[string]core.ActorStatus {
		t.Helper()
		s, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]core.ActorStatus{}
		for _, a := range s.Actors {
			out[a.Name] = a
		}
		return out
	}
	waitStatus := func(what string, cond func(map[string]core.ActorStatus) bool) map[string]core.ActorStatus {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			s := status()
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s; status %+v", what, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	s := waitStatus("echo serving and flaky waiting to retry", func(s map[string]core.ActorStatus) bool {
		return s["echo"].State == core.StateServing && s["flaky"].NextTryMS != nil
	})
	if s["slow"].State != core.StateLoading {
		t.Errorf("slow, stalled by the box: %+v", s["slow"])
	}
	if f := s["flaky"]; f.State != core.StateFailed || !strings.Contains(f.Error, "502") {
		t.Errorf("flaky, failed by the box: %+v", f)
	}
	if res, err := c.Invoke(ctx, "echo", "echo", []byte("beside a stalled actor")); err != nil || string(res.Output) != "beside a stalled actor" {
		t.Errorf("echo while slow loads: %v", err)
	}
	if _, err := c.Invoke(ctx, "slow", "echo", nil); apiCode(err) != "503 actor_not_served" {
		t.Errorf("slow while it loads: %v", err)
	}
	ak := enrol(t, c, e.roots)
	ref := &verify.Reference{Events: verify.BootEvents(e.image, e.config, v1), Boot: v1}
	if _, v := attestVerify(t, c, ak, ref); !v.OK() || !v.BootOpen {
		t.Errorf("attestation while slow loads (BootOpen %v):\n%s", v.BootOpen, v)
	}

	st.WaitFor("actor: flaky attempt 2 FAILED: ", 2*time.Minute)
	g.release(flaky)
	st.WaitFor("actor: flaky "+flaky+" ", 2*time.Minute)
	if f := status()["flaky"]; f.State != core.StateServing || f.NextTryMS != nil || f.Attempts < 3 {
		t.Errorf("flaky once the box answers: %+v", f)
	}
	if res, err := c.Invoke(ctx, "flaky", "echo", []byte("retried")); err != nil || string(res.Output) != "retried" {
		t.Errorf("flaky after its retry: %v", err)
	}

	g.release(slow)
	if l := st.WaitFor("READY:", 2*time.Minute); !strings.HasPrefix(l, "READY: manifest version 1, actors [slow echo flaky] in ") {
		t.Errorf("READY line: %q", l)
	}
	if _, v := attestVerify(t, c, ak, ref); !v.OK() || v.BootOpen {
		t.Errorf("attestation after READY (BootOpen %v):\n%s", v.BootOpen, v)
	}
	noFlaky := &verify.Reference{Events: ref.Events, Boot: e.manifest(t, 1, e.gov,
		manifest.Actor{Name: "slow", CID: slow},
		manifest.Actor{Name: "echo", CID: e.echo, Grants: []string{"log"}},
	)}
	if _, v := attestVerify(t, c, ak, noFlaky); v.OK() {
		t.Errorf("the retried actor's CID verified without the manifest allowing it:\n%s", v)
	}
	console := st.Console()
	for _, want := range []string{
		"actor: echo " + e.echo + " ",
		"actor: flaky NOT SERVED: ",
		"measured into PCR 10 on attempt ",
		"actor: slow " + slow + " ",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Index(console, "actor: echo ") > strings.Index(console, "actor: slow "+slow) {
		t.Error("echo came up after the stalled actor")
	}
}
