//! `/metrics`: every family of the contract, rendered at scrape time from the published snapshots.
//!
//! Owns the prometheus-client registry, the scrape-time collectors (inventory gauges, event
//! counters, `sealwatch_*`, `process_*`) and format negotiation. Series exist only while their
//! container or pod does, because they are computed from the current snapshot, never stored.
//! Never calls Podman and never mutates the inventory.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::inventory::{pod_state, Container, Inventory};
use crate::state::{EngineSnapshot, Engines};

/// The classic Prometheus text format, which promtool reads.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Build facts for `sealwatch_build_info`, set by build.rs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("SEALWATCH_REVISION");
pub const RUSTC: &str = env!("SEALWATCH_RUSTC");

/// The registry behind `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(engines: Engines) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(InventoryCollector { engines }));
        registry.register_collector(Box::new(ProcessCollector));
        Self { registry }
    }

    /// Renders every family; `openmetrics` picks OpenMetrics text (ends in `# EOF`) over the
    /// classic 0.0.4 text.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(64 * 1024);
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        Ok(out)
    }
}

/// Whether an `Accept` header asks for OpenMetrics (Prometheus lists it first, with the highest q).
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or_default();
        let q_zero = params.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
        media.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
    })
}

type Labels<'a> = Vec<(&'a str, &'a str)>;

/// One family: its descriptor once, then every sample. Writing a family with no samples is
/// skipped, so a fresh exporter does not print empty families.
fn family<'a, V: Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'a>, V)>,
    mut encode_value: impl FnMut(&mut prometheus_client::encoding::MetricEncoder, V) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        let labels = labels.as_slice();
        let mut m = metric.encode_family(&labels)?;
        encode_value(&mut m, v)?;
    }
    Ok(())
}

fn gauges<'a, V: prometheus_client::encoding::EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> std::fmt::Result {
    family(enc, name, help, MetricType::Gauge, samples, |m, v| {
        m.encode_gauge(&v)
    })
}

/// `stem` without `_total`: prometheus-client appends it.
fn counters<'a>(
    enc: &mut DescriptorEncoder,
    stem: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> std::fmt::Result {
    family(enc, stem, help, MetricType::Counter, samples, |m, v| {
        m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)
    })
}

/// Renders the inventory of every engine.
#[derive(Debug)]
struct InventoryCollector {
    engines: Engines,
}

/// What one scrape derives from one engine's snapshot, computed once and shared by families.
struct EngineView<'a> {
    snap: &'a EngineSnapshot,
    /// pod ID -> the states of all its containers (infra included), for the pod's own state.
    pod_states: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> EngineView<'a> {
    fn new(snap: &'a EngineSnapshot) -> Self {
        let mut pod_states: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in snap.inventory.containers() {
            if let Some(p) = c.pod_id.as_deref() {
                pod_states.entry(p).or_default().push(&c.state);
            }
        }
        Self { snap, pod_states }
    }

    fn inv(&self) -> &'a Inventory {
        &self.snap.inventory
    }

    fn engine(&self) -> &'a str {
        &self.snap.name
    }

    fn pod_label(&self, c: &'a Container) -> Option<&'a str> {
        c.pod_id.as_deref().map(|p| self.inv().pod_name(p))
    }

    /// engine, id, name and (when in a pod) pod: the identity of a per-container series.
    fn container_labels(&self, c: &'a Container) -> Labels<'a> {
        let mut l = vec![
            ("engine", self.engine()),
            ("id", c.short_id()),
            ("name", c.name.as_str()),
        ];
        if let Some(p) = self.pod_label(c) {
            l.push(("pod", p));
        }
        l
    }

    fn counted(&self) -> impl Iterator<Item = &'a Arc<Container>> {
        self.inv().containers().filter(|c| !c.infra)
    }
}

fn lower(s: &str) -> &'static str {
    match s {
        "Running" => "running",
        "Degraded" => "degraded",
        "Paused" => "paused",
        "Exited" => "exited",
        "Stopped" => "stopped",
        "Error" => "error",
        _ => "created",
    }
}

/// `label_<key>` with every character outside `[a-zA-Z0-9_]` replaced by `_`.
pub fn sanitize_label_key(key: &str) -> String {
    let mut out = String::with_capacity(6 + key.len());
    out.push_str("label_");
    out.extend(
        key.chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' }),
    );
    out
}

impl Collector for InventoryCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let snaps = self.engines.snapshots();
        let views: Vec<EngineView> = snaps.iter().map(|s| EngineView::new(s)).collect();

        gauges(
            &mut enc,
            "podman_up",
            "1 while the engine's event stream is open and its inventory is synced, else 0.",
            views
                .iter()
                .map(|v| (vec![("engine", v.engine())], i64::from(v.snap.ready()))),
        )?;
        gauges(
            &mut enc,
            "podman_engine_info",
            "Podman engine version; 1 once the engine has answered.",
            views.iter().filter_map(|v| {
                let s = &v.snap.status;
                Some((
                    vec![
                        ("engine", v.engine()),
                        ("version", s.version.as_deref()?),
                        ("api_version", s.api_version.as_deref().unwrap_or("")),
                    ],
                    1i64,
                ))
            }),
        )?;

        // Aggregates: one pass over each engine's containers.
        let mut by_state: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        let mut by_pod: BTreeMap<(&str, &str, &str), i64> = BTreeMap::new();
        let mut by_label: BTreeMap<(&str, &str, &str, &str), i64> = BTreeMap::new();
        for v in &views {
            let policy = v.inv().label_policy();
            for c in v.counted() {
                *by_state.entry((v.engine(), &c.state)).or_default() += 1;
                if let Some(p) = v.pod_label(c) {
                    *by_pod.entry((v.engine(), p, &c.state)).or_default() += 1;
                }
                for (k, val) in c.labels.iter() {
                    if let Some(folded) = policy.folded(k, val) {
                        *by_label
                            .entry((v.engine(), k, folded, &c.state))
                            .or_default() += 1;
                    }
                }
            }
        }
        gauges(
            &mut enc,
            "podman_containers",
            "Containers in each state (infra containers excluded).",
            by_state
                .iter()
                .map(|((e, s), n)| (vec![("engine", *e), ("state", *s)], *n)),
        )?;
        gauges(
            &mut enc,
            "podman_pod_containers",
            "Containers of each pod in each state (infra containers excluded).",
            by_pod
                .iter()
                .map(|((e, p, s), n)| (vec![("engine", *e), ("pod", *p), ("state", *s)], *n)),
        )?;
        gauges(
            &mut enc,
            "podman_label_containers",
            "Containers per allowlisted label key and value, in each state.",
            by_label.iter().map(|((e, k, val, s), n)| {
                (
                    vec![
                        ("engine", *e),
                        ("label", *k),
                        ("value", *val),
                        ("state", *s),
                    ],
                    *n,
                )
            }),
        )?;

        let mut pods_by_state: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for v in &views {
            for p in v.inv().pods() {
                let states = v
                    .pod_states
                    .get(p.id.as_str())
                    .into_iter()
                    .flatten()
                    .copied();
                *pods_by_state
                    .entry((v.engine(), lower(pod_state(states))))
                    .or_default() += 1;
            }
        }
        gauges(
            &mut enc,
            "podman_pods",
            "Pods in each state (lower case).",
            pods_by_state
                .iter()
                .map(|((e, s), n)| (vec![("engine", *e), ("state", *s)], *n)),
        )?;
        gauges(
            &mut enc,
            "podman_pod_info",
            "Pod metadata; always 1.",
            views.iter().flat_map(|v| {
                v.inv().pods().map(move |p| {
                    let mut l = vec![
                        ("engine", v.engine()),
                        ("pod", p.name.as_str()),
                        ("pod_id", p.id.as_str()),
                    ];
                    l.push(("infra_id", p.infra_id.as_deref().unwrap_or("")));
                    (l, 1i64)
                })
            }),
        )?;

        gauges(
            &mut enc,
            "podman_container_info",
            "Container metadata; always 1.",
            views.iter().flat_map(|v| {
                v.inv().containers().map(move |c| {
                    let mut l = vec![
                        ("engine", v.engine()),
                        ("id", c.short_id()),
                        ("name", c.name.as_str()),
                        ("image", c.image.as_str()),
                    ];
                    if let Some(p) = v.pod_label(c) {
                        l.push(("pod", p));
                    }
                    if let Some(p) = c.project() {
                        l.push(("project", p));
                    }
                    (l, 1i64)
                })
            }),
        )?;
        gauges(
            &mut enc,
            "podman_container_state",
            "1 for the container's current state.",
            views.iter().flat_map(|v| {
                v.inv().containers().map(move |c| {
                    let mut l = v.container_labels(c);
                    l.push(("state", c.state.as_str()));
                    (l, 1i64)
                })
            }),
        )?;

        // Label series need owned keys (sanitized), so they are built as text pairs first.
        let mut label_series: Vec<(Vec<(String, &str)>, &str, &str, &str)> = Vec::new();
        for v in &views {
            let policy = v.inv().label_policy();
            for c in v.inv().containers() {
                let mut pairs: Vec<(String, &str)> = Vec::new();
                for (k, val) in c.labels.iter() {
                    if policy.allowlist().allows(k) {
                        let key = sanitize_label_key(k);
                        // Two keys that sanitize alike (a.b, a_b): keep the first.
                        if !pairs.iter().any(|(p, _)| *p == key) {
                            pairs.push((key, val.as_str()));
                        }
                    }
                }
                label_series.push((pairs, v.engine(), c.short_id(), c.name.as_str()));
            }
        }
        gauges(
            &mut enc,
            "podman_container_labels",
            "Allowlisted container labels as label_<key> labels; always 1.",
            label_series.iter().map(|(pairs, e, id, name)| {
                let mut l: Labels = vec![("engine", *e), ("id", *id), ("name", *name)];
                l.extend(pairs.iter().map(|(k, v)| (k.as_str(), *v)));
                (l, 1i64)
            }),
        )?;

        gauges(
            &mut enc,
            "podman_container_started_time_seconds",
            "Unix time of the container's last start.",
            views.iter().flat_map(|v| {
                v.inv()
                    .containers()
                    .filter_map(move |c| Some((v.container_labels(c), c.started_at? as f64 / 1e9)))
            }),
        )?;
        gauges(
            &mut enc,
            "podman_container_exit_code",
            "Exit code of the container's last run, while it is exited.",
            views.iter().flat_map(|v| {
                v.inv()
                    .containers()
                    .filter_map(move |c| Some((v.container_labels(c), c.exit_code?)))
            }),
        )?;
        gauges(
            &mut enc,
            "podman_container_health",
            "1 for the container's current health status (containers with a healthcheck only).",
            views.iter().flat_map(|v| {
                v.inv().containers().filter_map(move |c| {
                    let mut l = v.container_labels(c);
                    l.push(("status", c.health.as_deref()?));
                    Some((l, 1i64))
                })
            }),
        )?;
        counters(
            &mut enc,
            "podman_container_restarts",
            "Starts seen after a death of the same container.",
            views.iter().flat_map(|v| {
                v.inv()
                    .containers()
                    .map(move |c| (v.container_labels(c), c.restarts))
            }),
        )?;

        // Event counters: keyed by pod ID inside, shown by pod name; several IDs can share a
        // name over time (a pod removed and created again), so they are summed per name.
        counters(
            &mut enc,
            "podman_events",
            "Events received, by Podman's Type and Action (unknown ones as other).",
            views.iter().flat_map(|v| {
                let sorted: BTreeMap<_, _> = v
                    .inv()
                    .counters()
                    .events
                    .iter()
                    .map(|(k, n)| (*k, *n))
                    .collect();
                sorted.into_iter().map(move |((t, a), n)| {
                    (vec![("engine", v.engine()), ("type", t), ("action", a)], n)
                })
            }),
        )?;
        let mut pod_events: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
        let mut exits: BTreeMap<(&str, Option<&str>, &str), u64> = BTreeMap::new();
        let mut label_events: BTreeMap<(&str, &str, &str, &str), u64> = BTreeMap::new();
        for v in &views {
            let counters = v.inv().counters();
            for ((pod, action), n) in counters.pod_container_events.iter() {
                *pod_events
                    .entry((v.engine(), v.inv().pod_name(pod), action))
                    .or_default() += n;
            }
            for ((pod, code), n) in counters.container_exits.iter() {
                let pod = pod.as_deref().map(|p| v.inv().pod_name(p));
                *exits.entry((v.engine(), pod, code)).or_default() += n;
            }
            for ((k, val, action), n) in counters.label_container_events.iter() {
                *label_events
                    .entry((v.engine(), k, val, action))
                    .or_default() += n;
            }
        }
        counters(
            &mut enc,
            "podman_pod_container_events",
            "Container events per pod and action.",
            pod_events
                .iter()
                .map(|((e, p, a), n)| (vec![("engine", *e), ("pod", *p), ("action", *a)], *n)),
        )?;
        counters(
            &mut enc,
            "podman_label_container_events",
            "Container events per allowlisted label key and value, and action.",
            label_events.iter().map(|((e, k, val, a), n)| {
                (
                    vec![
                        ("engine", *e),
                        ("label", *k),
                        ("value", *val),
                        ("action", *a),
                    ],
                    *n,
                )
            }),
        )?;
        counters(
            &mut enc,
            "podman_container_exits",
            "Container deaths (died events) by exit code.",
            exits.iter().map(|((e, p, code), n)| {
                let mut l = vec![("engine", *e)];
                if let Some(p) = p {
                    l.push(("pod", *p));
                }
                l.push(("exit_code", *code));
                (l, *n)
            }),
        )?;

        gauges(
            &mut enc,
            "sealwatch_build_info",
            "sealwatch build facts; always 1.",
            [(
                vec![
                    ("version", VERSION),
                    ("revision", REVISION),
                    ("rustc", RUSTC),
                ],
                1i64,
            )],
        )?;
        let engine_counter =
            |enc: &mut DescriptorEncoder, stem: &str, help: &str, f: fn(&EngineSnapshot) -> u64| {
                counters(
                    enc,
                    stem,
                    help,
                    views
                        .iter()
                        .map(|v| (vec![("engine", v.engine())], f(v.snap))),
                )
            };
        engine_counter(
            &mut enc,
            "sealwatch_engine_reconnects",
            "Event-stream reconnects.",
            |s| s.stats.reconnects,
        )?;
        engine_counter(
            &mut enc,
            "sealwatch_engine_resyncs",
            "Completed list resyncs.",
            |s| s.stats.resyncs,
        )?;
        engine_counter(
            &mut enc,
            "sealwatch_event_decode_errors",
            "Event lines that could not be decoded (skipped).",
            |s| s.stats.decode_errors,
        )?;
        engine_counter(
            &mut enc,
            "sealwatch_event_stream_errors",
            "Error objects Podman sent inside the event stream (skipped; the stream then reconnects).",
            |s| s.stats.stream_errors,
        )?;
        engine_counter(
            &mut enc,
            "sealwatch_replayed_duplicate_events",
            "Events replayed after a reconnect and dropped as already counted.",
            |s| s.stats.duplicates_dropped,
        )?;
        gauges(
            &mut enc,
            "sealwatch_last_event_timestamp_seconds",
            "Podman's time of the newest event applied.",
            views.iter().filter_map(|v| {
                Some((
                    vec![("engine", v.engine())],
                    v.snap.stats.last_event_nanos? as f64 / 1e9,
                ))
            }),
        )?;
        Ok(())
    }
}

/// The standard `process_*` metrics, read from `/proc/self` at scrape time (Linux only; on other
/// systems the family is simply absent).
#[derive(Debug)]
struct ProcessCollector;

#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
}

impl ProcessStats {
    /// Reads the current process. `None` where `/proc` is not there.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let after = stat.get(stat.rfind(')')? + 2..)?;
        let f: Vec<&str> = after.split_whitespace().collect();
        // With `state` as index 0: utime 11, stime 12, starttime 19, vsize 20, rss 21.
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        // SAFETY: sysconf has no preconditions; it only reads system constants.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let (ticks, page) = (ticks.max(1) as f64, page.max(1) as f64);
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })?;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as f64);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse::<f64>().ok())
            });
        Some(Self {
            cpu_seconds: (num(11)? + num(12)?) / ticks,
            start_time_seconds: boot + num(19)? / ticks,
            virtual_bytes: num(20)?,
            resident_bytes: num(21)? * page,
            open_fds,
            max_fds,
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        let none = || Vec::<(&str, &str)>::new();
        family(
            &mut enc,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            MetricType::Counter,
            [(none(), p.cpu_seconds)],
            |m, v| m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None),
        )?;
        gauges(
            &mut enc,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            [(none(), p.resident_bytes)],
        )?;
        gauges(
            &mut enc,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            [(none(), p.virtual_bytes)],
        )?;
        gauges(
            &mut enc,
            "process_open_fds",
            "Number of open file descriptors.",
            p.open_fds.map(|v| (none(), v)),
        )?;
        gauges(
            &mut enc,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            p.max_fds.map(|v| (none(), v)),
        )?;
        gauges(
            &mut enc,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            [(none(), p.start_time_seconds)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("application/openmetrics-text; q=0"));
    }

    #[test]
    fn label_keys_are_sanitized_kube_state_metrics_style() {
        assert_eq!(
            sanitize_label_key("com.docker.compose.project"),
            "label_com_docker_compose_project"
        );
        assert_eq!(sanitize_label_key("ünï-code"), "label__n__code");
        assert_eq!(sanitize_label_key("9lives"), "label_9lives");
    }

    #[test]
    fn process_stats_are_read_from_proc() {
        let p = ProcessStats::read().expect("linux /proc");
        assert!(p.resident_bytes > 0.0 && p.virtual_bytes >= p.resident_bytes);
        assert!(p.start_time_seconds > 1.5e9);
        assert!(p.open_fds.unwrap() >= 3.0);
    }
}
