//! systemd-style unit files (the systemd unit and the Quadlet `.container` under deploy/), read
//! as (section, key, value) entries.

use std::path::Path;

/// A systemd-style unit file: (section, key, value) in file order. Comments and blank lines
/// skipped; line continuations are not supported (and asserted absent).
pub fn unit_entries(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        assert!(
            !l.ends_with('\\'),
            "{}:{}: line continuation",
            path.display(),
            n + 1
        );
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = l
            .split_once('=')
            .unwrap_or_else(|| panic!("{}:{}: not key=value: {l}", path.display(), n + 1));
        assert!(
            !section.is_empty(),
            "{}:{}: key outside a section",
            path.display(),
            n + 1
        );
        out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
    }
    out
}

/// The values of `key` in `[section]`, in file order.
pub fn unit_values<'a>(
    entries: &'a [(String, String, String)],
    section: &str,
    key: &str,
) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

/// `systemd-analyze verify unit` (run in `dir`) succeeds with no warning about the sealwatch
/// unit: unknown keys and unparsable values are only warnings (exit 0), so any counts as a
/// failure. `what` names the unit in the failure.
pub fn assert_systemd_verifies(what: &str, unit: &Path, dir: &Path) {
    let out = crate::support::process::run_tool(
        "systemd-analyze",
        "systemd",
        &["verify", unit.to_str().expect("a UTF-8 path")],
        dir,
        "",
    );
    crate::support::process::assert_success(&format!("systemd-analyze verify {what}"), &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("sealwatch.service"))
        .collect();
    assert!(
        problems.is_empty(),
        "systemd-analyze verify {what} warnings:\n{}",
        problems.join("\n")
    );
}
