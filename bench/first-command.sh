#!/usr/bin/env bash
# Cold build + run of the README's first command, before and after it got a
# crate of its own: each from a clean export of its commit (git archive) into
# a fresh CARGO_TARGET_DIR, the registry cache warm (no download is timed),
# both at once so they meet the same load on a shared machine. Reports wall
# time and CPU time (user + system of cargo and every rustc it ran: the
# number that does not depend on what else the machine is doing). Writes
# bench/first-command.json, which the bench's report (BENCHMARKS.md) reads.
#
#   bash bench/first-command.sh [BEFORE_REV] [AFTER_REV]   # RELEASE=1: also `--release`
set -euo pipefail
cd "$(dirname "$0")/.."
before_rev=${1:-104a7f4}
after_rev=${2:-HEAD}
work=${COLD_DIR:-/tmp/cold-demo}
rm -rf "$work"
mkdir -p "$work"

measure() { # name rev command...
  local name=$1 rev=$2
  shift 2
  local src="$work/$name-src" target="$work/$name-target"
  mkdir -p "$src"
  git archive "$rev" | tar -x -C "$src"
  (cd "$src" && CARGO_TARGET_DIR="$target" CARGO_INCREMENTAL=0 \
    /usr/bin/time -f '%e %U %S' -o "$work/$name.time" "$@") >"$work/$name.log" 2>&1
  read -r wall user sys <"$work/$name.time"
  local crates
  crates=$(grep -c '^ *Compiling ' "$work/$name.log" || true)
  echo "$name: $wall s wall, $user+$sys s CPU, $crates crates compiled ($*)" >&2
  printf '"%s_s": %s, "%s_cpu_s": %s, "%s_crates": %d, "%s_command": "%s"' \
    "$name" "$wall" "$name" "$(echo "$user + $sys" | bc)" "$name" "$crates" "$name" "$*" >"$work/$name.json"
}

measure before "$before_rev" cargo run --example demo &
measure after "$after_rev" cargo run -p rollguard-demo &
if [ "${RELEASE:-0}" = 1 ]; then
  measure after_release "$after_rev" cargo run --release -p rollguard-demo &
fi
wait
parts=$(cat "$work"/*.json | paste -sd, -)
load=$(cut -d' ' -f1-3 /proc/loadavg)
cat >bench/first-command.json <<JSON
{"date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "method": "$(nproc) cores shared with other engineers' builds (load average at the end: $load); each command from a clean git archive of its commit into a fresh CARGO_TARGET_DIR, all started at once so they meet the same load, registry cache warm, CARGO_INCREMENTAL=0; wall time includes the demo's own run (a few seconds); CPU time is user + system of cargo and its rustc processes", $parts}
JSON
cat bench/first-command.json
