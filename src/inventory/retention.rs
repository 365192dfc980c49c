//! How long the counters of removed pods and label values are kept, and their removal.
//!
//! Owns the rule behind `--metrics.removed-retention`: a per-pod or per-label-value counter
//! or histogram series whose pod (or label key or value) no longer exists in the inventory, and that has had
//! no event for the retention, is dropped, together with what the inventory kept for it (the
//! pod's name, the admitted key or value, which frees its place under `--labels.max-keys` and
//! `--labels.max-values`). Engine-level totals (`podman_events_total`, exits outside a pod) are
//! never dropped. Pure like the rest of the inventory: the caller passes the time in, and the
//! "gone since" marks are set by the sweeps themselves, so only the caller's clock is compared
//! with itself (never with Podman's).
//!
//! Pods are dropped by the series they show as: counters are keyed by pod ID but shown by pod
//! name, summed over the IDs that shared the name. A name is dropped only when no pod of that
//! name exists and every ID behind it has been gone, without events, for the retention; so a
//! series never goes down while it is shown (which Prometheus would read as a reset). A pod
//! created again with the same name after that starts a new series from 0, which `rate()` and
//! `increase()` read as a counter reset, correctly.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{short_id, Inventory};

/// The default of `--metrics.removed-retention`: a few scrape intervals of the slowest usual
/// setups, so every Prometheus sees the last value of a removed pod's counters.
pub const DEFAULT_REMOVED_RETENTION: Duration = Duration::from_secs(600);

/// When a sweep first found each removed thing gone (the caller's unix nanoseconds). An event
/// for it clears its mark: the retention counts from the last sign of life.
#[derive(Debug, Clone, Default)]
pub(super) struct GoneSince {
    /// By pod ID.
    pods: imbl::HashMap<Arc<str>, i64>,
    /// By admitted label key.
    keys: imbl::HashMap<Arc<str>, i64>,
    /// By admitted (label key, value).
    values: imbl::HashMap<(Arc<str>, Arc<str>), i64>,
}

impl GoneSince {
    /// A container event counted for this pod: it is not gone.
    pub(super) fn pod_seen(&mut self, pod_id: &str) {
        if !self.pods.is_empty() {
            self.pods.remove(pod_id);
        }
    }

    /// A container event counted under this label key and value.
    pub(super) fn label_seen(&mut self, key: &Arc<str>, value: &Arc<str>) {
        if !self.keys.is_empty() {
            self.keys.remove(key);
        }
        if !self.values.is_empty() {
            self.values.remove(&(key.clone(), value.clone()));
        }
    }
}

/// Whether a mark set at `since` has been there for `retention` at `now` (setting it now when
/// there is none).
fn expired<K: std::hash::Hash + Eq + Clone>(
    marks: &mut imbl::HashMap<K, i64>,
    key: &K,
    now: i64,
    retention: i64,
) -> bool {
    match marks.get(key) {
        Some(since) => now.saturating_sub(*since) >= retention,
        None => {
            marks.insert(key.clone(), now);
            false
        }
    }
}

impl Inventory {
    /// The same inventory keeping removed objects' counters for `retention`.
    pub fn with_removed_retention(mut self, retention: Duration) -> Self {
        self.removed_retention = i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX);
        self
    }

    /// How often the owner should call `sweep`: often enough that a series outlives its
    /// retention by at most a quarter of it (and at most 30 s), rarely enough to cost nothing.
    pub fn sweep_period(&self) -> Duration {
        let quarter = Duration::from_nanos(u64::try_from(self.removed_retention / 4).unwrap_or(0));
        quarter.clamp(Duration::from_millis(250), Duration::from_secs(30))
    }

    /// Drops the counters of pods and label values that are gone and have had no event for the
    /// retention, at `now` (unix nanoseconds of the caller's clock). Returns whether a series was
    /// dropped (the output changed).
    pub fn sweep(&mut self, now: i64) -> bool {
        let containers = &self.containers;
        self.lifecycle.retain_runs(|id| containers.contains_key(id));
        let pods = self.sweep_pods(now);
        let labels = self.sweep_labels(now);
        pods || labels
    }

    fn sweep_pods(&mut self, now: i64) -> bool {
        let retention = self.removed_retention;
        let names = &self.pod_names;
        let name_of = |id: &str| -> Arc<str> {
            names
                .get(id)
                .cloned()
                .unwrap_or_else(|| Arc::from(short_id(id)))
        };
        let mut live: FxHashSet<&str> = self.pods.keys().map(|k| &**k).collect();
        live.extend(self.containers.values().filter_map(|c| c.pod_id.as_deref()));
        let live_names: FxHashSet<Arc<str>> = live.iter().map(|id| name_of(id)).collect();

        let c = &self.counters;
        let mut gone: FxHashSet<&Arc<str>> = FxHashSet::default();
        let ids = c.pod_container_events.keys().map(|(p, _)| p);
        let ids = ids.chain(c.container_exits.keys().filter_map(|(p, _)| p.as_ref()));
        gone.extend(ids.chain(names.keys()).filter(|id| !live.contains(&***id)));
        // A name is kept while any of its IDs is live or recent.
        let mut keep_name: FxHashMap<Arc<str>, bool> = FxHashMap::default();
        let mut gone_names: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(gone.len());
        for id in gone {
            let name = name_of(id);
            let recent = !expired(&mut self.gone.pods, id, now, retention);
            let keep = keep_name.entry(name.clone()).or_insert(false);
            *keep |= recent || live_names.contains(&name);
            gone_names.push((id.clone(), name));
        }
        // Marks of pods that are live again (a list showed them) are stale.
        if self.gone.pods.keys().any(|id| live.contains(&**id)) {
            self.gone.pods.retain(|id, _| !live.contains(&**id));
        }
        let dropped: FxHashSet<Arc<str>> = gone_names
            .into_iter()
            .filter(|(_, name)| !keep_name.get(name).copied().unwrap_or(true))
            .map(|(id, _)| id)
            .collect();
        if dropped.is_empty() {
            return false;
        }
        let counters = &mut self.counters;
        counters
            .pod_container_events
            .retain(|(p, _), _| !dropped.contains(p));
        counters
            .container_exits
            .retain(|(p, _), _| p.as_ref().is_none_or(|p| !dropped.contains(p)));
        self.lifecycle.retain_pods(|p| !dropped.contains(p));
        self.pod_names.retain(|id, _| !dropped.contains(id));
        self.gone.pods.retain(|id, _| !dropped.contains(id));
        true
    }

    fn sweep_labels(&mut self, now: i64) -> bool {
        let retention = self.removed_retention;
        let admitted = self.labels.admitted();
        if admitted.is_empty() {
            return false;
        }
        let mut live: FxHashMap<&str, FxHashSet<&str>> = FxHashMap::default();
        for c in self.containers.values() {
            for (k, v) in c.labels.iter() {
                if admitted.contains_key(k) {
                    live.entry(k).or_default().insert(v);
                }
            }
        }
        let mut dropped_keys: Vec<Arc<str>> = Vec::new();
        let mut dropped_values: FxHashSet<(Arc<str>, Arc<str>)> = FxHashSet::default();
        let (marks, mut live_pairs) = (&mut self.gone, FxHashSet::default());
        for (key, values) in admitted.iter() {
            let Some(live_values) = live.get(&**key) else {
                if expired(&mut marks.keys, key, now, retention) {
                    dropped_keys.push(key.clone());
                }
                continue;
            };
            for value in values.keys() {
                let pair = (key.clone(), value.clone());
                if live_values.contains(&**value) {
                    live_pairs.insert(pair);
                } else if expired(&mut marks.values, &pair, now, retention) {
                    dropped_values.insert(pair);
                }
            }
        }
        // Marks of keys and values that containers have again are stale.
        if !marks.keys.is_empty() {
            marks.keys.retain(|k, _| !live.contains_key(&**k));
        }
        if !marks.values.is_empty() {
            marks.values.retain(|pair, _| !live_pairs.contains(pair));
        }
        if dropped_keys.is_empty() && dropped_values.is_empty() {
            return false;
        }
        for key in &dropped_keys {
            self.labels.forget_key(key);
            self.gone.keys.remove(key);
        }
        for (key, value) in &dropped_values {
            self.labels.forget_value(key, value);
        }
        let dropped_keys: FxHashSet<Arc<str>> = dropped_keys.into_iter().collect();
        self.gone
            .values
            .retain(|pair, _| !dropped_values.contains(pair) && !dropped_keys.contains(&pair.0));
        self.counters.label_container_events.retain(|(k, v, _), _| {
            !dropped_keys.contains(k) && !dropped_values.contains(&(k.clone(), v.clone()))
        });
        self.lifecycle.retain_labels(|k, v| {
            !dropped_keys.contains(k) && !dropped_values.contains(&(k.clone(), v.clone()))
        });
        true
    }
}
