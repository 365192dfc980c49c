//! `/metrics` proven against real components: a private Podman service (4.3.1, 5.4.2, 6.1.1),
//! `podman ps`, `podman pod ps`, `podman events`, `promtool` and a real Prometheus.
//!
//! Every expectation is computed from what Podman itself reports, never hard-coded from what
//! sealwatch happens to print. Waits are bounded polls (`wait_until`), never timing assertions.
//!
//! This file holds what the sections share: asking sealwatch whether it is ready, reading
//! `podman ps`, driving health checks, and the metrics reference in README.md.

pub(crate) mod compare;
mod counters;
mod formats;
mod gauges;
mod labels;
mod prometheus;
mod rotation;

use std::time::Duration;

use serde_json::Value;

use crate::support::{wait_until, PodmanService, Sealwatch};

/// The allowlist of the gauge and exactness tests.
const ALLOW: &[&str] = &["app", "io.podman.compose.project"];
const ALLOW_FLAG: &str = "app,io.podman.compose.project";
/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// Generous bound for sealwatch to catch up with Podman (parallel tests share 2 cores).
const CATCH_UP: Duration = Duration::from_secs(90);

/// Waits (up to a minute) until sealwatch's `/-/ready` answers 200.
fn wait_ready(sw: &Sealwatch) {
    sw.wait_ready(200, Duration::from_secs(60));
}

/// A container's first name in `podman ps --format json`.
fn names(c: &Value) -> String {
    c["Names"][0].as_str().unwrap_or_default().to_owned()
}

/// The string at `key`, or "" when it is absent or not a string.
pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// `healthy`, `unhealthy` or `starting` from `podman ps`'s status text ("Up 3 s (healthy)").
fn ps_health(c: &Value) -> Option<String> {
    let status = str_of(c, "Status");
    let inner = status.strip_suffix(')')?.rsplit_once('(')?.1;
    ["healthy", "unhealthy", "starting"]
        .contains(&inner)
        .then(|| inner.to_owned())
}

/// The container called `name` in `podman ps -a` output; panics with the list when it is not there.
fn container<'a>(ps: &'a Value, name: &str) -> &'a Value {
    ps.as_array()
        .and_then(|a| a.iter().find(|c| names(c) == name))
        .unwrap_or_else(|| panic!("no container {name} in podman ps: {ps:#}"))
}

/// Runs health checks until `podman ps` reports `want`, then one more: Podman 4.3.1's
/// `health_status` event carries the status from before the check it announces.
fn drive_health(svc: &PodmanService, name: &str, want: &str) {
    for _ in 0..8 {
        let _ = svc.try_podman(&["healthcheck", "run", name]);
        if ps_health(container(&svc.ps_all(), name)).as_deref() == Some(want) {
            let _ = svc.try_podman(&["healthcheck", "run", name]);
            return;
        }
    }
    panic!(
        "{name} never became {want}: {:#}",
        container(&svc.ps_all(), name)
    );
}

/// Waits until `podman ps -a` shows container `name` in `state`.
fn wait_state(svc: &PodmanService, name: &str, state: &str) {
    wait_until(&format!("{name} {state}"), CATCH_UP, || {
        let ps = svc.ps_all();
        let got = str_of(container(&ps, name), "State").to_owned();
        if got == state {
            Ok(())
        } else {
            Err(got)
        }
    });
}

/// README.md, whose Metrics section is the metrics reference.
fn metrics_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every ```promql block of the metrics reference.
fn doc_promql_examples() -> Vec<String> {
    let doc = metrics_doc();
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```promql") => current = Some(String::new()),
            (Some(expr), "```") => {
                out.push(expr.trim().to_owned());
                current = None;
            }
            (Some(expr), l) => {
                expr.push_str(l);
                expr.push('\n');
            }
            _ => {}
        }
    }
    out
}
