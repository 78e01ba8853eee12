package core

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// guard bounds how long a test waits for something that, with the fix,
// happens at once; it turns a hang into a failure with a reason.
const guard = 30 * time.Second

// bodyProbe is a TEST PROBE around the stick's handler: it reports each
// hostile request once the stick starts to read its body or has answered
// it without reading it, so the test knows the request got past
// everything that comes before its body.
func bodyProbe(h http.Handler, reached chan<- string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get("X-Hostile")
		if name == "" {
			h.ServeHTTP(w, r)
			return
		}
		var once sync.Once
		report := func() { once.Do(func() { reached <- name }) }
		r.Body = &firstRead{ReadCloser: r.Body, f: report}
		h.ServeHTTP(w, r)
		report()
	})
}

type firstRead struct {
	io.ReadCloser
	f func()
}

func (r *firstRead) Read(p []byte) (int, error) {
	r.f()
	return r.ReadCloser.Read(p)
}

// hostileClient sends an invoke's headers and the first bytes of its body,
// then stalls or trickles the rest (a byte every 100 ms). done is closed
// when the stick closes the connection; answer is what it wrote first.
type hostileClient struct {
	conn   net.Conn
	answer string
	done   chan struct{}
}

func startHostile(t *testing.T, addr, name string, trickle bool) *hostileClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := `{"operation":"echo","payload":"` + strings.Repeat("A", 4000) + `"}`
	fmt.Fprintf(c, "POST /v1/actors/edge/invoke HTTP/1.1\r\nHost: stick\r\nX-Hostile: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		name, len(body), body[:20])
	h := &hostileClient{conn: c, done: make(chan struct{})}
	stop := make(chan struct{})
	if trickle {
		go func() {
			for i := 20; i < len(body)-1; i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
			}
		}()
	}
	go func() {
		defer close(h.done)
		defer close(stop)
		c.SetReadDeadline(time.Now().Add(2 * guard))
		b, _ := io.ReadAll(bufio.NewReader(c))
		h.answer = string(b)
	}()
	return h
}

// Clients that send their headers and then stall or trickle their bodies
// hold no API slot: with more of them than slots, a normal client's status
// and invoke still answer, and the read timeout closes the hostile
// connections (408 request_timeout).
func TestSlowBodiesDoNotStarve(t *testing.T) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	cfg.MaxInFlight = 8
	cfg.Timeouts = Timeouts{Read: 2 * time.Second}
	s, _ := newStick(t, cfg)
	if err := s.Boot(context.Background(), sign(t, 1, manifest.Actor{Name: "edge", CID: edge})); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reached := make(chan string, 64)
	srv := s.Server(bodyProbe(s.Handler(), reached))
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	const n = 12 // more than MaxInFlight
	var hostile []*hostileClient
	for i := range n {
		hostile = append(hostile, startHostile(t, l.Addr().String(), fmt.Sprint("h", i), i%2 == 1))
	}
	for range n {
		select {
		case <-reached:
		case <-time.After(guard):
			t.Fatal("the hostile requests did not reach the stick")
		}
	}

	base := "http://" + l.Addr().String()
	resp, err := http.Get(base + "/v1/status")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status under slow bodies: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, err = http.Post(base+"/v1/actors/edge/invoke", "application/json", strings.NewReader(`{"operation":"echo","payload":"aGk="}`))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || out["result"] != "aGk=" {
		t.Errorf("invoke with %d slow bodies pending: %d %v", n, resp.StatusCode, out)
	}

	for i, h := range hostile {
		select {
		case <-h.done:
		case <-time.After(guard):
			t.Fatalf("hostile client %d: connection still open after %v (read timeout %v)", i, guard, cfg.Timeouts.Read)
		}
		if !strings.HasPrefix(h.answer, "HTTP/1.1 408") || !strings.Contains(h.answer, `"request_timeout"`) {
			t.Errorf("hostile client %d was answered %q", i, h.answer)
		}
	}
}

// holdingBox is a FAULT-INJECTION box: fetching hold blocks until release
// is closed, so an upgrade that needs it holds the upgrade lock.
type holdingBox struct {
	*faultBox
	hold             string
	entered, release chan struct{}
	once             sync.Once
}

func (b *holdingBox) Fetch(ctx context.Context, c cid.Cid) ([]byte, error) {
	if c.String() == b.hold {
		b.once.Do(func() { close(b.entered) })
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.faultBox.Fetch(ctx, c)
}

// A forged or stale manifest is refused at once while an upgrade holds
// the upgrade lock, not after it.
func TestBadManifestDoesNotWaitForUpgrade(t *testing.T) {
	box := &holdingBox{faultBox: &faultBox{}, entered: make(chan struct{}), release: make(chan struct{})}
	edge := box.put(actortest.Wat(t, "edge"))
	slow := box.put(append(actortest.Wat(t, "edge"), 0, 0)) // another CID; never compiled
	box.hold = slow
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	s, _ := newStick(t, cfg)
	h := s.Handler()
	v1 := sign(t, 1, manifest.Actor{Name: "edge", CID: edge})
	if code, out := call(t, h, "POST", "/v1/manifest", string(v1)); code != 200 {
		t.Fatalf("boot: %d %v", code, out)
	}
	var released sync.Once
	release := func() { released.Do(func() { close(box.release) }) }
	t.Cleanup(release)
	upgraded := make(chan int, 1)
	v2 := sign(t, 2, manifest.Actor{Name: "slow", CID: slow})
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/manifest", bytes.NewReader(v2)))
		upgraded <- rec.Code
	}()
	select {
	case <-box.entered:
	case <-time.After(guard):
		t.Fatal("the upgrade did not start fetching")
	}

	forged := bytes.Replace(sign(t, 3, manifest.Actor{Name: "edge", CID: edge}), []byte(`"version":3`), []byte(`"version":4`), 1)
	for _, tc := range []struct {
		name string
		body []byte
		code int
		err  string
	}{
		{"forged", forged, 403, "bad_signature"},
		{"stale", v1, 409, "stale_manifest"},
	} {
		answered := make(chan string, 1)
		go func() {
			code, out := call(t, h, "POST", "/v1/manifest", string(tc.body))
			answered <- fmt.Sprint(code, " ", errCode(out))
		}()
		select {
		case got := <-answered:
			if want := fmt.Sprint(tc.code, " ", tc.err); got != want {
				t.Errorf("%s manifest during an upgrade: %s, want %s", tc.name, got, want)
			}
		case <-time.After(guard):
			release()
			t.Fatalf("%s manifest: no answer while an upgrade held the lock", tc.name)
		}
	}
	// The console's manifest command calls Apply directly: the same.
	applied := make(chan error, 1)
	go func() { applied <- s.Apply(context.Background(), forged) }()
	select {
	case err := <-applied:
		if err == nil {
			t.Error("Apply took a forged manifest")
		}
	case <-time.After(guard):
		release()
		t.Fatal("Apply of a forged manifest waited for the upgrade in progress")
	}
	release()
	if code := <-upgraded; code != 200 {
		t.Errorf("the held upgrade answered %d", code)
	}
}

// countingTPM is a TEST PROBE: it counts the commands sent to the TPM by
// command code.
type countingTPM struct {
	transport.TPM
	mu sync.Mutex
	n  map[tpm2.TPMCC]int
}

func (c *countingTPM) Send(cmd []byte) ([]byte, error) {
	if len(cmd) >= 10 {
		c.mu.Lock()
		if c.n == nil {
			c.n = map[tpm2.TPMCC]int{}
		}
		c.n[tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10]))]++
		c.mu.Unlock()
	}
	return c.TPM.Send(cmd)
}

func (c *countingTPM) count(cc tpm2.TPMCC) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[cc]
}

func (c *countingTPM) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

// GET /v1/enrol, which anyone who reaches the API may call, does not make
// the TPM derive the EK again each time: after the first, it costs no TPM
// command.
func TestEnrolOncePerBoot(t *testing.T) {
	cfg := measured(t)
	probe := &countingTPM{TPM: cfg.TPM}
	cfg.TPM = probe
	cfg.TPMProbeInterval = -1
	s, _ := newStick(t, cfg)
	h := s.Handler()
	code, first := call(t, h, "GET", "/v1/enrol", "")
	if code != 200 || first["EKCert"] == nil {
		t.Fatalf("enrol: %d %v", code, first)
	}
	primaries, sent := probe.count(tpm2.TPMCCCreatePrimary), probe.total()
	for range 5 {
		code, again := call(t, h, "GET", "/v1/enrol", "")
		if code != 200 || fmt.Sprint(again) != fmt.Sprint(first) {
			t.Fatalf("enrol again: %d %v", code, again)
		}
	}
	if n := probe.count(tpm2.TPMCCCreatePrimary) - primaries; n != 0 {
		t.Errorf("5 more enrolments created %d primary keys", n)
	}
	if n := probe.total() - sent; n != 0 {
		t.Errorf("5 more enrolments sent %d TPM commands", n)
	}
}

// With its swtpm killed, the stick's next status reports the TPM fault;
// attestation, enrolment, activation and manifests answer 503 tpm_fault
// naming the TPM; actors keep serving and their receipts are still signed.
func TestTPMLoss(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	cfg := measuredOn(t, sw)
	cfg.Fetch = box.Fetch
	cfg.TPMProbeInterval = -1 // the status request must find the fault itself
	s, log := newStick(t, cfg)
	h := s.Handler()
	if code, out := call(t, h, "POST", "/v1/manifest", string(sign(t, 1, manifest.Actor{Name: "edge", CID: edge}))); code != 200 {
		t.Fatalf("boot: %d %v", code, out)
	}
	if code, out := call(t, h, "POST", "/v1/attest", `{"nonce":"0011223344556677"}`); code != 200 {
		t.Fatalf("attest before: %d %v", code, out)
	}
	if st := s.Status(); !st.TPM.Present || !st.TPM.OK || !st.Attestation.Ready {
		t.Fatalf("status before: %+v", st)
	}

	sw.Stop()

	code, out := call(t, h, "GET", "/v1/status", "")
	tpmSt, _ := out["tpm"].(map[string]any)
	att, _ := out["attestation"].(map[string]any)
	if code != 200 || tpmSt["ok"] != false || !strings.Contains(fmt.Sprint(tpmSt["fault"]), "TPM") || att["ready"] != false ||
		!strings.Contains(fmt.Sprint(att["reason"]), "TPM fault") {
		t.Errorf("status after the TPM went away: %d tpm=%v attestation=%v", code, tpmSt, att)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/attest", `{"nonce":"0011223344556677"}`},
		{"GET", "/v1/enrol", ""},
		{"POST", "/v1/enrol/activate", `{"credential_blob":"AAAA","encrypted_secret":"AAAA"}`},
		{"POST", "/v1/manifest", string(sign(t, 2, manifest.Actor{Name: "edge", CID: edge}))},
	} {
		code, out := call(t, h, tc.method, tc.path, tc.body)
		e, _ := out["error"].(map[string]any)
		if code != 503 || errCode(out) != "tpm_fault" || !strings.Contains(fmt.Sprint(e["message"]), "TPM") {
			t.Errorf("%s %s without the TPM: %d %v", tc.method, tc.path, code, out)
		}
	}
	code, out = call(t, h, "POST", "/v1/actors/edge/invoke", `{"operation":"echo","payload":"aGk="}`)
	if code != 200 || out["result"] != "aGk=" || out["receipt"] == nil {
		t.Errorf("invoke without the TPM: %d %v", code, out)
	}
	if !strings.Contains(log.String(), "tpm: FAULT: TPM fault: the stick's TPM stopped answering") {
		t.Errorf("console says nothing of the fault:\n%s", log)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "teastick_tpm_ok 0\n") {
		t.Errorf("metrics:\n%s", rec.Body)
	}
}

// A TPM in failure mode (TPM_RC_FAILURE), and the answer QEMU's TPM
// backends give once swtpm is gone (a TPM 1.2 header with TPM_FAIL), are
// TPM faults too.
func TestTPMFailureMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		tag  uint16
		rc   uint32
		want string
	}{
		{"TPM_RC_FAILURE", uint16(tpm2.TPMSTNoSessions), uint32(tpm2.TPMRCFailure), "TPM_RC_FAILURE"},
		{"QEMU without swtpm", 0x00c4, 9, "not a TPM 2.0 response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := measured(t)
			failing := &failingTPM{TPM: cfg.TPM, tag: tc.tag, rc: tc.rc}
			cfg.TPM = failing
			cfg.TPMProbeInterval = -1
			s, _ := newStick(t, cfg)
			if st := s.Status(); !st.TPM.OK {
				t.Fatalf("status before: %+v", st.TPM)
			}
			failing.failed.Store(true)
			st := s.Status()
			if st.TPM.OK || !strings.Contains(st.TPM.Fault, tc.want) || st.Attestation.Ready {
				t.Errorf("status: %+v %+v", st.TPM, st.Attestation)
			}
			if code, out := call(t, s.Handler(), "GET", "/v1/enrol", ""); code != 503 || errCode(out) != "tpm_fault" {
				t.Errorf("enrol: %d %v", code, out)
			}
		})
	}
}

// failingTPM is a FAULT-INJECTION TPM: once failed is set it answers every
// command with a bare header of tag and rc.
type failingTPM struct {
	transport.TPM
	tag    uint16
	rc     uint32
	failed atomic.Bool
}

func (f *failingTPM) Send(cmd []byte) ([]byte, error) {
	if f.failed.Load() {
		rsp := make([]byte, 10)
		binary.BigEndian.PutUint16(rsp, f.tag)
		binary.BigEndian.PutUint32(rsp[2:], 10)
		binary.BigEndian.PutUint32(rsp[6:], f.rc)
		return rsp, nil
	}
	return f.TPM.Send(cmd)
}

// BenchmarkStatus prices the TPM probe each status request makes: the
// same stick's Status with its TPM (one TPM2_ReadClock to swtpm over its
// socket) and without one.
func BenchmarkStatus(b *testing.B) {
	for _, withTPM := range []bool{false, true} {
		b.Run(fmt.Sprintf("tpm=%v", withTPM), func(b *testing.B) {
			cfg := measured(b)
			cfg.TPMProbeInterval = -1
			if !withTPM {
				cfg.TPM = nil
			}
			s, _ := newStick(b, cfg)
			b.ResetTimer()
			for b.Loop() {
				s.Status()
			}
		})
	}
}

// hangingTPM is a FAULT-INJECTION TPM: once hang is set, each command
// blocks until release is closed.
type hangingTPM struct {
	transport.TPM
	hang    atomic.Bool
	release chan struct{}
}

func (h *hangingTPM) Send(cmd []byte) ([]byte, error) {
	if h.hang.Load() {
		<-h.release
	}
	return h.TPM.Send(cmd)
}

// A TPM that hangs does not hang the status: it answers after ProbeWait
// that the TPM does not answer, and once the TPM answers again, so does
// the status.
func TestStatusWithHangingTPM(t *testing.T) {
	cfg := measured(t)
	hanging := &hangingTPM{TPM: cfg.TPM, release: make(chan struct{})}
	cfg.TPM = hanging
	cfg.TPMProbeInterval = -1
	s, _ := newStick(t, cfg)
	var once sync.Once
	release := func() { once.Do(func() { close(hanging.release) }) }
	t.Cleanup(release)
	hanging.hang.Store(true)
	got := make(chan *Status, 1)
	go func() { got <- s.Status() }()
	select {
	case st := <-got:
		if st.TPM.OK || !strings.Contains(st.TPM.Fault, "TPM not answering") || st.Attestation.Ready {
			t.Errorf("status while the TPM hangs: %+v %+v", st.TPM, st.Attestation)
		}
	case <-time.After(guard):
		t.Fatal("status hangs with the TPM")
	}
	hanging.hang.Store(false)
	release()
	if st := s.Status(); !st.TPM.OK || !st.Attestation.Ready {
		t.Errorf("status once the TPM answers again: %+v %+v", st.TPM, st.Attestation)
	}
}
