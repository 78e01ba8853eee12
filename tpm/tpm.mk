# tpm/tpm.mk: what the tpm/ tests need before `go test ./...`.
# Included from the top Makefile; `make tpm-prep` installs the Debian
# packages providing swtpm, swtpm_setup/swtpm_localca and tpm2-tools
# (tpm2_eventlog, tpm2_checkquote), waiting for a concurrent apt/dpkg run.

TPM_DEB_PACKAGES := swtpm swtpm-tools tpm2-tools
TPM_TOOLS := swtpm swtpm_setup swtpm_localca tpm2_eventlog tpm2_checkquote

.PHONY: tpm-prep tpm-test tpm-bench

tpm-prep:
	@missing=""; for p in $(TPM_DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "tpm: installing Debian packages:$$missing"; \
	    for i in $$(seq 1 120); do \
	      fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock >/dev/null 2>&1 || break; \
	      echo "tpm: waiting for the dpkg lock"; sleep 5; \
	    done; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 $$missing >/dev/null || exit 1; \
	  else \
	    echo "tpm: missing Debian packages:$$missing (install them: sudo apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi; \
	for t in $(TPM_TOOLS); do \
	  command -v $$t >/dev/null || { echo "tpm: $$t not found after installing $(TPM_DEB_PACKAGES)" >&2; exit 1; }; \
	done

tpm-test: tpm-prep
	$(GO) test -race ./tpm/...

# Benchmarks against swtpm; prints the attest round trip / bare quote ratio.
tpm-bench: tpm-prep
	$(GO) test ./tpm/verify -run XXX -bench . -benchtime 2s
