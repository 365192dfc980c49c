//! What the watchers publish and every reader sees: one immutable snapshot per engine.
//!
//! Owns the hand-over between the one writer of each engine (its watcher) and any number of
//! readers (HTTP handlers, the metrics collector). A reader loads an `Arc` and never blocks the
//! writer; a snapshot never changes after it is published. Never talks to Podman.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::inventory::{Inventory, LabelPolicy};

/// How an engine's connection stands, as shown by `/-/ready`, `/` and `podman_up`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStatus {
    /// The event stream is open.
    pub connected: bool,
    /// The inventory has been rebuilt from the lists during the current connection.
    pub synced: bool,
    /// Why the engine is not ready, for humans.
    pub reason: Option<String>,
    /// Podman's version and libpod API version, once it has answered.
    pub version: Option<String>,
    pub api_version: Option<String>,
}

/// The exporter's own counters for one engine (`sealwatch_*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub reconnects: u64,
    pub resyncs: u64,
    pub decode_errors: u64,
    /// Error objects Podman sent inside the event stream (bad `since`, unusable backend).
    pub stream_errors: u64,
    /// Replayed events dropped as duplicates after a reconnect.
    pub duplicates_dropped: u64,
    /// Podman's time of the newest event applied, unix nanoseconds.
    pub last_event_nanos: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct EngineSnapshot {
    pub name: Arc<str>,
    pub url: String,
    pub status: EngineStatus,
    pub stats: EngineStats,
    pub inventory: Inventory,
}

impl EngineSnapshot {
    pub fn ready(&self) -> bool {
        self.status.connected && self.status.synced
    }
}

/// The published snapshot of one engine.
#[derive(Debug)]
pub struct EngineCell {
    current: ArcSwap<EngineSnapshot>,
}

impl EngineCell {
    pub fn new(name: &str, url: String, labels: LabelPolicy) -> Self {
        let first = EngineSnapshot {
            name: Arc::from(name),
            url,
            status: EngineStatus {
                reason: Some("connecting".into()),
                ..EngineStatus::default()
            },
            stats: EngineStats::default(),
            inventory: Inventory::new(labels),
        };
        Self {
            current: ArcSwap::from_pointee(first),
        }
    }

    pub fn load(&self) -> Arc<EngineSnapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; only the engine's watcher calls this.
    pub fn publish(&self, snapshot: EngineSnapshot) {
        self.current.store(Arc::new(snapshot));
    }
}

/// Every engine, in the order they were configured.
#[derive(Debug, Clone)]
pub struct Engines {
    cells: Arc<[Arc<EngineCell>]>,
}

impl Engines {
    pub fn new(cells: Vec<Arc<EngineCell>>) -> Self {
        Self {
            cells: cells.into(),
        }
    }

    pub fn cells(&self) -> &[Arc<EngineCell>] {
        &self.cells
    }

    /// The current snapshot of each engine; taken once per request so a request sees one
    /// consistent view of each engine.
    pub fn snapshots(&self) -> Vec<Arc<EngineSnapshot>> {
        self.cells.iter().map(|c| c.load()).collect()
    }
}
