//! What a scraper or a user would trip over that promtool does not check: duplicate series,
//! HELP/TYPE on every family, contiguous families, label names, `# EOF` only in OpenMetrics.

use std::collections::{BTreeSet, HashSet};

use super::parse::valid_label_name;
use super::{clip, Exposition};
use crate::support::promtool;

/// Which of the two exposition formats a body is meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    Text,
    /// `application/openmetrics-text; version=1.0.0`
    OpenMetrics,
}

/// `promtool check metrics` (for the 0.0.4 text, the format it reads) plus the problems below;
/// panics with every finding; returns the parsed body.
pub fn assert_lint_clean(text: &str, format: Format) -> Exposition {
    if format == Format::Text {
        promtool::check_metrics(text);
    }
    let e = Exposition::parse(text).unwrap_or_else(|err| panic!("unparsable: {}", clip(&err)));
    let problems = e.problems(format);
    assert!(
        problems.is_empty(),
        "exposition problems:\n{}",
        problems.join("\n")
    );
    e
}

impl Exposition {
    /// Everything a scraper or a user would trip over; empty when clean.
    fn problems(&self, format: Format) -> Vec<String> {
        let openmetrics = format == Format::OpenMetrics;
        let mut problems = Vec::new();
        let mut seen_types = HashSet::new();
        for (name, kind) in &self.types {
            if !seen_types.insert(name) {
                problems.push(format!("TYPE of {name} declared twice"));
            }
            if ![
                "counter",
                "gauge",
                "histogram",
                "summary",
                "untyped",
                "unknown",
                "info",
                "stateset",
            ]
            .contains(&kind.as_str())
            {
                problems.push(format!("{name} has unknown type {kind}"));
            }
            if !self.help.iter().any(|(h, _)| h == name) {
                problems.push(format!("{name} has TYPE but no HELP"));
            }
        }
        let mut seen_help = HashSet::new();
        for (name, _) in &self.help {
            if !seen_help.insert(name) {
                problems.push(format!("HELP of {name} given twice"));
            }
        }
        let mut series = HashSet::new();
        let mut finished: BTreeSet<String> = BTreeSet::new();
        let mut current: Option<String> = None;
        for s in &self.samples {
            let Some(family) = self.family_of(&s.name) else {
                problems.push(format!("sample {} has no TYPE/HELP", s.name));
                continue;
            };
            let kind = &self.types.iter().find(|(n, _)| *n == family).unwrap().1;
            if kind == "counter" && !s.name.ends_with("_total") {
                problems.push(format!("counter sample {} does not end in _total", s.name));
            }
            if current.as_deref() != Some(family.as_str()) {
                if let Some(prev) = current.take() {
                    finished.insert(prev);
                }
                if finished.contains(&family) {
                    problems.push(format!("samples of {family} are not contiguous"));
                }
                current = Some(family.clone());
            }
            let mut names = HashSet::new();
            for (k, _) in &s.labels {
                if !valid_label_name(k) {
                    problems.push(format!("{}: invalid label name {k:?}", s.name));
                }
                if !names.insert(k) {
                    problems.push(format!("{}: label {k} appears twice in one series", s.name));
                }
            }
            let mut key = s.labels.clone();
            key.sort();
            if !series.insert((s.name.clone(), key)) {
                problems.push(format!("duplicate series {} {:?}", s.name, s.labels));
            }
        }
        if openmetrics && !self.eof_last {
            problems.push("OpenMetrics body does not end with # EOF".into());
        }
        if !openmetrics && self.eof_last {
            problems.push("0.0.4 text must not carry # EOF".into());
        }
        problems
    }
}
