//! The per-engine state machine: list + events sync, reconnect with backoff, replay with `since`,
//! de-duplication, resync. The only place in sealwatch that retries.
//!
//! Owns the engine's `Inventory` (nothing else mutates it) and publishes a snapshot after each
//! batch of events. Never serves readers directly and never makes an HTTP call per event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::inventory::dedup::REPLAY_OVERLAP_NANOS;
use crate::inventory::{Dedup, Inventory};
use crate::podman::ndjson::{LineSplitter, MAX_LINE};
use crate::podman::wire::{decode_stream_line, StreamItem};
use crate::podman::{Client, ClientError, EventStream};
use crate::state::{EngineCell, EngineSnapshot, EngineStats, EngineStatus};

/// How long to wait for the event stream's response head before listing anyway (Podman 5.1 and
/// 5.2 hold it until the first event).
const HEAD_GRACE: Duration = Duration::from_secs(3);

/// Why a session with the engine ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("event stream broke: {0}")]
    Stream(#[source] hyper::Error),
    #[error("event stream ended")]
    Eof,
    #[error(transparent)]
    LineTooLong(#[from] crate::podman::ndjson::LineTooLong),
    #[error("shutting down")]
    Shutdown,
}

/// Capped exponential backoff with jitter; reset after a healthy period.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            next: initial,
            initial,
            max,
        }
    }

    /// The next delay: the current step with ±20% jitter; the step then doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(0.8 + fastrand::f64() * 0.4)
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

/// A connection that stayed synced this long resets the backoff.
const HEALTHY_PERIOD: Duration = Duration::from_secs(30);

pub struct Watcher {
    cell: Arc<EngineCell>,
    client: Client,
    inventory: Inventory,
    dedup: Dedup,
    status: EngineStatus,
    stats: EngineStats,
    /// Unix nanoseconds when watching began: the first stream replays from here, so nothing
    /// that happens after sealwatch started is missed, and nothing before it is counted.
    started_nanos: i64,
    /// The engine's name, for logs.
    engine: Arc<str>,
}

impl Watcher {
    pub fn new(cell: Arc<EngineCell>, client: Client) -> Self {
        let first = cell.load();
        Self {
            inventory: first.inventory.clone(),
            status: first.status.clone(),
            stats: first.stats.clone(),
            cell,
            client,
            dedup: Dedup::default(),
            started_nanos: now_nanos(),
            engine: first.name.clone(),
        }
    }

    fn publish(&self) {
        let old = self.cell.load();
        self.cell.publish(EngineSnapshot {
            name: old.name.clone(),
            url: old.url.clone(),
            status: self.status.clone(),
            stats: self.stats.clone(),
            inventory: self.inventory.clone(),
        });
    }

    /// Runs until `shutdown` is cancelled; never returns an error: every failure is reported,
    /// published and retried.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let engine = self.engine.clone();
        let mut backoff = Backoff::default();
        let mut attempt = 0u64;
        let mut last_reason = String::new();
        loop {
            if attempt > 0 {
                self.stats.reconnects += 1;
            }
            attempt += 1;
            let began = Instant::now();
            let end = tokio::select! {
                end = self.session() => end,
                _ = shutdown.cancelled() => SessionEnd::Shutdown,
            };
            if matches!(end, SessionEnd::Shutdown) {
                return;
            }
            if self.status.synced && began.elapsed() >= HEALTHY_PERIOD {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            let reason = end.to_string();
            self.status.connected = false;
            self.status.synced = false;
            self.status.reason = Some(format!("disconnected: {reason}"));
            self.publish();
            if reason != last_reason {
                tracing::warn!(%engine, "disconnected: {reason}; retrying in {:.1} s", delay.as_secs_f64());
            } else {
                tracing::debug!(%engine, "still unreachable: {reason}; retrying in {:.1} s", delay.as_secs_f64());
            }
            last_reason = reason;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One connection: version, events (from `since`), lists, resync, then live events until
    /// the stream ends. Returns why it ended.
    async fn session(&mut self) -> SessionEnd {
        let engine = self.engine.clone();
        let version = match self.client.version().await {
            Ok(v) => v,
            Err(e) => return e.into(),
        };
        self.status.version = Some(version.version.clone());
        self.status.api_version = Some(version.libpod_api_version());
        tracing::info!(%engine, version = %version.version, "connected to {}", self.client.endpoint());

        let since = self.dedup.newest().map_or(self.started_nanos, |n| {
            (n - REPLAY_OVERLAP_NANOS).max(self.started_nanos)
        });
        let client = self.client.clone();
        let mut pending = Box::pin(async move { client.events(Some(since)).await });
        let mut stream: Option<EventStream> = tokio::select! {
            s = &mut pending => match s {
                Ok(s) => Some(s),
                Err(e) => return e.into(),
            },
            _ = tokio::time::sleep(HEAD_GRACE) => None,
        };

        let t0 = Instant::now();
        let lists = tokio::try_join!(self.client.containers(), self.client.pods());
        let (containers, pods) = match lists {
            Ok(l) => l,
            Err(e) => return e.into(),
        };
        self.inventory.resync(containers, pods);
        self.stats.resyncs += 1;
        self.status.connected = true;
        self.status.synced = true;
        self.status.reason = None;
        self.publish();
        tracing::info!(
            %engine,
            "synced {} containers and {} pods in {} ms",
            self.inventory.container_count(),
            self.inventory.pod_count(),
            t0.elapsed().as_millis()
        );

        let mut stream = match stream.take() {
            Some(s) => s,
            None => match pending.await {
                Ok(s) => s,
                Err(e) => return e.into(),
            },
        };
        let mut splitter = LineSplitter::new(MAX_LINE);
        loop {
            let chunk = match stream.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return self.end_stream(&mut splitter, SessionEnd::Eof),
                Err(e) => return self.end_stream(&mut splitter, SessionEnd::Stream(e)),
            };
            let pushed = splitter.push(&chunk, |line| self.handle_line(line));
            self.publish();
            if let Err(e) = pushed {
                self.stats.decode_errors += 1;
                return e.into();
            }
        }
    }

    /// A stream cut mid-line (a Podman restart) leaves a partial event: it is not applied and
    /// not counted as undecodable, because the reconnect's `since` replays it whole.
    fn end_stream(&self, splitter: &mut LineSplitter, end: SessionEnd) -> SessionEnd {
        if let Some(partial) = splitter.finish() {
            tracing::debug!(
                engine = %self.engine,
                "dropped a {}-byte partial event at the end of the stream; the reconnect replays it",
                partial.len()
            );
        }
        end
    }

    /// Applies one line. Undecodable lines and Podman's in-stream error objects are skipped and
    /// counted; Podman ends the stream after an error object, which then reconnects.
    fn handle_line(&mut self, line: &[u8]) {
        match decode_stream_line(line) {
            Ok(StreamItem::Event(ev)) => {
                if self.dedup.first_time(&ev) {
                    self.inventory.apply(&ev);
                    self.stats.last_event_nanos = self.dedup.newest();
                } else {
                    self.stats.duplicates_dropped += 1;
                }
            }
            Ok(StreamItem::Error(err)) => {
                self.stats.stream_errors += 1;
                let text = if err.message.is_empty() {
                    err.cause
                } else {
                    err.message
                };
                tracing::warn!(engine = %self.engine, "Podman reported an error in the event stream: {text}");
            }
            Err(e) => {
                self.stats.decode_errors += 1;
                tracing::warn!(engine = %self.engine, "skipping an event line: {e}");
            }
        }
    }
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let d: Vec<f64> = (0..6).map(|_| b.next_delay().as_secs_f64()).collect();
        for (got, want) in d.iter().zip([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]) {
            assert!(
                (want * 0.8..=want * 1.2).contains(got),
                "{got} not near {want}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }
}
