//! The podman source: one line of Podman's stats stream
//! (`GET /libpod/containers/stats?stream=true&interval=N`) turned into a `Sample`.
//!
//! Owns the stream's wire shape (4.x and 5.x, see `tests/fixtures/stats/README.md`), its units,
//! and what Podman cannot say: the working set, OOM kills and the pods' own cgroups are absent,
//! never estimated; an unlimited container's `MemLimit` (the host's memory) means no limit; a
//! network namespace shared by a pod's members is shown once, for the infra container (the rule
//! the cgroup source follows); Podman 4, which reports only `eth0`'s bytes, gets no network series.
//! Pure: never does I/O; `watcher::stats` reads the stream and stores the samples.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{NetworkUsage, Sample, Usage};
use crate::inventory::Inventory;

/// One line of the stream: Go's `entities.ContainerStatsReport`.
#[derive(Debug, Deserialize)]
struct WireReport {
    /// Go's `error` interface: `null`, or `{}` (its fields are unexported) on the last line
    /// before Podman ends the stream.
    #[serde(rename = "Error", default)]
    error: Option<serde_json::Value>,
    #[serde(rename = "Stats", default)]
    stats: Option<Vec<WireStats>>,
}

/// Go's `define.ContainerStats`; fields sealwatch does not use are ignored.
#[derive(Debug, Deserialize)]
struct WireStats {
    #[serde(rename = "ContainerID")]
    id: String,
    /// Cumulative user + system CPU time, nanoseconds.
    #[serde(rename = "CPUNano", default)]
    cpu_nanos: Option<u64>,
    #[serde(rename = "CPUSystemNano", default)]
    cpu_system_nanos: Option<u64>,
    #[serde(rename = "MemUsage", default)]
    mem_usage: Option<u64>,
    /// The cgroup's limit, or the host's memory when that is lower (so: when unlimited).
    #[serde(rename = "MemLimit", default)]
    mem_limit: Option<u64>,
    #[serde(rename = "PIDs", default)]
    pids: Option<u64>,
    #[serde(rename = "BlockInput", default)]
    block_input: Option<u64>,
    #[serde(rename = "BlockOutput", default)]
    block_output: Option<u64>,
    /// Podman 5+: interface name -> counters; `null` without a network. Podman 4 has
    /// `NetInput`/`NetOutput` instead (ignored: `eth0`'s bytes only).
    #[serde(rename = "Network", default)]
    network: Option<HashMap<String, WireInterface>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireInterface {
    #[serde(rename = "RxBytes")]
    rx_bytes: u64,
    #[serde(rename = "RxPackets")]
    rx_packets: u64,
    #[serde(rename = "RxErrors")]
    rx_errors: u64,
    #[serde(rename = "TxBytes")]
    tx_bytes: u64,
    #[serde(rename = "TxPackets")]
    tx_packets: u64,
    #[serde(rename = "TxErrors")]
    tx_errors: u64,
}

/// How old the latest report may get before its numbers are no longer shown: three intervals
/// and some slack for Podman's own time to compute a report of many containers.
pub fn max_age(interval: Duration) -> Duration {
    interval * 3 + Duration::from_secs(10)
}

/// What one line of the stream says.
#[derive(Debug)]
pub enum Report {
    /// The usage of every running container Podman reported.
    Sample(Sample),
    /// Podman failed to compute this round; it ends the stream after this line.
    Error(String),
}

/// Decodes one line. `host_memory` is the engine's total memory (`GET /libpod/info`
/// `host.memTotal`): a `MemLimit` at or above it means unlimited. Network counters are kept for
/// every container here; `attribute_network` then drops the shared ones.
pub fn decode(
    line: &[u8],
    taken: Instant,
    host_memory: Option<u64>,
) -> Result<Report, serde_json::Error> {
    let report: WireReport = serde_json::from_slice(line)?;
    if let Some(err) = report.error.filter(|e| !e.is_null()) {
        let text = match err {
            serde_json::Value::Object(o) if o.is_empty() => {
                "Podman could not compute the stats (its error has no text)".to_owned()
            }
            other => other.to_string(),
        };
        return Ok(Report::Error(text));
    }
    let mut sample = Sample::new(taken);
    for s in report.stats.unwrap_or_default() {
        if s.id.is_empty() {
            continue;
        }
        let limit = s
            .mem_limit
            .filter(|&l| l > 0 && host_memory.is_none_or(|host| l < host));
        let network = s.network.filter(|n| !n.is_empty()).map(|ifaces| {
            let mut n = NetworkUsage::default();
            for (name, i) in ifaces {
                if name == "lo" {
                    continue;
                }
                n.receive_bytes = n.receive_bytes.saturating_add(i.rx_bytes);
                n.receive_packets = n.receive_packets.saturating_add(i.rx_packets);
                n.receive_errors = n.receive_errors.saturating_add(i.rx_errors);
                n.transmit_bytes = n.transmit_bytes.saturating_add(i.tx_bytes);
                n.transmit_packets = n.transmit_packets.saturating_add(i.tx_packets);
                n.transmit_errors = n.transmit_errors.saturating_add(i.tx_errors);
            }
            n
        });
        let usage = Usage {
            cpu_nanos: s.cpu_nanos,
            cpu_system_nanos: s.cpu_system_nanos,
            memory_bytes: s.mem_usage,
            working_set_bytes: None,
            memory_limit_bytes: limit,
            pids: s.pids,
            network,
            block_read_bytes: s.block_input,
            block_write_bytes: s.block_output,
            oom_kills: None,
        };
        sample.containers.insert(Arc::from(s.id), usage);
    }
    Ok(Report::Sample(sample))
}

/// Podman reports a pod's shared network namespace on every member: keep it for the pod's infra
/// container only, as the cgroup source does. Members of a pod without an infra container keep
/// their own.
pub fn attribute_network(sample: &mut Sample, inventory: &Inventory) {
    for (id, usage) in sample.containers.iter_mut() {
        if usage.network.is_none() {
            continue;
        }
        let Some(c) = inventory.container(id) else {
            continue;
        };
        if c.infra {
            continue;
        }
        let shares = c
            .pod_id
            .as_deref()
            .and_then(|p| inventory.pod(p))
            .is_some_and(|p| p.infra_id.as_deref().is_some_and(|i| i != id.as_ref()));
        if shares {
            usage.network = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_MEMORY: u64 = 25_276_510_208;

    fn fixture(name: &str) -> Vec<Vec<u8>> {
        let path = format!("{}/tests/fixtures/stats/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read(&path).unwrap();
        text.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn sample(line: &[u8]) -> Sample {
        match decode(line, Instant::now(), Some(HOST_MEMORY)).unwrap() {
            Report::Sample(s) => s,
            Report::Error(e) => panic!("unexpected error report: {e}"),
        }
    }

    fn by_prefix<'a>(s: &'a Sample, prefix: &str) -> &'a Usage {
        s.containers
            .iter()
            .find(|(id, _)| id.starts_with(prefix))
            .map(|(_, u)| u)
            .unwrap_or_else(|| panic!("no container {prefix}"))
    }

    /// Podman 4.3.1's stream: every running container with its CPU, memory, pids and block I/O
    /// in Podman's units; unlimited memory is no limit; no network (4.x has eth0 bytes only).
    #[test]
    fn podman_4_lines_decode_to_usage() {
        let lines = fixture("stream-4.3.1.ndjson");
        assert_eq!(lines.len(), 5);
        let first = sample(&lines[0]);
        assert_eq!(first.containers.len(), 6);
        let busy = by_prefix(&first, "9b371a25865e");
        assert_eq!(busy.cpu_nanos, Some(13_743_946_964));
        assert_eq!(busy.cpu_system_nanos, Some(133_041_252));
        assert_eq!(busy.memory_bytes, Some(245_760));
        assert_eq!(busy.memory_limit_bytes, None, "MemLimit = host memory");
        assert_eq!(busy.pids, Some(1));
        assert_eq!(busy.block_read_bytes, Some(0));
        assert_eq!(busy.network, None);
        assert_eq!(busy.working_set_bytes, None);
        assert_eq!(busy.oom_kills, None);
        let mem = by_prefix(&first, "fd93ad9b5d72");
        assert_eq!(mem.memory_bytes, Some(52_789_248));
        assert!(first.pods.is_empty(), "no pod cgroups from Podman");
    }

    /// New containers appear on the same stream and removed ones disappear (no `containers`
    /// parameter: Podman lists all containers every interval).
    #[test]
    fn the_stream_follows_containers_that_come_and_go() {
        let lines = fixture("stream-4.3.1.ndjson");
        let ids = |l: &[u8]| {
            let mut v: Vec<String> = sample(l)
                .containers
                .keys()
                .map(|k| k[..12].to_owned())
                .collect();
            v.sort();
            v
        };
        let first = ids(&lines[0]);
        let second = ids(&lines[1]);
        let last = ids(&lines[4]);
        assert_eq!(first.len() + 1, second.len(), "a container started");
        assert!(second.contains(&"dce69e82cb3a".to_owned()));
        assert!(!last.contains(&"dce69e82cb3a".to_owned()), "m2 was removed");
    }

    /// Podman 5.4.2: the same fields; a real limit is kept; `Network: null` is no network.
    #[test]
    fn podman_5_lines_decode_to_usage() {
        let lines = fixture("stream-5.4.2.ndjson");
        let first = sample(&lines[0]);
        let idle = by_prefix(&first, "0b016b4f7cb9");
        assert_eq!(idle.memory_limit_bytes, Some(104_857_600));
        let busy = by_prefix(&first, "c62382ed5b36");
        assert_eq!(busy.memory_limit_bytes, None);
        assert_eq!(busy.network, None);
        assert!(busy.cpu_nanos.unwrap() > 1_000_000_000);
        // The exited container is never reported.
        assert!(!first
            .containers
            .keys()
            .any(|k| k.starts_with("87da2334c1fd")));
    }

    /// Podman 5's per-interface counters are summed (lo excluded); without the host's memory,
    /// any limit is kept.
    #[test]
    fn interfaces_are_summed() {
        let line = br#"{"Error":null,"Stats":[{"ContainerID":"abc","CPUNano":5,"MemUsage":7,"MemLimit":9,"PIDs":2,"Network":{"eth0":{"RxBytes":10,"RxPackets":2,"RxErrors":1,"TxBytes":20,"TxPackets":3,"TxErrors":0,"RxDropped":0,"TxDropped":0},"eth1":{"RxBytes":1,"RxPackets":1,"RxErrors":0,"TxBytes":2,"TxPackets":1,"TxErrors":4},"lo":{"RxBytes":100,"TxBytes":100}},"BlockInput":3,"BlockOutput":4}]}"#;
        let Report::Sample(s) = decode(line, Instant::now(), None).unwrap() else {
            panic!("not a sample")
        };
        let u = &s.containers["abc"];
        assert_eq!(
            u.network,
            Some(NetworkUsage {
                receive_bytes: 11,
                transmit_bytes: 22,
                receive_packets: 3,
                transmit_packets: 4,
                receive_errors: 1,
                transmit_errors: 4,
            })
        );
        assert_eq!(u.memory_limit_bytes, Some(9));
        assert_eq!(
            (u.block_read_bytes, u.block_write_bytes),
            (Some(3), Some(4))
        );
    }

    /// Podman's error object (`{}`: Go errors have no exported fields) is an error report, and
    /// a line that is not a report is a decode error.
    #[test]
    fn errors_and_garbage() {
        assert!(matches!(
            decode(br#"{"Error":{},"Stats":null}"#, Instant::now(), None),
            Ok(Report::Error(_))
        ));
        assert!(decode(b"{\"Stats\":[{\"CPUNano\":1}]}", Instant::now(), None).is_err());
        assert!(decode(b"not json", Instant::now(), None).is_err());
    }
    /// A pod's shared namespace is shown once, for its infra container; a container outside a
    /// pod keeps its own.
    #[test]
    fn pod_members_leave_the_network_to_the_infra_container() {
        use crate::inventory::{Allowlist, LabelPolicy};
        use crate::podman::wire::{ListContainer, ListPod};
        use serde_json::json;
        let mut inv = Inventory::new(LabelPolicy::new(Allowlist::default(), 10));
        let c = |id: &str, pod: &str, infra: bool| -> ListContainer {
            serde_json::from_value(json!({
                "Id": id, "Names": [id], "Image": "i", "State": "running", "Pid": 7,
                "Pod": pod, "IsInfra": infra,
            }))
            .unwrap()
        };
        let pod: ListPod = serde_json::from_value(
            json!({"Id": "p", "Name": "p1", "Status": "Running", "InfraId": "inf"}),
        )
        .unwrap();
        inv.resync(
            vec![
                c("inf", "p", true),
                c("m1", "p", false),
                c("solo", "", false),
            ],
            vec![pod],
            i64::MIN,
        );
        let net = Some(NetworkUsage {
            receive_bytes: 1,
            ..NetworkUsage::default()
        });
        let mut s = Sample::new(Instant::now());
        for id in ["inf", "m1", "solo", "unknown"] {
            s.containers.insert(
                Arc::from(id),
                Usage {
                    network: net,
                    ..Usage::default()
                },
            );
        }
        attribute_network(&mut s, &inv);
        let has = |id: &str| s.containers[id].network.is_some();
        assert!(has("inf") && has("solo") && has("unknown"));
        assert!(!has("m1"));
    }
}
