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
    /// Problems that do not stop the start but that an operator must see (an expired
    /// certificate); `main` logs each once logging is up.
    pub warnings: Vec<String>,
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
        let text = read_bounded(path).map_err(err)?;
        let depth = nesting_depth(&text);
        if depth > MAX_DEPTH {
            return Err(err(format!(
                "nested {depth} levels deep, more than the {MAX_DEPTH} allowed; a web config needs 3"
            )));
        }
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| err(format!("invalid: {e}")))?
        };
        let _ = &file.http_server_config;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut warnings = Vec::new();
        let tls = file
            .tls_server_config
            .map(|t| {
                tls_config(&t, base).map(|(config, warning)| {
                    warnings.extend(warning);
                    Arc::new(config)
                })
            })
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
                bcrypt_cost(hash).map_err(|e| {
                    err(format!("basic_auth_users: {user}: not a bcrypt hash ({e})"))
                })?;
            }
            Some(BasicAuth::new(file.basic_auth_users))
        };
        Ok(Self {
            tls,
            auth,
            warnings,
        })
    }
}

/// The largest web config accepted: real ones are a few hundred bytes, and the file is read
/// whole before parsing (`/dev/zero` must fail at once, not fill memory).
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// The deepest nesting accepted. A web config is 3 levels deep; the YAML parser's time grows
/// with depth (40,000 levels took 9.7 s to reject), so depth is checked by a linear pre-scan.
pub const MAX_DEPTH: usize = 32;

/// Reads the file, at most `MAX_FILE_SIZE` bytes of it.
fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(format!(
            "larger than {} KiB; a web config is a few hundred bytes",
            MAX_FILE_SIZE / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))
}

/// A linear upper estimate of the YAML's nesting: open flow collections (`[`, `{`) plus the
/// block indicators that open levels on one line (`- - - x`). Quoted scalars and comments are
/// skipped. Nesting by indentation needs no check: within `MAX_FILE_SIZE` it stays shallow
/// enough to parse at once. Over-estimating only ever rejects absurd files.
fn nesting_depth(text: &str) -> usize {
    let (mut max, mut flow) = (0usize, 0usize);
    for line in text.lines() {
        let body = line.trim_start_matches([' ', '\t']);
        // A run of block indicators, each followed by a space: `- - ? x`.
        let mut inline = 0usize;
        let mut rest = body;
        while let Some(r) = rest
            .strip_prefix("- ")
            .or_else(|| rest.strip_prefix("? "))
            .or_else(|| rest.strip_prefix(": "))
        {
            inline += 1;
            rest = r.trim_start_matches(' ');
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some(q) if c == q => {
                    if q == '\'' && chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
                Some(_) => {}
                None => {
                    let at_start = prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':');
                    match c {
                        '#' if prev.is_whitespace() => break,
                        '\'' | '"' if at_start => quote = Some(c),
                        '[' | '{' if at_start => {
                            flow += 1;
                            max = max.max(flow + inline);
                        }
                        ']' | '}' => flow = flow.saturating_sub(1),
                        _ => {}
                    }
                }
            }
            prev = c;
        }
        max = max.max(flow + inline);
    }
    max
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Why the certificate would be refused by clients now (expired, or not yet valid), naming its
/// validity; `None` when it is valid or cannot be parsed (rustls then reports what is wrong).
fn certificate_warning(path: &Path, der: &[u8], now_unix: i64) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let validity = cert.validity();
    let (from, until) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let show = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| t.to_string())
    };
    if now_unix > until {
        Some(format!(
            "the TLS certificate in {} expired at {}; clients will refuse it",
            path.display(),
            show(until)
        ))
    } else if now_unix < from {
        Some(format!(
            "the TLS certificate in {} is not valid before {}; clients will refuse it until then",
            path.display(),
            show(from)
        ))
    } else {
        None
    }
}

/// The largest certificate, key or CA file accepted: a bundle of a few hundred CA certificates
/// fits; `/dev/zero` or a FIFO that never ends must fail at once, not fill memory.
pub const MAX_PEM_SIZE: u64 = 4 << 20;

/// A PEM file's bytes, at most `MAX_PEM_SIZE` of them; the error starts with the path.
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_SIZE {
        return Err(format!(
            "{}: larger than {} MiB; not a certificate file",
            path.display(),
            MAX_PEM_SIZE >> 20
        ));
    }
    Ok(bytes)
}

fn tls_config(t: &TlsFile, base: &Path) -> Result<(rustls::ServerConfig, Option<String>), String> {
    let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) else {
        return Err("tls_server_config needs both cert_file and key_file".into());
    };
    let cert_path = resolve(base, cert);
    let key_path = resolve(base, key);
    let cert_pem = read_pem(&cert_path).map_err(|e| format!("cert_file {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert_file {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cert_file {}: no certificate in it",
            cert_path.display()
        ));
    }
    let warning = certificate_warning(&cert_path, &certs[0], chrono::Utc::now().timestamp());
    let key_pem = read_pem(&key_path).map_err(|e| format!("key_file {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
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
            let ca_pem = read_pem(&ca_path).map_err(|e| format!("client_ca_file {e}"))?;
            for c in CertificateDer::pem_slice_iter(&ca_pem) {
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
    Ok((config, warning))
}

/// How many verification results are remembered. Successes need the right password, so only
/// legitimate clients fill their map; failures are kept apart, so a stream of wrong passwords
/// can flush only other failures, never a scraper's success.
const CACHED_SUCCESSES: usize = 64;
const CACHED_FAILURES: usize = 1024;

/// bcrypt-checked users. Verifying a bcrypt hash is deliberately slow, so results (successes and
/// failures, as exporter-toolkit does) are remembered per (user, hash, password) digest: a scraper
/// pays for bcrypt once, and so does an attacker repeating a guess. At most one bcrypt runs at a
/// time, so a storm of wrong passwords costs one core at most and never delays cached scrapes.
#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<HashMap<String, String>>,
    /// The hash checked for unknown users: the configured hash with the highest cost (ties: the
    /// first user name in order), so an unknown user costs what the dearest known one does and
    /// user names cannot be probed by timing.
    decoy: Arc<str>,
    cache: Arc<Mutex<VerifyCache>>,
    /// One bcrypt at a time; waiters queue in order on the async side, holding no thread.
    bcrypt_turn: Arc<tokio::sync::Semaphore>,
    verifications: prometheus_client::metrics::counter::Counter,
}

#[derive(Default)]
struct VerifyCache {
    successes: HashSet<[u8; 32]>,
    failures: HashSet<[u8; 32]>,
}

impl VerifyCache {
    fn get(&self, key: &[u8; 32]) -> Option<bool> {
        if self.successes.contains(key) {
            Some(true)
        } else if self.failures.contains(key) {
            Some(false)
        } else {
            None
        }
    }

    /// Remembers a result; a full map is emptied first (bounded, and cheaper than an LRU for a
    /// cache whose legitimate working set is a handful of scrapers).
    fn put(&mut self, key: [u8; 32], ok: bool) {
        let (map, cap) = if ok {
            (&mut self.successes, CACHED_SUCCESSES)
        } else {
            (&mut self.failures, CACHED_FAILURES)
        };
        if map.len() >= cap {
            map.clear();
        }
        map.insert(key);
    }
}

/// The user and password of an `Authorization: Basic` header value; the scheme is matched in
/// any case (RFC 9110 section 11.1).
fn credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let header = header.trim();
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl BasicAuth {
    fn new(users: HashMap<String, String>) -> Self {
        let decoy = users
            .iter()
            .map(|(user, hash)| (bcrypt_cost(hash).unwrap_or(0), user, hash))
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
            .map(|(_, _, hash)| hash.clone())
            .unwrap_or_default();
        Self {
            users: Arc::new(users),
            decoy: Arc::from(decoy),
            cache: Arc::default(),
            bcrypt_turn: Arc::new(tokio::sync::Semaphore::new(1)),
            verifications: Default::default(),
        }
    }

    /// Counts every bcrypt verification run (cache misses), for `sealwatch_web_auth_verifications_total`.
    pub fn verifications(&self) -> prometheus_client::metrics::counter::Counter {
        self.verifications.clone()
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        self.cache.lock().ok().and_then(|c| c.get(key))
    }

    /// Checks an `Authorization` header value: from the cache, or with one bcrypt run in turn
    /// (off the async workers).
    pub async fn check(&self, header: Option<&str>) -> bool {
        let Some((user, password)) = header.and_then(credentials) else {
            return false;
        };
        let (known, hash): (bool, Arc<str>) = match self.users.get(&user) {
            Some(hash) => (true, Arc::from(hash.as_str())),
            None => (false, self.decoy.clone()),
        };
        let key = cache_key(&user, &hash, &password);
        if let Some(ok) = self.cached(&key) {
            return ok && known;
        }
        let Ok(_turn) = self.bcrypt_turn.acquire().await else {
            return false;
        };
        // Whoever held the turn before may have verified these very credentials.
        if let Some(ok) = self.cached(&key) {
            return ok && known;
        }
        self.verifications.inc();
        tracing::debug!(known, "verifying basic-auth credentials with bcrypt");
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
                && known;
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(key, ok);
        }
        ok
    }
}

/// SHA-256 of user, hash and password, so the cache never holds a password.
fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// The cost of a well-formed bcrypt hash (`$2a$`, `$2b$`, `$2x$` or `$2y$`, a cost of 04 to 31,
/// 53 characters of bcrypt's base64), without running bcrypt: checking a cost-15 hash in full
/// takes seconds, and a start-up must not.
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e| format!("{e}"))?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("cost {cost} is outside 4..=31"));
    }
    Ok(cost)
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

    fn header(credentials: &str) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }

    fn auth_for(users: &[(&str, &str, u32)]) -> BasicAuth {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("basic_auth_users:\n");
        for (user, password, cost) in users {
            let hash = bcrypt::hash(password, *cost).unwrap();
            text.push_str(&format!("  {user}: '{hash}'\n"));
        }
        let p = write(dir.path(), "w.yml", &text);
        WebConfig::load(&p).unwrap().auth.unwrap()
    }

    #[tokio::test]
    async fn basic_auth_checks_bcrypt_and_remembers_both_results() {
        let auth = auth_for(&[("alice", "s3cret", 4)]);
        let runs = || auth.verifications().get();
        assert!(auth.check(Some(&header("alice:s3cret"))).await);
        assert!(auth.check(Some(&header("alice:s3cret"))).await);
        assert_eq!(runs(), 1, "the second success comes from the cache");
        assert!(!auth.check(Some(&header("alice:wrong"))).await);
        assert!(!auth.check(Some(&header("alice:wrong"))).await);
        assert_eq!(runs(), 2, "a repeated failure comes from the cache too");
        assert!(!auth.check(Some(&header("bob:s3cret"))).await);
        assert_eq!(runs(), 3, "an unknown user costs one (decoy) bcrypt run");
        assert!(!auth.check(Some("Bearer x")).await);
        assert!(!auth.check(Some("Basic !!!")).await);
        assert!(!auth.check(None).await);
        assert_eq!(runs(), 3, "malformed headers never reach bcrypt");
    }

    /// RFC 9110: the scheme is case-insensitive.
    #[tokio::test]
    async fn the_basic_scheme_matches_in_any_case() {
        let auth = auth_for(&[("alice", "s3cret", 4)]);
        let b64 = &header("alice:s3cret")["Basic ".len()..];
        for scheme in ["basic", "BASIC", "bAsIc"] {
            assert!(
                auth.check(Some(&format!("{scheme} {b64}"))).await,
                "{scheme}"
            );
        }
        assert!(!auth.check(Some(&format!("Basicx {b64}"))).await);
    }

    /// A storm of distinct wrong passwords cannot evict a scraper's cached success.
    #[tokio::test]
    async fn failures_never_evict_successes() {
        let auth = auth_for(&[("alice", "s3cret", 4)]);
        assert!(auth.check(Some(&header("alice:s3cret"))).await);
        for i in 0..CACHED_FAILURES + 10 {
            let key = cache_key("alice", "h", &i.to_string());
            auth.cache.lock().unwrap().put(key, false);
        }
        let before = auth.verifications().get();
        assert!(auth.check(Some(&header("alice:s3cret"))).await);
        assert_eq!(auth.verifications().get(), before);
        assert!(auth.cache.lock().unwrap().failures.len() <= CACHED_FAILURES);
    }

    /// The decoy is the dearest configured hash, whatever the map's order.
    #[test]
    fn the_decoy_is_the_highest_cost_hash() {
        let users: HashMap<String, String> = [("a", 5), ("b", 6), ("c", 4), ("d", 6)]
            .into_iter()
            .map(|(u, c)| (u.to_owned(), bcrypt::hash("x", c).unwrap()))
            .collect();
        let want = users["b"].clone();
        let auth = BasicAuth::new(users);
        assert_eq!(&*auth.decoy, want.as_str());
    }

    /// Hashes are checked for format at start, never verified (cost 31 would take days).
    #[test]
    fn hash_format_is_checked_without_running_bcrypt() {
        let good = bcrypt::hash("x", 4).unwrap();
        let dearest = format!("$2b$31${}", &good[7..]);
        let t0 = std::time::Instant::now();
        assert_eq!(bcrypt_cost(&dearest), Ok(31));
        assert!(t0.elapsed() < std::time::Duration::from_secs(1));
        for bad in [
            "plaintext".to_owned(),
            format!("$3b$04${}", &good[7..]),
            format!("$2b$03${}", &good[7..]),
            format!("$2b$xx${}", &good[7..]),
            format!("{good}x"),
            good[..59].to_owned(),
            format!("{}!{}", &good[..30], &good[31..]),
        ] {
            assert!(bcrypt_cost(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn oversized_and_deeply_nested_files_are_rejected_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::Instant::now();
        let e = WebConfig::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than 1024 KiB"), "{e}");
        let deep = format!("{}{}", "[".repeat(40_000), "]".repeat(40_000));
        let p = write(dir.path(), "deep.yml", &deep);
        let e = WebConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("nested 40000 levels"), "{e}");
        let dashes = format!("{}x\n", "- ".repeat(40_000));
        let p = write(dir.path(), "dashes.yml", &dashes);
        assert!(WebConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("nested"));
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn nesting_depth_skips_quotes_and_comments() {
        assert_eq!(nesting_depth("a: 1\nb:\n  c: [1, [2]]\n"), 2);
        assert_eq!(nesting_depth("a: '[[[[' # [[[[\nb: \"{{\\\"{{\"\n"), 0);
        assert_eq!(nesting_depth("- - - x\n"), 3);
        assert_eq!(nesting_depth("p: /etc/don't[1].pem\n"), 0);
    }

    #[test]
    fn expired_and_future_certificates_are_warned_about() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = ck.cert.der().to_vec();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let v = cert.validity();
        let (from, until) = (v.not_before.timestamp(), v.not_after.timestamp());
        let p = Path::new("server.crt");
        assert_eq!(certificate_warning(p, &der, from + 1), None);
        let w = certificate_warning(p, &der, until + 1).unwrap();
        assert!(w.contains("expired") && w.contains("server.crt"), "{w}");
        let w = certificate_warning(p, &der, from - 1).unwrap();
        assert!(w.contains("not valid before"), "{w}");
    }

    #[test]
    fn an_empty_file_means_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "e.yml", "");
        let c = WebConfig::load(&p).unwrap();
        assert!(c.tls.is_none() && c.auth.is_none());
    }
}
