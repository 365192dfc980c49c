//! What "one event in" costs: sealwatch's ingest of a stream of Podman 4.3.1 lifecycle events,
//! beside the reference of a plain `serde_json` parse of the same lines, in one run. Prints a
//! table; asserts nothing but that every event was counted (`cargo bench --bench ingest`).
//!
//! The events are pre-generated in Podman 4.3.1's exact line shape (`tests/fixtures/events.ndjson`:
//! legacy keys, labels merged into the attributes) for 10,000 containers in 1,000 pods that
//! churn (remove, create, init, start, health checks, exec, died, cleanup, restart). sealwatch's
//! side is the library's `Ingest`, the very code the watcher runs per chunk (framing, decode,
//! de-duplication, inventory transition, counters, staleness), on an inventory synced from the
//! same host's lists, publishing snapshots as the watcher does. Times are this thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`).
//!
//! Environment: `SEALWATCH_BENCH_EVENTS` (default 1,000,000); `SEALWATCH_BENCH_PROFILE=ingest`
//! runs only sealwatch's ingest once (for `valgrind --tool=callgrind` or `perf record`).

// A benchmark stops on the first broken fixture; a panic says which.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "support/fake_podman.rs"]
mod fake_podman;
#[path = "support/measure.rs"]
mod measure;
use measure::thread_cpu;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use sealwatch::{
    decode_stream_line, register_instruments, Allowlist, EngineStatus, Engines, Ingest, Inventory,
    LabelPolicy, ListContainer, ListPod, PublishPace, StreamItem, PUBLISH_INTERVAL,
};

/// The reference: the fields an exporter needs from a line, owned.
#[derive(Deserialize)]
#[allow(dead_code)]
struct OwnedEvent {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Actor")]
    actor: OwnedActor,
    #[serde(rename = "timeNano", default)]
    time_nano: i64,
    #[serde(rename = "HealthStatus", default)]
    health_status: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct OwnedActor {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Attributes")]
    attributes: BTreeMap<String, String>,
}

/// The same fields borrowed from the line (no escapes in these lines, so no copies).
#[derive(Deserialize)]
#[allow(dead_code)]
struct BorrowedEvent<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(rename = "Action")]
    action: &'a str,
    #[serde(rename = "Actor", borrow)]
    actor: BorrowedActor<'a>,
    #[serde(rename = "timeNano", default)]
    time_nano: i64,
    #[serde(rename = "HealthStatus", default)]
    health_status: Option<&'a str>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct BorrowedActor<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Attributes", borrow)]
    attributes: BTreeMap<&'a str, &'a str>,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// CPU seconds of one call of `f`.
fn cpu(f: impl FnOnce()) -> f64 {
    let c = thread_cpu();
    f();
    thread_cpu() - c
}

/// How the stream arrives: Podman writes and flushes each event as its own HTTP chunk (so the
/// watcher sees one line per chunk on a live stream); a replay through a buffering proxy, or
/// the fake, delivers 64 KiB at a time.
#[derive(Clone, Copy)]
enum Framing {
    LinePerChunk,
    Chunks64K,
}

/// An inventory synced from the host's lists, as the watcher's resync leaves it.
fn synced(lists: &(Vec<ListContainer>, Vec<ListPod>)) -> Inventory {
    let mut inv = Inventory::new(LabelPolicy::new(Allowlist::default(), 500));
    inv.set_podman_version("4.3.1");
    inv.resync(lists.0.clone(), lists.1.clone(), i64::MIN);
    inv
}

struct IngestRun {
    cpu: f64,
    publishes: usize,
    events: u64,
}

/// sealwatch's ingest of `body`, framed as `framing`, publishing snapshots as the watcher does
/// (`PublishPace` with `interval`; zero publishes after every chunk that changed something).
fn ingest(inv: Inventory, body: &[u8], framing: Framing, interval: Duration) -> IngestRun {
    let (_registry, mut instruments) = register_instruments(&["podman"]);
    let instruments = instruments.remove(0);
    let (_engines, mut publishers) = Engines::new(vec![(
        "podman".into(),
        "unix:///run/podman/podman.sock".into(),
        inv.clone(),
    )]);
    let publisher = publishers.remove(0);
    let status = EngineStatus {
        connected: true,
        synced: true,
        ..EngineStatus::default()
    };
    let mut ingest = Ingest::new(inv, instruments.clone(), Arc::from("podman"));
    ingest.new_stream();
    let mut publishes = 0;
    let mut pace = PublishPace::new(interval);
    let cpu = cpu(|| {
        let mut chunk = |bytes: &[u8]| {
            let (now, nanos) = (tokio::time::Instant::now(), now_nanos());
            ingest.push(bytes, now, nanos).expect("no line too long");
            // The watcher's timer publishes a waiting change when it is due; in a burst the
            // next chunk is always there first, so checking the due time per chunk is the same.
            let due = pace.due().is_some_and(|d| now >= d);
            if (ingest.take_changed() && pace.changed(now)) || due {
                publisher.publish(&status, ingest.inventory());
                pace.published(now);
                publishes += 1;
            }
        };
        match framing {
            Framing::LinePerChunk => {
                for line in body.split_inclusive(|&b| b == b'\n') {
                    chunk(line);
                }
            }
            Framing::Chunks64K => {
                for c in body.chunks(64 * 1024) {
                    chunk(c);
                }
            }
        }
    });
    let events: u64 = ingest.inventory().counters().events.values().sum();
    assert_eq!(
        instruments.decode_errors.get() + instruments.duplicates_dropped.get(),
        0,
        "every generated line decodes and is new"
    );
    black_box(&ingest);
    IngestRun {
        cpu,
        publishes,
        events,
    }
}

fn main() {
    let n: usize = std::env::var("SEALWATCH_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let churn = fake_podman::Churn {
        containers: 10_000,
        pods: 1_000,
        t0: now_nanos() - 3_600_000_000_000,
    };
    let (containers_json, pods_json) = churn.lists();
    let lists: (Vec<ListContainer>, Vec<ListPod>) = (
        serde_json::from_str(&containers_json).expect("containers"),
        serde_json::from_str(&pods_json).expect("pods"),
    );
    let body = churn.events(n);
    let lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), n);

    if std::env::var("SEALWATCH_BENCH_PROFILE").as_deref() == Ok("ingest") {
        let run = ingest(
            synced(&lists),
            &body,
            Framing::LinePerChunk,
            PUBLISH_INTERVAL,
        );
        println!(
            "{:.0} events per CPU second ({} events)",
            run.events as f64 / run.cpu,
            run.events
        );
        return;
    }

    let owned = cpu(|| {
        for l in &lines {
            black_box(serde_json::from_slice::<OwnedEvent>(l).expect("owned parse"));
        }
    });
    let borrowed = cpu(|| {
        for l in &lines {
            black_box(serde_json::from_slice::<BorrowedEvent>(l).expect("borrowed parse"));
        }
    });
    let decode = cpu(|| {
        for l in &lines {
            match decode_stream_line(l) {
                Ok(StreamItem::Event(e)) => {
                    black_box(e);
                }
                other => panic!("not an event: {other:?}"),
            }
        }
    });
    let per_line = ingest(
        synced(&lists),
        &body,
        Framing::LinePerChunk,
        PUBLISH_INTERVAL,
    );
    let chunked = ingest(synced(&lists), &body, Framing::Chunks64K, PUBLISH_INTERVAL);
    let unpaced = ingest(synced(&lists), &body, Framing::LinePerChunk, Duration::ZERO);
    let slower = ingest(
        synced(&lists),
        &body,
        Framing::LinePerChunk,
        PUBLISH_INTERVAL * 5,
    );
    for run in [&per_line, &chunked, &unpaced, &slower] {
        assert_eq!(run.events, n as u64, "every event counted");
    }

    let rate = |cpu: f64| n as f64 / cpu;
    println!(
        "sealwatch ingest benchmark: {n} Podman 4.3.1 events (mean {:.0} bytes a line) on {} \
         containers in {} pods; CPU time of this thread",
        body.len() as f64 / n as f64,
        churn.containers,
        churn.pods
    );
    println!();
    println!(
        "{:<62} {:>12} {:>9} {:>9}",
        "", "events/CPU s", "us/event", "vs owned"
    );
    let row = |name: &str, cpu: f64| {
        println!(
            "{name:<62} {:>12.0} {:>9.2} {:>8.0}%",
            rate(cpu),
            cpu / n as f64 * 1e6,
            owned / cpu * 100.0
        );
    };
    row("reference: serde_json into an owned struct", owned);
    row("reference: serde_json into a borrowed struct", borrowed);
    row("sealwatch: decode only (decode_stream_line)", decode);
    let ms = PUBLISH_INTERVAL.as_secs_f64() * 1e3;
    row(
        &format!(
            "ingest, a chunk per line as Podman sends: {} publishes",
            per_line.publishes
        ),
        per_line.cpu,
    );
    row(
        &format!("ingest, 64 KiB chunks: {} publishes", chunked.publishes),
        chunked.cpu,
    );
    row(
        &format!(
            "ingest, a chunk per line, unpaced: {} publishes",
            unpaced.publishes
        ),
        unpaced.cpu,
    );
    row(
        &format!(
            "ingest, a chunk per line, paced {:.0} ms: {} publishes",
            ms * 5.0,
            slower.publishes
        ),
        slower.cpu,
    );
    println!();
    println!(
        "ingest publishes at most one snapshot per {ms:.0} ms (PUBLISH_INTERVAL) unless marked; \
         ingest (a chunk per line) / owned parse: {:.2}; / borrowed parse: {:.2}",
        owned / per_line.cpu,
        borrowed / per_line.cpu
    );
}
