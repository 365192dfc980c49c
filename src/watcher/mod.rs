//! The per-engine state machine: list + events sync, reconnect with backoff, replay with `since`,
//! de-duplication, resync. The only place in sealwatch that retries.
//!
//! Owns the engine's `Inventory` (nothing else mutates it), the de-duplication of replayed
//! events (`dedup`) and the retry schedule (`backoff`); publishes a snapshot through its
//! `Publisher` after each change, paced during bursts of events (`ingest::PublishPace`: at most
//! one per `PUBLISH_INTERVAL`, the last one never later than that), and hands each applied event
//! to the event feed (`feed`) with what the inventory knew of it. Never serves readers directly
//! and never makes an HTTP call per event.

mod backoff;
mod dedup;
mod ingest;
mod objects;
mod refresh;
mod socket;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::feed::FeedPublisher;
use crate::inventory::Inventory;
use crate::podman::wire::{ListContainer, ListPod};
use crate::podman::{printable, Client, ClientError, Endpoint, EventStream};
use crate::snapshot::{EngineInstruments, EngineStatus, Publisher};
pub use backoff::Backoff;
pub use ingest::{Ingest, PublishPace, PUBLISH_INTERVAL};
use refresh::Stale;
use socket::SocketWatch;
pub use stats::StatsStream;

/// A resync of at least this many containers trims the heap afterwards: below that, what a
/// resync frees is too little to matter.
const TRIM_AFTER_RESYNC_OF: usize = 1_000;

/// How long to wait for the event stream's response head before listing anyway, on Podman 5.1
/// and 5.2, which hold it until the first event.
const HEAD_GRACE: Duration = Duration::from_secs(3);

/// How long every other Podman may take to answer the event stream request (they answer at
/// once): one that accepts the request and never answers is not a ready engine.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether this Podman version writes the event stream's response head only with the first event
/// (5.1.x and 5.2.x; fixed in 5.3).
fn holds_event_head(version: &str) -> bool {
    version.starts_with("5.1.") || version.starts_with("5.2.")
}

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
    #[error("Podman accepted the event stream request but did not answer it within {0:?}")]
    NoEventHead(Duration),
    #[error("shutting down")]
    Shutdown,
}

impl SessionEnd {
    /// The engine's socket refused or was missing: worth watching for its return. A Podman that
    /// accepts and then fails or hangs is left to the backoff, or a watch that sees the socket
    /// accept would retry it at once, again and again.
    fn unreachable(&self) -> bool {
        matches!(self, SessionEnd::Client(ClientError::Connect { .. }))
    }
}

/// A connection that stayed synced this long resets the backoff.
const HEALTHY_PERIOD: Duration = Duration::from_secs(30);

/// One engine's watcher: the only writer of its inventory.
pub struct Watcher {
    publisher: Publisher,
    client: Client,
    /// The inventory and everything one event line touches.
    ingest: Ingest,
    /// When event changes are published.
    pace: PublishPace,
    status: EngineStatus,
    instruments: EngineInstruments,
    /// Unix nanoseconds when watching began: the first stream replays from here, so nothing
    /// that happens after sealwatch started is missed, and nothing before it is counted.
    started_nanos: i64,
    /// The engine's name, for logs.
    engine: Arc<str>,
    /// A session synced before: the next one to sync is a reconnection.
    synced_before: bool,
    /// The podman stats source, run while a session is synced.
    stats_stream: Option<StatsStream>,
}

/// What a refresh listed: the changed containers and pods, the object families it asked for,
/// and whether it is the session's first listing of those (a failure there is a warning).
type Refreshed = (
    Result<(Vec<ListContainer>, Vec<ListPod>), ClientError>,
    objects::ObjectLists,
    bool,
);

/// A refresh's list calls in flight.
type Refreshing = std::pin::Pin<Box<dyn std::future::Future<Output = Refreshed> + Send>>;

impl Watcher {
    /// A watcher that starts from `inventory` (empty, with the engine's label policy) and
    /// counts into `instruments`.
    pub fn new(
        publisher: Publisher,
        client: Client,
        inventory: Inventory,
        instruments: EngineInstruments,
    ) -> Self {
        let engine = publisher.name().clone();
        Self {
            ingest: Ingest::new(inventory, instruments.clone(), engine.clone()),
            pace: PublishPace::new(PUBLISH_INTERVAL),
            engine,
            publisher,
            client,
            status: EngineStatus {
                reason: Some("connecting".into()),
                ..EngineStatus::default()
            },
            instruments,
            started_nanos: now_nanos(),
            synced_before: false,
            stats_stream: None,
        }
    }

    /// Hands every event this watcher applies to the event feed.
    pub fn with_feed(mut self, feed: FeedPublisher) -> Self {
        self.ingest.feed = Some(feed);
        self
    }

    /// Runs Podman's stats stream (the podman resource source) during each synced session.
    pub fn with_stats_stream(mut self, stream: StatsStream) -> Self {
        self.stats_stream = Some(stream);
        self
    }

    /// Publishes the status and the inventory with every change so far.
    fn publish(&mut self) {
        self.publisher.publish(&self.status, &self.ingest.inventory);
        self.ingest.take_changed();
        self.pace.published(Instant::now());
    }

    /// Runs until `shutdown` is cancelled; never returns an error: every failure is reported,
    /// published and retried. Retries follow the backoff; a unix socket that refused is also
    /// watched, so the engine is retried the moment it accepts again.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let engine = self.engine.clone();
        let mut backoff = Backoff::default();
        let mut last_reason = String::new();
        let socket = match self.client.endpoint() {
            Endpoint::Unix(path) => Some(path.clone()),
            Endpoint::Tcp(_) => None,
        };
        loop {
            let began = Instant::now();
            let end = tokio::select! {
                end = self.session() => end,
                _ = shutdown.cancelled() => SessionEnd::Shutdown,
            };
            if matches!(end, SessionEnd::Shutdown) {
                return;
            }
            if self.status.synced {
                // A new break after a good session is news, even with the same text.
                last_reason.clear();
                if began.elapsed() >= HEALTHY_PERIOD {
                    backoff.reset();
                }
            } else {
                self.instruments.connect_failures.inc();
            }
            // Watch before the first look, so a socket that comes back in between is not missed.
            let mut watch = socket
                .as_deref()
                .filter(|_| end.unreachable())
                .and_then(SocketWatch::new);
            let delay = backoff.next_delay();
            let reason = end.to_string();
            self.status.connected = false;
            self.status.synced = false;
            self.status.reason = Some(format!("disconnected: {reason}"));
            self.publish();
            let retry = if watch.is_some() {
                format!(
                    "retrying when the socket accepts, or in {:.1} s",
                    delay.as_secs_f64()
                )
            } else {
                format!("retrying in {:.1} s", delay.as_secs_f64())
            };
            if reason != last_reason {
                tracing::warn!(%engine, "disconnected: {reason}; {retry}");
            } else {
                tracing::debug!(%engine, "still unreachable: {reason}; {retry}");
            }
            last_reason = reason;
            let back = async {
                match watch.as_mut() {
                    Some(w) => w.accepting().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = back => tracing::debug!(%engine, "the socket accepts again"),
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
        self.ingest.inventory.set_podman_version(&version.version);
        self.status.api_version = Some(version.libpod_api_version());
        tracing::info!(%engine, version = %printable(&version.version), "connected to {}", self.client.endpoint());

        let since = self
            .ingest
            .dedup
            .next_since(self.started_nanos, now_nanos());
        let client = self.client.clone();
        let mut pending = Box::pin(async move { client.events(Some(since)).await });
        let holds_head = holds_event_head(&version.version);
        let head_wait = if holds_head { HEAD_GRACE } else { HEAD_TIMEOUT };
        let mut stream: Option<EventStream> = tokio::select! {
            s = &mut pending => match s {
                Ok(s) => Some(s),
                Err(e) => return e.into(),
            },
            _ = tokio::time::sleep(head_wait) => None,
        };
        if stream.is_none() && !holds_head {
            return SessionEnd::NoEventHead(head_wait);
        }

        let t0 = Instant::now();
        let listed_at = now_nanos();
        let lists = tokio::try_join!(self.client.containers(), self.client.pods());
        let (containers, pods) = match lists {
            Ok(l) => l,
            Err(e) => return e.into(),
        };
        self.ingest.inventory.resync(containers, pods, listed_at);
        self.ingest.stale = Stale::default();
        self.instruments.resyncs.inc();
        if self.synced_before {
            self.instruments.reconnects.inc();
        }
        self.synced_before = true;
        self.status.connected = true;
        self.status.synced = true;
        self.status.reason = None;
        self.publish();
        if self.ingest.inventory.container_count() >= TRIM_AFTER_RESYNC_OF {
            // The list bodies and the replaced records are free now, scattered through the heap:
            // give their pages back, off the async workers (see `allocator::trim`).
            tokio::task::spawn_blocking(crate::allocator::trim);
        }
        tracing::info!(
            %engine,
            "synced {} containers and {} pods in {} ms",
            self.ingest.inventory.container_count(),
            self.ingest.inventory.pod_count(),
            t0.elapsed().as_millis()
        );
        // Stopped when this session ends, whatever ends it; its own failures never end it.
        let _stats_stream = self.stats_stream.as_ref().map(|s| {
            let stop = CancellationToken::new();
            s.spawn(stop.clone());
            stop.drop_guard()
        });

        let mut stream = match stream.take() {
            Some(s) => s,
            None => match pending.await {
                Ok(s) => s,
                Err(e) => return e.into(),
            },
        };
        self.ingest.new_stream();
        let mut refreshing: Option<Refreshing> = Some(self.objects_call());
        // Drops the counters of removed pods and label values past their retention.
        let mut sweep = tokio::time::interval(self.ingest.inventory.sweep_period());
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = refreshing
                .is_none()
                .then(|| self.ingest.stale.due())
                .flatten();
            let publish_due = self.pace.due();
            tokio::select! {
                chunk = stream.next_chunk() => {
                    let chunk = match chunk {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => return self.end_stream(SessionEnd::Eof),
                        Err(e) => return self.end_stream(SessionEnd::Stream(e)),
                    };
                    let (now, nanos) = (Instant::now(), now_nanos());
                    let pushed = self.ingest.push(&chunk, now, nanos);
                    if let Err(e) = pushed {
                        self.publish();
                        self.client.note_oversized();
                        return e.into();
                    }
                    if self.ingest.take_changed() && self.pace.changed(now) {
                        self.publish();
                    }
                }
                _ = tokio::time::sleep_until(publish_due.unwrap_or_else(Instant::now)), if publish_due.is_some() => {
                    self.publish();
                }
                listed = async {
                    match refreshing.as_mut() {
                        Some(call) => call.await,
                        None => std::future::pending().await,
                    }
                }, if refreshing.is_some() => {
                    refreshing = None;
                    let (listed, object_lists, first) = listed;
                    match listed {
                        Ok((containers, pods)) => self.ingest.inventory.refresh(containers, pods),
                        // The next change, or the next session's resync, lists them again.
                        Err(e) => tracing::debug!(engine = %self.engine, "refresh failed: {e}"),
                    }
                    objects::apply(&mut self.ingest.inventory, object_lists, &self.engine, first);
                    self.publish();
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    refreshing = Some(self.refresh_call());
                }
                _ = sweep.tick() => {
                    if self.ingest.inventory.sweep(now_nanos()) {
                        self.publish();
                    }
                }
            }
        }
    }

    /// Sends the follow-up list calls for what events left stale.
    fn refresh_call(&mut self) -> Refreshing {
        let request = self.ingest.stale.take(Instant::now());
        let client = self.client.clone();
        Box::pin(async move {
            let listed = async {
                let containers = match request.containers {
                    Some(ids) => client.containers_with_ids(&ids).await?,
                    None => client.containers().await?,
                };
                let pods = client.pods_with_ids(&request.pods).await?;
                Ok((containers, pods))
            };
            let (listed, objects) =
                tokio::join!(listed, objects::list(&client, request.objects, false));
            (listed, objects, false)
        })
    }

    /// Every object family and the engine's components, listed just after the resync rather
    /// than with it: `/libpod/info` asks conmon and the OCI runtime for their versions (half a
    /// second on Podman 4.3.1), and these extras must never delay readiness.
    fn objects_call(&self) -> Refreshing {
        let client = self.client.clone();
        Box::pin(async move {
            let objects = objects::list(&client, objects::ObjectKinds::ALL, true).await;
            (Ok((Vec::new(), Vec::new())), objects, true)
        })
    }

    /// A stream cut mid-line (a Podman restart) leaves a partial event: it is not applied and
    /// not counted as undecodable, because the reconnect's `since` replays it whole.
    fn end_stream(&mut self, end: SessionEnd) -> SessionEnd {
        if let Some(partial) = self.ingest.end_stream() {
            tracing::debug!(
                engine = %self.engine,
                "dropped a {}-byte partial event at the end of the stream; the reconnect replays it",
                partial.len()
            );
        }
        end
    }
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}
