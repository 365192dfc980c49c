//! Serving the router over plain HTTP or HTTPS, the limits that keep hostile clients from
//! exhausting the process, and the bounded drain at shutdown.
//!
//! Owns the accept loop, the connection cap (beyond it the longest-idle connection is closed to
//! make room), the TLS handshake timeout, the request-head timeout (which is also the keep-alive
//! idle timeout), the write timeout for clients that stop reading, and each connection's HTTP/1.1
//! session. At shutdown it stops accepting, asks every open connection to finish its current
//! response, and gives them `DRAIN` to do so before it returns (dropping the set aborts the
//! rest). Never routes: `web::router` does.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a TLS client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a whole request head, counted from the moment the
/// connection opens or its previous response was sent: also the keep-alive idle timeout.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write may stay blocked on a client that does not read before the connection is
/// closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections get to finish after shutdown begins. With the watchers' bound
/// and the runtime's this keeps the whole shutdown under 5 s.
const DRAIN: Duration = Duration::from_secs(3);
/// How long a new connection waits for an evicted one to close before it is refused.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections, at least 1.
    pub max_connections: usize,
}

/// One open connection as the accept loop sees it.
#[derive(Debug, Default)]
struct ConnState {
    /// Requests being answered (a response counts until its body is sent or dropped).
    busy: AtomicUsize,
    /// Cancelled to close the connection at once.
    kick: CancellationToken,
}

/// The open connections by age (ids only grow), for evicting the longest-idle one.
#[derive(Debug, Default)]
struct Registry {
    open: Mutex<BTreeMap<u64, Arc<ConnState>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ConnState>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the oldest connection that has no request in progress: a half-sent head, a TLS
    /// handshake or an idle keep-alive. Returns whether there was one.
    fn evict_idle(&self) -> bool {
        let open = self.lock();
        let idle = open
            .values()
            .find(|c| c.busy.load(Ordering::Acquire) == 0 && !c.kick.is_cancelled());
        match idle {
            Some(c) => {
                c.kick.cancel();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Deregister {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// Counts a request as in progress while it lives.
struct Busy(Arc<ConnState>);

impl Busy {
    fn new(conn: &Arc<ConnState>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Self(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains. With `tls`, every
/// connection is HTTPS.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry::default());
    let mut next_id = 0u64;
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections, so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait for some to be freed.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // At the cap: make room by closing the longest-idle connection, never one that
                // is being answered.
                let evicted = registry.evict_idle();
                let wait = tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned());
                match (
                    evicted,
                    tokio::select! { p = wait => p.ok().and_then(Result::ok), _ = shutdown.cancelled() => None },
                ) {
                    (_, Some(p)) => p,
                    (evicted, None) => {
                        tracing::debug!(%peer, evicted, "connection cap ({}) reached; closing the new connection", limits.max_connections);
                        continue;
                    }
                }
            }
        };
        next_id += 1;
        let state = Arc::new(ConnState::default());
        registry.lock().insert(next_id, state.clone());
        let deregister = Deregister {
            registry: registry.clone(),
            id: next_id,
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let _deregister = deregister;
            let kick = state.kick.clone();
            match acceptor {
                None => serve_connection(tcp, app, &shutdown, state).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    let stream = tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        _ = kick.cancelled() => return,
                        _ = shutdown.cancelled() => return,
                    };
                    serve_connection(stream, app, &shutdown, state).await
                }
            }
        });
    }
    let count = connections.len();
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        tracing::debug!("connections still open after {DRAIN:?} (of {count}); closing them");
    }
    connections.abort_all();
}

/// One connection's HTTP/1.1 session; on shutdown it finishes the response in flight and closes;
/// evicted, it closes at once.
async fn serve_connection<S>(
    stream: S,
    app: axum::Router,
    shutdown: &CancellationToken,
    state: Arc<ConnState>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let inner = TowerToHyperService::new(app);
    let conn_state = state.clone();
    let service = hyper::service::service_fn(move |req| {
        let busy = Busy::new(&conn_state);
        let call = hyper::service::Service::call(&inner, req);
        async move {
            let resp = call.await?;
            // The request stays busy until its body is sent (or dropped).
            Ok::<_, std::convert::Infallible>(resp.map(move |body| {
                body.map_frame(move |frame| {
                    let _ = &busy;
                    frame
                })
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(WriteTimeout::new(stream)), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = state.kick.cancelled() => {
            tracing::debug!("closing an idle connection to stay under the connection cap");
            return;
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection ended: {e}");
    }
}

/// A stream whose writes fail with `TimedOut` once one has been blocked for `WRITE_TIMEOUT`: a
/// client that stops reading cannot hold its connection (and the response it pins) forever.
struct WriteTimeout<S> {
    inner: S,
    blocked: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            blocked: None,
        }
    }

    /// Turns a pending write into an error once it has been pending too long.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.blocked = None;
            return polled;
        }
        let sleep = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, polled)
    }
}
