#!/usr/bin/env bash
# Build the static (glibc, crt-static) release binary that the Dockerfile and the packages ship
# and tests/it/image.rs runs FROM scratch:
#   target/x86_64-unknown-linux-gnu/release/sealwatch   (below $CARGO_TARGET_DIR when that is set)
# Idempotent: cargo rebuilds only what changed.
#
# The functions a running sealwatch executes (scripts/hot-functions.txt, made by
# scripts/hot-functions.sh) are linked side by side at the start of its machine code. The kernel
# maps a binary's code in 64 KiB windows around each page that runs, so hot code spread over all
# 5.5 MB of it makes most of it resident; packed, about 2 MiB less at 50 containers (README,
# "Memory"). Their symbols carry hashes that change with the compiler, the dependencies and the
# flags, so the list names them without, and this script finds this build's symbols with `nm`,
# then links again with them in order (the second link only when the order changed).
# SEALWATCH_HOT_FUNCTIONS=strict: fail when fewer than half of the listed functions are found.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release
bin=$dir/sealwatch
mkdir -p "$dir"
order=$(cd "$dir" && pwd)/symbol-order.txt
hot=scripts/hot-functions.txt
[ -e "$hot" ] || hot=/dev/null
[ -e "$order" ] || : >"$order"

build() {
    RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,--symbol-ordering-file=$order -C link-arg=-Wl,--no-warn-symbol-ordering" \
        cargo build --release --target x86_64-unknown-linux-gnu "$@" >&2
}

build "$@"
# A static binary has no program interpreter; fail loudly if the flag was lost somewhere.
if command -v file >/dev/null 2>&1 && file "$bin" | grep -q 'dynamically linked'; then
    echo "build-static.sh: $bin is dynamically linked" >&2
    exit 1
fi

# This build's symbol for each listed function.
. scripts/lib/symbols.sh
function_symbols "$bin" | awk -F'\t' -v report="$order.found" '
    FILENAME == ARGV[1] { hot[$0] = 1; listed++; next }
    $2 in hot {
        print $1
        if (!($2 in seen)) { seen[$2] = 1; found++ }
    }
    END { print found + 0, listed + 0 > report }
' "$hot" - >"$order.new"
read -r found listed <"$order.found"
rm -f "$order.found"
# A list the code (or another compiler) left behind costs resident memory, not correctness: a
# build goes on with what it found, and fails only where asked to (scripts/test.sh, so CI).
if ((found * 2 < listed)); then
    echo "build-static.sh: only $found of the $listed functions in scripts/hot-functions.txt are in" \
        "this build; regenerate the list with scripts/hot-functions.sh" >&2
    if [ "${SEALWATCH_HOT_FUNCTIONS:-}" = strict ]; then
        exit 1
    fi
fi
if ! cmp -s "$order.new" "$order"; then
    mv "$order.new" "$order"
    # The order is read at link time only; cargo does not track the file, so the binary's own
    # crate is made to link again.
    touch src/main.rs
    build "$@"
else
    rm -f "$order.new"
fi
echo "build-static.sh: $found of $listed hot functions linked side by side" >&2
echo "$bin"
