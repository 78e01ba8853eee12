package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/teastick/teastick/firmware/receipt"
)

// Call is one invocation a load run makes.
type Call struct {
	Actor, Operation string
	Payload          []byte
}

// LoadReport is what a load run saw.
type LoadReport struct {
	Clients  int
	Duration time.Duration
	OK       int      // 200s with a receipt whose counter was new and whose hashes match
	Busy     int      // 429s: documented overload answers
	Failed   []string // anything else, one line each
	Slowest  time.Duration
	// HeapStart and HeapEnd are the stick's teastick_heap_inuse_bytes,
	// LiveStart and LiveEnd its teastick_heap_live_bytes, in bytes.
	HeapStart, HeapEnd, LiveStart, LiveEnd float64
}

func (r *LoadReport) String() string {
	return fmt.Sprintf("%d clients for %v: %d ok (%.0f/s), %d 429, %d failed, slowest %v; heap in use %.1f MiB at start, %.1f MiB at end (live at the last GC %.1f, %.1f MiB)",
		r.Clients, r.Duration, r.OK, float64(r.OK)/r.Duration.Seconds(), r.Busy, len(r.Failed), r.Slowest.Round(time.Millisecond),
		r.HeapStart/(1<<20), r.HeapEnd/(1<<20), r.LiveStart/(1<<20), r.LiveEnd/(1<<20))
}

// Load has clients goroutines invoke the stick for d, each making the
// calls next returns (client i, its n-th call). Every receipt's counter
// must be new and its input and output hashes must match; a 429 is
// counted as Busy and retried after a short pause. The stick's heap is
// read from /metrics before and after.
func (c *Client) Load(ctx context.Context, clients int, d time.Duration, next func(i, n int) Call) (*LoadReport, error) {
	r := &LoadReport{Clients: clients, Duration: d}
	var err error
	if r.HeapStart, r.LiveStart, err = c.heap(ctx); err != nil {
		return nil, err
	}
	var (
		mu       sync.Mutex
		counters = map[uint64]bool{}
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				call := next(i, n)
				t0 := time.Now()
				res, err := c.Invoke(ctx, call.Actor, call.Operation, call.Payload)
				took := time.Since(t0)
				if err == nil {
					err = receipt.CheckInput(res.Receipt, call.Payload, res.Output)
				}
				mu.Lock()
				r.Slowest = max(r.Slowest, took)
				var apiErr *Error
				switch {
				case err == nil && counters[res.Receipt.Counter]:
					r.Failed = append(r.Failed, fmt.Sprintf("receipt counter %d repeated", res.Receipt.Counter))
				case err == nil:
					counters[res.Receipt.Counter] = true
					r.OK++
				case errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
					r.Busy++
				default:
					r.Failed = append(r.Failed, err.Error())
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if r.HeapEnd, r.LiveEnd, err = c.heap(ctx); err != nil {
		return r, err
	}
	return r, nil
}

// heap reads the stick's heap gauges from /metrics.
func (c *Client) heap(ctx context.Context) (inuse, live float64, err error) {
	m, err := c.Metrics(ctx)
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for _, l := range strings.Split(m, "\n") {
		for name, v := range map[string]*float64{"teastick_heap_inuse_bytes ": &inuse, "teastick_heap_live_bytes ": &live} {
			if s, ok := strings.CutPrefix(l, name); ok {
				if _, err := fmt.Sscan(s, v); err == nil {
					found++
				}
			}
		}
	}
	if found != 2 {
		return 0, 0, errors.New("stick: /metrics lacks teastick_heap_inuse_bytes or teastick_heap_live_bytes")
	}
	return inuse, live, nil
}
