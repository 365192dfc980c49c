//! `/metrics`: every family of the contract, rendered at scrape time from the published snapshots.
//!
//! Owns one render: one scrape's snapshots -> engine families -> event counters -> lifecycle
//! histograms (kept between scrapes while nothing was counted: `counts`) -> the exporter's own
//! registry -> container families (resource families included)
//! -> pod resource families -> image, volume, network and component families -> `# EOF`.
//! Resource samples are reused, or taken here on the scrape's blocking thread when none is fresh; each scrape also schedules the
//! next sample just before the next scrape is expected (`resources::prefetch`). The families
//! derived from the inventory are
//! written by `exposition`, the one text writer; the exporter's own instruments live in one
//! prometheus-client registry built at start (`own`). Series of containers and pods exist only
//! while those do, because they are computed from the current snapshot, never stored. Never calls
//! Podman and never mutates the inventory.

mod body;
mod containers;
mod counts;
mod engines;
mod events;
mod exposition;
mod lifecycle;
mod objects;
mod own;
mod process;
mod resources;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;

use crate::resources::prefetch::{Cadence, Prefetcher};
use crate::snapshot::Engines;
pub use body::Body;
pub use own::{register_instrument_families, register_instruments, InstrumentFamilies};

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
    /// The scrapes' cadence and the thread that samples ahead of the next one; `None` when no
    /// engine is sampled on demand.
    prefetch: Option<(Mutex<Cadence>, Duration, Prefetcher)>,
    /// The container families' text kept from the last scrape.
    kept: containers::Cache,
    /// The event counter and lifecycle families' text kept from the last scrape.
    kept_counts: counts::Cache,
    /// `--metrics.scrape-cache`: whether that text outlives its scrape.
    cache: ScrapeCache,
}

/// `--metrics.scrape-cache`: whether a scrape's text is kept for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScrapeCache {
    /// Kept: a scrape writes only what changed since the last (about 20 MB at 10,000
    /// containers, README "Scrape cost").
    #[default]
    On,
    /// Let go once the scrape is written: every scrape renders everything, as the first does.
    Off,
}

impl Metrics {
    /// `own` is the registry `register` returned.
    pub fn new(engines: Engines, own: Registry) -> Self {
        let max_age = engines
            .views()
            .iter()
            .filter(|v| v.stats.is_sampled())
            .map(|v| v.stats.max_age())
            .min();
        let prefetch = max_age.filter(|a| !a.is_zero()).and_then(|max_age| {
            let engines = engines.clone();
            let prefetcher = Prefetcher::start(move |expected| {
                for v in engines.views() {
                    v.stats.prefetch(&v.inventory, expected);
                }
            })?;
            Some((Mutex::new(Cadence::default()), max_age, prefetcher))
        });
        Self {
            engines,
            own,
            last_len: AtomicUsize::new(0),
            prefetch,
            kept: containers::Cache::default(),
            kept_counts: counts::Cache::default(),
            cache: ScrapeCache::On,
        }
    }

    /// With `ScrapeCache::Off`, nothing is kept between scrapes: for a host where memory is
    /// tighter than CPU (README, "Memory").
    pub fn with_scrape_cache(mut self, cache: ScrapeCache) -> Self {
        self.cache = cache;
        self
    }

    /// Renders every family; `openmetrics` picks OpenMetrics text (ends in `# EOF`) over the
    /// classic 0.0.4 text. One set of snapshots serves the whole scrape, so every family describes
    /// the same moment.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        self.render_body(openmetrics).map(Body::into_string)
    }

    /// `render` as the scrape serves it: the text of containers that did not change since the
    /// last scrape is kept and handed out (and compressed) as held, not written again.
    pub fn render_body(&self, openmetrics: bool) -> Result<Body, std::fmt::Error> {
        let views = self.engines.views();
        let samples: Vec<_> = views
            .iter()
            .map(|v| v.stats.current(&v.inventory))
            .collect();
        if let Some((cadence, max_age, prefetcher)) = &self.prefetch {
            let due = cadence
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .scraped(Instant::now(), *max_age);
            if let Some(due) = due {
                prefetcher.schedule(due);
            }
        }
        let last = self.last_len.load(Ordering::Relaxed);
        let mut body = Body::new(String::with_capacity((last + last / 8).max(64 * 1024)));
        let out = body.text_mut();
        engines::write(&mut exposition::Exposition::new(out, openmetrics), &views);
        counts::write(&mut body, openmetrics, &self.kept_counts, &views);
        let out = body.text_mut();
        if openmetrics {
            prometheus_client::encoding::text::encode_registry(out, &self.own)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(out, &self.own)?;
        }
        resources::write_own(&mut exposition::Exposition::new(out, openmetrics), &views);
        containers::write(&mut body, openmetrics, &self.kept, &views, &samples);
        let mut text = exposition::Exposition::new(body.text_mut(), openmetrics);
        resources::write_pods(&mut text, &views, &samples);
        objects::write(&mut text, &views);
        text.eof();
        self.last_len
            .store(body.text_mut().len(), Ordering::Relaxed);
        if self.cache == ScrapeCache::Off {
            // The body holds what it serves; the rest of the text goes now, and the body's when
            // it is sent.
            self.kept.clear();
            self.kept_counts.clear();
        }
        Ok(body)
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
mod reference_objects;
#[cfg(test)]
mod tests;
