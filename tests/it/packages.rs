//! The Debian package and the RPM built by scripts/package.sh: the .deb installed on this machine
//! with apt-get (its unit verified by systemd-analyze, its binary run, then purged without a
//! trace), the RPM's file list, metadata, config files and scriptlets read with rpm.
//!
//! Needs dpkg-deb, rpmbuild and rpm (Debian's `rpm` package), systemd-analyze (`systemd`), root
//! for apt-get, and the static release binary (the script builds it: scripts/build-static.sh).
//! Fails, never skips, when one is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::support::process::{assert_success, run_bounded, run_tool};
use crate::support::unit_file::assert_systemd_verifies;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The version both packages carry: Cargo.toml's.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Files both packages install, apart from the unit and the environment file whose places differ.
const SHARED_FILES: &[&str] = &[
    "/usr/bin/sealwatch",
    "/usr/share/sealwatch/dashboards/sealwatch-overview.json",
    "/usr/share/sealwatch/dashboards/sealwatch-pod.json",
    "/usr/share/sealwatch/prometheus/alerts.yml",
    "/usr/share/sealwatch/prometheus/podman-exporter-codes.yml",
    "/usr/share/sealwatch/prometheus/prometheus.yml",
    "/usr/share/doc/sealwatch/README.md",
    "/usr/share/doc/sealwatch/copyright",
];

struct Built {
    _dir: tempfile::TempDir,
    deb: PathBuf,
    rpm: PathBuf,
}

/// Runs scripts/package.sh once for the whole module; it prints the .deb's and the .rpm's paths.
/// It packages the static binary scripts/test.sh built (checked fresh by `static_binary`) rather
/// than running cargo itself: the environment `cargo test` gives a test (`CARGO_MANIFEST_DIR`,
/// the build script's `SEALWATCH_REVISION`) differs from a shell's, and cargo would rebuild the
/// release binary for it, which cost two and a half minutes of every run.
fn packages() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = repo().join("scripts/package.sh");
        let mut cmd = Command::new(&script);
        cmd.arg(dir.path())
            .env("SEALWATCH_BINARY", crate::image::static_binary())
            .current_dir(repo());
        // Bounded, so that a hung packaging tool fails the test rather than the whole run.
        let out = run_bounded(cmd, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("scripts/package.sh: {e}"));
        let stdout = assert_success("scripts/package.sh", &out);
        let paths: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
        assert_eq!(paths.len(), 2, "package.sh prints two paths: {stdout}");
        let deb = paths[0].clone();
        let rpm = paths[1].clone();
        assert_eq!(
            deb.file_name().unwrap().to_str().unwrap(),
            format!("sealwatch_{VERSION}-1_amd64.deb")
        );
        assert_eq!(
            rpm.file_name().unwrap().to_str().unwrap(),
            format!("sealwatch-{VERSION}-1.x86_64.rpm")
        );
        assert!(deb.is_file() && rpm.is_file(), "{stdout}");
        Built {
            _dir: dir,
            deb,
            rpm,
        }
    })
}

fn tool(what: &str, package: &str, args: &[&str]) -> String {
    let out = run_tool(what, package, args, Path::new("/"), "");
    assert_success(&format!("{what} {}", args.join(" ")), &out)
}

/// What the installed (or packaged) unit must say: the packaged binary and the distribution's
/// environment file, no flag in ExecStart that would override a variable from that file.
fn assert_unit_text(unit: &str, env_file: &str) {
    let exec: Vec<&str> = unit
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(exec, ["ExecStart=/usr/bin/sealwatch"], "{unit}");
    assert!(
        unit.lines()
            .any(|l| l == format!("EnvironmentFile=-{env_file}")),
        "the unit does not read {env_file}:\n{unit}"
    );
    assert!(!unit.contains("/usr/local/bin"), "{unit}");
}

/// Every variable the shipped environment file mentions, uncommented: sealwatch must accept
/// each (the web config file's example path does not exist here and is left out).
fn assert_env_file_values_accepted(bin: &str, text: &str) {
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.starts_with("SEALWATCH_") && !l.starts_with("SEALWATCH_WEB_CONFIG_FILE"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(vars.len() >= 4, "too few example variables: {vars:?}");
    let mut cmd = Command::new(bin);
    cmd.arg("healthcheck")
        .envs(vars.iter().map(|(k, v)| (k, v)));
    let out = run_bounded(cmd, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "sealwatch rejects the environment file's examples {vars:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Serialises the tests that install into this machine's package database.
static DPKG: Mutex<()> = Mutex::new(());

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// The .deb installs with apt-get on this machine: its files are in place, the environment
/// file is a conffile, the installed unit passes `systemd-analyze verify`, the installed binary
/// runs; `apt-get remove --purge` then leaves none of its files behind.
#[test]
fn deb_installs_verifies_runs_and_purges() {
    let _lock = DPKG.lock().unwrap_or_else(|e| e.into_inner());
    let built = packages();
    assert!(
        !installed("sealwatch") && !Path::new("/usr/bin/sealwatch").exists(),
        "sealwatch is already installed on this machine; remove it first"
    );

    let listing = tool("dpkg-deb", "dpkg", &["-c", built.deb.to_str().unwrap()]);
    let unit_path = "/lib/systemd/system/sealwatch.service";
    let env_path = "/etc/default/sealwatch";
    let files: BTreeSet<String> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    let expected: BTreeSet<String> = SHARED_FILES
        .iter()
        .chain(&[unit_path, env_path])
        .map(|s| s.to_string())
        .collect();
    assert_eq!(files, expected, "{listing}");
    assert!(
        listing
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("root/root")),
        "every file belongs to root:\n{listing}"
    );

    let deb = built.deb.to_str().unwrap();
    let mut cmd = Command::new("apt-get");
    cmd.args(["install", "-y", "--no-install-recommends", deb])
        .env("DEBIAN_FRONTEND", "noninteractive");
    let out = run_bounded(cmd, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("apt-get (Debian's apt package): {e}"));
    assert_success(&format!("apt-get install -y {deb}"), &out);
    let cleanup = Purge;

    for f in &expected {
        assert!(Path::new(f).is_file(), "{f} is not installed");
    }
    let conffiles = tool(
        "dpkg-query",
        "dpkg",
        &["-W", "-f=${Conffiles}", "sealwatch"],
    );
    assert!(conffiles.contains(env_path), "conffiles: {conffiles}");

    let unit = std::fs::read_to_string(unit_path).unwrap();
    assert_unit_text(&unit, env_path);
    assert_systemd_verifies("(installed unit)", Path::new(unit_path), Path::new("/"));

    let version = tool("/usr/bin/sealwatch", "sealwatch", &["--version"]);
    assert!(
        version.starts_with(&format!("sealwatch {VERSION}")),
        "{version}"
    );
    assert_env_file_values_accepted(
        "/usr/bin/sealwatch",
        &std::fs::read_to_string(env_path).unwrap(),
    );

    drop(cleanup);
    assert!(!installed("sealwatch"), "still installed after the purge");
    let left: Vec<&String> = expected.iter().filter(|f| Path::new(f).exists()).collect();
    assert!(left.is_empty(), "left behind after purge: {left:?}");
    for dir in ["/usr/share/sealwatch", "/usr/share/doc/sealwatch"] {
        assert!(!Path::new(dir).exists(), "{dir} left behind after purge");
    }
}

/// Purges the package, also when an assertion failed while it was installed.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let mut cmd = Command::new("apt-get");
        cmd.args(["remove", "--purge", "-y", "sealwatch"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        // A second panic while one unwinds would abort the test binary: then only say so.
        match run_bounded(cmd, Duration::from_secs(300)) {
            Ok(out) if !std::thread::panicking() => {
                assert_success("apt-get remove --purge -y sealwatch", &out);
            }
            Err(e) if !std::thread::panicking() => panic!("apt-get remove: {e}"),
            Err(e) => eprintln!("apt-get remove: {e}"),
            Ok(_) => {}
        }
    }
}

/// The RPM holds the same files as the .deb (the unit in /usr/lib/systemd/system, the
/// environment file as a noreplace config file in /etc/sysconfig), carries the metadata a
/// repository shows, and its scriptlets never start or enable the service.
#[test]
fn rpm_has_the_files_metadata_and_scriptlets() {
    let built = packages();
    let rpm = built.rpm.to_str().unwrap();
    let unit_path = "/usr/lib/systemd/system/sealwatch.service";
    let env_path = "/etc/sysconfig/sealwatch";

    let list = tool("rpm", "rpm", &["-qlp", rpm]);
    let files: BTreeSet<&str> = list
        .lines()
        .filter(|p| {
            ![
                "/usr/share/sealwatch",
                "/usr/share/sealwatch/dashboards",
                "/usr/share/sealwatch/prometheus",
            ]
            .contains(p)
        })
        .collect();
    let expected: BTreeSet<&str> = SHARED_FILES
        .iter()
        .copied()
        .chain([unit_path, env_path])
        .collect();
    assert_eq!(files, expected, "{list}");

    let info = tool("rpm", "rpm", &["-qip", rpm]);
    let field = |name: &str| -> String {
        info.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("rpm -qip has no {name}:\n{info}"))
    };
    assert_eq!(field("Name"), "sealwatch");
    assert_eq!(field("Version"), VERSION);
    assert_eq!(field("Release"), "1");
    assert_eq!(field("Architecture"), "x86_64");
    assert_eq!(field("License"), "Apache-2.0");
    assert!(field("Summary").contains("Podman"), "{info}");
    assert!(info.contains("Prometheus"), "description: {info}");

    let config = tool("rpm", "rpm", &["-qcp", rpm]);
    assert_eq!(config.trim(), env_path);
    let docs = tool("rpm", "rpm", &["-qdp", rpm]);
    assert!(
        docs.contains("/usr/share/doc/sealwatch/README.md"),
        "{docs}"
    );
    let modes = tool(
        "rpm",
        "rpm",
        &[
            "-qp",
            "--qf",
            "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]",
            rpm,
        ],
    );
    assert!(
        modes
            .lines()
            .any(|l| l == "-rwxr-xr-x root /usr/bin/sealwatch"),
        "{modes}"
    );
    assert!(
        modes.lines().all(|l| l.split(' ').nth(1) == Some("root")),
        "{modes}"
    );
    let requires = tool("rpm", "rpm", &["-qRp", rpm]);
    assert!(
        !requires.lines().any(|l| l.starts_with("lib")),
        "a static binary needs no shared libraries: {requires}"
    );

    let scripts = tool("rpm", "rpm", &["-qp", "--scripts", rpm]);
    assert!(scripts.contains("daemon-reload"), "{scripts}");
    for never in ["systemctl enable", "systemctl start", "--now"] {
        assert!(
            !scripts.contains(never),
            "scriptlet runs {never}:\n{scripts}"
        );
    }

    // The payload: the unit reads /etc/sysconfig/sealwatch; the binary is the one that runs.
    let payload = Command::new("rpm2cpio")
        .arg(rpm)
        .output()
        .expect("run rpm2cpio (rpm)");
    assert_success("rpm2cpio", &payload);
    let entries = cpio_newc(&payload.stdout);
    let text = |path: &str| {
        let (_, data) = entries
            .iter()
            .find(|(name, _)| name.trim_start_matches('.') == path)
            .unwrap_or_else(|| panic!("{path} not in the payload"));
        String::from_utf8(data.clone()).unwrap()
    };
    assert_unit_text(&text(unit_path), env_path);
    assert_eq!(
        text(env_path),
        std::fs::read_to_string(repo().join("deploy/package/sealwatch.env")).unwrap()
    );
    let bin = entries
        .iter()
        .find(|(name, _)| name.trim_start_matches('.') == "/usr/bin/sealwatch")
        .expect("binary in the payload");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sealwatch");
    std::fs::write(&copy, &bin.1).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let version = tool(copy.to_str().unwrap(), "sealwatch", &["--version"]);
    assert!(
        version.starts_with(&format!("sealwatch {VERSION}")),
        "{version}"
    );
}

/// The entries (name, data) of an uncompressed `newc` cpio archive, what rpm2cpio writes.
fn cpio_newc(mut archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let hex = |b: &[u8]| usize::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let pad4 = |n: usize| (4 - n % 4) % 4;
    let mut entries = Vec::new();
    loop {
        assert!(archive.starts_with(b"070701"), "not a newc cpio archive");
        let file_size = hex(&archive[54..62]);
        let name_size = hex(&archive[94..102]);
        let name_end = 110 + name_size;
        let name = String::from_utf8_lossy(&archive[110..name_end - 1]).into_owned();
        let data_start = name_end + pad4(name_end);
        if name == "TRAILER!!!" {
            return entries;
        }
        entries.push((name, archive[data_start..data_start + file_size].to_vec()));
        let next = data_start + file_size;
        archive = &archive[next + pad4(next)..];
    }
}
