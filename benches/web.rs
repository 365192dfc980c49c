//! The HTTP server under load, in-process on loopback: peak and settled RSS of a storm of 200
//! concurrent `/metrics` scrapes at 10,000 containers, and `/-/healthy` latency while four
//! clients loop on `/containers` at 50,000 containers, and what one load of the live page `/`
//! costs beside one `/containers?all=true` at 1,000 to 50,000 containers. Prints numbers;
//! asserts nothing (`cargo bench --bench web`).
//!
//! The inventory is built through the library API from synthetic lists, as a resync builds it;
//! the server is the library's router and `serve`, as the binary wires them. RSS is read from
//! `/proc/self/status` (the peak after resetting it through `/proc/self/clear_refs`), so it
//! includes the inventory itself: the idle line is the baseline.

// A benchmark stops on the first broken fixture; a panic says which.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use sealwatch::{
    register_instruments, Allowlist, EngineStatus, Engines, Inventory, LabelPolicy, ListContainer,
    Metrics, ServeLimits,
};

const ALLOWLIST: &str = "io.podman.compose.project,com.docker.compose.service,app";

fn inventory(containers: usize) -> Inventory {
    let mut inv = Inventory::new(LabelPolicy::new(Allowlist::parse(ALLOWLIST), 500));
    let cs: Vec<ListContainer> = (0..containers)
        .map(|i| {
            serde_json::from_value(json!({
                "Id": format!("{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15 + 1),
                "Names": [format!("project{}-service{}-{i}", i % 50, i % 200)],
                "Image": format!("registry.example.com/team/image{}:v{}", i % 30, i % 7),
                "State": if i % 10 == 0 { "exited" } else { "running" },
                "Status": "", "Pid": 2000 + i, "Pod": "", "PodName": "", "IsInfra": false,
                "Labels": {
                    "io.podman.compose.project": format!("project{}", i % 50),
                    "com.docker.compose.service": format!("service{}", i % 200),
                    "app": format!("app{}", i % 20),
                    "maintainer": "someone@example.com",
                },
                "Created": "2026-11-29T18:00:00Z", "StartedAt": 1_795_000_100 + i as i64,
                "ExitedAt": -62_135_596_800i64, "ExitCode": 0
            }))
            .unwrap()
        })
        .collect();
    inv.resync(cs, vec![], i64::MIN);
    inv
}

/// The `/metrics` handler as it was before renders were shared (one render and one body per
/// request), for the "before" line of the storm.
async fn unshared_scrape(
    axum::extract::State(metrics): axum::extract::State<std::sync::Arc<Metrics>>,
) -> Vec<u8> {
    tokio::task::spawn_blocking(move || metrics.render(false).unwrap().into_bytes())
        .await
        .unwrap()
}

/// Serves `containers` synthetic containers on a loopback port; returns the port and the
/// runtime (dropping it stops the server). It also serves `/unshared`.
fn server(containers: usize, max_requests: usize) -> (u16, tokio::runtime::Runtime) {
    let inv = inventory(containers);
    let (registry, _instruments) = register_instruments(&["podman"]);
    let (engines, publishers) = Engines::new(vec![(
        "podman".into(),
        "unix:///run/podman/podman.sock".into(),
        inv.clone(),
    )]);
    publishers[0].publish(
        &EngineStatus {
            connected: true,
            synced: true,
            ..EngineStatus::default()
        },
        &inv,
    );
    drop(inv);
    let metrics = Metrics::new(engines.clone(), registry);
    let (unshared_registry, _) = register_instruments(&["podman"]);
    let unshared = std::sync::Arc::new(Metrics::new(engines.clone(), unshared_registry));
    let app = sealwatch::router(
        engines,
        metrics,
        "/metrics",
        None,
        max_requests,
        sealwatch::Feed::new(1, 1, Default::default()),
    )
    .merge(
        axum::Router::new()
            .route("/unshared", axum::routing::get(unshared_scrape))
            .with_state(unshared),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(sealwatch::serve(
        listener,
        app,
        None,
        CancellationToken::new(),
        ServeLimits {
            max_connections: 4096,
        },
    ));
    // Keep the publishers alive with the server.
    std::mem::forget(publishers);
    (port, rt)
}

/// GET `path` with `Connection: close`; returns the status and the body length.
fn get(port: u16, path: &str, extra: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    // Read into one small buffer and count: the clients run in this process, and keeping their
    // bodies would count them in the server's RSS.
    let mut buf = [0u8; 16 * 1024];
    let mut head = Vec::new();
    let mut len = 0;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if head.len() < 12 {
            head.extend_from_slice(&buf[..n.min(12)]);
        }
        len += n;
    }
    let status = std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap();
    (status, len)
}

/// (current RSS, peak RSS since the last reset), in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn storm(containers: usize, clients: usize, max_requests: usize, gzip: bool, path: &'static str) {
    let (port, rt) = server(containers, max_requests);
    let extra = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        "Accept: text/plain\r\n"
    };
    let (_, body) = get(port, path, extra);
    std::thread::sleep(Duration::from_millis(300));
    let (idle, _) = rss();
    reset_peak();
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| std::thread::spawn(move || get(port, path, extra).0))
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let took = started.elapsed();
    let (_, peak) = rss();
    std::thread::sleep(Duration::from_secs(1));
    let (after, _) = rss();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    println!(
        "{path}: {containers:>6} containers, {clients} concurrent scrapes, max-requests {max_requests:>2}, \
         {}: body {:.1} MiB; RSS idle {idle:.0} MiB, peak {peak:.0} MiB, 1 s after {after:.0} MiB; \
         {ok} answered 200, {} 503; {took:.2?}",
        if gzip { "gzip" } else { "text" },
        body as f64 / (1 << 20) as f64,
        statuses.iter().filter(|s| **s == 503).count(),
    );
    drop(rt);
}

fn health_under_api_load(containers: usize, loaders: usize) {
    let (port, rt) = server(containers, 40);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles: Vec<_> = (0..loaders)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert_eq!(get(port, "/containers?all=true", "").0, 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut times = Vec::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let t = Instant::now();
        assert_eq!(get(port, "/-/healthy", "").0, 200);
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lists: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "{containers} containers, {loaders} clients looping on /containers ({lists} lists in 8 s): \
         /-/healthy p50 {:.2?}, p99 {:.2?}, max {:.2?} over {} requests",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        times.len()
    );
    drop(rt);
}

/// One GET of the live page `/` (server-rendered tables) beside one `/containers?all=true` (what
/// the page's script re-reads after events): body size and the median of 5 timed requests.
fn page_cost() {
    for containers in [1_000, 10_000, 50_000] {
        let (port, rt) = server(containers, 40);
        for path in ["/", "/containers?all=true"] {
            let (status, _) = get(port, path, "");
            assert_eq!(status, 200, "{path}");
            let mut times = Vec::new();
            let mut body = 0;
            for _ in 0..5 {
                let t = Instant::now();
                body = get(port, path, "").1;
                times.push(t.elapsed());
            }
            times.sort();
            println!(
                "{path:<22} {containers:>6} containers: {:.1} MiB, median {:.2?} (of 5)",
                body as f64 / (1 << 20) as f64,
                times[2]
            );
        }
        drop(rt);
    }
}

/// Each part runs alone (`cargo bench --bench web -- PART`), in its own process, so that the
/// memory one part leaves behind does not count for the next; without an argument every part
/// runs, one process each.
fn main() {
    let parts: [(&str, fn()); 6] = [
        // Before: one render per request (the handler as it was).
        ("unshared", || storm(10_000, 200, 0, false, "/unshared")),
        ("shared-text", || storm(10_000, 200, 0, false, "/metrics")),
        ("shared-gzip", || storm(10_000, 200, 0, true, "/metrics")),
        ("limited", || storm(10_000, 200, 40, false, "/metrics")),
        ("health", || health_under_api_load(50_000, 4)),
        ("page", page_cost),
    ];
    match std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        Some(name) => {
            let (_, part) = parts
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no part {name}"));
            part();
        }
        None => {
            let me = std::env::current_exe().unwrap();
            for (name, _) in parts {
                let status = std::process::Command::new(&me).arg(name).status().unwrap();
                assert!(status.success(), "{name}: {status}");
            }
        }
    }
}
