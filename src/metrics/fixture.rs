//! A fixture inventory for the exposition tests: two engines built from the real 4.3.1 captures
//! plus synthetic events with hostile labels (quotes, backslashes, newlines, keys that sanitize
//! alike, values past `--labels.max-values`), and the normalisation that makes two renders
//! comparable across processes (the inventory's maps iterate in a per-process random order).

use serde_json::json;

use std::sync::Arc;
use std::time::Duration;

use crate::inventory::{Allowlist, Inventory, LabelPolicy};
use crate::podman::wire::{decode_stream_line, Event, ListContainer, ListPod, StreamItem};
use crate::resources::{EngineStats, NetworkUsage, Sample, Source, Usage};

const EVENTS: &str = include_str!("../../tests/fixtures/events.ndjson");
const CONTAINERS: &str = include_str!("../../tests/fixtures/containers-json.json");
const PODS: &str = include_str!("../../tests/fixtures/pods-json.json");
const IMAGES: &str = include_str!("../../tests/fixtures/objects/images-json.json");
const VOLUMES: &str = include_str!("../../tests/fixtures/objects/volumes-json.json");
const NETWORKS: &str = include_str!("../../tests/fixtures/objects/networks-json.json");

fn real_events() -> Vec<Event> {
    EVENTS
        .lines()
        .filter_map(|l| match decode_stream_line(l.as_bytes()) {
            Ok(StreamItem::Event(e)) => Some(*e),
            _ => None,
        })
        .collect()
}

pub(crate) fn event(t: i64, kind: &str, action: &str, id: &str, attrs: serde_json::Value) -> Event {
    serde_json::from_value(json!({
        "Type": kind, "Action": action, "timeNano": t,
        "Actor": {"ID": id, "Attributes": attrs}
    }))
    .expect("synthetic event")
}

/// Synthetic events on top of the captures: hostile labels and names, health, exit codes.
fn synthetic_events() -> Vec<Event> {
    let t = 1_795_976_300_000_000_000i64;
    let hostile = "q\"uote \\back\nnew ✓";
    let mut out = Vec::new();
    let pod = "5eed000000000000000000000000000000000000000000000000000000000001";
    out.push(event(
        t,
        "pod",
        "create",
        pod,
        json!({"name": "pod \"odd\"\\name"}),
    ));
    for i in 0..6i64 {
        let id = format!("{:064x}", 0xfeed_0000 + i);
        let attrs = json!({
            "name": format!("hostile-{i}"),
            "image": "localhost/busybox:latest",
            "podId": if i % 2 == 0 { pod } else { "" },
            "app": if i == 0 { hostile.to_owned() } else { format!("v{i}") },
            "a.b": "dot", "a-b": "dash", "role": format!("r{}", i % 3),
        });
        let at = t + i * 1_000_000 + 1;
        out.push(event(at, "container", "create", &id, attrs.clone()));
        out.push(event(at + 1, "container", "start", &id, attrs.clone()));
        if i % 3 == 0 {
            let mut d = attrs.clone();
            d["containerExitCode"] = json!(["0", "137", "1"][(i as usize / 3) % 3]);
            d["podId"] = json!("");
            out.push(event(at + 2, "container", "died", &id, d));
        }
        if i == 4 {
            let h: Event = serde_json::from_value(json!({
                "Type": "container", "Action": "health_status", "timeNano": at + 3,
                "HealthStatus": "unhealthy", "Actor": {"ID": id, "Attributes": attrs}
            }))
            .expect("health event");
            out.push(h);
        }
    }
    out.push(event(
        t + 50_000_000,
        "image",
        "pull",
        "",
        json!({"name": "x"}),
    ));
    out.push(event(t + 50_000_001, "volume", "teleport", "v", json!({})));
    out
}

/// The fixture's two engines: `alpha` (lists, then every captured and synthetic event, two
/// values admitted per label key) and `beta` (events only, default allowlist).
pub(crate) fn inventories() -> Vec<(&'static str, Inventory)> {
    let mut alpha = Inventory::new(LabelPolicy::new(
        Allowlist::parse("app,role,a.b,a-b,io.podman.compose.project,podlabel"),
        2,
    ));
    let containers: Vec<ListContainer> = serde_json::from_str(CONTAINERS).expect("list");
    let pods: Vec<ListPod> = serde_json::from_str(PODS).expect("pods");
    alpha.resync(containers, pods, i64::MIN);
    for e in real_events().iter().chain(synthetic_events().iter()) {
        alpha.apply(e);
    }
    alpha.replace_images(serde_json::from_str(IMAGES).expect("images"));
    alpha.replace_volumes(serde_json::from_str(VOLUMES).expect("volumes"));
    alpha.replace_networks(serde_json::from_str(NETWORKS).expect("networks"));
    let info = serde_json::from_str(include_str!("../../tests/fixtures/info.json")).expect("info");
    alpha.set_components(crate::inventory::Components::from_info(&info));
    let mut beta = Inventory::new(LabelPolicy::new(Allowlist::default(), 500));
    for e in real_events().iter().take(40) {
        beta.apply(e);
    }
    vec![("alpha", alpha), ("beta", beta)]
}

/// Resource usage for the fixture's `alpha` engine, as a source would have stored it: numbers
/// for the first three running containers (one with everything, one without a limit or
/// network, one with only CPU), for an exited one (which must not show) and for the first pod.
pub(crate) fn stats(inv: &Inventory) -> EngineStats {
    let mut ids: Vec<(&str, &str)> = inv
        .containers()
        .map(|c| (c.id.as_str(), c.state.as_str()))
        .collect();
    ids.sort_unstable();
    let mut sample = Sample::new(std::time::Instant::now());
    let full = Usage {
        cpu_nanos: Some(86_669_277),
        cpu_system_nanos: Some(46_868_467),
        memory_bytes: Some(52_789_248),
        working_set_bytes: Some(52_654_080),
        memory_limit_bytes: Some(268_435_456),
        pids: Some(3),
        network: Some(NetworkUsage {
            receive_bytes: 2726,
            transmit_bytes: 752,
            receive_packets: 33,
            transmit_packets: 10,
            receive_errors: 1,
            transmit_errors: 0,
        }),
        block_read_bytes: Some(4096),
        block_write_bytes: Some(8_388_608),
        oom_kills: Some(2),
    };
    let unlimited = Usage {
        memory_limit_bytes: None,
        network: None,
        cpu_nanos: Some(12_000_000_000),
        ..full.clone()
    };
    let cpu_only = Usage {
        cpu_nanos: Some(1),
        ..Usage::default()
    };
    let running = ids
        .iter()
        .filter(|(_, s)| *s == "running")
        .map(|(id, _)| *id);
    for (id, u) in running.zip([full.clone(), unlimited, cpu_only]) {
        sample.containers.insert(Arc::from(id), u);
    }
    if let Some((id, _)) = ids.iter().find(|(_, s)| *s == "exited") {
        sample.containers.insert(Arc::from(*id), full.clone());
    }
    let mut pods: Vec<&str> = inv.pods().map(|p| p.id.as_str()).collect();
    pods.sort_unstable();
    if let Some(pod) = pods.first() {
        sample.pods.insert(
            Arc::from(*pod),
            Usage {
                network: None,
                ..full
            },
        );
    }
    let stats = EngineStats::pushed(Source::Cgroup, Duration::from_secs(3600));
    stats.store(sample);
    stats
}

/// A render made comparable: the `process_*` families (they read this process) and the
/// `revision` of `sealwatch_build_info` (it changes with every commit) are left out, and the
/// samples inside each family are sorted (their order follows the maps' random hash order).
pub(crate) fn normalize(text: &str) -> String {
    let mut out = Vec::new();
    let mut samples: Vec<&str> = Vec::new();
    let mut skipping = false;
    let flush = |out: &mut Vec<String>, samples: &mut Vec<&str>| {
        samples.sort_unstable();
        out.extend(samples.drain(..).map(str::to_owned));
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            flush(&mut out, &mut samples);
            let name = rest.split(' ').nth(1).unwrap_or("");
            skipping = name.starts_with("process_");
            if !skipping {
                out.push(line.to_owned());
            }
        } else if !skipping {
            if line.starts_with("sealwatch_build_info") {
                let masked = line
                    .split(',')
                    .map(|p| {
                        if p.starts_with("revision=") {
                            "revision=\"*\""
                        } else {
                            p
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                out.push(masked);
            } else {
                samples.push(line);
            }
        }
    }
    flush(&mut out, &mut samples);
    out.join("\n") + "\n"
}
