//! The lifecycle histograms against a real, private Podman: `podman_container_run_duration_seconds`,
//! its per-label variant `podman_label_container_run_duration_seconds` and
//! `podman_container_startup_to_healthy_seconds` equal, bucket for bucket and to the nanosecond
//! in their sums, what `podman events` says for the same containers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::{assert_lint_clean, wait_until, Format, PodmanService, Run, Sealwatch};
use crate::support::{Engine, Events, Version, BUSYBOX_IMAGE};

const SETTLE: Duration = Duration::from_secs(30);
const SECOND: i64 = 1_000_000_000;

/// The bucket bounds sealwatch documents, in nanoseconds (README, "Lifecycle timings").
const RUN_BOUNDS: &[i64] = &[
    SECOND / 2,
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    30 * SECOND,
    60 * SECOND,
    300 * SECOND,
    900 * SECOND,
    3_600 * SECOND,
    21_600 * SECOND,
    86_400 * SECOND,
    604_800 * SECOND,
];
const HEALTHY_BOUNDS: &[i64] = &[
    SECOND / 2,
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    20 * SECOND,
    30 * SECOND,
    45 * SECOND,
    60 * SECOND,
    120 * SECOND,
    300 * SECOND,
    900 * SECOND,
    3_600 * SECOND,
];

/// Nanoseconds as the exposition writes seconds: exact, `.0` on whole seconds.
fn seconds_text(nanos: i64) -> String {
    let (s, f) = (nanos / SECOND, nanos % SECOND);
    if f == 0 {
        return format!("{s}.0");
    }
    format!("{s}.{f:09}").trim_end_matches('0').to_owned()
}

/// A bound as the 0.0.4 text writes `le`: `0.5`, `1`, `604800`.
fn le_text(nanos: i64) -> String {
    seconds_text(nanos).trim_end_matches(".0").to_owned()
}

/// One series' expected lines (`_sum`, `_count`, every `_bucket`) from its observations.
fn expected_lines(stem: &str, labels: &str, bounds: &[i64], observed: &[i64]) -> Vec<String> {
    let sum: i64 = observed.iter().sum();
    let mut out = vec![
        format!("{stem}_sum{{{labels}}} {}", seconds_text(sum)),
        format!("{stem}_count{{{labels}}} {}", observed.len()),
    ];
    for b in bounds {
        let n = observed.iter().filter(|d| **d <= *b).count();
        out.push(format!(
            "{stem}_bucket{{{labels},le=\"{}\"}} {n}",
            le_text(*b)
        ));
    }
    out.push(format!(
        "{stem}_bucket{{{labels},le=\"+Inf\"}} {}",
        observed.len()
    ));
    out
}

/// Podman's time of an event from `podman events --format json`, unix nanoseconds.
fn event_nanos(e: &Value) -> i64 {
    if let Some(n) = e["timeNano"].as_i64().filter(|n| *n > 0) {
        return n;
    }
    let text = e["Time"].as_str().or_else(|| e["time"].as_str());
    let text = text.unwrap_or_else(|| panic!("no time in {e}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|err| panic!("time {text:?}: {err}"))
        .timestamp_nanos_opt()
        .unwrap()
}

/// Runs of a crash-looping pod member, a stopped service outside a pod and a container that
/// becomes healthy: the histograms (by pod, and by label with a value folded past
/// `--labels.max-values`) equal the durations `podman events` gives, exactly, and the exposition
/// passes promtool and the linter.
#[test]
fn lifecycle_histograms_equal_the_event_log() {
    histograms_equal_the_event_log(Engine::DEFAULT);
}

/// The same on Podman 5.4 and 6.1 (file events). Not with journald events: the journal is shared
/// by every Podman on the machine, and a parallel test's runs then land in these histograms.
#[test]
fn lifecycle_histograms_equal_the_event_log_on_5_4() {
    histograms_equal_the_event_log(Engine::new(Version::V5, Events::File));
}

/// See above.
#[test]
fn lifecycle_histograms_equal_the_event_log_on_6_1() {
    histograms_equal_the_event_log(Engine::new(Version::V6, Events::File));
}

fn histograms_equal_the_event_log(engine: Engine) {
    let svc = PodmanService::start_with(engine);
    let url = format!("local={}", svc.url());
    // `app` only, one value: the crash loop's `shopfront` is admitted first (it is created
    // first), the service's `svc` is folded into `__other__`.
    let sw = Sealwatch::start(&[
        "--podman.url",
        &url,
        "--labels.allowlist",
        "app",
        "--labels.max-values",
        "1",
    ]);
    sw.wait_ready(200, SETTLE);
    let t0 = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);

    svc.podman(&["pod", "create", "--name", "shop"]);
    let crash = svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("crash")
            .label("app", "shopfront")
            .pod("shop")
            .sh("sleep 0.3; exit 1"),
    );
    svc.podman(&["wait", "crash"]);
    for _ in 0..2 {
        svc.podman(&["start", "crash"]);
        svc.podman(&["wait", "crash"]);
    }
    let service = svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("service")
            .label("app", "svc")
            .sleeping(),
    );
    std::thread::sleep(Duration::from_millis(1200));
    svc.podman(&["stop", "-t", "0", "service"]);
    let hc = svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("hc")
            .health_cmd("true")
            .sleeping(),
    );
    std::thread::sleep(Duration::from_millis(600));
    // Podman 4.3's event carries the status from before the check: the second says healthy.
    svc.podman(&["healthcheck", "run", "hc"]);
    svc.podman(&["healthcheck", "run", "hc"]);

    // The event log: start -> died per run, start -> first healthy per run.
    let log = svc.podman(&[
        "events",
        "--stream=false",
        "--since",
        &t0,
        "--format",
        "json",
    ]);
    let mut started: BTreeMap<String, i64> = BTreeMap::new();
    let mut healthy_seen: BTreeMap<String, bool> = BTreeMap::new();
    let mut runs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut healthy: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line).unwrap();
        if e["Type"] != "container" {
            continue;
        }
        let id = e["ID"].as_str().unwrap().to_owned();
        let t = event_nanos(&e);
        match e["Status"].as_str().unwrap() {
            "start" => {
                started.insert(id.clone(), t);
                healthy_seen.insert(id, false);
            }
            "died" => {
                if let Some(s) = started.remove(&id) {
                    runs.entry(id).or_default().push(t - s);
                }
            }
            "health_status" => {
                let status = e["health_status"]
                    .as_str()
                    .or_else(|| e["HealthStatus"].as_str())
                    .unwrap_or_default();
                let seen = healthy_seen.entry(id.clone()).or_insert(true);
                if status == "healthy" && !*seen {
                    *seen = true;
                    healthy
                        .entry(id.clone())
                        .or_default()
                        .push(t - started[&id]);
                }
            }
            _ => {}
        }
    }
    assert_eq!(runs.get(&crash).map(Vec::len), Some(3), "{log}");
    assert_eq!(runs.get(&service).map(Vec::len), Some(1), "{log}");
    assert_eq!(healthy.get(&hc).map(Vec::len), Some(1), "{log}");

    let stem_runs = "podman_container_run_duration_seconds";
    let stem_healthy = "podman_container_startup_to_healthy_seconds";
    let stem_label = "podman_label_container_run_duration_seconds";
    let mut want = expected_lines(stem_runs, "engine=\"local\"", RUN_BOUNDS, &runs[&service]);
    want.extend(expected_lines(
        stem_runs,
        "engine=\"local\",pod=\"shop\"",
        RUN_BOUNDS,
        &runs[&crash],
    ));
    want.extend(expected_lines(
        stem_healthy,
        "engine=\"local\"",
        HEALTHY_BOUNDS,
        &healthy[&hc],
    ));
    want.extend(expected_lines(
        stem_label,
        "engine=\"local\",label=\"app\",value=\"__other__\"",
        RUN_BOUNDS,
        &runs[&service],
    ));
    want.extend(expected_lines(
        stem_label,
        "engine=\"local\",label=\"app\",value=\"shopfront\"",
        RUN_BOUNDS,
        &runs[&crash],
    ));
    let text = wait_until("the histograms equal the event log", SETTLE, || {
        let text = sw.scrape_text("/metrics");
        let got: Vec<String> = text
            .lines()
            .filter(|l| {
                l.starts_with(stem_runs) || l.starts_with(stem_healthy) || l.starts_with(stem_label)
            })
            .map(str::to_owned)
            .collect();
        if got == want {
            Ok(text)
        } else {
            Err(format!(
                "want:\n{}\ngot:\n{}",
                want.join("\n"),
                got.join("\n")
            ))
        }
    });
    assert_lint_clean(&text, Format::Text);
}
