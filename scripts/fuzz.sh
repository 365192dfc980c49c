#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60) and fails if any finds a crash,
# a timeout or an out-of-memory input (left in fuzz/artifacts/TARGET/; copy it to
# fuzz/regressions/TARGET/ once fixed, so the stable test replays it forever).
#
# Coverage-guided runs need the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz
# --locked`). Without them this says so plainly and replays the targets on stable over the seeds
# and past findings instead (`cargo test --lib fuzzing::`), which is no fuzzing.
#
# The corpus (fuzz/corpus/TARGET/, git-ignored) is seeded at each run from the real fixtures in
# tests/fixtures/ and keeps what earlier runs found.
#
# No sanitizer by default: the fuzzed code is safe Rust, where an out-of-bounds access is already
# a panic (a finding) and AddressSanitizer has nothing more to find, while it makes each run 2.5-4
# times slower and the build half as long again. SEALWATCH_FUZZ_SANITIZER=address (or leak,
# memory, thread) turns one on.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(event_line ndjson lists web_config negotiate)
fi

if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: NO COVERAGE-GUIDED FUZZING: needs the nightly toolchain and cargo-fuzz" \
        "(rustup toolchain install nightly; cargo install cargo-fuzz --locked);" \
        "replaying the targets on stable over the seeds and past findings instead" >&2
    cargo test --locked --lib fuzzing::
    exit 0
fi

sanitizer="${SEALWATCH_FUZZ_SANITIZER:-none}"
fx=tests/fixtures
seed() { # seed TARGET NAME PREFIX-BYTE(octal, or '') FILE
    local dir="fuzz/corpus/$1"
    mkdir -p "$dir"
    { [ -n "$3" ] && printf "\\$3"; cat "$4"; } >"$dir/$2"
}
for t in "${targets[@]}"; do
    dir="fuzz/corpus/$t"
    mkdir -p "$dir"
    case "$t" in
    event_line)
        i=0
        for f in $fx/events.ndjson $fx/events-replay-died.ndjson $fx/objects/events-4.3.1.ndjson \
            $fx/5.4.2/events.ndjson; do
            while IFS= read -r line; do
                i=$((i + 1))
                printf '%s' "$line" >"$dir/fixture-$i"
            done <"$f"
        done
        ;;
    ndjson)
        seed ndjson events 001 $fx/events.ndjson
        seed ndjson replay 002 $fx/events-replay-died.ndjson
        seed ndjson objects 005 $fx/objects/events-4.3.1.ndjson
        seed ndjson stats 020 $fx/stats/stream-4.3.1.ndjson
        ;;
    lists)
        seed lists containers-4 000 $fx/containers-json.json
        seed lists containers-5 001 $fx/5.4.2/containers-json.json
        seed lists pods-4 002 $fx/pods-json.json
        seed lists pods-5 002 $fx/5.4.2/pods-json.json
        seed lists version-4 003 $fx/version.json
        seed lists version-5 003 $fx/5.4.2/version.json
        seed lists images 004 $fx/objects/images-json.json
        seed lists volumes 005 $fx/objects/volumes-json.json
        seed lists networks 006 $fx/objects/networks-json.json
        seed lists info-4 007 $fx/info.json
        seed lists info-5 007 $fx/5.4.2/info.json
        ;;
    web_config)
        printf 'basic_auth_users:\n  alice: $2y$04$hCWmWSyJ9QvWZGExpoRZUeLB1p3Nd6mBZv2aWhCH42h5tBuwa27gK\n' >"$dir/auth"
        printf 'tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS12\n' >"$dir/tls"
        printf 'http_server_config:\n  http2: false\n' >"$dir/http"
        ;;
    negotiate)
        printf 'application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1' >"$dir/prometheus"
        printf 'gzip;q=0' >"$dir/gzip-q0"
        printf '*;q=0.5, GZIP;Q=0.000' >"$dir/star"
        printf 'br, gzip;q=1e-3, identity' >"$dir/mixed"
        ;;
    *)
        echo "fuzz.sh: unknown target $t" >&2
        exit 2
        ;;
    esac
    if [ -d "fuzz/regressions/$t" ]; then
        cp fuzz/regressions/"$t"/* "$dir"/ 2>/dev/null || true
    fi
done

failed=()
for t in "${targets[@]}"; do
    echo "fuzz.sh: $t for ${seconds}s (coverage-guided, cargo +nightly fuzz, sanitizer $sanitizer)"
    # -timeout: one input taking 10 s is a finding (a hang); -rss_limit_mb: so is 2 GB.
    if ! cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        2>"fuzz/$t.log"; then
        failed+=("$t")
        tail -n 40 "fuzz/$t.log" >&2
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "fuzz/$t.log" || true
    rm -f "fuzz/$t.log"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: FINDINGS in ${failed[*]}: see fuzz/artifacts/" >&2
    exit 1
fi
echo "fuzz.sh: ${targets[*]}: ${seconds}s each, nothing found"
