//! End to end: real Podman → real sealwatch → real Prometheus, and every dashboard query
//! answered with data.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    dashboard_metric_names, dashboards, parse_label_values, queries, substitute, template_vars,
};
use crate::support::prometheus::Prometheus;
use crate::support::{wait_until, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE};

/// Label keys sealwatch turns into metric labels in the scenario.
const ALLOWLIST: &str = "app,io.podman.compose.project";

/// A private Podman with two pods, labelled containers, a container that exited non-zero, a
/// crash-looping container, an unhealthy container, a container that restarts every few seconds
/// and turns healthy in each run (the lifecycle histograms), and one outside any pod; and a
/// sealwatch watching it that has seen all of that.
struct Scenario {
    svc: PodmanService,
    sw: Sealwatch,
}

impl Scenario {
    fn start() -> Self {
        let t0 = Instant::now();
        let svc = PodmanService::start();
        let sw = Sealwatch::start(&["--podman.url", &svc.url(), "--labels.allowlist", ALLOWLIST]);
        let busybox = |name: &str| Run::new(BUSYBOX_IMAGE).name(name);
        svc.podman(&["pod", "create", "--name", "p1"]);
        svc.podman(&["pod", "create", "--name", "p2"]);
        // p1: a labelled compose-style service, an unhealthy one, a failed one, a crash loop.
        svc.run(
            &busybox("web")
                .pod("p1")
                .label("app", "web")
                .label("io.podman.compose.project", "shop")
                .sleeping(),
        );
        svc.run(
            &busybox("sick")
                .pod("p1")
                .label("app", "api")
                .label("io.podman.compose.project", "shop")
                .health_cmd("test -e /run/ok")
                .health_retries(1)
                .sleeping(),
        );
        svc.run(
            &busybox("failed")
                .pod("p1")
                .label("app", "batch")
                .sh("exit 3"),
        );
        svc.podman(&["wait", "failed"]);
        svc.run(
            &busybox("looper")
                .pod("p1")
                .label("app", "looper")
                .restart("always")
                .sh("sleep 1; exit 1"),
        );
        // p1 too: a short-lived service with a healthcheck, restarted every 3 s; `pulse` runs
        // its checks, so each run turns healthy (start-to-healthy and run-duration histograms
        // that keep moving while Prometheus scrapes).
        svc.run(
            &busybox("ready")
                .pod("p1")
                .label("app", "ready")
                .health_cmd("true")
                .restart("always")
                .sh("sleep 3"),
        );
        // p1 too: a memory-limited container whose `dd` the OOM killer kills every second while
        // the container keeps running (resource panels: memory use of the limit, OOM kills).
        svc.run(&busybox("oomer").pod("p1").label("app", "oomer").oom_loop());
        // p2: one healthy container with a healthcheck.
        svc.run(
            &busybox("fine")
                .pod("p2")
                .label("app", "web")
                .health_cmd("true")
                .sleeping(),
        );
        // Outside any pod.
        svc.run(&busybox("solo").label("app", "web").sleeping());
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

    /// Runs the healthcheck of `ready` every 0.7 s until `stop` is set: two checks after each
    /// start make it healthy (Podman 4.3 reports a check's status one check late), so every
    /// run of it is one start-to-healthy observation. A check between runs fails; that is fine.
    fn pulse(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let _ = self.svc.try_podman(&["healthcheck", "run", "ready"]);
            std::thread::sleep(Duration::from_millis(700));
        }
    }

    /// Metric (sample) names in sealwatch's own /metrics output, as Prometheus stores them.
    fn exported_metric_names(&self) -> BTreeSet<String> {
        self.sw.scrape().names()
    }
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

/// Polls an instant query until it returns at least one series (for a `histogram_quantile`, one
/// that is a number: a quantile of no observations is NaN); panics naming the panel.
fn wait_for_result(prom: &Prometheus, what: &str, expr: &str, timeout: Duration) {
    let started = Instant::now();
    wait_until(&format!("data for {what}: {expr}"), timeout, || {
        let result = prom.query(expr);
        if result.is_empty() {
            Err("empty result".to_string())
        } else if expr.contains("histogram_quantile")
            && result.iter().all(|s| s["value"][1] == "NaN")
        {
            Err(format!("only NaN: {result:?}"))
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
/// a private Podman with pods, labels, a failed, a crash-looping and an unhealthy container, and
/// one that turns healthy in every run), both with Grafana's default selection ("All") and with
/// one concrete value of every variable.
#[test]
fn every_dashboard_query_returns_data_from_real_prometheus() {
    let t0 = Instant::now();
    let sc = Scenario::start();
    let stop = AtomicBool::new(false);
    /// Ends the pulse also when a check panics, so the scope can join it.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    std::thread::scope(|scope| {
        scope.spawn(|| sc.pulse(&stop));
        let _stop = StopOnDrop(&stop);
        check_every_query(&sc, t0);
    });
    drop(sc.sw);
    drop(sc.svc);
}

fn check_every_query(sc: &Scenario, t0: Instant) {
    // Metric names: dashboards vs sealwatch's real output (the start-to-healthy histogram
    // appears once `ready` has turned healthy under the pulse).
    let used = dashboard_metric_names();
    wait_until(
        "sealwatch to export every metric the dashboards use",
        Duration::from_secs(60),
        || {
            let exported = sc.exported_metric_names();
            let missing: Vec<String> = used
                .iter()
                .filter(|(n, _)| !exported.contains(*n))
                .map(|(n, w)| format!("{n} (used by {})", w.join("; ")))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "dashboard metrics that sealwatch does not export:\n  {}\nexported: {exported:?}",
                    missing.join("\n  ")
                ))
            }
        },
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
}
