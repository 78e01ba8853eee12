//go:build !tamago

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/firmware/stick/hostedtest"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/netstack/channel"
	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/verify"
)

// startStick runs the hosted stick with its API on a free loopback port.
func startStick(t *testing.T, args ...string) *hostedtest.Stick {
	t.Helper()
	return hostedtest.Start(t, hostedStick(t), args...)
}

// e2e is what the end-to-end tests share: a box with the example actors,
// a provisioned TPM, the governance key and the hosted image's digest.
type e2e struct {
	node                   *kubotest.Node
	box                    *ipfs.Client
	echo, notary, wc, edge string
	data                   string
	tpm                    *swtpmtest.Server
	roots                  *x509.CertPool
	gov                    ed25519.PrivateKey
	image                  [32]byte
	config                 []byte
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	e := &e2e{node: kubotest.Start(t)}
	e.box = &ipfs.Client{Gateway: e.node.Gateway, API: e.node.API}
	e.echo = e.node.Publish(t, actortest.GoActor(t, "echo")).String()
	e.notary = e.node.Publish(t, actortest.GoActor(t, "notary")).String()
	e.wc = e.node.Publish(t, actortest.GoActor(t, "wordcount")).String()
	e.edge = e.node.Publish(t, actortest.Wat(t, "edge")).String()
	e.data = e.node.Publish(t, []byte(strings.Repeat("to be or not to be\n", 1000))).String()
	caDir := t.TempDir()
	e.tpm = swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: caDir})
	bundle, err := swtpmtest.CABundle(caDir)
	if err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AppendCertsFromPEM(bundle)
	e.gov = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	img, err := os.ReadFile(hostedStick(t))
	if err != nil {
		t.Fatal(err)
	}
	e.image = sha256.Sum256(img)
	e.config = []byte("version=hosted-test\nboard=linux-hosted\n")
	return e
}

func (e *e2e) manifest(t *testing.T, version uint64, key ed25519.PrivateKey, actors ...manifest.Actor) []byte {
	t.Helper()
	b, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: version,
		Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: hex.EncodeToString(e.image[:])},
		Actors:   actors}, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *e2e) args(box string) []string {
	return []string{"-tpm", e.tpm.Socket, "-governance-key", hex.EncodeToString(e.gov.Public().(ed25519.PublicKey)),
		"-box", box, "-box-api", e.node.API}
}

func writeFile(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// enrol runs credential activation against the stick and returns its AK.
func enrol(t *testing.T, c *client.Client, roots *x509.CertPool) []byte {
	t.Helper()
	ctx := context.Background()
	req, err := c.Enrol(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch, pending, err := verify.Enrol(req, roots)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := c.Activate(ctx, ch.CredentialBlob, ch.EncryptedSecret)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := pending.Finish(secret)
	if err != nil {
		t.Fatal(err)
	}
	return ak
}

func cids(t *testing.T, ss ...string) []cid.Cid {
	var out []cid.Cid
	for _, s := range ss {
		c, err := cid.Decode(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// attestVerify attests the stick and verifies the evidence against ref.
func attestVerify(t *testing.T, c *client.Client, ak []byte, ref *verify.Reference) (*core.Attestation, *verify.Verdict) {
	t.Helper()
	nonce := sha256.Sum256([]byte(t.Name() + time.Now().String()))
	a, peer, err := c.Attest(context.Background(), nonce[:])
	if err != nil {
		t.Fatal(err)
	}
	return a, verify.Verify(a.Evidence, verify.Expect{AKPublic: ak, Nonce: nonce[:], ChannelKey: peer, Reference: ref})
}

func apiCode(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("%d %s", e.Status, e.Code)
	}
	return fmt.Sprint(err)
}

// TestHostedEndToEnd is the stick as its users meet it: boot with a
// signed manifest, READY, enrol and attest, invoke each example actor and
// check its receipt offline, push an upgrade and see it in a new
// attestation, refuse tampered and stale manifests.
func TestHostedEndToEnd(t *testing.T) {
	e := newE2E(t)
	ctx := context.Background()
	v1 := e.manifest(t, 1, e.gov,
		manifest.Actor{Name: "echo", CID: e.echo, Grants: []string{"log"}},
		manifest.Actor{Name: "notary", CID: e.notary, Grants: []string{"crypto.sha256", "crypto.sign"}},
		manifest.Actor{Name: "wordcount", CID: e.wc, Grants: []string{"ipfs.cat"}},
	)
	st := startStick(t, append(e.args(e.node.Gateway), "-manifest", writeFile(t, v1))...)
	if l := st.WaitFor("READY:", 2*time.Minute); !strings.HasPrefix(l, "READY: manifest version 1, actors [echo notary wordcount] in ") {
		t.Fatalf("READY line: %q", l)
	}
	c := &client.Client{URL: st.URL}
	status, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !status.Ready || !status.Measured || !status.Attestation.Ready || status.Manifest == nil || status.Manifest.Version != 1 || len(status.Actors) != 3 {
		t.Fatalf("status: %+v", status)
	}
	for _, a := range status.Actors {
		if a.State != core.StateServing {
			t.Errorf("actor %s: %s %s", a.Name, a.State, a.Error)
		}
	}

	// Enrol, attest, verify; then pin the attested channel key.
	ak := enrol(t, c, e.roots)
	ref := &verify.Reference{Events: verify.BootEvents(e.image, e.config, v1), Boot: v1}
	att, verdict := attestVerify(t, c, ak, ref)
	if !verdict.OK() {
		t.Fatalf("verdict:\n%s", verdict)
	}
	if len(att.Manifests) != 1 || !bytes.Equal(att.Manifests[0], v1) {
		t.Errorf("attestation names manifests %d, want v1", len(att.Manifests))
	}
	c.Pin(client.KeyDigest(c.PeerKey()))

	// The no-op handler is in benchmark builds (tag benchnoop) only.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: channel.ClientConfig(client.KeyDigest(c.PeerKey()))}}
	if resp, err := hc.Post(st.URL+core.NoopPath, "application/json", strings.NewReader("{}")); err != nil {
		t.Error(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST %s on a production build: %s, want 404", core.NoopPath, resp.Status)
	}

	// Each example actor, each receipt checked offline.
	check := func(name, op string, payload []byte) *core.Result {
		t.Helper()
		res, err := c.Invoke(ctx, name, op, payload)
		if err != nil {
			t.Fatalf("%s.%s: %v", name, op, err)
		}
		if err := receipt.Verify(res.Receipt, verdict.Keys.Result); err != nil {
			t.Fatalf("%s.%s receipt: %v", name, op, err)
		}
		if err := receipt.CheckInput(res.Receipt, payload, res.Output); err != nil {
			t.Fatalf("%s.%s receipt: %v", name, op, err)
		}
		if res.Receipt.Actor != name || res.Receipt.Operation != op || res.Receipt.ManifestVersion < 1 {
			t.Fatalf("%s.%s receipt names %+v", name, op, res.Receipt)
		}
		return res
	}
	if r := check("echo", "echo", []byte("hello stick")); string(r.Output) != "hello stick" || r.Receipt.CID != e.echo {
		t.Errorf("echo: %q, receipt CID %s", r.Output, r.Receipt.CID)
	}
	r := check("notary", "notarize", []byte("abc"))
	var stmt struct{ SHA256, Signature string }
	if err := json.Unmarshal(r.Output, &stmt); err != nil {
		t.Fatal(err)
	}
	// The notary's signature is the certified result key's, over the
	// actor message: anyone holding the attestation can check it.
	resultKey, _, err := verify.CertifiedKey(ak, att.ResultKey, receipt.Qualifying())
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(stmt.Signature)
	d := sha256.Sum256([]byte("abc"))
	if !ed25519.Verify(resultKey, runtime.ActorMessage(cids(t, e.notary)[0], d[:]), sig) {
		t.Error("notary signature does not verify with the certified result key")
	}
	if r := check("wordcount", "count", []byte(e.data)); !strings.Contains(string(r.Output), `"words":6000`) {
		t.Errorf("wordcount: %s", r.Output)
	}

	// A receipt with one flipped bit fails.
	r = check("echo", "echo", []byte("x"))
	bad := *r.Receipt
	bad.Counter ^= 1
	if err := receipt.Verify(&bad, verdict.Keys.Result); err == nil {
		t.Error("receipt with a flipped counter bit verified")
	}

	// Bad input: each answer names the problem.
	raw := func(method, path, body string) (int, string) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
		req, _ := http.NewRequest(method, st.URL+path, strings.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Error core.APIError }
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: %d not JSON: %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, e.Error.Code
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		name               string
	}{
		{"POST", "/v1/actors/echo/invoke", `{"operation":`, 400, "malformed_json"},
		{"POST", "/v1/actors/echo/invoke", `{"operation":"echo","extra":1}`, 400, "malformed_json"},
		{"POST", "/v1/actors/echo/invoke", `{"operation":""}`, 400, "bad_operation"},
		{"POST", "/v1/actors/nobody/invoke", `{"operation":"echo"}`, 404, "unknown_actor"},
		{"POST", "/v1/actors/echo/invoke", `{"operation":"nope"}`, 422, "actor_error"},
		{"POST", "/v1/actors/echo/invoke", `{"operation":"echo","payload":"` + strings.Repeat("A", 2<<20) + `"}`, 413, "payload_too_large"},
		{"POST", "/v1/attest", `{"nonce":"00"}`, 400, "bad_nonce"},
		{"POST", "/v1/attest", `{"nonce":"zz"}`, 400, "bad_nonce"},
		{"GET", "/v1/attest", ``, 405, "method_not_allowed"},
		{"GET", "/v1/nothing", ``, 404, "not_found"},
		{"POST", "/v1/manifest", `{}`, 400, "invalid_manifest"},
	} {
		if code, name := raw(tc.method, tc.path, tc.body); code != tc.code || name != tc.name {
			t.Errorf("%s %s %.40q: %d %s, want %d %s", tc.method, tc.path, tc.body, code, name, tc.code, tc.name)
		}
	}

	// Manifests that must be refused, each for its reason.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	tampered := bytes.Replace(e.manifest(t, 5, e.gov, manifest.Actor{Name: "echo", CID: e.echo, Grants: []string{"log"}}),
		[]byte(`"grants":["log"]`), []byte(`"grants":["ipfs"]`), 1)
	for _, tc := range []struct {
		name string
		m    []byte
		want string
	}{
		{"stale", v1, "409 stale_manifest"},
		{"tampered", tampered, "403 bad_signature"},
		{"other governance key", e.manifest(t, 6, other), "403 bad_signature"},
	} {
		if _, err := c.Manifest(ctx, tc.m); apiCode(err) != tc.want {
			t.Errorf("%s manifest: %v, want %s", tc.name, err, tc.want)
		}
	}

	// Upgrade: echo moves to the WAT edge actor (it echoes too), notary
	// is dropped, wordcount is unchanged.
	v2 := e.manifest(t, 2, e.gov,
		manifest.Actor{Name: "echo", CID: e.edge, Grants: []string{"log"}},
		manifest.Actor{Name: "wordcount", CID: e.wc, Grants: []string{"ipfs.cat"}},
	)
	up, err := c.Manifest(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	if up.Status.Manifest.Version != 2 || len(up.ActorErrors) != 0 || len(up.Status.Actors) != 2 || up.Status.Actors[0].Serving != e.edge {
		t.Fatalf("after upgrade: %+v", up)
	}
	if r := check("echo", "echo", []byte("after")); r.Receipt.CID != e.edge || r.Receipt.ManifestVersion != 2 || string(r.Output) != "after" {
		t.Errorf("after upgrade echo ran %s v%d: %q", r.Receipt.CID, r.Receipt.ManifestVersion, r.Output)
	}
	if _, err := c.Invoke(ctx, "notary", "hash", nil); apiCode(err) != "404 unknown_actor" {
		t.Errorf("dropped notary: %v", err)
	}
	// The old reference no longer verifies (the upgrade is on PCR 10); one
	// that knows the upgrade does.
	_, verdict = attestVerify(t, c, ak, ref)
	if verdict.OK() || !slices.ContainsFunc(verdict.Failed(), func(c verify.Check) bool { return c.PCR == 10 }) {
		t.Errorf("old reference after an upgrade:\n%s", verdict)
	}
	ref2 := &verify.Reference{Events: ref.Events, Boot: v1, Upgrades: [][]byte{v2}}
	att2, verdict := attestVerify(t, c, ak, ref2)
	if !verdict.OK() {
		t.Fatalf("after upgrade:\n%s", verdict)
	}
	if len(att2.Manifests) != 2 || !bytes.Equal(att2.Manifests[1], v2) {
		t.Errorf("attestation after upgrade names %d manifests", len(att2.Manifests))
	}

	// An upgrade whose actor cannot load keeps the old version serving.
	notWasm := e.node.Publish(t, []byte("this is not a module")).String()
	v3 := e.manifest(t, 3, e.gov,
		manifest.Actor{Name: "echo", CID: notWasm, Grants: []string{"log"}},
		manifest.Actor{Name: "wordcount", CID: e.wc, Grants: []string{"ipfs.cat"}},
	)
	up, err = c.Manifest(ctx, v3)
	if err != nil {
		t.Fatal(err)
	}
	if up.Status.Manifest.Version != 3 || !strings.Contains(up.ActorErrors["echo"], "not a WebAssembly") {
		t.Fatalf("failed upgrade: %+v", up)
	}
	if r := check("echo", "echo", []byte("still")); r.Receipt.CID != e.edge {
		t.Errorf("after a failed upgrade echo ran %s", r.Receipt.CID)
	}

	m, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"teastick_ready 1", "teastick_manifest_version 3", `teastick_actor_calls_total{actor="echo"}`, `teastick_http_requests_total{code="200"}`, "teastick_upgrades_total 2"} {
		if !strings.Contains(m, w) {
			t.Errorf("metrics lack %q:\n%s", w, m)
		}
	}
}

// A box that tampers with one actor's blocks: that actor is not served,
// the status says why, the others come up.
func TestHostedHostileBox(t *testing.T) {
	e := newE2E(t)
	wcCID := cids(t, e.wc)[0]
	hostile := e.node.Tampering(t, e.wc)
	v1 := e.manifest(t, 1, e.gov,
		manifest.Actor{Name: "echo", CID: e.echo, Grants: []string{"log"}},
		manifest.Actor{Name: "wordcount", CID: e.wc, Grants: []string{"ipfs.cat"}},
	)
	st := startStick(t, append(e.args(hostile), "-manifest", writeFile(t, v1))...)
	if l := st.WaitFor("READY:", 2*time.Minute); !strings.HasPrefix(l, "READY: manifest version 1, actors [echo], NOT SERVED [wordcount]") {
		t.Fatalf("READY line: %q", l)
	}
	c := &client.Client{URL: st.URL}
	status, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range status.Actors {
		switch a.Name {
		case "echo":
			if a.State != core.StateServing {
				t.Errorf("echo: %+v", a)
			}
		case "wordcount":
			if a.State != core.StateFailed || !strings.Contains(a.Error, wcCID.String()) {
				t.Errorf("wordcount: %+v", a)
			}
		}
	}
	if _, err := c.Invoke(context.Background(), "wordcount", "count", nil); err == nil {
		t.Error("the tampered actor served")
	}
	if res, err := c.Invoke(context.Background(), "echo", "echo", []byte("ok")); err != nil || string(res.Output) != "ok" {
		t.Errorf("echo beside a tampered actor: %v", err)
	}
}

// TestHostedLoad: 32 clients invoke for 60 seconds (LOAD_SECONDS
// overrides). No request fails except documented 429s, every receipt
// counter is unique, and the heap stays bounded; the figures are printed.
func TestHostedLoad(t *testing.T) {
	seconds := 60
	if s := os.Getenv("LOAD_SECONDS"); s != "" {
		fmt.Sscan(s, &seconds)
	}
	const clients = 32
	e := newE2E(t)
	v1 := e.manifest(t, 1, e.gov,
		manifest.Actor{Name: "echo", CID: e.echo, Grants: []string{"log"}, Limits: manifest.Limits{MaxConcurrent: 8}},
		manifest.Actor{Name: "notary", CID: e.notary, Grants: []string{"crypto.sha256", "crypto.sign"}, Limits: manifest.Limits{MaxConcurrent: 4}},
	)
	st := startStick(t, append(e.args(e.node.Gateway), "-manifest", writeFile(t, v1))...)
	st.WaitFor("READY:", 2*time.Minute)
	c := &client.Client{URL: st.URL}
	ctx := context.Background()
	if _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	c.Pin(client.KeyDigest(c.PeerKey()))
	r, err := c.Load(ctx, clients, time.Duration(seconds)*time.Second, func(i, n int) client.Call {
		if (i+n)%4 == 0 {
			return client.Call{Actor: "notary", Operation: "hash", Payload: fmt.Appendf(nil, "client %d call %d", i, n)}
		}
		return client.Call{Actor: "echo", Operation: "echo", Payload: fmt.Appendf(nil, "client %d call %d", i, n)}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %s", r)
	if len(r.Failed) > 0 {
		t.Errorf("%d requests failed, first: %s", len(r.Failed), r.Failed[0])
	}
	if r.OK == 0 {
		t.Error("no request succeeded")
	}
	// Bounded: the pools hold at most max_concurrent instances per actor,
	// so the heap must not grow with the number of requests served.
	if r.LiveEnd > 2*r.LiveStart+32<<20 || r.HeapEnd > 2*r.HeapStart+64<<20 {
		t.Errorf("heap grew: %s", r)
	}
	if s, err := c.Status(ctx); err != nil || !s.Ready {
		t.Errorf("after the load: %+v %v", s, err)
	}
}
