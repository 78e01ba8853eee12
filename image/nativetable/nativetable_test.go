package nativetable

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func testCID(s string) string {
	h, _ := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h).String()
}

func sample() []Entry {
	return []Entry{{Name: "echo", CID: testCID("echo")}, {Name: "kernel", CID: testCID("kernel")}}
}

func TestEncodeDecode(t *testing.T) {
	enc, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	slices.SortFunc(want, func(a, b Entry) int { return strings.Compare(a.CID, b.CID) })
	if !slices.Equal(got, want) {
		t.Fatalf("round trip %v -> %v", want, got)
	}
	empty, err := Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if es, err := Decode(empty); err != nil || len(es) != 0 {
		t.Fatalf("empty table: %v %v", es, err)
	}
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"prefix alone", Prefix},
		{"trailing bytes", enc + "x"},
		{"length too short", strings.Replace(enc, enc[len(Prefix):len(Prefix)+8], "00000010", 1)},
		{"uppercase length", strings.Replace(enc, ":000", ":00A", 1)},
		{"spaced JSON", strings.Replace(enc, `","cid"`, `", "cid"`, 1)},
		{"no end marker", strings.TrimSuffix(enc, suffix) + ":EN!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.in); !errors.Is(err, ErrTable) {
				t.Fatalf("Decode = %v, want ErrTable", err)
			}
		})
	}
	for _, bad := range [][]Entry{
		{{Name: "echo", CID: "bafynotacid"}},
		{{Name: "", CID: testCID("echo")}},
		{{Name: "a", CID: testCID("echo")}, {Name: "b", CID: testCID("echo")}},
	} {
		if _, err := Encode(bad); !errors.Is(err, ErrTable) {
			t.Errorf("Encode(%v) = %v, want ErrTable", bad, err)
		}
	}
}

// TestFind: the table is found among an image's bytes whatever surrounds
// it, the bare prefix (which every image holds, in this package's code)
// is no table, and two tables are refused.
func TestFind(t *testing.T) {
	enc, _ := Encode(sample())
	image := []byte("\x7fELF..." + Prefix + "junk" + Prefix + "0000" + "\x00\x00" + enc + "\x00more")
	got, err := Find(image)
	if err != nil || len(got) != 2 {
		t.Fatalf("Find = %v, %v", got, err)
	}
	if got, err := Find([]byte("\x7fELF" + Prefix + "\x00")); err != nil || got != nil {
		t.Fatalf("Find in an image with no table = %v, %v", got, err)
	}
	if _, err := Find([]byte(enc + enc)); !errors.Is(err, ErrTable) {
		t.Fatalf("Find of two tables = %v, want ErrTable", err)
	}
}

func TestGoFile(t *testing.T) {
	b, err := GoFile("actors", sample())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "package actors\n") {
		t.Fatalf("generated file is not in the package:\n%s", b)
	}
	es, err := Find(b)
	if err != nil || len(es) != 2 {
		t.Fatalf("generated file carries %v, %v", es, err)
	}
}

// FuzzFind: images are the release tool's input. Find never panics, and
// a table it finds encodes back to bytes the image holds.
func FuzzFind(f *testing.F) {
	enc, _ := Encode(sample())
	f.Add([]byte(enc))
	f.Add([]byte(Prefix + "00000002:[]:END"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := Find(b)
		if err != nil || es == nil {
			return
		}
		again, err := Encode(es)
		if err != nil || !strings.Contains(string(b), again) {
			t.Fatalf("found %v, which encodes to %q (%v), not in the image", es, again, err)
		}
	})
}
