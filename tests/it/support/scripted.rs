//! A scripted Podman API service on a unix socket that speaks Podman 4.3.1's exact wire format:
//! for fault injection (garbage lines, error objects, cut streams, oversized lines) and scale,
//! never as the only proof of a behaviour (that is what the real service in `podman.rs` is for).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One step of an event-stream response.
#[derive(Debug, Clone)]
pub enum Step {
    /// Bytes sent as one HTTP chunk.
    Chunk(Vec<u8>),
    /// End the body properly (terminating chunk) and close.
    End,
    /// Close the connection mid-body, as a Podman restart does.
    Cut,
    /// Keep the stream open and silent until the server is dropped.
    Hold,
    /// These bytes as chunks again and again, until the client goes away (or `ENDLESS_BOUND`
    /// bytes were sent): an endless line or body.
    Endless(Vec<u8>),
    /// Wait (sending nothing) until the test sets this flag, then go on: a burst at a moment the
    /// test chooses.
    Gate(Arc<std::sync::atomic::AtomicBool>),
}

/// How much an "endless" body sends at most, so every loop in a test is bounded.
pub const ENDLESS_BOUND: usize = 4 << 30;

#[derive(Debug, Default)]
struct Script {
    containers_json: String,
    pods_json: String,
    /// One entry per `/events` request, in order; when empty, further streams hold.
    sessions: VecDeque<Vec<Step>>,
    /// The path and query of every `/events` request received.
    event_requests: Vec<String>,
    /// Answers for paths containing a key, taking precedence over the usual ones.
    overrides: Vec<(String, Answer)>,
}

/// A hostile or failing answer for some path.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with a chunked body that repeats these bytes forever (see `Step::Endless`).
    Endless(Vec<u8>),
    /// This status with this body (`Content-Length` set).
    Status(u16, String),
}

pub struct ScriptedPodman {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    script: Arc<Mutex<Script>>,
}

const VERSION_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/version.json"
));

impl ScriptedPodman {
    /// Starts serving with empty lists and the given event-stream sessions.
    pub fn start(sessions: Vec<Vec<Step>>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("podman.sock");
        let listener = UnixListener::bind(&sock).expect("bind scripted socket");
        let script = Arc::new(Mutex::new(Script {
            containers_json: "[]".into(),
            pods_json: "[]".into(),
            sessions: sessions.into(),
            event_requests: vec![],
            overrides: vec![],
        }));
        let shared = script.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &shared);
                });
            }
        });
        Self {
            _dir: dir,
            sock,
            script,
        }
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn set_lists(&self, containers_json: &str, pods_json: &str) {
        let mut s = self.script.lock().unwrap();
        s.containers_json = containers_json.into();
        s.pods_json = pods_json.into();
    }

    /// Answers every request whose path contains `path_part` with `answer` from now on.
    pub fn answer(&self, path_part: &str, answer: Answer) {
        let mut s = self.script.lock().unwrap();
        s.overrides.push((path_part.into(), answer));
    }

    pub fn event_requests(&self) -> Vec<String> {
        self.script.lock().unwrap().event_requests.clone()
    }
}

fn serve(conn: UnixStream, script: &Mutex<Script>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let mut out = conn;
    let json = |out: &mut UnixStream, body: &str| -> std::io::Result<()> {
        write!(
            out,
            "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nLibpod-Api-Version: 4.3.1\r\nServer: Libpod/4.3.1 (linux)\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            body
        )
    };
    let answer = {
        let s = script.lock().unwrap();
        s.overrides
            .iter()
            .find(|(part, _)| path.contains(part.as_str()))
            .map(|(_, a)| a.clone())
    };
    match answer {
        Some(Answer::Endless(bytes)) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLibpod-Api-Version: 4.3.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            )?;
            return endless(&mut out, &bytes);
        }
        Some(Answer::Status(status, body)) => {
            return write!(
                out,
                "HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\nLibpod-Api-Version: 4.3.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                body
            );
        }
        None => {}
    }
    if path.contains("/libpod/version") {
        return json(&mut out, VERSION_JSON);
    }
    if path.contains("/libpod/containers/json") {
        let body = script.lock().unwrap().containers_json.clone();
        return json(&mut out, &body);
    }
    if path.contains("/libpod/pods/json") {
        let body = script.lock().unwrap().pods_json.clone();
        return json(&mut out, &body);
    }
    if path.contains("/libpod/events") {
        let steps = {
            let mut s = script.lock().unwrap();
            s.event_requests.push(path.clone());
            s.sessions.pop_front().unwrap_or_else(|| vec![Step::Hold])
        };
        write!(
            out,
            "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nLibpod-Api-Version: 4.3.1\r\nServer: Libpod/4.3.1 (linux)\r\nTransfer-Encoding: chunked\r\n\r\n"
        )?;
        out.flush()?;
        for step in steps {
            match step {
                Step::Chunk(bytes) => {
                    write!(out, "{:x}\r\n", bytes.len())?;
                    out.write_all(&bytes)?;
                    out.write_all(b"\r\n")?;
                    out.flush()?;
                }
                Step::End => {
                    out.write_all(b"0\r\n\r\n")?;
                    return Ok(());
                }
                Step::Cut => return Ok(()),
                Step::Hold => loop {
                    std::thread::sleep(Duration::from_secs(3600));
                },
                Step::Endless(bytes) => return endless(&mut out, &bytes),
                Step::Gate(open) => {
                    while !open.load(std::sync::atomic::Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
        return Ok(());
    }
    let body = "Not Found\n";
    write!(
        out,
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        body
    )
}

/// Writes `bytes` as chunks (joined to about 64 KiB each) until the peer goes away or
/// `ENDLESS_BOUND` bytes were sent.
fn endless(out: &mut UnixStream, bytes: &[u8]) -> std::io::Result<()> {
    let chunk: Vec<u8> = bytes
        .iter()
        .copied()
        .cycle()
        .take(bytes.len().max(64 << 10))
        .collect();
    let mut sent = 0;
    while sent < ENDLESS_BOUND {
        write!(out, "{:x}\r\n", chunk.len())?;
        out.write_all(&chunk)?;
        out.write_all(b"\r\n")?;
        sent += chunk.len();
    }
    Ok(())
}

/// A container event line in Podman 4.3.1's exact shape.
pub fn container_event(
    action: &str,
    id: &str,
    name: &str,
    time_nano: i64,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut attrs = serde_json::Map::new();
    attrs.insert("containerExitCode".into(), "0".into());
    attrs.insert("image".into(), "localhost/busybox:latest".into());
    attrs.insert("name".into(), name.into());
    attrs.insert("podId".into(), "".into());
    for (k, v) in extra {
        attrs.insert((*k).into(), (*v).into());
    }
    let ev = serde_json::json!({
        "status": action, "id": id, "from": "localhost/busybox:latest",
        "Type": "container", "Action": action,
        "Actor": {"ID": id, "Attributes": attrs},
        "scope": "local", "time": time_nano / 1_000_000_000, "timeNano": time_nano
    });
    let mut line = serde_json::to_vec(&ev).unwrap();
    line.push(b'\n');
    line
}
