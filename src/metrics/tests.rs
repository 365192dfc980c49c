//! The render against two independent references: the golden text recorded before the metrics
//! module was restructured, and prometheus-client's own encoding of the same families computed
//! naively from the same fixture inventory.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::reference::Naive;
use super::*;
use crate::resources::EngineStats;
use crate::snapshot::EngineStatus;

/// The fixture's engines published with statuses, and the own registry with counts set.
fn fixture_metrics() -> (Metrics, Engines) {
    let inventories = fixture::inventories();
    let names: Vec<&str> = inventories.iter().map(|(n, _)| *n).collect();
    let (registry, instruments) = register_instruments(&names);
    let (engines, publishers) = Engines::with_stats(
        inventories
            .iter()
            .map(|(n, inv)| {
                let stats = if *n == "alpha" {
                    fixture::stats(inv)
                } else {
                    EngineStats::off()
                };
                (
                    n.to_string(),
                    format!("unix:///run/{n}.sock"),
                    inv.clone(),
                    stats,
                )
            })
            .collect(),
    );
    for (((name, inv), publisher), i) in inventories.iter().zip(&publishers).zip(&instruments) {
        let alpha = *name == "alpha";
        let status = EngineStatus {
            connected: alpha,
            synced: alpha,
            reason: (!alpha).then(|| "connecting".into()),
            version: alpha.then(|| "4.3.1".into()),
            api_version: alpha.then(|| "4.3.1".into()),
        };
        publisher.publish(&status, inv);
        if alpha {
            i.reconnects.inc_by(3);
            i.resyncs.inc_by(4);
            i.decode_errors.inc_by(1);
            i.stream_errors.inc_by(2);
            i.duplicates_dropped.inc_by(5);
            i.set_last_event_nanos(1_795_976_300_050_000_001);
        }
    }
    (Metrics::new(engines.clone(), registry), engines)
}

fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}:\n want {w:?}\n  got {g:?}", i + 1);
        }
    }
    format!(
        "lengths differ: want {} lines, got {}",
        want.lines().count(),
        got.lines().count()
    )
}

/// The render of the fixture inventory equals the golden text recorded before the metrics module
/// was restructured, in both formats (samples compared per family, order-free).
#[test]
fn render_equals_the_recorded_golden_text() {
    let (metrics, _) = fixture_metrics();
    for (openmetrics, file) in [
        (false, "metrics-golden.txt"),
        (true, "metrics-golden-openmetrics.txt"),
    ] {
        let got = fixture::normalize(&metrics.render(openmetrics).unwrap());
        let path = format!("{}/src/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        // An intended change of the output is recorded with SEALWATCH_WRITE_GOLDEN=1, and the
        // diff of the golden files then shows it in review.
        if std::env::var_os("SEALWATCH_WRITE_GOLDEN").is_some() {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap();
        assert!(
            got == want,
            "render differs from {file}:\n{}",
            first_difference(&want, &got)
        );
    }
}

/// The hand-written families equal prometheus-client's encoding of the same families, computed
/// naively from the same snapshots: every HELP, TYPE and series byte for byte, and values equal
/// as numbers (prometheus-client rounds unix times through a float; sealwatch writes them exact).
#[test]
fn hand_written_families_equal_prometheus_clients_encoding() {
    let (metrics, engines) = fixture_metrics();
    let mut reference = Registry::default();
    reference.register_collector(Box::new(Naive(engines.views())));
    for openmetrics in [false, true] {
        let ours = inventory_families(&metrics.render(openmetrics).unwrap());
        let mut theirs = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut theirs, &reference).unwrap();
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut theirs, &reference).unwrap();
        }
        let theirs = inventory_families(&theirs);
        assert_eq!(
            ours.lines().count(),
            theirs.lines().count(),
            "{}",
            first_difference(&theirs, &ours)
        );
        for (o, t) in ours.lines().zip(theirs.lines()) {
            if o == t {
                continue;
            }
            let split = |l: &str| {
                let (series, value) = l.rsplit_once(' ').unwrap_or((l, ""));
                (series.to_owned(), value.parse::<f64>().unwrap_or(f64::NAN))
            };
            let ((os, ov), (ts, tv)) = (split(o), split(t));
            assert_eq!(os, ts, "openmetrics={openmetrics}");
            // Within a few ulps: a float divided from nanoseconds against the exact decimal.
            assert!((ov - tv).abs() <= tv.abs() * 1e-15, "{o:?} vs {t:?}");
        }
    }
}

/// A series `name{k="v",...}` with its labels in key order (values keep their escapes).
fn canonical(series: &str) -> String {
    let Some((name, rest)) = series.split_once('{') else {
        return series.to_owned();
    };
    let body = rest.strip_suffix('}').unwrap_or(rest);
    let mut pairs = Vec::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        chars.next(); // the opening quote
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    value.push(c);
                    value.extend(chars.next());
                }
                '"' => break,
                c => value.push(c),
            }
        }
        if chars.peek() == Some(&',') {
            chars.next();
        }
        pairs.push(format!("{key}=\"{value}\""));
    }
    pairs.sort();
    format!("{name}{{{}}}", pairs.join(","))
}

/// Only the families derived from the inventory, normalised: `sealwatch_*`, `process_*` and
/// `# EOF` are left out.
fn inventory_families(text: &str) -> String {
    let mut keep = true;
    let mut out = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let name = rest.split(' ').nth(1).unwrap_or("");
            keep = !(name.is_empty()
                || name.starts_with("sealwatch_")
                || name.starts_with("process_"));
        }
        if keep {
            // prometheus-client's OpenMetrics text writes a histogram's `le` before its other
            // labels: label order carries no meaning, so both sides are compared in key order.
            match line.rsplit_once(' ').filter(|_| !line.starts_with('#')) {
                Some((series, value)) => {
                    out.push_str(&canonical(series));
                    out.push(' ');
                    out.push_str(value);
                }
                None => out.push_str(line),
            }
            out.push('\n');
        }
    }
    fixture::normalize(&out)
}

/// An inventory driven by synthetic events, for the kept-text test.
struct Driver {
    inv: crate::inventory::Inventory,
    t: i64,
}

impl Driver {
    /// An empty inventory allowing `allowlist`, at a fixed time.
    fn new(allowlist: &str) -> Self {
        Driver {
            inv: crate::inventory::Inventory::new(crate::inventory::LabelPolicy::new(
                crate::inventory::Allowlist::parse(allowlist),
                3,
            )),
            t: 1_795_976_300_000_000_000,
        }
    }

    /// One engine, `podman`, holding this inventory; its publisher; and a connected status.
    fn engine(&self) -> (Engines, crate::snapshot::Publisher, EngineStatus) {
        let (engines, mut publishers) = Engines::new(vec![(
            "podman".into(),
            "unix:///run/podman/podman.sock".into(),
            self.inv.clone(),
        )]);
        let status = EngineStatus {
            connected: true,
            synced: true,
            reason: None,
            version: Some("4.3.1".into()),
            api_version: Some("4.3.1".into()),
        };
        (engines, publishers.remove(0), status)
    }

    fn id(i: usize) -> String {
        format!("{:064x}", 0xc0_0000 + i)
    }

    fn pod(i: usize) -> String {
        format!("{:064x}", 0xb0_0000 + i)
    }

    fn ev(&mut self, kind: &str, action: &str, id: &str, attrs: serde_json::Value) {
        self.t += 1000;
        self.inv
            .apply(&fixture::event(self.t, kind, action, id, attrs));
    }

    fn create(&mut self, i: usize, pod: &str) {
        let attrs = serde_json::json!({
            "name": format!("c{i}"), "image": "localhost/busybox:latest", "podId": pod,
            "app": format!("v{}", i % 5), "a.b": "dot", "a-b": "dash",
        });
        self.ev("container", "create", &Self::id(i), attrs.clone());
        self.ev("container", "start", &Self::id(i), attrs);
    }
}

/// The text kept between scrapes never differs from a fresh render of the same snapshot: after
/// no change, changed and new and removed containers, a pod whose name became known after its
/// containers, newly admitted label keys and values, health changes, an event only counted and a
/// retention sweep; and the scrape body's chunks and its stitched gzip carry exactly that text.
#[test]
fn kept_text_equals_a_fresh_render_after_every_kind_of_change() {
    use serde_json::json;

    let mut d = Driver::new("app,role,a.b,a-b");
    let (engines, publisher, status) = d.engine();
    let kept = Metrics::new(engines.clone(), Registry::default());
    d.ev("pod", "create", &Driver::pod(0), json!({"name": "first"}));

    type Step = (&'static str, fn(&mut Driver));
    let steps: Vec<Step> = vec![
        ("400 containers", |d| {
            for i in 0..400 {
                let pod = if i % 3 == 0 {
                    Driver::pod(0)
                } else {
                    String::new()
                };
                d.create(i, &pod);
            }
        }),
        ("no change", |_| {}),
        ("one death", |d| {
            let attrs = json!({"name": "c7", "containerExitCode": "137"});
            d.ev("container", "died", &Driver::id(7), attrs);
        }),
        ("ten new, five removed", |d| {
            for i in 400..410 {
                d.create(i, "");
            }
            for i in [0, 1, 2, 200, 399] {
                let attrs = json!({"name": format!("c{i}")});
                d.ev("container", "remove", &Driver::id(i), attrs);
            }
        }),
        ("containers of a pod not yet known", |d| {
            for i in 410..415 {
                d.create(i, &Driver::pod(1));
            }
        }),
        ("the pod's name becomes known", |d| {
            d.ev("pod", "create", &Driver::pod(1), json!({"name": "late"}));
        }),
        ("a new label key", |d| {
            let attrs = json!({"name": "c500", "image": "i", "podId": "", "role": "db"});
            d.ev("container", "create", &Driver::id(500), attrs);
        }),
        ("a new value of a known key, and one past its cap", |d| {
            for (i, role) in [(501, "web"), (502, "cache"), (503, "queue")] {
                let attrs =
                    json!({"name": format!("c{i}"), "image": "i", "podId": "", "role": role});
                d.ev("container", "create", &Driver::id(i), attrs);
            }
        }),
        ("a value past its cap leaves", |d| {
            d.ev(
                "container",
                "remove",
                &Driver::id(503),
                json!({"name": "c503"}),
            );
        }),
        ("health changes", |d| {
            for i in (10..400).step_by(37) {
                let attrs = json!({"name": format!("c{i}"), "health_status": "unhealthy"});
                d.ev("container", "health_status", &Driver::id(i), attrs);
            }
        }),
        ("an exec: only counted", |d| {
            d.ev("container", "exec", &Driver::id(20), json!({"name": "c20"}));
        }),
        ("a retention sweep long after the removals", |d| {
            d.t += 2 * 24 * 3_600 * 1_000_000_000;
            d.inv.sweep(d.t);
        }),
        ("nothing again", |_| {}),
    ];
    for (what, step) in steps {
        step(&mut d);
        publisher.publish(&status, &d.inv);
        for openmetrics in [false, true] {
            let fresh = Metrics::new(engines.clone(), Registry::default())
                .render(openmetrics)
                .unwrap();
            let body = kept.render_body(openmetrics).unwrap();
            let gunzipped = super::body::tests::gunzip(&body.gzip().unwrap());
            let chunks = String::from_utf8(body.into_chunks().concat()).unwrap();
            assert!(
                chunks == fresh,
                "after {what} (openmetrics={openmetrics}):\n{}",
                first_difference(&fresh, &chunks)
            );
            assert!(gunzipped == fresh, "gzip after {what}");
        }
    }
}

/// The event counter and lifecycle text is reused as it is (the same segment) while nothing was
/// counted, and written anew once something was.
#[test]
fn counts_text_is_kept_while_nothing_is_counted() {
    use serde_json::json;

    let mut d = Driver::new("app");
    for i in 0..20 {
        d.create(i, "");
    }
    let (engines, publisher, status) = d.engine();
    let metrics = Metrics::new(engines, Registry::default());
    publisher.publish(&status, &d.inv);
    let first = metrics.render_body(false).unwrap().kept_segments();
    publisher.publish(&status, &d.inv);
    let again = metrics.render_body(false).unwrap().kept_segments();
    assert_eq!(first[0], again[0], "nothing counted: the same segment");
    d.ev("container", "exec", &Driver::id(3), json!({"name": "c3"}));
    publisher.publish(&status, &d.inv);
    let body = metrics.render_body(false).unwrap();
    assert_ne!(body.kept_segments()[0], first[0], "an exec was counted");
    let text = body.into_string();
    assert!(
        text.contains(
            "podman_events_total{engine=\"podman\",type=\"container\",action=\"exec\"} 1"
        ),
        "{text}"
    );
}

/// With `--metrics.scrape-cache off` a scrape keeps nothing for the next: the same snapshot
/// scraped twice is written twice (no segment of the first reused), its text is what a render
/// with the cache writes, and once its body is gone no record is held beyond the inventory.
#[test]
fn scrape_cache_off_keeps_nothing_between_scrapes() {
    let mut d = Driver::new("app");
    for i in 0..200 {
        d.create(i, &Driver::pod(i % 3));
    }
    d.ev(
        "container",
        "exec",
        &Driver::id(3),
        serde_json::json!({"name": "c3"}),
    );
    let (engines, publisher, status) = d.engine();
    publisher.publish(&status, &d.inv);
    let off =
        Metrics::new(engines.clone(), Registry::default()).with_scrape_cache(ScrapeCache::Off);
    let record = Arc::clone(d.inv.container(&Driver::id(5)).unwrap());
    let held = Arc::strong_count(&record);
    for openmetrics in [false, true] {
        let first = off.render_body(openmetrics).unwrap();
        let second = off.render_body(openmetrics).unwrap();
        let earlier = first.kept_segments();
        assert!(!earlier.is_empty());
        let reused = second
            .kept_segments()
            .into_iter()
            .filter(|s| earlier.contains(s));
        assert_eq!(
            reused.count(),
            0,
            "openmetrics={openmetrics}: a segment outlived its scrape"
        );
        let cached = Metrics::new(engines.clone(), Registry::default())
            .render(openmetrics)
            .unwrap();
        let got = second.into_string();
        assert!(got == cached, "{}", first_difference(&cached, &got));
        drop(first);
        assert_eq!(
            Arc::strong_count(&record),
            held,
            "a record outlived its scrape"
        );
    }
    // The same check on a render with the cache: there the record is held for the next scrape.
    let on = Metrics::new(engines, Registry::default());
    drop(on.render_body(false).unwrap());
    assert!(Arc::strong_count(&record) > held);
}
