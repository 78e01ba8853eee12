package runtime_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
)

// fd_write's work is linear in its iovecs and in the bytes it logs, and
// bounded per call, whatever the buffers' lengths: 4 iovecs of 4 MiB
// without a newline, and 1000 of them, finish within the call's deadline
// (the quadratic line splitter took 1.16 s for 4, minutes for 1000). The
// deadline here is 1 s, far from both, so that a loaded machine does not
// decide the test; BenchmarkFdWrite gives the figures. More iovecs than
// IOV_MAX, or a total the u32 size cannot hold, fail with EINVAL as
// writev(2) does.
func TestFdWriteBounded(t *testing.T) {
	const einval = 28
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			for _, tc := range []struct {
				name         string
				count, size  uint32
				errno        byte
				wantWritten  uint32
				wantTruncLog bool
			}{
				{"4 iovecs of 4 MiB", 4, 4 << 20, 0, 16 << 20, true},
				{"1000 iovecs of 4 MiB", 1000, 4 << 20, 0, 4000 << 20, true},
				{"1025 iovecs", 1025, 16, einval, 0, false},
				{"total over 4 GiB", 1024, 4 << 20, einval, 0, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r, lb := newRuntime(t, runtime.Config{Engine: e})
					// The instance (4 MiB filled at start) is made under
					// the actor's own timeout; the call has 1 s.
					load(t, r, "fdwrite", actortest.Wat(t, "fdwrite"), []string{"log"},
						runtime.Limits{Timeout: 10 * time.Second, MemoryPages: 128})
					p := binary.LittleEndian.AppendUint32(nil, tc.count)
					p = binary.LittleEndian.AppendUint32(p, tc.size)
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					got, err := r.Invoke(ctx, "fdwrite", "write", p)
					if err != nil {
						t.Fatalf("call: %v", err)
					}
					if len(got) != 5 || got[0] != tc.errno || binary.LittleEndian.Uint32(got[1:]) != tc.wantWritten {
						t.Fatalf("response %x, want errno %d, %d bytes written", got, tc.errno, tc.wantWritten)
					}
					if trunc := strings.Contains(lb.String(), "actor output truncated"); trunc != tc.wantTruncLog {
						t.Fatalf("truncation logged: %v, want %v", trunc, tc.wantTruncLog)
					}
				})
			}
		})
	}
}

// BenchmarkFdWrite times one fd_write of count iovecs of 4 MiB each (no
// newline) through the fdwrite fixture: linear in the iovecs, and the
// bytes beyond the per-call log limit cost nothing.
func BenchmarkFdWrite(b *testing.B) {
	for _, count := range []uint32{4, 1000} {
		b.Run(fmt.Sprintf("iovecs=%d", count), func(b *testing.B) {
			r, _ := newRuntime(b, runtime.Config{Engine: runtime.EngineInterpreter,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			load(b, r, "fdwrite", actortest.Wat(b, "fdwrite"), []string{"log"},
				runtime.Limits{Timeout: 10 * time.Second, MemoryPages: 128})
			p := binary.LittleEndian.AppendUint32(nil, count)
			p = binary.LittleEndian.AppendUint32(p, 4<<20)
			for b.Loop() {
				if got, err := invoke(r, "fdwrite", "write", p); err != nil || got[0] != 0 {
					b.Fatalf("%x %v", got, err)
				}
			}
		})
	}
}

// ipfs.cat of a DAG whose nodes link 32 times to the next, 6 deep (a few
// KB of real blocks in a real kubo; a walk of 32^6 nodes), through the
// stick's client (one CAR): with the bound on nodes lifted, the call's
// 200 ms deadline alone ends the walk, and the call fails with
// ErrDeadline; with the stick's limits, the actor gets the client's
// refusal. Either way the actor serves the next call. The code before
// walked for hours whatever the deadline.
func TestCatAmplifiedDAG(t *testing.T) {
	node := kubotest.Start(t)
	root, blocks := kubotest.Amplified(32, 6, []byte{})
	node.Put(t, blocks)
	edge := actortest.Wat(t, "edge")
	cat := hostCall("ipfs", "cat", []byte(root.String()))
	within := func(f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatal("ipfs.cat still running a minute on")
			return nil
		}
	}

	unbounded := ipfs.DefaultLimits
	unbounded.MaxNodes = math.MaxInt
	cl := &ipfs.Client{Gateway: node.Gateway, CAR: true, Limits: unbounded, Timeout: time.Minute}
	r, _ := newRuntime(t, runtime.Config{Files: cl})
	load(t, r, "edge", edge, []string{"ipfs.cat"}, runtime.Limits{Timeout: 200 * time.Millisecond})
	err := within(func() error { _, err := invoke(r, "edge", "call", cat); return err })
	if !errors.Is(err, runtime.ErrDeadline) {
		t.Fatalf("ipfs.cat past the deadline: %v, want ErrDeadline", err)
	}
	if got, err := invoke(r, "edge", "echo", []byte("next")); err != nil || string(got) != "next" {
		t.Fatalf("next call: %q %v", got, err)
	}

	stick := &ipfs.Client{Gateway: node.Gateway, CAR: true, Timeout: time.Minute}
	r2, _ := newRuntime(t, runtime.Config{Files: stick})
	load(t, r2, "edge", edge, []string{"ipfs.cat"}, runtime.Limits{Timeout: 30 * time.Second})
	err = within(func() error { _, err := invoke(r2, "edge", "call", cat); return err })
	var ae *runtime.ActorError
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "ipfs: limit exceeded") || !strings.Contains(ae.Message, "nodes visited") {
		t.Fatalf("ipfs.cat with the stick's limits: %v, want the client's refusal", err)
	}
}
