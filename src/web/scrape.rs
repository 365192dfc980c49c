//! The `/metrics` handler: negotiate, render off the async workers, compress, answer.
//!
//! Owns the HTTP side of a scrape (headers, `Vary`, errors as JSON). Never renders families
//! itself: `metrics` does.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::negotiate::{accepts_gzip, gzip_bytes, wants_openmetrics};
use super::{error, AppState};
use crate::metrics::{OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};

pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let openmetrics = wants_openmetrics(header_str(header::ACCEPT));
    let gzip = accepts_gzip(header_str(header::ACCEPT_ENCODING));
    let metrics = app.metrics.clone();
    // Rendering is CPU work proportional to the inventory: keep it off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let text = metrics.render(openmetrics).map_err(|e| e.to_string())?;
        if gzip {
            gzip_bytes(text.as_bytes()).map_err(|e| e.to_string())
        } else {
            Ok(text.into_bytes())
        }
    })
    .await;
    let body = match rendered {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot render metrics: {e}"),
            )
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("metrics renderer failed: {e}"),
            )
        }
    };
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
