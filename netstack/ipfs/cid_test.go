package ipfs

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// truncatedCID is a raw CID of data whose SHA2-256 digest is cut to n
// bytes, as a multihash may declare.
func truncatedCID(t testing.TB, data []byte, n int) cid.Cid {
	t.Helper()
	h, err := multihash.Sum(data, multihash.SHA2_256, n)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// A CID whose SHA2-256 digest is cut short names nothing: with one byte
// left, other content that hashes to it turns up in a few hundred tries,
// so the box could swap content behind it.
func TestVerifyRefusesTruncatedDigest(t *testing.T) {
	module := []byte("the actor the manifest names")
	for _, n := range []int{1, 4, 20, 31} {
		c := truncatedCID(t, module, n)
		if err := Verify(c, module); !errors.Is(err, ErrHash) {
			t.Errorf("Verify of a %d-byte digest = %v, want ErrHash", n, err)
		}
		if err := CheckCID(c); !errors.Is(err, ErrHash) {
			t.Errorf("CheckCID of a %d-byte digest = %v, want ErrHash", n, err)
		}
	}
	// the forgery itself
	c := truncatedCID(t, module, 1)
	forged := append([]byte("the box's own actor #"), 0, 0, 0, 0)
	tries := 0
	for ; tries < 1<<16; tries++ {
		binary.BigEndian.PutUint32(forged[len(forged)-4:], uint32(tries))
		if truncatedCID(t, forged, 1).Equals(c) {
			break
		}
	}
	if tries == 1<<16 {
		t.Fatal("no one-byte collision found")
	}
	if err := Verify(c, forged); err == nil {
		t.Fatalf("Verify accepted forged content behind a one-byte CID (found in %d tries)", tries+1)
	}
	// the full digest still verifies
	full, _ := multihash.Sum(module, multihash.SHA2_256, -1)
	if err := Verify(cid.NewCidV1(cid.Raw, full), module); err != nil {
		t.Fatalf("full digest: %v", err)
	}
	if err := CheckCID(cid.NewCidV1(cid.Raw, full)); err != nil {
		t.Fatalf("CheckCID of a full digest: %v", err)
	}
}
