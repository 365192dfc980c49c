#!/usr/bin/env bash
# Builds sealwatch's Debian package and RPM from the static release binary:
#   scripts/package.sh [OUT_DIR]      (default: ${CARGO_TARGET_DIR:-target}/package)
# prints the paths of sealwatch_VERSION-1_amd64.deb and sealwatch-VERSION-1.x86_64.rpm.
#
# Both hold the same files:
#   /usr/bin/sealwatch                        the static binary (scripts/build-static.sh), so one
#                                             build runs on every distribution's C library
#   sealwatch.service                         deploy/systemd/sealwatch.service with ExecStart at
#                                             /usr/bin and EnvironmentFile= the file below
#   /etc/default/sealwatch (.deb), /etc/sysconfig/sealwatch (.rpm)
#                                             deploy/package/sealwatch.env, a conffile
#   /usr/share/sealwatch/dashboards/          the Grafana dashboards
#   /usr/share/sealwatch/prometheus/          alert rules, recording rules, an example scrape config
#   /usr/share/doc/sealwatch/                 README.md, copyright
# The service is installed, not enabled or started (see deploy/package/debian/postinst).
#
# Needs dpkg-deb and rpmbuild (Debian: dpkg, rpm). Set SEALWATCH_BINARY to package a binary
# built elsewhere instead of running scripts/build-static.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
out=$(realpath -m "${1:-$target/package}")

for tool in dpkg-deb rpmbuild; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "package.sh: $tool not found; install the Debian packages dpkg and rpm" >&2
        exit 1
    fi
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "package.sh: no version in Cargo.toml" >&2; exit 1; }

if [ -n "${SEALWATCH_BINARY:-}" ]; then
    bin=$SEALWATCH_BINARY
else
    scripts/build-static.sh --locked >&2
    bin=$target/x86_64-unknown-linux-gnu/release/sealwatch
fi
[ -x "$bin" ] || { echo "package.sh: $bin is not an executable" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# stage ROOT UNIT_DIR ENV_FILE: the file tree both packages share.
stage() {
    local root=$1 unit_dir=$2 env_file=$3
    install -D -m 0755 "$bin" "$root/usr/bin/sealwatch"
    install -d -m 0755 "$root$unit_dir"
    sed -e 's#/usr/local/bin/sealwatch#/usr/bin/sealwatch#g' \
        -e "s#^EnvironmentFile=.*#EnvironmentFile=-$env_file#" \
        -e "s#/etc/default/sealwatch#$env_file#g" \
        deploy/systemd/sealwatch.service >"$root$unit_dir/sealwatch.service"
    chmod 0644 "$root$unit_dir/sealwatch.service"
    install -D -m 0644 deploy/package/sealwatch.env "$root$env_file"
    install -d -m 0755 "$root/usr/share/sealwatch/dashboards" "$root/usr/share/sealwatch/prometheus"
    install -m 0644 dashboards/*.json "$root/usr/share/sealwatch/dashboards/"
    install -m 0644 deploy/prometheus/alerts.yml deploy/prometheus/podman-exporter-codes.yml \
        deploy/prometheus/prometheus.yml "$root/usr/share/sealwatch/prometheus/"
    install -D -m 0644 README.md "$root/usr/share/doc/sealwatch/README.md"
    install -m 0644 deploy/package/copyright "$root/usr/share/doc/sealwatch/copyright"
}

# --- Debian -----------------------------------------------------------------------------------
arch=$(dpkg --print-architecture)
deb_root=$work/deb
stage "$deb_root" /lib/systemd/system /etc/default/sealwatch
install -d -m 0755 "$deb_root/DEBIAN"
install -m 0755 deploy/package/debian/postinst deploy/package/debian/prerm \
    deploy/package/debian/postrm "$deb_root/DEBIAN/"
echo /etc/default/sealwatch >"$deb_root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
cat >"$deb_root/DEBIAN/control" <<CONTROL
Package: sealwatch
Version: $version-1
Architecture: $arch
Maintainer: sealwatch maintainers <sealwatch@users.noreply.github.com>
Installed-Size: $size
Section: admin
Priority: optional
Homepage: https://github.com/sealwatch/sealwatch
Suggests: podman, prometheus
Description: event-driven Prometheus exporter and inventory sidecar for Podman
 sealwatch follows Podman's libpod event stream, keeps an exact inventory of
 containers and pods, and serves Prometheus metrics (/metrics) and a JSON
 inventory (/containers, /pods). The systemd unit is installed but not
 enabled; Grafana dashboards and Prometheus alert rules are in
 /usr/share/sealwatch/.
CONTROL
deb=$out/sealwatch_${version}-1_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$deb_root" "$deb" >&2

# --- RPM --------------------------------------------------------------------------------------
rpm_root=$work/rpm-stage
stage "$rpm_root" /usr/lib/systemd/system /etc/sysconfig/sealwatch
rpmbuild -bb --quiet \
    --define "_topdir $work/rpmbuild" \
    --define "_rpmdir $out" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "stage $rpm_root" \
    --define "version $version" \
    --define "__os_install_post %{nil}" \
    --define "debug_package %{nil}" \
    --define "_build_id_links none" \
    deploy/package/sealwatch.spec >&2
rpm=$out/sealwatch-${version}-1.x86_64.rpm
[ -f "$rpm" ] || { echo "package.sh: rpmbuild made no $rpm" >&2; exit 1; }

echo "$deb"
echo "$rpm"
