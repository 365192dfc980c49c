//! The resource families: per container (`podman_container_cpu_seconds_total`, memory, pids,
//! network, block I/O, OOM kills), per pod from the pod's own cgroup (`podman_pod_cpu_seconds_total`,
//! memory, pids), and the exporter's own view of its sources (`sealwatch_engine_stats_source`,
//! `sealwatch_stats_samples_total`, `sealwatch_stats_read_failures_total`).
//!
//! Owns which numbers of a `Usage` become which series. A container's series exist only while
//! the scrape's snapshot shows it running or paused and its engine's sample has it; a pod's while
//! the snapshot has the pod and the sample has its cgroup. Never samples: `resources` does, and
//! `Metrics::render` hands the samples in.

use std::sync::Arc;

use super::exposition::{self, push_int, push_seconds, push_value, Exposition, Kind};
use crate::resources::{Sample, Usage};
use crate::snapshot::EngineView;

/// A number of a `Usage`: bytes and counts as integers, CPU time as exact seconds.
enum Value {
    Int(u64),
    Nanos(u64),
}

type Getter = fn(&Usage) -> Option<Value>;

/// Per-container families: (stem, help, kind, getter), in output order.
const CONTAINER_FAMILIES: &[(&str, &str, Kind, Getter)] = &[
    (
        "podman_container_cpu_seconds",
        "CPU time (user and system) the container used.",
        Kind::Counter,
        |u| u.cpu_nanos.map(Value::Nanos),
    ),
    (
        "podman_container_cpu_system_seconds",
        "System CPU time the container used.",
        Kind::Counter,
        |u| u.cpu_system_nanos.map(Value::Nanos),
    ),
    (
        "podman_container_memory_usage_bytes",
        "Memory charged to the container's cgroup, page cache included.",
        Kind::Gauge,
        |u| u.memory_bytes.map(Value::Int),
    ),
    (
        "podman_container_memory_working_set_bytes",
        "Memory usage minus inactive file pages (the working set, as cAdvisor computes it).",
        Kind::Gauge,
        |u| u.working_set_bytes.map(Value::Int),
    ),
    (
        "podman_container_memory_limit_bytes",
        "The container's memory limit; absent when unlimited.",
        Kind::Gauge,
        |u| u.memory_limit_bytes.map(Value::Int),
    ),
    (
        "podman_container_pids",
        "Processes and threads in the container.",
        Kind::Gauge,
        |u| u.pids.map(Value::Int),
    ),
    (
        "podman_container_network_receive_bytes",
        "Bytes received on the container's network namespace (all interfaces but lo); absent when it shares another container's or the host's.",
        Kind::Counter,
        |u| u.network.map(|n| Value::Int(n.receive_bytes)),
    ),
    (
        "podman_container_network_transmit_bytes",
        "Bytes sent from the container's network namespace (all interfaces but lo).",
        Kind::Counter,
        |u| u.network.map(|n| Value::Int(n.transmit_bytes)),
    ),
    (
        "podman_container_network_receive_packets",
        "Packets received on the container's network namespace (all interfaces but lo).",
        Kind::Counter,
        |u| u.network.map(|n| Value::Int(n.receive_packets)),
    ),
    (
        "podman_container_network_transmit_packets",
        "Packets sent from the container's network namespace (all interfaces but lo).",
        Kind::Counter,
        |u| u.network.map(|n| Value::Int(n.transmit_packets)),
    ),
    (
        "podman_container_network_receive_errors",
        "Receive errors on the container's network namespace (all interfaces but lo).",
        Kind::Counter,
        |u| u.network.map(|n| Value::Int(n.receive_errors)),
    ),
    (
        "podman_container_network_transmit_errors",
        "Transmit errors on the container's network namespace (all interfaces but lo).",
        Kind::Counter,
        |u| u.network.map(|n| Value::Int(n.transmit_errors)),
    ),
    (
        "podman_container_block_read_bytes",
        "Bytes the container read from block devices.",
        Kind::Counter,
        |u| u.block_read_bytes.map(Value::Int),
    ),
    (
        "podman_container_block_write_bytes",
        "Bytes the container wrote to block devices.",
        Kind::Counter,
        |u| u.block_write_bytes.map(Value::Int),
    ),
    (
        "podman_container_oom_events",
        "Processes of the container the kernel's OOM killer killed.",
        Kind::Counter,
        |u| u.oom_kills.map(Value::Int),
    ),
];

/// Per-pod families, from the pod's own cgroup.
const POD_FAMILIES: &[(&str, &str, Kind, Getter)] = &[
    (
        "podman_pod_cpu_seconds",
        "CPU time (user and system) of the pod's cgroup: its containers, infra included.",
        Kind::Counter,
        |u| u.cpu_nanos.map(Value::Nanos),
    ),
    (
        "podman_pod_memory_usage_bytes",
        "Memory charged to the pod's cgroup, page cache included.",
        Kind::Gauge,
        |u| u.memory_bytes.map(Value::Int),
    ),
    (
        "podman_pod_memory_working_set_bytes",
        "The pod cgroup's memory usage minus inactive file pages.",
        Kind::Gauge,
        |u| u.working_set_bytes.map(Value::Int),
    ),
    (
        "podman_pod_pids",
        "Processes and threads in the pod's cgroup.",
        Kind::Gauge,
        |u| u.pids.map(Value::Int),
    ),
];

/// Writes families from rows of (label text without braces, usage).
fn write_families(
    out: &mut Exposition,
    families: &[(&str, &str, Kind, Getter)],
    rows: &[(&str, &Usage)],
) {
    let openmetrics = out.openmetrics();
    let text = out.out();
    for (stem, help, kind, get) in families {
        if !rows.iter().any(|(_, u)| get(u).is_some()) {
            continue;
        }
        exposition::descriptor(text, openmetrics, stem, help, *kind);
        for (labels, usage) in rows {
            let Some(value) = get(usage) else { continue };
            text.push_str(stem);
            if *kind == Kind::Counter {
                text.push_str("_total");
            }
            text.push('{');
            text.push_str(labels);
            text.push_str("} ");
            match value {
                Value::Int(n) => push_int(text, n),
                Value::Nanos(n) => push_seconds(text, i64::try_from(n).unwrap_or(i64::MAX)),
            }
            text.push('\n');
        }
    }
}

/// The per-container families; `rows` are each shown container's `engine, id, name[, pod]`
/// label text and its usage.
pub fn write_containers(out: &mut Exposition, rows: &[(&str, &Usage)]) {
    write_families(out, CONTAINER_FAMILIES, rows);
}

/// Whether a container in `state` has resource series (a stopped one has no cgroup; a sample
/// may be older than its stop).
pub fn shows_usage(state: &str) -> bool {
    matches!(state, "running" | "paused")
}

/// The per-pod families of every engine.
pub fn write_pods(out: &mut Exposition, views: &[EngineView], samples: &[Option<Arc<Sample>>]) {
    let mut text = String::new();
    let mut rows: Vec<(std::ops::Range<usize>, &Usage)> = Vec::new();
    for (view, sample) in views.iter().zip(samples) {
        let Some(sample) = sample else { continue };
        if sample.pods.is_empty() {
            continue;
        }
        for pod in view.inventory.pods() {
            let Some(usage) = sample.pods.get(pod.id.as_str()) else {
                continue;
            };
            let start = text.len();
            push_value(&mut text, "engine=\"", &view.name);
            push_value(&mut text, ",pod=\"", &pod.name);
            rows.push((start..text.len(), usage));
        }
    }
    let rows: Vec<(&str, &Usage)> = rows.into_iter().map(|(r, u)| (&text[r], u)).collect();
    write_families(out, POD_FAMILIES, &rows);
}

/// The exporter's own families about its sources, for every engine.
pub fn write_own(out: &mut Exposition, views: &[EngineView]) {
    out.family(
        "sealwatch_engine_stats_source",
        "Where the engine's resource usage comes from (cgroup, podman or off); always 1.",
        Kind::Gauge,
        views.iter().map(|v| {
            (
                [
                    ("engine", Some(&*v.name)),
                    ("source", Some(v.stats.source().as_str())),
                ],
                1,
            )
        }),
    );
    out.family(
        "sealwatch_stats_samples",
        "Resource usage samples taken.",
        Kind::Counter,
        views
            .iter()
            .map(|v| ([("engine", Some(&*v.name))], i128::from(v.stats.samples()))),
    );
    out.family(
        "sealwatch_stats_scrape_samples",
        "Resource usage samples a scrape took itself because none taken ahead of it was fresh (the cgroup source); the others were taken just before the scrape was expected.",
        Kind::Counter,
        views.iter().filter(|v| v.stats.is_sampled()).map(|v| {
            (
                [("engine", Some(&*v.name))],
                i128::from(v.stats.scrape_samples()),
            )
        }),
    );
    out.family(
        "sealwatch_stats_read_failures",
        "Running containers whose resource usage could not be read in a sample (exited meanwhile, or not permitted); skipped.",
        Kind::Counter,
        views
            .iter()
            .map(|v| ([("engine", Some(&*v.name))], i128::from(v.stats.unreadable()))),
    );
    let streaming = || {
        views
            .iter()
            .filter(|v| v.stats.source() == crate::resources::Source::Podman)
    };
    out.family(
        "sealwatch_stats_stream_decode_errors",
        "Lines of Podman's stats stream that could not be decoded (skipped).",
        Kind::Counter,
        streaming().map(|v| {
            (
                [("engine", Some(&*v.name))],
                i128::from(v.stats.stream_decode_errors()),
            )
        }),
    );
    out.family(
        "sealwatch_stats_stream_breaks",
        "Times Podman's stats stream failed or ended and was reopened after a backoff.",
        Kind::Counter,
        streaming().map(|v| {
            (
                [("engine", Some(&*v.name))],
                i128::from(v.stats.stream_breaks()),
            )
        }),
    );
}
