//! The podman source's task: one long-lived `GET /libpod/containers/stats?stream=true` per
//! engine, while the engine's watcher session is synced.
//!
//! Owns opening the stream (after `GET /libpod/info` for the host's memory), reading it line by
//! line, storing each report as the engine's latest sample, and reopening it with its own backoff
//! when it breaks. The watcher starts it once a session has synced and stops it when the session
//! ends; a broken stats stream never ends the event watcher's session. Never sends a request per
//! scrape: Podman's cost depends on the interval only.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Backoff;
use crate::podman::ndjson::{LineSplitter, LineTooLong};
use crate::podman::{Client, ClientError};
use crate::resources::stream::{self, Report};
use crate::snapshot::EngineHandle;

/// A stats stream that stayed up this long resets the backoff.
const HEALTHY_PERIOD: Duration = Duration::from_secs(30);

/// The longest report line accepted: ~500 bytes per container, so room for ~30,000 containers.
const MAX_REPORT: usize = 16 << 20;

/// Why a stats stream ended.
#[derive(Debug, thiserror::Error)]
enum StreamEnd {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("stats stream broke: {0}")]
    Broke(#[source] hyper::Error),
    #[error("stats stream ended")]
    Eof,
    #[error("Podman reported an error in the stats stream: {}", crate::podman::printable(.0))]
    Podman(String),
    #[error("no stats report for {0:?}")]
    Silent(Duration),
    #[error(transparent)]
    LineTooLong(#[from] LineTooLong),
}

/// What the watcher needs to start an engine's stats stream.
#[derive(Debug, Clone)]
pub struct StatsStream {
    client: Client,
    /// `--stats.podman-interval`, whole seconds (Podman's `interval` is an integer).
    interval: Duration,
    engine: EngineHandle,
}

impl StatsStream {
    pub fn new(client: Client, interval: Duration, engine: EngineHandle) -> Self {
        Self {
            client,
            interval: Duration::from_secs(interval.as_secs().max(1)),
            engine,
        }
    }

    /// Runs the stream in its own task until `stop` is cancelled.
    pub fn spawn(&self, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move { this.run(stop).await });
    }

    async fn run(self, stop: CancellationToken) {
        let engine = self.engine.name().clone();
        let mut backoff = Backoff::default();
        let mut last_reason = String::new();
        loop {
            let began = Instant::now();
            let end = tokio::select! {
                end = self.session() => end,
                _ = stop.cancelled() => return,
            };
            if began.elapsed() >= HEALTHY_PERIOD {
                backoff.reset();
                last_reason.clear();
            }
            self.engine.stats().count_stream_break();
            let delay = backoff.next_delay();
            let reason = end.to_string();
            if reason != last_reason {
                tracing::warn!(%engine, "{reason}; reopening it in {:.1} s", delay.as_secs_f64());
            } else {
                tracing::debug!(%engine, "{reason}; reopening it in {:.1} s", delay.as_secs_f64());
            }
            last_reason = reason;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One stream: the host's memory, then reports until the stream ends.
    async fn session(&self) -> StreamEnd {
        let host_memory = match self.client.host_memory().await {
            Ok(m) => Some(m).filter(|m| *m > 0),
            Err(e) => return e.into(),
        };
        let mut body = match self.client.stats_stream(self.interval.as_secs()).await {
            Ok(b) => b,
            Err(e) => return e.into(),
        };
        tracing::debug!(engine = %self.engine.name(), "stats stream open");
        // Podman writes a report every interval; silence for much longer means it hangs.
        let silence = stream::max_age(self.interval);
        let mut splitter = LineSplitter::new(MAX_REPORT);
        loop {
            let chunk = match tokio::time::timeout(silence, body.next_chunk()).await {
                Err(_) => return StreamEnd::Silent(silence),
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => return StreamEnd::Eof,
                Ok(Err(e)) => return StreamEnd::Broke(e),
            };
            let mut failed: Option<String> = None;
            let pushed = splitter.push(&chunk, |line| {
                if let Some(e) = self.handle_line(line, host_memory) {
                    failed = Some(e);
                }
            });
            if let Err(e) = pushed {
                self.engine.stats().count_stream_decode_error();
                self.client.note_oversized();
                return e.into();
            }
            if let Some(e) = failed {
                return StreamEnd::Podman(e);
            }
        }
    }

    /// Stores one report; returns Podman's error text if the line is an error report. A line
    /// that is not a report is counted and skipped.
    fn handle_line(&self, line: &[u8], host_memory: Option<u64>) -> Option<String> {
        match stream::decode(line, std::time::Instant::now(), host_memory) {
            Ok(Report::Sample(mut sample)) => {
                let snapshot = self.engine.snapshot();
                stream::attribute_network(&mut sample, &snapshot.inventory);
                self.engine.stats().store(sample);
                None
            }
            Ok(Report::Error(e)) => Some(e),
            Err(e) => {
                self.engine.stats().count_stream_decode_error();
                tracing::warn!(engine = %self.engine.name(), "skipping a stats stream line: {e}");
                None
            }
        }
    }
}
