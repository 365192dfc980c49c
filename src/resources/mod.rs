//! Resource usage per container and per pod: CPU, memory, pids, network, block I/O, OOM kills.
//!
//! Owns the one record every stats source fills (`Usage`), one engine's latest `Sample` of them,
//! and when a sample is taken (`EngineStats`). Sampling is driven by scrapes, not by a free-running
//! timer: `prefetch` takes the next sample shortly before the next scrape is expected, and a
//! scrape that still finds the engine's sample older than `--stats.interval` takes a new one on
//! its (blocking) render thread; scrapes that arrive meanwhile wait for it and share it. When
//! scrapes stop, sampling stops. A source that pushes samples instead (Podman's stats stream) calls
//! `EngineStats::store`. Samples live beside the inventory snapshot, never in it: the inventory
//! stays pure. Never calls Podman.

mod cgroup;
mod netdev;
pub mod prefetch;
mod sampler;
pub mod stream;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rustc_hash::FxHashMap;

use crate::inventory::Inventory;
use crate::podman::Endpoint;
pub use sampler::{CgroupSampler, Host};

/// What one container or pod used, as far as its source reports it; `None` where the source
/// has no such number (or the kernel does not report it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time.
    pub cpu_nanos: Option<u64>,
    pub cpu_system_nanos: Option<u64>,
    /// Memory charged to the cgroup (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_bytes: Option<u64>,
    /// Usage minus inactive file pages, never negative (what cAdvisor and the kubelet call the
    /// working set).
    pub working_set_bytes: Option<u64>,
    /// `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// `None` for a container whose network namespace is counted for another container, or is
    /// the host's.
    pub network: Option<NetworkUsage>,
    pub block_read_bytes: Option<u64>,
    pub block_write_bytes: Option<u64>,
    pub oom_kills: Option<u64>,
}

/// One network namespace's traffic, summed over its interfaces except `lo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkUsage {
    pub receive_bytes: u64,
    pub transmit_bytes: u64,
    pub receive_packets: u64,
    pub transmit_packets: u64,
    pub receive_errors: u64,
    pub transmit_errors: u64,
}

/// One engine's usage numbers at one moment: running containers by full ID, pods by full ID.
#[derive(Debug, Clone)]
pub struct Sample {
    pub taken: Instant,
    pub containers: FxHashMap<Arc<str>, Usage>,
    pub pods: FxHashMap<Arc<str>, Usage>,
    /// Running containers whose numbers could not be read (gone between the list and the read,
    /// or not permitted).
    pub unreadable: u64,
}

impl Sample {
    pub fn new(taken: Instant) -> Self {
        Self {
            taken,
            containers: FxHashMap::default(),
            pods: FxHashMap::default(),
            unreadable: 0,
        }
    }
}

/// Takes a sample on demand (the cgroup source).
pub trait Sampler: Send {
    /// The usage of the running containers of `inventory` and of their pods, now.
    fn sample(&mut self, inventory: &Inventory) -> Sample;
}

/// Where an engine's resource numbers come from, as the `source` label and the landing page say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cgroup,
    Podman,
    Off,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cgroup => "cgroup",
            Source::Podman => "podman",
            Source::Off => "off",
        }
    }
}

/// `--stats.source`: what the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceChoice {
    /// cgroup for a unix-socket engine where a cgroup filesystem is mounted, else Podman's
    /// stats stream.
    Auto,
    Cgroup,
    Podman,
    Off,
}

/// One engine's resource numbers: its source, its latest sample and the sampler behind it.
pub struct EngineStats {
    source: Source,
    /// A scrape reuses a sample younger than this.
    max_age: Duration,
    /// `None` for a source that pushes its samples (or for `Off`).
    sampler: Option<Mutex<Box<dyn Sampler>>>,
    latest: ArcSwapOption<Sample>,
    samples: AtomicU64,
    /// Samples a scrape took itself (none fresh was prefetched).
    scrape_samples: AtomicU64,
    unreadable: AtomicU64,
    /// The "no container readable" warning was logged.
    warned: AtomicBool,
    /// Lines of Podman's stats stream that could not be decoded (skipped).
    stream_decode_errors: AtomicU64,
    /// Times Podman's stats stream failed or ended and was opened again.
    stream_breaks: AtomicU64,
}

impl std::fmt::Debug for EngineStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineStats")
            .field("source", &self.source)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl EngineStats {
    /// No resource families for this engine.
    pub fn off() -> Self {
        Self::new(Source::Off, Duration::ZERO, None)
    }

    /// Sampled on demand by `sampler`, at most every `max_age`.
    pub fn sampled(source: Source, max_age: Duration, sampler: Box<dyn Sampler>) -> Self {
        Self::new(source, max_age, Some(Mutex::new(sampler)))
    }

    /// Filled by a task that calls `store` (a streaming source); a sample older than `max_age`
    /// is not shown (the stream stopped: no numbers rather than frozen ones).
    pub fn pushed(source: Source, max_age: Duration) -> Self {
        Self::new(source, max_age, None)
    }

    fn new(source: Source, max_age: Duration, sampler: Option<Mutex<Box<dyn Sampler>>>) -> Self {
        Self {
            source,
            max_age,
            sampler,
            latest: ArcSwapOption::empty(),
            samples: AtomicU64::new(0),
            scrape_samples: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            stream_decode_errors: AtomicU64::new(0),
            stream_breaks: AtomicU64::new(0),
        }
    }

    /// A line of the stats stream could not be decoded.
    pub fn count_stream_decode_error(&self) {
        self.stream_decode_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The stats stream broke (and is opened again after a backoff).
    pub fn count_stream_break(&self) {
        self.stream_breaks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_decode_errors(&self) -> u64 {
        self.stream_decode_errors.load(Ordering::Relaxed)
    }

    pub fn stream_breaks(&self) -> u64 {
        self.stream_breaks.load(Ordering::Relaxed)
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Samples taken (or stored) since start.
    pub fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// Samples that a scrape took itself because none fresh had been prefetched.
    pub fn scrape_samples(&self) -> u64 {
        self.scrape_samples.load(Ordering::Relaxed)
    }

    /// Whether this engine's samples are taken on demand (and can be prefetched).
    pub fn is_sampled(&self) -> bool {
        self.sampler.is_some()
    }

    /// Reads of running containers that failed since start.
    pub fn unreadable(&self) -> u64 {
        self.unreadable.load(Ordering::Relaxed)
    }

    /// Replaces the latest sample (a pushing source).
    pub fn store(&self, sample: Sample) {
        self.count(&sample);
        self.latest.store(Some(Arc::new(sample)));
    }

    fn count(&self, sample: &Sample) {
        self.samples.fetch_add(1, Ordering::Relaxed);
        self.unreadable
            .fetch_add(sample.unreadable, Ordering::Relaxed);
        if sample.containers.is_empty()
            && sample.unreadable > 0
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                source = self.source.as_str(),
                "no running container's resource usage could be read ({} failed); is sealwatch \
                 in another pid namespace or without access to /proc and the cgroup filesystem? \
                 (logged once)",
                sample.unreadable
            );
        }
    }

    /// The sample a scrape of `inventory` shows: the latest if it is younger than the maximum
    /// age, else a new one taken now on the calling thread (call it off the async workers).
    /// Scrapes that wait while another (or the prefetch) takes a sample use that one.
    pub fn current(&self, inventory: &Inventory) -> Option<Arc<Sample>> {
        let Some(sampler) = &self.sampler else {
            return self
                .latest
                .load_full()
                .filter(|s| s.taken.elapsed() <= self.max_age);
        };
        let asked = Instant::now();
        let fresh = |s: &Sample| s.taken >= asked || s.taken.elapsed() < self.max_age;
        let (sample, took) = self.fresh_or_take(sampler, inventory, fresh);
        if took {
            self.scrape_samples.fetch_add(1, Ordering::Relaxed);
        }
        Some(sample)
    }

    /// Takes, ahead of time, the sample the scrape expected at `expected` will show, unless the
    /// latest one will still be fresh then. Runs on the prefetch thread.
    pub fn prefetch(&self, inventory: &Inventory, expected: Instant) {
        let Some(sampler) = &self.sampler else {
            return;
        };
        self.fresh_or_take(sampler, inventory, |s| s.taken + self.max_age > expected);
    }

    /// The latest sample if `fresh` says so, else a new one (true: this call took it).
    fn fresh_or_take(
        &self,
        sampler: &Mutex<Box<dyn Sampler>>,
        inventory: &Inventory,
        fresh: impl Fn(&Sample) -> bool,
    ) -> (Arc<Sample>, bool) {
        if let Some(s) = self.latest.load_full().filter(|s| fresh(s)) {
            return (s, false);
        }
        let mut sampler = sampler.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.latest.load_full().filter(|s| fresh(s)) {
            return (s, false);
        }
        let sample = sampler.sample(inventory);
        self.count(&sample);
        let sample = Arc::new(sample);
        self.latest.store(Some(sample.clone()));
        (sample, true)
    }
}

/// The stats of one engine as `--stats.source` and the machine allow, with the line to log.
/// `max_age` is `--stats.interval` (the cgroup source), `podman_interval` the stats stream's
/// `--stats.podman-interval`. `Err` is a start-up error (an explicit `cgroup` without a cgroup
/// filesystem).
pub fn choose(
    choice: SourceChoice,
    endpoint: &Endpoint,
    max_age: Duration,
    podman_interval: Duration,
    host: &Host,
) -> Result<(EngineStats, String), String> {
    let cgroup = |why: &str| -> Result<(EngineStats, String), String> {
        let sampler = CgroupSampler::new(host.clone())?;
        let line = format!(
            "resource usage from the cgroup filesystem ({} at {}){why}, sampled by scrapes at \
             most every {:?}",
            sampler.version(),
            host.root().display(),
            max_age
        );
        Ok((
            EngineStats::sampled(Source::Cgroup, max_age, Box::new(sampler)),
            line,
        ))
    };
    let podman = |why: &str| -> (EngineStats, String) {
        (
            EngineStats::pushed(Source::Podman, stream::max_age(podman_interval)),
            format!(
                "resource usage from Podman's stats stream{why}: one request that Podman answers \
                 every {} s (no working set, OOM kills or pod families from this source)",
                podman_interval.as_secs()
            ),
        )
    };
    match choice {
        SourceChoice::Off => Ok((
            EngineStats::off(),
            "resource usage off (--stats.source off)".into(),
        )),
        SourceChoice::Podman => Ok(podman("")),
        SourceChoice::Cgroup => cgroup("").map_err(|e| format!("--stats.source cgroup: {e}")),
        SourceChoice::Auto => match endpoint {
            Endpoint::Tcp(_) => Ok(podman(
                " (auto: a tcp:// engine's containers are not on this machine's cgroup filesystem)",
            )),
            Endpoint::Unix(path) if peer_hidden(path) => Ok(podman(
                " (auto: the socket's owner is in a pid namespace sealwatch cannot see, so its \
                 containers' /proc and cgroup files are not readable from here)",
            )),
            Endpoint::Unix(_) => match cgroup(" (auto: unix socket)") {
                Ok(ok) => Ok(ok),
                Err(e) => Ok(podman(&format!(" (auto: {e})"))),
            },
        },
    }
}

/// Whether the process that listens on the unix socket at `path` is outside sealwatch's view of
/// processes: the kernel reports its pid as 0 when it lives in a pid namespace that is not
/// sealwatch's own or a child of it (sealwatch in a container without `--pid=host`). Then no
/// container process of that Podman is visible in `/proc` either. `false` when the socket cannot
/// be reached now (the watcher reports that) or the credentials cannot be read. Connects and
/// closes: no request is sent.
fn peer_hidden(path: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(stream) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    rc == 0 && cred.pid == 0
}

/// Where the host's `/proc` and mount points are: `/` on a real host, a recorded tree in tests.
impl Host {
    pub fn system() -> Self {
        Host::new(PathBuf::from("/"), PathBuf::from("/proc/self/mountinfo"))
    }
}

#[cfg(test)]
mod tests;
