//! The systemd unit and the Quadlet unit under deploy/: well-formed, verified by systemd where
//! that can run here, and their sealwatch flags accepted by the real binary.

use super::repo;
use crate::support::binary;
use crate::support::unit_file::{assert_systemd_verifies, unit_entries, unit_values};

/// Runs the sealwatch binary with `args` + `healthcheck` and only `env` from the unit: the
/// subcommand validates the whole command line first (exit 2 with one line on a bad flag, URL or
/// address), then probes the listen address (exit 0 or 1, either is fine here).
fn assert_sealwatch_accepts(what: &str, args: &[&str], env: &[(String, String)]) {
    let out = binary::command()
        .args(args)
        .arg("healthcheck")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run sealwatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)) && !stderr.contains("--help"),
        "{what}: sealwatch rejects the command line {args:?} (env {env:?}): {}\n{stderr}",
        out.status
    );
}

/// The systemd unit for the host binary passes `systemd-analyze verify` with no warnings
/// (ExecStart pointed at the freshly built binary), and sealwatch accepts its ExecStart flags.
#[test]
fn systemd_unit_verifies_and_its_flags_are_valid() {
    let unit = repo().join("deploy/systemd/sealwatch.service");
    let entries = unit_entries(&unit);
    let exec = unit_values(&entries, "Service", "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart: {exec:?}");
    assert!(
        !exec[0].contains(['"', '\'']),
        "quoting in ExecStart is not handled here"
    );
    let argv: Vec<&str> = exec[0].split_whitespace().collect();
    assert_eq!(argv[0], "/usr/local/bin/sealwatch", "ExecStart binary");
    assert_sealwatch_accepts(
        "deploy/systemd/sealwatch.service ExecStart",
        &argv[1..],
        &[],
    );

    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&unit)
        .unwrap()
        .replace("/usr/local/bin/sealwatch", env!("CARGO_BIN_EXE_sealwatch"));
    let copy = dir.path().join("sealwatch.service");
    std::fs::write(&copy, text).unwrap();
    assert_systemd_verifies("sealwatch.service", &copy, dir.path());
}

/// Keys Quadlet 4.4 (the first release with Quadlet) accepts in `[Container]`; it rejects a unit
/// with any other key. From containers/podman v4.4.0 pkg/systemd/quadlet/quadlet.go.
const QUADLET_4_4_CONTAINER_KEYS: &[&str] = &[
    "ContainerName",
    "Image",
    "Environment",
    "EnvironmentFile",
    "EnvironmentHost",
    "Exec",
    "NoNewPrivileges",
    "DropCapability",
    "AddCapability",
    "ReadOnly",
    "RemapUsers",
    "RemapUid",
    "RemapGid",
    "RemapUidSize",
    "Notify",
    "ExposeHostPort",
    "PublishPort",
    "User",
    "Group",
    "Volume",
    "PodmanArgs",
    "Label",
    "Annotation",
    "RunInit",
    "VolatileTmp",
    "Timezone",
    "SeccompProfile",
    "AddDevice",
    "Network",
];

/// The Quadlet unit (which cannot run here: Podman 4.3) uses only keys Quadlet 4.4 supports, mounts
/// the socket its `--podman.url` points at, sets the listen address in the environment (where the
/// HEALTHCHECK sees it), and sealwatch accepts its Exec flags with that environment.
#[test]
fn quadlet_unit_is_consistent() {
    let unit = repo().join("deploy/quadlet/sealwatch.container");
    let entries = unit_entries(&unit);
    for (s, k, _) in &entries {
        if s == "Container" {
            assert!(
                QUADLET_4_4_CONTAINER_KEYS.contains(&k.as_str()),
                "{}: [Container] key {k} is not supported by Quadlet 4.4",
                unit.display()
            );
        }
    }
    assert_eq!(
        unit_values(&entries, "Container", "Image").len(),
        1,
        "one Image="
    );
    let exec = unit_values(&entries, "Container", "Exec");
    assert_eq!(exec.len(), 1, "one Exec=: {exec:?}");
    assert!(
        !exec[0].contains(['"', '\'']),
        "quoting in Exec is not handled here"
    );
    let args: Vec<&str> = exec[0].split_whitespace().collect();
    let env: Vec<(String, String)> = unit_values(&entries, "Container", "Environment")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("Environment=K=V");
            (k.to_string(), v.to_string())
        })
        .collect();
    assert!(
        env.iter().any(|(k, _)| k == "SEALWATCH_WEB_LISTEN_ADDRESS"),
        "the listen address belongs in Environment= so the HEALTHCHECK process sees it"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--web.listen-address")),
        "--web.listen-address in Exec= is invisible to the HEALTHCHECK"
    );
    assert_sealwatch_accepts("deploy/quadlet/sealwatch.container Exec", &args, &env);

    // Every unix socket it watches is mounted.
    let volumes = unit_values(&entries, "Container", "Volume");
    for a in &args {
        if let Some(url) = a.strip_prefix("--podman.url=") {
            let url = url.split_once('=').map_or(url, |(_, u)| u);
            if let Some(path) = url.strip_prefix("unix://") {
                assert!(
                    volumes.iter().any(|v| v.split(':').nth(1) == Some(path)),
                    "{}: {path} is watched but not mounted (Volume= {volumes:?})",
                    unit.display()
                );
            }
        }
    }
    let port = env
        .iter()
        .find(|(k, _)| k == "SEALWATCH_WEB_LISTEN_ADDRESS")
        .and_then(|(_, v)| v.rsplit(':').next())
        .unwrap();
    assert!(
        unit_values(&entries, "Container", "PublishPort")
            .iter()
            .any(|p| p.ends_with(&format!(":{port}"))),
        "the listen port {port} is not published"
    );
}
