//! The event counters equal what `podman events` reports, also across a Podman restart, on
//! Podman 4.3.1, 5.4.2 and 6.1.1 with file and journald events.
//!
//! Every name, pod and label value of a test holds its own tag. With journald, Podman streams
//! every event in the machine's one journal, also other services' (other tests'): there the
//! comparison is limited to this test's objects and to the series that name them, and the
//! per-type totals of sealwatch must be at least this test's.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::compare::{count, diff, pod_attribution, wait_gauges_match};
use super::{container, str_of, wait_ready, ALLOW, ALLOW_FLAG, CATCH_UP};
use crate::support::{
    wait_until, Engine, Exposition, PodmanService, Run, Sealwatch, Via, BUSYBOX_IMAGE as IMAGE,
};

/// Attribute keys Podman adds on top of a container's labels in `podman events` output.
const RESERVED: &[&str] = &["podId", "image", "name", "containerExitCode"];

/// The four counter families as `podman events --since T0` says they must be.
fn expected_counters(
    events: &[Value],
    allow: &[&str],
) -> BTreeMap<&'static str, BTreeMap<Vec<String>, f64>> {
    let (pod_of, pod_name) = pod_attribution(events);
    let mut out: BTreeMap<&'static str, BTreeMap<Vec<String>, f64>> = BTreeMap::new();
    for e in events {
        let (kind, action) = (str_of(e, "Type"), str_of(e, "Status"));
        count(
            out.entry("podman_events_total").or_default(),
            &[kind, action],
        );
        if kind != "container" {
            continue;
        }
        let pod = pod_of.get(str_of(e, "ID")).map(|p| {
            *pod_name
                .get(p)
                .unwrap_or_else(|| panic!("no name for pod {p}"))
        });
        if let Some(pod) = pod {
            count(
                out.entry("podman_pod_container_events_total").or_default(),
                &[pod, action],
            );
        }
        if let Some(attrs) = e["Attributes"].as_object() {
            for (k, v) in attrs {
                if allow.contains(&k.as_str()) && !RESERVED.contains(&k.as_str()) {
                    count(
                        out.entry("podman_label_container_events_total")
                            .or_default(),
                        &[k, v.as_str().unwrap_or_default(), action],
                    );
                }
            }
        }
        if action == "died" {
            // The CLI leaves out a zero exit code.
            let code = e["ContainerExitCode"].as_i64().unwrap_or(0).to_string();
            count(
                out.entry("podman_container_exits_total").or_default(),
                &[pod.unwrap_or(""), &code],
            );
        }
    }
    out
}

const COUNTER_KEYS: &[(&str, &[&str])] = &[
    ("podman_events_total", &["type", "action"]),
    ("podman_pod_container_events_total", &["pod", "action"]),
    (
        "podman_label_container_events_total",
        &["label", "value", "action"],
    ),
    ("podman_container_exits_total", &["pod", "exit_code"]),
];

/// A tag unique to this test's service, for names and label values.
fn tag_of(svc: &PodmanService) -> String {
    let dir = svc.dir().file_name().unwrap().to_string_lossy().to_string();
    format!("r{}", dir.rsplit('-').next().unwrap()).to_lowercase()
}

/// The events of this test's own objects: pods whose name holds `tag`, containers whose name
/// holds it or that belong to such a pod (infra containers, whose `died` carries no pod).
fn own_events(events: Vec<Value>, tag: &str) -> Vec<Value> {
    let is = |e: &Value, kind: &str| str_of(e, "Type") == kind;
    let pods: BTreeSet<&str> = events
        .iter()
        .filter(|e| is(e, "pod") && str_of(e, "Name").contains(tag))
        .map(|e| str_of(e, "ID"))
        .collect();
    let containers: BTreeSet<&str> = events
        .iter()
        .filter(|e| {
            is(e, "container")
                && (str_of(e, "Name").contains(tag) || pods.contains(str_of(e, "PodID")))
        })
        .map(|e| str_of(e, "ID"))
        .collect();
    let own: Vec<bool> = events
        .iter()
        .map(|e| {
            is(e, "container") && containers.contains(str_of(e, "ID"))
                || is(e, "pod") && pods.contains(str_of(e, "ID"))
        })
        .collect();
    events
        .into_iter()
        .zip(own)
        .filter_map(|(e, own)| own.then_some(e))
        .collect()
}

/// Only the series that name this test's objects (a key part holds `tag`).
fn own_series(map: &BTreeMap<Vec<String>, f64>, tag: &str) -> BTreeMap<Vec<String>, f64> {
    map.iter()
        .filter(|(k, _)| k.iter().any(|p| p.contains(tag)))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Polls until every event counter equals what `podman events --since t0` reports (with
/// journald: for this test's objects; sealwatch's per-type totals at least this test's).
fn wait_counters_match(svc: &PodmanService, sw: &Sealwatch, t0: &str) -> (Exposition, Vec<Value>) {
    let journald = svc.engine().is_journald();
    let tag = tag_of(svc);
    wait_until("event counters equal to podman events", CATCH_UP, || {
        let text = svc.podman(&[
            "events",
            "--stream=false",
            "--since",
            t0,
            "--format",
            "json",
        ]);
        let events: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event line {l:?}: {e}")))
            .collect();
        let events = if journald {
            own_events(events, &tag)
        } else {
            events
        };
        let want = expected_counters(&events, ALLOW);
        let m = sw.scrape();
        let mut d = Vec::new();
        for (family, keys) in COUNTER_KEYS {
            let (want, got) = (
                want.get(family).cloned().unwrap_or_default(),
                m.nonzero_by(family, keys),
            );
            if !journald {
                d.extend(diff(family, &want, &got));
            } else if *family == "podman_events_total" {
                d.extend(want.iter().filter_map(|(k, n)| {
                    let g = got.get(k).copied().unwrap_or(0.0);
                    (g < *n).then(|| format!("{family}{k:?}: this test made {n}, sealwatch {g}"))
                }));
            } else {
                d.extend(diff(
                    family,
                    &own_series(&want, &tag),
                    &own_series(&got, &tag),
                ));
            }
        }
        if d.is_empty() {
            Ok((m, events))
        } else {
            Err(d.join("\n"))
        }
    })
}

/// Now, as `podman events --since` takes it.
fn now_rfc3339_nanos() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Runs a lifecycle script with `podman` through the service, or directly on its storage.
/// `tag` keeps names unique between the phases of one test.
fn lifecycle(svc: &PodmanService, via: Via, tag: &str) {
    let podman = |args: &[&str]| svc.podman_via(via, args);
    let run = |run: Run| svc.podman_via(via, &run.args());
    let own = tag_of(svc);
    let n = |s: &str| format!("{own}-{tag}-{s}");
    let (web, db, shop) = (
        format!("web-{own}"),
        format!("db-{own}"),
        format!("shop-{own}"),
    );
    let (a, x3, pod, m1, m2, px) = (n("a"), n("x3"), n("pod"), n("m1"), n("m2"), n("px3"));
    run(Run::new(IMAGE).name(&a).label("app", &web).sleeping());
    podman(&["stop", "-t", "0", &a]);
    podman(&["start", &a]);
    podman(&["kill", &a]);
    podman(&["restart", "-t", "0", &a]);
    podman(&["pause", &a]);
    podman(&["unpause", &a]);
    podman(&["rm", "-f", "-t", "0", &a]);
    run(Run::new(IMAGE).name(&x3).label("app", &db).sh("exit 3"));
    podman(&["pod", "create", "--name", &pod]);
    // --stop-timeout: `pod stop` of 4.3.1 ignores its own -t and waits this long per container.
    let member = |name: &str| Run::new(IMAGE).pod(&pod).name(name);
    run(member(&m1)
        .stop_timeout(1)
        .label("app", &web)
        .label("io.podman.compose.project", &shop)
        .sleeping());
    run(member(&m2).stop_timeout(1).label("app", &db).sleeping());
    run(member(&px).sh("exit 3"));
    podman(&["pod", "stop", &pod]);
    podman(&["pod", "start", &pod]);
    podman(&["pod", "rm", "-f", &pod]);
    podman(&["rm", "-f", &x3]);
}

/// Every event counter (per type/action, per pod, per label value, per exit code) equals what
/// `podman events --since T0` reports for the window sealwatch ran in.
#[test]
fn event_counters_equal_podman_events() {
    counters_equal(Engine::DEFAULT);
}
on_other_engines!(event_counters_equal_podman_events, counters_equal);

fn counters_equal(engine: Engine) {
    let svc = PodmanService::start_with(engine);
    let t0 = now_rfc3339_nanos();
    let sw = Sealwatch::start(&["--podman.url", &svc.url(), "--labels.allowlist", ALLOW_FLAG]);
    wait_ready(&sw);

    lifecycle(&svc, Via::Service, "one");
    lifecycle(&svc, Via::Service, "two");

    let (m, events) = wait_counters_match(&svc, &sw, &t0);
    assert_covers_the_script(&m, &events);
    wait_gauges_match(&svc, &sw, ALLOW);
}

/// The same equality across a Podman service stop/start with operations while it is down:
/// the replay with `since` fills the gap and nothing is counted twice.
#[test]
fn event_counters_stay_exact_across_a_podman_restart() {
    counters_across_restart(Engine::DEFAULT);
}
on_other_engines!(
    event_counters_stay_exact_across_a_podman_restart,
    counters_across_restart
);

fn counters_across_restart(engine: Engine) {
    let mut svc = PodmanService::start_with(engine);
    let survivor = format!("{}-survivor", tag_of(&svc));
    let t0 = now_rfc3339_nanos();
    let sw = Sealwatch::start(&["--podman.url", &svc.url(), "--labels.allowlist", ALLOW_FLAG]);
    wait_ready(&sw);

    lifecycle(&svc, Via::Service, "before");
    // A container that outlives the outage, stopped while the service is down.
    svc.run(
        &Run::new(IMAGE)
            .name(&survivor)
            .label("app", &format!("web-{}", tag_of(&svc)))
            .sleeping(),
    );
    wait_counters_match(&svc, &sw, &t0);

    svc.stop_service();
    sw.wait_ready(503, CATCH_UP); // sealwatch noticed the outage
    lifecycle(&svc, Via::Storage, "down");
    svc.podman_direct(&["stop", "-t", "0", &survivor]);
    svc.start_service();
    wait_ready(&sw);

    lifecycle(&svc, Via::Service, "after");
    let (m, events) = wait_counters_match(&svc, &sw, &t0);
    assert_covers_the_script(&m, &events);
    assert!(
        m.value("sealwatch_engine_reconnects_total", &[]) >= 1.0,
        "no reconnect was counted"
    );
    // The newest event before the outage is always inside the replay overlap.
    assert!(
        m.value("sealwatch_replayed_duplicate_events_total", &[]) >= 1.0,
        "the replay overlapped nothing, so de-duplication was not exercised"
    );
    let ps = svc.ps_all();
    assert_eq!(str_of(container(&ps, &survivor), "State"), "exited");
    wait_gauges_match(&svc, &sw, ALLOW);
}

/// The script produced what the comparison is meant to prove: pods, labels and exit codes.
fn assert_covers_the_script(m: &Exposition, events: &[Value]) {
    assert!(events.len() > 50, "only {} events", events.len());
    let exits = m.nonzero_by("podman_container_exits_total", &["pod", "exit_code"]);
    assert!(
        exits.keys().any(|k| k[0].is_empty() && k[1] == "3"),
        "{exits:?}"
    );
    assert!(
        exits.keys().any(|k| !k[0].is_empty() && k[1] == "3"),
        "{exits:?}"
    );
    assert!(exits.keys().any(|k| k[1] == "137"), "{exits:?}");
    let pods = m.nonzero_by("podman_pod_container_events_total", &["pod", "action"]);
    assert!(pods.keys().any(|k| k[1] == "died"), "{pods:?}");
    let labels = m.nonzero_by(
        "podman_label_container_events_total",
        &["label", "value", "action"],
    );
    assert!(
        labels.keys().any(|k| k[0] == "io.podman.compose.project"),
        "{labels:?}"
    );
    let types = m.nonzero_by("podman_events_total", &["type", "action"]);
    for (t, a) in [
        ("container", "pause"),
        ("container", "restart"),
        ("container", "kill"),
        ("pod", "remove"),
        ("image", "pull"),
    ] {
        assert!(
            types.contains_key(&vec![t.to_owned(), a.to_owned()]),
            "no {t}/{a}: {types:?}"
        );
    }
}
