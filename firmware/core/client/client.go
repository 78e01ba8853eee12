// Package client talks to a stick's API (firmware/core/openapi.yaml) from
// a host: teactl and the tests use it.
//
// The channel is TLS whose server key is the stick's channel key. A client
// that has not attested the stick yet accepts any key but records the one
// it saw (PeerKey), so the verifier can check that the quote binds exactly
// that key; after a successful attestation Pin makes every later request
// refuse any other key, so a box relaying the genuine stick's quote cannot
// answer in its place.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/netstack/channel"
	"github.com/teastick/teastick/tpm/attest"
)

// Client is one stick's API.
type Client struct {
	// URL is the API's base URL, e.g. https://127.0.0.1:8443.
	URL string
	// Timeout bounds each request (default 30 s; manifest upgrades get
	// UpgradeTimeout).
	Timeout time.Duration
	// UpgradeTimeout bounds POST /v1/manifest, which fetches and compiles
	// actors (default 5 minutes).
	UpgradeTimeout time.Duration

	mu     sync.Mutex
	pinned *[32]byte
	peer   []byte
	hc     *http.Client
}

// Error is an API error answer.
type Error struct {
	Status int
	core.APIError
}

func (e *Error) Error() string {
	return fmt.Sprintf("stick: %d %s: %s", e.Status, e.Code, e.Message)
}

// ErrUnreachable wraps connection failures.
var ErrUnreachable = errors.New("stick unreachable")

// Pin makes the client accept only a server whose channel key has this
// digest.
func (c *Client) Pin(digest [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinned = &digest
	c.hc = nil
}

// PeerKey is the PKIX DER of the channel key seen on the last connection.
func (c *Client) PeerKey() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.peer)
}

func (c *Client) http() *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hc != nil {
		return c.hc
	}
	var cfg *tls.Config
	if c.pinned != nil {
		cfg = channel.ClientConfig(*c.pinned)
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	}
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 0}
	c.hc = &http.Client{Transport: tr}
	return c.hc
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, timeout time.Duration, out any) error {
	if timeout <= 0 {
		timeout = c.Timeout
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if errors.Is(err, channel.ErrKeyMismatch) {
			return err
		}
		return fmt.Errorf("%w: %s %s: %v", ErrUnreachable, method, c.URL, err)
	}
	defer resp.Body.Close()
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		if der, err := x509.MarshalPKIXPublicKey(resp.TLS.PeerCertificates[0].PublicKey); err == nil {
			c.mu.Lock()
			c.peer = der
			c.mu.Unlock()
		}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: %s %s: reading the answer: %v", ErrUnreachable, method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error core.APIError `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			e.Error = core.APIError{Code: "http", Message: strings.TrimSpace(string(b))}
		}
		return &Error{Status: resp.StatusCode, APIError: e.Error}
	}
	if out == nil {
		return nil
	}
	if s, ok := out.(*string); ok {
		*s = string(b)
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("stick: %s %s: bad answer: %v", method, path, err)
	}
	return nil
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (*core.Status, error) {
	var st core.Status
	return &st, c.do(ctx, http.MethodGet, "/v1/status", nil, 0, &st)
}

// Metrics is GET /metrics (Prometheus text).
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var s string
	return s, c.do(ctx, http.MethodGet, "/metrics", nil, 0, &s)
}

// Attest is POST /v1/attest. It also returns the PKIX DER of the channel
// key the answer came over, which the quote must bind.
func (c *Client) Attest(ctx context.Context, nonce []byte) (*core.Attestation, []byte, error) {
	body, _ := json.Marshal(core.AttestRequest{Nonce: hex.EncodeToString(nonce)})
	var a core.Attestation
	if err := c.do(ctx, http.MethodPost, "/v1/attest", body, 0, &a); err != nil {
		return nil, nil, err
	}
	return &a, c.PeerKey(), nil
}

// Enrol is GET /v1/enrol.
func (c *Client) Enrol(ctx context.Context) (*attest.Enrolment, error) {
	var e attest.Enrolment
	return &e, c.do(ctx, http.MethodGet, "/v1/enrol", nil, 0, &e)
}

// Activate is POST /v1/enrol/activate.
func (c *Client) Activate(ctx context.Context, credentialBlob, encryptedSecret []byte) ([]byte, error) {
	body, _ := json.Marshal(core.ActivateRequest{CredentialBlob: credentialBlob, EncryptedSecret: encryptedSecret})
	var r core.ActivateResponse
	return r.Secret, c.do(ctx, http.MethodPost, "/v1/enrol/activate", body, 0, &r)
}

// Invoke is POST /v1/actors/{name}/invoke.
func (c *Client) Invoke(ctx context.Context, name, op string, payload []byte) (*core.Result, error) {
	body, _ := json.Marshal(core.InvokeRequest{Operation: op, Payload: payload})
	var r core.Result
	return &r, c.do(ctx, http.MethodPost, "/v1/actors/"+name+"/invoke", body, 0, &r)
}

// Manifest is POST /v1/manifest: the first manifest boots the stick's
// actors, a newer one upgrades them.
func (c *Client) Manifest(ctx context.Context, signed []byte) (*core.ManifestResponse, error) {
	t := c.UpgradeTimeout
	if t <= 0 {
		t = 5 * time.Minute
	}
	var r core.ManifestResponse
	return &r, c.do(ctx, http.MethodPost, "/v1/manifest", signed, t, &r)
}

// KeyDigest is the SHA-256 of a PKIX DER key, what Pin takes.
func KeyDigest(der []byte) [32]byte { return sha256.Sum256(der) }
