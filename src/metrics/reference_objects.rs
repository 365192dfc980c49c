//! The reference for the image, volume, network and component families: computed the plain way
//! from the snapshots (ordered maps, `repo:tag` read again here) and encoded by prometheus-client,
//! sharing no code with `objects`.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::reference::{emit, labels, Series};
use crate::snapshot::EngineView;

pub fn encode(e: &mut DescriptorEncoder, views: &[EngineView]) -> std::fmt::Result {
    let gauge = MetricType::Gauge;
    let (mut info, mut size, mut created) = (Series::new(), Series::new(), Series::new());
    let (mut vol_info, mut vol_created, mut net_info, mut comp) =
        (Series::new(), Series::new(), Series::new(), Series::new());
    for v in views {
        let engine = Some(&*v.name);
        for i in v.inventory.images() {
            let id = &i.id[..12.min(i.id.len())];
            let mut names = i.names.clone();
            if names.is_empty() {
                names.push(("<none>".into(), "<none>".into()));
            }
            for (repo, tag) in &names {
                let base = [
                    ("engine", engine),
                    ("id", Some(id)),
                    ("repository", Some(repo.as_str())),
                    ("tag", Some(tag.as_str())),
                ];
                let mut with_digest = base.to_vec();
                with_digest.push(("digest", Some(i.digest.as_str())));
                info.insert(labels(&with_digest), 1.0);
                size.insert(labels(&base), i.size as f64);
                created.insert(labels(&base), i.created as f64);
            }
        }
        for vol in v.inventory.volumes() {
            vol_info.insert(
                labels(&[
                    ("engine", engine),
                    ("name", Some(&vol.name)),
                    ("driver", Some(&vol.driver)),
                    ("mountpoint", Some(&vol.mountpoint)),
                ]),
                1.0,
            );
            if let Some(t) = vol.created_at {
                vol_created.insert(
                    labels(&[("engine", engine), ("name", Some(&vol.name))]),
                    t as f64 / 1e9,
                );
            }
        }
        for n in v.inventory.networks() {
            net_info.insert(
                labels(&[
                    ("engine", engine),
                    ("id", Some(&n.id[..12.min(n.id.len())])),
                    ("name", Some(&n.name)),
                    ("driver", Some(&n.driver)),
                    ("interface", Some(&n.interface)),
                ]),
                1.0,
            );
        }
        if let Some(c) = v.inventory.components() {
            comp.insert(
                labels(&[
                    ("engine", engine),
                    ("conmon_version", Some(&c.conmon_version)),
                    ("runtime", Some(&c.runtime)),
                    ("runtime_version", Some(&c.runtime_version)),
                    ("buildah_version", Some(&c.buildah_version)),
                ]),
                1.0,
            );
        }
    }
    emit(
        e,
        "podman_image_info",
        "Image metadata, one series per repository and tag; always 1.",
        gauge,
        info,
    )?;
    emit(
        e,
        "podman_image_size_bytes",
        "Image size in bytes, as podman images shows it.",
        gauge,
        size,
    )?;
    emit(
        e,
        "podman_image_created_seconds",
        "Unix time the image was created.",
        gauge,
        created,
    )?;
    emit(
        e,
        "podman_volume_info",
        "Volume metadata; always 1.",
        gauge,
        vol_info,
    )?;
    emit(
        e,
        "podman_volume_created_seconds",
        "Unix time the volume was created.",
        gauge,
        vol_created,
    )?;
    emit(
        e,
        "podman_network_info",
        "Network metadata; always 1.",
        gauge,
        net_info,
    )?;
    emit(
        e,
        "podman_engine_components_info",
        "Versions of the engine's conmon, OCI runtime and buildah, from its info; always 1.",
        gauge,
        comp,
    )
}
