//! The Grafana dashboards under dashboards/: static checks (JSON, uids, datasource variable,
//! PromQL) and an end-to-end check that every panel and variable query returns data from a real
//! Prometheus that scrapes a real sealwatch watching a real private Podman.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use promql_parser::parser::{self, Expr};
use serde_json::Value;

use crate::support::prometheus::Prometheus;
use crate::support::{wait_until, PodmanService, Sealwatch, BUSYBOX_IMAGE};

const DATASOURCE: &str = "${datasource}";

// ---------------------------------------------------------------------------------------------
// Reading the dashboards
// ---------------------------------------------------------------------------------------------

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

/// Every `*.json` under dashboards/ (recursively), parsed; panics on the first that does not parse.
fn dashboards() -> Vec<(String, Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&dashboards_dir(), &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no dashboards under {}",
        dashboards_dir().display()
    );
    files
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", p.display()));
            let name = p
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(&p)
                .display()
                .to_string();
            (name, v)
        })
        .collect()
}

/// Every panel of a dashboard, depth first, rows and the panels nested in collapsed rows included.
fn all_panels(dash: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

fn template_vars(dash: &Value) -> Vec<&Value> {
    dash["templating"]["list"]
        .as_array()
        .map(|l| l.iter().collect())
        .unwrap_or_default()
}

/// One PromQL query of a dashboard.
struct Query {
    /// "file: panel 'Title' target A" or "file: variable $pod"
    what: String,
    /// The raw expression, Grafana variables still in it.
    expr: String,
    /// `Some(label)` for a `label_values(selector, label)` variable query.
    label_values_of: Option<String>,
}

/// All target expressions of all panels plus the selectors of `label_values(...)` variables.
fn queries(file: &str, dash: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for p in all_panels(dash) {
        for (i, t) in p["targets"].as_array().into_iter().flatten().enumerate() {
            let expr = t["expr"].as_str().unwrap_or_else(|| {
                panic!(
                    "{file}: panel {:?} target {i} has no `expr`: {t}",
                    p["title"]
                )
            });
            let ref_id = t["refId"].as_str().unwrap_or("?");
            out.push(Query {
                what: format!("{file}: panel {} target {ref_id}", p["title"]),
                expr: expr.to_string(),
                label_values_of: None,
            });
        }
    }
    for v in template_vars(dash) {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap_or("?");
        let q = match &v["query"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{file}: variable ${name}: query object without `query`"))
                .to_string(),
            other => panic!("{file}: variable ${name}: unexpected query {other}"),
        };
        let (selector, label) = parse_label_values(&q).unwrap_or_else(|| {
            panic!("{file}: variable ${name}: expected label_values(selector, label), got {q:?}")
        });
        out.push(Query {
            what: format!("{file}: variable ${name}"),
            expr: selector,
            label_values_of: Some(label),
        });
    }
    out
}

/// `label_values(SELECTOR, label)` → (SELECTOR, label). The one-argument form has no selector and
/// is rejected: it would list the label across every metric in Prometheus, not sealwatch's.
fn parse_label_values(q: &str) -> Option<(String, String)> {
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    // The label is after the last comma outside braces/quotes.
    let (mut depth, mut in_str, mut split) = (0i32, false, None);
    let bytes = inner.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_str = !in_str,
            b'{' | b'(' if !in_str => depth += 1,
            b'}' | b')' if !in_str => depth -= 1,
            b',' if !in_str && depth == 0 => split = Some(i),
            _ => {}
        }
    }
    let i = split?;
    Some((
        inner[..i].trim().to_string(),
        inner[i + 1..].trim().to_string(),
    ))
}

/// Replaces Grafana's variables: the interval built-ins by `interval`, `$var`, `${var}`,
/// `${var:format}` and `[[var]]` by `vars[var]`. Panics on a variable it does not know (a typo in
/// a dashboard would otherwise reach Prometheus as a literal `$engin`).
fn substitute(expr: &str, interval: &str, vars: &HashMap<String, String>) -> String {
    let lookup = |name: &str| -> String {
        match name {
            "__rate_interval" | "__interval" | "__range" => interval.to_string(),
            _ => vars
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("unknown Grafana variable ${name} in {expr:?}")),
        }
    };
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(braced) = tail.strip_prefix("${") {
            let end = braced
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {expr:?}"));
            let name = braced[..end].split(':').next().unwrap_or("");
            out.push_str(&lookup(name));
            rest = &braced[end + 1..];
        } else if let Some(after) = tail.strip_prefix("[[") {
            let end = after
                .find("]]")
                .unwrap_or_else(|| panic!("unclosed [[ in {expr:?}"));
            out.push_str(&lookup(after[..end].split(':').next().unwrap_or("")));
            rest = &after[end + 2..];
        } else if let Some(after) = tail.strip_prefix('$') {
            let n = ident(after);
            assert!(n > 0, "a lone `$` in {expr:?}");
            out.push_str(&lookup(&after[..n]));
            rest = &after[n..];
        } else {
            out.push('[');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Metric names selected anywhere in a parsed expression; panics on a selector without one.
fn metric_names(expr: &Expr) -> BTreeSet<String> {
    crate::support::prometheus::metric_names(expr).unwrap_or_else(|e| panic!("{e} in {expr}"))
}

/// Variable values for the static checks: a regex-safe value that also exercises quoting.
fn static_vars(dash: &Value) -> HashMap<String, String> {
    template_vars(dash)
        .iter()
        .filter_map(|v| v["name"].as_str())
        .map(|n| (n.to_string(), ".*".to_string()))
        .collect()
}

fn parse_or_panic(what: &str, raw: &str, expr: &str) -> Expr {
    parser::parse(expr).unwrap_or_else(|e| {
        panic!("{what}: not valid PromQL: {e}\n  raw:         {raw}\n  substituted: {expr}")
    })
}

/// Every metric name used by any dashboard query (panels and variables).
fn dashboard_metric_names() -> BTreeMap<String, Vec<String>> {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (file, dash) in dashboards() {
        let vars = static_vars(&dash);
        for q in queries(&file, &dash) {
            let expr = substitute(&q.expr, "1m", &vars);
            for name in metric_names(&parse_or_panic(&q.what, &q.expr, &expr)) {
                used.entry(name).or_default().push(q.what.clone());
            }
        }
    }
    used
}

// ---------------------------------------------------------------------------------------------
// Static checks
// ---------------------------------------------------------------------------------------------

/// Every dashboard JSON parses, has the classic top-level fields, and dashboard uids are unique.
#[test]
fn dashboards_parse_and_uids_are_unique() {
    let mut uids: BTreeMap<String, String> = BTreeMap::new();
    let all = dashboards();
    assert!(
        all.len() >= 2,
        "expected an overview and a pod dashboard, found {}",
        all.len()
    );
    for (file, d) in &all {
        for key in ["uid", "title"] {
            assert!(
                d[key].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: missing or empty `{key}`"
            );
        }
        assert!(d["schemaVersion"].is_u64(), "{file}: missing schemaVersion");
        assert!(
            d["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{file}: no tags"
        );
        let uid = d["uid"].as_str().unwrap().to_string();
        assert!(
            uid.len() <= 40,
            "{file}: uid {uid:?} longer than Grafana's 40 characters"
        );
        if let Some(other) = uids.insert(uid.clone(), file.clone()) {
            panic!("uid {uid:?} used by both {other} and {file}");
        }
        // Panel ids must be unique within a dashboard (Grafana keys panel state by id).
        let mut ids = BTreeSet::new();
        for p in all_panels(d) {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: panel {} without id", p["title"]));
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            assert!(
                p["gridPos"].is_object(),
                "{file}: panel {} without gridPos",
                p["title"]
            );
            if p["type"] != "row" {
                assert!(
                    p["fieldConfig"]["defaults"]["unit"]
                        .as_str()
                        .is_some_and(|u| !u.is_empty()),
                    "{file}: panel {} has no unit (fieldConfig.defaults.unit)",
                    p["title"]
                );
                assert!(
                    p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                    "{file}: panel {} has no targets",
                    p["title"]
                );
            }
        }
    }
    let titles: BTreeSet<&str> = all
        .iter()
        .filter_map(|(_, d)| d["title"].as_str())
        .collect();
    assert_eq!(
        titles.len(),
        all.len(),
        "dashboard titles are not unique: {titles:?}"
    );
}

/// Every link between dashboards (`/d/<uid>/…`, in dashboard links and panel data links) points
/// at a dashboard that exists here, and passes only variables that dashboard defines.
#[test]
fn dashboard_links_point_at_existing_dashboards() {
    fn urls<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("url", Value::String(u)) => out.push(u),
                        _ => urls(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| urls(x, out)),
            _ => {}
        }
    }
    let all = dashboards();
    let by_uid: BTreeMap<&str, &Value> = all
        .iter()
        .map(|(_, d)| (d["uid"].as_str().unwrap(), d))
        .collect();
    let mut n = 0;
    for (file, d) in &all {
        let mut found = Vec::new();
        urls(d, &mut found);
        for url in found {
            let Some(rest) = url.strip_prefix("/d/") else {
                continue;
            };
            let uid = rest.split(['/', '?']).next().unwrap();
            let target = by_uid
                .get(uid)
                .unwrap_or_else(|| panic!("{file}: link {url} to unknown dashboard uid {uid:?}"));
            let names: BTreeSet<&str> = template_vars(target)
                .iter()
                .filter_map(|v| v["name"].as_str())
                .collect();
            let query = url.split_once('?').map_or("", |(_, q)| q);
            for part in query.split('&').filter(|p| !p.is_empty()) {
                let var = if let Some(v) = part.strip_prefix("var-") {
                    v.split('=').next().unwrap()
                } else if let Some(v) = part
                    .strip_prefix("${")
                    .and_then(|v| v.strip_suffix(":queryparam}"))
                {
                    v
                } else {
                    continue; // ${__url_time_range} and the like
                };
                assert!(
                    names.contains(var),
                    "{file}: link {url} passes ${var}, which {uid} does not define"
                );
            }
            n += 1;
        }
    }
    assert!(n > 0, "no links between the dashboards");
}

/// Dashboards are file-provisionable: no `__inputs`/`${DS_…}`, a `datasource` variable of type
/// prometheus, and every panel (rows too), target and query variable points at `${datasource}`.
#[test]
fn every_panel_and_target_uses_the_datasource_variable() {
    let want = serde_json::json!({"type": "prometheus", "uid": DATASOURCE});
    for (file, d) in dashboards() {
        assert!(
            d.get("__inputs").is_none(),
            "{file}: has __inputs (UI-import only; breaks provisioning)"
        );
        assert!(
            d.get("__requires").is_none(),
            "{file}: has __requires (export-for-sharing leftovers)"
        );
        let text = d.to_string();
        assert!(
            !text.contains("${DS_"),
            "{file}: references a ${{DS_…}} import input"
        );

        let ds_vars: Vec<&Value> = template_vars(&d)
            .into_iter()
            .filter(|v| v["type"] == "datasource")
            .collect();
        assert_eq!(
            ds_vars.len(),
            1,
            "{file}: expected exactly one datasource variable"
        );
        assert_eq!(
            ds_vars[0]["name"], "datasource",
            "{file}: datasource variable name"
        );
        assert_eq!(
            ds_vars[0]["query"], "prometheus",
            "{file}: datasource variable query"
        );
        for name in ["job", "instance", "engine", "pod"] {
            assert!(
                template_vars(&d)
                    .iter()
                    .any(|v| v["name"] == name && v["type"] == "query"),
                "{file}: no `{name}` query variable"
            );
        }

        for v in template_vars(&d)
            .into_iter()
            .filter(|v| v["type"] == "query")
        {
            assert_eq!(
                v["datasource"], want,
                "{file}: variable ${} datasource",
                v["name"]
            );
        }
        for p in all_panels(&d) {
            assert_eq!(
                p["datasource"], want,
                "{file}: panel {} ({}) datasource",
                p["title"], p["type"]
            );
            for t in p["targets"].as_array().into_iter().flatten() {
                assert_eq!(
                    t["datasource"], want,
                    "{file}: panel {} target {} datasource",
                    p["title"], t["refId"]
                );
            }
        }
    }
}

/// Every panel `expr` and every `label_values` selector parses as PromQL once Grafana's variables
/// are replaced, uses only defined variables, selects metrics by name, and every range is
/// `$__rate_interval` (never a hard-coded window that breaks with other scrape intervals).
#[test]
fn every_expr_parses_as_promql() {
    let mut n = 0;
    for (file, d) in dashboards() {
        let vars = static_vars(&d);
        for q in queries(&file, &d) {
            let expr = substitute(&q.expr, "1m", &vars);
            let parsed = parse_or_panic(&q.what, &q.expr, &expr);
            assert!(
                !metric_names(&parsed).is_empty(),
                "{}: selects no metric: {}",
                q.what,
                q.expr
            );
            if q.label_values_of.is_some() {
                assert!(
                    matches!(parsed, Expr::VectorSelector(_)),
                    "{}: label_values needs a plain series selector, got {}",
                    q.what,
                    q.expr
                );
            }
            // Ranges: after `[` comes a Grafana interval variable.
            for (i, _) in q.expr.match_indices('[') {
                assert!(
                    q.expr[i + 1..].starts_with("$__rate_interval]"),
                    "{}: range is not [$__rate_interval]: {}",
                    q.what,
                    q.expr
                );
            }
            n += 1;
        }
    }
    assert!(n > 10, "only {n} queries found");
    eprintln!("{n} dashboard queries parse");
}

/// The variable substitution itself: built-ins, `$v`, `${v}`, `${v:regex}`, `[[v]]`, and a typo
/// panics instead of slipping through.
#[test]
fn grafana_variable_substitution() {
    let vars: HashMap<String, String> = [("job", "a.*"), ("pod", "p1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        substitute(
            r#"rate(x{job=~"$job",pod="${pod}",q="${pod:regex}",r="[[job]]"}[$__rate_interval])"#,
            "30s",
            &vars
        ),
        r#"rate(x{job=~"a.*",pod="p1",q="p1",r="a.*"}[30s])"#
    );
    assert_eq!(
        substitute("sum(x[$__range]) [5m:$__interval]", "1m", &vars),
        "sum(x[1m]) [5m:1m]"
    );
    assert_eq!(
        parse_label_values(r#"label_values(podman_up{job=~"$job", instance=~"a,b"}, instance)"#),
        Some((
            r#"podman_up{job=~"$job", instance=~"a,b"}"#.into(),
            "instance".into()
        ))
    );
    assert_eq!(parse_label_values("label_values(job)"), None);
}

/// A variable the dashboard does not define (a typo) is an error, not passed through.
#[test]
#[should_panic(expected = "unknown Grafana variable $pdo")]
fn unknown_grafana_variable_panics() {
    substitute(r#"x{pod=~"$pdo"}"#, "1m", &HashMap::new());
}

// ---------------------------------------------------------------------------------------------
// End to end: real Podman → real sealwatch → real Prometheus
// ---------------------------------------------------------------------------------------------

/// Label keys sealwatch turns into metric labels in the scenario.
const ALLOWLIST: &str = "app,io.podman.compose.project";

/// A private Podman with two pods, labelled containers, a container that exited non-zero, a
/// crash-looping container, an unhealthy container and one outside any pod; and a sealwatch
/// watching it that has seen all of that.
struct Scenario {
    svc: PodmanService,
    sw: Sealwatch,
}

impl Scenario {
    fn start() -> Self {
        let t0 = Instant::now();
        let svc = PodmanService::start();
        let sw = Sealwatch::start(
            env!("CARGO_BIN_EXE_sealwatch"),
            &["--podman.url", &svc.url(), "--labels.allowlist", ALLOWLIST],
        );
        let run = |args: &[&str]| {
            let mut a = vec!["run"];
            a.extend_from_slice(args);
            svc.podman(&a)
        };
        svc.podman(&["pod", "create", "--name", "p1"]);
        svc.podman(&["pod", "create", "--name", "p2"]);
        // p1: a labelled compose-style service, an unhealthy one, a failed one, a crash loop.
        run(&[
            "-d",
            "--pod",
            "p1",
            "--name",
            "web",
            "--label",
            "app=web",
            "--label",
            "io.podman.compose.project=shop",
            BUSYBOX_IMAGE,
            "sleep",
            "1000",
        ]);
        run(&[
            "-d",
            "--pod",
            "p1",
            "--name",
            "sick",
            "--label",
            "app=api",
            "--label",
            "io.podman.compose.project=shop",
            "--health-cmd",
            "test -e /run/ok",
            "--health-retries",
            "1",
            "--health-interval",
            "disable",
            BUSYBOX_IMAGE,
            "sleep",
            "1000",
        ]);
        run(&[
            "-d",
            "--pod",
            "p1",
            "--name",
            "failed",
            "--label",
            "app=batch",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "exit 3",
        ]);
        svc.podman(&["wait", "failed"]);
        run(&[
            "-d",
            "--pod",
            "p1",
            "--name",
            "looper",
            "--label",
            "app=looper",
            "--restart",
            "always",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "sleep 1; exit 1",
        ]);
        // p2: one healthy container with a healthcheck.
        run(&[
            "-d",
            "--pod",
            "p2",
            "--name",
            "fine",
            "--label",
            "app=web",
            "--health-cmd",
            "true",
            "--health-interval",
            "disable",
            BUSYBOX_IMAGE,
            "sleep",
            "1000",
        ]);
        // Outside any pod.
        run(&[
            "-d",
            "--name",
            "solo",
            "--label",
            "app=web",
            BUSYBOX_IMAGE,
            "sleep",
            "1000",
        ]);
        // Podman 4.3.1 reports a health_status event one check late: run each check twice.
        for _ in 0..2 {
            let _ = svc.try_podman(&["healthcheck", "run", "sick"]); // fails: that is the point
            svc.podman(&["healthcheck", "run", "fine"]);
        }

        let s = Scenario { svc, sw };
        s.wait_for_inventory();
        eprintln!("scenario ready after {:?}", t0.elapsed());
        s
    }

    /// Waits until sealwatch's /containers shows the whole scenario.
    fn wait_for_inventory(&self) {
        wait_until(
            "sealwatch to see the scenario",
            Duration::from_secs(60),
            || {
                let (status, body) = self.sw.try_get("/containers?all=true")?;
                if status != 200 {
                    return Err(format!("status {status}: {body}"));
                }
                let list: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let by_name = |n: &str| -> Result<Value, String> {
                    list.as_array()
                        .and_then(|l| l.iter().find(|c| c["name"] == n).cloned())
                        .ok_or_else(|| format!("{n} not listed yet"))
                };
                let check =
                    |cond: bool, msg: &str| if cond { Ok(()) } else { Err(msg.to_string()) };
                check(
                    by_name("sick")?["health"] == "unhealthy",
                    "sick not unhealthy yet",
                )?;
                check(
                    by_name("fine")?["health"] == "healthy",
                    "fine not healthy yet",
                )?;
                check(
                    by_name("failed")?["exit_code"] == 3,
                    "failed has no exit code 3 yet",
                )?;
                check(
                    by_name("looper")?["restarts"].as_u64() >= Some(2),
                    "looper restarted < 2 times",
                )?;
                by_name("web")?;
                by_name("solo")?;
                Ok(())
            },
        );
    }

    /// Metric (sample) names in sealwatch's own /metrics output, as Prometheus stores them.
    fn exported_metric_names(&self) -> BTreeSet<String> {
        let (status, body) = self.sw.get("/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        sample_names(&body)
    }
}

/// Sample names of a text-format exposition (comments skipped).
fn sample_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or("").to_string())
        .collect()
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How Grafana's Prometheus data source writes one selected value into a query: multi-value and
/// "All" variables are regex-escaped (`prometheusSpecialRegexEscape`), others only get backslashes
/// and quotes escaped (`prometheusRegularEscape`).
fn grafana_escape(var: &Value, value: &str) -> String {
    if var["multi"] == true || var["includeAll"] == true {
        let mut out = String::new();
        for ch in value.chars() {
            match ch {
                '\\' => out.push_str(r"\\\\"),
                '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')'
                | '|' => {
                    out.push_str(r"\\");
                    out.push(ch);
                }
                _ => out.push(ch),
            }
        }
        out
    } else {
        value.replace('\\', r"\\").replace('\'', r"\\'")
    }
}

/// Which value each query variable gets.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Selection {
    /// What Grafana shows on first load: "All" (its allValue, `.*`) where the variable offers
    /// it, else the first value in sort order.
    Default,
    /// A user picked one concrete value of every variable (the first in sort order).
    FirstValue,
}

/// Resolves a dashboard's variables the way Grafana does: in order, each `label_values` query
/// asked of Prometheus (with the variables before it substituted), then a value chosen per
/// `selection`. Panics if a variable query returns nothing.
fn resolve_vars(
    prom: &Prometheus,
    file: &str,
    dash: &Value,
    selection: Selection,
) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for v in template_vars(dash) {
        let name = v["name"].as_str().unwrap().to_string();
        if v["type"] == "datasource" {
            vars.insert(name, "prometheus".into());
            continue;
        }
        let q = v["query"]
            .as_str()
            .or_else(|| v["query"]["query"].as_str())
            .unwrap();
        let (selector, label) = parse_label_values(q).unwrap();
        let selector = substitute(&selector, "30s", &vars);
        let path = format!(
            "/api/v1/label/{}/values?match[]={}",
            label,
            urlencode(&selector)
        );
        let values: Vec<String> = wait_until(
            &format!("{file}: values of variable ${name} ({selector}, {label})"),
            Duration::from_secs(60),
            || {
                let r = prom.api(&path);
                let vals: Vec<String> = r["data"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                if vals.is_empty() {
                    Err(format!("no values: {r}"))
                } else {
                    Ok(vals)
                }
            },
        );
        let value = if v["includeAll"] == true && selection == Selection::Default {
            v["allValue"].as_str().unwrap_or(".*").to_string()
        } else {
            let mut sorted = values.clone();
            sorted.sort();
            grafana_escape(v, &sorted[0])
        };
        eprintln!("{file} ({selection:?}): ${name} = {value:?} (options {values:?})");
        vars.insert(name, value);
    }
    vars
}

/// Polls an instant query until it returns at least one series; panics naming the panel.
fn wait_for_result(prom: &Prometheus, what: &str, expr: &str, timeout: Duration) {
    let started = Instant::now();
    wait_until(&format!("data for {what}: {expr}"), timeout, || {
        if prom.query(expr).is_empty() {
            Err("empty result".to_string())
        } else {
            Ok(())
        }
    });
    if started.elapsed() > Duration::from_secs(2) {
        eprintln!("{what}: data after {:?}", started.elapsed());
    }
}

/// `X or vector(0)` → `X` (such a stat always answers; the part before it must have data itself).
fn without_zero_fallback(expr: &str) -> Option<String> {
    expr.trim_end()
        .strip_suffix("or vector(0)")
        .map(|l| l.trim_end().to_string())
}

/// End to end: every metric a dashboard uses exists in the real sealwatch output, and every
/// variable and panel query returns data from a real Prometheus scraping that sealwatch (watching
/// a private Podman with pods, labels, a failed, a crash-looping and an unhealthy container), both
/// with Grafana's default selection ("All") and with one concrete value of every variable.
#[test]
fn every_dashboard_query_returns_data_from_real_prometheus() {
    let t0 = Instant::now();
    let sc = Scenario::start();

    // Metric names: dashboards vs sealwatch's real output.
    let exported = sc.exported_metric_names();
    let used = dashboard_metric_names();
    let missing: Vec<String> = used
        .iter()
        .filter(|(n, _)| !exported.contains(*n))
        .map(|(n, w)| format!("{n} (used by {})", w.join("; ")))
        .collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics that sealwatch does not export:\n  {}\nexported: {exported:?}",
        missing.join("\n  ")
    );
    eprintln!(
        "{} metric names used by dashboards all exported",
        used.len()
    );

    let prom = Prometheus::start(&[format!("127.0.0.1:{}", sc.sw.port())], None);
    prom.wait_for_data(
        r#"podman_up{job="sealwatch"} == 1"#,
        Duration::from_secs(60),
    );

    let mut checked = 0;
    for (file, dash) in dashboards() {
        let vars = resolve_vars(&prom, &file, &dash, Selection::Default);
        for q in queries(&file, &dash) {
            if q.label_values_of.is_some() {
                continue; // resolved above, with data
            }
            let expr = substitute(&q.expr, "30s", &vars);
            // rate() and increase() need two scrapes in the window: poll.
            wait_for_result(&prom, &q.what, &expr, Duration::from_secs(60));
            if let Some(lhs) = without_zero_fallback(&expr) {
                wait_for_result(&prom, &q.what, &lhs, Duration::from_secs(60));
            }
            checked += 1;
        }
    }
    eprintln!("{checked} panel queries returned data with the default selection");

    // One concrete value of every variable (the first job, instance and engine; pod p1, which has
    // every kind of container), escaped the way Grafana escapes it: the engine name here is a
    // socket URL with regex metacharacters in it.
    for (file, dash) in dashboards() {
        let vars = resolve_vars(&prom, &file, &dash, Selection::FirstValue);
        assert_eq!(
            vars.get("pod").map(String::as_str),
            Some("p1"),
            "{file}: first pod"
        );
        for q in queries(&file, &dash) {
            if q.label_values_of.is_some() {
                continue;
            }
            let expr = substitute(&q.expr, "30s", &vars);
            let expr = without_zero_fallback(&expr).unwrap_or(expr);
            let what = format!("{} (one value of each variable)", q.what);
            wait_for_result(&prom, &what, &expr, Duration::from_secs(30));
            checked += 1;
        }
    }
    eprintln!(
        "{checked} panel queries returned data; test took {:?}",
        t0.elapsed()
    );
    drop(prom);
    drop(sc.sw);
    drop(sc.svc);
}
