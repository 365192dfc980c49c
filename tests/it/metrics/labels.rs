//! 5. Hostile labels: output stays lint-clean, values round-trip, the allowlist and the cap hold.

use std::collections::{BTreeMap, BTreeSet};

use super::compare::wait_gauges_match;
use super::{wait_ready, CATCH_UP, PROMETHEUS_ACCEPT};
use crate::support::exposition::Sample;
use crate::support::process::raw_get;
use crate::support::{
    assert_lint_clean, wait_until, Format, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE as IMAGE,
};

/// 200 labels, a 10 KB value, keys with dots/dashes/unicode, values with quotes, backslashes and
/// newlines: output stays lint-clean, values round-trip exactly, and the allowlist and the
/// `--labels.max-values` cap hold.
#[test]
fn hostile_labels_stay_lint_clean_and_caps_hold() {
    let svc = PodmanService::start();
    let all = Sealwatch::start(&["--podman.url", &svc.url(), "--labels.allowlist", "*"]);
    let capped = Sealwatch::start(&[
        "--podman.url",
        &svc.url(),
        "--labels.allowlist",
        "tier",
        "--labels.max-values",
        "2",
    ]);
    wait_ready(&all);
    wait_ready(&capped);

    let big = "x".repeat(10 * 1024);
    let mut labels: Vec<(String, String)> = (0..200)
        .map(|i| (format!("k{i:03}"), format!("v{i}")))
        .collect();
    // (key, value, the metric label name expected for the key), the names written out by hand
    // with kube-state-metrics' rule: `label_` + the key with every character outside
    // [a-zA-Z0-9_] replaced by `_` (one `_` per character, not per byte).
    let hostile: Vec<(&str, &str, &str)> = vec![
        ("big", &big, "label_big"),
        ("a.b", "dot", "label_a_b"),
        ("a-b", "dash", "label_a_b"),
        ("a_b", "underscore", "label_a_b"),
        ("ünï-cödé", "unicode key", "label__n__c_d_"),
        ("日本.key", "värde ✓ 日本", "label____key"),
        ("quote", "say \"hi\"", "label_quote"),
        ("backslash", "C:\\path\\", "label_backslash"),
        ("newline", "line1\nline2", "label_newline"),
        ("mixed", "\\\"\n\\n\"\\", "label_mixed"),
        ("empty", "", "label_empty"),
        ("tier", "hostile", "label_tier"),
    ];
    let mut label_name: BTreeMap<String, String> = (0..200)
        .map(|i| (format!("k{i:03}"), format!("label_k{i:03}")))
        .collect();
    label_name.insert("from.file".into(), "label_from_file".into());
    for (k, v, name) in &hostile {
        labels.push((k.to_string(), v.to_string()));
        label_name.insert(k.to_string(), name.to_string());
    }
    let label_file = svc.dir().join("labels.txt");
    std::fs::write(&label_file, "from.file=file value with spaces\n").unwrap();
    let run = Run::new(IMAGE)
        .name("hostile")
        .opt(&format!("--label-file={}", label_file.display()));
    let run = labels.iter().fold(run, |run, (k, v)| run.label(k, v));
    svc.run(&run.sleeping());
    labels.push(("from.file".into(), "file value with spaces".into()));
    for t in ["a", "b", "c", "d"] {
        svc.run(
            &Run::new(IMAGE)
                .name(&format!("t-{t}"))
                .label("tier", t)
                .sleeping(),
        );
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
    let m = assert_lint_clean(&all.scrape_text("/metrics"), Format::Text);
    let om = raw_get(all.port(), "/metrics", &[("Accept", PROMETHEUS_ACCEPT)]).unwrap();
    assert_lint_clean(&om.text(), Format::OpenMetrics);

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
        let key = label_name[k].as_str();
        let ab = ["dash", "dot", "underscore"];
        match got.get(key) {
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
            1.0,
            "podman_label_containers for {k}"
        );
    }

    // Allowlist and cap: only `tier`, at most 2 values plus __other__, counts intact.
    let tiers = wait_until("capped tiers", CATCH_UP, || {
        let c = capped.scrape();
        let t = c.nonzero_by("podman_label_containers", &["label", "value", "state"]);
        if t.values().sum::<f64>() == 5.0 {
            Ok(t)
        } else {
            Err(format!("{t:?}"))
        }
    });
    let c = assert_lint_clean(&capped.scrape_text("/metrics"), Format::Text);
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
    let events = c.nonzero_by("podman_label_container_events_total", &["label", "value"]);
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
        1.0,
        "the per-container family keeps the real value"
    );
}
