//! The cgroup source on recorded trees: cgroup v1 from this project's Debian 12 machines
//! (Podman 4.3.1, cgroupfs) and cgroup v2 from the QEMU guest (Podman 5.4.2, systemd), each
//! recorded by `tests/fixtures/cgroup/record.sh` from real containers (see the README there).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::cgroup::{self, Dirs, Layout, Reader};
use super::netdev::{self, Candidate};
use super::*;
use crate::inventory::{Allowlist, LabelPolicy};
use crate::podman::wire::{ListContainer, ListPod};

fn fixture(version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/cgroup/{version}"))
}

fn host(version: &str) -> Host {
    let root = fixture(version);
    Host::new(root.clone(), root.join("mountinfo"))
}

fn proc_cgroup(version: &str, pid: u32) -> String {
    std::fs::read_to_string(fixture(version).join(format!("proc/{pid}/cgroup"))).unwrap()
}

/// An inventory of running containers `(id, pid, pod id, infra)`.
fn inventory(containers: &[(&str, u32, Option<&str>, bool)]) -> Inventory {
    let mut inv = Inventory::new(LabelPolicy::new(Allowlist::default(), 10));
    let cs: Vec<ListContainer> = containers
        .iter()
        .enumerate()
        .map(|(i, (id, pid, pod, infra))| {
            serde_json::from_value(json!({
                "Id": id, "Names": [format!("c{i}")], "Image": "localhost/busybox:latest",
                "State": "running", "Pid": pid, "Pod": pod.unwrap_or(""), "IsInfra": infra,
                "StartedAt": 1_796_000_000 + i as i64,
            }))
            .unwrap()
        })
        .collect();
    let mut pods: Vec<&str> = containers.iter().filter_map(|c| c.2).collect();
    pods.dedup();
    let ps: Vec<ListPod> = pods
        .iter()
        .map(|p| {
            serde_json::from_value(json!({"Id": p, "Name": "p1", "Status": "Running"})).unwrap()
        })
        .collect();
    inv.resync(cs, ps, i64::MIN);
    inv
}

const V1_MEM: &str = "0c91532f9e976864ad098522cbfa67208c5be121ac173fa9850a763eb095bbc7";
const V1_IO: &str = "22954723b7b85ae1915605fb24f0e5dec564065cb241a538ba254e8d3261763f";
const V1_INFRA: &str = "ccba036f65a49420f35988d1ed541b815e37af64d918c129090c7d52c2251b8f";
const V1_MEMBER: &str = "00be250e01cc1a2405f83f8fa9dd1050a7ae00a397db8767bf47a61bbba0dd7a";
const V1_POD: &str = "346c8b6d04146fff3376e5692f94d86d6c39c0b24de784e39ca7c9403135250f";

/// On a hybrid v1 host (v1 controllers plus an empty unified mount) the v1 hierarchies are
/// used, each controller's from its own mount.
#[test]
fn v1_layout_is_found_in_mountinfo() {
    let root = fixture("v1");
    let info = std::fs::read_to_string(root.join("mountinfo")).unwrap();
    let layout = Layout::discover(&info, &root).unwrap();
    assert_eq!(layout.version(), "v1");
    let cg = layout
        .resolve(&proc_cgroup("v1", 668), V1_MEMBER, Some(V1_POD))
        .unwrap();
    let Dirs::V1 { memory, .. } = &cg.container else {
        panic!("{cg:?}")
    };
    assert_eq!(
        memory.as_deref().unwrap(),
        root.join(format!(
            "sys/fs/cgroup/memory/libpod_parent/{V1_POD}/libpod-{V1_MEMBER}"
        ))
    );
    let Some(Dirs::V1 { cpuacct, blkio, .. }) = &cg.pod else {
        panic!("{cg:?}")
    };
    assert_eq!(
        cpuacct.as_deref().unwrap(),
        root.join(format!("sys/fs/cgroup/cpuacct/libpod_parent/{V1_POD}"))
    );
    assert!(blkio.is_none(), "pods are not read for block I/O");
    // Outside a pod there is no pod cgroup, also when a pod ID is (wrongly) given.
    let cg = layout
        .resolve(&proc_cgroup("v1", 486), V1_MEM, Some(V1_POD))
        .unwrap();
    assert!(cg.pod.is_none());
}

/// A v1 container's files: CPU in ns (system from `cpuacct.usage_sys`), memory usage, the
/// working set without inactive file pages, the limit (absent when unlimited), pids, OOM kills.
#[test]
fn v1_container_files_are_read() {
    let root = fixture("v1");
    let info = std::fs::read_to_string(root.join("mountinfo")).unwrap();
    let layout = Layout::discover(&info, &root).unwrap();
    let mut reader = Reader::default();
    let mem = layout
        .resolve(&proc_cgroup("v1", 486), V1_MEM, None)
        .unwrap();
    let u = reader.container(&mem.container).unwrap();
    assert_eq!(u.cpu_nanos, Some(86_669_277));
    assert_eq!(u.cpu_system_nanos, Some(46_868_467));
    // 50 MiB in /dev/shm (tmpfs): shmem is anonymous memory, not inactive file.
    assert_eq!(u.memory_bytes, Some(52_789_248));
    assert_eq!(u.working_set_bytes, Some(52_789_248));
    assert_eq!(
        u.memory_limit_bytes, None,
        "9223372036854771712 means unlimited"
    );
    assert_eq!(u.pids, Some(1));
    assert_eq!(u.oom_kills, Some(0));
    assert_eq!(
        (u.block_read_bytes, u.block_write_bytes),
        (Some(0), Some(0))
    );

    // `--memory 256m`, 8 MiB written to a file and synced: page cache, inactive.
    let io = layout
        .resolve(&proc_cgroup("v1", 4040), V1_IO, None)
        .unwrap();
    let u = reader.container(&io.container).unwrap();
    assert_eq!(u.memory_limit_bytes, Some(268_435_456));
    assert_eq!(u.memory_bytes, Some(9_068_544));
    assert_eq!(u.working_set_bytes, Some(9_068_544 - 8_388_608));
}

/// Without `cpuacct.usage_sys` (kernels before 4.6), system CPU comes from `cpuacct.stat` in
/// USER_HZ ticks; a cgroup that is gone is unreadable, not zero.
#[test]
fn v1_system_cpu_falls_back_to_ticks_and_gone_cgroups_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cpuacct.usage"), "90000000\n").unwrap();
    std::fs::write(dir.path().join("cpuacct.stat"), "user 4\nsystem 5\n").unwrap();
    let mut reader = Reader::default();
    let dirs = Dirs::V1 {
        cpuacct: Some(dir.path().to_path_buf()),
        memory: None,
        pids: None,
        blkio: None,
    };
    let u = reader.pod(&dirs).unwrap();
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert_eq!(u.cpu_system_nanos, Some(5 * 1_000_000_000 / hz));
    let gone = Dirs::V1 {
        cpuacct: Some(dir.path().join("nope")),
        memory: Some(dir.path().join("nope")),
        pids: None,
        blkio: None,
    };
    assert!(reader.container(&gone).is_err());
    assert!(reader
        .container(&Dirs::V2(dir.path().join("nope")))
        .is_err());
}

/// The block I/O formats of both versions, summed over devices (the kernel documentation's
/// examples; this machine's virtual disk does not account block I/O).
#[test]
fn block_io_formats() {
    let v1 = "8:16 Read 4096\n8:16 Write 8192\n8:16 Sync 0\n8:16 Async 12288\n8:16 Total 12288\n\
              8:0 Read 100\n8:0 Write 1\nTotal 12389\n";
    assert_eq!(cgroup::v1_blkio(v1), (4196, 8193));
    let v2 = "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n\
              8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n";
    assert_eq!(
        cgroup::v2_io(v2),
        (1459200 + 90430464, 314773504 + 299008000)
    );
    assert_eq!(cgroup::v2_io(""), (0, 0));
}

/// A pod's own cgroup holds its members, so its CPU is at least theirs.
#[test]
fn v1_sample_reads_containers_and_their_pod_cgroup() {
    let mut sampler = CgroupSampler::new(host("v1")).unwrap();
    let inv = inventory(&[
        (V1_MEM, 486, None, false),
        (V1_IO, 4040, None, false),
        (V1_INFRA, 647, Some(V1_POD), true),
        (V1_MEMBER, 668, Some(V1_POD), false),
        // Listed as running, but its process is gone: skipped and counted.
        (
            "dead0000000000000000000000000000000000000000000000000000000000aa",
            99999,
            None,
            false,
        ),
    ]);
    let s = sampler.sample(&inv);
    assert_eq!(s.containers.len(), 4);
    assert_eq!(s.unreadable, 1);
    let pod = &s.pods[V1_POD];
    assert_eq!(pod.cpu_nanos, Some(221_800_499));
    assert_eq!(pod.memory_bytes, Some(1_638_400));
    assert_eq!(pod.working_set_bytes, Some(1_638_400 - 122_880));
    assert_eq!(pod.pids, Some(6));
    let members: u64 = [V1_INFRA, V1_MEMBER]
        .iter()
        .map(|id| s.containers[*id].cpu_nanos.unwrap())
        .sum();
    assert!(pod.cpu_nanos.unwrap() >= members);
    // A second sample reuses what it found (same pids) and reads the same files again.
    let again = sampler.sample(&inv);
    assert_eq!(again.containers[V1_MEM], s.containers[V1_MEM]);
}

/// `/proc/<pid>/net/dev` as recorded: `lo` is left out, every other interface summed.
#[test]
fn net_dev_is_summed_without_lo() {
    let text = std::fs::read_to_string(fixture("v1").join("proc/486/net/dev")).unwrap();
    let n = netdev::parse(&text);
    let eth0 = text
        .lines()
        .find(|l| l.trim_start().starts_with("eth0:"))
        .unwrap();
    let v: Vec<u64> = eth0
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(
        (n.receive_bytes, n.receive_packets, n.receive_errors),
        (v[0], v[1], v[2])
    );
    assert_eq!(
        (n.transmit_bytes, n.transmit_packets, n.transmit_errors),
        (v[8], v[9], v[10])
    );
    assert!(n.receive_bytes > 0);
    let two = "h1\nh2\n  lo: 5 5 0 0 0 0 0 0 5 5 0 0 0 0 0 0\n\
               eth0: 10 2 1 0 0 0 0 0 20 3 0 0 0 0 0 0\n\
               eth1: 1 1 0 0 0 0 0 0 2 1 4 0 0 0 0 0\n";
    let n = netdev::parse(two);
    assert_eq!(
        n,
        NetworkUsage {
            receive_bytes: 11,
            transmit_bytes: 22,
            receive_packets: 3,
            transmit_packets: 4,
            receive_errors: 1,
            transmit_errors: 4,
        }
    );
}

/// A namespace is counted once: for the pod's infra container, else the earliest started
/// container in it; never for containers on the host's network.
#[test]
fn each_network_namespace_is_counted_once() {
    let c = |id, netns, infra, started| Candidate {
        id,
        netns,
        infra,
        started_at: Some(started),
    };
    let owners = netdev::owners(
        &[
            c("member", 7, false, 1),
            c("infra", 7, true, 5),
            c("joined", 8, false, 9),
            c("owner", 8, false, 2),
            c("hostnet", 1, false, 0),
            c("alone", 9, false, 3),
        ],
        Some(1),
    );
    let mut owners = owners;
    owners.sort_unstable();
    assert_eq!(owners, ["alone", "infra", "owner"]);
}

/// A sample younger than the maximum age is shared by scrapes; an older one is replaced.
#[test]
fn scrapes_share_a_sample_until_it_is_too_old() {
    struct Counting(u64);
    impl Sampler for Counting {
        fn sample(&mut self, _: &Inventory) -> Sample {
            self.0 += 1;
            let mut s = Sample::new(std::time::Instant::now());
            s.unreadable = self.0;
            s
        }
    }
    let inv = inventory(&[]);
    let stats = EngineStats::sampled(
        Source::Cgroup,
        Duration::from_secs(3600),
        Box::new(Counting(0)),
    );
    let a = stats.current(&inv).unwrap();
    let b = stats.current(&inv).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(stats.samples(), 1);
    let stats = EngineStats::sampled(Source::Cgroup, Duration::ZERO, Box::new(Counting(0)));
    stats.current(&inv);
    stats.current(&inv);
    assert_eq!(stats.samples(), 2);
    assert!(EngineStats::off().current(&inv).is_none());
}

const V2_MEM: &str = "788043d32c1010dd9c0d65ef8670fa0b592a67f9bf283385b9c43fda311193a5";
const V2_IO: &str = "13b676f2042ec9344bf161008d6971839d098414a4276725c12d844f683114cb";
const V2_INFRA: &str = "5971642cd668bd38b2dae4620c299c028dc808da1cadb09f42767e8484a9ad36";
const V2_MEMBER: &str = "e50015f352ffd2595c426288b437a399e0108570d648108fec6c01f6d91a3df2";
const V2_POD: &str = "a93cf9ecedbbba01c18cb2f898806f44b952c99bc78ce4b6619e9fbb7ecf2930";

/// On cgroup v2 with systemd the processes sit in `libpod-<id>.scope/container`: the
/// container's cgroup is the scope, its pod's the `machine-libpod_pod_<id>.slice` above it.
#[test]
fn v2_scope_and_pod_slice_are_found() {
    let root = fixture("v2");
    let info = std::fs::read_to_string(root.join("mountinfo")).unwrap();
    let layout = Layout::discover(&info, &root).unwrap();
    assert_eq!(layout.version(), "v2");
    let cg = layout
        .resolve(&proc_cgroup("v2", 2670), V2_MEMBER, Some(V2_POD))
        .unwrap();
    let slice = root.join(format!(
        "sys/fs/cgroup/machine.slice/machine-libpod_pod_{V2_POD}.slice"
    ));
    assert_eq!(
        cg.container,
        Dirs::V2(slice.join(format!("libpod-{V2_MEMBER}.scope")))
    );
    assert_eq!(cg.pod, Some(Dirs::V2(slice)));
}

/// A v2 container's files: `cpu.stat` in microseconds, `memory.current` minus `inactive_file`,
/// `memory.max` (`max` = unlimited), `io.stat`, `memory.events`.
#[test]
fn v2_container_files_are_read() {
    let mut sampler = CgroupSampler::new(host("v2")).unwrap();
    assert_eq!(sampler.version(), "v2");
    let inv = inventory(&[
        (V2_MEM, 2851, None, false),
        (V2_IO, 2462, None, false),
        (V2_INFRA, 2657, Some(V2_POD), true),
        (V2_MEMBER, 2670, Some(V2_POD), false),
    ]);
    let s = sampler.sample(&inv);
    assert_eq!((s.containers.len(), s.unreadable), (4, 0));
    let mem = &s.containers[V2_MEM];
    assert_eq!(mem.cpu_nanos, Some(1_019_477_000));
    assert_eq!(mem.cpu_system_nanos, Some(939_203_000));
    // 50 MiB of /dev/shm is shmem: in memory.current and the working set.
    assert_eq!(mem.memory_bytes, Some(52_776_960));
    assert_eq!(mem.working_set_bytes, Some(52_776_960));
    assert_eq!(mem.memory_limit_bytes, None);
    assert_eq!((mem.pids, mem.oom_kills), (Some(1), Some(0)));
    let io = &s.containers[V2_IO];
    assert_eq!(io.memory_limit_bytes, Some(268_435_456));
    assert_eq!(io.working_set_bytes, Some(10_661_888 - 8_413_184));
    assert_eq!(
        (io.block_read_bytes, io.block_write_bytes),
        (Some(1_785_856), Some(8_388_608))
    );
    let pod = &s.pods[V2_POD];
    assert_eq!(pod.cpu_nanos, Some(1_103_404_000));
    assert_eq!((pod.memory_bytes, pod.pids), (Some(1_040_384), Some(4)));
    let members =
        s.containers[V2_INFRA].cpu_nanos.unwrap() + s.containers[V2_MEMBER].cpu_nanos.unwrap();
    assert!(pod.cpu_nanos.unwrap() >= members);
}

/// A socket whose listener is this very process is not hidden; an unreachable one is not
/// called hidden either (the watcher reports it).
#[test]
fn peer_of_a_visible_listener_is_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    assert!(!super::peer_hidden(&path));
    assert!(!super::peer_hidden(&dir.path().join("absent.sock")));
}
