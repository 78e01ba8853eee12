//go:build benchnoop

package main

import (
	"fmt"
	"net/http"

	"github.com/teastick/teastick/firmware/core"
)

// apiHandler adds the no-op handler (core.NoopHandler) to the API: a
// benchmark-only build, so that the invoke path can be priced against it
// on the stick itself (qemu/api_bench_test.go). It says so at boot.
func apiHandler(api http.Handler) http.Handler {
	fmt.Printf("api: benchmark build (tag benchnoop): POST %s answers {}\n", core.NoopPath)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+core.NoopPath, core.NoopHandler)
	mux.Handle("/", api)
	return mux
}
