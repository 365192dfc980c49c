#!/usr/bin/env bash
# Regenerates scripts/hot-functions.txt, the functions scripts/build-static.sh links side by side:
# every function the static binary executes while it starts, lists 50 containers, ingests 10,000
# events, serves 40 scrapes (text and gzipped OpenMetrics in turn) across 4 reconnects (the soak
# run, benches/soak.rs, against the fake speaking Podman 4.3.1, then 5.4.2) and answers each of
# its other endpoints once, as valgrind's callgrind records it. Names are written demangled and
# without their hashes, sorted.
#
# Needs valgrind and curl. Run it after a change that adds or renames much code on those paths:
# build-static.sh warns when fewer than half of the listed names are in its build (and CI fails).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(scripts/build-static.sh --locked | tail -n 1)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/run.sh" <<EOF
#!/usr/bin/env bash
# sealwatch under callgrind; once it is ready, each of its other endpoints is asked once.
args=("\$@")
for ((i = 0; i + 1 < \${#args[@]}; i++)); do
    if [ "\${args[i]}" = --web.listen-address ]; then addr=\${args[i + 1]}; fi
done
(
    for _ in \$(seq 600); do
        curl -fs "http://\$addr/-/ready" >/dev/null && break
        sleep 0.1
    done
    for path in / /-/healthy /-/ready /containers /pods '/containers?state=running' /metrics; do
        curl -fs "http://\$addr\$path" >/dev/null || true
    done
    curl -fs --max-time 2 "http://\$addr/events?since=0" >/dev/null || true
) &
exec valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" --demangle=no \\
    --dump-instr=no --compress-strings=no "$bin" "\$@"
EOF
chmod +x "$work/run.sh"

# Once with the fake speaking Podman 4.3.1, once 5.4.2 (most hosts run 5 or later).
for shape in 4.3.1 5.4.2; do
    SEALWATCH_SOAK_SHAPE=$shape SEALWATCH_SOAK_BIN=$work/run.sh SEALWATCH_SOAK_CONTAINERS=50 \
        SEALWATCH_SOAK_EVENTS=10000 SEALWATCH_SOAK_RECONNECTS=4 SEALWATCH_SOAK_SCRAPES=40 \
        cargo bench --locked --bench soak >&2
    mv "$work/callgrind.out" "$work/callgrind.$shape.out"
done

# Every function callgrind saw run in either, by its symbol; then each symbol's demangled name.
cat "$work"/callgrind.*.out | grep -E '^c?fn=' | sed -E 's/^c?fn=(\([0-9]+\) ?)?//' | sort -u >"$work/ran"
. scripts/lib/symbols.sh
function_symbols "$bin" | awk -F'\t' '
    FILENAME == ARGV[1] { ran[$0] = 1; next }
    $1 in ran { print $2 }
' "$work/ran" - | LC_ALL=C sort -u >scripts/hot-functions.txt
echo "scripts/hot-functions.txt: $(wc -l <scripts/hot-functions.txt) functions" >&2
