#!/usr/bin/env bash
# End-to-end check of scripts/podman-chroot.sh for one Podman VERSION (5 or 6): what a Rust
# integration test will do, by hand. Sets up (or reuses) the root, starts a private
# `podman system service` in a temp dir, talks to it from the host with curl, runs a container,
# checks that `podman exec` sees the container's root, reads the events, then cleans up.
#
#   scripts/podman-chroot-smoke.sh VERSION [file|journald]
#
# VERSION 4 runs the same checks on the host's own Podman (Debian 12: 4.3.1), without the script.
#
# journald: events_logger = "journald"; needs a running systemd-journald on the host (see
# ../shared/podman/TEST-SERVICE.md): mkdir -p /run/systemd/journal && /lib/systemd/systemd-journald &
set -euo pipefail
cd "$(dirname "$0")/.."
V=${1:?usage: $0 VERSION [file|journald]}
EVENTS=${2:-file}
S=scripts/podman-chroot.sh
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
say() { echo "== $*"; }
fail() { echo "SMOKE $V ($EVENTS): FAILED: $*" >&2; exit 1; }

# P [--bind DIR] -- CMD...: run a Podman command the way this version needs it
P() {
    if [ "$V" = 4 ]; then
        [ "$1" = --bind ] && shift 2
        [ "$1" = -- ] && shift
        "$@"
    else
        $S exec "$V" "$@"
    fi
}
if [ "$V" = 4 ]; then
    WANT=$(podman --version | awk '{print $NF}')
else
    t=$(now)
    $S setup "$V"
    say "setup $V: $(secs "$t" "$(now)") s"
    WANT=$($S version "$V")
fi
say "version: $WANT"

D=$(mktemp -d /tmp/sealwatch-p$V-XXXXXX)
SOCK=$D/podman.sock
URL=unix://$SOCK
SVC_PID=
cleanup() {
    set +e
    if [ -S "$SOCK" ]; then
        P -- podman --url "$URL" rm -af -t 0 >/dev/null 2>&1
    fi
    # The serving process: found by its socket URL (podman re-execs itself).
    for p in $(pgrep -f -- "system service --time=0 $URL" || true); do kill -TERM "$p"; done
    for _ in $(seq 50); do pgrep -f -- "system service --time=0 $URL" >/dev/null || break; sleep 0.1; done
    [ -n "$SVC_PID" ] && wait "$SVC_PID" 2>/dev/null
    # conmon/container leftovers that name the dir (none when rm -af worked)
    for p in $(pgrep -f -- "$D/" || true); do kill -KILL "$p"; done
    [ "$V" = 4 ] || $S unbind "$V" "$D"
    rm -rf "$D"
}
trap cleanup EXIT

mkdir -p "$D/tmp"
{
    echo '[containers]'
    echo 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]'
    echo 'netns = "none"'
    [ "$V" = 6 ] && echo 'pids_limit = 0'
    echo '[engine]'
    echo 'runtime = "runc"'
    echo 'cgroup_manager = "cgroupfs"'
    echo "events_logger = \"$EVENTS\""
    echo "tmp_dir = \"$D/tmp\""
} >"$D/containers.conf"
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s/root"\nrunroot = "%s/run"\n' "$D" "$D" >"$D/storage.conf"
export CONTAINERS_CONF=$D/containers.conf CONTAINERS_STORAGE_CONF=$D/storage.conf

# the workload image, as tests/it/support/podman/mod.rs makes it for 4.3.1
mkdir -p "$D/bb/bin"
cp "$(command -v busybox)" "$D/bb/bin/busybox"
for c in sh sleep true false test touch cat echo rm ls; do ln -s busybox "$D/bb/bin/$c"; done
tar -C "$D/bb" -cf "$D/busybox.tar" .
t=$(now)
P --bind "$D" -- podman import --quiet "$D/busybox.tar" localhost/busybox:latest >/dev/null
say "import (first exec, binds $D): $(secs "$t" "$(now)") s"

t=$(now)
P --bind "$D" -- podman system service --time=0 "$URL" >"$D/service.log" 2>&1 &
SVC_PID=$!
until [ "$(curl -s --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = OK ]; do
    kill -0 "$SVC_PID" 2>/dev/null || { cat "$D/service.log" >&2; fail "service exited"; }
    [ "$(secs "$t" "$(now)" | cut -d. -f1)" -lt 30 ] || fail "no _ping OK within 30 s"
    sleep 0.02
done
say "service start to first _ping OK: $(secs "$t" "$(now)") s"

say "host: curl /v4.0.0/libpod/version"
curl -sf --unix-socket "$SOCK" http://d/v4.0.0/libpod/version | tee "$D/version.json" | head -c 300
echo
grep -q "\"Version\":\"$WANT\"" "$D/version.json" || fail "version endpoint does not report the root's podman"

t=$(now)
cid=$(P -- podman --url "$URL" run -d --name x localhost/busybox:latest sleep 100)
say "run -d x: $cid ($(secs "$t" "$(now)") s)"

say "podman exec x ls / (must be the container's root)"
inside=$(P -- podman --url "$URL" exec x ls /)
echo "$inside" | tr '\n' ' '
echo
echo "$inside" | grep -qx bin || fail "exec x ls / has no bin"
for h in work var usr; do
    ! echo "$inside" | grep -qx "$h" || fail "exec x ls / shows '$h': that is not the busybox container's root"
done
P -- podman --url "$URL" exec x touch /run/smoke-ok
[ ! -e /run/smoke-ok ] || fail "exec x touch /run/smoke-ok created /run/smoke-ok on the HOST"
P -- podman --url "$URL" exec x test -e /run/smoke-ok || fail "/run/smoke-ok not in the container"
say "exec touch /run/smoke-ok: in the container, not on the host"

sleep 0.5
say "host: curl /v4.0.0/libpod/events?stream=false&since=5m"
curl -sf --unix-socket "$SOCK" 'http://d/v4.0.0/libpod/events?stream=false&since=5m' >"$D/events.ndjson"
grep -o '"Action":"[a-z_]*"' "$D/events.ndjson" | sort | uniq -c | tr '\n' ' '
echo
for a in create init start exec_died; do
    grep "\"ID\":\"$cid\"" "$D/events.ndjson" | grep -q "\"Action\":\"$a\"" || fail "no '$a' event for x"
done
curl -sf --unix-socket "$SOCK" http://d/v4.0.0/libpod/info | grep -o '"eventLogger":"[a-z]*"'

t=$(now)
P -- podman --url "$URL" pod create --name p1 >/dev/null
P -- podman --url "$URL" run -d --pod p1 --name m1 localhost/busybox:latest sleep 100 >/dev/null
say "pod create + run --pod: $(secs "$t" "$(now)") s"
P -- podman --url "$URL" run -d --name h --health-cmd 'test -e /run/ok' --health-interval disable \
    localhost/busybox:latest sleep 100 >/dev/null
P -- podman --url "$URL" healthcheck run h >/dev/null 2>&1 && fail "healthcheck passed before /run/ok exists"
P -- podman --url "$URL" exec h touch /run/ok
P -- podman --url "$URL" healthcheck run h >/dev/null || fail "healthcheck failed after touch /run/ok"
[ ! -e /run/ok ] || fail "/run/ok appeared on the HOST"
say "healthcheck: unhealthy, then healthy after exec touch /run/ok (inside the container)"

# stop the service; a change while it is down (local CLI on the same storage); restart
for p in $(pgrep -f -- "system service --time=0 $URL"); do kill -TERM "$p"; done
wait "$SVC_PID" 2>/dev/null || true
curl -s --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && fail "service still answers after SIGTERM"
P -- podman stop -t 0 x >/dev/null
t=$(now)
P --bind "$D" -- podman system service --time=0 "$URL" >>"$D/service.log" 2>&1 &
SVC_PID=$!
until [ "$(curl -s --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = OK ]; do
    kill -0 "$SVC_PID" 2>/dev/null || { cat "$D/service.log" >&2; fail "service exited on restart"; }
    sleep 0.02
done
say "service restart to first _ping OK: $(secs "$t" "$(now)") s"
P -- podman --url "$URL" ps -a --format '{{.Names}}={{.State}}' | sort | tr '\n' ' '
echo
curl -sf --unix-socket "$SOCK" 'http://d/v4.0.0/libpod/containers/json?all=true' | grep -q '"Names":\["h"\]' || fail "h missing after restart"
P -- podman --url "$URL" inspect --format '{{.State.Status}}' x | grep -qx exited || fail "x is not exited after the offline stop"
P -- podman --url "$URL" inspect --format '{{.State.Status}}' m1 | grep -qx running || fail "m1 did not survive the service restart"
P -- podman --url "$URL" pod rm -f -t 0 p1 >/dev/null
say "SMOKE $V ($EVENTS): OK"
