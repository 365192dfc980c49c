//! A private, isolated Podman 4.x API service per test (see
//! /work/shared/podman/TEST-SERVICE.md): its own storage, containers.conf, socket and busybox
//! image, driven through its socket as users drive it, or directly on its storage while the
//! service is down. Never touches the host's default storage or socket.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{
    check_output, cmdline, kill_procs_mentioning, other_pids, pid_gone, read_lossy, run_bounded,
    signal, tail,
};
use super::run::Run;

/// How long a single podman CLI call may take before it is killed and reported.
const PODMAN_CMD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for `GET /_ping` after starting the service.
const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the serving process to exit after SIGTERM (before SIGKILL).
const SERVICE_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound for each clean-up command run from `Drop`.
const DROP_CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// The workload image every private service has: busybox-static imported from the host.
pub const BUSYBOX_IMAGE: &str = "localhost/busybox:latest";

/// How a podman CLI call reaches the private storage.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// `podman --url unix://$T/podman.sock …`, through the API service, as users do.
    Service,
    /// `podman --root … --runroot … …` on the storage itself: works while the service is down.
    Storage,
}

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
    pub fn podman<S: AsRef<str>>(&self, args: &[S]) -> String {
        self.podman_via(Via::Service, args)
    }

    /// Same as [`podman`](Self::podman) but returns the `Output` without panicking (a command
    /// that exceeds the timeout is killed and reported as a failed `Output`).
    pub fn try_podman<S: AsRef<str>>(&self, args: &[S]) -> Output {
        run_bounded(self.remote_cmd(args), PODMAN_CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("podman --url {} {}: {e}", self.url, joined(args)))
    }

    /// `podman --root … --runroot … --storage-driver vfs ARGS` directly on the same storage
    /// (no service). Panics on failure; returns trimmed stdout.
    pub fn podman_direct<S: AsRef<str>>(&self, args: &[S]) -> String {
        self.podman_via(Via::Storage, args)
    }

    /// `podman ARGS` through the service or on the storage; panics on failure; returns trimmed
    /// stdout.
    pub fn podman_via<S: AsRef<str>>(&self, via: Via, args: &[S]) -> String {
        match via {
            Via::Service => check_output(
                &format!("podman --url {} {}", self.url, joined(args)),
                self.try_podman(args),
            ),
            Via::Storage => {
                let out = run_bounded(self.direct_cmd(args), PODMAN_CMD_TIMEOUT)
                    .unwrap_or_else(|e| panic!("podman (direct) {}: {e}", joined(args)));
                check_output(
                    &format!("podman --root {} … {}", self.root.display(), joined(args)),
                    out,
                )
            }
        }
    }

    /// `podman run …` / `podman create …` as `run` describes it, through the service; returns
    /// the container ID.
    pub fn run(&self, run: &Run) -> String {
        self.podman(&run.args())
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

    fn remote_cmd<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--url")
            .arg(&self.url)
            .args(args.iter().map(AsRef::as_ref))
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null());
        cmd
    }

    fn direct_cmd<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.args(self.storage_args())
            .args(args.iter().map(AsRef::as_ref))
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
    let mut pids = Vec::new();
    for pid in other_pids() {
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

fn joined<S: AsRef<str>>(args: &[S]) -> String {
    args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ")
}

fn parse_json_list(text: &str, what: &str) -> serde_json::Value {
    if text.trim().is_empty() {
        return serde_json::Value::Array(Vec::new());
    }
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: output is not JSON: {e}\n{text}"))
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
