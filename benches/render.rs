//! What one `/metrics` scrape costs, and what one event costs, at inventory sizes from 100 to
//! 10,000 containers. Prints a table; asserts nothing (`cargo bench --bench render`).
//!
//! The inventory is built through the library API exactly as the watcher builds it: a resync
//! from synthetic `containers/json` and `pods/json` lists, then a stream of events that fills
//! the counters. Times are per call: the median and p90 of wall time and of this thread's CPU
//! time (`CLOCK_THREAD_CPUTIME_ID`), over `ITERATIONS` calls after a warm-up.
//!
//! Beside the cold render (nothing kept: the first scrape) it measures, taken in turn with it,
//! two yardsticks: the per-container lines alone written in one pass into one fresh `String`
//! (what a careful renderer without the scrape cache does), and a copy of the whole text body
//! into fresh memory (the floor under any renderer). Their ratios say how far the cold scrape is
//! from what walking the records costs on this machine.

// A benchmark stops on the first broken fixture; a panic says which.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Instant;

use serde_json::json;

use sealwatch::{
    register_instruments, Allowlist, EngineStatus, Engines, Event, Inventory, LabelPolicy,
    ListContainer, ListPod, Metrics, Publisher,
};

#[path = "support/measure.rs"]
mod measure;
use measure::thread_cpu;

const ITERATIONS: usize = 30;
/// The 4 allowlisted keys every synthetic container carries (plus 2 that are not allowlisted).
const ALLOWLIST: &str =
    "io.podman.compose.project,com.docker.compose.service,app,PODMAN_SYSTEMD_UNIT";
/// Events applied per container before measuring, so the counters have realistic width.
const EVENTS_PER_CONTAINER: usize = 10;
const T0: i64 = 1_795_000_000_000_000_000;

/// A 64-hex ID that looks like Podman's (random, so no two share a long prefix).
fn id(kind: u8, n: usize) -> String {
    let mut x = (u64::from(kind) << 56) ^ n as u64;
    (0..4)
        .map(|_| {
            // splitmix64
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// `containers` members spread over `pods` pods (each pod also has its infra container), in a
/// realistic mix of states, 20% with a healthcheck.
fn lists(containers: usize, pods: usize) -> (Vec<ListContainer>, Vec<ListPod>) {
    let mut cs = Vec::new();
    for p in 0..pods {
        cs.push(json!({
            "Id": id(0xaa, p), "Names": [format!("pod{p}-infra")],
            "Image": "localhost/podman-pause:4.3.1-0", "State": "running", "Pid": 1000 + p,
            "Pod": id(0xbb, p), "PodName": format!("pod{p}"), "IsInfra": true,
            "Labels": {"io.buildah.version": "1.28.2"}, "Created": "2026-11-29T18:00:00Z",
            "StartedAt": 1_795_000_000, "ExitedAt": -62_135_596_800i64, "ExitCode": 0
        }));
    }
    for i in 0..containers {
        let (state, code) = match i % 20 {
            0 | 1 => ("exited", [0, 1, 137][i % 3]),
            2 => ("paused", 0),
            3 => ("created", 0),
            _ => ("running", 0),
        };
        let health = if i % 5 == 0 {
            ["healthy", "unhealthy", "starting"][i % 3]
        } else {
            ""
        };
        let pod = i % pods.max(1);
        cs.push(json!({
            "Id": id(0xcc, i), "Names": [format!("project{}-service{}-{i}", i % 50, i % 200)],
            "Image": format!("registry.example.com/team/image{}:v{}", i % 30, i % 7),
            "State": state, "Status": health, "Pid": if state == "running" { 2000 + i } else { 0 },
            "Pod": if pods > 0 { id(0xbb, pod) } else { String::new() },
            "PodName": if pods > 0 { format!("pod{pod}") } else { String::new() },
            "IsInfra": false,
            "Labels": {
                "io.podman.compose.project": format!("project{}", i % 50),
                "com.docker.compose.service": format!("service{}", i % 200),
                "app": format!("app{}", i % 20),
                "PODMAN_SYSTEMD_UNIT": format!("container-{i}.service"),
                "maintainer": "someone@example.com",
                "org.opencontainers.image.version": format!("1.{}", i % 9),
            },
            "Created": "2026-11-29T18:00:00Z", "StartedAt": 1_795_000_100 + i as i64,
            "ExitedAt": if state == "exited" { 1_795_000_200 } else { -62_135_596_800i64 },
            "ExitCode": code
        }));
    }
    let ps = (0..pods)
        .map(|p| {
            json!({"Id": id(0xbb, p), "Name": format!("pod{p}"), "Status": "Running",
                   "InfraId": id(0xaa, p), "Labels": {}, "Created": "2026-11-29T18:00:00Z"})
        })
        .collect();
    (
        serde_json::from_value(serde_json::Value::Array(cs)).expect("containers"),
        serde_json::from_value(serde_json::Value::Array(ps)).expect("pods"),
    )
}

/// The `n`-th synthetic event for a `containers`-sized inventory: mostly health checks, execs and
/// crash/restart cycles of running members, some image pulls, as a busy host produces them.
fn event(n: usize, containers: usize) -> Event {
    let i = (n * 7919) % containers; // spread over all containers
    let cid = id(0xcc, i);
    let t = T0 + n as i64 * 1_000;
    let code = ["0", "1", "137", "143"][n % 4];
    let attrs = json!({
        "io.podman.compose.project": format!("project{}", i % 50),
        "com.docker.compose.service": format!("service{}", i % 200),
        "app": format!("app{}", i % 20),
        "PODMAN_SYSTEMD_UNIT": format!("container-{i}.service"),
        "maintainer": "someone@example.com",
        "name": format!("c{i}"), "image": "registry.example.com/team/image:v1",
        "podId": "", "containerExitCode": code,
    });
    let (kind, action, actor, health) = match n % 10 {
        0 => ("container", "died", cid, None),
        1 => ("container", "start", cid, None),
        2 => ("container", "cleanup", cid, None),
        3 | 4 => ("container", "health_status", cid, Some("healthy")),
        5 => ("container", "exec", cid, None),
        6 => ("container", "exec_died", cid, None),
        7 => ("container", "restart", cid, None),
        8 => ("container", "init", cid, None),
        _ => (
            "image",
            "pull",
            "registry.example.com/team/image:v1".to_owned(),
            None,
        ),
    };
    serde_json::from_value(json!({
        "Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": attrs},
        "time": t / 1_000_000_000, "timeNano": t, "HealthStatus": health,
    }))
    .expect("event")
}

fn build(containers: usize, pods: usize) -> Inventory {
    let mut inv = Inventory::new(LabelPolicy::new(Allowlist::parse(ALLOWLIST), 500));
    let (cs, ps) = lists(containers, pods);
    inv.resync(cs, ps, i64::MIN);
    for n in 0..containers.max(1) * EVENTS_PER_CONTAINER {
        inv.apply(&event(n, containers.max(1)));
    }
    inv
}

fn status() -> EngineStatus {
    EngineStatus {
        connected: true,
        synced: true,
        reason: None,
        version: Some("4.3.1".into()),
        api_version: Some("4.3.1".into()),
    }
}

/// One engine with `inv` published, as the watcher leaves it: the metrics to render and the
/// engine's publisher.
fn publish(inv: Inventory) -> (Metrics, Publisher) {
    let (metrics, publisher, _) = publish_engines(inv);
    (metrics, publisher)
}

/// `publish`, also handing out the engines (for a `Metrics` that has kept nothing yet).
fn publish_engines(inv: Inventory) -> (Metrics, Publisher, Engines) {
    let (registry, instruments) = register_instruments(&["podman"]);
    instruments[0].set_last_event_nanos(T0);
    let (engines, mut publishers) = Engines::new(vec![(
        "podman".into(),
        "unix:///run/podman/podman.sock".into(),
        inv.clone(),
    )]);
    let publisher = publishers.remove(0);
    publisher.publish(&status(), &inv);
    (Metrics::new(engines.clone(), registry), publisher, engines)
}

#[derive(Clone, Copy)]
struct Stats {
    wall_median: f64,
    cpu_median: f64,
    cpu_p90: f64,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Runs `f` `ITERATIONS` times after 3 warm-up calls; seconds per call.
fn measure(f: impl FnMut()) -> Stats {
    measure_after(|| {}, f)
}

/// `measure`, running `setup` (not measured) before each call.
fn measure_after(setup: impl FnMut(), mut f: impl FnMut()) -> Stats {
    let [stats] = measure_turns(setup, [&mut f]);
    stats
}

/// Several calls taken in turn (setup, not measured, then each call once; 3 warm-up rounds, then
/// `ITERATIONS` measured), seconds per call, so that a machine's load changing over the run weighs on each alike: their ratios are
/// what to read.
fn measure_turns<const N: usize>(
    mut setup: impl FnMut(),
    mut calls: [&mut dyn FnMut(); N],
) -> [Stats; N] {
    let mut cpu = [(); N].map(|_| Vec::new());
    let mut wall = [(); N].map(|_| Vec::new());
    for round in 0..3 + ITERATIONS {
        setup();
        for (i, f) in calls.iter_mut().enumerate() {
            let (w, c) = (Instant::now(), thread_cpu());
            f();
            if round >= 3 {
                cpu[i].push(thread_cpu() - c);
                wall[i].push(w.elapsed().as_secs_f64());
            }
        }
    }
    std::array::from_fn(|i| Stats {
        wall_median: percentile(&mut wall[i], 0.5),
        cpu_median: percentile(&mut cpu[i], 0.5),
        cpu_p90: percentile(&mut cpu[i], 0.9),
    })
}

fn ms(s: f64) -> String {
    format!("{:8.2}", s * 1e3)
}

fn kib(n: usize) -> String {
    format!("{:8.0}", n as f64 / 1024.0)
}

struct Row {
    containers: usize,
    pods: usize,
    text: Stats,
    om: Stats,
    text_gz: Stats,
    om_gz: Stats,
    /// 1% of the containers changed since the last scrape.
    churn: Stats,
    churn_gz: Stats,
    /// Nothing kept: the first scrape, or the first after a resync.
    cold: Stats,
    cold_gz: Stats,
    /// After a resync that listed every container as the inventory had it (a reconnect to an
    /// engine where nothing changed meanwhile).
    resynced: Stats,
    resynced_gz: Stats,
    /// `plain_lines`, fresh each call: the yardstick for `cold`.
    plain: Stats,
    plain_bytes: usize,
    /// `fresh_copy` of the text body: the floor.
    copy: Stats,
    series: usize,
    text_bytes: usize,
    gz_bytes: usize,
}

/// The yardstick for a cold scrape: the seven per-container families' lines of every container
/// of `inv`, written in one pass into one fresh `String` (nothing kept, no pieces, no counts of
/// the aggregate families), with `push_str` and a fast path for values that need no escaping, as
/// a careful renderer without the scrape cache would.
fn plain_lines(inv: &Inventory, openmetrics: bool) -> String {
    use std::fmt::Write;
    fn esc(out: &mut String, v: &str) {
        if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
            out.push_str(v);
            return;
        }
        for ch in v.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
    }
    fn value(out: &mut String, opening: &str, v: &str) {
        out.push_str(opening);
        esc(out, v);
        out.push('"');
    }
    let allow = Allowlist::parse(ALLOWLIST);
    let restarts = if openmetrics {
        "podman_container_restarts{"
    } else {
        "podman_container_restarts_total{"
    };
    // `,label_<key>="` by raw key, decided once per key.
    let mut openings: Vec<(&str, String)> = Vec::new();
    let mut out = String::new();
    let mut head = String::new();
    for c in inv.containers() {
        head.clear();
        value(&mut head, "engine=\"", "podman");
        value(&mut head, ",id=\"", c.short_id());
        value(&mut head, ",name=\"", &c.name);
        let bare = head.len();
        if let Some(p) = c.pod_id.as_deref() {
            value(&mut head, ",pod=\"", inv.pod_name(p));
        }
        out.push_str("podman_container_info{");
        out.push_str(&head);
        value(&mut out, ",image=\"", &c.image);
        if let Some(p) = c.labels.get("io.podman.compose.project") {
            value(&mut out, ",project=\"", p);
        }
        out.push_str("} 1\n");
        out.push_str("podman_container_state{");
        out.push_str(&head);
        value(&mut out, ",state=\"", &c.state);
        out.push_str("} 1\n");
        out.push_str("podman_container_labels{");
        out.push_str(&head[..bare]);
        for (k, v) in c.labels.iter() {
            let at = match openings.iter().position(|(raw, _)| *raw == k) {
                Some(at) => at,
                None => {
                    let key: String = k
                        .chars()
                        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                        .collect();
                    let opening = if allow.allows(k) {
                        format!(",label_{key}=\"")
                    } else {
                        String::new()
                    };
                    openings.push((k, opening));
                    openings.len() - 1
                }
            };
            if !openings[at].1.is_empty() {
                value(&mut out, &openings[at].1, v);
            }
        }
        out.push_str("} 1\n");
        if let Some(t) = c.started_at {
            out.push_str("podman_container_started_time_seconds{");
            out.push_str(&head);
            // Seconds with the fraction's trailing zeros cut (at least one digit), as rendered.
            let at = out.len();
            let _ = write!(out, "}} {}.{:09}", t / 1_000_000_000, t % 1_000_000_000);
            let keep = out[at..]
                .trim_end_matches('0')
                .len()
                .max(out[at..].find('.').unwrap_or(0) + 2);
            out.truncate(at + keep);
            out.push('\n');
        }
        if let Some(code) = c.exit_code {
            out.push_str("podman_container_exit_code{");
            out.push_str(&head);
            let _ = writeln!(out, "}} {code}");
        }
        if let Some(h) = c.health.as_deref() {
            out.push_str("podman_container_health{");
            out.push_str(&head);
            value(&mut out, ",status=\"", h);
            out.push_str("} 1\n");
        }
        out.push_str(restarts);
        out.push_str(&head);
        let _ = writeln!(out, "}} {}", c.restarts);
    }
    out
}

/// The floor under any renderer: `bytes` written into fresh memory (a copy of a body that size,
/// its pages faulted in as a rendered body's are), with nothing to read or format.
fn fresh_copy(from: &[u8]) -> usize {
    let mut to: Vec<u8> = Vec::with_capacity(from.len());
    to.extend_from_slice(from);
    black_box(&to);
    to.len()
}

/// A scrape as `/metrics` serves it: the body's chunks, or its gzip.
fn scrape(metrics: &Metrics, openmetrics: bool, gzip: bool) -> usize {
    let body = metrics.render_body(openmetrics).expect("render");
    if gzip {
        body.gzip().expect("gzip").len()
    } else {
        body.into_chunks().len()
    }
}

fn run_size(containers: usize, pods: usize) -> Row {
    let mut inv = build(containers, pods);
    let (metrics, publisher, engines) = publish_engines(inv.clone());
    let text = metrics.render(false).expect("render");
    let om = metrics.render(true).expect("render");
    assert!(om.ends_with("# EOF\n"));
    // The yardstick writes exactly the per-container lines of the real render.
    let plain = plain_lines(&inv, false);
    let mut want: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with("podman_container_"))
        .filter(|l| !l.contains("_events_total{") && !l.starts_with("podman_container_exits_total"))
        .collect();
    let mut got: Vec<&str> = plain.lines().collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(
        got, want,
        "the one-pass yardstick writes the render's per-container lines"
    );
    let gz = metrics
        .render_body(false)
        .expect("render")
        .gzip()
        .expect("gzip");
    let fresh = || {
        let (registry, _) = register_instruments(&["podman"]);
        Metrics::new(engines.clone(), registry)
    };
    // The cold text render, the one-pass yardstick and the floor, taken in turn.
    let [cold_text, plain_stats, copy] = {
        let m = RefCell::new(fresh());
        measure_turns(
            || *m.borrow_mut() = fresh(),
            [
                &mut || {
                    black_box(scrape(&m.borrow(), false, false));
                },
                &mut || {
                    black_box(plain_lines(&inv, false).len());
                },
                &mut || {
                    black_box(fresh_copy(text.as_bytes()));
                },
            ],
        )
    };
    let mut n = containers * EVENTS_PER_CONTAINER;
    let status = status();
    // 1% of the containers get an event (a death, a start, a health change...) between scrapes.
    let mut churn = || {
        for _ in 0..(containers / 100).max(1) {
            inv.apply(&event(n, containers));
            n += 1;
        }
        publisher.publish(&status, &inv);
    };
    // Each call on a `Metrics` that has kept nothing (made anew before it, not measured).
    let cold = |openmetrics, gzip| {
        let m = RefCell::new(fresh());
        measure_after(
            || *m.borrow_mut() = fresh(),
            || {
                black_box(scrape(&m.borrow(), openmetrics, gzip));
            },
        )
    };
    let churn_text = measure_after(&mut churn, || {
        black_box(scrape(&metrics, false, false));
    });
    let churn_gz = measure_after(&mut churn, || {
        black_box(scrape(&metrics, true, true));
    });
    let mut resync = || {
        let (cs, ps) = lists(containers, pods);
        inv.resync(cs, ps, i64::MIN);
        publisher.publish(&status, &inv);
    };
    let resynced = measure_after(&mut resync, || {
        black_box(scrape(&metrics, false, false));
    });
    let resynced_gz = measure_after(&mut resync, || {
        black_box(scrape(&metrics, true, true));
    });
    Row {
        containers,
        pods,
        text: measure(|| {
            black_box(scrape(&metrics, false, false));
        }),
        om: measure(|| {
            black_box(scrape(&metrics, true, false));
        }),
        text_gz: measure(|| {
            black_box(scrape(&metrics, false, true));
        }),
        om_gz: measure(|| {
            black_box(scrape(&metrics, true, true));
        }),
        churn: churn_text,
        churn_gz,
        cold: cold_text,
        cold_gz: cold(true, true),
        resynced,
        resynced_gz,
        plain: plain_stats,
        plain_bytes: plain.len(),
        copy,
        series: text.lines().filter(|l| !l.starts_with('#')).count(),
        text_bytes: text.len(),
        gz_bytes: gz.len(),
    }
}

fn main() {
    // `SEALWATCH_BENCH_PROFILE=N`: only render one inventory N times, as served (for `perf record` or
    // `valgrind --tool=callgrind --toggle-collect='*Metrics*render*'`).
    if let Some(n) = std::env::var("SEALWATCH_BENCH_PROFILE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // `SEALWATCH_BENCH_SIZE`: containers (pods: a tenth of that); default 10,000.
        let size = std::env::var("SEALWATCH_BENCH_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        // `SEALWATCH_BENCH_CHURN=1`: events for 1% of the containers before each render.
        let churn = std::env::var_os("SEALWATCH_BENCH_CHURN").is_some();
        let mut inv = build(size, size / 10);
        // `SEALWATCH_BENCH_COLD=1`: nothing kept, each render as the first.
        let cold = std::env::var_os("SEALWATCH_BENCH_COLD").is_some();
        // `SEALWATCH_BENCH_GZIP=1`: the render gzipped, as Prometheus asks for it.
        let gzip = std::env::var_os("SEALWATCH_BENCH_GZIP").is_some();
        let (mut metrics, publisher, engines) = publish_engines(inv.clone());
        let mut next = size * EVENTS_PER_CONTAINER;
        let mut cpu = 0.0;
        for _ in 0..n {
            if churn {
                for _ in 0..(size / 100).max(1) {
                    inv.apply(&event(next, size));
                    next += 1;
                }
                publisher.publish(&status(), &inv);
            }
            if cold {
                metrics = Metrics::new(engines.clone(), register_instruments(&["podman"]).0);
            }
            let c = thread_cpu();
            black_box(scrape(&metrics, false, gzip));
            cpu += thread_cpu() - c;
        }
        println!("{:.2} ms CPU per render", cpu / n as f64 * 1e3);
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument is not supported (nothing to filter).
    println!("sealwatch /metrics render benchmark");
    println!(
        "(ms per render: median and p90 of {ITERATIONS} calls, CPU time of the rendering thread \
         (CLOCK_THREAD_CPUTIME_ID) unless marked wall; every pod also has an infra container; \
         {EVENTS_PER_CONTAINER} events per container applied first; 4 allowlisted labels per container; \
         a render as /metrics serves it: the body's chunks, or its gzip)"
    );
    println!(
        "(unchanged: the same snapshot as the last scrape; 1% changed: events for 1% of the \
         containers since the last scrape; cold: nothing kept, as the first scrape; resync: \
         after a reconnect whose lists showed every container as the inventory had it)"
    );
    println!();
    println!(
        "{:>10} {:>6} {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8}",
        "containers",
        "pods",
        "series",
        "text",
        "p90",
        "wall",
        "OM",
        "p90",
        "text+gz",
        "p90",
        "OM+gz",
        "p90",
        "1%: text",
        "OM+gz",
        "cold",
        "OM+gz",
        "resync",
        "OM+gz",
        "text KiB",
        "gz KiB"
    );
    let mut rows = Vec::new();
    for (c, p) in [(100, 10), (1_000, 100), (10_000, 1_000), (100, 1_000)] {
        let r = run_size(c, p);
        println!(
            "{:>10} {:>6} {:>8} | {} {} {} | {} {} | {} {} | {} {} | {} {} | {} {} | {} {} | {} {}",
            r.containers,
            r.pods,
            r.series,
            ms(r.text.cpu_median),
            ms(r.text.cpu_p90),
            ms(r.text.wall_median),
            ms(r.om.cpu_median),
            ms(r.om.cpu_p90),
            ms(r.text_gz.cpu_median),
            ms(r.text_gz.cpu_p90),
            ms(r.om_gz.cpu_median),
            ms(r.om_gz.cpu_p90),
            ms(r.churn.cpu_median),
            ms(r.churn_gz.cpu_median),
            ms(r.cold.cpu_median),
            ms(r.cold_gz.cpu_median),
            ms(r.resynced.cpu_median),
            ms(r.resynced_gz.cpu_median),
            kib(r.text_bytes),
            kib(r.gz_bytes),
        );
        rows.push(r);
    }
    println!();
    println!("scaling (text render CPU median; linear = ratio equal to the size ratio):");
    for w in rows[..3].windows(2) {
        let (a, b) = (&w[0], &w[1]);
        println!(
            "  {:>6} -> {:>6} containers (x{:.0}): time x{:.2}, per container {:.2} us -> {:.2} us, bytes x{:.2}",
            a.containers,
            b.containers,
            b.containers as f64 / a.containers as f64,
            b.text.cpu_median / a.text.cpu_median,
            a.text.cpu_median / (a.containers + a.pods) as f64 * 1e6,
            b.text.cpu_median / (b.containers + b.pods) as f64 * 1e6,
            b.text_bytes as f64 / a.text_bytes as f64,
        );
    }
    println!();
    println!(
        "cold text render against a one-pass write of the per-container lines alone into one \
         fresh String (nothing kept: the yardstick of a renderer without the scrape cache), and \
         against a copy of the whole text body into fresh memory (the floor):"
    );
    for r in &rows {
        println!(
            "  {:>6} containers, {:>5} pods: cold {} ms, one pass {} ms ({} KiB of the body's {}), \
             copy {} ms; cold/one pass {:.2}",
            r.containers,
            r.pods,
            ms(r.cold.cpu_median).trim(),
            ms(r.plain.cpu_median).trim(),
            kib(r.plain_bytes).trim(),
            kib(r.text_bytes).trim(),
            ms(r.copy.cpu_median).trim(),
            r.cold.cpu_median / r.plain.cpu_median
        );
    }
    let (big, podheavy) = (&rows[2], &rows[3]);
    println!(
        "  100 containers in 1,000 pods: {} ms (per container+infra {:.2} us)",
        ms(podheavy.text.cpu_median).trim(),
        podheavy.text.cpu_median / (podheavy.containers + podheavy.pods) as f64 * 1e6
    );
    println!(
        "  10,000 containers: render {} ms (p90 {} ms), render + gzip as Prometheus asks (OpenMetrics) \
         {} ms (p90 {} ms); target: well under 50 ms",
        ms(big.text.cpu_median.max(big.om.cpu_median)).trim(),
        ms(big.text.cpu_p90.max(big.om.cpu_p90)).trim(),
        ms(big.om_gz.cpu_median).trim(),
        ms(big.om_gz.cpu_p90).trim(),
    );

    // One event in: apply on the 10k inventory, and the snapshot the watcher publishes after it.
    println!();
    let (containers, pods) = (10_000, 1_000);
    let mut inv = build(containers, pods);
    let events: Vec<Event> = (0..100_000)
        .map(|n| event(containers * EVENTS_PER_CONTAINER + n, containers))
        .collect();
    let (w, c) = (Instant::now(), thread_cpu());
    for ev in &events {
        inv.apply(ev);
    }
    let (wall, cpu) = (w.elapsed().as_secs_f64(), thread_cpu() - c);
    println!(
        "Inventory::apply on {containers} containers: {:.2} us CPU per event ({:.2} us wall), {} events",
        cpu / events.len() as f64 * 1e6,
        wall / events.len() as f64 * 1e6,
        events.len()
    );
    let clone = measure(|| {
        for _ in 0..1_000 {
            black_box(inv.snapshot());
        }
    });
    println!(
        "Inventory snapshot (what the watcher publishes): {:.3} us CPU median (per snapshot, batches of 1,000)",
        clone.cpu_median / 1_000.0 * 1e6
    );
    let (_, publisher) = publish(inv.clone());
    let status = status();
    let mut inv2 = inv.clone();
    let (w, c) = (Instant::now(), thread_cpu());
    for ev in &events[..20_000] {
        inv2.apply(ev);
        publisher.publish(&status, &inv2);
    }
    let (wall, cpu) = (w.elapsed().as_secs_f64(), thread_cpu() - c);
    println!(
        "apply + snapshot + publish (the watcher's path per event, unpaced): {:.2} us CPU ({:.2} us wall) per event",
        cpu / 20_000.0 * 1e6,
        wall / 20_000.0 * 1e6
    );
}
