#!/usr/bin/env bash
# Runs sealwatch's whole test suite on a Debian machine.
#
# Installs what the tests need when it is missing (Podman 4.x with runc and catatonit, busybox for
# the workload image, Prometheus and promtool, systemd for systemd-journald, Chromium for the live
# page test; needs root for that),
# sets up the Podman 5.4.2 and 6.1.1 roots (scripts/podman-chroot.sh), checks formatting and lints,
# runs each fuzz target briefly (scripts/fuzz.sh), builds the static binary the container-image
# test packages and the QEMU systemd host (scripts/podman-vm.sh), then runs every test. Tests that need Podman, Prometheus or the guest
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

# Podman 5.4.2 and 6.1.1 for the tests that run on every Podman version: cached Debian roots
# (debootstrap; about 90 s each the first time on a machine, < 1 s when cached). The tests call
# `setup` too, but doing it here keeps its log out of a test's time budget.
scripts/podman-chroot.sh setup 5
scripts/podman-chroot.sh setup 6

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Every fuzz target for 15 s (coverage-guided with nightly and cargo-fuzz, else a stable replay
# over the seeds, saying so); scripts/fuzz.sh SECONDS runs them longer.
scripts/fuzz.sh 15
scripts/build-static.sh
# A real systemd host for the vm:: test: Podman 5.4.2 in a QEMU guest (TCG), cached image (about
# 5-12 min to build the first time on a machine, < 1 s after).
scripts/podman-vm.sh build
# Everything but the guest, then the guest on its own: the emulated host needs both cores.
cargo test --locked -- --skip vm::
cargo test --locked --test it -- vm::
