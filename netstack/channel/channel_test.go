package channel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPinnedChannel(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg, err := ServerConfig(key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "stick")
	}))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()

	good, _ := Digest(&key.PublicKey)
	bad, _ := Digest(&other.PublicKey)
	tests := []struct {
		name   string
		pinned [32]byte
		ok     bool
	}{
		{"the attested key", good, true},
		{"another stick's key (a relay)", bad, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: ClientConfig(tc.pinned)}}
			resp, err := c.Get(srv.URL)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return
			}
			if err == nil || !errors.Is(err, ErrKeyMismatch) {
				t.Fatalf("Get = %v, want ErrKeyMismatch", err)
			}
		})
	}
	// and TLS 1.2 is refused
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}}}
	if _, err := c.Get(srv.URL); err == nil {
		t.Fatal("a TLS 1.2 client was served")
	}
}
