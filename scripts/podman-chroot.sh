#!/usr/bin/env bash
# Real Podman 5.4.2 (Debian 13 trixie) and Podman 6.x (Debian experimental) on a Debian 12 host, for
# sealwatch's integration tests. Follows ../shared/podman/PODMAN5.md; see scripts/PODMAN-HARNESS.md.
#
#   podman-chroot.sh setup VERSION              build (once) and cache the root; idempotent, < 1 s when cached
#   podman-chroot.sh exec VERSION [--bind DIR]... -- CMD [ARG...]
#                                               run CMD as every Podman process of that root must run:
#                                               in its persistent mount namespace (pivot_root'ed into the
#                                               root, not a plain chroot) and, for 6, its cgroup namespace.
#                                               Each DIR (also: SEALWATCH_PODMAN_BIND="DIR1:DIR2") is
#                                               bind-mounted inside at the same path first. The environment
#                                               is passed through; PODMAN_IGNORE_CGROUPSV1_WARNING=1 is set.
#   podman-chroot.sh unbind VERSION DIR         undo a --bind (and every mount under DIR inside)
#   podman-chroot.sh version VERSION            print the Podman version inside (e.g. 5.4.2)
#   podman-chroot.sh status VERSION             say what is set up / mounted / running
#   podman-chroot.sh teardown VERSION [--kill] [--purge]
#                                               unmount everything this script mounted; --kill first ends
#                                               the processes still in that namespace (by PID), otherwise
#                                               they make teardown fail; --purge also deletes the cached root
#
# VERSION is 5 (Debian trixie: podman 5.4.2) or 6 (Debian sid + experimental: podman 6.x).
# Needs root. Mirror: the Debian archive URI of the host's apt sources, read at run time
# (override: SEALWATCH_DEBIAN_MIRROR). Cache: /var/cache/sealwatch (override: SEALWATCH_PODMAN_CACHE).
# Runtime state (namespace files): /run/sealwatch/podmanV (override: SEALWATCH_PODMAN_STATE); the
# sub-cgroup for 6: /sys/fs/cgroup/unified/sealwatch-podman6.
set -euo pipefail

PROG=podman-chroot.sh
RECIPE=1   # bump when the package list or the root's layout changes: cached roots are rebuilt
CACHE=${SEALWATCH_PODMAN_CACHE:-/var/cache/sealwatch}
# A non-default cache gets its own namespaces and sub-cgroup, so it never touches the default's.
KEY=
[ "$CACHE" = /var/cache/sealwatch ] || KEY=-$(printf %s "$CACHE" | md5sum | cut -c1-8)
STATE_BASE=${SEALWATCH_PODMAN_STATE:-/run/sealwatch$KEY}
CGROUP2=${SEALWATCH_CGROUP2:-/sys/fs/cgroup/unified}
PACKAGES=(podman runc conmon catatonit netavark aardvark-dns busybox-static)
export LC_ALL=C

die() {
    echo "$PROG: ERROR: $*" >&2
    exit 1
}

usage() {
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

check_version() {
    case "${1:-}" in
    5 | 6) ;;
    *) die "VERSION must be 5 or 6 (got '${1:-}')" ;;
    esac
}

paths() { # VERSION -> globals
    V=$1
    ROOT=$CACHE/podman$V-root
    STAMP=$CACHE/podman$V-root.ok
    SETUP_LOG=$CACHE/podman$V-setup.log
    STATE=$STATE_BASE/podman$V
    NSDIR=$STATE/ns          # private bind mount holding the namespace files
    MNTNS=$NSDIR/mnt
    CGNS=$NSDIR/cgroup
    XFER=$STATE/xfer         # shared bind mount: a host mount under it appears inside at /.sealwatch-xfer
    LOCK=$STATE_BASE/podman$V.lock
    SUBCG=$CGROUP2/sealwatch-podman$V$KEY
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root"
}

# Run the rest of the caller under an exclusive lock on $1 (fd 9).
take_lock() {
    mkdir -p "$(dirname "$1")"
    exec 9>"$1"
    flock 9 || die "cannot lock $1"
}

# --------------------------------------------------------------------------------------------
# setup
# --------------------------------------------------------------------------------------------

# The host's Debian mirror and the build chroot, shared with the other harness script.
. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-root.sh"

setup_fail() {
    fail_with_log "$1" "$2" "$SETUP_LOG" "setup $V"
}

cmd_setup() {
    check_version "${1:-}"
    paths "$1"
    if [ -f "$STAMP" ] && grep -qx "recipe=$RECIPE" "$STAMP" && [ -x "$ROOT/usr/bin/podman" ]; then
        return 0
    fi
    need_root
    take_lock "$LOCK.setup"
    if [ -f "$STAMP" ] && grep -qx "recipe=$RECIPE" "$STAMP" && [ -x "$ROOT/usr/bin/podman" ]; then
        return 0 # another caller built it while we waited
    fi
    if [ -n "$(live_ns_pids 2>/dev/null || true)" ]; then
        die "setup $V: processes still run in the old root's namespace; run: $0 teardown $V --kill"
    fi
    teardown_mounts 2>/dev/null || true

    local suite mirror partial=$ROOT.partial t0
    t0=$(date +%s)
    # be gentle with the machine: the build is mostly dpkg and decompression
    renice -n 10 -p $$ >/dev/null 2>&1 || true
    ionice -c 3 -p $$ >/dev/null 2>&1 || true
    mkdir -p "$CACHE"
    : >"$SETUP_LOG"
    exec 3>&1 4>&2
    echo "$PROG: setting up Podman $V in $ROOT (log: $SETUP_LOG)" >&2
    exec >>"$SETUP_LOG" 2>&1
    trap 'setup_fail $? "$BASH_COMMAND"' ERR
    set -E

    if ! command -v debootstrap >/dev/null 2>&1; then
        echo "== installing debootstrap on the host"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap ||
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap; }
    fi
    mirror=$(host_mirror)
    case $V in 5) suite=trixie ;; 6) suite=sid ;; esac
    echo "== mirror $mirror, suite $suite"

    # A partial root from a failed run: nothing is mounted in it (all mounts were made in private
    # namespaces), so it can simply be removed.
    rm -rf --one-file-system "$partial" "$ROOT" "$STAMP"
    mkdir -p "$partial"
    echo "== debootstrap --variant=minbase $suite"
    debootstrap --variant=minbase "$suite" "$partial" "$mirror"

    cp /etc/resolv.conf "$partial/etc/resolv.conf"
    echo 'Acquire::Check-Valid-Until "false";' >"$partial/etc/apt/apt.conf.d/99sealwatch-no-valid-until"
    printf '#!/bin/sh\nexit 101\n' >"$partial/usr/sbin/policy-rc.d"
    chmod 755 "$partial/usr/sbin/policy-rc.d"
    local target=()
    if [ "$V" = 6 ]; then
        echo "deb $mirror experimental main" >"$partial/etc/apt/sources.list.d/experimental.list"
        target=(-t experimental)
    fi
    echo "== apt-get install ${target[*]} ${PACKAGES[*]}"
    in_build_chroot "$partial" apt-get update -q
    in_build_chroot "$partial" apt-get install -y -q --no-install-recommends "${target[@]}" "${PACKAGES[@]}"
    in_build_chroot "$partial" apt-get clean
    for b in podman runc conmon umount mount sh; do
        in_build_chroot "$partial" sh -c "command -v $b" >/dev/null || { echo "missing $b in the root"; false; }
    done
    # Mount points used by the namespace (see ns_create).
    mkdir -p "$partial/.sealwatch-xfer" "$partial/.oldroot" "$partial/run/systemd/journal" "$partial/run/log/journal"
    [ -e "$partial/etc/machine-id" ] || : >"$partial/etc/machine-id"

    local pv
    pv=$(in_build_chroot "$partial" podman --version | awk '{print $NF}')
    [ -n "$pv" ] || { echo "podman --version printed nothing"; false; }
    mv "$partial" "$ROOT"
    {
        echo "recipe=$RECIPE"
        echo "podman=$pv"
        echo "suite=$suite"
        echo "mirror=$mirror"
        echo "packages=$(in_build_chroot "$ROOT" dpkg-query -W -f='${Package}=${Version} ' "${PACKAGES[@]}")"
        echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "seconds=$(($(date +%s) - t0))"
    } >"$STAMP.tmp"
    mv "$STAMP.tmp" "$STAMP"
    trap - ERR
    exec 1>&3 2>&4
    echo "$PROG: Podman $pv ready in $ROOT ($(($(date +%s) - t0)) s)" >&2
}

require_setup() {
    [ -f "$STAMP" ] && grep -qx "recipe=$RECIPE" "$STAMP" && [ -x "$ROOT/usr/bin/podman" ] ||
        die "Podman $V is not set up (no $STAMP): run: $0 setup $V"
}

# --------------------------------------------------------------------------------------------
# the namespace
# --------------------------------------------------------------------------------------------

ns_alive() {
    mountpoint -q "$MNTNS" 2>/dev/null || return 1
    if [ "$V" = 6 ]; then
        mountpoint -q "$CGNS" 2>/dev/null && [ -d "$SUBCG" ] || return 1
    fi
    return 0
}

# PIDs of processes whose mount namespace is ours.
live_ns_pids() {
    mountpoint -q "$MNTNS" 2>/dev/null || return 0
    local ino want p
    ino=$(stat -L -c %i "$MNTNS")
    want="mnt:[$ino]"
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$want" ] && echo "${p#/proc/}"
    done
    return 0
}

# Move the calling shell into the sub-cgroup of the host's cgroup2 (Podman 6 only).
enter_subcg() {
    echo "$BASHPID" >"$SUBCG/cgroup.procs" || die "cannot move into $SUBCG"
}

# Create the persistent mount namespace (and for 6 the cgroup namespace) with ROOT as its root.
ns_create() {
    teardown_mounts
    mkdir -p "$NSDIR" "$XFER"
    # The namespace files must sit on a private mount; the transfer dir must be shared so that
    # mounts made under it on the host propagate into the namespace (where its copy is a slave).
    mount --bind "$NSDIR" "$NSDIR"
    mount --make-private "$NSDIR"
    touch "$MNTNS"
    mount --bind "$XFER" "$XFER"
    mount --make-private "$XFER"
    mount --make-shared "$XFER"
    # Journald (if someone runs it): its socket dir and the volatile journal, shared with the host.
    mkdir -p /run/systemd/journal /run/log/journal

    local cg=()
    if [ "$V" = 6 ]; then
        [ "$(stat -f -c %T "$CGROUP2" 2>/dev/null)" = cgroup2fs ] || die "no cgroup2 hierarchy at $CGROUP2"
        mkdir -p "$SUBCG"
        touch "$CGNS"
        cg=(--cgroup="$CGNS")
    fi
    # shellcheck disable=SC2016
    local init='
        set -e
        r=$1; v=$2; xfer=$3
        mount --bind "$r" "$r"
        mount -t proc proc "$r/proc"
        mount --rbind /sys "$r/sys"
        if [ "$v" = 6 ]; then
            # rooted at the sub-cgroup: we are in a new cgroup namespace whose root is it
            mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
        fi
        mount --rbind /dev "$r/dev"
        mount -t tmpfs -o mode=755 tmpfs "$r/run"
        mkdir -p "$r/run/lock" "$r/run/systemd/journal" "$r/run/log/journal"
        mount --bind /run/systemd/journal "$r/run/systemd/journal"
        mount --bind /run/log/journal "$r/run/log/journal"
        if [ -d /var/log/journal ]; then
            mkdir -p "$r/var/log/journal"
            mount --bind /var/log/journal "$r/var/log/journal"
        fi
        if [ -s /etc/machine-id ]; then mount --bind /etc/machine-id "$r/etc/machine-id"; fi
        mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
        mount --bind "$xfer" "$r/.sealwatch-xfer"
        cd "$r"
        pivot_root . .oldroot
        exec umount -l /.oldroot'
    if [ "$V" = 6 ]; then
        # The new cgroup namespace is rooted at the cgroup unshare runs in: the sub-cgroup.
        (enter_subcg && exec unshare --mount="$MNTNS" "${cg[@]}" --propagation slave -- /bin/sh -c "$init" sh "$ROOT" "$V" "$XFER") ||
            { teardown_mounts 2>/dev/null || true; die "cannot create the namespace of $ROOT"; }
    else
        unshare --mount="$MNTNS" --propagation slave -- /bin/sh -c "$init" sh "$ROOT" "$V" "$XFER" ||
            { teardown_mounts 2>/dev/null || true; die "cannot create the namespace of $ROOT"; }
    fi
    if [ "$V" = 6 ]; then
        # The cgroup2 seen inside must be the sub-cgroup, never the host's whole hierarchy (runc
        # would then enable controllers such as hugetlb in the host's root cgroup.subtree_control).
        local want got
        want=$(stat -c %i "$SUBCG")
        got=$(nsenter --mount="$MNTNS" -- stat -c %i /sys/fs/cgroup 2>/dev/null || true)
        if [ "$want" != "$got" ]; then
            teardown_mounts 2>/dev/null || true
            die "the namespace's /sys/fs/cgroup is not $SUBCG (inode $got, want $want)"
        fi
    fi
}

nsenter_args() {
    NSENTER=(nsenter --mount="$MNTNS")
    [ "$V" = 6 ] && NSENTER+=(--cgroup="$CGNS")
    return 0
}

# Bind host directory $1 into the namespace at the same path (no-op when it already is the same
# directory inside, e.g. bound before or below a bound parent).
ns_bind() {
    local dir=$1 id outside inside
    [ -d "$dir" ] || die "--bind $dir: not a directory"
    dir=$(cd "$dir" && pwd -P)
    case "$dir" in /) die "--bind /: refusing" ;; esac
    outside=$(stat -c %d:%i "$dir")
    inside=$(nsenter --mount="$MNTNS" -- stat -c %d:%i "$dir" 2>/dev/null || true)
    [ "$outside" = "$inside" ] && return 0
    id=$$-$RANDOM
    mkdir "$XFER/$id"
    mount --bind "$dir" "$XFER/$id"
    if ! nsenter --mount="$MNTNS" -- /bin/sh -c 'mkdir -p "$1" && mount --bind "/.sealwatch-xfer/$2" "$1"' sh "$dir" "$id"; then
        umount "$XFER/$id" || true
        rmdir "$XFER/$id" || true
        die "cannot bind $dir into the namespace of Podman $V"
    fi
    umount "$XFER/$id"
    rmdir "$XFER/$id"
    inside=$(nsenter --mount="$MNTNS" -- stat -c %d:%i "$dir" 2>/dev/null || true)
    [ "$outside" = "$inside" ] || die "bind of $dir into the namespace did not take ($outside vs $inside)"
}

cmd_exec() {
    check_version "${1:-}"
    paths "$1"
    shift
    local binds=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --bind) [ $# -ge 2 ] || die "--bind needs a directory"; binds+=("$2"); shift 2 ;;
        --bind=*) binds+=("${1#--bind=}"); shift ;;
        --) shift; break ;;
        *) die "exec: unexpected '$1' (usage: exec VERSION [--bind DIR]... -- CMD...)" ;;
        esac
    done
    [ $# -gt 0 ] || die "exec: no command (usage: exec VERSION [--bind DIR]... -- CMD...)"
    if [ -n "${SEALWATCH_PODMAN_BIND:-}" ]; then
        local IFS=:
        # shellcheck disable=SC2206
        binds+=($SEALWATCH_PODMAN_BIND)
        unset IFS
    fi
    need_root
    require_setup
    if ! ns_alive || [ "${#binds[@]}" -gt 0 ]; then
        (
            take_lock "$LOCK"
            ns_alive || ns_create
            for d in "${binds[@]}"; do ns_bind "$d"; done
        ) || exit 1
    fi
    export PODMAN_IGNORE_CGROUPSV1_WARNING=1
    nsenter_args
    [ "$V" = 6 ] && enter_subcg
    # shellcheck disable=SC2016
    exec "${NSENTER[@]}" -- /bin/sh -c 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"' sh "$PWD" "$@"
}

cmd_unbind() {
    check_version "${1:-}"
    paths "$1"
    [ -n "${2:-}" ] || die "unbind: no directory"
    need_root
    ns_alive || return 0
    (
        take_lock "$LOCK"
        nsenter --mount="$MNTNS" -- /bin/sh -c 'if mountpoint -q "$1"; then umount -R -l "$1"; fi; rmdir "$1" 2>/dev/null || true' sh "$2"
    )
}

cmd_version() {
    check_version "${1:-}"
    paths "$1"
    require_setup
    local out
    out=$("$0" exec "$V" -- podman --version) || die "podman --version failed inside the Podman $V root"
    echo "${out##* }"
}

cmd_status() {
    check_version "${1:-}"
    paths "$1"
    if [ -f "$STAMP" ]; then echo "root: $ROOT"; sed 's/^/  /' "$STAMP"; else echo "root: not set up"; fi
    if ns_alive; then
        echo "namespace: $MNTNS (mnt:[$(stat -L -c %i "$MNTNS")])"
        echo "processes: $(live_ns_pids | tr '\n' ' ')"
    else
        echo "namespace: none"
    fi
}

# --------------------------------------------------------------------------------------------
# teardown
# --------------------------------------------------------------------------------------------

# Unmount the host-side mounts of the namespace (the namespace itself and its mounts go away with
# its last process) and remove the sub-cgroup tree when it is empty.
teardown_mounts() {
    local m rc=0
    if [ -d "$XFER" ]; then
        for m in "$XFER"/*; do
            [ -e "$m" ] || continue
            mountpoint -q "$m" && umount -l "$m"
            rmdir "$m" 2>/dev/null || true
        done
    fi
    for m in "$CGNS" "$MNTNS" "$NSDIR" "$XFER"; do
        while mountpoint -q "$m" 2>/dev/null; do umount "$m" || { rc=1; break; }; done
    done
    if [ -d "$SUBCG" ]; then
        # deepest first; fails (and says so) while a process is still in the tree
        while IFS= read -r d; do rmdir "$d" 2>/dev/null || true; done < <(find "$SUBCG" -depth -type d)
        if [ -d "$SUBCG" ]; then echo "$PROG: warning: $SUBCG is not empty, left in place" >&2; fi
    fi
    return $rc
}

cmd_teardown() {
    check_version "${1:-}"
    paths "$1"
    shift
    local kill=0 purge=0
    for a in "$@"; do
        case "$a" in
        --kill) kill=1 ;;
        --purge) purge=1 ;;
        *) die "teardown: unknown option '$a'" ;;
        esac
    done
    need_root
    take_lock "$LOCK"
    local pids
    pids=$(live_ns_pids | tr '\n' ' ')
    if [ -n "${pids// /}" ]; then
        [ $kill = 1 ] || die "teardown $V: processes still run in the namespace: $pids(stop them, or pass --kill)"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        local i
        for i in $(seq 50); do
            [ -z "$(live_ns_pids)" ] && break
            sleep 0.1
        done
        [ -z "$(live_ns_pids)" ] || die "teardown $V: processes survived SIGKILL: $(live_ns_pids | tr '\n' ' ')"
    fi
    teardown_mounts || die "teardown $V: could not unmount everything under $STATE"
    rm -f "$MNTNS" "$CGNS"
    rmdir "$NSDIR" "$XFER" "$STATE" 2>/dev/null || true
    if [ $purge = 1 ]; then
        take_lock "$LOCK.setup"
        rm -rf --one-file-system "$ROOT" "$ROOT.partial" "$STAMP" "$SETUP_LOG"
    fi
}

[ $# -ge 1 ] || usage
sub=$1
shift
case "$sub" in
setup) cmd_setup "$@" ;;
exec) cmd_exec "$@" ;;
unbind) cmd_unbind "$@" ;;
version) cmd_version "$@" ;;
status) cmd_status "$@" ;;
teardown) cmd_teardown "$@" ;;
-h | --help | help) usage ;;
*) die "unknown subcommand '$sub'" ;;
esac
