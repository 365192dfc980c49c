//! The exporter's own instruments: `sealwatch_build_info`, the per-engine `sealwatch_*` counters,
//! `sealwatch_last_event_timestamp_seconds` and `process_*`, in one prometheus-client registry.
//!
//! Owns registering them once at start: the watchers update the live counters they are handed,
//! and each scrape appends the registry's encoding. Never builds a registry per scrape and never
//! reads the inventory.

use std::sync::Arc;

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

    let mut instruments = Vec::with_capacity(engines.len());
    let mut last_events = Vec::with_capacity(engines.len());
    for name in engines {
        let label = EngineLabel {
            engine: (*name).to_owned(),
        };
        // A child of each family, created now so that every engine shows 0 from the start.
        let child = |f: &Family<EngineLabel, Counter>| f.get_or_create(&label).clone();
        let mut engine = EngineInstruments::default();
        engine.reconnects = child(&reconnects);
        engine.connect_failures = child(&failures);
        engine.resyncs = child(&resyncs);
        engine.decode_errors = child(&decode_errors);
        engine.stream_errors = child(&stream_errors);
        engine.duplicates_dropped = child(&duplicates);
        engine.log_rotations = child(&rotations);
        engine.oversized_responses = child(&oversized);
        engine.unparsable_exit_codes = child(&exit_codes);
        last_events.push((Arc::<str>::from(*name), engine.clone()));
        instruments.push(engine);
    }
    registry.register_collector(Box::new(LastEvent(last_events)));
    registry.register_collector(Box::new(ProcessCollector));
    (registry, instruments)
}

/// `sealwatch_last_event_timestamp_seconds`: a collector because the series is absent until an
/// engine's first event, which a registered gauge cannot be.
#[derive(Debug)]
struct LastEvent(Vec<(Arc<str>, EngineInstruments)>);

impl Collector for LastEvent {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let values: Vec<(&str, f64)> = self
            .0
            .iter()
            .filter_map(|(name, i)| Some((&**name, i.last_event_nanos()? as f64 / 1e9)))
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
            let label = [("engine", engine)];
            ConstGauge::new(seconds).encode(family.encode_family(&label)?)?;
        }
        Ok(())
    }
}
