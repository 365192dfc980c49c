//! `/metrics` proven against real components: a private Podman 4.3.1 service, `podman ps`,
//! `podman pod ps`, `podman events`, `promtool` and a real Prometheus.
//!
//! Every expectation is computed from what Podman itself reports, never hard-coded from what
//! sealwatch happens to print. Waits are bounded polls (`wait_until`), never timing assertions.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::prometheus::{sample_value, Prometheus};
use crate::support::{wait_until, PodmanService, Sealwatch, BUSYBOX_IMAGE as IMAGE};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sealwatch");
/// The allowlist of the gauge and exactness tests.
const ALLOW: &[&str] = &["app", "io.podman.compose.project"];
const ALLOW_FLAG: &str = "app,io.podman.compose.project";
/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// Generous bound for sealwatch to catch up with Podman (parallel tests share 2 cores).
const CATCH_UP: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// HTTP without transparent decompression (ureq decodes gzip itself, which would hide what
// sealwatch sends)
// ---------------------------------------------------------------------------------------------

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("body is UTF-8")
    }
}

fn raw_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect {port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("chunk size {size_text:?}: {e}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("short chunk")?);
        data = data.get(size + 2..).ok_or("chunk end")?;
    }
}

// ---------------------------------------------------------------------------------------------
// The exposition formats, parsed strictly
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One parsed `/metrics` body (0.0.4 text or OpenMetrics text).
#[derive(Debug, Default)]
struct Exposition {
    samples: Vec<Sample>,
    /// `# HELP` and `# TYPE` lines in order: (family, text or type).
    help: Vec<(String, String)>,
    types: Vec<(String, String)>,
    /// Saw `# EOF` as the very last line.
    eof_last: bool,
}

fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.last() != Some(&"") {
        return Err("the body does not end with a newline".into());
    }
    let lines = &lines[..lines.len() - 1];
    for (i, line) in lines.iter().enumerate() {
        let at = |msg: String| format!("line {}: {msg}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            let mut parts = rest.splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts.next().ok_or_else(|| at("HELP without name".into()))?;
                    e.help
                        .push((name.to_owned(), parts.next().unwrap_or("").to_owned()));
                }
                Some("TYPE") => {
                    let name = parts.next().ok_or_else(|| at("TYPE without name".into()))?;
                    let kind = parts.next().ok_or_else(|| at("TYPE without type".into()))?;
                    e.types.push((name.to_owned(), kind.to_owned()));
                }
                Some("EOF") => {
                    if i + 1 != lines.len() {
                        return Err(at("# EOF before the end".into()));
                    }
                    e.eof_last = true;
                }
                _ => {}
            }
            continue;
        }
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        e.samples.push(parse_sample(line).map_err(at)?);
    }
    Ok(e)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let mut chars = line.chars().peekable();
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            name.push(c);
            chars.next();
        } else {
            break;
        }
    }
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = Vec::new();
    if chars.peek() == Some(&'{') {
        chars.next();
        loop {
            match chars.peek() {
                Some('}') => {
                    chars.next();
                    break;
                }
                None => return Err("unterminated label set".into()),
                _ => {}
            }
            let mut key = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    key.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if chars.next() != Some('=') || chars.next() != Some('"') {
                return Err(format!("label {key:?} is not followed by =\""));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape \\{other:?} in {key}")),
                    },
                    Some('"') => break,
                    Some('\n') => return Err(format!("raw newline in value of {key}")),
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated value of {key}")),
                }
            }
            labels.push((key, value));
            match chars.next() {
                Some(',') => {}
                Some('}') => break,
                other => return Err(format!("expected , or }} after a label, got {other:?}")),
            }
        }
    }
    if chars.next() != Some(' ') {
        return Err("no space before the value".into());
    }
    let rest: String = chars.collect();
    let mut fields = rest.split(' ');
    let v = fields.next().unwrap_or("");
    let value = match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<f64>()
            .map_err(|e| format!("timestamp {ts:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

fn valid_label_name(k: &str) -> bool {
    let mut cs = k.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with("__")
}

impl Exposition {
    /// The family a sample belongs to: its name, or its name without a type suffix.
    fn family_of(&self, sample: &str) -> Option<String> {
        let declared = |n: &str| self.types.iter().any(|(t, _)| t == n);
        if declared(sample) {
            return Some(sample.to_owned());
        }
        ["_total", "_created", "_count", "_sum", "_bucket", "_info"]
            .iter()
            .filter_map(|s| sample.strip_suffix(s))
            .find(|n| declared(n))
            .map(str::to_owned)
    }

    /// Everything a scraper or a user would trip over; empty when clean.
    fn problems(&self, openmetrics: bool) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen_types = HashSet::new();
        for (name, kind) in &self.types {
            if !seen_types.insert(name) {
                problems.push(format!("TYPE of {name} declared twice"));
            }
            if ![
                "counter",
                "gauge",
                "histogram",
                "summary",
                "untyped",
                "unknown",
                "info",
                "stateset",
            ]
            .contains(&kind.as_str())
            {
                problems.push(format!("{name} has unknown type {kind}"));
            }
            if !self.help.iter().any(|(h, _)| h == name) {
                problems.push(format!("{name} has TYPE but no HELP"));
            }
        }
        let mut seen_help = HashSet::new();
        for (name, _) in &self.help {
            if !seen_help.insert(name) {
                problems.push(format!("HELP of {name} given twice"));
            }
        }
        let mut series = HashSet::new();
        let mut finished: BTreeSet<String> = BTreeSet::new();
        let mut current: Option<String> = None;
        for s in &self.samples {
            let Some(family) = self.family_of(&s.name) else {
                problems.push(format!("sample {} has no TYPE/HELP", s.name));
                continue;
            };
            let kind = &self.types.iter().find(|(n, _)| *n == family).unwrap().1;
            if kind == "counter" && !s.name.ends_with("_total") {
                problems.push(format!("counter sample {} does not end in _total", s.name));
            }
            if current.as_deref() != Some(family.as_str()) {
                if let Some(prev) = current.take() {
                    finished.insert(prev);
                }
                if finished.contains(&family) {
                    problems.push(format!("samples of {family} are not contiguous"));
                }
                current = Some(family.clone());
            }
            let mut names = HashSet::new();
            for (k, _) in &s.labels {
                if !valid_label_name(k) {
                    problems.push(format!("{}: invalid label name {k:?}", s.name));
                }
                if !names.insert(k) {
                    problems.push(format!("{}: label {k} appears twice in one series", s.name));
                }
            }
            let mut key = s.labels.clone();
            key.sort();
            if !series.insert((s.name.clone(), key)) {
                problems.push(format!("duplicate series {} {:?}", s.name, s.labels));
            }
        }
        if openmetrics && !self.eof_last {
            problems.push("OpenMetrics body does not end with # EOF".into());
        }
        if !openmetrics && self.eof_last {
            problems.push("0.0.4 text must not carry # EOF".into());
        }
        problems
    }

    fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The samples of `name` keyed by the values of `keys` (absent label = ""), summed; zeros
    /// are dropped so that "absent" and "0" compare equal.
    fn by(&self, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out: BTreeMap<Vec<String>, f64> = BTreeMap::new();
        for s in self.series(name) {
            let k = keys
                .iter()
                .map(|k| s.label(k).unwrap_or("").to_owned())
                .collect();
            *out.entry(k).or_default() += s.value;
        }
        out.retain(|_, v| *v != 0.0);
        out
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(name)
            .find(|s| labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
    }
}

fn count(map: &mut BTreeMap<Vec<String>, f64>, key: &[&str]) {
    *map.entry(key.iter().map(|s| s.to_string()).collect())
        .or_default() += 1.0;
}

/// Differences between what Podman says (`want`) and what sealwatch says (`got`), readable.
fn diff(
    what: &str,
    want: &BTreeMap<Vec<String>, f64>,
    got: &BTreeMap<Vec<String>, f64>,
) -> Vec<String> {
    let keys: BTreeSet<&Vec<String>> = want.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| {
            format!(
                "{what}{k:?}: podman says {}, sealwatch says {}",
                want.get(k).map_or("absent".into(), |v| v.to_string()),
                got.get(k).map_or("absent".into(), |v| v.to_string())
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Talking to sealwatch and to the tools
// ---------------------------------------------------------------------------------------------

fn wait_ready(sw: &Sealwatch) {
    wait_until("sealwatch /-/ready", Duration::from_secs(60), || {
        match sw.try_get("/-/ready")? {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status}: {body}")),
        }
    });
}

/// GET the metrics path as 0.0.4 text, uncompressed; checks status and Content-Type.
fn scrape_text(sw: &Sealwatch, path: &str) -> String {
    let r = raw_get(sw.port(), path, &[("Accept", "text/plain")])
        .unwrap_or_else(|e| panic!("GET {path}: {e}\n--- log ---\n{}", sw.log()));
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(r.header("content-encoding"), None, "gzip was not asked for");
    r.text()
}

/// At most 2,000 characters of `s`, for failure messages about huge bodies.
fn clip(s: &str) -> String {
    match s.char_indices().nth(2000) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_owned(),
    }
}

fn scrape(sw: &Sealwatch) -> Exposition {
    let text = scrape_text(sw, "/metrics");
    parse_exposition(&text).unwrap_or_else(|e| panic!("unparsable /metrics: {}", clip(&e)))
}

/// `promtool check metrics` on `text`: panics with its findings unless it exits 0.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}); install Debian's `prometheus` package")
        });
    let mut stdin = child.stdin.take().expect("stdin");
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("promtool output");
    writer.join().expect("writer").expect("write to promtool");
    assert!(
        out.status.success(),
        "promtool check metrics exited with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// promtool, plus what promtool does not check (duplicates, HELP/TYPE, grouping).
fn assert_lint_clean(text: &str, openmetrics: bool) -> Exposition {
    if !openmetrics {
        promtool_check(text);
    }
    let e = parse_exposition(text).unwrap_or_else(|err| panic!("unparsable: {}", clip(&err)));
    let problems = e.problems(openmetrics);
    assert!(
        problems.is_empty(),
        "exposition problems:\n{}",
        problems.join("\n")
    );
    e
}

fn names(c: &Value) -> String {
    c["Names"][0].as_str().unwrap_or_default().to_owned()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// `healthy`, `unhealthy` or `starting` from `podman ps`'s status text ("Up 3 s (healthy)").
fn ps_health(c: &Value) -> Option<String> {
    let status = str_of(c, "Status");
    let inner = status.strip_suffix(')')?.rsplit_once('(')?.1;
    ["healthy", "unhealthy", "starting"]
        .contains(&inner)
        .then(|| inner.to_owned())
}

fn container<'a>(ps: &'a Value, name: &str) -> &'a Value {
    ps.as_array()
        .and_then(|a| a.iter().find(|c| names(c) == name))
        .unwrap_or_else(|| panic!("no container {name} in podman ps: {ps:#}"))
}

/// Every inventory gauge compared with `podman ps -a` and `podman pod ps`; empty when equal.
/// Restarts are not among them: Podman does not report sealwatch's definition.
fn gauge_differences(ps: &Value, pods: &Value, m: &Exposition, allow: &[&str]) -> Vec<String> {
    let empty = Vec::new();
    let ps = ps.as_array().unwrap_or(&empty);
    let pods = pods.as_array().unwrap_or(&empty);
    let mut out = Vec::new();

    let (mut states, mut per_pod, mut per_label) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let (mut state_series, mut info, mut exit_codes, mut health) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    for c in ps {
        let (id, name, state, pod) = (
            &str_of(c, "Id")[..12],
            names(c),
            str_of(c, "State"),
            str_of(c, "PodName"),
        );
        count(&mut state_series, &[id, &name, pod, state]);
        count(&mut info, &[id, &name, str_of(c, "Image"), pod]);
        if matches!(state, "exited" | "stopped") {
            let code = c["ExitCode"].as_f64().unwrap_or(f64::NAN);
            if code != 0.0 {
                exit_codes.insert(vec![id.to_owned(), name.clone()], code);
            }
        }
        if let Some(h) = ps_health(c) {
            count(&mut health, &[id, &name, &h]);
        }
        if c["IsInfra"].as_bool() == Some(true) {
            continue;
        }
        count(&mut states, &[state]);
        if !pod.is_empty() {
            count(&mut per_pod, &[pod, state]);
        }
        if let Some(labels) = c["Labels"].as_object() {
            for (k, v) in labels {
                if allow.contains(&k.as_str()) {
                    count(&mut per_label, &[k, v.as_str().unwrap_or_default(), state]);
                }
            }
        }
    }
    let (mut pod_states, mut pod_info) = (BTreeMap::new(), BTreeMap::new());
    for p in pods {
        count(&mut pod_states, &[&str_of(p, "Status").to_lowercase()]);
        count(
            &mut pod_info,
            &[str_of(p, "Name"), str_of(p, "Id"), str_of(p, "InfraId")],
        );
    }
    out.extend(diff(
        "podman_containers",
        &states,
        &m.by("podman_containers", &["state"]),
    ));
    out.extend(diff(
        "podman_pod_containers",
        &per_pod,
        &m.by("podman_pod_containers", &["pod", "state"]),
    ));
    out.extend(diff(
        "podman_label_containers",
        &per_label,
        &m.by("podman_label_containers", &["label", "value", "state"]),
    ));
    out.extend(diff(
        "podman_pods",
        &pod_states,
        &m.by("podman_pods", &["state"]),
    ));
    out.extend(diff(
        "podman_pod_info",
        &pod_info,
        &m.by("podman_pod_info", &["pod", "pod_id", "infra_id"]),
    ));
    out.extend(diff(
        "podman_container_state",
        &state_series,
        &m.by("podman_container_state", &["id", "name", "pod", "state"]),
    ));
    out.extend(diff(
        "podman_container_info",
        &info,
        &m.by("podman_container_info", &["id", "name", "image", "pod"]),
    ));
    out.extend(diff(
        "podman_container_exit_code",
        &exit_codes,
        &m.by("podman_container_exit_code", &["id", "name"]),
    ));
    out.extend(diff(
        "podman_container_health",
        &health,
        &m.by("podman_container_health", &["id", "name", "status"]),
    ));
    out
}

/// Polls until sealwatch's gauges equal Podman's own lists; returns the matching scrape.
fn wait_gauges_match(svc: &PodmanService, sw: &Sealwatch, allow: &[&str]) -> Exposition {
    wait_until("gauges equal to podman ps / pod ps", CATCH_UP, || {
        let (ps, pods) = (svc.ps_all(), svc.pod_ps());
        let m = scrape(sw);
        let d = gauge_differences(&ps, &pods, &m, allow);
        if d.is_empty() {
            Ok(m)
        } else {
            Err(d.join("\n"))
        }
    })
}

/// Runs health checks until `podman ps` reports `want`, then one more: Podman 4.3.1's
/// `health_status` event carries the status from before the check it announces.
fn drive_health(svc: &PodmanService, name: &str, want: &str) {
    for _ in 0..8 {
        let _ = svc.try_podman(&["healthcheck", "run", name]);
        if ps_health(container(&svc.ps_all(), name)).as_deref() == Some(want) {
            let _ = svc.try_podman(&["healthcheck", "run", name]);
            return;
        }
    }
    panic!(
        "{name} never became {want}: {:#}",
        container(&svc.ps_all(), name)
    );
}

fn wait_state(svc: &PodmanService, name: &str, state: &str) {
    wait_until(&format!("{name} {state}"), CATCH_UP, || {
        let ps = svc.ps_all();
        let got = str_of(container(&ps, name), "State").to_owned();
        if got == state {
            Ok(())
        } else {
            Err(got)
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 1. Gauges
// ---------------------------------------------------------------------------------------------

/// Per-state, per-pod, per-label and per-container gauges equal `podman ps -a` / `podman pod ps`,
/// both when built from live events and when rebuilt from the lists by a fresh sealwatch.
#[test]
fn gauges_equal_what_podman_ps_and_pod_ps_report() {
    let svc = PodmanService::start();
    let args = ["--podman.url", &svc.url(), "--labels.allowlist", ALLOW_FLAG];
    let live = Sealwatch::start(BIN, &args);
    wait_ready(&live);

    let run = |extra: &[&str]| {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(extra);
        svc.podman(&a);
    };
    svc.podman(&["pod", "create", "--name", "shop"]);
    run(&[
        "--pod",
        "shop",
        "--name",
        "shop-web",
        "--label",
        "app=web",
        "--label",
        "io.podman.compose.project=shop",
        IMAGE,
        "sleep",
        "1000",
    ]);
    run(&[
        "--pod",
        "shop",
        "--name",
        "shop-db",
        "--label",
        "app=db",
        "--label",
        "io.podman.compose.project=shop",
        IMAGE,
        "sleep",
        "1000",
    ]);
    svc.podman(&["pause", "shop-db"]);
    svc.podman(&["pod", "create", "--name", "batch"]);
    run(&[
        "--pod",
        "batch",
        "--name",
        "batch-job",
        "--label",
        "app=db",
        IMAGE,
        "sh",
        "-c",
        "exit 3",
    ]);
    run(&[
        "--name", "web2", "--label", "app=web", IMAGE, "sleep", "1000",
    ]);
    svc.podman(&[
        "create", "--name", "fresh", "--label", "app=web", IMAGE, "true",
    ]);
    run(&["--name", "stopped", IMAGE, "sleep", "1000"]);
    svc.podman(&["stop", "-t", "0", "stopped"]);
    for hc in ["hc-ok", "hc-bad"] {
        run(&[
            "--name",
            hc,
            "--health-cmd",
            "test -e /run/ok",
            "--health-interval",
            "disable",
            IMAGE,
            "sleep",
            "1000",
        ]);
    }
    svc.podman(&["exec", "hc-ok", "touch", "/run/ok"]);
    drive_health(&svc, "hc-ok", "healthy");
    drive_health(&svc, "hc-bad", "unhealthy");
    run(&["--name", "again", IMAGE, "sleep", "1000"]);
    svc.podman(&["restart", "-t", "0", "again"]);
    wait_state(&svc, "batch-job", "exited");

    let m = wait_gauges_match(&svc, &live, ALLOW);
    // The scenario really covers what it claims to.
    let ps = svc.ps_all();
    let want_states: BTreeSet<&str> = ["running", "paused", "exited", "created"].into();
    let have_states: BTreeSet<String> = m
        .by("podman_containers", &["state"])
        .into_keys()
        .map(|k| k[0].clone())
        .collect();
    for s in want_states {
        assert!(
            have_states.contains(s),
            "no {s} container in {have_states:?}"
        );
    }
    let id = |name: &str| str_of(container(&ps, name), "Id")[..12].to_owned();
    assert_eq!(
        m.value(
            "podman_container_exit_code",
            &[("name", "batch-job"), ("pod", "batch")]
        ),
        Some(3.0)
    );
    assert_eq!(
        m.value("podman_container_exit_code", &[("name", "stopped")]),
        Some(137.0)
    );
    assert_eq!(
        m.value(
            "podman_container_health",
            &[("name", "hc-ok"), ("status", "healthy")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "podman_container_health",
            &[("name", "hc-bad"), ("status", "unhealthy")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.series("podman_container_health").count(),
        2,
        "only healthchecked containers"
    );
    assert_eq!(
        m.by("podman_pods", &["state"])
            .get(&vec!["degraded".to_owned()]),
        Some(&2.0)
    );
    // One `podman restart` after a start is one restart; nothing else restarted.
    let restarts = m.by("podman_container_restarts_total", &["id", "name"]);
    assert_eq!(
        restarts,
        BTreeMap::from([(vec![id("again"), "again".to_owned()], 1.0)]),
        "restarts"
    );
    // Infra containers: in per-container series, not in the counts.
    let infra: Vec<&Value> = ps
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["IsInfra"] == true)
        .collect();
    assert_eq!(infra.len(), 2);
    for c in infra {
        assert_eq!(
            m.value("podman_container_info", &[("id", &str_of(c, "Id")[..12])]),
            Some(1.0)
        );
    }

    // A sealwatch started now knows only the lists; it must agree too.
    let fresh = Sealwatch::start(BIN, &args);
    wait_ready(&fresh);
    let m2 = wait_gauges_match(&svc, &fresh, ALLOW);
    assert_eq!(
        m2.by("podman_containers", &["state"]),
        m.by("podman_containers", &["state"])
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Exactness of the event counters
// ---------------------------------------------------------------------------------------------

/// Attribute keys Podman adds on top of a container's labels in `podman events` output.
const RESERVED: &[&str] = &["podId", "image", "name", "containerExitCode"];

/// The four counter families as `podman events --since T0` says they must be.
fn expected_counters(
    events: &[Value],
    allow: &[&str],
) -> BTreeMap<&'static str, BTreeMap<Vec<String>, f64>> {
    // A container's pod comes from any of its events that carries one (`died` never does).
    let mut pod_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut pod_name: BTreeMap<&str, &str> = BTreeMap::new();
    for e in events {
        let (id, pod) = (str_of(e, "ID"), str_of(e, "PodID"));
        if str_of(e, "Type") == "container" && !pod.is_empty() {
            pod_of.insert(id, pod);
        }
        if str_of(e, "Type") == "pod" && !str_of(e, "Name").is_empty() {
            pod_name.insert(id, str_of(e, "Name"));
        }
    }
    let mut out: BTreeMap<&'static str, BTreeMap<Vec<String>, f64>> = BTreeMap::new();
    for e in events {
        let (kind, action) = (str_of(e, "Type"), str_of(e, "Status"));
        count(
            out.entry("podman_events_total").or_default(),
            &[kind, action],
        );
        if kind != "container" {
            continue;
        }
        let pod = pod_of.get(str_of(e, "ID")).map(|p| {
            *pod_name
                .get(p)
                .unwrap_or_else(|| panic!("no name for pod {p}"))
        });
        if let Some(pod) = pod {
            count(
                out.entry("podman_pod_container_events_total").or_default(),
                &[pod, action],
            );
        }
        if let Some(attrs) = e["Attributes"].as_object() {
            for (k, v) in attrs {
                if allow.contains(&k.as_str()) && !RESERVED.contains(&k.as_str()) {
                    count(
                        out.entry("podman_label_container_events_total")
                            .or_default(),
                        &[k, v.as_str().unwrap_or_default(), action],
                    );
                }
            }
        }
        if action == "died" {
            // The CLI leaves out a zero exit code.
            let code = e["ContainerExitCode"].as_i64().unwrap_or(0).to_string();
            count(
                out.entry("podman_container_exits_total").or_default(),
                &[pod.unwrap_or(""), &code],
            );
        }
    }
    out
}

const COUNTER_KEYS: &[(&str, &[&str])] = &[
    ("podman_events_total", &["type", "action"]),
    ("podman_pod_container_events_total", &["pod", "action"]),
    (
        "podman_label_container_events_total",
        &["label", "value", "action"],
    ),
    ("podman_container_exits_total", &["pod", "exit_code"]),
];

/// Polls until every event counter equals what `podman events --since t0` reports.
fn wait_counters_match(svc: &PodmanService, sw: &Sealwatch, t0: &str) -> (Exposition, Vec<Value>) {
    wait_until("event counters equal to podman events", CATCH_UP, || {
        let text = svc.podman(&[
            "events",
            "--stream=false",
            "--since",
            t0,
            "--format",
            "json",
        ]);
        let events: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event line {l:?}: {e}")))
            .collect();
        let want = expected_counters(&events, ALLOW);
        let m = scrape(sw);
        let mut d = Vec::new();
        for (family, keys) in COUNTER_KEYS {
            d.extend(diff(
                family,
                want.get(family).unwrap_or(&BTreeMap::new()),
                &m.by(family, keys),
            ));
        }
        if d.is_empty() {
            Ok((m, events))
        } else {
            Err(d.join("\n"))
        }
    })
}

fn now_rfc3339_nanos() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Runs a lifecycle script with `podman` (through the service, or directly on its storage).
/// `tag` keeps names unique between the phases of one test.
fn lifecycle(podman: &dyn Fn(&[&str]) -> String, tag: &str) {
    let n = |s: &str| format!("{tag}-{s}");
    let (a, x3, pod, m1, m2, px) = (n("a"), n("x3"), n("pod"), n("m1"), n("m2"), n("px3"));
    podman(&[
        "run", "-d", "--name", &a, "--label", "app=web", IMAGE, "sleep", "1000",
    ]);
    podman(&["stop", "-t", "0", &a]);
    podman(&["start", &a]);
    podman(&["kill", &a]);
    podman(&["restart", "-t", "0", &a]);
    podman(&["pause", &a]);
    podman(&["unpause", &a]);
    podman(&["rm", "-f", "-t", "0", &a]);
    podman(&[
        "run", "-d", "--name", &x3, "--label", "app=db", IMAGE, "sh", "-c", "exit 3",
    ]);
    podman(&["pod", "create", "--name", &pod]);
    // --stop-timeout: `pod stop` of 4.3.1 ignores its own -t and waits this long per container.
    podman(&[
        "run",
        "-d",
        "--pod",
        &pod,
        "--stop-timeout",
        "1",
        "--name",
        &m1,
        "--label",
        "app=web",
        "--label",
        "io.podman.compose.project=shop",
        IMAGE,
        "sleep",
        "1000",
    ]);
    podman(&[
        "run",
        "-d",
        "--pod",
        &pod,
        "--stop-timeout",
        "1",
        "--name",
        &m2,
        "--label",
        "app=db",
        IMAGE,
        "sleep",
        "1000",
    ]);
    podman(&[
        "run", "-d", "--pod", &pod, "--name", &px, IMAGE, "sh", "-c", "exit 3",
    ]);
    podman(&["pod", "stop", &pod]);
    podman(&["pod", "start", &pod]);
    podman(&["pod", "rm", "-f", &pod]);
    podman(&["rm", "-f", &x3]);
}

/// Every event counter (per type/action, per pod, per label value, per exit code) equals what
/// `podman events --since T0` reports for the window sealwatch ran in.
#[test]
fn event_counters_equal_podman_events() {
    let svc = PodmanService::start();
    let t0 = now_rfc3339_nanos();
    let sw = Sealwatch::start(
        BIN,
        &["--podman.url", &svc.url(), "--labels.allowlist", ALLOW_FLAG],
    );
    wait_ready(&sw);

    lifecycle(&|a| svc.podman(a), "one");
    lifecycle(&|a| svc.podman(a), "two");

    let (m, events) = wait_counters_match(&svc, &sw, &t0);
    assert_covers_the_script(&m, &events);
    wait_gauges_match(&svc, &sw, ALLOW);
}

/// The same equality across a Podman service stop/start with operations while it is down:
/// the replay with `since` fills the gap and nothing is counted twice.
#[test]
fn event_counters_stay_exact_across_a_podman_restart() {
    let mut svc = PodmanService::start();
    let t0 = now_rfc3339_nanos();
    let sw = Sealwatch::start(
        BIN,
        &["--podman.url", &svc.url(), "--labels.allowlist", ALLOW_FLAG],
    );
    wait_ready(&sw);

    lifecycle(&|a| svc.podman(a), "before");
    // A container that outlives the outage, stopped while the service is down.
    svc.podman(&[
        "run", "-d", "--name", "survivor", "--label", "app=web", IMAGE, "sleep", "1000",
    ]);
    wait_counters_match(&svc, &sw, &t0);

    svc.stop_service();
    wait_until("sealwatch notices the outage", CATCH_UP, || {
        match sw.try_get("/-/ready")? {
            (503, _) => Ok(()),
            (s, b) => Err(format!("{s}: {b}")),
        }
    });
    lifecycle(&|a| svc.podman_direct(a), "down");
    svc.podman_direct(&["stop", "-t", "0", "survivor"]);
    svc.start_service();
    wait_ready(&sw);

    lifecycle(&|a| svc.podman(a), "after");
    let (m, events) = wait_counters_match(&svc, &sw, &t0);
    assert_covers_the_script(&m, &events);
    assert!(
        m.value("sealwatch_engine_reconnects_total", &[])
            .unwrap_or(0.0)
            >= 1.0,
        "no reconnect was counted"
    );
    // The newest event before the outage is always inside the replay overlap.
    assert!(
        m.value("sealwatch_replayed_duplicate_events_total", &[])
            .unwrap_or(0.0)
            >= 1.0,
        "the replay overlapped nothing, so de-duplication was not exercised"
    );
    let ps = svc.ps_all();
    assert_eq!(str_of(container(&ps, "survivor"), "State"), "exited");
    wait_gauges_match(&svc, &sw, ALLOW);
}

/// The script produced what the comparison is meant to prove: pods, labels and exit codes.
fn assert_covers_the_script(m: &Exposition, events: &[Value]) {
    assert!(events.len() > 50, "only {} events", events.len());
    let exits = m.by("podman_container_exits_total", &["pod", "exit_code"]);
    assert!(
        exits.keys().any(|k| k[0].is_empty() && k[1] == "3"),
        "{exits:?}"
    );
    assert!(
        exits.keys().any(|k| !k[0].is_empty() && k[1] == "3"),
        "{exits:?}"
    );
    assert!(exits.keys().any(|k| k[1] == "137"), "{exits:?}");
    let pods = m.by("podman_pod_container_events_total", &["pod", "action"]);
    assert!(pods.keys().any(|k| k[1] == "died"), "{pods:?}");
    let labels = m.by(
        "podman_label_container_events_total",
        &["label", "value", "action"],
    );
    assert!(
        labels.keys().any(|k| k[0] == "io.podman.compose.project"),
        "{labels:?}"
    );
    let types = m.by("podman_events_total", &["type", "action"]);
    for (t, a) in [
        ("container", "pause"),
        ("container", "restart"),
        ("container", "kill"),
        ("pod", "remove"),
        ("image", "pull"),
    ] {
        assert!(
            types.contains_key(&vec![t.to_owned(), a.to_owned()]),
            "no {t}/{a}: {types:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Formats
// ---------------------------------------------------------------------------------------------

fn small_workload(svc: &PodmanService) {
    svc.podman(&["pod", "create", "--name", "p1"]);
    svc.podman(&[
        "run",
        "-d",
        "--pod",
        "p1",
        "--name",
        "web",
        "--label",
        "app=web",
        "--label",
        "io.podman.compose.project=shop",
        IMAGE,
        "sleep",
        "1000",
    ]);
    svc.podman(&[
        "run", "-d", "--pod", "p1", "--name", "db", "--label", "app=db", IMAGE, "sleep", "1000",
    ]);
    svc.podman(&["run", "-d", "--name", "x3", IMAGE, "sh", "-c", "exit 3"]);
    svc.podman(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "true",
        "--health-interval",
        "disable",
        IMAGE,
        "sleep",
        "1000",
    ]);
    drive_health(svc, "hc", "healthy");
}

fn gunzip(data: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut out)
        .expect("valid gzip with UTF-8 inside");
    out
}

/// README.md, whose Metrics section is the metrics reference.
fn metrics_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every ```promql block of the metrics reference.
fn doc_promql_examples() -> Vec<String> {
    let doc = metrics_doc();
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```promql") => current = Some(String::new()),
            (Some(expr), "```") => {
                out.push(expr.trim().to_owned());
                current = None;
            }
            (Some(expr), l) => {
                expr.push_str(l);
                expr.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Real output passes `promtool check metrics` and has no duplicate series and HELP/TYPE on every
/// family; OpenMetrics is negotiated and ends in `# EOF`; gzip is honoured; the telemetry path
/// flag moves the endpoint.
#[test]
fn output_is_lint_clean_in_both_formats_with_and_without_gzip() {
    let svc = PodmanService::start();
    let sw = Sealwatch::start(
        BIN,
        &["--podman.url", &svc.url(), "--labels.allowlist", ALLOW_FLAG],
    );
    wait_ready(&sw);
    small_workload(&svc);
    wait_state(&svc, "x3", "exited");
    wait_gauges_match(&svc, &sw, ALLOW);

    // 0.0.4 text.
    let text = scrape_text(&sw, "/metrics");
    let plain = assert_lint_clean(&text, false);
    // Every family of the contract is there (by sample name, as users query them).
    let families: BTreeSet<&str> = plain.samples.iter().map(|s| s.name.as_str()).collect();
    for f in [
        "podman_up",
        "podman_engine_info",
        "podman_containers",
        "podman_pod_containers",
        "podman_label_containers",
        "podman_pods",
        "podman_pod_info",
        "podman_container_info",
        "podman_container_state",
        "podman_container_labels",
        "podman_container_started_time_seconds",
        "podman_container_exit_code",
        "podman_container_health",
        "podman_container_restarts_total",
        "podman_events_total",
        "podman_pod_container_events_total",
        "podman_label_container_events_total",
        "podman_container_exits_total",
        "sealwatch_build_info",
        "sealwatch_engine_reconnects_total",
        "sealwatch_engine_resyncs_total",
        "sealwatch_event_decode_errors_total",
        "sealwatch_last_event_timestamp_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            families.contains(f),
            "family {f} missing; have {families:?}"
        );
    }
    assert_eq!(plain.value("podman_up", &[]), Some(1.0));
    // ...and documented, each by the name users query.
    let doc = metrics_doc();
    for f in &families {
        assert!(doc.contains(&format!("`{f}`")), "{f} is not in README.md");
    }

    // OpenMetrics, both as asked for plainly and as Prometheus asks.
    for accept in [
        "application/openmetrics-text;version=1.0.0",
        PROMETHEUS_ACCEPT,
    ] {
        let r = raw_get(sw.port(), "/metrics", &[("Accept", accept)]).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            "Accept: {accept}"
        );
        let body = r.text();
        assert!(
            body.ends_with("# EOF\n"),
            "tail: {:?}",
            &body[body.len().saturating_sub(80)..]
        );
        let om = assert_lint_clean(&body, true);
        // Same podman_* series as the text format (nothing changed in between).
        let podman_series = |e: &Exposition| -> BTreeSet<(String, Vec<(String, String)>)> {
            e.samples
                .iter()
                .filter(|s| s.name.starts_with("podman_"))
                .map(|s| (s.name.clone(), s.labels.clone()))
                .collect()
        };
        assert_eq!(podman_series(&om), podman_series(&plain));
    }

    // No Accept at all, or one that does not want OpenMetrics: the 0.0.4 text.
    for headers in [
        &[][..],
        &[("Accept", "*/*")][..],
        &[("Accept", "application/openmetrics-text; q=0, text/plain")][..],
    ] {
        let r = raw_get(sw.port(), "/metrics", headers).unwrap();
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{headers:?}"
        );
        assert!(!r.text().contains("# EOF"));
    }

    // gzip, for both formats.
    for (accept, om) in [("text/plain", false), (PROMETHEUS_ACCEPT, true)] {
        let r = raw_get(
            sw.port(),
            "/metrics",
            &[("Accept", accept), ("Accept-Encoding", "gzip")],
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert!(r
            .header("vary")
            .is_some_and(|v| v.contains("Accept-Encoding")));
        assert_eq!(&r.body[..2], &[0x1f, 0x8b], "gzip magic");
        let body = gunzip(&r.body);
        assert_lint_clean(&body, om);
    }
    let r = raw_get(
        sw.port(),
        "/metrics",
        &[("Accept-Encoding", "gzip;q=0, identity")],
    )
    .unwrap();
    assert_eq!(r.header("content-encoding"), None);

    // --web.telemetry-path.
    let custom = Sealwatch::start(
        BIN,
        &[
            "--podman.url",
            &svc.url(),
            "--web.telemetry-path",
            "/custom",
        ],
    );
    wait_ready(&custom);
    let text = scrape_text(&custom, "/custom");
    let e = assert_lint_clean(&text, false);
    assert_eq!(e.value("podman_up", &[]), Some(1.0));
    let r = raw_get(custom.port(), "/metrics", &[]).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// 4. A real Prometheus
// ---------------------------------------------------------------------------------------------

/// A real Prometheus scraping every second sees `podman_up` 1, a healthy target, and per-pod
/// container counts equal to `podman pod ps`.
#[test]
fn prometheus_scrapes_and_per_pod_counts_match_podman() {
    let svc = PodmanService::start();
    let sw = Sealwatch::start(BIN, &["--podman.url", &svc.url()]);
    wait_ready(&sw);
    svc.podman(&["pod", "create", "--name", "alpha"]);
    svc.podman(&["pod", "create", "--name", "beta"]);
    for (pod, name, cmd) in [
        ("alpha", "a1", "sleep 1000"),
        ("alpha", "a2", "sleep 1000"),
        ("alpha", "a3", "exit 3"),
        ("beta", "b1", "sleep 1000"),
    ] {
        svc.podman(&[
            "run",
            "-d",
            "--pod",
            pod,
            "--name",
            name,
            "--label",
            &format!("io.podman.compose.project={pod}"),
            IMAGE,
            "sh",
            "-c",
            cmd,
        ]);
    }
    svc.podman(&[
        "run",
        "-d",
        "--name",
        "loner",
        "--health-cmd",
        "true",
        "--health-interval",
        "disable",
        IMAGE,
        "sleep",
        "1000",
    ]);
    drive_health(&svc, "loner", "healthy");
    wait_state(&svc, "a3", "exited");
    wait_gauges_match(&svc, &sw, &["io.podman.compose.project"]);

    // Members per pod by Podman, infra excluded (the contract).
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for p in svc.pod_ps().as_array().unwrap() {
        let infra = str_of(p, "InfraId");
        let members = p["Containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| str_of(c, "Id") != infra)
            .count();
        want.insert(str_of(p, "Name").to_owned(), members as f64);
    }
    assert_eq!(
        want,
        BTreeMap::from([("alpha".into(), 3.0), ("beta".into(), 1.0)])
    );

    let prom = Prometheus::start(&[format!("127.0.0.1:{}", sw.port())], None);
    wait_until("podman_up == 1 in Prometheus", CATCH_UP, || {
        let r = prom.query("podman_up");
        match r.first().map(sample_value) {
            Some(1.0) => Ok(()),
            other => Err(format!("{other:?}\n{}", prom.log())),
        }
    });
    let got: BTreeMap<String, f64> = wait_until("per-pod sums in Prometheus", CATCH_UP, || {
        let got: BTreeMap<String, f64> = prom
            .query("sum by (pod) (podman_pod_containers)")
            .iter()
            .map(|s| {
                (
                    s["metric"]["pod"].as_str().unwrap_or("").to_owned(),
                    sample_value(s),
                )
            })
            .collect();
        if got == want {
            Ok(got)
        } else {
            Err(format!("{got:?}"))
        }
    });
    assert_eq!(got, want);

    // The target is healthy: Prometheus parsed what sealwatch sent without error.
    let targets = prom.api("/api/v1/targets");
    let active = targets["data"]["activeTargets"]
        .as_array()
        .expect("targets");
    assert_eq!(active.len(), 1, "{targets:#}");
    assert_eq!(active[0]["health"], "up", "{targets:#}");
    assert_eq!(active[0]["lastError"], "", "{targets:#}");
    let up = prom.query("up{job=\"sealwatch\"}");
    assert_eq!(up.first().map(sample_value), Some(1.0));
    // The reference's PromQL examples parse, name only metrics sealwatch exports, and run.
    let examples = doc_promql_examples();
    assert!(examples.len() >= 10, "{examples:?}");
    let exported: BTreeSet<String> = scrape(&sw).samples.into_iter().map(|s| s.name).collect();
    for expr in &examples {
        promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("podman_") || word.starts_with("sealwatch_") {
                assert!(exported.contains(word), "{expr}: {word} is not exported");
            }
        }
        prom.query(expr);
    }
    assert!(!prom
        .query("sum by (engine, pod) (podman_pod_containers{state=\"running\"})")
        .is_empty());

    // Counters and per-container series made it through as well.
    assert!(!prom.query("podman_events_total").is_empty());
    assert_eq!(
        prom.query("podman_container_exit_code{name=\"a3\",pod=\"alpha\"}")
            .first()
            .map(sample_value),
        Some(3.0)
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Label hostility
// ---------------------------------------------------------------------------------------------

/// 200 labels, a 10 KB value, keys with dots/dashes/unicode, values with quotes, backslashes and
/// newlines: output stays lint-clean, values round-trip exactly, and the allowlist and the
/// `--labels.max-values` cap hold.
#[test]
fn hostile_labels_stay_lint_clean_and_caps_hold() {
    let svc = PodmanService::start();
    let all = Sealwatch::start(
        BIN,
        &["--podman.url", &svc.url(), "--labels.allowlist", "*"],
    );
    let capped = Sealwatch::start(
        BIN,
        &[
            "--podman.url",
            &svc.url(),
            "--labels.allowlist",
            "tier",
            "--labels.max-values",
            "2",
        ],
    );
    wait_ready(&all);
    wait_ready(&capped);

    let big = "x".repeat(10 * 1024);
    let mut labels: Vec<(String, String)> = (0..200)
        .map(|i| (format!("k{i:03}"), format!("v{i}")))
        .collect();
    let hostile: Vec<(&str, &str)> = vec![
        ("big", &big),
        ("a.b", "dot"),
        ("a-b", "dash"),
        ("a_b", "underscore"),
        ("ünï-cödé", "unicode key"),
        ("日本.key", "värde ✓ 日本"),
        ("quote", "say \"hi\""),
        ("backslash", "C:\\path\\"),
        ("newline", "line1\nline2"),
        ("mixed", "\\\"\n\\n\"\\"),
        ("empty", ""),
        ("tier", "hostile"),
    ];
    labels.extend(hostile.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let label_file = svc.dir().join("labels.txt");
    std::fs::write(&label_file, "from.file=file value with spaces\n").unwrap();
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), "hostile".into()];
    args.push(format!("--label-file={}", label_file.display()));
    for (k, v) in &labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.extend([IMAGE.to_string(), "sleep".into(), "1000".into()]);
    svc.podman(&args.iter().map(String::as_str).collect::<Vec<_>>());
    labels.push(("from.file".into(), "file value with spaces".into()));
    for t in ["a", "b", "c", "d"] {
        svc.podman(&[
            "run",
            "-d",
            "--name",
            &format!("t-{t}"),
            "--label",
            &format!("tier={t}"),
            IMAGE,
            "sleep",
            "1000",
        ]);
    }
    // Podman stored what we meant (so a mismatch below is sealwatch's).
    let inspected: BTreeMap<String, String> = serde_json::from_str(&svc.podman(&[
        "inspect",
        "hostile",
        "--format",
        "{{json .Config.Labels}}",
    ]))
    .unwrap();
    let want: BTreeMap<String, String> = labels.iter().cloned().collect();
    assert_eq!(inspected, want, "podman did not keep the labels as given");

    wait_gauges_match(
        &svc,
        &all,
        &want.keys().map(String::as_str).collect::<Vec<_>>(),
    );
    let m = assert_lint_clean(&scrape_text(&all, "/metrics"), false);
    let om = raw_get(all.port(), "/metrics", &[("Accept", PROMETHEUS_ACCEPT)]).unwrap();
    assert_lint_clean(&om.text(), true);

    // podman_container_labels: every key sanitized, every value exact; keys that sanitize alike
    // (a.b, a-b, a_b) give one label, never two.
    let series: Vec<&Sample> = m
        .series("podman_container_labels")
        .filter(|s| s.label("name") == Some("hostile"))
        .collect();
    assert_eq!(series.len(), 1);
    let got: BTreeMap<&str, &str> = series[0]
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with("label_"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut expected_keys = BTreeSet::new();
    for (k, v) in &want {
        let key = sealwatch::metrics::sanitize_label_key(k);
        assert!(valid_label_name(&key), "{key}");
        let ab = ["dash", "dot", "underscore"];
        match got.get(key.as_str()) {
            Some(g) if key == "label_a_b" => assert!(ab.contains(g), "{g}"),
            Some(g) => assert_eq!(g, v, "value of {k}"),
            None => panic!("no {key} for {k}"),
        }
        expected_keys.insert(key);
    }
    assert_eq!(
        got.len(),
        expected_keys.len(),
        "one label per sanitized key"
    );
    assert_eq!(
        got.len(),
        200 + hostile.len() + 1 - 2,
        "200 + hostile + file - 2 collisions"
    );
    // The per-label family carries keys and values as they are.
    for (k, v) in &want {
        assert_eq!(
            m.value(
                "podman_label_containers",
                &[("label", k), ("value", v), ("state", "running")]
            ),
            Some(1.0),
            "podman_label_containers for {k}"
        );
    }

    // Allowlist and cap: only `tier`, at most 2 values plus __other__, counts intact.
    let tiers = wait_until("capped tiers", CATCH_UP, || {
        let c = scrape(&capped);
        let t = c.by("podman_label_containers", &["label", "value", "state"]);
        if t.values().sum::<f64>() == 5.0 {
            Ok(t)
        } else {
            Err(format!("{t:?}"))
        }
    });
    let c = assert_lint_clean(&scrape_text(&capped, "/metrics"), false);
    let values: BTreeSet<&str> = tiers.keys().map(|k| k[1].as_str()).collect();
    assert!(tiers.keys().all(|k| k[0] == "tier"), "{tiers:?}");
    // `hostile` came first and took one of the two places, then t-a; b, c, d are folded.
    assert_eq!(
        values,
        BTreeSet::from(["hostile", "a", "__other__"]),
        "{tiers:?}"
    );
    assert_eq!(
        tiers[&vec!["tier".into(), "__other__".into(), "running".into()]],
        3.0
    );
    let events = c.by("podman_label_container_events_total", &["label", "value"]);
    let event_values: BTreeSet<&str> = events.keys().map(|k| k[1].as_str()).collect();
    assert!(events.keys().all(|k| k[0] == "tier"), "{events:?}");
    assert!(
        event_values.len() <= 3 && event_values.contains("__other__"),
        "{events:?}"
    );
    for s in c.series("podman_container_labels") {
        let extra: Vec<&String> = s
            .labels
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("label_") && *k != "label_tier")
            .collect();
        assert!(extra.is_empty(), "not allowlisted: {extra:?}");
    }
    assert_eq!(
        c.value(
            "podman_container_labels",
            &[("name", "t-d"), ("label_tier", "d")]
        ),
        Some(1.0),
        "the per-container family keeps the real value"
    );
}
