package measure

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
)

func testKeys(t testing.TB) Keys {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Keys{Channel: der, Result: pub}
}

func TestKeysEncoding(t *testing.T) {
	k := testKeys(t)
	b, err := k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Keys
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Channel, k.Channel) || !got.Result.Equal(k.Result) {
		t.Fatalf("round trip: %+v", got)
	}
	for _, tc := range []struct {
		name string
		k    Keys
	}{
		{"no channel key", Keys{Result: k.Result}},
		{"channel key not DER", Keys{Channel: []byte("not der"), Result: k.Result}},
		{"short result key", Keys{Channel: k.Channel, Result: k.Result[:31]}},
	} {
		if _, err := tc.k.MarshalBinary(); !errors.Is(err, ErrKeys) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	for _, bad := range [][]byte{nil, {2}, b[:len(b)-1], append(bytes.Clone(b), 0), append([]byte{1, 0, 0}, b[3:]...)} {
		if err := new(Keys).UnmarshalBinary(bad); !errors.Is(err, ErrKeys) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

// FuzzKeys: UnmarshalBinary never panics, and what it accepts encodes
// back to exactly the same bytes (one encoding per pair of keys).
func FuzzKeys(f *testing.F) {
	b, err := testKeys(f).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 32})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var k Keys
		if k.UnmarshalBinary(data) != nil {
			return
		}
		again, err := k.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted %x, encodes to %x (%v)", data, again, err)
		}
	})
}
