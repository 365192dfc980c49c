//! The cgroup filesystem, v1 and v2: where its hierarchies are mounted (from `mountinfo`), which
//! cgroup holds a container and its pod (from `/proc/<pid>/cgroup`), and what their files say.
//!
//! Owns the file names and formats of both versions and the rules that turn them into `Usage`:
//! CPU in nanoseconds, memory usage and working set (usage minus inactive file pages, as cAdvisor
//! and the kubelet compute it), the memory limit (absent when unlimited), pids, block I/O and OOM
//! kills. Never decides which containers to read or when: `sampler` does. Every path is below a
//! `root` so that the tests read recorded trees exactly as the sampler reads the host's.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::Usage;

/// v1 memory limits at or above this are "no limit" (the kernel shows the page-rounded
/// `i64::MAX`, 9223372036854771712).
const V1_UNLIMITED: u64 = 1 << 62;

/// One mounted cgroup hierarchy: its mount point (below the root) and the cgroup path of the
/// mount's own root, which `/proc/<pid>/cgroup` paths are relative to the hierarchy's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    point: PathBuf,
    root: String,
}

impl Mount {
    /// The directory of cgroup `path` (as `/proc/<pid>/cgroup` writes it), if this mount shows it.
    fn dir(&self, path: &str) -> Option<PathBuf> {
        let rel = if self.root == "/" {
            path
        } else {
            let rest = path.strip_prefix(self.root.as_str())?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            rest
        };
        Some(self.point.join(rel.trim_start_matches('/')))
    }
}

/// Where the controllers sealwatch reads are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One hierarchy per controller (or comounted, like `cpu,cpuacct`).
    V1 {
        cpuacct: Option<Mount>,
        memory: Option<Mount>,
        pids: Option<Mount>,
        blkio: Option<Mount>,
    },
    /// The unified hierarchy.
    V2(Mount),
}

impl Layout {
    /// The layout `mountinfo` (the text of `/proc/self/mountinfo`) describes, with mount points
    /// placed below `root`. v1 wins where its CPU or memory controller is mounted (a hybrid host
    /// also mounts an empty unified hierarchy); else the unified one. `None` without either.
    pub fn discover(mountinfo: &str, root: &Path) -> Option<Layout> {
        let (mut cpuacct, mut memory, mut pids, mut blkio, mut unified) =
            (None, None, None, None, None);
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let sup: Vec<&str> = right.split(' ').collect();
            let (Some(mount_root), Some(point), Some(fstype)) =
                (fields.get(3), fields.get(4), sup.first())
            else {
                continue;
            };
            let mount = || Mount {
                point: root.join(unescape(point).trim_start_matches('/')),
                root: unescape(mount_root),
            };
            match *fstype {
                "cgroup2" if unified.is_none() => unified = Some(mount()),
                "cgroup" => {
                    for option in sup.get(2).copied().unwrap_or("").split(',') {
                        let slot = match option {
                            "cpuacct" => &mut cpuacct,
                            "memory" => &mut memory,
                            "pids" => &mut pids,
                            "blkio" => &mut blkio,
                            _ => continue,
                        };
                        if slot.is_none() {
                            *slot = Some(mount());
                        }
                    }
                }
                _ => {}
            }
        }
        if cpuacct.is_some() || memory.is_some() {
            return Some(Layout::V1 {
                cpuacct,
                memory,
                pids,
                blkio,
            });
        }
        unified.map(Layout::V2)
    }

    /// "v1" or "v2", for logs.
    pub fn version(&self) -> &'static str {
        match self {
            Layout::V1 { .. } => "v1",
            Layout::V2(_) => "v2",
        }
    }

    /// The cgroups of a container and of its pod, from its process's `/proc/<pid>/cgroup` text.
    /// The container's cgroup is the nearest ancestor (or self) of the process's whose name
    /// holds the container ID (`libpod-<id>`, `libpod-<id>.scope`, `libpod-payload-<id>`):
    /// with systemd on v2 the processes sit one level lower, in `.../container`. Without such a
    /// name, the process's own cgroup. The pod's cgroup is the container cgroup's parent when
    /// its name holds the pod ID (`libpod_parent/<podid>`, `machine-libpod_pod_<podid>.slice`).
    pub fn resolve(
        &self,
        proc_cgroup: &str,
        container_id: &str,
        pod_id: Option<&str>,
    ) -> Option<Cgroups> {
        // `hierarchy-id:controllers:path` per line.
        let path_of = |controller: Option<&str>| {
            proc_cgroup.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let matches = match controller {
                    None => controllers.is_empty(),
                    Some(c) => controllers.split(',').any(|x| x == c),
                };
                matches.then_some(path)
            })
        };
        let locate = |mount: &Option<Mount>, controller: Option<&str>| -> Option<Located> {
            let mount = mount.as_ref()?;
            let own = container_cgroup(path_of(controller)?, container_id);
            let pod = pod_id
                .and_then(|p| parent_named(own, p))
                .and_then(|p| mount.dir(p));
            Some(Located {
                container: mount.dir(own)?,
                pod,
            })
        };
        match self {
            Layout::V1 {
                cpuacct,
                memory,
                pids,
                blkio,
            } => {
                let (cpu, mem) = (
                    locate(cpuacct, Some("cpuacct")),
                    locate(memory, Some("memory")),
                );
                if cpu.is_none() && mem.is_none() {
                    return None;
                }
                let (pids, blkio) = (locate(pids, Some("pids")), locate(blkio, Some("blkio")));
                let split = |l: &Option<Located>| {
                    (
                        l.as_ref().map(|l| l.container.clone()),
                        l.as_ref().and_then(|l| l.pod.clone()),
                    )
                };
                let ((c_cpu, p_cpu), (c_mem, p_mem), (c_pids, p_pids), (c_blk, _)) =
                    (split(&cpu), split(&mem), split(&pids), split(&blkio));
                let pod = (p_cpu.is_some() || p_mem.is_some()).then_some(Dirs::V1 {
                    cpuacct: p_cpu,
                    memory: p_mem,
                    pids: p_pids,
                    blkio: None,
                });
                Some(Cgroups {
                    container: Dirs::V1 {
                        cpuacct: c_cpu,
                        memory: c_mem,
                        pids: c_pids,
                        blkio: c_blk,
                    },
                    pod,
                })
            }
            Layout::V2(mount) => {
                let l = locate(&Some(mount.clone()), None)?;
                Some(Cgroups {
                    container: Dirs::V2(l.container),
                    pod: l.pod.map(Dirs::V2),
                })
            }
        }
    }
}

struct Located {
    container: PathBuf,
    pod: Option<PathBuf>,
}

/// The nearest ancestor-or-self of `path` whose last component holds `id`, else `path`.
fn container_cgroup<'p>(path: &'p str, id: &str) -> &'p str {
    let mut p = path;
    loop {
        let (parent, last) = p.rsplit_once('/').unwrap_or(("", p));
        if !id.is_empty() && last.contains(id) {
            return p;
        }
        if parent.is_empty() {
            return path;
        }
        p = parent;
    }
}

/// The parent of `path` if its last component holds `id`.
fn parent_named<'p>(path: &'p str, id: &str) -> Option<&'p str> {
    let (parent, _) = path.rsplit_once('/')?;
    let last = parent.rsplit('/').next()?;
    (!id.is_empty() && last.contains(id)).then_some(parent)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |a, d| a * 8 + u32::from(d - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroups of one running container: its own and its pod's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    pub container: Dirs,
    pub pod: Option<Dirs>,
}

/// One cgroup's directories: per controller on v1, one directory on v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dirs {
    V1 {
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        blkio: Option<PathBuf>,
    },
    V2(PathBuf),
}

/// The cgroup is gone (its container exited between the list and the read) or unreadable.
#[derive(Debug)]
pub struct Unreadable(#[allow(dead_code)] pub io::Error);

/// Reads cgroup files into `Usage`, reusing one buffer for every file of a sample.
pub struct Reader {
    buf: String,
    path: PathBuf,
    /// `USER_HZ`: the unit of v1's `cpuacct.stat`.
    ticks_per_second: u64,
}

impl Default for Reader {
    fn default() -> Self {
        // SAFETY: sysconf only reads a constant of the running system.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Self {
            buf: String::with_capacity(4096),
            path: PathBuf::with_capacity(256),
            ticks_per_second: u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100),
        }
    }
}

impl Reader {
    /// Reads `dir/name` into the buffer.
    fn read(&mut self, dir: &Path, name: &str) -> io::Result<&str> {
        self.path.clear();
        self.path.push(dir);
        self.path.push(name);
        self.buf.clear();
        File::open(&self.path)?.read_to_string(&mut self.buf)?;
        Ok(&self.buf)
    }

    /// A file holding one number.
    fn number(&mut self, dir: &Path, name: &str) -> io::Result<u64> {
        let text = self.read(dir, name)?;
        text.trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {text:?}")))
    }

    /// A `key value` line of a flat-keyed file.
    fn keyed(&mut self, dir: &Path, name: &str, key: &str) -> Option<u64> {
        keyed_value(self.read(dir, name).ok()?, key)
    }

    /// Everything a container's cgroup reports (network is read elsewhere). Fails only when the
    /// cgroup's CPU or memory accounting cannot be read at all (gone or forbidden); any other
    /// file that is missing leaves its field empty.
    pub fn container(&mut self, dirs: &Dirs) -> Result<Usage, Unreadable> {
        let mut u = self.common(dirs)?;
        match dirs {
            Dirs::V1 { memory, blkio, .. } => {
                if let Some(dir) = memory {
                    u.memory_limit_bytes = self
                        .number(dir, "memory.limit_in_bytes")
                        .ok()
                        .filter(|l| *l < V1_UNLIMITED);
                    u.oom_kills = self.keyed(dir, "memory.oom_control", "oom_kill");
                }
                if let Some(dir) = blkio {
                    let text = match self.read(dir, "blkio.throttle.io_service_bytes_recursive") {
                        Ok(_) => Some(()),
                        Err(_) => self
                            .read(dir, "blkio.throttle.io_service_bytes")
                            .ok()
                            .map(drop),
                    };
                    if text.is_some() {
                        let (r, w) = v1_blkio(&self.buf);
                        u.block_read_bytes = Some(r);
                        u.block_write_bytes = Some(w);
                    }
                }
            }
            Dirs::V2(dir) => {
                u.memory_limit_bytes = self
                    .read(dir, "memory.max")
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                u.oom_kills = self.keyed(dir, "memory.events", "oom_kill");
                if let Ok(text) = self.read(dir, "io.stat") {
                    let (r, w) = v2_io(text);
                    u.block_read_bytes = Some(r);
                    u.block_write_bytes = Some(w);
                }
            }
        }
        Ok(u)
    }

    /// What a pod's own cgroup reports: CPU, memory and pids.
    pub fn pod(&mut self, dirs: &Dirs) -> Result<Usage, Unreadable> {
        self.common(dirs)
    }

    /// CPU, memory usage and working set, pids.
    fn common(&mut self, dirs: &Dirs) -> Result<Usage, Unreadable> {
        let mut u = Usage::default();
        match dirs {
            Dirs::V1 {
                cpuacct,
                memory,
                pids,
                ..
            } => {
                let mut first_error = None;
                if let Some(dir) = cpuacct {
                    match self.number(dir, "cpuacct.usage") {
                        Ok(ns) => u.cpu_nanos = Some(ns),
                        Err(e) => first_error = Some(e),
                    }
                    // Podman reports `cpuacct.usage_sys` (nanoseconds); kernels before 4.6
                    // only have `cpuacct.stat` in USER_HZ ticks.
                    u.cpu_system_nanos = match self.number(dir, "cpuacct.usage_sys") {
                        Ok(ns) => Some(ns),
                        Err(_) => self
                            .keyed(dir, "cpuacct.stat", "system")
                            .map(|t| t.saturating_mul(1_000_000_000) / self.ticks_per_second),
                    };
                }
                if let Some(dir) = memory {
                    match self.number(dir, "memory.usage_in_bytes") {
                        Ok(bytes) => {
                            u.memory_bytes = Some(bytes);
                            let inactive = self
                                .keyed(dir, "memory.stat", "total_inactive_file")
                                .unwrap_or(0);
                            u.working_set_bytes = Some(bytes.saturating_sub(inactive));
                        }
                        Err(e) => first_error = first_error.or(Some(e)),
                    }
                }
                if u.cpu_nanos.is_none() && u.memory_bytes.is_none() {
                    return Err(Unreadable(first_error.unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "no cpuacct or memory cgroup")
                    })));
                }
                if let Some(dir) = pids {
                    u.pids = self.number(dir, "pids.current").ok();
                }
            }
            Dirs::V2(dir) => {
                let text = self.read(dir, "cpu.stat").map_err(Unreadable)?;
                u.cpu_nanos = keyed_value(text, "usage_usec").map(|us| us.saturating_mul(1000));
                u.cpu_system_nanos =
                    keyed_value(text, "system_usec").map(|us| us.saturating_mul(1000));
                if let Ok(bytes) = self.number(dir, "memory.current") {
                    u.memory_bytes = Some(bytes);
                    let inactive = self.keyed(dir, "memory.stat", "inactive_file").unwrap_or(0);
                    u.working_set_bytes = Some(bytes.saturating_sub(inactive));
                }
                u.pids = self.number(dir, "pids.current").ok();
            }
        }
        Ok(u)
    }
}

/// The value of the `key value` line of a flat-keyed file (`memory.stat`, `cpu.stat`, ...).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

/// Bytes read and written from v1's `blkio.throttle.io_service_bytes[_recursive]`:
/// `MAJ:MIN Read N` lines, summed over devices (the `Total` line is left out).
pub fn v1_blkio(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let (Some(dev), Some(op), Some(n)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !dev.contains(':') {
            continue;
        }
        let n: u64 = n.parse().unwrap_or(0);
        match op {
            "Read" => read = read.saturating_add(n),
            "Write" => write = write.saturating_add(n),
            _ => {}
        }
    }
    (read, write)
}

/// Bytes read and written from v2's `io.stat`: `MAJ:MIN rbytes=N wbytes=N ...`, summed.
pub fn v2_io(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for l in text.lines() {
        for kv in l.split_whitespace().skip(1) {
            if let Some(n) = kv.strip_prefix("rbytes=") {
                read = read.saturating_add(n.parse().unwrap_or(0));
            } else if let Some(n) = kv.strip_prefix("wbytes=") {
                write = write.saturating_add(n.parse().unwrap_or(0));
            }
        }
    }
    (read, write)
}
