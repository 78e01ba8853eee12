package runtime_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"reflect"
	"testing"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/native"
)

// prepare runs PrepareNative on module under the default limits.
func prepare(t *testing.T, module []byte) *runtime.NativeModule {
	t.Helper()
	nm, err := runtime.PrepareNative(context.Background(), "a", actortest.CID(module), module, runtime.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return nm
}

// PrepareNative's snapshot of preinit.wat holds everything its
// initializers left: the grown memory with what they wrote, the four
// mutable globals (the immutable one and the meter's fuel aside), the
// virtual clock after two reads and random_get's refusal.
func TestPrepareNativeSnapshot(t *testing.T) {
	nm := prepare(t, actortest.Wat(t, "preinit"))
	s := nm.Actor.Snapshot
	if s == nil {
		t.Fatalf("no snapshot: %s", nm.NoSnapshot)
	}
	if s.Pages != 2 || s.Clock != 2000 || !reflect.DeepEqual(s.Denied, []string{"random.bytes"}) {
		t.Errorf("pages %d clock %d denied %q, want 2, 2000 and [random.bytes]", s.Pages, s.Clock, s.Denied)
	}
	want := []native.Global{{Index: 0, Value: uint64(uint32(0xfffffffc))}, {Index: 1, Value: 0x123456789abcdef0},
		{Index: 2, Value: uint64(math.Float32bits(-1.5))}, {Index: 3, Value: math.Float64bits(3.25)}}
	if len(s.Globals) != len(want) {
		t.Fatalf("globals %+v, want %+v", s.Globals, want)
	}
	for i, g := range s.Globals {
		// wazero gives an i32 as its bits, zero- or sign-extended.
		if g.Index != want[i].Index || g.Value != want[i].Value && uint32(g.Value) != uint32(want[i].Value) {
			t.Errorf("global %d: %+v, want %+v", i, g, want[i])
		}
	}
	// The memory the runs give, over what New leaves.
	mem := make([]byte, 2<<16)
	copy(mem[16:], "initial!")
	last := -1
	for _, r := range s.Runs {
		if int(r.Off) <= last {
			t.Fatalf("runs not in increasing order: %#x after %#x", r.Off, last)
		}
		last = int(r.Off) + len(r.Data) - 1
		copy(mem[r.Off:], r.Data)
	}
	wantMem := map[int][]byte{
		16:    []byte("Initial!"),
		100:   binary.LittleEndian.AppendUint64(nil, 1000),
		108:   binary.LittleEndian.AppendUint64(nil, 2000),
		116:   binary.LittleEndian.AppendUint32(nil, 76), // ENOTCAPABLE
		65536: {0xef, 0xbe, 0xad, 0xde},
	}
	for off, w := range wantMem {
		if got := mem[off : off+len(w)]; !bytes.Equal(got, w) {
			t.Errorf("memory at %d: %x, want %x", off, got, w)
		}
	}
	// Nothing else changed: the runs hold only what the initializers
	// wrote (and the equal bytes between, fewer than a gap).
	n := 0
	for _, r := range s.Runs {
		n += len(r.Data)
	}
	if n > 64 {
		t.Errorf("runs hold %d bytes: %+v", n, s.Runs)
	}
}

// A snapshot is not taken when it would not be the whole state, and
// PrepareNative says why.
func TestPrepareNativeNoSnapshot(t *testing.T) {
	for _, tc := range []struct{ fixture, why string }{
		{"initcaps", "its initializers call wapc.__host_call"},
		{"initprint", "its initializers call wasi_snapshot_preview1.fd_write"},
		{"tablegrow", "it writes a table"},
		{"fdwrite", "it has a start function"},
	} {
		nm := prepare(t, actortest.Wat(t, tc.fixture))
		if nm.Actor.Snapshot != nil || nm.NoSnapshot != tc.why {
			t.Errorf("%s: snapshot %t, reason %q; want none because %q", tc.fixture, nm.Actor.Snapshot != nil, nm.NoSnapshot, tc.why)
		}
	}
}

// A Go actor's runtime start is pure: its snapshot is taken, the same on
// every translation (release builds are reproducible), with the one
// refusal of random_get the interpreter counts at each start.
func TestPrepareNativeSnapshotGo(t *testing.T) {
	m := actortest.GoActor(t, "echo")
	a, b := prepare(t, m), prepare(t, m)
	if a.Actor.Snapshot == nil {
		t.Fatalf("no snapshot: %s", a.NoSnapshot)
	}
	if !reflect.DeepEqual(a.Actor.Snapshot, b.Actor.Snapshot) {
		t.Error("two translations of the same module took different snapshots")
	}
	if s := a.Actor.Snapshot; !reflect.DeepEqual(s.Denied, []string{"random.bytes"}) || s.Pages < a.Actor.MinPages {
		t.Errorf("denied %q, pages %d (initial %d)", s.Denied, s.Pages, a.Actor.MinPages)
	}
}
