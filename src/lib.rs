//! sealwatch: an event-driven Prometheus exporter and inventory sidecar for Podman.
//!
//! Data flows one way, and the modules follow it:
//!
//! ```text
//! podman     the libpod REST API on the wire: connection, tolerant types, NDJSON framing
//!   -> watcher    one task per engine: list + events sync, de-duplication, reconnect, backoff
//!   -> inventory  pure state and its transitions: containers, pods, counters, label policy
//!   (resources    CPU, memory, network, block I/O per container and pod, sampled by scrapes
//!                 from the cgroup filesystem; kept beside each snapshot, never in the inventory)
//!   -> snapshot   the hand-over: immutable snapshots and live instruments, one writer per engine
//!   -> metrics    /metrics, rendered at scrape time from the snapshots
//!   (feed         every applied event, numbered, in a bounded ring and a broadcast: /events)
//!   -> web        HTTP: routing, JSON API, event feed, pages, negotiation, serving
//! ```
//!
//! Nothing flows back up: readers never call Podman, and a scrape never waits for an engine.
//! `discovery` finds rootless users' sockets as they come and go and starts or drops their
//! engines (the `Fleet`). `config` and `webconfig` turn the command line and the web config file into what `main`
//! wires together. Everything is crate-private except what the binary, the tests and the
//! benchmarks need, re-exported here.

pub mod allocator;
pub mod build_info;
pub mod config;
pub mod discovery;
pub mod fdlimit;
mod feed;
/// Entry points for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing;
mod inventory;
mod metrics;
mod podman;
mod resources;
mod snapshot;
mod watcher;
mod web;
mod webconfig;

pub use feed::{Feed, FeedPublisher};
pub use inventory::{Allowlist, CounterMap, Inventory, LabelPolicy, SharedStr};
pub use metrics::{
    register_instrument_families, register_instruments, InstrumentFamilies, Metrics, ScrapeCache,
};
/// One event line decoded as the watcher decodes it, for `benches/ingest.rs`; not an API.
#[doc(hidden)]
pub use podman::wire::{decode_stream_line, StreamItem};
pub use podman::wire::{Event, ListContainer, ListPod};
pub use podman::{Client, USER_RUNTIME_ROOT};
pub use resources::{
    choose as choose_stats_source, CgroupSampler, EngineStats, Host, Sample, Sampler, Source,
    Source as StatsSource, SourceChoice as StatsSourceChoice, Usage,
};
/// The live counters an engine's ingest counts into, for `benches/ingest.rs`; not an API.
#[doc(hidden)]
pub use snapshot::EngineInstruments;
pub use snapshot::{EngineStatus, Engines, Publisher};
/// The watcher's per-chunk ingest path, for `benches/ingest.rs`; not an API.
#[doc(hidden)]
pub use watcher::{Ingest, PublishPace, PUBLISH_INTERVAL};
pub use watcher::{StatsStream, Watcher};
pub use web::negotiate::gzip_bytes;
pub use web::{router, serve, ServeLimits};
