//! The families derived from walking the containers: the aggregates (`podman_containers`,
//! `podman_pod_containers`, `podman_label_containers`, `podman_pods`), `podman_pod_state` and the per-container
//! families (`podman_container_info`, `_state`, `_labels`, `_started_time_seconds`,
//! `_exit_code`, `_health`, `_restarts_total`), then the per-container resource families of the
//! containers the engine's sample has (written by `resources`, with the same label text).
//!
//! Owns the one walk over every container of one scrape's snapshots and the `label_<key>` naming
//! of allowlisted labels. These families are nine tenths of a large scrape, so each container's
//! identity is escaped once and copied into its seven series. Series exist only while their
//! container exists: they are computed from the snapshot, never stored.

use std::ops::Range;
use std::sync::Arc;

use super::exposition::{self, push_int, push_seconds, push_value, Exposition, Kind};
use super::{sorted, tally, FxMap};
use crate::inventory::{Container, PodIndex, PROJECT_LABELS};
use crate::resources::{Sample, Usage};
use crate::snapshot::EngineView;

/// Writes every container-derived family of one scrape; `samples` are the engines' resource
/// samples, in the order of `views`.
pub fn write(out: &mut Exposition, views: &[EngineView], samples: &[Option<Arc<Sample>>]) {
    ContainerWalk::new(views, samples).write(out);
}

/// `label_<key>` with every character outside `[a-zA-Z0-9_]` replaced by `_`, as
/// kube-state-metrics names Kubernetes labels.
fn sanitize_label_key(key: &str) -> String {
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

/// Every family derived from the containers, from one walk over them: each container is
/// visited once and its identity escaped once, then copied into its series. A family with no
/// samples is left out.
struct ContainerWalk<'a> {
    views: &'a [EngineView],
    rows: Vec<Row>,
    /// Every row's label text, escaped: see `Row`.
    text: String,
    /// Keyed by engine index; infra containers are not counted.
    by_state: Vec<((usize, &'a str), i64)>,
    by_pod: Vec<((usize, &'a str, &'a str), i64)>,
    /// Values already folded into `__other__` past `--labels.max-values`, keys past
    /// `--labels.max-keys`.
    by_label: Vec<(LabelKey<'a>, i64)>,
    pods_by_state: Vec<((usize, &'static str), i64)>,
    /// Engine index, pod name, pod state: one per pod.
    pod_states: Vec<(usize, &'a str, &'static str)>,
    /// (row, usage) of the containers with resource series.
    usages: Vec<(usize, &'a Usage)>,
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
    fn new(views: &'a [EngineView], samples: &'a [Option<Arc<Sample>>]) -> Self {
        let n: usize = views.iter().map(|v| v.inventory.container_count()).sum();
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
        let mut pod_states = Vec::new();
        let mut usages = Vec::new();

        for (e, view) in views.iter().enumerate() {
            let inv = &view.inventory;
            let sample = samples.get(e).and_then(Option::as_deref);
            let policy = inv.label_policy();
            let mut pods = PodIndex::empty(inv);
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
                push_value(&mut text, "engine=\"", &view.name);
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
                    if !c.infra && policy.allowlist().allows(k) {
                        tally(&mut by_raw_label, (e, k.as_str(), v.as_str(), state));
                    }
                    // Keys past `--labels.max-keys` are counted above (as `__other__`) but
                    // cannot be folded into a label name.
                    if !policy.shows_key(k) {
                        continue;
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
                if let Some(u) = sample
                    .filter(|_| super::resources::shows_usage(state))
                    .and_then(|s| s.containers.get(c.id.as_str()))
                {
                    usages.push((rows.len(), u));
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
                let state = pods.state(&p.id).as_str();
                tally(&mut pods_by_state, (e, state));
                pod_states.push((e, p.name.as_str(), state));
            }
        }

        let mut by_label: FxMap<LabelKey, i64> = FxMap::default();
        for ((e, k, v, state), n) in by_raw_label {
            if let Some((k, v)) = views[e].inventory.label_policy().folded(k, v) {
                *by_label.entry((e, k, v, state)).or_insert(0) += n;
            }
        }
        Self {
            views,
            rows,
            text,
            by_state: sorted(by_state),
            by_pod: sorted(by_pod),
            by_label: sorted(by_label),
            pods_by_state: sorted(pods_by_state),
            pod_states,
            usages,
        }
    }

    fn engine(&self, e: usize) -> &'a str {
        &self.views[e].name
    }

    fn write(&self, exposition: &mut Exposition) {
        let openmetrics = exposition.openmetrics();
        let out = exposition.out();
        let descriptor = |out: &mut String, name: &str, help: &str, counter: bool| {
            let kind = if counter { Kind::Counter } else { Kind::Gauge };
            exposition::descriptor(out, openmetrics, name, help, kind);
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
        if !self.pod_states.is_empty() {
            let name = "podman_pod_state";
            descriptor(
                out,
                name,
                "The pod's state (lower case), as podman pod ps shows it; always 1.",
                false,
            );
            for (e, pod, state) in &self.pod_states {
                out.push_str(name);
                push_value(out, "{engine=\"", self.engine(*e));
                push_value(out, ",pod=\"", pod);
                push_value(out, ",state=\"", state);
                end(out, 1);
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

        let labelled: Vec<(&str, &Usage)> = self
            .usages
            .iter()
            .map(|(i, u)| (&text[rows[*i].head.start..rows[*i].pod_end], *u))
            .collect();
        super::resources::write_containers(exposition, &labelled);
    }
}
