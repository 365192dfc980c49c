//! The records the inventory keeps: containers and pods as sealwatch knows them.
//!
//! Owns their fields and the derivations Podman itself makes from them (a pod's state from its
//! containers' states). Never changes them: transitions live in `inventory::Inventory`.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Labels are shared between snapshots and never change for a container's life.
pub type Labels = Arc<BTreeMap<String, String>>;

/// Label keys that name a compose project, in the order they are consulted.
pub const PROJECT_LABELS: &[&str] = &["io.podman.compose.project", "com.docker.compose.project"];

#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    /// Podman's own state word: created, initialized, running, paused, stopped, exited, ...
    pub state: String,
    /// The main process, known from a list; a live `start` event does not carry it.
    pub pid: Option<u32>,
    pub pod_id: Option<String>,
    pub infra: bool,
    pub labels: Labels,
    /// Unix nanoseconds.
    pub created_at: Option<i64>,
    pub started_at: Option<i64>,
    pub exited_at: Option<i64>,
    /// Exit code of the last run while the container is exited (Podman resets it on start).
    pub exit_code: Option<i64>,
    /// healthy, unhealthy or starting; `None` without a healthcheck.
    pub health: Option<String>,
    /// Starts seen after a `died` of this container.
    pub restarts: u64,
    /// A `died` was seen and no `start` since: the next start is a restart.
    pub awaiting_restart: bool,
}

impl Container {
    /// The 12-character short ID that `podman ps` shows and metrics use.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    /// The compose project the container belongs to, from its labels.
    pub fn project(&self) -> Option<&str> {
        PROJECT_LABELS
            .iter()
            .find_map(|k| self.labels.get(*k))
            .map(String::as_str)
    }
}

pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    pub id: String,
    pub name: String,
    pub infra_id: Option<String>,
    /// Pod labels: known from the list only (pod events carry none).
    pub labels: Labels,
    pub created_at: Option<i64>,
}

/// A pod's state from its containers' states (infra included), exactly as Podman derives it
/// (`createPodStatusResults` in libpod/pod_status.go): Running, Degraded, Paused, Exited, Stopped,
/// Error or Created.
pub fn pod_state<'a>(states: impl IntoIterator<Item = &'a str>) -> &'static str {
    let (mut total, mut running, mut paused, mut stopped, mut errored) = (0, 0, 0, 0, 0);
    for s in states {
        total += 1;
        match s {
            "exited" | "stopped" => stopped += 1,
            "running" => running += 1,
            "paused" => paused += 1,
            "created" | "initialized" => {}
            _ => errored += 1,
        }
    }
    match () {
        _ if total == 0 => "Created",
        _ if running == total => "Running",
        _ if running > 0 => "Degraded",
        _ if paused == total => "Paused",
        _ if stopped == total => "Exited",
        _ if stopped > 0 => "Stopped",
        _ if errored > 0 => "Error",
        _ => "Created",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_state_follows_podman() {
        assert_eq!(pod_state([]), "Created");
        assert_eq!(pod_state(["running", "running"]), "Running");
        assert_eq!(pod_state(["running", "exited"]), "Degraded");
        assert_eq!(pod_state(["paused", "paused"]), "Paused");
        assert_eq!(pod_state(["exited", "stopped"]), "Exited");
        assert_eq!(pod_state(["exited", "created"]), "Stopped");
        assert_eq!(pod_state(["removing", "created"]), "Error");
        assert_eq!(pod_state(["created", "initialized"]), "Created");
    }
}
