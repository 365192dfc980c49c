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
