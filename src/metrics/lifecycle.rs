//! The lifecycle histograms: `podman_container_run_duration_seconds` and
//! `podman_container_startup_to_healthy_seconds`, by engine and pod, and
//! `podman_label_container_run_duration_seconds` by engine and allowlisted label key and value.
//!
//! Owns turning each engine's histograms (keyed by pod ID inside) into series shown by pod name;
//! histograms of pod IDs that share a name are merged, as the event counters are summed. Never
//! times anything itself: the inventory does, from Podman's event times.

use super::exposition::{Exposition, Kind};
use super::FxMap;
use crate::inventory::{Histogram, HEALTHY_BUCKETS, RUN_BUCKETS};
use crate::snapshot::EngineView;

pub fn write(out: &mut Exposition, views: &[EngineView]) {
    let mut runs: FxMap<(usize, Option<&str>), Histogram> = FxMap::default();
    let mut healthy: FxMap<(usize, Option<&str>), Histogram> = FxMap::default();
    let mut by_label: FxMap<(usize, &str, &str), Histogram> = FxMap::default();
    for (e, view) in views.iter().enumerate() {
        let inv = &view.inventory;
        let lifecycle = inv.lifecycle();
        for ((k, v), h) in lifecycle.label_run_durations.iter() {
            merge(by_label.entry((e, k, v)).or_default(), h);
        }
        for (target, source) in [
            (&mut runs, &lifecycle.run_durations),
            (&mut healthy, &lifecycle.startup_to_healthy),
        ] {
            for (pod, h) in source.iter() {
                let pod = pod.as_deref().map(|p| inv.pod_name(p));
                merge(target.entry((e, pod)).or_default(), h);
            }
        }
    }
    family(
        out,
        views,
        "podman_container_run_duration_seconds",
        "Container runs by how long they lasted, from Podman's start event to its died event.",
        RUN_BUCKETS,
        runs,
    );
    family(
        out,
        views,
        "podman_container_startup_to_healthy_seconds",
        "Container runs by how long they took from Podman's start event to the first healthy \
         health_status event.",
        HEALTHY_BUCKETS,
        healthy,
    );
    if !by_label.is_empty() {
        let stem = "podman_label_container_run_duration_seconds";
        out.descriptor(
            stem,
            "Container runs by how long they lasted, per allowlisted label key and value.",
            Kind::Histogram,
        );
        for ((e, k, v), h) in super::sorted(by_label) {
            out.histogram(
                stem,
                &[
                    ("engine", Some(&views[e].name)),
                    ("label", Some(k)),
                    ("value", Some(v)),
                ],
                RUN_BUCKETS,
                h.sum_nanos,
                h.cumulative(),
            );
        }
    }
}

fn merge(into: &mut Histogram, h: &Histogram) {
    if into.counts.len() < h.counts.len() {
        into.counts.resize(h.counts.len(), 0);
    }
    for (a, b) in into.counts.iter_mut().zip(&h.counts) {
        *a += b;
    }
    into.count += h.count;
    into.sum_nanos += h.sum_nanos;
}

fn family(
    out: &mut Exposition,
    views: &[EngineView],
    stem: &str,
    help: &str,
    bounds: &[i64],
    series: FxMap<(usize, Option<&str>), Histogram>,
) {
    if series.is_empty() {
        return;
    }
    out.descriptor(stem, help, Kind::Histogram);
    for ((e, pod), h) in super::sorted(series) {
        out.histogram(
            stem,
            &[("engine", Some(&views[e].name)), ("pod", pod)],
            bounds,
            h.sum_nanos,
            h.cumulative(),
        );
    }
}
