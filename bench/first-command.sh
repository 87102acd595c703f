#!/usr/bin/env bash
# Cold build + run of the README's first command, before and after it got a
# crate (and a build profile) of its own: each variant from a clean export of
# its commit (git archive) into a fresh CARGO_TARGET_DIR, the registry cache
# warm (no download is timed). Variants given together run at once, so they
# meet the same load on a shared machine. Reports wall time and CPU time
# (user + system of cargo and every rustc it ran: the number that depends
# least on what else the machine is doing). Writes bench/first-command.json
# from every variant measured so far in $COLD_DIR; the bench's report
# (BENCHMARKS.md) reads it.
#
#   bash bench/first-command.sh [VARIANT...]   # before after after_release after_profile (default: all)
#   BEFORE_REV=104a7f4 AFTER_REV=HEAD FRESH=1 (start from an empty $COLD_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
before_rev=${BEFORE_REV:-104a7f4}
after_rev=${AFTER_REV:-HEAD}
work=${COLD_DIR:-/tmp/cold-demo}
[ "${FRESH:-0}" = 1 ] && rm -rf "$work"
mkdir -p "$work"

measure() { # name rev command...
  local name=$1 rev=$2
  shift 2
  local src="$work/$name-src" target="$work/$name-target"
  rm -rf "$src" "$target"
  mkdir -p "$src"
  git archive "$rev" | tar -x -C "$src"
  local rc=0
  (cd "$src" && CARGO_TARGET_DIR="$target" CARGO_INCREMENTAL=0 \
    /usr/bin/time -f '%e %U %S' -o "$work/$name.time" "$@") >"$work/$name.log" 2>&1 || rc=$?
  local wall user sys crates
  read -r wall user sys < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+$' "$work/$name.time")
  crates=$(grep -c '^ *Compiling ' "$work/$name.log" || true)
  echo "$name: $wall s wall, $user+$sys s CPU, $crates crates compiled, exit $rc ($*)" >&2
  printf '"%s_s": %s, "%s_cpu_s": %s, "%s_crates": %d, "%s_exit": %d, "%s_command": "%s"\n' \
    "$name" "$wall" "$name" "$(echo "$user + $sys" | bc)" "$name" "$crates" "$name" "$rc" "$name" "$*" >"$work/$name.json"
}

variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(before after after_release after_profile)
for v in "${variants[@]}"; do
  case $v in
    before) measure before "$before_rev" cargo run --example demo & ;;
    after) measure after "$after_rev" cargo run -p rollguard-demo & ;;
    after_release) measure after_release "$after_rev" cargo run --release -p rollguard-demo & ;;
    after_profile) measure after_profile "$after_rev" cargo run -p rollguard-demo --profile demo & ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
done
wait
parts=$(cat "$work"/*.json | paste -sd, -)
load=$(cut -d' ' -f1-3 /proc/loadavg)
cat >bench/first-command.json <<JSON
{"date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "method": "$(nproc) cores shared with other engineers' builds (load average at the end: $load); each command from a clean git archive of its commit into a fresh CARGO_TARGET_DIR, registry cache warm, CARGO_INCREMENTAL=0; variants given together ran at once (see the dates of the runs); wall time includes the demo's own run (a few seconds) and depends on the load; CPU time is user + system of cargo and its rustc processes", $parts}
JSON
cat bench/first-command.json
