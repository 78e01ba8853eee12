package ipfs_test

import (
	"bytes"
	"context"
	goruntime "runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
)

// heapSampler samples the bytes of live heap objects
// (/memory/classes/heap/objects:bytes: live, and dead not yet swept)
// every 200 µs and keeps the highest.
type heapSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak uint64
}

const heapObjects = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			h.peak = max(h.peak, heapNow())
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) end() uint64 {
	close(h.stop)
	h.wg.Wait()
	return max(h.peak, heapNow())
}

// BenchmarkFetchPeakHeap measures the peak heap of a verified fetch of a
// 64 MiB file from a real kubo, above the heap before it (after a GC):
// the stick's way (one CAR, reassembled as it comes) and the hosted
// stick's default (the plain bytes and their DAG rebuilt). It reports
// MiB and the ratio to the file's size; it measures, it does not judge.
func BenchmarkFetchPeakHeap(b *testing.B) {
	node := kubotest.Start(b)
	data := content(64 << 20)
	c := kuboAdd(b, node, data)
	for _, mode := range []struct {
		name string
		car  bool
	}{{"CAR", true}, {"plain", false}} {
		b.Run(mode.name, func(b *testing.B) {
			cl := &ipfs.Client{Gateway: node.Gateway, CAR: mode.car, Timeout: 5 * time.Minute}
			var peak uint64
			for b.Loop() {
				goruntime.GC()
				base := heapNow()
				h := startHeapSampler()
				got, err := cl.Fetch(context.Background(), c)
				p := h.end()
				if err != nil || !bytes.Equal(got, data) {
					b.Fatalf("fetch: %d bytes, %v", len(got), err)
				}
				got = nil
				peak = max(peak, p-min(p, base))
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(peak)/float64(len(data)), "peak/file")
		})
	}
}
