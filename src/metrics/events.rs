//! The event counters: `podman_events_total`, `podman_pod_container_events_total`,
//! `podman_label_container_events_total` and `podman_container_exits_total`.
//!
//! Owns turning each engine's counters (keyed by pod ID inside) into series shown by pod name.
//! Several pod IDs can share a name over time (a pod removed and created again), so their counts
//! are summed per name. Never counts anything itself: the inventory does.

use super::exposition::{Exposition, Kind};
use super::{sorted, FxMap};
use crate::snapshot::EngineView;

pub fn write(out: &mut Exposition, views: &[EngineView]) {
    // Summed by the engine's index (cheaper to hash and sort than its name).
    let name = |e: usize| -> &str { &views[e].name };
    let mut events: FxMap<(usize, &str, &str), u64> = FxMap::default();
    let mut pod_events: FxMap<(usize, &str, &str), u64> = FxMap::default();
    let mut exits: FxMap<(usize, Option<&str>, &str), u64> = FxMap::default();
    let mut label_events: FxMap<(usize, &str, &str, &str), u64> = FxMap::default();
    for (e, view) in views.iter().enumerate() {
        let inv = &view.inventory;
        let counters = inv.counters();
        for ((t, a), n) in counters.events.iter() {
            *events.entry((e, t, a)).or_default() += n;
        }
        for ((pod, action), n) in counters.pod_container_events.iter() {
            *pod_events
                .entry((e, inv.pod_name(pod), action))
                .or_default() += n;
        }
        for ((pod, code), n) in counters.container_exits.iter() {
            let pod = pod.as_deref().map(|p| inv.pod_name(p));
            *exits.entry((e, pod, code)).or_default() += n;
        }
        for ((k, val, action), n) in counters.label_container_events.iter() {
            *label_events.entry((e, k, val, action)).or_default() += n;
        }
    }
    out.family(
        "podman_events",
        "Events received, by Podman's Type and Action (unknown ones as other).",
        Kind::Counter,
        sorted(events).into_iter().map(|((e, t, a), n)| {
            (
                [
                    ("engine", Some(name(e))),
                    ("type", Some(t)),
                    ("action", Some(a)),
                ],
                i128::from(n),
            )
        }),
    );
    out.family(
        "podman_pod_container_events",
        "Container events per pod and action.",
        Kind::Counter,
        sorted(pod_events).into_iter().map(|((e, p, a), n)| {
            (
                [
                    ("engine", Some(name(e))),
                    ("pod", Some(p)),
                    ("action", Some(a)),
                ],
                i128::from(n),
            )
        }),
    );
    out.family(
        "podman_label_container_events",
        "Container events per allowlisted label key and value, and action.",
        Kind::Counter,
        sorted(label_events).into_iter().map(|((e, k, val, a), n)| {
            (
                [
                    ("engine", Some(name(e))),
                    ("label", Some(k)),
                    ("value", Some(val)),
                    ("action", Some(a)),
                ],
                i128::from(n),
            )
        }),
    );
    out.family(
        "podman_container_exits",
        "Container deaths (died events) by exit code.",
        Kind::Counter,
        sorted(exits).into_iter().map(|((e, p, code), n)| {
            (
                [
                    ("engine", Some(name(e))),
                    ("pod", p),
                    ("exit_code", Some(code)),
                ],
                i128::from(n),
            )
        }),
    );
}
