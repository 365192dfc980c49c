//! Static checks of the dashboard files: structure, links, the datasource variable, PromQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use promql_parser::parser::Expr;
use serde_json::Value;

use super::{
    all_panels, dashboards, metric_names, parse_label_values, parse_or_panic, queries, static_vars,
    substitute, template_vars,
};

const DATASOURCE: &str = "${datasource}";

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
