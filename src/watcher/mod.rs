//! The per-engine state machine: list + events sync, reconnect with backoff, replay with `since`,
//! de-duplication, resync. The only place in sealwatch that retries.
//!
//! Owns the engine's `Inventory` (nothing else mutates it), the de-duplication of replayed
//! events (`dedup`) and the retry schedule (`backoff`); publishes a snapshot after each batch of
//! events through its `Publisher`. Never serves readers directly and never makes an HTTP call per
//! event.

mod backoff;
mod dedup;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::inventory::Inventory;
use crate::podman::ndjson::{LineSplitter, MAX_LINE};
use crate::podman::wire::{decode_stream_line, StreamItem};
use crate::podman::{Client, ClientError, EventStream};
use crate::snapshot::{EngineInstruments, EngineStatus, Publisher};
pub use backoff::Backoff;
use dedup::Dedup;

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

/// A connection that stayed synced this long resets the backoff.
const HEALTHY_PERIOD: Duration = Duration::from_secs(30);

/// One engine's watcher: the only writer of its inventory.
pub struct Watcher {
    publisher: Publisher,
    client: Client,
    inventory: Inventory,
    dedup: Dedup,
    status: EngineStatus,
    instruments: EngineInstruments,
    /// Unix nanoseconds when watching began: the first stream replays from here, so nothing
    /// that happens after sealwatch started is missed, and nothing before it is counted.
    started_nanos: i64,
    /// The engine's name, for logs.
    engine: Arc<str>,
}

impl Watcher {
    /// A watcher that starts from `inventory` (empty, with the engine's label policy) and
    /// counts into `instruments`.
    pub fn new(
        publisher: Publisher,
        client: Client,
        inventory: Inventory,
        instruments: EngineInstruments,
    ) -> Self {
        Self {
            engine: publisher.name().clone(),
            publisher,
            client,
            inventory,
            dedup: Dedup::default(),
            status: EngineStatus {
                reason: Some("connecting".into()),
                ..EngineStatus::default()
            },
            instruments,
            started_nanos: now_nanos(),
        }
    }

    fn publish(&self) {
        self.publisher.publish(&self.status, &self.inventory);
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
                self.instruments.reconnects.inc();
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

        let since = self.dedup.next_since(self.started_nanos, now_nanos());
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
        self.instruments.resyncs.inc();
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
                self.instruments.decode_errors.inc();
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
                if self.dedup.first_time(&ev, now_nanos()) {
                    if ev.kind == "system" && ev.action == "log-rotation" {
                        self.instruments.log_rotations.inc();
                    }
                    self.inventory.apply(&ev);
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
                tracing::warn!(engine = %self.engine, "Podman reported an error in the event stream: {text}");
            }
            Err(e) => {
                self.instruments.decode_errors.inc();
                tracing::warn!(engine = %self.engine, "skipping an event line: {e}");
            }
        }
    }
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}
