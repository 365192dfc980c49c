//! The cgroup source: one sample of every running container of an engine, read from the cgroup
//! filesystem and `/proc`.
//!
//! Owns the walk: each running container's cgroups (found once per container process from
//! `/proc/<pid>/cgroup` and kept while that process lives), its pod's cgroup (read once per pod),
//! and its network namespace (read once per namespace, for the container that owns it). A
//! container whose files vanish mid-walk (it exited) or cannot be read is skipped and counted.
//! Never calls Podman and never changes the inventory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::{FxHashMap, FxHashSet};

use super::cgroup::{Cgroups, Layout, Reader};
use super::netdev::{self, Candidate};
use super::{Sample, Sampler};
use crate::inventory::Inventory;

/// Where `/proc` and the cgroup mounts are.
#[derive(Debug, Clone)]
pub struct Host {
    /// Mount points from `mountinfo` and `/proc` are below this.
    root: PathBuf,
    mountinfo: PathBuf,
}

impl Host {
    /// `root` holds `proc/` and the mount points; `mountinfo` is the text of
    /// `/proc/self/mountinfo` that names those mount points.
    pub fn new(root: PathBuf, mountinfo: PathBuf) -> Self {
        Self { root, mountinfo }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn proc(&self) -> PathBuf {
        self.root.join("proc")
    }
}

/// What is known of one container process: it is found once, then only its files are read.
#[derive(Debug)]
struct Known {
    pid: u32,
    cgroups: Cgroups,
    /// Inode of its network namespace; `None` when `/proc/<pid>/ns/net` is not readable.
    netns: Option<u64>,
}

pub struct CgroupSampler {
    proc: PathBuf,
    layout: Layout,
    reader: Reader,
    /// The host's network namespace (of `/proc/1`, else of sealwatch itself): containers in it
    /// use the host network, whose traffic is not theirs.
    host_netns: Option<u64>,
    known: FxHashMap<Arc<str>, Known>,
    text: String,
}

impl CgroupSampler {
    /// Fails when `mountinfo` shows no cgroup filesystem.
    pub fn new(host: Host) -> Result<Self, String> {
        let mountinfo = std::fs::read_to_string(&host.mountinfo)
            .map_err(|e| format!("cannot read {}: {e}", host.mountinfo.display()))?;
        let layout = Layout::discover(&mountinfo, &host.root).ok_or_else(|| {
            format!(
                "no cgroup filesystem with the cpuacct or memory controller in {}",
                host.mountinfo.display()
            )
        })?;
        let proc = host.proc();
        let host_netns = ["1", "self"]
            .iter()
            .find_map(|p| std::fs::metadata(proc.join(p).join("ns/net")).ok())
            .map(|m| m.ino());
        Ok(Self {
            proc,
            layout,
            reader: Reader::default(),
            host_netns,
            known: FxHashMap::default(),
            text: String::new(),
        })
    }

    /// Files kept open between samples.
    pub fn open_files(&self) -> usize {
        self.reader.open_files()
    }

    /// "v1" or "v2".
    pub fn version(&self) -> &'static str {
        self.layout.version()
    }

    /// Finds a container process's cgroups and network namespace.
    fn find(&mut self, pid: u32, id: &str, pod_id: Option<&str>) -> Option<Known> {
        use std::io::Read;
        let dir = self.proc.join(pid.to_string());
        self.text.clear();
        std::fs::File::open(dir.join("cgroup"))
            .ok()?
            .read_to_string(&mut self.text)
            .ok()?;
        let cgroups = self.layout.resolve(&self.text, id, pod_id)?;
        let netns = std::fs::metadata(dir.join("ns/net")).ok().map(|m| m.ino());
        Some(Known {
            pid,
            cgroups,
            netns,
        })
    }
}

impl Sampler for CgroupSampler {
    fn sample(&mut self, inventory: &Inventory) -> Sample {
        let mut sample = Sample::new(Instant::now());
        let mut previous = std::mem::take(&mut self.known);
        let mut pods_read: FxHashSet<&str> = FxHashSet::default();
        let mut candidates: Vec<Candidate> = Vec::new();
        for c in inventory.containers() {
            let Some(pid) = c
                .pid
                .filter(|_| matches!(c.state.as_str(), "running" | "paused"))
            else {
                continue;
            };
            let key: Arc<str> = match previous.remove_entry(c.id.as_str()) {
                Some((key, known)) if known.pid == pid => {
                    self.known.insert(key.clone(), known);
                    key
                }
                _ => match self.find(pid, &c.id, c.pod_id.as_deref()) {
                    Some(known) => {
                        let key: Arc<str> = Arc::from(c.id.as_str());
                        self.known.insert(key.clone(), known);
                        key
                    }
                    None => {
                        sample.unreadable += 1;
                        continue;
                    }
                },
            };
            let Some(known) = self.known.get(&key) else {
                continue;
            };
            let usage = match self.reader.container(&known.cgroups.container) {
                Ok(u) => u,
                Err(_) => {
                    // Gone (it exited since the list) or forbidden: find it again next time.
                    self.known.remove(&key);
                    sample.unreadable += 1;
                    continue;
                }
            };
            if let (Some(pod), Some(dirs)) = (c.pod_id.as_deref(), &known.cgroups.pod) {
                if pods_read.insert(pod) {
                    if let Ok(u) = self.reader.pod(dirs) {
                        sample.pods.insert(Arc::from(pod), u);
                    }
                }
            }
            if let Some(netns) = known.netns {
                candidates.push(Candidate {
                    id: &c.id,
                    netns,
                    infra: c.infra,
                    started_at: c.started_at,
                });
            }
            sample.containers.insert(key, usage);
        }
        for owner in netdev::owners(&candidates, self.host_netns) {
            let Some(known) = self.known.get(owner) else {
                continue;
            };
            let dir = self.proc.join(known.pid.to_string());
            if let Ok(text) = self.reader.read(&dir, "net/dev") {
                if let Some(u) = sample.containers.get_mut(owner) {
                    u.network = Some(netdev::parse(text));
                }
            }
        }
        self.reader.end_sample();
        sample
    }
}
