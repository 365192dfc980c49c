//! The render against two independent references: the golden text recorded before the metrics
//! module was restructured, and prometheus-client's own encoding of the same families computed
//! naively from the same fixture inventory.

use std::collections::{BTreeMap, BTreeSet};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::*;
use crate::inventory::{Inventory, PodState};
use crate::snapshot::{EngineStatus, EngineView};

/// The fixture's engines published with statuses, and the own registry with counts set.
fn fixture_metrics() -> (Metrics, Engines) {
    let inventories = fixture::inventories();
    let names: Vec<&str> = inventories.iter().map(|(n, _)| *n).collect();
    let (registry, instruments) = register_instruments(&names);
    let (engines, publishers) = Engines::new(
        inventories
            .iter()
            .map(|(n, inv)| (n.to_string(), format!("unix:///run/{n}.sock"), inv.clone()))
            .collect(),
    );
    for (((name, inv), publisher), i) in inventories.iter().zip(&publishers).zip(&instruments) {
        let alpha = *name == "alpha";
        let status = EngineStatus {
            connected: alpha,
            synced: alpha,
            reason: (!alpha).then(|| "connecting".into()),
            version: alpha.then(|| "4.3.1".into()),
            api_version: alpha.then(|| "4.3.1".into()),
        };
        publisher.publish(&status, inv);
        if alpha {
            i.reconnects.inc_by(3);
            i.resyncs.inc_by(4);
            i.decode_errors.inc_by(1);
            i.stream_errors.inc_by(2);
            i.duplicates_dropped.inc_by(5);
            i.set_last_event_nanos(1_795_976_300_050_000_001);
        }
    }
    (Metrics::new(engines.clone(), registry), engines)
}

fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}:\n want {w:?}\n  got {g:?}", i + 1);
        }
    }
    format!(
        "lengths differ: want {} lines, got {}",
        want.lines().count(),
        got.lines().count()
    )
}

/// The render of the fixture inventory equals the golden text recorded before the metrics module
/// was restructured, in both formats (samples compared per family, order-free).
#[test]
fn render_equals_the_recorded_golden_text() {
    let (metrics, _) = fixture_metrics();
    for (openmetrics, file) in [
        (false, "metrics-golden.txt"),
        (true, "metrics-golden-openmetrics.txt"),
    ] {
        let got = fixture::normalize(&metrics.render(openmetrics).unwrap());
        let path = format!("{}/src/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        let want = std::fs::read_to_string(&path).unwrap();
        assert!(
            got == want,
            "render differs from {file}:\n{}",
            first_difference(&want, &got)
        );
    }
}

/// The hand-written families equal prometheus-client's encoding of the same families, computed
/// naively from the same snapshots: every HELP, TYPE and series byte for byte, and values equal
/// as numbers (prometheus-client rounds unix times through a float; sealwatch writes them exact).
#[test]
fn hand_written_families_equal_prometheus_clients_encoding() {
    let (metrics, engines) = fixture_metrics();
    let mut reference = Registry::default();
    reference.register_collector(Box::new(Naive(engines.views())));
    for openmetrics in [false, true] {
        let ours = inventory_families(&metrics.render(openmetrics).unwrap());
        let mut theirs = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut theirs, &reference).unwrap();
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut theirs, &reference).unwrap();
        }
        let theirs = inventory_families(&theirs);
        assert_eq!(
            ours.lines().count(),
            theirs.lines().count(),
            "{}",
            first_difference(&theirs, &ours)
        );
        for (o, t) in ours.lines().zip(theirs.lines()) {
            if o == t {
                continue;
            }
            let split = |l: &str| {
                let (series, value) = l.rsplit_once(' ').unwrap_or((l, ""));
                (series.to_owned(), value.parse::<f64>().unwrap_or(f64::NAN))
            };
            let ((os, ov), (ts, tv)) = (split(o), split(t));
            assert_eq!(os, ts, "openmetrics={openmetrics}");
            // Within a few ulps: a float divided from nanoseconds against the exact decimal.
            assert!((ov - tv).abs() <= tv.abs() * 1e-15, "{o:?} vs {t:?}");
        }
    }
}

/// Only the families derived from the inventory, normalised: `sealwatch_*`, `process_*` and
/// `# EOF` are left out.
fn inventory_families(text: &str) -> String {
    let mut keep = true;
    let mut out = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let name = rest.split(' ').nth(1).unwrap_or("");
            keep = !(name.is_empty()
                || name.starts_with("sealwatch_")
                || name.starts_with("process_"));
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    fixture::normalize(&out)
}

/// Every inventory family, computed the plain way (ordered maps, one pass per family) and
/// encoded by prometheus-client.
struct Naive(Vec<EngineView>);

impl std::fmt::Debug for Naive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Naive")
    }
}

type Series = BTreeMap<Vec<(String, String)>, f64>;

fn labels(pairs: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), (*v)?.to_string())))
        .collect()
}

fn emit(
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
            MetricType::Counter => ConstCounter::new(v as u64).encode(m)?,
            _ if v.fract() == 0.0 && v.abs() < 1e15 => ConstGauge::new(v as i64).encode(m)?,
            _ => ConstGauge::new(v).encode(m)?,
        }
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
        let mut by_state = Series::new();
        let mut by_pod = Series::new();
        let mut by_label = Series::new();
        let mut pods = Series::new();
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
        for v in &self.0 {
            let (e, inv) = (Some(&*v.name), &v.inventory);
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
                *pods
                    .entry(labels(&[
                        ("engine", e),
                        ("state", Some(PodState::derive(states).as_str())),
                    ]))
                    .or_default() += 1.0;
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
                    with(&[
                        ("image", Some(&ct.image)),
                        ("project", project.map(String::as_str)),
                    ]),
                    1.0,
                );
                c_state.insert(with(&[("state", Some(&ct.state))]), 1.0);
                let mut l = labels(&head[..3]);
                let mut seen = BTreeSet::new();
                let allow = inv.label_policy().allowlist();
                for (k, val) in ct.labels.iter().filter(|(k, _)| allow.allows(k)) {
                    if seen.insert(label_name(k)) {
                        l.push((label_name(k), val.clone()));
                    }
                    if !ct.infra {
                        let folded = inv.label_policy().folded(k, val).unwrap_or_default();
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
        )
    }
}
