//! A wire-level stand-in for Podman's API on a unix socket, for benchmarks at a scale a real
//! service cannot reach quickly: it answers `_ping`, `version` and the container, pod, image,
//! volume and network lists from fixed bodies in Podman 4.3.1's shapes, and the event stream
//! with a fixed body, after which it holds the stream open as an idle Podman does. Never used
//! as the only proof of a behaviour: the tests prove behaviour against a real Podman.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

const VERSION_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/version.json"
));
const INFO_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/info.json"
));

/// What the fake serves.
#[derive(Default)]
pub struct Bodies {
    pub containers: String,
    pub pods: String,
    /// Event lines (NDJSON), sent once on each events request, then the stream is held.
    pub events: Vec<u8>,
}

pub struct FakePodman {
    dir: PathBuf,
    sock: PathBuf,
    bodies: Arc<RwLock<Bodies>>,
}

impl FakePodman {
    pub fn start(bodies: Bodies) -> Self {
        let dir = std::env::temp_dir().join(format!("sealwatch-fake-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fake podman dir");
        let sock = dir.join("podman.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).expect("bind fake podman socket");
        let bodies = Arc::new(RwLock::new(bodies));
        let shared = bodies.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &shared);
                });
            }
        });
        Self { dir, sock, bodies }
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.sock.display())
    }
}

impl Drop for FakePodman {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const HEAD: &str = "Api-Version: 1.41\r\nContent-Type: application/json\r\nLibpod-Api-Version: 4.3.1\r\nServer: Libpod/4.3.1 (linux)\r\n";

fn serve(conn: UnixStream, bodies: &RwLock<Bodies>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" {
                break;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let path = path.split('?').next().unwrap_or("/");
        let b = bodies.read().unwrap_or_else(|p| p.into_inner());
        let body: &str = if path.ends_with("/_ping") {
            "OK"
        } else if path.ends_with("/version") {
            VERSION_JSON
        } else if path.ends_with("/info") {
            INFO_JSON
        } else if path.ends_with("/containers/json") {
            &b.containers
        } else if path.ends_with("/pods/json") {
            &b.pods
        } else if path.ends_with("/images/json")
            || path.ends_with("/volumes/json")
            || path.ends_with("/networks/json")
        {
            "[]"
        } else if path.ends_with("/events") {
            write!(
                out,
                "HTTP/1.1 200 OK\r\n{HEAD}Transfer-Encoding: chunked\r\n\r\n"
            )?;
            for chunk in b.events.chunks(64 * 1024) {
                write!(out, "{:x}\r\n", chunk.len())?;
                out.write_all(chunk)?;
                out.write_all(b"\r\n")?;
            }
            out.flush()?;
            drop(b);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        } else {
            let body = "{\"cause\":\"no such path\",\"message\":\"not found\",\"response\":404}";
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\n{HEAD}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            continue;
        };
        write!(
            out,
            "HTTP/1.1 200 OK\r\n{HEAD}Content-Length: {}\r\n\r\n",
            body.len()
        )?;
        out.write_all(body.as_bytes())?;
        out.flush()?;
    }
}
