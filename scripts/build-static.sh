#!/usr/bin/env bash
# Build the static (glibc, crt-static) release binary that the Dockerfile's `prebuilt` target
# packages and tests/it/image.rs runs FROM scratch:
#   target/x86_64-unknown-linux-gnu/release/sealwatch   (below $CARGO_TARGET_DIR when that is set)
# Idempotent: cargo rebuilds only what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --target x86_64-unknown-linux-gnu "$@"
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/sealwatch
# A static binary has no program interpreter; fail loudly if the flag was lost somewhere.
if command -v file >/dev/null 2>&1 && file "$bin" | grep -q 'dynamically linked'; then
    echo "build-static.sh: $bin is dynamically linked" >&2
    exit 1
fi
echo "$bin"
