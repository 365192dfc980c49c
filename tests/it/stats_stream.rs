//! The podman resource source (`--stats.source podman`) against a real Podman 4.3.1: per-container
//! CPU, memory and pids equal Podman's own stats API at the same moment, series vanish with their
//! container, a pod's shared network is never shown per member, and Podman's CPU does not grow
//! with the number of scrapes (one stats stream, never a request per scrape).
//!
//! The comparison helpers are shared with the QEMU guest's test (`vm::`).

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{wait_until, Exposition, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE};

/// One container's numbers from Podman's own stats API.
#[derive(Debug, Clone)]
pub struct PodmanStats {
    pub cpu_seconds: f64,
    pub memory_bytes: f64,
    pub pids: f64,
}

/// `GET /v4.0.0/libpod/containers/stats?stream=false` decoded: full ID -> numbers.
pub fn parse_podman_stats(body: &str) -> Vec<(String, PodmanStats)> {
    let v: Value = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("Podman's stats answer is not JSON ({e}): {body}"));
    v["Stats"]
        .as_array()
        .unwrap_or_else(|| panic!("no Stats in Podman's answer: {body}"))
        .iter()
        .map(|s| {
            (
                s["ContainerID"].as_str().unwrap_or_default().to_owned(),
                PodmanStats {
                    cpu_seconds: s["CPUNano"].as_f64().unwrap_or(-1.0) / 1e9,
                    memory_bytes: s["MemUsage"].as_f64().unwrap_or(-1.0),
                    pids: s["PIDs"].as_f64().unwrap_or(-1.0),
                },
            )
        })
        .collect()
}

/// The same GET over a unix socket (HTTP/1.0: Podman answers without chunking and closes).
pub fn podman_stats_unix(socket: &Path) -> Vec<(String, PodmanStats)> {
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /v4.0.0/libpod/containers/stats?stream=false HTTP/1.0\r\nHost: d\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    parse_podman_stats(body)
}

/// Whether sealwatch's scrape equals Podman's numbers for `ids` (full IDs, name for messages):
/// CPU within 10% or 0.5 s, memory within 15% or 2 MiB (except for the names in
/// `memory_differs`), pids exact.
pub fn compare(
    scrape: &Exposition,
    podman: &[(String, PodmanStats)],
    ids: &[(&str, &str)],
    memory_differs: &[&str],
) -> Result<(), String> {
    let mut errors = Vec::new();
    for (id, name) in ids {
        let Some((_, want)) = podman.iter().find(|(i, _)| i == id) else {
            errors.push(format!("{name}: not in Podman's stats"));
            continue;
        };
        let short = &id[..12];
        let got = |family: &str| scrape.try_value(family, &[("id", short)]);
        let cpu = got("podman_container_cpu_seconds_total")?;
        let mem = got("podman_container_memory_usage_bytes")?;
        let pids = got("podman_container_pids")?;
        if (cpu - want.cpu_seconds).abs() > (0.1 * want.cpu_seconds).max(0.5) {
            errors.push(format!(
                "{name}: cpu {cpu} s, Podman {} s",
                want.cpu_seconds
            ));
        }
        if !memory_differs.contains(name)
            && (mem - want.memory_bytes).abs() > (0.15 * want.memory_bytes).max(2.0 * 1048576.0)
        {
            errors.push(format!(
                "{name}: memory {mem}, Podman {}",
                want.memory_bytes
            ));
        }
        if pids != want.pids {
            errors.push(format!("{name}: pids {pids}, Podman {}", want.pids));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// utime + stime of the processes, seconds.
pub fn cpu_of(pids: &[u32]) -> f64 {
    let hz = 100.0; // USER_HZ on Linux
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|stat| {
            let after = &stat[stat.rfind(')').unwrap_or(0) + 2..];
            let f: Vec<&str> = after.split_whitespace().collect();
            (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz
        })
        .sum()
}

fn id_of(svc: &PodmanService, name: &str) -> String {
    svc.podman(&["inspect", "--format", "{{.Id}}", name])
}

/// Busy, 50 MB, idle and two pod members: sealwatch's podman source equals Podman's stats API;
/// no working set, OOM or pod families are made up; the busy container's series vanish on
/// removal; Podman's CPU over 20 scrapes is what it is without scrapes.
#[test]
fn podman_source_matches_podmans_stats_and_costs_nothing_per_scrape() {
    let svc = PodmanService::start();
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("busy")
            .opt("--cpus=0.5")
            .sh("while :; do :; done"),
    );
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("fifty")
            .opt("--shm-size=64m")
            .sh("dd if=/dev/zero of=/dev/shm/fill bs=1M count=50; sleep 1000"),
    );
    svc.run(&Run::new(BUSYBOX_IMAGE).name("idle").sleeping());
    svc.podman(&["pod", "create", "--name", "duo"]);
    svc.run(&Run::new(BUSYBOX_IMAGE).name("m1").pod("duo").sleeping());
    svc.run(&Run::new(BUSYBOX_IMAGE).name("m2").pod("duo").sleeping());
    let names = ["busy", "fifty", "idle", "m1", "m2"];
    let ids: Vec<String> = names.iter().map(|n| id_of(&svc, n)).collect();
    let pairs: Vec<(&str, &str)> = ids.iter().map(String::as_str).zip(names).collect();

    let url = svc.url();
    let sw = Sealwatch::start(&[
        "--podman.url",
        &url,
        "--stats.source",
        "podman",
        "--stats.podman-interval",
        "1s",
    ]);
    let first = wait_until(
        "podman source shows every container",
        Duration::from_secs(30),
        || {
            let scrape = sw.scrape();
            compare(&scrape, &podman_stats_unix(svc.socket_path()), &pairs, &[])?;
            Ok(scrape)
        },
    );
    assert_eq!(
        first.value("sealwatch_engine_stats_source", &[("source", "podman")]),
        1.0
    );
    for absent in [
        "podman_container_memory_working_set_bytes",
        "podman_container_oom_events_total",
        "podman_pod_cpu_seconds_total",
        "podman_pod_memory_usage_bytes",
        // Podman 4 reports eth0's bytes only: no network series from it.
        "podman_container_network_receive_bytes_total",
    ] {
        assert_eq!(first.series(absent).count(), 0, "{absent} must be absent");
    }
    assert!(
        first.series("podman_container_memory_limit_bytes").count() == 0,
        "unlimited containers have no limit series"
    );
    // The busy container really runs, and the other numbers are real too.
    let busy_then = first.value("podman_container_cpu_seconds_total", &[("name", "busy")]);
    let fifty = first.value("podman_container_memory_usage_bytes", &[("name", "fifty")]);
    assert!(
        fifty >= 50.0 * 1048576.0,
        "fifty holds 50 MiB of shm: {fifty}"
    );
    wait_until("busy's CPU grows", Duration::from_secs(20), || {
        let now = sw
            .scrape()
            .value("podman_container_cpu_seconds_total", &[("name", "busy")]);
        (now > busy_then + 1.0)
            .then_some(())
            .ok_or(format!("{busy_then} -> {now}"))
    });
    // Later, at another moment, still equal.
    wait_until(
        "still equal to Podman's stats",
        Duration::from_secs(20),
        || {
            compare(
                &sw.scrape(),
                &podman_stats_unix(svc.socket_path()),
                &pairs,
                &[],
            )
        },
    );

    // Podman's CPU: the same window without scrapes and with 20 scrapes.
    let service = svc.service_pids();
    assert!(!service.is_empty(), "the service's pid");
    let window = Duration::from_secs(10);
    let c0 = cpu_of(&service);
    std::thread::sleep(window);
    let idle_cost = cpu_of(&service) - c0;
    let c1 = cpu_of(&service);
    let start = Instant::now();
    for _ in 0..20 {
        let _ = sw.scrape_text("/metrics");
        std::thread::sleep(window / 20);
    }
    std::thread::sleep(window.saturating_sub(start.elapsed()));
    let scraped_cost = cpu_of(&service) - c1;
    eprintln!(
        "Podman service CPU over {window:?} at a 1 s stats interval: {idle_cost:.2} s without \
         scrapes, {scraped_cost:.2} s with 20 scrapes"
    );
    assert!(
        scraped_cost <= idle_cost * 2.0 + 0.3,
        "Podman's CPU grew with scrapes: {idle_cost:.2} s without, {scraped_cost:.2} s with 20"
    );
    assert_eq!(
        sw.scrape()
            .value("sealwatch_stats_stream_breaks_total", &[]),
        0.0,
        "one stream for the whole test"
    );

    // Removal: the series go with the container.
    svc.podman(&["rm", "-f", "-t", "0", "busy"]);
    wait_until("busy's series vanish", Duration::from_secs(20), || {
        let n = sw
            .scrape()
            .series("podman_container_cpu_seconds_total")
            .filter(|s| s.label("name") == Some("busy"))
            .count();
        (n == 0).then_some(()).ok_or(format!("{n} series left"))
    });
}
