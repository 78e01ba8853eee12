package core

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// faultBox is a FAULT-INJECTION stand-in for the box's verified fetcher:
// it serves modules from memory and fails on demand. The real box (kubo)
// is used by the end-to-end tests in firmware/stick.
type faultBox struct {
	mu      sync.Mutex
	content map[string][]byte
	fail    map[string]error
	stall   map[string]chan struct{} // FAULT: the fetch waits for close
	fetches map[string]int
	running map[string]int // fetches under way
}

func (b *faultBox) put(data []byte) string {
	c := actortest.CID(data)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.content == nil {
		b.content = map[string][]byte{}
	}
	b.content[c.String()] = data
	return c.String()
}

func (b *faultBox) Fetch(ctx context.Context, c cid.Cid) ([]byte, error) {
	b.mu.Lock()
	if b.fetches == nil {
		b.fetches = map[string]int{}
	}
	b.fetches[c.String()]++
	if b.running == nil {
		b.running = map[string]int{}
	}
	b.running[c.String()]++
	stall := b.stall[c.String()]
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.running[c.String()]--
		b.mu.Unlock()
	}()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: the box stalled: %w", c, ctx.Err())
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.fail[c.String()]; err != nil {
		return nil, err
	}
	d, ok := b.content[c.String()]
	if !ok {
		return nil, fmt.Errorf("%s: not on the box", c)
	}
	return d, nil
}

var testGov = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))

var testImage = sha256.Sum256([]byte("test stick image"))

// measured starts a provisioned swtpm and measures a boot on it
// (measuredOn).
func measured(t testing.TB) Config {
	t.Helper()
	return measuredOn(t, swtpmtest.Start(t, swtpmtest.Options{Provision: true}))
}

// measuredOn measures a boot on sw as stage 0 and the hosted stick would:
// PCR 0 as the hosted stick begins it (the manifests name no stage 0),
// image, hand-off separators, configuration. It returns the configuration
// with the TPM's connection.
func measuredOn(t testing.TB, sw *swtpmtest.Server) Config {
	t.Helper()
	tpm := sw.OpenT(t)
	m, err := measure.New(tpm, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		m.MeasureStage0(measure.NoStage0, "test: no stage 0"),
		m.Extend(measure.PCRImage, eventlog.EV_IPL, testImage, []byte("test image")),
		m.Separator(measure.HandoffPCRs...),
		m.MeasureConfig([]byte("version=test\n")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return Config{Version: "test", Board: "test", TPM: tpm, Measurer: m, Governance: []ed25519.PublicKey{testGov.Public().(ed25519.PublicKey)}}
}

func sign(t testing.TB, version uint64, actors ...manifest.Actor) []byte {
	t.Helper()
	b, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: version,
		Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: hex.EncodeToString(testImage[:])}, Actors: actors}, testGov)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newStick(t testing.TB, cfg Config) (*Stick, *syncBuffer) {
	t.Helper()
	var log syncBuffer
	cfg.Log = &log
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &log
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is what the stick printed so far (its retries print while a
// test reads).
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// call posts to the API and decodes the answer.
func call(t testing.TB, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", method, path, rec.Code, rec.Body.String())
	}
	return rec.Code, out
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// An actor that cannot be fetched, or whose bytes are not what its CID
// names, is not served and is reported; the others come up; PCR 9 is
// closed either way.
func TestBootServesWhatLoads(t *testing.T) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	missing := actortest.CID([]byte("never published")).String()
	lying := actortest.CID([]byte("what the CID names")).String()
	box.content[lying] = actortest.Wat(t, "edge") // FAULT: other bytes
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	s, log := newStick(t, cfg)
	err := s.Boot(context.Background(), sign(t, 1,
		manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log"}},
		manifest.Actor{Name: "lying", CID: lying},
		manifest.Actor{Name: "missing", CID: missing},
	))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "READY: manifest version 1, actors [edge], NOT SERVED [lying missing]") {
		t.Fatalf("console:\n%s", log)
	}
	// One line per actor loaded on the (quiet) console: the stick's, not
	// the runtime's besides.
	if strings.Count(log.String(), "edge") != strings.Count(log.String(), "actor: edge")+strings.Count(log.String(), "[edge]") {
		t.Errorf("the console says more than one line of edge's load:\n%s", log)
	}
	st := s.Status()
	want := map[string]string{"edge": StateServing, "lying": StateFailed, "missing": StateFailed}
	for _, a := range st.Actors {
		if a.State != want[a.Name] {
			t.Errorf("%s: %s (%s)", a.Name, a.State, a.Error)
		}
	}
	if !strings.Contains(st.Actors[1].Error, "CID") || !strings.Contains(st.Actors[2].Error, "not on the box") {
		t.Errorf("errors do not say why: %+v", st.Actors)
	}
	var sep9 int
	for _, e := range cfg.Measurer.Events() {
		if e.PCR == measure.PCRBootActors && e.Type == eventlog.EV_SEPARATOR {
			sep9++
		}
	}
	if sep9 != 1 {
		t.Errorf("%d separators on PCR 9", sep9)
	}
	code, out := call(t, s.Handler(), "POST", "/v1/actors/missing/invoke", `{"operation":"echo"}`)
	if code != 503 || errCode(out) != "actor_not_served" {
		t.Errorf("invoking a failed actor: %d %v", code, out)
	}
	code, out = call(t, s.Handler(), "POST", "/v1/actors/edge/invoke", `{"operation":"echo","payload":"aGk="}`)
	if code != 200 || out["result"] != "aGk=" {
		t.Errorf("invoke edge: %d %v", code, out)
	}
}

// Without measured boot nothing is accepted or served, and the API says so.
func TestNotMeasuredServesNothing(t *testing.T) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	s, _ := newStick(t, Config{Version: "test", Board: "test", NotMeasured: errors.New("no TPM"), Fetch: box.Fetch,
		Governance: []ed25519.PublicKey{testGov.Public().(ed25519.PublicKey)}})
	m := sign(t, 1, manifest.Actor{Name: "edge", CID: edge})
	if err := s.Boot(context.Background(), m); !errors.Is(err, ErrNotMeasured) {
		t.Fatalf("boot without measurement: %v", err)
	}
	h := s.Handler()
	for _, tc := range []struct{ method, path, body, code string }{
		{"POST", "/v1/manifest", string(m), "not_measured"},
		{"POST", "/v1/attest", `{"nonce":"0011223344556677"}`, "no_tpm"},
		{"POST", "/v1/actors/edge/invoke", `{"operation":"echo"}`, "not_measured"},
	} {
		if _, out := call(t, h, tc.method, tc.path, tc.body); errCode(out) != tc.code {
			t.Errorf("%s %s: %v, want %s", tc.method, tc.path, out, tc.code)
		}
	}
	if _, err := s.Invoke(context.Background(), "edge", "echo", nil); !errors.Is(err, ErrNotMeasured) {
		t.Errorf("invoke: %v", err)
	}
	if st := s.Status(); st.Measured || st.Attestation.Ready || !strings.Contains(st.NotMeasured, "no TPM") {
		t.Errorf("status: %+v", st)
	}
}

// A stick that was not measured beside a TPM nobody started (the stick
// booted without stage 0) says so, and does not call the unstarted TPM a
// fault or its rollback counter unusable: it sends the TPM nothing.
func TestNotMeasuredLeavesTheTPMAlone(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	s, log := newStick(t, Config{Version: "test", Board: "test", TPM: sw.OpenT(t), NotMeasured: errors.New("no hand-off from stage 0"),
		TPMProbeInterval: time.Millisecond, Governance: []ed25519.PublicKey{testGov.Public().(ed25519.PublicKey)}})
	st := s.Status()
	if st.Measured || !st.TPM.Present || st.TPM.OK || !strings.Contains(st.TPM.Fault, "not used") || !strings.Contains(st.TPM.RollbackError, "not read") {
		t.Errorf("status: %+v", st.TPM)
	}
	if err := s.tpm.Fault(); err != nil {
		t.Errorf("the unstarted TPM was marked faulty: %v", err)
	}
	if out := log.String(); strings.Contains(out, "FAULT") || strings.Contains(out, "REFUSING") {
		t.Errorf("console:\n%s", out)
	}
}

// Faults map to their documented answers, and load to 429 and 503
// instead of a queue without bound.
func TestFaultsAndOverload(t *testing.T) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	cfg.MaxInFlight = 2
	s, _ := newStick(t, cfg)
	if err := s.Boot(context.Background(), sign(t, 1,
		manifest.Actor{Name: "edge", CID: edge, Limits: manifest.Limits{TimeoutMillis: 600, MaxConcurrent: 1, MaxResponse: 1024, MaxRequest: 4096}})); err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	for _, tc := range []struct {
		op, payload string
		code        int
		name        string
	}{
		{"trap", "", 502, "actor_fault"},
		{"huge", "", 502, "actor_fault"},
		{"fail", "", 422, "actor_error"},
		{"loop", "", 504, "deadline"},
		{"echo", strings.Repeat("x", 5000), 413, "payload_too_large"},
	} {
		body, _ := json.Marshal(InvokeRequest{Operation: tc.op, Payload: []byte(tc.payload)})
		if code, out := call(t, h, "POST", "/v1/actors/edge/invoke", string(body)); code != tc.code || errCode(out) != tc.name {
			t.Errorf("%s: %d %v, want %d %s", tc.op, code, out, tc.code, tc.name)
		}
	}
	// One call loops until its deadline; a second waits past the queue
	// wait (250 ms) and is told the actor is busy; a third finds no room.
	var wg sync.WaitGroup
	codes := make([]string, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, out := call(t, h, "POST", "/v1/actors/edge/invoke", `{"operation":"loop"}`)
			codes[i] = fmt.Sprint(code, " ", errCode(out))
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	got := strings.Join(codes, ",")
	for _, want := range []string{"504 deadline", "429 busy", "503 overloaded"} {
		if !strings.Contains(got, want) {
			t.Errorf("concurrent loops answered %s, want one %s", got, want)
		}
	}
	if st := s.Status(); st.Counters.Overload < 2 {
		t.Errorf("overload counter %d", st.Counters.Overload)
	}
	if code, _ := call(t, h, "GET", "/v1/status", ""); code != 200 {
		t.Errorf("status after load: %d", code)
	}
}

// A stale, unsigned, foreign or wrong-image manifest changes nothing.
func TestManifestRefusals(t *testing.T) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	s, _ := newStick(t, cfg)
	h := s.Handler()
	v2 := sign(t, 2, manifest.Actor{Name: "edge", CID: edge})
	if code, out := call(t, h, "POST", "/v1/manifest", string(v2)); code != 200 {
		t.Fatalf("boot manifest: %d %v", code, out)
	}
	foreign, _ := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: 9,
		Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: hex.EncodeToString(testImage[:])}},
		ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	wrongImage, _ := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: 9,
		Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: strings.Repeat("1", 64)}}, testGov)
	for _, tc := range []struct {
		name string
		body []byte
		code int
		err  string
	}{
		{"stale", sign(t, 1), 409, "stale_manifest"},
		{"same version", v2, 409, "stale_manifest"},
		{"foreign key", foreign, 403, "bad_signature"},
		{"wrong image", wrongImage, 409, "wrong_image"},
		{"not JSON", []byte("garbage"), 400, "invalid_manifest"},
		{"too big", bytes.Repeat([]byte(" "), manifest.MaxSize+1), 413, "payload_too_large"},
	} {
		if code, out := call(t, h, "POST", "/v1/manifest", string(tc.body)); code != tc.code || errCode(out) != tc.err {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, out, tc.code, tc.err)
		}
	}
	if v := s.ManifestVersion(); v != 2 {
		t.Errorf("version %d after refusals", v)
	}
}

var _ = runtime.ErrBusy

// An upgrade that fails an actor says "old version kept" only for an actor
// that has one; an actor new in the upgrade is reported as not served.
func TestUpgradeFailureNamesWhatServes(t *testing.T) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	missing := actortest.CID([]byte("never published")).String()
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	cfg.RetryMin = time.Hour // no retry while the test reads the console
	s, log := newStick(t, cfg)
	if err := s.Boot(context.Background(), sign(t, 1, manifest.Actor{Name: "edge", CID: edge})); err != nil {
		t.Fatal(err)
	}
	err := s.Upgrade(context.Background(), sign(t, 2,
		manifest.Actor{Name: "edge", CID: missing},
		manifest.Actor{Name: "fresh", CID: missing}))
	var ue *UpgradeError
	if !errors.As(err, &ue) || len(ue.Failed) != 2 {
		t.Fatalf("upgrade: %v, want both actors failed", err)
	}
	out := log.String()
	for _, want := range []string{
		"actor: edge upgrade to " + missing + " FAILED, old version kept: ",
		"actor: fresh NOT SERVED (new in this upgrade): ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fresh upgrade to") {
		t.Errorf("console says an actor new in the upgrade kept an old version:\n%s", out)
	}
}
