//! `/metrics`: every family of the contract, rendered at scrape time from the published snapshots.
//!
//! Owns the prometheus-client registry, the scrape-time collectors (inventory gauges, event
//! counters, `sealwatch_*`, `process_*`) and format negotiation. Series exist only while their
//! container or pod does, because they are computed from the current snapshot, never stored.
//! Never calls Podman and never mutates the inventory.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::inventory::model::PROJECT_LABELS;
use crate::inventory::{pod_state, Container};
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
    /// Size of the last render: the next one starts with that much room (plus some), so a large
    /// inventory's output is not copied again and again while its buffer grows.
    last_len: AtomicUsize,
}

impl Metrics {
    pub fn new(engines: Engines) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(InventoryCollector { engines }));
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            last_len: AtomicUsize::new(0),
        }
    }

    /// Renders every family; `openmetrics` picks OpenMetrics text (ends in `# EOF`) over the
    /// classic 0.0.4 text.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let last = self.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity((last + last / 8).max(64 * 1024));
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        self.last_len.store(out.len(), Ordering::Relaxed);
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

/// A label set of up to `N` labels, absent ones (`None`) skipped; encodes without allocating.
struct Set<'a, const N: usize>([(&'a str, Option<&'a str>); N]);

impl<const N: usize> EncodeLabelSet for Set<'_, N> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> std::fmt::Result {
        for (k, v) in &self.0 {
            if let Some(v) = v {
                (*k, *v).encode(enc.encode_label())?;
            }
        }
        Ok(())
    }
}

/// A fixed head followed by a variable tail (the `label_<key>` pairs of one container).
struct HeadTail<'a, const N: usize>(Set<'a, N>, &'a [(&'a str, &'a str)]);

impl<const N: usize> EncodeLabelSet for HeadTail<'_, N> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> std::fmt::Result {
        self.0.encode(enc)?;
        for pair in self.1 {
            pair.encode(enc.encode_label())?;
        }
        Ok(())
    }
}

/// One family: its descriptor once, then every sample. Writing a family with no samples is
/// skipped, so a fresh exporter does not print empty families.
fn family<S: EncodeLabelSet, V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (S, V)>,
    mut encode_value: impl FnMut(&mut prometheus_client::encoding::MetricEncoder, V) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        let mut m = metric.encode_family(&labels)?;
        encode_value(&mut m, v)?;
    }
    Ok(())
}

fn gauges<S: EncodeLabelSet, V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (S, V)>,
) -> std::fmt::Result {
    family(enc, name, help, MetricType::Gauge, samples, |m, v| {
        m.encode_gauge(&v)
    })
}

/// `stem` without `_total`: prometheus-client appends it.
fn counters<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    stem: &str,
    help: &str,
    samples: impl IntoIterator<Item = (S, u64)>,
) -> std::fmt::Result {
    family(enc, stem, help, MetricType::Counter, samples, |m, v| {
        m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)
    })
}

/// rustc's FxHash. The scrape-time maps are keyed by strings sealwatch already holds and live
/// for one scrape; SipHash's flood resistance buys nothing there and cost a tenth of a render.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Adds one to `key`'s count.
fn tally<K: std::hash::Hash + Eq>(map: &mut FxMap<K, i64>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

/// A map's entries in key order, for a stable output.
fn sorted<K: Ord, V>(map: FxMap<K, V>) -> Vec<(K, V)> {
    let mut v: Vec<(K, V)> = map.into_iter().collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Renders the inventory of every engine.
#[derive(Debug)]
struct InventoryCollector {
    engines: Engines,
}

/// One container as every per-container family shows it, resolved once per scrape.
struct Row<'a> {
    engine: &'a str,
    c: &'a Container,
    id: &'a str,
    /// The pod's name (absent outside a pod).
    pod: Option<&'a str>,
    /// The compose project, as `Container::project` finds it.
    project: Option<&'a str>,
    /// This container's `label_<key>` pairs in `Scrape::label_pairs`.
    labels: Range<usize>,
}

impl<'a> Row<'a> {
    /// engine, id, name, pod (when in one) and one more label: a per-container series.
    fn with(&self, key: &'a str, value: Option<&'a str>) -> Set<'a, 5> {
        Set([
            ("engine", Some(self.engine)),
            ("id", Some(self.id)),
            ("name", Some(self.c.name.as_str())),
            ("pod", self.pod),
            (key, value),
        ])
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

/// Interned `label_<key>` names for one scrape: each distinct raw key is sanitized once, and keys
/// that sanitize alike (`a.b`, `a-b`) share one slot, so a container keeps only the first.
#[derive(Default)]
struct SanitizedKeys<'a> {
    by_raw: FxMap<&'a str, usize>,
    by_name: FxMap<String, usize>,
    names: Vec<String>,
}

impl<'a> SanitizedKeys<'a> {
    fn slot(&mut self, raw: &'a str) -> usize {
        if let Some(&slot) = self.by_raw.get(raw) {
            return slot;
        }
        let name = sanitize_label_key(raw);
        let slot = match self.by_name.get(&name) {
            Some(&slot) => slot,
            None => {
                self.names.push(name.clone());
                self.by_name.insert(name, self.names.len() - 1);
                self.names.len() - 1
            }
        };
        self.by_raw.insert(raw, slot);
        slot
    }
}

impl Collector for InventoryCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let snaps = self.engines.snapshots();

        gauges(
            &mut enc,
            "podman_up",
            "1 while the engine's event stream is open and its inventory is synced, else 0.",
            snaps
                .iter()
                .map(|s| (Set([("engine", Some(&*s.name))]), i64::from(s.ready()))),
        )?;
        gauges(
            &mut enc,
            "podman_engine_info",
            "Podman engine version; 1 once the engine has answered.",
            snaps.iter().filter_map(|s| {
                let st = &s.status;
                Some((
                    Set([
                        ("engine", Some(&*s.name)),
                        ("version", Some(st.version.as_deref()?)),
                        ("api_version", Some(st.api_version.as_deref().unwrap_or(""))),
                    ]),
                    1i64,
                ))
            }),
        )?;

        // One pass over every container: its row, the aggregates, and its label pairs. Raw
        // label values are counted first and folded into `__other__` once per distinct value.
        let n_containers: usize = snaps.iter().map(|s| s.inventory.container_count()).sum();
        let n_pods: usize = snaps.iter().map(|s| s.inventory.pod_count()).sum();
        let mut rows: Vec<Row> = Vec::with_capacity(n_containers);
        let mut keys = SanitizedKeys::default();
        let mut pair_slots: Vec<(usize, &str)> = Vec::with_capacity(n_containers * 4);
        let mut seen_slot: Vec<usize> = Vec::new();
        let mut by_state: FxMap<(&str, &str), i64> = FxMap::default();
        let mut by_pod: FxMap<(&str, &str, &str), i64> =
            FxMap::with_capacity_and_hasher(n_pods * 2, Default::default());
        let mut by_raw_label: FxMap<(usize, &str, &str, &str), i64> =
            FxMap::with_capacity_and_hasher(n_containers, Default::default());
        // pod ID -> the states of all its containers (infra included), for the pod's own state.
        let mut pod_states: FxMap<(usize, &str), Vec<&str>> =
            FxMap::with_capacity_and_hasher(n_pods, Default::default());
        for (e, snap) in snaps.iter().enumerate() {
            let inv = &snap.inventory;
            let allow = inv.label_policy().allowlist();
            // Pod ID -> name, memoised: the inventory's map hashes with SipHash.
            let mut pod_names: FxMap<&str, &str> =
                FxMap::with_capacity_and_hasher(inv.pod_count(), Default::default());
            for c in inv.containers() {
                let pod = c
                    .pod_id
                    .as_deref()
                    .map(|p| *pod_names.entry(p).or_insert_with(|| inv.pod_name(p)));
                if let Some(p) = c.pod_id.as_deref() {
                    pod_states.entry((e, p)).or_default().push(&c.state);
                }
                let start = pair_slots.len();
                // Container::project, found on the way (cheaper than two map lookups).
                let mut project = [None, None];
                for (k, v) in c.labels.iter() {
                    if let Some(i) = PROJECT_LABELS.iter().position(|p| *p == k) {
                        project[i] = Some(v.as_str());
                    }
                    if !allow.allows(k) {
                        continue;
                    }
                    if !c.infra {
                        tally(
                            &mut by_raw_label,
                            (e, k.as_str(), v.as_str(), c.state.as_str()),
                        );
                    }
                    let slot = keys.slot(k);
                    if seen_slot.len() <= slot {
                        seen_slot.resize(slot + 1, usize::MAX);
                    }
                    // Two keys that sanitize alike: keep the first.
                    if seen_slot[slot] != rows.len() {
                        seen_slot[slot] = rows.len();
                        pair_slots.push((slot, v.as_str()));
                    }
                }
                if !c.infra {
                    tally(&mut by_state, (&*snap.name, c.state.as_str()));
                    if let Some(p) = pod {
                        tally(&mut by_pod, (&*snap.name, p, c.state.as_str()));
                    }
                }
                rows.push(Row {
                    engine: &snap.name,
                    c,
                    id: c.short_id(),
                    pod,
                    project: project[0].or(project[1]),
                    labels: start..pair_slots.len(),
                });
            }
        }
        let label_pairs: Vec<(&str, &str)> = pair_slots
            .iter()
            .map(|(slot, v)| (keys.names[*slot].as_str(), *v))
            .collect();
        let mut by_label: FxMap<(&str, &str, &str, &str), i64> = FxMap::default();
        for ((e, k, v, state), n) in by_raw_label {
            if let Some(folded) = snaps[e].inventory.label_policy().folded(k, v) {
                *by_label
                    .entry((&*snaps[e].name, k, folded, state))
                    .or_insert(0) += n;
            }
        }

        gauges(
            &mut enc,
            "podman_containers",
            "Containers in each state (infra containers excluded).",
            sorted(by_state)
                .into_iter()
                .map(|((e, s), n)| (Set([("engine", Some(e)), ("state", Some(s))]), n)),
        )?;
        gauges(
            &mut enc,
            "podman_pod_containers",
            "Containers of each pod in each state (infra containers excluded).",
            sorted(by_pod).into_iter().map(|((e, p, s), n)| {
                (
                    Set([("engine", Some(e)), ("pod", Some(p)), ("state", Some(s))]),
                    n,
                )
            }),
        )?;
        gauges(
            &mut enc,
            "podman_label_containers",
            "Containers per allowlisted label key and value, in each state.",
            sorted(by_label).into_iter().map(|((e, k, val, s), n)| {
                (
                    Set([
                        ("engine", Some(e)),
                        ("label", Some(k)),
                        ("value", Some(val)),
                        ("state", Some(s)),
                    ]),
                    n,
                )
            }),
        )?;

        let mut pods_by_state: FxMap<(&str, &str), i64> = FxMap::default();
        for (e, snap) in snaps.iter().enumerate() {
            for p in snap.inventory.pods() {
                let states = pod_states
                    .get(&(e, p.id.as_str()))
                    .into_iter()
                    .flatten()
                    .copied();
                tally(&mut pods_by_state, (&*snap.name, lower(pod_state(states))));
            }
        }
        gauges(
            &mut enc,
            "podman_pods",
            "Pods in each state (lower case).",
            sorted(pods_by_state)
                .into_iter()
                .map(|((e, s), n)| (Set([("engine", Some(e)), ("state", Some(s))]), n)),
        )?;
        gauges(
            &mut enc,
            "podman_pod_info",
            "Pod metadata; always 1.",
            snaps.iter().flat_map(|s| {
                s.inventory.pods().map(move |p| {
                    (
                        Set([
                            ("engine", Some(&*s.name)),
                            ("pod", Some(p.name.as_str())),
                            ("pod_id", Some(p.id.as_str())),
                            ("infra_id", Some(p.infra_id.as_deref().unwrap_or(""))),
                        ]),
                        1i64,
                    )
                })
            }),
        )?;

        gauges(
            &mut enc,
            "podman_container_info",
            "Container metadata; always 1.",
            rows.iter().map(|r| {
                (
                    Set([
                        ("engine", Some(r.engine)),
                        ("id", Some(r.id)),
                        ("name", Some(r.c.name.as_str())),
                        ("image", Some(r.c.image.as_str())),
                        ("pod", r.pod),
                        ("project", r.project),
                    ]),
                    1i64,
                )
            }),
        )?;
        gauges(
            &mut enc,
            "podman_container_state",
            "1 for the container's current state.",
            rows.iter()
                .map(|r| (r.with("state", Some(r.c.state.as_str())), 1i64)),
        )?;
        gauges(
            &mut enc,
            "podman_container_labels",
            "Allowlisted container labels as label_<key> labels; always 1.",
            rows.iter().map(|r| {
                (
                    HeadTail(
                        Set([
                            ("engine", Some(r.engine)),
                            ("id", Some(r.id)),
                            ("name", Some(r.c.name.as_str())),
                        ]),
                        &label_pairs[r.labels.clone()],
                    ),
                    1i64,
                )
            }),
        )?;
        gauges(
            &mut enc,
            "podman_container_started_time_seconds",
            "Unix time of the container's last start.",
            rows.iter()
                .filter_map(|r| Some((r.with("", None), r.c.started_at? as f64 / 1e9))),
        )?;
        gauges(
            &mut enc,
            "podman_container_exit_code",
            "Exit code of the container's last run, while it is exited.",
            rows.iter()
                .filter_map(|r| Some((r.with("", None), r.c.exit_code?))),
        )?;
        gauges(
            &mut enc,
            "podman_container_health",
            "1 for the container's current health status (containers with a healthcheck only).",
            rows.iter()
                .filter_map(|r| Some((r.with("status", Some(r.c.health.as_deref()?)), 1i64))),
        )?;
        counters(
            &mut enc,
            "podman_container_restarts",
            "Starts seen after a death of the same container.",
            rows.iter().map(|r| (r.with("", None), r.c.restarts)),
        )?;

        // Event counters: keyed by pod ID inside, shown by pod name; several IDs can share a
        // name over time (a pod removed and created again), so they are summed per name.
        let mut events: FxMap<(&str, &str, &str), u64> = FxMap::default();
        let mut pod_events: FxMap<(&str, &str, &str), u64> = FxMap::default();
        let mut exits: FxMap<(&str, Option<&str>, &str), u64> = FxMap::default();
        let mut label_events: FxMap<(&str, &str, &str, &str), u64> = FxMap::default();
        for snap in &snaps {
            let (e, inv) = (&*snap.name, &snap.inventory);
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
        counters(
            &mut enc,
            "podman_events",
            "Events received, by Podman's Type and Action (unknown ones as other).",
            sorted(events).into_iter().map(|((e, t, a), n)| {
                (
                    Set([("engine", Some(e)), ("type", Some(t)), ("action", Some(a))]),
                    n,
                )
            }),
        )?;
        counters(
            &mut enc,
            "podman_pod_container_events",
            "Container events per pod and action.",
            sorted(pod_events).into_iter().map(|((e, p, a), n)| {
                (
                    Set([("engine", Some(e)), ("pod", Some(p)), ("action", Some(a))]),
                    n,
                )
            }),
        )?;
        counters(
            &mut enc,
            "podman_label_container_events",
            "Container events per allowlisted label key and value, and action.",
            sorted(label_events).into_iter().map(|((e, k, val, a), n)| {
                (
                    Set([
                        ("engine", Some(e)),
                        ("label", Some(k)),
                        ("value", Some(val)),
                        ("action", Some(a)),
                    ]),
                    n,
                )
            }),
        )?;
        counters(
            &mut enc,
            "podman_container_exits",
            "Container deaths (died events) by exit code.",
            sorted(exits).into_iter().map(|((e, p, code), n)| {
                (
                    Set([("engine", Some(e)), ("pod", p), ("exit_code", Some(code))]),
                    n,
                )
            }),
        )?;

        gauges(
            &mut enc,
            "sealwatch_build_info",
            "sealwatch build facts; always 1.",
            [(
                Set([
                    ("version", Some(VERSION)),
                    ("revision", Some(REVISION)),
                    ("rustc", Some(RUSTC)),
                ]),
                1i64,
            )],
        )?;
        let engine_counter =
            |enc: &mut DescriptorEncoder, stem: &str, help: &str, f: fn(&EngineSnapshot) -> u64| {
                counters(
                    enc,
                    stem,
                    help,
                    snaps
                        .iter()
                        .map(|s| (Set([("engine", Some(&*s.name))]), f(s))),
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
            snaps.iter().filter_map(|s| {
                Some((
                    Set([("engine", Some(&*s.name))]),
                    s.stats.last_event_nanos? as f64 / 1e9,
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
