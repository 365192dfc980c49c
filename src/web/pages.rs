//! The human and orchestration endpoints: the live page `/`, `/-/healthy` and `/-/ready`.
//!
//! Owns their HTML and JSON. `/` is rendered in full on the server (engines, pods, containers:
//! the rows of `/containers?all=true` and `/pods`), so it works without JavaScript; its script
//! (`page.js`) and style (`page.css`) are compiled into the binary and inlined, no external
//! asset. The script follows `/events` and re-reads `/containers`, `/pods` and `/-/ready` from
//! the same origin (so the browser's basic-auth credentials apply). Every Podman-provided string
//! is HTML-escaped here and set with `textContent` there. Reads the snapshots only; never calls
//! Podman.

use axum::extract::State;
use axum::http::StatusCode;
use std::fmt::Write as _;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::api::{all_containers, all_pods, off_workers};
use super::json::{ContainerJson, PodJson};
use super::AppState;
use crate::build_info;
use crate::inventory::Labels;
use crate::snapshot::EngineView;

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

/// The page's style and script, inlined into every answer of `/`.
const PAGE_CSS: &str = include_str!("page.css");
const PAGE_JS: &str = include_str!("page.js");

/// Escapes `s` for HTML text and for double- or single-quoted attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// The CSS class of a state word: `st-` and its ASCII letters, lower-cased (a hostile state
/// cannot leave the attribute or name another class). `page.js` does the same.
fn state_class(state: &str) -> String {
    let letters: String = state
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("state st-{letters}")
}

/// Labels as one line, `key=value` separated by spaces (the cell's title holds the same text).
fn labels_text(labels: &Labels) -> String {
    let mut out = String::new();
    for (k, v) in labels.iter() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `/`: the live page.
pub async fn landing(State(app): State<AppState>) -> Response {
    let views = app.engines.views();
    let telemetry_path = app.telemetry_path.clone();
    match off_workers(move || render_page(&views, &telemetry_path)).await {
        Ok(html) => (
            [
                (
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("no-cache"),
                ),
            ],
            html,
        )
            .into_response(),
        Err(resp) => resp,
    }
}

/// The whole page for `views`: everything a reader without JavaScript sees.
fn render_page(views: &[EngineView], telemetry_path: &str) -> String {
    let containers = all_containers(views);
    let pods = all_pods(views);
    let mut engine_rows = String::new();
    for s in views {
        let state = if s.ready() {
            "ready".to_owned()
        } else {
            s.status.reason.clone().unwrap_or_else(|| "syncing".into())
        };
        let state_word = if s.ready() { "ready" } else { "down" };
        let name = html_escape(&s.name);
        // Infallible: writing to a String.
        let _ = writeln!(
            engine_rows,
            "<tr data-engine=\"{name}\"><td class=\"e-name\">{name}</td><td class=\"e-url\">{}</td>\
             <td class=\"e-version\">{}</td><td class=\"e-state\"><span class=\"{}\">{}</span></td>\
             <td class=\"e-containers num\">{}</td><td class=\"e-pods num\">{}</td><td class=\"e-stats\">{}</td></tr>",
            html_escape(&s.url),
            html_escape(s.status.version.as_deref().unwrap_or("-")),
            state_class(state_word),
            html_escape(&state),
            s.inventory.container_count(),
            s.inventory.pod_count(),
            s.stats.source().as_str(),
        );
    }
    let mut pod_rows = String::new();
    for p in &pods {
        pod_row(&mut pod_rows, p);
    }
    if pods.is_empty() {
        pod_rows.push_str("<tr class=\"empty\"><td colspan=\"6\">no pods</td></tr>\n");
    }
    let mut container_rows = String::new();
    for c in &containers {
        container_row(&mut container_rows, c);
    }
    if containers.is_empty() {
        container_rows.push_str("<tr class=\"empty\"><td colspan=\"10\">no containers</td></tr>\n");
    }
    let path = html_escape(telemetry_path);
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sealwatch</title>
<style>{PAGE_CSS}</style></head>
<body>
<header><h1>sealwatch <span class="version">{version}</span></h1>
<span id="live" class="live live-static" data-state="static" title="without JavaScript this page shows the state when it was loaded; reload for fresh data"><span class="dot"></span><span class="live-text">static</span></span></header>
<p class="intro">Event-driven Prometheus exporter for Podman. This page follows <a href="/events">/events</a> and updates itself; without JavaScript it shows the state at load time.</p>
<ul class="endpoints">
<li><a href="{path}">{path}</a>: metrics</li>
<li><a href="/containers">/containers</a> (<a href="/containers?all=true">all</a>): containers as JSON</li>
<li><a href="/pods">/pods</a>: pods as JSON</li>
<li><a href="/events">/events</a> (<a href="/events?since=10m">last 10 minutes</a>): the live event feed, NDJSON or Server-Sent Events</li>
<li><a href="/-/healthy">/-/healthy</a>, <a href="/-/ready">/-/ready</a>: health and readiness</li>
</ul>
<h2>Engines</h2>
<table id="engines"><thead><tr><th>engine</th><th>URL</th><th>Podman</th><th>state</th><th>containers</th><th>pods</th><th>resource usage</th></tr></thead>
<tbody>
{engine_rows}</tbody></table>
<h2>Pods <span class="count" id="pod-count">{pod_count}</span></h2>
<table id="pods"><thead><tr><th>engine</th><th>pod</th><th>state</th><th>containers</th><th>labels</th><th>ID</th></tr></thead>
<tbody>
{pod_rows}</tbody></table>
<h2>Containers <span class="count" id="container-count">{container_count}</span></h2>
<table id="containers"><thead><tr><th>engine</th><th>pod</th><th>name</th><th>state</th><th>health</th><th>exit code</th><th>restarts</th><th>image</th><th>labels</th><th>ID</th></tr></thead>
<tbody>
{container_rows}</tbody></table>
<p class="note">Resource usage: <code>cgroup</code> reads the cgroup filesystem and <code>/proc</code> of this
machine when a scrape finds the last sample older than <code>--stats.interval</code>;
<code>podman</code> follows Podman's stats stream; <code>off</code> leaves the resource families
out (<code>--stats.source</code>).</p>
<script>{PAGE_JS}</script>
</body></html>
"#,
        version = html_escape(build_info::VERSION),
        pod_count = pods.len(),
        container_count = containers.len(),
    )
}

/// One row of the pods table; `page.js` builds the same cells from `/pods`.
fn pod_row(out: &mut String, p: &PodJson) {
    let members: Vec<String> = p
        .containers
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    let labels = html_escape(&labels_text(p.labels));
    let _ = writeln!(
        out,
        "<tr data-engine=\"{engine}\" data-id=\"{id}\" data-name=\"{name}\"><td class=\"p-engine\">{engine}</td>\
         <td class=\"p-name\">{name}</td><td class=\"p-state\"><span class=\"{class}\">{state}</span></td>\
         <td class=\"p-members\">{members}</td><td class=\"p-labels labels\" title=\"{labels}\">{labels}</td>\
         <td class=\"p-id id\" title=\"{id}\">{short}</td></tr>",
        engine = html_escape(p.engine),
        id = html_escape(p.id),
        name = html_escape(p.name),
        class = state_class(p.state),
        state = html_escape(p.state),
        members = html_escape(&members.join(", ")),
        short = html_escape(short(p.id)),
    );
}

/// One row of the containers table; `page.js` builds the same cells from `/containers`.
fn container_row(out: &mut String, c: &ContainerJson) {
    let labels = html_escape(&labels_text(c.labels));
    let pod = c.pod.as_ref().map_or("", |p| p.name);
    let infra = if c.infra {
        " <span class=\"tag\">infra</span>"
    } else {
        ""
    };
    let health = match c.health {
        Some(h) => format!(
            "<span class=\"{}\">{}</span>",
            state_class(h),
            html_escape(h)
        ),
        None => String::new(),
    };
    let exit = c.exit_code.map(|e| e.to_string()).unwrap_or_default();
    let exit_class = match c.exit_code {
        Some(0) | None => "c-exit num",
        Some(_) => "c-exit num bad",
    };
    let _ = writeln!(
        out,
        "<tr data-engine=\"{engine}\" data-id=\"{id}\" data-name=\"{name}\"><td class=\"c-engine\">{engine}</td>\
         <td class=\"c-pod\">{pod}</td><td class=\"c-name\"><span class=\"c-name-text\">{name}</span>{infra}</td>\
         <td class=\"c-state\"><span class=\"{class}\">{state}</span></td><td class=\"c-health\">{health}</td>\
         <td class=\"{exit_class}\">{exit}</td><td class=\"c-restarts num\">{restarts}</td>\
         <td class=\"c-image\" title=\"{image}\">{image}</td><td class=\"c-labels labels\" title=\"{labels}\">{labels}</td>\
         <td class=\"c-id id\" title=\"{id}\">{short}</td></tr>",
        engine = html_escape(c.engine),
        id = html_escape(c.id),
        name = html_escape(c.name),
        pod = html_escape(pod),
        class = state_class(c.state),
        state = html_escape(c.state),
        restarts = c.restarts,
        image = html_escape(c.image),
        short = html_escape(short(c.id)),
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::inventory::{Allowlist, Inventory, LabelPolicy};
    use crate::podman::wire::Event;
    use crate::snapshot::{EngineStatus, Engines};

    const HOSTILE: &str = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>&amp;";

    fn event(t: i64, kind: &str, action: &str, id: &str, attrs: serde_json::Value) -> Event {
        serde_json::from_value(json!({
            "Type": kind, "Action": action, "timeNano": t,
            "Actor": {"ID": id, "Attributes": attrs}
        }))
        .unwrap()
    }

    /// An engine whose pod, containers, labels and Podman version are all hostile strings; one
    /// container died with 3.
    fn hostile_views() -> Vec<EngineView> {
        let mut inv = Inventory::new(LabelPolicy::new(Allowlist::parse("app"), 10));
        let t = 1_795_976_300_000_000_000i64;
        let pod = format!("{:064x}", 0xb0d);
        let (a, b) = (format!("{:064x}", 0xa), format!("{:064x}", 0xb));
        inv.apply(&event(t, "pod", "create", &pod, json!({"name": HOSTILE})));
        for (i, id) in [&a, &b].into_iter().enumerate() {
            let attrs = json!({
                "name": format!("{HOSTILE}{i}"),
                "image": HOSTILE,
                "podId": pod,
                "app": HOSTILE,
            });
            inv.apply(&event(t + 1, "container", "create", id, attrs.clone()));
            inv.apply(&event(t + 2, "container", "start", id, attrs));
        }
        let mut died = json!({"name": format!("{HOSTILE}1"), "containerExitCode": "3"});
        died["image"] = json!(HOSTILE);
        inv.apply(&event(t + 3, "container", "died", &b, died));
        let (engines, publishers) = Engines::new(vec![(
            "e\"<i>".into(),
            "unix:///run/<podman>.sock".into(),
            inv.clone(),
        )]);
        publishers[0].publish(
            &EngineStatus {
                connected: true,
                synced: true,
                version: Some(HOSTILE.into()),
                ..EngineStatus::default()
            },
            &inv,
        );
        engines.views()
    }

    /// Every Podman-provided string (pod and container names, images, labels, the version) and
    /// the engine's name and URL are escaped in text and in attributes: the only tags in the page
    /// are the page's own.
    #[test]
    fn hostile_names_and_labels_are_escaped() {
        let html = render_page(&hostile_views(), "/metrics?\"x\"");
        let body = html
            .split_once("<body>")
            .unwrap()
            .1
            .rsplit_once("<script>")
            .unwrap()
            .0;
        assert!(!body.contains("<img"), "{body}");
        assert!(!body.contains("<script"), "{body}");
        assert!(!body.contains("<i>"), "{body}");
        assert!(!body.contains("\"x\""), "{body}");
        let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&gt;&lt;img src=x \
                       onerror=alert(1)&gt;&amp;amp;";
        // Pod name (pods table and the containers' pod cell), names, images, labels, version.
        assert!(body.contains(&format!("<td class=\"p-name\">{escaped}</td>")));
        assert!(body.contains(&format!("<td class=\"c-pod\">{escaped}</td>")));
        assert!(body.contains(&format!("data-name=\"{escaped}0\"")));
        assert!(body.contains(&format!("<span class=\"c-name-text\">{escaped}1</span>")));
        assert!(body.contains(&format!("title=\"{escaped}\">{escaped}</td>")));
        assert!(body.contains(&format!("title=\"app={escaped}\">app={escaped}</td>")));
        assert!(body.contains(&format!("<td class=\"e-version\">{escaped}</td>")));
        assert!(body.contains("data-engine=\"e&quot;&lt;i&gt;\""));
        assert!(body.contains("unix:///run/&lt;podman&gt;.sock"));
        // Every tag in the body is one of the page's own.
        for tag in body.split('<').skip(1) {
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            assert!(
                [
                    "header", "h1", "h2", "span", "p", "a", "ul", "li", "table", "thead", "tbody",
                    "tr", "th", "td", "code"
                ]
                .contains(&name.as_str()),
                "unexpected tag <{tag}"
            );
        }
    }

    /// The server renders what `/containers?all=true` lists: running and exited containers, the
    /// exit code of the dead one marked, states as classes of letters only.
    #[test]
    fn the_table_holds_every_container_with_state_and_exit_code() {
        let html = render_page(&hostile_views(), "/metrics");
        assert!(html.contains("<span class=\"state st-running\">running</span>"));
        assert!(html.contains("<span class=\"state st-exited\">exited</span>"));
        assert!(html.contains("<td class=\"c-exit num bad\">3</td>"));
        assert!(html.contains("<span class=\"state st-ready\">ready</span>"));
        assert!(html.contains("<span class=\"count\" id=\"container-count\">2</span>"));
        assert!(html.contains("<a href=\"/metrics\">/metrics</a>"));
        assert!(html.contains(build_info::VERSION));
        assert_eq!(
            state_class("Run\"ning <x>"),
            "state st-runningx",
            "a state cannot leave its class"
        );
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "the page's own script only"
        );
    }

    /// The page carries its style and script inline: no external asset, no URL of another
    /// origin, and the script writes data as text only.
    #[test]
    fn the_page_needs_no_external_asset() {
        let html = render_page(&[], "/metrics");
        assert!(html.contains(PAGE_JS) && html.contains(PAGE_CSS));
        for needle in [
            "http://", "https://", "//", "src=", "<link", "@import", "url(",
        ] {
            let without_comments = PAGE_JS
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                !without_comments.contains(needle) && !PAGE_CSS.contains(needle),
                "{needle} in the page's assets"
            );
        }
        for needle in ["http://", "https://", "src=", "<link", "@import", "url("] {
            assert!(!html.contains(needle), "{needle} in the page");
        }
        for sink in [
            "innerHTML =",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!PAGE_JS.contains(sink), "{sink}: data is set as text only");
        }
    }
}
