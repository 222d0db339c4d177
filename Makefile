# unibus — build, run, test, bench. CGO is off everywhere: static binaries.
export CGO_ENABLED := 0
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/unibus/unibus/membershipd.Version=$(VERSION)
# Two cores: two test binaries at a time, each free to use both.
TESTFLAGS ?= -count=1 -p 2 -timeout 25m

.PHONY: build run test lint bench bench-go bench-dataplane fuzz clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# A working membershipd on this machine with its embedded defaults:
# HTTP on :8470, NATS on :4250, state in ./local_files.
run: build
	./$(BIN)/membershipd

test: lint
	$(GO) test $(TESTFLAGS) ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# Benchmarks are never part of `make test`: the machine is shared and noisy.
bench: bench-go bench-dataplane

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./...

bench-dataplane: build
	./scripts/bench-dataplane.sh

clean:
	rm -rf $(BIN)
