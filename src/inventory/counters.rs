//! The event counters of the contract, and the bounded vocabulary of their `type` and `action`
//! labels.
//!
//! Owns counting only: keys are Podman IDs, never names, so a counter never moves when something
//! is renamed; names are resolved when the counters are rendered. Never reset: a resync leaves
//! every counter as it is; only the retention sweep (`inventory::retention`) drops the per-pod
//! and per-label-value counters of removed objects.

use std::sync::Arc;

/// The `type` label for an event's `Type`: the event types Podman emits; anything else is
/// counted as `other`. A `match`, not a search of a list: it runs for every event.
pub fn type_label(kind: &str) -> &'static str {
    match kind {
        "container" => "container",
        "pod" => "pod",
        "image" => "image",
        "volume" => "volume",
        "network" => "network",
        "system" => "system",
        "machine" => "machine",
        "secret" => "secret",
        "artifact" => "artifact",
        _ => "other",
    }
}

/// The `action` label for an event's `Action`: every action Podman 4.x and 5.x emit
/// (libpod/events/config.go); anything else is `other`, so a new Podman cannot grow the label
/// set without bound.
pub fn action_label(action: &str) -> &'static str {
    match action {
        "attach" => "attach",
        "auto-update" => "auto-update",
        "build" => "build",
        "checkpoint" => "checkpoint",
        "cleanup" => "cleanup",
        "commit" => "commit",
        "connect" => "connect",
        "copy" => "copy",
        "create" => "create",
        "died" => "died",
        "disconnect" => "disconnect",
        "exec" => "exec",
        "exec_died" => "exec_died",
        "exited" => "exited",
        "export" => "export",
        "health_status" => "health_status",
        "import" => "import",
        "init" => "init",
        "kill" => "kill",
        "load" => "load",
        "loadfromarchive" => "loadfromarchive",
        "log-rotation" => "log-rotation",
        "mount" => "mount",
        "pause" => "pause",
        "prune" => "prune",
        "pull" => "pull",
        "pull-error" => "pull-error",
        "push" => "push",
        "refresh" => "refresh",
        "remove" => "remove",
        "rename" => "rename",
        "renumber" => "renumber",
        "reset" => "reset",
        "restart" => "restart",
        "restore" => "restore",
        "save" => "save",
        "start" => "start",
        "stop" => "stop",
        "sync" => "sync",
        "tag" => "tag",
        "unmount" => "unmount",
        "unpause" => "unpause",
        "untag" => "untag",
        "update" => "update",
        "migrate" => "migrate",
        _ => "other",
    }
}

/// Monotonic counts of events applied to one engine's inventory. Cheap to snapshot: see
/// `CounterMap`.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// `podman_events_total{type, action}`.
    pub events: CounterMap<(&'static str, &'static str)>,
    /// `podman_pod_container_events_total`, keyed by pod ID.
    pub pod_container_events: CounterMap<(Arc<str>, &'static str)>,
    /// `podman_label_container_events_total{label, value, action}`, keys and values already
    /// folded.
    pub label_container_events: CounterMap<(Arc<str>, Arc<str>, &'static str)>,
    /// `podman_container_exits_total`, keyed by pod ID (None outside a pod) and exit code text.
    pub container_exits: CounterMap<(Option<Arc<str>>, Arc<str>)>,
}

/// Counts by key, shaped for "many increments, a snapshot now and then": each key's slot is
/// found in a persistent index (read only once the key exists, so a published snapshot's index
/// is never copied by counting), and the counts live in chunks of plain numbers. The first
/// increment of a chunk after a snapshot was published copies that chunk (512 bytes, no
/// reference counts); every later one is an add. With persistent maps of counts, each increment
/// after a snapshot copied the path of map nodes to its key instead, cloning every key in them.
#[derive(Debug, Clone)]
pub struct CounterMap<K: std::hash::Hash + Eq + Clone> {
    slots: super::FxMap<K, usize>,
    /// Slot `i` is `chunks[i / CHUNK][i % CHUNK]`; slots are handed out in order.
    chunks: Vec<Arc<[u64; CHUNK]>>,
}

/// Counts per chunk: a copy on write is one `memcpy` of 512 bytes, and cloning the map for a
/// snapshot bumps one reference count per 64 series.
const CHUNK: usize = 64;

impl<K: std::hash::Hash + Eq + Clone> Default for CounterMap<K> {
    fn default() -> Self {
        Self {
            slots: super::FxMap::default(),
            chunks: Vec::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> CounterMap<K> {
    /// Adds one to `key`'s count (a new key starts at 1).
    pub fn bump(&mut self, key: K) {
        let slot = match self.slots.get(&key) {
            Some(&slot) => slot,
            None => {
                let slot = self.slots.len();
                if slot / CHUNK >= self.chunks.len() {
                    self.chunks.push(Arc::new([0; CHUNK]));
                }
                self.slots.insert(key, slot);
                slot
            }
        };
        if let Some(chunk) = self.chunks.get_mut(slot / CHUNK) {
            Arc::make_mut(chunk)[slot % CHUNK] += 1;
        }
    }

    /// The same index and the very same chunks of counts (see `Counters::ptr_eq`).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.slots.ptr_eq(&other.slots)
            && self.chunks.len() == other.chunks.len()
            && self
                .chunks
                .iter()
                .zip(&other.chunks)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }

    fn count(&self, slot: usize) -> Option<&u64> {
        self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)
    }

    /// Every key with its count, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &u64)> + '_ {
        self.slots
            .iter()
            .filter_map(move |(k, &slot)| Some((k, self.count(slot)?)))
    }

    pub fn get(&self, key: &K) -> Option<&u64> {
        self.slots.get(key).and_then(|&slot| self.count(slot))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.slots.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &u64> + '_ {
        self.iter().map(|(_, n)| n)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Keeps the keys `keep` says to keep, with their counts (the retention sweep; rare, so it
    /// rebuilds both halves, and slots stay dense).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &u64) -> bool) {
        if self.iter().all(|(k, n)| keep(k, n)) {
            return;
        }
        let mut kept = Self::default();
        for (k, &n) in self.iter() {
            if keep(k, &n) {
                let slot = kept.slots.len();
                if slot / CHUNK >= kept.chunks.len() {
                    kept.chunks.push(Arc::new([0; CHUNK]));
                }
                if let Some(chunk) = kept.chunks.get_mut(slot / CHUNK) {
                    Arc::make_mut(chunk)[slot % CHUNK] = n;
                }
                kept.slots.insert(k.clone(), slot);
            }
        }
        *self = kept;
    }
}

impl Counters {
    /// Whether `other` holds these very counts (pointer comparisons only; `false` says nothing
    /// about equality): a count that moved since was copied first, as long as one of the two
    /// is held by someone else (a snapshot, or a scrape's cache).
    pub fn ptr_eq(&self, other: &Counters) -> bool {
        self.events.ptr_eq(&other.events)
            && self
                .pod_container_events
                .ptr_eq(&other.pod_container_events)
            && self
                .label_container_events
                .ptr_eq(&other.label_container_events)
            && self.container_exits.ptr_eq(&other.container_exits)
    }
}

impl<K: std::hash::Hash + Eq + Clone> PartialEq for CounterMap<K> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, n)| other.get(k) == Some(n))
    }
}

#[cfg(test)]
impl Counters {
    /// Total of `podman_events_total` over all labels.
    pub fn total_events(&self) -> u64 {
        self.events.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_and_actions_fold_into_other() {
        assert_eq!(type_label("container"), "container");
        assert_eq!(type_label("spaceship"), "other");
        assert_eq!(action_label("died"), "died");
        assert_eq!(action_label("teleport"), "other");
    }

    /// Counts are exact, a clone taken before (a published snapshot) keeps its own counts, and
    /// `retain` keeps exactly the kept keys with their counts.
    #[test]
    fn counter_maps_count_exactly_and_snapshots_stay_apart() {
        let mut m: CounterMap<(Arc<str>, &'static str)> = CounterMap::default();
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        m.bump((a.clone(), "start"));
        m.bump((a.clone(), "start"));
        m.bump((b.clone(), "died"));
        let snapshot = m.clone();
        m.bump((a.clone(), "start"));
        m.bump((a.clone(), "died"));
        assert_eq!(m.get(&(a.clone(), "start")), Some(&3));
        assert_eq!(snapshot.get(&(a.clone(), "start")), Some(&2));
        assert_eq!(snapshot.get(&(a.clone(), "died")), None);
        assert_eq!((m.len(), snapshot.len()), (3, 2));
        assert_eq!(m.values().sum::<u64>(), 5);
        assert_ne!(m, snapshot);
        m.retain(|(pod, _), _| **pod == *"a");
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(&(b.clone(), "died")), None);
        assert_eq!(m.get(&(a.clone(), "died")), Some(&1));
        m.bump((b.clone(), "died"));
        assert_eq!(
            m.get(&(b, "died")),
            Some(&1),
            "a dropped key starts again at 1"
        );
        let mut same = CounterMap::default();
        for (k, n) in m.iter() {
            for _ in 0..*n {
                same.bump(k.clone());
            }
        }
        assert_eq!(m, same);
        // Past one chunk of slots, and a retain that drops keys from every chunk.
        let mut big: CounterMap<(Option<Arc<str>>, Arc<str>)> = CounterMap::default();
        for i in 0..200u64 {
            for _ in 0..=i % 3 {
                big.bump((None, Arc::from(i.to_string())));
            }
        }
        assert_eq!(big.len(), 200);
        assert_eq!(
            big.values().sum::<u64>(),
            (0..200u64).map(|i| i % 3 + 1).sum::<u64>()
        );
        big.retain(|(_, code), _| code.len() == 2);
        assert_eq!(big.len(), 90);
        assert_eq!(big.get(&(None, Arc::from("42"))), Some(&1));
        assert_eq!(big.get(&(None, Arc::from("43"))), Some(&2));
        assert_eq!(big.get(&(None, Arc::from("142"))), None);
    }
}
