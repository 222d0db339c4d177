#!/usr/bin/env bash
# Embedded data plane vs standalone nats-server of the same version, driven by
# the real `nats bench`; plus membershipd start-to-ready time and idle RSS.
# Installs its tools into .bench/bin (ignored by git). Run: make bench-dataplane
set -euo pipefail
cd "$(dirname "$0")/.."
export GOBIN="$PWD/.bench/bin"
# The standalone server must be the exact nats-server version linked into membershipd.
nats_server_version=$(go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
natscli_version=v0.5.0
if [[ "$("$GOBIN/nats-server" --version 2>/dev/null)" != *"${nats_server_version#v}"* ]]; then
  go install "github.com/nats-io/nats-server/v2@${nats_server_version}"
fi
[[ -x "$GOBIN/nats" ]] || go install "github.com/nats-io/natscli/nats@${natscli_version}"
go run ./internal/cmd/dataplanebench --membershipd bin/membershipd \
  --nats-server "$GOBIN/nats-server" --nats "$GOBIN/nats" "$@"
