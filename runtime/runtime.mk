# runtime/runtime.mk: what the runtime/ tests need before `go test ./...`.
# Included from the top Makefile. The tests build their actors with the
# real toolchains: Go (GOOS=wasip1) for the examples, wabt's wat2wasm for
# the edge-case fixtures, and npm (assemblyscript, @wapc/as-guest from the
# npm registry) for the AssemblyScript waPC guest.

RUNTIME_DEB_PACKAGES := wabt
RUNTIME_TOOLS := wat2wasm

# The native engine (issue 18): runtime-prep translates every fixture the
# tests run into build/_native/rt (runtime/internal/nativegen; the same
# bytes each time, so the go build cache keeps the compiled packages), and
# the host tests build with the tag nativegen, which compiles them into
# the runtime's test binary and runs the differential suite
# (runtime/native_diff_test.go). Plain `go test ./...` skips both.
GO_TEST_TAGS += nativegen

.PHONY: runtime-prep runtime-test runtime-bench

runtime-prep:
	@missing=""; for p in $(RUNTIME_DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "runtime: installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 $$missing >/dev/null || exit 1; \
	  else \
	    echo "runtime: missing Debian packages:$$missing (install them: sudo apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi; \
	for t in $(RUNTIME_TOOLS) npm; do \
	  command -v $$t >/dev/null || { echo "runtime: $$t not found" >&2; exit 1; }; \
	done
	$(GO) run ./runtime/internal/nativegen -out build/_native/rt

runtime-test: runtime-prep
	$(GO) test -race -tags nativegen ./runtime/...

# Host benchmarks: empty call, kernel and SHA-256 ratios against native Go,
# cold start per example, idle instance heap.
runtime-bench: runtime-prep
	$(GO) test -tags nativegen ./runtime -run XXX -bench . -cpu 1,2
