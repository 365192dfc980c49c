//! Integration-test support: a private, isolated Podman API service per test, the sealwatch
//! binary to start and scrape, one exposition parser and linter, one promtool runner, one
//! builder for `podman run` arguments, a real Prometheus, a headless Chromium driven over the
//! DevTools protocol, and a scripted Podman for faults.
//!
//! Everything here is per instance (temp dirs, sockets, ports), so tests can run in parallel
//! threads. Plain std + `tempfile`, `ureq`, `serde_json`; synchronous.

pub mod binary;
pub mod chromium;
pub mod exposition;
pub mod podman;
pub mod process;
pub mod prometheus;
pub mod promtool;
pub mod rootless;
pub mod run;
pub mod scripted;
pub mod unit_file;
pub mod vm;

pub use binary::Sealwatch;
pub use exposition::{assert_lint_clean, Exposition, Format};
pub use podman::{journal_lock, Engine, Events, PodmanService, Version, Via, BUSYBOX_IMAGE};
pub use process::{free_port, wait_until};
pub use run::Run;
