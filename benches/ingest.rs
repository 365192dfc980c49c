//! What "one event in" costs: sealwatch's ingest of a stream of Podman lifecycle events,
//! beside the reference of a plain `serde_json` parse of the same lines, in one run. Prints a
//! table; asserts nothing but that every event was counted (`cargo bench --bench ingest`).
//!
//! The events are pre-generated in Podman 4.3.1's exact line shape (`tests/fixtures/events.ndjson`:
//! legacy keys, labels merged into the attributes), or 5.4.2's with `SEALWATCH_BENCH_SHAPE=5.4.2`
//! (`tests/fixtures/5.4.2/events.ndjson`: `containerExitCode` only where the exit code means
//! something), for 10,000 containers in 1,000 pods that churn (remove, create, init, start, health
//! checks, exec, died, cleanup, restart). sealwatch's side is the library's `Ingest`, the very code
//! the watcher runs per chunk (framing, decode, de-duplication, inventory transition, counters,
//! staleness), on an inventory synced from the same host's lists, publishing snapshots as the
//! watcher does. Times are this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
//!
//! Environment: `SEALWATCH_BENCH_EVENTS` (default 1,000,000); `SEALWATCH_BENCH_SHAPE` (`4.3.1`, the
//! default, or `5.4.2`); `SEALWATCH_BENCH_PROFILE=ingest` runs only sealwatch's ingest once (for
//! `valgrind --tool=callgrind` or `perf record`), publishing a snapshot every
//! `SEALWATCH_BENCH_PUBLISH_EVERY` lines (default 300, about what the paced run does here) so that
//! a profile under valgrind's slow clock is not skewed.

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
fn synced(lists: &(Vec<ListContainer>, Vec<ListPod>), shape: fake_podman::Shape) -> Inventory {
    let mut inv = Inventory::new(LabelPolicy::new(Allowlist::default(), 500));
    inv.set_podman_version(shape.version());
    inv.resync(lists.0.clone(), lists.1.clone(), i64::MIN);
    inv
}

/// When snapshots are published: as the watcher does (`PublishPace`), or after every `n`th
/// chunk that changed something (the profile mode: under valgrind the clock runs ~50 times
/// slower than the code, so a paced run would publish ~50 times as often per event).
#[derive(Clone, Copy)]
enum Pacing {
    Interval(Duration),
    EveryChunks(usize),
}

/// sealwatch's ingest of a stream fed block by block, framed as `framing`, publishing snapshots
/// as the watcher does (`PublishPace`; zero publishes after every chunk that changed something).
struct Runner {
    ingest: Ingest,
    instruments: sealwatch::EngineInstruments,
    publisher: sealwatch::Publisher,
    _engines: Engines,
    status: EngineStatus,
    framing: Framing,
    pacing: Pacing,
    pace: PublishPace,
    chunks: usize,
    publishes: usize,
    cpu: f64,
}

impl Runner {
    fn new(inv: Inventory, framing: Framing, pacing: Pacing) -> Self {
        let (_registry, mut instruments) = register_instruments(&["podman"]);
        let instruments = instruments.remove(0);
        let (engines, mut publishers) = Engines::new(vec![(
            "podman".into(),
            "unix:///run/podman/podman.sock".into(),
            inv.snapshot(),
        )]);
        let mut ingest = Ingest::new(inv, instruments.clone(), Arc::from("podman"));
        ingest.new_stream();
        Self {
            ingest,
            instruments,
            publisher: publishers.remove(0),
            _engines: engines,
            status: EngineStatus {
                connected: true,
                synced: true,
                ..EngineStatus::default()
            },
            framing,
            pacing,
            pace: PublishPace::new(match pacing {
                Pacing::Interval(interval) => interval,
                Pacing::EveryChunks(_) => Duration::ZERO,
            }),
            chunks: 0,
            publishes: 0,
            cpu: 0.0,
        }
    }

    /// Ingests `block` (whole lines), adding its CPU time to `cpu`; returns that time.
    fn feed(&mut self, block: &[u8]) -> f64 {
        let spent = cpu(|| match self.framing {
            Framing::LinePerChunk => {
                for line in block.split_inclusive(|&b| b == b'\n') {
                    self.chunk(line);
                }
            }
            Framing::Chunks64K => {
                for c in block.chunks(64 * 1024) {
                    self.chunk(c);
                }
            }
        });
        self.cpu += spent;
        spent
    }

    fn chunk(&mut self, bytes: &[u8]) {
        let (now, nanos) = (tokio::time::Instant::now(), now_nanos());
        self.ingest
            .push(bytes, now, nanos)
            .expect("no line too long");
        // The watcher's timer publishes a waiting change when it is due; in a burst the next
        // chunk is always there first, so checking the due time per chunk is the same.
        let due = self.pace.due().is_some_and(|d| now >= d);
        self.chunks += 1;
        let publish = match self.pacing {
            Pacing::Interval(_) => (self.ingest.take_changed() && self.pace.changed(now)) || due,
            Pacing::EveryChunks(n) => self.chunks % n == 0 && self.ingest.take_changed(),
        };
        if publish {
            self.publisher
                .publish(&self.status, self.ingest.inventory());
            self.pace.published(now);
            self.publishes += 1;
        }
    }

    /// Events counted, after checking that every line decoded and was new.
    fn events(&self) -> u64 {
        assert_eq!(
            self.instruments.decode_errors.get() + self.instruments.duplicates_dropped.get(),
            0,
            "every generated line decodes and is new"
        );
        self.ingest.inventory().counters().events.values().sum()
    }
}

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
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
        shape: fake_podman::Shape::from_env("SEALWATCH_BENCH_SHAPE"),
    };
    churn.check_shape();
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
        // A snapshot per 300 lines is what the paced run publishes on this machine.
        let every = std::env::var("SEALWATCH_BENCH_PUBLISH_EVERY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        let mut run = Runner::new(
            synced(&lists, churn.shape),
            Framing::LinePerChunk,
            Pacing::EveryChunks(every),
        );
        run.feed(&body);
        println!(
            "{:.0} events per CPU second ({} events)",
            run.events() as f64 / run.cpu,
            run.events()
        );
        return;
    }

    // Every measurement runs block by block, interleaved with the others, so that a change in
    // the machine's load (these machines are shared) touches them all alike.
    let block_lines = 50_000;
    let blocks: Vec<&[u8]> = {
        let mut blocks = Vec::new();
        let mut rest: &[u8] = &body;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .nth(block_lines - 1)
                .map_or(rest.len(), |(i, _)| i + 1);
            let (head, tail) = rest.split_at(end);
            blocks.push(head);
            rest = tail;
        }
        blocks
    };
    let mut per_line = Runner::new(
        synced(&lists, churn.shape),
        Framing::LinePerChunk,
        Pacing::Interval(PUBLISH_INTERVAL),
    );
    let mut chunked = Runner::new(
        synced(&lists, churn.shape),
        Framing::Chunks64K,
        Pacing::Interval(PUBLISH_INTERVAL),
    );
    let mut unpaced = Runner::new(
        synced(&lists, churn.shape),
        Framing::LinePerChunk,
        Pacing::Interval(Duration::ZERO),
    );
    let mut slower = Runner::new(
        synced(&lists, churn.shape),
        Framing::LinePerChunk,
        Pacing::Interval(PUBLISH_INTERVAL * 5),
    );
    let (mut owned, mut borrowed, mut decode) = (0.0, 0.0, 0.0);
    let mut ratios = Vec::new();
    for block in &blocks {
        let lines = || block.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        let o = cpu(|| {
            for l in lines() {
                black_box(serde_json::from_slice::<OwnedEvent>(l).expect("owned parse"));
            }
        });
        owned += o;
        borrowed += cpu(|| {
            for l in lines() {
                black_box(serde_json::from_slice::<BorrowedEvent>(l).expect("borrowed parse"));
            }
        });
        decode += cpu(|| {
            for l in lines() {
                match decode_stream_line(l) {
                    Ok(StreamItem::Event(e)) => {
                        black_box(e);
                    }
                    other => panic!("not an event: {other:?}"),
                }
            }
        });
        ratios.push(o / per_line.feed(block));
        chunked.feed(block);
        unpaced.feed(block);
        slower.feed(block);
    }
    for run in [&per_line, &chunked, &unpaced, &slower] {
        assert_eq!(run.events(), n as u64, "every event counted");
    }
    let (per_line, chunked, unpaced, slower) = (&per_line, &chunked, &unpaced, &slower);

    let rate = |cpu: f64| n as f64 / cpu;
    println!(
        "sealwatch ingest benchmark: {n} Podman {} events (mean {:.0} bytes a line) on {} \
         containers in {} pods; CPU time of this thread",
        churn.shape.version(),
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
         ingest (a chunk per line) / owned parse: {:.2} (median of {} blocks of {block_lines} \
         lines, each measured beside its own reference: {:.2}); / borrowed parse: {:.2}",
        owned / per_line.cpu,
        ratios.len(),
        median(ratios.clone()),
        borrowed / per_line.cpu
    );
}
