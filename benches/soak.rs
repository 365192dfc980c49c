//! The soak run: the real sealwatch binary behind the wire-level fake Podman
//! (`benches/support/fake_podman.rs`) with 10,000 containers in 1,000 pods: 1,000,000 events
//! ingested, then 200 scrapes (alternately 0.0.4 text and gzipped OpenMetrics, as Prometheus
//! asks) with a reconnect and a full resync of the 10,000 containers after every 10th, and the
//! process's RSS sampled throughout. Prints a table; asserts nothing. Not part of CI's default
//! run (`scripts/soak.sh`).
//!
//! Environment: `SEALWATCH_SOAK_CONTAINERS` (default 10,000; pods a tenth of that),
//! `SEALWATCH_SOAK_EVENTS` (default 1,000,000), `SEALWATCH_SOAK_RECONNECTS` (default 20),
//! `SEALWATCH_SOAK_SCRAPES` (default 200), `SEALWATCH_SOAK_FORMATS=prometheus` (every scrape
//! gzipped OpenMetrics, instead of that and text in turn), `SEALWATCH_SOAK_SHAPE` (`4.3.1`, the
//! default, or `5.4.2`: the fake's wire shapes, `benches/support/fake_podman.rs`),
//! `SEALWATCH_SOAK_BIN` (another sealwatch binary, to compare builds side by side, e.g.
//! allocators); `MALLOC_*` and other `SEALWATCH_*` variables (`SEALWATCH_EVENTS_BUFFER`) are passed
//! on to sealwatch.

// A benchmark stops on the first broken step; a panic says which.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/fake_podman.rs"]
mod fake_podman;
#[path = "support/measure.rs"]
mod measure;
use measure::{http_get, process_seconds, status_kib};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value of the first sample starting with `prefix` in an uncompressed text scrape.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

fn text_scrape(port: u16) -> String {
    String::from_utf8_lossy(&http_get(port, "/metrics", "")).into_owned()
}

/// Polls text scrapes until `done` says yes; the scrape that did.
fn wait_for(port: u16, what: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let text = text_scrape(port);
        if done(&text) {
            return text;
        }
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let containers = env("SEALWATCH_SOAK_CONTAINERS", 10_000);
    let pods = containers / 10;
    let events = env("SEALWATCH_SOAK_EVENTS", 1_000_000);
    let reconnects = env("SEALWATCH_SOAK_RECONNECTS", 20);
    let scrapes = env("SEALWATCH_SOAK_SCRAPES", 200);
    // `prometheus`: every scrape as Prometheus asks (gzipped OpenMetrics); else text and
    // gzipped OpenMetrics in turn.
    let as_prometheus = std::env::var("SEALWATCH_SOAK_FORMATS").as_deref() == Ok("prometheus");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    // Events 1 µs apart, the last one a second ago.
    let churn = fake_podman::Churn {
        containers,
        pods,
        t0: now - events as i64 * 1_000 - 1_000_000_000,
        shape: fake_podman::Shape::from_env("SEALWATCH_SOAK_SHAPE"),
    };
    churn.check_shape();
    let (containers_json, pods_json) = churn.lists();
    let fake = fake_podman::FakePodman::start(fake_podman::Bodies {
        shape: churn.shape,
        containers: containers_json,
        pods: pods_json,
        events: churn.events(events),
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let bin = std::env::var("SEALWATCH_SOAK_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sealwatch").to_owned());
    let mut child = Command::new(&bin)
        .args([
            "--podman.url",
            &fake.url(),
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
            "--stats.source",
            "off",
            "--log.level",
            "error",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("start sealwatch");
    let pid = child.id();
    let mut rss_samples: Vec<u64> = Vec::new();
    let mut rss = || {
        let r = status_kib(pid, "VmRSS:");
        rss_samples.push(r);
        r
    };
    let started = Instant::now();
    let last_event = (churn.t0 + (events as i64 - 1) * 1_000) as f64 / 1e9;
    wait_for(port, "ready", Duration::from_secs(120), |_| {
        String::from_utf8_lossy(&http_get(port, "/-/ready", "")).starts_with("HTTP/1.1 200")
    });
    let ready = rss();
    let text = wait_for(
        port,
        "every event ingested",
        Duration::from_secs(600),
        |text| {
            events == 0
                || sample(text, "sealwatch_last_event_timestamp_seconds")
                    .is_some_and(|t| (t - last_event).abs() < 1e-3)
        },
    );
    let ingest_secs = started.elapsed().as_secs_f64();
    let after_ingest = rss();
    let resyncs = |text: &str| sample(text, "sealwatch_engine_resyncs_total").unwrap_or(0.0);
    let mut resynced = resyncs(&text);
    // A reconnect sends no events again: the stream just stays open.
    fake.set_events(Vec::new());
    let formats = if as_prometheus {
        "gzipped OpenMetrics, as Prometheus asks"
    } else {
        "text and gzipped OpenMetrics in turn"
    };
    println!(
        "sealwatch soak: {containers} containers, {pods} pods, {events} events ingested in {ingest_secs:.1} s \
         (wall, scrapes polling), {scrapes} scrapes ({formats}), \
         a reconnect with a full resync every {} scrapes",
        scrapes / reconnects.max(1)
    );
    println!(
        "RSS KiB: {ready} when ready, {after_ingest} after the events (anonymous {}, file {})",
        status_kib(pid, "RssAnon:"),
        status_kib(pid, "RssFile:"),
    );
    println!();
    println!(
        "{:>9} {:>8} {:>12} {:>12} {:>12} {:>10}",
        "reconnect", "scrapes", "RSS resync", "RSS scraped", "RSS max", "CPU ms/scr"
    );
    let every = scrapes / reconnects.max(1);
    let mut done = 0;
    let mut table: Vec<(usize, u64, u64, u64, f64)> = Vec::new();
    for round in 0..=reconnects {
        let after_resync = if round == 0 {
            after_ingest
        } else {
            fake.break_streams();
            let want = resynced + 1.0;
            let text = wait_for(port, "a resync", Duration::from_secs(120), |t| {
                resyncs(t) >= want
            });
            resynced = resyncs(&text);
            rss()
        };
        let n = if round == reconnects {
            scrapes - done
        } else {
            every
        };
        let (cpu0, mut max) = (process_seconds(pid), 0);
        for i in 0..n {
            let body = if i % 2 == 0 && !as_prometheus {
                http_get(port, "/metrics", "")
            } else {
                http_get(
                    port,
                    "/metrics",
                    "Accept: application/openmetrics-text;version=1.0.0\r\nAccept-Encoding: gzip\r\n",
                )
            };
            assert!(body.starts_with(b"HTTP/1.1 200"), "scrape answered");
            max = max.max(rss());
        }
        done += n;
        let cpu = (process_seconds(pid) - cpu0) / n.max(1) as f64 * 1e3;
        let scraped = rss();
        println!("{round:>9} {done:>8} {after_resync:>12} {scraped:>12} {max:>12} {cpu:>10.1}");
        table.push((round, after_resync, scraped, max, cpu));
        if done >= scrapes {
            break;
        }
    }
    let after: Vec<u64> = table.iter().map(|r| r.2).collect();
    let (lo, hi) = (
        after.iter().copied().min().unwrap_or(0),
        after.iter().copied().max().unwrap_or(0),
    );
    let tail = &after[after.len().min(2) - 1..];
    println!();
    println!(
        "RSS after the scrapes of each round: {lo}..{hi} KiB (spread {:.0}% of the lowest); \
         first {} KiB, last {} KiB; highest sample {} KiB; VmHWM {} KiB; at the end anonymous \
         {} KiB, file {} KiB",
        (hi - lo) as f64 / lo.max(1) as f64 * 100.0,
        after.first().copied().unwrap_or(0),
        tail.last().copied().unwrap_or(0),
        rss_samples.iter().copied().max().unwrap_or(0),
        status_kib(pid, "VmHWM:"),
        status_kib(pid, "RssAnon:"),
        status_kib(pid, "RssFile:"),
    );
    // SIGTERM first, so a profiler run through SEALWATCH_SOAK_BIN (valgrind's massif, heaptrack)
    // writes its report; SIGKILL if it has not exited within 30 s.
    // SAFETY: kill only sends a signal to the child we started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let stop = Instant::now();
    while stop.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
