//! Sealwatch's gauges compared with Podman's own lists, as readable differences.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{names, ps_health, str_of, CATCH_UP};
use crate::support::{wait_until, Exposition, PodmanService, Sealwatch};

/// Which pod each container of an event list belongs to, and each pod's name, from any event
/// that carries them (`died` never carries the pod): what `podman events` says, for attributing
/// counts the way sealwatch must.
pub(crate) fn pod_attribution(events: &[Value]) -> (BTreeMap<&str, &str>, BTreeMap<&str, &str>) {
    let mut pod_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut pod_name: BTreeMap<&str, &str> = BTreeMap::new();
    for e in events {
        let (id, pod) = (str_of(e, "ID"), str_of(e, "PodID"));
        if str_of(e, "Type") == "container" && !pod.is_empty() {
            pod_of.insert(id, pod);
        }
        if str_of(e, "Type") == "pod" && !str_of(e, "Name").is_empty() {
            pod_name.insert(id, str_of(e, "Name"));
        }
    }
    (pod_of, pod_name)
}

/// Adds one to the count of `key`.
pub(crate) fn count(map: &mut BTreeMap<Vec<String>, f64>, key: &[&str]) {
    *map.entry(key.iter().map(|s| s.to_string()).collect())
        .or_default() += 1.0;
}

/// Differences between what Podman says (`want`) and what sealwatch says (`got`), readable.
pub(crate) fn diff(
    what: &str,
    want: &BTreeMap<Vec<String>, f64>,
    got: &BTreeMap<Vec<String>, f64>,
) -> Vec<String> {
    let keys: BTreeSet<&Vec<String>> = want.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| {
            format!(
                "{what}{k:?}: podman says {}, sealwatch says {}",
                want.get(k).map_or("absent".into(), |v| v.to_string()),
                got.get(k).map_or("absent".into(), |v| v.to_string())
            )
        })
        .collect()
}

/// Every inventory gauge compared with `podman ps -a` and `podman pod ps`; empty when equal.
/// Restarts are not among them: Podman does not report sealwatch's definition.
fn gauge_differences(ps: &Value, pods: &Value, m: &Exposition, allow: &[&str]) -> Vec<String> {
    let empty = Vec::new();
    let ps = ps.as_array().unwrap_or(&empty);
    let pods = pods.as_array().unwrap_or(&empty);
    let mut out = Vec::new();

    let (mut states, mut per_pod, mut per_label) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let (mut state_series, mut info, mut exit_codes, mut health) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    for c in ps {
        let (id, name, state, pod) = (
            &str_of(c, "Id")[..12],
            names(c),
            str_of(c, "State"),
            str_of(c, "PodName"),
        );
        count(&mut state_series, &[id, &name, pod, state]);
        count(&mut info, &[id, &name, str_of(c, "Image"), pod]);
        if matches!(state, "exited" | "stopped") {
            let code = c["ExitCode"].as_f64().unwrap_or(f64::NAN);
            if code != 0.0 {
                exit_codes.insert(vec![id.to_owned(), name.clone()], code);
            }
        }
        if let Some(h) = ps_health(c) {
            count(&mut health, &[id, &name, &h]);
        }
        if c["IsInfra"].as_bool() == Some(true) {
            continue;
        }
        count(&mut states, &[state]);
        if !pod.is_empty() {
            count(&mut per_pod, &[pod, state]);
        }
        if let Some(labels) = c["Labels"].as_object() {
            for (k, v) in labels {
                if allow.contains(&k.as_str()) {
                    count(&mut per_label, &[k, v.as_str().unwrap_or_default(), state]);
                }
            }
        }
    }
    let (mut pod_states, mut pod_info) = (BTreeMap::new(), BTreeMap::new());
    for p in pods {
        count(&mut pod_states, &[&str_of(p, "Status").to_lowercase()]);
        count(
            &mut pod_info,
            &[str_of(p, "Name"), str_of(p, "Id"), str_of(p, "InfraId")],
        );
    }
    out.extend(diff(
        "podman_containers",
        &states,
        &m.nonzero_by("podman_containers", &["state"]),
    ));
    out.extend(diff(
        "podman_pod_containers",
        &per_pod,
        &m.nonzero_by("podman_pod_containers", &["pod", "state"]),
    ));
    out.extend(diff(
        "podman_label_containers",
        &per_label,
        &m.nonzero_by("podman_label_containers", &["label", "value", "state"]),
    ));
    out.extend(diff(
        "podman_pods",
        &pod_states,
        &m.nonzero_by("podman_pods", &["state"]),
    ));
    out.extend(diff(
        "podman_pod_info",
        &pod_info,
        &m.nonzero_by("podman_pod_info", &["pod", "pod_id", "infra_id"]),
    ));
    out.extend(diff(
        "podman_container_state",
        &state_series,
        &m.nonzero_by("podman_container_state", &["id", "name", "pod", "state"]),
    ));
    out.extend(diff(
        "podman_container_info",
        &info,
        &m.nonzero_by("podman_container_info", &["id", "name", "image", "pod"]),
    ));
    out.extend(diff(
        "podman_container_exit_code",
        &exit_codes,
        &m.nonzero_by("podman_container_exit_code", &["id", "name"]),
    ));
    out.extend(diff(
        "podman_container_health",
        &health,
        &m.nonzero_by("podman_container_health", &["id", "name", "status"]),
    ));
    out
}

/// Polls until sealwatch's gauges equal Podman's own lists; returns the matching scrape.
pub(super) fn wait_gauges_match(svc: &PodmanService, sw: &Sealwatch, allow: &[&str]) -> Exposition {
    wait_until("gauges equal to podman ps / pod ps", CATCH_UP, || {
        let (ps, pods) = (svc.ps_all(), svc.pod_ps());
        let m = sw.scrape();
        let d = gauge_differences(&ps, &pods, &m, allow);
        if d.is_empty() {
            Ok(m)
        } else {
            Err(d.join("\n"))
        }
    })
}
