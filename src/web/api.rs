//! The JSON API: `/containers`, `/containers/{reference}`, `/pods`, `/pods/{reference}`.
//!
//! Owns query filters (validated, 400 with the name of the bad parameter), lookup by ID, name or
//! unique ID prefix, and ordering. Lists are filtered and serialised on a blocking thread: at
//! tens of thousands of containers that is milliseconds of CPU that would otherwise stall every
//! other request on the async workers (`/-/healthy` included). Reads one set of snapshots per
//! request; never calls Podman.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::json::{ContainerJson, PodJson};
use super::{error, AppState};
use crate::inventory::{Labels, PodIndex};
use crate::snapshot::EngineView;

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

fn labels_match(labels: &Labels, wanted: &[(String, Option<String>)]) -> bool {
    wanted.iter().all(|(k, v)| match (labels.get(k), v) {
        (Some(_), None) => true,
        (Some(have), Some(want)) => have == want,
        (None, _) => false,
    })
}

fn engine_matches(view: &EngineView, f: &Filters) -> bool {
    f.engine.as_deref().is_none_or(|e| *view.name == *e)
}

pub async fn list_containers(State(app): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let f = match parse_filters(q.as_deref(), &["all", "pod", "label", "state", "engine"]) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let views = app.engines.views();
    json_off_workers(move || serde_json::to_vec(&containers(&views, &f))).await
}

/// The containers of `views` that pass `f`, sorted by engine, name and ID.
fn containers<'a>(views: &'a [EngineView], f: &Filters) -> Vec<ContainerJson<'a>> {
    let mut out: Vec<ContainerJson> = Vec::new();
    for view in views.iter().filter(|v| engine_matches(v, f)) {
        for c in view.inventory.containers() {
            let state_ok = match &f.state {
                Some(s) => c.state == *s,
                // Like `podman ps`, plus paused: what is "up".
                None => f.all || matches!(c.state.as_str(), "running" | "paused"),
            };
            let pod_ok = f.pod.as_deref().is_none_or(|want| {
                c.pod_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with(want) || view.inventory.pod_name(id) == want)
            });
            if state_ok && pod_ok && labels_match(&c.labels, &f.labels) {
                out.push(ContainerJson::new(view, c));
            }
        }
    }
    out.sort_by(|a, b| (a.engine, a.name, a.id).cmp(&(b.engine, b.name, b.id)));
    out
}

/// Serialisations of large answers running at once: all cores but one, so that however many
/// clients ask for `/containers` at 50,000 containers, a core stays free for the async workers
/// (health checks, scrapes). Four looping clients on two cores pushed `/-/healthy` to a p99 of
/// 20 ms with one blocking thread per request.
fn serialisers() -> &'static tokio::sync::Semaphore {
    static SERIALISERS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SERIALISERS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// Runs `work` on a blocking thread, one of at most `serialisers()` at a time (others wait
/// their turn on the async side, holding no thread); the error is the response to answer.
pub(super) async fn off_workers<T, F>(work: F) -> Result<T, Response>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Ok(_turn) = serialisers().acquire().await else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down".to_owned(),
        ));
    };
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the serialiser failed: {e}"),
        )
    })
}

/// Runs `serialise` off the async workers (see [`off_workers`]) and answers its JSON.
async fn json_off_workers<F>(serialise: F) -> Response
where
    F: FnOnce() -> serde_json::Result<Vec<u8>> + Send + 'static,
{
    match off_workers(serialise).await {
        Ok(Ok(body)) => (
            [(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialise the answer: {e}"),
        ),
        Err(resp) => resp,
    }
}

/// Every container of `views` (exited ones too), as `/containers?all=true` lists them: the
/// landing page renders exactly this.
pub(super) fn all_containers(views: &[EngineView]) -> Vec<ContainerJson<'_>> {
    containers(
        views,
        &Filters {
            all: true,
            ..Filters::default()
        },
    )
}

/// Every pod of `views`, as `/pods` lists them: the landing page renders exactly this.
pub(super) fn all_pods(views: &[EngineView]) -> Vec<PodJson<'_>> {
    pods(views, &Filters::default())
}

/// The reference of `/containers/{reference}` and `/pods/{reference}`, or the JSON error that
/// says why it could not be read (bad percent-encoding, not UTF-8).
fn reference(path: Result<Path<String>, PathRejection>) -> Result<String, (StatusCode, String)> {
    path.map(|Path(r)| r)
        .map_err(|e| (e.status(), format!("bad path: {}", e.body_text())))
}

/// Finds one object by full ID, name, or unique ID prefix across engines.
fn find_one<'a, T>(
    candidates: impl Iterator<Item = (&'a EngineView, &'a T, &'a str, &'a str)>,
    reference: &str,
    what: &str,
) -> Result<(&'a EngineView, &'a T), (StatusCode, String)> {
    let mut exact = None;
    let mut prefixed = Vec::new();
    for (view, obj, id, name) in candidates {
        if id == reference || name == reference {
            exact = Some((view, obj));
            break;
        }
        if id.starts_with(reference) {
            prefixed.push((view, obj));
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

pub async fn one_container(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let reference = match reference(path) {
        Ok(r) => r,
        Err((status, msg)) => return error(status, msg),
    };
    let views = app.engines.views();
    let all = views.iter().flat_map(|v| {
        v.inventory
            .containers()
            .map(move |c| (v, &**c, c.id.as_str(), c.name.as_str()))
    });
    match find_one(all, &reference, "container") {
        Ok((view, c)) => Json(ContainerJson::new(view, c)).into_response(),
        Err((status, msg)) => error(status, msg),
    }
}

pub async fn list_pods(State(app): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let f = match parse_filters(q.as_deref(), &["label", "state", "engine"]) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let views = app.engines.views();
    json_off_workers(move || serde_json::to_vec(&pods(&views, &f))).await
}

/// The pods of `views` that pass `f`, sorted by engine and name.
fn pods<'a>(views: &'a [EngineView], f: &Filters) -> Vec<PodJson<'a>> {
    let mut out: Vec<PodJson> = views
        .iter()
        .filter(|v| engine_matches(v, f))
        .flat_map(|v| {
            let index = PodIndex::new(&v.inventory);
            v.inventory
                .pods()
                .map(|p| PodJson::new(v, p, index.get(&p.id)))
                .collect::<Vec<_>>()
        })
        .filter(|p| f.state.as_deref().is_none_or(|s| p.state == s))
        .filter(|p| labels_match(p.labels, &f.labels))
        .collect();
    out.sort_by(|a, b| (a.engine, a.name).cmp(&(b.engine, b.name)));
    out
}

pub async fn one_pod(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let reference = match reference(path) {
        Ok(r) => r,
        Err((status, msg)) => return error(status, msg),
    };
    let views = app.engines.views();
    let all = views.iter().flat_map(|v| {
        v.inventory
            .pods()
            .map(move |p| (v, &**p, p.id.as_str(), p.name.as_str()))
    });
    match find_one(all, &reference, "pod") {
        Ok((view, p)) => {
            let index = PodIndex::new(&view.inventory);
            Json(PodJson::new(view, p, index.get(&p.id))).into_response()
        }
        Err((status, msg)) => error(status, msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filters parse, lower-case the state, and reject unknown parameters and bad values.
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
