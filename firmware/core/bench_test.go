package core

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core/apibench"
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
// the no-op handler (NoopHandler) on the same TLS server and client,
// alternated request by request in one run (apibench). The issue's
// budget: echo at most 1.5 times the no-op. The receipt's signature is
// priced on its own in the same run.
func BenchmarkAPIInvoke(b *testing.B) {
	node := kubotest.Start(b)
	box := &ipfs.Client{Gateway: node.Gateway, API: node.API}
	echo := node.Publish(b, actortest.GoActor(b, "echo")).String()
	payload := bytes.Repeat([]byte("x"), 64)
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
			mux.HandleFunc("POST "+NoopPath, NoopHandler)
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
			r := apibench.Runner{HTTP: hc, URL: srv.URL, NoopPath: NoopPath, Actor: "echo", Op: "echo", Payload: payload}
			b.ResetTimer()
			res, err := r.Run(context.Background(), b.N)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			var signT time.Duration
			for range b.N {
				start := time.Now()
				if _, err := s.results.Sign("echo", echo, "echo", payload, payload, 1); err != nil {
					b.Fatal(err)
				}
				signT += time.Since(start)
			}
			b.ReportMetric(res.PerOp(res.Echo), "echo-us/op")
			b.ReportMetric(res.PerOp(res.Noop), "noop-us/op")
			b.ReportMetric(float64(signT.Nanoseconds())/float64(b.N)/1e3, "receipt-sign-us/op")
			b.ReportMetric(res.Ratio(), "echo/noop")
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
