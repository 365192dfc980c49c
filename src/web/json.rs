//! The JSON shapes of `/containers` and `/pods`, built from a snapshot without copying it.
//!
//! Owns field names and formats (RFC 3339 times, lower-case pod states). Never filters or routes:
//! `api` does.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::inventory::{Container, Labels, Pod, PodMembers, PodState};
use crate::snapshot::EngineView;

fn rfc3339(nanos: Option<i64>) -> Option<String> {
    nanos.map(|n| {
        chrono::DateTime::from_timestamp_nanos(n).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}

#[derive(Serialize)]
pub struct PodRef<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

#[derive(Serialize)]
pub struct ContainerJson<'a> {
    pub engine: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub image: &'a str,
    pub state: &'a str,
    pub pid: Option<u32>,
    pub pod: Option<PodRef<'a>>,
    pub infra: bool,
    pub project: Option<&'a str>,
    pub labels: &'a Labels,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub exited_at: Option<String>,
    pub exit_code: Option<i64>,
    pub health: Option<&'a str>,
    pub restarts: u64,
}

impl<'a> ContainerJson<'a> {
    pub fn new(view: &'a EngineView, c: &'a Container) -> Self {
        ContainerJson {
            engine: &view.name,
            id: &c.id,
            name: &c.name,
            image: &c.image,
            state: &c.state,
            pid: c.pid,
            pod: c.pod_id.as_deref().map(|id| PodRef {
                id,
                name: view.inventory.pod_name(id),
            }),
            infra: c.infra,
            project: c.project(),
            labels: &c.labels,
            created_at: rfc3339(c.created_at),
            started_at: rfc3339(c.started_at),
            exited_at: rfc3339(c.exited_at),
            exit_code: c.exit_code,
            health: c.health.as_deref(),
            restarts: c.restarts,
        }
    }
}

#[derive(Serialize)]
pub struct PodJson<'a> {
    pub engine: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub state: &'static str,
    pub infra_id: Option<&'a str>,
    pub labels: &'a Labels,
    pub created_at: Option<String>,
    /// Member containers per state, the infra container excluded: the numbers of
    /// `podman_pod_containers`.
    pub containers: BTreeMap<&'a str, usize>,
    /// Every member, the infra container (`infra_id`) included.
    pub container_ids: Vec<&'a str>,
}

impl<'a> PodJson<'a> {
    /// `members` is the pod's entry in the engine's `PodIndex`, `None` for a pod without
    /// containers.
    pub fn new(view: &'a EngineView, p: &'a Pod, pod: Option<&PodMembers<'a>>) -> Self {
        let members = pod.map_or(&[][..], |m| m.members.as_slice());
        let mut containers = BTreeMap::new();
        for c in members.iter().filter(|c| !c.infra) {
            *containers.entry(c.state.as_str()).or_insert(0) += 1;
        }
        let mut container_ids: Vec<&str> = members.iter().map(|c| c.id.as_str()).collect();
        container_ids.sort_unstable();
        PodJson {
            engine: &view.name,
            id: &p.id,
            name: &p.name,
            state: pod.map_or(PodState::Created, PodMembers::state).as_str(),
            infra_id: p.infra_id.as_deref(),
            labels: &p.labels,
            created_at: rfc3339(p.created_at),
            containers,
            container_ids,
        }
    }
}
