//! Finding every rootless user's Podman socket while sealwatch runs as root.
//!
//! Owns the set of discovered engines: `/run/user/<uid>/podman/podman.sock` of each user, found at
//! start and whenever one appears or goes away (inotify on `/run/user`, on each user's directory
//! and on each `podman` directory; no polling). An engine whose socket went away stays, shown down
//! by its watcher, for the retention, and is then dropped with its series; one that comes back
//! keeps its name (the user's login name, or the UID) for the life of the process. Never talks to
//! Podman: each engine's watcher does, started through the `Fleet`.

pub mod fleet;

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use inotify::{Inotify, WatchMask};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::podman::{login_name, unique_name, Endpoint};

pub use fleet::Fleet;

/// The UIDs whose rootless socket exists under `root` (`/run/user`): directories named by a
/// canonical decimal UID holding `podman/podman.sock` as a socket.
pub fn scan(root: &Path) -> BTreeSet<u32> {
    let Ok(dir) = std::fs::read_dir(root) else {
        return BTreeSet::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            if name.starts_with('0') && name != "0" {
                return None;
            }
            let uid: u32 = name.parse().ok()?;
            let socket = entry.path().join(crate::podman::ROOTLESS_SOCKET_SUFFIX);
            let meta = std::fs::metadata(socket).ok()?;
            meta.file_type().is_socket().then_some(uid)
        })
        .collect()
}

/// What discovery keeps per user it has seen.
#[derive(Debug)]
struct Seen {
    name: String,
    /// When its socket was last seen gone; `None` while it is there.
    gone_since: Option<Instant>,
    /// Whether the engine is in the fleet (false after its retention passed).
    active: bool,
}

/// Watches `/run/user` for rootless sockets and keeps the fleet in step with them.
pub struct Discovery {
    root: PathBuf,
    retention: Duration,
    seen: HashMap<u32, Seen>,
}

impl Discovery {
    /// Discovery below `root` (`/run/user` in production), dropping engines gone for `retention`.
    pub fn new(root: PathBuf, retention: Duration) -> Self {
        Self {
            root,
            retention,
            seen: HashMap::new(),
        }
    }

    /// Reconciles the fleet with the sockets present now.
    fn reconcile(&mut self, fleet: &mut Fleet) {
        let present = scan(&self.root);
        let now = Instant::now();
        for &uid in &present {
            let endpoint = Endpoint::Unix(
                self.root
                    .join(uid.to_string())
                    .join(crate::podman::ROOTLESS_SOCKET_SUFFIX),
            );
            let seen = match self.seen.get_mut(&uid) {
                Some(seen) => seen,
                None => {
                    let derived = login_name(uid).unwrap_or_else(|| uid.to_string());
                    let name = unique_name(derived, |n| fleet.has(n));
                    self.seen.entry(uid).or_insert(Seen {
                        name,
                        gone_since: None,
                        active: false,
                    })
                }
            };
            let back = seen.gone_since.take().is_some();
            if !seen.active || back {
                // New, or back: a fresh watcher connects at once (the old one may be deep in
                // its backoff, or watching a directory that was removed and made again).
                let engine = EngineConfig {
                    name: seen.name.clone(),
                    endpoint: endpoint.clone(),
                };
                match fleet.start(&engine) {
                    Ok(()) => {
                        seen.active = true;
                        tracing::info!(engine = %seen.name, url = %endpoint, "rootless engine found");
                    }
                    Err(e) => tracing::warn!(engine = %seen.name, "cannot watch {endpoint}: {e}"),
                }
            }
        }
        for (uid, seen) in &mut self.seen {
            if seen.active && !present.contains(uid) {
                match seen.gone_since {
                    None => {
                        seen.gone_since = Some(now);
                        tracing::info!(engine = %seen.name, retention = ?self.retention,
                            "rootless socket went away; the engine is dropped after the retention");
                    }
                    Some(since) if now.duration_since(since) >= self.retention => {
                        fleet.remove(&seen.name);
                        seen.active = false;
                        seen.gone_since = None;
                        tracing::info!(engine = %seen.name, "dropped: its socket stayed away");
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// The earliest moment an engine's retention ends, if one is gone.
    fn next_expiry(&self) -> Option<Instant> {
        self.seen
            .values()
            .filter(|s| s.active)
            .filter_map(|s| s.gone_since)
            .min()
            .map(|since| since + self.retention)
    }

    /// Watches until `shutdown`. Where inotify is not available it says so once and checks
    /// again every `FALLBACK_RESCAN`.
    pub async fn run(mut self, mut fleet: Fleet, shutdown: CancellationToken) -> Fleet {
        let mut watch = DirWatch::new();
        loop {
            if let Some(w) = &mut watch {
                w.follow(&self.root);
            }
            self.reconcile(&mut fleet);
            let expiry = self.next_expiry();
            let changed = async {
                match &mut watch {
                    Some(w) => w.changed().await,
                    None => tokio::time::sleep(FALLBACK_RESCAN).await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return fleet,
                _ = changed => {
                    // A user's directory, its `podman` directory and the socket appear in quick
                    // succession: take them in one pass.
                    tokio::time::sleep(SETTLE).await;
                    if let Some(w) = &mut watch {
                        w.drain();
                    }
                }
                _ = sleep_until(expiry) => {}
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long to let a burst of directory changes settle before scanning.
const SETTLE: Duration = Duration::from_millis(50);
/// Without inotify: how often to scan instead.
const FALLBACK_RESCAN: Duration = Duration::from_secs(1);

/// Inotify watches on the runtime root, every user's directory and every `podman` directory.
struct DirWatch {
    events: inotify::EventStream<[u8; 4096]>,
    watched: BTreeSet<PathBuf>,
}

impl DirWatch {
    fn new() -> Option<Self> {
        let events = Inotify::init()
            .and_then(|i| i.into_event_stream([0u8; 4096]))
            .map_err(|e| {
                tracing::warn!("inotify unavailable ({e}); scanning /run/user every second")
            })
            .ok()?;
        Some(Self {
            events,
            watched: BTreeSet::new(),
        })
    }

    /// Adds watches for the root (or its parent while the root does not exist yet) and for
    /// every directory below it that can lead to a socket. Removed directories drop their
    /// watches by themselves (IN_IGNORED).
    fn follow(&mut self, root: &Path) {
        let mask = WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE_SELF
            | WatchMask::ONLYDIR;
        let mut dirs = vec![];
        if root.is_dir() {
            dirs.push(root.to_path_buf());
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                let user = entry.path();
                dirs.push(user.clone());
                let podman = user.join("podman");
                if podman.is_dir() {
                    dirs.push(podman);
                }
            }
        } else if let Some(parent) = root.parent() {
            dirs.push(parent.to_path_buf());
        }
        self.watched.retain(|d| d.is_dir());
        for dir in dirs {
            if !self.watched.contains(&dir) && self.events.watches().add(&dir, mask).is_ok() {
                self.watched.insert(dir);
            }
        }
    }

    /// Returns on the next change (or never, if the stream broke: the expiry timer still runs).
    async fn changed(&mut self) {
        match self.events.next().await {
            Some(Ok(_)) => {}
            _ => std::future::pending().await,
        }
    }

    /// Takes events that are already queued, so that one scan covers them.
    fn drain(&mut self) {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        while let std::task::Poll::Ready(Some(_)) = self.events.poll_next_unpin(&mut cx) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only canonical UID directories holding a socket at podman/podman.sock count.
    #[test]
    fn scan_finds_rootless_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let bind = |uid: &str| {
            let d = root.join(uid).join("podman");
            std::fs::create_dir_all(&d).unwrap();
            std::os::unix::net::UnixListener::bind(d.join("podman.sock")).unwrap()
        };
        let _a = bind("1001");
        let _b = bind("1002");
        let _c = bind("01003");
        std::fs::create_dir_all(root.join("1004/podman")).unwrap();
        std::fs::write(root.join("1004/podman/podman.sock"), "").unwrap();
        std::fs::create_dir_all(root.join("1005")).unwrap();
        assert_eq!(scan(root), BTreeSet::from([1001, 1002]));
        assert!(scan(&root.join("missing")).is_empty());
    }
}
