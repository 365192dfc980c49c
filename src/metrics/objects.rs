//! The families of the engine's other objects: `podman_image_info`, `podman_image_size_bytes`,
//! `podman_image_created_seconds`, `podman_volume_info`, `podman_volume_created_seconds`,
//! `podman_network_info` and `podman_engine_components_info`.
//!
//! Owns turning each engine's images, volumes, networks and component versions into series: one
//! per image name (`repo:tag`; a dangling image as `<none>`, `<none>`), per volume, per network.
//! No user-defined label of an image, volume or network becomes a metric label, so the series
//! count is the object count. Never reads anything but the snapshots.

use super::exposition::{Exposition, Kind};
use crate::inventory::{short_id, Image};
use crate::snapshot::EngineView;

pub fn write(out: &mut Exposition, views: &[EngineView]) {
    let images = || {
        views.iter().flat_map(|v| {
            v.inventory.images().flat_map(move |i| {
                i.series_names()
                    .map(move |(repo, tag)| (&*v.name, short_id(&i.id), repo, tag, &**i))
            })
        })
    };
    out.family(
        "podman_image_info",
        "Image metadata, one series per repository and tag; always 1.",
        Kind::Gauge,
        images().map(|(engine, id, repo, tag, i)| {
            (
                [
                    ("engine", Some(engine)),
                    ("id", Some(id)),
                    ("repository", Some(repo)),
                    ("tag", Some(tag)),
                    ("digest", Some(i.digest.as_str())),
                ],
                1,
            )
        }),
    );
    // The size and creation time of each image name, labelled like its info series but for
    // the digest.
    let per_name = |value: fn(&Image) -> i128| {
        images().map(move |(engine, id, repo, tag, i)| {
            (
                [
                    ("engine", Some(engine)),
                    ("id", Some(id)),
                    ("repository", Some(repo)),
                    ("tag", Some(tag)),
                ],
                value(i),
            )
        })
    };
    out.family(
        "podman_image_size_bytes",
        "Image size in bytes, as podman images shows it.",
        Kind::Gauge,
        per_name(|i| i128::from(i.size)),
    );
    out.family(
        "podman_image_created_seconds",
        "Unix time the image was created.",
        Kind::Gauge,
        per_name(|i| i128::from(i.created)),
    );
    out.family(
        "podman_volume_info",
        "Volume metadata; always 1.",
        Kind::Gauge,
        views.iter().flat_map(|v| {
            v.inventory.volumes().map(move |vol| {
                (
                    [
                        ("engine", Some(&*v.name)),
                        ("name", Some(vol.name.as_str())),
                        ("driver", Some(vol.driver.as_str())),
                        ("mountpoint", Some(vol.mountpoint.as_str())),
                    ],
                    1,
                )
            })
        }),
    );
    // Unix times with their nanoseconds: written by hand, as the container times are.
    let created: Vec<(&str, &str, i64)> = views
        .iter()
        .flat_map(|v| {
            v.inventory
                .volumes()
                .filter_map(move |vol| Some((&*v.name, vol.name.as_str(), vol.created_at?)))
        })
        .collect();
    if !created.is_empty() {
        out.descriptor(
            "podman_volume_created_seconds",
            "Unix time the volume was created.",
            Kind::Gauge,
        );
        for (engine, name, nanos) in created {
            let text = out.out();
            text.push_str("podman_volume_created_seconds");
            super::exposition::push_value(text, "{engine=\"", engine);
            super::exposition::push_value(text, ",name=\"", name);
            text.push_str("} ");
            super::exposition::push_seconds(text, nanos);
            text.push('\n');
        }
    }
    out.family(
        "podman_network_info",
        "Network metadata; always 1.",
        Kind::Gauge,
        views.iter().flat_map(|v| {
            v.inventory.networks().map(move |n| {
                (
                    [
                        ("engine", Some(&*v.name)),
                        ("id", Some(short_id(&n.id))),
                        ("name", Some(n.name.as_str())),
                        ("driver", Some(n.driver.as_str())),
                        ("interface", Some(n.interface.as_str())),
                    ],
                    1,
                )
            })
        }),
    );
    out.family(
        "podman_engine_components_info",
        "Versions of the engine's conmon, OCI runtime and buildah, from its info; always 1.",
        Kind::Gauge,
        views.iter().filter_map(|v| {
            let c = v.inventory.components()?;
            Some((
                [
                    ("engine", Some(&*v.name)),
                    ("conmon_version", Some(c.conmon_version.as_str())),
                    ("runtime", Some(c.runtime.as_str())),
                    ("runtime_version", Some(c.runtime_version.as_str())),
                    ("buildah_version", Some(c.buildah_version.as_str())),
                ],
                1,
            ))
        }),
    );
}
