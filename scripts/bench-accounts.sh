#!/usr/bin/env bash
# Encrypted send->receive latency before and after the NATS account split
# (members in their own account, no response permissions): the same
# BenchmarkEncryptedSendReceive on the last commit before the split and on
# this tree, interleaved round by round, medians reported.
# Run: make bench-accounts  [BASE=<commit>] [ROUNDS=5] [N=20000]
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-cfc5989}   # main before "bus: members in their own NATS account"
ROUNDS=${ROUNDS:-5}
N=${N:-20000}
base=$(mktemp -d)
trap 'git worktree remove --force "$base" >/dev/null 2>&1 || rm -rf "$base"' EXIT
git worktree add --detach "$base" "$BASE" >/dev/null 2>&1
declare -A p50 p99
run() { # tree label
  local out
  out=$(cd "$1" && go test -run '^$' -bench '^BenchmarkEncryptedSendReceive$' -benchtime "${N}x" ./membershipd/ 2>/dev/null | grep '^BenchmarkEncryptedSendReceive')
  p50[$2]+="$(awk '{for(i=1;i<=NF;i++) if($i=="p50-µs") print $(i-1)}' <<<"$out") "
  p99[$2]+="$(awk '{for(i=1;i<=NF;i++) if($i=="p99-µs") print $(i-1)}' <<<"$out") "
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for r in $(seq "$ROUNDS"); do
  run "$base" before
  run . after
done
b50=$(median <<<"${p50[before]}"); a50=$(median <<<"${p50[after]}")
b99=$(median <<<"${p99[before]}"); a99=$(median <<<"${p99[after]}")
echo "encrypted send->receive, 128 B, $N messages, $ROUNDS interleaved rounds (medians)"
echo "  before the account split ($BASE): p50 ${b50} µs  p99 ${b99} µs   (rounds p50: ${p50[before]})"
echo "  after  (this tree):               p50 ${a50} µs  p99 ${a99} µs   (rounds p50: ${p50[after]})"
awk -v a="$a50" -v b="$b50" -v a9="$a99" -v b9="$b99" 'BEGIN {printf "  after/before: p50 %.2fx  p99 %.2fx (target: within 10%%)\n", a/b, a9/b9}'
