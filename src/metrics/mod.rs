//! `/metrics`: every family of the contract, rendered at scrape time from the published snapshots.
//!
//! Owns one render: one scrape's snapshots -> engine families -> event counters -> the exporter's
//! own registry -> container families (resource families included) -> pod resource families ->
//! `# EOF`. Resource samples are taken (or reused) here, once per engine per scrape, on the
//! scrape's blocking thread. The families derived from the inventory are
//! written by `exposition`, the one text writer; the exporter's own instruments live in one
//! prometheus-client registry built at start (`own`). Series of containers and pods exist only
//! while those do, because they are computed from the current snapshot, never stored. Never calls
//! Podman and never mutates the inventory.

mod containers;
mod engines;
mod events;
mod exposition;
mod own;
mod process;
mod resources;

use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::registry::Registry;

use crate::snapshot::Engines;
pub use own::register_instruments;

/// The classic Prometheus text format, which promtool reads.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/metrics` renders from: every engine's published snapshot and the exporter's own
/// registry.
#[derive(Debug)]
pub struct Metrics {
    engines: Engines,
    own: Registry,
    /// Size of the last render: the next one starts with that much room (plus some), so a large
    /// inventory's output is not copied again and again while its buffer grows.
    last_len: AtomicUsize,
}

impl Metrics {
    /// `own` is the registry `register` returned.
    pub fn new(engines: Engines, own: Registry) -> Self {
        Self {
            engines,
            own,
            last_len: AtomicUsize::new(0),
        }
    }

    /// Renders every family; `openmetrics` picks OpenMetrics text (ends in `# EOF`) over the
    /// classic 0.0.4 text. One set of snapshots serves the whole scrape, so every family describes
    /// the same moment.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let views = self.engines.views();
        let samples: Vec<_> = views
            .iter()
            .map(|v| v.stats.current(&v.inventory))
            .collect();
        let last = self.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity((last + last / 8).max(64 * 1024));
        engines::write(
            &mut exposition::Exposition::new(&mut out, openmetrics),
            &views,
        );
        events::write(
            &mut exposition::Exposition::new(&mut out, openmetrics),
            &views,
        );
        if openmetrics {
            prometheus_client::encoding::text::encode_registry(&mut out, &self.own)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.own)?;
        }
        let mut text = exposition::Exposition::new(&mut out, openmetrics);
        resources::write_own(&mut text, &views);
        containers::write(&mut text, &views, &samples);
        resources::write_pods(&mut text, &views, &samples);
        text.eof();
        self.last_len.store(out.len(), Ordering::Relaxed);
        Ok(out)
    }
}

/// Scrape-time maps are keyed by strings sealwatch already holds and live for one scrape:
/// SipHash's flood resistance buys nothing there and cost a tenth of a render.
type FxMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// Adds one to `key`'s count.
#[inline]
fn tally<K: std::hash::Hash + Eq>(map: &mut FxMap<K, i64>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

/// A map's entries in key order, for a stable output.
fn sorted<K: Ord, V>(map: FxMap<K, V>) -> Vec<(K, V)> {
    let mut v: Vec<(K, V)> = map.into_iter().collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
