//! What the cgroup source costs at 1,000 containers: one container's files, one sample of all,
//! and a whole `/metrics` scrape with every resource family on. Prints numbers; asserts nothing
//! (`cargo bench --bench resources`; as root, on a host with a cgroup filesystem).
//!
//! The containers are real kernel objects, not files on a disk: one `sleep` process per
//! container, each in its own network namespace (`unshare --net`, so every container's
//! `/proc/<pid>/net/dev` is read: the worst case) and its own cgroup named like Podman's
//! (`<pod id>/libpod-<container id>`, ten containers per pod cgroup) in every controller sealwatch
//! reads. The inventory is built through the library API as the watcher builds it. CPU is this
//! thread's (`CLOCK_THREAD_CPUTIME_ID`); the kernel's work of producing the files is included.
//! Everything created is removed at the end. `SEALWATCH_BENCH_PROCESS_ONLY=1` measures only the
//! sealwatch process behind a fake Podman (`SEALWATCH_BENCH_MALLOC_ARENA_MAX` sets its
//! `MALLOC_ARENA_MAX`).

// A benchmark stops on the first broken step; a panic says which.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "support/fake_podman.rs"]
mod fake_podman;
#[path = "support/measure.rs"]
mod measure;
use measure::{http_get, process_cpu, process_seconds, status_kib, thread_cpu};

use sealwatch::{
    register_instruments, Allowlist, CgroupSampler, EngineStats, EngineStatus, Engines, Host,
    Inventory, LabelPolicy, ListContainer, ListPod, Metrics, Sampler, Source,
};

const ITERATIONS: usize = 20;

/// The value of a series line starting with `prefix` in exposition `text`.
fn series_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no series {prefix}"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p90(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() - 1) * 9 / 10]
}

/// (median CPU, p90 CPU, median wall) seconds of `f` over `ITERATIONS` calls after 2 warm-ups.
fn measure(mut f: impl FnMut()) -> (f64, f64, f64) {
    f();
    f();
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..ITERATIONS {
        let (w, c) = (Instant::now(), thread_cpu());
        f();
        cpu.push(thread_cpu() - c);
        wall.push(w.elapsed().as_secs_f64());
    }
    (median(&mut cpu.clone()), p90(&mut cpu), median(&mut wall))
}

fn rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The kernel's slab memory (`Slab:` of /proc/meminfo), KiB.
fn slab_kib() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The directories new cgroups go below: one per v1 controller sealwatch reads, or the unified
/// hierarchy's root.
fn cgroup_roots() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut v1 = Vec::new();
    let mut v2 = None;
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let point = left.split(' ').nth(4).unwrap_or("");
        let mut sup = right.split(' ');
        match (sup.next(), sup.nth(1)) {
            (Some("cgroup"), Some(opts))
                if opts
                    .split(',')
                    .any(|o| ["cpuacct", "memory", "pids", "blkio"].contains(&o)) =>
            {
                v1.push(PathBuf::from(point));
            }
            (Some("cgroup2"), _) if v2.is_none() => v2 = Some(PathBuf::from(point)),
            _ => {}
        }
    }
    if v1.is_empty() {
        v1.extend(v2);
    }
    v1
}

fn hex_id(kind: u8, n: usize) -> String {
    format!("{kind:02x}{:062x}", n as u128 * 0x9e37_79b9_7f4a_7c15)
}

/// The processes and cgroups standing in for containers; removed on drop.
struct Workload {
    children: Vec<Child>,
    dirs: Vec<PathBuf>,
}

impl Drop for Workload {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        // Deepest first: containers, then pods, then the bench's own parent.
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &self.dirs {
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn main() {
    // As the binary does at start: the sampler keeps its files open.
    sealwatch::fdlimit::raise_open_files_limit();
    let containers: usize = std::env::var("SEALWATCH_BENCH_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let per_pod = 10;
    let roots = cgroup_roots();
    assert!(!roots.is_empty(), "no cgroup filesystem mounted");
    let base = format!("sealwatch-bench-{}", std::process::id());
    let mut work = Workload {
        children: Vec::new(),
        dirs: Vec::new(),
    };
    for r in &roots {
        work.dirs.push(r.join(&base));
    }
    let rss_before = rss_kib();
    let setup = Instant::now();
    let mut list = Vec::new();
    for i in 0..containers {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare --net sleep (needs root)");
        let pid = child.id();
        work.children.push(child);
        let (id, pod) = (hex_id(0xcc, i), hex_id(0xbb, i / per_pod));
        for r in &roots {
            let pod_dir = r.join(&base).join(&pod);
            let dir = pod_dir.join(format!("libpod-{id}"));
            fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            fs::write(dir.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", dir.display()));
            if i % per_pod == 0 {
                work.dirs.push(pod_dir);
            }
            work.dirs.push(dir);
        }
        list.push(json!({
            "Id": id, "Names": [format!("project{}-service{}-{i}", i % 50, i % 200)],
            "Image": "registry.example.com/team/image:v1", "State": "running", "Pid": pid,
            "Pod": pod, "PodName": format!("pod{}", i / per_pod), "IsInfra": false,
            "Labels": {"io.podman.compose.project": format!("project{}", i % 50)},
            "StartedAt": 1_795_000_100 + i as i64,
        }));
    }
    let pods_json: Vec<serde_json::Value> = (0..containers.div_ceil(per_pod))
        .map(|p| json!({"Id": hex_id(0xbb, p), "Name": format!("pod{p}"), "Status": "Running"}))
        .collect();
    let bodies = fake_podman::Bodies {
        shape: fake_podman::Shape::V4_3_1,
        containers: serde_json::to_string(&list).unwrap(),
        pods: serde_json::to_string(&pods_json).unwrap(),
        events: Vec::new(),
    };
    let pods: Vec<ListPod> = serde_json::from_value(json!(pods_json)).unwrap();
    let list: Vec<ListContainer> = serde_json::from_value(json!(list)).unwrap();
    let mut inv = Inventory::new(LabelPolicy::new(Allowlist::default(), 500));
    inv.resync(list, pods, i64::MIN);
    println!(
        "sealwatch cgroup source benchmark: {containers} running containers, {} pod cgroups, \
         each container in its own network namespace; cgroup roots {:?}; set up in {:.1} s",
        containers.div_ceil(per_pod),
        roots,
        setup.elapsed().as_secs_f64()
    );

    if std::env::var_os("SEALWATCH_BENCH_PROCESS_ONLY").is_some() {
        exporter_process(bodies, containers);
        return;
    }

    // One sample, cold (every container found from /proc/<pid>/cgroup) and warm.
    let slab_before = slab_kib();
    let mut sampler = CgroupSampler::new(Host::system()).expect("cgroup source");
    let c = thread_cpu();
    let first = sampler.sample(&inv);
    let cold = thread_cpu() - c;
    assert_eq!(
        first.containers.len(),
        containers,
        "every container read ({} unreadable)",
        first.unreadable
    );
    assert_eq!(
        first
            .containers
            .values()
            .filter(|u| u.network.is_some())
            .count(),
        containers
    );
    let (warm, warm_p90, warm_wall) = measure(|| {
        black_box(sampler.sample(&inv));
    });
    let kept = sampler.open_files();
    let per = |s: f64| s / containers as f64 * 1e6;
    println!();
    println!(
        "one sample ({} version, {} pods read):",
        sampler.version(),
        first.pods.len()
    );
    println!(
        "  cold (cgroups found from /proc/<pid>/cgroup): {:7.2} ms CPU = {:5.1} us per container",
        cold * 1e3,
        per(cold)
    );
    println!(
        "  warm:                                         {:7.2} ms CPU (p90 {:.2}, wall {:.2}) = {:5.1} us per container; {kept} files kept open",
        warm * 1e3,
        warm_p90 * 1e3,
        warm_wall * 1e3,
        per(warm)
    );
    println!(
        "  kernel slab memory: {} KiB more than before the first sample (the kept files and their buffers, \
         plus whatever else the machine allocated meanwhile)",
        slab_kib().saturating_sub(slab_before)
    );

    // What each file costs: one read of it for every container (or pod), CPU per read.
    println!();
    println!("CPU per read of one file, over all {containers} containers (us):");
    let mut buf = String::with_capacity(8192);
    let mut read_all = |paths: &[PathBuf]| -> f64 {
        use std::io::Read;
        let c = thread_cpu();
        for p in paths {
            buf.clear();
            if let Ok(mut f) = fs::File::open(p) {
                let _ = f.read_to_string(&mut buf);
            }
        }
        (thread_cpu() - c) / paths.len() as f64 * 1e6
    };
    let pids: Vec<u32> = work.children.iter().map(Child::id).collect();
    let ids: Vec<(String, String)> = (0..containers)
        .map(|i| (hex_id(0xcc, i), hex_id(0xbb, i / per_pod)))
        .collect();
    for r in &roots {
        let Ok(entries) = fs::read_dir(
            r.join(&base)
                .join(&ids[0].1)
                .join(format!("libpod-{}", ids[0].0)),
        ) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                [
                    "cpuacct.usage",
                    "cpuacct.usage_sys",
                    "cpuacct.stat",
                    "memory.usage_in_bytes",
                    "memory.stat",
                    "memory.limit_in_bytes",
                    "memory.oom_control",
                    "pids.current",
                    "blkio.throttle.io_service_bytes_recursive",
                    "cpu.stat",
                    "memory.current",
                    "memory.max",
                    "memory.events",
                    "io.stat",
                ]
                .contains(&n.as_str())
            })
            .collect();
        names.sort();
        for name in names {
            let paths: Vec<PathBuf> = ids
                .iter()
                .map(|(id, pod)| {
                    r.join(&base)
                        .join(pod)
                        .join(format!("libpod-{id}"))
                        .join(&name)
                })
                .collect();
            read_all(&paths);
            println!("  {name:<45} {:7.1}", read_all(&paths));
        }
    }
    // Ways to read the same file: the syscalls per read decide the cost.
    let mem_dirs: Vec<PathBuf> = ids
        .iter()
        .map(|(id, pod)| roots[0].join(&base).join(pod).join(format!("libpod-{id}")))
        .collect();
    let file = fs::read_dir(&mem_dirs[0])
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".usage") || n == "cpu.stat")
        .unwrap_or_else(|| "cgroup.procs".into());
    let mut raw = vec![0u8; 8192];
    let per_read = |f: &mut dyn FnMut()| {
        f();
        let c = thread_cpu();
        f();
        (thread_cpu() - c) / containers as f64 * 1e6
    };
    let plain = per_read(&mut || {
        use std::io::Read;
        for d in &mem_dirs {
            if let Ok(mut f) = fs::File::open(d.join(&file)) {
                let _ = f.read(&mut raw);
            }
        }
    });
    let cname = std::ffi::CString::new(file.clone()).unwrap();
    let dirfds: Vec<i32> = mem_dirs
        .iter()
        .map(|d| {
            let p = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path; the fd is closed below.
            unsafe {
                libc::open(
                    p.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            }
        })
        .collect();
    let at = per_read(&mut || {
        for &d in &dirfds {
            // SAFETY: valid fds and buffer; the opened fd is closed at once.
            unsafe {
                let fd = libc::openat(d, cname.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::read(fd, raw.as_mut_ptr().cast(), raw.len());
                    libc::close(fd);
                }
            }
        }
    });
    let kept: Vec<i32> = dirfds
        .iter()
        // SAFETY: valid fds and a NUL-terminated name.
        .map(|&d| unsafe { libc::openat(d, cname.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })
        .collect();
    let pread = per_read(&mut || {
        for &fd in &kept {
            // SAFETY: a valid fd and buffer.
            unsafe { libc::pread(fd, raw.as_mut_ptr().cast(), raw.len(), 0) };
        }
    });
    for fd in dirfds.iter().chain(&kept) {
        // SAFETY: fds opened above, closed once.
        unsafe { libc::close(*fd) };
    }
    println!(
        "  {file} read another way: open(full path)+read+close {plain:.1}, \
         openat(dir fd)+read+close {at:.1}, pread on a kept fd {pread:.1}"
    );
    for name in ["cgroup", "net/dev"] {
        let paths: Vec<PathBuf> = pids
            .iter()
            .map(|p| PathBuf::from(format!("/proc/{p}/{name}")))
            .collect();
        read_all(&paths);
        println!("  /proc/<pid>/{name:<33} {:7.1}", read_all(&paths));
    }
    let c = thread_cpu();
    for p in &pids {
        let _ = black_box(fs::metadata(format!("/proc/{p}/ns/net")));
    }
    println!(
        "  stat /proc/<pid>/ns/net                       {:7.1}",
        (thread_cpu() - c) / pids.len() as f64 * 1e6
    );

    // Whole scrapes: every family, with a sample each time and with a shared sample.
    for (label, max_age) in [
        (
            "scrape that samples (sample older than --stats.interval)",
            Duration::ZERO,
        ),
        (
            "scrape that reuses the sample (younger than --stats.interval)",
            Duration::from_secs(3600),
        ),
    ] {
        let (registry, _) = register_instruments(&["podman"]);
        let stats = EngineStats::sampled(
            Source::Cgroup,
            max_age,
            Box::new(CgroupSampler::new(Host::system()).expect("cgroup source")),
        );
        let (engines, publishers) = Engines::with_stats(vec![(
            "podman".into(),
            "unix:///run/podman/podman.sock".into(),
            inv.clone(),
            stats,
        )]);
        let status = EngineStatus {
            connected: true,
            synced: true,
            reason: None,
            version: Some("4.3.1".into()),
            api_version: Some("4.3.1".into()),
        };
        publishers[0].publish(&status, &inv);
        let metrics = Metrics::new(engines, registry);
        let text = metrics.render(false).expect("render");
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        let resource_series = text
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && (l.starts_with("podman_container_cpu")
                        || l.starts_with("podman_container_memory")
                        || l.starts_with("podman_container_pids")
                        || l.starts_with("podman_container_network")
                        || l.starts_with("podman_container_block")
                        || l.starts_with("podman_container_oom")
                        || l.starts_with("podman_pod_cpu")
                        || l.starts_with("podman_pod_memory")
                        || l.starts_with("podman_pod_pids"))
            })
            .count();
        let (cpu, cpu90, wall) = measure(|| {
            black_box(metrics.render(false).expect("render"));
        });
        println!(
            "{label}: {:.2} ms CPU (p90 {:.2}, wall {:.2}); {series} series, {resource_series} of them resource series, {} KiB",
            cpu * 1e3,
            cpu90 * 1e3,
            wall * 1e3,
            text.len() / 1024
        );
    }

    // Scrapes at a steady cadence, as Prometheus sends them: the sample is taken by the
    // prefetch thread just before each scrape is expected, so the scrape only renders.
    let max_age = Duration::from_millis(1000);
    let gap = Duration::from_millis(1500);
    let (registry, _) = register_instruments(&["podman"]);
    let stats = EngineStats::sampled(
        Source::Cgroup,
        max_age,
        Box::new(CgroupSampler::new(Host::system()).expect("cgroup source")),
    );
    let (engines, publishers) = Engines::with_stats(vec![(
        "podman".into(),
        "unix:///run/podman/podman.sock".into(),
        inv.clone(),
        stats,
    )]);
    let status = EngineStatus {
        connected: true,
        synced: true,
        reason: None,
        version: Some("4.3.1".into()),
        api_version: Some("4.3.1".into()),
    };
    publishers[0].publish(&status, &inv);
    let metrics = Metrics::new(engines, registry);
    let mut next = Instant::now();
    let (mut scrape_cpu, mut cycle_cpu) = (Vec::new(), Vec::new());
    let mut text = String::new();
    let mut last_start = process_cpu();
    for i in 0..ITERATIONS + 3 {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += gap;
        let (c, p) = (thread_cpu(), process_cpu());
        text = metrics.render(false).expect("render");
        if i >= 3 {
            scrape_cpu.push(thread_cpu() - c);
            // From the start of the previous scrape to this one's: that scrape, and the
            // prefetch that ran in the gap after it.
            cycle_cpu.push(p - last_start);
        }
        last_start = p;
    }
    let (sampled, in_scrape) = (
        series_value(&text, "sealwatch_stats_samples_total{"),
        series_value(&text, "sealwatch_stats_scrape_samples_total{"),
    );
    println!(
        "scrapes every {} ms with --stats.interval {} ms (sample prefetched just before each): {:.2} ms CPU in the scrape (p90 {:.2}); whole process per scrape incl. the prefetch of the previous gap: {:.2} ms; {sampled} samples, {in_scrape} of them taken by a scrape itself",
        gap.as_millis(),
        max_age.as_millis(),
        median(&mut scrape_cpu.clone()) * 1e3,
        p90(&mut scrape_cpu) * 1e3,
        median(&mut cycle_cpu) * 1e3,
    );
    drop(metrics);
    exporter_process(bodies, containers);
    println!(
        "RSS of this process: {} KiB before the workload, {} KiB now (inventory, samples, the benchmark's own buffers)",
        rss_before,
        rss_kib()
    );
    drop(work);
}

/// The real sealwatch binary against a wire-level fake Podman that lists the same containers
/// (whose pids and cgroups are the workload's): its RSS and CPU while scraped at a steady
/// cadence with every resource family on (the cgroup source, as `auto` picks it).
fn exporter_process(bodies: fake_podman::Bodies, containers: usize) {
    let fake = fake_podman::FakePodman::start(bodies);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealwatch"))
        .args([
            "--podman.url",
            &fake.url(),
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
            "--stats.interval",
            "1s",
            "--log.level",
            "warn",
        ])
        .envs(std::env::var("SEALWATCH_BENCH_MALLOC_ARENA_MAX").map(|v| ("MALLOC_ARENA_MAX", v)))
        .stdin(Stdio::null())
        .spawn()
        .expect("start sealwatch");
    let pid = child.id();
    let started = Instant::now();
    while !String::from_utf8_lossy(&http_get(port, "/-/ready", "")).starts_with("HTTP/1.1 200") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sealwatch ready within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready_rss = status_kib(pid, "VmRSS:");
    // Idle: no scrapes, no events.
    std::thread::sleep(Duration::from_secs(2));
    let idle_start = process_seconds(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle = process_seconds(pid) - idle_start;
    let gap = Duration::from_millis(1500);
    let mut next = Instant::now();
    let mut body = String::new();
    let mut cpu_start = 0.0;
    for i in 0..ITERATIONS + 3 {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += gap;
        if i == 3 {
            cpu_start = process_seconds(pid);
        }
        body = String::from_utf8_lossy(&http_get(port, "/metrics", "")).into_owned();
    }
    let cpu = process_seconds(pid) - cpu_start;
    let resource_series = body
        .lines()
        .filter(|l| l.starts_with("podman_container_cpu_seconds_total{"))
        .count();
    println!(
        "sealwatch process, {containers} containers listed by a fake Podman, cgroup source, scraped every {} ms with --stats.interval 1s: \
         RSS {} KiB when ready, {} KiB after {} scrapes (peak {} KiB); {:.1} ms CPU per scrape, prefetch included \
         (utime+stime at 100 Hz over {ITERATIONS} scrapes); {:.0} ms CPU in 10 s without scrapes; {resource_series} containers with CPU series",
        gap.as_millis(),
        ready_rss,
        status_kib(pid, "VmRSS:"),
        ITERATIONS + 3,
        status_kib(pid, "VmHWM:"),
        cpu / ITERATIONS as f64 * 1e3,
        idle * 1e3,
    );
    let _ = child.kill();
    let _ = child.wait();
}
