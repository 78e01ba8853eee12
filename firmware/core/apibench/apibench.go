// Package apibench times invocations through a stick's API against its
// no-op handler (firmware/core's NoopHandler), request by request alternately in one
// run, so both see the same machine, connection and moment. The hosted
// benchmark (firmware/core) and the one on the stick under QEMU (qemu/)
// share it.
package apibench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Result is the total time of N invocations and of N no-op requests.
type Result struct {
	N          int
	Echo, Noop time.Duration
}

// Ratio is the invocation's time over the no-op's.
func (r Result) Ratio() float64 { return float64(r.Echo) / float64(r.Noop) }

// PerOp returns the mean of d over N requests in microseconds.
func (r Result) PerOp(d time.Duration) float64 {
	return float64(d.Nanoseconds()) / float64(r.N) / 1e3
}

// Runner posts to one stick's API over HTTP, whose transport must reuse
// its connection (HTTP/1.1 keep-alive): a handshake per request would
// price TLS, not the handler.
type Runner struct {
	HTTP     *http.Client
	URL      string // the API's base URL
	NoopPath string // where the no-op handler answers (core.NoopPath)
	Actor    string // an actor whose operation returns its payload
	Op       string
	// Payload is sent to the actor; the no-op gets the same request body.
	Payload []byte
}

// The API's wire format (firmware/core/openapi.yaml); this package cannot
// import firmware/core, whose own benchmark uses it.
type invokeRequest struct {
	Operation string `json:"operation"`
	Payload   []byte `json:"payload"`
}

type invokeResult struct {
	Result  []byte          `json:"result"`
	Receipt json.RawMessage `json:"receipt"`
}

// Run makes one untimed request of each kind (connection set-up and
// first-call costs are not what is measured), then n of each,
// alternately, and checks every answer.
func (r Runner) Run(ctx context.Context, n int) (Result, error) {
	body, err := json.Marshal(invokeRequest{Operation: r.Op, Payload: r.Payload})
	if err != nil {
		return Result{}, err
	}
	invoke := r.URL + "/v1/actors/" + r.Actor + "/invoke"
	noop := r.URL + r.NoopPath
	res := Result{N: n}
	for i := -1; i < n; i++ {
		d, err := r.post(ctx, invoke, body, true)
		if err != nil {
			return res, err
		}
		e, err := r.post(ctx, noop, body, false)
		if err != nil {
			return res, err
		}
		if i >= 0 {
			res.Echo += d
			res.Noop += e
		}
	}
	return res, nil
}

func (r Runner) post(ctx context.Context, url string, body []byte, isInvoke bool) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	el := time.Since(start)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("apibench: %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	if isInvoke {
		var res invokeResult
		if err := json.Unmarshal(b, &res); err != nil {
			return 0, fmt.Errorf("apibench: %s: %v", url, err)
		}
		if !bytes.Equal(res.Result, r.Payload) || len(res.Receipt) < 2 {
			return 0, fmt.Errorf("apibench: %s answered %q with receipt %s, want the payload back and a receipt", url, res.Result, res.Receipt)
		}
	}
	return el, nil
}
