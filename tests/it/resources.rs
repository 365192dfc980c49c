//! Resource usage from the cgroup source against a real private Podman 4.3.1 service on this
//! machine (cgroup v1, cgroupfs): the numbers equal Podman's own stats API for the same
//! containers at the same moment, pods are read from their own cgroup, network is counted once
//! per namespace, series vanish with their container, and scrapes cost Podman nothing.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    wait_until, Engine, Exposition, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE,
};

const SETTLE: Duration = Duration::from_secs(30);
const MIB: f64 = 1024.0 * 1024.0;

/// Podman's stats API for every running container, by name: (CPU seconds, memory bytes, pids).
fn podman_stats(podman: &PodmanService) -> Vec<(String, f64, f64, f64)> {
    let body = podman.api_get("/v4.0.0/libpod/containers/stats?stream=false");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["Stats"]
        .as_array()
        .unwrap_or_else(|| panic!("no Stats in {body}"))
        .iter()
        .map(|s| {
            (
                s["Name"].as_str().unwrap_or_default().to_owned(),
                s["CPUNano"].as_f64().unwrap_or(f64::NAN) / 1e9,
                s["MemUsage"].as_f64().unwrap_or(f64::NAN),
                s["PIDs"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

fn value(e: &Exposition, family: &str, name: &str) -> f64 {
    e.value(family, &[("name", name)])
}

/// A busy loop, ~50 MiB in tmpfs, an idle container and two in a pod: sealwatch's CPU, memory
/// and pids equal Podman's stats API for each (CPU within 10% or 0.5 s between two scrapes that
/// bracket Podman's answer, memory within 15% or 2 MiB, pids exactly); the pod's own cgroup
/// has at least its members' CPU; the pod's network is shown once (on its infra container),
/// the series of a stopped and of a removed container disappear.
#[test]
fn cgroup_usage_equals_podmans_stats() {
    let podman = PodmanService::start_with(Engine::DEFAULT);
    podman.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("busy")
            .sh("while :; do :; done"),
    );
    podman.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("fill")
            .opt("--shm-size")
            .opt("96m")
            .sh("dd if=/dev/zero of=/dev/shm/fill bs=1M count=50 && sleep 1000"),
    );
    podman.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("idle")
            .opt("--memory")
            .opt("64m")
            .sleeping(),
    );
    podman.podman(&["pod", "create", "--name", "p1"]);
    for m in ["m1", "m2"] {
        podman.run(&Run::new(BUSYBOX_IMAGE).name(m).pod("p1").sleeping());
    }
    let sw = Sealwatch::start(&["--podman.url", &podman.url(), "--stats.interval", "0"]);
    sw.wait_ready(200, SETTLE);
    assert!(
        sw.log()
            .contains("resource usage from the cgroup filesystem (v1"),
        "the chosen source is logged:\n{}",
        sw.log()
    );

    // Every container has its pid (from the follow-up lists) and the fill is done.
    let names = ["busy", "fill", "idle", "m1", "m2"];
    wait_until("resource series of every container", SETTLE, || {
        let e = sw.scrape();
        for n in names {
            e.try_value("podman_container_pids", &[("name", n)])?;
        }
        let filled = e.try_value("podman_container_memory_usage_bytes", &[("name", "fill")])?;
        if filled < 50.0 * MIB {
            return Err(format!("fill holds {filled} bytes so far"));
        }
        Ok(())
    });

    let before = sw.scrape();
    let stats = podman_stats(&podman);
    let after = sw.scrape();
    for (name, cpu, mem, pids) in &stats {
        if name.ends_with("-infra") {
            continue;
        }
        let (lo, hi) = (
            value(&before, "podman_container_cpu_seconds_total", name),
            value(&after, "podman_container_cpu_seconds_total", name),
        );
        let tolerance = (0.1 * cpu).max(0.5);
        assert!(
            lo - tolerance <= *cpu && *cpu <= hi + tolerance,
            "{name}: Podman says {cpu} s CPU, sealwatch {lo} s before and {hi} s after"
        );
        // Podman 4.3.1 on cgroup v1 reports memory.usage_in_bytes: the usage family.
        let ours = value(&after, "podman_container_memory_usage_bytes", name);
        assert!(
            (ours - mem).abs() <= (0.15 * mem).max(2.0 * MIB),
            "{name}: Podman says {mem} bytes, sealwatch {ours}"
        );
        assert_eq!(
            value(&after, "podman_container_pids", name),
            *pids,
            "{name}: pids"
        );
    }
    assert_eq!(stats.len(), 6, "five containers and the infra: {stats:?}");
    assert!(value(&after, "podman_container_cpu_seconds_total", "busy") > 0.5);
    assert!(value(&after, "podman_container_memory_working_set_bytes", "fill") >= 50.0 * MIB);
    assert_eq!(
        value(&after, "podman_container_memory_limit_bytes", "idle"),
        64.0 * MIB
    );
    assert!(
        after
            .try_value("podman_container_memory_limit_bytes", &[("name", "busy")])
            .is_err(),
        "no limit series for an unlimited container"
    );
    value(&after, "podman_container_oom_events_total", "idle");

    // The pod's own cgroup holds its members (infra included), read in the same sample.
    let pod_cpu = after.value("podman_pod_cpu_seconds_total", &[("pod", "p1")]);
    let members: f64 = after
        .series("podman_container_cpu_seconds_total")
        .filter(|s| s.label("pod") == Some("p1"))
        .map(|s| s.value)
        .sum();
    assert!(pod_cpu >= members, "pod {pod_cpu} s < members {members} s");
    assert!(after.value("podman_pod_pids", &[("pod", "p1")]) >= 3.0);
    after.value("podman_pod_memory_working_set_bytes", &[("pod", "p1")]);

    // The pod's shared network namespace is shown once, on its infra container.
    let rx = |n: &str| {
        after
            .try_value(
                "podman_container_network_receive_bytes_total",
                &[("name", n)],
            )
            .is_ok()
    };
    let infra = stats
        .iter()
        .map(|s| s.0.as_str())
        .find(|n| n.ends_with("-infra"))
        .expect("infra container");
    assert!(rx(infra) && rx("busy") && rx("idle"));
    assert!(
        !rx("m1") && !rx("m2"),
        "members share the infra's namespace"
    );
    assert_eq!(
        after.value("sealwatch_engine_stats_source", &[("source", "cgroup")]),
        1.0
    );
    let (_, landing) = sw.get("/");
    assert!(landing.contains("cgroup"), "{landing}");

    // Stopped and removed containers lose their series.
    podman.podman(&["stop", "-t", "0", "busy"]);
    podman.podman(&["rm", "-f", "-t", "0", "idle"]);
    wait_until(
        "series of stopped and removed containers gone",
        SETTLE,
        || {
            let e = sw.scrape();
            for n in ["busy", "idle"] {
                if let Some(s) = e.samples.iter().find(|s| {
                    s.name.starts_with("podman_container_cpu") && s.label("name") == Some(n)
                }) {
                    return Err(format!("still there: {s:?}"));
                }
            }
            e.try_value("podman_container_cpu_seconds_total", &[("name", "fill")])
        },
    );
}

/// utime + stime of `pids`, in clock ticks, from /proc/<pid>/stat.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            // Fields 14 and 15 of the whole line; the 12th and 13th after the command.
            f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
        })
        .sum()
}

/// 20 scrapes that each take a new sample cost the Podman service no CPU: its utime + stime
/// grows no more during them than during as long a time without scrapes (one tick of slack).
#[test]
fn scrapes_cost_podman_nothing() {
    let podman = PodmanService::start_with(Engine::DEFAULT);
    for n in ["a", "b", "c"] {
        podman.run(&Run::new(BUSYBOX_IMAGE).name(n).sleeping());
    }
    let sw = Sealwatch::start(&["--podman.url", &podman.url(), "--stats.interval", "0"]);
    sw.wait_ready(200, SETTLE);
    wait_until("resource series", SETTLE, || {
        let e = sw.scrape();
        for n in ["a", "b", "c"] {
            e.try_value("podman_container_pids", &[("name", n)])?;
        }
        Ok(())
    });
    // Let the follow-up list calls of the start-up settle.
    std::thread::sleep(Duration::from_secs(2));
    let pids = podman.service_pids();
    assert!(!pids.is_empty(), "the service's processes");

    let samples_before = sw.scrape().value("sealwatch_stats_samples_total", &[]);
    let scraping = Instant::now();
    let ticks_before = cpu_ticks(&pids);
    for _ in 0..20 {
        sw.scrape();
    }
    let during = cpu_ticks(&pids) - ticks_before;
    let took = scraping.elapsed();
    let samples = sw.scrape().value("sealwatch_stats_samples_total", &[]) - samples_before;
    assert!(samples >= 20.0, "every scrape sampled: {samples}");
    // As long without scrapes, for the service's own background work.
    let idle_ticks_start = cpu_ticks(&pids);
    std::thread::sleep(took);
    let idle = cpu_ticks(&pids) - idle_ticks_start;
    eprintln!(
        "Podman service CPU: {during} ticks during 20 scrapes ({took:?}), {idle} ticks idle as long"
    );
    assert!(
        during <= idle + 1,
        "Podman used {during} ticks during 20 scrapes, {idle} without"
    );
}

/// Scrapes at a steady cadence find a sample taken just before they came: after the first two
/// (which have no cadence to go by), scrapes stop sampling themselves while samples go on, and
/// the numbers still move (a busy container's CPU grows between scrapes).
#[test]
fn samples_are_taken_ahead_of_steady_scrapes() {
    let podman = PodmanService::start_with(Engine::DEFAULT);
    podman.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("busy")
            .sh("while :; do :; done"),
    );
    // Scrapes every 3 s, samples younger than 2 s are reused: the prefetch takes each sample
    // 1 s before the next scrape is due, so a scrape may come up to 1 s early or late.
    let sw = Sealwatch::start(&["--podman.url", &podman.url(), "--stats.interval", "2s"]);
    sw.wait_ready(200, SETTLE);
    wait_until("resource series", SETTLE, || {
        sw.scrape()
            .try_value("podman_container_pids", &[("name", "busy")])
            .map(|_| ())
    });
    let gap = Duration::from_secs(3);
    let count = |e: &Exposition| {
        (
            e.value("sealwatch_stats_samples_total", &[]),
            e.value("sealwatch_stats_scrape_samples_total", &[]),
            e.value("podman_container_cpu_seconds_total", &[("name", "busy")]),
        )
    };
    let mut next = Instant::now() + gap;
    let (samples0, in_scrape0, _) = count(&sw.scrape());
    let mut cpu = Vec::new();
    let mut last = (0.0, 0.0);
    for _ in 0..6 {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += gap;
        let (s, i, c) = count(&sw.scrape());
        cpu.push(c);
        last = (s - samples0, i - in_scrape0);
    }
    let (samples, in_scrape) = last;
    eprintln!(
        "6 scrapes every {gap:?}: {samples} samples, {in_scrape} taken by a scrape; CPU {cpu:?}"
    );
    assert!(samples >= 6.0, "a sample for every scrape: {samples}");
    assert!(
        in_scrape <= 2.0,
        "at most the first scrapes sample themselves: {in_scrape} of 6"
    );
    assert!(
        cpu.windows(2).all(|w| w[1] > w[0]),
        "the busy container's CPU grows from scrape to scrape: {cpu:?}"
    );
}

/// sealwatch in a pid namespace of its own (as in a container without `--pid=host`), with the
/// host's cgroup filesystem still mounted: `auto` sees that the socket's owner is hidden and
/// takes resource usage from Podman's stats stream, whose numbers arrive; the cgroup source
/// would find no container process to read.
#[test]
fn auto_uses_the_stats_stream_from_another_pid_namespace() {
    let podman = PodmanService::start_with(Engine::DEFAULT);
    podman.run(&Run::new(BUSYBOX_IMAGE).name("a").sleeping());
    let sw = Sealwatch::start_wrapped(
        &["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"],
        &["--podman.url", &podman.url()],
        &[],
    );
    sw.wait_ready(200, SETTLE);
    wait_until("pids of a from the stats stream", SETTLE, || {
        let e = sw.scrape();
        let source = e.try_value("sealwatch_engine_stats_source", &[("source", "podman")])?;
        if source != 1.0 {
            return Err(format!("source podman is {source}"));
        }
        e.try_value("podman_container_pids", &[("name", "a")])
            .map(|_| ())
    });
    assert!(
        sw.log().contains("pid namespace sealwatch cannot see"),
        "the log says why: {}",
        sw.log()
    );
}
