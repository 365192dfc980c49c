//! Lifecycle timings: how long each container run lasted (start to death) and how long a
//! started container took to report `healthy`, as histograms by pod; run durations also by
//! allowlisted label key and value (admitted and folded by `labels`, dropped by `retention`
//! like the per-label event counters).
//!
//! Owns the bucket bounds, the histograms and the start time of each container's current run.
//! Times are Podman's event timestamps only (the `start`, `died` and `health_status` events), so
//! every observation can be recomputed from `podman events`; the lists' `StartedAt` never enters.
//! Observed when an event is counted, like the event counters, and never reset. Pure: no I/O,
//! no clock.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::podman::wire::Event;

const SECOND: i64 = 1_000_000_000;

/// `podman_container_run_duration_seconds` buckets, in nanoseconds: half a second to a week.
/// Crash loops die within seconds of their start (0.5 s to 10 s tell a container that fails at
/// once from one that fails in its first request); batch jobs take minutes; services run for
/// hours to days. Roughly ×3 per step keeps each range readable with 14 buckets.
pub const RUN_BUCKETS: &[i64] = &[
    SECOND / 2,
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    30 * SECOND,
    60 * SECOND,
    300 * SECOND,
    900 * SECOND,
    3_600 * SECOND,
    6 * 3_600 * SECOND,
    24 * 3_600 * SECOND,
    7 * 24 * 3_600 * SECOND,
];

/// `podman_container_startup_to_healthy_seconds` buckets, in nanoseconds: half a second to an
/// hour. A healthcheck runs every 30 s by default, so most services become healthy at its first
/// or second run (30 s, 60 s) or within their start period; the low buckets catch tight
/// intervals, the high ones slow starters (database recovery, migrations).
pub const HEALTHY_BUCKETS: &[i64] = &[
    SECOND / 2,
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    20 * SECOND,
    30 * SECOND,
    45 * SECOND,
    60 * SECOND,
    120 * SECOND,
    300 * SECOND,
    900 * SECOND,
    3_600 * SECOND,
];

/// One histogram: per-bucket counts (not cumulative), the total and the exact sum.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// `counts[i]`: observations in (bounds[i-1], bounds[i]]; the last entry is above every
    /// bound.
    pub counts: Vec<u64>,
    pub count: u64,
    /// Nanoseconds; an i128 cannot overflow with any number of observations of any event times.
    pub sum_nanos: i128,
}

impl Histogram {
    fn observe(&mut self, bounds: &[i64], nanos: i64) {
        if self.counts.len() != bounds.len() + 1 {
            self.counts = vec![0; bounds.len() + 1];
        }
        let i = bounds.partition_point(|b| *b < nanos);
        self.counts[i] += 1;
        self.count += 1;
        self.sum_nanos += i128::from(nanos);
    }

    /// Cumulative counts per bound (`le`), then the total (`+Inf`).
    pub fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().scan(0u64, |acc, n| {
            *acc += n;
            Some(*acc)
        })
    }
}

/// Where a container's current run stands.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    /// Podman's time of the run's `start` event.
    started: i64,
    /// A `healthy` status was seen in this run.
    healthy: bool,
}

/// Both histograms keyed by pod ID (`None` outside a pod), run durations also by admitted
/// label key and value, and the runs in progress.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// Each histogram behind its own `Arc`: the first observation after a snapshot was
    /// published copies the map node holding it, and that copy then bumps reference counts
    /// instead of copying every histogram's buckets in the node.
    pub run_durations: imbl::HashMap<Option<Arc<str>>, Arc<Histogram>>,
    pub startup_to_healthy: imbl::HashMap<Option<Arc<str>>, Arc<Histogram>>,
    /// `podman_label_container_run_duration_seconds{label, value}`: keys and values as
    /// `LabelPolicy::admit` named them (`__other__` past the caps).
    pub label_run_durations: imbl::HashMap<(Arc<str>, Arc<str>), Arc<Histogram>>,
    /// The runs in progress, by container ID: only the inventory's owner reads them, so they
    /// are a plain hash map, left out of the snapshots readers get (`for_readers`). In a
    /// persistent map shared with the last snapshot, each start and death copied map nodes.
    runs: FxHashMap<Arc<str>, Run>,
}

impl Lifecycle {
    /// Whether `other` holds these very histograms (pointer comparisons only, as
    /// `Counters::ptr_eq`).
    pub fn ptr_eq(&self, other: &Lifecycle) -> bool {
        self.run_durations.ptr_eq(&other.run_durations)
            && self.startup_to_healthy.ptr_eq(&other.startup_to_healthy)
            && self.label_run_durations.ptr_eq(&other.label_run_durations)
    }

    /// The histograms, without the runs in progress (what a published snapshot needs: O(1)).
    pub fn for_readers(&self) -> Self {
        Self {
            run_durations: self.run_durations.clone(),
            startup_to_healthy: self.startup_to_healthy.clone(),
            label_run_durations: self.label_run_durations.clone(),
            runs: FxHashMap::default(),
        }
    }

    /// Observes a container event counted for `pod`: a `start` begins a run, a `died` ends it
    /// (one run duration), the first `healthy` of a run is one startup time, and a `remove`
    /// forgets the container. A run whose `start` sealwatch never saw (it began before
    /// sealwatch started, beyond the replay) is not observed. Returns the run duration observed
    /// (nanoseconds), for the caller to observe it by label too (`observe_label_run`).
    pub fn observe(&mut self, ev: &Event, pod: Option<&Arc<str>>) -> Option<i64> {
        self.observe_held(ev, None, pod)
    }

    /// `observe`, with the event's container ID as the inventory holds it (if it does), so that
    /// a run is keyed without a new string.
    pub fn observe_held(
        &mut self,
        ev: &Event,
        held_id: Option<&Arc<str>>,
        pod: Option<&Arc<str>>,
    ) -> Option<i64> {
        let id = ev.id();
        let t = ev.nanos();
        match ev.action() {
            "start" => {
                self.runs.insert(
                    held_id.cloned().unwrap_or_else(|| Arc::from(id)),
                    Run {
                        started: t,
                        healthy: false,
                    },
                );
            }
            "died" => {
                if let Some(run) = self.runs.remove(id).filter(|r| r.started <= t) {
                    Arc::make_mut(self.run_durations.entry(pod.cloned()).or_default())
                        .observe(RUN_BUCKETS, t - run.started);
                    return Some(t - run.started);
                }
            }
            "health_status" if ev.health_status() == Some("healthy") => {
                if let Some(run) = self.runs.get_mut(id).filter(|r| !r.healthy) {
                    run.healthy = true;
                    if run.started <= t {
                        let since = t - run.started;
                        Arc::make_mut(self.startup_to_healthy.entry(pod.cloned()).or_default())
                            .observe(HEALTHY_BUCKETS, since);
                    }
                }
            }
            "remove" => {
                self.runs.remove(id);
            }
            _ => {}
        }
        None
    }

    /// Observes one run duration under an admitted label key and value (as `LabelPolicy::admit`
    /// named them).
    pub fn observe_label_run(&mut self, key: Arc<str>, value: Arc<str>, nanos: i64) {
        Arc::make_mut(self.label_run_durations.entry((key, value)).or_default())
            .observe(RUN_BUCKETS, nanos);
    }

    /// Drops the label histograms that `keep` says are gone (the retention sweep).
    pub fn retain_labels(&mut self, keep: impl Fn(&Arc<str>, &Arc<str>) -> bool) {
        if self.label_run_durations.keys().any(|(k, v)| !keep(k, v)) {
            self.label_run_durations.retain(|(k, v), _| keep(k, v));
        }
    }

    /// Forgets the runs of containers that `exists` no longer knows (gone while sealwatch was
    /// away, without a `remove` event).
    pub fn retain_runs(&mut self, exists: impl Fn(&str) -> bool) {
        self.runs.retain(|id, _| exists(id));
    }

    /// Drops the histograms of pods that `keep` says are gone (the retention sweep).
    pub fn retain_pods(&mut self, keep: impl Fn(&Arc<str>) -> bool) {
        self.run_durations
            .retain(|p, _| p.as_ref().is_none_or(&keep));
        self.startup_to_healthy
            .retain(|p, _| p.as_ref().is_none_or(&keep));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: &str, id: &str, secs: f64, health: Option<&str>) -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": "container", "Action": action, "timeNano": (secs * 1e9) as i64,
            "HealthStatus": health, "Actor": {"ID": id, "Attributes": {}}
        }))
        .unwrap()
    }

    /// A run is observed from its start event to its died event, into the right bucket with an
    /// exact sum; the first healthy of a run counts once; a death without a seen start does not.
    #[test]
    fn runs_and_startups_are_timed_from_events() {
        let mut l = Lifecycle::default();
        let pod: Arc<str> = Arc::from("p");
        l.observe(&ev("died", "a", 1.0, None), None);
        l.observe(&ev("start", "a", 10.0, None), Some(&pod));
        l.observe(
            &ev("health_status", "a", 11.0, Some("starting")),
            Some(&pod),
        );
        l.observe(&ev("health_status", "a", 12.5, Some("healthy")), Some(&pod));
        l.observe(&ev("health_status", "a", 42.5, Some("healthy")), Some(&pod));
        l.observe(&ev("died", "a", 13.0, None), Some(&pod));
        l.observe(&ev("start", "a", 20.0, None), Some(&pod));
        l.observe(&ev("died", "a", 20.25, None), Some(&pod));
        let runs = &l.run_durations[&Some(pod.clone())];
        assert_eq!(runs.count, 2);
        assert_eq!(runs.sum_nanos, 3_250_000_000);
        // 0.25 s in the first bucket (le 0.5), 3 s in le 5.
        let cumulative: Vec<u64> = runs.cumulative().collect();
        assert_eq!(&cumulative[..5], &[1, 1, 1, 2, 2]);
        assert_eq!(*cumulative.last().unwrap(), 2);
        let healthy = &l.startup_to_healthy[&Some(pod)];
        assert_eq!((healthy.count, healthy.sum_nanos), (1, 2_500_000_000));
        assert!(l.run_durations.get(&None).is_none());
    }

    /// A duration equal to a bound falls in that bound's bucket (`le` means at most).
    #[test]
    fn bounds_are_inclusive() {
        let mut h = Histogram::default();
        h.observe(RUN_BUCKETS, SECOND);
        let cumulative: Vec<u64> = h.cumulative().collect();
        assert_eq!(&cumulative[..2], &[0, 1]);
    }
}
