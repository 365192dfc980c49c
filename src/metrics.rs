//! `/metrics`: every family of the contract, rendered at scrape time from the published snapshots.
//!
//! Owns format negotiation, the prometheus-client registry built for each scrape (its collectors
//! render the engine, pod, event-counter, `sealwatch_*` and `process_*` families) and the
//! container walk that writes the container-derived families straight into the same text, since
//! they are most of a large scrape. Series exist only while their container or pod does, because
//! they are computed from the current snapshot, never stored. Never calls Podman and never
//! mutates the inventory.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::inventory::model::PROJECT_LABELS;
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

/// What `/metrics` renders from: every engine's published snapshot.
#[derive(Debug)]
pub struct Metrics {
    engines: Engines,
    /// Size of the last render: the next one starts with that much room (plus some), so a large
    /// inventory's output is not copied again and again while its buffer grows.
    last_len: AtomicUsize,
}

impl Metrics {
    pub fn new(engines: Engines) -> Self {
        Self {
            engines,
            last_len: AtomicUsize::new(0),
        }
    }

    /// Renders every family; `openmetrics` picks OpenMetrics text (ends in `# EOF`) over the
    /// classic 0.0.4 text.
    ///
    /// One set of snapshots serves the whole scrape, so every family describes the same moment.
    /// A prometheus-client registry built for this scrape renders the engine, pod, event-counter,
    /// `sealwatch_*` and `process_*` families; the families derived from the containers (nine
    /// tenths of a large scrape) are written by one walk over them, `ContainerWalk`, in the same
    /// text.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let snaps: Arc<[Arc<EngineSnapshot>]> = self.engines.snapshots().into();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(EngineCollector {
            snaps: snaps.clone(),
        }));
        registry.register_collector(Box::new(ProcessCollector));

        let last = self.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity((last + last / 8).max(64 * 1024));
        if openmetrics {
            prometheus_client::encoding::text::encode_registry(&mut out, &registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        }
        ContainerWalk::new(&snaps).write(&mut out, openmetrics);
        if openmetrics {
            prometheus_client::encoding::text::encode_eof(&mut out)?;
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

/// Scrape-time maps are keyed by strings sealwatch already holds and live for one scrape:
/// SipHash's flood resistance buys nothing there and cost a tenth of a render.
type FxMap<K, V> = rustc_hash::FxHashMap<K, V>;

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

/// Renders what is not derived from walking the containers: engine state, pods, the event
/// counters and `sealwatch_*`, from one scrape's snapshots.
#[derive(Debug)]
struct EngineCollector {
    snaps: Arc<[Arc<EngineSnapshot>]>,
}

/// Podman's pod state word (`pod_state`) as the lower-case `state` label.
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

impl Collector for EngineCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let snaps = &*self.snaps;
        // Counters are summed by the engine's index (cheaper to hash and sort than its name).
        let name = |e: usize| -> &str { &snaps[e].name };

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

        // Event counters: keyed by pod ID inside, shown by pod name; several IDs can share a
        // name over time (a pod removed and created again), so they are summed per name.
        let mut events: FxMap<(usize, &str, &str), u64> = FxMap::default();
        let mut pod_events: FxMap<(usize, &str, &str), u64> = FxMap::default();
        let mut exits: FxMap<(usize, Option<&str>, &str), u64> = FxMap::default();
        let mut label_events: FxMap<(usize, &str, &str, &str), u64> = FxMap::default();
        for (e, snap) in snaps.iter().enumerate() {
            let inv = &snap.inventory;
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
                    Set([
                        ("engine", Some(name(e))),
                        ("type", Some(t)),
                        ("action", Some(a)),
                    ]),
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
                    Set([
                        ("engine", Some(name(e))),
                        ("pod", Some(p)),
                        ("action", Some(a)),
                    ]),
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
                        ("engine", Some(name(e))),
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
                    Set([
                        ("engine", Some(name(e))),
                        ("pod", p),
                        ("exit_code", Some(code)),
                    ]),
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

/// The pods one engine's containers refer to, each looked up once per scrape (by 64-character
/// ID, in the inventory's SipHash map): its name, and the states of its containers.
struct Pods<'a> {
    inv: &'a Inventory,
    index: FxMap<&'a str, usize>,
    /// Per pod: its name, and the states of all its containers (infra included).
    pods: Vec<(&'a str, Vec<&'a str>)>,
}

impl<'a> Pods<'a> {
    fn new(inv: &'a Inventory) -> Self {
        Self {
            inv,
            index: FxMap::with_capacity_and_hasher(inv.pod_count(), Default::default()),
            pods: Vec::with_capacity(inv.pod_count()),
        }
    }

    /// Records the container's state with its pod and returns the pod's name; `None` outside a
    /// pod.
    fn add(&mut self, c: &'a Container) -> Option<&'a str> {
        let id = c.pod_id.as_deref()?;
        let (inv, pods) = (self.inv, &mut self.pods);
        let i = *self.index.entry(id).or_insert_with(|| {
            pods.push((inv.pod_name(id), Vec::new()));
            pods.len() - 1
        });
        let (name, states) = &mut self.pods[i];
        states.push(&c.state);
        Some(*name)
    }

    /// The states of a pod's containers (empty for a pod without any).
    fn states(&self, pod_id: &str) -> &[&'a str] {
        self.index
            .get(pod_id)
            .map_or(&[], |i| self.pods[*i].1.as_slice())
    }
}

/// Interned `label_<key>` names for one scrape: each distinct raw key is sanitized once, and keys
/// that sanitize alike (`a.b`, `a-b`) share one slot, so a container keeps only the first.
#[derive(Default)]
struct SanitizedKeys<'a> {
    by_raw: FxMap<&'a str, usize>,
    by_name: FxMap<String, usize>,
    /// `,label_<key>="` per slot.
    openings: Vec<String>,
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
                self.openings.push(format!(",{name}=\""));
                self.by_name.insert(name, self.openings.len() - 1);
                self.openings.len() - 1
            }
        };
        self.by_raw.insert(raw, slot);
        slot
    }
}

/// Whether `bytes` hold a `\\`, `"` or newline (memchr's vectorised search: label values are
/// most of a large scrape's bytes, and almost never need escaping).
fn needs_escaping(bytes: &[u8]) -> bool {
    memchr::memchr3(b'\\', b'"', b'\n', bytes).is_some()
}

/// Appends a label value, escaped as both text formats require (`\\`, `\"`, `\n`).
fn push_escaped(out: &mut String, v: &str) {
    if !needs_escaping(v.as_bytes()) {
        out.push_str(v);
        return;
    }
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends `opening` (`,key="`, written as one literal), the escaped value and the closing quote.
fn push_value(out: &mut String, opening: &str, value: &str) {
    out.push_str(opening);
    push_escaped(out, value);
    out.push('"');
}

/// Appends unix nanoseconds as seconds: the exact decimal, `.0` on whole seconds (the float
/// text prometheus-client writes, without going through a float formatter).
fn push_seconds(out: &mut String, nanos: i64) {
    if nanos < 0 {
        out.push('-');
    }
    let n = nanos.unsigned_abs();
    push_int(out, n / 1_000_000_000);
    let frac = n % 1_000_000_000;
    if frac == 0 {
        out.push_str(".0");
        return;
    }
    let mut digits = [b'0'; 9];
    let mut f = frac;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (f % 10) as u8;
        f /= 10;
    }
    let len = 9 - digits.iter().rev().take_while(|d| **d == b'0').count();
    out.push('.');
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[..len]).unwrap_or("0"));
}

/// Appends an integer without the formatting machinery (this runs tens of thousands of times
/// per large scrape).
fn push_int(out: &mut String, v: impl Into<i128>) {
    let v: i128 = v.into();
    if v < 0 {
        out.push('-');
    }
    // Every value written here (exit codes, counts, seconds) fits in a u64.
    let mut n = u64::try_from(v.unsigned_abs()).unwrap_or(u64::MAX);
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Every family derived from the containers, from one walk over them, written straight into
/// the output: the aggregates (`podman_containers`, `podman_pod_containers`,
/// `podman_label_containers`, `podman_pods`) and the per-container families.
///
/// These are nine tenths of a large scrape. Through prometheus-client's encoder each label costs a
/// call chain and an escape scan, which made them most of a scrape's CPU; here each container is
/// visited once and its identity escaped once, then copied into its six series. The text is what
/// prometheus-client writes in the same format: HELP and TYPE (a counter is named with `_total`
/// in the 0.0.4 text and without it in OpenMetrics; its samples always end in `_total`), the same
/// escaping, and a family with no samples is left out.
struct ContainerWalk<'a> {
    snaps: &'a [Arc<EngineSnapshot>],
    rows: Vec<Row>,
    /// Every row's label text, escaped: see `Row`.
    text: String,
    /// Keyed by engine index; infra containers are not counted.
    by_state: Vec<((usize, &'a str), i64)>,
    by_pod: Vec<((usize, &'a str, &'a str), i64)>,
    /// Values already folded into `__other__` past `--labels.max-values`.
    by_label: Vec<(LabelKey<'a>, i64)>,
    pods_by_state: Vec<((usize, &'static str), i64)>,
}

/// Engine index, label key, label value, container state.
type LabelKey<'a> = (usize, &'a str, &'a str, &'a str);

/// One container, everything its series show rendered once, so that writing the seven families
/// reads this compact array instead of chasing every container again. Ranges are into
/// `ContainerWalk::text`.
struct Row {
    /// `engine="…",id="…",name="…"`, then `,pod="…"` up to `pod_end` (the same when outside a
    /// pod).
    head: Range<usize>,
    pod_end: usize,
    /// `,image="…"[,project="…"]`
    info: Range<usize>,
    /// `,state="…"`
    state: Range<usize>,
    /// `,label_<key>="…"` pairs.
    labels: Range<usize>,
    /// `,status="…"`, empty without a healthcheck.
    health: Range<usize>,
    started_at: Option<i64>,
    exit_code: Option<i64>,
    restarts: u64,
}

impl<'a> ContainerWalk<'a> {
    fn new(snaps: &'a [Arc<EngineSnapshot>]) -> Self {
        let n: usize = snaps.iter().map(|s| s.inventory.container_count()).sum();
        let mut rows: Vec<Row> = Vec::with_capacity(n);
        let mut text = String::with_capacity(n * 320);
        let mut keys = SanitizedKeys::default();
        // The row that last used each sanitized key, to keep the first of keys that sanitize
        // alike.
        let mut last_row_of_slot: Vec<usize> = Vec::new();
        let mut by_state: FxMap<(usize, &str), i64> = FxMap::default();
        let mut by_pod: FxMap<(usize, &str, &str), i64> = FxMap::default();
        // Raw values, folded into `__other__` afterwards, once per distinct value.
        let mut by_raw_label: FxMap<LabelKey, i64> =
            FxMap::with_capacity_and_hasher(n, Default::default());
        let mut pods_by_state: FxMap<(usize, &'static str), i64> = FxMap::default();

        for (e, snap) in snaps.iter().enumerate() {
            let inv = &snap.inventory;
            let allow = inv.label_policy().allowlist();
            let mut pods = Pods::new(inv);
            for c in inv.containers() {
                let c: &Container = c;
                let state = c.state.as_str();
                let pod = pods.add(c);
                if !c.infra {
                    tally(&mut by_state, (e, state));
                    if let Some(p) = pod {
                        tally(&mut by_pod, (e, p, state));
                    }
                }

                let start = text.len();
                push_value(&mut text, "engine=\"", &snap.name);
                push_value(&mut text, ",id=\"", c.short_id());
                push_value(&mut text, ",name=\"", &c.name);
                let head = start..text.len();
                if let Some(p) = pod {
                    push_value(&mut text, ",pod=\"", p);
                }
                let pod_end = text.len();

                let labels_start = text.len();
                // Container::project, found on the way (cheaper than two more map lookups).
                let mut project = [None, None];
                for (k, v) in c.labels.iter() {
                    if let Some(i) = PROJECT_LABELS.iter().position(|p| *p == k) {
                        project[i] = Some(v.as_str());
                    }
                    if !allow.allows(k) {
                        continue;
                    }
                    if !c.infra {
                        tally(&mut by_raw_label, (e, k.as_str(), v.as_str(), state));
                    }
                    let slot = keys.slot(k);
                    if last_row_of_slot.len() <= slot {
                        last_row_of_slot.resize(slot + 1, usize::MAX);
                    }
                    if last_row_of_slot[slot] != rows.len() {
                        last_row_of_slot[slot] = rows.len();
                        push_value(&mut text, &keys.openings[slot], v);
                    }
                }
                let labels = labels_start..text.len();

                let info_start = text.len();
                push_value(&mut text, ",image=\"", &c.image);
                if let Some(p) = project[0].or(project[1]) {
                    push_value(&mut text, ",project=\"", p);
                }
                let info = info_start..text.len();
                let state_start = text.len();
                push_value(&mut text, ",state=\"", state);
                let state_range = state_start..text.len();
                let health_start = text.len();
                if let Some(h) = c.health.as_deref() {
                    push_value(&mut text, ",status=\"", h);
                }
                rows.push(Row {
                    head,
                    pod_end,
                    info,
                    state: state_range,
                    labels,
                    health: health_start..text.len(),
                    started_at: c.started_at,
                    exit_code: c.exit_code,
                    restarts: c.restarts,
                });
            }
            for p in inv.pods() {
                let state = pod_state(pods.states(&p.id).iter().copied());
                tally(&mut pods_by_state, (e, lower(state)));
            }
        }

        let mut by_label: FxMap<LabelKey, i64> = FxMap::default();
        for ((e, k, v, state), n) in by_raw_label {
            if let Some(folded) = snaps[e].inventory.label_policy().folded(k, v) {
                *by_label.entry((e, k, folded, state)).or_insert(0) += n;
            }
        }
        Self {
            snaps,
            rows,
            text,
            by_state: sorted(by_state),
            by_pod: sorted(by_pod),
            by_label: sorted(by_label),
            pods_by_state: sorted(pods_by_state),
        }
    }

    fn engine(&self, e: usize) -> &'a str {
        &self.snaps[e].name
    }

    fn write(&self, out: &mut String, openmetrics: bool) {
        let descriptor = |out: &mut String, name: &str, help: &str, counter: bool| {
            let suffix = if counter && !openmetrics {
                "_total"
            } else {
                ""
            };
            let kind = if counter { "counter" } else { "gauge" };
            for (what, text) in [("HELP", help), ("TYPE", kind)] {
                out.push_str("# ");
                out.push_str(what);
                out.push(' ');
                out.push_str(name);
                out.push_str(suffix);
                out.push(' ');
                out.push_str(text);
                out.push('\n');
            }
        };
        let end = |out: &mut String, n: i64| {
            out.push_str("} ");
            push_int(out, n);
            out.push('\n');
        };

        if !self.by_state.is_empty() {
            let name = "podman_containers";
            descriptor(
                out,
                name,
                "Containers in each state (infra containers excluded).",
                false,
            );
            for ((e, state), n) in &self.by_state {
                out.push_str(name);
                push_value(out, "{engine=\"", self.engine(*e));
                push_value(out, ",state=\"", state);
                end(out, *n);
            }
        }
        if !self.by_pod.is_empty() {
            let name = "podman_pod_containers";
            descriptor(
                out,
                name,
                "Containers of each pod in each state (infra containers excluded).",
                false,
            );
            for ((e, pod, state), n) in &self.by_pod {
                out.push_str(name);
                push_value(out, "{engine=\"", self.engine(*e));
                push_value(out, ",pod=\"", pod);
                push_value(out, ",state=\"", state);
                end(out, *n);
            }
        }
        if !self.by_label.is_empty() {
            let name = "podman_label_containers";
            descriptor(
                out,
                name,
                "Containers per allowlisted label key and value, in each state.",
                false,
            );
            for ((e, key, value, state), n) in &self.by_label {
                out.push_str(name);
                push_value(out, "{engine=\"", self.engine(*e));
                push_value(out, ",label=\"", key);
                push_value(out, ",value=\"", value);
                push_value(out, ",state=\"", state);
                end(out, *n);
            }
        }
        if !self.pods_by_state.is_empty() {
            let name = "podman_pods";
            descriptor(out, name, "Pods in each state (lower case).", false);
            for ((e, state), n) in &self.pods_by_state {
                out.push_str(name);
                push_value(out, "{engine=\"", self.engine(*e));
                push_value(out, ",state=\"", state);
                end(out, *n);
            }
        }

        let (rows, text) = (&self.rows, self.text.as_str());
        if rows.is_empty() {
            return;
        }
        // `name{<engine, id, name, pod>` ready for more labels.
        let open = |out: &mut String, name: &str, r: &Row| {
            out.push_str(name);
            out.push('{');
            out.push_str(&text[r.head.start..r.pod_end]);
        };
        let one = |out: &mut String, name: &str, r: &Row, tail: &Range<usize>| {
            open(out, name, r);
            out.push_str(&text[tail.clone()]);
            out.push_str("} 1\n");
        };

        descriptor(
            out,
            "podman_container_info",
            "Container metadata; always 1.",
            false,
        );
        for r in rows {
            one(out, "podman_container_info", r, &r.info);
        }
        descriptor(
            out,
            "podman_container_state",
            "1 for the container's current state.",
            false,
        );
        for r in rows {
            one(out, "podman_container_state", r, &r.state);
        }
        descriptor(
            out,
            "podman_container_labels",
            "Allowlisted container labels as label_<key> labels; always 1.",
            false,
        );
        for r in rows {
            out.push_str("podman_container_labels{");
            out.push_str(&text[r.head.clone()]);
            out.push_str(&text[r.labels.clone()]);
            out.push_str("} 1\n");
        }

        if rows.iter().any(|r| r.started_at.is_some()) {
            let name = "podman_container_started_time_seconds";
            descriptor(out, name, "Unix time of the container's last start.", false);
            for r in rows {
                if let Some(t) = r.started_at {
                    open(out, name, r);
                    out.push_str("} ");
                    push_seconds(out, t);
                    out.push('\n');
                }
            }
        }
        if rows.iter().any(|r| r.exit_code.is_some()) {
            let name = "podman_container_exit_code";
            descriptor(
                out,
                name,
                "Exit code of the container's last run, while it is exited.",
                false,
            );
            for r in rows {
                if let Some(code) = r.exit_code {
                    open(out, name, r);
                    end(out, code);
                }
            }
        }
        if rows.iter().any(|r| !r.health.is_empty()) {
            let name = "podman_container_health";
            descriptor(
                out,
                name,
                "1 for the container's current health status (containers with a healthcheck only).",
                false,
            );
            for r in rows.iter().filter(|r| !r.health.is_empty()) {
                one(out, name, r, &r.health);
            }
        }
        descriptor(
            out,
            "podman_container_restarts",
            "Starts seen after a death of the same container.",
            true,
        );
        for r in rows {
            open(out, "podman_container_restarts_total", r);
            out.push_str("} ");
            push_int(out, r.restarts);
            out.push('\n');
        }
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
#[path = "metrics_fixture.rs"]
mod fixture;

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_engines() -> Engines {
        use crate::state::{EngineCell, EngineStats, EngineStatus};
        let cells = fixture::inventories()
            .into_iter()
            .map(|(name, inventory)| {
                let alpha = name == "alpha";
                let cell = EngineCell::new(
                    name,
                    format!("unix:///run/{name}.sock"),
                    inventory.label_policy().clone(),
                );
                cell.publish(EngineSnapshot {
                    name: Arc::from(name),
                    url: format!("unix:///run/{name}.sock"),
                    status: EngineStatus {
                        connected: alpha,
                        synced: alpha,
                        reason: (!alpha).then(|| "connecting".into()),
                        version: alpha.then(|| "4.3.1".into()),
                        api_version: alpha.then(|| "4.3.1".into()),
                    },
                    stats: if alpha {
                        EngineStats {
                            reconnects: 3,
                            resyncs: 4,
                            decode_errors: 1,
                            stream_errors: 2,
                            duplicates_dropped: 5,
                            last_event_nanos: Some(1_795_976_300_050_000_001),
                        }
                    } else {
                        EngineStats::default()
                    },
                    inventory,
                });
                Arc::new(cell)
            })
            .collect();
        Engines::new(cells)
    }

    /// The render of the fixture inventory equals the golden text recorded before the metrics
    /// module was restructured, in both formats (samples compared per family, order-free).
    #[test]
    fn render_equals_the_recorded_golden_text() {
        let metrics = Metrics::new(fixture_engines());
        for (openmetrics, file) in [
            (false, "metrics-golden.txt"),
            (true, "metrics-golden-openmetrics.txt"),
        ] {
            let got = fixture::normalize(&metrics.render(openmetrics).unwrap());
            let path = format!("{}/src/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
            if std::env::var_os("SEALWATCH_WRITE_GOLDEN").is_some() {
                std::fs::write(&path, &got).unwrap();
            }
            let want = std::fs::read_to_string(&path).unwrap();
            assert!(
                got == want,
                "render differs from {file}:\n{}",
                first_difference(&want, &got)
            );
        }
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
    fn escaping_finds_every_special_byte_at_every_position() {
        for len in 0..20 {
            let plain = "a".repeat(len);
            assert!(!needs_escaping(plain.as_bytes()));
            for pos in 0..len {
                for special in ['\\', '"', '\n'] {
                    let mut v: Vec<char> = plain.chars().collect();
                    v[pos] = special;
                    let v: String = v.into_iter().collect();
                    assert!(needs_escaping(v.as_bytes()), "{v:?}");
                }
            }
        }
        // UTF-8 bytes never look like the specials.
        assert!(!needs_escaping("värde ✓ 日本語 ünïcödé".as_bytes()));
        let mut out = String::new();
        push_escaped(&mut out, "a\\b\"c\nd ✓");
        assert_eq!(out, r#"a\\b\"c\nd ✓"#);
    }

    #[test]
    fn numbers_are_written_like_prometheus_client_writes_them() {
        let text = |f: &dyn Fn(&mut String)| {
            let mut s = String::new();
            f(&mut s);
            s
        };
        assert_eq!(text(&|s| push_int(s, 0u64)), "0");
        assert_eq!(text(&|s| push_int(s, -137i64)), "-137");
        assert_eq!(text(&|s| push_int(s, u64::MAX)), "18446744073709551615");
        assert_eq!(
            text(&|s| push_seconds(s, 1_795_979_959_000_000_000)),
            "1795979959.0"
        );
        assert_eq!(
            text(&|s| push_seconds(s, 1_795_979_959_237_049_905)),
            "1795979959.237049905"
        );
        assert_eq!(
            text(&|s| push_seconds(s, 1_795_979_959_500_000_000)),
            "1795979959.5"
        );
        assert_eq!(text(&|s| push_seconds(s, -1_500_000_000)), "-1.5");
    }

    #[test]
    fn process_stats_are_read_from_proc() {
        let p = ProcessStats::read().expect("linux /proc");
        assert!(p.resident_bytes > 0.0 && p.virtual_bytes >= p.resident_bytes);
        assert!(p.start_time_seconds > 1.5e9);
        assert!(p.open_fds.unwrap() >= 3.0);
    }
}
