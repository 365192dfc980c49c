//! The event counters of the contract, and the bounded vocabulary of their `type` and `action`
//! labels.
//!
//! Owns counting only: keys are Podman IDs, never names, so a counter never moves when something
//! is renamed; names are resolved when the counters are rendered. Never reset: a resync leaves
//! every counter as it is; only the retention sweep (`inventory::retention`) drops the per-pod
//! and per-label-value counters of removed objects.

use std::sync::Arc;

/// Event types Podman emits; anything else is counted as `other`.
const TYPES: &[&str] = &[
    "container",
    "pod",
    "image",
    "volume",
    "network",
    "system",
    "machine",
    "secret",
    "artifact",
];

/// Every action Podman 4.x and 5.x emit (libpod/events/config.go); anything else is `other`, so a
/// new Podman cannot grow the label set without bound.
const ACTIONS: &[&str] = &[
    "attach",
    "auto-update",
    "build",
    "checkpoint",
    "cleanup",
    "commit",
    "connect",
    "copy",
    "create",
    "died",
    "disconnect",
    "exec",
    "exec_died",
    "exited",
    "export",
    "health_status",
    "import",
    "init",
    "kill",
    "load",
    "loadfromarchive",
    "log-rotation",
    "mount",
    "pause",
    "prune",
    "pull",
    "pull-error",
    "push",
    "refresh",
    "remove",
    "rename",
    "renumber",
    "reset",
    "restart",
    "restore",
    "save",
    "start",
    "stop",
    "sync",
    "tag",
    "unmount",
    "unpause",
    "untag",
    "update",
    "migrate",
];

/// The `type` label for an event's `Type`.
pub fn type_label(kind: &str) -> &'static str {
    TYPES
        .iter()
        .copied()
        .find(|t| *t == kind)
        .unwrap_or("other")
}

/// The `action` label for an event's `Action`.
pub fn action_label(action: &str) -> &'static str {
    ACTIONS
        .iter()
        .copied()
        .find(|a| *a == action)
        .unwrap_or("other")
}

/// Monotonic counts of events applied to one engine's inventory. Maps share structure, so a
/// snapshot costs O(1) to take.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// `podman_events_total{type, action}`.
    pub events: imbl::HashMap<(&'static str, &'static str), u64>,
    /// `podman_pod_container_events_total`, keyed by pod ID.
    pub pod_container_events: imbl::HashMap<(Arc<str>, &'static str), u64>,
    /// `podman_label_container_events_total{label, value, action}`, keys and values already
    /// folded.
    pub label_container_events: imbl::HashMap<(Arc<str>, Arc<str>, &'static str), u64>,
    /// `podman_container_exits_total`, keyed by pod ID (None outside a pod) and exit code text.
    pub container_exits: imbl::HashMap<(Option<Arc<str>>, Arc<str>), u64>,
}

pub(crate) fn bump<K: std::hash::Hash + Eq + Clone>(map: &mut imbl::HashMap<K, u64>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

#[cfg(test)]
impl Counters {
    /// Total of `podman_events_total` over all labels.
    pub fn total_events(&self) -> u64 {
        self.events.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_and_actions_fold_into_other() {
        assert_eq!(type_label("container"), "container");
        assert_eq!(type_label("spaceship"), "other");
        assert_eq!(action_label("died"), "died");
        assert_eq!(action_label("teleport"), "other");
    }
}
