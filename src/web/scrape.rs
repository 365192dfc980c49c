//! The `/metrics` handler: bound concurrent scrapes, negotiate, render off the async workers
//! (one render shared by concurrent scrapes), compress, answer.
//!
//! Owns the HTTP side of a scrape (headers, `Vary`, the `--web.max-requests` limit, errors as
//! JSON) and the sharing of renders: a scrape that arrives while a render of the same format and
//! encoding is running waits for that render and answers its body (one `Bytes`, shared, never
//! copied), so a storm of scrapes costs one body, not one per client. A finished render is
//! forgotten at once: the next scrape renders anew, so the own `sealwatch_*` counters and the
//! resource samples are never older than one render's duration, and memory returns to its idle
//! level when the storm ends. Never renders families itself: `metrics` does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use super::negotiate::{accepts_gzip, wants_openmetrics};
use super::{error, AppState};
use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};

/// (OpenMetrics, gzip): what a body depends on besides the moment it was rendered.
type Key = (bool, bool);
/// The body's chunks, in order (kept text shared, not copied).
type Rendered = Result<Arc<[Bytes]>, String>;

/// The scrapes in progress: the `--web.max-requests` limit and the renders being shared.
#[derive(Debug)]
pub struct Scrapes {
    /// `None` for no limit.
    limit: Option<Arc<Semaphore>>,
    max_requests: usize,
    /// The render in progress per key; removed as soon as it is done.
    renders: Mutex<HashMap<Key, Arc<OnceCell<Rendered>>>>,
}

impl Scrapes {
    /// `max_requests` concurrent scrapes, 0 for no limit.
    pub fn new(max_requests: usize) -> Self {
        Self {
            limit: (max_requests > 0).then(|| Arc::new(Semaphore::new(max_requests))),
            max_requests,
            renders: Mutex::new(HashMap::new()),
        }
    }

    fn renders(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<OnceCell<Rendered>>>> {
        self.renders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The body for `key`: the render in progress if there is one, else a new one.
    async fn body(&self, metrics: &Arc<Metrics>, key: Key) -> Rendered {
        let cell = self.renders().entry(key).or_default().clone();
        let result = cell
            .get_or_init(|| render(metrics.clone(), key))
            .await
            .clone();
        let mut renders = self.renders();
        if renders.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            renders.remove(&key);
        }
        result
    }
}

/// One render, on a blocking thread: CPU work proportional to the inventory.
async fn render(metrics: Arc<Metrics>, (openmetrics, gzip): Key) -> Rendered {
    let rendered = tokio::task::spawn_blocking(move || {
        let body = metrics
            .render_body(openmetrics)
            .map_err(|e| format!("cannot render metrics: {e}"))?;
        let chunks: Arc<[Bytes]> = if gzip {
            let gz = body
                .gzip()
                .map_err(|e| format!("cannot compress metrics: {e}"))?;
            Arc::new([Bytes::from(gz)])
        } else {
            body.into_chunks().into()
        };
        crate::allocator::trim_after_churn();
        Ok(chunks)
    })
    .await;
    rendered.unwrap_or_else(|e| Err(format!("metrics renderer failed: {e}")))
}

pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let permit = match &app.scrapes.limit {
        None => None,
        Some(limit) => match limit.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                    "limit of concurrent scrapes reached ({}, --web.max-requests); try again later",
                    app.scrapes.max_requests
                ),
                )
            }
        },
    };
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let openmetrics = wants_openmetrics(header_str(header::ACCEPT));
    let gzip = accepts_gzip(header_str(header::ACCEPT_ENCODING));
    let chunks = match app.scrapes.body(&app.metrics, (openmetrics, gzip)).await {
        Ok(c) => c,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    // The scrape counts against --web.max-requests until its body is sent.
    let body = Body::new(Chunks {
        remaining: chunks.iter().map(Bytes::len).sum(),
        chunks,
        next: 0,
        rest: Bytes::new(),
        _permit: permit,
    });
    let content_type = if openmetrics {
        OPENMETRICS_CONTENT_TYPE
    } else {
        TEXT_CONTENT_TYPE
    };
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    resp.headers_mut().insert(
        header::VARY,
        header::HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if gzip {
        resp.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    resp
}

/// How much of a shared body is handed to the connection at a time.
const CHUNK: usize = 64 * 1024;

/// A shared body handed out in slices (no copies): the connection asks for the next slice only
/// when its write buffer has room, so the body, and with it the scrape's place under
/// `--web.max-requests`, lives until the client has taken nearly all of it, not only until it
/// was queued.
struct Chunks {
    chunks: Arc<[Bytes]>,
    /// The next chunk of `chunks` to hand out after `rest`.
    next: usize,
    /// What is left of the chunk being handed out.
    rest: Bytes,
    /// Bytes not yet handed out.
    remaining: usize,
    _permit: Option<OwnedSemaphorePermit>,
}

impl HttpBody for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        while self.rest.is_empty() {
            let Some(chunk) = self.chunks.get(self.next).cloned() else {
                return std::task::Poll::Ready(None);
            };
            self.next += 1;
            self.rest = chunk;
        }
        let n = self.rest.len().min(CHUNK);
        let chunk = self.rest.split_to(n);
        self.remaining -= n;
        std::task::Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining as u64)
    }
}
