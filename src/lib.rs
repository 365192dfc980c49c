//! sealwatch: an event-driven Prometheus exporter and inventory sidecar for Podman.
//!
//! Data flows one way: `podman` (wire) -> `watcher` (sync, reconnect) -> `inventory` (pure state)
//! -> `state` (published snapshots) -> `web` and `metrics` (readers that never call Podman).

pub mod config;
pub mod inventory;
pub mod metrics;
pub mod podman;
pub mod state;
pub mod watcher;
pub mod web;
pub mod webconfig;
