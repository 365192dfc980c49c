//! The human and orchestration endpoints: the landing page `/`, `/-/healthy` and `/-/ready`.
//!
//! Owns their HTML and JSON. Reads the snapshots only; never calls Podman.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::build_info;

/// `/-/healthy`: the process serves HTTP.
pub async fn healthy() -> &'static str {
    "OK"
}

#[derive(Serialize)]
struct EngineReadiness<'a> {
    engine: &'a str,
    url: &'a str,
    ready: bool,
    reason: Option<&'a str>,
}

pub async fn ready(State(app): State<AppState>) -> Response {
    let views = app.engines.views();
    let engines: Vec<EngineReadiness> = views
        .iter()
        .map(|s| EngineReadiness {
            engine: &s.name,
            url: &s.url,
            ready: s.ready(),
            reason: if s.ready() {
                None
            } else {
                s.status.reason.as_deref().or(Some("syncing"))
            },
        })
        .collect();
    let all_ready = engines.iter().all(|e| e.ready);
    let status = if all_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let not_ready: Vec<&EngineReadiness> = engines.iter().filter(|e| !e.ready).collect();
    let body = serde_json::json!({
        "ready": all_ready,
        "engines": engines,
        "not_ready": not_ready,
    });
    (status, Json(body)).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub async fn landing(State(app): State<AppState>) -> Html<String> {
    let mut rows = String::new();
    for s in app.engines.views() {
        let state = if s.ready() {
            "ready".to_owned()
        } else {
            s.status.reason.clone().unwrap_or_else(|| "syncing".into())
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            html_escape(&s.name),
            html_escape(&s.url),
            html_escape(s.status.version.as_deref().unwrap_or("-")),
            html_escape(&state),
            s.inventory.container_count(),
            s.inventory.pod_count(),
            s.stats.source().as_str(),
        ));
    }
    let path = html_escape(&app.telemetry_path);
    Html(format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>sealwatch</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}</style></head>
<body><h1>sealwatch {version}</h1>
<p>Event-driven Prometheus exporter for Podman.</p>
<ul>
<li><a href="{path}">{path}</a>: metrics</li>
<li><a href="/containers">/containers</a> (<a href="/containers?all=true">all</a>): containers as JSON</li>
<li><a href="/pods">/pods</a>: pods as JSON</li>
<li><a href="/events">/events</a> (<a href="/events?since=10m">last 10 minutes</a>): the live event feed, NDJSON or Server-Sent Events</li>
<li><a href="/-/healthy">/-/healthy</a>, <a href="/-/ready">/-/ready</a>: health and readiness</li>
</ul>
<h2>Engines</h2>
<table><tr><th>engine</th><th>URL</th><th>Podman</th><th>state</th><th>containers</th><th>pods</th><th>resource usage</th></tr>
{rows}</table>
<p>Resource usage: <code>cgroup</code> reads the cgroup filesystem and <code>/proc</code> of this
machine when a scrape finds the last sample older than <code>--stats.interval</code>;
<code>off</code> leaves the resource families out (<code>--stats.source</code>).</p>
</body></html>
"#,
        version = build_info::VERSION,
    ))
}
