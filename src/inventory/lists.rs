//! What Podman's lists say, merged into the inventory: `resync` (the whole lists, on every
//! connection) and `refresh` (the lists filtered to objects that events changed, for the fields
//! events do not carry: pid, health, exact times, restart count, pod labels).
//!
//! Owns turning list entries into records and the rule that a refresh never moves state: it fills
//! fields only where the listed state agrees with the inventory's, because events applied since
//! the list was taken are newer than it. Never touches a counter.

use std::sync::Arc;

use super::model::word;
use super::{Container, Inventory, Pod, SharedStr};
use crate::podman::wire::{ListContainer, ListPod};

impl Inventory {
    /// Replaces containers and pods with what the lists say, keeping every counter and each
    /// surviving container's restart count. `listed_at` is Podman's time just before the lists
    /// were requested: the events that arrive with the stream afterwards and are older than that
    /// are counted but move no state, since the lists already show their effect.
    pub fn resync(&mut self, containers: Vec<ListContainer>, pods: Vec<ListPod>, listed_at: i64) {
        self.listed_at = listed_at;
        // An empty list says nothing about the Podman; `set_podman_version` decides too.
        self.podman_counts_restarts |= containers.iter().any(|c| c.restarts.is_some());
        let mut fresh = super::ContainerMap::default();
        let mut kept = 0;
        for lc in containers {
            let old = self.containers.get(lc.id.as_str());
            let (restarts, awaiting_restart) =
                old.map_or((0, false), |o| (o.restarts, o.awaiting_restart));
            if !lc.pod.is_empty() && !lc.pod_name.is_empty() {
                name_pod(&mut self.pod_names, &lc.pod, &lc.pod_name);
            }
            let pod_id = self.listed_pod_id(&lc.pod);
            let c = container_from_list(lc, pod_id, restarts, awaiting_restart);
            for (k, v) in c.labels.iter() {
                self.labels.admit(k, v);
            }
            // A container listed as the inventory already has it keeps its record, the same
            // allocation: the scrape's kept text of it stays valid (metrics::containers compares
            // records by pointer), and the old record is not freed for a copy.
            match old {
                Some(o) if **o == c => {
                    kept += 1;
                    fresh.insert(o.clone());
                }
                _ => fresh.insert(Arc::new(c)),
            }
        }
        // Every record kept and none gone: the map itself stays, so the first scrape after a
        // reconnect to an engine where nothing changed costs what an unchanged scrape does.
        if !(kept == fresh.len() && kept == self.containers.len()) {
            self.containers = fresh;
        }

        let mut fresh_pods = super::FxMap::default();
        let mut kept = 0;
        for lp in pods {
            name_pod(&mut self.pod_names, &lp.id, &lp.name);
            let pod = pod_from_list(lp);
            let pod = match self.pods.get(pod.id.as_str()) {
                Some(o) if **o == pod => {
                    kept += 1;
                    o.clone()
                }
                _ => Arc::new(pod),
            };
            fresh_pods.insert(Arc::from(pod.id.as_str()), pod);
        }
        if !(kept == fresh_pods.len() && kept == self.pods.len()) {
            self.pods = fresh_pods;
        }
    }

    /// Fills in, from lists filtered to recently changed objects, the fields that events do
    /// not carry. A container is updated only while the list shows the same state as the
    /// inventory (otherwise a newer event has moved it, and it is refreshed again); nothing is
    /// added or removed, and no counter moves.
    pub fn refresh(&mut self, containers: Vec<ListContainer>, pods: Vec<ListPod>) {
        for lc in containers {
            let Some(c) = self.containers.get_mut(lc.id.as_str()) else {
                continue;
            };
            if c.state != lc.state {
                continue;
            }
            // A refresh takes no pod from the list (a container never changes pods).
            let listed = container_from_list(lc, None, c.restarts, c.awaiting_restart);
            let c = Arc::make_mut(c);
            c.pid = listed.pid;
            c.health = listed.health;
            c.created_at = listed.created_at.or(c.created_at);
            c.started_at = listed.started_at.or(c.started_at);
            c.exited_at = listed.exited_at.or(c.exited_at);
            c.exit_code = listed.exit_code;
            c.restarts = listed.restarts;
        }
        for lp in pods {
            let Some(p) = self.pods.get_mut(lp.id.as_str()) else {
                continue;
            };
            let listed = pod_from_list(lp);
            let p = Arc::make_mut(p);
            p.labels = listed.labels;
            p.created_at = listed.created_at.or(p.created_at);
            p.infra_id = listed.infra_id.or(p.infra_id.take());
        }
    }
}

/// Unix seconds from a list, where Podman writes `-62135596800` (Go's zero time) for "never".
fn list_time(secs: i64) -> Option<i64> {
    (secs > 0).then(|| secs.saturating_mul(1_000_000_000))
}

/// `Created` is an RFC3339 string in libpod, a unix integer in Docker's compat shape.
fn parse_created(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .filter(|t| *t > 0),
        serde_json::Value::Number(n) => n.as_i64().and_then(list_time),
        _ => None,
    }
}

/// Records a pod's name; a name already held is not written again, so the map stays the same
/// allocation (`Inventory::same_pod_names`) through a resync that changed nothing.
fn name_pod(names: &mut super::FxMap<Arc<str>, Arc<str>>, id: &str, name: &str) {
    if names.get(id).map(|n| &**n) != Some(name) {
        names.insert(Arc::from(id), Arc::from(name));
    }
}

impl Inventory {
    /// A listed pod ID as the inventory holds it (named just before, when listed with a name):
    /// a pod's containers share one string, not a copy of 64 characters each.
    fn listed_pod_id(&self, pod: &str) -> Option<SharedStr> {
        Some(pod)
            .filter(|p| !p.is_empty())
            .map(|p| SharedStr::from(self.held_pod_id(p)))
    }
}

/// A container as listed, in the pod `pod_id` (`listed_pod_id` of its listed pod). `restarts` is
/// Podman's count where it lists one, else the one sealwatch kept.
fn container_from_list(
    lc: ListContainer,
    pod_id: Option<SharedStr>,
    restarts: u64,
    awaiting_restart: bool,
) -> Container {
    let exited_at = list_time(lc.exited_at);
    let has_exited = matches!(lc.state.as_str(), "exited" | "stopped");
    Container {
        name: lc.names.into_iter().next().unwrap_or_default().into(),
        image: lc.image.into(),
        pid: u32::try_from(lc.pid).ok().filter(|p| *p > 0),
        pod_id,
        infra: lc.is_infra,
        labels: lc.labels.iter().collect(),
        created_at: parse_created(&lc.created),
        started_at: list_time(lc.started_at),
        exited_at,
        exit_code: has_exited.then_some(lc.exit_code),
        health: Some(lc.status).filter(|s| !s.is_empty()).map(|h| word(&h)),
        state: word(&lc.state),
        id: lc.id.into(),
        restarts: lc.restarts.unwrap_or(restarts),
        awaiting_restart,
        listed: true,
    }
}

fn pod_from_list(lp: ListPod) -> Pod {
    Pod {
        created_at: parse_created(&lp.created),
        infra_id: Some(lp.infra_id).filter(|s| !s.is_empty()),
        labels: lp.labels.iter().collect(),
        name: lp.name,
        id: lp.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Allowlist, LabelPolicy};
    use crate::podman::wire::Event;

    fn inventory() -> Inventory {
        Inventory::new(LabelPolicy::new(Allowlist::parse("app"), 500))
    }

    fn listed(id: &str, state: &str, pid: i64, extra: serde_json::Value) -> ListContainer {
        let mut v = serde_json::json!({
            "Id": id, "Names": [format!("n-{id}")], "Image": "img", "State": state, "Pid": pid,
            "Created": "2026-11-29T18:00:00.5Z", "StartedAt": 1_795_000_100, "ExitedAt": -62_135_596_800i64,
            "ExitCode": 0, "Labels": {"app": "x"}
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn container_event(t: i64, action: &str, id: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": "container", "Action": action, "timeNano": t,
            "Actor": {"ID": id, "Attributes": {"name": format!("n-{id}"), "app": "x", "containerExitCode": "0"}}
        }))
        .unwrap()
    }

    /// A resync gives the containers of one pod one shared pod ID string (the one the inventory
    /// names the pod by), and a container without a pod none.
    #[test]
    fn listed_containers_of_a_pod_share_its_id() {
        let mut inv = inventory();
        let pod = serde_json::json!({"Pod": "p1", "PodName": "shop"});
        inv.resync(
            vec![
                listed("c1", "running", 1, pod.clone()),
                listed("c2", "running", 2, pod),
                listed("c3", "running", 3, serde_json::json!({"Pod": ""})),
            ],
            vec![],
            1,
        );
        let id = |c: &str| inv.container(c).unwrap().pod_id.clone();
        let (a, b) = (id("c1").unwrap(), id("c2").unwrap());
        assert_eq!((a.as_str(), inv.pod_name("p1")), ("p1", "shop"));
        assert!(Arc::ptr_eq(a.as_arc(), b.as_arc()));
        assert_eq!(id("c3"), None);
    }

    /// Events older than the list (a stop and start made while sealwatch was away, replayed after
    /// the resync) are counted but never overwrite what the fresher list says, such as the pid.
    #[test]
    fn events_older_than_the_list_count_but_do_not_move_state() {
        let mut inv = inventory();
        let t = 1_795_000_200_000_000_000;
        inv.resync(
            vec![listed("c1", "running", 42, serde_json::json!({}))],
            vec![],
            t,
        );
        inv.apply(&container_event(t - 2, "died", "c1"));
        inv.apply(&container_event(t - 1, "start", "c1"));
        let c = inv.container("c1").unwrap();
        assert_eq!((c.state.as_str(), c.pid), ("running", Some(42)));
        assert_eq!(inv.counters().total_events(), 2);
        inv.apply(&container_event(t + 1, "died", "c1"));
        assert_eq!(
            inv.container("c1").unwrap().state,
            "exited",
            "newer events still move it"
        );
    }

    /// A refresh fills pid, health and Podman's times where the listed state agrees with the
    /// inventory's, and leaves a container alone where a newer event moved it; no counter moves.
    #[test]
    fn a_refresh_fills_fields_only_where_the_state_agrees() {
        let mut inv = inventory();
        inv.apply(&container_event(10, "create", "c1"));
        inv.apply(&container_event(11, "start", "c1"));
        inv.apply(&container_event(12, "create", "c2"));
        inv.apply(&container_event(13, "start", "c2"));
        inv.apply(&container_event(14, "died", "c2"));
        let before = inv.counters().total_events();
        assert_eq!(inv.container("c1").unwrap().pid, None);
        let health = serde_json::json!({"Status": "starting"});
        inv.refresh(
            vec![
                listed("c1", "running", 77, health),
                listed("c2", "running", 78, serde_json::json!({})),
                listed("gone", "running", 79, serde_json::json!({})),
            ],
            vec![],
        );
        let c1 = inv.container("c1").unwrap();
        assert_eq!(c1.pid, Some(77));
        assert_eq!(c1.health.as_deref(), Some("starting"));
        assert_eq!(c1.started_at, Some(1_795_000_100_000_000_000));
        let created = chrono::DateTime::parse_from_rfc3339("2026-11-29T18:00:00.5Z").unwrap();
        assert_eq!(c1.created_at, created.timestamp_nanos_opt());
        let c2 = inv.container("c2").unwrap();
        assert_eq!(
            (c2.state.as_str(), c2.pid),
            ("exited", None),
            "a newer died wins"
        );
        assert!(inv.container("gone").is_none(), "a refresh adds nothing");
        assert_eq!(inv.counters().total_events(), before);
    }

    /// Where Podman lists `Restarts` (4.6+), that is the restart count; sealwatch's own count of
    /// starts after a death applies only to Podman that does not list it.
    #[test]
    fn podman_restart_count_wins_where_it_is_listed() {
        let mut inv = inventory();
        let restarts = serde_json::json!({"Restarts": 3});
        inv.resync(vec![listed("c1", "running", 42, restarts)], vec![], 0);
        assert_eq!(inv.container("c1").unwrap().restarts, 3);
        inv.apply(&container_event(5, "died", "c1"));
        inv.apply(&container_event(6, "start", "c1"));
        assert_eq!(
            inv.container("c1").unwrap().restarts,
            3,
            "not counted by sealwatch"
        );
        let mut old = inventory();
        old.resync(
            vec![listed("c1", "running", 42, serde_json::json!({}))],
            vec![],
            0,
        );
        old.apply(&container_event(5, "died", "c1"));
        old.apply(&container_event(6, "start", "c1"));
        assert_eq!(old.container("c1").unwrap().restarts, 1);
    }

    /// A resync that lists a container or pod exactly as the inventory has it keeps its record
    /// (the same allocation, which the scrape's kept text is keyed by); one that differs gets a
    /// new record.
    #[test]
    fn a_resync_keeps_the_records_it_lists_unchanged() {
        let mut inv = inventory();
        let t = 1_795_000_200_000_000_000;
        let pod = || -> ListPod {
            serde_json::from_value(serde_json::json!({
                "Id": "p1", "Name": "shop", "Labels": {"team": "a"}, "InfraId": "i1", "Created": "2026-11-29T18:00:00Z"
            }))
            .unwrap()
        };
        let lists = || {
            vec![
                listed("c1", "running", 42, serde_json::json!({})),
                listed("c2", "running", 43, serde_json::json!({})),
            ]
        };
        inv.resync(lists(), vec![pod()], t);
        let (c1, c2, p1) = (
            inv.container("c1").unwrap().clone(),
            inv.container("c2").unwrap().clone(),
            inv.pod("p1").unwrap().clone(),
        );
        let same = inv.clone();
        inv.resync(lists(), vec![pod()], t + 1);
        assert!(
            inv.same_containers(&same) && inv.same_pods_and_labels(&same),
            "nothing changed: the very maps are kept"
        );
        let mut relisted = lists();
        relisted[1].pid = 44;
        inv.resync(relisted, vec![pod()], t + 1);
        assert!(!inv.same_containers(&same), "one changed: a new map");
        assert!(
            inv.same_pods_and_labels(&same),
            "pods and their names unchanged"
        );
        assert!(
            Arc::ptr_eq(inv.container("c1").unwrap(), &c1),
            "unchanged: kept"
        );
        assert!(
            Arc::ptr_eq(inv.pod("p1").unwrap(), &p1),
            "unchanged pod: kept"
        );
        let c2_new = inv.container("c2").unwrap().clone();
        assert!(!Arc::ptr_eq(&c2_new, &c2), "changed: a new record");
        assert_eq!(c2_new.pid, Some(44));

        // A record events moved (a restart: its start time and count) is replaced by the listed
        // one, which keeps the count.
        inv.apply(&container_event(t + 2, "died", "c1"));
        inv.apply(&container_event(t + 3, "start", "c1"));
        let moved = inv.container("c1").unwrap().clone();
        assert_eq!(moved.restarts, 1);
        inv.resync(lists(), vec![pod()], t + 4);
        let c1_now = inv.container("c1").unwrap();
        assert!(!Arc::ptr_eq(c1_now, &moved));
        assert_eq!(c1_now.restarts, 1, "the count survives the new record");

        // Every listed record kept, but one container no longer listed: it is gone.
        inv.resync(
            vec![listed("c1", "running", 42, serde_json::json!({}))],
            vec![pod()],
            t + 5,
        );
        assert!(inv.container("c1").is_some() && inv.container("c2").is_none());
    }

    /// A pod created while sealwatch runs gets its labels from the refresh.
    #[test]
    fn a_refresh_gives_a_new_pod_its_labels() {
        let mut inv = inventory();
        let pod: Event = serde_json::from_value(serde_json::json!({
            "Type": "pod", "Action": "create", "timeNano": 5, "Actor": {"ID": "p1", "Attributes": {"name": "shop"}}
        }))
        .unwrap();
        inv.apply(&pod);
        assert!(inv.pod("p1").unwrap().labels.is_empty());
        let listed: ListPod = serde_json::from_value(serde_json::json!({
            "Id": "p1", "Name": "shop", "Labels": {"team": "a"}, "InfraId": "i1", "Created": "2026-11-29T18:00:00Z"
        }))
        .unwrap();
        inv.refresh(vec![], vec![listed]);
        let p = inv.pod("p1").unwrap();
        assert_eq!(p.labels.get("team"), Some("a"));
        assert_eq!(p.infra_id.as_deref(), Some("i1"));
    }

    /// A pod and its member created and removed while sealwatch was away: their replayed
    /// events are older than the list, yet still follow the objects the list never showed, so
    /// the counts are attributed to the pod's name.
    #[test]
    fn objects_that_came_and_went_while_away_still_attribute_their_counts() {
        let mut inv = inventory();
        let t = 1_795_000_200_000_000_000;
        inv.resync(vec![], vec![], t);
        let ev = |at: i64, kind: &str, action: &str, id: &str, attrs: serde_json::Value| -> Event {
            serde_json::from_value(serde_json::json!({
                "Type": kind, "Action": action, "timeNano": at,
                "Actor": {"ID": id, "Attributes": attrs}
            }))
            .unwrap()
        };
        let member = serde_json::json!({"name": "m", "podId": "p1"});
        inv.apply(&ev(t - 9, "container", "create", "m1", member.clone()));
        inv.apply(&ev(
            t - 8,
            "pod",
            "create",
            "p1",
            serde_json::json!({"name": "down-pod"}),
        ));
        inv.apply(&ev(t - 7, "container", "start", "m1", member));
        let died = serde_json::json!({"name": "m", "podId": "", "containerExitCode": "3"});
        inv.apply(&ev(t - 6, "container", "died", "m1", died));
        inv.apply(&ev(
            t - 5,
            "container",
            "remove",
            "m1",
            serde_json::json!({"name": "m"}),
        ));
        inv.apply(&ev(
            t - 4,
            "pod",
            "remove",
            "p1",
            serde_json::json!({"name": "down-pod"}),
        ));
        assert!(inv.container("m1").is_none() && inv.pod("p1").is_none());
        let c = inv.counters();
        let by_pod: u64 = c.pod_container_events.iter().map(|(_, n)| n).sum();
        assert_eq!(by_pod, 4);
        assert!(c
            .pod_container_events
            .iter()
            .all(|((p, _), _)| inv.pod_name(p) == "down-pod"));
        let exits: Vec<_> = c
            .container_exits
            .iter()
            .map(|((p, code), n)| (p.as_deref().map(|p| inv.pod_name(p)), code.to_string(), *n))
            .collect();
        assert_eq!(exits, vec![(Some("down-pod"), "3".to_owned(), 1)]);
    }

    /// On Podman 4.6+ restarts are Podman's count even when the first list was empty (no
    /// `Restarts` field seen yet): starts after a death never add to it.
    #[test]
    fn podman_46_counts_restarts_even_from_an_empty_list() {
        let mut inv = inventory();
        inv.set_podman_version("5.4.2");
        inv.resync(vec![], vec![], 0);
        inv.apply(&container_event(1, "create", "c1"));
        inv.apply(&container_event(2, "start", "c1"));
        inv.apply(&container_event(3, "died", "c1"));
        inv.apply(&container_event(4, "start", "c1"));
        assert_eq!(inv.container("c1").unwrap().restarts, 0);
        let mut old = inventory();
        old.set_podman_version("4.3.1");
        old.resync(vec![], vec![], 0);
        for (t, a) in [(1, "create"), (2, "start"), (3, "died"), (4, "start")] {
            old.apply(&container_event(t, a, "c1"));
        }
        assert_eq!(old.container("c1").unwrap().restarts, 1);
    }

    /// A container listed in Podman 5's transient `stopped` state (died, not yet cleaned up)
    /// becomes `exited` with its `cleanup` event, as in Podman.
    #[test]
    fn cleanup_ends_the_transient_stopped_state() {
        let mut inv = inventory();
        let t = 1_795_000_200_000_000_000;
        inv.resync(
            vec![listed("c1", "stopped", 0, serde_json::json!({}))],
            vec![],
            t,
        );
        inv.apply(&container_event(t - 1, "died", "c1"));
        assert_eq!(inv.container("c1").unwrap().state, "stopped");
        inv.apply(&container_event(t + 1, "cleanup", "c1"));
        assert_eq!(inv.container("c1").unwrap().state, "exited");
    }
}
