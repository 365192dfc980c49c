//! The event feed behind `GET /events`: every event sealwatch counted, in sealwatch's own stable
//! shape, kept in a bounded ring for `?since=` replay and broadcast live to readers.
//!
//! Owns the record (`FeedEvent`, its `Subject` and its JSON line), the one sequence number per
//! event, the ring, the broadcast channel and the cap on concurrent feeds. Each watcher hands in
//! the events it applied through its `FeedPublisher`, right after the inventory applied them (so
//! pod names are resolved as the inventory knows them); `web::events` reads them out. The ring
//! and the broadcast are fed in one critical section, and a reader subscribes in that same
//! section: its replay (ring entries after its cursor) and its live part (the broadcast) meet
//! without a gap or an overlap. Never talks to Podman, never copies an inventory, never makes a
//! watcher wait for a reader: a reader that falls more than the buffer behind is told how many
//! events it missed and ended.
//!
//! Memory: the ring is full most of the time (10,000 events by default), so a kept event is
//! small (32 bytes, held in place in chunks of 64): what it names (engine, type, ID, name,
//! image, pod, allowlisted labels) is one `Subject` shared by every event of the same object,
//! built from the inventory's shared strings, its sequence number is its place in its chunk,
//! and its JSON is written only for a reader and never kept in the ring. A reader's replay holds
//! the ring's chunks, not copies of their events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::inventory::{Container, Inventory, Labels, LabelsRef, SharedStr};
use crate::podman::wire::{Event, ExitCodeAttr, RESERVED_ATTRIBUTES};

/// The default of `--events.buffer`: events kept for replay, and how far a live reader may fall
/// behind before it is ended.
pub const DEFAULT_BUFFER: usize = 10_000;

/// The default of `--events.max-feeds`: concurrent `/events` readers.
pub const DEFAULT_MAX_FEEDS: usize = 128;

/// The default of `--events.keepalive`: well under the idle timeouts of common proxies (nginx
/// and most load balancers close after 60 s), rare enough to cost nothing.
pub const DEFAULT_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// A container's allowlisted labels, sorted by key, in the inventory's compact form: one is kept
/// per object named in the ring. When every label of the container is allowlisted, they are the
/// container's own labels, shared.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(transparent)]
pub struct FeedLabels(Labels);

impl FeedLabels {
    /// The labels of `pairs` that `allows` lets through.
    fn filtered<'a>(
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
        allows: impl Fn(&str) -> bool,
    ) -> Self {
        Self(pairs.filter(|(k, _)| allows(k)).collect())
    }

    /// The labels of `labels` that `allows` lets through: `labels` itself when that is all.
    fn of(labels: &Labels, allows: impl Fn(&str) -> bool) -> Self {
        if labels.keys().all(&allows) {
            Self(labels.clone())
        } else {
            Self::filtered(labels.iter(), allows)
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What an event is about, as the feed names it: shared by every kept event of the same object
/// while nothing about it changes (a rename or a pod's name becoming known makes a new one).
#[derive(Debug, PartialEq)]
pub struct Subject {
    pub engine: Arc<str>,
    /// Podman's `Type`: container, pod, image, volume, network, ...
    pub kind: SharedStr,
    pub id: SharedStr,
    pub name: Option<SharedStr>,
    pub image: Option<SharedStr>,
    pub pod_id: Option<SharedStr>,
    pub pod_name: Option<SharedStr>,
    /// The container's labels whose keys `--labels.allowlist` allows.
    pub labels: FeedLabels,
}

/// One kept event, as the ring holds it (its sequence number is its place in the ring): 32
/// bytes, the ring's whole cost per event but for what it shares.
#[derive(Debug, Clone)]
struct Kept {
    /// Podman's time of the event, unix nanoseconds.
    nanos: i64,
    subject: Arc<Subject>,
    deed: Arc<Deed>,
    /// Only a `died` has one.
    exit_code: Option<u8>,
}

/// What an event says happened, apart from its exit code: one of a few dozen, shared by every
/// kept event that says it (two words held inline would make a kept event 56 bytes, not 32).
#[derive(Debug, PartialEq)]
struct Deed {
    action: SharedStr,
    health_status: Option<SharedStr>,
}

/// One event as the feed serves it: made for readers only (a replay, or the broadcast while a
/// reader is subscribed), shared by the broadcast and every live reader.
#[derive(Debug)]
pub struct FeedEvent {
    /// Position in the feed, across engines: strictly increasing, one per event.
    pub seq: u64,
    kept: Kept,
    /// The JSON object, serialised by the first reader that needs it and shared by the rest.
    json: OnceLock<Bytes>,
}

#[derive(serde::Serialize)]
struct PodRef<'a> {
    id: &'a str,
    name: Option<&'a str>,
}

/// The stable shape of one event (README, "The event feed").
#[derive(serde::Serialize)]
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
    labels: &'a FeedLabels,
    exit_code: Option<i64>,
    health_status: Option<&'a str>,
}

impl FeedEvent {
    fn new(seq: u64, kept: Kept) -> Self {
        Self {
            seq,
            kept,
            json: OnceLock::new(),
        }
    }

    pub fn subject(&self) -> &Subject {
        &self.kept.subject
    }

    pub fn engine(&self) -> &str {
        &self.kept.subject.engine
    }

    pub fn kind(&self) -> &str {
        &self.kept.subject.kind
    }

    pub fn action(&self) -> &str {
        &self.kept.deed.action
    }

    /// Podman's time of the event, unix nanoseconds.
    pub fn nanos(&self) -> i64 {
        self.kept.nanos
    }

    pub fn exit_code(&self) -> Option<i64> {
        self.kept.exit_code.map(i64::from)
    }

    pub fn health_status(&self) -> Option<&str> {
        self.kept.deed.health_status.as_deref()
    }

    /// The event as one JSON object (no trailing newline).
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| {
            let s = &*self.kept.subject;
            let shape = FeedJson {
                seq: self.seq,
                engine: &s.engine,
                time: chrono::DateTime::from_timestamp_nanos(self.kept.nanos)
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                time_unix_nano: self.kept.nanos,
                kind: &s.kind,
                action: self.action(),
                id: &s.id,
                name: s.name.as_deref(),
                image: s.image.as_deref(),
                pod: s.pod_id.as_deref().map(|id| PodRef {
                    id,
                    name: s.pod_name.as_deref(),
                }),
                labels: &s.labels,
                exit_code: self.exit_code(),
                health_status: self.health_status(),
            };
            // Strings and numbers only: serialising cannot fail.
            Bytes::from(serde_json::to_vec(&shape).unwrap_or_default())
        })
    }
}

/// Most distinct type, action and health words shared by the events that use them; beyond it (a
/// Podman sending made-up words) an event gets its own copy, so the table cannot grow unbounded.
const MAX_WORDS: usize = 256;

/// Fewest cached subjects before the cache is pruned of those no kept event uses.
const MIN_PRUNE_AT: usize = 1024;

/// A subject as last named, and the container label map it was filtered from: a `Weak`, so a
/// reused address cannot pass for the same map and the map itself is not kept alive.
#[derive(Debug)]
struct Cached {
    subject: Arc<Subject>,
    labels_from: Option<LabelsRef>,
}

/// One engine's names: the subject last named per object ID and the shared words. Pure.
#[derive(Debug, Default)]
struct Namer {
    words: rustc_hash::FxHashSet<SharedStr>,
    /// By action, the deeds with that action (at most `MAX_WORDS` in all).
    deeds: FxHashMap<SharedStr, Vec<Arc<Deed>>>,
    deed_count: usize,
    subjects: FxHashMap<SharedStr, Cached>,
    prune_at: usize,
}

/// `value` as a shared string: one of `candidates` that holds it (a pointer bump), else a copy.
fn share<'a>(
    value: &str,
    candidates: impl IntoIterator<Item = Option<&'a SharedStr>>,
) -> SharedStr {
    candidates
        .into_iter()
        .flatten()
        .find(|c| c.as_str() == value)
        .cloned()
        .unwrap_or_else(|| SharedStr::from(value))
}

impl Namer {
    fn word(&mut self, s: &str) -> SharedStr {
        if let Some(w) = self.words.get(s) {
            return w.clone();
        }
        let w = SharedStr::from(s);
        if self.words.len() < MAX_WORDS {
            self.words.insert(w.clone());
        }
        w
    }

    /// The record of `ev`, which `inv` has just applied; `before` is what the inventory knew of
    /// the container before it applied the event (a `remove` deletes the record, and a `died`
    /// carries no pod ID).
    fn keep(
        &mut self,
        engine: &Arc<str>,
        ev: &Event,
        before: Option<&Container>,
        inv: &Inventory,
    ) -> Kept {
        let subject = self.subject(engine, ev, before, inv);
        let health = ev.health_status().filter(|h| !h.is_empty());
        Kept {
            nanos: ev.nanos(),
            subject,
            deed: self.deed(ev.action(), health),
            // Podman sets the attribute on other events too (as 0): only a death has one.
            exit_code: match ev.exit_code() {
                ExitCodeAttr::Code(c) if ev.action() == "died" => Some(c),
                _ => None,
            },
        }
    }

    /// The shared deed of `action` with `health`: found by the action, then among its few.
    fn deed(&mut self, action: &str, health: Option<&str>) -> Arc<Deed> {
        let same = |d: &&Arc<Deed>| d.health_status.as_deref() == health;
        if let Some(d) = self.deeds.get(action).and_then(|ds| ds.iter().find(same)) {
            return d.clone();
        }
        let deed = Arc::new(Deed {
            action: self.word(action),
            health_status: health.map(|h| self.word(h)),
        });
        if self.deed_count < MAX_WORDS {
            self.deed_count += 1;
            self.deeds
                .entry(deed.action.clone())
                .or_default()
                .push(deed.clone());
        }
        deed
    }

    /// The subject `ev` names: the cached one while every field is the same, else a new one
    /// made of the inventory's (or the previous subject's) shared strings.
    fn subject(
        &mut self,
        engine: &Arc<str>,
        ev: &Event,
        before: Option<&Container>,
        inv: &Inventory,
    ) -> Arc<Subject> {
        let kind = self.word(ev.kind());
        let id = ev.id();
        let container = ev.kind() == "container";
        let known = if container {
            inv.container(id).map(|c| &**c).or(before)
        } else {
            None
        };
        let name = ev.attr("name").or(known.map(|c| c.name.as_str()));
        let image = ev
            .attr("image")
            .or_else(|| known.map(|c| c.image.as_str()).filter(|i| !i.is_empty()));
        let pod_id = match ev.kind() {
            "pod" => Some(id).filter(|i| !i.is_empty()),
            "container" => known
                .and_then(|c| c.pod_id.as_deref())
                .or_else(|| ev.attr("podId")),
            _ => None,
        };
        // A pod's infra container is created before the pod's own `create` names it: no name
        // then, rather than a made-up one.
        let pod_name = pod_id.and_then(|p| {
            ev.attr("name")
                .filter(|_| ev.kind() == "pod")
                .or_else(|| inv.known_pod_name(p))
        });
        let allowlist = inv.label_policy().allowlist();
        let allows = |k: &str| allowlist.allows(k);
        let attr_labels = || {
            ev.attributes()
                .filter(|(k, _)| !RESERVED_ATTRIBUTES.contains(k))
        };
        if let Some(old) = self.subjects.get(id) {
            let s = &*old.subject;
            let labels_same = match (container, known) {
                (false, _) => s.labels.is_empty(),
                (true, Some(c)) => old.labels_from.as_ref().is_some_and(|w| w.is(&c.labels)),
                (true, None) => {
                    old.labels_from.is_none()
                        && s.labels.iter().eq(attr_labels().filter(|(k, _)| allows(k)))
                }
            };
            if labels_same
                && Arc::ptr_eq(&s.engine, engine)
                && s.kind == kind
                && s.name.as_deref() == name
                && s.image.as_deref() == image
                && s.pod_id.as_deref() == pod_id
                && s.pod_name.as_deref() == pod_name
            {
                return old.subject.clone();
            }
        }
        let old = self.subjects.get(id).map(|o| o.subject.clone());
        let old = old.as_deref();
        let (labels, labels_from) = match (container, known) {
            (false, _) => (FeedLabels::default(), None),
            (true, Some(c)) => (
                FeedLabels::of(&c.labels, allows),
                Some(c.labels.downgrade()),
            ),
            (true, None) => (FeedLabels::filtered(attr_labels(), allows), None),
        };
        let subject = Arc::new(Subject {
            engine: engine.clone(),
            kind,
            id: share(id, [old.map(|o| &o.id), known.map(|c| &c.id)]),
            name: name.map(|n| {
                share(
                    n,
                    [old.and_then(|o| o.name.as_ref()), known.map(|c| &c.name)],
                )
            }),
            image: image.map(|i| {
                share(
                    i,
                    [old.and_then(|o| o.image.as_ref()), known.map(|c| &c.image)],
                )
            }),
            pod_id: pod_id.map(|p| {
                share(
                    p,
                    [
                        old.and_then(|o| o.pod_id.as_ref()),
                        known.and_then(|c| c.pod_id.as_ref()),
                    ],
                )
            }),
            pod_name: pod_name.map(|p| share(p, [old.and_then(|o| o.pod_name.as_ref())])),
            labels,
        });
        let key = subject.id.clone();
        self.subjects.insert(
            key,
            Cached {
                subject: subject.clone(),
                labels_from,
            },
        );
        if self.subjects.len() > self.prune_at {
            // Subjects only the cache still holds: no kept event (and no reader) names them.
            self.subjects
                .retain(|_, c| Arc::strong_count(&c.subject) > 1);
            self.prune_at = (self.subjects.len() * 2).max(MIN_PRUNE_AT);
        }
        subject
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

/// Events per chunk of the ring: a chunk is one allocation of 2 KiB, and a new reader's replay
/// holds about 160 pointers to chunks rather than 10,000 to events.
const CHUNK: usize = 64;

/// Consecutive kept events. The ring holds a pointer to each chunk and so does a replay that
/// started while it was kept; the ring only ever appends to its last chunk, copying it first if
/// a replay holds it (`Arc::make_mut`), so what a replay holds never changes under it.
#[derive(Debug)]
struct Chunk {
    /// The sequence number of `events[0]`; each next event has the next one.
    first_seq: u64,
    events: Vec<Kept>,
}

impl Clone for Chunk {
    /// A copy with room for the chunk's full size, as the ring appends to it.
    fn clone(&self) -> Self {
        let mut events = Vec::with_capacity(self.events.capacity());
        events.extend(self.events.iter().cloned());
        Self {
            first_seq: self.first_seq,
            events,
        }
    }
}

/// The ring: the newest events, oldest first, and the next sequence number.
#[derive(Debug)]
struct Ring {
    next_seq: u64,
    /// The events, in chunks of `chunk` (every one full but the last); the first `skip` events
    /// of the first chunk are no longer kept, and go with their chunk.
    chunks: VecDeque<Arc<Chunk>>,
    skip: usize,
    /// Most events kept.
    capacity: usize,
    /// `CHUNK`, or the capacity when that is smaller.
    chunk: usize,
    /// The broadcast to live readers, made for the first reader and dropped when the last one
    /// is gone: its slots (a power of two at least the capacity, tens of bytes each) cost
    /// nothing while nobody reads the feed.
    live: Option<broadcast::Sender<Arc<FeedEvent>>>,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        Self {
            next_seq: first_seq(),
            chunks: VecDeque::new(),
            skip: 0,
            capacity,
            chunk: CHUNK.min(capacity),
            live: None,
        }
    }

    /// Keeps `kept` as event `seq`, dropping the oldest event when the ring is full. Holds at
    /// most `chunk - 1` dropped events more than the capacity, until their chunk goes.
    fn push(&mut self, seq: u64, kept: Kept) {
        match self.chunks.back_mut() {
            Some(last) if last.events.len() < self.chunk => Arc::make_mut(last).events.push(kept),
            _ => {
                let mut events = Vec::with_capacity(self.chunk);
                events.push(kept);
                self.chunks.push_back(Arc::new(Chunk {
                    first_seq: seq,
                    events,
                }));
            }
        }
        if self.len() <= self.capacity {
            return;
        }
        self.skip += 1;
        if self
            .chunks
            .front()
            .is_some_and(|first| self.skip >= first.events.len())
        {
            self.chunks.pop_front();
            self.skip = 0;
        }
    }

    /// A replay of the kept events `want` takes: the chunks from the first one holding such an
    /// event.
    fn replay(&self, want: Want) -> Replay {
        let mut wanted = self
            .iter()
            .filter(|(seq, k)| want.wants(*seq, k))
            .map(|(seq, _)| seq);
        let Some(first_seq) = wanted.next() else {
            return Replay::default();
        };
        let left = 1 + wanted.count();
        // The chunk holding it: the last one that starts at or before it.
        let first = self
            .chunks
            .iter()
            .rposition(|c| c.first_seq <= first_seq)
            .unwrap_or(0);
        let at = self
            .chunks
            .get(first)
            .map_or(0, |c| usize::try_from(first_seq - c.first_seq).unwrap_or(0));
        Replay {
            chunks: self.chunks.iter().skip(first).cloned().collect(),
            at,
            want,
            left,
        }
    }

    /// Events kept (every chunk but the last is full).
    fn len(&self) -> usize {
        self.chunks.back().map_or(0, |last| {
            (self.chunks.len() - 1) * self.chunk + last.events.len() - self.skip
        })
    }

    /// The kept events with their sequence numbers, oldest first.
    fn iter(&self) -> impl Iterator<Item = (u64, &Kept)> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| (c.first_seq..).zip(&c.events))
            .skip(self.skip)
    }
}

#[derive(Debug)]
struct Shared {
    ring: Mutex<Ring>,
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

/// A reader's replay: the kept events after its cursor, oldest first. It holds the ring's
/// chunks from the first one it wants, as they were when it started; each event becomes a
/// `FeedEvent` (and its JSON) only when the reader takes it, and a chunk is let go once read,
/// so a hundred readers replaying the whole ring cost a pointer per 64 events each.
#[derive(Debug)]
pub struct Replay {
    chunks: VecDeque<Arc<Chunk>>,
    /// The next event's place in the first chunk.
    at: usize,
    want: Want,
    /// Wanted events not taken yet.
    left: usize,
}

/// Which kept events a replay takes.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Those whose Podman time is at or after this (unix nanoseconds).
    Since(i64),
    /// Those numbered after this.
    After(u64),
}

impl Want {
    fn wants(self, seq: u64, kept: &Kept) -> bool {
        match self {
            Want::Since(nanos) => kept.nanos >= nanos,
            Want::After(after) => seq > after,
        }
    }
}

impl Default for Replay {
    fn default() -> Self {
        Self {
            chunks: VecDeque::new(),
            at: 0,
            want: Want::After(u64::MAX),
            left: 0,
        }
    }
}

impl Iterator for Replay {
    type Item = FeedEvent;

    fn next(&mut self) -> Option<FeedEvent> {
        while self.left > 0 {
            let chunk = self.chunks.front()?;
            let Some(kept) = chunk.events.get(self.at) else {
                self.chunks.pop_front();
                self.at = 0;
                continue;
            };
            let seq = chunk.first_seq + self.at as u64;
            self.at += 1;
            if self.want.wants(seq, kept) {
                self.left -= 1;
                return Some(FeedEvent::new(seq, kept.clone()));
            }
        }
        self.chunks.clear();
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Replay {}

/// A reader's start: the kept events after its cursor, then the live channel.
pub struct Subscription {
    pub replay: Replay,
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
        Self {
            shared: Arc::new(Shared {
                ring: Mutex::new(Ring::new(buffer)),
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
            namer: Arc::default(),
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
    fn publish(&self, kept: Kept) {
        let mut ring = self.ring();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        // Only a subscribed reader needs the event as a record of its own (and its JSON).
        if let Some(live) = &ring.live {
            if live.receiver_count() > 0 {
                // A reader that just went away is not an error.
                let _ = live.send(Arc::new(FeedEvent::new(seq, kept.clone())));
            } else {
                ring.live = None;
            }
        }
        ring.push(seq, kept);
    }

    /// Starts a reader at `cursor`, or `None` when `--events.max-feeds` readers are open.
    pub fn subscribe(&self, cursor: Cursor) -> Option<Subscription> {
        let permit = self.shared.feeds.clone().try_acquire_owned().ok()?;
        let mut ring = self.ring();
        let capacity = ring.capacity;
        let live = ring
            .live
            .get_or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe();
        let after = match cursor {
            // A number this process never gave out (the clock went back across a restart):
            // the client's place is unknown, so it gets every kept event.
            Cursor::After(seq) if seq < ring.next_seq => seq,
            Cursor::After(_) => 0,
            Cursor::Now | Cursor::Since(_) => ring.next_seq - 1,
        };
        let replay = match cursor {
            Cursor::Now => Replay::default(),
            Cursor::Since(nanos) => ring.replay(Want::Since(nanos)),
            Cursor::After(_) => ring.replay(Want::After(after)),
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
    /// Only the engine's watcher locks it: never contended.
    namer: Arc<Mutex<Namer>>,
}

impl FeedPublisher {
    /// Hands over `ev`, which `inv` has just applied; `before` is the container's record from
    /// before it was applied (an `Arc` of one record, not a copy of the inventory).
    pub fn publish(&self, ev: &Event, before: Option<&Container>, inv: &Inventory) {
        let kept = self
            .namer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keep(&self.engine, ev, before, inv);
        self.feed.publish(kept);
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
            "Actor": {"ID": id, "Attributes": attrs.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()},
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
        let first = feed
            .subscribe(Cursor::Since(0))
            .unwrap()
            .replay
            .next()
            .unwrap()
            .seq;
        let mut sub = feed.subscribe(Cursor::After(first + 1)).unwrap();
        assert_eq!(sub.after, first + 1);
        for i in 5..8 {
            p.publish(&event("image", "pull", "x", i, &[]), None, &inv);
        }
        let mut seqs: Vec<u64> = sub.replay.by_ref().map(|e| e.seq - first).collect();
        while let Ok(e) = sub.live.try_recv() {
            seqs.push(e.seq - first);
        }
        assert_eq!(seqs, vec![2, 3, 4, 5, 6, 7]);
        let since = feed.subscribe(Cursor::Since(3)).unwrap();
        assert_eq!(
            since.replay.map(|e| e.seq - first).collect::<Vec<_>>(),
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
        let kept: Vec<FeedEvent> = feed.subscribe(Cursor::Since(0)).unwrap().replay.collect();
        assert!(kept[0].seq >= before, "numbered from the start time");
        let ahead = kept[2].seq + 1_000_000;
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

    /// At every capacity, below, at and above a chunk, the ring keeps exactly the newest
    /// `capacity` events in order and no more than a chunk besides; a replay keeps what it
    /// started with while the ring goes on (its chunk is copied, not written under it).
    #[test]
    fn the_ring_keeps_the_newest_events_and_a_replay_is_unchanged_by_later_ones() {
        let inv = inventory();
        for capacity in [1, 3, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
            let feed = Feed::new(capacity, 4, CancellationToken::new());
            let p = feed.publisher(Arc::from("a"));
            let mut published = 0_i64;
            let nanos_kept = |feed: &Feed| -> Vec<i64> {
                let replay = feed.subscribe(Cursor::Since(i64::MIN)).unwrap().replay;
                let told = replay.len();
                let events: Vec<FeedEvent> = replay.collect();
                assert_eq!(events.len(), told, "the replay's length is exact");
                let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
                assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
                events.iter().map(FeedEvent::nanos).collect()
            };
            for n in 0..(4 * capacity + 7) {
                p.publish(&event("image", "pull", "x", published, &[]), None, &inv);
                published += 1;
                let kept = nanos_kept(&feed);
                let from = published - published.min(capacity as i64);
                assert_eq!(
                    kept,
                    (from..published).collect::<Vec<_>>(),
                    "capacity {capacity}"
                );
                let ring = feed.ring();
                let held: usize = ring.chunks.iter().map(|c| c.events.len()).sum();
                assert!(held < capacity + CHUNK, "capacity {capacity}: {held} held");
                drop(ring);
                if n == capacity {
                    // A replay started mid-way (its last chunk still filling), read after
                    // more events: exactly what was kept when it started.
                    let mut sub = feed.subscribe(Cursor::After(0)).unwrap();
                    let at_start: Vec<i64> = nanos_kept(&feed);
                    for _ in 0..(2 * CHUNK) {
                        p.publish(&event("image", "pull", "x", published, &[]), None, &inv);
                        published += 1;
                    }
                    let replayed: Vec<i64> = sub.replay.by_ref().map(|e| e.nanos()).collect();
                    assert_eq!(replayed, at_start, "capacity {capacity}");
                }
            }
            let after = feed
                .subscribe(Cursor::Since(published - 2))
                .unwrap()
                .replay
                .map(|e| e.nanos())
                .collect::<Vec<_>>();
            assert_eq!(
                after,
                vec![published - 2, published - 1].split_off(2 - capacity.min(2))
            );
        }
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

    /// A kept event is four words at most (what it names and what it says are shared): the
    /// ring's cost per event that the README gives.
    #[test]
    fn a_kept_event_is_32_bytes_at_most() {
        assert!(std::mem::size_of::<Kept>() <= 32);
    }

    /// A container's labels are the feed's own when all are allowlisted (shared, not copied),
    /// and only the allowlisted ones otherwise.
    #[test]
    fn feed_labels_keep_only_allowlisted_keys() {
        let labels: Labels = [("app", "cart"), ("tier", "web")].into_iter().collect();
        let all = FeedLabels::of(&labels, |_| true);
        assert!(all.0.same(&labels));
        let some = FeedLabels::of(&labels, |k| k == "app");
        assert_eq!(some.iter().collect::<Vec<_>>(), [("app", "cart")]);
        assert_eq!((some.get("app"), some.get("tier")), (Some("cart"), None));
        assert!(FeedLabels::of(&labels, |_| false).is_empty());
        assert_eq!(serde_json::to_string(&some).unwrap(), r#"{"app":"cart"}"#);
    }

    /// Events of one container share one subject while nothing about it changes; a rename makes
    /// a new subject that reuses the unchanged strings (a pointer bump, not a copy). Events that
    /// say the same share one deed.
    #[test]
    fn events_of_one_object_share_one_subject() {
        let mut inv = inventory();
        let mut namer = Namer::default();
        let engine: Arc<str> = Arc::from("a");
        let mut kept = Vec::new();
        for (i, action) in ["create", "init", "start"].into_iter().enumerate() {
            let ev = event(
                "container",
                action,
                "c1",
                i as i64,
                &[("name", "web"), ("app", "cart"), ("image", "img")],
            );
            inv.apply(&ev);
            kept.push(namer.keep(&engine, &ev, None, &inv));
        }
        assert!(Arc::ptr_eq(&kept[0].subject, &kept[2].subject));
        assert!(Arc::ptr_eq(
            kept[0].subject.id.as_arc(),
            inv.container("c1").unwrap().id.as_arc()
        ));
        // Events that say the same share one deed; a health status makes another.
        let again = event("container", "start", "c1", 3, &[("name", "web")]);
        assert!(Arc::ptr_eq(
            &namer.keep(&engine, &again, None, &inv).deed,
            &kept[2].deed
        ));
        assert!(!Arc::ptr_eq(&kept[0].deed, &kept[2].deed));
        let healthy = event("container", "health_status", "c1", 4, &[]).with_health("healthy");
        let unhealthy = event("container", "health_status", "c1", 5, &[]).with_health("unhealthy");
        let (h, u) = (
            namer.keep(&engine, &healthy, None, &inv),
            namer.keep(&engine, &unhealthy, None, &inv),
        );
        assert_eq!(
            (h.deed.action.as_str(), h.deed.health_status.as_deref()),
            ("health_status", Some("healthy"))
        );
        assert_eq!(u.deed.health_status.as_deref(), Some("unhealthy"));
        assert!(Arc::ptr_eq(
            &namer.keep(&engine, &healthy, None, &inv).deed,
            &h.deed
        ));
        let rename = event("container", "rename", "c1", 3, &[("name", "shop")]);
        inv.apply(&rename);
        let renamed = namer.keep(&engine, &rename, None, &inv);
        assert!(!Arc::ptr_eq(&renamed.subject, &kept[0].subject));
        assert_eq!(renamed.subject.name.as_deref(), Some("shop"));
        assert!(Arc::ptr_eq(
            renamed.subject.id.as_arc(),
            kept[0].subject.id.as_arc()
        ));
        assert_eq!(renamed.subject.labels.get("app"), Some("cart"));
        let again = namer.keep(&engine, &rename, None, &inv);
        assert!(Arc::ptr_eq(&again.subject, &renamed.subject));
    }

    /// The subject cache keeps only what kept events still name: a churn of many objects
    /// through a small ring leaves a bounded cache.
    #[test]
    fn the_subject_cache_is_pruned_of_objects_no_event_names() {
        let feed = Feed::new(10, 4, CancellationToken::new());
        let p = feed.publisher(Arc::from("a"));
        let inv = inventory();
        for i in 0..10 * MIN_PRUNE_AT {
            let id = format!("image{i}");
            p.publish(&event("image", "pull", &id, i as i64, &[]), None, &inv);
        }
        let cached = p.namer.lock().unwrap().subjects.len();
        assert!(cached <= 2 * MIN_PRUNE_AT, "{cached} subjects cached");
        let words = p.namer.lock().unwrap().words.len();
        assert_eq!(words, 2, "image and pull");
    }

    /// The broadcast exists only while a reader is subscribed, and its events are numbered as
    /// the ring numbers them.
    #[test]
    fn the_broadcast_lives_only_while_someone_reads() {
        let feed = Feed::new(1, 4, CancellationToken::new());
        let p = feed.publisher(Arc::from("a"));
        let inv = inventory();
        p.publish(&event("image", "pull", "x", 1, &[]), None, &inv);
        assert!(feed.ring().live.is_none());
        let mut sub = feed.subscribe(Cursor::Now).unwrap();
        p.publish(&event("image", "pull", "x", 2, &[]), None, &inv);
        let live = sub.live.try_recv().unwrap();
        assert_eq!(live.seq, sub.after + 1);
        assert_eq!(live.nanos(), 2);
        drop(sub);
        p.publish(&event("image", "pull", "x", 3, &[]), None, &inv);
        assert!(feed.ring().live.is_none());
        let all = feed.subscribe(Cursor::Since(0)).unwrap();
        let all: Vec<FeedEvent> = all.replay.collect();
        assert_eq!(all.len(), 1, "a buffer of one keeps one");
        assert_eq!(all[0].seq, live.seq + 1);
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
        let kept = Namer::default().keep(&Arc::from("a"), &remove, before.as_deref(), &inv);
        let rec = FeedEvent::new(0, kept);
        let v: serde_json::Value = serde_json::from_slice(rec.json()).unwrap();
        assert_eq!(v["name"], "web");
        assert_eq!(v["pod"]["name"], "shop");
        assert_eq!(v["labels"], serde_json::json!({"app": "cart"}));
        assert_eq!(v["time"], "1970-01-01T00:00:01.000000003Z");
        assert_eq!(v["type"], "container");
    }
}
