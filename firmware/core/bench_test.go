package core

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/netstack/channel"
	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
)

var engines = []struct {
	name   string
	engine runtime.Engine
}{{"interpreter", runtime.EngineInterpreter}, {"compiler", runtime.EngineCompiler}}

// BenchmarkAPIInvoke prices the API around an invocation: the echo actor
// through TLS, the router, JSON, the runtime and a signed receipt, against
// a no-op handler on the same TLS server and client, alternated request by
// request in one run. The budget: echo at most 1.5 times the no-op.
func BenchmarkAPIInvoke(b *testing.B) {
	node := kubotest.Start(b)
	box := &ipfs.Client{Gateway: node.Gateway, API: node.API}
	echo := node.Publish(b, actortest.GoActor(b, "echo")).String()
	body, _ := json.Marshal(InvokeRequest{Operation: "echo", Payload: bytes.Repeat([]byte("x"), 64)})
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			cfg := measured(b)
			cfg.Fetch = box.Fetch
			cfg.Actors.Engine = e.engine
			s, _ := newStick(b, cfg)
			if err := s.Boot(context.Background(), sign(b, 1, manifest.Actor{Name: "echo", CID: echo})); err != nil {
				b.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("POST /noop", func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte("{}\n"))
			})
			mux.Handle("/", s.Handler())
			srv := httptest.NewUnstartedServer(mux)
			tlsCfg, err := channel.ServerConfig(s.ChannelKey())
			if err != nil {
				b.Fatal(err)
			}
			srv.TLS = tlsCfg
			srv.StartTLS()
			defer srv.Close()
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: channel.ClientConfig(s.ChannelDigest()),
				TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
			post := func(path string) time.Duration {
				start := time.Now()
				resp, err := hc.Post(srv.URL+path, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %s", path, resp.Status)
				}
				return time.Since(start)
			}
			post("/noop")
			post("/v1/actors/echo/invoke")
			// The receipt's signature is priced on its own in the same
			// run: it is the part of an invocation that no handler
			// tuning removes.
			var echoT, noopT, signT time.Duration
			b.ResetTimer()
			for range b.N {
				echoT += post("/v1/actors/echo/invoke")
				noopT += post("/noop")
				start := time.Now()
				if _, err := s.results.Sign("echo", echo, "echo", body, body, 1); err != nil {
					b.Fatal(err)
				}
				signT += time.Since(start)
			}
			b.StopTimer()
			b.ReportMetric(float64(echoT.Microseconds())/float64(b.N), "echo-us/op")
			b.ReportMetric(float64(noopT.Microseconds())/float64(b.N), "noop-us/op")
			b.ReportMetric(float64(signT.Microseconds())/float64(b.N), "receipt-sign-us/op")
			b.ReportMetric(float64(echoT)/float64(noopT), "echo/noop")
		})
	}
}

// BenchmarkBootToReady times a boot from the stick core's creation to its
// READY line with the three example actors fetched from a real kubo node,
// and reports the Go heap in use at READY, and after a collection (what
// the loaded actors keep).
func BenchmarkBootToReady(b *testing.B) {
	node := kubotest.Start(b)
	box := &ipfs.Client{Gateway: node.Gateway, API: node.API}
	actors := []manifest.Actor{
		{Name: "echo", CID: node.Publish(b, actortest.GoActor(b, "echo")).String(), Grants: []string{"log"}},
		{Name: "notary", CID: node.Publish(b, actortest.GoActor(b, "notary")).String(), Grants: []string{"crypto.sha256", "crypto.sign"}},
		{Name: "wordcount", CID: node.Publish(b, actortest.GoActor(b, "wordcount")).String(), Grants: []string{"ipfs.cat"}},
	}
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			var heap, live uint64
			var total time.Duration
			for range b.N {
				b.StopTimer()
				cfg := measured(b)
				cfg.Fetch = box.Fetch
				cfg.Actors.Engine = e.engine
				m := sign(b, 1, actors...)
				goruntime.GC()
				b.StartTimer()
				start := time.Now()
				s, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Boot(context.Background(), m); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				b.StopTimer()
				for _, a := range s.Status().Actors {
					if a.State != StateServing {
						b.Fatalf("%s: %s %s", a.Name, a.State, a.Error)
					}
				}
				var ms goruntime.MemStats
				goruntime.ReadMemStats(&ms)
				heap = max(heap, ms.HeapInuse)
				goruntime.GC()
				goruntime.ReadMemStats(&ms)
				live = max(live, ms.HeapInuse)
				s.Close()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s-to-READY")
			b.ReportMetric(float64(heap)/(1<<20), "MiB-heap-at-READY")
			b.ReportMetric(float64(live)/(1<<20), "MiB-heap-after-GC")
		})
	}
}
