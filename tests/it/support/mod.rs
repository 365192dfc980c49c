//! Integration-test support: a private, isolated Podman API service per test and a running
//! `sealwatch` binary to scrape. See /work/shared/podman/TEST-SERVICE.md for the Podman set-up.
//!
//! Everything here is per instance (temp dirs, sockets, ports), so tests can run in parallel
//! threads. Plain std + `tempfile`, `ureq`, `serde_json`; synchronous.
#![allow(dead_code)]

pub mod prometheus;
pub mod scripted;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a single podman CLI call may take before it is killed and reported.
const PODMAN_CMD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for `GET /_ping` after starting the service.
const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the serving process to exit after SIGTERM (before SIGKILL).
const SERVICE_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound for each clean-up command run from `Drop`.
const DROP_CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long sealwatch may take to answer `/-/healthy`.
const SEALWATCH_START_TIMEOUT: Duration = Duration::from_secs(10);

pub const BUSYBOX_IMAGE: &str = "localhost/busybox:latest";

// ---------------------------------------------------------------------------------------------
// Podman service
// ---------------------------------------------------------------------------------------------

/// A private Podman 4.x API service on `unix://$T/podman.sock` with its own storage
/// (`--root $T/root --runroot $T/run --storage-driver vfs`) and `CONTAINERS_CONF=$T/containers.conf`.
pub struct PodmanService {
    /// `None` only while dropping.
    dir: Option<TempDir>,
    /// `$T`
    base: PathBuf,
    root: PathBuf,
    runroot: PathBuf,
    conf: PathBuf,
    socket: PathBuf,
    url: String,
    service_log: PathBuf,
    /// The `podman system service` process we spawned (may re-exec; the serving PID is found
    /// by command line).
    child: Option<Child>,
}

impl PodmanService {
    /// New private storage + containers.conf in a fresh temp dir, busybox image
    /// `localhost/busybox:latest` imported, API service started on `unix://$T/podman.sock`,
    /// waits for `GET /_ping` == `OK`. Panics (never skips) if podman is missing or fails.
    pub fn start() -> Self {
        check_prerequisites();

        let dir = tempfile::Builder::new()
            .prefix("sealwatch-podman-")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("PodmanService: cannot create temp dir under /tmp: {e}"));
        let base = dir.path().to_path_buf();
        let root = base.join("root");
        let runroot = base.join("run");
        let tmp = base.join("tmp");
        let conf = base.join("containers.conf");
        let socket = base.join("podman.sock");
        let service_log = base.join("service.log");
        let url = format!("unix://{}", socket.display());
        assert!(
            socket.as_os_str().len() < 100,
            "PodmanService: socket path too long for a unix socket: {}",
            socket.display()
        );

        fs::create_dir_all(&tmp).expect("PodmanService: create $T/tmp");
        let conf_text = format!(
            "[containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [engine]\n\
             runtime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             tmp_dir = \"{}\"\n",
            toml_escape(&tmp.display().to_string())
        );
        fs::write(&conf, conf_text).expect("PodmanService: write containers.conf");

        let mut svc = PodmanService {
            dir: Some(dir),
            base,
            root,
            runroot,
            conf,
            socket,
            url,
            service_log,
            child: None,
        };

        svc.import_busybox();
        svc.start_service();
        svc
    }

    /// `unix:///…/podman.sock`
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The private temp dir `$T` (containers.conf, storage, service.log, tmp/events/events.log).
    pub fn dir(&self) -> &Path {
        &self.base
    }

    /// Contents of the service's own stdout+stderr log (`$T/service.log`).
    pub fn service_log(&self) -> String {
        read_lossy(&self.service_log)
    }

    /// `podman --url <url> ARGS` through the service; panics with stderr on failure;
    /// returns trimmed stdout.
    pub fn podman(&self, args: &[&str]) -> String {
        let out = self.try_podman(args);
        check_output(
            &format!("podman --url {} {}", self.url, args.join(" ")),
            out,
        )
    }

    /// Same as [`podman`](Self::podman) but returns the `Output` without panicking (a command
    /// that exceeds the timeout is killed and reported as a failed `Output`).
    pub fn try_podman(&self, args: &[&str]) -> Output {
        run_bounded(self.remote_cmd(args), PODMAN_CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("podman --url {} {}: {e}", self.url, args.join(" ")))
    }

    /// `podman --root … --runroot … --storage-driver vfs ARGS` directly on the same storage
    /// (no service). Panics on failure; returns trimmed stdout.
    pub fn podman_direct(&self, args: &[&str]) -> String {
        let out = run_bounded(self.direct_cmd(args), PODMAN_CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("podman (direct) {}: {e}", args.join(" ")));
        check_output(
            &format!("podman --root {} … {}", self.root.display(), args.join(" ")),
            out,
        )
    }

    /// `podman ps -a --format json`, via the service.
    pub fn ps_all(&self) -> serde_json::Value {
        parse_json_list(
            &self.podman(&["ps", "-a", "--format", "json"]),
            "podman ps -a",
        )
    }

    /// `podman pod ps --format json`, via the service.
    pub fn pod_ps(&self) -> serde_json::Value {
        parse_json_list(
            &self.podman(&["pod", "ps", "--format", "json"]),
            "podman pod ps",
        )
    }

    /// Stop the serving process (SIGTERM to the PID whose command line holds this socket URL;
    /// waits until it is gone and the socket no longer answers). Containers keep running.
    pub fn stop_service(&mut self) {
        if let Err(e) = self.stop_service_inner() {
            panic!(
                "PodmanService::stop_service: {e}\n--- service log ---\n{}",
                self.service_log()
            );
        }
    }

    /// Start the service again on the same socket and storage; waits for `_ping`.
    /// Does nothing if the socket already answers.
    pub fn start_service(&mut self) {
        if ping(&self.socket).is_ok() {
            return;
        }
        // Reap a previous child, if any.
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A stale socket file (e.g. after SIGKILL) would make the bind fail.
        let _ = fs::remove_file(&self.socket);

        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.service_log)
            .expect("PodmanService: open service.log");
        let _ = writeln!(
            &log,
            "=== sealwatch tests: starting podman system service ==="
        );
        let log2 = log.try_clone().expect("PodmanService: clone log handle");

        let mut cmd = Command::new("podman");
        cmd.args(self.storage_args());
        if let Ok(level) = std::env::var("SEALWATCH_TEST_PODMAN_LOG_LEVEL") {
            cmd.arg(format!("--log-level={level}"));
        }
        cmd.args(["system", "service", "--time=0", &self.url])
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("PodmanService: cannot spawn `podman system service`: {e}"));

        let deadline = Instant::now() + SERVICE_START_TIMEOUT;
        let mut last_err;
        loop {
            match ping(&self.socket) {
                Ok(()) => break,
                Err(e) => last_err = e,
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Give a re-executed server a moment; if nothing answers it really failed.
                thread::sleep(Duration::from_millis(200));
                if ping(&self.socket).is_ok() {
                    break;
                }
                panic!(
                    "PodmanService: `podman system service {}` exited with {status} before \
                     answering /_ping\n--- service log ---\n{}",
                    self.url,
                    self.service_log()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "PodmanService: service on {} did not answer GET /_ping within {:?} (last: \
                     {last_err})\n--- service log ---\n{}",
                    self.url,
                    SERVICE_START_TIMEOUT,
                    self.service_log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    // --- internals -------------------------------------------------------------------------

    fn storage_args(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.root.display().to_string(),
            "--runroot".into(),
            self.runroot.display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
        ]
    }

    fn remote_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--url")
            .arg(&self.url)
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null());
        cmd
    }

    fn direct_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.args(self.storage_args())
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null());
        cmd
    }

    fn import_busybox(&self) {
        let rootfs = self.base.join("busybox-rootfs");
        let bin = rootfs.join("bin");
        fs::create_dir_all(&bin).expect("PodmanService: create busybox rootfs");
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("PodmanService: /bin/busybox not found (apt-get install busybox-static)");
        fs::copy(busybox, bin.join("busybox")).expect("PodmanService: copy busybox");
        for applet in [
            "sh", "sleep", "true", "false", "test", "touch", "cat", "echo", "rm", "ls",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .expect("PodmanService: symlink busybox applet");
        }
        let tar = self.base.join("busybox.tar");
        let out = run_bounded(
            {
                let mut c = Command::new("tar");
                c.arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".");
                c
            },
            PODMAN_CMD_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("PodmanService: tar busybox rootfs: {e}"));
        check_output("tar -C busybox-rootfs -cf busybox.tar .", out);
        self.podman_direct(&[
            "import",
            "--quiet",
            &tar.display().to_string(),
            BUSYBOX_IMAGE,
        ]);
    }

    fn stop_service_inner(&mut self) -> Result<(), String> {
        let pids = find_service_pids(&self.url);
        if pids.is_empty() {
            self.reap_child(Duration::from_secs(2));
            if ping(&self.socket).is_ok() {
                return Err(format!(
                    "{} answers /_ping but no process with it on its command line was found",
                    self.url
                ));
            }
            return Ok(());
        }
        for &pid in &pids {
            signal(pid, "TERM");
        }
        let deadline = Instant::now() + SERVICE_STOP_TIMEOUT;
        loop {
            self.try_reap_child();
            if pids.iter().all(|&p| pid_gone(p)) {
                break;
            }
            if Instant::now() >= deadline {
                for &pid in &pids {
                    signal(pid, "KILL");
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    self.try_reap_child();
                    if pids.iter().all(|&p| pid_gone(p)) {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Err(format!("service processes {pids:?} survive SIGKILL"));
                    }
                    thread::sleep(Duration::from_millis(50));
                }
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.reap_child(Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(5);
        while ping(&self.socket).is_ok() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} still answers /_ping after the service exited",
                    self.url
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn try_reap_child(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(_)) = c.try_wait() {
                self.child = None;
            }
        }
    }

    /// Wait (bounded) for our spawned child to exit; kill it if it does not.
    fn reap_child(&mut self, timeout: Duration) {
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + timeout;
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => return,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        return;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- PodmanService {} service log (test panicked) ---\n{}",
                self.url,
                tail(&self.service_log(), 200)
            );
        }
        let up = ping(&self.socket).is_ok();
        let mut cleaned = up;
        if up {
            for args in [
                &["pod", "rm", "-af", "-t", "0"][..],
                &["rm", "-af", "-t", "0"][..],
            ] {
                match run_bounded(self.remote_cmd(args), DROP_CMD_TIMEOUT) {
                    Ok(o) if o.status.success() => {}
                    _ => cleaned = false,
                }
            }
        }
        let _ = self.stop_service_inner();
        if !cleaned {
            for args in [
                &["pod", "rm", "-af", "-t", "0"][..],
                &["rm", "-af", "-t", "0"][..],
            ] {
                let _ = run_bounded(self.direct_cmd(args), DROP_CMD_TIMEOUT);
            }
        }
        self.reap_child(Duration::from_secs(2));
        // Leftovers that reference this temp dir: e.g. the conmon of a `podman exec` session
        // lingers with `--exit-delay 300` after its container is gone, and would later run
        // `podman --root $T/root … container cleanup`, re-creating parts of $T.
        kill_procs_mentioning(&self.base);
        unmount_under(&self.base);
        // TempDir removes $T (errors ignored).
        drop(self.dir.take());
    }
}

/// `GET /_ping` over the unix socket with a raw HTTP/1.0 request; Ok if it answers 200 "OK".
fn ping(socket: &Path) -> Result<(), String> {
    let mut s =
        UnixStream::connect(socket).map_err(|e| format!("connect {}: {e}", socket.display()))?;
    let t = Some(Duration::from_secs(2));
    s.set_read_timeout(t).ok();
    s.set_write_timeout(t).ok();
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: d\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let resp = String::from_utf8_lossy(&buf);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status_ok = head
        .lines()
        .next()
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
    if status_ok && body.trim() == "OK" {
        Ok(())
    } else {
        Err(format!("unexpected /_ping answer: {resp:?}"))
    }
}

fn check_prerequisites() {
    match Command::new("podman")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "PodmanService: `podman --version` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "PodmanService: podman is not installed or not on PATH ({e}). Install: apt-get install \
             -y --no-install-recommends podman runc catatonit busybox-static prometheus \
             (see /work/shared/podman/TEST-SERVICE.md)"
        ),
    }
    for (tool, pkg) in [("runc", "runc"), ("tar", "tar")] {
        if Command::new(tool)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .is_err()
        {
            panic!("PodmanService: `{tool}` not found on PATH (apt-get install {pkg})");
        }
    }
}

/// PIDs of `podman … system service … <url>` processes (never clients that use `--url <url>`).
fn find_service_pids(url: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Some(args) = cmdline(pid) else { continue };
        let is_podman = args
            .first()
            .is_some_and(|a| a.rsplit('/').next().unwrap_or(a).contains("podman"));
        let has_url = args.iter().any(|a| a == url);
        let is_service = args.iter().any(|a| a == "service");
        let is_client = args
            .iter()
            .any(|a| a == "--url" || a.starts_with("--url=") || a == "-r" || a == "--remote");
        if is_podman && has_url && is_service && !is_client {
            pids.push(pid);
        }
    }
    pids
}

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Gone = no /proc entry, or a zombie (exited, waiting to be reaped).
fn pid_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            None | Some("Z") | Some("X")
        ),
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGKILL every process (other than us) whose command line mentions `dir`.
fn kill_procs_mentioning(dir: &Path) {
    let needle = format!("{}/", dir.display());
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Some(args) = cmdline(pid) {
            if args.iter().any(|a| a.contains(&needle)) {
                signal(pid, "KILL");
            }
        }
    }
}

/// Lazily unmount anything still mounted below `dir` (e.g. a container's shm), deepest first.
fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut mounts: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(m)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------------
// sealwatch
// ---------------------------------------------------------------------------------------------

/// A running sealwatch binary on a free 127.0.0.1 port, output captured to a log file.
pub struct Sealwatch {
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
    _dir: TempDir,
    agent: ureq::Agent,
}

impl Sealwatch {
    /// Starts `BIN --web.listen-address 127.0.0.1:PORT --log.level debug ARGS…` (pass
    /// `env!("CARGO_BIN_EXE_sealwatch")` as `bin`). Stdout+stderr go to a log file. Waits until
    /// `GET /-/healthy` answers 200; panics after 10 s (or on early exit) with the log.
    ///
    /// Inherited `SEALWATCH_*` and `CONTAINER_HOST` variables are removed from the child's
    /// environment so the host cannot leak configuration in; use [`start_with_env`](Self::start_with_env)
    /// to set some explicitly.
    pub fn start(bin: &str, args: &[&str]) -> Self {
        Self::start_with_env(bin, args, &[])
    }

    /// Like [`start`](Self::start), with extra environment variables for the child
    /// (e.g. `[("SEALWATCH_LABELS_ALLOWLIST", "app")]`).
    pub fn start_with_env(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sealwatch-run-")
            .tempdir()
            .unwrap_or_else(|e| panic!("Sealwatch: cannot create temp dir: {e}"));
        let log_path = dir.path().join("sealwatch.log");
        let agent = http_agent();

        // The port is free when we pick it, but another process could grab it before sealwatch
        // binds: retry with a new port (up to 3 attempts) if it exits with "address in use".
        for attempt in 1..=3 {
            let port = free_port();
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("Sealwatch: open log file");
            if attempt > 1 {
                let _ = writeln!(
                    &log,
                    "=== sealwatch tests: retry {attempt} on port {port} ==="
                );
            }
            let log2 = log.try_clone().expect("Sealwatch: clone log handle");
            let listen = format!("127.0.0.1:{port}");
            let mut cmd = Command::new(bin);
            for (key, _) in std::env::vars_os() {
                let k = key.to_string_lossy();
                if k.starts_with("SEALWATCH_") || k == "CONTAINER_HOST" {
                    cmd.env_remove(&key);
                }
            }
            let mut child = cmd
                .args(["--web.listen-address", &listen, "--log.level", "debug"])
                .args(args)
                .envs(envs.iter().copied())
                .env("NO_COLOR", "1")
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log2))
                .spawn()
                .unwrap_or_else(|e| panic!("Sealwatch: cannot spawn {bin}: {e}"));

            let base = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + SEALWATCH_START_TIMEOUT;
            let mut last: String;
            let exited = loop {
                match http_get(&agent, &format!("{base}/-/healthy")) {
                    Ok((200, _)) => {
                        return Sealwatch {
                            child: Some(child),
                            port,
                            log_path,
                            _dir: dir,
                            agent,
                        };
                    }
                    Ok((status, body)) => last = format!("status {status}: {body}"),
                    Err(e) => last = e,
                }
                if let Ok(Some(status)) = child.try_wait() {
                    break status;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "Sealwatch: {base}/-/healthy did not answer 200 within {:?} (last: \
                         {last})\n--- sealwatch log ---\n{}",
                        SEALWATCH_START_TIMEOUT,
                        read_lossy(&log_path)
                    );
                }
                thread::sleep(Duration::from_millis(50));
            };
            let log = read_lossy(&log_path);
            let lower = log.to_lowercase();
            if attempt < 3
                && (lower.contains("address already in use") || lower.contains("addrinuse"))
            {
                continue;
            }
            panic!(
                "Sealwatch: {bin} exited with {exited} before /-/healthy answered 200 (last: \
                 {last})\n--- sealwatch log ---\n{log}"
            );
        }
        unreachable!("the last attempt always returns or panics")
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the sealwatch process (e.g. to send signals), if still owned.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// GET `path` → (status, body). Non-2xx statuses are returned, not errors; a transport
    /// error (connection refused, timeout) panics with the sealwatch log.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path).unwrap_or_else(|e| {
            panic!(
                "Sealwatch: GET {}{path} failed: {e}\n--- sealwatch log ---\n{}",
                self.base_url(),
                self.log()
            )
        })
    }

    /// Like [`get`](Self::get) but returns transport errors as `Err` (for use in `wait_until`).
    pub fn try_get(&self, path: &str) -> Result<(u16, String), String> {
        http_get(&self.agent, &format!("{}{path}", self.base_url()))
    }

    /// GET + parse the JSON body (panics with status and body if it is not JSON).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("Sealwatch: GET {path} (status {status}) is not JSON: {e}\n--- body ---\n{body}")
        })
    }

    /// Everything sealwatch wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// SIGTERM and wait (≤ `timeout`) for exit; returns the exit status, or panics with the log
    /// if it does not exit in time (the process is then killed).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("Sealwatch: already terminated");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "Sealwatch: did not exit within {timeout:?} after SIGTERM\n--- sealwatch log ---\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sealwatch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if thread::panicking() {
            eprintln!(
                "--- sealwatch log ({}), test panicked ---\n{}",
                self.log_path.display(),
                tail(&self.log(), 300)
            );
        }
    }
}

/// An HTTP client for tests: every status is an answer (not an error), no proxy, 30 s bound.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// GET `url` → (status, body), with any status.
pub fn http_get(agent: &ureq::Agent, url: &str) -> Result<(u16, String), String> {
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .lossy_utf8(true)
        .read_to_string()
        .map_err(|e| format!("GET {url}: reading body: {e}"))?;
    Ok((status, body))
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

// ---------------------------------------------------------------------------------------------
// generic helpers
// ---------------------------------------------------------------------------------------------

/// Poll `f` every 100 ms until it returns `Ok(T)` or `timeout` passes; on timeout panic with
/// `what` and the last `Err` message. `f` is always called at least once.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => {
                if start.elapsed() >= timeout {
                    panic!("timed out after {timeout:?} waiting for {what}; last error: {e}");
                }
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Run a command with piped stdout/stderr, killing it after `timeout`.
/// A timeout is reported as `Err` with whatever output was collected.
fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let desc = format!("{cmd:?}");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot spawn {desc}: {e}"))?;
    let mut out_pipe = child.stdout.take().expect("stdout piped");
    let mut err_pipe = child.stderr.take().expect("stderr piped");
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(s)) => break (s, false),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                break (child.wait().map_err(|e| format!("wait {desc}: {e}"))?, true);
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("wait {desc}: {e}")),
        }
    };
    // A daemonised grandchild could keep the pipes open; don't block on it forever.
    let stdout = join_bounded(out_t, Duration::from_secs(5));
    let stderr = join_bounded(err_t, Duration::from_secs(5));
    if timed_out {
        return Err(format!(
            "timed out after {timeout:?} (killed)\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ));
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn join_bounded(h: thread::JoinHandle<Vec<u8>>, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    while !h.is_finished() {
        if Instant::now() >= deadline {
            return b"<output pipe still held open by another process>".to_vec();
        }
        thread::sleep(Duration::from_millis(10));
    }
    h.join().unwrap_or_default()
}

fn check_output(what: &str, out: Output) -> String {
    if !out.status.success() {
        panic!(
            "`{what}` failed with {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn parse_json_list(text: &str, what: &str) -> serde_json::Value {
    if text.trim().is_empty() {
        return serde_json::Value::Array(Vec::new());
    }
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: output is not JSON: {e}\n{text}"))
}

fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
