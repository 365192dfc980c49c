//! The live model of one engine: containers, pods, images, volumes, networks and event counters,
//! and every transition of them.
//!
//! Owns `apply(event)` (state plus counters), `resync(lists)` and `refresh(lists)` (state only,
//! in `lists`; images, volumes and networks in `objects`). Pure: no I/O, no
//! async, no clock; time comes from the events and lists. Never decides *when* to resync or
//! whether an event is a replayed duplicate (that is the watcher's job).
//!
//! Maps are persistent (`imbl`), so cloning an `Inventory` to publish a snapshot shares all
//! structure and costs O(1), whatever the number of containers.

mod container_map;
mod counters;
mod labels;
mod lifecycle;
mod lists;
mod model;
mod objects;
mod pods;
mod retention;

use std::sync::Arc;

use crate::podman::wire::{Event, ExitCodeAttr, RESERVED_ATTRIBUTES};
use container_map::ContainerMap;
pub use counters::CounterMap;
pub use counters::Counters;
use counters::{action_label, type_label};
pub use labels::{Allowlist, LabelPolicy, DEFAULT_MAX_KEYS};
pub use lifecycle::{Histogram, Lifecycle, HEALTHY_BUCKETS, RUN_BUCKETS};
pub use model::short_id;
use model::word;
pub use model::{Container, Labels, LabelsRef, Pod, SharedStr, PROJECT_LABELS};
use objects::Objects;
pub use objects::{Components, Image};
pub use pods::{PodIndex, PodMembers, PodState};
use retention::GoneSince;
pub use retention::DEFAULT_REMOVED_RETENTION;

/// The persistent map of the inventory's own records and indexes. Keys are Podman's IDs (random,
/// not chosen by whoever creates a container) and label keys and values (capped by
/// `--labels.max-keys` and `--labels.max-values`), so SipHash's flood resistance buys nothing
/// for the ten or so lookups each event makes; FxHash is several times cheaper on a 64-character
/// ID.
pub(crate) type FxMap<K, V> =
    imbl::GenericHashMap<K, V, rustc_hash::FxBuildHasher, imbl::shared_ptr::DefaultSharedPtr>;

#[derive(Debug, Clone)]
pub struct Inventory {
    /// By ID, in a map whose entries copy with one reference count each (`container_map`).
    containers: ContainerMap,
    pods: FxMap<Arc<str>, Arc<Pod>>,
    /// Pod ID to name, kept after the pod is gone: counters are keyed by pod ID and still need
    /// their `pod` label (until the retention sweep drops them).
    pod_names: FxMap<Arc<str>, Arc<str>>,
    counters: Counters,
    /// Run durations and startup-to-healthy times (`lifecycle`), counted like `counters`.
    lifecycle: Lifecycle,
    labels: LabelPolicy,
    /// Podman's time (unix nanoseconds) just before the last resync's lists were taken: events
    /// older than this are counted but move no state of a container the lists showed (a
    /// replayed `start` would otherwise lose the pid the fresher list has). Containers and pods
    /// that came and went while sealwatch was away still follow their events, which is how their
    /// counts get their pod.
    listed_at: i64,
    /// The engine lists `Restarts` (Podman 4.6+): that is the restart count, not sealwatch's own.
    podman_counts_restarts: bool,
    /// Images, volumes, networks and component versions (`objects`).
    objects: Objects,
    /// `--metrics.removed-retention` in nanoseconds: how long the counters of a removed pod or
    /// label value are kept after it was last seen (`retention`).
    removed_retention: i64,
    /// When each removed pod, label key and value was first found gone (`retention`).
    gone: GoneSince,
}

/// See `Inventory::counts_held`.
#[derive(Debug, Clone)]
pub struct CountsHeld {
    counters: Counters,
    lifecycle: Lifecycle,
    pod_names: FxMap<Arc<str>, Arc<str>>,
}

impl Inventory {
    pub fn new(labels: LabelPolicy) -> Self {
        Self {
            containers: ContainerMap::default(),
            pods: FxMap::default(),
            pod_names: FxMap::default(),
            counters: Counters::default(),
            lifecycle: Lifecycle::default(),
            labels,
            listed_at: i64::MIN,
            podman_counts_restarts: false,
            objects: Objects::default(),
            removed_retention: i64::try_from(DEFAULT_REMOVED_RETENTION.as_nanos())
                .unwrap_or(i64::MAX),
            gone: GoneSince::default(),
        }
    }

    /// What readers get (a published snapshot): everything but the owner's own bookkeeping
    /// (the runs in progress), in O(1) whatever the number of containers.
    pub fn snapshot(&self) -> Inventory {
        Inventory {
            containers: self.containers.clone(),
            pods: self.pods.clone(),
            pod_names: self.pod_names.clone(),
            counters: self.counters.clone(),
            lifecycle: self.lifecycle.for_readers(),
            labels: self.labels.clone(),
            listed_at: self.listed_at,
            podman_counts_restarts: self.podman_counts_restarts,
            objects: self.objects.clone(),
            removed_retention: self.removed_retention,
            gone: self.gone.clone(),
        }
    }

    pub fn containers(&self) -> impl Iterator<Item = &Arc<Container>> {
        self.containers.values()
    }

    pub fn container(&self, id: &str) -> Option<&Arc<Container>> {
        self.containers.get(id)
    }

    pub fn container_count(&self) -> usize {
        self.containers.len()
    }

    /// Whether `other` holds these very container records (a snapshot of the same moment, or
    /// one taken since with no container changed): a scrape-time cache keeps its output then.
    /// Pointer comparisons only; `false` says nothing about equality.
    pub fn same_containers(&self, other: &Inventory) -> bool {
        self.containers.ptr_eq(&other.containers)
    }

    /// Whether `other` holds these very pod names (see `same_containers`).
    pub fn same_pod_names(&self, other: &Inventory) -> bool {
        self.pod_names.ptr_eq(&other.pod_names)
    }

    /// Whether `other` holds these very pods, pod names and label admissions: with
    /// `same_containers`, everything the per-pod and per-label gauges are computed from.
    pub fn same_pods_and_labels(&self, other: &Inventory) -> bool {
        self.pods.ptr_eq(&other.pods)
            && self.same_pod_names(other)
            && self.labels.same_admissions(&other.labels)
    }

    pub fn pods(&self) -> impl Iterator<Item = &Arc<Pod>> {
        self.pods.values()
    }

    pub fn pod(&self, id: &str) -> Option<&Arc<Pod>> {
        self.pods.get(id)
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The name of a pod by ID, also for pods that are gone; the short ID if it never had one
    /// we saw.
    pub fn pod_name<'a>(&'a self, pod_id: &'a str) -> &'a str {
        self.pod_names
            .get(pod_id)
            .map(|n| &**n)
            .unwrap_or_else(|| short_id(pod_id))
    }

    /// The name of a pod by ID, also for pods that are gone, if it was ever seen.
    pub fn known_pod_name(&self, pod_id: &str) -> Option<&str> {
        self.pod_names.get(pod_id).map(|n| &**n)
    }

    /// What the event counter and lifecycle families are written from (the counts, the
    /// histograms and the pod names), held by a scrape's cache to tell with `same_counts`
    /// whether a later snapshot has the very same.
    pub fn counts_held(&self) -> CountsHeld {
        CountsHeld {
            counters: self.counters.clone(),
            lifecycle: self.lifecycle.for_readers(),
            pod_names: self.pod_names.clone(),
        }
    }

    /// Whether this snapshot has the very counts, histograms and pod names `held` holds
    /// (pointer comparisons only; holding them makes every later change a copy).
    pub fn same_counts(&self, held: &CountsHeld) -> bool {
        self.counters.ptr_eq(&held.counters)
            && self.lifecycle.ptr_eq(&held.lifecycle)
            && self.pod_names.ptr_eq(&held.pod_names)
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Tells the inventory which Podman it mirrors: from 4.6 Podman keeps the restart count
    /// itself (and lists it), so sealwatch must not count restarts on top of it.
    pub fn set_podman_version(&mut self, version: &str) {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        self.podman_counts_restarts = (major, minor) >= (4, 6);
    }

    pub fn label_policy(&self) -> &LabelPolicy {
        &self.labels
    }

    /// Applies one (not yet seen) event: counts it, then moves the state. Idempotent for state:
    /// applying events that a list already reflects converges to the same state.
    pub fn apply(&mut self, ev: &Event) {
        let action = action_label(ev.action());
        self.counters.events.bump((type_label(ev.kind()), action));
        match ev.kind() {
            "container" => self.apply_container(ev, action),
            "pod" => self.apply_pod(ev),
            "image" | "volume" | "network" => self.apply_object_event(ev),
            _ => {}
        }
    }

    fn apply_container(&mut self, ev: &Event, action: &'static str) {
        let id = ev.id();
        if id.is_empty() {
            return;
        }
        let known = self.containers.get(id).cloned();
        // The pod's ID as the inventory already holds it, if it does: no allocation per event.
        let pod: Option<Arc<str>> = match known.as_ref().and_then(|c| c.pod_id.as_ref()) {
            Some(p) => Some(p.as_arc().clone()),
            None => ev.attr("podId").map(|p| self.held_pod_id(p)),
        };
        let labels = self.count_container_event(ev, action, known.as_deref(), pod.as_ref());
        // Timed like counted: also for events older than the last list.
        let held_id = known.as_ref().map(|c| c.id.as_arc());
        if let Some(nanos) = self.lifecycle.observe_held(ev, held_id, pod.as_ref()) {
            // Admitted already by the count above: this only reads the policy.
            for (k, v) in labels.iter() {
                if let Some((key, value)) = self.labels.admit(k, v) {
                    self.lifecycle.observe_label_run(key, value, nanos);
                }
            }
        }
        // The last list already shows this container as it was after this (older) event.
        if ev.nanos() < self.listed_at && known.as_ref().is_some_and(|c| c.listed) {
            return;
        }

        let t = ev.nanos();
        let counts_restarts = self.podman_counts_restarts;
        match ev.action() {
            "create" if known.is_none() => {
                let c = self.container_from_event(ev, labels, "created");
                self.insert_container(c);
            }
            // Podman never initialises a running or paused container: such an `init` is one
            // the list already reflects (replayed after a resync), and must not lose the pid.
            "init" => self.upsert(
                ev,
                known,
                labels,
                "initialized",
                |c| !matches!(c.state.as_str(), "running" | "paused" | "initialized"),
                |c| c.state = word("initialized"),
            ),
            "start" => self.upsert(
                ev,
                known,
                labels,
                "running",
                |_| true,
                move |c| {
                    if c.state != "running" {
                        c.pid = None;
                        c.state = word("running");
                    }
                    c.started_at = Some(t);
                    // Podman resets the exit code on start; it is only meaningful while exited.
                    c.exit_code = None;
                    // ...and the health of a container with a healthcheck, without an event.
                    if c.health.is_some() {
                        c.health = Some(word("starting"));
                    }
                    if c.awaiting_restart && !counts_restarts {
                        c.restarts += 1;
                    }
                    c.awaiting_restart = false;
                },
            ),
            "pause" => self.upsert(
                ev,
                known,
                labels,
                "paused",
                |c| c.state != "paused",
                |c| c.state = word("paused"),
            ),
            "unpause" => self.upsert(
                ev,
                known,
                labels,
                "running",
                |c| c.state != "running",
                |c| c.state = word("running"),
            ),
            "died" => {
                let code = match ev.exit_code() {
                    ExitCodeAttr::Code(c) => Some(i64::from(c)),
                    ExitCodeAttr::Absent | ExitCodeAttr::Unparsable => None,
                };
                self.update_if(
                    id,
                    known,
                    |_| true,
                    |c| {
                        c.state = word("exited");
                        c.pid = None;
                        c.exited_at = Some(t);
                        c.exit_code = code;
                        c.awaiting_restart = true;
                    },
                );
            }
            // Podman 5 and 6 show a container that died as `stopped` until its cleanup, then
            // `exited`; a list taken in between must not leave it `stopped`.
            "cleanup" => self.update_if(
                id,
                known,
                |c| c.state == "stopped",
                |c| c.state = word("exited"),
            ),
            "rename" => {
                if let Some(name) = ev.attr("name") {
                    self.update_if(
                        id,
                        known,
                        |c| c.name != name,
                        |c| c.name = SharedStr::from(name),
                    );
                }
            }
            "health_status" => {
                if let Some(h) = ev.health_status().filter(|h| !h.is_empty()) {
                    self.update_if(
                        id,
                        known,
                        |c| c.health.as_deref() != Some(h),
                        |c| c.health = Some(word(h)),
                    );
                }
            }
            "remove" if known.is_some() => {
                self.containers.remove(id);
            }
            _ => {}
        }
    }

    /// Counts a container event by pod (`pod_id`), label and exit code, before any transition:
    /// `remove` deletes the record, and `died` carries an empty podId, so pod and labels come
    /// from what is known of the container. Returns the labels it used.
    fn count_container_event(
        &mut self,
        ev: &Event,
        action: &'static str,
        known: Option<&Container>,
        pod_id: Option<&Arc<str>>,
    ) -> Labels {
        let labels = known
            .map(|c| c.labels.clone())
            .unwrap_or_else(|| labels_from_attributes(ev));
        if let Some(pod) = pod_id {
            self.gone.pod_seen(pod);
            self.counters
                .pod_container_events
                .bump((pod.clone(), action));
        }
        for (k, v) in labels.iter() {
            if let Some((key, value)) = self.labels.admit(k, v) {
                self.gone.label_seen(&key, &value);
                self.counters
                    .label_container_events
                    .bump((key, value, action));
            }
        }
        if ev.action() == "died" {
            // An unparsable code is counted as `unknown` here and by the watcher's
            // `sealwatch_event_unparsable_exit_codes`; it never becomes a label value.
            let code = exit_code_label(ev.exit_code());
            self.counters.container_exits.bump((pod_id.cloned(), code));
        }
        labels
    }

    /// A pod ID as the inventory already holds it, if it does: no allocation per event.
    fn held_pod_id(&self, pod_id: &str) -> Arc<str> {
        match self.pod_names.get_key_value(pod_id) {
            Some((held, _)) => held.clone(),
            None => Arc::from(pod_id),
        }
    }

    fn container_from_event(&self, ev: &Event, labels: Labels, state: &str) -> Container {
        let pod_id = ev
            .attr("podId")
            .map(|p| SharedStr::from(self.held_pod_id(p)));
        // Podman creates a pod's infra container before it emits the pod's `create`: a
        // container created into a pod we do not know yet is that pod's infra container.
        let infra = pod_id
            .as_deref()
            .is_some_and(|p| !self.pods.contains_key(p));
        Container {
            id: SharedStr::from(ev.id()),
            name: SharedStr::from(ev.attr("name").unwrap_or_default()),
            image: SharedStr::from(ev.attr("image").unwrap_or_default()),
            state: word(state),
            pid: None,
            pod_id,
            infra,
            labels,
            created_at: (ev.action() == "create").then(|| ev.nanos()),
            started_at: None,
            exited_at: None,
            exit_code: None,
            health: None,
            restarts: 0,
            awaiting_restart: false,
            listed: false,
        }
    }

    fn insert_container(&mut self, c: Container) {
        for (k, v) in c.labels.iter() {
            self.labels.admit(k, v);
        }
        self.containers.insert(Arc::new(c));
    }

    /// Changes `known` (the container `id` as the map holds it), only if `needed` says the
    /// change would move something; unknown containers are left alone (a `died` for a container
    /// the list did not show is one already removed). Looks first: a write to a map a published
    /// snapshot shares copies the nodes on the key's path, and `make_mut` copies the record.
    /// `known` is let go before the write: held, it would make `make_mut` copy the record even
    /// when no snapshot shares it.
    fn update_if(
        &mut self,
        id: &str,
        known: Option<Arc<Container>>,
        needed: impl FnOnce(&Container) -> bool,
        change: impl FnOnce(&mut Container),
    ) {
        if !known.is_some_and(|c| needed(&c)) {
            return;
        }
        if let Some(c) = self.containers.get_mut(id) {
            change(Arc::make_mut(c));
        }
    }

    /// Changes a container (see `update_if`), first inserting it from the event's attributes if
    /// it is unknown (a live `start` of a container created while we were not looking).
    fn upsert(
        &mut self,
        ev: &Event,
        known: Option<Arc<Container>>,
        labels: Labels,
        state: &str,
        needed: impl FnOnce(&Container) -> bool,
        change: impl FnOnce(&mut Container),
    ) {
        match known {
            Some(c) => self.update_if(ev.id(), Some(c), needed, change),
            None => {
                let mut c = self.container_from_event(ev, labels, state);
                change(&mut c);
                self.insert_container(c);
            }
        }
    }

    fn apply_pod(&mut self, ev: &Event) {
        let id = ev.id();
        if id.is_empty() {
            return;
        }
        match ev.action() {
            "create" => {
                if let Some(name) = ev.attr("name") {
                    self.pod_names.insert(Arc::from(id), Arc::from(name));
                }
                if !self.pods.contains_key(id) {
                    let infra_id = self
                        .containers
                        .values()
                        .find(|c| c.infra && c.pod_id.as_deref() == Some(id))
                        .map(|c| c.id.to_string());
                    let pod = Pod {
                        id: id.to_owned(),
                        name: ev.attr("name").unwrap_or_default().to_owned(),
                        infra_id,
                        labels: Labels::default(),
                        created_at: Some(ev.nanos()),
                    };
                    self.pods.insert(Arc::from(id), Arc::new(pod));
                }
            }
            "remove" => {
                self.pods.remove(id);
            }
            _ => {}
        }
    }
}

/// The `code` label of an exit: one shared string per code for the process's life (there are
/// 257), so counting an exit allocates nothing.
fn exit_code_label(code: ExitCodeAttr) -> Arc<str> {
    static LABELS: std::sync::OnceLock<Vec<Arc<str>>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| {
        (0..=255u16)
            .map(|c| Arc::from(c.to_string()))
            .chain([Arc::from("unknown")])
            .collect()
    });
    let slot = match code {
        ExitCodeAttr::Code(c) => usize::from(c),
        ExitCodeAttr::Absent | ExitCodeAttr::Unparsable => 256,
    };
    labels[slot].clone()
}

/// An event's labels: its attributes without the keys Podman reserves for itself.
fn labels_from_attributes(ev: &Event) -> Labels {
    ev.attributes()
        .filter(|(k, _)| !RESERVED_ATTRIBUTES.contains(k))
        .collect()
}

#[cfg(test)]
mod tests;
