//! The packaged sealwatch on a real systemd host (the guest): the .deb of `scripts/package.sh`
//! installs, `systemctl enable --now sealwatch` runs it against the socket-activated Podman, it is
//! ready again after `systemctl restart podman.socket`, and it purges cleanly. Then the shipped
//! Quadlet file (`deploy/quadlet/sealwatch.container`) runs the container image, built in the
//! guest from the project's Dockerfile (`--target prebuilt`), as a systemd unit.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::process::{check_output, run_bounded};
use crate::support::vm::PodmanVm;
use crate::support::{wait_until, Exposition};

use super::CATCH_UP;

/// `GET http://127.0.0.1:PORT<path>` inside the guest: (ok, body).
fn guest_get(vm: &PodmanVm, port: u16, path: &str) -> Result<String, String> {
    vm.try_ssh(&[
        "busybox",
        "wget",
        "-qO-",
        &format!("http://127.0.0.1:{port}{path}"),
    ])
}

/// Waits until the sealwatch on `port` in the guest is ready and shows the guest's engine up.
fn wait_ready(vm: &PodmanVm, port: u16, what: &str) -> Duration {
    let t0 = Instant::now();
    wait_until(&format!("{what}: ready"), CATCH_UP, || {
        guest_get(vm, port, "/-/ready")?;
        let m = Exposition::parse(&guest_get(vm, port, "/metrics")?)?;
        match m.try_value("podman_up", &[])? {
            1.0 => Ok(()),
            v => Err(format!("podman_up {v}")),
        }
    });
    t0.elapsed()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The package phase, with `binary` the static sealwatch; returns how long it took.
pub fn check(vm: &PodmanVm, binary: &Path) -> Duration {
    let t0 = Instant::now();
    let out_dir = tempfile::tempdir().expect("package dir");
    let out = run_bounded(
        {
            let mut c = Command::new(repo().join("scripts/package.sh"));
            c.arg(out_dir.path()).env("SEALWATCH_BINARY", binary);
            c
        },
        Duration::from_secs(300),
    )
    .expect("scripts/package.sh");
    let paths = check_output("scripts/package.sh", out);
    let deb = paths
        .lines()
        .find(|p| p.ends_with(".deb"))
        .unwrap_or_else(|| panic!("no .deb in {paths}"));

    // The .deb on systemd: installed, not started; enabled and started by the admin.
    vm.copy_in(Path::new(deb), "/root/sealwatch.deb");
    vm.sh("dpkg -i /root/sealwatch.deb");
    assert!(
        vm.try_ssh(&["systemctl", "is-active", "--quiet", "sealwatch"])
            .is_err(),
        "installing does not start the service"
    );
    vm.sh(
        "sed -i 's|^#SEALWATCH_WEB_LISTEN_ADDRESS=.*|SEALWATCH_WEB_LISTEN_ADDRESS=127.0.0.1:9883|' \
         /etc/default/sealwatch && systemctl enable --now sealwatch",
    );
    let up = wait_ready(vm, 9883, "the packaged service");
    vm.sh("systemctl restart podman.socket");
    let again = wait_ready(vm, 9883, "the packaged service after restart podman.socket");
    eprintln!(
        "vm: packaged sealwatch ready {:.1} s after enable --now, {:.1} s after restart podman.socket",
        up.as_secs_f64(),
        again.as_secs_f64()
    );
    let status = vm.ssh(&[
        "systemctl",
        "show",
        "sealwatch",
        "-p",
        "NRestarts,ActiveState",
    ]);
    assert!(
        status.contains("NRestarts=0") && status.contains("ActiveState=active"),
        "{status}"
    );
    vm.sh("systemctl disable --now sealwatch && dpkg --purge sealwatch");
    let left = vm.sh(
        "for f in /usr/bin/sealwatch /etc/default/sealwatch /usr/share/sealwatch \
         /lib/systemd/system/sealwatch.service /usr/lib/systemd/system/sealwatch.service; do \
         [ -e $f ] && echo $f; done; true",
    );
    assert_eq!(left.trim(), "", "files left after purge");

    // The container image under Quadlet.
    vm.sh("mkdir -p /root/ctx/target/x86_64-unknown-linux-gnu/release");
    vm.copy_in(&repo().join("Dockerfile"), "/root/ctx/Dockerfile");
    vm.copy_in(
        binary,
        "/root/ctx/target/x86_64-unknown-linux-gnu/release/sealwatch",
    );
    vm.sh(
        "cd /root/ctx && podman build --quiet --format docker --target prebuilt \
         -t localhost/sealwatch:latest . >/dev/null",
    );
    vm.sh("mkdir -p /etc/containers/systemd");
    vm.copy_in(
        &repo().join("deploy/quadlet/sealwatch.container"),
        "/etc/containers/systemd/sealwatch.container",
    );
    vm.sh("systemctl daemon-reload && systemctl start sealwatch.service");
    let quadlet = wait_ready(vm, 9882, "the Quadlet unit");
    let m = Exposition::parse(&guest_get(vm, 9882, "/metrics").unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.value("sealwatch_engine_stats_source", &[("source", "podman")]),
        1.0,
        "in a container without --pid=host, auto takes the stats stream"
    );
    let unit = vm.ssh(&[
        "systemctl",
        "show",
        "sealwatch",
        "-p",
        "SourcePath,ActiveState",
    ]);
    assert!(
        unit.contains("/etc/containers/systemd/sealwatch.container")
            && unit.contains("ActiveState=active"),
        "{unit}"
    );
    eprintln!(
        "vm: Quadlet unit ready {:.1} s after systemctl start",
        quadlet.as_secs_f64()
    );
    vm.sh(
        "systemctl stop sealwatch.service; rm -f /etc/containers/systemd/sealwatch.container; \
         systemctl daemon-reload",
    );
    t0.elapsed()
}
