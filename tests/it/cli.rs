//! The command line and HTTP surface a user meets first: flag errors, --version, environment
//! variables, JSON errors, 405s, the landing page, readiness and a clean SIGTERM shutdown.

use std::time::Duration;

use crate::support::binary::run_once as sealwatch;
use crate::support::process::http_agent;
use crate::support::scripted::ScriptedPodman;
use crate::support::{wait_until, Sealwatch};

/// Every bad flag exits with status 2 and exactly one line on stderr that names the problem.
#[test]
fn bad_flags_exit_2_with_one_clear_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--podman.url", "http://localhost"], "unix:///"),
        (&["--podman.url", "tcp://nohost"], "tcp://host:port"),
        (
            &["--podman.url", "a=unix:///x", "--podman.url", "a=unix:///y"],
            "used twice",
        ),
        (&["--web.listen-address", "9882"], "--web.listen-address"),
        (&["--web.telemetry-path", "metrics"], "--web.telemetry-path"),
        (&["--labels.max-values", "lots"], "lots"),
        (&["--log.level", "loud"], "loud"),
        (&["--log.format", "xml"], "xml"),
        // Values that are not plain absolute paths, or that other endpoints answer.
        (&["--web.telemetry-path", "/:x"], "--web.telemetry-path"),
        (&["--web.telemetry-path", "/{"], "--web.telemetry-path"),
        (&["--web.telemetry-path", "/*"], "--web.telemetry-path"),
        (&["--web.telemetry-path", "/{x}"], "--web.telemetry-path"),
        (
            &["--web.telemetry-path", "/containers/{reference}"],
            "--web.telemetry-path",
        ),
        (
            &["--web.telemetry-path", "/containers"],
            "--web.telemetry-path",
        ),
        (
            &["--web.telemetry-path", "/pods/abc"],
            "--web.telemetry-path",
        ),
        (&["--web.telemetry-path", "/"], "--web.telemetry-path"),
        (&["--web.max-requests", "-1"], "-1"),
    ];
    for (args, mention) in cases {
        let out = sealwatch(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line, got:\n{stderr}"
        );
        assert!(
            stderr.contains(mention),
            "{args:?}: {stderr:?} should mention {mention:?}"
        );
    }
}

/// A port that is taken is a start-up error too: exit 2 with the address in the message.
#[test]
fn a_taken_listen_port_exits_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = sealwatch(&[
        "--podman.url",
        "unix:///nonexistent.sock",
        "--web.listen-address",
        &addr,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

/// --version and --help answer on stdout and exit 0.
#[test]
fn version_and_help() {
    let out = sealwatch(&["--version"]);
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(&format!("sealwatch {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let out = sealwatch(&["--help"]);
    assert!(out.status.success());
    let h = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--podman.url",
        "--web.listen-address",
        "--web.telemetry-path",
        "--labels.allowlist",
        "--labels.max-values",
        "--log.level",
        "--log.format",
        "SEALWATCH_PODMAN_URL",
    ] {
        assert!(h.contains(flag), "help lacks {flag}");
    }
}

/// Flags can come from SEALWATCH_* environment variables.
#[test]
fn environment_variables_configure_sealwatch() {
    let podman = ScriptedPodman::start(vec![]);
    let url = format!("fromenv={}", podman.url());
    let sw = Sealwatch::start_with_env(
        &[],
        &[
            ("SEALWATCH_PODMAN_URL", &url),
            ("SEALWATCH_WEB_TELEMETRY_PATH", "/m"),
        ],
    );
    wait_until("engine fromenv is ready", Duration::from_secs(10), || {
        let (status, body) = sw.try_get("/-/ready")?;
        if status == 200 && body.contains("fromenv") {
            Ok(())
        } else {
            Err(body)
        }
    });
    let m = sw.scrape_path("/m");
    assert_eq!(m.value("podman_up", &[("engine", "fromenv")]), 1.0);
}

/// Unknown paths are JSON 404s, other methods JSON 405s; the landing page links every endpoint.
#[test]
fn http_errors_are_json_and_the_landing_page_links_everything() {
    let podman = ScriptedPodman::start(vec![]);
    let sw = Sealwatch::start(&["--podman.url", &format!("e={}", podman.url())]);
    let (status, body) = sw.get("/nope");
    assert_eq!(status, 404);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"].is_string());

    let mut resp = http_agent()
        .post(&format!("{}/containers", sw.base_url()))
        .send("x")
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body = resp.body_mut().read_to_string().unwrap();
    assert!(body.contains("\"error\""), "{body}");

    // A reference that is not valid percent-encoded UTF-8 is a JSON 400 too.
    for path in ["/containers/%ff", "/pods/%ff", "/containers/%C3%28"] {
        let r = crate::support::process::raw_get(sw.port(), path, &[]).unwrap();
        assert_eq!(
            r.status,
            400,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v["error"].is_string(), "{path}: {v}");
    }

    let (status, page) = sw.get("/");
    assert_eq!(status, 200);
    for link in [
        "/metrics",
        "/containers",
        "/pods",
        "/-/healthy",
        "/-/ready",
        ">e<",
    ] {
        assert!(page.contains(link), "landing page lacks {link}");
    }
    assert_eq!(sw.get("/-/healthy"), (200, "OK".to_owned()));
}

/// An engine that never answers keeps /-/ready at 503 with its reason, while everything else
/// serves; SIGTERM then ends the process cleanly with status 0.
#[test]
fn unreachable_engine_is_reported_and_sigterm_exits_cleanly() {
    let mut sw = Sealwatch::start(&["--podman.url", "ghost=unix:///nonexistent/podman.sock"]);
    let body = wait_until("a reason for ghost", Duration::from_secs(10), || {
        let (status, body) = sw.try_get("/-/ready")?;
        if status == 503 && body.contains("No such file") {
            Ok(body)
        } else {
            Err(body)
        }
    });
    assert!(body.contains("\"engine\":\"ghost\""), "{body}");
    assert_eq!(sw.get_json("/containers"), serde_json::json!([]));
    let status = sw.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}\n{}", sw.log());
    assert!(sw.log().contains("shutting down"));
}

/// `sealwatch healthcheck` takes `--web.listen-address` after the subcommand as well as before:
/// 0 when that sealwatch is ready, 1 (never 2) for an address where nothing listens.
#[test]
fn healthcheck_takes_flags_after_the_subcommand() {
    let podman = ScriptedPodman::start(vec![]);
    let sw = Sealwatch::start(&["--podman.url", &format!("e={}", podman.url())]);
    sw.wait_ready(200, Duration::from_secs(10));
    let addr = format!("127.0.0.1:{}", sw.port());
    for args in [
        ["healthcheck", "--web.listen-address", addr.as_str()],
        ["--web.listen-address", addr.as_str(), "healthcheck"],
    ] {
        let out = sealwatch(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dead = format!("127.0.0.1:{}", crate::support::process::free_port());
    let out = sealwatch(&["healthcheck", "--web.listen-address", &dead]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Engines given without NAME= get short readable names from their URLs, unique even when two
/// derive the same name, and the start-up log lists each engine once with its URL.
#[test]
fn unnamed_engines_get_short_unique_names() {
    let a = ScriptedPodman::start(vec![]);
    let b = ScriptedPodman::start(vec![]);
    let dir_of = |url: &str| {
        let path = std::path::Path::new(url.trim_start_matches("unix://"));
        path.parent()
            .and_then(|p| p.file_name())
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let (name_a, name_b) = (dir_of(&a.url()), dir_of(&b.url()));
    // Both sockets are named podman.sock, so each engine is named by its directory; the same
    // socket twice gets a suffix.
    let sw = Sealwatch::start(&[
        "--podman.url",
        &a.url(),
        "--podman.url",
        &b.url(),
        "--podman.url",
        &a.url(),
    ]);
    sw.wait_ready(200, Duration::from_secs(10));
    let m = sw.scrape();
    let twice = format!("{name_a}-2");
    for name in [name_a.as_str(), name_b.as_str(), twice.as_str()] {
        assert_eq!(m.value("podman_up", &[("engine", name)]), 1.0, "{name}");
    }
    assert!(
        m.try_value("podman_up", &[("engine", a.url().as_str())])
            .is_err(),
        "no engine is named by its URL"
    );
    let log = sw.log();
    let listening: Vec<&str> = log.lines().filter(|l| l.contains("listening on")).collect();
    assert_eq!(listening.len(), 1, "{log}");
    let expected = format!(
        "engines={name_a} ({}), {name_b} ({}), {twice} ({})",
        a.url(),
        b.url(),
        a.url()
    );
    assert!(
        listening[0].contains(&expected),
        "{}\nlacks {expected}",
        listening[0]
    );
}
