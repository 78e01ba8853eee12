package board

import (
	"bytes"
	"testing"
)

// PollRead returns what the receiver holds (never an empty read), waiting
// for the first byte; WriteBytes sends every byte.
func TestPollRead(t *testing.T) {
	in := []byte("ab")
	looks := 0
	rx := func() (byte, bool) {
		looks++
		if looks <= 2 || len(in) == 0 { // nothing yet, then drained
			return 0, false
		}
		c := in[0]
		in = in[1:]
		return c, true
	}
	buf := make([]byte, 8)
	n, err := PollRead(rx, buf)
	if err != nil || string(buf[:n]) != "ab" || looks != 5 {
		t.Fatalf("PollRead: %q, %v after %d looks; want \"ab\" after 5", buf[:n], err, looks)
	}
	in = []byte("xyz")
	if n, _ := PollRead(rx, buf[:2]); string(buf[:n]) != "xy" {
		t.Fatalf("PollRead into 2 bytes: %q", buf[:n])
	}
	var out bytes.Buffer
	if n, err := WriteBytes(func(c byte) { out.WriteByte(c) }, []byte("hello")); n != 5 || err != nil || out.String() != "hello" {
		t.Fatalf("WriteBytes: %d %v %q", n, err, out.String())
	}
}
