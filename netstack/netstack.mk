# netstack/netstack.mk: what the netstack/ tests need before `go test ./...`.
# Included from the top Makefile. `make netstack-prep` builds the IPFS node
# the tests run as the stick's box: kubo, pinned by its own module in
# qemu/kubo, into build/tools/ipfs (rebuilt when the pin changes).

KUBO := build/tools/ipfs

.PHONY: netstack-prep
netstack-prep: $(KUBO)

$(KUBO): qemu/kubo/go.mod qemu/kubo/go.sum
	@mkdir -p $(dir $@)
	@echo "netstack: building kubo (the test box's IPFS node) into $@; the first build takes minutes"
	cd qemu/kubo && $(GO) build -trimpath -o $(abspath $@) github.com/ipfs/kubo/cmd/ipfs
