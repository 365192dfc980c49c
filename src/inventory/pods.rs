//! The one pod index every reader uses: each pod's member containers, and the pod's state derived
//! from theirs exactly as Podman derives it.
//!
//! Owns pod membership and `PodState`, so that `/pods`, `/metrics` and the landing page can never
//! disagree about which containers a pod has or what state it is in. Built from an inventory in
//! one pass over its containers; never changes the inventory.

use rustc_hash::FxHashMap;

use super::{Container, Inventory};

/// A pod's state, as Podman reports it (`createPodStatusResults` in libpod/pod_status.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PodState {
    Created,
    Running,
    Degraded,
    Paused,
    Exited,
    Stopped,
    Error,
}

impl PodState {
    /// The state from the states of all a pod's containers, infra included.
    pub fn derive<'a>(states: impl IntoIterator<Item = &'a str>) -> Self {
        let (mut total, mut running, mut paused, mut stopped, mut errored) = (0, 0, 0, 0, 0);
        for s in states {
            total += 1;
            match s {
                "exited" | "stopped" => stopped += 1,
                "running" => running += 1,
                "paused" => paused += 1,
                "created" | "initialized" => {}
                _ => errored += 1,
            }
        }
        match () {
            _ if total == 0 => PodState::Created,
            _ if running == total => PodState::Running,
            _ if running > 0 => PodState::Degraded,
            _ if paused == total => PodState::Paused,
            _ if stopped == total => PodState::Exited,
            _ if stopped > 0 => PodState::Stopped,
            _ if errored > 0 => PodState::Error,
            _ => PodState::Created,
        }
    }

    /// The lower-case word that `/pods` and the `state` label show.
    pub fn as_str(self) -> &'static str {
        match self {
            PodState::Created => "created",
            PodState::Running => "running",
            PodState::Degraded => "degraded",
            PodState::Paused => "paused",
            PodState::Exited => "exited",
            PodState::Stopped => "stopped",
            PodState::Error => "error",
        }
    }
}

/// One pod's name and member containers (infra included).
#[derive(Debug)]
pub struct PodMembers<'a> {
    pub name: &'a str,
    pub members: Vec<&'a Container>,
}

impl PodMembers<'_> {
    pub fn state(&self) -> PodState {
        PodState::derive(self.members.iter().map(|c| c.state.as_str()))
    }
}

/// Members of every pod that has any, keyed by pod ID. Pods without containers are absent: their
/// state is `Created`.
#[derive(Debug)]
pub struct PodIndex<'a> {
    inv: &'a Inventory,
    /// Position in `pods`, keyed by pod ID. Keys are IDs sealwatch already holds and the index
    /// lives for one request, so SipHash's flood resistance buys nothing here.
    slots: FxHashMap<&'a str, usize>,
    pods: Vec<PodMembers<'a>>,
}

impl<'a> PodIndex<'a> {
    /// The index of every container of `inv`, in one pass.
    pub fn new(inv: &'a Inventory) -> Self {
        let mut index = Self::empty(inv);
        for c in inv.containers() {
            index.add(c);
        }
        index
    }

    /// An index to fill with `add`, for a reader that walks the containers anyway and so
    /// builds the index in the same pass.
    pub fn empty(inv: &'a Inventory) -> Self {
        Self {
            inv,
            slots: FxHashMap::with_capacity_and_hasher(inv.pod_count(), Default::default()),
            pods: Vec::with_capacity(inv.pod_count()),
        }
    }

    /// Records a container of the inventory with its pod; returns the pod's name, `None`
    /// outside a pod.
    #[inline]
    pub fn add(&mut self, c: &'a Container) -> Option<&'a str> {
        let id = c.pod_id.as_deref()?;
        let (inv, pods) = (self.inv, &mut self.pods);
        let slot = *self.slots.entry(id).or_insert_with(|| {
            pods.push(PodMembers {
                name: inv.pod_name(id),
                members: Vec::new(),
            });
            pods.len() - 1
        });
        let pod = &mut self.pods[slot];
        pod.members.push(c);
        Some(pod.name)
    }

    /// The pod with this ID, if it has any container.
    pub fn get(&self, pod_id: &str) -> Option<&PodMembers<'a>> {
        self.slots.get(pod_id).map(|&slot| &self.pods[slot])
    }

    /// A pod's state from its members' states.
    #[cfg(test)]
    pub fn state(&self, pod_id: &str) -> PodState {
        self.get(pod_id)
            .map_or(PodState::Created, PodMembers::state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every branch of Podman's pod-state derivation.
    #[test]
    fn pod_state_follows_podman() {
        use PodState::*;
        assert_eq!(PodState::derive([]), Created);
        assert_eq!(PodState::derive(["running", "running"]), Running);
        assert_eq!(PodState::derive(["running", "exited"]), Degraded);
        assert_eq!(PodState::derive(["paused", "paused"]), Paused);
        assert_eq!(PodState::derive(["exited", "stopped"]), Exited);
        assert_eq!(PodState::derive(["exited", "created"]), Stopped);
        assert_eq!(PodState::derive(["removing", "created"]), Error);
        assert_eq!(PodState::derive(["created", "initialized"]), Created);
        assert_eq!(Degraded.as_str(), "degraded");
    }
}
