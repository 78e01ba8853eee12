package core

import (
	"io"
	"net/http"
)

// NoopPath is where benchmark builds of the stick (build tag benchnoop)
// serve NoopHandler.
const NoopPath = "/bench/noop"

// NoopHandler reads and discards the request body and answers {}: the
// no-op HTTP handler the API benchmarks price an invocation against (the
// same TLS, HTTP and network path, and no work). The stick's API does not
// serve it; benchmark builds add it at NoopPath.
func NoopHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte("{}\n"))
}
