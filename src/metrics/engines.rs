//! The engine families: `podman_up`, `podman_engine_info` and `podman_pod_info`.
//!
//! Owns what each engine's status and pods say as series, one scrape's snapshots in, text out.
//! Never reads anything but the snapshots.

use super::exposition::{Exposition, Kind};
use crate::snapshot::EngineView;

pub fn write(out: &mut Exposition, views: &[EngineView]) {
    out.family(
        "podman_up",
        "1 while the engine's event stream is open and its inventory is synced, else 0.",
        Kind::Gauge,
        views
            .iter()
            .map(|v| ([("engine", Some(&*v.name))], i128::from(v.ready()))),
    );
    out.family(
        "podman_engine_info",
        "Podman engine version; 1 once the engine has answered.",
        Kind::Gauge,
        views.iter().filter_map(|v| {
            let st = &v.status;
            Some((
                [
                    ("engine", Some(&*v.name)),
                    ("version", Some(st.version.as_deref()?)),
                    ("api_version", Some(st.api_version.as_deref().unwrap_or(""))),
                ],
                1,
            ))
        }),
    );
    out.family(
        "podman_pod_info",
        "Pod metadata; always 1.",
        Kind::Gauge,
        views.iter().flat_map(|v| {
            v.inventory.pods().map(move |p| {
                (
                    [
                        ("engine", Some(&*v.name)),
                        ("pod", Some(p.name.as_str())),
                        ("pod_id", Some(p.id.as_str())),
                        ("infra_id", Some(p.infra_id.as_deref().unwrap_or(""))),
                    ],
                    1,
                )
            })
        }),
    );
}
