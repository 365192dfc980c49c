//! The Grafana dashboards under dashboards/: static checks (JSON, uids, datasource variable,
//! PromQL) and an end-to-end check that every panel and variable query returns data from a real
//! Prometheus that scrapes a real sealwatch watching a real private Podman.
//!
//! This file reads the dashboards: their panels, variables and queries, and Grafana's variable
//! substitution.

mod end_to_end;
mod static_checks;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use promql_parser::parser::{self, Expr};
use serde_json::Value;

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
