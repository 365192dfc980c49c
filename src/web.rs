//! The HTTP server: `/metrics`, `/containers`, `/pods`, `/-/healthy`, `/-/ready` and `/`.
//!
//! Owns routing, query parsing, JSON shapes and HTTP errors. Every handler reads the published
//! snapshots and nothing else: no handler ever waits for Podman.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::inventory::{pod_state, Container, Pod};
use crate::metrics::{wants_openmetrics, Metrics, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use crate::state::{EngineSnapshot, Engines};
use crate::webconfig::BasicAuth;

#[derive(Clone)]
struct AppState {
    engines: Engines,
    metrics: Arc<Metrics>,
    telemetry_path: Arc<str>,
}

/// Builds the router; `telemetry_path` is `--web.telemetry-path`; with `auth`, every endpoint
/// asks for basic-auth credentials.
pub fn router(engines: Engines, telemetry_path: &str, auth: Option<BasicAuth>) -> Router {
    let state = AppState {
        metrics: Arc::new(Metrics::new(engines.clone())),
        engines,
        telemetry_path: Arc::from(telemetry_path),
    };
    let router = Router::new()
        .route("/", get(landing))
        .route(telemetry_path, get(metrics))
        .route("/containers", get(list_containers))
        .route("/containers/{reference}", get(one_container))
        .route("/pods", get(list_pods))
        .route("/pods/{reference}", get(one_pod))
        .route("/-/healthy", get(|| async { "OK" }))
        .route("/-/ready", get(ready))
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
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // bcrypt is slow by design: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || auth.check(header.as_deref()))
        .await
        .unwrap_or(false);
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

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: String,
    }
    (status, Json(Body { error: msg.into() })).into_response()
}

async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
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

/// True when `Accept-Encoding` lists gzip (or `*`) without `q=0`.
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|part| {
        let mut it = part.split(';').map(str::trim);
        let coding = it.next().unwrap_or_default();
        let refused = it.any(|p| {
            matches!(
                p.replace(' ', "").as_str(),
                "q=0" | "q=0.0" | "q=0.00" | "q=0.000"
            )
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

pub fn gzip_bytes(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(data)?;
    enc.finish()
}

fn rfc3339(nanos: Option<i64>) -> Option<String> {
    nanos.map(|n| {
        chrono::DateTime::from_timestamp_nanos(n).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}

#[derive(Serialize)]
struct PodRef<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct ContainerJson<'a> {
    engine: &'a str,
    id: &'a str,
    name: &'a str,
    image: &'a str,
    state: &'a str,
    pid: Option<u32>,
    pod: Option<PodRef<'a>>,
    infra: bool,
    project: Option<&'a str>,
    labels: &'a BTreeMap<String, String>,
    created_at: Option<String>,
    started_at: Option<String>,
    exited_at: Option<String>,
    exit_code: Option<i64>,
    health: Option<&'a str>,
    restarts: u64,
}

fn container_json<'a>(snap: &'a EngineSnapshot, c: &'a Container) -> ContainerJson<'a> {
    ContainerJson {
        engine: &snap.name,
        id: &c.id,
        name: &c.name,
        image: &c.image,
        state: &c.state,
        pid: c.pid,
        pod: c.pod_id.as_deref().map(|id| PodRef {
            id,
            name: snap.inventory.pod_name(id),
        }),
        infra: c.infra,
        project: c.project(),
        labels: &c.labels,
        created_at: rfc3339(c.created_at),
        started_at: rfc3339(c.started_at),
        exited_at: rfc3339(c.exited_at),
        exit_code: c.exit_code,
        health: c.health.as_deref(),
        restarts: c.restarts,
    }
}

#[derive(Serialize)]
struct PodJson<'a> {
    engine: &'a str,
    id: &'a str,
    name: &'a str,
    state: String,
    infra_id: Option<&'a str>,
    labels: &'a BTreeMap<String, String>,
    created_at: Option<String>,
    containers: BTreeMap<&'a str, usize>,
    container_ids: Vec<&'a str>,
}

/// Each pod's member containers (infra included), from one pass over an engine's containers.
fn pod_members(snap: &EngineSnapshot) -> HashMap<&str, Vec<&Container>> {
    let mut members: HashMap<&str, Vec<&Container>> = HashMap::new();
    for c in snap.inventory.containers() {
        if let Some(p) = c.pod_id.as_deref() {
            members.entry(p).or_default().push(c);
        }
    }
    members
}

fn pod_json<'a>(snap: &'a EngineSnapshot, p: &'a Pod, members: &[&'a Container]) -> PodJson<'a> {
    let mut containers = BTreeMap::new();
    for c in members {
        *containers.entry(c.state.as_str()).or_insert(0) += 1;
    }
    let mut container_ids: Vec<&str> = members.iter().map(|c| c.id.as_str()).collect();
    container_ids.sort_unstable();
    PodJson {
        engine: &snap.name,
        id: &p.id,
        name: &p.name,
        state: pod_state(members.iter().map(|c| c.state.as_str())).to_lowercase(),
        infra_id: p.infra_id.as_deref(),
        labels: &p.labels,
        created_at: rfc3339(p.created_at),
        containers,
        container_ids,
    }
}

/// The filters of `/containers` and `/pods`.
#[derive(Debug, Default)]
struct Filters {
    all: bool,
    pod: Option<String>,
    labels: Vec<(String, Option<String>)>,
    state: Option<String>,
    engine: Option<String>,
}

fn parse_filters(query: Option<&str>, allowed: &[&str]) -> Result<Filters, String> {
    let mut f = Filters::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(format!(
                "unknown query parameter {k:?}; allowed: {}",
                allowed.join(", ")
            ));
        }
        let v = v.into_owned();
        match k.as_ref() {
            "all" => {
                f.all = match v.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("all={v:?}: use true or false")),
                }
            }
            "pod" => f.pod = Some(v).filter(|s| !s.is_empty()),
            "state" => {
                if v.is_empty() {
                    return Err("state= needs a value, e.g. state=running".into());
                }
                f.state = Some(v.to_lowercase());
            }
            "engine" => f.engine = Some(v),
            "label" => {
                let (key, value) = match v.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (v, None),
                };
                if key.is_empty() {
                    return Err("label= needs a key: label=key or label=key=value".into());
                }
                f.labels.push((key, value));
            }
            _ => {}
        }
    }
    Ok(f)
}

fn labels_match(labels: &BTreeMap<String, String>, wanted: &[(String, Option<String>)]) -> bool {
    wanted.iter().all(|(k, v)| match (labels.get(k), v) {
        (Some(_), None) => true,
        (Some(have), Some(want)) => have == want,
        (None, _) => false,
    })
}

fn engine_matches(snap: &EngineSnapshot, f: &Filters) -> bool {
    f.engine.as_deref().is_none_or(|e| *snap.name == *e)
}

async fn list_containers(State(app): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let f = match parse_filters(q.as_deref(), &["all", "pod", "label", "state", "engine"]) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let snaps = app.engines.snapshots();
    let mut out: Vec<ContainerJson> = Vec::new();
    for snap in snaps.iter().filter(|s| engine_matches(s, &f)) {
        for c in snap.inventory.containers() {
            let state_ok = match &f.state {
                Some(s) => c.state == *s,
                // Like `podman ps`, plus paused: what is "up".
                None => f.all || matches!(c.state.as_str(), "running" | "paused"),
            };
            let pod_ok = f.pod.as_deref().is_none_or(|want| {
                c.pod_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with(want) || snap.inventory.pod_name(id) == want)
            });
            if state_ok && pod_ok && labels_match(&c.labels, &f.labels) {
                out.push(container_json(snap, c));
            }
        }
    }
    out.sort_by(|a, b| (a.engine, a.name, a.id).cmp(&(b.engine, b.name, b.id)));
    Json(out).into_response()
}

/// Finds one object by full ID, name, or unique ID prefix across engines.
fn find_one<'a, T>(
    candidates: impl Iterator<Item = (&'a EngineSnapshot, &'a T, &'a str, &'a str)>,
    reference: &str,
    what: &str,
) -> Result<(&'a EngineSnapshot, &'a T), (StatusCode, String)> {
    let mut exact = None;
    let mut prefixed = Vec::new();
    for (snap, obj, id, name) in candidates {
        if id == reference || name == reference {
            exact = Some((snap, obj));
            break;
        }
        if id.starts_with(reference) {
            prefixed.push((snap, obj));
        }
    }
    if let Some(found) = exact {
        return Ok(found);
    }
    match prefixed.len() {
        1 => Ok(prefixed[0]),
        0 => Err((
            StatusCode::NOT_FOUND,
            format!("no {what} with ID or name {reference:?}"),
        )),
        n => Err((
            StatusCode::NOT_FOUND,
            format!("{reference:?} is ambiguous: it prefixes {n} {what} IDs; give more of the ID"),
        )),
    }
}

async fn one_container(State(app): State<AppState>, Path(reference): Path<String>) -> Response {
    let snaps = app.engines.snapshots();
    let all = snaps.iter().flat_map(|s| {
        s.inventory
            .containers()
            .map(move |c| (&**s, &**c, c.id.as_str(), c.name.as_str()))
    });
    match find_one(all, &reference, "container") {
        Ok((snap, c)) => Json(container_json(snap, c)).into_response(),
        Err((status, msg)) => error(status, msg),
    }
}

async fn list_pods(State(app): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let f = match parse_filters(q.as_deref(), &["label", "state", "engine"]) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let snaps = app.engines.snapshots();
    let mut out: Vec<PodJson> = snaps
        .iter()
        .filter(|s| engine_matches(s, &f))
        .flat_map(|s| {
            let members = pod_members(s);
            s.inventory
                .pods()
                .map(|p| pod_json(s, p, members.get(p.id.as_str()).map_or(&[], Vec::as_slice)))
                .collect::<Vec<_>>()
        })
        .filter(|p| f.state.as_deref().is_none_or(|s| p.state == s))
        .filter(|p| labels_match(p.labels, &f.labels))
        .collect();
    out.sort_by(|a, b| (a.engine, a.name).cmp(&(b.engine, b.name)));
    Json(out).into_response()
}

async fn one_pod(State(app): State<AppState>, Path(reference): Path<String>) -> Response {
    let snaps = app.engines.snapshots();
    let all = snaps.iter().flat_map(|s| {
        s.inventory
            .pods()
            .map(move |p| (&**s, &**p, p.id.as_str(), p.name.as_str()))
    });
    match find_one(all, &reference, "pod") {
        Ok((snap, p)) => {
            let members = pod_members(snap);
            let mine = members.get(p.id.as_str()).map_or(&[][..], Vec::as_slice);
            Json(pod_json(snap, p, mine)).into_response()
        }
        Err((status, msg)) => error(status, msg),
    }
}

#[derive(Serialize)]
struct EngineReadiness<'a> {
    engine: &'a str,
    url: &'a str,
    ready: bool,
    reason: Option<&'a str>,
}

async fn ready(State(app): State<AppState>) -> Response {
    let snaps = app.engines.snapshots();
    let engines: Vec<EngineReadiness> = snaps
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

async fn landing(State(app): State<AppState>) -> Html<String> {
    let mut rows = String::new();
    for s in app.engines.snapshots() {
        let state = if s.ready() {
            "ready".to_owned()
        } else {
            s.status.reason.clone().unwrap_or_else(|| "syncing".into())
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            html_escape(&s.name),
            html_escape(&s.url),
            html_escape(s.status.version.as_deref().unwrap_or("-")),
            html_escape(&state),
            s.inventory.container_count(),
            s.inventory.pod_count(),
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
<li><a href="/-/healthy">/-/healthy</a>, <a href="/-/ready">/-/ready</a>: health and readiness</li>
</ul>
<h2>Engines</h2>
<table><tr><th>engine</th><th>URL</th><th>Podman</th><th>state</th><th>containers</th><th>pods</th></tr>
{rows}</table>
</body></html>
"#,
        version = env!("CARGO_PKG_VERSION"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=1.0, *;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
    }

    #[test]
    fn filters_parse_and_reject_unknown_parameters() {
        let f = parse_filters(
            Some("all=true&label=app&label=tier%3Dweb&state=Running"),
            &["all", "label", "state"],
        )
        .unwrap();
        assert!(f.all);
        assert_eq!(
            f.labels,
            vec![("app".into(), None), ("tier".into(), Some("web".into()))]
        );
        assert_eq!(f.state.as_deref(), Some("running"));
        assert!(parse_filters(Some("colour=red"), &["all"])
            .unwrap_err()
            .contains("colour"));
        assert!(parse_filters(Some("all=maybe"), &["all"]).is_err());
        assert!(parse_filters(Some("label="), &["label"]).is_err());
    }
}
