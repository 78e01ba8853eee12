package kubotest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Tampering starts a FAULT-INJECTION gateway in front of n's: it passes
// everything through except responses for paths naming one of cids, in
// which it flips one byte near the end (a box serving a tampered actor or
// data set). It returns the hostile gateway's URL; it stops with the test.
func (n *Node) Tampering(t testing.TB, cids ...string) string {
	t.Helper()
	target, err := url.Parse(n.Gateway)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		hit := false
		for _, c := range cids {
			hit = hit || strings.Contains(resp.Request.URL.Path, c)
		}
		if !hit {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if len(b) > 100 {
			b[len(b)-50] ^= 0xff // the fault: one flipped byte
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// Stalling starts a FAULT-INJECTION gateway in front of n's: a request
// whose path names one of cids gets no answer (not even headers) until
// release is called or its client goes away; everything else passes
// through. It models a box that withholds one actor's blocks. It returns
// the gateway's URL and release; it stops with the test.
func (n *Node) Stalling(t testing.TB, cids ...string) (gateway string, release func()) {
	t.Helper()
	target, err := url.Parse(n.Gateway)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	released := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, c := range cids {
			if strings.Contains(r.URL.Path, c) {
				select {
				case <-released:
				case <-r.Context().Done():
					return
				}
				break
			}
		}
		proxy.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(l)
	t.Cleanup(func() { release(); srv.Close() })
	return "http://" + l.Addr().String(), release
}
