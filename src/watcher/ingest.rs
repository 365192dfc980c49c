//! "One event in": what the watcher does with each chunk of the event stream, from bytes to an
//! applied, counted event.
//!
//! Owns the engine's inventory together with everything one event line touches: the line
//! framing (`ndjson`), decoding (`wire`), de-duplication (`dedup`), the inventory transition, the
//! staleness noted for the next refresh (`refresh`) and the live `sealwatch_event_*` counters.
//! Never publishes, never calls Podman and never sleeps: the watcher's session loop decides when
//! readers see the result (it asks `take_changed`). Kept apart from the session loop so that the
//! ingest benchmark (`benches/ingest.rs`) measures exactly this code, not a copy of it.

use std::sync::Arc;

use tokio::time::Instant;

use super::dedup::Dedup;
use super::refresh::Stale;
use crate::inventory::Inventory;
use crate::podman::ndjson::{LineSplitter, LineTooLong, MAX_LINE};
use crate::podman::printable;
use crate::podman::wire::{decode_stream_line, ExitCodeAttr, StreamItem};
use crate::snapshot::EngineInstruments;

/// One engine's inventory and the per-event state around it; the watcher is its only owner.
#[derive(Debug)]
pub struct Ingest {
    pub(super) inventory: Inventory,
    pub(super) dedup: Dedup,
    /// Objects whose list fields events left stale, for the next refresh.
    pub(super) stale: Stale,
    instruments: EngineInstruments,
    splitter: LineSplitter,
    /// The engine's name, for logs.
    engine: Arc<str>,
    /// An event moved the inventory since the last `take_changed`: readers' snapshot is behind.
    changed: bool,
}

impl Ingest {
    /// The per-event state of one engine, starting from `inventory`, counting into `instruments`.
    pub fn new(inventory: Inventory, instruments: EngineInstruments, engine: Arc<str>) -> Self {
        Self {
            inventory,
            dedup: Dedup::default(),
            stale: Stale::default(),
            instruments,
            splitter: LineSplitter::new(MAX_LINE),
            engine,
            changed: false,
        }
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Forgets a partial line left by the previous stream, as a new stream begins.
    pub fn new_stream(&mut self) {
        self.splitter = LineSplitter::new(MAX_LINE);
    }

    /// Whether an event moved the inventory since the last call (and clears it): duplicates,
    /// undecodable lines and Podman's error objects change only live counters, which readers
    /// see without a new snapshot.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Handles one chunk of the stream: every line it completes, in order. `now` and `now_nanos`
    /// are this machine's clock when the chunk arrived. A line past `MAX_LINE` is counted as
    /// undecodable and ends the stream (it can no longer be trusted).
    pub fn push(&mut self, chunk: &[u8], now: Instant, now_nanos: i64) -> Result<(), LineTooLong> {
        let mut splitter = std::mem::replace(&mut self.splitter, LineSplitter::new(0));
        let pushed = splitter.push(chunk, |line| self.line(line, now, now_nanos));
        self.splitter = splitter;
        if pushed.is_err() {
            self.instruments.decode_errors.inc();
        }
        pushed
    }

    /// The unterminated rest of a stream that ended, if any (dropped: a reconnect's `since`
    /// replays it whole, so it is neither applied nor counted as undecodable).
    pub fn end_stream(&mut self) -> Option<Vec<u8>> {
        self.splitter.finish()
    }

    /// Applies one line. Undecodable lines and Podman's in-stream error objects are skipped and
    /// counted; Podman ends the stream after an error object, which then reconnects.
    pub fn line(&mut self, line: &[u8], now: Instant, now_nanos: i64) {
        match decode_stream_line(line) {
            Ok(StreamItem::Event(ev)) => {
                if self.dedup.first_time(&ev, now_nanos) {
                    if ev.kind == "system" && ev.action == "log-rotation" {
                        self.instruments.log_rotations.inc();
                    }
                    if ev.kind == "container"
                        && ev.action == "died"
                        && ev.exit_code() == ExitCodeAttr::Unparsable
                    {
                        self.instruments.unparsable_exit_codes.inc();
                    }
                    self.inventory.apply(&ev);
                    self.changed = true;
                    self.stale.note(&ev, now);
                    if let Some(newest) = self.dedup.newest() {
                        self.instruments.set_last_event_nanos(newest);
                    }
                } else {
                    self.instruments.duplicates_dropped.inc();
                }
            }
            Ok(StreamItem::Error(err)) => {
                self.instruments.stream_errors.inc();
                let text = if err.message.is_empty() {
                    err.cause
                } else {
                    err.message
                };
                let text = printable(&text);
                tracing::warn!(engine = %self.engine, "Podman reported an error in the event stream: {text}");
            }
            Err(e) => {
                self.instruments.decode_errors.inc();
                tracing::warn!(engine = %self.engine, "skipping an event line: {e}");
            }
        }
    }
}
