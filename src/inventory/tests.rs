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
        c.id.clone(),
        c.name.clone(),
        c.state.clone(),
        c.pod_id.clone(),
        c.infra,
        c.exit_code,
        c.health.clone(),
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
    let died = evs.iter().filter(|e| e.action == "died").count() as u64;
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
        .filter(|e| e.action == "died")
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
        .filter(|e| e.action == "died" && e.attr("app") == Some("rx"))
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
        if e.action == "health_status" {
            let c = inv.container(&e.actor.id).unwrap();
            seen.push(c.health.clone().unwrap());
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
