#!/usr/bin/env bash
# Runs sealwatch's whole test suite on a Debian machine.
#
# Installs what the tests need when it is missing (Podman 4.x with runc and catatonit, busybox for
# the workload image, Prometheus and promtool, systemd for systemd-journald, Chromium for the live
# page test; needs root for that),
# sets up the Podman 5.4.2 and 6.1.1 roots (scripts/podman-chroot.sh) and the QEMU systemd host
# (scripts/podman-vm.sh) in the background while it checks formatting and lints, runs each fuzz
# target briefly (scripts/fuzz.sh) and builds the static binary the container-image test
# packages, then runs every test. Tests that need Podman, Prometheus or the guest
# fail, never skip, when those are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(podman runc catatonit busybox-static prometheus systemd rpm uidmap chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: missing packages: ${missing[*]}; run as root, or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "test.sh: installing ${missing[*]} (apt-get)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian starts prometheus as a service on install; the tests run their own on free ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl stop prometheus prometheus-node-exporter 2>/dev/null || true
fi

# The Podman 5.4.2 and 6.1.1 roots for the tests that run on every Podman version (debootstrap;
# about 90 s each the first time on a machine, < 1 s when cached), then a real systemd host for the
# vm:: test: Podman 5.4.2 in a QEMU guest (TCG), cached image (about 5-12 min to build the first
# time, < 1 s after). Mostly downloads and unpacking, so they run in one background job (one at a
# time: they share the host's apt) while the compiler runs below. The roots are all the tests
# but vm:: need: the job says when they are ready (a marker file), and those tests start while
# it goes on building the guest's image; vm:: waits for the whole job. The tests call `setup`
# too, but doing it here keeps its log out of a test's time budget.
setup_log=$(mktemp)
roots_ready=$(mktemp -u)
setsid bash -c 'scripts/podman-chroot.sh setup 5 && scripts/podman-chroot.sh setup 6 &&
    touch "$0" && scripts/podman-vm.sh build' "$roots_ready" >"$setup_log" 2>&1 &
setup_pid=$!
# If a step below fails, the job stops with it.
trap 'kill -TERM -- "-$setup_pid" 2>/dev/null || kill -TERM "$setup_pid" 2>/dev/null || true' EXIT

# step CMD...: runs CMD and says how long it took, so a slow CI run shows where its time went.
step() {
    local t0=$SECONDS
    "$@"
    echo "test.sh: \`$*\` took $((SECONDS - t0)) s" >&2
}

step cargo fmt --all -- --check
step cargo clippy --all-targets --locked -- -D warnings
# Every fuzz target for 15 s (coverage-guided with nightly and cargo-fuzz, else a stable replay
# over the seeds, saying so); scripts/fuzz.sh SECONDS runs them longer.
step scripts/fuzz.sh 15
step scripts/build-static.sh

# setup_done WHAT: waits for the setup job to end; on failure prints its log and exits.
setup_done() {
    local status=0 t0=$SECONDS
    wait "$setup_pid" || status=$?
    trap - EXIT
    echo "test.sh: waited $((SECONDS - t0)) s for $1" >&2
    cat "$setup_log"
    rm -f "$setup_log" "$roots_ready"
    if [ "$status" -ne 0 ]; then
        echo "test.sh: setting up the Podman roots or the guest image failed (exit $status, log above)" >&2
        exit 1
    fi
}

t0=$SECONDS
while [ ! -e "$roots_ready" ] && kill -0 "$setup_pid" 2>/dev/null; do
    sleep 1
done
if [ ! -e "$roots_ready" ]; then
    setup_done "the Podman roots" # the job ended without them: says why and exits
fi
echo "test.sh: waited $((SECONDS - t0)) s for the Podman 5.4 and 6.1 roots" >&2
# Everything but the guest (while the guest's image is built, if it is not cached yet), then
# the guest on its own: the emulated host needs both cores.
step cargo test --locked -- --skip vm::
setup_done "the guest's image"
step cargo test --locked --test it -- vm::
echo "test.sh: everything passed in $SECONDS s" >&2
