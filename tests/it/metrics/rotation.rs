//! Podman 5.4.2 and 6.1.1 rotate their file event log and then re-send old events on live
//! streams (issue #8, section 1): sealwatch's counters must never exceed the events that
//! happened, and fall short only by what Podman lost while rotating, which
//! `sealwatch_event_log_rotations_total` makes visible.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::Duration;

use serde_json::Value;

use super::{str_of, wait_ready, CATCH_UP};
use crate::support::{
    wait_until, Engine, Events, PodmanService, Run, Sealwatch, Version, BUSYBOX_IMAGE as IMAGE,
};

/// Containers per batch; two batches.
const BATCH: usize = 45;
/// The pause between the batches of the measurement: longer than the 10 s the old
/// de-duplication window covered, shorter than the ~20 s a rotation re-sends.
const BETWEEN_BATCHES: Duration = Duration::from_secs(12);
/// The most events a rotation may lose for the test to pass: Podman drops a few while it
/// rotates; more would be a different failure worth seeing.
const MAY_LOSE: f64 = 10.0;

/// 90 containers labelled `app=rot` created and removed in two batches 12 s apart, with a
/// 20 kB event log: create and remove are each counted at most 90 times, at least 90 less
/// what a rotation may lose, and the rotations are counted.
fn rotation(version: Version) {
    let engine = Engine::new(version, Events::File);
    let svc = PodmanService::start_configured(engine, "events_logfile_max_size = 20000");
    let sw = Sealwatch::start(&["--podman.url", &svc.url(), "--labels.allowlist", "app"]);
    wait_ready(&sw);
    // A second reader of Podman's stream, for the report: which distinct containers Podman
    // delivered per action (a rotation's re-sends repeat IDs; its losses are missing from both).
    let t0 = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let stream_file = svc.dir().join("rot-events.json");
    let args = [
        "events",
        "--since",
        &t0,
        "--filter",
        "label=app=rot",
        "--format",
        "json",
    ];
    let mut stream = svc.spawn_podman(&args, &stream_file);

    for batch in 0..2 {
        if batch > 0 {
            // The scenario's own timing (the workload), not a wait for a condition.
            std::thread::sleep(BETWEEN_BATCHES);
        }
        let names: Vec<String> = (0..BATCH).map(|i| format!("rot-{batch}-{i}")).collect();
        for name in &names {
            svc.run(
                &Run::create(IMAGE)
                    .name(name)
                    .label("app", "rot")
                    .cmd(["true"]),
            );
        }
        let mut rm = vec!["rm".to_owned(), "-f".to_owned()];
        rm.extend(names);
        svc.podman(&rm);
    }
    // A last container with its own label: the stream is ordered, so once its removal is
    // counted, every event before it (and every re-send before it) has been seen.
    svc.run(
        &Run::create(IMAGE)
            .name("rot-end")
            .label("app", "rot-end")
            .cmd(["true"]),
    );
    svc.podman(&["rm", "-f", "rot-end"]);
    let count = |value: &str, action: &str| {
        sw.scrape()
            .try_value(
                "podman_label_container_events_total",
                &[("label", "app"), ("value", value), ("action", action)],
            )
            .unwrap_or(0.0)
    };
    wait_until("the last container's removal is counted", CATCH_UP, || {
        (count("rot-end", "remove") >= 1.0)
            .then_some(())
            .ok_or_else(|| format!("rot-end remove: {}", count("rot-end", "remove")))
    });

    let _ = stream.kill();
    let _ = stream.wait();
    let mut seen: BTreeMap<String, (usize, BTreeSet<String>)> = BTreeMap::new();
    for line in fs::read_to_string(&stream_file).unwrap_or_default().lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let entry = seen.entry(str_of(&e, "Status").to_owned()).or_default();
        entry.0 += 1;
        entry.1.insert(str_of(&e, "ID").to_owned());
    }
    let seen: Vec<String> = seen
        .iter()
        .map(|(a, (n, ids))| format!("{a}: {n} events, {} containers", ids.len()))
        .collect();

    let m = sw.scrape();
    let (created, removed) = (count("rot", "create"), count("rot", "remove"));
    let rotations = m.value("sealwatch_event_log_rotations_total", &[]);
    let duplicates = m.value("sealwatch_replayed_duplicate_events_total", &[]);
    let total = (2 * BATCH) as f64;
    eprintln!(
        "rotation on {engine:?}: create {created}, remove {removed} of {total}; rotations \
         {rotations}, duplicates dropped {duplicates}; a `podman events` reader saw {seen:?}"
    );
    assert!(
        rotations >= 1.0,
        "the 20 kB event log never rotated: the scenario did not happen"
    );
    for (action, n) in [("create", created), ("remove", removed)] {
        assert!(
            n <= total,
            "{action} counted {n} times for {total} containers: re-sent events counted again \
             (rotations {rotations}, duplicates dropped {duplicates})"
        );
        assert!(
            n >= total - MAY_LOSE,
            "{action} counted only {n} times for {total} containers (rotations {rotations})"
        );
    }
}

/// On Podman 5.4.2: counters stay at or below the events performed across log rotations.
#[test]
fn counters_never_exceed_the_events_across_log_rotations_on_5_4_file() {
    rotation(Version::V5);
}

/// On Podman 6.1.1: counters stay at or below the events performed across log rotations.
#[test]
fn counters_never_exceed_the_events_across_log_rotations_on_6_1_file() {
    rotation(Version::V6);
}
