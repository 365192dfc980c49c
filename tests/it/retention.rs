//! Bounded series against a real Podman: the per-pod and per-label-value counters of removed
//! pods go after `--metrics.removed-retention` while the engine totals stay exact, and
//! `--labels.max-keys` caps the label keys `--labels.allowlist '*'` lets through.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::support::{wait_until, Exposition, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE};

const CATCH_UP: Duration = Duration::from_secs(30);

/// Now, as `podman events --since` takes it.
fn now_rfc3339_nanos() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// `podman_events_total` as `podman events --since t0` says it must be, by (type, action).
fn podman_event_totals(svc: &PodmanService, t0: &str) -> BTreeMap<Vec<String>, f64> {
    let text = svc.podman(&[
        "events",
        "--stream=false",
        "--since",
        t0,
        "--format",
        "json",
    ]);
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line).unwrap();
        let key = ["Type", "Status"].map(|k| e[k].as_str().unwrap_or_default().to_owned());
        *out.entry(key.to_vec()).or_insert(0.0) += 1.0;
    }
    out
}

/// The `pod` (or `value`) label values of a family's series.
fn label_values(m: &Exposition, family: &str, label: &str) -> BTreeSet<String> {
    m.series(family)
        .filter_map(|s| s.label(label).map(str::to_owned))
        .collect()
}

/// Pods removed stop showing in `podman_pod_container_events_total`,
/// `podman_container_exits_total` and (by their label value) `podman_label_container_events_total`
/// once the retention has passed, after a scrape showed their last value; a live pod's series
/// stay, and `podman_events_total` still equals `podman events`.
#[test]
fn removed_pods_series_go_after_the_retention_and_totals_stay_exact() {
    let svc = PodmanService::start();
    let t0 = now_rfc3339_nanos();
    let sw = Sealwatch::start(&[
        "--podman.url",
        &svc.url(),
        "--labels.allowlist",
        "app",
        "--metrics.removed-retention",
        "3s",
    ]);
    sw.wait_ready(200, Duration::from_secs(60));
    svc.podman(&["pod", "create", "--name", "keep"]);
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("keep-c")
            .pod("keep")
            .label("app", "keep")
            .sleeping(),
    );
    let gone: Vec<String> = (0..3).map(|i| format!("gone-{i}")).collect();
    for pod in &gone {
        svc.podman(&["pod", "create", "--name", pod]);
        let run = Run::new(BUSYBOX_IMAGE)
            .name(&format!("{pod}-c"))
            .pod(pod)
            .label("app", pod)
            .sh("exit 3");
        svc.podman(&run.args());
    }
    wait_until("the gone-* pods' exits are counted", CATCH_UP, || {
        let m = sw.scrape();
        let pods = label_values(&m, "podman_container_exits_total", "pod");
        gone.iter()
            .all(|p| pods.contains(p))
            .then_some(())
            .ok_or(format!("{pods:?}"))
    });
    // Each pod's last value (with its members' and infra container's `remove`) is shown after
    // its removal: the retention is for this.
    for pod in &gone {
        svc.podman(&["pod", "rm", "-f", pod]);
        wait_until(&format!("{pod}'s remove events shown"), CATCH_UP, || {
            let m = sw.scrape();
            let n = m.try_value(
                "podman_pod_container_events_total",
                &[("pod", pod), ("action", "remove")],
            )?;
            (n >= 1.0).then_some(()).ok_or(format!("{n}"))
        });
    }
    let m = wait_until("the gone-* pods' series to go", CATCH_UP, || {
        let m = sw.scrape();
        let mut left = Vec::new();
        for (family, label) in [
            ("podman_pod_container_events_total", "pod"),
            ("podman_container_exits_total", "pod"),
            ("podman_label_container_events_total", "value"),
        ] {
            let values = label_values(&m, family, label);
            left.extend(
                values
                    .into_iter()
                    .filter(|v| v.starts_with("gone-"))
                    .map(|v| format!("{family}{{{label}={v:?}}}")),
            );
        }
        left.is_empty().then_some(m).ok_or(left.join(", "))
    });
    assert!(
        m.value(
            "podman_pod_container_events_total",
            &[("pod", "keep"), ("action", "start")]
        ) >= 1.0,
        "the live pod's series stay"
    );
    assert!(label_values(&m, "podman_label_container_events_total", "value").contains("keep"));
    let want = podman_event_totals(&svc, &t0);
    let got = m.nonzero_by("podman_events_total", &["type", "action"]);
    assert_eq!(got, want, "engine totals stay exact");
}

/// With `--labels.allowlist '*'` and `--labels.max-keys 4`, containers with 30 distinct label
/// keys give at most 4 keys in every per-label family (the rest counted as
/// `label="__other__"`) and at most 4 `label_*` names on `podman_container_labels`.
#[test]
fn label_keys_are_capped_with_allow_all() {
    let svc = PodmanService::start();
    let sw = Sealwatch::start(&[
        "--podman.url",
        &svc.url(),
        "--labels.allowlist",
        "*",
        "--labels.max-keys",
        "4",
    ]);
    sw.wait_ready(200, Duration::from_secs(60));
    for c in 0..3 {
        let run = (0..10).fold(
            Run::new(BUSYBOX_IMAGE).name(&format!("many-{c}")),
            |run, k| run.label(&format!("key-{c}-{k}"), "v"),
        );
        svc.run(&run.sleeping());
    }
    let m = wait_until("the three containers' label counts", CATCH_UP, || {
        let m = sw.scrape();
        let counted = m
            .series("podman_label_containers")
            .filter(|s| s.label("state") == Some("running"))
            .map(|s| s.value)
            .sum::<f64>();
        // Every (container, key) pair is counted once, admitted or folded.
        (counted >= 30.0).then_some(m).ok_or(format!("{counted}"))
    });
    for family in [
        "podman_label_containers",
        "podman_label_container_events_total",
    ] {
        let keys = label_values(&m, family, "label");
        let admitted: Vec<_> = keys.iter().filter(|k| *k != "__other__").collect();
        assert!(admitted.len() <= 4, "{family}: {keys:?}");
        assert!(keys.contains("__other__"), "{family}: {keys:?}");
    }
    let names: BTreeSet<&str> = m
        .series("podman_container_labels")
        .flat_map(|s| s.labels.iter().map(|(k, _)| k.as_str()))
        .filter(|k| k.starts_with("label_"))
        .collect();
    assert!(names.len() <= 4, "{names:?}");
    assert!(!names.is_empty(), "{names:?}");
}

/// One event line in Podman 4.3.1's shape, for the scripted Podman.
fn line(kind: &str, action: &str, id: &str, t: i64, attrs: Value) -> Vec<u8> {
    let ev = serde_json::json!({
        "status": action, "id": id, "Type": kind, "Action": action,
        "Actor": {"ID": id, "Attributes": attrs},
        "scope": "local", "time": t / 1_000_000_000, "timeNano": t
    });
    let mut out = serde_json::to_vec(&ev).unwrap();
    out.push(b'\n');
    out
}

/// 3,000 uniquely named pods, each with a labelled member that starts, dies and is removed with
/// its pod (scripted Podman, 18,000 wire-exact events): the per-pod and per-label-value series
/// they leave all go after the retention, and only the engine totals stay, exact. Prints the
/// series counts before and after.
#[test]
fn three_thousand_removed_pods_leave_only_engine_totals() {
    use crate::support::scripted::{ScriptedPodman, Step};
    const PODS: usize = 3_000;
    // Far in the future, as in `faults`: always after sealwatch's start.
    const T0: i64 = 4_000_000_000_000_000_000;
    let mut body = Vec::new();
    let mut t = T0;
    let mut tick = || {
        t += 1_000;
        t
    };
    for i in 0..PODS {
        let (pod, cid, name) = (
            format!("{i:064x}"),
            format!("{:064x}", i + 1_000_000),
            format!("p-{i}"),
        );
        let member = serde_json::json!({"name": format!("c-{i}"), "podId": pod, "app": name});
        body.extend(line(
            "pod",
            "create",
            &pod,
            tick(),
            serde_json::json!({"name": name}),
        ));
        for action in ["create", "start"] {
            body.extend(line("container", action, &cid, tick(), member.clone()));
        }
        let died =
            serde_json::json!({"name": format!("c-{i}"), "podId": "", "containerExitCode": "1"});
        body.extend(line("container", "died", &cid, tick(), died));
        body.extend(line("container", "remove", &cid, tick(), member));
        body.extend(line(
            "pod",
            "remove",
            &pod,
            tick(),
            serde_json::json!({"name": name}),
        ));
    }
    let mut steps: Vec<Step> = body
        .chunks(64 * 1024)
        .map(|c| Step::Chunk(c.to_vec()))
        .collect();
    steps.push(Step::Hold);
    let podman = ScriptedPodman::start(vec![steps]);
    let sw = Sealwatch::start(&[
        "--podman.url",
        &podman.url(),
        "--labels.allowlist",
        "app",
        // Longer than delivering the 18,000 events takes on a busy machine, so the count
        // before is of every series.
        "--metrics.removed-retention",
        "20s",
    ]);
    let families = [
        "podman_pod_container_events_total",
        "podman_container_exits_total",
        "podman_label_container_events_total",
    ];
    let count =
        |m: &Exposition| -> Vec<usize> { families.iter().map(|f| m.series(f).count()).collect() };
    let events = (PODS * 6) as f64;
    let before = wait_until("every event counted", CATCH_UP, || {
        let m = sw.scrape();
        let n = m.try_sum("podman_events_total").unwrap_or(0.0);
        (n == events).then_some(m).ok_or(format!("{n} of {events}"))
    });
    let before_counts = count(&before);
    let after = wait_until(
        "the removed pods' series to go",
        Duration::from_secs(60),
        || {
            let m = sw.scrape();
            let n = count(&m);
            (n.iter().all(|n| *n == 0))
                .then_some(m)
                .ok_or(format!("{n:?}"))
        },
    );
    println!(
        "{PODS} pods created and removed: {families:?} series {before_counts:?} before the \
         retention, {:?} after; podman_events_total series {} (sum {})",
        count(&after),
        after.series("podman_events_total").count(),
        after.sum("podman_events_total"),
    );
    // Every pod's series before (label values past the default 500 folded into `__other__`).
    assert_eq!(
        before_counts,
        [4 * PODS, PODS, 4 * 500 + 4],
        "every pod's series, before"
    );
    assert_eq!(
        after.sum("podman_events_total"),
        events,
        "engine totals stay exact"
    );
    let died = after.value(
        "podman_events_total",
        &[("type", "container"), ("action", "died")],
    );
    assert_eq!(died, PODS as f64);
}
