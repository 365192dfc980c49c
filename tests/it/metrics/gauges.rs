//! The inventory gauges equal `podman ps -a` and `podman pod ps`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::compare::wait_gauges_match;
use super::{container, drive_health, str_of, wait_ready, wait_state, ALLOW, ALLOW_FLAG};
use crate::support::{PodmanService, Run, Sealwatch, BUSYBOX_IMAGE as IMAGE};

/// Per-state, per-pod, per-label and per-container gauges equal `podman ps -a` / `podman pod ps`,
/// both when built from live events and when rebuilt from the lists by a fresh sealwatch.
#[test]
fn gauges_equal_what_podman_ps_and_pod_ps_report() {
    let svc = PodmanService::start();
    let args = ["--podman.url", &svc.url(), "--labels.allowlist", ALLOW_FLAG];
    let live = Sealwatch::start(&args);
    wait_ready(&live);

    let busybox = |name: &str| Run::new(IMAGE).name(name);
    svc.podman(&["pod", "create", "--name", "shop"]);
    for (name, app) in [("shop-web", "web"), ("shop-db", "db")] {
        svc.run(
            &busybox(name)
                .pod("shop")
                .label("app", app)
                .label("io.podman.compose.project", "shop")
                .sleeping(),
        );
    }
    svc.podman(&["pause", "shop-db"]);
    svc.podman(&["pod", "create", "--name", "batch"]);
    svc.run(
        &busybox("batch-job")
            .pod("batch")
            .label("app", "db")
            .sh("exit 3"),
    );
    svc.run(&busybox("web2").label("app", "web").sleeping());
    svc.run(
        &Run::create(IMAGE)
            .name("fresh")
            .label("app", "web")
            .cmd(["true"]),
    );
    svc.run(&busybox("stopped").sleeping());
    svc.podman(&["stop", "-t", "0", "stopped"]);
    for hc in ["hc-ok", "hc-bad"] {
        svc.run(&busybox(hc).health_cmd("test -e /run/ok").sleeping());
    }
    svc.podman(&["exec", "hc-ok", "touch", "/run/ok"]);
    drive_health(&svc, "hc-ok", "healthy");
    drive_health(&svc, "hc-bad", "unhealthy");
    svc.run(&busybox("again").sleeping());
    svc.podman(&["restart", "-t", "0", "again"]);
    wait_state(&svc, "batch-job", "exited");

    let m = wait_gauges_match(&svc, &live, ALLOW);
    // The scenario really covers what it claims to.
    let ps = svc.ps_all();
    let want_states: BTreeSet<&str> = ["running", "paused", "exited", "created"].into();
    let have_states: BTreeSet<String> = m
        .nonzero_by("podman_containers", &["state"])
        .into_keys()
        .map(|k| k[0].clone())
        .collect();
    for s in want_states {
        assert!(
            have_states.contains(s),
            "no {s} container in {have_states:?}"
        );
    }
    let id = |name: &str| str_of(container(&ps, name), "Id")[..12].to_owned();
    assert_eq!(
        m.value(
            "podman_container_exit_code",
            &[("name", "batch-job"), ("pod", "batch")]
        ),
        3.0
    );
    assert_eq!(
        m.value("podman_container_exit_code", &[("name", "stopped")]),
        137.0
    );
    assert_eq!(
        m.value(
            "podman_container_health",
            &[("name", "hc-ok"), ("status", "healthy")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "podman_container_health",
            &[("name", "hc-bad"), ("status", "unhealthy")]
        ),
        1.0
    );
    assert_eq!(
        m.series("podman_container_health").count(),
        2,
        "only healthchecked containers"
    );
    assert_eq!(
        m.nonzero_by("podman_pods", &["state"])
            .get(&vec!["degraded".to_owned()]),
        Some(&2.0)
    );
    // One state per pod, the one `podman pod ps` shows.
    let pod_states: BTreeMap<Vec<String>, f64> = svc
        .pod_ps()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let key = vec![
                str_of(p, "Name").to_owned(),
                str_of(p, "Status").to_lowercase(),
            ];
            (key, 1.0)
        })
        .collect();
    assert_eq!(
        m.nonzero_by("podman_pod_state", &["pod", "state"]),
        pod_states
    );
    // One `podman restart` after a start is one restart; nothing else restarted.
    let restarts = m.nonzero_by("podman_container_restarts_total", &["id", "name"]);
    assert_eq!(
        restarts,
        BTreeMap::from([(vec![id("again"), "again".to_owned()], 1.0)]),
        "restarts"
    );
    // Infra containers: in per-container series, not in the counts.
    let infra: Vec<&Value> = ps
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["IsInfra"] == true)
        .collect();
    assert_eq!(infra.len(), 2);
    for c in infra {
        assert_eq!(
            m.value("podman_container_info", &[("id", &str_of(c, "Id")[..12])]),
            1.0
        );
    }

    // A sealwatch started now knows only the lists; it must agree too.
    let fresh = Sealwatch::start(&args);
    wait_ready(&fresh);
    let m2 = wait_gauges_match(&svc, &fresh, ALLOW);
    assert_eq!(
        m2.nonzero_by("podman_containers", &["state"]),
        m.nonzero_by("podman_containers", &["state"])
    );
}
