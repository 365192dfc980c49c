//! The `podman system service` process of a [`PodmanService`]: started on its socket, found by
//! its command line (it re-executes itself, so the PID we spawned is not the one serving) and
//! stopped by signal, never by a broad name: other Podman services may run on this machine.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use super::PodmanService;
use crate::support::process::{cmdline, other_pids, pid_gone, signal};

/// How long to wait for `GET /_ping` after starting the service.
const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the serving process to exit after SIGTERM (before SIGKILL).
const SERVICE_STOP_TIMEOUT: Duration = Duration::from_secs(15);

impl PodmanService {
    /// The PIDs of the serving process (found by its socket URL), e.g. to read its CPU time.
    pub fn service_pids(&self) -> Vec<u32> {
        find_service_pids(&self.url)
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

    /// `GET path` on the service's socket (HTTP/1.0, so never chunked); the body of a 200.
    pub fn api_get(&self, path: &str) -> String {
        let mut s = UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket.display()));
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        write!(s, "GET {path} HTTP/1.0\r\nHost: d\r\n\r\n").expect("write request");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read response");
        let resp = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        assert!(
            head.lines()
                .next()
                .is_some_and(|l| l.split_whitespace().nth(1) == Some("200")),
            "GET {path}: {head}\n{body}"
        );
        body.to_owned()
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

        let mut cmd = self.podman_cmd();
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

    pub(super) fn stop_service_inner(&mut self) -> Result<(), String> {
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
    pub(super) fn reap_child(&mut self, timeout: Duration) {
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

/// `GET /_ping` over the unix socket with a raw HTTP/1.0 request; Ok if it answers 200 "OK".
pub(super) fn ping(socket: &Path) -> Result<(), String> {
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
