//! The HTTP side: routing, authentication and errors for `/metrics`, `/containers`, `/pods`,
//! `/events`, `/-/healthy`, `/-/ready` and `/`.
//!
//! Owns the router and what every endpoint shares (state, basic auth, JSON errors); each endpoint
//! group has its own file (`scrape`, `api` with its shapes in `json`, `events`, `pages`), content
//! negotiation is in `negotiate` and serving with the shutdown drain in `serve`. Every handler
//! reads the published snapshots (or, for `/events`, the event feed) and nothing else: no
//! handler ever waits for Podman.

mod api;
mod events;
mod json;
pub mod negotiate;
mod pages;
mod scrape;
mod serve;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::snapshot::Engines;
use crate::webconfig::BasicAuth;
pub use serve::{serve, Limits as ServeLimits};

#[derive(Clone)]
struct AppState {
    engines: Engines,
    metrics: Arc<Metrics>,
    scrapes: Arc<scrape::Scrapes>,
    telemetry_path: Arc<str>,
    feed: Feed,
}

/// Builds the router; `telemetry_path` is `--web.telemetry-path`; with `auth`, every endpoint
/// asks for basic-auth credentials; `max_requests` bounds concurrent scrapes (0: no bound);
/// `/events` reads `feed`.
pub fn router(
    engines: Engines,
    metrics: Metrics,
    telemetry_path: &str,
    auth: Option<BasicAuth>,
    max_requests: usize,
    feed: Feed,
) -> Router {
    let state = AppState {
        metrics: Arc::new(metrics),
        scrapes: Arc::new(scrape::Scrapes::new(max_requests)),
        engines,
        telemetry_path: Arc::from(telemetry_path),
        feed,
    };
    let router = Router::new()
        .route("/", get(pages::landing))
        .route(telemetry_path, get(scrape::metrics))
        .route("/containers", get(api::list_containers))
        .route("/containers/{reference}", get(api::one_container))
        .route("/pods", get(api::list_pods))
        .route("/pods/{reference}", get(api::one_pod))
        .route("/events", get(events::events))
        .route("/-/healthy", get(pages::healthy))
        .route("/-/ready", get(pages::ready))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint; see / for the list",
            )
        })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed; use GET",
            )
        })
        .with_state(state);
    match auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, require_auth)),
        None => router,
    }
}

async fn require_auth(
    State(auth): State<BasicAuth>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Cached results answer at once; bcrypt runs one at a time, off the async workers.
    let ok = auth.check(header).await;
    if ok {
        return next.run(req).await;
    }
    let mut resp = error(StatusCode::UNAUTHORIZED, "authentication required");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"sealwatch\""),
    );
    resp
}

/// Every error is JSON: `{"error": "what went wrong and what to do"}`.
fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: String,
    }
    (status, Json(Body { error: msg.into() })).into_response()
}
