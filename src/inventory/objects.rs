//! The engine's other objects: images, volumes and networks, and its component versions.
//!
//! Owns their records and every transition of them: `apply_object_event` (what an event says
//! exactly: a tag, an untag, a removal), `replace_*` (a whole list, on resync and on refresh: these
//! lists are small, and Podman's filters cannot select "the images that changed": its `id` filter
//! ANDs several values on 4.3 and most image events carry no ID), and the parsing of Podman's
//! `repo:tag` names and tool version strings. Never counts events (the inventory's `apply` does)
//! and never decides when to list (the watcher does).

use std::sync::Arc;

use super::Inventory;
use crate::podman::wire::{Event, Info, ListImage, ListNetwork, ListVolume};

/// What Podman and the image exporter call the repository and tag of an untagged image.
pub const NONE: &str = "<none>";

/// One image, by full ID; one series per `repo:tag` name.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    /// `(repository, tag)` pairs; empty for a dangling image (shown as `<none>`, `<none>`).
    pub names: Vec<(String, String)>,
    pub digest: String,
    /// Unix seconds, as Podman lists it.
    pub created: i64,
    pub size: i64,
}

impl Image {
    /// Every `(repository, tag)` the image's series show: `<none>`, `<none>` when dangling.
    pub fn series_names(&self) -> impl Iterator<Item = (&str, &str)> {
        let dangling = self.names.is_empty().then_some((NONE, NONE));
        self.names
            .iter()
            .map(|(r, t)| (r.as_str(), t.as_str()))
            .chain(dangling)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    /// Unix nanoseconds.
    pub created_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub driver: String,
    pub interface: String,
}

/// The versions of the engine's parts, from `GET /libpod/info` once per connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Components {
    pub conmon_version: String,
    /// The OCI runtime's name (`runc`, `crun`).
    pub runtime: String,
    pub runtime_version: String,
    pub buildah_version: String,
}

impl Components {
    pub fn from_info(info: &Info) -> Self {
        let runtime = &info.host.oci_runtime;
        Self {
            conmon_version: tool_version(&info.host.conmon.version, "conmon"),
            runtime: runtime.name.clone(),
            runtime_version: tool_version(&runtime.version, &runtime.name),
            buildah_version: info.host.buildah_version.clone(),
        }
    }
}

/// The version out of a tool's `--version` text: `conmon version 2.1.6, commit: unknown` gives
/// `2.1.6`, `runc version 1.1.5+ds1\ncommit: …` gives `1.1.5+ds1`.
fn tool_version(text: &str, tool: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let rest = first
        .strip_prefix(tool)
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix("version"))
        .unwrap_or(first);
    rest.split(',').next().unwrap_or("").trim().to_owned()
}

/// `repository` and `tag` of a name as Podman lists it: `localhost/busybox:latest`, a registry
/// with a port (`host:5000/app:1`), a digest reference (`app@sha256:…`, no tag) or `<none>:<none>`.
pub fn split_name(name: &str) -> (String, String) {
    if let Some((repo, _digest)) = name.split_once('@') {
        return (repo.to_owned(), NONE.to_owned());
    }
    let after_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[after_slash..].rfind(':') {
        Some(i) => {
            let (repo, tag) = name.split_at(after_slash + i);
            (repo.to_owned(), tag[1..].to_owned())
        }
        None => (name.to_owned(), NONE.to_owned()),
    }
}

fn image_from_list(li: ListImage) -> Image {
    let mut names: Vec<(String, String)> = li
        .repo_tags
        .iter()
        .filter(|n| n.as_str() != "<none>:<none>")
        .map(|n| split_name(n))
        .collect();
    names.sort();
    names.dedup();
    Image {
        id: li.id,
        names,
        digest: li.digest,
        created: li.created,
        size: li.size,
    }
}

fn volume_from_list(lv: ListVolume) -> Volume {
    Volume {
        created_at: chrono::DateTime::parse_from_rfc3339(&lv.created_at)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt()),
        name: lv.name,
        driver: lv.driver,
        mountpoint: lv.mountpoint,
    }
}

fn network_from_list(ln: ListNetwork) -> Network {
    Network {
        name: ln.name,
        id: ln.id,
        driver: ln.driver,
        interface: ln.network_interface,
    }
}

/// The images, volumes and networks of one engine, and its component versions. Maps are
/// persistent, so a snapshot shares them.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// By full image ID.
    images: imbl::HashMap<Arc<str>, Arc<Image>>,
    /// By name (unique per engine).
    volumes: imbl::HashMap<Arc<str>, Arc<Volume>>,
    /// By name (unique per engine).
    networks: imbl::HashMap<Arc<str>, Arc<Network>>,
    components: Option<Arc<Components>>,
}

impl Inventory {
    pub fn images(&self) -> impl Iterator<Item = &Arc<Image>> {
        self.objects.images.values()
    }

    pub fn volumes(&self) -> impl Iterator<Item = &Arc<Volume>> {
        self.objects.volumes.values()
    }

    pub fn networks(&self) -> impl Iterator<Item = &Arc<Network>> {
        self.objects.networks.values()
    }

    /// The engine's component versions, once `info` has answered in some session.
    pub fn components(&self) -> Option<&Components> {
        self.objects.components.as_deref()
    }

    pub fn set_components(&mut self, components: Components) {
        self.objects.components = Some(Arc::new(components));
    }

    /// Replaces the images with a list of them (all of them: a resync or a refresh).
    pub fn replace_images(&mut self, list: Vec<ListImage>) {
        self.objects.images = list
            .into_iter()
            .map(|li| {
                let i = image_from_list(li);
                (Arc::from(i.id.as_str()), Arc::new(i))
            })
            .collect();
    }

    pub fn replace_volumes(&mut self, list: Vec<ListVolume>) {
        self.objects.volumes = list
            .into_iter()
            .map(|lv| {
                let v = volume_from_list(lv);
                (Arc::from(v.name.as_str()), Arc::new(v))
            })
            .collect();
    }

    pub fn replace_networks(&mut self, list: Vec<ListNetwork>) {
        self.objects.networks = list
            .into_iter()
            .map(|ln| {
                let n = network_from_list(ln);
                (Arc::from(n.name.as_str()), Arc::new(n))
            })
            .collect();
    }

    /// Moves images, volumes and networks by what an `image`, `volume` or `network` event says
    /// exactly: a tag added to or taken from a known image, a removal. Everything else (a pull,
    /// a load, a new volume or network) waits for the refresh the event causes, which lists
    /// the family again. Events older than the last resync's lists move nothing: the lists
    /// already show their effect.
    pub(super) fn apply_object_event(&mut self, ev: &Event) {
        if ev.nanos() < self.listed_at {
            return;
        }
        let objects = &mut self.objects;
        let id = ev.id();
        match (ev.kind(), ev.action()) {
            ("image", "tag") => {
                if let (Some(img), Some(name)) = (objects.images.get_mut(id), ev.attr("name")) {
                    let pair = split_name(name);
                    if !img.names.contains(&pair) {
                        let img = Arc::make_mut(img);
                        img.names.push(pair);
                        img.names.sort();
                    }
                }
            }
            ("image", "untag") => {
                if let (Some(img), Some(name)) = (objects.images.get_mut(id), ev.attr("name")) {
                    let pair = split_name(name);
                    if img.names.contains(&pair) {
                        Arc::make_mut(img).names.retain(|p| *p != pair);
                    }
                }
            }
            ("image", "remove") if !id.is_empty() => {
                objects.images.remove(id);
            }
            ("volume", "remove" | "prune") => {
                if let Some(name) = ev.attr("name") {
                    objects.volumes.remove(name);
                }
            }
            ("network", "remove") => {
                let name = ev.attr("network").map(str::to_owned).or_else(|| {
                    objects
                        .networks
                        .values()
                        .find(|n| !id.is_empty() && n.id == id)
                        .map(|n| n.name.clone())
                });
                if let Some(name) = name {
                    objects.networks.remove(name.as_str());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Allowlist, LabelPolicy};
    use crate::podman::wire::{decode_stream_line, StreamItem};

    const IMAGES: &str = include_str!("../../tests/fixtures/objects/images-json.json");
    const VOLUMES: &str = include_str!("../../tests/fixtures/objects/volumes-json.json");
    const NETWORKS: &str = include_str!("../../tests/fixtures/objects/networks-json.json");
    const EVENTS: &str = include_str!("../../tests/fixtures/objects/events-4.3.1.ndjson");

    fn inventory() -> Inventory {
        Inventory::new(LabelPolicy::new(Allowlist::default(), 500))
    }

    fn listed() -> Inventory {
        let mut inv = inventory();
        inv.replace_images(serde_json::from_str(IMAGES).unwrap());
        inv.replace_volumes(serde_json::from_str(VOLUMES).unwrap());
        inv.replace_networks(serde_json::from_str(NETWORKS).unwrap());
        inv
    }

    fn ev(kind: &str, action: &str, id: &str, attrs: serde_json::Value) -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": kind, "Action": action, "timeNano": 10,
            "Actor": {"ID": id, "Attributes": attrs}
        }))
        .unwrap()
    }

    fn image_names(inv: &Inventory) -> Vec<(String, String, String)> {
        let mut v: Vec<_> = inv
            .images()
            .flat_map(|i| {
                i.series_names()
                    .map(|(r, t)| (i.id[..12].to_owned(), r.to_owned(), t.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v
    }

    fn names<'a, T: 'a>(it: impl Iterator<Item = &'a Arc<T>>, f: fn(&T) -> &str) -> Vec<String> {
        let mut v: Vec<String> = it.map(|x| f(x).to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn names_split_into_repository_and_tag() {
        let s = |n: &str| {
            let (r, t) = split_name(n);
            (r, t)
        };
        assert_eq!(
            s("localhost/busybox:latest"),
            ("localhost/busybox".into(), "latest".into())
        );
        assert_eq!(
            s("host:5000/app:1.2"),
            ("host:5000/app".into(), "1.2".into())
        );
        assert_eq!(s("host:5000/app"), ("host:5000/app".into(), NONE.into()));
        assert_eq!(s("app@sha256:abc"), ("app".into(), NONE.into()));
    }

    #[test]
    fn tool_versions_are_read_from_their_version_texts() {
        assert_eq!(
            tool_version("conmon version 2.1.6, commit: unknown", "conmon"),
            "2.1.6"
        );
        let runc = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev";
        assert_eq!(tool_version(runc, "runc"), "1.1.5+ds1");
        assert_eq!(
            tool_version("crun version 1.8.1\ncommit: x", "crun"),
            "1.8.1"
        );
        assert_eq!(tool_version("", "crun"), "");
        assert_eq!(tool_version("1.2.3", "x"), "1.2.3");
    }

    /// The 4.3.1 and 5.4.2 info answers give the components `podman info` shows.
    #[test]
    fn components_from_real_info() {
        let info: Info =
            serde_json::from_str(include_str!("../../tests/fixtures/info.json")).unwrap();
        let c = Components::from_info(&info);
        assert_eq!(
            c,
            Components {
                conmon_version: "2.1.6".into(),
                runtime: "runc".into(),
                runtime_version: "1.1.5+ds1".into(),
                buildah_version: "1.28.2".into(),
            }
        );
        let info: Info =
            serde_json::from_str(include_str!("../../tests/fixtures/5.4.2/info.json")).unwrap();
        assert_eq!(Components::from_info(&info).runtime_version, "1.1.15+ds1");
    }

    /// A list gives one series name per `repo:tag`, and `<none>`, `<none>` for a dangling image.
    #[test]
    fn lists_replace_the_objects() {
        let inv = listed();
        let imgs = image_names(&inv);
        assert_eq!(
            imgs,
            vec![
                ("7287b4dc371f".into(), NONE.into(), NONE.into()),
                ("cb5ee5507a44".into(), "localhost/bb".into(), "v1".into()),
                (
                    "cb5ee5507a44".into(),
                    "localhost/busybox".into(),
                    "latest".into()
                ),
                (
                    "f933f0ae1936".into(),
                    "localhost/ox-committed".into(),
                    "1".into()
                ),
            ]
        );
        assert_eq!(
            names(inv.volumes(), |v| &v.name),
            vec!["ox-vol1", "ox-vol2", "volX"]
        );
        assert_eq!(
            names(inv.networks(), |n| &n.name),
            vec!["netA", "ox-net2", "podman"]
        );
        let vol = inv.volumes().find(|v| v.name == "ox-vol2").unwrap();
        assert_eq!(vol.driver, "local");
        assert!(vol.created_at.unwrap() > 1_700_000_000_000_000_000);
        let net = inv.networks().find(|n| n.name == "podman").unwrap();
        assert_eq!(
            (net.driver.as_str(), net.interface.as_str()),
            ("bridge", "cni-podman0")
        );
        let mut again = inv.clone();
        again.replace_images(vec![]);
        again.replace_volumes(vec![]);
        again.replace_networks(vec![]);
        assert_eq!(
            again.images().count() + again.volumes().count() + again.networks().count(),
            0
        );
    }

    /// `tag` and `untag` of a known image add and take its names; a tag of an unknown image
    /// waits for the refresh; taking its last name makes it dangling.
    #[test]
    fn tag_and_untag_move_names() {
        let mut inv = listed();
        let id = inv
            .images()
            .find(|i| i.id.starts_with("f933"))
            .unwrap()
            .id
            .clone();
        inv.apply(&ev(
            "image",
            "tag",
            &id,
            serde_json::json!({"name": "localhost/x:2"}),
        ));
        inv.apply(&ev(
            "image",
            "tag",
            &id,
            serde_json::json!({"name": "localhost/x:2"}),
        ));
        inv.apply(&ev(
            "image",
            "tag",
            "unknown",
            serde_json::json!({"name": "localhost/y:1"}),
        ));
        let img = |inv: &Inventory| inv.images().find(|i| i.id == id).unwrap().clone();
        assert_eq!(
            img(&inv).names,
            vec![
                ("localhost/ox-committed".into(), "1".into()),
                ("localhost/x".into(), "2".into())
            ]
        );
        inv.apply(&ev(
            "image",
            "untag",
            &id,
            serde_json::json!({"name": "localhost/x:2"}),
        ));
        inv.apply(&ev(
            "image",
            "untag",
            &id,
            serde_json::json!({"name": "localhost/ox-committed:1"}),
        ));
        assert!(img(&inv).names.is_empty());
        assert_eq!(
            img(&inv).series_names().collect::<Vec<_>>(),
            vec![(NONE, NONE)]
        );
        assert_eq!(inv.counters().total_events(), 5, "every event is counted");
    }

    /// `remove` drops an image by ID, a volume by name (`remove` and `prune`), a network by name
    /// or ID; creations and pulls wait for the refresh.
    #[test]
    fn removals_apply_at_once_and_creations_wait_for_the_list() {
        let mut inv = listed();
        let id = inv
            .images()
            .find(|i| i.id.starts_with("7287"))
            .unwrap()
            .id
            .clone();
        inv.apply(&ev("image", "remove", &id, serde_json::json!({"name": ""})));
        inv.apply(&ev("image", "remove", "", serde_json::json!({"name": "x"})));
        inv.apply(&ev(
            "image",
            "pull",
            "",
            serde_json::json!({"name": "localhost/new:1"}),
        ));
        assert_eq!(inv.images().count(), 2);
        inv.apply(&ev(
            "volume",
            "remove",
            "",
            serde_json::json!({"name": "ox-vol2"}),
        ));
        inv.apply(&ev(
            "volume",
            "prune",
            "",
            serde_json::json!({"name": "volX"}),
        ));
        inv.apply(&ev(
            "volume",
            "create",
            "",
            serde_json::json!({"name": "new"}),
        ));
        assert_eq!(names(inv.volumes(), |v| &v.name), vec!["ox-vol1"]);
        let net2 = inv
            .networks()
            .find(|n| n.name == "ox-net2")
            .unwrap()
            .id
            .clone();
        let neta = inv
            .networks()
            .find(|n| n.name == "netA")
            .unwrap()
            .id
            .clone();
        inv.apply(&ev(
            "network",
            "remove",
            &net2,
            serde_json::json!({"network": "ox-net2"}),
        ));
        inv.apply(&ev("network", "remove", &neta, serde_json::json!({})));
        inv.apply(&ev(
            "network",
            "create",
            "n",
            serde_json::json!({"network": "n"}),
        ));
        inv.apply(&ev(
            "network",
            "connect",
            "c",
            serde_json::json!({"name": "c"}),
        ));
        assert_eq!(names(inv.networks(), |n| &n.name), vec!["podman"]);
    }

    /// Replayed events older than the resync's lists move nothing: the lists already show them.
    #[test]
    fn events_older_than_the_lists_move_nothing() {
        let mut inv = inventory();
        inv.resync(vec![], vec![], 100);
        inv.replace_volumes(serde_json::from_str(VOLUMES).unwrap());
        inv.apply(&ev(
            "volume",
            "remove",
            "",
            serde_json::json!({"name": "volX"}),
        ));
        assert_eq!(inv.volumes().count(), 3);
        assert_eq!(inv.counters().total_events(), 1);
    }

    /// The real 4.3.1 session, applied to the lists taken in its middle, ends where Podman
    /// ended: the busybox image and nothing else the session made.
    #[test]
    fn the_real_session_converges() {
        let mut inv = listed();
        let events: Vec<Event> = EVENTS
            .lines()
            .filter_map(|l| match decode_stream_line(l.as_bytes()) {
                Ok(StreamItem::Event(e)) => Some(*e),
                _ => None,
            })
            .collect();
        let lists_taken = events
            .iter()
            .position(|e| e.kind() == "container" && e.action() == "remove")
            .unwrap();
        for e in &events[lists_taken..] {
            inv.apply(e);
        }
        // The capture's lists were taken after the volume and network were created; the events
        // after them remove what the session made (the network's removal has no event on 4.3).
        assert!(!image_names(&inv)
            .iter()
            .any(|(_, r, _)| r == "localhost/ox-committed"));
        assert!(inv
            .volumes()
            .all(|v| !v.name.starts_with("ox-") && v.name != "volX"));
    }
}
