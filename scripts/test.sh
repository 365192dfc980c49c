#!/usr/bin/env bash
# Runs sealwatch's whole test suite on a Debian machine.
#
# Installs what the tests need when it is missing (Podman 4.x with runc and catatonit, busybox for
# the workload image, Prometheus and promtool, systemd for systemd-journald, Chromium for the live
# page test; needs root for that),
# sets up the Podman 5.4.2 and 6.1.1 roots (scripts/podman-chroot.sh) and the QEMU systemd host
# (scripts/podman-vm.sh) in the background while it checks formatting and lints and builds the
# static binary the container-image test packages, then runs every test (the guest's vm:: beside
# the others, at a lower priority). Coverage-guided fuzzing is its own command, scripts/fuzz.sh:
# here the fuzz targets run on stable over their seeds, past findings and thousands of random
# mutations of them, as unit tests. Tests
# that need Podman, Prometheus or the guest fail, never skip, when those are missing. It says how
# long each step took.
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
    apt-get clean
fi
# Debian starts prometheus as a service on install; the tests run their own on free ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl stop prometheus prometheus-node-exporter 2>/dev/null || true
fi

# The Podman 5.4.2 and 6.1.1 roots for the tests that run on every Podman version (debootstrap;
# about 90 s each the first time on a machine, < 1 s when cached), then a real systemd host for the
# vm:: test: Podman 5.4.2 in a QEMU guest (TCG), cached image (about 5-12 min to build the first
# time, < 1 s after). Mostly downloads and unpacking, so they run in one background job (one at a
# time: they share the host's apt) while the compiler runs below. The job leaves a mark in
# $marks when the roots are ready (all the tests but vm:: need), another when the guest's image
# is, and one when it ends: the tests start at the first, vm:: at the second. The tests call `setup` too, but
# doing it here keeps its log out of a test's time budget.
setup_log=$(mktemp)
vm_log=$(mktemp)
marks=$(mktemp -d)
setsid bash -c 'scripts/podman-chroot.sh setup 5 && scripts/podman-chroot.sh setup 6 &&
    touch "$0/roots" && scripts/podman-vm.sh build && touch "$0/guest"; status=$?
    touch "$0/ended"; exit $status' "$marks" >"$setup_log" 2>&1 &
setup_pid=$!
vm_pid=
# If a step below fails, the background jobs stop with it.
cleanup() {
    kill -TERM -- "-$setup_pid" 2>/dev/null || true
    [ -z "$vm_pid" ] || kill -TERM -- "-$vm_pid" 2>/dev/null || true
    rm -rf "$setup_log" "$vm_log" "$marks"
}
trap cleanup EXIT

# The whole run writes about 4 GB (the test build, the static binary, the Podman roots and the
# guest image in /var/cache/sealwatch); say how much there is, so that a run that fails
# for want of disk says why up front.
disk() {
    df -h --output=target,avail,size . "${SEALWATCH_PODMAN_CACHE:-/var/cache}" 2>/dev/null | awk '!seen[$0]++' >&2 || true
}
disk
free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${free_kb:-0}" -lt $((6 * 1024 * 1024)) ]; then
    echo "test.sh: WARNING: only $((free_kb / 1024)) MB free here; the run needs about 4 GB" >&2
fi

# step CMD...: runs CMD and says how long it took, so a slow CI run shows where its time went.
step() {
    local t0=$SECONDS status=0
    "$@" || status=$?
    echo "test.sh: \`$*\` took $((SECONDS - t0)) s$([ "$status" -eq 0 ] || echo ", FAILED (exit $status)")" >&2
    [ "$status" -eq 0 ] || disk
    return "$status"
}

step cargo fmt --all -- --check
step cargo clippy --all-targets --locked -- -D warnings
# A hot-function list the code left behind fails here (build-static.sh only warns elsewhere).
step env SEALWATCH_HOT_FUNCTIONS=strict scripts/build-static.sh

t0=$SECONDS
while [ ! -e "$marks/roots" ]; do
    if [ -e "$marks/ended" ] && [ ! -e "$marks/roots" ]; then
        cat "$setup_log"
        echo "test.sh: setting up the Podman 5.4 and 6.1 roots failed (log above)" >&2
        exit 1
    fi
    sleep 1
done
echo "test.sh: waited $((SECONDS - t0)) s for the Podman 5.4 and 6.1 roots" >&2
step cargo test --locked --no-run

# vm:: beside the other tests, at a lower priority: they mostly wait for Podman and leave about
# a core idle, which the emulated host takes; when they need the CPU they get it first. The
# guest then boots more slowly than alone, so its boot may take up to 15 min. Its output is
# printed after theirs.
setsid bash -c '
    t0=$SECONDS
    while [ ! -e "$0/guest" ]; do
        if [ -e "$0/ended" ] && [ ! -e "$0/guest" ]; then
            echo "test.sh: building the guest image failed (its log is printed below)"
            exit 1
        fi
        sleep 1
    done
    echo "test.sh: vm:: waited $((SECONDS - t0)) s for the guest image"
    t0=$SECONDS
    status=0
    SEALWATCH_VM_BOOT_TIMEOUT=${SEALWATCH_VM_BOOT_TIMEOUT:-900} \
        nice -n 10 cargo test --locked --test it -- vm:: || status=$?
    echo "test.sh: \`cargo test --locked --test it -- vm::\` took $((SECONDS - t0)) s (exit $status)"
    exit "$status"
' "$marks" >"$vm_log" 2>&1 &
vm_pid=$!

# As many tests at a time as cores (SEALWATCH_TEST_THREADS=N for another number): three made them
# 8% faster and vm::, beside them, 16% slower. Tests on journald engines run one at a time (the
# machine has one journal).
tests_status=0
step cargo test --locked -- --skip vm:: ${SEALWATCH_TEST_THREADS:+--test-threads="$SEALWATCH_TEST_THREADS"} ||
    tests_status=$?
vm_status=0
t0=$SECONDS
wait "$vm_pid" || vm_status=$?
vm_pid=
echo "test.sh: waited $((SECONDS - t0)) s for vm:: after the other tests; its output:" >&2
cat "$vm_log"
echo "test.sh: the setup job's log:" >&2
cat "$setup_log"
if [ "$tests_status" -ne 0 ] || [ "$vm_status" -ne 0 ]; then
    echo "test.sh: FAILED: the tests but vm:: exited $tests_status, vm:: exited $vm_status (output above)" >&2
    exit 1
fi
echo "test.sh: everything passed in $SECONDS s" >&2
