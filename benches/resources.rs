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
//! Everything created is removed at the end.

// A benchmark stops on the first broken step; a panic says which.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use sealwatch::{
    register_instruments, Allowlist, CgroupSampler, EngineStats, EngineStatus, Engines, Host,
    Inventory, LabelPolicy, ListContainer, ListPod, Metrics, Sampler, Source,
};

const ITERATIONS: usize = 20;

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
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
    let pods: Vec<ListPod> = (0..containers.div_ceil(per_pod))
        .map(|p| {
            serde_json::from_value(json!({"Id": hex_id(0xbb, p), "Name": format!("pod{p}"),
                "Status": "Running"}))
            .unwrap()
        })
        .collect();
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
    println!(
        "RSS of this process: {} KiB before the workload, {} KiB now (inventory, samples, the benchmark's own buffers)",
        rss_before,
        rss_kib()
    );
    drop(work);
}
