package runtime

import (
	"testing"
)

// diffRuns holds exactly the bytes that differ, joining differences
// fewer than snapshotGap bytes apart, and counts memory past base as
// zero.
func TestDiffRuns(t *testing.T) {
	base := make([]byte, 64)
	mem := make([]byte, 128)
	mem[3], mem[5] = 1, 2 // one run: 3..5
	mem[40] = 3           // 5+16 < 40: a run of its own
	mem[100] = 4          // past base
	runs := diffRuns(base, mem)
	want := []struct {
		off  uint32
		data string
	}{{3, "\x01\x00\x02"}, {40, "\x03"}, {100, "\x04"}}
	if len(runs) != len(want) {
		t.Fatalf("runs %+v", runs)
	}
	for i, r := range runs {
		if r.Off != want[i].off || r.Data != want[i].data {
			t.Errorf("run %d: %+v, want %+v", i, r, want[i])
		}
	}
	if r := diffRuns(mem, mem); len(r) != 0 {
		t.Errorf("no difference gave %+v", r)
	}
}
