#!/usr/bin/env bash
# Signed control-plane requests/s (sealed-key fetch) against the Ed25519
# verify rate of the same machine, with wrk as the load generator.
# Run: make bench-controlplane
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
go run ./internal/cmd/cpbench --membershipd bin/membershipd "$@"
