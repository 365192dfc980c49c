//! Hostile HTTP clients on loopback: half-sent request heads, clients that never read, floods
//! of idle connections past the descriptor limit, scrape storms and JSON-API load. sealwatch
//! must keep serving, keep its watcher alive, and still stop within seconds of SIGTERM.
//!
//! The Podman here is the scripted one: these tests are about the HTTP side and need thousands
//! of containers, which the real service cannot create in a test's time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::process::raw_get;
use crate::support::scripted::ScriptedPodman;
use crate::support::{wait_until, Sealwatch};

/// A 64-hex ID.
fn id(n: usize) -> String {
    format!("{n:064x}")
}

/// A scripted Podman listing `n` running containers, each with a few labels.
fn podman_with(n: usize) -> ScriptedPodman {
    let podman = ScriptedPodman::start(vec![]);
    let list: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "Id": id(i + 1), "Names": [format!("container-with-a-long-name-{i}")],
                "Image": "localhost/busybox:latest", "State": "running", "Status": "",
                "Pid": 10_000 + i, "Pod": "", "PodName": "", "IsInfra": false,
                "Labels": {"io.podman.compose.project": format!("project-{}", i % 50)},
                "Created": "2026-10-02T07:06:40Z", "StartedAt": 1_790_000_000,
                "ExitedAt": -62_135_596_800i64, "ExitCode": 0
            })
        })
        .collect();
    podman.set_lists(&serde_json::Value::Array(list).to_string(), "[]");
    podman
}

/// Starts sealwatch on `podman` (no resource families: there are no real cgroups) and waits
/// until it is ready.
fn start(podman: &ScriptedPodman, extra: &[&str]) -> Sealwatch {
    let url = format!("e={}", podman.url());
    let mut args = vec!["--podman.url", url.as_str(), "--stats.source", "off"];
    args.extend_from_slice(extra);
    let sw = Sealwatch::start(&args);
    sw.wait_ready(200, Duration::from_secs(30));
    sw
}

/// A connection that sent part of a request head and then nothing.
fn half_head(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    s
}

/// A `/metrics` request whose client never reads the answer, with a small receive buffer so
/// that a large body stays stuck in the server's socket.
fn non_reader(port: u16) -> socket2::Socket {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    s.connect(&addr.into()).unwrap();
    let mut w: &socket2::Socket = &s;
    w.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n")
        .unwrap();
    s
}

/// One client that stopped halfway through its request head and one `/metrics` client that
/// never reads a multi-megabyte body do not keep SIGTERM from ending the process within 10 s.
#[test]
fn sigterm_ends_the_process_whatever_the_clients_do() {
    let podman = podman_with(10_000);
    let mut sw = start(&podman, &[]);
    let body = sw.scrape_text("/metrics");
    assert!(
        body.len() > 1 << 20,
        "a body larger than socket buffers: {} bytes",
        body.len()
    );
    let _half = half_head(sw.port());
    let _stuck = non_reader(sw.port());
    // Let the server start writing into the non-reader's full socket.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let status = sw.terminate(Duration::from_secs(10));
    println!("exited {status:?} {:?} after SIGTERM", started.elapsed());
    assert!(status.success(), "{status:?}\n{}", sw.log());
}

/// With `--web.max-requests 1`, a scrape held by a client that does not read makes the next
/// one answer 503 with a JSON error naming the flag; `/-/healthy` is not limited.
#[test]
fn max_requests_answers_503_beyond_the_limit() {
    let podman = podman_with(10_000);
    let sw = start(&podman, &["--web.max-requests", "1"]);
    // The stuck client must hold the one slot: if our own scrape below got there first, the
    // stuck one was answered 503 and holds nothing. Open it again until its answer is a 200.
    let _stuck = wait_until(
        "a non-reading scrape answered 200",
        Duration::from_secs(30),
        || {
            let s = non_reader(sw.port());
            let mut head = [0u8; 12];
            let mut r: &socket2::Socket = &s;
            std::io::Read::read_exact(&mut r, &mut head).map_err(|e| e.to_string())?;
            if head.ends_with(b" 200") {
                Ok(s)
            } else {
                Err(format!("answered {:?}", String::from_utf8_lossy(&head)))
            }
        },
    );
    let reply = wait_until(
        "a 503 for the second scrape",
        Duration::from_secs(10),
        || {
            let r = raw_get(sw.port(), "/metrics", &[])?;
            if r.status == 503 {
                Ok(r)
            } else {
                Err(format!("status {}", r.status))
            }
        },
    );
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("--web.max-requests"),
        "{v}"
    );
    assert_eq!(sw.get("/-/healthy"), (200, "OK".to_owned()));
}

/// Raises this test process's own soft open-files limit to its hard limit, so that it can hold
/// more connections than sealwatch may.
fn raise_own_nofile() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    l.rlim_cur
}

/// 1,100 connections that send half a request head, against a sealwatch limited to 1,024
/// descriptors: the connection cap stays below the limit (the longest-idle connections are
/// closed to make room), so a scrape and `/-/ready` still answer and the watcher never runs out
/// of descriptors.
#[test]
fn a_flood_of_idle_connections_past_the_descriptor_limit_does_not_starve_scrapes() {
    assert!(
        raise_own_nofile() > 1_300,
        "this test needs 1,300 descriptors"
    );
    let podman = podman_with(10);
    let url = format!("e={}", podman.url());
    let sw = Sealwatch::start_with_nofile(&["--podman.url", &url, "--stats.source", "off"], 1_024);
    sw.wait_ready(200, Duration::from_secs(30));
    let mut flood = Vec::new();
    for i in 0..1_100 {
        match TcpStream::connect(("127.0.0.1", sw.port())) {
            Ok(mut s) => {
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n");
                flood.push(s);
            }
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    // Every request below opens a new connection, which evicts an idle one from the flood.
    let m = sw.scrape();
    assert_eq!(m.value("podman_up", &[("engine", "e")]), 1.0);
    sw.wait_ready(200, Duration::from_secs(10));
    // The watcher can still open connections to Podman: a resync after this works.
    let log = sw.log();
    assert!(!log.contains("Too many open files"), "{log}");
    // The flood is closed by the server, not by this test.
    let mut closed = 0;
    for s in flood.iter_mut().take(200) {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 1];
        if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert!(closed > 0, "some flood connections were closed");
}

/// A connection that sends nothing is closed by the server after the request-head timeout.
#[test]
fn a_silent_connection_is_closed_after_the_head_timeout() {
    let podman = podman_with(1);
    let sw = start(&podman, &[]);
    let mut s = half_head(sw.port());
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = started.elapsed();
    println!(
        "closed after {waited:?}: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(
        waited < Duration::from_secs(25),
        "the server closed the connection (after {waited:?}), not the test's read timeout"
    );
}

/// `/-/healthy` keeps answering while four clients loop on `/containers` at 20,000 containers
/// (the JSON is built off the async workers). Prints the health latencies; asserts only that
/// every answer came.
#[test]
fn health_answers_while_the_json_api_is_loaded() {
    let podman = podman_with(20_000);
    let sw = start(&podman, &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = (0..4)
        .map(|_| {
            let base = sw.base_url();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent = crate::support::process::http_agent();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 200 {
                    let (status, _) = crate::support::process::http_get(
                        &agent,
                        &format!("{base}/containers?all=true"),
                    )
                    .unwrap();
                    assert_eq!(status, 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut times = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        assert_eq!(sw.get("/-/healthy"), (200, "OK".to_owned()));
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let loads: Vec<usize> = loaders.into_iter().map(|h| h.join().unwrap()).collect();
    times.sort();
    println!(
        "/-/healthy under /containers load ({loads:?} lists): p50 {:?} p99 {:?}",
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
}
