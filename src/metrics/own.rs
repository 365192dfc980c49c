//! The exporter's own instruments: `sealwatch_build_info`, the per-engine `sealwatch_*` counters,
//! `sealwatch_last_event_timestamp_seconds` and `process_*`, in one prometheus-client registry.
//!
//! Owns registering them once at start: the watchers update the live counters they are handed,
//! and each scrape appends the registry's encoding. Never builds a registry per scrape and never
//! reads the inventory.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use super::process::ProcessCollector;
use crate::build_info;
use crate::snapshot::EngineInstruments;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabel {
    engine: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
    rustc: String,
}

/// Registers every instrument for the engines named (help texts without their final period:
/// `Registry::register` adds it), in order, and returns the registry with
/// each engine's instruments (same order), ready to hand to its watcher.
pub fn register_instruments(engines: &[&str]) -> (Registry, Vec<EngineInstruments>) {
    let (registry, families) = register_instrument_families();
    let instruments = engines.iter().map(|n| families.add(n)).collect();
    (registry, instruments)
}

/// Each engine's name with its instruments, for `sealwatch_last_event_timestamp_seconds`.
type LastEvents = Arc<Mutex<Vec<(Arc<str>, EngineInstruments)>>>;

/// Every engine's counter families, for engines that come and go while sealwatch runs
/// (discovered rootless users): `add` gives a new engine its instruments, `remove` drops its
/// series. Clones share the families.
#[derive(Debug, Clone)]
pub struct InstrumentFamilies {
    reconnects: Family<EngineLabel, Counter>,
    failures: Family<EngineLabel, Counter>,
    resyncs: Family<EngineLabel, Counter>,
    decode_errors: Family<EngineLabel, Counter>,
    stream_errors: Family<EngineLabel, Counter>,
    duplicates: Family<EngineLabel, Counter>,
    rotations: Family<EngineLabel, Counter>,
    oversized: Family<EngineLabel, Counter>,
    exit_codes: Family<EngineLabel, Counter>,
    last_events: LastEvents,
}

impl InstrumentFamilies {
    fn families(&self) -> [&Family<EngineLabel, Counter>; 9] {
        [
            &self.reconnects,
            &self.failures,
            &self.resyncs,
            &self.decode_errors,
            &self.stream_errors,
            &self.duplicates,
            &self.rotations,
            &self.oversized,
            &self.exit_codes,
        ]
    }

    /// The instruments of engine `name`, created now so that every series shows 0 from the start.
    pub fn add(&self, name: &str) -> EngineInstruments {
        let label = EngineLabel {
            engine: name.to_owned(),
        };
        let child = |f: &Family<EngineLabel, Counter>| f.get_or_create(&label).clone();
        let mut engine = EngineInstruments::default();
        engine.reconnects = child(&self.reconnects);
        engine.connect_failures = child(&self.failures);
        engine.resyncs = child(&self.resyncs);
        engine.decode_errors = child(&self.decode_errors);
        engine.stream_errors = child(&self.stream_errors);
        engine.duplicates_dropped = child(&self.duplicates);
        engine.log_rotations = child(&self.rotations);
        engine.oversized_responses = child(&self.oversized);
        engine.unparsable_exit_codes = child(&self.exit_codes);
        let mut last = self.last_events.lock().unwrap_or_else(|e| e.into_inner());
        last.retain(|(n, _)| &**n != name);
        last.push((Arc::from(name), engine.clone()));
        engine
    }

    /// Drops every series of engine `name` (it went away and its retention passed).
    pub fn remove(&self, name: &str) {
        let label = EngineLabel {
            engine: name.to_owned(),
        };
        for family in self.families() {
            family.remove(&label);
        }
        self.last_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, _)| &**n != name);
    }
}

/// Registers every instrument once, with no engine yet.
pub fn register_instrument_families() -> (Registry, InstrumentFamilies) {
    let mut registry = Registry::default();
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: build_info::VERSION.into(),
            revision: build_info::REVISION.into(),
            rustc: build_info::RUSTC.into(),
        })
        .set(1);
    registry.register(
        "sealwatch_build_info",
        "sealwatch build facts; always 1",
        build,
    );

    let counter = |registry: &mut Registry, stem: &str, help: &str| {
        let family = Family::<EngineLabel, Counter>::default();
        registry.register(stem, help, family.clone());
        family
    };
    let reconnects = counter(
        &mut registry,
        "sealwatch_engine_reconnects",
        "Reconnections to the engine that synced again after an earlier session had synced",
    );
    let failures = counter(
        &mut registry,
        "sealwatch_engine_connect_failures",
        "Attempts to reach the engine that ended before the inventory was synced",
    );
    let resyncs = counter(
        &mut registry,
        "sealwatch_engine_resyncs",
        "Completed list resyncs",
    );
    let decode_errors = counter(
        &mut registry,
        "sealwatch_event_decode_errors",
        "Event lines that could not be decoded (skipped)",
    );
    let stream_errors = counter(
        &mut registry,
        "sealwatch_event_stream_errors",
        "Error objects Podman sent inside the event stream (skipped; the stream then reconnects)",
    );
    let duplicates = counter(
        &mut registry,
        "sealwatch_replayed_duplicate_events",
        "Events Podman delivered again (replayed after a reconnect, or re-sent after rotating its event log) and dropped as already counted",
    );
    let rotations = counter(
        &mut registry,
        "sealwatch_event_log_rotations",
        "Rotations of Podman's event log seen; Podman may lose events while it rotates",
    );
    let oversized = counter(
        &mut registry,
        "sealwatch_podman_oversized_responses",
        "Responses (over --podman.max-response-size) and stream lines (over 1 MiB per event, 16 MiB per stats report) from Podman dropped for their size; the engine is retried",
    );
    let exit_codes = counter(
        &mut registry,
        "sealwatch_event_unparsable_exit_codes",
        "Container died events whose containerExitCode is not a number from 0 to 255; their exits are counted with exit_code=\"unknown\"",
    );

    let last_events = Arc::new(Mutex::new(Vec::new()));
    registry.register_collector(Box::new(LastEvent(last_events.clone())));
    registry.register_collector(Box::new(ProcessCollector));
    let families = InstrumentFamilies {
        reconnects,
        failures,
        resyncs,
        decode_errors,
        stream_errors,
        duplicates,
        rotations,
        oversized,
        exit_codes,
        last_events,
    };
    (registry, families)
}

/// `sealwatch_last_event_timestamp_seconds`: a collector because the series is absent until an
/// engine's first event, which a registered gauge cannot be.
#[derive(Debug)]
struct LastEvent(LastEvents);

impl Collector for LastEvent {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let values: Vec<(Arc<str>, f64)> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(name, i)| Some((name.clone(), i.last_event_nanos()? as f64 / 1e9)))
            .collect();
        if values.is_empty() {
            return Ok(());
        }
        let mut family = enc.encode_descriptor(
            "sealwatch_last_event_timestamp_seconds",
            "Podman's time of the newest event applied.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (engine, seconds) in values {
            let label = [("engine", &*engine)];
            ConstGauge::new(seconds).encode(family.encode_family(&label)?)?;
        }
        Ok(())
    }
}
