//! sealwatch's integration tests, one binary: the real binary against real components (a private
//! Podman 4.3.1 service, promtool, a real Prometheus), plus a scripted Podman for what a real one
//! cannot be made to do. Tests that need a tool fail, never skip, when it is missing.
//!
//! Run one module with `cargo test --test it -- metrics::`.

// A panic is how a test fails: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cli;
mod dashboards;
mod deploy;
mod faults;
mod fields;
mod harness;
mod image;
mod metrics;
mod recovery;
mod sync;
mod vm;
mod webconfig;
