//! Starting and stopping one engine while sealwatch runs: its place in `Engines`, its own
//! instruments, its resource source and its watcher task.
//!
//! Owns the per-engine wiring `main` used to do once at start, so that engines configured on the
//! command line and engines discovered later are started the same way. Never decides which
//! engines exist: the command line and discovery do.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, EngineConfig};
use crate::feed::Feed;
use crate::inventory::{Inventory, LabelPolicy};
use crate::metrics::InstrumentFamilies;
use crate::podman::Client;
use crate::resources::{self, Host, Source};
use crate::snapshot::Engines;
use crate::watcher::{StatsStream, Watcher};

/// The settings every engine is started with, taken from the configuration.
#[derive(Debug, Clone)]
struct Settings {
    max_response_size: usize,
    stats_source: resources::SourceChoice,
    stats_interval: Duration,
    stats_podman_interval: Duration,
    allowlist: crate::inventory::Allowlist,
    max_label_values: usize,
    max_label_keys: usize,
    removed_retention: Duration,
}

/// The running engines and what starting another one takes.
pub struct Fleet {
    settings: Settings,
    host: Host,
    engines: Engines,
    families: InstrumentFamilies,
    /// Every engine's events go to the one feed (`/events`).
    feed: Feed,
    shutdown: CancellationToken,
    running: HashMap<Arc<str>, (CancellationToken, JoinHandle<()>)>,
}

impl Fleet {
    pub fn new(
        config: &Config,
        engines: Engines,
        families: InstrumentFamilies,
        feed: Feed,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            settings: Settings {
                max_response_size: config.max_response_size,
                stats_source: config.stats_source,
                stats_interval: config.stats_interval,
                stats_podman_interval: config.stats_podman_interval,
                allowlist: config.allowlist.clone(),
                max_label_values: config.max_label_values,
                max_label_keys: config.max_label_keys,
                removed_retention: config.removed_retention,
            },
            host: Host::system(),
            engines,
            families,
            feed,
            shutdown,
            running: HashMap::new(),
        }
    }

    /// Whether an engine of that name runs (or is kept, down, until its retention passes).
    pub fn has(&self, name: &str) -> bool {
        self.running.contains_key(name)
    }

    /// Starts watching `engine`: readers see it at once (connecting), its counters continue
    /// where they were if it ran before under the same name. An engine of that name that still
    /// runs is stopped first. The error is the resource source's (a bad `--stats.source`
    /// for this engine), one line.
    pub fn start(&mut self, engine: &EngineConfig) -> Result<(), String> {
        self.stop_watcher(&engine.name);
        let s = &self.settings;
        let (stats, line) = resources::choose(
            s.stats_source,
            &engine.endpoint,
            s.stats_interval,
            s.stats_podman_interval,
            &self.host,
        )?;
        tracing::info!(engine = %engine.name, source = stats.source().as_str(), "{line}");
        let inventory = Inventory::new(
            LabelPolicy::new(s.allowlist.clone(), s.max_label_values)
                .with_max_keys(s.max_label_keys),
        )
        .with_removed_retention(s.removed_retention);
        let publisher = self.engines.add(
            engine.name.clone(),
            engine.endpoint.to_string(),
            inventory.clone(),
            stats,
        );
        let instruments = self.families.add(&engine.name);
        let client = Client::new(engine.endpoint.clone())
            .with_max_response(s.max_response_size, instruments.oversized_responses.clone());
        let stream = (publisher.stats_source() == Source::Podman)
            .then(|| StatsStream::new(client.clone(), s.stats_podman_interval, publisher.handle()));
        let feed = self.feed.publisher(publisher.name().clone());
        let mut watcher = Watcher::new(publisher, client, inventory, instruments).with_feed(feed);
        if let Some(stream) = stream {
            watcher = watcher.with_stats_stream(stream);
        }
        let token = self.shutdown.child_token();
        let task = tokio::spawn(watcher.run(token.clone()));
        self.running
            .insert(Arc::from(engine.name.as_str()), (token, task));
        Ok(())
    }

    fn stop_watcher(&mut self, name: &str) -> Option<JoinHandle<()>> {
        let (token, task) = self.running.remove(name)?;
        token.cancel();
        Some(task)
    }

    /// Stops watching `name` and drops it with every series it had.
    pub fn remove(&mut self, name: &str) {
        self.stop_watcher(name);
        self.engines.remove(name);
        self.families.remove(name);
    }

    /// Waits (up to `grace` for all together) for every watcher to end after the shutdown was
    /// cancelled.
    pub async fn join(mut self, grace: Duration) {
        let all = async {
            for (_, (_, task)) in self.running.drain() {
                let _ = task.await;
            }
        };
        let _ = tokio::time::timeout(grace, all).await;
    }
}
