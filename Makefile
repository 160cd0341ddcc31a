# tcptrace developer targets. `sudo make run` traces; `sudo make test` runs
# every test, the privileged end-to-end ones included.

# sudo drops /usr/local/go/bin from PATH: find go either way.
GO ?= $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
BIN := bin/tcptrace
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
ARGS ?=

.PHONY: all deps build generate check-generated test test-short test-kernels test-kernels-ci kernels-update lint cross test-bigendian run bench bench-scale fuzz golden

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/tcptrace

# Rebuild the BPF object and its Go bindings (needs clang and libbpf-dev).
generate:
	$(GO) generate ./bpf

# Fail when the committed generated files differ from what `generate` makes.
check-generated: generate
	@if [ -n "$$(git status --porcelain -- bpf)" ]; then \
		git status --short -- bpf; \
		echo "bpf/: generated files are stale: run 'make generate' and commit the result" >&2; \
		exit 1; \
	fi

# The Debian packages the build and the tests use, where missing (root).
deps:
	scripts/install-deps.sh

# Every test. The end-to-end tests need root and fail (not skip) without it;
# the packages they use are installed first, so that a fresh machine needs
# nothing else.
test: deps build
	TCPTRACE_REQUIRE_PRIVILEGED=1 TCPTRACE_REQUIRE_BROWSER=1 TCPTRACE_BINARY=$(abspath $(BIN)) $(GO) test -count=1 ./...

# The privileged suite inside other kernels under qemu: by default every
# kernel scripts/kernel-matrix/kernels.lock pins (Debian 5.10 to 7.x, exact
# package versions); KERNELS="6.12" (a locked series) or an exact release to
# pick. Needs root and scripts/kernel-matrix/deps.sh; kernels are cached
# outside the repo.
KERNELS ?= $(shell scripts/kernel-matrix/kernels.sh list)
KERNEL_TEST_ARGS ?=
test-kernels: build
	$(GO) test -c -o bin/e2e.test ./internal/e2e
	cd internal/e2e && ../../scripts/kernel-matrix/run.sh --test-binary ../../bin/e2e.test \
		--test-args "-test.count=1 $(KERNEL_TEST_ARGS)" --kernels "$(KERNELS)" \
		--env TCPTRACE_BINARY=$(abspath $(BIN)) --env TCPTRACE_REQUIRE_PRIVILEGED=1

# What CI runs: the kernels.lock entries marked ci (today all of them; the
# oldest and the newest series always).
test-kernels-ci:
	$(MAKE) test-kernels KERNELS="$$(scripts/kernel-matrix/kernels.sh ci)"

# Move the pins deliberately: the newest release of every locked series,
# written to kernels.lock (review the diff, run test-kernels, commit).
kernels-update:
	scripts/kernel-matrix/kernels.sh update

# Only the tests that need no privileges.
test-short:
	$(GO) test -count=1 -short ./...

# Replay and report must build wherever Go does, big-endian GOARCHes too,
# where decode reads the little-endian records field by field.
cross:
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/tcptrace
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/tcptrace
	GOOS=linux GOARCH=s390x $(GO) build ./internal/replay/... ./internal/report/...
	GOOS=linux GOARCH=s390x $(GO) vet ./internal/decode/

# Decoding and the golden replays on a big-endian machine, emulated (needs
# qemu-user's qemu-s390x).
test-bigendian:
	GOOS=linux GOARCH=s390x $(GO) test -exec qemu-s390x -count=1 ./internal/decode ./internal/replay

# gofmt, and goimports' grouping: the standard library, other modules, this
# module's packages; errors wrapped with %w and inspected with errors.Is/As;
# and the dependency rule (internal/boundary: only the probe layer links
# cilium/ebpf), which the compiler cannot check.
lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt: $$fmt" >&2; exit 1; fi
	@imp=$$($(GO) tool goimports -local github.com/tcptrace/tcptrace -l $$(git ls-files '*.go')); if [ -n "$$imp" ]; then echo "goimports: $$imp" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) tool go-errorlint -errorf ./...
	$(GO) test -count=1 ./internal/boundary

# sudo make run ARGS="--pid 1234 -o json"
run: build
	./$(BIN) $(ARGS)

# Loopback connection churn, untraced and traced, interleaved (and traced by
# libbpf-tools' tcpstates too where it is installed); plus the per-event cost
# of decoding, rendering and the whole pipeline.
TCPSTATES := $(wildcard /usr/sbin/tcpstates)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./internal/decode ./internal/render ./internal/pipeline
	$(GO) run ./scripts/bench -tracer $(BIN) $(if $(TCPSTATES),-compare "exec $(TCPSTATES)")

# A busy server's load: a churn that saturates both CPUs (16 clients from 256
# addresses, 80,000 connections a run) untraced, under tcptrace, tcptrace
# --discard and the libbpf-tools peers where installed (they need tracefs),
# interleaved; each BPF program's cost; and a soak leaving 300,000 TIME_WAIT
# sockets. Root.
PEERS = $(wildcard /usr/sbin/tcplife /usr/sbin/tcpstates)
bench-scale: build
	$(if $(PEERS),mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing)
	$(GO) run ./scripts/bench -tracer $(BIN) -reps 5 -conns 80000 -clients 16 -addrs 256 -bpf-stats -soak 300000 \
		$(foreach p,$(PEERS),-compare "exec $(p)")

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./internal/decode
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime 60s ./internal/record

# Record the golden replays of internal/replay/testdata again, from real runs
# of the privileged scenarios (needed when the record layout changes).
GOLDEN_TESTS := TestKeepalive$$|TestZeroWindow|TestTimewaitSynAccepted|TestTimewaitConnectReuse|TestTimewaitRST|TestResets$$|TestRetransmitTimeout|TestCloseShapes|TestAbortiveCloses
golden: build
	rm -f internal/replay/testdata/*.rec.gz internal/replay/testdata/*.json
	TZ=UTC TCPTRACE_RECORD_GOLDEN=$(abspath internal/replay/testdata) TCPTRACE_BINARY=$(abspath $(BIN)) \
		$(GO) test -count=1 -run '$(GOLDEN_TESTS)' ./internal/e2e
