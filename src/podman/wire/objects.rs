//! Serde types for the lists of images, volumes and networks and for `GET /libpod/info`.
//!
//! Owns the tolerant decoding of those answers in Podman 4.x, 5.x and 6.x: every field some
//! version omits or writes as `null` is defaulted. Never interprets what a field means for the
//! inventory (splitting `repo:tag`, parsing version strings): that is `inventory`'s job.

use serde::Deserialize;

use super::null_as_default;

/// One entry of `GET /libpod/images/json` (without `all=true`, as `podman images` lists).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListImage {
    #[serde(rename = "Id")]
    pub id: String,
    /// `repo:tag` names; `null` for a dangling image.
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_default")]
    pub repo_tags: Vec<String>,
    #[serde(rename = "Digest", default)]
    pub digest: String,
    /// Unix seconds.
    #[serde(rename = "Created", default)]
    pub created: i64,
    #[serde(rename = "Size", default)]
    pub size: i64,
}

/// One entry of `GET /libpod/volumes/json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListVolume {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Driver", default)]
    pub driver: String,
    #[serde(rename = "Mountpoint", default)]
    pub mountpoint: String,
    /// RFC3339 with nanoseconds.
    #[serde(rename = "CreatedAt", default)]
    pub created_at: String,
}

/// One entry of `GET /libpod/networks/json` (netavark's and CNI's shape alike: lower case).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListNetwork {
    pub name: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub network_interface: String,
}

/// The parts of `GET /libpod/info` sealwatch shows: the engine's component versions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Info {
    #[serde(default)]
    pub host: InfoHost,
    #[serde(default)]
    pub version: InfoVersion,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoHost {
    #[serde(default)]
    pub buildah_version: String,
    #[serde(default)]
    pub conmon: InfoComponent,
    #[serde(rename = "ociRuntime", default)]
    pub oci_runtime: InfoComponent,
    /// Total memory of the engine's host, bytes: Podman's stats report it as the limit of a
    /// container without one.
    #[serde(default)]
    pub mem_total: u64,
}

/// `host.conmon` or `host.ociRuntime`: `version` is the tool's own `--version` text.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InfoComponent {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InfoVersion {
    #[serde(rename = "APIVersion", default)]
    pub api_version: String,
    #[serde(rename = "Version", default)]
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real 4.3.1 and 5.4.2 answers decode, dangling images (`RepoTags: null`) included.
    #[test]
    fn real_lists_and_info_decode() {
        let images: Vec<ListImage> = serde_json::from_str(include_str!(
            "../../../tests/fixtures/objects/images-json.json"
        ))
        .unwrap();
        assert!(images.iter().any(|i| i.repo_tags.is_empty()));
        assert!(images.iter().all(|i| i.size > 0 && i.created > 0));
        let volumes: Vec<ListVolume> = serde_json::from_str(include_str!(
            "../../../tests/fixtures/objects/volumes-json.json"
        ))
        .unwrap();
        assert!(volumes.iter().all(|v| v.driver == "local"));
        let networks: Vec<ListNetwork> = serde_json::from_str(include_str!(
            "../../../tests/fixtures/objects/networks-json.json"
        ))
        .unwrap();
        assert!(networks.iter().any(|n| n.name == "podman"));
        let info: Info =
            serde_json::from_str(include_str!("../../../tests/fixtures/info.json")).unwrap();
        assert_eq!(info.host.oci_runtime.name, "runc");
        assert!(info.host.conmon.version.starts_with("conmon version"));
        assert_eq!(info.version.api_version, "4.3.1");
        let info: Info =
            serde_json::from_str(include_str!("../../../tests/fixtures/5.4.2/info.json")).unwrap();
        assert_eq!(info.host.buildah_version, "1.39.3");
    }
}
