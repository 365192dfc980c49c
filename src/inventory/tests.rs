//! Transitions of the inventory, driven by the real events captured from Podman 4.3.1.

use super::*;
use crate::podman::wire::{decode_stream_line, ListContainer, ListPod, StreamItem};

const EVENTS: &str = include_str!("../../tests/fixtures/events.ndjson");
const CONTAINERS: &str = include_str!("../../tests/fixtures/containers-json.json");
const PODS: &str = include_str!("../../tests/fixtures/pods-json.json");
/// Lines 1..=92 of events.ndjson happened before the list fixtures were taken (the rename).
const SNAPSHOT_LINES: usize = 92;
const POD_ID: &str = "7ddad7e04880ea4a9da9bf5f139cc2c71ce3bb35a23fefa0023d9e0f9cef1e92";

fn events() -> Vec<Event> {
    EVENTS
        .lines()
        .map(|l| match decode_stream_line(l.as_bytes()).unwrap() {
            StreamItem::Event(e) => *e,
            StreamItem::Error(e) => panic!("error object in fixture: {e:?}"),
        })
        .collect()
}

fn list_containers() -> Vec<ListContainer> {
    serde_json::from_str(CONTAINERS).unwrap()
}

fn list_pods() -> Vec<ListPod> {
    serde_json::from_str(PODS).unwrap()
}

fn inventory() -> Inventory {
    Inventory::new(LabelPolicy::new(Allowlist::parse("app,role"), 500))
}

fn replay(inv: &mut Inventory, evs: &[Event]) {
    for e in evs {
        inv.apply(e);
    }
}

/// id, name, state, pod, infra, exit code, health.
type Essence = (
    String,
    String,
    String,
    Option<String>,
    bool,
    Option<i64>,
    Option<String>,
);

/// The comparable essence of a container: what `podman ps -a` shows.
fn essence(c: &Container) -> Essence {
    (
        c.id.to_string(),
        c.name.to_string(),
        c.state.to_string(),
        c.pod_id.as_deref().map(str::to_owned),
        c.infra,
        c.exit_code,
        c.health.as_deref().map(str::to_owned),
    )
}

fn essences(inv: &Inventory) -> Vec<Essence> {
    let mut v: Vec<_> = inv.containers().map(|c| essence(c)).collect();
    v.sort();
    v
}

#[test]
fn events_alone_rebuild_the_listed_containers_at_the_snapshot_point() {
    let evs = events();
    let mut from_events = inventory();
    replay(&mut from_events, &evs[..SNAPSHOT_LINES]);
    let mut from_list = inventory();
    from_list.resync(list_containers(), list_pods(), i64::MIN);
    assert_eq!(from_list.container_count(), 8);
    assert_eq!(essences(&from_events), essences(&from_list));
}

#[test]
fn the_pod_from_events_matches_the_listed_pod() {
    let evs = events();
    let mut inv = inventory();
    replay(&mut inv, &evs[..SNAPSHOT_LINES]);
    let listed = &list_pods()[0];
    let pod = inv.pod(POD_ID).expect("pod created by events");
    assert_eq!(pod.name, listed.name);
    assert_eq!(pod.infra_id.as_deref(), Some(listed.infra_id.as_str()));
    let state = PodIndex::new(&inv).state(POD_ID);
    assert_eq!(state.as_str(), listed.status.to_lowercase());
}

#[test]
fn everything_is_gone_after_the_removals_and_counters_count_every_line() {
    let evs = events();
    let mut inv = inventory();
    replay(&mut inv, &evs);
    assert_eq!(inv.container_count(), 0, "all rx containers were removed");
    assert_eq!(inv.pod_count(), 0);
    assert_eq!(inv.counters().total_events(), evs.len() as u64);
    let died = evs.iter().filter(|e| e.action() == "died").count() as u64;
    assert_eq!(
        inv.counters().events.get(&("container", "died")),
        Some(&died)
    );
    assert_eq!(inv.counters().container_exits.values().sum::<u64>(), died);
}

#[test]
fn died_events_are_attributed_to_the_pod_from_the_inventory() {
    let evs = events();
    let mut inv = inventory();
    replay(&mut inv, &evs);
    // rx-member and the infra container died 3 times each (pod stop, pod kill); none carried podId.
    let pod_died = inv
        .counters()
        .pod_container_events
        .get(&(Arc::from(POD_ID), "died"))
        .copied();
    let in_fixture = evs
        .iter()
        .filter(|e| e.action() == "died")
        .filter(|e| ["rx-member", "7ddad7e04880-infra"].contains(&e.attr("name").unwrap_or("")))
        .count() as u64;
    assert!(in_fixture >= 2);
    assert_eq!(pod_died, Some(in_fixture));
    assert_eq!(
        inv.pod_name(POD_ID),
        "rx-pod",
        "name survives the pod's removal"
    );
}

#[test]
fn exits_are_counted_by_exit_code() {
    let evs = events();
    let mut inv = inventory();
    replay(&mut inv, &evs);
    let exits = &inv.counters().container_exits;
    assert_eq!(exits.get(&(None, Arc::from("3"))), Some(&1), "rx-exited");
    assert!(
        exits.get(&(None, Arc::from("137"))).copied().unwrap_or(0) >= 2,
        "stop and kill of rx-plain"
    );
}

#[test]
fn restarts_count_starts_after_a_death() {
    let evs = events();
    let mut inv = inventory();
    replay(&mut inv, &evs[..SNAPSHOT_LINES]);
    let plain = inv.containers().find(|c| c.name == "rx-plain").unwrap();
    // stop+start, restart, kill+start: three starts after a death.
    assert_eq!(plain.restarts, 3);
    let created = inv.containers().find(|c| c.name == "rx-created").unwrap();
    assert_eq!(created.restarts, 0);
}

#[test]
fn a_resync_changes_state_but_never_counters() {
    let evs = events();
    let mut inv = inventory();
    replay(&mut inv, &evs[..SNAPSHOT_LINES]);
    let before = inv.counters().clone();
    let restarts_before = inv
        .containers()
        .find(|c| c.name == "rx-plain")
        .unwrap()
        .restarts;
    inv.resync(list_containers(), list_pods(), i64::MIN);
    assert_eq!(inv.counters().events, before.events);
    assert_eq!(
        inv.counters().label_container_events,
        before.label_container_events
    );
    let plain = inv.containers().find(|c| c.name == "rx-plain").unwrap();
    assert_eq!(
        plain.restarts, restarts_before,
        "restart counts survive a resync"
    );
    assert_eq!(plain.pid, Some(10281), "the list brings the pid");

    inv.resync(vec![], vec![], i64::MIN);
    assert_eq!(
        inv.container_count(),
        0,
        "containers gone while disconnected disappear"
    );
    assert_eq!(inv.counters().events, before.events);
}

#[test]
fn events_applied_over_a_later_list_converge_to_the_list() {
    // The watcher lists, then applies events that may already be reflected in the list.
    let evs = events();
    let mut inv = inventory();
    inv.resync(list_containers(), list_pods(), i64::MIN);
    let listed = essences(&inv);
    replay(&mut inv, &evs[SNAPSHOT_LINES - 10..SNAPSHOT_LINES]);
    assert_eq!(essences(&inv), listed);
}

#[test]
fn label_counters_use_allowlisted_keys_only() {
    let evs = events();
    let mut inv = inventory();
    replay(&mut inv, &evs);
    let keys: std::collections::BTreeSet<&str> = inv
        .counters()
        .label_container_events
        .keys()
        .map(|(k, _, _)| &**k)
        .collect();
    assert_eq!(keys, ["app", "role"].into_iter().collect());
    let app_rx_died = inv
        .counters()
        .label_container_events
        .get(&(Arc::from("app"), Arc::from("rx"), "died"))
        .copied();
    let expected = evs
        .iter()
        .filter(|e| e.action() == "died" && e.attr("app") == Some("rx"))
        .count() as u64;
    assert_eq!(app_rx_died, Some(expected));
}

#[test]
fn reserved_attributes_are_not_labels_even_with_allow_all() {
    let mut inv = Inventory::new(LabelPolicy::new(Allowlist::All, 500));
    replay(&mut inv, &events()[..1]);
    let c = inv.containers().next().unwrap();
    assert_eq!(c.labels.keys().collect::<Vec<_>>(), ["app", "tier"]);
}

#[test]
fn health_follows_health_status_events() {
    let evs = events();
    let mut inv = inventory();
    let mut seen = vec![];
    for e in &evs[..SNAPSHOT_LINES] {
        inv.apply(e);
        if e.action() == "health_status" {
            let c = inv.container(e.id()).unwrap();
            seen.push(c.health.as_deref().unwrap().to_owned());
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("healthy"));
    assert!(seen.iter().any(|h| h == "unhealthy"));
}

#[test]
fn unknown_container_start_is_inserted_from_attributes_and_unknown_died_is_ignored() {
    let mut inv = inventory();
    let ev = |action: &str| -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": "container", "Action": action, "timeNano": 5,
            "Actor": {"ID": "f".repeat(64), "Attributes": {"name": "late", "image": "img", "app": "x"}}
        }))
        .unwrap()
    };
    inv.apply(&ev("died"));
    assert_eq!(inv.container_count(), 0);
    inv.apply(&ev("start"));
    let c = inv.container(&"f".repeat(64)).unwrap();
    assert_eq!(
        (c.name.as_str(), c.state.as_str(), c.image.as_str()),
        ("late", "running", "img")
    );
    inv.apply(&ev("rename"));
    inv.apply(&ev("remove"));
    assert_eq!(inv.container_count(), 0);
    assert_eq!(inv.counters().total_events(), 4);
}

#[test]
fn publishing_a_snapshot_does_not_see_later_changes() {
    let evs = events();
    let mut inv = inventory();
    replay(&mut inv, &evs[..10]);
    let snapshot = inv.clone();
    replay(&mut inv, &evs[10..]);
    assert_ne!(
        snapshot.counters().total_events(),
        inv.counters().total_events()
    );
    assert_eq!(snapshot.counters().total_events(), 10);
}

#[test]
fn replaying_create_init_start_over_a_list_keeps_the_listed_pid() {
    let evs = events();
    let mut inv = inventory();
    inv.resync(list_containers(), list_pods(), i64::MIN);
    let plain_id = "c16d4af1a5bda3c7f9e60255fc0bc6bd4cdd5cdb9c2f8dc4ed801ffdd00776b3";
    // create, init, start of rx-plain: the first, third and fourth lines.
    for i in [0, 2, 3] {
        inv.apply(&evs[i]);
    }
    let c = inv.container(plain_id).unwrap();
    assert_eq!((c.state.as_str(), c.pid), ("running", Some(10281)));
}

#[test]
fn a_start_resets_a_known_health_to_starting_as_podman_does() {
    let mut inv = inventory();
    let ev = |action: &str, t: i64, health: Option<&str>| -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": "container", "Action": action, "timeNano": t, "HealthStatus": health,
            "Actor": {"ID": "h", "Attributes": {"name": "h"}}
        }))
        .unwrap()
    };
    inv.apply(&ev("start", 1, None));
    assert_eq!(
        inv.container("h").unwrap().health,
        None,
        "no healthcheck known yet"
    );
    inv.apply(&ev("health_status", 2, Some("healthy")));
    inv.apply(&ev("died", 3, None));
    inv.apply(&ev("start", 4, None));
    assert_eq!(
        inv.container("h").unwrap().health.as_deref(),
        Some("starting")
    );
}

/// Retention of removed objects' counters (`retention`): helpers.
mod retention {
    use super::*;

    const SEC: i64 = 1_000_000_000;
    const RETENTION: std::time::Duration = std::time::Duration::from_secs(60);

    fn inventory(allow: &str, max_values: usize, max_keys: usize) -> Inventory {
        Inventory::new(
            LabelPolicy::new(Allowlist::parse(allow), max_values).with_max_keys(max_keys),
        )
        .with_removed_retention(RETENTION)
    }

    fn ev(kind: &str, action: &str, id: &str, attrs: serde_json::Value) -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": kind, "Action": action, "timeNano": 1,
            "Actor": {"ID": id, "Attributes": attrs}
        }))
        .unwrap()
    }

    /// A pod `pod_id` named `name` with one member `cid` (labels `labels`) created, started,
    /// died with code 3; removed too when `remove`.
    fn pod_life(inv: &mut Inventory, pod_id: &str, name: &str, cid: &str, remove: bool) {
        let member = serde_json::json!({"name": cid, "podId": pod_id, "app": name});
        inv.apply(&ev(
            "pod",
            "create",
            pod_id,
            serde_json::json!({"name": name}),
        ));
        inv.apply(&ev("container", "create", cid, member.clone()));
        inv.apply(&ev("container", "start", cid, member.clone()));
        let died = serde_json::json!({"name": cid, "podId": "", "containerExitCode": "3"});
        inv.apply(&ev("container", "died", cid, died));
        if remove {
            inv.apply(&ev("container", "remove", cid, member));
            inv.apply(&ev(
                "pod",
                "remove",
                pod_id,
                serde_json::json!({"name": name}),
            ));
        }
    }

    /// The per-pod series as shown: (pod name, action or exit code) to count.
    fn by_pod_name(inv: &Inventory) -> std::collections::BTreeMap<(String, String), u64> {
        let mut out = std::collections::BTreeMap::new();
        let c = inv.counters();
        for ((p, a), n) in c.pod_container_events.iter() {
            *out.entry((inv.pod_name(p).to_owned(), a.to_string()))
                .or_insert(0) += n;
        }
        for ((p, code), n) in c.container_exits.iter() {
            if let Some(p) = p {
                *out.entry((inv.pod_name(p).to_owned(), format!("exit {code}")))
                    .or_insert(0) += n;
            }
        }
        out
    }

    fn pods_shown(inv: &Inventory) -> std::collections::BTreeSet<String> {
        by_pod_name(inv).into_keys().map(|(p, _)| p).collect()
    }

    /// A removed pod's counters stay for the retention after a sweep first finds it gone, then
    /// go (with its remembered name); a live pod's and the engine totals never go.
    #[test]
    fn a_removed_pods_counters_are_kept_for_the_retention_then_dropped() {
        let mut inv = inventory("app", 500, 256);
        pod_life(&mut inv, "p-gone", "gone", "c1", true);
        pod_life(&mut inv, "p-live", "live", "c2", false);
        let totals = inv.counters().events.clone();
        let t0 = 1_000 * SEC;
        assert!(!inv.sweep(t0), "the first sweep only marks");
        assert!(!inv.sweep(t0 + 59 * SEC), "kept before the retention");
        assert_eq!(pods_shown(&inv), ["gone", "live"].map(String::from).into());
        assert!(inv.sweep(t0 + 60 * SEC), "dropped at the retention");
        assert_eq!(pods_shown(&inv), ["live"].map(String::from).into());
        assert_eq!(by_pod_name(&inv)[&("live".into(), "exit 3".into())], 1);
        assert_eq!(
            inv.pod_name("p-gone"),
            short_id("p-gone"),
            "its name is forgotten"
        );
        assert_eq!(inv.counters().events, totals, "engine totals stay exact");
        assert!(!inv.sweep(t0 + 3600 * SEC), "the live pod stays");
        assert_eq!(pods_shown(&inv), ["live"].map(String::from).into());
    }

    /// An event counted for a pod that is gone (a late member event) restarts its retention.
    #[test]
    fn an_event_for_a_removed_pod_restarts_its_retention() {
        let mut inv = inventory("none", 500, 256);
        pod_life(&mut inv, "p1", "p", "c1", true);
        let t0 = 1_000 * SEC;
        inv.sweep(t0);
        inv.apply(&ev(
            "container",
            "cleanup",
            "c-late",
            serde_json::json!({"name": "late", "podId": "p1"}),
        ));
        assert!(!inv.sweep(t0 + 60 * SEC), "marked again, not dropped");
        assert!(pods_shown(&inv).contains("p"));
        assert!(!inv.sweep(t0 + 119 * SEC));
        assert!(inv.sweep(t0 + 120 * SEC));
        assert!(pods_shown(&inv).is_empty());
    }

    /// A pod created again with the same name (a new ID) while the old one's counters are kept
    /// continues the same series, which is kept while the new pod lives (it never goes down);
    /// once both are gone for the retention the series goes, and a third pod of that name
    /// starts a new series from 0.
    #[test]
    fn a_pod_that_comes_back_with_the_same_name_continues_its_series() {
        let mut inv = inventory("app", 500, 256);
        pod_life(&mut inv, "p-old", "web", "c1", true);
        let t0 = 1_000 * SEC;
        inv.sweep(t0);
        pod_life(&mut inv, "p-new", "web", "c2", false);
        assert_eq!(by_pod_name(&inv)[&("web".into(), "start".into())], 2);
        assert!(
            !inv.sweep(t0 + 600 * SEC),
            "the name is live: nothing drops"
        );
        assert_eq!(by_pod_name(&inv)[&("web".into(), "start".into())], 2);
        inv.apply(&ev(
            "container",
            "remove",
            "c2",
            serde_json::json!({"name": "c2", "podId": "p-new"}),
        ));
        inv.apply(&ev(
            "pod",
            "remove",
            "p-new",
            serde_json::json!({"name": "web"}),
        ));
        assert!(!inv.sweep(t0 + 601 * SEC), "p-new was only just marked");
        assert!(!inv.sweep(t0 + 660 * SEC), "p-new was last seen 59 s ago");
        assert!(inv.sweep(t0 + 661 * SEC));
        assert!(pods_shown(&inv).is_empty());
        pod_life(&mut inv, "p-third", "web", "c3", false);
        assert_eq!(by_pod_name(&inv)[&("web".into(), "start".into())], 1);
    }

    /// A resync that no longer lists a pod (removed while sealwatch was away) starts its
    /// retention like a `remove` event; exits outside any pod are engine-level and never go.
    #[test]
    fn pods_gone_by_a_resync_are_dropped_and_podless_exits_stay() {
        let mut inv = inventory("app", 500, 256);
        pod_life(&mut inv, "p1", "p", "c1", false);
        let died = serde_json::json!({"name": "solo", "containerExitCode": "1"});
        inv.apply(&ev(
            "container",
            "create",
            "solo",
            serde_json::json!({"name": "solo"}),
        ));
        inv.apply(&ev("container", "died", "solo", died));
        inv.apply(&ev(
            "container",
            "remove",
            "solo",
            serde_json::json!({"name": "solo"}),
        ));
        inv.resync(vec![], vec![], 0);
        let t0 = 1_000 * SEC;
        inv.sweep(t0);
        assert!(inv.sweep(t0 + 60 * SEC));
        assert!(pods_shown(&inv).is_empty());
        let exits = &inv.counters().container_exits;
        assert_eq!(exits.get(&(None, Arc::from("1"))), Some(&1));
        assert_eq!(exits.len(), 1);
    }

    /// A label value no container has any more is dropped from the label counters after the
    /// retention and frees its place under `--labels.max-values`; a value a container still has
    /// stays, and so does `__other__` while its key lives.
    #[test]
    fn a_removed_label_value_is_dropped_and_frees_its_place() {
        let mut inv = inventory("app", 2, 256);
        pod_life(&mut inv, "p1", "a", "c1", true);
        pod_life(&mut inv, "p2", "b", "c2", false);
        pod_life(&mut inv, "p3", "c", "c3", false);
        let values = |inv: &Inventory| -> std::collections::BTreeSet<String> {
            let c = &inv.counters().label_container_events;
            c.keys().map(|(_, v, _)| v.to_string()).collect()
        };
        assert_eq!(
            values(&inv),
            ["a", "b", "__other__"].map(String::from).into()
        );
        let t0 = 1_000 * SEC;
        inv.sweep(t0);
        assert!(!inv.sweep(t0 + 59 * SEC));
        assert!(inv.sweep(t0 + 60 * SEC));
        assert_eq!(values(&inv), ["b", "__other__"].map(String::from).into());
        let run_values: std::collections::BTreeSet<String> = inv
            .lifecycle()
            .label_run_durations
            .keys()
            .map(|(_, v)| v.to_string())
            .collect();
        assert_eq!(
            run_values,
            ["b", "__other__"].map(String::from).into(),
            "the run-duration histograms by label follow the counters"
        );
        assert_eq!(inv.label_policy().folded("app", "a"), Some(("app", OTHER)));
        // The freed place goes to the next value admitted.
        pod_life(&mut inv, "p4", "d", "c4", false);
        assert_eq!(
            values(&inv),
            ["b", "d", "__other__"].map(String::from).into()
        );
    }

    /// A label key no container has any more goes with all its values (its `__other__` too)
    /// and frees its place under `--labels.max-keys`.
    #[test]
    fn a_removed_label_key_is_dropped_with_its_values() {
        let mut inv = inventory("*", 1, 256);
        let attrs = serde_json::json!({"name": "k", "team": "x"});
        inv.apply(&ev("container", "create", "k1", attrs.clone()));
        let other = serde_json::json!({"name": "k2", "team": "y"});
        inv.apply(&ev("container", "create", "k2", other.clone()));
        inv.apply(&ev("container", "start", "k1", attrs.clone()));
        inv.apply(&ev("container", "died", "k1", attrs.clone()));
        assert!(inv
            .lifecycle()
            .label_run_durations
            .contains_key(&(Arc::from("team"), Arc::from("x"))));
        inv.apply(&ev("container", "remove", "k1", attrs));
        inv.apply(&ev("container", "remove", "k2", other));
        let keys = |inv: &Inventory| -> std::collections::BTreeSet<(String, String)> {
            let c = &inv.counters().label_container_events;
            c.keys()
                .map(|(k, v, _)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(keys(&inv).contains(&("team".into(), OTHER.into())));
        let t0 = 1_000 * SEC;
        inv.sweep(t0);
        assert!(inv.sweep(t0 + 60 * SEC));
        assert!(
            keys(&inv).iter().all(|(k, _)| k != "team"),
            "{:?}",
            keys(&inv)
        );
        assert!(inv.lifecycle().label_run_durations.is_empty());
        assert!(!inv.label_policy().shows_key("team"));
    }

    /// With `*` and `--labels.max-keys 3`, containers with many distinct keys give label
    /// counters for at most 3 keys plus `label="__other__"`, and only those keys are shown.
    #[test]
    fn label_keys_past_the_cap_are_counted_as_other() {
        let mut inv = inventory("*", 500, 3);
        for i in 0..50 {
            let mut attrs = serde_json::json!({"name": format!("c{i}")});
            for j in 0..4 {
                attrs[format!("key{i}-{j}")] = serde_json::json!("v");
            }
            inv.apply(&ev("container", "create", &format!("c{i}"), attrs));
        }
        let keys: std::collections::BTreeSet<String> = inv
            .counters()
            .label_container_events
            .keys()
            .map(|(k, _, _)| k.to_string())
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert!(keys.contains(OTHER));
        let other = inv
            .counters()
            .label_container_events
            .get(&(Arc::from(OTHER), Arc::from(OTHER), "create"))
            .copied();
        assert_eq!(
            other,
            Some(50 * 4 - 3),
            "every pair past the cap is counted"
        );
        let shown: usize = inv
            .containers()
            .flat_map(|c| c.labels.keys())
            .filter(|k| inv.label_policy().shows_key(k))
            .count();
        assert_eq!(shown, 3);
    }

    const OTHER: &str = super::super::labels::OTHER_VALUE;
}

/// Run durations by label: each allowlisted key and value of the container that died gets the
/// run, exactly; values past `--labels.max-values` go to `__other__`, keys not allowlisted and
/// runs whose start was not seen to nothing.
#[test]
fn run_durations_by_label_follow_the_allowlist_and_the_caps() {
    let mut inv = Inventory::new(LabelPolicy::new(Allowlist::parse("app"), 1));
    let at = |kind: &str, action: &str, id: &str, app: &str, secs: i64| -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": kind, "Action": action, "timeNano": secs * 1_000_000_000,
            "Actor": {"ID": id, "Attributes": {"name": id, "app": app, "team": "t"}}
        }))
        .unwrap()
    };
    inv.apply(&at("container", "create", "a", "web", 1));
    inv.apply(&at("container", "create", "b", "db", 1));
    inv.apply(&at("container", "died", "b", "db", 2));
    for (start, died) in [(10, 12), (20, 50)] {
        inv.apply(&at("container", "start", "a", "web", start));
        inv.apply(&at("container", "died", "a", "web", died));
    }
    inv.apply(&at("container", "start", "b", "db", 100));
    inv.apply(&at("container", "died", "b", "db", 101));
    let by_label = &inv.lifecycle().label_run_durations;
    let get = |v: &str| by_label.get(&(Arc::from("app"), Arc::from(v))).cloned();
    let web = get("web").expect("app=web");
    assert_eq!((web.count, web.sum_nanos), (2, 32_000_000_000));
    let cumulative: Vec<u64> = web.cumulative().collect();
    // 2 s in le 2, 30 s in le 30.
    assert_eq!(&cumulative[..6], &[0, 0, 1, 1, 1, 2]);
    let other = get(labels::OTHER_VALUE).expect("app=db past --labels.max-values 1");
    assert_eq!((other.count, other.sum_nanos), (1, 1_000_000_000));
    assert_eq!(by_label.len(), 2, "team is not allowlisted: {by_label:?}");
}
