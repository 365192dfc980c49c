//! A network namespace's traffic from `/proc/<pid>/net/dev`, and which container it is counted
//! for.
//!
//! Owns the file's format and the attribution rule: a namespace is counted once, for one of the
//! containers in it, so that a pod's traffic is not counted once per member and the host's
//! traffic is never counted for a container on the host network. Never reads cgroups.

use super::NetworkUsage;

/// The totals of every interface except `lo`. Each line after the two headers is
/// `iface: rx_bytes rx_packets rx_errs rx_drop rx_fifo rx_frame rx_compressed rx_multicast
/// tx_bytes tx_packets tx_errs ...`.
pub fn parse(text: &str) -> NetworkUsage {
    let mut n = NetworkUsage::default();
    for line in text.lines().skip(2) {
        let Some((iface, counters)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let v: Vec<u64> = counters
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if v.len() < 11 {
            continue;
        }
        n.receive_bytes = n.receive_bytes.saturating_add(v[0]);
        n.receive_packets = n.receive_packets.saturating_add(v[1]);
        n.receive_errors = n.receive_errors.saturating_add(v[2]);
        n.transmit_bytes = n.transmit_bytes.saturating_add(v[8]);
        n.transmit_packets = n.transmit_packets.saturating_add(v[9]);
        n.transmit_errors = n.transmit_errors.saturating_add(v[10]);
    }
    n
}

/// One running container as the attribution sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    /// Inode of `/proc/<pid>/ns/net`.
    pub netns: u64,
    pub infra: bool,
    /// Unix nanoseconds of the last start; the earliest-started container owns a namespace
    /// that no infra container does (the one others joined with `--network container:`).
    pub started_at: Option<i64>,
}

/// For each namespace other than the host's, the container whose series show its traffic: the
/// pod's infra container if it is in it, else the earliest started (then the smallest ID), so
/// the choice does not change from one sample to the next. Returns the owners' IDs.
pub fn owners<'a>(candidates: &[Candidate<'a>], host_netns: Option<u64>) -> Vec<&'a str> {
    let mut sorted: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| Some(c.netns) != host_netns)
        .collect();
    sorted.sort_by(|a, b| {
        (a.netns, !a.infra, a.started_at.unwrap_or(i64::MAX), a.id).cmp(&(
            b.netns,
            !b.infra,
            b.started_at.unwrap_or(i64::MAX),
            b.id,
        ))
    });
    let mut out = Vec::new();
    let mut last = None;
    for c in sorted {
        if last != Some(c.netns) {
            out.push(c.id);
            last = Some(c.netns);
        }
    }
    out
}
