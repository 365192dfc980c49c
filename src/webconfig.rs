//! `--web.config.file`: TLS and basic authentication in the Prometheus exporter-toolkit format.
//!
//! Owns reading and validating that YAML (unknown keys are errors, as in exporter-toolkit, so a
//! typo never silently disables TLS), building the rustls server config, and checking basic-auth
//! credentials against bcrypt hashes. Never serves: `web` and `main` apply what this returns.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// A problem with the web config file; the message is printed as the one start-up error line.
#[derive(Debug, thiserror::Error)]
#[error("--web.config.file {path}: {reason}")]
pub struct WebConfigError {
    path: String,
    reason: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: HashMap<String, String>,
    http_server_config: Option<HttpFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    /// sealwatch speaks HTTP/1.1 only; `http2: true` is accepted and has no effect.
    #[allow(dead_code)]
    http2: Option<bool>,
}

/// What the web config asks for.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<BasicAuth>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.auth.as_ref().map(|a| a.users.len()),
            )
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates the file; relative paths in it are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let err = |reason: String| WebConfigError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| err(format!("invalid: {e}")))?
        };
        let _ = &file.http_server_config;
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = file
            .tls_server_config
            .map(|t| tls_config(&t, base).map(Arc::new))
            .transpose()
            .map_err(err)?;
        let auth = if file.basic_auth_users.is_empty() {
            None
        } else {
            for (user, hash) in &file.basic_auth_users {
                if user.contains(':') {
                    return Err(err(format!(
                        "basic_auth_users: user name {user:?} contains ':'"
                    )));
                }
                bcrypt::verify("", hash).map_err(|e| {
                    err(format!("basic_auth_users: {user}: not a bcrypt hash ({e})"))
                })?;
            }
            Some(BasicAuth::new(file.basic_auth_users))
        };
        Ok(Self { tls, auth })
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

fn tls_config(t: &TlsFile, base: &Path) -> Result<rustls::ServerConfig, String> {
    let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) else {
        return Err("tls_server_config needs both cert_file and key_file".into());
    };
    let cert_path = resolve(base, cert);
    let key_path = resolve(base, key);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect())
        .map_err(|e| format!("cert_file {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cert_file {}: no certificate in it",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("key_file {}: {e}", key_path.display()))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = {
        let parse = |v: &Option<String>, default: u8| -> Result<u8, String> {
            match v.as_deref() {
                None | Some("") => Ok(default),
                Some("TLS12") => Ok(12),
                Some("TLS13") => Ok(13),
                Some("TLS10" | "TLS11") => {
                    Err("TLS 1.0 and 1.1 are not supported; use TLS12 or TLS13".into())
                }
                Some(other) => Err(format!("unknown TLS version {other:?}; use TLS12 or TLS13")),
            }
        };
        let (min, max) = (parse(&t.min_version, 12)?, parse(&t.max_version, 13)?);
        if min > max {
            return Err("min_version is above max_version".into());
        }
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect()
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let auth_type = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth_type {
        "NoClientCert" | "" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let Some(ca) = &t.client_ca_file else {
                return Err(format!("client_auth_type {auth_type} needs client_ca_file"));
            };
            let ca_path = resolve(base, ca);
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca_path).map_err(|e| format!("client_ca_file: {e}"))? {
                let c = c.map_err(|e| format!("client_ca_file {}: {e}", ca_path.display()))?;
                roots.add(c).map_err(|e| format!("client_ca_file {}: {e}", ca_path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth_type == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("client_ca_file: {e}"))?)
        }
        "RequestClientCert" | "RequireAnyClientCert" => {
            return Err(format!(
                "client_auth_type {auth_type} (a client certificate nobody verifies) is not supported; use RequireAndVerifyClientCert"
            ))
        }
        other => return Err(format!("unknown client_auth_type {other:?}")),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("cert_file/key_file: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// bcrypt-checked users. Verifying a bcrypt hash is deliberately slow, so credentials that
/// verified once are remembered (as exporter-toolkit does) to keep scrapes cheap.
#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<HashMap<String, String>>,
    verified: Arc<Mutex<HashSet<(String, String)>>>,
    /// A hash of the same cost, checked for unknown users so that user names cannot be probed
    /// by timing.
    decoy: Arc<str>,
}

impl BasicAuth {
    fn new(users: HashMap<String, String>) -> Self {
        let decoy = users.values().next().cloned().unwrap_or_default();
        Self {
            users: Arc::new(users),
            verified: Arc::default(),
            decoy: Arc::from(decoy),
        }
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, header: Option<&str>) -> bool {
        use base64::Engine;
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = text.split_once(':') else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            let _ = bcrypt::verify(password, &self.decoy);
            return false;
        };
        let key = (user.to_owned(), password.to_owned());
        if let Ok(cache) = self.verified.lock() {
            if cache.contains(&key) {
                return true;
            }
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            if let Ok(mut cache) = self.verified.lock() {
                if cache.len() >= 1024 {
                    cache.clear();
                }
                cache.insert(key);
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn unknown_keys_and_bad_hashes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a.yml", "tls_server_confg: {}\n");
        assert!(WebConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("tls_server_confg"));
        let p = write(
            dir.path(),
            "b.yml",
            "basic_auth_users:\n  alice: plaintext\n",
        );
        assert!(WebConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("bcrypt"));
        let p = write(
            dir.path(),
            "c.yml",
            "tls_server_config:\n  cert_file: x.crt\n",
        );
        assert!(WebConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("key_file"));
        assert!(WebConfig::load(&dir.path().join("missing.yml")).is_err());
    }

    #[test]
    fn basic_auth_checks_bcrypt_and_remembers_success() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let p = write(
            dir.path(),
            "w.yml",
            &format!("basic_auth_users:\n  alice: '{hash}'\n"),
        );
        let auth = WebConfig::load(&p).unwrap().auth.unwrap();
        use base64::Engine;
        let header = |u: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(u)
            )
        };
        assert!(auth.check(Some(&header("alice:s3cret"))));
        assert!(
            auth.check(Some(&header("alice:s3cret"))),
            "second time from the cache"
        );
        assert!(!auth.check(Some(&header("alice:wrong"))));
        assert!(!auth.check(Some(&header("bob:s3cret"))));
        assert!(!auth.check(Some("Bearer x")));
        assert!(!auth.check(None));
    }

    #[test]
    fn an_empty_file_means_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "e.yml", "");
        let c = WebConfig::load(&p).unwrap();
        assert!(c.tls.is_none() && c.auth.is_none());
    }
}
