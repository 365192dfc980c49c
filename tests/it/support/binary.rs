//! The sealwatch binary under test: started on a free loopback port with its output in a log
//! file, asked over HTTP, stopped with SIGTERM; and single runs of the binary for the command
//! line. Only the binary is used, never the library.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::exposition::Exposition;
use super::process::{
    free_port, http_agent, http_get, raw_get, read_lossy, signal, tail, wait_until,
};

/// The binary cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_sealwatch");

/// How long sealwatch may take to answer `/-/healthy`.
const SEALWATCH_START_TIMEOUT: Duration = Duration::from_secs(10);

/// `sealwatch` with no `SEALWATCH_*` or `CONTAINER_HOST` inherited from the host (so the host
/// cannot leak configuration in), stdin closed.
pub fn command() -> Command {
    clean(BIN)
}

/// `program` with no `SEALWATCH_*` or `CONTAINER_HOST` inherited, stdin closed.
fn clean(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("SEALWATCH_") || k == "CONTAINER_HOST" {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `sealwatch ARGS` to completion (see [`command`]) and returns what it did.
pub fn run_once(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

/// A running sealwatch binary on a free 127.0.0.1 port, output captured to a log file.
pub struct Sealwatch {
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
    _dir: TempDir,
    agent: ureq::Agent,
}

impl Sealwatch {
    /// Starts `sealwatch --web.listen-address 127.0.0.1:PORT --log.level debug ARGS…`.
    /// Stdout+stderr go to a log file. Waits until `GET /-/healthy` answers 200; panics after
    /// 10 s (or on early exit) with the log.
    ///
    /// Inherited `SEALWATCH_*` and `CONTAINER_HOST` variables are removed from the child's
    /// environment (see [`command`]); use [`start_with_env`](Self::start_with_env) to set some
    /// explicitly.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// Like [`start`](Self::start), with extra environment variables for the child
    /// (e.g. `[("SEALWATCH_LABELS_ALLOWLIST", "app")]`).
    pub fn start_with_env(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::launch(&[], args, envs, None)
    }

    /// Like [`start_with_env`](Self::start_with_env), run through `wrapper` (a command that
    /// runs the rest of its arguments, e.g. `unshare --pid --fork --kill-child --mount-proc`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::launch(wrapper, args, envs, None)
    }

    /// Like [`start`](Self::start), with the open-files limit (soft and hard) of the process set
    /// to `nofile` before it starts, as `ulimit -n` would.
    pub fn start_with_nofile(args: &[&str], nofile: u64) -> Self {
        Self::launch(&[], args, &[], Some(nofile))
    }

    fn launch(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)], nofile: Option<u64>) -> Self {
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
            let mut cmd = match wrapper.split_first() {
                None => command(),
                Some((program, rest)) => {
                    let mut cmd = clean(program);
                    cmd.args(rest).arg(BIN);
                    cmd
                }
            };
            if let Some(n) = nofile {
                use std::os::unix::process::CommandExt;
                // SAFETY: setrlimit is async-signal-safe and touches only the child.
                unsafe {
                    cmd.pre_exec(move || {
                        let limit = libc::rlimit {
                            rlim_cur: n,
                            rlim_max: n,
                        };
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            let mut child = cmd
                .args(["--web.listen-address", &listen, "--log.level", "debug"])
                .args(args)
                .envs(envs.iter().copied())
                .env("NO_COLOR", "1")
                .env("RUST_BACKTRACE", "1")
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log2))
                .spawn()
                .unwrap_or_else(|e| panic!("Sealwatch: cannot spawn {BIN}: {e}"));

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
                "Sealwatch: {BIN} exited with {exited} before /-/healthy answered 200 (last: \
                 {last})\n--- sealwatch log ---\n{log}"
            );
        }
        unreachable!("the last attempt always returns or panics")
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id, for /proc/PID/status.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn port(&self) -> u16 {
        self.port
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

    /// Polls `/-/ready` until it answers `status` (200 ready, 503 not); returns its JSON body.
    pub fn wait_ready(&self, status: u16, timeout: Duration) -> serde_json::Value {
        wait_until(&format!("/-/ready answers {status}"), timeout, || {
            let (got, body) = self.try_get("/-/ready")?;
            if got == status {
                serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
            } else {
                Err(format!("{got}: {body}"))
            }
        })
    }

    /// Everything sealwatch wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// GET `path` as 0.0.4 text over a raw socket (no transparent decompression), checking
    /// status 200, the 0.0.4 Content-Type and that nothing was compressed; returns the body.
    pub fn scrape_text(&self, path: &str) -> String {
        let r = raw_get(self.port, path, &[("Accept", "text/plain")])
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n--- sealwatch log ---\n{}", self.log()));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert_eq!(r.header("content-encoding"), None, "gzip was not asked for");
        r.text()
    }

    /// [`scrape_text`](Self::scrape_text) of `path`, parsed strictly.
    pub fn scrape_path(&self, path: &str) -> Exposition {
        Exposition::parse_or_panic(&self.scrape_text(path))
    }

    /// `/metrics`, parsed strictly.
    pub fn scrape(&self) -> Exposition {
        self.scrape_path("/metrics")
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
