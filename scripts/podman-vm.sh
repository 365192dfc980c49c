#!/usr/bin/env bash
# A real systemd host with Podman for sealwatch's integration tests: a QEMU guest (Debian 13 trixie:
# systemd as PID 1, cgroup v2, journald, socket-activated podman.socket), as described in
# ../shared/podman/PODMAN-VM.md. See scripts/PODMAN-HARNESS.md.
#
#   podman-vm.sh build                          build (once) and cache the disk image, kernel, initrd,
#                                               ssh key and a private QEMU; idempotent, < 1 s when cached
#   podman-vm.sh start --api-port P --ssh-port S --dir RUNDIR
#                                               boot a copy-on-write overlay of the image (kept in RUNDIR)
#                                               in the background; returns once the guest's Podman API
#                                               answers GET /v4.0.0/libpod/version on 127.0.0.1:P and its
#                                               sshd on 127.0.0.1:S (at most SEALWATCH_VM_BOOT_TIMEOUT,
#                                               default 300 s). Prints nothing but errors;
#                                               on failure QEMU is stopped (console.log stays).
#   podman-vm.sh ssh --ssh-port S --dir RUNDIR -- CMD [ARG...]
#                                               run CMD as root in the guest (arguments are quoted for
#                                               the guest's shell); its exit status is ssh's
#   podman-vm.sh stop --dir RUNDIR              stop QEMU (SIGTERM, then SIGKILL) and remove the overlay
#   podman-vm.sh status                         say what is cached
#   podman-vm.sh purge                          delete the cached image (not the downloaded QEMU)
#
# In the guest: podman.socket (the packaged unit) and sealwatch-podman-tcp.socket, a socket on TCP
# 8080 whose service is `systemd-socket-proxyd /run/podman/podman.sock` (no Requires= on
# podman.socket, so the socket can be stopped for an outage); sshd on 22 with a key made at build
# time. Network: QEMU user networking with restrict=on (the guest reaches nothing) and only
# hostfwd 127.0.0.1:P -> 8080 and 127.0.0.1:S -> 22. TCG only (no KVM). The image has
# localhost/busybox:latest (imported from busybox-static during the one provisioning boot).
#
# Needs root for build. Mirror: the Debian archive URI of the host's apt sources, read at run time
# (override: SEALWATCH_DEBIAN_MIRROR). Cache: /var/cache/sealwatch/podman-vm (override:
# SEALWATCH_PODMAN_CACHE, the parent). QEMU: the host's qemu-system-x86_64 when installed, else
# Debian's qemu-system-x86 unpacked with `apt-get download` + `dpkg -x` into the cache (installing it
# would remove a backported qemu-utils).
set -euo pipefail

PROG=podman-vm.sh
RECIPE=2 # bump when the package list or the guest's configuration changes: the image is rebuilt
CACHE=${SEALWATCH_PODMAN_CACHE:-/var/cache/sealwatch}/podman-vm
STAMP=$CACHE/image.ok
LOG=$CACHE/build.log
IMAGE=$CACHE/disk.img
KERNEL=$CACHE/vmlinuz
INITRD=$CACHE/initrd.img
KEY=$CACHE/id_ed25519
KNOWN=$CACHE/known_hosts
QEMU_DIR=$CACHE/qemu
QEMU_STAMP=$CACHE/qemu.ok
HOSTKEY_ALIAS=sealwatch-podman-vm
BOOT_TIMEOUT=${SEALWATCH_VM_BOOT_TIMEOUT:-300}
GUEST_MEM=${SEALWATCH_VM_MEMORY:-1536}
GUEST_CPUS=${SEALWATCH_VM_CPUS:-2}
# panic=-1 with -no-reboot: a guest kernel panic ends QEMU, so start fails at once. The blacklisted
# modules only cost boot time under TCG (no nested virtualisation, no speaker, no cpufreq).
APPEND="root=/dev/vda rw console=ttyS0 mitigations=off net.ifnames=0 panic=-1 modprobe.blacklist=kvm_amd,kvm_intel,kvm,pcspkr,powernow_k8"
PACKAGES=(linux-image-amd64 initramfs-tools systemd-sysv udev dbus podman crun runc conmon catatonit
    netavark aardvark-dns passt busybox-static iproute2 openssh-server nftables kmod procps)
export LC_ALL=C

die() {
    echo "$PROG: ERROR: $*" >&2
    exit 1
}

usage() {
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root"
}

# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------

# The host's Debian mirror and the build chroot, shared with the other harness script.
. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-root.sh"

build_fail() {
    fail_with_log "$1" "$2" "$LOG" "build"
}

image_ok() {
    [ -f "$STAMP" ] && grep -qx "recipe=$RECIPE" "$STAMP" && [ -f "$IMAGE" ] && [ -f "$KERNEL" ] &&
        [ -f "$INITRD" ] && [ -f "$KEY" ] && [ -f "$KNOWN" ] && qemu_ok
}

qemu_ok() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 && return 0
    [ -f "$QEMU_STAMP" ] && [ -x "$QEMU_DIR/usr/bin/qemu-system-x86_64" ]
}

# Sets QEMU (the binary) and QEMU_ENV (environment for it) and QEMU_DATA (-L directories).
qemu_paths() {
    if command -v qemu-system-x86_64 >/dev/null 2>&1; then
        QEMU=$(command -v qemu-system-x86_64)
        QEMU_ENV=()
        QEMU_DATA=()
        return
    fi
    [ -f "$QEMU_STAMP" ] || die "no QEMU (no qemu-system-x86_64 on PATH, no $QEMU_STAMP): run: $0 build"
    QEMU=$QEMU_DIR/usr/bin/qemu-system-x86_64
    local libs
    libs=$QEMU_DIR/usr/lib/x86_64-linux-gnu:$QEMU_DIR/lib/x86_64-linux-gnu
    QEMU_ENV=(env "LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    # Debian's build looks in /usr/share/qemu, /usr/share/seabios and /usr/lib/ipxe/qemu.
    QEMU_DATA=(-L "$QEMU_DIR/usr/share/qemu" -L "$QEMU_DIR/usr/share/seabios" -L "$QEMU_DIR/usr/lib/ipxe/qemu")
}

# Debian's qemu-system-x86 and the packages it needs that the host lacks, unpacked into QEMU_DIR.
build_qemu() {
    qemu_ok && return 0
    echo "== QEMU: apt-get download + dpkg -x into $QEMU_DIR"
    local dl=$CACHE/qemu-debs pkgs
    rm -rf "$dl" "$QEMU_DIR" "$QEMU_STAMP"
    mkdir -p "$dl" "$QEMU_DIR"
    chown _apt "$dl" 2>/dev/null || true
    # What installing it would add (apt's own resolution; nothing is installed).
    pkgs=$(apt-get -s -q -o Debug::NoLocking=1 install --no-install-recommends qemu-system-x86 | awk '/^Inst /{print $2}')
    if ! echo "$pkgs" | grep -qx qemu-system-x86; then
        apt-get update -q
        pkgs=$(apt-get -s -q -o Debug::NoLocking=1 install --no-install-recommends qemu-system-x86 | awk '/^Inst /{print $2}')
    fi
    echo "$pkgs" | grep -qx qemu-system-x86 || { echo "apt cannot resolve qemu-system-x86"; false; }
    # shellcheck disable=SC2086
    (cd "$dl" && apt-get download -q $pkgs)
    local d
    for d in "$dl"/*.deb; do dpkg -x "$d" "$QEMU_DIR"; done
    [ -f "$QEMU_DIR/usr/share/seabios/bios-256k.bin" ] || { echo "no seabios/bios-256k.bin among the unpacked packages"; false; }
    LD_LIBRARY_PATH=$QEMU_DIR/usr/lib/x86_64-linux-gnu:$QEMU_DIR/lib/x86_64-linux-gnu \
        "$QEMU_DIR/usr/bin/qemu-system-x86_64" --version
    rm -rf "$dl"
    {
        echo "packages=$(echo "$pkgs" | tr '\n' ' ')"
        echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >"$QEMU_STAMP"
}

# The guest's configuration, written into the root file system $1.
configure_guest() {
    local r=$1
    echo sealwatch-vm >"$r/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 sealwatch-vm\n' >"$r/etc/hosts"
    echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$r/etc/fstab"
    : >"$r/etc/machine-id" # systemd makes one at first boot (the provisioning boot)
    in_build_chroot "$r" passwd -d root
    # Static address on QEMU's user network (no DHCP wait); the guest has no route anywhere else
    # that answers (restrict=on).
    cat >"$r/etc/systemd/system/sealwatch-net.service" <<'EOF'
[Unit]
Description=Static address on QEMU's user network
Before=network.target
Wants=network.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip link set eth0 up
ExecStart=/usr/sbin/ip addr add 10.0.2.15/24 dev eth0
ExecStart=/usr/sbin/ip route add default via 10.0.2.2
[Install]
WantedBy=multi-user.target
EOF
    # The API on TCP 8080, through the real podman.socket. No Requires=podman.socket: stopping the
    # socket must be possible (an outage); the proxy then fails each connection.
    cat >"$r/etc/systemd/system/sealwatch-podman-tcp.socket" <<'EOF'
[Unit]
Description=Podman API on TCP 8080 (proxy to /run/podman/podman.sock)
[Socket]
ListenStream=0.0.0.0:8080
[Install]
WantedBy=sockets.target
EOF
    cat >"$r/etc/systemd/system/sealwatch-podman-tcp.service" <<'EOF'
[Unit]
Description=Proxy TCP 8080 to /run/podman/podman.sock
[Service]
ExecStart=/usr/lib/systemd/systemd-socket-proxyd /run/podman/podman.sock
EOF
    # One provisioning boot: import busybox as localhost/busybox:latest, then power off.
    mkdir -p "$r/var/lib/sealwatch"
    cp "$r/bin/busybox" "$r/var/lib/sealwatch/busybox"
    cat >"$r/usr/local/sbin/sealwatch-provision" <<'EOF'
#!/bin/sh
set -e
d=$(mktemp -d)
mkdir -p "$d/bin"
cp /var/lib/sealwatch/busybox "$d/bin/busybox"
for a in $(/var/lib/sealwatch/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$d/bin/$a"; done
tar -C "$d" -cf /var/lib/sealwatch/busybox.tar .
podman import --change 'CMD ["/bin/sh"]' /var/lib/sealwatch/busybox.tar localhost/busybox:latest
podman image exists localhost/busybox:latest
podman run --rm --network none localhost/busybox:latest sh -c 'sleep 0 && true'
podman --version >/var/lib/sealwatch/podman-version
rm -rf "$d" /var/lib/sealwatch/busybox.tar
touch /var/lib/sealwatch/provisioned
EOF
    chmod 755 "$r/usr/local/sbin/sealwatch-provision"
    cat >"$r/etc/systemd/system/sealwatch-provision.service" <<'EOF'
[Unit]
Description=Provision the image once, then power off
ConditionPathExists=!/var/lib/sealwatch/provisioned
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/sealwatch-provision
ExecStopPost=/usr/bin/systemctl --no-block poweroff
[Install]
WantedBy=multi-user.target
EOF
    mkdir -p "$r/root/.ssh"
    chmod 700 "$r/root/.ssh"
    cp "$KEY.pub" "$r/root/.ssh/authorized_keys"
    chmod 600 "$r/root/.ssh/authorized_keys"
    cat >"$r/etc/ssh/sshd_config.d/sealwatch.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF
    # Quick boots: nothing that waits for a network, nothing periodic.
    local u
    for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
        dpkg-db-backup.timer systemd-networkd-wait-online.service; do
        in_build_chroot "$r" systemctl mask "$u" >/dev/null 2>&1 || true
    done
    in_build_chroot "$r" systemctl enable podman.socket sealwatch-podman-tcp.socket sealwatch-net.service \
        ssh.service sealwatch-provision.service
    in_build_chroot "$r" systemctl set-default multi-user.target
}

# Boot the image itself (no overlay) once for sealwatch-provision.service; it powers off.
provision_boot() {
    qemu_paths
    echo "== provisioning boot"
    local t0 rc=0
    t0=$(date +%s)
    timeout 600 "${QEMU_ENV[@]}" "$QEMU" "${QEMU_DATA[@]}" -nodefaults -display none -no-reboot \
        -accel tcg -cpu max -smp "$GUEST_CPUS" -m "$GUEST_MEM" -rtc base=utc \
        -kernel "$KERNEL" -initrd "$INITRD" \
        -append "root=/dev/vda rw console=ttyS0 mitigations=off net.ifnames=0" \
        -drive "file=$IMAGE.partial,if=virtio,format=raw" \
        -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0,romfile= \
        -serial "file:$CACHE/provision-console.log" || rc=$?
    echo "== provisioning boot ended (exit $rc) after $(($(date +%s) - t0)) s"
    [ $rc = 0 ] || { tail -n 30 "$CACHE/provision-console.log"; false; }
    debugfs -R 'stat /var/lib/sealwatch/provisioned' "$IMAGE.partial" 2>/dev/null | grep -q '^Inode:' ||
        { tail -n 40 "$CACHE/provision-console.log"; echo "provisioning did not finish (no /var/lib/sealwatch/provisioned)"; false; }
}

cmd_build() {
    image_ok && return 0
    need_root
    mkdir -p "$CACHE"
    exec 9>"$CACHE/build.lock"
    flock 9 || die "cannot lock $CACHE/build.lock"
    image_ok && return 0 # another caller built it while we waited

    local t0 mirror root=$CACHE/root.partial
    t0=$(date +%s)
    renice -n 10 -p $$ >/dev/null 2>&1 || true
    ionice -c 3 -p $$ >/dev/null 2>&1 || true
    : >"$LOG"
    exec 3>&1 4>&2
    echo "$PROG: building the Podman VM image in $CACHE (log: $LOG)" >&2
    exec >>"$LOG" 2>&1
    trap 'build_fail $? "$BASH_COMMAND"' ERR
    set -E

    local hostpkgs=() p
    command -v debootstrap >/dev/null 2>&1 || hostpkgs+=(debootstrap)
    command -v mkfs.ext4 >/dev/null 2>&1 && command -v debugfs >/dev/null 2>&1 || hostpkgs+=(e2fsprogs)
    command -v qemu-img >/dev/null 2>&1 || hostpkgs+=(qemu-utils)
    command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || hostpkgs+=(openssh-client)
    command -v curl >/dev/null 2>&1 || hostpkgs+=(curl)
    if [ "${#hostpkgs[@]}" -gt 0 ]; then
        echo "== installing on the host: ${hostpkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${hostpkgs[@]}" ||
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${hostpkgs[@]}"; }
    fi
    build_qemu

    mirror=$(host_mirror)
    echo "== mirror $mirror, suite trixie"
    rm -rf --one-file-system "$root" "$STAMP" "$IMAGE" "$IMAGE.partial" "$KERNEL" "$INITRD" "$KEY" "$KEY.pub" "$KNOWN"
    mkdir -p "$root"
    echo "== debootstrap --variant=minbase trixie"
    debootstrap --variant=minbase trixie "$root" "$mirror"
    echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99sealwatch-no-valid-until"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    echo "== apt-get install ${PACKAGES[*]}"
    in_build_chroot "$root" apt-get update -q
    in_build_chroot "$root" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
    in_build_chroot "$root" apt-get clean
    rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
    rm -rf "$root"/var/lib/apt/lists/*
    for p in podman crun conmon sshd systemd-socket-proxyd busybox; do
        in_build_chroot "$root" sh -c "command -v $p || test -x /usr/lib/systemd/$p" >/dev/null ||
            { echo "missing $p in the root"; false; }
    done

    ssh-keygen -q -t ed25519 -N '' -C sealwatch-podman-vm -f "$KEY"
    configure_guest "$root"
    # Kernel and initrd for -kernel/-initrd.
    cp "$(ls -1 "$root"/boot/vmlinuz-* | sort -V | tail -n1)" "$KERNEL"
    cp "$(ls -1 "$root"/boot/initrd.img-* | sort -V | tail -n1)" "$INITRD"
    # The guest's host key, pinned under an alias (the forwarded port changes per run).
    echo "$HOSTKEY_ALIAS $(cut -d' ' -f1,2 "$root/etc/ssh/ssh_host_ed25519_key.pub")" >"$KNOWN"

    echo "== mkfs.ext4 -d (8 GB sparse)"
    truncate -s 8G "$IMAGE.partial"
    mkfs.ext4 -q -F -L sealwatch-root -d "$root" "$IMAGE.partial"
    provision_boot
    local pv
    pv=$(debugfs -R 'cat /var/lib/sealwatch/podman-version' "$IMAGE.partial" 2>/dev/null | awk '{print $NF}')
    mv "$IMAGE.partial" "$IMAGE"
    {
        echo "recipe=$RECIPE"
        echo "podman=$pv"
        echo "suite=trixie"
        echo "mirror=$mirror"
        echo "packages=$(in_build_chroot "$root" dpkg-query -W -f='${Package}=${Version} ' "${PACKAGES[@]}")"
        echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "seconds=$(($(date +%s) - t0))"
    } >"$STAMP.tmp"
    rm -rf --one-file-system "$root"
    mv "$STAMP.tmp" "$STAMP"
    trap - ERR
    exec 1>&3 2>&4
    echo "$PROG: image ready in $CACHE (Podman $pv, $(($(date +%s) - t0)) s)" >&2
}

require_image() {
    image_ok || die "the Podman VM image is not built (no $STAMP): run: $0 build"
}

# --------------------------------------------------------------------------------------------
# start / ssh / stop
# --------------------------------------------------------------------------------------------

parse_run_args() { # sets API_PORT SSH_PORT RUNDIR; the rest after -- in REST
    API_PORT= SSH_PORT= RUNDIR=
    REST=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --api-port) [ $# -ge 2 ] || die "--api-port needs a value"; API_PORT=$2; shift 2 ;;
        --ssh-port) [ $# -ge 2 ] || die "--ssh-port needs a value"; SSH_PORT=$2; shift 2 ;;
        --dir) [ $# -ge 2 ] || die "--dir needs a value"; RUNDIR=$2; shift 2 ;;
        --) shift; REST=("$@"); break ;;
        *) die "unexpected argument '$1'" ;;
        esac
    done
}

check_port() {
    case "$2" in '' | *[!0-9]*) die "$1 must be a port number (got '$2')" ;; esac
    [ "$2" -ge 1 ] && [ "$2" -le 65535 ] || die "$1 out of range: $2"
}

qemu_alive() { # RUNDIR -> 0 when the QEMU of that run dir lives
    local pid
    [ -f "$1/qemu.pid" ] || return 1
    pid=$(cat "$1/qemu.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$1/overlay.qcow2"
}

ssh_base() { # SSH_PORT -> SSH array
    SSH=(ssh -i "$KEY" -p "$1" -o BatchMode=yes -o IdentitiesOnly=yes -o "UserKnownHostsFile=$KNOWN"
        -o StrictHostKeyChecking=yes -o "HostKeyAlias=$HOSTKEY_ALIAS" -o ConnectTimeout=10
        -o ServerAliveInterval=5 -o ServerAliveCountMax=6 -o LogLevel=ERROR -- root@127.0.0.1)
}

launch_qemu() { # a fresh overlay on the image and QEMU booting it in the background ($RUNDIR)
    rm -f "$RUNDIR/overlay.qcow2" "$RUNDIR/qemu.pid" "$RUNDIR/console.log" "$RUNDIR/qemu.log" \
        "$RUNDIR/qemu-debug.log"
    qemu-img create -q -f qcow2 -b "$IMAGE" -F raw "$RUNDIR/overlay.qcow2" >"$RUNDIR/qemu.log" 2>&1 ||
        die "qemu-img create of $RUNDIR/overlay.qcow2 failed: $(tail -n 3 "$RUNDIR/qemu.log")"
    # Not -daemonize, which points QEMU's stderr at /dev/null once it runs: qemu.log keeps what
    # QEMU says when it aborts, and qemu-debug.log a guest's triple fault (cpu_reset) and what
    # the guest did wrong to a device (guest_errors), so that a guest that ends without a kernel
    # panic on its console still says why. Its own session, so nothing signals it but stop.
    setsid "${QEMU_ENV[@]}" "$QEMU" "${QEMU_DATA[@]}" -name sealwatch-podman-vm -nodefaults -display none \
        -no-reboot -accel tcg -cpu max -smp "$GUEST_CPUS" -m "$GUEST_MEM" -rtc base=utc \
        -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
        -drive "file=$RUNDIR/overlay.qcow2,if=virtio,format=qcow2" \
        -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$API_PORT-:8080,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22" \
        -device virtio-net-pci,netdev=n0,romfile= \
        -serial "file:$RUNDIR/console.log" -monitor none \
        -d cpu_reset,guest_errors -D "$RUNDIR/qemu-debug.log" \
        -pidfile "$RUNDIR/qemu.pid" </dev/null >>"$RUNDIR/qemu.log" 2>&1 &
    local i
    for i in $(seq 300); do
        qemu_alive "$RUNDIR" && return 0
        sleep 0.1
    done
    die "QEMU did not start within 30 s: $(tail -n 3 "$RUNDIR/qemu.log" | tr '\n' ' ')"
}

cmd_start() {
    parse_run_args "$@"
    check_port --api-port "$API_PORT"
    check_port --ssh-port "$SSH_PORT"
    [ -n "$RUNDIR" ] || die "start: --dir RUNDIR is required"
    [ "${#REST[@]}" -eq 0 ] || die "start: unexpected arguments: ${REST[*]}"
    require_image
    qemu_paths
    mkdir -p "$RUNDIR"
    RUNDIR=$(cd "$RUNDIR" && pwd -P)
    qemu_alive "$RUNDIR" && die "a VM already runs for $RUNDIR (pid $(cat "$RUNDIR/qemu.pid"))"
    launch_qemu
    echo "$API_PORT" >"$RUNDIR/api-port"
    echo "$SSH_PORT" >"$RUNDIR/ssh-port"
    local deadline api=0 sshok=0 panics=0
    deadline=$(($(date +%s) + BOOT_TIMEOUT))
    ssh_base "$SSH_PORT"
    while :; do
        if ! qemu_alive "$RUNDIR"; then
            # The emulated (TCG) guest's kernel has been seen to panic in its first seconds
            # ("Fatal exception in interrupt", sched_clock_tick), before any of the guest's
            # userspace ran: a flaw of the emulation, not of what the guest runs. Boot once more
            # on a fresh overlay then, keeping the first console; any other early exit is an error.
            if [ $panics = 0 ] && grep -q "Kernel panic" "$RUNDIR/console.log" 2>/dev/null; then
                panics=1
                mv "$RUNDIR/console.log" "$RUNDIR/console.panic.log"
                echo "podman-vm.sh: the guest kernel panicked while booting (console kept in $RUNDIR/console.panic.log); booting once more" >&2
                launch_qemu
                continue
            fi
            die "QEMU exited during boot; console: $RUNDIR/console.log: $(tail -n 3 "$RUNDIR/console.log" 2>/dev/null | tr '\n' ' ')"
        fi
        if [ $api = 0 ] && curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$API_PORT/v4.0.0/libpod/version"; then
            api=1
        fi
        if [ $api = 1 ] && [ $sshok = 0 ] && "${SSH[@]}" true </dev/null >/dev/null 2>&1; then
            sshok=1
        fi
        [ $api = 1 ] && [ $sshok = 1 ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            local what="the API (127.0.0.1:$API_PORT)"
            [ $api = 1 ] && what="sshd (127.0.0.1:$SSH_PORT)"
            kill_qemu "$RUNDIR"
            die "$what did not answer within ${BOOT_TIMEOUT} s; console: $RUNDIR/console.log: $(tail -n 2 "$RUNDIR/console.log" 2>/dev/null | tr '\n' ' ')"
        fi
        sleep 0.5
    done
}

cmd_ssh() {
    parse_run_args "$@"
    check_port --ssh-port "$SSH_PORT"
    [ -n "$RUNDIR" ] || die "ssh: --dir RUNDIR is required"
    [ "${#REST[@]}" -gt 0 ] || die "ssh: no command (usage: ssh --ssh-port S --dir RUNDIR -- CMD...)"
    [ -f "$KEY" ] && [ -f "$KNOWN" ] || die "no ssh key in $CACHE: run: $0 build"
    RUNDIR=$(cd "$RUNDIR" 2>/dev/null && pwd -P) || die "ssh: no run dir $RUNDIR"
    qemu_alive "$RUNDIR" || die "ssh: no VM runs for $RUNDIR"
    ssh_base "$SSH_PORT"
    local cmd
    cmd=$(printf '%q ' "${REST[@]}")
    exec "${SSH[@]}" "$cmd"
}

kill_qemu() { # RUNDIR: SIGTERM, then SIGKILL, the QEMU of that run dir
    qemu_alive "$1" || return 0
    local pid i
    pid=$(cat "$1/qemu.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        qemu_alive "$1" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        qemu_alive "$1" || return 0
        sleep 0.1
    done
    die "QEMU (pid $pid) survived SIGKILL"
}

cmd_stop() {
    parse_run_args "$@"
    [ -n "$RUNDIR" ] || die "stop: --dir RUNDIR is required"
    [ -d "$RUNDIR" ] || return 0
    RUNDIR=$(cd "$RUNDIR" && pwd -P)
    kill_qemu "$RUNDIR"
    rm -f "$RUNDIR/overlay.qcow2" "$RUNDIR/qemu.pid"
}

cmd_status() {
    if [ -f "$STAMP" ]; then echo "image: $IMAGE"; sed 's/^/  /' "$STAMP"; else echo "image: not built"; fi
    if command -v qemu-system-x86_64 >/dev/null 2>&1; then
        echo "qemu: $(command -v qemu-system-x86_64)"
    elif [ -f "$QEMU_STAMP" ]; then
        echo "qemu: $QEMU_DIR (unpacked)"
        sed 's/^/  /' "$QEMU_STAMP"
    else
        echo "qemu: none"
    fi
}

cmd_purge() {
    need_root
    mkdir -p "$CACHE"
    exec 9>"$CACHE/build.lock"
    flock 9 || die "cannot lock $CACHE/build.lock"
    rm -rf --one-file-system "$CACHE/root.partial" "$STAMP" "$IMAGE" "$IMAGE.partial" "$KERNEL" "$INITRD" \
        "$KEY" "$KEY.pub" "$KNOWN" "$LOG" "$CACHE/provision-console.log"
}

[ $# -ge 1 ] || usage
sub=$1
shift
case "$sub" in
build) cmd_build "$@" ;;
start) cmd_start "$@" ;;
ssh) cmd_ssh "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status ;;
purge) cmd_purge ;;
-h | --help | help) usage ;;
*) die "unknown subcommand '$sub'" ;;
esac
