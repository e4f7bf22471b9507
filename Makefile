# haguard: `make test` and `make demo` do all set-up on a fresh Debian 12 machine.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:/usr/lib/go-1.23/bin:$(PATH)
export GOFLAGS ?= -mod=mod
export GOTOOLCHAIN ?= auto

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# A static (CGO_ENABLED=0: no libc to declare, the pure-Go resolver)
# position-independent binary: PIE for ASLR, RELRO with BIND_NOW, so ld.so
# makes the relocated data read-only before main (docs/install.md). PIE
# costs every command about 1.3 ms of start-up (ld.so relocates 64,000
# pointers): BUILDMODE=exe builds a static non-PIE binary, which lintian
# accepts too (docs/benchmarks.md, start-up).
BUILDMODE ?= pie
LDFLAGS := -s -w -bindnow -X main.version=$(VERSION)
GOBUILD := CGO_ENABLED=0 go build -trimpath -buildmode=$(BUILDMODE)
BIN := bin/haguard
# The package's Maintainer field; empty: DEBFULLNAME/DEBEMAIL, else git's
# user.name/user.email (packaging.ResolveMaintainer).
MAINTAINER ?=

.PHONY: all build deps deps-go test test-faults test-load test-unit test-binary test-system test-30 haproxy30 lint vet staticcheck fmt bench demo clean deb

all: build

build: deps-go
	$(GOBUILD) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/haguard

deps:
	./scripts/deps.sh
deps-go:
	./scripts/deps.sh go

# Every tier (unit, real haproxy binary, real systemd + MariaDB/Galera)
# against Debian 12's haproxy 2.6, then the binary and system tiers against
# Debian 13's haproxy 3.0 built from its source package (scripts/test.sh).
test: deps lint
	./scripts/test.sh

# One tier alone (docs/testing.md).
test-unit:
	go test -short -race -count=1 ./...
test-binary: deps
	HAGUARD_TIERS=binary go test -race -count=1 ./...
test-system: deps
	HAGUARD_TIERS=system go test -race -count=1 -timeout 45m ./...

# Debian 13's haproxy 3.0, built from Debian's source package and cached
# under /var/cache/haguard/haproxy/<version>/ (prints the binary's path).
haproxy30: deps
	./scripts/haproxy30.sh
# The binary and system tiers against it (the second pass of `make test`).
test-30: deps
	@bin=$$(./scripts/haproxy30.sh) || exit 1; \
	echo "=== haproxy $$($$bin -v | head -1)"; \
	HAGUARD_HAPROXY_BIN=$$bin HAGUARD_HAPROXY_UNIT=$$(dirname $$bin)/haproxy.service \
	HAGUARD_TIERS=binary,system go test -race -count=1 -timeout 45m ./...

lint: vet staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
vet:
	go vet ./...
	go vet -tags haguard_testhooks ./host/...
staticcheck:
	go tool staticcheck ./...
	go tool staticcheck -tags haguard_testhooks ./host/...
fmt:
	gofmt -w $$(git ls-files '*.go')

# The 50-reload zero-drop load test (docs/benchmarks.md, ## reload): opt-in
# because it holds a loopback load generator for about a minute.
test-load: deps
	HAGUARD_ZERO_DROPS=1 go test -count=1 -run TestSystemZeroDropsUnderReloads -v ./reload/

# Issue 16's fault harness, full set (docs/testing.md): a full state dir at
# every stage with a good and a failing candidate, a read-only config dir,
# and 20 runs each of SIGKILL, SIGTERM and SIGHUP at seeded random offsets
# (HAGUARD_FAULT_SEED=N replays one), then the single-fault tests. `make
# test` runs a reduced set. About 8 minutes, root.
test-faults: deps
	HAGUARD_FAULTS=full HAGUARD_TIERS=system go test -count=1 -timeout 45m -v \
		-run 'TestSystemFaults|TestSystemFullStateDir|TestSystemCorruptBlob|TestSystemStatusReportsTornJournal|TestSystemEditDuringReloadIsRaced|TestSystemRollbackKeepsConcurrentEdit|TestSystemSIGHUPRollsBack|TestSystemUnrecordedCommitAdopted|TestSystemRefusedBeforeStartIsAudited|TestSystemMissingMasterSocketSaidAtOnce' ./reload/

# Benchmarks behind docs/benchmarks.md.
bench: deps
	go test -run '^$$' -bench . -benchmem -count=1 ./...

demo: deps build
	go run ./internal/testbed/cmd/demo -haguard $(BIN)

# dist/haguard_<version>_amd64.deb: binary, unit, conffile, man pages,
# completions (docs/install.md). nfpm runs as a library: no dpkg-deb needed.
DIST ?= dist
deb: build
	go run ./packaging/cmd/mkdeb -binary $(BIN) -out $(DIST) -maintainer '$(MAINTAINER)'

clean:
	rm -rf bin dist
