//! Which Podman a [`PodmanService`](super::PodmanService) runs and how its events are logged:
//! the host's 4.3.1, or 5.4.2 / 6.1.1 from the cached Debian roots of `scripts/podman-chroot.sh`
//! (see scripts/PODMAN-HARNESS.md), with the `file` or the `journald` event backend. Everything a
//! combination needs (the root, its version, a running systemd-journald) is checked or set up once
//! per test process; anything missing fails the test with a clear message, never skips it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::process::{cmdline, other_pids, run_bounded, wait_until};

/// The Podman versions the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The host's own Podman 4.3.1 (Debian 12).
    V4,
    /// Podman 5.4.2 from the Debian 13 root, through `scripts/podman-chroot.sh exec 5`.
    V5,
    /// Podman 6.1.1 from the Debian experimental root, through `scripts/podman-chroot.sh exec 6`.
    V6,
}

/// Podman's `events_logger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    File,
    /// One journal per machine: a service streams every Podman event in it, also other
    /// services' (so tests on journald engines run one at a time: `journal_lock`).
    Journald,
}

/// A Podman version with an event backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    pub version: Version,
    pub events: Events,
}

impl Engine {
    /// The host's 4.3.1 with the file backend: what `PodmanService::start()` runs.
    pub const DEFAULT: Engine = Engine {
        version: Version::V4,
        events: Events::File,
    };

    pub const fn new(version: Version, events: Events) -> Self {
        Engine { version, events }
    }

    /// The version `podman --version` must print.
    pub fn expected_version(self) -> &'static str {
        match self.version {
            Version::V4 => "4.3.1",
            Version::V5 => "5.4.2",
            Version::V6 => "6.1.1",
        }
    }

    /// `5` or `6` for the chroot script; `None` for the host's Podman.
    fn chroot(self) -> Option<&'static str> {
        match self.version {
            Version::V4 => None,
            Version::V5 => Some("5"),
            Version::V6 => Some("6"),
        }
    }

    pub fn is_journald(self) -> bool {
        self.events == Events::Journald
    }

    /// The `events_logger` value.
    pub fn logger(self) -> &'static str {
        match self.events {
            Events::File => "file",
            Events::Journald => "journald",
        }
    }

    /// Lines added under `[containers]` of containers.conf for this version.
    pub fn containers_section_extra(self) -> &'static str {
        match self.version {
            Version::V4 => "",
            Version::V5 => "netns = \"none\"\n",
            Version::V6 => "netns = \"none\"\npids_limit = 0\n",
        }
    }

    /// A `podman` command for this version, with the temp dir `base` visible inside the root at
    /// the same path (`exec V --bind BASE -- podman`).
    pub fn podman_cmd(self, base: &Path) -> Command {
        match self.chroot() {
            None => Command::new("podman"),
            Some(v) => {
                let mut c = Command::new(chroot_script());
                c.args(["exec", v, "--bind"])
                    .arg(base)
                    .args(["--", "podman"]);
                c
            }
        }
    }

    /// Drops the `--bind` of `base` inside the root (and every mount under it); no-op for 4.
    pub fn unbind(self, base: &Path) {
        if let Some(v) = self.chroot() {
            let mut c = Command::new(chroot_script());
            c.args(["unbind", v]).arg(base).stdin(Stdio::null());
            let _ = run_bounded(c, Duration::from_secs(60));
        }
    }

    /// Everything this combination needs, once per test process: podman and its tools, the
    /// cached root set up and at the expected version, systemd-journald running. Panics with
    /// what is missing.
    pub fn prepare(self) {
        static HOST: OnceLock<Result<(), String>> = OnceLock::new();
        static ROOTS: [OnceLock<Result<(), String>>; 2] = [OnceLock::new(), OnceLock::new()];
        static JOURNALD: OnceLock<Result<(), String>> = OnceLock::new();
        let checked = |r: &Result<(), String>| {
            if let Err(e) = r {
                panic!("PodmanService ({self:?}): {e}");
            }
        };
        checked(HOST.get_or_init(check_host_tools));
        match self.version {
            Version::V4 => {}
            Version::V5 => checked(ROOTS[0].get_or_init(|| set_up_root(self))),
            Version::V6 => checked(ROOTS[1].get_or_init(|| set_up_root(self))),
        }
        if self.is_journald() {
            checked(JOURNALD.get_or_init(ensure_journald));
        }
    }
}

/// `$CARGO_MANIFEST_DIR/scripts/podman-chroot.sh`
pub fn chroot_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/podman-chroot.sh")
}

fn check_host_tools() -> Result<(), String> {
    match Command::new("podman")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "`podman --version` failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ))
        }
        Err(e) => {
            return Err(format!(
                "podman is not installed or not on PATH ({e}). Install: apt-get install -y \
                 --no-install-recommends podman runc catatonit busybox-static prometheus \
                 (see ../shared/podman/TEST-SERVICE.md)"
            ))
        }
    }
    for (tool, pkg) in [("runc", "runc"), ("tar", "tar")] {
        if Command::new(tool)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .is_err()
        {
            return Err(format!(
                "`{tool}` not found on PATH (apt-get install {pkg})"
            ));
        }
    }
    Ok(())
}

/// `podman-chroot.sh setup V` (< 0.1 s when cached, about 90 s from scratch), then `version V`.
fn set_up_root(engine: Engine) -> Result<(), String> {
    let v = engine.chroot().expect("a chroot version");
    let script = chroot_script();
    let run = |args: &[&str], timeout: u64| -> Result<String, String> {
        let mut c = Command::new(&script);
        c.args(args).stdin(Stdio::null());
        let out = run_bounded(c, Duration::from_secs(timeout))
            .map_err(|e| format!("{} {}: {e}", script.display(), args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "`{} {}` failed ({}); the Podman {v} root is needed by this test (see \
                 scripts/PODMAN-HARNESS.md):\n{}{}",
                script.display(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    run(&["setup", v], 900)?;
    let got = run(&["version", v], 60)?;
    if got != engine.expected_version() {
        return Err(format!(
            "`podman-chroot.sh version {v}` says {got:?}, the tests expect {}",
            engine.expected_version()
        ));
    }
    Ok(())
}

fn journald_running() -> bool {
    other_pids().into_iter().any(|pid| {
        cmdline(pid)
            .and_then(|a| a.first().cloned())
            .is_some_and(|a0| a0.rsplit('/').next() == Some("systemd-journald"))
    })
}

/// Starts `systemd-journald` on its own (../shared/podman/TEST-SERVICE.md) unless one runs; it is
/// shared by every journald test and outlives the test process, as a machine's journald does.
fn ensure_journald() -> Result<(), String> {
    let socket = Path::new("/run/systemd/journal/socket");
    if !journald_running() {
        let bin = "/lib/systemd/systemd-journald";
        if !Path::new(bin).exists() {
            return Err(format!(
                "{bin} not found: the journald event backend needs it (apt-get install systemd)"
            ));
        }
        // Detached (double fork), so it is nobody's zombie and keeps running for later tests.
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "mkdir -p /run/systemd/journal /run/log/journal && \
                 (setsid {bin} </dev/null >/dev/null 2>&1 &)"
            ))
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot start {bin}: {e}"))?;
        if !status.success() {
            return Err(format!("starting {bin} failed: {status}"));
        }
    }
    let r = std::panic::catch_unwind(|| {
        wait_until(
            "systemd-journald running with its socket",
            Duration::from_secs(20),
            || {
                (journald_running() && socket.exists())
                    .then_some(())
                    .ok_or_else(|| {
                        format!(
                            "running: {}, socket: {}",
                            journald_running(),
                            socket.exists()
                        )
                    })
            },
        )
    });
    r.map_err(|_| "systemd-journald did not come up (see above)".to_owned())
}

/// The machine's one journal, held by a test on a journald engine for its whole run. Every
/// rootful Podman service with journald events streams every event in it, whichever service
/// wrote it: two such tests at once each saw the other's containers (the same names, other IDs)
/// in their events and their sealwatch's inventory (nine to thirteen failures at
/// `--test-threads=6`).
pub fn journal_lock() -> std::sync::MutexGuard<'static, ()> {
    static JOURNAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed holding it leaves nothing to repair.
    JOURNAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
