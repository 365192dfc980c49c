//! The deployment examples under deploy/: the Prometheus config and alert rules (promtool, and the
//! rules evaluated by a real Prometheus against a real sealwatch watching a real private Podman),
//! the systemd unit and the Quadlet unit.

mod alerts;
mod promtool;
mod units;

use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn prometheus_dir() -> PathBuf {
    repo().join("deploy/prometheus")
}

/// The alerts the issue asks for (sealwatch down or engine disconnected, restarting repeatedly,
/// non-zero exits at a high rate, unhealthy for a while, pod degraded).
const REQUIRED_ALERTS: &[&str] = &[
    "SealwatchDown",
    "PodmanEngineDown",
    "PodmanContainerRestarting",
    "PodmanContainerExitsNonZero",
    "PodmanContainerUnhealthy",
    "PodmanPodDegraded",
];
