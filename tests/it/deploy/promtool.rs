//! deploy/prometheus checked by promtool: the alert rules, their unit tests and the config.

use super::{prometheus_dir, REQUIRED_ALERTS};
use crate::support::promtool;

/// `promtool check rules deploy/prometheus/alerts.yml` exits 0.
#[test]
fn promtool_check_rules() {
    let stdout = promtool::check_rules(&prometheus_dir(), "alerts.yml");
    assert!(stdout.contains("SUCCESS"), "{stdout}");
}

/// `promtool test rules alerts_test.yml`, run from deploy/prometheus, exits 0, and the unit tests
/// cover every alert of alerts.yml.
#[test]
fn promtool_test_rules() {
    promtool::test_rules(&prometheus_dir(), "alerts_test.yml");
    let tests = std::fs::read_to_string(prometheus_dir().join("alerts_test.yml")).unwrap();
    let rules = std::fs::read_to_string(prometheus_dir().join("alerts.yml")).unwrap();
    let alert_names: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    for name in REQUIRED_ALERTS {
        assert!(alert_names.contains(name), "alerts.yml has no alert {name}");
    }
    for name in &alert_names {
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "alerts_test.yml has no test for {name}"
        );
    }
}

/// `promtool check config deploy/prometheus/prometheus.yml` exits 0 (it loads alerts.yml too).
#[test]
fn promtool_check_config() {
    let stdout = promtool::check_config(&prometheus_dir(), "prometheus.yml");
    assert!(stdout.contains("1 rule files found"), "{stdout}");
}

/// The recording rules that give prometheus-podman-exporter's state and health codes back pass
/// `promtool check rules` and their unit tests (every rule has a case), and the README shows the
/// same rules as the shipped file.
#[test]
fn promtool_tests_the_exporter_code_rules() {
    let stdout = promtool::check_rules(&prometheus_dir(), "podman-exporter-codes.yml");
    assert!(stdout.contains("SUCCESS"), "{stdout}");
    promtool::test_rules(&prometheus_dir(), "podman-exporter-codes_test.yml");
    let rules =
        std::fs::read_to_string(prometheus_dir().join("podman-exporter-codes.yml")).unwrap();
    let tests =
        std::fs::read_to_string(prometheus_dir().join("podman-exporter-codes_test.yml")).unwrap();
    for record in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record:"))
    {
        assert!(
            tests.contains(&format!("expr: {}\n", record.trim())),
            "no test case for {record}"
        );
    }
    let readme = std::fs::read_to_string(prometheus_dir().join("../../README.md")).unwrap();
    let body = rules.split_once("groups:").unwrap().1;
    assert!(
        readme.contains(body),
        "README's rules differ from podman-exporter-codes.yml"
    );
}
