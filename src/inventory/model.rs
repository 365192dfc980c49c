//! The records the inventory keeps: containers and pods as sealwatch knows them.
//!
//! Owns their fields and what is read straight off them (short ID, compose project). Never
//! changes them: transitions live in `inventory::Inventory`; pod state lives in `inventory::pods`.

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
    /// The record came from the last resync's list (not from events).
    pub listed: bool,
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
