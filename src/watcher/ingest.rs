//! "One event in": what the watcher does with each chunk of the event stream, from bytes to an
//! applied, counted event.
//!
//! Owns the engine's inventory together with everything one event line touches: the line
//! framing (`ndjson`), decoding (`wire`), de-duplication (`dedup`), the inventory transition, the
//! staleness noted for the next refresh (`refresh`), the live `sealwatch_event_*` counters and
//! the hand-over of each applied event to the event feed.
//! Never publishes, never calls Podman and never sleeps: the watcher's session loop decides when
//! readers see the result (it asks `take_changed`). Kept apart from the session loop so that the
//! ingest benchmark (`benches/ingest.rs`) measures exactly this code, not a copy of it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::dedup::Dedup;
use super::refresh::Stale;
use crate::feed::FeedPublisher;
use crate::inventory::Inventory;
use crate::podman::ndjson::{LineSplitter, LineTooLong, MAX_LINE};
use crate::podman::printable;
use crate::podman::wire::{decode_event_into, decode_via_value, Event, ExitCodeAttr, StreamItem};
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
    /// Where every applied (first-time) event goes for `/events`.
    pub(super) feed: Option<FeedPublisher>,
    /// The event every line is decoded into, its buffers reused: a line allocates nothing.
    scratch: Event,
}

/// A decoded event whose buffers grew past this (a hostile line near `MAX_LINE`) is dropped
/// after use rather than kept for the next line.
const SCRATCH_KEEP: usize = 64 * 1024;

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
            feed: None,
            scratch: Event::default(),
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
        let mut ev = std::mem::take(&mut self.scratch);
        if decode_event_into(line, &mut ev) {
            self.event(&ev, now, now_nanos);
            if ev.buffer_capacity() <= SCRATCH_KEEP {
                self.scratch = ev;
            }
            return;
        }
        self.scratch = ev;
        // Anything unusual: the general way says what the line is, with its message.
        match decode_via_value(line) {
            Ok(StreamItem::Event(ev)) => self.event(&ev, now, now_nanos),
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

    /// Applies one decoded event, unless it is a copy of one already applied.
    fn event(&mut self, ev: &Event, now: Instant, now_nanos: i64) {
        if !self.dedup.first_time(ev, now_nanos) {
            self.instruments.duplicates_dropped.inc();
            return;
        }
        crate::allocator::note_events(1);
        if ev.kind() == "system" && ev.action() == "log-rotation" {
            self.instruments.log_rotations.inc();
        }
        if ev.kind() == "container"
            && ev.action() == "died"
            && ev.exit_code() == ExitCodeAttr::Unparsable
        {
            self.instruments.unparsable_exit_codes.inc();
        }
        // The container's record as it was (a pointer, not a copy): `remove` deletes it and
        // `died` carries no pod, but the feed still names both.
        let before = self
            .feed
            .as_ref()
            .and_then(|_| self.inventory.container(ev.id()).cloned());
        self.inventory.apply(ev);
        if let Some(feed) = &self.feed {
            feed.publish(ev, before.as_deref(), &self.inventory);
        }
        self.changed = true;
        self.stale.note(ev, now);
        if let Some(newest) = self.dedup.newest() {
            self.instruments.set_last_event_nanos(newest);
        }
    }
}

/// How far readers may lag behind the event stream while events pour in: at most one snapshot
/// is published per interval during a burst (the first change after a quiet spell is published
/// at once). Publishing is O(1), but the next write to each map node and container record a
/// published snapshot shares copies it; at a snapshot per event (Podman flushes each event as
/// its own chunk) those copies cost more than decoding the event. 2 ms is far below any scrape
/// interval and the time a scrape takes, and amortises the copies over hundreds of events in a
/// burst (`benches/ingest.rs` measures the choice).
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(2);

/// When the watcher publishes what events changed: at once after a quiet spell, else once the
/// interval since the last snapshot has passed. No timer runs unless a change is waiting, so
/// an idle engine costs no CPU.
#[derive(Debug)]
pub struct PublishPace {
    interval: Duration,
    /// When the last snapshot was published.
    last: Option<Instant>,
    /// A change is waiting for `due`.
    pending: bool,
}

impl PublishPace {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            pending: false,
        }
    }

    /// Events changed the inventory at `now`: true if a snapshot is to be published now;
    /// otherwise one is due at `due()`.
    pub fn changed(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now < last + self.interval => {
                self.pending = true;
                false
            }
            _ => true,
        }
    }

    /// A snapshot (with every change so far) was published at `now`.
    pub fn published(&mut self, now: Instant) {
        self.last = Some(now);
        self.pending = false;
    }

    /// When the waiting change is to be published; `None` when nothing waits.
    pub fn due(&self) -> Option<Instant> {
        let last = self.last?;
        self.pending.then(|| last + self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change after a quiet spell is published at once; changes within the interval wait
    /// for one snapshot at its end; nothing waits once it is published.
    #[test]
    fn changes_in_a_burst_share_one_snapshot_per_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut pace = PublishPace::new(ms(2));
        assert_eq!(pace.due(), None);
        assert!(pace.changed(t0), "the first change");
        pace.published(t0);
        assert_eq!(pace.due(), None);
        assert!(!pace.changed(t0 + ms(1)));
        assert!(!pace.changed(t0 + ms(1)));
        assert_eq!(pace.due(), Some(t0 + ms(2)));
        pace.published(t0 + ms(2));
        assert_eq!(pace.due(), None);
        assert!(pace.changed(t0 + ms(10)), "after a quiet spell");
    }
}
