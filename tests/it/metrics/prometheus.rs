//! A real Prometheus scrapes sealwatch, and the reference's PromQL examples run in it.

use std::collections::{BTreeMap, BTreeSet};

use super::compare::wait_gauges_match;
use super::{doc_promql_examples, drive_health, str_of, wait_ready, wait_state, CATCH_UP};
use crate::support::prometheus::{sample_value, Prometheus};
use crate::support::{wait_until, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE as IMAGE};

/// A real Prometheus scraping every second sees `podman_up` 1, a healthy target, and per-pod
/// container counts equal to `podman pod ps`.
#[test]
fn prometheus_scrapes_and_per_pod_counts_match_podman() {
    let svc = PodmanService::start();
    let sw = Sealwatch::start(&["--podman.url", &svc.url()]);
    wait_ready(&sw);
    svc.podman(&["pod", "create", "--name", "alpha"]);
    svc.podman(&["pod", "create", "--name", "beta"]);
    for (pod, name, cmd) in [
        ("alpha", "a1", "sleep 1000"),
        ("alpha", "a2", "sleep 1000"),
        ("alpha", "a3", "exit 3"),
        ("beta", "b1", "sleep 1000"),
    ] {
        svc.run(
            &Run::new(IMAGE)
                .pod(pod)
                .name(name)
                .label("io.podman.compose.project", pod)
                .sh(cmd),
        );
    }
    svc.run(&Run::new(IMAGE).name("loner").health_cmd("true").sleeping());
    // A memory limit, for the README's examples about it.
    svc.run(
        &Run::new(IMAGE)
            .name("limited")
            .opt("--memory=64m")
            .sleeping(),
    );
    drive_health(&svc, "loner", "healthy");
    wait_state(&svc, "a3", "exited");
    wait_gauges_match(&svc, &sw, &["io.podman.compose.project"]);

    // Members per pod by Podman, infra excluded (the contract).
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for p in svc.pod_ps().as_array().unwrap() {
        let infra = str_of(p, "InfraId");
        let members = p["Containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| str_of(c, "Id") != infra)
            .count();
        want.insert(str_of(p, "Name").to_owned(), members as f64);
    }
    assert_eq!(
        want,
        BTreeMap::from([("alpha".into(), 3.0), ("beta".into(), 1.0)])
    );

    let prom = Prometheus::start(&[format!("127.0.0.1:{}", sw.port())], None);
    wait_until("podman_up == 1 in Prometheus", CATCH_UP, || {
        let r = prom.query("podman_up");
        match r.first().map(sample_value) {
            Some(1.0) => Ok(()),
            other => Err(format!("{other:?}\n{}", prom.log())),
        }
    });
    let got: BTreeMap<String, f64> = wait_until("per-pod sums in Prometheus", CATCH_UP, || {
        let got: BTreeMap<String, f64> = prom
            .query("sum by (pod) (podman_pod_containers)")
            .iter()
            .map(|s| {
                (
                    s["metric"]["pod"].as_str().unwrap_or("").to_owned(),
                    sample_value(s),
                )
            })
            .collect();
        if got == want {
            Ok(got)
        } else {
            Err(format!("{got:?}"))
        }
    });
    assert_eq!(got, want);

    // The target is healthy: Prometheus parsed what sealwatch sent without error.
    let targets = prom.api("/api/v1/targets");
    let active = targets["data"]["activeTargets"]
        .as_array()
        .expect("targets");
    assert_eq!(active.len(), 1, "{targets:#}");
    assert_eq!(active[0]["health"], "up", "{targets:#}");
    assert_eq!(active[0]["lastError"], "", "{targets:#}");
    let up = prom.query("up{job=\"sealwatch\"}");
    assert_eq!(up.first().map(sample_value), Some(1.0));
    // The reference's PromQL examples parse, name only metrics sealwatch exports, and run.
    let examples = doc_promql_examples();
    assert!(examples.len() >= 10, "{examples:?}");
    let exported: BTreeSet<String> = sw.scrape().names();
    for expr in &examples {
        promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("podman_") || word.starts_with("sealwatch_") {
                assert!(exported.contains(word), "{expr}: {word} is not exported");
            }
        }
        prom.query(expr);
    }
    assert!(!prom
        .query("sum by (engine, pod) (podman_pod_containers{state=\"running\"})")
        .is_empty());

    // Counters and per-container series made it through as well.
    assert!(!prom.query("podman_events_total").is_empty());
    assert_eq!(
        prom.query("podman_container_exit_code{name=\"a3\",pod=\"alpha\"}")
            .first()
            .map(sample_value),
        Some(3.0)
    );
}
