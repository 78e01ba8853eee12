package core

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime/actortest"
)

// apiPosts are the API's POST endpoints, which take a body.
var apiPosts = []string{"/v1/actors/edge/invoke", "/v1/attest", "/v1/manifest", "/v1/enrol/activate"}

// FuzzAPIRequests drives the stick's handler (a measured stick on swtpm
// serving the edge actor) with fuzzed bodies for each POST endpoint: it
// must never panic, and every answer is JSON: a 200 with an object, or an
// error status with {"error": {"code", "message"}} and a code.
func FuzzAPIRequests(f *testing.F) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(f, "edge"))
	cfg := measured(f)
	cfg.Fetch = box.Fetch
	s, _ := newStick(f, cfg)
	limits := manifest.Limits{TimeoutMillis: 50, MaxConcurrent: 2, MaxResponse: 4096, MaxRequest: 4096}
	v1 := sign(f, 1, manifest.Actor{Name: "edge", CID: edge, Limits: limits})
	if err := s.Boot(context.Background(), v1); err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	for _, seed := range []string{
		`{"operation":"echo","payload":"aGVsbG8="}`, `{"operation":"fail"}`, `{"operation":""}`, `{"operation":"echo","payload":"!"}`,
		`{"nonce":"0011223344556677"}`, `{"nonce":"zz"}`, `{"nonce":""}`,
		`{"credential_blob":"AAE=","encrypted_secret":"AAE="}`, `{"credential_blob":null}`,
		`{}`, `[]`, `null`, `{"a":1}`, `{"operation":"echo"} {}`, "\xff\xfe",
	} {
		for e := range apiPosts {
			f.Add(uint8(e), []byte(seed))
		}
	}
	f.Add(uint8(2), v1)
	f.Add(uint8(2), sign(f, 2, manifest.Actor{Name: "edge", CID: edge, Limits: limits}))
	f.Fuzz(func(t *testing.T, endpoint uint8, body []byte) {
		path := apiPosts[int(endpoint)%len(apiPosts)]
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
		out := rec.Body.Bytes()
		if rec.Code == http.StatusOK {
			var v map[string]any
			if err := json.Unmarshal(out, &v); err != nil || v == nil {
				t.Fatalf("POST %s %q: 200 with %q, not a JSON object", path, body, out)
			}
			return
		}
		var e struct {
			Error *APIError `json:"error"`
		}
		if err := json.Unmarshal(out, &e); err != nil || e.Error == nil || e.Error.Code == "" {
			t.Fatalf("POST %s %q: %d with %q, not a JSON error", path, body, rec.Code, out)
		}
		if rec.Code < 400 || rec.Code > 599 {
			t.Fatalf("POST %s %q: status %d with an error body", path, body, rec.Code)
		}
	})
}
