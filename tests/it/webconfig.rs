//! `--web.config.file`: TLS and basic auth in the exporter-toolkit format, checked against
//! promtool's own validator and with a real TLS client.

use std::sync::Arc;
use std::time::Duration;

use crate::support::scripted::ScriptedPodman;
use crate::support::{binary, free_port, promtool, wait_until};

struct Files {
    dir: tempfile::TempDir,
    cert_pem: String,
}

/// A self-signed certificate for 127.0.0.1 and a web config with TLS and one bcrypt user.
fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.path().join("server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("server.key"),
        ck.signing_key.serialize_pem(),
    )
    .unwrap();
    let hash = bcrypt::hash("scrape-me", 6).unwrap();
    std::fs::write(
        dir.path().join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    Files {
        cert_pem: ck.cert.pem(),
        dir,
    }
}

fn agent(ca_pem: &str) -> ureq::Agent {
    let cert = ureq::tls::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        // Below sealwatch's 10 s idle close, as in `support::http_agent`.
        .max_idle_age(Duration::from_secs(5))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
                .build(),
        )
        .build()
        .into()
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The file sealwatch accepts is one promtool accepts too (same format as every exporter).
#[test]
fn promtool_accepts_the_web_config_format() {
    let f = files();
    promtool::check_web_config(&f.dir.path().join("web.yml"));
}

/// With TLS and basic auth: HTTPS only, 401 without credentials, 200 with them.
#[test]
fn tls_and_basic_auth_protect_every_endpoint() {
    let f = files();
    let podman = ScriptedPodman::start(vec![]);
    let port = free_port();
    let child = Child(
        binary::command()
            .args(["--podman.url", &format!("e={}", podman.url())])
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .arg("--web.config.file")
            .arg(f.dir.path().join("web.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let agent = agent(&f.cert_pem);
    let base = format!("https://127.0.0.1:{port}");
    let status = |path: &str, auth: Option<&str>| -> Result<u16, String> {
        let mut req = agent.get(&format!("{base}{path}"));
        if let Some(a) = auth {
            use base64::Engine;
            let v = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(a)
            );
            req = req.header("Authorization", &v);
        }
        req.call()
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    };
    wait_until("https answers", Duration::from_secs(10), || {
        status("/-/healthy", None)
    });
    assert_eq!(status("/metrics", None), Ok(401));
    assert_eq!(status("/metrics", Some("prometheus:wrong")), Ok(401));
    assert_eq!(status("/metrics", Some("nobody:scrape-me")), Ok(401));
    assert_eq!(status("/metrics", Some("prometheus:scrape-me")), Ok(200));
    assert_eq!(status("/containers", Some("prometheus:scrape-me")), Ok(200));
    let plain = ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call();
    assert!(
        plain.is_err() || plain.unwrap().status() != 200,
        "plain HTTP must not be served"
    );
    drop(child);
}

/// A broken web config is a start-up error: exit 2 and one line that names the problem.
#[test]
fn a_broken_web_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "typo.yml",
            "tls_server_confg:\n  cert_file: a\n",
            "tls_server_confg",
        ),
        (
            "nokey.yml",
            "tls_server_config:\n  cert_file: a.crt\n",
            "key_file",
        ),
        (
            "missing.yml",
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n",
            "a.crt",
        ),
        (
            "plain.yml",
            "basic_auth_users:\n  u: not-a-hash\n",
            "bcrypt",
        ),
    ];
    for (name, text, mention) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let out = binary::command()
            .args([
                "--podman.url",
                "unix:///nonexistent.sock",
                "--web.config.file",
            ])
            .arg(&p)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(mention), "{name}: {stderr}");
    }
}

/// A sealwatch started with a web config on plain HTTP (or TLS), its log in a file.
struct Guarded {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _podman: ScriptedPodman,
}

impl Guarded {
    /// Starts sealwatch with `web_yml` (written to a temp dir with `files` beside it) and waits
    /// until the port answers anything over plain HTTP (401 with basic auth).
    fn start(web_yml: &str, files: &[(&str, &[u8])], tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yml"), web_yml).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let log = dir.path().join("sealwatch.log");
        let podman = ScriptedPodman::start(vec![]);
        let port = free_port();
        let out = std::fs::File::create(&log).unwrap();
        let child = Child(
            binary::command()
                .args(["--podman.url", &format!("e={}", podman.url())])
                .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
                .args(["--log.level", "debug"])
                .arg("--web.config.file")
                .arg(dir.path().join("web.yml"))
                .env("NO_COLOR", "1")
                .stdout(std::process::Stdio::null())
                .stderr(out)
                .spawn()
                .unwrap(),
        );
        let mut g = Guarded {
            child,
            port,
            log,
            _dir: dir,
            _podman: podman,
        };
        if let Ok(Some(status)) = g.child.0.try_wait() {
            panic!("sealwatch exited with {status}:\n{}", g.log());
        }
        if !tls {
            wait_until("the port answers", Duration::from_secs(10), || {
                g.get("/-/healthy", None)
                    .map(|_| ())
                    .map_err(|e| format!("{e}; log:\n{}", g.log()))
            });
        } else {
            wait_until("the port accepts", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        }
        g
    }

    /// GET over plain HTTP with an `Authorization` header value; the status and body.
    fn get(&self, path: &str, authorization: Option<&str>) -> Result<(u16, String), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut req = agent.get(&format!("http://127.0.0.1:{}{path}", self.port));
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Ok((status, body))
    }

    /// `sealwatch_web_auth_verifications_total`, read with `authorization` (itself perhaps one
    /// more verification, when not cached).
    fn verifications(&self, authorization: &str) -> f64 {
        let (status, body) = self.get("/metrics", Some(authorization)).unwrap();
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix("sealwatch_web_auth_verifications_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no verification counter in:\n{body}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// CPU time (user + system) of the process so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.0.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }
}

fn basic(credentials: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

fn percentiles(mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
        at(0.5),
        at(0.99),
        at(1.0),
        ms.len()
    )
}

/// 64 concurrent wrong-password clients run bcrypt one at a time (one verification per distinct
/// guess, none per repeat) while authorised scrapes are answered from the cache; prints the
/// scrape latencies and CPU use.
#[test]
fn a_wrong_password_storm_runs_one_bcrypt_at_a_time_and_cached_scrapes_pass() {
    // Cost 12 (as in the report) takes seconds per guess on a loaded test machine; the
    // properties checked do not depend on the cost.
    const COST: u32 = 8;
    let hash = bcrypt::hash("scrape-me", COST).unwrap();
    let g = Guarded::start(
        &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
        &[],
        false,
    );
    let good = basic("prometheus:scrape-me");
    assert_eq!(
        g.verifications(&good),
        1.0,
        "the first scrape verified once"
    );
    let scrape = || {
        let t = std::time::Instant::now();
        let (status, _) = g.get("/metrics", Some(&good)).unwrap();
        assert_eq!(status, 200);
        t.elapsed().as_secs_f64() * 1e3
    };
    let before: Vec<f64> = (0..50).map(|_| scrape()).collect();
    println!("cached scrapes, idle: {}", percentiles(before));

    const CLIENTS: usize = 64;
    const GUESSES: usize = 2;
    let cpu0 = g.cpu();
    let t0 = std::time::Instant::now();
    let (during, refused) = std::thread::scope(|s| {
        let storm: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let g = &g;
                s.spawn(move || {
                    let mut refused = 0;
                    for n in 0..GUESSES {
                        let bad = basic(&format!("prometheus:wrong-{c}-{n}"));
                        let (status, _) = g.get("/metrics", Some(&bad)).unwrap();
                        assert_eq!(status, 401);
                        refused += 1;
                    }
                    // A repeated guess is answered from the cache: no bcrypt.
                    let (status, _) = g
                        .get("/metrics", Some(&basic(&format!("prometheus:wrong-{c}-0"))))
                        .unwrap();
                    assert_eq!(status, 401);
                    refused
                })
            })
            .collect();
        let mut during = Vec::new();
        while !storm.iter().all(|h| h.is_finished()) && during.len() < 100_000 {
            during.push(scrape());
            std::thread::sleep(Duration::from_millis(20));
        }
        let refused: usize = storm.into_iter().map(|h| h.join().unwrap()).sum();
        (during, refused)
    });
    let wall = t0.elapsed();
    let cpu = g.cpu() - cpu0;
    println!(
        "storm of {CLIENTS} clients x {GUESSES} wrong passwords (bcrypt cost {COST}): {:.1} s, \
         sealwatch CPU {:.1} s = {:.2} cores",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() / wall.as_secs_f64()
    );
    println!("cached scrapes during the storm: {}", percentiles(during));
    assert_eq!(refused, CLIENTS * GUESSES);
    assert_eq!(
        g.verifications(&good),
        1.0 + (CLIENTS * GUESSES) as f64,
        "one bcrypt per distinct credential; repeats and the scraper from the cache"
    );
}

/// An unknown user costs one bcrypt of the dearest configured hash, like a known user's wrong
/// password; prints both times.
#[test]
fn unknown_users_cost_one_decoy_verification() {
    let alice = bcrypt::hash("a", 11).unwrap();
    let bob = bcrypt::hash("b", 4).unwrap();
    let g = Guarded::start(
        &format!("basic_auth_users:\n  alice: '{alice}'\n  bob: '{bob}'\n"),
        &[],
        false,
    );
    let good = basic("bob:b");
    assert_eq!(g.verifications(&good), 1.0);
    let time = |cred: &str| {
        let t = std::time::Instant::now();
        assert_eq!(g.get("/-/healthy", Some(&basic(cred))).unwrap().0, 401);
        t.elapsed().as_secs_f64() * 1e3
    };
    let known: Vec<f64> = (0..3).map(|i| time(&format!("alice:wrong{i}"))).collect();
    let cheap: Vec<f64> = (0..3).map(|i| time(&format!("bob:wrong{i}"))).collect();
    let unknown: Vec<f64> = (0..3).map(|i| time(&format!("mallory{i}:x"))).collect();
    println!(
        "wrong password, alice (cost 11): {known:.1?} ms; bob (cost 4): {cheap:.1?} ms; \
         unknown users: {unknown:.1?} ms"
    );
    assert_eq!(g.verifications(&good), 10.0, "one verification each");
    time("mallory0:x");
    assert_eq!(
        g.verifications(&good),
        10.0,
        "a repeated unknown user is cached"
    );
}

/// Hashes are checked for their format, not verified, at start: three cost-15 users (seconds
/// of bcrypt each) start at once, and no verification runs before the first request.
#[test]
fn costly_hashes_are_not_verified_at_start() {
    let cheap = bcrypt::hash("scrape-me", 4).unwrap();
    // Well-formed cost-15 hashes, made without paying for them.
    let dear = |salt: &str| format!("$2b$15${salt}{}", &cheap[29..]);
    let text = format!(
        "basic_auth_users:\n  a: '{}'\n  b: '{}'\n  c: '{}'\n  scraper: '{cheap}'\n",
        // The salt's last character carries 2 bits: `.` (zero) keeps them clean.
        dear("aaaaaaaaaaaaaaaaaaaaa."),
        dear("bbbbbbbbbbbbbbbbbbbbb."),
        dear("ccccccccccccccccccccc."),
    );
    let t0 = std::time::Instant::now();
    let g = Guarded::start(&text, &[], false);
    println!(
        "three cost-15 users: the port answered {:.0} ms after the start",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(
        g.verifications(&basic("scraper:scrape-me")),
        1.0,
        "only the scrape itself was verified"
    );
    let runs = g
        .log()
        .lines()
        .filter(|l| l.contains("verifying basic-auth credentials"))
        .count();
    assert_eq!(runs, 1, "{}", g.log());
}

/// `/dev/zero` as the web config or as its certificate, and a 40,000-deep YAML, are refused at
/// once: exit 2 and one line.
#[test]
fn huge_and_deep_web_configs_exit_2_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep.yml");
    std::fs::write(
        &deep,
        format!("{}{}", "[".repeat(40_000), "]".repeat(40_000)),
    )
    .unwrap();
    let dashes = dir.path().join("dashes.yml");
    std::fs::write(
        &dashes,
        format!("basic_auth_users:\n  {}x\n", "- ".repeat(40_000)),
    )
    .unwrap();
    let zero_cert = dir.path().join("zero-cert.yml");
    std::fs::write(
        &zero_cert,
        "tls_server_config:\n  cert_file: /dev/zero\n  key_file: /dev/zero\n",
    )
    .unwrap();
    for (file, mention) in [
        (
            std::path::PathBuf::from("/dev/zero"),
            "larger than 1024 KiB",
        ),
        (zero_cert, "/dev/zero: larger than 4 MiB"),
        (deep, "nested 40000 levels deep"),
        (dashes, "nested"),
    ] {
        let t0 = std::time::Instant::now();
        let out = binary::command()
            .args([
                "--podman.url",
                "unix:///nonexistent.sock",
                "--web.config.file",
            ])
            .arg(&file)
            .output()
            .unwrap();
        let took = t0.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!(
            "{}: exit {:?} after {:.0} ms",
            file.display(),
            out.status.code(),
            took.as_secs_f64() * 1e3
        );
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(mention), "{stderr}");
    }
}

/// The `Basic` scheme matches in any case (RFC 9110): `basic` and `BASIC` work.
#[test]
fn the_basic_scheme_is_case_insensitive() {
    let hash = bcrypt::hash("scrape-me", 4).unwrap();
    let g = Guarded::start(
        &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
        &[],
        false,
    );
    let b64 = basic("prometheus:scrape-me")["Basic ".len()..].to_owned();
    for scheme in ["basic", "BASIC", "Basic"] {
        let (status, body) = g
            .get("/-/healthy", Some(&format!("{scheme} {b64}")))
            .unwrap();
        assert_eq!(status, 200, "{scheme}: {body}");
    }
}

/// An expired certificate is served (clients decide) but warned about at start.
#[test]
fn an_expired_certificate_is_warned_about() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let g = Guarded::start(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        &[
            ("server.crt", cert.pem().as_bytes()),
            ("server.key", key.serialize_pem().as_bytes()),
        ],
        true,
    );
    let log = wait_until("the warning", Duration::from_secs(10), || {
        let log = g.log();
        log.contains("listening on")
            .then_some(log.clone())
            .ok_or(log)
    });
    let line = log
        .lines()
        .find(|l| l.contains("expired at 2002-01-01"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(
        line.contains("WARN") && line.contains("server.crt"),
        "{line}"
    );
}
