//! The event feed behind `GET /events`: every event sealwatch counted, in sealwatch's own stable
//! shape, kept in a bounded ring for `?since=` replay and broadcast live to readers.
//!
//! Owns the record (`FeedEvent`) and its JSON line, the one sequence number per event, the ring,
//! the broadcast channel and the cap on concurrent feeds. Each watcher hands in the events it
//! applied through its `FeedPublisher`, right after the inventory applied them (so pod names
//! are resolved as the inventory knows them); `web::events` reads them out. The ring and the
//! broadcast are fed in one critical section, and a reader subscribes in that same section: its
//! replay (ring entries after its cursor) and its live part (the broadcast) meet without a gap
//! or an overlap. Never talks to Podman, never copies an inventory, never makes a watcher wait
//! for a reader: a reader that falls more than the buffer behind is told how many events it
//! missed and ended.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::inventory::{Container, Inventory};
use crate::podman::wire::{Event, ExitCodeAttr, RESERVED_ATTRIBUTES};

/// The default of `--events.buffer`: events kept for replay, and how far a live reader may fall
/// behind before it is ended.
pub const DEFAULT_BUFFER: usize = 10_000;

/// The default of `--events.max-feeds`: concurrent `/events` readers.
pub const DEFAULT_MAX_FEEDS: usize = 128;

/// The default of `--events.keepalive`: well under the idle timeouts of common proxies (nginx
/// and most load balancers close after 60 s), rare enough to cost nothing.
pub const DEFAULT_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// One event as the feed serves it. Immutable once published; shared by the ring, the
/// broadcast and every reader.
#[derive(Debug)]
pub struct FeedEvent {
    /// Position in the feed, across engines: strictly increasing, one per event.
    pub seq: u64,
    pub engine: Arc<str>,
    /// Podman's time of the event, unix nanoseconds.
    pub nanos: i64,
    pub kind: String,
    pub action: String,
    pub id: String,
    pub name: Option<String>,
    pub image: Option<String>,
    pub pod_id: Option<String>,
    pub pod_name: Option<String>,
    /// The container's labels whose keys `--labels.allowlist` allows.
    pub labels: BTreeMap<String, String>,
    pub exit_code: Option<i64>,
    pub health_status: Option<String>,
    /// The JSON object, serialised by the first reader that needs it and shared by the rest.
    json: OnceLock<Bytes>,
}

#[derive(Serialize)]
struct PodRef<'a> {
    id: &'a str,
    name: Option<&'a str>,
}

/// The stable shape of one event (README, "The event feed").
#[derive(Serialize)]
struct FeedJson<'a> {
    seq: u64,
    engine: &'a str,
    time: String,
    time_unix_nano: i64,
    #[serde(rename = "type")]
    kind: &'a str,
    action: &'a str,
    id: &'a str,
    name: Option<&'a str>,
    image: Option<&'a str>,
    pod: Option<PodRef<'a>>,
    labels: &'a BTreeMap<String, String>,
    exit_code: Option<i64>,
    health_status: Option<&'a str>,
}

impl FeedEvent {
    /// The event as one JSON object (no trailing newline).
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| {
            let shape = FeedJson {
                seq: self.seq,
                engine: &self.engine,
                time: chrono::DateTime::from_timestamp_nanos(self.nanos)
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                time_unix_nano: self.nanos,
                kind: &self.kind,
                action: &self.action,
                id: &self.id,
                name: self.name.as_deref(),
                image: self.image.as_deref(),
                pod: self.pod_id.as_deref().map(|id| PodRef {
                    id,
                    name: self.pod_name.as_deref(),
                }),
                labels: &self.labels,
                exit_code: self.exit_code,
                health_status: self.health_status.as_deref(),
            };
            // Strings and numbers only: serialising cannot fail.
            Bytes::from(serde_json::to_vec(&shape).unwrap_or_default())
        })
    }

    /// Builds the record of `ev`, which `inv` has just applied; `before` is what the inventory
    /// knew of the container before it applied the event (a `remove` deletes the record, and a
    /// `died` carries no pod ID).
    fn new(engine: Arc<str>, ev: &Event, before: Option<&Container>, inv: &Inventory) -> Self {
        let id = ev.actor.id.clone();
        let container = ev.kind == "container";
        let known = if container {
            inv.container(&id).map(|c| &**c).or(before)
        } else {
            None
        };
        let pod_id: Option<String> = match ev.kind.as_str() {
            "pod" => Some(id.clone()).filter(|i| !i.is_empty()),
            "container" => known
                .and_then(|c| c.pod_id.as_deref().map(str::to_owned))
                .or_else(|| ev.attr("podId").map(str::to_owned)),
            _ => None,
        };
        // A pod's infra container is created before the pod's own `create` names it: no name
        // then, rather than a made-up one.
        let pod_name = pod_id.as_deref().and_then(|p| {
            ev.attr("name")
                .filter(|_| ev.kind == "pod")
                .or_else(|| inv.known_pod_name(p))
                .map(str::to_owned)
        });
        let allowlist = inv.label_policy().allowlist();
        let labels: BTreeMap<String, String> = if container {
            match known {
                Some(c) => c
                    .labels
                    .iter()
                    .filter(|(k, _)| allowlist.allows(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                None => ev
                    .actor
                    .attributes
                    .iter()
                    .filter(|(k, _)| !RESERVED_ATTRIBUTES.contains(&k.as_str()))
                    .filter(|(k, _)| allowlist.allows(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }
        } else {
            BTreeMap::new()
        };
        FeedEvent {
            seq: 0,
            engine,
            nanos: ev.nanos(),
            kind: ev.kind.clone(),
            action: ev.action.clone(),
            name: ev
                .attr("name")
                .map(str::to_owned)
                .or_else(|| known.map(|c| c.name.to_string())),
            image: ev
                .attr("image")
                .map(str::to_owned)
                .or_else(|| known.map(|c| c.image.to_string()).filter(|i| !i.is_empty())),
            id,
            pod_id,
            pod_name,
            labels,
            // Podman sets the attribute on other events too (as 0): only a death has one.
            exit_code: match ev.exit_code() {
                ExitCodeAttr::Code(c) if ev.action == "died" => Some(i64::from(c)),
                _ => None,
            },
            health_status: ev.health_status.clone().filter(|h| !h.is_empty()),
            json: OnceLock::new(),
        }
    }
}

/// The first sequence number of this process: the microseconds since the epoch at start, so a
/// restarted sealwatch numbers above the previous process (which would have had to publish more
/// than a million events a second to overtake it) and an SSE client that reconnects to it with an
/// old `Last-Event-ID` gets every kept event instead of skipping the new process's first ones.
/// Below 2^53 until the year 2255, so JavaScript reads it exactly.
fn first_seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(1))
        .max(1)
}

/// The ring: the newest events, oldest first, and the next sequence number.
#[derive(Debug)]
struct Ring {
    next_seq: u64,
    events: VecDeque<Arc<FeedEvent>>,
    capacity: usize,
}

#[derive(Debug)]
struct Shared {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<FeedEvent>>,
    feeds: Arc<Semaphore>,
    max_feeds: usize,
    /// Cancelled at shutdown: every feed ends, so the drain is not held by open streams.
    closed: CancellationToken,
}

/// The feed of every engine; cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    shared: Arc<Shared>,
    /// `--events.keepalive`: how often an idle reader gets a keep-alive.
    keep_alive: std::time::Duration,
}

/// Where a reader's replay starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cursor {
    /// Live events only.
    Now,
    /// Kept events whose Podman time is at or after this (unix nanoseconds), then live.
    Since(i64),
    /// Kept events after this sequence number (SSE `Last-Event-ID`), then live.
    After(u64),
}

/// A reader's start: the kept events after its cursor, then the live channel.
pub struct Subscription {
    pub replay: Vec<Arc<FeedEvent>>,
    /// The sequence number the reader has seen up to: live events at or below it were replayed
    /// (or, for `Cursor::After`, sent before the reconnect).
    pub after: u64,
    pub live: broadcast::Receiver<Arc<FeedEvent>>,
    /// Holds the reader's place under `--events.max-feeds`.
    pub permit: OwnedSemaphorePermit,
    pub closed: CancellationToken,
}

impl Feed {
    /// A feed that keeps `buffer` events (at least one) and serves at most `max_feeds` readers
    /// at once; it ends every reader when `closed` is cancelled.
    pub fn new(buffer: usize, max_feeds: usize, closed: CancellationToken) -> Self {
        let buffer = buffer.max(1);
        let (live, _) = broadcast::channel(buffer);
        Self {
            shared: Arc::new(Shared {
                ring: Mutex::new(Ring {
                    next_seq: first_seq(),
                    events: VecDeque::new(),
                    capacity: buffer,
                }),
                live,
                feeds: Arc::new(Semaphore::new(max_feeds)),
                max_feeds,
                closed,
            }),
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }

    /// The same feed sending an idle reader a keep-alive every `every` (`--events.keepalive`).
    pub fn with_keep_alive(mut self, every: std::time::Duration) -> Self {
        self.keep_alive = every;
        self
    }

    pub fn keep_alive(&self) -> std::time::Duration {
        self.keep_alive
    }

    /// The publisher one engine's watcher hands its events to.
    pub fn publisher(&self, engine: Arc<str>) -> FeedPublisher {
        FeedPublisher {
            engine,
            feed: self.clone(),
        }
    }

    pub fn max_feeds(&self) -> usize {
        self.shared.max_feeds
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent (push and pop are atomic).
        self.shared
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Numbers the event, keeps it and broadcasts it, in one critical section.
    fn publish(&self, mut ev: FeedEvent) {
        let mut ring = self.ring();
        ev.seq = ring.next_seq;
        ring.next_seq += 1;
        let ev = Arc::new(ev);
        if ring.events.len() >= ring.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(ev.clone());
        // No reader is not an error.
        let _ = self.shared.live.send(ev);
    }

    /// Starts a reader at `cursor`, or `None` when `--events.max-feeds` readers are open.
    pub fn subscribe(&self, cursor: Cursor) -> Option<Subscription> {
        let permit = self.shared.feeds.clone().try_acquire_owned().ok()?;
        let ring = self.ring();
        let live = self.shared.live.subscribe();
        let replay = match cursor {
            Cursor::Now => Vec::new(),
            Cursor::Since(nanos) => ring
                .events
                .iter()
                .filter(|e| e.nanos >= nanos)
                .cloned()
                .collect(),
            Cursor::After(seq) => ring
                .events
                .iter()
                .filter(|e| e.seq > seq)
                .cloned()
                .collect(),
        };
        let after = match cursor {
            // A number this process never gave out (the clock went back across a restart):
            // the client's place is unknown, so it gets every kept event.
            Cursor::After(seq) if seq < ring.next_seq => seq,
            Cursor::After(_) => 0,
            Cursor::Now | Cursor::Since(_) => ring.next_seq - 1,
        };
        let replay = if matches!(cursor, Cursor::After(seq) if seq >= ring.next_seq) {
            ring.events.iter().cloned().collect()
        } else {
            replay
        };
        drop(ring);
        Some(Subscription {
            replay,
            after,
            live,
            permit,
            closed: self.shared.closed.clone(),
        })
    }
}

/// One engine's way into the feed; only its watcher holds it.
#[derive(Debug, Clone)]
pub struct FeedPublisher {
    engine: Arc<str>,
    feed: Feed,
}

impl FeedPublisher {
    /// Hands over `ev`, which `inv` has just applied; `before` is the container's record from
    /// before it was applied (an `Arc` of one record, not a copy of the inventory).
    pub fn publish(&self, ev: &Event, before: Option<&Container>, inv: &Inventory) {
        self.feed
            .publish(FeedEvent::new(self.engine.clone(), ev, before, inv));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Allowlist, LabelPolicy};

    fn event(kind: &str, action: &str, id: &str, nanos: i64, attrs: &[(&str, &str)]) -> Event {
        let line = serde_json::json!({
            "Type": kind,
            "Action": action,
            "Actor": {"ID": id, "Attributes": attrs.iter().cloned().collect::<BTreeMap<_, _>>()},
            "time": nanos / 1_000_000_000,
            "timeNano": nanos,
        });
        serde_json::from_value(line).unwrap()
    }

    fn inventory() -> Inventory {
        Inventory::new(LabelPolicy::new(Allowlist::parse("app"), 10))
    }

    /// A subscriber's replay and its live part meet exactly: every event once, in order.
    #[test]
    fn replay_then_live_has_no_gap_and_no_overlap() {
        let feed = Feed::new(100, 4, CancellationToken::new());
        let p = feed.publisher(Arc::from("a"));
        let inv = inventory();
        for i in 0..5 {
            p.publish(&event("image", "pull", "x", i, &[]), None, &inv);
        }
        let first = feed.subscribe(Cursor::Since(0)).unwrap().replay[0].seq;
        let mut sub = feed.subscribe(Cursor::After(first + 1)).unwrap();
        assert_eq!(sub.after, first + 1);
        for i in 5..8 {
            p.publish(&event("image", "pull", "x", i, &[]), None, &inv);
        }
        let mut seqs: Vec<u64> = sub.replay.iter().map(|e| e.seq - first).collect();
        while let Ok(e) = sub.live.try_recv() {
            seqs.push(e.seq - first);
        }
        assert_eq!(seqs, vec![2, 3, 4, 5, 6, 7]);
        let since = feed.subscribe(Cursor::Since(3)).unwrap();
        assert_eq!(
            since
                .replay
                .iter()
                .map(|e| e.seq - first)
                .collect::<Vec<_>>(),
            vec![3, 4, 5, 6, 7]
        );
    }

    /// Numbers start above any earlier process's (from the start time), and a `Last-Event-ID`
    /// this process never gave out (a clock that went back across a restart) replays every kept
    /// event rather than skipping the new process's first ones.
    #[test]
    fn a_last_event_id_from_an_earlier_process_replays_everything_kept() {
        let before = first_seq();
        let feed = Feed::new(100, 4, CancellationToken::new());
        let p = feed.publisher(Arc::from("a"));
        let inv = inventory();
        for i in 0..3 {
            p.publish(&event("image", "pull", "x", i, &[]), None, &inv);
        }
        let kept = feed.subscribe(Cursor::Since(0)).unwrap();
        assert!(kept.replay[0].seq >= before, "numbered from the start time");
        let ahead = kept.replay[2].seq + 1_000_000;
        let sub = feed.subscribe(Cursor::After(ahead)).unwrap();
        assert_eq!(sub.after, 0);
        assert_eq!(sub.replay.len(), 3);
    }

    /// The ring keeps the newest `buffer` events; a reader that falls behind is told by how much.
    #[test]
    fn the_ring_is_bounded_and_a_slow_reader_lags() {
        let feed = Feed::new(2, 4, CancellationToken::new());
        let p = feed.publisher(Arc::from("a"));
        let inv = inventory();
        let mut sub = feed.subscribe(Cursor::Now).unwrap();
        for i in 0..5 {
            p.publish(&event("image", "pull", "x", i, &[]), None, &inv);
        }
        let all = feed.subscribe(Cursor::Since(0)).unwrap();
        assert_eq!(all.replay.len(), 2);
        assert!(matches!(
            sub.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(3))
        ));
    }

    /// Beyond `max_feeds` readers, subscribing fails until one ends.
    #[test]
    fn readers_are_capped() {
        let feed = Feed::new(2, 1, CancellationToken::new());
        let first = feed.subscribe(Cursor::Now).unwrap();
        assert!(feed.subscribe(Cursor::Now).is_none());
        drop(first);
        assert!(feed.subscribe(Cursor::Now).is_some());
    }

    /// A removed container keeps its name, pod and allowlisted labels in the feed; the JSON has
    /// nanosecond times.
    #[test]
    fn records_resolve_pods_and_keep_allowlisted_labels() {
        let mut inv = inventory();
        let pod = event("pod", "create", "p1", 1, &[("name", "shop")]);
        inv.apply(&pod);
        let create = event(
            "container",
            "create",
            "c1",
            2,
            &[
                ("name", "web"),
                ("podId", "p1"),
                ("app", "cart"),
                ("secret", "no"),
            ],
        );
        inv.apply(&create);
        let remove = event("container", "remove", "c1", 1_000_000_003, &[]);
        let before = inv.container("c1").cloned();
        inv.apply(&remove);
        let rec = FeedEvent::new(Arc::from("a"), &remove, before.as_deref(), &inv);
        let v: serde_json::Value = serde_json::from_slice(rec.json()).unwrap();
        assert_eq!(v["name"], "web");
        assert_eq!(v["pod"]["name"], "shop");
        assert_eq!(v["labels"], serde_json::json!({"app": "cart"}));
        assert_eq!(v["time"], "1970-01-01T00:00:01.000000003Z");
        assert_eq!(v["type"], "container");
    }
}
