#!/usr/bin/env bash
# Signed control-plane requests/s (sealed-key fetch) against the Ed25519
# verify rate of the same cores, with wrk as the load generator: the server
# alone on core 0 (wrk on core 1), then server and wrk sharing both cores.
# With -https: signed requests/s over HTTPS against plain HTTP, same run.
# Run: make bench-controlplane, make bench-https
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
go run ./internal/cmd/cpbench --membershipd bin/membershipd "$@"
