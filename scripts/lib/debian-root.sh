# Shared by scripts/podman-chroot.sh and scripts/podman-vm.sh (sourced, not run): where the host's
# Debian packages come from, and running commands in a root being built. Callers define die().

# The Debian archive URI of the host's apt sources (deb822 *.sources and one-line *.list), the
# entry serving the host's own release (not -security / -updates).
host_mirror() {
    if [ -n "${SEALWATCH_DEBIAN_MIRROR:-}" ]; then
        echo "$SEALWATCH_DEBIAN_MIRROR"
        return
    fi
    local codename files=() m f
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || die "cannot read VERSION_CODENAME from /etc/os-release"
    for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
    if [ "${#files[@]}" -gt 0 ]; then
        m=$(awk -v want="$codename" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && uris != "" && found == "")
                    { split(uris, u, " "); found = u[1] }
                types = ""; uris = ""; suites = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]*#/ { next }
            tolower($1) == "types:"  { $1 = ""; types = $0 }
            tolower($1) == "uris:"   { $1 = ""; sub(/^ +/, ""); uris = $0 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            END { flush(); if (found != "") print found }' "${files[@]}")
        [ -n "$m" ] && { echo "$m"; return; }
    fi
    files=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && files+=("$f"); done
    if [ "${#files[@]}" -gt 0 ]; then
        m=$(awk -v want="$codename" '
            $1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == want) { print $i; exit }
            }' "${files[@]}")
        [ -n "$m" ] && { echo "$m"; return; }
    fi
    die "no Debian archive for '$codename' found in the host's apt sources (set SEALWATCH_DEBIAN_MIRROR)"
}

# Run CMD... chrooted in $1 with proc, sys, dev mounted, inside a private mount namespace that
# vanishes (with its mounts) when CMD exits. For package installation only.
in_build_chroot() {
    local r=$1
    shift
    unshare --mount --propagation private -- /bin/sh -ec '
        r=$1; shift
        mount -t proc proc "$r/proc"
        mount --rbind /sys "$r/sys"
        mount --rbind /dev "$r/dev"
        exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive "$@"' sh "$r" "$@"
}

# For an ERR trap while stdout and stderr go to LOG (the terminal saved on fds 3 and 4): shows the
# tail of LOG and one line naming WHAT and the failed command, then exits 1.
fail_with_log() {
    local rc=$1 cmd=$2 log=$3 what=$4
    exec 1>&3 2>&4
    if [ -s "$log" ]; then
        tail -n 15 "$log" | sed 's/^/  | /' >&2
    fi
    echo "$PROG: ERROR: $what failed (exit $rc) at: $cmd -- full log: $log" >&2
    exit 1
}
