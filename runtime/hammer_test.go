package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
)

// Many callers across actors, healthy calls mixed with traps, deadlines
// and refusals, and an upgrade in the middle: every healthy call returns
// its own answer, every fault fails only its call, and the pools end
// bounded.
func TestHammer(t *testing.T) {
	r, _ := newRuntime(t, runtime.Config{QueueWait: 5 * time.Second})
	edge := actortest.Wat(t, "edge")
	echo := actortest.GoActor(t, "echo")
	lim := runtime.Limits{MaxConcurrent: 4, Timeout: 2 * time.Second}
	load(t, r, "a", edge, nil, lim)
	load(t, r, "b", edge, nil, lim)
	load(t, r, "go", echo, nil, lim)

	workers, perWorker := 24, 60
	if testing.Short() {
		perWorker = 10
	}
	goroutines := goruntime.NumGoroutine()
	var ok, faults atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				name := []string{"a", "b", "go"}[(w+i)%3]
				p := []byte(fmt.Sprintf("worker %d call %d", w, i))
				switch {
				case name != "go" && i%10 == 3:
					_, err := invoke(r, name, "trap", p)
					if !errors.Is(err, runtime.ErrTrap) {
						errs <- fmt.Errorf("%s trap: %v", name, err)
						return
					}
					faults.Add(1)
				case name != "go" && i%10 == 7:
					_, err := invoke(r, name, "call", hostCall("kv", "get", p))
					if err == nil || !strings.Contains(err.Error(), "not granted") {
						errs <- fmt.Errorf("%s ungranted: %v", name, err)
						return
					}
				default:
					got, err := invoke(r, name, "echo", p)
					if err != nil || !bytes.Equal(got, p) {
						errs <- fmt.Errorf("%s echo %q: %q %v", name, p, got, err)
						return
					}
					ok.Add(1)
				}
			}
		})
	}
	// Upgrade "a" to the Go echo and back while the calls run.
	wg.Go(func() {
		for _, m := range [][]byte{echo, edge} {
			time.Sleep(20 * time.Millisecond)
			if err := r.Upgrade(context.Background(), runtime.Spec{Name: "a", CID: actortest.CID(m), Limits: lim, Module: m}); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		// "a" served the Go echo for a while, which has no trap or call
		// operations: those answers are actor errors, not runtime faults.
		var ae *runtime.ActorError
		if errors.As(err, &ae) || strings.Contains(err.Error(), "unknown operation") {
			continue
		}
		t.Error(err)
	}
	for _, in := range r.Actors() {
		if in.Stats.Idle > int(lim.MaxConcurrent) {
			t.Errorf("%s: %d idle instances, max_concurrent %d", in.Name, in.Stats.Idle, lim.MaxConcurrent)
		}
	}
	t.Logf("%d echoes, %d faults", ok.Load(), faults.Load())
	r.Close()
	deadline := time.Now().Add(5 * time.Second)
	for goruntime.NumGoroutine() > goroutines+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := goruntime.NumGoroutine(); n > goroutines+2 {
		t.Errorf("%d goroutines before, %d after close", goroutines, n)
	}
	if _, err := invoke(r, "b", "echo", nil); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

// The compute-over-data actor reads a data set by CID from a real kubo
// node through the verified client, and a hostile box cannot feed it other
// data.
func TestWordcountOverKubo(t *testing.T) {
	node := kubotest.Start(t)
	cl := &ipfs.Client{Gateway: node.Gateway, API: node.API}
	var text strings.Builder
	for i := range 40000 {
		fmt.Fprintf(&text, "stick box data %d\n", i%7)
	}
	data := []byte(text.String())
	root := node.Publish(t, data)
	if _, blocks := ipfs.Add(data); len(blocks) < 3 {
		t.Fatalf("data set of %d blocks; want a multi-block DAG", len(blocks))
	}
	r, _ := newRuntime(t, runtime.Config{Files: cl, Blocks: cl})
	wc := actortest.GoActor(t, "wordcount")
	load(t, r, "wordcount", wc, []string{"ipfs.cat"}, runtime.Limits{Timeout: 30 * time.Second})
	out, err := invoke(r, "wordcount", "count", []byte(root.String()))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		CID          string
		Bytes, Lines int
		Words        int
		Top          []struct {
			Word  string
			Count int
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if res.CID != root.String() || res.Bytes != len(data) || res.Lines != 40000 || res.Words != 160000 ||
		len(res.Top) != 5 || res.Top[0].Count != 40000 || res.Top[0].Word != "box" {
		t.Fatalf("result %s", out)
	}
	// A CID the box does not have, and one it was asked for but cannot
	// prove: the actor gets the client's error, nothing else.
	missing, _ := ipfs.Add([]byte("nobody added this"))
	if _, err := invoke(r, "wordcount", "count", []byte(missing.String())); err == nil {
		t.Fatal("count of a missing CID succeeded")
	}
	hostile := &ipfs.Client{Gateway: lyingGateway(t, data), API: node.API, Retries: 1}
	r2, _ := newRuntime(t, runtime.Config{Files: hostile})
	load(t, r2, "wordcount", wc, []string{"ipfs.cat"}, runtime.Limits{Timeout: 30 * time.Second})
	if _, err := invoke(r2, "wordcount", "count", []byte(root.String())); err == nil || !strings.Contains(err.Error(), "ipfs") {
		t.Fatalf("hostile box: %v", err)
	}
	// ipfs.get alone does not grant cat.
	load(t, r, "getonly", wc, []string{"ipfs.get"}, runtime.Limits{})
	if _, err := invoke(r, "getonly", "count", []byte(root.String())); err == nil || !strings.Contains(err.Error(), "ipfs.cat: capability not granted") {
		t.Fatalf("cat with only ipfs.get: %v", err)
	}
}

// lyingGateway is a fault-injection fake of the box's gateway: it answers
// every request with data changed in one byte.
func lyingGateway(t *testing.T, data []byte) string {
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bad)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
