package drbg

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// RFC 8439, section 2.3.2: test vector for the ChaCha20 block function.
func TestBlockRFC8439(t *testing.T) {
	var in [16]uint32
	in[0], in[1], in[2], in[3] = 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574
	for i := 0; i < 8; i++ {
		b := byte(4 * i)
		in[4+i] = uint32(b) | uint32(b+1)<<8 | uint32(b+2)<<16 | uint32(b+3)<<24
	}
	in[12] = 1
	in[13] = 0x09000000
	in[14] = 0x4a000000
	in[15] = 0

	want, _ := hex.DecodeString("10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e" +
		"d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")
	var out [64]byte
	Block(&out, &in)
	if !bytes.Equal(out[:], want) {
		t.Fatalf("block mismatch\n got %x\nwant %x", out, want)
	}
}

func seed(b byte) *[KeySize]byte {
	var s [KeySize]byte
	for i := range s {
		s[i] = b + byte(i)
	}
	return &s
}

func TestUnseededRefuses(t *testing.T) {
	var g Generator
	b := []byte{1, 2, 3}
	if g.Read(b) {
		t.Fatal("unseeded generator produced output")
	}
	if !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Fatal("unseeded generator touched the buffer")
	}
}

func TestGenerator(t *testing.T) {
	read := func(g *Generator, n int) []byte {
		b := make([]byte, n)
		if !g.Read(b) {
			t.Fatal("Read failed")
		}
		return b
	}
	tests := []struct {
		name  string
		a, b  func() []byte
		equal bool
	}{
		{"same seed gives same stream", func() []byte {
			var g Generator
			g.Reseed(seed(1))
			return read(&g, 100)
		}, func() []byte {
			var g Generator
			g.Reseed(seed(1))
			return read(&g, 100)
		}, true},
		{"different seeds diverge", func() []byte {
			var g Generator
			g.Reseed(seed(1))
			return read(&g, 100)
		}, func() []byte {
			var g Generator
			g.Reseed(seed(2))
			return read(&g, 100)
		}, false},
		{"successive reads differ", func() []byte {
			var g Generator
			g.Reseed(seed(1))
			return read(&g, 32)
		}, func() []byte {
			var g Generator
			g.Reseed(seed(1))
			read(&g, 32)
			return read(&g, 32)
		}, false},
		{"reseed changes the stream", func() []byte {
			var g Generator
			g.Reseed(seed(1))
			return read(&g, 64)
		}, func() []byte {
			var g Generator
			g.Reseed(seed(1))
			g.Reseed(seed(9))
			return read(&g, 64)
		}, false},
		{"output is not the seed", func() []byte {
			var g Generator
			g.Reseed(seed(1))
			return read(&g, KeySize)
		}, func() []byte {
			return seed(1)[:]
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tc.a(), tc.b()
			if bytes.Equal(a, b) != tc.equal {
				t.Fatalf("equal=%v, want %v\na=%x\nb=%x", !tc.equal, tc.equal, a, b)
			}
		})
	}
}

// countingSource is a test double for a hardware entropy source: it counts
// calls and can be told to fail.
type countingSource struct {
	calls int
	fail  bool
}

func (s *countingSource) Fill(b []byte) bool {
	s.calls++
	if s.fail {
		return false
	}
	for i := range b {
		b[i] = byte(s.calls*31 + i)
	}
	return true
}

func TestReaderReseeds(t *testing.T) {
	src := &countingSource{}
	r := &Reader{Source: src}
	if !r.Init() {
		t.Fatal("Init failed")
	}
	buf := make([]byte, 4096)
	for n := 0; n < ReseedInterval; n += len(buf) {
		if !r.Read(buf) {
			t.Fatal("Read failed")
		}
	}
	if src.calls != 1 {
		t.Fatalf("source called %d times before the interval, want 1", src.calls)
	}
	if !r.Read(buf) {
		t.Fatal("Read failed")
	}
	if src.calls != 2 {
		t.Fatalf("source called %d times after the interval, want 2", src.calls)
	}
}

func TestReaderSourceFaults(t *testing.T) {
	t.Run("no source", func(t *testing.T) {
		r := &Reader{}
		if r.Init() {
			t.Fatal("Init succeeded without a source")
		}
		if r.Read(make([]byte, 8)) {
			t.Fatal("Read succeeded without a seed")
		}
	})
	t.Run("failing source", func(t *testing.T) {
		r := &Reader{Source: &countingSource{fail: true}}
		if r.Init() {
			t.Fatal("Init succeeded with a failing source")
		}
	})
	t.Run("source fails at reseed", func(t *testing.T) {
		src := &countingSource{}
		r := &Reader{Source: src}
		if !r.Init() {
			t.Fatal("Init failed")
		}
		r.Gen.since = ReseedInterval
		src.fail = true
		b := make([]byte, 16)
		if r.Read(b) {
			t.Fatal("a failed reseed was not reported")
		}
		if bytes.Equal(b, make([]byte, 16)) {
			t.Fatal("generator stopped producing output on a failed reseed")
		}
	})
}

// The runtime calls the generator before its heap exists.
func TestNoAllocations(t *testing.T) {
	r := &Reader{Source: &countingSource{}}
	b := make([]byte, 100)
	allocs := testing.AllocsPerRun(100, func() {
		r.Init()
		r.Read(b)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
}

func BenchmarkRead(b *testing.B) {
	r := &Reader{Source: &countingSource{}}
	r.Init()
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		r.Read(buf)
	}
}
