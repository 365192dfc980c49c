//! alerts.yml in a real Prometheus that scrapes a real sealwatch watching a real private Podman:
//! every rule evaluates, and real trouble fires the alerts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use promql_parser::parser;
use serde_json::Value;

use super::{prometheus_dir, REQUIRED_ALERTS};
use crate::support::prometheus::Prometheus;
use crate::support::{wait_until, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE};

/// Metric names selected anywhere in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let parsed = parser::parse(expr).unwrap_or_else(|e| panic!("not PromQL: {e}: {expr}"));
    crate::support::prometheus::metric_names(&parsed).unwrap_or_else(|e| panic!("{e} in {expr}"))
}

/// A private Podman with pod p1 holding a running container, an unhealthy one, one that exited 3
/// and one crash-looping (`--restart always`, exit 1 after a second); sealwatch watching it.
fn scenario() -> (PodmanService, Sealwatch) {
    let svc = PodmanService::start();
    let sw = Sealwatch::start(&["--podman.url", &svc.url()]);
    svc.podman(&["pod", "create", "--name", "p1"]);
    let in_p1 = |name: &str| Run::new(BUSYBOX_IMAGE).pod("p1").name(name);
    svc.run(&in_p1("web").sleeping());
    svc.run(
        &in_p1("sick")
            .health_cmd("test -e /run/ok")
            .health_retries(1)
            .sleeping(),
    );
    svc.run(&in_p1("failed").sh("exit 3"));
    svc.podman(&["wait", "failed"]);
    svc.run(&in_p1("looper").restart("always").sh("sleep 1; exit 1"));
    svc.run(&in_p1("oomer").oom_loop());
    // Podman 4.3.1 reports a health_status event one check late: check twice (both fail).
    for _ in 0..2 {
        let _ = svc.try_podman(&["healthcheck", "run", "sick"]);
    }
    wait_until(
        "sealwatch to see sick unhealthy",
        Duration::from_secs(60),
        || {
            let (_, body) = sw.try_get("/containers/sick")?;
            let c: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            if c["health"] == "unhealthy" {
                Ok(())
            } else {
                Err(format!("health {}", c["health"]))
            }
        },
    );
    (svc, sw)
}

/// Active alerts by name → their label sets (pending or firing), from `/api/v1/alerts`.
fn active_alerts(prom: &Prometheus) -> BTreeMap<String, Vec<Value>> {
    let r = prom.api("/api/v1/alerts");
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for a in r["data"]["alerts"].as_array().into_iter().flatten() {
        let name = a["labels"]["alertname"].as_str().unwrap_or("").to_string();
        out.entry(name).or_default().push(a.clone());
    }
    out
}

/// Waits until alert `name` is pending or firing with all of `labels`; returns that alert.
fn wait_for_alert(prom: &Prometheus, name: &str, labels: &[(&str, &str)]) -> Value {
    let started = Instant::now();
    let a = wait_until(
        &format!("alert {name} {labels:?} to be pending or firing"),
        Duration::from_secs(90),
        || {
            let active = active_alerts(prom);
            active
                .get(name)
                .into_iter()
                .flatten()
                .find(|a| labels.iter().all(|(k, v)| a["labels"][*k] == *v))
                .cloned()
                .ok_or_else(|| format!("active alerts: {:?}", active.keys().collect::<Vec<_>>()))
        },
    );
    for key in ["summary", "description"] {
        let text = a["annotations"][key].as_str().unwrap_or("");
        assert!(
            !text.is_empty() && !text.contains("error expanding template"),
            "{name}: annotation {key} did not render: {text:?}"
        );
    }
    eprintln!(
        "{name} {} after {:?}: {}",
        a["state"],
        started.elapsed(),
        a["annotations"]["summary"]
    );
    a
}

/// alerts.yml in a real Prometheus that scrapes a real sealwatch: every rule evaluates with health
/// "ok", has a severity, a summary and a description, and uses only metrics sealwatch really
/// exports; then real trouble drives the alerts: an unhealthy container, a degraded pod, a
/// crash loop (restarts and non-zero exits), OOM kills, the Podman service going away, and sealwatch itself
/// going away.
#[test]
fn alerts_evaluate_and_fire_against_real_sealwatch() {
    let t0 = Instant::now();
    let (mut svc, mut sw) = scenario();
    // Resource families appear once a sample covers the memory-limited container: wait for
    // that sample rather than reading a scrape taken before it.
    let exported = crate::support::wait_until(
        "a scrape with the memory limit series",
        Duration::from_secs(30),
        || {
            let names = sw.scrape().names();
            if names.contains("podman_container_memory_limit_bytes") {
                Ok(names)
            } else {
                Err("no podman_container_memory_limit_bytes yet".to_owned())
            }
        },
    );

    let rules_file = prometheus_dir().join("alerts.yml");
    let prom = Prometheus::start(&[format!("127.0.0.1:{}", sw.port())], Some(&rules_file));

    // Every rule evaluated at least once, without error.
    let rules: Vec<Value> = wait_until("every rule health ok", Duration::from_secs(60), || {
        let r = prom.api("/api/v1/rules");
        let rules: Vec<Value> = r["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        if rules.is_empty() {
            return Err(format!("no rules loaded: {r}"));
        }
        let not_ok: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{} health {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        if not_ok.is_empty() {
            Ok(rules)
        } else {
            Err(not_ok.join("; "))
        }
    });
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for name in REQUIRED_ALERTS {
        assert!(
            names.contains(name),
            "alerts.yml has no alert {name}: {names:?}"
        );
    }
    for r in &rules {
        let name = r["name"].as_str().unwrap();
        assert_eq!(r["type"], "alerting", "{name}");
        assert!(
            r["labels"]["severity"].is_string(),
            "{name}: no severity label"
        );
        for key in ["summary", "description"] {
            assert!(
                r["annotations"][key].as_str().is_some_and(|s| s.len() > 10),
                "{name}: no {key} annotation"
            );
        }
        let query = r["query"].as_str().unwrap();
        for metric in metric_names(query) {
            assert!(
                metric == "up" || exported.contains(&metric),
                "{name} uses {metric}, which sealwatch does not export: {query}"
            );
        }
    }
    eprintln!("{} rules healthy after {:?}", rules.len(), t0.elapsed());

    // Real trouble, real alerts (pending while their `for:` runs, or firing).
    wait_for_alert(
        &prom,
        "PodmanContainerUnhealthy",
        &[("name", "sick"), ("pod", "p1")],
    );
    wait_for_alert(&prom, "PodmanPodDegraded", &[("pod", "p1")]);
    wait_for_alert(
        &prom,
        "PodmanContainerRestarting",
        &[("name", "looper"), ("pod", "p1")],
    );
    wait_for_alert(
        &prom,
        "PodmanContainerExitsNonZero",
        &[("pod", "p1"), ("exit_code", "1")],
    );
    wait_for_alert(
        &prom,
        "PodmanContainerOOMKilled",
        &[("name", "oomer"), ("pod", "p1")],
    );
    let quiet = active_alerts(&prom);
    for name in [
        "PodmanEngineDown",
        "SealwatchDown",
        "SealwatchTargetMissing",
    ] {
        assert!(
            !quiet.contains_key(name),
            "{name} active while all is well: {:?}",
            quiet[name]
        );
    }

    // The Podman service goes away: sealwatch stays up and reports the engine down.
    svc.stop_service();
    // Given without NAME=, the engine is named after the service's temp dir (its socket is
    // DIR/podman.sock).
    let dir = svc
        .dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    wait_for_alert(&prom, "PodmanEngineDown", &[("engine", dir.as_str())]);
    // sealwatch goes away.
    sw.terminate(Duration::from_secs(10));
    wait_for_alert(&prom, "SealwatchDown", &[("job", "sealwatch")]);
    eprintln!("test took {:?}", t0.elapsed());
}
