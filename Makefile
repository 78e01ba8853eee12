# teastick: firmware image of a plug-in HSM stick
#
#   make            build the stick image for TARGET (needs the TamaGo compiler):
#                   TARGET=qemu (arm virt, the default), qemu-riscv64 or
#                   usbarmory (USB armory Mk II: also the flashable .imx)
#   make qemu       build it and boot it under QEMU, console on this terminal
#                   (NATIVE=1: with the example actors translated and run natively)
#   make release    translate the actors a draft marks native, build the image
#                   with them and bundle the release (DRAFT=, KEY=, MODULES=, OUT=)
#   make test       every test: host tests, tamago builds, QEMU boot tests
#   make check      vet, gofmt, go mod tidy, tamago vet
#   make deps       install the Debian packages the tests need

TARGET ?= qemu

# The part makefiles included below define targets of their own; the first
# goal a user gets from a bare `make` is still the image.
.DEFAULT_GOAL := all
BUILD_DIR ?= build
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

# The bare-metal go command: tamago's runner, which executes tamago-go from
# the user cache directory (installing it there from its upstream repository
# when absent).
TAMAGO ?= $(shell $(GO) tool -n github.com/usbarmory/tamago/cmd/tamago)
TAMAGO_MODULE_VERSION := $(shell $(GO) list -m -f '{{.Version}}' github.com/usbarmory/tamago 2>/dev/null)
TAMAGO_GO := tamago-go$(patsubst v%,%,$(TAMAGO_MODULE_VERSION))
TAMAGO_GOROOT ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tamago-go/$(TAMAGO_GO)

# One row per TARGET: the board's build tag (board/target picks the board
# package by it), GOARCH, where the images are linked and the QEMU binary.
ifeq ($(TARGET),qemu)
BOARD_TAG := qemu_virt_arm
GOOS_TARGET := tamago
GOARCH_TARGET := arm
GOARM_TARGET := 7
GOOSPKG := github.com/usbarmory/tamago
# RAM starts at 0x40000000 with QEMU's devicetree (1 MiB), then 64 KiB of
# vectors and page tables (board/qemu/virt/mem.go)
TEXT_START := 0x40110000
# stage 0 runs from its own RAM above the stick's (board/qemu/virt/mem.go)
STAGE0_TEXT_START := 0x60010000
BUILD_TAGS ?=
QEMU_BIN := qemu-system-arm
RESET_ADDR :=
else ifeq ($(TARGET),qemu-riscv64)
BOARD_TAG := qemu_virt_riscv64
GOOS_TARGET := tamago
GOARCH_TARGET := riscv64
GOARM_TARGET :=
GOOSPKG := github.com/usbarmory/tamago
# RAM starts at 0x80000000, where QEMU's boot ROM jumps (-bios none): the
# image is linked 64 KiB in and gets a reset vector at the start of RAM
# (image/resetvec); stage 0 runs from its own RAM above the stick's
# (board/qemu/virtrv64/mem.go)
TEXT_START := 0x80010000
STAGE0_TEXT_START := 0xa0010000
RESET_ADDR := 0x80000000
BUILD_TAGS ?=
QEMU_BIN := qemu-system-riscv64
else ifeq ($(TARGET),usbarmory)
# The USB armory Mk II (board/usbarmory/mk2): linkramstart and linkramsize
# leave the runtime's RAM region to the board package, so that stage 0
# gets its own; linkcpuinit replaces tamago's first instructions with the
# board's, which clear .bss (the boot payload does not carry it). RAM
# starts at 0x80000000 with 64 KiB of vectors and page tables; stage 0
# runs from 0x9d000000 (board/usbarmory/mk2/mem.go, image/imx).
BOARD_TAG := usbarmory_mk2 linkramstart linkramsize linkcpuinit
GOOS_TARGET := tamago
GOARCH_TARGET := arm
GOARM_TARGET := 7
GOOSPKG := github.com/usbarmory/tamago
TEXT_START := 0x80010000
STAGE0_TEXT_START := 0x9d010000
RESET_ADDR :=
BUILD_TAGS ?=
QEMU_BIN := qemu-system-arm
# the flashable boot image: stage 0, its own ELF and the stick's container
# in one payload behind the i.MX IVT and DCD (image/imx, cmd/imximage)
BOOT_IMAGE := $(BUILD_DIR)/teastick-$(TARGET).imx
else
$(error unsupported TARGET=$(TARGET): supported targets are qemu (arm virt), qemu-riscv64 (riscv64 virt) and usbarmory (USB armory Mk II))
endif

# BUILD_TAGS: nomeasure builds images that measure nothing, to price
# measured boot in benchmarks only (the build warns loudly); benchnoop adds
# a no-op API handler (POST /bench/noop) to price invocations against, in
# benchmarks only (the stick says so at boot).

# Test builds exit through semihosting after this many heartbeats, one a
# second, printed or not (0: never).
EXIT_AFTER ?= 0
# CONSOLE=verbose starts the stick with the console's verbose view (a
# heartbeat line every second and the runtime's debug lines) instead of
# the quiet one (state changes, errors, a heartbeat a minute); the
# console's verbose command switches between them.
CONSOLE ?= quiet
# NET=dhcp makes the stick ask for its address with DHCP instead of the
# static one.
NET ?= static
# Hex Ed25519 public key whose signatures the stick accepts on release
# manifests (teactl key public prints it). Empty: the stick accepts none,
# except under `make qemu`, which then makes a development key in
# $(DEV_GOVERNANCE_KEY), builds its public key in, and has the launcher
# sign and post a manifest of the example actors with it.
GOVERNANCE_KEY ?=
DEV_GOVERNANCE_KEY := $(BUILD_DIR)/dev-governance.key
ifeq ($(GOVERNANCE_KEY)$(filter qemu,$(MAKECMDGOALS)),qemu)
GOVERNANCE_KEY := $(shell mkdir -p $(BUILD_DIR) && { test -f $(DEV_GOVERNANCE_KEY) || $(GO) run ./cmd/teactl key generate $(DEV_GOVERNANCE_KEY) >&2; } && $(GO) run ./cmd/teactl --json key public $(DEV_GOVERNANCE_KEY) | sed -n 's/.*"public_key": *"\([0-9a-f]*\)".*/\1/p')
QEMU_MANIFEST_KEY ?= $(DEV_GOVERNANCE_KEY)
endif
# The key the launcher signs the example manifest with (empty: it posts
# none; hand the stick a manifest yourself).
QEMU_MANIFEST_KEY ?=

# Native actors (issue 18; RATIONALE.md, "Native actors in releases"):
# `teactl release translate` writes the Go translation of each actor
# marked native, with the native table, to NATIVE_DIR (a "_" path element
# keeps `go test ./...` and `go vet ./...` out of it); the image built with
# the tag native imports it (firmware/stick/native_on.go).
# NATIVE=1 under `make qemu` translates the example actors (built into
# $(NATIVE_MODULES)) and boots a stick that serves them natively.
NATIVE ?=
NATIVE_DIR := build/_native/stick
NATIVE_MODULES ?= $(BUILD_DIR)/actors
NATIVE_EXAMPLES := echo notary wordcount kernel
ifeq ($(NATIVE),1)
BUILD_TAGS += native
endif

IMAGE := $(BUILD_DIR)/stick-$(TARGET).elf
STAGE0 := $(BUILD_DIR)/boot-$(TARGET).elf
GOFLAGS_TAMAGO := -trimpath -buildvcs=false
LDFLAGS_TAMAGO := -s -w -buildid= -T $(TEXT_START) -R 0x1000 \
	-X main.Version=$(VERSION) -X main.exitAfter=$(EXIT_AFTER) -X main.governanceKey=$(GOVERNANCE_KEY) \
	-X main.netMode=$(NET) -X main.consoleView=$(CONSOLE)
LDFLAGS_STAGE0 := -s -w -buildid= -T $(STAGE0_TEXT_START) -R 0x1000 -X main.Version=$(VERSION)
# The board's tag goes first: every GOOS=tamago build names its board.
TAGS := $(BOARD_TAG) $(BUILD_TAGS)
TAMAGO_ENV := GOOS=$(GOOS_TARGET) GOARCH=$(GOARCH_TARGET) GOARM=$(GOARM_TARGET) GOOSPKG=$(GOOSPKG)

# Packages built for the bare-metal target by `make test` and vetted by
# `make check`.
TAMAGO_PKGS := ./board/... ./firmware/... ./image/bootimg ./image/manifest \
	./tpm/tis ./tpm/eventlog ./tpm/measure ./tpm/attest ./tpm/nvcounter ./runtime ./runtime/actor \
	./netstack/ecm ./netstack/ecm/imxusb

DEB_PACKAGES := qemu-system-arm qemu-system-misc qemu-user swtpm swtpm-tools tpm2-tools wabt iproute2 iputils-ping socat u-boot-tools

.PHONY: all image qemu release native-examples test test-host test-tamago tamago-packages check deps tamago-present FORCE

# Each part's own preparation (packages, tools, fixtures): part/part.mk
# defines part-prep.
PARTS_MK := $(wildcard tpm/tpm.mk runtime/runtime.mk netstack/netstack.mk)
include $(PARTS_MK)
PREP_TARGETS := $(patsubst %.mk,%-prep,$(notdir $(PARTS_MK)))

all: image

# Stop with one clear message when the TamaGo compiler is not installed.
tamago-present:
	@test -x "$(TAMAGO_GOROOT)/bin/go" || { \
	  echo "teastick: the TamaGo compiler $(TAMAGO_GO) is missing (looked for $(TAMAGO_GOROOT)/bin/go)." \
	       "Install it with 'go tool tamago version', which clones github.com/usbarmory/tamago-go at tag $(TAMAGO_GO) and builds it (needs git and network access, a few minutes)," \
	       "or use an installed copy with TAMAGO=<its root>/bin/go TAMAGO_GOROOT=<its root>." >&2; \
	  exit 1; }

image: $(IMAGE) $(STAGE0) $(BOOT_IMAGE)

WEAKENING_TAGS := $(filter nomeasure,$(BUILD_TAGS))

$(IMAGE): tamago-present $(if $(filter 1,$(NATIVE)),native-examples) FORCE
	@mkdir -p $(BUILD_DIR)
	@if [ -n "$(WEAKENING_TAGS)" ]; then echo "teastick: WARNING: building with security-weakening tags: $(WEAKENING_TAGS). This image must never be flashed or released." >&2; fi
	$(TAMAGO_ENV) $(TAMAGO) build $(GOFLAGS_TAMAGO) -tags "$(TAGS)" -ldflags "$(LDFLAGS_TAMAGO)" -o $@ ./firmware/stick
	$(if $(RESET_ADDR),$(GO) run ./cmd/resetvec -at $(RESET_ADDR) $@)
	@echo "teastick: built $@ ($$(stat -c %s $@) bytes, version $(VERSION))"

$(STAGE0): tamago-present FORCE
	@mkdir -p $(BUILD_DIR)
	$(TAMAGO_ENV) $(TAMAGO) build $(GOFLAGS_TAMAGO) -tags "stage0 $(filter-out native,$(TAGS))" -ldflags "$(LDFLAGS_STAGE0)" -o $@ ./firmware/boot
	$(if $(RESET_ADDR),$(GO) run ./cmd/resetvec -at $(RESET_ADDR) $@)
	@echo "teastick: built $@ ($$(stat -c %s $@) bytes, version $(VERSION))"

# The i.MX boot image: cmd/imximage lays out the payload (printing its
# load address), mkimage adds the IVT and the DCD of tamago's Mk II board
# package, cmd/imximage sets the IVT's entry to stage 0's.
IMX_DCD := $(BUILD_DIR)/imximage-$(TARGET).cfg
IMX_PAYLOAD := $(BUILD_DIR)/payload-$(TARGET).bin
$(BOOT_IMAGE): $(IMAGE) $(STAGE0)
	@command -v mkimage >/dev/null || { echo "teastick: mkimage is missing (Debian package u-boot-tools; make deps installs it)" >&2; exit 1; }
	cp "$$($(GO) list -m -f '{{.Dir}}' github.com/usbarmory/tamago)/board/usbarmory/mk2/imximage.cfg" $(IMX_DCD)
	chmod u+w $(IMX_DCD)
	load=$$($(GO) run ./cmd/imximage payload -stage0 $(STAGE0) -stick $(IMAGE) -o $(IMX_PAYLOAD)) && \
	  mkimage -n $(IMX_DCD) -T imximage -e $$load -d $(IMX_PAYLOAD) $@ >/dev/null
	$(GO) run ./cmd/imximage entry -stage0 $(STAGE0) -stick $(IMAGE) $@
	@echo "teastick: built $@ ($$(stat -c %s $@) bytes): flash it at 1 KiB into a microSD card, or boot it with armory-boot-usb"

ifeq ($(TARGET),usbarmory)
# The Mk II's boot payload on QEMU's i.MX6UL evaluation kit, loaded where
# the boot ROM would load it: it boots to NOT MEASURED and serves nothing
# (no RNGB, USB device controller or TPM under QEMU). Ctrl-A X quits.
qemu: $(BOOT_IMAGE)
	@echo "teastick: booting the USB armory Mk II's boot payload on QEMU's mcimx6ul-evk: it has no RNGB, USB device controller or TPM, so the stick says NOT MEASURED and serves nothing" >&2
	$(QEMU_BIN) -machine mcimx6ul-evk -cpu cortex-a7 -m 512M -semihosting -nographic -monitor none -serial null -serial stdio -no-reboot \
	  $$($(GO) run ./cmd/imximage qemu -stage0 $(STAGE0) -stick $(IMAGE) -o $(IMX_PAYLOAD))
else
qemu: $(IMAGE) $(STAGE0) $(filter netstack-prep,$(PREP_TARGETS))
	$(GO) run ./cmd/teastick-qemu -target $(TARGET) -stage0 $(STAGE0) -stick $(IMAGE) $(if $(QEMU_MANIFEST_KEY),-governance-key $(QEMU_MANIFEST_KEY)) \
	  $(if $(filter 1,$(NATIVE)),-actors $(NATIVE_MODULES) -native)
endif

# The example actors built as the launcher publishes them (GOOS=wasip1,
# runtime/examples.Build), then translated: what NATIVE=1 compiles in.
native-examples:
	@mkdir -p $(NATIVE_MODULES)
	$(GO) run ./cmd/teastick-qemu -build-actors $(NATIVE_MODULES)
	rm -rf $(NATIVE_MODULES)/.examples && mkdir -p $(NATIVE_MODULES)/.examples && \
	  for a in $(NATIVE_EXAMPLES); do cp $(NATIVE_MODULES)/$$a.wasm $(NATIVE_MODULES)/.examples/; done
	$(GO) run ./cmd/teactl release translate --modules $(NATIVE_MODULES)/.examples -o $(NATIVE_DIR)

# A release: DRAFT (a manifest draft, teactl manifest new/add), KEY (the
# governance key file), MODULES (the built actors, NAME.wasm or CID.wasm),
# OUT (the bundle directory to create). The actors DRAFT marks native are
# translated and compiled into the image; teactl release build reads the
# native table back from the image into reference.json.
OUT ?= $(BUILD_DIR)/release
release: tamago-present
	@test -n "$(DRAFT)" -a -n "$(KEY)" -a -n "$(MODULES)" || { echo "teastick: make release needs DRAFT=, KEY= and MODULES=" >&2; exit 1; }
	@if grep -q '"native": *true' $(DRAFT); then \
	  $(GO) run ./cmd/teactl release translate $(DRAFT) --modules $(MODULES) -o $(NATIVE_DIR) && \
	  $(MAKE) --no-print-directory image BUILD_TAGS="native $(BUILD_TAGS)"; \
	else $(MAKE) --no-print-directory image; fi
	$(GO) run ./cmd/teactl release build $(DRAFT) --stage0 $(STAGE0) --stick $(IMAGE) --image-version $(VERSION) --key $(KEY) -o $(OUT)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "teastick: installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "teastick: missing Debian packages:$$missing (install them: sudo apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi

test: deps $(PREP_TARGETS) test-tamago test-host

test-host:
	$(GO) test -race -count=1 -timeout 30m $(if $(strip $(GO_TEST_TAGS)),-tags "$(strip $(GO_TEST_TAGS))") ./...

# Every target `make test` builds (its QEMU tests boot each of them).
TARGETS := qemu qemu-riscv64 usbarmory

test-tamago:
	@if test -x "$(TAMAGO_GOROOT)/bin/go"; then \
	  for t in $(TARGETS); do $(MAKE) -s --no-print-directory tamago-packages TARGET=$$t || exit 1; done; \
	else \
	  echo "teastick: SKIPPED the GOOS=tamago builds and QEMU boot tests of TARGET=qemu (arm), TARGET=qemu-riscv64 (riscv64) and TARGET=usbarmory (USB armory Mk II): the TamaGo compiler $(TAMAGO_GO) is not installed ($(TAMAGO_GOROOT))"; \
	fi

# The bare-metal packages for one TARGET.
tamago-packages: tamago-present
	@echo "teastick: building the tamago packages for TARGET=$(TARGET)"
	$(TAMAGO_ENV) $(TAMAGO) build $(GOFLAGS_TAMAGO) -tags "$(TAGS)" $(TAMAGO_PKGS)
	$(TAMAGO_ENV) $(TAMAGO) build $(GOFLAGS_TAMAGO) -tags "stage0 $(TAGS)" -o /dev/null ./firmware/boot

check:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting" >&2; exit 1; }
	$(GO) mod tidy -diff
	@if test -x "$(TAMAGO_GOROOT)/bin/go"; then $(TAMAGO_ENV) $(TAMAGO) vet -tags "$(TAGS)" $(TAMAGO_PKGS) && $(TAMAGO_ENV) $(TAMAGO) vet -tags "stage0 $(TAGS)" ./firmware/boot; \
	else echo "teastick: SKIPPED GOOS=tamago vet: the TamaGo compiler $(TAMAGO_GO) is not installed"; fi

FORCE:
