package core

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	goruntime "runtime"
	gometrics "runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/tpm/nvcounter"
)

// API limits (documented in firmware/core/openapi.yaml).
const (
	// MaxOperation bounds an operation name.
	MaxOperation = 256
	// maxSmallBody bounds request bodies other than invoke and manifest.
	maxSmallBody = 16 << 10
)

// Timeouts bound how long an API client may hold a connection: a client
// that sends its request or takes its answer slowly, or not at all, loses
// the connection instead of keeping a goroutine and its buffers for good.
// Work on a request (an actor call, an upgrade) is bounded by its own
// limits, not by these.
type Timeouts struct {
	// ReadHeader bounds the TLS handshake and reading a request's
	// headers.
	ReadHeader time.Duration
	// Read bounds reading a whole request, headers and body, from its
	// first byte; a body still incomplete then is answered 408
	// request_timeout and the connection closed.
	Read time.Duration
	// Write bounds writing an answer, from its first byte.
	Write time.Duration
	// Idle bounds how long a kept-alive connection waits for its next
	// request.
	Idle time.Duration
}

// DefaultTimeouts are the stick's: 30 s carries the largest invoke body
// (base64 of 16 MiB) at 0.8 MB/s.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 30 * time.Second, Idle: time.Minute}

func (t Timeouts) withDefaults() Timeouts {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&t.ReadHeader, DefaultTimeouts.ReadHeader}, {&t.Read, DefaultTimeouts.Read}, {&t.Write, DefaultTimeouts.Write}, {&t.Idle, DefaultTimeouts.Idle}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return t
}

// maxHeaderBytes bounds a request's headers (net/http's default is
// 1 MiB; the API's requests carry a few hundred bytes).
const maxHeaderBytes = 16 << 10

// Server is the HTTP server for h (the stick's Handler, possibly wrapped)
// with the stick's timeouts. The write timeout is set per answer, when
// its first byte is written (see Handler), so that an upgrade that
// fetches for minutes is not cut off.
func (s *Stick) Server(h http.Handler) *http.Server {
	t := s.cfg.Timeouts
	return &http.Server{Handler: h, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, IdleTimeout: t.Idle,
		MaxHeaderBytes: maxHeaderBytes}
}

// APIError is the body of every 4xx and 5xx answer.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// InvokeRequest is the body of POST /v1/actors/{name}/invoke.
type InvokeRequest struct {
	Operation string `json:"operation"`
	// Payload is the input bytes (base64 in JSON).
	Payload []byte `json:"payload"`
}

// AttestRequest is the body of POST /v1/attest.
type AttestRequest struct {
	// Nonce is hex, 8 to 64 bytes.
	Nonce string `json:"nonce"`
}

// ActivateRequest is the body of POST /v1/enrol/activate (the verifier's
// credential challenge).
type ActivateRequest struct {
	CredentialBlob  []byte `json:"credential_blob"`
	EncryptedSecret []byte `json:"encrypted_secret"`
}

// ActivateResponse carries the secret the TPM recovered.
type ActivateResponse struct {
	Secret []byte `json:"secret"`
}

// ManifestResponse answers POST /v1/manifest: the state after the change,
// and the actors that kept their old version (or did not come up).
type ManifestResponse struct {
	Status      *Status           `json:"status"`
	ActorErrors map[string]string `json:"actor_errors,omitempty"`
}

// routes are the API's paths, for 405 answers.
var routes = map[string]string{
	"/v1/status":         http.MethodGet,
	"/v1/attest":         http.MethodPost,
	"/v1/enrol":          http.MethodGet,
	"/v1/enrol/activate": http.MethodPost,
	"/v1/manifest":       http.MethodPost,
	"/metrics":           http.MethodGet,
}

// Handler is the stick's HTTP API.
func (s *Stick) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Status())
	})
	mux.HandleFunc("POST /v1/attest", s.handleAttest)
	mux.HandleFunc("GET /v1/enrol", s.handleEnrol)
	mux.HandleFunc("POST /v1/enrol/activate", s.handleActivate)
	mux.HandleFunc("POST /v1/actors/{name}/invoke", s.handleInvoke)
	mux.HandleFunc("POST /v1/manifest", s.handleManifest)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := routes[r.URL.Path]; ok || strings.HasPrefix(r.URL.Path, "/v1/actors/") && strings.HasSuffix(r.URL.Path, "/invoke") {
			if !ok {
				m = http.MethodPost
			}
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint: %s (see firmware/core/openapi.yaml)", r.URL.Path))
	})
	return s.limit(mux)
}

// statusWriter records the status code for metrics, and starts the write
// timeout when the answer starts.
type statusWriter struct {
	http.ResponseWriter
	code  int
	write time.Duration
}

func (w *statusWriter) start(code int) {
	if w.code == 0 {
		w.code = code
		// Not every ResponseWriter has a connection (httptest's).
		http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.write))
	}
}

func (w *statusWriter) WriteHeader(code int) {
	w.start(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.start(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limit counts answers by status code and gives each its write timeout.
func (s *Stick) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, write: s.cfg.Timeouts.Write}
		defer func() { s.m.request(sw.code) }()
		// Until the answer starts, the only writes are net/http's
		// (100 Continue, while the body is read): replace the deadline
		// a kept-alive connection's previous answer left.
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.Timeouts.Read))
		next.ServeHTTP(sw, r)
	})
}

// slot bounds requests in flight: a request takes one of MaxInFlight
// slots once its body has been read, and gives it back (release) when its
// work is done, before its answer is written; beyond MaxInFlight the
// stick answers 503 at once instead of queueing without bound. A client
// that sends its body slowly, or takes its answer slowly, holds a
// connection (bounded by the Timeouts), never a slot. Status and metrics
// take none.
func (s *Stick) slot(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	select {
	case s.inflight <- struct{}{}:
	default:
		s.m.overload.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "overloaded", fmt.Sprintf("%d requests in flight; retry", cap(s.inflight)))
		return nil, false
	}
	// The body is read: the read timeout has done its job. Left in
	// place, it would cancel the request's context (net/http's
	// background read fails at the deadline) in the middle of a long
	// call or upgrade.
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	var once bool
	return func() {
		if !once {
			once = true
			<-s.inflight
		}
	}, true
}

// timedOut reports whether err is a read that ran out of time.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// bodyError answers a request whose body could not be read.
func (s *Stick) bodyError(w http.ResponseWriter, err error, what string) {
	s.m.rejected.Add(1)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("%s over %d bytes", what, mbe.Limit))
	case timedOut(err):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, "request_timeout", fmt.Sprintf("%s not received within %v of the request's start", what, s.cfg.Timeouts.Read))
	default:
		writeError(w, http.StatusBadRequest, "malformed_json", fmt.Sprintf("%s: %v", what, err))
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]APIError{"error": {Code: "internal", Message: err.Error()}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, name, msg string) {
	writeJSON(w, code, map[string]APIError{"error": {Code: name, Message: msg}})
}

// StatusClientClosed is the status the stick records for a request whose
// client went away before its answer (nginx's 499 "client closed
// request"): no client sees it; the metrics count it.
const StatusClientClosed = 499

// fail maps an error to its HTTP answer.
func (s *Stick) fail(w http.ResponseWriter, err error) {
	code, name := http.StatusInternalServerError, "internal"
	var ue *UpgradeError
	switch {
	case errors.Is(err, ErrTPMFault):
		code, name = http.StatusServiceUnavailable, "tpm_fault"
	case errors.Is(err, ErrNotMeasured):
		code, name = http.StatusServiceUnavailable, "not_measured"
	case errors.Is(err, ErrNotReady):
		code, name = http.StatusServiceUnavailable, "not_ready"
	case errors.Is(err, ErrCancelled):
		code, name = http.StatusConflict, "cancelled"
	case errors.Is(err, ErrNoTPM):
		code, name = http.StatusServiceUnavailable, "no_tpm"
	case errors.Is(err, ErrNonce):
		code, name = http.StatusBadRequest, "bad_nonce"
	case errors.Is(err, ErrNotServed):
		code, name = http.StatusServiceUnavailable, "actor_not_served"
	case errors.Is(err, runtime.ErrUnknownActor):
		code, name = http.StatusNotFound, "unknown_actor"
	case errors.Is(err, runtime.ErrRequestTooLarge):
		code, name = http.StatusRequestEntityTooLarge, "payload_too_large"
	case errors.Is(err, runtime.ErrBusy):
		code, name = http.StatusTooManyRequests, "busy"
		w.Header().Set("Retry-After", "1")
		s.m.overload.Add(1)
	case errors.Is(err, runtime.ErrDeadline):
		code, name = http.StatusGatewayTimeout, "deadline"
	case errors.Is(err, runtime.ErrDenied):
		code, name = http.StatusForbidden, "not_granted"
	case errors.Is(err, runtime.ErrActor):
		code, name = http.StatusUnprocessableEntity, "actor_error"
	case errors.Is(err, runtime.ErrTrap), errors.Is(err, runtime.ErrResponseTooLarge):
		code, name = http.StatusBadGateway, "actor_fault"
	case errors.Is(err, runtime.ErrClosed):
		code, name = http.StatusServiceUnavailable, "shutting_down"
	case errors.Is(err, manifest.ErrSignature), errors.Is(err, manifest.ErrUnknownKey):
		code, name = http.StatusForbidden, "bad_signature"
	case errors.Is(err, manifest.ErrStale):
		code, name = http.StatusConflict, "stale_manifest"
	case errors.Is(err, nvcounter.ErrStep):
		code, name = http.StatusConflict, "version_jump"
	case errors.Is(err, ErrRollbackCounter):
		code, name = http.StatusServiceUnavailable, "rollback_counter"
	case errors.Is(err, ErrWrongImage):
		code, name = http.StatusConflict, "wrong_image"
	case errors.Is(err, manifest.ErrMalformed), errors.Is(err, manifest.ErrNotCanonical), errors.Is(err, manifest.ErrInvalid):
		code, name = http.StatusBadRequest, "invalid_manifest"
	case errors.Is(err, ErrNoGovernance):
		code, name = http.StatusServiceUnavailable, "no_governance_key"
	case errors.As(err, &ue):
		code, name = http.StatusInternalServerError, "upgrade_incomplete"
	case errors.Is(err, context.Canceled):
		// The client went away: nobody reads this answer, but the
		// metrics count it as what it was, not as a fault or a limit.
		code, name = StatusClientClosed, "cancelled"
	}
	if code < 500 && code != StatusClientClosed {
		s.m.rejected.Add(1)
	}
	writeError(w, code, name, err.Error())
}

// readJSON decodes a bounded JSON body strictly (unknown fields refused).
func (s *Stick) readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON value")
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || timedOut(err) {
			s.bodyError(w, err, "request body")
			return false
		}
		s.m.rejected.Add(1)
		writeError(w, http.StatusBadRequest, "malformed_json", err.Error())
		return false
	}
	return true
}

func (s *Stick) handleInvoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.servable(name); err != nil {
		s.fail(w, err)
		return
	}
	lim, err := s.rt.Limits(name)
	if err != nil {
		s.fail(w, fmt.Errorf("%w %q", runtime.ErrUnknownActor, name))
		return
	}
	// Base64 of the largest payload the actor takes, and room for the
	// operation and JSON.
	limit := int64(base64.StdEncoding.EncodedLen(int(lim.MaxRequest))) + MaxOperation + 1024
	var req InvokeRequest
	if !s.readJSON(w, r, limit, &req) {
		return
	}
	if req.Operation == "" || len(req.Operation) > MaxOperation {
		s.m.rejected.Add(1)
		writeError(w, http.StatusBadRequest, "bad_operation", fmt.Sprintf("operation must be 1 to %d bytes", MaxOperation))
		return
	}
	release, ok := s.slot(w, r)
	if !ok {
		return
	}
	res, err := s.Invoke(r.Context(), name, req.Operation, req.Payload)
	release()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Stick) handleAttest(w http.ResponseWriter, r *http.Request) {
	var req AttestRequest
	if !s.readJSON(w, r, maxSmallBody, &req) {
		return
	}
	nonce, err := hex.DecodeString(req.Nonce)
	if err != nil {
		s.fail(w, fmt.Errorf("%w: not hex: %v", ErrNonce, err))
		return
	}
	release, ok := s.slot(w, r)
	if !ok {
		return
	}
	a, err := s.Attest(nonce)
	release()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Stick) handleEnrol(w http.ResponseWriter, r *http.Request) {
	release, ok := s.slot(w, r)
	if !ok {
		return
	}
	e, err := s.Enrol()
	release()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (s *Stick) handleActivate(w http.ResponseWriter, r *http.Request) {
	var req ActivateRequest
	if !s.readJSON(w, r, maxSmallBody, &req) {
		return
	}
	release, ok := s.slot(w, r)
	if !ok {
		return
	}
	secret, err := s.Activate(req.CredentialBlob, req.EncryptedSecret)
	release()
	if errors.Is(err, ErrTPMFault) || errors.Is(err, ErrNoTPM) {
		s.fail(w, err)
		return
	}
	if err != nil {
		s.m.rejected.Add(1)
		writeError(w, http.StatusBadRequest, "activation_failed", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ActivateResponse{Secret: secret})
}

func (s *Stick) handleManifest(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, manifest.MaxSize))
	if err != nil {
		s.bodyError(w, err, "manifest")
		return
	}
	release, ok := s.slot(w, r)
	if !ok {
		return
	}
	defer release()
	// Apply refuses a forged, foreign or stale manifest before it waits
	// for an upgrade in progress.
	err = s.Apply(r.Context(), raw)
	release()
	var ue *UpgradeError
	switch {
	case errors.As(err, &ue):
		resp := ManifestResponse{Status: s.Status(), ActorErrors: map[string]string{}}
		for n, e := range ue.Failed {
			resp.ActorErrors[n] = e.Error()
		}
		writeJSON(w, http.StatusOK, resp)
	case err != nil:
		s.fail(w, err)
	default:
		resp := ManifestResponse{Status: s.Status()}
		for _, a := range resp.Status.Actors {
			if a.Error != "" {
				if resp.ActorErrors == nil {
					resp.ActorErrors = map[string]string{}
				}
				resp.ActorErrors[a.Name] = a.Error
			}
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// precheckManifest verifies a manifest's signature and image, and that it
// is newer than the running one, without taking the upgrade lock.
func (s *Stick) precheckManifest(raw []byte) error {
	next, err := s.verifyManifest(raw)
	s.mu.Lock()
	running := s.manifest
	s.mu.Unlock()
	if err == nil && running != nil {
		err = manifest.CheckUpgrade(running, next)
	}
	if err != nil && running != nil {
		s.m.upgradeFailures.Add(1)
	}
	return err
}

// handleMetrics writes the Prometheus text exposition format (0.0.4).
func (s *Stick) handleMetrics(w http.ResponseWriter, r *http.Request) {
	st := s.Status()
	var b strings.Builder
	metric := func(name, typ, help string, samples ...string) {
		fmt.Fprintf(&b, "# HELP teastick_%s %s\n# TYPE teastick_%s %s\n", name, help, name, typ)
		for _, smp := range samples {
			fmt.Fprintf(&b, "teastick_%s%s\n", name, smp)
		}
	}
	one := func(v uint64) string { return fmt.Sprintf(" %d", v) }
	bool01 := func(v bool) string {
		if v {
			return " 1"
		}
		return " 0"
	}
	var ver uint64
	if st.Manifest != nil {
		ver = st.Manifest.Version
	}
	metric("ready", "gauge", "1 once the boot sequence printed READY.", bool01(st.Ready))
	metric("measured", "gauge", "1 while measured boot holds.", bool01(st.Measured))
	metric("tpm_ok", "gauge", "1 while the stick's TPM answers (0 without one).", bool01(st.TPM.OK))
	metric("manifest_version", "gauge", "Version of the running manifest (0: none).", one(ver))
	metric("uptime_seconds", "gauge", "Time since reset.", fmt.Sprintf(" %.3f", float64(st.UptimeMS)/1000))
	metric("invocations_total", "counter", "Actor invocations through the API.", one(st.Counters.Invocations))
	metric("invoke_errors_total", "counter", "Invocations that failed.", one(st.Counters.InvokeErrors))
	metric("receipts_total", "counter", "Receipts signed.", one(st.Counters.Receipts))
	metric("rejected_requests_total", "counter", "Requests refused with a 4xx.", one(st.Counters.Rejected))
	metric("overload_responses_total", "counter", "429 and 503 answers for load.", one(st.Counters.Overload))
	metric("attestations_total", "counter", "Quotes served.", one(st.Counters.Attestations))
	metric("upgrades_total", "counter", "Manifest upgrades accepted.", one(st.Counters.Upgrades))
	metric("upgrade_failures_total", "counter", "Manifest upgrades refused.", one(st.Counters.UpgradeFailures))
	var calls, fails, faults, busy, denied, serving []string
	for _, a := range st.Actors {
		l := fmt.Sprintf("{actor=%q}", a.Name)
		calls = append(calls, l+one(a.Calls))
		fails = append(fails, l+one(a.Failed))
		faults = append(faults, l+one(a.Faults))
		busy = append(busy, l+one(a.Busy))
		denied = append(denied, l+one(a.Denied))
		serving = append(serving, l+bool01(a.State == StateServing))
	}
	metric("actor_serving", "gauge", "1 while the actor serves.", serving...)
	metric("actor_calls_total", "counter", "Calls started per actor.", calls...)
	metric("actor_failures_total", "counter", "Calls that returned an error, per actor.", fails...)
	metric("actor_faults_total", "counter", "Traps, deadline hits and ABI breaks, per actor.", faults...)
	metric("actor_busy_total", "counter", "Calls refused because the actor was busy.", busy...)
	metric("actor_denied_total", "counter", "Capability calls refused as not granted.", denied...)
	var codes []string
	s.m.requests.Range(func(k, v any) bool {
		codes = append(codes, fmt.Sprintf("{code=%q} %d", k, v.(interface{ Load() uint64 }).Load()))
		return true
	})
	slices.Sort(codes)
	metric("http_requests_total", "counter", "API requests by status code.", codes...)
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	metric("heap_inuse_bytes", "gauge", "Go heap in use.", one(ms.HeapInuse))
	metric("heap_sys_bytes", "gauge", "Go heap obtained from the system.", one(ms.HeapSys))
	live := []gometrics.Sample{{Name: "/gc/heap/live:bytes"}}
	gometrics.Read(live)
	if live[0].Value.Kind() == gometrics.KindUint64 {
		metric("heap_live_bytes", "gauge", "Go heap reachable at the last garbage collection.", one(live[0].Value.Uint64()))
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	io.WriteString(w, b.String())
}
