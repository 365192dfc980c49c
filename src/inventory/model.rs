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

/// An immutable string shared by reference count: a container record copied on write (the first
/// change after a snapshot was published) clones its strings as pointer bumps, not allocations.
/// Reads like a `&str` (`Deref`, `as_str`, comparisons with `str` and `String`).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same string as an `Arc<str>` (for map keys that share it).
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        Self(s)
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        s.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl serde::Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Podman's state words and health words as one shared string each for the process's life:
/// setting a container's state or health allocates nothing.
pub fn word(w: &str) -> SharedStr {
    static WORDS: std::sync::OnceLock<Vec<SharedStr>> = std::sync::OnceLock::new();
    let words = WORDS.get_or_init(|| {
        [
            "created",
            "initialized",
            "running",
            "paused",
            "stopped",
            "exited",
            "removing",
            "healthy",
            "unhealthy",
            "starting",
        ]
        .into_iter()
        .map(SharedStr::from)
        .collect()
    });
    words
        .iter()
        .find(|k| k.as_str() == w)
        .cloned()
        .unwrap_or_else(|| SharedStr::from(w))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: SharedStr,
    pub name: SharedStr,
    pub image: SharedStr,
    /// Podman's own state word: created, initialized, running, paused, stopped, exited, ...
    pub state: SharedStr,
    /// The main process, known from a list; a live `start` event does not carry it.
    pub pid: Option<u32>,
    pub pod_id: Option<SharedStr>,
    pub infra: bool,
    pub labels: Labels,
    /// Unix nanoseconds.
    pub created_at: Option<i64>,
    pub started_at: Option<i64>,
    pub exited_at: Option<i64>,
    /// Exit code of the last run while the container is exited (Podman resets it on start).
    pub exit_code: Option<i64>,
    /// healthy, unhealthy or starting; `None` without a healthcheck.
    pub health: Option<SharedStr>,
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
