//! The hand-over from each engine's watcher to every reader: published snapshots and live counters.
//!
//! Owns the one-way hand-over: the watcher holds its engine's `Publisher` and is the only writer;
//! readers (HTTP handlers, `/metrics`) hold `Engines` and load an immutable `Snapshot` that never
//! changes after it is published. An engine's name and URL never change, so they live beside the
//! swapped snapshot and publishing never reads the old one back. The set of engines itself can
//! change while sealwatch runs (discovered rootless users come and go): it is swapped as a whole,
//! so a reader's `views()` sees one consistent set. Never talks to Podman.

use std::ops::Deref;
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::metrics::counter::Counter;

use crate::inventory::Inventory;
use crate::resources::EngineStats;

/// How an engine's connection stands, as shown by `/-/ready`, `/` and `podman_up`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStatus {
    /// Podman told its version and answered both lists in the current session and the event stream was
    /// requested; its response head may still be on its way (Podman 5.1 and 5.2 hold it until the
    /// first event). False from the moment a session ends.
    pub connected: bool,
    /// The inventory has been rebuilt from the lists during the current session.
    pub synced: bool,
    /// Why the engine is not ready, for humans.
    pub reason: Option<String>,
    /// Podman's version, once it has answered.
    pub version: Option<String>,
    /// The libpod API version Podman reported.
    pub api_version: Option<String>,
}

/// What one engine looked like at one moment: immutable once published.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: EngineStatus,
    pub inventory: Inventory,
}

impl Snapshot {
    /// Ready means connected and synced: what `/-/ready` and `podman_up` report.
    pub fn ready(&self) -> bool {
        self.status.connected && self.status.synced
    }
}

/// One engine as readers see it: its fixed identity and the snapshot that is current.
#[derive(Debug)]
struct Engine {
    name: Arc<str>,
    url: Arc<str>,
    current: ArcSwap<Snapshot>,
    /// Resource usage: sampled on demand beside the snapshots, never part of them.
    stats: Arc<EngineStats>,
}

/// The exporter's own counters for one engine (`sealwatch_*`), live: the watcher updates them as
/// things happen and `/metrics` reads them through the registry they are registered in.
#[derive(Debug, Clone)]
pub struct EngineInstruments {
    /// Sessions that synced again after an earlier one had synced: reconnections that worked.
    pub reconnects: Counter,
    /// Attempts that ended before the inventory was synced (Podman down, refusing, failing).
    pub connect_failures: Counter,
    /// Inventories rebuilt from Podman's lists.
    pub resyncs: Counter,
    /// Event lines that could not be decoded (skipped).
    pub decode_errors: Counter,
    /// Error objects Podman sent inside the event stream.
    pub stream_errors: Counter,
    /// Replayed or re-delivered events dropped as already counted.
    pub duplicates_dropped: Counter,
    /// Podman rotated its file event log (`Type: system`, `Action: log-rotation`): Podman may
    /// have lost events then, which no counter can show.
    pub log_rotations: Counter,
    /// Responses and stream lines from Podman dropped for exceeding their size cap.
    pub oversized_responses: Counter,
    /// `died` events whose `containerExitCode` is not a number from 0 to 255 (counted with the
    /// exit code `unknown`).
    pub unparsable_exit_codes: Counter,
    /// Podman's time of the newest event applied, unix nanoseconds; `i64::MIN` until the first
    /// event, when the series is absent.
    last_event_nanos: Arc<AtomicI64>,
}

impl Default for EngineInstruments {
    fn default() -> Self {
        Self {
            reconnects: Counter::default(),
            connect_failures: Counter::default(),
            resyncs: Counter::default(),
            decode_errors: Counter::default(),
            stream_errors: Counter::default(),
            duplicates_dropped: Counter::default(),
            log_rotations: Counter::default(),
            oversized_responses: Counter::default(),
            unparsable_exit_codes: Counter::default(),
            last_event_nanos: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }
}

impl EngineInstruments {
    pub fn set_last_event_nanos(&self, nanos: i64) {
        self.last_event_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Podman's time of the newest event applied, once there was one.
    pub fn last_event_nanos(&self) -> Option<i64> {
        Some(self.last_event_nanos.load(Ordering::Relaxed)).filter(|n| *n != i64::MIN)
    }
}

/// The writing half of one engine's hand-over; only its watcher holds it.
#[derive(Debug)]
pub struct Publisher {
    engine: Arc<Engine>,
}

impl Publisher {
    /// The engine's name, for logs.
    pub fn name(&self) -> &Arc<str> {
        &self.engine.name
    }

    /// Where the engine's resource numbers come from.
    pub fn stats_source(&self) -> crate::resources::Source {
        self.engine.stats.source()
    }

    /// A reader of this engine for a task that runs beside the watcher (the stats stream).
    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            engine: self.engine.clone(),
        }
    }

    /// Replaces the engine's snapshot. The inventory clone shares all structure (O(1)).
    pub fn publish(&self, status: &EngineStatus, inventory: &Inventory) {
        self.engine.current.store(Arc::new(Snapshot {
            status: status.clone(),
            inventory: inventory.snapshot(),
        }));
    }
}

/// One engine's latest snapshot and its resource stats, for a task beside its watcher: reads
/// snapshots, stores stats samples, never publishes.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    engine: Arc<Engine>,
}

impl EngineHandle {
    pub fn name(&self) -> &Arc<str> {
        &self.engine.name
    }

    /// The snapshot readers see now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.engine.current.load_full()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.engine.stats
    }
}

/// Every engine, in the order they were configured or discovered: the readers' half of the
/// hand-over. Clones share the set.
#[derive(Debug, Clone, Default)]
pub struct Engines {
    engines: Arc<ArcSwap<Vec<Arc<Engine>>>>,
}

fn new_engine(name: String, url: String, inventory: Inventory, stats: EngineStats) -> Arc<Engine> {
    Arc::new(Engine {
        name: Arc::from(name),
        url: Arc::from(url),
        current: ArcSwap::from_pointee(Snapshot {
            status: EngineStatus {
                reason: Some("connecting".into()),
                ..EngineStatus::default()
            },
            inventory,
        }),
        stats: Arc::new(stats),
    })
}

impl Engines {
    /// Creates one engine per `(name, url, first snapshot)` and returns the readers' view with a
    /// publisher for each engine, in the same order.
    pub fn new(engines: Vec<(String, String, Inventory)>) -> (Self, Vec<Publisher>) {
        Self::with_stats(
            engines
                .into_iter()
                .map(|(name, url, inventory)| (name, url, inventory, EngineStats::off()))
                .collect(),
        )
    }

    /// The same, each engine with the source of its resource usage.
    pub fn with_stats(
        engines: Vec<(String, String, Inventory, EngineStats)>,
    ) -> (Self, Vec<Publisher>) {
        let engines: Vec<Arc<Engine>> = engines
            .into_iter()
            .map(|(name, url, inventory, stats)| new_engine(name, url, inventory, stats))
            .collect();
        let publishers = engines
            .iter()
            .map(|engine| Publisher {
                engine: engine.clone(),
            })
            .collect();
        (
            Self {
                engines: Arc::new(ArcSwap::from_pointee(engines)),
            },
            publishers,
        )
    }

    /// Adds an engine found while running, after the others, and returns its publisher. An engine
    /// of the same name is replaced (its watcher must have been stopped).
    pub fn add(
        &self,
        name: String,
        url: String,
        inventory: Inventory,
        stats: EngineStats,
    ) -> Publisher {
        let engine = new_engine(name, url, inventory, stats);
        self.engines.rcu(|current| {
            let mut next: Vec<Arc<Engine>> = current
                .iter()
                .filter(|e| e.name != engine.name)
                .cloned()
                .collect();
            next.push(engine.clone());
            next
        });
        Publisher { engine }
    }

    /// Removes the engine `name`: readers no longer see it or any of its series.
    pub fn remove(&self, name: &str) {
        self.engines.rcu(|current| {
            current
                .iter()
                .filter(|e| &*e.name != name)
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// The current snapshot of each engine, taken once per request so that a request sees one
    /// consistent view of each engine.
    pub fn views(&self) -> Vec<EngineView> {
        self.engines
            .load()
            .iter()
            .map(|e| EngineView {
                name: e.name.clone(),
                url: e.url.clone(),
                snapshot: e.current.load_full(),
                stats: e.stats.clone(),
            })
            .collect()
    }
}

/// One engine's identity with the snapshot a request reads; derefs to the snapshot.
#[derive(Debug, Clone)]
pub struct EngineView {
    pub name: Arc<str>,
    pub url: Arc<str>,
    snapshot: Arc<Snapshot>,
    /// The engine's resource usage source and latest sample.
    pub stats: Arc<EngineStats>,
}

impl Deref for EngineView {
    type Target = Snapshot;

    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Allowlist, LabelPolicy};

    /// A reader's view taken before a publish keeps the old snapshot; a new view sees the new one.
    #[test]
    fn views_are_immutable_and_publishing_replaces_them() {
        let inv = Inventory::new(LabelPolicy::new(Allowlist::default(), 10));
        let (engines, publishers) =
            Engines::new(vec![("a".into(), "unix:///a".into(), inv.clone())]);
        let before = engines.views();
        assert!(!before[0].ready());
        let status = EngineStatus {
            connected: true,
            synced: true,
            ..EngineStatus::default()
        };
        publishers[0].publish(&status, &inv);
        assert!(!before[0].ready(), "an old view never changes");
        let after = engines.views();
        assert!(after[0].ready());
        assert_eq!((&*after[0].name, &*after[0].url), ("a", "unix:///a"));
    }

    /// Engines added and removed while running: a view taken before keeps its set.
    #[test]
    fn engines_come_and_go() {
        let inv = Inventory::new(LabelPolicy::new(Allowlist::default(), 10));
        let (engines, _publishers) =
            Engines::new(vec![("root".into(), "unix:///r".into(), inv.clone())]);
        let before = engines.views();
        let alice = engines.add(
            "alice".into(),
            "unix:///a".into(),
            inv.clone(),
            EngineStats::off(),
        );
        let names = |v: &[EngineView]| v.iter().map(|e| e.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&before), ["root"]);
        assert_eq!(names(&engines.views()), ["root", "alice"]);
        alice.publish(
            &EngineStatus {
                connected: true,
                synced: true,
                ..EngineStatus::default()
            },
            &inv,
        );
        assert!(engines.views()[1].ready());
        engines.remove("alice");
        assert_eq!(names(&engines.views()), ["root"]);
    }
}
