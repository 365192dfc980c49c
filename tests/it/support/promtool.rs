//! The one way the suite runs `promtool` (Debian's `prometheus` package): each check panics with
//! promtool's own findings unless it exits 0, and a missing promtool is a failure, never a skip.

use std::path::Path;

use super::process::{assert_success, run_tool};

/// `promtool ARGS` in `dir` with `stdin` as input; panics unless it exits 0; returns stdout.
fn promtool(args: &[&str], dir: &Path, stdin: &str) -> String {
    let out = run_tool("promtool", "prometheus", args, dir, stdin);
    assert_success(&format!("promtool {}", args.join(" ")), &out)
}

/// `promtool check metrics` on an exposition in the 0.0.4 text format.
pub fn check_metrics(text: &str) {
    promtool(&["check", "metrics"], Path::new("/"), text);
}

/// `promtool check rules FILE`, run in `dir`; returns its report.
pub fn check_rules(dir: &Path, file: &str) -> String {
    promtool(&["check", "rules", file], dir, "")
}

/// `promtool test rules FILE` (rule unit tests), run in `dir`; returns its report.
pub fn test_rules(dir: &Path, file: &str) -> String {
    promtool(&["test", "rules", file], dir, "")
}

/// `promtool check config FILE` (a Prometheus config and the rule files it names), run in
/// `dir`; returns its report.
pub fn check_config(dir: &Path, file: &str) -> String {
    promtool(&["check", "config", file], dir, "")
}

/// `promtool check web-config FILE` (the exporter-toolkit TLS and basic-auth format).
pub fn check_web_config(file: &Path) {
    let path = file.to_str().expect("a UTF-8 path");
    promtool(&["check", "web-config", path], Path::new("/"), "");
}
