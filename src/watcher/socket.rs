//! Noticing at once that a unix socket is back, instead of waiting out the backoff.
//!
//! Owns an inotify watch on the socket's directory: after a failed connection the watcher waits
//! for the backoff delay *or* for the socket to accept again, whichever comes first, so that a
//! Podman back after a long outage is seen within milliseconds and an idle wait costs no CPU
//! (no polling timer). Never retries by itself and never sends a request: it only connects.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use inotify::{EventStream, Inotify, WatchMask};

/// A watch on one socket path.
pub struct SocketWatch {
    path: PathBuf,
    name: OsString,
    events: EventStream<[u8; 1024]>,
}

impl SocketWatch {
    /// Watches `path`'s directory for the socket being created, moved in or changed. `None`
    /// where inotify or the directory is not available: the backoff alone then paces retries.
    pub fn new(path: &Path) -> Option<Self> {
        let dir = path.parent()?;
        let name = path.file_name()?.to_owned();
        let inotify = Inotify::init().ok()?;
        inotify
            .watches()
            .add(
                dir,
                WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::ATTRIB,
            )
            .ok()?;
        let events = inotify.into_event_stream([0u8; 1024]).ok()?;
        Some(Self {
            path: path.to_owned(),
            name,
            events,
        })
    }

    /// Returns once the socket accepts a connection: tried at once (it may have come back
    /// before the watch began), then on each change to its directory entry. A server creates
    /// the file when it binds and accepts only once it listens, a moment later, so after a
    /// change the socket is tried a few times over `SETTLE`. Never returns if the watch breaks,
    /// so that the caller's backoff decides.
    pub async fn accepting(&mut self) {
        if self.accepts().await {
            return;
        }
        loop {
            match self.events.next().await {
                Some(Ok(ev)) if ev.name.as_deref() == Some(self.name.as_os_str()) => {
                    for _ in 0..SETTLE_TRIES {
                        if self.accepts().await {
                            return;
                        }
                        tokio::time::sleep(SETTLE / SETTLE_TRIES).await;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => std::future::pending::<()>().await,
            }
        }
    }

    async fn accepts(&self) -> bool {
        tokio::net::UnixStream::connect(&self.path).await.is_ok()
    }
}

/// How long after the socket file appears it may take its server to listen.
const SETTLE: Duration = Duration::from_millis(500);
const SETTLE_TRIES: u32 = 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket bound after the watch began is noticed at once, long before any backoff.
    #[tokio::test]
    async fn a_socket_that_appears_is_noticed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("podman.sock");
        let mut watch = SocketWatch::new(&path).expect("inotify");
        let binder = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                tokio::net::UnixListener::bind(&path).unwrap()
            })
        };
        tokio::time::timeout(Duration::from_secs(10), watch.accepting())
            .await
            .expect("noticed the socket");
        drop(binder.await.unwrap());
    }

    /// A stale socket file that refuses connections is not taken for a live one.
    #[tokio::test]
    async fn a_stale_socket_is_not_accepting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("podman.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let mut watch = SocketWatch::new(&path).expect("inotify");
        let waited = tokio::time::timeout(Duration::from_millis(300), watch.accepting()).await;
        assert!(waited.is_err(), "a refused socket must not count as back");
    }

    /// A socket file that appears a moment before its server listens (bind, then listen) is
    /// tried again until it accepts, not left to the backoff.
    #[tokio::test]
    async fn a_socket_that_listens_after_it_appears_is_noticed() {
        use socket2::{Domain, SockAddr, Socket, Type};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("podman.sock");
        let mut watch = SocketWatch::new(&path).expect("inotify");
        let p = path.clone();
        let server = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let s = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
            s.bind(&SockAddr::unix(&p).unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            s.listen(8).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        tokio::time::timeout(Duration::from_secs(2), watch.accepting())
            .await
            .expect("noticed once it listens");
        server.join().unwrap();
    }
}
