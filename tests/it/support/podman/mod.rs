//! A private, isolated Podman API service per test (see ../shared/podman/TEST-SERVICE.md and
//! scripts/PODMAN-HARNESS.md): the host's 4.3.1 or 5.4.2 / 6.1.1 from a cached Debian root, with
//! the file or journald event backend ([`Engine`]); its own storage, containers.conf, socket and
//! busybox image, driven through its socket as users drive it, or directly on its storage while
//! the service is down. Never touches the host's default storage or socket.

mod engine;
mod service;

pub use engine::{journal_lock, Engine, Events, Version};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use service::ping;

use super::process::{check_output, kill_procs_mentioning, read_lossy, run_bounded, tail};
use super::run::Run;

/// How long a single podman CLI call may take before it is killed and reported.
const PODMAN_CMD_TIMEOUT: Duration = Duration::from_secs(120);
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

/// A private Podman API service on `unix://$T/podman.sock` with its own storage
/// (`--root $T/root --runroot $T/run --storage-driver vfs`) and `CONTAINERS_CONF=$T/containers.conf`.
pub struct PodmanService {
    engine: Engine,
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
    /// waits for `GET /_ping` == `OK`. Podman 4.3.1, file events. Panics (never skips) if
    /// podman is missing or fails.
    pub fn start() -> Self {
        Self::start_with(Engine::DEFAULT)
    }

    /// The same with the given Podman version and event backend.
    pub fn start_with(engine: Engine) -> Self {
        Self::start_configured(engine, "")
    }

    /// The same with `engine_extra` (TOML lines) added under `[engine]` of containers.conf.
    pub fn start_configured(engine: Engine, engine_extra: &str) -> Self {
        engine.prepare();

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
        // Networks live in files outside the storage (`/etc/cni/net.d` for 4.3's CNI,
        // `/etc/containers/networks` for netavark): keep this service's own.
        let networks = base.join("networks");
        fs::create_dir_all(&networks).expect("PodmanService: create $T/networks");
        let conf_text = format!(
            "[containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             {}\
             [engine]\n\
             runtime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"{}\"\n\
             tmp_dir = \"{}\"\n\
             {engine_extra}\n\
             [network]\n\
             network_config_dir = \"{}\"\n",
            engine.containers_section_extra(),
            engine.logger(),
            toml_escape(&tmp.display().to_string()),
            toml_escape(&networks.display().to_string())
        );
        fs::write(&conf, conf_text).expect("PodmanService: write containers.conf");

        let mut svc = PodmanService {
            engine,
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

    /// The Podman version and event backend of this service.
    pub fn engine(&self) -> Engine {
        self.engine
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
    fn service_log(&self) -> String {
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
            Via::Service => {
                let mut out = self.try_podman(args);
                if runc_init_flake(args, &out) {
                    eprintln!(
                        "=== sealwatch tests: runc lost a container's init on `{}`; once more ===",
                        joined(args)
                    );
                    thread::sleep(Duration::from_secs(1));
                    out = self.try_podman(args);
                }
                check_output(&format!("podman --url {} {}", self.url, joined(args)), out)
            }
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

    /// `podman --url <url> ARGS` through the service, left running with its stdout into the
    /// file `out` (e.g. `events`); the caller ends it. Panics when it cannot be started.
    pub fn spawn_podman<S: AsRef<str>>(&self, args: &[S], out: &Path) -> Child {
        let file = fs::File::create(out)
            .unwrap_or_else(|e| panic!("PodmanService: create {}: {e}", out.display()));
        self.remote_cmd(args)
            .stdout(Stdio::from(file))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("podman --url {} {}: {e}", self.url, joined(args)))
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

    /// `podman`, for this engine's version, with `$T` visible to it.
    fn podman_cmd(&self) -> Command {
        self.engine.podman_cmd(&self.base)
    }

    fn remote_cmd<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut cmd = self.podman_cmd();
        cmd.arg("--url")
            .arg(&self.url)
            .args(args.iter().map(AsRef::as_ref))
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null());
        cmd
    }

    fn direct_cmd<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut cmd = self.podman_cmd();
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
        self.engine.unbind(&self.base);
        // TempDir removes $T (errors ignored).
        drop(self.dir.take());
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

/// runc's "read init-p: connection reset by peer": the container's init process died before
/// runc finished setting it up, seen once on a loaded machine. Podman's fault, not sealwatch's;
/// a `start` (of a container or pod) may be repeated then: the events of the failed attempt are
/// real events on both sides of every comparison, and a second failure still fails the test.
fn runc_init_flake<S: AsRef<str>>(args: &[S], out: &Output) -> bool {
    let words: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let start = matches!(words.as_slice(), ["start", ..] | ["pod", "start", ..]);
    start
        && !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("read init-p: connection reset by peer")
}
