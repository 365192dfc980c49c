//! The reference for the exposition test: every inventory family computed the plain way from
//! the snapshots and encoded by prometheus-client, sharing no code with the families it checks.

use std::collections::{BTreeMap, BTreeSet};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::inventory::{Inventory, PodState};
use crate::resources::Usage;
use crate::snapshot::EngineView;

/// Every inventory family, computed the plain way (ordered maps, one pass per family) and
/// encoded by prometheus-client.
pub struct Naive(pub Vec<EngineView>);

impl std::fmt::Debug for Naive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Naive")
    }
}

pub(super) type Series = BTreeMap<Vec<(String, String)>, f64>;

pub(super) fn labels(pairs: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), (*v)?.to_string())))
        .collect()
}

pub(super) fn emit(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: Series,
) -> std::fmt::Result {
    if series.is_empty() {
        return Ok(());
    }
    let mut family = enc.encode_descriptor(name, help, None, kind)?;
    for (l, v) in series {
        let m = family.encode_family(&l)?;
        match kind {
            MetricType::Counter if v.fract() != 0.0 => ConstCounter::new(v).encode(m)?,
            MetricType::Counter => ConstCounter::new(v as u64).encode(m)?,
            _ if v.fract() == 0.0 && v.abs() < 1e15 => ConstGauge::new(v as i64).encode(m)?,
            _ => ConstGauge::new(v).encode(m)?,
        }
    }
    Ok(())
}

/// Histogram series: labels to (sum in seconds, count, per-bucket (not cumulative) counts by
/// upper bound).
type Histograms = BTreeMap<Vec<(String, String)>, (f64, u64, Vec<(f64, u64)>)>;

/// Every histogram of the lifecycle families, read from `inv` and merged by pod name.
fn histograms(
    into: &mut Histograms,
    e: Option<&str>,
    inv: &Inventory,
    source: &imbl::HashMap<
        Option<std::sync::Arc<str>>,
        std::sync::Arc<crate::inventory::Histogram>,
    >,
    bounds: &[i64],
) {
    for (pod, h) in source.iter() {
        let pod = pod.as_deref().map(|p| inv.pod_name(p));
        let entry = into
            .entry(labels(&[("engine", e), ("pod", pod)]))
            .or_insert_with(|| {
                let mut b: Vec<(f64, u64)> = bounds.iter().map(|n| (*n as f64 / 1e9, 0)).collect();
                b.push((f64::INFINITY, 0));
                (0.0, 0, b)
            });
        entry.0 += h.sum_nanos as f64 / 1e9;
        entry.1 += h.count;
        for (slot, n) in entry.2.iter_mut().zip(&h.counts) {
            slot.1 += n;
        }
    }
}

fn emit_histograms(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Histograms,
) -> std::fmt::Result {
    if series.is_empty() {
        return Ok(());
    }
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (l, (sum, count, buckets)) in series {
        let mut m = family.encode_family(&l)?;
        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// The kube-state-metrics rule, written independently of `containers::sanitize_label_key`.
fn label_name(key: &str) -> String {
    let tail: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("label_{tail}")
}

fn pod_name(inv: &Inventory, id: &str) -> String {
    inv.pods()
        .find(|p| p.id == id)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| inv.pod_name(id).to_owned())
}

impl Collector for Naive {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let (gauge, counter) = (MetricType::Gauge, MetricType::Counter);
        let mut up = Series::new();
        let mut info = Series::new();
        let mut pod_info = Series::new();
        let mut events = Series::new();
        let mut pod_events = Series::new();
        let mut label_events = Series::new();
        let mut exits = Series::new();
        let mut run_durations = Histograms::new();
        let mut startup_to_healthy = Histograms::new();
        let mut label_run_durations = Histograms::new();
        let mut by_state = Series::new();
        let mut by_pod = Series::new();
        let mut by_label = Series::new();
        let mut pods = Series::new();
        let mut pod_state = Series::new();
        let (
            mut c_info,
            mut c_state,
            mut c_labels,
            mut c_started,
            mut c_exit,
            mut c_health,
            mut c_restarts,
        ) = (
            Series::new(),
            Series::new(),
            Series::new(),
            Series::new(),
            Series::new(),
            Series::new(),
            Series::new(),
        );
        let mut c_resources: Vec<Series> =
            CONTAINER_RESOURCES.iter().map(|_| Series::new()).collect();
        let mut p_resources: Vec<Series> = POD_RESOURCES.iter().map(|_| Series::new()).collect();
        for v in &self.0 {
            let (e, inv) = (Some(&*v.name), &v.inventory);
            let sample = v.stats.current(inv);
            if let Some(sample) = &sample {
                for p in inv.pods() {
                    if let Some(u) = sample.pods.get(p.id.as_str()) {
                        for (i, (_, _, _, get)) in POD_RESOURCES.iter().enumerate() {
                            if let Some(x) = get(u) {
                                p_resources[i]
                                    .insert(labels(&[("engine", e), ("pod", Some(&p.name))]), x);
                            }
                        }
                    }
                }
            }
            up.insert(labels(&[("engine", e)]), if v.ready() { 1.0 } else { 0.0 });
            if let Some(version) = v.status.version.as_deref() {
                let api = Some(v.status.api_version.as_deref().unwrap_or(""));
                info.insert(
                    labels(&[
                        ("engine", e),
                        ("version", Some(version)),
                        ("api_version", api),
                    ]),
                    1.0,
                );
            }
            for p in inv.pods() {
                let l = [
                    ("engine", e),
                    ("pod", Some(&*p.name)),
                    ("pod_id", Some(&*p.id)),
                    ("infra_id", Some(p.infra_id.as_deref().unwrap_or(""))),
                ];
                pod_info.insert(labels(&l), 1.0);
                let states: Vec<&str> = inv
                    .containers()
                    .filter(|c| c.pod_id.as_deref() == Some(&p.id))
                    .map(|c| c.state.as_str())
                    .collect();
                let state = PodState::derive(states).as_str();
                *pods
                    .entry(labels(&[("engine", e), ("state", Some(state))]))
                    .or_default() += 1.0;
                pod_state.insert(
                    labels(&[
                        ("engine", e),
                        ("pod", Some(&*p.name)),
                        ("state", Some(state)),
                    ]),
                    1.0,
                );
            }
            let c = inv.counters();
            for ((t, a), n) in c.events.iter() {
                *events
                    .entry(labels(&[
                        ("engine", e),
                        ("type", Some(t)),
                        ("action", Some(a)),
                    ]))
                    .or_default() += *n as f64;
            }
            for ((pod, a), n) in c.pod_container_events.iter() {
                let name = inv.pod_name(pod);
                *pod_events
                    .entry(labels(&[
                        ("engine", e),
                        ("pod", Some(name)),
                        ("action", Some(a)),
                    ]))
                    .or_default() += *n as f64;
            }
            for ((k, val, a), n) in c.label_container_events.iter() {
                *label_events
                    .entry(labels(&[
                        ("engine", e),
                        ("label", Some(k)),
                        ("value", Some(val)),
                        ("action", Some(a)),
                    ]))
                    .or_default() += *n as f64;
            }
            let lifecycle = inv.lifecycle();
            histograms(
                &mut run_durations,
                e,
                inv,
                &lifecycle.run_durations,
                crate::inventory::RUN_BUCKETS,
            );
            for ((k, val), h) in lifecycle.label_run_durations.iter() {
                let entry = label_run_durations
                    .entry(labels(&[
                        ("engine", e),
                        ("label", Some(k)),
                        ("value", Some(val)),
                    ]))
                    .or_insert_with(|| {
                        let mut b: Vec<(f64, u64)> = crate::inventory::RUN_BUCKETS
                            .iter()
                            .map(|n| (*n as f64 / 1e9, 0))
                            .collect();
                        b.push((f64::INFINITY, 0));
                        (0.0, 0, b)
                    });
                entry.0 += h.sum_nanos as f64 / 1e9;
                entry.1 += h.count;
                for (slot, n) in entry.2.iter_mut().zip(&h.counts) {
                    slot.1 += n;
                }
            }
            histograms(
                &mut startup_to_healthy,
                e,
                inv,
                &lifecycle.startup_to_healthy,
                crate::inventory::HEALTHY_BUCKETS,
            );
            for ((pod, code), n) in c.container_exits.iter() {
                let pod = pod.as_deref().map(|p| inv.pod_name(p));
                *exits
                    .entry(labels(&[
                        ("engine", e),
                        ("pod", pod),
                        ("exit_code", Some(code)),
                    ]))
                    .or_default() += *n as f64;
            }
            for ct in inv.containers() {
                let pod = ct.pod_id.as_deref().map(|p| pod_name(inv, p));
                let id = &ct.id[..12.min(ct.id.len())];
                let head = [
                    ("engine", e),
                    ("id", Some(id)),
                    ("name", Some(&*ct.name)),
                    ("pod", pod.as_deref()),
                ];
                let with = |extra: &[(&str, Option<&str>)]| {
                    let mut l = labels(&head);
                    l.extend(labels(extra));
                    l
                };
                let project = ct
                    .labels
                    .get("io.podman.compose.project")
                    .or(ct.labels.get("com.docker.compose.project"));
                c_info.insert(
                    with(&[("image", Some(&ct.image)), ("project", project)]),
                    1.0,
                );
                c_state.insert(with(&[("state", Some(&ct.state))]), 1.0);
                let mut l = labels(&head[..3]);
                let mut seen = BTreeSet::new();
                let policy = inv.label_policy();
                for (k, val) in ct.labels.iter() {
                    if policy.shows_key(k) && seen.insert(label_name(k)) {
                        l.push((label_name(k), val.to_owned()));
                    }
                    if !ct.infra {
                        if let Some((k, folded)) = policy.folded(k, val) {
                            *by_label
                                .entry(labels(&[
                                    ("engine", e),
                                    ("label", Some(k)),
                                    ("value", Some(folded)),
                                    ("state", Some(&ct.state)),
                                ]))
                                .or_default() += 1.0;
                        }
                    }
                }
                c_labels.insert(l, 1.0);
                if let Some(t) = ct.started_at {
                    c_started.insert(labels(&head), t as f64 / 1e9);
                }
                if let Some(code) = ct.exit_code {
                    c_exit.insert(labels(&head), code as f64);
                }
                if let Some(h) = ct.health.as_deref() {
                    c_health.insert(with(&[("status", Some(h))]), 1.0);
                }
                c_restarts.insert(labels(&head), ct.restarts as f64);
                let running = ct.state == "running" || ct.state == "paused";
                if let Some(u) = sample
                    .as_ref()
                    .filter(|_| running)
                    .and_then(|s| s.containers.get(ct.id.as_str()))
                {
                    for (i, (_, _, _, get)) in CONTAINER_RESOURCES.iter().enumerate() {
                        if let Some(x) = get(u) {
                            c_resources[i].insert(labels(&head), x);
                        }
                    }
                }
                if !ct.infra {
                    *by_state
                        .entry(labels(&[("engine", e), ("state", Some(&ct.state))]))
                        .or_default() += 1.0;
                    if let Some(p) = pod.as_deref() {
                        *by_pod
                            .entry(labels(&[
                                ("engine", e),
                                ("pod", Some(p)),
                                ("state", Some(&ct.state)),
                            ]))
                            .or_default() += 1.0;
                    }
                }
            }
        }
        let e = &mut enc;
        emit(
            e,
            "podman_up",
            "1 while the engine's event stream is open and its inventory is synced, else 0.",
            gauge,
            up,
        )?;
        emit(
            e,
            "podman_engine_info",
            "Podman engine version; 1 once the engine has answered.",
            gauge,
            info,
        )?;
        emit(
            e,
            "podman_pod_info",
            "Pod metadata; always 1.",
            gauge,
            pod_info,
        )?;
        emit(
            e,
            "podman_events",
            "Events received, by Podman's Type and Action (unknown ones as other).",
            counter,
            events,
        )?;
        emit(
            e,
            "podman_pod_container_events",
            "Container events per pod and action.",
            counter,
            pod_events,
        )?;
        emit(
            e,
            "podman_label_container_events",
            "Container events per allowlisted label key and value, and action.",
            counter,
            label_events,
        )?;
        emit(
            e,
            "podman_container_exits",
            "Container deaths (died events) by exit code.",
            counter,
            exits,
        )?;
        emit_histograms(
            e,
            "podman_container_run_duration_seconds",
            "Container runs by how long they lasted, from Podman's start event to its died event.",
            run_durations,
        )?;
        emit_histograms(
            e,
            "podman_container_startup_to_healthy_seconds",
            "Container runs by how long they took from Podman's start event to the first healthy \
             health_status event.",
            startup_to_healthy,
        )?;
        emit_histograms(
            e,
            "podman_label_container_run_duration_seconds",
            "Container runs by how long they lasted, per allowlisted label key and value.",
            label_run_durations,
        )?;
        emit(
            e,
            "podman_containers",
            "Containers in each state (infra containers excluded).",
            gauge,
            by_state,
        )?;
        emit(
            e,
            "podman_pod_containers",
            "Containers of each pod in each state (infra containers excluded).",
            gauge,
            by_pod,
        )?;
        emit(
            e,
            "podman_label_containers",
            "Containers per allowlisted label key and value, in each state.",
            gauge,
            by_label,
        )?;
        emit(
            e,
            "podman_pods",
            "Pods in each state (lower case).",
            gauge,
            pods,
        )?;
        emit(
            e,
            "podman_pod_state",
            "The pod's state (lower case), as podman pod ps shows it; always 1.",
            gauge,
            pod_state,
        )?;
        emit(
            e,
            "podman_container_info",
            "Container metadata; always 1.",
            gauge,
            c_info,
        )?;
        emit(
            e,
            "podman_container_state",
            "1 for the container's current state.",
            gauge,
            c_state,
        )?;
        emit(
            e,
            "podman_container_labels",
            "Allowlisted container labels as label_<key> labels; always 1.",
            gauge,
            c_labels,
        )?;
        emit(
            e,
            "podman_container_started_time_seconds",
            "Unix time of the container's last start.",
            gauge,
            c_started,
        )?;
        emit(
            e,
            "podman_container_exit_code",
            "Exit code of the container's last run, while it is exited.",
            gauge,
            c_exit,
        )?;
        emit(
            e,
            "podman_container_health",
            "1 for the container's current health status (containers with a healthcheck only).",
            gauge,
            c_health,
        )?;
        emit(
            e,
            "podman_container_restarts",
            "Starts seen after a death of the same container.",
            counter,
            c_restarts,
        )?;
        for ((name, help, is_counter, _), series) in CONTAINER_RESOURCES
            .iter()
            .chain(POD_RESOURCES)
            .zip(c_resources.into_iter().chain(p_resources))
        {
            emit(
                e,
                name,
                help,
                if *is_counter { counter } else { gauge },
                series,
            )?;
        }
        super::reference_objects::encode(e, &self.0)
    }
}

type Get = fn(&Usage) -> Option<f64>;

fn n(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

/// The resource families in the order `/metrics` writes them: (name, help, counter, value).
const CONTAINER_RESOURCES: &[(&str, &str, bool, Get)] = &[
    ("podman_container_cpu_seconds", "CPU time (user and system) the container used.", true, |u| u.cpu_nanos.map(|v| v as f64 / 1e9)),
    ("podman_container_cpu_system_seconds", "System CPU time the container used.", true, |u| u.cpu_system_nanos.map(|v| v as f64 / 1e9)),
    ("podman_container_memory_usage_bytes", "Memory charged to the container's cgroup, page cache included.", false, |u| n(u.memory_bytes)),
    ("podman_container_memory_working_set_bytes", "Memory usage minus inactive file pages (the working set, as cAdvisor computes it).", false, |u| n(u.working_set_bytes)),
    ("podman_container_memory_limit_bytes", "The container's memory limit; absent when unlimited.", false, |u| n(u.memory_limit_bytes)),
    ("podman_container_pids", "Processes and threads in the container.", false, |u| n(u.pids)),
    ("podman_container_network_receive_bytes", "Bytes received on the container's network namespace (all interfaces but lo); absent when it shares another container's or the host's.", true, |u| n(u.network.map(|x| x.receive_bytes))),
    ("podman_container_network_transmit_bytes", "Bytes sent from the container's network namespace (all interfaces but lo).", true, |u| n(u.network.map(|x| x.transmit_bytes))),
    ("podman_container_network_receive_packets", "Packets received on the container's network namespace (all interfaces but lo).", true, |u| n(u.network.map(|x| x.receive_packets))),
    ("podman_container_network_transmit_packets", "Packets sent from the container's network namespace (all interfaces but lo).", true, |u| n(u.network.map(|x| x.transmit_packets))),
    ("podman_container_network_receive_errors", "Receive errors on the container's network namespace (all interfaces but lo).", true, |u| n(u.network.map(|x| x.receive_errors))),
    ("podman_container_network_transmit_errors", "Transmit errors on the container's network namespace (all interfaces but lo).", true, |u| n(u.network.map(|x| x.transmit_errors))),
    ("podman_container_block_read_bytes", "Bytes the container read from block devices.", true, |u| n(u.block_read_bytes)),
    ("podman_container_block_write_bytes", "Bytes the container wrote to block devices.", true, |u| n(u.block_write_bytes)),
    ("podman_container_oom_events", "Processes of the container the kernel's OOM killer killed.", true, |u| n(u.oom_kills)),
];

const POD_RESOURCES: &[(&str, &str, bool, Get)] = &[
    (
        "podman_pod_cpu_seconds",
        "CPU time (user and system) of the pod's cgroup: its containers, infra included.",
        true,
        |u| u.cpu_nanos.map(|v| v as f64 / 1e9),
    ),
    (
        "podman_pod_memory_usage_bytes",
        "Memory charged to the pod's cgroup, page cache included.",
        false,
        |u| n(u.memory_bytes),
    ),
    (
        "podman_pod_memory_working_set_bytes",
        "The pod cgroup's memory usage minus inactive file pages.",
        false,
        |u| n(u.working_set_bytes),
    ),
    (
        "podman_pod_pids",
        "Processes and threads in the pod's cgroup.",
        false,
        |u| n(u.pids),
    ),
];
