package runtime

import (
	"bytes"
	"testing"
)

// reserveMemory doubles a translated instance's memory capacity, never
// past its limit, keeping its length and contents: grows within the room
// do not move it.
func TestReserveMemory(t *testing.T) {
	const page = 1 << 16
	for _, tc := range []struct {
		pages, limit uint32
		wantCap      int
	}{
		{3, 100, 6 * page},
		{3, 4, 4 * page},
		{3, 3, 3 * page},
		{0, 10, 0},
	} {
		b := make([]byte, int(tc.pages)*page)
		for i := range b {
			b[i] = byte(i)
		}
		want := bytes.Clone(b)
		reserveMemory(&b, tc.limit)
		if cap(b) != tc.wantCap || !bytes.Equal(b, want) {
			t.Errorf("%d pages under a limit of %d: len %d cap %d (want cap %d), contents kept %t",
				tc.pages, tc.limit, len(b), cap(b), tc.wantCap, bytes.Equal(b, want))
		}
		if grown := append(b, make([]byte, cap(b)-len(b))...); cap(b) > len(want) && &grown[0] != &b[0] {
			t.Errorf("%d pages under a limit of %d: a grow within the room moved the memory", tc.pages, tc.limit)
		}
	}
}
