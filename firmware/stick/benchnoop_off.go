//go:build !benchnoop

package main

import "net/http"

// apiHandler is the API as the stick serves it (benchnoop_on.go adds a
// no-op handler for benchmarks).
func apiHandler(api http.Handler) http.Handler { return api }
