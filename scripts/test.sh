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
# time: they share the host's apt) while the compiler runs below, and the tests wait for it. The
# tests call `setup` too, but doing it here keeps its log out of a test's time budget.
setup_log=$(mktemp)
setsid bash -c 'scripts/podman-chroot.sh setup 5 && scripts/podman-chroot.sh setup 6 &&
    scripts/podman-vm.sh build' >"$setup_log" 2>&1 &
setup_pid=$!
# If a step below fails, the job stops with it.
trap 'kill -TERM -- "-$setup_pid" 2>/dev/null || kill -TERM "$setup_pid" 2>/dev/null || true' EXIT

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Every fuzz target for 15 s (coverage-guided with nightly and cargo-fuzz, else a stable replay
# over the seeds, saying so); scripts/fuzz.sh SECONDS runs them longer.
scripts/fuzz.sh 15
scripts/build-static.sh

setup_status=0
wait "$setup_pid" || setup_status=$?
trap - EXIT
cat "$setup_log"
rm -f "$setup_log"
if [ "$setup_status" -ne 0 ]; then
    echo "test.sh: setting up the Podman roots or the guest image failed (exit $setup_status, log above)" >&2
    exit 1
fi
# Everything but the guest, then the guest on its own: the emulated host needs both cores.
cargo test --locked -- --skip vm::
cargo test --locked --test it -- vm::
