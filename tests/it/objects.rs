//! Images, volumes, networks and the engine's component versions as sealwatch shows them equal
//! `podman images`, `podman volume ls`, `podman network ls` and `podman info` within seconds of a
//! change made while sealwatch runs, and after a fresh start (the resync), on a real private
//! Podman service (4.3.1, 5.4.2 and 6.1.1, file and journald events). No registry is reached:
//! images come from the service's own busybox image, by tag, commit and untag.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::{wait_until, Engine, PodmanService, Sealwatch, BUSYBOX_IMAGE};

const SETTLE: Duration = Duration::from_secs(20);
/// Refreshes follow a change within about a second; generous for a loaded machine.
const MATCH_WITHIN: Duration = Duration::from_secs(15);

type Rows = BTreeSet<Vec<String>>;

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Repository and tag of a `repo:tag` name, read independently of sealwatch's own code.
fn repo_tag(name: &str) -> (String, String) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (
            name[..slash + i].to_owned(),
            name[slash + i + 1..].to_owned(),
        ),
        None => (name.to_owned(), "<none>".to_owned()),
    }
}

fn list(svc: &PodmanService, args: &[&str]) -> Result<Vec<Value>, String> {
    let out = svc.try_podman(args);
    if !out.status.success() {
        return Err(format!(
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str(&text).map_err(|e| e.to_string())? {
        Value::Array(a) => Ok(a),
        other => Ok(vec![other]),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Podman's images: (id, repository, tag, digest, size, created) per name, `<none>` when dangling.
fn podman_images(svc: &PodmanService) -> Result<Rows, String> {
    let mut rows = Rows::new();
    for i in list(svc, &["images", "--format", "json"])? {
        let names: Vec<String> = i["Names"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        let pairs: Vec<(String, String)> = if names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            names.iter().map(|n| repo_tag(n)).collect()
        };
        for (repo, tag) in pairs {
            rows.insert(vec![
                short(&s(&i["Id"])),
                repo,
                tag,
                s(&i["Digest"]),
                s(&i["Size"]),
                s(&i["Created"]),
            ]);
        }
    }
    Ok(rows)
}

fn value_of(sw: &Sealwatch, family: &str, labels: &[(&str, &str)]) -> String {
    sw.scrape()
        .series(family)
        .find(|x| labels.iter().all(|(k, v)| x.label(k) == Some(*v)))
        .map_or_else(|| "absent".into(), |x| format!("{}", x.value))
}

fn sealwatch_images(sw: &Sealwatch) -> Rows {
    let m = sw.scrape();
    let l = |x: &crate::support::exposition::Sample, k: &str| x.label(k).unwrap_or("").to_owned();
    let mut rows = Rows::new();
    for x in m.series("podman_image_info") {
        let key = [
            ("id", l(x, "id")),
            ("repository", l(x, "repository")),
            ("tag", l(x, "tag")),
        ];
        let find = |family: &str| {
            m.series(family)
                .find(|y| key.iter().all(|(k, v)| y.label(k) == Some(v.as_str())))
                .map_or_else(|| "absent".into(), |y| format!("{}", y.value))
        };
        rows.insert(vec![
            key[0].1.clone(),
            key[1].1.clone(),
            key[2].1.clone(),
            l(x, "digest"),
            find("podman_image_size_bytes"),
            find("podman_image_created_seconds"),
        ]);
    }
    rows
}

/// Podman's volumes: (name, driver, mountpoint), and each one's creation time in unix seconds.
fn podman_volumes(svc: &PodmanService) -> Result<(Rows, Vec<(String, f64)>), String> {
    let (mut rows, mut created) = (Rows::new(), Vec::new());
    for v in list(svc, &["volume", "ls", "--format", "json"])? {
        let at = chrono::DateTime::parse_from_rfc3339(&s(&v["CreatedAt"]))
            .map_err(|e| format!("CreatedAt: {e}"))?;
        created.push((s(&v["Name"]), at.timestamp_micros() as f64 / 1e6));
        rows.insert(vec![s(&v["Name"]), s(&v["Driver"]), s(&v["Mountpoint"])]);
    }
    Ok((rows, created))
}

/// Each volume's `podman_volume_created_seconds` is Podman's `CreatedAt` (within the float's
/// precision).
fn volume_times_match(sw: &Sealwatch, created: &[(String, f64)]) -> Result<(), String> {
    let m = sw.scrape();
    for (name, want) in created {
        let got = m.try_value("podman_volume_created_seconds", &[("name", name)])?;
        if (got - want).abs() > 1e-5 {
            return Err(format!(
                "volume {name} created: podman {want}, sealwatch {got}"
            ));
        }
    }
    Ok(())
}

fn sealwatch_volumes(sw: &Sealwatch) -> Rows {
    sw.scrape()
        .series("podman_volume_info")
        .map(|x| {
            ["name", "driver", "mountpoint"]
                .iter()
                .map(|k| x.label(k).unwrap_or("").to_owned())
                .collect()
        })
        .collect()
}

/// Podman's networks: (id, name, driver, interface).
fn podman_networks(svc: &PodmanService) -> Result<Rows, String> {
    Ok(list(svc, &["network", "ls", "--format", "json"])?
        .iter()
        .map(|n| {
            vec![
                short(&s(&n["id"])),
                s(&n["name"]),
                s(&n["driver"]),
                s(&n["network_interface"]),
            ]
        })
        .collect())
}

fn sealwatch_networks(sw: &Sealwatch) -> Rows {
    sw.scrape()
        .series("podman_network_info")
        .map(|x| {
            ["id", "name", "driver", "interface"]
                .iter()
                .map(|k| x.label(k).unwrap_or("").to_owned())
                .collect()
        })
        .collect()
}

/// Podman's components: conmon version, runtime name and version, buildah version.
fn podman_components(svc: &PodmanService) -> Result<Vec<String>, String> {
    let info = list(svc, &["info", "--format", "json"])?;
    let host = &info.first().ok_or("podman info: empty")?["host"];
    let word = |text: &str, n: usize| {
        text.lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(n))
            .unwrap_or("")
            .trim_end_matches(',')
            .to_owned()
    };
    Ok(vec![
        word(&s(&host["conmon"]["version"]), 2),
        s(&host["ociRuntime"]["name"]),
        word(&s(&host["ociRuntime"]["version"]), 2),
        s(&host["buildahVersion"]),
    ])
}

fn sealwatch_components(sw: &Sealwatch) -> Vec<String> {
    let m = sw.scrape();
    let Some(x) = m.series("podman_engine_components_info").next() else {
        return vec!["absent".into()];
    };
    [
        "conmon_version",
        "runtime",
        "runtime_version",
        "buildah_version",
    ]
    .iter()
    .map(|k| x.label(k).unwrap_or("").to_owned())
    .collect()
}

/// Waits until every family equals Podman's own lists.
fn compare(svc: &PodmanService, sw: &Sealwatch, when: &str) {
    wait_until(
        &format!("images, volumes, networks and components equal podman's ({when})"),
        MATCH_WITHIN,
        || {
            let mut diffs = Vec::new();
            let (volumes, created) = podman_volumes(svc)?;
            let pairs = [
                ("images", podman_images(svc)?, sealwatch_images(sw)),
                ("volumes", volumes, sealwatch_volumes(sw)),
                ("networks", podman_networks(svc)?, sealwatch_networks(sw)),
            ];
            for (what, want, got) in pairs {
                if want != got {
                    diffs.push(format!(
                        "{what}:\n  podman    {want:?}\n  sealwatch {got:?}"
                    ));
                }
            }
            let (want, got) = (podman_components(svc)?, sealwatch_components(sw));
            if want != got {
                diffs.push(format!("components: podman {want:?}, sealwatch {got:?}"));
            }
            if let Err(e) = volume_times_match(sw, &created) {
                diffs.push(e);
            }
            if diffs.is_empty() {
                Ok(())
            } else {
                Err(diffs.join("\n"))
            }
        },
    );
}

/// Tags, a commit (named and dangling), volumes and networks created and removed, an untag and
/// an image removal while sealwatch runs: every family equals Podman's lists after each step, and
/// a sealwatch started afterwards shows the same from its first lists.
#[test]
fn objects_equal_podmans_lists_moments_after_a_change() {
    objects(Engine::DEFAULT);
}
on_other_engines!(objects_equal_podmans_lists_moments_after_a_change, objects);

fn objects(engine: Engine) {
    let svc = PodmanService::start_with(engine);
    let url = format!("local={}", svc.url());
    let sw = Sealwatch::start(&["--podman.url", &url]);
    sw.wait_ready(200, SETTLE);
    compare(&svc, &sw, "at start");

    svc.podman(&["tag", BUSYBOX_IMAGE, "localhost/ow-tagged:v1"]);
    svc.podman(&["tag", BUSYBOX_IMAGE, "localhost/ow-tagged:v2"]);
    svc.podman(&["volume", "create", "ow-vol1"]);
    svc.podman(&["volume", "create", "--label", "team=a", "ow-vol2"]);
    svc.podman(&["network", "create", "ow-net1"]);
    svc.podman(&["network", "create", "--label", "x=y", "ow-net2"]);
    // Podman 4.3 writes no event for a new network: sealwatch lists the networks again when a
    // container is created (the first use of a network), as the README says.
    svc.podman(&["create", "--name", "ow-c1", BUSYBOX_IMAGE, "true"]);
    svc.podman(&["commit", "-q", "ow-c1", "localhost/ow-committed:1"]);
    svc.podman(&["commit", "-q", "ow-c1"]);
    compare(&svc, &sw, "after creating");
    assert_eq!(
        value_of(&sw, "podman_image_info", &[("repository", "<none>")]),
        "1",
        "the dangling commit is shown as <none>"
    );

    svc.podman(&["untag", "localhost/ow-committed:1"]);
    svc.podman(&["rmi", "localhost/ow-tagged:v1"]);
    svc.podman(&["volume", "rm", "ow-vol2"]);
    svc.podman(&["network", "rm", "ow-net2"]);
    svc.podman(&["rm", "ow-c1"]);
    svc.podman(&["create", "--name", "ow-c2", BUSYBOX_IMAGE, "true"]);
    compare(&svc, &sw, "after removing");

    let fresh = Sealwatch::start(&["--podman.url", &url]);
    fresh.wait_ready(200, SETTLE);
    compare(&svc, &fresh, "a fresh sealwatch's resync");
    svc.podman(&["rm", "ow-c2"]);
}
