package native_test

import (
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/teastick/teastick/runtime/native"
)

func testCID(t *testing.T, s string) cid.Cid {
	h, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// The table finds an actor by exactly its CID, and refuses a CID twice.
func TestRegistry(t *testing.T) {
	c := testCID(t, "registry test actor")
	if _, ok := native.Lookup(c); ok {
		t.Fatal("found before registering")
	}
	if _, ok := native.Lookup(cid.Undef); ok {
		t.Fatal("found the undefined CID")
	}
	a := &native.Actor{Name: "x", CID: c, MemoryPages: 16}
	native.Register(a)
	if got, ok := native.Lookup(c); !ok || got != a {
		t.Fatalf("Lookup: %v %v", got, ok)
	}
	if _, ok := native.Lookup(testCID(t, "another")); ok {
		t.Fatal("found another CID")
	}
	found := false
	for _, x := range native.All() {
		found = found || x == a
	}
	if !found {
		t.Fatal("All misses the actor")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registered one CID twice")
		}
	}()
	native.Register(&native.Actor{Name: "y", CID: c})
}
