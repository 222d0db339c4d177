# unibus — build, run, test, bench. CGO is off everywhere: static binaries.
export CGO_ENABLED := 0
GO ?= go
# Tools installed with go install land here; tests look them up on PATH.
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)
SHELL := /bin/bash
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/unibus/unibus/membershipd.Version=$(VERSION)
# Two cores: two test binaries at a time, each free to use both. Tests run
# with the race detector, which needs cgo (the binaries stay CGO_ENABLED=0).
TESTFLAGS ?= -count=1 -p 2 -timeout 25m -race

.PHONY: build run down run-single deps test lint bench bench-go bench-dataplane bench-controlplane bench-https bench-accounts bench-exec bench-apply bench-systemd bench-ssh fuzz clean
# Fuzz targets as package:Target; `make test` runs each briefly, from the
# committed corpus in testdata/fuzz (new finds land in the Go cache; copy
# them into testdata/fuzz to keep them).
FUZZ_TARGETS := ./internal/reqsign:FuzzParse \
	./membershipd:FuzzParseMemberRequest ./membershipd:FuzzParseRoomRequest \
	./membershipd:FuzzParseSealedKeyRequest ./membershipd:FuzzParseRoomMemberRequest
FUZZTIME ?= 5s

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The main job with its embedded default: unibus apply brings up the
# three-node local cluster of examples/local-cluster (TLS routes, HTTPS,
# bus-auth enforce) under unibus's own supervisor; make down stops it.
run: build
	./$(BIN)/unibus apply -auto-approve examples/local-cluster

down: build
	./$(BIN)/unibus down examples/local-cluster

# One membershipd for development on this machine: HTTP on 127.0.0.1:8470,
# NATS on 127.0.0.1:4250, state in ./local_files. Loopback, because without
# a certificate the control plane is plain HTTP, which membershipd serves
# beyond loopback only with --allow-plain-http.
RUN_FLAGS := --http-addr 127.0.0.1:8470 --nats-addr 127.0.0.1:4250
run-single: build
	./$(BIN)/membershipd $(RUN_FLAGS)

# What the tests need beyond Go: systemd's analyzer (units are checked with
# systemd-analyze verify and security; systemd need not run) and the age CLI
# (tests decrypt rendered secrets with the real thing).
deps:
	@command -v systemd-analyze >/dev/null || { echo "installing systemd's tools (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; }
	@command -v age >/dev/null || $(GO) install filippo.io/age/cmd/...@v1.3.2
	@# The systemd-manager tests run a real systemd --user and journald from
	@# that package, in mount namespaces (util-linux: unshare, nsenter).
	@command -v unshare >/dev/null && command -v nsenter >/dev/null || { echo "installing util-linux (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends util-linux >/dev/null; }
	@# The SSH transport's tests run a real OpenSSH server on loopback.
	@test -x /usr/sbin/sshd || { echo "installing openssh-server (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null; }
	@# target { sudo = true } is tested with real sudo (its rules only in
	@# the tests' mount namespaces).
	@command -v sudo >/dev/null || { echo "installing sudo (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends sudo >/dev/null; }

test: deps lint
	CGO_ENABLED=1 $(GO) test $(TESTFLAGS) ./...
	$(MAKE) --no-print-directory fuzz

fuzz:
	@set -eo pipefail; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) $${t%%:*} 2>&1 | grep -v '^fuzz: elapsed'; \
	done

# staticcheck is pinned and run through `go run`, so `make test` needs no
# separate install step. (govulncheck needs its vulnerability database
# online, which this project's machines cannot reach.)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Benchmarks are never part of `make test`: the machine is shared and noisy.
bench: bench-go bench-dataplane bench-controlplane bench-https bench-accounts bench-exec bench-apply bench-systemd bench-ssh

bench-go:
	$(GO) test -run '^$$' -skip 'BenchmarkApplyManagers|BenchmarkPlanOverSSH' -bench . -benchmem -count 5 ./...

bench-dataplane: build
	./scripts/bench-dataplane.sh

bench-controlplane: build
	./scripts/bench-controlplane.sh

# Signed requests/s over HTTPS against plain HTTP, same run, interleaved
# rounds (target: HTTPS at 0.8x HTTP or better). Short rounds: shared machine.
bench-https: build
	./scripts/bench-controlplane.sh -https -rounds 3 -duration 5s

# unibus apply of the local cluster, from nothing to three ready nodes,
# beside the same three processes started by hand; plan and no-op apply.
bench-apply: build
	$(GO) run ./internal/cmd/applybench -rounds 5

# Send->receive latency on the commit before the NATS account split and on
# this tree, interleaved.
bench-accounts:
	./scripts/bench-accounts.sh

# membershipd to READY=1 and to /readyz 200 under the exec manager beside
# the same binary run directly, interleaved rounds, medians.
# apply of the 3-node local cluster under a real systemd user manager
# beside the same under the exec manager, 5 interleaved rounds (as root).
bench-systemd:
	$(GO) test -run '^$$' -bench BenchmarkApplyManagers -benchtime 5x -count 1 ./cmd/unibus

# plan of 1 and 3 nodes over SSH (a real sshd on loopback) beside the
# same folders planned locally (as root).
bench-ssh:
	$(GO) test -run '^$$' -bench BenchmarkPlanOverSSH -benchtime 15x -count 1 ./cmd/unibus

bench-exec:
	$(GO) test -run '^$$' -bench BenchmarkExecStartToReady -benchtime 15x -count 1 ./units

clean:
	rm -rf $(BIN)
