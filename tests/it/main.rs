//! sealwatch's integration tests, one binary: the real binary against real components (a private
//! Podman service: 4.3.1, 5.4.2 or 6.1.1, with file or journald events; promtool, a real
//! Prometheus), plus a scripted Podman for what a real one cannot be made to do. Tests that need a tool fail, never skip, when it is missing.
//!
//! Run one module with `cargo test --test it -- metrics::`.

// A panic is how a test fails: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// For a test `NAME` on 4.3.1 with file events whose body is `BODY(engine)`, a module `NAME`
/// with one `#[test]` per other Podman version and event backend, each calling `BODY`:
/// `NAME::on_4_3_journald`, `NAME::on_5_4_file`, … `NAME::on_6_1_journald`.
macro_rules! on_other_engines {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use crate::support::{Engine, Events, Version};

            fn run(version: Version, events: Events) {
                let body: fn(Engine) = $body;
                let _journal = (events == Events::Journald).then(crate::support::journal_lock);
                body(Engine::new(version, events));
            }
            #[test]
            fn on_4_3_journald() {
                run(Version::V4, Events::Journald);
            }
            #[test]
            fn on_5_4_file() {
                run(Version::V5, Events::File);
            }
            #[test]
            fn on_5_4_journald() {
                run(Version::V5, Events::Journald);
            }
            #[test]
            fn on_6_1_file() {
                run(Version::V6, Events::File);
            }
            #[test]
            fn on_6_1_journald() {
                run(Version::V6, Events::Journald);
            }
        }
    };
}

mod support;

mod cli;
mod dashboards;
mod deploy;
mod discovery;
mod faults;
mod feed;
mod fields;
mod harness;
mod hostile;
mod hostile_podman;
mod image;
mod lifecycle;
mod metrics;
mod objects;
mod packages;
mod page;
mod recovery;
mod resources;
mod retention;
mod stats_stream;
mod sync;
mod vm;
mod webconfig;
