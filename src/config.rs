//! The command line and its environment variables, validated into a `Config`.
//!
//! Owns flag names, defaults (including the Podman socket discovery) and every start-up check,
//! each failing with one line that says what to fix. Never starts anything.

use std::collections::HashSet;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use std::time::Duration;

use crate::inventory::Allowlist;
use crate::metrics::ScrapeCache;
use crate::podman::{unique_name, Endpoint};
use crate::resources::SourceChoice;
use crate::webconfig::WebConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// sealwatch: an event-driven Prometheus exporter for Podman.
///
/// Every flag can also be set by an environment variable SEALWATCH_<FLAG> (upper case, `.` and `-`
/// as `_`), for example SEALWATCH_PODMAN_URL.
#[derive(Debug, Parser)]
#[command(name = "sealwatch", version = crate::build_info::VERSION_LINE, about, long_about = None)]
pub struct Cli {
    /// A Podman API service to watch, `[NAME=]unix:///path` or `[NAME=]tcp://host:port`;
    /// repeat the flag (or separate with commas) to watch several. Default: $CONTAINER_HOST, else
    /// the rootful socket as root, else the rootless socket of $XDG_RUNTIME_DIR.
    #[arg(
        long = "podman.url",
        env = "SEALWATCH_PODMAN_URL",
        value_name = "[NAME=]URL",
        value_delimiter = ','
    )]
    pub podman_urls: Vec<String>,

    /// Which engines a root sealwatch finds by itself: `rootful` (/run/podman/podman.sock),
    /// `rootless` (every user's /run/user/UID/podman/podman.sock, also users who log in later),
    /// both comma-separated, or `none`. Default: both as root with no --podman.url and no
    /// $CONTAINER_HOST, else none; with --podman.url, the engines found are added to it.
    #[arg(
        long = "podman.discover",
        env = "SEALWATCH_PODMAN_DISCOVER",
        value_name = "rootful,rootless|none"
    )]
    pub podman_discover: Option<String>,

    /// The largest response body read from Podman (lists, version, info), like 256MiB or 64KiB;
    /// a longer one is dropped and the engine reported not ready, then retried.
    #[arg(
        long = "podman.max-response-size",
        env = "SEALWATCH_PODMAN_MAX_RESPONSE_SIZE",
        value_name = "SIZE",
        default_value = "256MiB"
    )]
    pub podman_max_response_size: String,

    /// Address the HTTP server listens on (`:9882` means every interface).
    #[arg(
        long = "web.listen-address",
        env = "SEALWATCH_WEB_LISTEN_ADDRESS",
        default_value = ":9882",
        global = true
    )]
    pub listen_address: String,

    /// Path of the metrics endpoint.
    #[arg(
        long = "web.telemetry-path",
        env = "SEALWATCH_WEB_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// TLS and basic-auth configuration in the Prometheus exporter-toolkit YAML format
    /// (tls_server_config, basic_auth_users).
    #[arg(
        long = "web.config.file",
        env = "SEALWATCH_WEB_CONFIG_FILE",
        value_name = "FILE",
        global = true
    )]
    pub web_config_file: Option<PathBuf>,

    /// Concurrent `/metrics` requests served; more are answered 503 at once (exporter-toolkit's
    /// flag). 0 means no limit.
    #[arg(
        long = "web.max-requests",
        env = "SEALWATCH_WEB_MAX_REQUESTS",
        default_value_t = 40
    )]
    pub max_requests: usize,

    /// Open HTTP connections; beyond it the longest-idle connection is closed to make room.
    /// 0 derives it from the open-files limit: (limit - 128) / 2, from 16 to 65536.
    #[arg(
        long = "web.max-connections",
        env = "SEALWATCH_WEB_MAX_CONNECTIONS",
        default_value_t = 0
    )]
    pub max_connections: usize,

    /// Container label keys that become metric labels, comma-separated; `*` allows all.
    #[arg(
        long = "labels.allowlist",
        env = "SEALWATCH_LABELS_ALLOWLIST",
        default_value = "io.podman.compose.project,com.docker.compose.project,com.docker.compose.service,PODMAN_SYSTEMD_UNIT"
    )]
    pub labels_allowlist: String,

    /// Distinct values per allowlisted key before further values are folded into `__other__`.
    #[arg(
        long = "labels.max-values",
        env = "SEALWATCH_LABELS_MAX_VALUES",
        default_value_t = 500
    )]
    pub labels_max_values: usize,

    /// Distinct allowlisted keys before further keys are counted as `label="__other__"` in the
    /// per-label families and left out of podman_container_labels.
    #[arg(
        long = "labels.max-keys",
        env = "SEALWATCH_LABELS_MAX_KEYS",
        default_value_t = crate::inventory::DEFAULT_MAX_KEYS
    )]
    pub labels_max_keys: usize,

    /// How long the per-pod and per-label-value counters of a removed pod or label value are
    /// kept after its last event, so Prometheus sees their last value (e.g. `10m`, `90s`, `1h`).
    #[arg(
        long = "metrics.removed-retention",
        env = "SEALWATCH_METRICS_REMOVED_RETENTION",
        default_value = "10m"
    )]
    pub metrics_removed_retention: String,

    /// Whether a scrape's text is kept for the next: `on` writes only what changed since the
    /// last scrape; `off` keeps nothing between scrapes (less memory on a large host, and every
    /// scrape costs what the first does).
    #[arg(
        long = "metrics.scrape-cache",
        env = "SEALWATCH_METRICS_SCRAPE_CACHE",
        value_enum,
        default_value = "on"
    )]
    pub metrics_scrape_cache: ScrapeCache,

    /// Where per-container and per-pod resource usage comes from: `cgroup` reads the cgroup
    /// filesystem and /proc of this machine; `podman` keeps one stats stream open to Podman;
    /// `auto` uses cgroup for unix-socket engines when a cgroup filesystem is mounted, else
    /// podman; `off` leaves the resource families out.
    #[arg(
        long = "stats.source",
        env = "SEALWATCH_STATS_SOURCE",
        value_enum,
        default_value = "auto"
    )]
    pub stats_source: SourceChoice,

    /// How old resource numbers may be: a scrape reuses a sample younger than this and takes a
    /// new one otherwise (e.g. `5s`, `500ms`, `1m`; `0` samples on every scrape).
    #[arg(
        long = "stats.interval",
        env = "SEALWATCH_STATS_INTERVAL",
        default_value = "5s"
    )]
    pub stats_interval: String,

    /// How often Podman sends a report on its stats stream (the `podman` source): whole seconds,
    /// e.g. `5s` or `1m`. Podman's cost depends on this, not on scrapes.
    #[arg(
        long = "stats.podman-interval",
        env = "SEALWATCH_STATS_PODMAN_INTERVAL",
        default_value = "5s"
    )]
    pub stats_podman_interval: String,

    /// Events kept in memory for `/events?since=` replay, from 1 to 1000000; also how far a
    /// live `/events` reader may fall behind before its feed is ended.
    #[arg(
        long = "events.buffer",
        env = "SEALWATCH_EVENTS_BUFFER",
        default_value_t = crate::feed::DEFAULT_BUFFER
    )]
    pub events_buffer: usize,

    /// Concurrent `/events` feeds; more are answered 503. 0 turns the feed off.
    #[arg(
        long = "events.max-feeds",
        env = "SEALWATCH_EVENTS_MAX_FEEDS",
        default_value_t = crate::feed::DEFAULT_MAX_FEEDS
    )]
    pub events_max_feeds: usize,

    /// How often an idle `/events` feed sends a keep-alive (an empty line in NDJSON, a comment
    /// in SSE), so proxies keep it open and a gone reader is noticed (100ms to 1h).
    #[arg(
        long = "events.keepalive",
        env = "SEALWATCH_EVENTS_KEEPALIVE",
        default_value = "15s"
    )]
    pub events_keepalive: String,

    /// Log level.
    #[arg(
        long = "log.level",
        env = "SEALWATCH_LOG_LEVEL",
        value_enum,
        default_value = "info"
    )]
    pub log_level: LogLevel,

    /// Log format.
    #[arg(
        long = "log.format",
        env = "SEALWATCH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exit 0 if the sealwatch on --web.listen-address answers /-/ready with 200, else 1
    /// (for container HEALTHCHECKs, where there is no curl).
    Healthcheck,
}

/// One engine to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub name: String,
    pub endpoint: Endpoint,
}

/// Which engines sealwatch finds by itself (`--podman.discover`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discover {
    /// The rootful socket, as an engine named `root` (down while the socket is missing).
    pub rootful: bool,
    /// Every user's rootless socket under /run/user, as they come and go.
    pub rootless: bool,
}

impl Discover {
    fn parse(s: &str) -> Result<Self, ConfigError> {
        let mut d = Discover::default();
        for part in s.split(',').map(str::trim) {
            match part {
                "rootful" => d.rootful = true,
                "rootless" => d.rootless = true,
                "none" if s.trim() == "none" => {}
                _ => {
                    return Err(ConfigError(format!(
                    "--podman.discover {s:?}: expected rootful, rootless, rootful,rootless or none"
                )))
                }
            }
        }
        Ok(d)
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The engines watched from the start: those of --podman.url (or the default socket), and
    /// the rootful one when it is discovered.
    pub engines: Vec<EngineConfig>,
    pub discover: Discover,
    /// `host:port` to bind, with `:port` already turned into `0.0.0.0:port`.
    pub listen_address: String,
    pub telemetry_path: String,
    /// Concurrent `/metrics` requests; 0 is unlimited.
    pub max_requests: usize,
    /// Open HTTP connections; 0 derives the cap from the open-files limit at start.
    pub max_connections: usize,
    pub web: WebConfig,
    /// `--podman.max-response-size` in bytes.
    pub max_response_size: usize,
    /// Whether a web config file was given (the healthcheck then only probes the port).
    pub has_web_config: bool,
    pub allowlist: Allowlist,
    pub max_label_values: usize,
    pub max_label_keys: usize,
    /// How long counters of removed pods and label values are kept.
    pub removed_retention: Duration,
    pub scrape_cache: ScrapeCache,
    pub stats_source: SourceChoice,
    /// The maximum age of a resource sample a scrape shows.
    pub stats_interval: Duration,
    /// The interval of Podman's stats stream, whole seconds, at least 1 s.
    pub stats_podman_interval: Duration,
    /// `--events.buffer`: events kept for replay, and a live reader's allowance.
    pub events_buffer: usize,
    /// `--events.max-feeds`: concurrent `/events` readers.
    pub events_max_feeds: usize,
    /// `--events.keepalive`: how often an idle feed sends a keep-alive.
    pub events_keepalive: Duration,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
}

/// A start-up error: the message is the one line printed before exiting with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// What the environment offers for the default socket.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub container_host: Option<String>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub is_root: bool,
}

impl Environment {
    pub fn current() -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            container_host: std::env::var("CONTAINER_HOST")
                .ok()
                .filter(|s| !s.is_empty()),
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
            is_root: std::fs::metadata("/proc/self")
                .map(|m| m.uid() == 0)
                .unwrap_or(false),
        }
    }

    /// `$CONTAINER_HOST`, else the rootful socket as root, else the rootless one.
    pub fn default_url(&self) -> Result<String, ConfigError> {
        if let Some(url) = &self.container_host {
            return Ok(url.clone());
        }
        if self.is_root {
            return Ok("unix:///run/podman/podman.sock".into());
        }
        match &self.xdg_runtime_dir {
            Some(dir) => Ok(format!("unix://{}/podman/podman.sock", dir.display())),
            None => Err(ConfigError(
                "no Podman socket to watch: not root and XDG_RUNTIME_DIR is unset; pass --podman.url unix:///path/to/podman.sock".into(),
            )),
        }
    }
}

impl Cli {
    /// Checks every value and resolves defaults.
    pub fn validate(&self, env: &Environment) -> Result<Config, ConfigError> {
        let explicit = !self.podman_urls.is_empty();
        let discover = match &self.podman_discover {
            Some(flag) => Discover::parse(flag)?,
            None if !explicit && env.container_host.is_none() && env.is_root => Discover {
                rootful: true,
                rootless: true,
            },
            None => Discover::default(),
        };
        let urls = if explicit {
            self.podman_urls.clone()
        } else if discover.rootful || discover.rootless {
            vec![]
        } else {
            vec![env.default_url()?]
        };
        let mut specs: Vec<(Option<String>, Endpoint)> = urls
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(parse_engine)
            .collect::<Result<_, _>>()?;
        if discover.rootful && !specs.iter().any(|(_, e)| e.is_rootful()) {
            specs.push((None, Endpoint::rootful()));
        }
        let engines = name_engines(specs, crate::podman::login_name)?;
        // With rootless discovery, users' sockets come later: nothing to watch yet is fine.
        if engines.is_empty() && !discover.rootless {
            return Err(ConfigError("--podman.url: no URL given".into()));
        }
        check_telemetry_path(&self.telemetry_path)?;
        if self.labels_max_values == 0 {
            return Err(ConfigError("--labels.max-values must be at least 1".into()));
        }
        if self.labels_max_keys == 0 {
            return Err(ConfigError("--labels.max-keys must be at least 1".into()));
        }
        let removed_retention =
            parse_retention(&self.metrics_removed_retention).ok_or_else(|| {
                ConfigError(format!(
                    "--metrics.removed-retention {:?}: expected a duration like 10m, 90s or 1h, \
                 from 1s to 24h",
                    self.metrics_removed_retention
                ))
            })?;
        Ok(Config {
            engines,
            discover,
            listen_address: parse_listen_address(&self.listen_address)?,
            telemetry_path: self.telemetry_path.clone(),
            max_requests: self.max_requests,
            max_connections: self.max_connections,
            web: match &self.web_config_file {
                Some(path) => WebConfig::load(path).map_err(|e| ConfigError(e.to_string()))?,
                None => WebConfig::default(),
            },
            has_web_config: self.web_config_file.is_some(),
            max_response_size: parse_size(&self.podman_max_response_size)
                .filter(|n| *n >= 64 << 10)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--podman.max-response-size {:?}: expected a size like 256MiB or 512KiB, at least 64KiB",
                        self.podman_max_response_size
                    ))
                })?,
            allowlist: Allowlist::parse(&self.labels_allowlist),
            max_label_values: self.labels_max_values,
            max_label_keys: self.labels_max_keys,
            removed_retention,
            scrape_cache: self.metrics_scrape_cache,
            stats_source: self.stats_source,
            stats_interval: parse_duration(&self.stats_interval).ok_or_else(|| {
                ConfigError(format!(
                    "--stats.interval {:?}: expected a duration like 5s, 500ms or 1m, at most 60m",
                    self.stats_interval
                ))
            })?,
            stats_podman_interval: parse_duration(&self.stats_podman_interval)
                .filter(|d| !d.is_zero() && d.subsec_nanos() == 0)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--stats.podman-interval {:?}: expected whole seconds like 5s or 1m, \
                         from 1s to 60m",
                        self.stats_podman_interval
                    ))
                })?,
            events_buffer: Some(self.events_buffer)
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--events.buffer {}: expected a number of events from 1 to 1000000",
                        self.events_buffer
                    ))
                })?,
            events_max_feeds: self.events_max_feeds,
            events_keepalive: parse_duration(&self.events_keepalive)
                .filter(|d| *d >= Duration::from_millis(100))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--events.keepalive {:?}: expected a duration like 15s, 500ms or 1m, \
                         from 100ms to 1h",
                        self.events_keepalive
                    ))
                })?,
            log_level: self.log_level,
            log_format: self.log_format,
        })
    }
}

/// The paths the router serves besides the telemetry path; `{ref}` stands for one segment.
const OTHER_ENDPOINTS: &[&str] = &[
    "/",
    "/-/healthy",
    "/-/ready",
    "/containers",
    "/containers/{ref}",
    "/pods",
    "/pods/{ref}",
    "/events",
];

/// `--web.telemetry-path` must be a plain absolute path (the router would read `:x`, `{x}` or
/// `*x` as a capture, and panic on a malformed one) that no other endpoint answers.
fn check_telemetry_path(path: &str) -> Result<(), ConfigError> {
    let fail = |why: &str| {
        Err(ConfigError(format!(
            "--web.telemetry-path {path:?}: {why} (e.g. /metrics)"
        )))
    };
    let Some(rest) = path.strip_prefix('/') else {
        return fail("must start with /");
    };
    if rest.is_empty() {
        return fail("must not be / itself, which is the landing page");
    }
    if let Some(c) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~')))
    {
        return fail(&format!(
            "{c:?} is not allowed; use letters, digits and - _ . ~ between slashes"
        ));
    }
    if rest
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return fail("no empty, . or .. segments");
    }
    let segments: Vec<&str> = path.split('/').collect();
    let collides = OTHER_ENDPOINTS.iter().any(|endpoint| {
        let theirs: Vec<&str> = endpoint.split('/').collect();
        theirs.len() == segments.len()
            && theirs
                .iter()
                .zip(&segments)
                .all(|(t, s)| *t == "{ref}" || t == s)
    });
    if collides {
        return fail("that path is already served by another sealwatch endpoint");
    }
    Ok(())
}

/// `NAME=URL` or `URL` (then the engine gets a name from its URL, see `name_engines`).
fn parse_engine(spec: &str) -> Result<(Option<String>, Endpoint), ConfigError> {
    let (name, url) = match spec.split_once('=') {
        Some((name, url)) if !name.contains("://") => (Some(name.trim().to_owned()), url.trim()),
        _ => (None, spec),
    };
    if name.as_deref() == Some("") {
        return Err(ConfigError(format!(
            "--podman.url {spec:?}: empty engine name before '='"
        )));
    }
    let endpoint = Endpoint::parse(url).map_err(|e| ConfigError(format!("--podman.url {e}")))?;
    Ok((name, endpoint))
}

/// Gives every engine its name: the one the user chose (twice the same is an error), else a
/// short one from its URL (`Endpoint::short_name`: `root`, the user's login name, `host:port`,
/// ...), made unique with a `-2`, `-3` suffix. Names the user chose are never changed, so they
/// are settled first; derived names follow in command-line order, so they are stable across
/// restarts with the same flags.
pub fn name_engines(
    specs: Vec<(Option<String>, Endpoint)>,
    login_name: impl Fn(u32) -> Option<String>,
) -> Result<Vec<EngineConfig>, ConfigError> {
    let mut taken = HashSet::new();
    for name in specs.iter().filter_map(|(n, _)| n.as_ref()) {
        if !taken.insert(name.clone()) {
            return Err(ConfigError(format!(
                "--podman.url: engine name {name:?} is used twice; name each engine with NAME=URL"
            )));
        }
    }
    Ok(specs
        .into_iter()
        .map(|(name, endpoint)| {
            let name = name.unwrap_or_else(|| {
                let derived = unique_name(endpoint.short_name(&login_name), |n| taken.contains(n));
                taken.insert(derived.clone());
                derived
            });
            EngineConfig { name, endpoint }
        })
        .collect())
}

/// `0`, or a number with `ms`, `s` or `m` (up to an hour): Prometheus' duration units that
/// make sense for a sample's age.
/// A byte count with an optional binary unit: `1048576`, `512KiB`, `256MiB`, `1GiB` (`K`, `M`,
/// `G` and `B` suffixes are read the same way).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: usize = number.parse().ok()?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" | "k" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        _ => return None,
    };
    number.checked_mul(1usize << shift)
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let (number, unit_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        return None;
    };
    let n: u64 = number.parse().ok()?;
    let d = Duration::from_millis(n.checked_mul(unit_ms)?);
    (d <= Duration::from_secs(3600)).then_some(d)
}

/// A number with `s`, `m` or `h`, from one second to a day: how long to keep something for
/// Prometheus to see.
pub fn parse_retention(s: &str) -> Option<Duration> {
    let s = s.trim();
    let d = match s.strip_suffix('h') {
        Some(n) => Duration::from_secs(n.parse::<u64>().ok()?.checked_mul(3600)?),
        None if s.ends_with("ms") => return None,
        None => {
            let (n, unit) = if let Some(n) = s.strip_suffix('s') {
                (n, 1)
            } else {
                (s.strip_suffix('m')?, 60)
            };
            Duration::from_secs(n.parse::<u64>().ok()?.checked_mul(unit)?)
        }
    };
    (Duration::from_secs(1)..=Duration::from_secs(86_400))
        .contains(&d)
        .then_some(d)
}

/// `host:port`, `[v6]:port` or `:port` (every interface).
pub fn parse_listen_address(addr: &str) -> Result<String, ConfigError> {
    let bad = || {
        ConfigError(format!(
            "--web.listen-address {addr:?}: expected host:port or :port (e.g. :9882 or 127.0.0.1:9882)"
        ))
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Ok(format!("0.0.0.0:{port}"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad());
    }
    Ok(addr.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sealwatch").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn engines_are_named_by_name_or_url() {
        let c = cli(&[
            "--podman.url",
            "main=unix:///run/podman/podman.sock",
            "--podman.url",
            "tcp://h:1",
        ]);
        let cfg = c.validate(&Environment::default()).unwrap();
        assert_eq!(cfg.engines[0].name, "main");
        assert_eq!(cfg.engines[1].name, "h:1");
    }

    /// Derived names are readable and unique; names the user chose win over derived ones.
    #[test]
    fn derived_names_are_short_and_unique() {
        let specs = [
            "unix:///run/user/1001/podman/podman.sock",
            "unix:///a/podman.sock",
            "unix:///b/a/podman.sock",
            "unix:///run/podman/podman.sock",
            "root=tcp://h:1",
            "unix:///run/user/1002/podman/podman.sock",
        ];
        let parsed = specs.iter().map(|s| parse_engine(s).unwrap()).collect();
        let names: Vec<String> = name_engines(parsed, |uid| (uid == 1001).then(|| "alice".into()))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["alice", "a", "a-2", "root-2", "root", "1002"]);
    }

    #[test]
    fn duplicate_engine_names_are_rejected() {
        let c = cli(&["--podman.url", "a=tcp://h:1,a=tcp://h:2"]);
        let err = c.validate(&Environment::default()).unwrap_err().0;
        assert!(err.contains("used twice"), "{err}");
    }

    #[test]
    fn default_socket_discovery() {
        let mut env = Environment {
            is_root: true,
            ..Default::default()
        };
        assert_eq!(env.default_url().unwrap(), "unix:///run/podman/podman.sock");
        env.is_root = false;
        env.xdg_runtime_dir = Some("/run/user/1000".into());
        assert_eq!(
            env.default_url().unwrap(),
            "unix:///run/user/1000/podman/podman.sock"
        );
        env.container_host = Some("tcp://x:1".into());
        assert_eq!(env.default_url().unwrap(), "tcp://x:1");
        env.container_host = None;
        env.xdg_runtime_dir = None;
        assert!(env.default_url().is_err());
    }

    /// Root with no URL discovers both; a URL turns discovery off unless asked for; `none` and
    /// bad values.
    #[test]
    fn discovery_defaults_and_flag() {
        let root = Environment {
            is_root: true,
            ..Default::default()
        };
        let c = cli(&[]).validate(&root).unwrap();
        assert_eq!(
            c.discover,
            Discover {
                rootful: true,
                rootless: true
            }
        );
        assert_eq!(c.engines.len(), 1);
        assert_eq!(c.engines[0].name, "root");
        assert!(c.engines[0].endpoint.is_rootful());

        let c = cli(&["--podman.url", "tcp://h:1"]).validate(&root).unwrap();
        assert_eq!(c.discover, Discover::default());
        assert_eq!(c.engines.len(), 1);

        let c = cli(&["--podman.url", "tcp://h:1", "--podman.discover", "rootless"])
            .validate(&root)
            .unwrap();
        assert_eq!(
            c.discover,
            Discover {
                rootful: false,
                rootless: true
            }
        );
        assert_eq!(c.engines.len(), 1);

        let c = cli(&["--podman.discover", "rootless"])
            .validate(&root)
            .unwrap();
        assert!(c.engines.is_empty(), "rootless only: engines come later");

        let c = cli(&["--podman.discover", "none"]).validate(&root).unwrap();
        assert_eq!(c.engines[0].name, "root", "the default socket, named root");
        assert_eq!(c.discover, Discover::default());

        let user = Environment {
            xdg_runtime_dir: Some("/run/user/1000".into()),
            ..Default::default()
        };
        assert_eq!(
            cli(&[]).validate(&user).unwrap().discover,
            Discover::default()
        );
        for bad in ["all", "rootful,none", ""] {
            let err = cli(&["--podman.discover", bad])
                .validate(&root)
                .unwrap_err()
                .0;
            assert!(err.starts_with("--podman.discover"), "{bad}: {err}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen_address(":9882").unwrap(), "0.0.0.0:9882");
        assert_eq!(parse_listen_address("127.0.0.1:1").unwrap(), "127.0.0.1:1");
        assert_eq!(parse_listen_address("[::1]:1").unwrap(), "[::1]:1");
        assert!(parse_listen_address("9882").is_err());
        assert!(parse_listen_address("host:http").is_err());
        assert!(parse_listen_address("::1:80").is_err());
    }

    #[test]
    fn bad_values_are_start_up_errors() {
        let env = Environment {
            is_root: true,
            ..Default::default()
        };
        assert!(cli(&["--podman.url", "http://x"]).validate(&env).is_err());
        assert!(cli(&["--web.telemetry-path", "metrics"])
            .validate(&env)
            .is_err());
        assert!(cli(&["--labels.max-values", "0"]).validate(&env).is_err());
        assert!(Cli::try_parse_from(["sealwatch", "--log.level", "loud"]).is_err());
        assert!(Cli::try_parse_from(["sealwatch", "--stats.source", "proc"]).is_err());
        for bad in [
            "/:x",
            "/{",
            "/*",
            "/{x}",
            "/containers/{reference}",
            "/containers",
            "/containers/abc",
            "/pods/x",
            "/-/ready",
            "/",
            "//m",
            "/m/",
            "/a b",
            "/m?x",
            "/m#x",
            "/%6d",
            "/m/../x",
        ] {
            let err = cli(&["--web.telemetry-path", bad])
                .validate(&env)
                .unwrap_err()
                .0;
            assert!(err.starts_with("--web.telemetry-path"), "{bad}: {err}");
        }
        for good in [
            "/metrics",
            "/m",
            "/exporter/podman-metrics",
            "/a.b~c_d",
            "/-/metrics",
        ] {
            assert!(
                cli(&["--web.telemetry-path", good]).validate(&env).is_ok(),
                "{good}"
            );
        }
        for bad in ["5", "-1s", "1h", "61m", "s", "1.5s"] {
            assert!(
                cli(&[&format!("--stats.interval={bad}")])
                    .validate(&env)
                    .is_err(),
                "{bad}"
            );
        }
    }

    /// Flags given after the `healthcheck` subcommand count as well as before it.
    #[test]
    fn healthcheck_takes_the_listen_address_after_the_subcommand() {
        let env = Environment {
            is_root: true,
            ..Default::default()
        };
        let c = cli(&["healthcheck", "--web.listen-address", "127.0.0.1:1234"]);
        assert!(matches!(c.command, Some(Command::Healthcheck)));
        assert_eq!(c.validate(&env).unwrap().listen_address, "127.0.0.1:1234");
    }

    /// `--metrics.scrape-cache` is on unless turned off; any other word is a start-up error.
    #[test]
    fn scrape_cache_flag() {
        let env = Environment {
            is_root: true,
            ..Default::default()
        };
        assert_eq!(
            cli(&[]).validate(&env).unwrap().scrape_cache,
            ScrapeCache::On
        );
        let c = cli(&["--metrics.scrape-cache", "off"])
            .validate(&env)
            .unwrap();
        assert_eq!(c.scrape_cache, ScrapeCache::Off);
        assert!(Cli::try_parse_from(["sealwatch", "--metrics.scrape-cache", "no"]).is_err());
    }

    #[test]
    fn stats_flags() {
        let env = Environment {
            is_root: true,
            ..Default::default()
        };
        let c = cli(&[]).validate(&env).unwrap();
        assert_eq!(c.stats_source, SourceChoice::Auto);
        assert_eq!(c.stats_interval, Duration::from_secs(5));
        let c = cli(&["--stats.source", "off", "--stats.interval", "250ms"])
            .validate(&env)
            .unwrap();
        assert_eq!(c.stats_source, SourceChoice::Off);
        assert_eq!(c.stats_interval, Duration::from_millis(250));
        assert_eq!(c.stats_podman_interval, Duration::from_secs(5));
        let c = cli(&["--stats.podman-interval", "2m"])
            .validate(&env)
            .unwrap();
        assert_eq!(c.stats_podman_interval, Duration::from_secs(120));
        for bad in ["0", "500ms", "1500ms", "2", "61m", "x"] {
            let err = cli(&["--stats.podman-interval", bad])
                .validate(&env)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("--stats.podman-interval"), "{bad}: {err}");
        }
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    }

    #[test]
    fn response_size_takes_binary_units_and_a_floor() {
        assert_eq!(parse_size("256MiB"), Some(256 << 20));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("70000"), Some(70000));
        for bad in ["", "MiB", "1.5MiB", "-1", "10 TB", "99999999999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        let env = Environment::default();
        let url = "unix:///x.sock";
        let c = cli(&["--podman.url", url]).validate(&env).unwrap();
        assert_eq!(c.max_response_size, 256 << 20);
        let err = cli(&["--podman.url", url, "--podman.max-response-size", "1KiB"])
            .validate(&env)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--podman.max-response-size"), "{err}");
    }

    #[test]
    fn retention_and_key_cap_flags() {
        let env = Environment {
            is_root: true,
            ..Default::default()
        };
        let c = cli(&[]).validate(&env).unwrap();
        assert_eq!(c.removed_retention, Duration::from_secs(600));
        assert_eq!(c.max_label_keys, 256);
        let c = cli(&[
            "--metrics.removed-retention",
            "2s",
            "--labels.max-keys",
            "3",
        ])
        .validate(&env)
        .unwrap();
        assert_eq!(
            (c.removed_retention, c.max_label_keys),
            (Duration::from_secs(2), 3)
        );
        assert_eq!(parse_retention("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_retention("90m"), Some(Duration::from_secs(5400)));
        for bad in ["0", "0s", "500ms", "25h", "10", "x", "-1m", "1.5m"] {
            let err = cli(&[&format!("--metrics.removed-retention={bad}")])
                .validate(&env)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("--metrics.removed-retention"),
                "{bad}: {err}"
            );
        }
        assert!(cli(&["--labels.max-keys", "0"]).validate(&env).is_err());
        assert_eq!(c.events_keepalive, Duration::from_secs(15));
        let c = cli(&["--events.keepalive", "200ms"])
            .validate(&env)
            .unwrap();
        assert_eq!(c.events_keepalive, Duration::from_millis(200));
        for bad in ["0", "50ms", "2h", "x"] {
            let err = cli(&[&format!("--events.keepalive={bad}")])
                .validate(&env)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("--events.keepalive"), "{bad}: {err}");
        }
    }
}
