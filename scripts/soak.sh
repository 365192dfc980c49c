#!/usr/bin/env bash
# The soak run (not part of CI's default run): the real sealwatch binary behind the wire-level
# fake Podman with 10,000 containers, 1,000,000 events, then 200 scrapes with a reconnect and a
# full resync every 10 scrapes (20 in all), RSS sampled throughout; prints a table
# (`benches/soak.rs`). The full output is kept in target/soak.txt.
# Usage: scripts/soak.sh   (SEALWATCH_SOAK_CONTAINERS, _EVENTS, _RECONNECTS, _SCRAPES to change
# the scale; MALLOC_* variables reach sealwatch)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${CARGO_TARGET_DIR:-target}"
mkdir -p "$out"
cargo bench --locked --bench soak | tee "$out/soak.txt"
