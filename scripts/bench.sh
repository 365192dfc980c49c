#!/usr/bin/env bash
# Runs sealwatch's CPU benchmarks (ingest and render; `cargo bench`) and prints their key numbers
# as one table, with the date and the machine, for the README's "Ingest cost" and "Scrape cost".
# Numbers are CPU time of the measuring thread; compare ratios measured in one run, not numbers
# across machines. The full outputs are kept in target/bench-*.txt.
# Usage: scripts/bench.sh   (SEALWATCH_BENCH_EVENTS=N for fewer than 1,000,000 events)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${CARGO_TARGET_DIR:-target}"
mkdir -p "$out"
cargo bench --locked --bench ingest >"$out/bench-ingest.txt"
cargo bench --locked --bench render >"$out/bench-render.txt"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "sealwatch benchmarks, $(date -u +%Y-%m-%d), $(nproc) CPUs: $cpu"
echo
grep -m1 '^sealwatch ingest benchmark' "$out/bench-ingest.txt"
printf '%-62s %12s %9s %9s\n' "ingest" "events/CPU s" "us/event" "vs owned"
grep -E '^(reference|sealwatch:|ingest,)' "$out/bench-ingest.txt"
echo
echo "render (ms CPU per scrape, median; see $out/bench-render.txt for p90 and wall):"
printf '%10s %6s %8s | %8s %8s %8s %8s | %8s %8s | %8s %8s | %8s %8s\n' containers pods series \
    text OM text+gz OM+gz "1%: text" OM+gz cold OM+gz resync OM+gz
awk '/^ +[0-9]+ +[0-9]+ +[0-9]+ \|/ {
    printf "%10s %6s %8s | %8s %8s %8s %8s | %8s %8s | %8s %8s | %8s %8s\n",
        $1, $2, $3, $5, $9, $12, $15, $18, $19, $21, $22, $24, $25 }' \
    "$out/bench-render.txt"
echo
echo "cold text render (ms CPU, median) beside a one-pass write of the per-container lines alone"
echo "and a copy of the text body into fresh memory, taken in turn:"
grep -E '^ +[0-9]+ containers, +[0-9]+ pods: cold' "$out/bench-render.txt" || true
echo
grep -E '^(Inventory|apply)' "$out/bench-render.txt" || true
