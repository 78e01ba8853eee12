package core

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime/actortest"
)

// An invocation whose client goes away mid-call is reported as cancelled
// (499 cancelled in the metrics), not as a limit, a fault or an internal
// error, and the actor serves the next call.
func TestInvokeCancelledByClient(t *testing.T) {
	box := &faultBox{}
	spin := box.put(actortest.Wat(t, "spin"))
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	s, log := newStick(t, cfg)
	if err := s.Boot(context.Background(), sign(t, 1,
		manifest.Actor{Name: "spin", CID: spin, Limits: manifest.Limits{TimeoutMillis: 60000}})); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/actors/spin/invoke", strings.NewReader(`{"operation":"forever"}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = errors.New("answered " + resp.Status)
		}
		done <- err
	}()
	// The call has started once the actor counts it.
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if st := s.Status(); len(st.Actors) == 1 && st.Actors[0].Calls == 1 {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the spin call never started; console:\n%s", log)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}

	// The stick ends the call and counts the answer nobody reads.
	var metrics string
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
		// A code's counter is listed from when it is created, before
		// it is counted: wait for a count.
		if answered.MatchString(metrics) {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the cancelled call was never answered; metrics:\n%s", metrics)
		}
	}
	for _, want := range []string{
		`teastick_http_requests_total{code="499"} 1` + "\n",
		`teastick_actor_faults_total{actor="spin"} 0` + "\n",
		"teastick_rejected_requests_total 0\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	for _, bad := range []string{`{code="500"}`, `{code="504"}`} {
		if strings.Contains(metrics, bad) {
			t.Errorf("a cancelled call counted as %s:\n%s", bad, metrics)
		}
	}
	if strings.Contains(log.String(), "limit") {
		t.Errorf("console:\n%s", log)
	}
	// The actor serves the next call.
	code, out := call(t, s.Handler(), "POST", "/v1/actors/spin/invoke", `{"operation":"ping"}`)
	if code != 200 {
		t.Errorf("next call: %d %v", code, out)
	}
}

// answered matches a counted 4xx or 5xx answer in the metrics.
var answered = regexp.MustCompile(`teastick_http_requests_total\{code="[45][0-9][0-9]"\} [1-9]`)
