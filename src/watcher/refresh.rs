//! Which objects need their list fields fetched again, and when.
//!
//! Events do not carry a container's pid, its first health status, Podman's exact start and exit
//! times or restart count, nor a pod's labels. Owns the set of objects that events changed and
//! the pacing of the follow-up list calls: a first change waits `COALESCE` for others to join it,
//! and calls are at least `MIN_INTERVAL` apart, so a crash loop or a burst of a thousand starts
//! costs a few list calls, never one per event. Never calls Podman itself.

use rustc_hash::FxHashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::objects::ObjectKinds;
use crate::podman::wire::Event;

/// How long a first change waits for others before its refresh is sent.
pub const COALESCE: Duration = Duration::from_millis(100);
/// The least time between two refreshes of one engine.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// Past this many changed containers one unfiltered list is cheaper than a long ID filter.
pub const MAX_IDS: usize = 200;

/// IDs whose list fields are stale, and since when.
///
/// `cleanup` is among the changes: Podman 5 and 6 list a container that died as `stopped` until
/// its cleanup, and a refresh that lands in between is skipped (the states differ), so without
/// a refresh after the cleanup the last death's restart count and exit time would stay stale.
#[derive(Debug, Default)]
pub struct Stale {
    /// Podman's IDs (not chosen by whoever creates a container): FxHash, checked per event.
    /// Only the first `MAX_IDS` + 1: past that the request lists every container anyway, so a
    /// burst over thousands of containers stops hashing, looking up and copying IDs.
    containers: FxHashSet<String>,
    /// Containers with a `health_status` since the last refresh: listed once more a
    /// `MIN_INTERVAL` after it. Before Podman 4.7 the event's `HealthStatus` is the status
    /// before the check, and the check's result is written to the container's health log just
    /// after the event; a refresh that lists the container in between (100 ms after the event,
    /// on a loaded machine) still reads the old status, and nothing else would correct it until
    /// the next check. Its size is bounded like `containers`.
    health_checked: FxHashSet<String>,
    pods: FxHashSet<String>,
    /// Image, volume and network families to list again (whole: they are small).
    objects: ObjectKinds,
    since: Option<Instant>,
    /// When the last refresh was sent.
    last_sent: Option<Instant>,
}

/// One refresh to send: `containers: None` means every container.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub containers: Option<Vec<String>>,
    pub pods: Vec<String>,
    pub objects: ObjectKinds,
}

impl Stale {
    /// Notes what an applied event leaves stale.
    pub fn note(&mut self, ev: &Event, now: Instant) {
        if self.note_objects(ev) {
            self.since.get_or_insert(now);
        }
        let id = ev.id();
        if id.is_empty() {
            return;
        }
        let set = match (ev.kind(), ev.action()) {
            (
                "container",
                "create" | "init" | "start" | "restart" | "died" | "cleanup" | "health_status"
                | "unpause",
            ) => {
                // Past `MAX_IDS` containers the next request lists them all: no need to know
                // which.
                if self.containers.len() > MAX_IDS {
                    self.since.get_or_insert(now);
                    return;
                }
                if ev.action() == "health_status"
                    && self.health_checked.len() <= MAX_IDS
                    && !self.health_checked.contains(id)
                {
                    self.health_checked.insert(id.to_owned());
                }
                &mut self.containers
            }
            ("pod", "create") => &mut self.pods,
            _ => return,
        };
        if !set.contains(id) {
            set.insert(id.to_owned());
        }
        self.since.get_or_insert(now);
    }

    /// Notes which object families an event may have changed in ways it does not say itself;
    /// true if it noted any. Image events mostly carry no image ID (a pull, a load), and 4.3
    /// writes no image event for `podman commit`, only the container's `commit`. 4.3 writes no
    /// network `create` at all: a new network is listed when a container is created (the first
    /// use of a network), at the latest on the next resync.
    fn note_objects(&mut self, ev: &Event) -> bool {
        let kinds = &mut self.objects;
        match (ev.kind(), ev.action()) {
            ("image", "save" | "push" | "pull-error") => return false,
            ("image", _) | ("container", "commit") => kinds.images = true,
            ("volume", "create" | "prune") => kinds.volumes = true,
            ("network", "create" | "remove" | "prune") | ("container", "create") => {
                kinds.networks = true
            }
            _ => return false,
        }
        true
    }

    /// When the next refresh is due; `None` while nothing is stale.
    pub fn due(&self) -> Option<Instant> {
        let since = self.since?;
        let paced = self.last_sent.map_or(since, |t| t + MIN_INTERVAL);
        Some((since + COALESCE).max(paced))
    }

    /// Takes what is stale as one request, and starts the pacing from `now`. Containers whose
    /// health was checked since the last request are stale again at once (so listed again a
    /// `MIN_INTERVAL` later, see `health_checked`).
    pub fn take(&mut self, now: Instant) -> Request {
        self.since = None;
        self.last_sent = Some(now);
        let containers: Vec<String> = self.containers.drain().collect();
        if !self.health_checked.is_empty() {
            self.containers.extend(self.health_checked.drain());
            self.since = Some(now);
        }
        Request {
            containers: (containers.len() <= MAX_IDS).then_some(containers),
            pods: self.pods.drain().collect(),
            objects: std::mem::take(&mut self.objects),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, action: &str, id: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": kind, "Action": action, "timeNano": 1, "Actor": {"ID": id, "Attributes": {}}
        }))
        .unwrap()
    }

    /// A burst of starts becomes one request after `COALESCE`; the next waits `MIN_INTERVAL`.
    #[test]
    fn bursts_coalesce_and_refreshes_are_paced() {
        let t0 = Instant::now();
        let mut s = Stale::default();
        assert_eq!(s.due(), None);
        for i in 0..50 {
            s.note(&ev("container", "start", &format!("c{i}")), t0);
            s.note(&ev("container", "died", &format!("c{i}")), t0);
        }
        s.note(&ev("container", "exec", "c0"), t0);
        s.note(&ev("image", "pull", "img"), t0);
        s.note(&ev("pod", "create", "p"), t0);
        assert_eq!(s.due(), Some(t0 + COALESCE));
        let req = s.take(t0 + COALESCE);
        assert_eq!(req.containers.map(|c| c.len()), Some(50));
        assert_eq!(req.pods, vec!["p".to_owned()]);
        assert_eq!(s.due(), None);
        s.note(&ev("container", "start", "c1"), t0 + COALESCE);
        assert_eq!(s.due(), Some(t0 + COALESCE + MIN_INTERVAL));
    }

    /// A cleanup makes a container stale again: the refresh after its death may have seen it
    /// `stopped` (Podman 5 and 6) and been skipped.
    #[test]
    fn a_cleanup_is_refreshed_again() {
        let t0 = Instant::now();
        let mut s = Stale::default();
        s.note(&ev("container", "died", "c1"), t0);
        let _ = s.take(t0 + COALESCE);
        s.note(&ev("container", "cleanup", "c1"), t0 + COALESCE);
        assert_eq!(
            s.take(t0 + MIN_INTERVAL).containers,
            Some(vec!["c1".to_owned()])
        );
    }

    /// Image events (but a save, a push or a failed pull), a container's commit, a volume's
    /// creation or prune, network events and container creations make their family stale, once
    /// per request; events that say everything themselves do not.
    #[test]
    fn object_families_are_listed_again_after_their_events() {
        let t0 = Instant::now();
        let mut s = Stale::default();
        for (kind, action) in [
            ("image", "save"),
            ("image", "push"),
            ("image", "pull-error"),
            ("volume", "remove"),
            ("network", "connect"),
        ] {
            s.note(&ev(kind, action, ""), t0);
        }
        assert_eq!(s.due(), None);
        s.note(&ev("image", "pull", ""), t0);
        s.note(&ev("image", "tag", "i1"), t0);
        assert_eq!(s.due(), Some(t0 + COALESCE));
        let req = s.take(t0 + COALESCE);
        let images = ObjectKinds {
            images: true,
            ..ObjectKinds::default()
        };
        assert_eq!((req.objects, req.containers), (images, Some(vec![])));
        s.note(&ev("container", "commit", "c1"), t0);
        s.note(&ev("volume", "create", ""), t0);
        s.note(&ev("container", "create", "c2"), t0);
        let req = s.take(t0 + MIN_INTERVAL);
        assert_eq!(req.objects, ObjectKinds::ALL);
        assert_eq!(req.containers, Some(vec!["c2".to_owned()]));
        s.note(&ev("network", "create", "n1"), t0);
        assert!(s.take(t0 + MIN_INTERVAL).objects.networks);
        assert_eq!(s.take(t0 + MIN_INTERVAL).objects, ObjectKinds::default());
    }

    /// A container whose health was checked is listed in the next request and once more a
    /// `MIN_INTERVAL` later (Podman before 4.7 writes the check's result just after its event);
    /// then nothing more is due.
    #[test]
    fn a_health_check_is_listed_twice() {
        let t0 = Instant::now();
        let mut s = Stale::default();
        s.note(&ev("container", "health_status", "h"), t0);
        s.note(&ev("container", "start", "s"), t0);
        assert_eq!(s.due(), Some(t0 + COALESCE));
        let mut first = s.take(t0 + COALESCE).containers.unwrap();
        first.sort();
        assert_eq!(first, vec!["h".to_owned(), "s".to_owned()]);
        assert_eq!(s.due(), Some(t0 + COALESCE + MIN_INTERVAL));
        let again = s.take(t0 + COALESCE + MIN_INTERVAL);
        assert_eq!(again.containers, Some(vec!["h".to_owned()]));
        assert_eq!(s.due(), None);
    }

    /// Past `MAX_IDS` containers the request lists every container instead (and stops
    /// collecting IDs); the next request starts from none again.
    #[test]
    fn many_changes_list_everything() {
        let t0 = Instant::now();
        let mut s = Stale::default();
        for i in 0..=MAX_IDS * 3 {
            s.note(&ev("container", "start", &format!("c{i}")), t0);
        }
        assert_eq!(s.containers.len(), MAX_IDS + 1);
        assert_eq!(s.due(), Some(t0 + COALESCE));
        assert_eq!(s.take(t0).containers, None);
        s.note(&ev("container", "died", "c7"), t0);
        assert_eq!(s.take(t0).containers, Some(vec!["c7".to_owned()]));
    }
}
