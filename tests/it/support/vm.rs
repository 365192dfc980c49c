//! A real systemd host with Podman: the QEMU guest of `scripts/podman-vm.sh` (Debian 13, Podman
//! 5.4, journald, socket-activated `podman.socket`). One guest per [`PodmanVm`]; it is stopped
//! (and its copy-on-write overlay removed) on drop. The API is `tcp://127.0.0.1:PORT`, proxied in
//! the guest to `/run/podman/podman.sock`; guest commands run as root through ssh.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::process::{free_port, run_bounded};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/podman-vm.sh");
/// A build from scratch (debootstrap, packages, one provisioning boot) takes a few minutes.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);
/// The script bounds the boot itself (300 s); this only guards against a hung script.
const START_TIMEOUT: Duration = Duration::from_secs(360);

/// `START_TIMEOUT`, or a minute more than `SEALWATCH_VM_BOOT_TIMEOUT` (the script's own boot
/// bound) when that is set longer, so a slow, shared machine can be given more time.
fn start_timeout() -> Duration {
    std::env::var("SEALWATCH_VM_BOOT_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|s| Duration::from_secs(s + 60))
        .map_or(START_TIMEOUT, |t| t.max(START_TIMEOUT))
}
/// One guest command; TCG makes the guest slow, and a scenario runs several Podman commands.
const SSH_TIMEOUT: Duration = Duration::from_secs(300);

/// `podman-vm.sh build`, once per test binary; a failure fails every test that needs the guest.
fn build_once() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = run_bounded(script(&["build"]), BUILD_TIMEOUT)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{SCRIPT} build failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("the Podman VM image is needed and could not be built: {e}");
    }
}

fn script(args: &[&str]) -> Command {
    let mut cmd = Command::new(SCRIPT);
    cmd.args(args);
    cmd
}

/// A running guest.
pub struct PodmanVm {
    dir: TempDir,
    api_port: u16,
    ssh_port: u16,
    /// How long `start` took (boot until the API and sshd answer on the host).
    pub boot_time: Duration,
}

impl PodmanVm {
    /// Builds the image if needed, boots a guest on free ports and waits until its API answers.
    pub fn start() -> Self {
        build_once();
        let dir = tempfile::Builder::new()
            .prefix("sealwatch-vm-")
            .tempdir()
            .unwrap_or_else(|e| panic!("PodmanVm: cannot create temp dir: {e}"));
        let (api_port, ssh_port) = (free_port(), free_port());
        assert_ne!(api_port, ssh_port, "free_port returned the same port twice");
        let mut vm = PodmanVm {
            dir,
            api_port,
            ssh_port,
            boot_time: Duration::ZERO,
        };
        let t0 = Instant::now();
        let out = run_bounded(
            script(&[
                "start",
                "--api-port",
                &api_port.to_string(),
                "--ssh-port",
                &ssh_port.to_string(),
                "--dir",
                &vm.dir_str(),
            ]),
            start_timeout(),
        )
        .unwrap_or_else(|e| panic!("podman-vm.sh start: {e}\n{}", vm.console_tail()));
        if !out.status.success() {
            panic!(
                "podman-vm.sh start failed ({}): {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                vm.console_tail()
            );
        }
        vm.boot_time = t0.elapsed();
        vm
    }

    fn dir_str(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// The last lines of the guest's serial console, for failure messages.
    pub fn console_tail(&self) -> String {
        let path: PathBuf = self.dir.path().join("console.log");
        format!(
            "--- guest console ({}) ---\n{}",
            path.display(),
            tail_of(&path, 60, |_| true)
        )
    }

    /// The engine URL for sealwatch: `tcp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.api_port)
    }

    /// Runs `args` as root in the guest; `Err` with status, stdout and stderr when it fails.
    pub fn try_ssh(&self, args: &[&str]) -> Result<String, String> {
        let port = self.ssh_port.to_string();
        let dir = self.dir_str();
        let mut full = vec!["ssh", "--ssh-port", &port, "--dir", &dir, "--"];
        full.extend_from_slice(args);
        let out = run_bounded(script(&full), SSH_TIMEOUT)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "guest command {args:?} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.death()
            ))
        }
    }

    /// Whether the guest's QEMU still runs (the process of `qemu.pid`, booted on this overlay):
    /// the check of `podman-vm.sh`'s `qemu_alive`, read here rather than through the script
    /// because every failed guest command asks, polls included, and reading two files is cheaper
    /// than starting a process.
    pub fn alive(&self) -> bool {
        let pid = std::fs::read_to_string(self.dir.path().join("qemu.pid")).unwrap_or_default();
        let overlay = self.dir.path().join("overlay.qcow2");
        std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*overlay.to_string_lossy()))
    }

    /// Empty while the guest runs; once its QEMU has exited (a guest panic ends it: `panic=-1`
    /// and `-no-reboot`), what may say why: the end of its console, QEMU's stderr, its resets and
    /// guest errors, and the host kernel's lines on QEMU and memory.
    fn death(&self) -> String {
        if self.alive() {
            return String::new();
        }
        let dir = self.dir.path();
        // QEMU's debug log is mostly register dumps of each CPU reset; its other lines name the
        // resets and faults.
        let debug = tail_of(&dir.join("qemu-debug.log"), 10, |l| !l.contains('='));
        format!(
            "\n--- the guest's QEMU has exited ---\n{}\n--- QEMU's stderr ---\n{}\n\
             --- QEMU's resets and guest errors (-d cpu_reset,guest_errors) ---\n{}{}",
            self.console_tail(),
            tail_of(&dir.join("qemu.log"), 10, |_| true),
            debug,
            host_kernel_says()
        )
    }

    /// Runs `args` as root in the guest; panics when it fails.
    pub fn ssh(&self, args: &[&str]) -> String {
        self.try_ssh(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Copies the host file `local` to `remote` in the guest (through ssh's stdin), mode 0755.
    pub fn copy_in(&self, local: &std::path::Path, remote: &str) {
        let port = self.ssh_port.to_string();
        let dir = self.dir_str();
        let target = format!("cat > {remote} && chmod 755 {remote}");
        let mut cmd = script(&[
            "ssh",
            "--ssh-port",
            &port,
            "--dir",
            &dir,
            "--",
            "sh",
            "-c",
            &target,
        ]);
        let file = std::fs::File::open(local)
            .unwrap_or_else(|e| panic!("copy_in: open {}: {e}", local.display()));
        cmd.stdin(file);
        let out = run_bounded(cmd, SSH_TIMEOUT).unwrap_or_else(|e| panic!("copy_in: {e}"));
        assert!(
            out.status.success(),
            "copy_in {} -> {remote}: {}",
            local.display(),
            status_and_stderr(out)
        );
    }

    /// `GET http://127.0.0.1:PORT<path>` of the guest's Podman API (the forwarded port): body.
    pub fn api_get(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.api_port);
        match crate::support::process::http_get(&crate::support::process::http_agent(), &url) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("GET {url}: {status} {body}"),
            Err(e) => panic!("GET {url}: {e}"),
        }
    }

    /// Runs a `sh -ec` script in the guest; panics when it fails.
    pub fn sh(&self, script: &str) -> String {
        self.ssh(&["sh", "-ec", script])
    }

    /// The guest's clock, as `podman events --since` takes it.
    pub fn now(&self) -> String {
        self.ssh(&["date", "-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
            .trim()
            .to_owned()
    }

    /// `podman ps -a --format json` in the guest.
    pub fn ps_all(&self) -> Value {
        let text = self.ssh(&["podman", "ps", "-a", "--format", "json"]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("podman ps -a: {e}: {text}"))
    }

    /// `podman events --since T0 --stream=false --format json` in the guest, one value per event.
    pub fn events_since(&self, t0: &str) -> Vec<Value> {
        let text = self.ssh(&[
            "podman",
            "events",
            "--stream=false",
            "--since",
            t0,
            "--until",
            &self.now(),
            "--format",
            "json",
        ]);
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event line {l:?}: {e}")))
            .collect()
    }
}

impl Drop for PodmanVm {
    fn drop(&mut self) {
        let out = run_bounded(
            script(&["stop", "--dir", &self.dir_str()]),
            Duration::from_secs(60),
        );
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("podman-vm.sh stop: {}", status_and_stderr(out)),
            Err(e) => eprintln!("podman-vm.sh stop: {e}"),
        }
    }
}

fn status_and_stderr(out: std::process::Output) -> String {
    format!(
        "{} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// What the host's kernel said of QEMU or memory lately (an OOM kill, a segfault), when `dmesg`
/// can be read: a guest whose console ends without a panic was ended from outside.
fn host_kernel_says() -> String {
    let Ok(out) = run_bounded(Command::new("dmesg"), Duration::from_secs(10)) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            ["qemu", "out of memory", "oom", "killed process", "segfault"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    let tail = &lines[lines.len().saturating_sub(15)..];
    format!(
        "\n--- the host's dmesg on QEMU and memory (last {} lines) ---\n{}",
        tail.len(),
        tail.join("\n")
    )
}

/// The last `n` lines of the file at `path` that `keep` keeps (empty when it cannot be read).
fn tail_of(path: &std::path::Path, n: usize, keep: impl Fn(&str) -> bool) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| keep(l)).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
